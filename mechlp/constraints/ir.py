r"""Participation rows (Lamba 2022, Definition 2): :math:`\bar U_i(t|h) \ge \underline u_i(t)` every period.

Modes: ``"interim"`` (every history, the default), ``"ex_post"`` (pointwise: :math:`U_i(h,\theta) \ge
\underline u_i(\theta_i)` at every node), ``"ex_ante"`` (the first period only).
"""

from __future__ import annotations

import numpy as np

from mechlp.constraints._common import AgentView
from mechlp.lp.program import Block, Variables
from mechlp.model.question import parse_notion


def ir_blocks(
    variables: Variables, views: list[AgentView], outside: list[np.ndarray], mode: str = "interim"
) -> list[Block]:
    mode = parse_notion("ir", mode)
    space = variables.space
    k = space.env.n_profiles
    blocks = []
    for view in views:
        i = view.agent
        if mode == "ex_post":
            nodes = np.arange(space.n_nodes, dtype=np.int64)
            own = space.env.profile_types()[nodes % k, i]
            blocks.append(
                Block(
                    "ir",
                    nodes.size,
                    nodes,
                    variables.U(i, nodes),
                    np.ones(nodes.size),
                    outside[i][own],
                    np.full(nodes.size, np.inf),
                    {"agent": i, "hist": nodes // k, "node": nodes, "type": own},
                )
            )
            continue
        hists = np.arange(1 if mode == "ex_ante" else space.n_hist, dtype=np.int64)
        m = view.n_others
        for t in range(view.n_types):
            nodes = hists[:, None] * k + view.prof[t][None, :]
            w = view.belief(t)[hists]
            blocks.append(
                Block(
                    "ir",
                    hists.size,
                    np.repeat(np.arange(hists.size), m),
                    variables.U(i, nodes).reshape(-1),
                    w.reshape(-1),
                    np.full(hists.size, outside[i][t]),
                    np.full(hists.size, np.inf),
                    {"agent": i, "hist": hists, "type": t},
                )
            )
    return blocks

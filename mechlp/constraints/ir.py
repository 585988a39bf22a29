r"""Participation rows (Lamba 2022, Definition 2): :math:`\bar U_i(t|h) \ge \underline u_i(t)` every period.

Modes: ``"interim"`` (every history, the default), ``"ex_post"`` (pointwise: :math:`U_i(h,\theta) \ge
\underline u_i(\theta_i)` at every node), ``"ex_ante"`` (the first period only).

Outside options that depend on the node, :math:`O_i(h, \theta)` (``outside_values``; Bergemann and Valimaki's
2010 value of opting out while the planner runs the efficient policy without ``i``), are added to the per-type
options: :math:`U_i(h, \theta) \ge O_i(h, \theta)` ex post, :math:`\bar U_i(t|h) \ge E[O_i(h, (t,
\theta_{-i}))|h]` interim (the reading of :func:`mechlp.audit.verifier.verify` with ``outside_values``).
"""

from __future__ import annotations

import numpy as np

from mechlp.constraints._common import AgentView
from mechlp.lp.program import Block, Variables
from mechlp.model.question import parse_notion


def ir_blocks(
    variables: Variables,
    views: list[AgentView],
    outside: list[np.ndarray],
    mode: str = "interim",
    outside_values: np.ndarray | None = None,
) -> list[Block]:
    """IR rows per agent (module docstring); ``outside_values`` is ``(n_agents, n_nodes)`` or ``None``."""
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
                    outside[i][own] + (0.0 if outside_values is None else outside_values[i][nodes]),
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
            floor = np.full(hists.size, outside[i][t])
            if outside_values is not None:
                floor = floor + (w * outside_values[i][nodes]).sum(axis=1)
            blocks.append(
                Block(
                    "ir",
                    hists.size,
                    np.repeat(np.arange(hists.size), m),
                    variables.U(i, nodes).reshape(-1),
                    w.reshape(-1),
                    floor,
                    np.full(hists.size, np.inf),
                    {"agent": i, "hist": hists, "type": t},
                )
            )
    return blocks

r"""Budget rows (Lamba 2022, Definitions 3-5; design.md section 2).

:math:`\Pi(h) = \sum_\theta P(\theta|h) B(h,\theta)` where ``B`` is defined by the recursion rows.

``"ex_ante"``: :math:`\Pi(\text{root}) \ge 0`; ``"interim"``: :math:`\Pi(h) \ge 0` at every history;
``"ex_post"``: :math:`\sum_i x_i(h,\theta) = 0` at every node; ``"none"``: no row. Every row is sparse: the
coupling over a subtree is carried by the ``B`` recursion, never by a dense row.
"""

from __future__ import annotations

import numpy as np

from ..lp import Block, Variables

BUDGET_MODES = ("ex_ante", "interim", "ex_post", "none")


def surplus_coefficients(variables: Variables, hists: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triplets ``(local row, column, value)`` of :math:`\\Pi(h)` for the given histories."""
    space = variables.space
    k = space.env.n_profiles
    bel = space.beliefs()[hists]
    nodes = hists[:, None] * k + np.arange(k)
    rows = np.repeat(np.arange(hists.size), k)
    return rows, variables.B(nodes).reshape(-1), bel.reshape(-1)


def budget_blocks(variables: Variables, mode: str = "interim") -> list[Block]:
    if mode not in BUDGET_MODES:
        raise ValueError(f"budget must be one of {BUDGET_MODES}, got {mode!r}")
    space = variables.space
    if mode == "none":
        return []
    if mode == "ex_post":
        n = space.env.n_agents
        nodes = np.arange(space.n_nodes, dtype=np.int64)
        rows = np.tile(nodes, n)
        cols = np.concatenate([variables.x(i, nodes) for i in range(n)])
        zeros = np.zeros(nodes.size)
        return [
            Block(
                "budget",
                nodes.size,
                rows,
                cols,
                np.ones(cols.size),
                zeros,
                zeros.copy(),
                {"node": nodes, "hist": nodes // space.env.n_profiles},
            )
        ]
    hists = np.arange(1 if mode == "ex_ante" else space.n_hist, dtype=np.int64)
    rows, cols, vals = surplus_coefficients(variables, hists)
    nz = vals != 0
    return [
        Block(
            "budget",
            hists.size,
            rows[nz],
            cols[nz],
            vals[nz],
            np.zeros(hists.size),
            np.full(hists.size, np.inf),
            {"hist": hists},
        )
    ]

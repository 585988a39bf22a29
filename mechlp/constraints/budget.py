r"""Budget rows (Lamba 2022, Definitions 3-5 and the saving intermediary of section 8; docs/design.md section 6.6).

:math:`\Pi(h) = \sum_\theta P(\theta|h) B(h,\theta)` where ``B`` is defined by the recursion rows.

``"ex_ante"``: :math:`\Pi(\text{root}) \ge 0`; ``"interim"``: :math:`\Pi(h) \ge 0` at every history;
``"ex_post"``: :math:`\sum_i x_i(h,\theta) = 0` at every node; ``"none"``: no row; ``"savings"``: the
intermediary keeps an account and may carry past surplus forward (below). Every row is sparse: the coupling over a
subtree is carried by the ``B`` recursion (and, for savings, by the ``Q`` recursion), never by a dense row.

Savings
-------
Lamba (2022, section 8) notes that interim balance does not let the intermediary draw on past surplus. Let
:math:`X(g) = \sum_i x_i(g)` be the designer's collection at node ``g``. Along a path of report profiles the
designer's **account** earns the interest rate :math:`1/\delta - 1`:

.. math::
   A(\text{root}) = 0, \qquad A(h') = \frac{A(h) + X(g)}{\delta} \quad (h' \text{ the history after node } g
   \text{ of } h),

and the savings constraint asks the intermediary to stay **solvent** at every history: account plus expected
continuation surplus,

.. math::
   R(h) = A(h) + \Pi(h) \ge 0 \quad \text{for every history (every path, reachable or not)}.

:math:`\delta^{t-1} R(h)` is the designer's expected total discounted surplus from period 1, given the realised
path up to ``h`` (past collections realised, future ones expected). Past surplus carried into ``h`` (``A > 0``)
can cover a negative continuation; past deficits (``A < 0``) must be recovered later. ``R`` lives on paths, not on
histories of a Markov space, so the rows use the worst-case continuation instead. With

.. math::
   Q^*(h) = \min\Big\{ \Pi(h),\; \min_{\theta} \big[ X(h,\theta) + \delta\, Q^*(\text{child}(h,\theta)) \big] \Big\}

(the minimum over the paths starting at ``h`` and the period at which they stop, of the realised discounted
collections plus the discounted continuation surplus at the stopping history; no child term after the last
period), savings holds iff :math:`Q^*(\text{root}) \ge 0`. :math:`Q^*` is the largest fixed point of a monotone
contraction, so every ``Q`` with

.. math::
   Q(h) \le \Pi(h), \qquad Q(h) \le X(g) + \delta Q(\text{child}(g)) \;\; (g \text{ a node of } h
   \text{ with a continuation}), \qquad Q(\text{root}) \ge 0

satisfies :math:`Q \le Q^*`, and :math:`Q^*` satisfies them when savings holds: the LP gets one free column
``Q(h)`` per history and these rows (``K + 1``, ``n + 2`` and ``1`` nonzeros).

Ordering: interim (every :math:`\Pi(h) \ge 0`) does not imply savings for a *given* mechanism (a past deficit
can make :math:`R < 0`), but as implementability notions ex post :math:`\Leftrightarrow` interim (Lamba 2022,
Theorem 1) :math:`\Rightarrow` savings (ex post balance has :math:`A = 0`, :math:`\Pi = 0`) :math:`\Rightarrow`
ex ante (:math:`R(\text{root}) = \Pi(\text{root})`). With Bayesian IC, interim participation, two or more agents
and beliefs of full support, savings is even *equivalent* to ex ante: payments can be re-arranged across the
profiles of a history without changing any interim payment (docs/design.md section 4.5), which sets
:math:`B(h,\theta) = \Pi(h)` and hence :math:`R(h') = R(h)/\delta = \dots \propto \Pi(\text{root})`. It differs
from ex ante when payments are constrained pointwise (ex post IC or IR, transfer limits, one agent).
"""

from __future__ import annotations

import numpy as np

from mechlp.lp.program import Block, Variables
from mechlp.model.beliefs import joint_beliefs
from mechlp.model.question import parse_notion


def surplus_coefficients(variables: Variables, hists: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triplets ``(local row, column, value)`` of :math:`\\Pi(h)` for the given histories."""
    space = variables.space
    k = space.env.n_profiles
    bel = joint_beliefs(space, hists=hists)
    nodes = hists[:, None] * k + np.arange(k)
    rows = np.repeat(np.arange(hists.size), k)
    return rows, variables.B(nodes).reshape(-1), bel.reshape(-1)


def savings_blocks(variables: Variables) -> list[Block]:
    r"""The savings rows (module docstring) on the extra columns ``Q`` (one per history).

    ``Q(h) - \Pi(h) <= 0`` per history, ``Q(h) - \sum_i x_i(g) - \delta Q(\text{child}(g)) <= 0`` per node with a
    continuation, and ``Q(root) >= 0``.
    """
    space = variables.space
    env = space.env
    k, n = env.n_profiles, env.n_agents
    hists = np.arange(space.n_hist, dtype=np.int64)
    rows, cols, vals = surplus_coefficients(variables, hists)
    keep = vals != 0
    cap = Block(
        "budget",
        hists.size,
        np.concatenate([hists, rows[keep]]),
        np.concatenate([variables.extra("Q", hists), cols[keep]]),
        np.concatenate([np.ones(hists.size), -vals[keep]]),
        np.full(hists.size, -np.inf),
        np.zeros(hists.size),
        {"hist": hists},
    )
    g = np.flatnonzero(space.child_hist >= 0).astype(np.int64)
    local = np.arange(g.size, dtype=np.int64)
    path = Block(
        "budget",
        g.size,
        np.concatenate([local, local] + [local] * n),
        np.concatenate(
            [variables.extra("Q", g // k), variables.extra("Q", space.child_hist[g])]
            + [variables.x(i, g) for i in range(n)]
        ),
        np.concatenate([np.ones(g.size), np.full(g.size, -env.discount)] + [-np.ones(g.size)] * n),
        np.full(g.size, -np.inf),
        np.zeros(g.size),
        {"hist": g // k, "node": g},
    )
    root = Block(
        "budget",
        1,
        np.zeros(1, np.int64),
        variables.extra("Q", [0]),
        np.ones(1),
        np.zeros(1),
        np.full(1, np.inf),
        {"hist": 0},
    )
    return [cap, path, root]


def zero_sum_block(nodes: np.ndarray, cols: np.ndarray, n_agents: int, k: int) -> Block:
    """Ex post rows :math:`\\sum_i x_i(g) = 0`: ``cols`` lists each agent's payment columns of ``nodes`` in turn."""
    zeros = np.zeros(nodes.size)
    return Block(
        "budget",
        nodes.size,
        np.tile(nodes, n_agents),
        cols,
        np.ones(cols.size),
        zeros,
        zeros.copy(),
        {"node": nodes, "hist": nodes // k},
    )


def surplus_block(hists: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> Block:
    """Rows :math:`\\Pi(h) \\ge 0` from the triplets of :math:`\\Pi(h)` (one local row per entry of ``hists``)."""
    nz = vals != 0
    return Block(
        "budget",
        hists.size,
        rows[nz],
        cols[nz],
        vals[nz],
        np.zeros(hists.size),
        np.full(hists.size, np.inf),
        {"hist": hists},
    )


def budget_blocks(variables: Variables, mode: str = "interim") -> list[Block]:
    mode = parse_notion("budget", mode)
    space = variables.space
    if mode == "none":
        return []
    if mode == "savings":
        return savings_blocks(variables)
    if mode == "ex_post":
        n = space.env.n_agents
        nodes = np.arange(space.n_nodes, dtype=np.int64)
        cols = np.concatenate([variables.x(i, nodes) for i in range(n)])
        return [zero_sum_block(nodes, cols, n, space.env.n_profiles)]
    hists = np.arange(1 if mode == "ex_ante" else space.n_hist, dtype=np.int64)
    return [surplus_block(hists, *surplus_coefficients(variables, hists))]

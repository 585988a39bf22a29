r"""Rows with the allocation as LP variables (second best and optimal mechanisms; docs/design.md section 6.8).

The allocation :math:`p(a|g)` at every node ``g = (h, \theta)`` becomes a block of ``N * |A|`` extra columns
``"p"`` (column ``g * |A| + a``; see :func:`allocation_extras`). When no kernel depends on the action, beliefs and
the continuation terms do not depend on ``p``, and every family of docs/design.md section 6 is linear in
``(p, U, x, B)`` jointly:

Simplex rows (family ``"allocation"``)
    :math:`\sum_a p(a|g) = 1` at every node, with the column bounds :math:`0 \le p(a|g) \le 1`.

Recursion (Lamba 2022, eq. 3), the flow term moved to the left:
    .. math::
       U_i(g) + x_i(g) - \delta \sum_{\theta'} P(\theta'|\theta_g) U_i(g\theta')
       - \sum_a v_i(\theta_{g,i}, a)\, p(a|g) = 0.

IC (one-shot deviations, *all* misreports ``r != t``), the flow gain moved to the left:
    .. math::
       \bar U_i(t|h) - \bar U_i(r|h)
       - \delta \sum_m P(m|h) \sum_{\theta'} [P_t(\theta'|r,m) - P(\theta'|r,m)]\, U_i((h,(r,m))\theta')
       - \sum_m P(m|h) \sum_a [v_i(t,a) - v_i(r,a)]\, p(a|h,(r,m)) \;\ge\; 0

    (``"ex_post"``: the same pointwise in the others' profile ``m``, weights 1).

IR, budget and transfer limits do not involve the allocation and are used unchanged.

The builders reuse the fixed-allocation blocks of :mod:`mechlp.constraints.accounting` and
:mod:`mechlp.constraints.ic`: they zero the constant right-hand sides (the flow terms of the environment's
allocation) and append the coefficient blocks on the ``p`` columns.
"""

from __future__ import annotations

import numpy as np

from mechlp.constraints._common import AgentView
from mechlp.constraints.accounting import recursion_blocks
from mechlp.constraints.ic import ic_blocks
from mechlp.lp.program import Block, Variables
from mechlp.model.spaces import StateSpace

__all__ = [
    "ALLOCATION_IC_MODES",
    "allocation_extras",
    "allocation_columns",
    "check_action_free",
    "simplex_block",
    "allocation_recursion_blocks",
    "allocation_ic_blocks",
]

#: IC modes supported with allocation variables (``"local"`` is refused: the second best need not be monotone).
ALLOCATION_IC_MODES = ("bayesian", "ex_post")


def check_action_free(space: StateSpace) -> None:
    """Refuse environments where some kernel depends on the action: beliefs would then depend on ``p``
    (products of variables), and the rows would not be linear."""
    dependent = [ag.name for ag in space.env.agents if ag.action_dependent]
    if dependent:
        raise ValueError(
            f"allocation variables need kernels that ignore the action; the kernels of {dependent} depend on it "
            "(beliefs and continuation terms would multiply allocation and utility variables: not an LP)"
        )


def allocation_extras(space: StateSpace) -> dict[str, int]:
    """The extra-column block ``{"p": n_nodes * n_actions}`` for :class:`~mechlp.lp.program.Variables`."""
    return {"p": space.n_nodes * space.env.n_actions}


def allocation_columns(variables: Variables, nodes: np.ndarray | int, actions: np.ndarray | int) -> np.ndarray:
    """Columns of :math:`p(a|g)` (broadcast over ``nodes`` and ``actions``)."""
    n_act = variables.space.env.n_actions
    return variables.extra("p", np.asarray(nodes, dtype=np.int64) * n_act + np.asarray(actions, dtype=np.int64))


def simplex_block(variables: Variables) -> Block:
    r""":math:`\sum_a p(a|g) = 1` at every node (one row per node)."""
    space = variables.space
    n_act = space.env.n_actions
    nodes = np.arange(space.n_nodes, dtype=np.int64)
    cols = allocation_columns(variables, nodes[:, None], np.arange(n_act)[None, :]).reshape(-1)
    ones = np.ones(nodes.size)
    return Block(
        "allocation",
        nodes.size,
        np.repeat(nodes, n_act),
        cols,
        np.ones(cols.size),
        ones,
        ones.copy(),
        {"node": nodes, "hist": nodes // space.env.n_profiles},
    )


def allocation_recursion_blocks(variables: Variables) -> list[Block]:
    r"""The recursion rows with the flow :math:`\sum_a p(a|g) v_i(\theta_{g,i}, a)` on the ``p`` columns.

    Row ``i * N + g`` of the ``recursion_U`` block of :func:`~mechlp.constraints.accounting.recursion_blocks`
    gets the coefficients :math:`-v_i(\theta_{g,i}, a)` on :math:`p(a|g)` and right-hand side 0.
    """
    space = variables.space
    env = space.env
    n_nodes, n_act = space.n_nodes, env.n_actions
    util, designer = recursion_blocks(variables)
    nodes = np.arange(n_nodes, dtype=np.int64)
    types = env.profile_types()[space.node_profile]  # (N, n)
    pcols = allocation_columns(variables, nodes[:, None], np.arange(n_act)[None, :])  # (N, A)
    rows, cols, vals = [util.rows], [util.cols], [util.vals]
    for i, ag in enumerate(env.agents):
        v = ag.valuation[types[:, i]]  # (N, A)
        nz = v != 0
        rows.append(np.broadcast_to((i * n_nodes + nodes)[:, None], v.shape)[nz])
        cols.append(pcols[nz])
        vals.append(-v[nz])
    zeros = np.zeros(util.n_rows)
    util = Block(
        util.family,
        util.n_rows,
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        zeros,
        zeros.copy(),
        dict(util.labels),
    )
    return [util, designer]


def allocation_ic_blocks(variables: Variables, views: list[AgentView], mode: str = "bayesian") -> list[Block]:
    r"""IC rows for every agent and *every* ordered pair ``t != r``, flow gains on the ``p`` columns.

    Bayesian row ``h``: coefficient :math:`-P(m|h)\,[v_i(t,a) - v_i(r,a)]` on :math:`p(a|h,(r,m))`;
    ex post row ``(h, m)``: coefficient :math:`-[v_i(t,a) - v_i(r,a)]`. Lower bounds become 0.
    """
    if mode not in ALLOCATION_IC_MODES:
        raise ValueError(
            f"ic must be one of {ALLOCATION_IC_MODES} with allocation variables, got {mode!r} "
            "(local IC is valid only for monotone allocations, which a second best need not be)"
        )
    space = variables.space
    k = space.env.n_profiles
    n_act = space.env.n_actions
    n_hist = space.n_hist
    hists = np.arange(n_hist, dtype=np.int64)
    fixed = iter(ic_blocks(variables, views, mode))
    out = []
    for view in views:
        val = space.env.agents[view.agent].valuation  # (K_i, A)
        m_count = view.n_others
        for t, r in view.type_pairs(local=False):
            blk = next(fixed)
            diff = val[t] - val[r]  # (A,)
            nodes_r = hists[:, None] * k + view.prof[r][None, :]  # (H, M)
            pcols = allocation_columns(variables, nodes_r[:, :, None], np.arange(n_act)[None, None, :])  # (H, M, A)
            if mode == "ex_post":
                row_of = np.arange(n_hist * m_count, dtype=np.int64).reshape(n_hist, m_count)
                coef = -np.broadcast_to(diff, (n_hist, m_count, n_act))
            else:
                row_of = np.repeat(hists[:, None], m_count, axis=1)
                coef = -view.others_belief[:, :, None] * diff[None, None, :]
            row_of = np.broadcast_to(row_of[:, :, None], pcols.shape)
            nz = coef != 0
            out.append(
                Block(
                    blk.family,
                    blk.n_rows,
                    np.concatenate([blk.rows, row_of[nz]]),
                    np.concatenate([blk.cols, pcols[nz]]),
                    np.concatenate([blk.vals, coef[nz]]),
                    np.zeros(blk.n_rows),
                    blk.upper.copy(),
                    dict(blk.labels),
                )
            )
    return out

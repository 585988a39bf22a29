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

The same LP in interim utilities (:func:`interim_allocation_program`)
    With Bayesian IC, interim or ex ante IR, an interim, ex ante or no budget notion and no transfer limits, every
    row depends on ``(U, x, B)`` only through the interim utilities :math:`\bar U_i(t|h)` and the expected welfare
    :math:`W(h)` (Lamba 2022, eq. 4; the rows of :mod:`mechlp.constraints.interim` with the flow gain on the
    ``p`` columns). Its columns are :math:`\bar U`, :math:`W` and :math:`p(a|g)` for the actions ``a >= 1``
    (:math:`p(0|g) = 1 - \sum_{a \ge 1} p(a|g)` is substituted, so with two actions no simplex row is left):

    .. math::
       \bar U_i(t|h) - \bar U_i(r|h) - \delta \sum_m P(m|h) \sum_{t'} [F_i(t'|t) - F_i(t'|r)]\,
       \bar U_i(t'|h(r,m)) - \sum_m P(m|h) \sum_a [v_i(t,a) - v_i(r,a)]\, p(a|h,(r,m)) \;\ge\; 0,

    .. math::
       W(h) - \delta \sum_\theta P(\theta|h) W(h\theta) - \sum_\theta P(\theta|h) \sum_a p(a|h,\theta)
       \sum_i v_i(\theta_i, a) = 0, \qquad W(h) - \sum_i \sum_t P_i(t|h) \bar U_i(t|h) \ge 0

    (the last for the budget's histories), and IR as the column bounds :math:`\bar U_i(t|h) \ge o_i(t)`.

    *Equivalence* (same optimal value as the LP over ``(U, x, B, p)``). Every row of that LP is the row above at
    :math:`\bar U_i(t|h) = \sum_m P(m|h) U_i(h,(t,m))`: with action-free independent kernels the others' next
    types after ``(r, m)`` have the belief of history ``h(r,m)``, so the continuation term sums out to the
    interim utilities there (docs/design.md section 6), and :math:`\Pi(h) = W(h) - \sum_i \sum_t P_i(t|h)
    \bar U_i(t|h)` (Lamba 2022, eq. 4). Conversely :math:`U_i(h,(t,m)) := \bar U_i(t|h)` with the transfers
    :math:`x_i(g) = \sum_a p(a|g) v_i(\theta_{g,i}, a) + \delta E[U_i|g] - U_i(g)` (free: no limits) satisfies
    every row of the ex post LP with the same objective (:func:`lift_interim`).

The builders reuse the fixed-allocation blocks of :mod:`mechlp.constraints.accounting` and
:mod:`mechlp.constraints.ic`: they zero the constant right-hand sides (the flow terms of the environment's
allocation) and append the coefficient blocks on the ``p`` columns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mechlp.constraints._common import AgentView
from mechlp.constraints.accounting import recursion_blocks
from mechlp.constraints.ic import ic_blocks
from mechlp.constraints.interim import interim_rows
from mechlp.lp.program import Block, MatrixSizes, Variables
from mechlp.model.beliefs import expected_continuation, joint_beliefs, others_beliefs
from mechlp.model.exact import Numbers
from mechlp.model.question import Question
from mechlp.model.spaces import StateSpace

__all__ = [
    "ALLOCATION_IC_MODES",
    "allocation_extras",
    "allocation_columns",
    "check_action_free",
    "simplex_block",
    "allocation_recursion_blocks",
    "allocation_ic_blocks",
    "InterimAllocationProgram",
    "interim_reducible",
    "interim_allocation_program",
    "lift_interim",
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


# ---------------------------------------------------------------------------------------------- interim form
def interim_reducible(question: Question) -> str | None:
    """``None`` when ``question`` has an interim formulation with allocation variables (module docstring), else
    the reason it has none (a sentence naming the notion or the limits)."""
    if question.ic != "bayesian":
        return f"ic {question.ic!r} is pointwise in the others' types (the interim formulation needs 'bayesian')"
    if question.ir not in ("interim", "ex_ante"):
        return f"ir {question.ir!r} is pointwise (the interim formulation needs 'interim' or 'ex_ante')"
    if question.budget not in ("interim", "ex_ante", "none"):
        return f"budget {question.budget!r} is not a row in interim utilities (needs 'interim', 'ex_ante' or 'none')"
    if question.has_limits:
        return "transfer limits bound the ex post transfers (the interim formulation has none)"
    return None


@dataclass
class InterimAllocationProgram(MatrixSizes):
    r"""The interim LP with allocation variables (module docstring), ``min cost @ z`` s.t.
    ``row_lower <= A z <= row_upper``, ``col_lower <= z <= col_upper``.

    Columns: agent ``i``'s :math:`\bar U_i(t|h)` at ``u_offsets[i] + h * K_i + t``; :math:`W(h)` at
    ``w_offset + h``; :math:`p(a|g)` (``a >= 1``) at ``p_offset + g * (A - 1) + a - 1``. Rows carry ``family``
    (``"ic"``, ``"welfare"``, ``"budget"``, ``"allocation"``) and the IC labels ``agent``, ``hist``, ``type``,
    ``misreport`` (``-1`` elsewhere). ``cost`` is set by the caller (zeros here).
    """

    space: StateSpace
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    cost: np.ndarray
    family: np.ndarray
    agent: np.ndarray
    hist: np.ndarray
    type: np.ndarray
    misreport: np.ndarray
    u_offsets: list[int]
    w_offset: int
    p_offset: int
    build_seconds: float = 0.0

    def restrict(self, keep: np.ndarray) -> InterimAllocationProgram:
        """The program with the rows ``keep`` (bool mask or indices) only; columns unchanged."""
        return InterimAllocationProgram(
            self.space,
            self.A[keep],
            self.row_lower[keep],
            self.row_upper[keep],
            self.col_lower,
            self.col_upper,
            self.cost,
            self.family[keep],
            self.agent[keep],
            self.hist[keep],
            self.type[keep],
            self.misreport[keep],
            self.u_offsets,
            self.w_offset,
            self.p_offset,
            self.build_seconds,
        )

    def u_col(self, agent: int, hist: np.ndarray | int, t: np.ndarray | int) -> np.ndarray:
        r"""Columns of :math:`\bar U_i(t|h)` (broadcast)."""
        k_i = self.space.env.agents[agent].n_types
        return self.u_offsets[agent] + np.asarray(hist, dtype=np.int64) * k_i + np.asarray(t, dtype=np.int64)

    def allocation(self, z: np.ndarray) -> np.ndarray:
        """``(n_nodes, n_actions)``: :math:`p(a|g)` of a solution, with :math:`p(0|g)` restored."""
        n_act = self.space.env.n_actions
        rest = z[self.p_offset : self.p_offset + self.space.n_nodes * (n_act - 1)].reshape(-1, n_act - 1)
        return np.column_stack([1.0 - rest.sum(axis=1), rest])

    def interim(self, z: np.ndarray) -> list[np.ndarray]:
        r"""Per agent, ``(n_hist, K_i)``: :math:`\bar U_i(t|h)` of a solution."""
        n_hist = self.space.n_hist
        out = []
        for i, ag in enumerate(self.space.env.agents):
            out.append(z[self.u_offsets[i] : self.u_offsets[i] + n_hist * ag.n_types].reshape(n_hist, ag.n_types))
        return out


def _action_terms(
    coef: np.ndarray, nodes: np.ndarray, rows: np.ndarray, p_offset: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Triplets of :math:`\sum_a c_a\, p(a|g)` with :math:`p(0|g) = 1 - \sum_{a \ge 1} p(a|g)` substituted:
    :math:`c_0 + \sum_{a \ge 1} (c_a - c_0)\, p(a|g)`.

    ``coef`` ``(..., A)``, ``nodes`` and ``rows`` broadcast to ``coef.shape[:-1]``. Returns ``(rows, cols, vals,
    const)`` with ``const[j]`` the summed constants :math:`c_0` of the local rows ``j`` (``bincount`` over
    ``rows``; length ``rows.max() + 1``).
    """
    n_act = coef.shape[-1]
    rows = np.broadcast_to(rows, coef.shape[:-1])
    nodes = np.broadcast_to(nodes, coef.shape[:-1])
    const = np.bincount(rows.reshape(-1), weights=coef[..., 0].reshape(-1))
    d = coef[..., 1:] - coef[..., :1]  # (..., A-1)
    cols = p_offset + nodes[..., None] * (n_act - 1) + np.arange(n_act - 1)
    r = np.broadcast_to(rows[..., None], d.shape)
    nz = d != 0
    return r[nz], cols[nz], d[nz], const


def interim_allocation_program(space: StateSpace, question: Question) -> InterimAllocationProgram:
    """Assemble the interim LP with allocation variables for ``question`` (module docstring).

    Raises ``ValueError`` with the reason of :func:`interim_reducible` when the question has no interim form,
    and as :func:`check_action_free`.
    """
    reason = interim_reducible(question)
    if reason is not None:
        raise ValueError(f"no interim formulation: {reason}")
    check_action_free(space)
    started = time.perf_counter()
    env = space.env
    n_hist, k, n_nodes, n_act = space.n_hist, env.n_profiles, space.n_nodes, env.n_actions
    nums = Numbers(env, exact=False)
    base = interim_rows(space, nums, "bayesian", question.ir, "none", list(question.outside))
    is_ic = base.family == "ic"
    ic_idx = np.flatnonzero(is_ic)
    n_ic = ic_idx.size
    a_base = sp.csr_matrix((base.vals.astype(float), (base.rows, base.cols)), shape=(base.n_rows, base.n_cols))
    a_ic = a_base[ic_idx]
    agent, hist, t_of, r_of = (base.agent[ic_idx], base.hist[ic_idx], base.type[ic_idx], base.misreport[ic_idx])
    w_offset = base.n_cols
    p_offset = w_offset + n_hist
    n_cols = p_offset + n_nodes * (n_act - 1)
    # IC: the flow gain -sum_m P(m|h) [v_i(t, a) - v_i(r, a)] p(a | h, (r, m)) on the p columns
    rows, cols, vals = [], [], []
    ic_const = np.zeros(n_ic)
    for i, ag in enumerate(env.agents):
        sel = np.flatnonzero(agent == i)
        if not sel.size:
            continue
        m_count = env.others_count(i)
        po = others_beliefs(space, i)  # (H, M)
        prof = env.profile_index(i, np.arange(ag.n_types)[:, None], np.arange(m_count)[None, :])  # (K_i, M)
        diff = ag.valuation[t_of[sel]] - ag.valuation[r_of[sel]]  # (n, A)
        coef = -po[hist[sel]][:, :, None] * diff[:, None, :]  # (n, M, A)
        nodes = hist[sel][:, None] * k + prof[r_of[sel]]  # (n, M)
        rr, cc, vv, const = _action_terms(coef, nodes, sel[:, None], p_offset)
        rows.append(rr)
        cols.append(cc)
        vals.append(vv)
        ic_const[: const.size] += const
    a_flow = sp.csr_matrix(
        (
            np.concatenate(vals or [np.zeros(0)]),
            (np.concatenate(rows or [np.zeros(0, int)]), np.concatenate(cols or [np.zeros(0, int)])),
        ),
        shape=(n_ic, n_cols),
    )
    a_ic = sp.hstack([a_ic, sp.csr_matrix((n_ic, n_cols - base.n_cols))], format="csr") + a_flow
    # welfare recursion: W(h) - delta sum P(theta|h) W(h theta) - sum P(theta|h) sum_a p(a|h,theta) sum_i v_i = 0
    hh = np.arange(n_hist)
    bel = joint_beliefs(space)  # (H, K)
    types = env.profile_types()
    total = sum(env.agents[i].valuation[types[:, i]] for i in range(env.n_agents))  # (K, A)
    child = np.asarray(space.child_hist).reshape(n_hist, k)
    live_h, live_s = np.nonzero(child >= 0)
    rr, cc, vv, const = _action_terms(
        -bel[:, :, None] * total[None], hh[:, None] * k + np.arange(k), hh[:, None], p_offset
    )
    w_rows = np.concatenate([hh, live_h, rr])
    w_cols = np.concatenate([w_offset + hh, w_offset + child[live_h, live_s], cc])
    w_vals = np.concatenate([np.ones(n_hist), -env.discount * bel[live_h, live_s], vv])
    a_w = sp.csr_matrix((w_vals, (w_rows, w_cols)), shape=(n_hist, n_cols))
    w_rhs = -np.pad(const, (0, n_hist - const.size))
    blocks = [a_ic, a_w]
    lower = [-ic_const, w_rhs]
    upper = [np.full(n_ic, np.inf), w_rhs.copy()]
    family = [np.full(n_ic, "ic"), np.full(n_hist, "welfare")]
    # budget: W(h) - sum_i sum_t P_i(t|h) Ubar_i(t|h) >= 0 at the budget's histories
    bh = hh if question.budget == "interim" else hh[:1] if question.budget == "ex_ante" else hh[:0]
    if bh.size:
        b_rows, b_cols, b_vals = [np.arange(bh.size)], [w_offset + bh], [np.ones(bh.size)]
        for i, ag in enumerate(env.agents):
            b_rows.append(np.repeat(np.arange(bh.size), ag.n_types))
            b_cols.append(base.col(i, np.repeat(bh, ag.n_types), np.tile(np.arange(ag.n_types), bh.size)))
            b_vals.append(-base.marginals[i][bh].reshape(-1))
        blocks.append(
            sp.csr_matrix(
                (np.concatenate(b_vals), (np.concatenate(b_rows), np.concatenate(b_cols))), shape=(bh.size, n_cols)
            )
        )
        lower.append(np.zeros(bh.size))
        upper.append(np.full(bh.size, np.inf))
        family.append(np.full(bh.size, "budget"))
    if n_act > 2:  # sum_{a >= 1} p(a|g) <= 1
        g = np.repeat(np.arange(n_nodes), n_act - 1)
        blocks.append(sp.csr_matrix((np.ones(g.size), (g, p_offset + np.arange(g.size))), shape=(n_nodes, n_cols)))
        lower.append(np.full(n_nodes, -np.inf))
        upper.append(np.ones(n_nodes))
        family.append(np.full(n_nodes, "allocation"))
    n_other = sum(b.shape[0] for b in blocks[1:])
    col_lower = np.full(n_cols, -np.inf)
    col_upper = np.full(n_cols, np.inf)
    col_lower[p_offset:], col_upper[p_offset:] = 0.0, 1.0
    ir_entry = base.family[base.rows] == "ir"  # IR rows are single entries 1 * Ubar >= o: column bounds
    col_lower[base.cols[ir_entry]] = base.b[base.rows[ir_entry]].astype(float)
    minus = np.full(n_other, -1, dtype=np.int64)
    return InterimAllocationProgram(
        space,
        sp.vstack(blocks, format="csr"),
        np.concatenate(lower),
        np.concatenate(upper),
        col_lower,
        col_upper,
        np.zeros(n_cols),
        np.concatenate(family),
        np.concatenate([agent, minus]),
        np.concatenate([hist, minus]),
        np.concatenate([t_of, minus]),
        np.concatenate([r_of, minus]),
        [int(o) for o in base.col_offsets],
        int(w_offset),
        int(p_offset),
        time.perf_counter() - started,
    )


def lift_interim(space: StateSpace, interim: list[np.ndarray], allocation: np.ndarray) -> np.ndarray:
    r"""Transfers ``(n_agents, n_nodes)`` implementing the interim utilities ``interim`` (per agent ``(n_hist,
    K_i)``) with the node allocation ``allocation``: :math:`U_i(h,(t,m)) = \bar U_i(t|h)` and
    :math:`x_i(g) = \sum_a p(a|g) v_i(\theta_{g,i}, a) + \delta E[U_i|g] - U_i(g)` (module docstring)."""
    env = space.env
    types = env.profile_types()[space.node_profile]  # (N, n)
    hist_of = np.arange(space.n_nodes) // env.n_profiles
    u = np.stack([interim[i][hist_of, types[:, i]] for i in range(env.n_agents)])  # (n, N)
    flow = np.stack([np.einsum("ga,ga->g", allocation, ag.valuation[types[:, i]]) for i, ag in enumerate(env.agents)])
    return flow + env.discount * expected_continuation(space, u) - u

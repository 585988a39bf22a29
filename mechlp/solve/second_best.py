r"""Second-best and revenue-maximising dynamic mechanisms: the allocation as LP variables.

The mathematics is in docs/design.md section 7.3.

With kernels that ignore the action, the allocation :math:`p(a|h,\theta)` enters every constraint of docs/design.md
section 6 linearly (:mod:`mechlp.constraints.allocation`), so the designer can choose allocation and transfers
in one LP over ``(p, U, x, B)``:

``second_best(env, objective="welfare", budget=...)``
    Lamba (2022, section 8, open question): maximise the expected discounted total welfare from the root,

    .. math::
       W = E\Big[\sum_{t \ge 1} \delta^{t-1} \sum_i \sum_a p(a|h^{t-1},\theta^t)\, v_i(\theta_i^t, a)\Big]
         = \sum_\theta P(\theta|\text{root}) \Big[\sum_i U_i(\text{root}, \theta) + B(\text{root}, \theta)\Big]

    (the second form follows by adding the recursions of ``U_i`` and ``B``: transfers cancel), subject to IC
    over all misreports, IR, a budget notion and transfer limits. ``objective="gains_from_trade"`` reports
    :math:`W - W_0`, where :math:`W_0` is the welfare of always taking the first action (no trade in
    :func:`~mechlp.model.environment.bilateral_trade`, where :math:`W_0 = 0`); it is the same LP.
``optimal_mechanism(env)``
    Yoon (2021, section 2), Battaglini (2005): maximise the designer's revenue
    :math:`\Pi(\text{root}) = \sum_\theta P(\theta|\text{root}) B(\text{root},\theta)` subject to IC and IR
    (no budget rows).

Every answer carries the optimal allocation per node, the mechanism (transfers *and* allocation) re-checked by
the independent verifier :func:`mechlp.audit.verifier.verify`, the efficient (first-best) welfare for comparison,
and a dual certificate (:func:`dual_certificate`): the solver's row and column duals, the dual objective (an
upper bound on the optimal value by weak duality) and float checks of dual feasibility.

Exact optimality (``certify=True``, the default; :func:`exact_optimality`)
---------------------------------------------------------------------------
``status="optimal"`` needs an exact proof, a :class:`mechlp.audit.verifier.OptimalityCertificate` checked by
:func:`mechlp.audit.verifier.check_optimality` within ``tolerances.OPTIMALITY_GAP``:

* *lower bound*: the objective of an exactly verified mechanism. The interim program is solved again with every
  IC, IR and budget row tightened by ``CERTIFICATE_MARGIN``; transfers and allocation are built from that
  solution in rationals (:func:`_exact_mechanism`) and moved toward the float optimum's,
  :math:`(1 - 2^{-j}) M^* + 2^{-j} M_\epsilon` for the largest ``j`` that still passes
  :func:`mechlp.audit.verifier.verify` with ``exact=True`` (the allocation as given);
* *upper bound*: the LP's duals made exact on the verifier's rows (:func:`_exact_multipliers`: IC and budget
  duals as their floats, the rounding repaired through the IR, budget and IC multipliers level by level on a
  tree, or by the exact vertex on the float support on a Markov space or tail), whose Lagrangian has exactly zero
  transfer coefficients; its maximum over all node allocations is the weak-duality bound
  (:func:`mechlp.audit.verifier.check_dual_bound`).

The LP is then solved with HiGHS feasibility tolerances ``tolerances.CERTIFY_SOLVER`` (with the defaults its
"optimal" basis can be 1e-7 .. 1e-5 short: the USSTP, alpha 0.9, delta 0.3, on a 7-period tree, 1.5e-5). Ex post
balance is proved on its interim relaxation (dual) with a primal rebalanced exactly (Lamba 2022, Proposition
1). Not covered, with status ``"not_proved"`` and the reason in ``optimality_note``: ex post IC or IR, transfer
limits, savings, the cvxpy backend, ``certify=False`` and learning models (the realised-action LP).

Rows and formulations (issue #12: the dense IC rows over all misreports dominate the solve)
-------------------------------------------------------------------------------------------
``formulation="interim"`` (the default ``"auto"`` picks it whenever the question allows: Bayesian IC, interim or
ex ante IR, an interim, ex ante or no budget, no transfer limits) solves the same LP in interim utilities
(:func:`mechlp.constraints.allocation.interim_allocation_program`, where its equivalence is proved); the
transfers are then rebuilt by :func:`mechlp.constraints.allocation.lift_interim`. ``"ex_post"`` is the LP over
``(U, x, B, p)`` of :func:`build_allocation_lp`.

``rows="generated"`` (the default ``"auto"`` picks it with the interim formulation unless every agent has at
most two types, where the local rows are all rows) is constraint generation: solve with the IC rows of adjacent
misreports ``|t - r| = 1`` only (those that bind under FOSD kernels and monotone allocations, Lamba 2022 appendix
9.1), evaluate every IC row at the solution, add the violated ones (by more than ``tolerances.SEPARATION``),
re-solve, until none is violated. This is valid for every model: each LP is a relaxation of the full one, so its
optimum is an upper bound, and the last solution satisfies every row of the full LP, so it is optimal for it (the
dual certificate of the last LP, extended by zero multipliers on the rows left out, is dual feasible for the full
LP with the same bound). It ends after finitely many rounds (each round adds at least one of finitely many rows);
without the FOSD structure it only takes more rounds. Each round is a cold solve through
:func:`mechlp.backends.solve_lp`: in interim utilities the local LP solves in a fraction of the full one's
time, while over ``(U, x, B, p)`` the re-solves cost more than the rows they save, so ``"auto"`` imposes all rows
there. ``rows="all"`` imposes every row at once; ``formulation="ex_post", rows="all"`` is the original path. The
answer is verified by :func:`mechlp.audit.verifier.verify` over all misreports in every case, and
:attr:`SecondBestResult.method` records the formulation, rows, rounds and row counts.

Scope: on the Markov space (infinite horizon) the allocation is chosen per (previous report profile, current
profile), i.e. among *Markov* mechanisms; on a history tree it is fully history dependent. Revenue-optimal
mechanisms are history dependent in general (Battaglini 2005), so ``objective="revenue"`` on an infinite horizon
(no ``space`` or ``horizon`` given) searches the depth of history dependence by default (``tail=None`` resolves to
``tail="auto"``, :func:`second_best`) and reports the best Markov value beside the answer; the other objectives
default to the Markov space. The objective weighs
nodes by their probability from the root, so the allocation at nodes of probability zero is arbitrary (but still
IC: every row is imposed at every history). Kernels that depend on the action (learning models) are solved on the
tree of histories that record the realised actions (:func:`mechlp.solve.learning.second_best_learning`: the LP
in occupation measures) when the horizon is finite or ``horizon`` is given; on an infinite horizon without
``horizon`` they are refused (the realised-action tree has no Markov space: beliefs depend on the last action, and
the history count grows as :math:`(KA)^T`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from mechlp.audit.verifier import ImpossibilityCertificate, OptimalityCertificate, check_optimality
from mechlp.backends import solve_lp
from mechlp.backends.base import SolverOutput, check_backend
from mechlp.constraints import AgentView, budget_blocks, ir_blocks, transfer_bounds
from mechlp.constraints.allocation import (
    ALLOCATION_IC_MODES,
    InterimAllocationProgram,
    allocation_columns,
    allocation_extras,
    allocation_ic_blocks,
    allocation_recursion_blocks,
    check_action_free,
    interim_allocation_program,
    interim_reducible,
    lift_interim,
    simplex_block,
)
from mechlp.constraints.interim import interim_rows
from mechlp.lp.program import LABEL_FIELDS, LinearProgram, RowLabels, Variables, assemble
from mechlp.model import tolerances
from mechlp.model.beliefs import continuation_values, joint_beliefs, marginal_beliefs
from mechlp.model.environment import Environment
from mechlp.model.exact import Numbers, solve_consistent, to_fractions
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question, check_choice
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, StateSpace, space_for
from mechlp.model.transfers import rebalance, transfers_from_interim
from mechlp.solve.learning import LearningResult, second_best_learning
from mechlp.solve.result import Result, attach_verified, lp_result

__all__ = [
    "FORMULATIONS",
    "OBJECTIVES",
    "ROWS",
    "DualCertificate",
    "SecondBestResult",
    "build_allocation_lp",
    "default_tail",
    "dual_certificate",
    "efficient_welfare",
    "optimal_mechanism",
    "second_best",
    "welfare",
]

OBJECTIVES = ("welfare", "gains_from_trade", "revenue")
#: ``formulation`` of :func:`second_best` (module docstring).
FORMULATIONS = ("auto", "interim", "ex_post")
#: ``rows`` of :func:`second_best` (module docstring).
ROWS = ("auto", "generated", "all")

#: Dual feasibility tolerance of :func:`dual_certificate` (residuals and sign violations above it fail).
DUAL_TOL = tolerances.DUAL


# ---------------------------------------------------------------------------------------------- values
def _root_weights(space: StateSpace) -> np.ndarray:
    """:math:`P(\\theta|\\text{root})` for the root nodes ``0..K-1``."""
    return joint_beliefs(space, hists=[0])[0]


def welfare(space: StateSpace, allocation: np.ndarray) -> float:
    r"""Expected discounted welfare from the root, :math:`E[\sum_t \delta^{t-1} \sum_i v_i]`, of a node allocation
    ``(n_nodes, n_actions)`` (by the recursion of :func:`mechlp.model.mechanism.continuation_values`)."""
    env = space.env
    types = env.profile_types()[space.node_profile]
    flow = sum(np.einsum("ga,ga->g", allocation, ag.valuation[types[:, i]]) for i, ag in enumerate(env.agents))
    vals = continuation_values(space, flow[None, :])[0]
    return float(_root_weights(space) @ vals[: env.n_profiles])


def efficient_welfare(space: StateSpace) -> tuple[float, np.ndarray]:
    """The first best: ``(welfare, allocation)`` of the rule maximising :math:`\\sum_i v_i` at every node
    (ties to the first action), ignoring incentives and budgets."""
    env = space.env
    types = env.profile_types()
    total = sum(ag.valuation[types[:, i]] for i, ag in enumerate(env.agents))  # (K, A)
    best = np.zeros_like(total)
    best[np.arange(env.n_profiles), np.argmax(total, axis=1)] = 1.0
    alloc = best[space.node_profile]
    return welfare(space, alloc), alloc


def _status_quo_welfare(space: StateSpace) -> float:
    alloc = np.zeros((space.n_nodes, space.env.n_actions))
    alloc[:, 0] = 1.0
    return welfare(space, alloc)


# ---------------------------------------------------------------------------------------------- LP
def _parse_question(env: Environment, options: dict) -> Question:
    """The question with allocation variables: IC over all misreports (local IC is valid only for monotone
    allocations, which the second best need not be)."""
    try:
        return Question.parse(env, **options, allowed={"ic": ALLOCATION_IC_MODES})
    except ValueError as exc:
        if options.get("ic") == "local":
            raise ValueError(
                f"{exc}: local IC is valid only for monotone allocations, which the second best need not be"
            ) from None
        raise


def build_allocation_lp(
    space: StateSpace,
    question: Question | None = None,
    *,
    objective: str = "welfare",
    **options,
) -> LinearProgram:
    r"""Assemble the LP over ``(U, x, B, p[, Q])`` (see :mod:`mechlp.constraints.allocation`).

    The cost (HiGHS minimises) is ``-W`` for ``"welfare"`` / ``"gains_from_trade"`` and :math:`-\Pi(\text{root})`
    for ``"revenue"``, both on the root nodes only (module docstring). Allocation columns are bounded to
    ``[0, 1]``, transfers by ``limits``. ``question`` is the parsed question; without it ``options`` (``ic``,
    ``ir``, ``budget``, ``outside_option``, ``limits``) are parsed here.
    """
    check_choice("objective", objective, OBJECTIVES)
    q = question if question is not None else _parse_question(space.env, options)
    ic, ir, budget = q.ic, q.ir, q.budget
    check_action_free(space)
    started = time.perf_counter()
    extras = allocation_extras(space)
    if budget == "savings":
        extras["Q"] = space.n_hist
    variables = Variables(space, extras)
    env = space.env
    views = [AgentView(space, i) for i in range(env.n_agents)]
    blocks = allocation_recursion_blocks(variables)
    blocks.append(simplex_block(variables))
    blocks += allocation_ic_blocks(variables, views, ic)
    blocks += ir_blocks(variables, views, list(q.outside), ir)
    blocks += budget_blocks(variables, budget)
    lo, hi = transfer_bounds(variables, q.limits)
    nodes = np.arange(space.n_nodes)
    pcols = allocation_columns(variables, nodes[:, None], np.arange(env.n_actions)[None, :]).reshape(-1)
    lo[pcols], hi[pcols] = 0.0, 1.0
    root = np.arange(env.n_profiles)
    w = _root_weights(space)
    cost = np.zeros(variables.n_cols)
    cost[variables.B(root)] -= w
    if objective != "revenue":
        for i in range(env.n_agents):
            cost[variables.U(i, root)] -= w
    return assemble(variables, blocks, cost, lo, hi, started=started)


def interim_cost(program: InterimAllocationProgram, objective: str = "welfare") -> np.ndarray:
    r"""The cost of the interim program (HiGHS minimises): :math:`-W(\text{root})` for ``"welfare"`` /
    ``"gains_from_trade"``, :math:`-\Pi(\text{root}) = -W(\text{root}) + \sum_i \sum_t P_i(t|\text{root})
    \bar U_i(t|\text{root})` for ``"revenue"`` (Lamba 2022, eq. 4), as :func:`build_allocation_lp`."""
    check_choice("objective", objective, OBJECTIVES)
    cost = np.zeros(program.n_cols)
    cost[program.w_offset] = -1.0
    if objective == "revenue":
        for i, ag in enumerate(program.space.env.agents):
            cost[program.u_col(i, 0, np.arange(ag.n_types))] += marginal_beliefs(program.space)[i][0]
    return cost


def _restrict_lp(lp: LinearProgram, a_csr, keep: np.ndarray) -> LinearProgram:
    """``lp`` with the rows ``keep`` (bool mask) only (``a_csr``: ``lp.A`` as CSR)."""
    lab = lp.labels
    labels = RowLabels(lab.families, *(getattr(lab, f)[keep] for f in ("family", *LABEL_FIELDS)))
    return LinearProgram(
        lp.variables,
        a_csr[keep].tocsc(),
        lp.row_lower[keep],
        lp.row_upper[keep],
        lp.col_lower,
        lp.col_upper,
        lp.cost,
        labels,
        lp.build_seconds,
    )


@dataclass
class _Solved:
    """What :func:`_solve_rows` hands back: the last solver output, the LP it solved, and the method record."""

    out: SolverOutput
    program: Any
    method: dict
    solve_seconds: float
    separate_seconds: float


def _solve_rows(
    program: Any,
    ic_mask: np.ndarray,
    local_mask: np.ndarray,
    rows: str,
    restrict,
    backend: str,
    solver_options: dict,
) -> _Solved:
    """Solve ``program`` with every row (``rows="all"``) or by constraint generation (module docstring).

    ``ic_mask`` marks the IC rows, ``local_mask`` the adjacent-misreport ones; ``restrict(keep)`` returns the
    program with the rows ``keep``. Separation evaluates every IC row of ``program`` at the solution in one
    sparse product.
    """
    n_ic = int(ic_mask.sum())
    method = {"rows": rows, "rounds": 1, "ic_rows": n_ic, "ic_rows_all": n_ic, "added": []}
    if rows == "all":
        out = solve_lp(program, backend, **solver_options)
        return _Solved(out, program, method, out.solve_seconds, 0.0)
    a = program.A.tocsr()
    ic_rows = np.flatnonzero(ic_mask)
    a_ic = a[ic_rows]
    lower_ic = program.row_lower[ic_rows]
    keep = ~ic_mask | local_mask
    solve_s = separate_s = 0.0
    rounds = 0
    while True:
        sub = restrict(a, keep)
        out = solve_lp(sub, backend, **solver_options)
        rounds += 1
        solve_s += out.solve_seconds
        if out.status != "optimal":  # infeasible: so is the full LP (a relaxation); other statuses as they come
            break
        t0 = time.perf_counter()
        slack = a_ic @ out.x - lower_ic
        bad = ic_rows[(slack < -tolerances.SEPARATION * (1.0 + np.abs(lower_ic))) & ~keep[ic_rows]]
        separate_s += time.perf_counter() - t0
        method["added"].append(int(bad.size))
        if not bad.size:
            break
        keep[bad] = True
    method.update(rounds=rounds, ic_rows=int(keep[ic_rows].sum()))
    return _Solved(out, sub, method, solve_s, separate_s)


# ---------------------------------------------------------------------------------------------- duals
@dataclass
class DualCertificate:
    r"""Weak-duality certificate of an LP optimum, checked in floats.

    For ``min c^T z`` s.t. ``L <= A z <= U``, ``l <= z <= u`` and any ``(y, d)`` with :math:`c = A^T y + d`,

    .. math::
       c^T z \ge \sum_r \min(y_r L_r, y_r U_r) + \sum_j \min(d_j l_j, d_j u_j) =: g(y, d)

    for every feasible ``z`` (a positive multiplier needs a finite lower bound, a negative one a finite upper
    bound). ``y`` and ``d`` are the solver's row and column duals.

    Attributes
    ----------
    dual_objective : float
        :math:`g(y, d)` (multipliers below ``tol`` on an infinite side are dropped and counted in
        ``sign_violation``).
    bound : float
        The implied upper bound on the *maximised* objective (``-g`` plus the objective's constant).
    primal_value : float
        The objective value of the primal solution.
    gap : float
        ``bound - primal_value`` (zero up to rounding at an optimum: strong duality).
    residual : float
        :math:`\|c - A^T y - d\|_\infty`.
    sign_violation : float
        Largest multiplier on a side without a finite bound (must be ~0 for ``g`` to be a valid bound).
    ok : bool
        ``residual``, ``sign_violation`` and ``|gap|`` (relative to ``1 + |primal_value|``) at most ``tol``.
    source : str
        Where ``d`` came from: ``"solver"`` (HiGHS ``col_dual``) or ``"reduced costs"`` (``c - A^T y``).
    """

    dual_objective: float
    bound: float
    primal_value: float
    gap: float
    residual: float
    sign_violation: float
    ok: bool
    tol: float
    source: str
    row_dual: np.ndarray = field(repr=False, default=None)
    col_dual: np.ndarray = field(repr=False, default=None)

    def summary(self) -> str:
        return (
            f"dual bound {self.bound:.10g} vs primal {self.primal_value:.10g} (gap {self.gap:.2e}); "
            f"|c - A^T y - d| = {self.residual:.1e}, sign violation {self.sign_violation:.1e}: "
            + ("dual feasible" if self.ok else "NOT certified")
        )


def _side_min(mult: np.ndarray, lower: np.ndarray, upper: np.ndarray, tol: float) -> tuple[float, float]:
    """``sum min(m*lower, m*upper)`` over entries, and the largest ``|m|`` that needs an infinite side."""
    pos, neg = mult > 0, mult < 0
    need_inf = (pos & ~np.isfinite(lower)) | (neg & ~np.isfinite(upper))
    viol = float(np.abs(mult[need_inf]).max()) if need_inf.any() else 0.0
    ok_pos = pos & np.isfinite(lower)
    ok_neg = neg & np.isfinite(upper)
    total = float(mult[ok_pos] @ lower[ok_pos] + mult[ok_neg] @ upper[ok_neg])
    return total, viol


def dual_certificate(
    lp: LinearProgram, out: SolverOutput, constant: float = 0.0, tol: float = DUAL_TOL
) -> DualCertificate:
    """Check the solver's duals for ``lp`` (a maximisation written as ``min cost``; ``constant`` is added to the
    maximised objective) and return the :class:`DualCertificate`."""
    if out.x is None or out.row_dual is None:
        raise ValueError("no primal/dual solution to certify (the LP was not solved to optimality)")
    y = np.asarray(out.row_dual, dtype=float)
    aty = lp.A.T @ y
    if out.col_dual is not None:
        d, source = np.asarray(out.col_dual, dtype=float), "solver"
    else:
        d, source = lp.cost - aty, "reduced costs"
    residual = float(np.abs(lp.cost - aty - d).max(initial=0.0))
    rows, v_rows = _side_min(y, lp.row_lower, lp.row_upper, tol)
    cols, v_cols = _side_min(d, lp.col_lower, lp.col_upper, tol)
    g = rows + cols
    primal = float(-(lp.cost @ out.x)) + constant
    bound = -g + constant
    gap = bound - primal
    viol = max(v_rows, v_cols)
    ok = residual <= tol and viol <= tol and abs(gap) <= tol * (1.0 + abs(primal))
    return DualCertificate(g, bound, primal, gap, residual, viol, ok, tol, source, y, d)


# ---------------------------------------------------------------------------------------------- exact optimality
#: The HiGHS options set to ``tolerances.CERTIFY_SOLVER`` when :func:`second_best` certifies its answer.
_CERTIFY_OPTIONS = ("primal_feasibility_tolerance", "dual_feasibility_tolerance")

#: ``certify=True`` in :func:`second_best`: the primal mechanism is built with this margin on every row.
CERTIFICATE_MARGIN = tolerances.EXACT_MARGIN


#: The exact support solve of :func:`_exact_multipliers` (Markov spaces and tails) is tried up to this many
#: interim-utility columns (a dense Gauss-Jordan elimination in rationals).
DUAL_SUPPORT_COLUMNS = 600


def _exact_multipliers(
    program: InterimAllocationProgram, out: SolverOutput, q: Question, objective: str
) -> tuple[ImpossibilityCertificate | None, str]:
    r"""The LP's duals made exact over the verifier's rows, or ``(None, reason)``.

    The interim LP is ``min c^T z`` with ``c = A^T y + d`` at the optimum (HiGHS's row duals ``y``, reduced costs
    ``d``). Its IC rows are the verifier's Bayesian IC rows, its budget rows :math:`\Pi(h) \ge 0` the verifier's
    budget rows, and its IR rows the lower bounds of the :math:`\bar U` columns, whose multipliers are ``d``
    there. The transfers enter every row through the interim utilities only, so the verifier's Lagrangian has zero
    transfer coefficients (:func:`mechlp.audit.verifier.check_dual_bound`) exactly when the condition of every
    :math:`\bar U` column holds exactly, with the IC rows rebuilt exactly from the model's numbers
    (:func:`mechlp.constraints.interim.interim_rows`):

    .. math::
       R_i(t|h) := c_{i,h,t} - (A_{IC}^{\top} y_{IC})_{i,h,t} + P_i(t|h)\, \beta(h) = y_{IR}(i, h, t) \ge 0

    (``= 0`` where the question has no IR row). The welfare rows (equalities, free multipliers) and the simplex
    rows need no multipliers there. The IC and budget duals are taken exactly as their floats (negative noise set
    to zero) and the rounding is repaired:

    * on a history tree, one depth level at a time from the root: a budget row lifts a total deficit
      (:math:`\beta(h) \mathrel{+}= -\min_i \sum_t R_i(t|h)`, as :math:`\sum_t P_i(t|h) = 1`; without an IR
      row :math:`\beta(h) = 0`, since the residuals of a history then sum to it); then the deficits
      :math:`D_t = \max(-R_t, 0)` are covered by the types with :math:`R_u > 0` in proportion,
      :math:`y(u, t) \mathrel{+}= D_t R_u / \sum_{u'} \max(R_{u'}, 0)` (raising ``y(u, t)`` moves residual from
      ``u`` to ``t``), which leaves every residual nonnegative (and all zero when they sum to zero, as they do
      without an IR row). The added IC multipliers change the residuals of the children only, which the next
      level settles;
    * on a Markov space or a tree with a Markov tail (the children of the states are states), the exact vertex on
      the float solution's support: the column conditions solved exactly for the IC, IR and budget multipliers
      that are positive in floats (:func:`mechlp.model.exact.solve_consistent`; up to
      ``DUAL_SUPPORT_COLUMNS`` columns).
    """
    space = program.space
    env = space.env
    if out.row_dual is None:
        return None, "the solver returned no row duals"
    nums = Numbers(env, exact=True)
    n_hist = space.n_hist
    y = np.clip(np.asarray(out.row_dual, dtype=float), 0.0, None)  # lower-bound rows: y >= 0 (noise below 0 cut)
    base = interim_rows(space, nums, "bayesian", q.ir, "none", list(q.outside))
    ic_base = np.flatnonzero(base.family == "ic")
    k_max = max(env.type_counts)

    def keys(agent, hist, typ, mis):
        return ((np.asarray(agent) * n_hist + hist) * k_max + typ) * k_max + mis

    ic_prog = np.flatnonzero(program.family == "ic")
    key_base = keys(base.agent[ic_base], base.hist[ic_base], base.type[ic_base], base.misreport[ic_base])
    order = np.argsort(key_base)
    key_prog = keys(program.agent[ic_prog], program.hist[ic_prog], program.type[ic_prog], program.misreport[ic_prog])
    pos = np.searchsorted(key_base, key_prog, sorter=order)
    rows_of = ic_base[order[np.minimum(pos, order.size - 1)]]  # the exact row of each IC row of the program
    if not np.array_equal(key_base[order[np.minimum(pos, order.size - 1)]], key_prog):
        return None, "the program's IC rows do not match the exact rows (a defect: please report it)"
    y_exact = np.zeros(base.n_rows, dtype=object)
    y_exact[rows_of] = to_fractions(y[ic_prog])
    margs = base.marginals
    budget_rows = np.flatnonzero(program.family == "budget")
    bh = np.arange(n_hist) if q.budget == "interim" else np.arange(1) if q.budget == "ex_ante" else np.arange(0)
    if budget_rows.size != bh.size:
        return None, "the program's budget rows do not match the question (a defect: please report it)"
    has_budget = np.zeros(n_hist, dtype=bool)
    has_budget[bh] = True
    beta = np.zeros(n_hist, dtype=object)
    beta[bh] = to_fractions(y[budget_rows]) if bh.size else beta[bh]
    cost = np.zeros(base.n_cols, dtype=object)
    if objective == "revenue":  # min -Pi(root) = -W(root) + sum_i sum_t P_i(t|root) Ubar_i(t|root)
        for i, ag in enumerate(env.agents):
            cost[base.col(i, 0, np.arange(ag.n_types))] = margs[i][0]
    has_ir = np.zeros(n_hist, dtype=bool)
    has_ir[np.arange(n_hist) if q.ir == "interim" else np.arange(1)] = True
    cols = [base.col(i, np.arange(n_hist)[:, None], np.arange(ag.n_types)[None, :]) for i, ag in enumerate(env.agents)]

    def residuals() -> list[np.ndarray]:
        aty = base.transpose_times(y_exact, nums)
        return [cost[c] - aty[c] + margs[i] * beta[:, None] for i, c in enumerate(cols)]

    if space.kind == "tree":
        reason = _settle_by_level(space, base, y_exact, beta, has_ir, has_budget, residuals)
    else:  # IR and budget multipliers first (they move no other history's residuals), else the exact vertex
        reason = _settle_locally(space, beta, has_ir, has_budget, residuals, margs)
        if reason:
            reason = _support_vertex(
                space, base, y, program, rows_of, y_exact, beta, has_ir, bh, budget_rows, residuals
            )
    if reason:
        return None, reason
    res = residuals()
    for i, ag in enumerate(env.agents):  # loop over agents: the final conditions, exactly
        if bool((res[i][has_ir] < 0).any()) or bool((res[i][~has_ir] != 0).any()):
            bad = np.flatnonzero(
                ((res[i] < 0) & has_ir[:, None]).any(axis=1) | ((res[i] != 0) & ~has_ir[:, None]).any(axis=1)
            )
            return None, (
                f"the dual condition of {ag.name}'s interim utility at {space.describe_history(int(bad[0]))} cannot "
                "be met exactly with nonnegative multipliers"
            )
    options = {
        "ic": "bayesian",
        "ir": q.ir,
        "budget": q.budget,
        "question_budget": q.budget,
        "outside_option": list(q.outside),
    }
    ir_opts, budget_arr = ImpossibilityCertificate._empty(space, options)
    cert = ImpossibilityCertificate(space, options, Fraction(0), {}, ir_opts, budget_arr)
    for i in range(env.n_agents):
        cert.ir[i][:] = res[i][has_ir]
    if bh.size:
        cert.budget[:] = beta[bh]
    if bool((beta[~has_budget] != 0).any()):
        return None, "a budget multiplier at a history without a budget row (a defect: please report it)"
    ic_sel = np.flatnonzero(base.family == "ic")
    labels = zip(base.agent[ic_sel], base.type[ic_sel], base.misreport[ic_sel], strict=True)
    for key in sorted({(int(a), int(t), int(r)) for a, t, r in labels}):  # loop over (agent, type, misreport)
        at = (base.agent[ic_sel] == key[0]) & (base.type[ic_sel] == key[1]) & (base.misreport[ic_sel] == key[2])
        mine = ic_sel[at]
        vals = y_exact[mine]
        if bool((vals != 0).any()):
            cert._ic_array(key)[base.hist[mine]] = vals
    return cert, ""


def _settle_locally(space, beta, has_ir, has_budget, residuals, margs) -> str:
    """The repair of :func:`_exact_multipliers` through the IR and budget multipliers only (in place; their rows
    have no continuation terms, so no other history moves): ``""`` when every residual is then nonnegative where
    an IR row is and zero elsewhere, else why not."""
    env = space.env
    res = residuals()
    lift = np.zeros(space.n_hist, dtype=object)
    for i in range(env.n_agents):  # loop over agents: beta(h) >= max over types of -R / P_i(t|h)
        neg = res[i] < 0
        if bool((neg & ~has_ir[:, None]).any()) or bool(((res[i] != 0) & ~has_ir[:, None]).any()):
            return "a history without an IR row has a nonzero residual"
        probs = margs[i]
        if bool((neg & (probs == 0)).any()):
            return "a negative residual on a type of probability 0"
        need = np.where(neg, -res[i] / np.where(probs == 0, 1, probs), 0).max(axis=1)
        lift = np.maximum(lift, need)
    if bool(((lift != 0) & ~has_budget).any()):
        return "a negative IR multiplier at a history without a budget row"
    beta[:] = beta + lift
    return ""


def _settle_by_level(space, base, y_exact, beta, has_ir, has_budget, residuals) -> str:
    """The level-by-level repair of :func:`_exact_multipliers` on a history tree (in place); ``""`` or why not."""
    env = space.env
    n_hist = space.n_hist
    row_of = []  # per agent (H, K_i, K_i): the exact IC row of (h, t, r), -1 on the diagonal
    for i, ag in enumerate(env.agents):
        idx = np.full((n_hist, ag.n_types, ag.n_types), -1, dtype=np.int64)
        sel = np.flatnonzero((base.family == "ic") & (base.agent == i))
        idx[base.hist[sel], base.type[sel], base.misreport[sel]] = sel
        row_of.append(idx)
    depth = np.asarray(space.hist_period) - 1
    for d in range(int(depth.max()) + 1):  # loop over depth levels: a level's repair moves only its children
        hs = np.flatnonzero(depth == d)
        beta[hs[~has_ir[hs]]] = 0  # without an IR row the residuals of a history sum to beta(h): it must be 0
        res = residuals()
        lift = np.zeros(hs.size, dtype=object)
        for i in range(env.n_agents):  # a total deficit at an IR history is lifted by its budget row
            tot = res[i][hs].sum(axis=1)
            lift = np.where((tot < 0) & has_ir[hs], np.maximum(lift, -tot), lift)
        need = lift != 0
        if bool((need & ~has_budget[hs]).any()):
            h = int(hs[np.flatnonzero(need & ~has_budget[hs])[0]])
            return (
                f"the interim utilities at {space.describe_history(h)} need a negative IR multiplier in total and "
                "there is no budget row to lift it"
            )
        beta[hs] = beta[hs] + lift
        if bool(need.any()):
            res = residuals()
        for i, ag in enumerate(env.agents):  # loop over agents
            r_h = res[i][hs]  # (n, K_i)
            deficit = np.where(r_h < 0, -r_h, 0)
            supply = np.where(r_h > 0, r_h, 0)
            total = supply.sum(axis=1)
            share = supply / np.where(total != 0, total, 1)[:, None]  # each supplier's part of the deficits
            for u in range(ag.n_types):  # loop over type pairs: y(u, t) += D_t R_u / sum of supplies
                for t in range(ag.n_types):
                    if u == t:
                        continue
                    amount = deficit[:, t] * share[:, u]
                    live = np.flatnonzero(amount != 0)
                    if live.size:
                        np.add.at(y_exact, row_of[i][hs[live], u, t], amount[live])
    return ""


def _support_vertex(space, base, y, program, rows_of, y_exact, beta, has_ir, bh, budget_rows, residuals) -> str:
    """The exact vertex of :func:`_exact_multipliers` on the float support (in place); ``""`` or why not.

    The unknowns are the multipliers that are positive in floats (IC and budget duals, and the IR multipliers whose
    float residual is positive); the correction ``D`` of their rounded values solves ``M D = -R`` exactly (``M``
    the columns' coefficients of those unknowns, ``R`` the exact residuals of the conditions that must vanish),
    free unknowns set to zero, so the vertex stays next to the float solution."""
    env = space.env
    n_ubar = base.n_cols
    if n_ubar > DUAL_SUPPORT_COLUMNS:
        return (
            f"the exact support solve on a {space.kind} space is limited to {DUAL_SUPPORT_COLUMNS} interim-utility "
            f"columns (this one has {n_ubar})"
        )
    ic_prog = np.flatnonzero(program.family == "ic")
    scale = max(1.0, float(np.abs(y).max(initial=0.0)))
    thr = tolerances.FARKAS_ZERO * scale
    ic_rows = rows_of[y[ic_prog] > thr]  # exact IC rows on the support
    res0 = residuals()
    cols = [
        base.col(i, np.arange(space.n_hist)[:, None], np.arange(ag.n_types)[None, :]) for i, ag in enumerate(env.agents)
    ]
    ir_cols = np.concatenate(
        [c[has_ir].reshape(-1)[(r[has_ir].astype(float) > thr).reshape(-1)] for c, r in zip(cols, res0, strict=True)]
    )
    ir_val = np.concatenate([r[has_ir].reshape(-1)[(r[has_ir].astype(float) > thr).reshape(-1)] for r in res0])
    b_live = bh[y[budget_rows] > thr] if bh.size else bh
    at = np.full(base.n_rows, -1)
    at[ic_rows] = np.arange(ic_rows.size)
    keep = at[base.rows] >= 0
    n_ic = ic_rows.size
    mat = np.zeros((n_ubar, n_ic + ir_cols.size + b_live.size), dtype=object)
    np.add.at(mat, (base.cols[keep], at[base.rows[keep]]), base.vals[keep])
    mat[ir_cols, n_ic + np.arange(ir_cols.size)] = 1
    for i in range(env.n_agents):  # loop over agents: -P_i(t|h) beta(h) on the columns of h
        where = n_ic + ir_cols.size + np.arange(b_live.size)[:, None]
        mat[cols[i][b_live], where] = -base.marginals[i][b_live]
    # the conditions: A_IC^T y + y_IR - P beta = c on every column, with y_IR = the IR unknowns (zero elsewhere)
    lhs = np.zeros(n_ubar, dtype=object)
    for i, r in enumerate(res0):  # residual R = c - A^T y + P beta; with the IR unknowns at their values
        lhs[cols[i].reshape(-1)] = r.reshape(-1)
    lhs[ir_cols] = lhs[ir_cols] - ir_val  # what is left to correct: R - y_IR
    delta = solve_consistent(mat, lhs)
    if delta is None:
        return "the dual conditions have no exact solution on the float support"
    new_ic = y_exact[ic_rows] + delta[:n_ic]
    new_ir = ir_val + delta[n_ic : n_ic + ir_cols.size]
    new_b = beta[b_live] + delta[n_ic + ir_cols.size :]
    if bool((new_ic < 0).any()) or bool((new_ir < 0).any()) or bool((new_b < 0).any()):
        return "the exact vertex on the float support has a negative multiplier"
    y_exact[:] = 0
    y_exact[ic_rows] = new_ic
    beta[:] = 0
    beta[b_live] = new_b
    return ""


def _exact_mechanism(
    program: InterimAllocationProgram, z: np.ndarray, balance: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    r"""``(transfers, allocation)`` in rationals from a solution ``z`` of the interim program: the allocation's
    entries for the actions ``a >= 1`` exactly as their floats (clipped to ``[0, 1]``), :math:`p(0|g) = 1 -
    \sum_{a \ge 1} p(a|g)` exactly (rows over 1 scaled back exactly), the interim utilities exactly as their floats,
    and the transfers of :func:`mechlp.model.transfers.transfers_from_interim` with the flows of this allocation
    (:math:`U_i(h,(t,m)) = \bar U_i(t|h)`; :func:`mechlp.constraints.allocation.lift_interim` in floats).

    ``balance``: ex post balanced instead, as :func:`mechlp.model.transfers.balanced_transfers` does for the
    environment's allocation: the surplus :math:`\Pi(h)` of this mechanism (exact, from the designer's
    recursion) is handed to the agents in equal shares, :math:`\bar U_i + \Pi(h)/n`, and the transfers are
    rebalanced node by node (:func:`mechlp.model.transfers.rebalance`, Lamba 2022 Proposition 1), so
    :math:`\sum_i x_i = 0` exactly at every node, with the interim utilities, hence IC and IR, as before plus
    the nonnegative shares."""
    space = program.space
    env = space.env
    nums = Numbers(env, exact=True)
    n_act = env.n_actions
    rest = np.clip(z[program.p_offset : program.p_offset + space.n_nodes * (n_act - 1)], 0.0, 1.0)
    rest = to_fractions(rest.reshape(space.n_nodes, n_act - 1))
    total = rest.sum(axis=1)
    over = np.flatnonzero(total > 1)
    if over.size:  # float noise above 1: scale those rows back exactly
        rest[over] = rest[over] / total[over][:, None]
        total[over] = 1
    alloc = np.empty((space.n_nodes, n_act), dtype=object)
    alloc[:, 0] = 1 - total
    alloc[:, 1:] = rest
    interim = [to_fractions(u) for u in program.interim(z)]
    types = env.profile_types()[np.tile(np.arange(env.n_profiles), space.n_hist)]
    own = np.stack([(alloc * nums.valuation[i][types[:, i]]).sum(axis=1) for i in range(env.n_agents)])
    shift = own - nums.flows()[:, np.asarray(space.node_key)]  # this allocation's flows for the environment's

    def lift(utilities):
        return transfers_from_interim(space, utilities, nums) + shift

    x = lift(interim)
    if balance:
        values = continuation_values(space, x.sum(axis=0)[None, :], nums)[0].reshape(space.n_hist, -1)
        surplus = (joint_beliefs(space, nums) * values).sum(axis=1)  # Pi(h), exactly
        shared = [u + (surplus / env.n_agents)[:, None] for u in interim]
        x = rebalance(space, lift(shared), marginal_beliefs(space, nums))
    return x, alloc


def _margin_program(program: InterimAllocationProgram, margin: float) -> InterimAllocationProgram:
    """``program`` with every IC and budget row and every IR bound tightened by ``margin``."""
    lower = program.row_lower.copy()
    tight = (program.family == "ic") | (program.family == "budget")
    lower[tight] += margin
    col_lower = program.col_lower.copy()
    ubar = slice(0, program.w_offset)
    finite = np.isfinite(col_lower[ubar])
    col_lower[ubar][finite] += margin
    return replace(program, row_lower=lower, col_lower=col_lower)


def exact_optimality(
    program: InterimAllocationProgram,
    out: SolverOutput,
    q: Question,
    objective: str,
    backend: str = "highs",
    margin: float = CERTIFICATE_MARGIN,
    full: InterimAllocationProgram | None = None,
    relax: Question | None = None,
    **solver_options,
) -> tuple[OptimalityCertificate | None, str]:
    r"""An exact optimality certificate (:class:`mechlp.audit.verifier.OptimalityCertificate`) for the optimum
    ``out`` of the interim program ``program`` (the full program: every IC row), or ``(None, reason)``.

    Dual side: :func:`_exact_multipliers`. Primal side: the program solved again with every row tightened by
    ``margin`` (:func:`_margin_program`), the mechanism built exactly from that solution (:func:`_exact_mechanism`),
    then moved toward the float optimum's mechanism ``(1 - 2^{-j}) M^* + 2^{-j} M_{margin}`` for the largest
    ``j`` in ``(40, 30, 20, 10)`` that still passes the exact check (every row is affine in transfers and
    allocation jointly, so the combination's slacks are the combination of the two; the float optimum misses its
    binding rows by rounding only). The verifier checks both sides independently
    (:func:`mechlp.audit.verifier.check_optimality`).
    """
    relax = q if relax is None else relax
    cert, reason = _exact_multipliers(program, out, relax, objective)
    if cert is None:
        return None, f"no exact dual: {reason}"
    space = program.space
    balance = q.budget == "ex_post"  # the primal is made ex post balanced (Lamba 2022, Corollary 5, Prop. 1)
    x_s, p_s = _exact_mechanism(program, out.x, balance)

    def mech(w, x_m, p_m):
        x = x_s * (1 - w) + x_m * w if w != 1 else x_m
        p = p_s * (1 - w) + p_m * w if w != 1 else p_m
        return Mechanism(space, x.astype(float), exact_transfers=x, allocation=p.astype(float), exact_allocation=p)

    last = None
    # the margin LP needs no tight tolerances: its rows hold with room `margin` (> HiGHS's default 1e-7)
    loose = {k: v for k, v in solver_options.items() if k not in _CERTIFY_OPTIONS}
    for prog in [program] if full is None else [program, full]:  # the full program when generated rows miss one
        tight = solve_lp(_margin_program(prog, margin), backend, **loose)
        if tight.status != "optimal":
            return None, f"no mechanism satisfies every row with margin {margin:g} ({tight.message})"
        x_m, p_m = _exact_mechanism(prog, tight.x, balance)
        for j in (40, 30, 20, 10, 0):  # the weight 2^-j of the margin mechanism: the smallest that verifies
            last = check_optimality(mech(Fraction(1, 2**j), x_m, p_m), cert, objective, q)
            if last.primal_ok:
                return last, ""
    return last, "the margin mechanism did not pass the exact check"


# ---------------------------------------------------------------------------------------------- result
@dataclass
class SecondBestResult(Result):
    """A :class:`~mechlp.solve.result.Result` with the chosen allocation.

    Attributes (in addition to :class:`~mechlp.solve.result.Result`)
    ----------------------------------------------------------
    objective : str
        ``"welfare"``, ``"gains_from_trade"`` or ``"revenue"``.
    value : float
        The optimal objective, recomputed from the verified mechanism (not read off the solver).
    allocation : ndarray (n_nodes, n_actions)
        :math:`p(a|h,\\theta)`; also ``mechanism.allocation``.
    welfare, revenue : float
        Expected discounted welfare and :math:`\\Pi(\\text{root})` of the answer.
    first_best : float
        Welfare of the efficient allocation (same units as ``value``: minus the status quo for gains from trade).
    dual : DualCertificate or None
        HiGHS backend only; the certificate of the last LP solved (with generated rows, a valid bound for the
        full LP: the multipliers of the rows left out are zero), checked in floats.
    optimality : OptimalityCertificate or None
        The exact certificate (:func:`exact_optimality`, checked by
        :func:`mechlp.audit.verifier.check_optimality`): ``lower`` (the objective of an exactly verified mechanism,
        transfers and allocation), ``upper`` (an exact weak-duality bound), ``gap``; ``None`` when none was made
        (``optimality_note`` says why). ``status`` is ``"optimal"`` only when it holds.
    optimality_note : str
    method : dict or None
        How the LP was solved (module docstring): ``formulation`` (``"interim"`` or ``"ex_post"``), ``rows``
        (``"generated"`` or ``"all"``), ``rounds`` (LPs solved), ``ic_rows`` (IC rows in the last LP),
        ``ic_rows_all`` (IC rows of the full LP) and ``added`` (rows added after each round; the last is 0
        when generation converged).

    JSON (:meth:`to_dict`): the keys of :class:`~mechlp.solve.result.Result` plus ``objective``, ``value``,
    ``allocation`` (``(n_nodes, n_actions)``), ``welfare``, ``revenue``, ``first_best``, ``dual`` (the
    certificate's numbers, without the dual vectors), ``method``, ``optimality`` (the exact certificate's
    numbers, :meth:`~mechlp.audit.verifier.OptimalityCertificate.to_dict`, or ``null``) and ``optimality_note``.
    """

    objective: str = "welfare"
    value: float | None = None
    allocation: np.ndarray | None = None
    welfare: float | None = None
    revenue: float | None = None
    first_best: float | None = None
    dual: DualCertificate | None = None
    method: dict | None = None
    optimality: OptimalityCertificate | None = None
    optimality_note: str = ""

    def _answer_fields(self) -> dict[str, Any]:
        out = super()._answer_fields()
        dual = None
        if self.dual is not None:
            d = self.dual
            dual = {
                "dual_objective": d.dual_objective,
                "bound": d.bound,
                "primal_value": d.primal_value,
                "gap": d.gap,
                "residual": d.residual,
                "sign_violation": d.sign_violation,
                "ok": bool(d.ok),
                "tol": d.tol,
                "source": d.source,
            }
        out.update(
            objective=self.objective,
            value=self.value,
            allocation=self.allocation,
            welfare=self.welfare,
            revenue=self.revenue,
            first_best=self.first_best,
            dual=dual,
            method=self.method,
            optimality=None if self.optimality is None else self.optimality.to_dict(),
            optimality_note=self.optimality_note,
        )
        return out

    def allocation_table(self, histories=None) -> list[dict]:
        """``[{"history", "where", "profile", "p": {action: prob}}]`` for the given histories (default: all)."""
        if self.allocation is None:
            return []
        env = self.space.env
        k = env.n_profiles
        hs = range(self.space.n_hist) if histories is None else histories
        return [
            {
                "history": int(h),
                "where": self.space.describe_history(int(h)),
                "profile": env.profile_labels(s),
                "p": dict(zip(env.actions, map(float, self.allocation[int(h) * k + s]), strict=True)),
            }
            for h in hs
            for s in range(k)
        ]


def second_best(
    env: Environment,
    *,
    objective: str = "welfare",
    budget: str = "interim",
    space: StateSpace | None = None,
    horizon: int | None = None,
    tail: bool | str | None = None,
    ic: str = "bayesian",
    ir: str = "interim",
    outside_option=0.0,
    limits=None,
    formulation: str = "auto",
    rows: str = "auto",
    backend: str = "highs",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    certify: bool = True,
    **solver_options,
) -> SecondBestResult | LearningResult:
    r"""Choose allocation and transfers to maximise ``objective`` subject to IC, IR, ``budget`` and ``limits``.

    Parameters
    ----------
    env : Environment
        Its own allocation rule is ignored. When a kernel depends on the action (a learning model), the answer is
        :func:`mechlp.solve.learning.second_best_learning` on the tree of histories that record the realised
        actions (a :class:`~mechlp.solve.learning.LearningResult`; finite horizon or ``horizon`` given, Bayesian
        IC, no ``limits`` or ``space``; an infinite horizon without ``horizon`` is a ``ValueError`` saying why).
    objective : {"welfare", "gains_from_trade", "revenue"}
        See the module docstring.
    budget : {"ex_ante", "interim", "ex_post", "none", "savings"}
    space, horizon, tail, memory_limit
        As in :func:`mechlp.solve.questions.minmax` (Markov space for an infinite horizon by default).
        ``tail="auto"`` (infinite horizon, no ``space`` or ``horizon``): solve on the Markov space, then on trees
        with a Markov tail of depth ``T = 1, 2, ...`` (history dependent for ``T`` periods; each space nests the
        previous one, so the value cannot fall) until ``TAIL_SEARCH_PATIENCE`` depths in a row raise it by at most
        ``tolerances.TAIL_DEPTH_GAIN`` (relative), ``TAIL_SEARCH_MAX_DEPTH`` is reached or the next depth does not
        fit ``memory_limit``; the answer is the first depth with the best value, and ``method["tail_search"]``
        holds every depth's value (depth 0: the best Markov mechanism, also ``markov_value``). The stopping rule
        is a heuristic, reported as such: a deeper history could still gain. ``tail=True`` with ``horizon=T``:
        history dependent for ``T`` periods, then a Markov tail. Default ``None``: ``"auto"`` when
        ``objective="revenue"`` on an infinite horizon with neither ``space`` nor ``horizon`` (revenue-optimal
        mechanisms are history dependent in general, Battaglini 2005; issue #13), else ``False``.
    ic : {"bayesian", "ex_post"}
        All misreports (``"local"`` is refused).
    ir : {"interim", "ex_post", "ex_ante"}
    formulation : {"auto", "interim", "ex_post"}
        The LP in interim utilities or over ``(U, x, B, p)`` (module docstring); ``"auto"``: interim whenever the
        question allows it. ``"interim"`` for a question without an interim form is a ``ValueError`` saying why.
    rows : {"auto", "generated", "all"}
        IC rows by constraint generation or all at once (module docstring); ``"auto"``: generated with the interim
        formulation when some agent has more than two types, else all. ``formulation="ex_post", rows="all"`` is
        the original path.
    outside_option, limits, backend, **solver_options
        As in :func:`mechlp.solve.questions.feasibility`.
    certify : bool
        Prove optimality exactly (:func:`exact_optimality`; default True): an exactly verified mechanism (transfers
        and allocation) and exact dual multipliers whose weak-duality bound is within
        ``tolerances.OPTIMALITY_GAP`` of its objective. Covered: the interim formulation with the HiGHS backend
        (the LP is then solved with feasibility tolerances ``tolerances.CERTIFY_SOLVER`` unless
        ``solver_options`` set them). ``False``: the float checks only, and status ``"not_proved"``.

    Returns
    -------
    SecondBestResult
        ``status`` ``"optimal"`` when solved, the mechanism (transfers with the chosen allocation) passed
        :func:`mechlp.audit.verifier.verify` *and* the exact optimality certificate holds (``optimality``);
        ``"not_proved"`` when the mechanism is verified but optimality is not proved exactly (the message and
        ``optimality_note`` say why); ``value``, ``allocation``, ``first_best``, ``dual``, ``optimality``,
        ``method``.
    """
    check_choice("objective", objective, OBJECTIVES)
    if env.action_dependent:
        return _learning(
            env,
            objective,
            budget,
            space,
            horizon,
            ic,
            ir,
            outside_option,
            limits,
            backend,
            memory_limit,
            solver_options,
        )
    env.require_independent("second_best (the interim allocation program)")
    check_choice("formulation", formulation, FORMULATIONS)
    check_choice("rows", rows, ROWS)
    check_backend(backend)
    if tail is None:
        tail = default_tail(env, objective, space, horizon)
    if isinstance(tail, str):
        check_choice("tail", tail, ("auto",))
        return _tail_search(
            env,
            space=space,
            horizon=horizon,
            objective=objective,
            budget=budget,
            ic=ic,
            ir=ir,
            outside_option=outside_option,
            limits=limits,
            formulation=formulation,
            rows=rows,
            backend=backend,
            memory_limit=memory_limit,
            **solver_options,
        )
    space = space_for(env, space, horizon, memory_limit, tail=tail)
    q = _parse_question(env, {"ic": ic, "ir": ir, "budget": budget, "outside_option": outside_option, "limits": limits})
    ic, ir, budget = q.ic, q.ir, q.budget
    reason = interim_reducible(q)
    if formulation == "interim" and reason is not None:
        raise ValueError(f"formulation='interim' needs a question in interim utilities: {reason}")
    form = formulation if formulation != "auto" else ("interim" if reason is None else "ex_post")
    if rows == "auto":  # generation pays off in interim utilities only (benchmarks/second_best.py)
        rows = "generated" if form == "interim" and max(env.type_counts) > 2 else "all"
    certifiable = _certifiable(certify, backend)
    if certifiable is None:  # tight tolerances: HiGHS's default basis can leave the dual bound ~1e-7 high
        solver_options = {**dict.fromkeys(_CERTIFY_OPTIONS, tolerances.CERTIFY_SOLVER), **solver_options}
    if form == "interim":
        lp = interim_allocation_program(space, q)
        lp.cost = interim_cost(lp, objective)
        ic_mask = lp.family == "ic"
        local = ic_mask & (np.abs(lp.type - lp.misreport) == 1)
        solved = _solve_rows(lp, ic_mask, local, rows, lambda a, keep: lp.restrict(keep), backend, solver_options)
    else:
        lp = build_allocation_lp(space, q, objective=objective)
        lab = lp.labels
        ic_mask = lab.family == lab.families.index("ic")
        local = ic_mask & (np.abs(lab.type - lab.misreport) == 1)
        solved = _solve_rows(
            lp, ic_mask, local, rows, lambda a, keep: _restrict_lp(lp, a, keep), backend, solver_options
        )
    out, last = solved.out, solved.program
    options = {"objective": objective, **q.to_dict(), "formulation": form, "rows": rows, "backend": backend}
    question = "optimal" if objective == "revenue" else "second_best"
    res = lp_result(SecondBestResult, question, options, space, last, out, q, backend)
    res.objective = objective
    res.method = {"formulation": form, **solved.method}
    res.timings["solve"] = solved.solve_seconds
    res.timings["separate"] = solved.separate_seconds
    fb, _ = efficient_welfare(space)
    shift = _status_quo_welfare(space) if objective == "gains_from_trade" else 0.0
    res.first_best = fb - shift
    if out.status != "optimal":
        return res
    how = _method_text(res.method)
    n_act = env.n_actions
    if form == "interim":
        alloc = np.clip(last.allocation(out.x), 0.0, None)
        alloc /= alloc.sum(axis=1, keepdims=True)
        transfers = lift_interim(space, last.interim(out.x), alloc)
    else:
        parts = last.variables.split(out.x)
        alloc = np.clip(parts["p"].reshape(space.n_nodes, n_act), 0.0, None)
        alloc /= alloc.sum(axis=1, keepdims=True)
        transfers = parts["x"]
    res.allocation = alloc
    cert = attach_verified(res, Mechanism(space, transfers, allocation=alloc), q)
    res.welfare = welfare(space, alloc)
    res.revenue = float(res.surplus[0])
    res.value = res.revenue if objective == "revenue" else res.welfare - shift
    if backend == "highs":
        res.dual = dual_certificate(last, out, constant=shift)
    scope = {"markov": "Markov mechanisms", "tail": "history dependent, then Markov"}.get(space.kind, "history tree")
    name = {"welfare": "welfare", "gains_from_trade": "gains from trade", "revenue": "revenue"}[objective]
    res.message = (
        f"optimal {name} = {res.value:.10g} ({scope}; first best {res.first_best:.10g}); "
        + (f"budget {budget}; " if budget != "none" else "")
        + f"{how}; "
        + ("mechanism verified" if cert.ok else "VERIFICATION FAILED")
        + ("" if res.dual is None else "; " + res.dual.summary())
    )
    if not cert.ok:
        res.status = "verification_failed"
        res.message += "\n" + cert.summary()
        return res
    if res.dual is not None and not res.dual.ok:
        res.message += "; WARNING: the float dual certificate did not check"
    if certifiable is None:
        t0 = time.perf_counter()
        res.optimality, certifiable = _certify(res, space, q, objective, form, last, out, lp, backend, solver_options)
        res.timings["certify"] = time.perf_counter() - t0
    res.optimality_note = certifiable or ""
    oc = res.optimality
    if oc is not None:
        res.message += (
            f"; exact optimality: {name} in [{float(oc.lower):.12g}, {float(oc.upper):.12g}], "
            f"gap {float(oc.gap):.2e} " + ("(proved)" if oc.ok else f"(NOT proved: above {oc.tol:g})")
        )
    if oc is None or not oc.ok:
        res.status = "not_proved"
        if oc is None:
            res.message += f"; optimality NOT proved exactly: {certifiable}"
    return res


def _certifiable(certify: bool, backend: str) -> str | None:
    """Why no exact optimality certificate is attempted (``None``: one is)."""
    if not certify:
        return "certify=False (float checks only)"
    if backend != "highs":
        return f"exact optimality certificates need the solver's row duals (HiGHS); backend {backend!r}"
    return None


def _certifying_question(q: Question) -> tuple[Question | None, str]:
    """The question whose interim program gives the dual bound (``q`` itself, or for ex post balance its interim
    relaxation, Lamba 2022 Proposition 1), or ``(None, why)``."""
    if q.budget == "ex_post" and (q.env.correlated or q.env.n_agents < 2):
        return None, "ex post balance by rebalancing needs two or more agents with independent types"
    relax = q.replace(budget="interim") if q.budget == "ex_post" else q
    reason = interim_reducible(relax)
    if reason is not None:
        return None, f"exact optimality certificates are made on the interim program, and {reason}"
    return relax, ""


def _certify(res, space, q, objective, form, last, out, lp, backend, solver_options):
    """:func:`exact_optimality` on the interim program of the question (or its relaxation for ex post balance):
    the one solved (``last``, ``out``) when it is that program, else a fresh solve of it."""
    relax, why = _certifying_question(q)
    if relax is None:
        return None, why
    full = None
    if form == "interim" and relax is q:
        program, sol, full = last, out, (lp if last is not lp else None)
    else:
        program = interim_allocation_program(space, relax)
        program.cost = interim_cost(program, objective)
        sol = solve_lp(program, backend, **solver_options)
        if sol.status != "optimal":
            return None, f"the interim program of the certificate returned {sol.status} ({sol.message})"
    return exact_optimality(program, sol, q, objective, backend, full=full, relax=relax, **solver_options)


def _learning(
    env, objective, budget, space, horizon, ic, ir, outside_option, limits, backend, memory_limit, solver_options
) -> LearningResult:
    """:func:`second_best` for kernels that depend on the action: the realised-action LP
    (:func:`mechlp.solve.learning.second_best_learning`), or a ``ValueError`` saying why not."""
    dependent = [ag.name for ag in env.agents if ag.action_dependent] or ["the joint kernel"]
    if env.infinite and horizon is None:
        raise ValueError(
            f"the kernels of {dependent} depend on the action (a learning model): allocation variables then need "
            "histories that record the realised action, a tree of (profiles x actions)^T histories with no Markov "
            "space, so an infinite horizon is refused; give horizon=T (kernels that ignore the action have a "
            "Markov space)"
        )
    if space is not None:
        raise ValueError(
            f"the kernels of {dependent} depend on the action: give horizon, not space (the "
            "realised-action tree is built from the horizon)"
        )
    if ic != "bayesian" or limits is not None:
        raise ValueError(
            f"the kernels of {dependent} depend on the action: the realised-action LP supports "
            f"ic='bayesian' and no limits; got ic={ic!r}, limits={limits!r}"
        )
    return second_best_learning(
        env,
        objective=objective,
        budget=budget,
        ir=ir,
        outside_option=outside_option,
        horizon=horizon,
        backend=backend,
        memory_limit=memory_limit,
        **solver_options,
    )


def _method_text(method: dict) -> str:
    """``"interim formulation, IC rows generated: 4,011 of 18,180 in 4 rounds"`` (or ``"..., all 18,180 IC rows"``)."""
    head = f"{method['formulation'].replace('_', ' ')} formulation"
    if method["rows"] == "all":
        return f"{head}, all {method['ic_rows_all']:,} IC rows"
    n = method["rounds"]
    return (
        f"{head}, IC rows generated: {method['ic_rows']:,} of {method['ic_rows_all']:,} "
        f"in {n} round{'s' if n != 1 else ''}"
    )


#: Statuses of an answer with a verified mechanism (optimality proved exactly or not): the tail search goes on.
_SOLVED = ("optimal", "not_proved")

#: ``tail="auto"``: the deepest history-dependent part tried, and how many depths in a row without gain end it.
TAIL_SEARCH_MAX_DEPTH = 12
TAIL_SEARCH_PATIENCE = 2


def default_tail(env: Environment, objective: str, space: StateSpace | None, horizon: int | None) -> bool | str:
    """What ``tail=None`` means in :func:`second_best`: ``"auto"`` (search the depth of history dependence) for
    ``objective="revenue"`` on an infinite horizon when neither ``space`` nor ``horizon`` is given, else ``False``
    (the Markov space on an infinite horizon, the full tree on a finite one)."""
    infinite = bool(getattr(env, "infinite", False))  # a non-Environment is refused by space_for
    return "auto" if objective == "revenue" and infinite and space is None and horizon is None else False


def _tail_search(env: Environment, *, space, horizon, **options) -> SecondBestResult:
    """``second_best(..., tail="auto")``: the Markov answer, then tails of depth 1, 2, ... (see ``tail``)."""
    if not env.infinite or space is not None or horizon is not None:
        raise ValueError(
            "tail='auto' searches the depth of history dependence on an infinite horizon; it takes no space or "
            "horizon (give horizon=T with tail=True for one depth)"
        )
    best = second_best(env, tail=False, **options)  # depth 0: the Markov space
    if best.status not in _SOLVED:
        return best
    depths, values = [0], [float(best.value)]
    best_depth, stale, stop = 0, 0, f"reached depth {TAIL_SEARCH_MAX_DEPTH}"
    for depth in range(1, TAIL_SEARCH_MAX_DEPTH + 1):  # loop over tail depths
        try:
            res = second_best(env, horizon=depth, tail=True, **options)
        except MemoryError as exc:
            stop = f"depth {depth} does not fit the memory limit ({exc})"
            break
        if res.status not in _SOLVED:
            stop = f"depth {depth} returned {res.status}"
            break
        depths.append(depth)
        values.append(float(res.value))
        if res.value > values[best_depth] + tolerances.TAIL_DEPTH_GAIN * (1.0 + abs(values[best_depth])):
            best, best_depth, stale = res, len(values) - 1, 0
        else:
            stale += 1
            if stale >= TAIL_SEARCH_PATIENCE:
                stop = f"{stale} depths in a row added at most {tolerances.TAIL_DEPTH_GAIN:g} (relative)"
                break
    best.method = {
        **(best.method or {}),
        "tail_search": {
            "depths": depths,
            "values": values,
            "depth": depths[best_depth],
            "markov_value": values[0],
            "stopped": stop,
        },
    }
    seq = ", ".join(f"{d}: {v:.6g}" for d, v in zip(depths, values, strict=True))
    best.message += (
        f"; history dependence searched by tail depth (0 = Markov): {seq}; answer at depth {depths[best_depth]} "
        f"(best Markov value {values[0]:.6g}); stopped: {stop} -- a heuristic, deeper histories could still gain"
    )
    return best


def optimal_mechanism(
    env: Environment,
    *,
    ir: str = "interim",
    budget: str = "none",
    tail: bool | str = "auto",
    **kwargs,
) -> SecondBestResult | LearningResult:
    r"""Revenue-maximising dynamic mechanism (Yoon 2021, section 2; Battaglini 2005): :func:`second_best` with
    ``objective="revenue"`` (designer revenue :math:`\Pi(\text{root})`), IC, IR and by default no budget rows.

    Parameters
    ----------
    env : Environment
        Its own allocation rule is ignored; kernels that depend on the action as in :func:`second_best`.
    ir : {"interim", "ex_post", "ex_ante"}
        Use ``"ex_ante"`` for Battaglini's setting (participation decided once, at the start). Default
        ``"interim"`` (every period).
    budget : {"none", "ex_ante", "interim", "ex_post", "savings"}
        Default ``"none"``: the designer's revenue is the objective, not a constraint.
    tail : bool or "auto"
        Default ``"auto"``: on an infinite horizon without ``space`` or ``horizon``, the history-dependent optimum
        found by deepening a tree with a Markov tail (:func:`second_best`, ``tail``; the best Markov value is in
        the message and ``method["tail_search"]``); otherwise (finite horizon, or a space or horizon given) as
        ``tail=False``. Revenue-optimal mechanisms are history dependent in general (Battaglini 2005).
    **kwargs
        The other keyword arguments of :func:`second_best` (``space``, ``horizon``, ``ic``, ``limits``, ...).

    Returns
    -------
    SecondBestResult
        ``value`` is the revenue :math:`\Pi(\text{root})`; ``allocation``, the verified mechanism and the dual
        bound as in :func:`second_best`.
    """
    if tail == "auto" and (
        not env.infinite or env.action_dependent or kwargs.get("space") is not None or kwargs.get("horizon") is not None
    ):
        tail = False
    return second_best(env, objective="revenue", ir=ir, budget=budget, tail=tail, **kwargs)

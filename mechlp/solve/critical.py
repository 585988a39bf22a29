r"""Critical discount factors for efficiency: the smallest (or every) :math:`\delta` at which budget balance
becomes possible, by a grid scan and bisection of the min-max surplus.

By Lamba (2022), Theorem 1 and Corollary 1, the environment's allocation is implementable with Bayesian IC and
periodic interim IR under

* **interim** (equivalently **ex post**) budget balance iff :math:`\min_h \Pi^*(h) \ge 0`;
* **ex ante** budget balance iff :math:`\Pi^*(\text{root}) \ge 0`,

where :math:`\Pi^*` is the min-max surplus (:func:`mechlp.solve.questions.minmax`, :mod:`mechlp.solve.recursion`). The
*criterion* of this module is that number as a function of :math:`\delta`; a critical discount factor is where
its sign changes (read as non-negative when ``>= -tolerances.SURPLUS``).

Nothing here assumes monotonicity in :math:`\delta`. :func:`mechlp.model.bisection.scan_and_bisect` (re-exported
here) evaluates the criterion on a grid, bisects *every* bracket where the sign changes between neighbouring
points, and checks on all evaluations (grid and bisection points, sorted by :math:`\delta`) whether the criterion
is non-decreasing (within ``tolerances.MONOTONE``); each violation is reported. Sign changes that cancel between
two grid points are invisible: refine the grid when the criterion is not monotone.

Two methods evaluate the criterion. ``method="recursion"`` answers every evaluation by the recursion (milliseconds
each on a 5 x 5 Markov model). ``method="lp"`` rests the sign on each side of every reported critical value on a
verified min-max LP answer. By default (``lp_scan="confirm"``) the recursion scans and bisects, then verified LPs
at both ends of every bracket (:func:`mechlp.model.bisection.confirm_scan`) must land on the sides the recursion
found; the other grid and bisection values stay the recursion's, each certified tight at every history
(:attr:`mechlp.solve.recursion.RecursionSolution.pointwise_optimal`: then it is the LP's optimum too). Any
disagreement, or any evaluation the recursion cannot certify, sends every evaluation to the LP
(``lp_scan="full"``: one LP per grid and bisection point, each warm-started from the previous LP's optimal basis).
The result says which evaluations were which (``scanned_by``, ``lp_evaluations``, ``how``); benchmarks/critical.py
measures both methods against one evaluation of Pi*.

:func:`interleaved_trade` builds the continuous-limit model of Athey and Miller (2007): buyer values and seller
costs on interleaved ``K``-point grids of ``[0, 1]``, iid uniform types. Lamba (2022, footnote 24) notes that in
the continuous-type iid model efficiency is sustainable for every :math:`\delta \ge 1/2`; the discrete critical
:math:`\delta` under interim balance rises toward ``1/2`` as ``K`` grows (benchmarks/README.md).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.backends.highs import solve_warm
from mechlp.constraints.formulation import build_lp
from mechlp.constructions.participation import IR_NOTIONS as TEAM_IR
from mechlp.constructions.participation import team_participation_slack
from mechlp.model import tolerances
from mechlp.model.answer import Answer, SolverFailure
from mechlp.model.bisection import MAX_VIOLATIONS, Scan, confirm_scan, scan_and_bisect
from mechlp.model.environment import Environment, bilateral_trade, renewal_matrix
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question, check_choice, parse_notion
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, StateSpace, TreeWithTail, question_space
from mechlp.solve import questions as design
from mechlp.solve import recursion
from mechlp.solve.result import Result, attach_verified, lp_result

__all__ = [
    "BUDGETS",
    "LP_SCANS",
    "METHODS",
    "CriticalDelta",
    "Scan",
    "critical_delta",
    "scan_and_bisect",
    "interleaved_trade",
]

BUDGETS: tuple[str, ...] = ("interim", "ex_ante", "ex_post")
#: Decreases of a non-monotone criterion listed by :meth:`CriticalDelta.report` (the scan keeps up to
#: ``mechlp.model.bisection.MAX_VIOLATIONS``; the JSON has them all).
REPORT_VIOLATIONS = 5
METHODS: tuple[str, ...] = ("recursion", "lp", "team")
#: How ``method="lp"`` scans: the recursion confirmed by LPs at the decisive points, or an LP at every point.
LP_SCANS: tuple[str, ...] = ("confirm", "full")


# ---------------------------------------------------------------------------------------------- critical delta
#: Names of the discount factor for ``critical_delta(parameter=...)``, the default (an :class:`Environment` model
#: varies it; any other parameter needs a callable model).
DISCOUNT_NAMES = ("delta", "discount")


@dataclass
class CriticalDelta(Answer):
    r"""Critical discount factor(s) for efficiency under one budget notion (see :func:`critical_delta`; result
    contract: :mod:`mechlp.model.answer`, without a space, mechanism or verification).

    Attributes
    ----------
    status : str
        (property) ``"bracketed"`` (at least one sign change found and bisected), ``"feasible"`` (the criterion
        is non-negative on the whole grid) or ``"infeasible"`` (negative on the whole grid).
    budget, method : str
    scan : Scan
        Grid, criterion values, brackets, directions, every evaluation and the monotonicity check.
    criterion : str
        ``"min_h Pi*(h)"`` or ``"Pi*(root)"``.
    ic_infeasible : list of float
        Discount factors at which IC itself cannot hold (a conclusive positive cycle; criterion ``-inf``).
    not_certified : list of float
        ``method="recursion"``: discount factors at which the recursion's answer was not certified tight at
        every history (:attr:`mechlp.solve.recursion.RecursionSolution.pointwise_optimal`); there the criterion is
        that of an IC + IR mechanism, a lower bound. Re-run with ``method="lp"``.
    evaluations : int
        All evaluations, recursion and LP.
    seconds : float
    message : str
    scanned_by : str
        ``"recursion"`` or ``"lp"``: the method whose values make up ``scan`` (grid, bisection, monotonicity).
    lp_scan : str or None
        ``method="lp"``: the ``lp_scan`` asked (``"confirm"`` or ``"full"``).
    lp_evaluations : list of (float, float)
        Every ``(delta, criterion)`` answered by a verified min-max LP, sorted by delta; with ``scanned_by ==
        "recursion"`` and ``method="lp"`` these are the confirmations at both ends of every bracket.
    recursion_evaluations : int
        Evaluations by the recursion (the rest, ``len(lp_evaluations)``, are LPs).
    how : str
        ``method="lp"``: which evaluations were which, and why (also in ``message``).
    parts : dict
        Seconds spent per stage over all evaluations: ``space``, ``recursion``, ``lp_build``, ``lp_start``
        (the recursion's mechanism as an LP start), ``lp_solve``, ``verify``.
    timings : dict
        (property) ``{"scan": seconds}`` (the stages are in ``parts``).
    size : dict
        (property) ``grid`` points and ``evaluations``.

    JSON (:meth:`to_dict`): the contract's keys plus ``budget``, ``method``, ``criterion``, ``grid``, ``values``
    (``"-inf"`` where IC fails), ``brackets``, ``critical``, ``directions``, ``monotone``, ``violations``,
    ``feasible_everywhere``, ``infeasible_everywhere``, ``ic_infeasible``, ``not_certified``, ``evaluations``,
    ``seconds``, ``scanned_by``, ``lp_scan``, ``lp_evaluations`` (pairs), ``recursion_evaluations``, ``how``,
    ``parts``.
    """

    budget: str
    method: str
    criterion: str
    scan: Scan
    ic_infeasible: list[float] = field(default_factory=list)
    not_certified: list[float] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    message: str = ""
    scanned_by: str = ""
    lp_scan: str | None = None
    lp_evaluations: list[tuple[float, float]] = field(default_factory=list)
    recursion_evaluations: int = 0
    how: str = ""
    parts: dict = field(default_factory=dict)
    parameter: str = "delta"

    verification = None
    certificate = None

    ir: str = "interim"

    @property
    def status(self) -> str:
        if self.scan.brackets:
            return "bracketed"
        if self.scan.feasible_everywhere:
            return "feasible"
        # method="team": the construction fails everywhere, which proves nothing about the question
        return "refused" if self.method == "team" else "infeasible"

    @property
    def timings(self) -> dict:
        return {"scan": float(self.seconds)}

    @property
    def size(self) -> dict:
        return {"grid": int(self.scan.grid.size), "evaluations": int(self.evaluations)}

    @property
    def brackets(self) -> list[tuple[float, float]]:
        return self.scan.brackets

    @property
    def critical(self) -> list[float]:
        return self.scan.critical

    @property
    def monotone(self) -> bool:
        return self.scan.monotone

    def report(self) -> str:
        """Readable lines: the verdict, every bracket, the monotonicity check and caveats."""
        s = self.scan
        p = self.parameter
        what = "critical discount factor" if p in DISCOUNT_NAMES else f"critical value of {p}"
        source = (
            "Athey-Segal 2007 section 6, a sufficient condition"
            if self.method == "team"
            else "Lamba 2022 Theorem 1 / Corollary 1"
        )
        lines = [
            f"{what} for efficiency under {self.budget} budget balance and {self.ir} IR "
            f"(criterion {self.criterion} >= 0, {source}; method {self.method}):",
            f"  {self.message}",
            f"  grid of {s.grid.size} points on [{s.grid[0]:g}, {s.grid[-1]:g}], {self.evaluations} evaluations, "
            f"{self.seconds:.2f} s",
        ]
        if self.how:
            lines.append(f"  {self.how}")
        for (a, b), c, d in zip(s.brackets, s.critical, s.directions, strict=True):
            lines.append(f"  {d} at {p} = {c:.10f}  (bracket [{a:.12f}, {b:.12f}])")
        if s.monotone:
            lines.append(f"  the criterion is non-decreasing in {p} over every evaluation")
        elif s.non_increasing:
            lines.append(f"  the criterion is non-increasing in {p} over every evaluation")
        else:
            lines.append(f"  the criterion is NOT monotone in {p} ({_decreases(s.violations)}):")
            for d1, v1, d2, v2 in s.violations[:REPORT_VIOLATIONS]:
                lines.append(f"    {v1:.6g} at {p} = {d1:.6g} > {v2:.6g} at {p} = {d2:.6g}")
        return "\n".join(lines)

    def _answer_fields(self) -> dict[str, Any]:
        s = self.scan

        def num(v: float) -> float | str:
            return float(v) if math.isfinite(v) else ("-inf" if v < 0 else "inf")

        return {
            "budget": self.budget,
            "method": self.method,
            "criterion": self.criterion,
            "grid": [float(d) for d in s.grid],
            "values": [num(v) for v in s.values],
            "brackets": [[float(a), float(b)] for a, b in s.brackets],
            "critical": [float(c) for c in s.critical],
            "directions": list(s.directions),
            "monotone": bool(s.monotone),
            "violations": [[float(d1), num(v1), float(d2), num(v2)] for d1, v1, d2, v2 in s.violations],
            "feasible_everywhere": s.feasible_everywhere,
            "infeasible_everywhere": s.infeasible_everywhere,
            "ic_infeasible": [float(d) for d in self.ic_infeasible],
            "not_certified": [float(d) for d in self.not_certified],
            "evaluations": int(self.evaluations),
            "seconds": float(self.seconds),
            "scanned_by": self.scanned_by,
            "lp_scan": self.lp_scan,
            "lp_evaluations": [[float(d), num(v)] for d, v in self.lp_evaluations],
            "recursion_evaluations": int(self.recursion_evaluations),
            "how": self.how,
            "parts": {k: float(v) for k, v in self.parts.items()},
            "parameter": self.parameter,
            "non_increasing": bool(s.non_increasing),
            "ir": self.ir,
        }


def _count_decreases(violations: list) -> str:
    """``"N decreases"``, ``"at least N decreases"`` when the scan kept only its first ``MAX_VIOLATIONS``."""
    n = len(violations)
    return f"{'at least ' if n >= MAX_VIOLATIONS else ''}{n} decrease{'s' if n != 1 else ''}"


def _decreases(violations: list) -> str:
    """The count of decreases and how many of them :meth:`CriticalDelta.report` lists."""
    n = len(violations)
    shown = min(n, REPORT_VIOLATIONS)
    return _count_decreases(violations) + ("; all listed" if shown == n else f"; the first {shown} listed")


def _rebuild(env: Environment, delta: float) -> Environment:
    return Environment(env.agents, env.actions, delta, env.horizon, env.allocation, name=env.name, meta=env.meta)


def _space_for(
    env: Environment, base: StateSpace | None, horizon: int | None, tail: bool, memory_limit: int
) -> StateSpace:
    r"""The space of ``env``, sharing the index arrays of ``base`` when the structure is the same.

    Spaces depend on the environment only through the type counts and the horizon, never on the discount
    factor, so one space's arrays serve every :math:`\delta` (a shallow copy pointing at the new environment).
    """
    if base is not None and base.env.type_counts == env.type_counts and base.env.horizon == env.horizon:
        sp = copy.copy(base)
        sp.env = env
        return sp
    if tail:
        return TreeWithTail(env, int(horizon), memory_limit=memory_limit)
    return recursion.recursion_space(env, horizon, memory_limit, verify=False, needs="")


class _Undecided(SolverFailure):
    """The recursion cannot decide at one discount factor (its message says why): no answer, not bad input."""


def _start_vector(mechanism: Mechanism) -> np.ndarray:
    """The LP columns ``(U, x, B)`` of :class:`~mechlp.lp.program.Variables` for ``mechanism``: a primal start."""
    return np.concatenate(
        [mechanism.utilities().reshape(-1), mechanism.transfers.reshape(-1), mechanism.designer_values()]
    )


class _Criterion:
    r"""The criterion at one discount factor, by the recursion or by the verified min-max LP.

    One object per :func:`critical_delta` call: it shares the space's index arrays between discount factors,
    counts the evaluations of each method and adds up where the time goes (``parts``).

    The LP (:meth:`by_lp`) is the min-max LP of :func:`mechlp.solve.questions.minmax` (``method="lp"``): the
    same :func:`~mechlp.constraints.formulation.build_lp` rows and objective :math:`\sum_h \Pi(h)`, solved by HiGHS
    with the backend's options, its mechanism verified by :func:`mechlp.solve.result.attach_verified`. Only the
    start differs (:func:`mechlp.backends.highs.solve_warm`): HiGHS gets the previous LP's optimal basis
    (``start="basis"``) or the recursion's mechanism at the same discount factor as a primal point
    (``start="recursion"``, and for the first LP of a scan; HiGHS's crossover turns it into a basis).
    The answer is HiGHS's own optimum either way (the simplex proves optimality from wherever it starts).
    Any answer other than a verified optimum (infeasible, a solver error, a failed verification), and every
    ``backend="cvxpy"`` evaluation, is re-solved cold by :func:`~mechlp.solve.questions.minmax` itself, whose
    retries, Farkas certificate and statuses then decide.
    """

    def __init__(
        self,
        factory: Callable[[float], Environment],
        budget: str,
        horizon: int | None,
        tail: bool,
        ic: str,
        outside_option: Any,
        backend: str,
        memory_limit: int,
        name: str = "delta",
    ):
        self.name = name  # the parameter varied, in messages
        self.factory = factory
        self.budget = budget
        self.horizon, self.tail = horizon, tail
        self.ic, self.outside_option, self.backend, self.memory_limit = ic, outside_option, backend, memory_limit
        self.base: StateSpace | None = None
        self.memory_checked = False
        self.basis = None
        self.ic_fail: dict[str, list[float]] = {"recursion": [], "lp": []}
        self.uncertified: list[float] = []
        self.lp_evaluations: list[tuple[float, float]] = []
        self.count = {"recursion": 0, "lp": 0}
        self.cold = 0  # LP evaluations answered by a cold minmax (the warm answer was not a verified optimum)
        self.parts = dict.fromkeys(("space", "recursion", "lp_build", "lp_start", "lp_solve", "verify"), 0.0)

    def _value(self, pi: np.ndarray) -> float:
        return float(pi[0]) if self.budget == "ex_ante" else float(pi.min())

    def _env_space(self, d: float) -> tuple[Environment, StateSpace]:
        t0 = time.perf_counter()
        env = self.factory(d)
        if not isinstance(env, Environment):
            raise TypeError(f"the factory returned {type(env).__name__} at {self.name} = {d!r}, not an Environment")
        sp = _space_for(env, self.base, self.horizon, self.tail, self.memory_limit)
        if self.base is None:
            self.base = sp
        self.parts["space"] += time.perf_counter() - t0
        return env, sp

    def _recursion(self, sp: StateSpace) -> recursion.RecursionSolution:
        t0 = time.perf_counter()
        sol = recursion.solve(sp, ic=self.ic, outside_option=self.outside_option, memory_limit=self.memory_limit)
        self.parts["recursion"] += time.perf_counter() - t0
        return sol

    def by_recursion(self, d: float, certified: bool = False) -> float:
        """:math:`\\Pi^*` by :func:`mechlp.solve.recursion.solve` (``_Undecided`` when it cannot decide, and with
        ``certified=True`` also when its answer is not certified tight)."""
        self.count["recursion"] += 1
        _, sp = self._env_space(d)
        sol = self._recursion(sp)
        if sol.status == "infeasible":
            self.ic_fail["recursion"].append(d)
            return -math.inf
        if sol.status != "optimal":
            raise _Undecided(f"the recursion cannot decide at {self.name} = {d!r}: {sol.message}")
        if not sol.pointwise_optimal:
            self.uncertified.append(d)
            if certified:
                raise _Undecided(
                    f"the recursion was not certified tight at {self.name} = {d!r} "
                    "(there its Pi* is only a lower bound)"
                )
        return self._value(sol.surplus)

    def by_lp(self, d: float, start: str = "basis") -> float:
        """:math:`\\Pi^*` by the verified min-max LP (class docstring); ``-inf`` where IC + IR is infeasible."""
        self.count["lp"] += 1
        env, sp = self._env_space(d)
        pi = self._lp_surplus(env, sp, start) if self.backend == "highs" else None
        if pi is None:
            pi = self._minmax(env, sp, d)
        if pi is None:
            self.ic_fail["lp"].append(d)
            value = -math.inf
        else:
            value = self._value(pi)
        self.lp_evaluations.append((d, value))
        return value

    def _minmax(self, env: Environment, sp: StateSpace, d: float) -> np.ndarray | None:
        self.cold += 1
        t0 = time.perf_counter()
        res = design.minmax(
            env,
            space=sp,
            ic=self.ic,
            outside_option=self.outside_option,
            backend=self.backend,
            memory_limit=self.memory_limit,
            method="lp",
        )
        self.parts["lp_solve"] += time.perf_counter() - t0
        if res.status == "infeasible":
            return None
        if res.status != "optimal":
            raise SolverFailure(f"the min-max LP failed at {self.name} = {d!r}: {res.status}: {res.message}")
        return res.surplus

    def _recursion_point(self, sp: StateSpace) -> np.ndarray | None:
        """The recursion's mechanism as LP columns, or None when the recursion gives no IC + IR mechanism here."""
        try:
            sol = self._recursion(sp)
        except (ValueError, MemoryError):  # a start is optional: the LP then starts cold
            return None
        t0 = time.perf_counter()
        point = _start_vector(sol.mechanism()) if sol.status == "optimal" else None
        self.parts["lp_start"] += time.perf_counter() - t0
        return point

    def _lp_surplus(self, env: Environment, sp: StateSpace, start: str) -> np.ndarray | None:
        """The warm-started HiGHS answer, or None when it is not a verified optimum (then ``_minmax`` decides)."""
        q = Question.parse(env, ic=self.ic, ir="interim", budget="none", outside_option=self.outside_option)
        if not self.memory_checked:  # sizes do not depend on the discount factor: refuse once, before building
            question_space(env, "minmax", self.memory_limit, space=sp, ic=q.ic, ir=q.ir, budget=q.budget)
            self.memory_checked = True
        t0 = time.perf_counter()
        lp = build_lp(sp, q)
        self.parts["lp_build"] += time.perf_counter() - t0
        point = None
        if start == "recursion" or self.basis is None:
            point = self._recursion_point(sp)
        t2 = time.perf_counter()
        out, basis = solve_warm(
            lp.A,
            lp.row_lower,
            lp.row_upper,
            lp.col_lower,
            lp.col_upper,
            lp.cost,
            basis=self.basis if point is None else None,
            start=point,
        )
        self.parts["lp_solve"] += time.perf_counter() - t2
        if out.status != "optimal":
            return None
        self.basis = basis
        t3 = time.perf_counter()
        res = lp_result(Result, "minmax", {**q.to_dict(), "backend": "highs"}, sp, lp, out, q, "highs")
        cert = attach_verified(res, Mechanism(sp, lp.variables.split(out.x)["x"]), q)
        self.parts["verify"] += time.perf_counter() - t3
        return res.surplus if cert.ok else None


def _confirmed_recursion_scan(
    crit: _Criterion, lo: float, hi: float, tol: float, grid: int | Sequence[float] | np.ndarray
) -> tuple[Scan | None, str]:
    """The recursion's scan when verified LP answers confirm it (:func:`confirm_scan`), else None; and why."""
    try:
        scan = scan_and_bisect(lambda d: crit.by_recursion(d, certified=True), lo, hi, tol, grid)
    except _Undecided as exc:
        return None, str(exc)
    n_rec = crit.count["recursion"]
    conf = confirm_scan(scan, lambda d: crit.by_lp(d, "recursion"))
    if not conf.confirmed:
        d_bad, v_bad = conf.disagreements[0]
        where = f"{crit.name} = {d_bad:.12g}"
        return None, f"the LP answer {v_bad:.6g} at {where} is on the other side than the recursion's"
    where = "both ends of every bracket" if scan.brackets else "the grid ends and the grid point nearest zero"
    return scan, (
        f"scanned and bisected by the recursion ({n_rec} evaluations, each certified tight, so each equal to the "
        f"LP optimum); the sign on each side confirmed by {len(conf.evaluations)} verified LP answers at {where}, "
        "each warm-started from the recursion's mechanism"
    )


def _scan_by_lp(
    crit: _Criterion, lo: float, hi: float, tol: float, grid: int | Sequence[float] | np.ndarray, lp_scan: str
) -> tuple[Scan, str, str]:
    """``method="lp"``: the scan, who made it (``"recursion"`` or ``"lp"``) and a sentence saying how."""
    if lp_scan == "confirm":
        scan, how = _confirmed_recursion_scan(crit, lo, hi, tol, grid)
        if scan is not None:
            return scan, "recursion", how
        how = f"every evaluation by the verified LP, since {how}"
    else:
        how = "every evaluation by the verified LP"
    n_before = crit.count["lp"]
    scan = scan_and_bisect(lambda d: crit.by_lp(d, "basis"), lo, hi, tol, grid)
    n_full = crit.count["lp"] - n_before
    starts = "each warm-started from the previous LP's optimal basis, the first from the recursion's mechanism"
    return scan, "lp", f"{how} ({n_full} LPs, {starts} when it has one)"


def critical_delta(
    model: Environment | Callable[[float], Environment],
    budget: str = "interim",
    lo: float = 0.01,
    hi: float = 0.99,
    tol: float = tolerances.BISECTION_WIDTH,
    method: str = "recursion",
    grid: int | Sequence[float] | np.ndarray = 41,
    *,
    horizon: int | None = None,
    tail: bool = False,
    ic: str = "bayesian",
    outside_option: Any = 0.0,
    backend: str = "highs",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    lp_scan: str = "confirm",
    parameter: str = "delta",
    ir: str = "interim",
) -> CriticalDelta:
    r"""Critical discount factor(s) for implementing the environment's allocation under ``budget`` balance.

    Parameters
    ----------
    model : Environment or callable
        An environment whose discount factor is varied (rebuilt as ``Environment(env.agents, env.actions,
        delta, env.horizon, env.allocation, name=env.name, meta=env.meta)``: the allocation is kept, so a
        :math:`\delta`-dependent allocation needs the callable form), or ``delta -> Environment``.
    budget : {"interim", "ex_ante", "ex_post"}
        Interim and ex post: :math:`\min_h \Pi^*(h) \ge 0` (Lamba 2022, Theorem 1); ex ante:
        :math:`\Pi^*(\text{root}) \ge 0` (Corollary 1).
    lo, hi : float
        Interval scanned (``0 <= lo < hi``; ``hi < 1`` for an infinite horizon).
    tol : float
        Width of the final brackets (default ``1e-9``).
    method : {"recursion", "lp", "team"}
        ``"recursion"``: every evaluation by :func:`mechlp.solve.recursion.solve` (fast; each answer checked for
        tightness). ``"lp"``: every sign the result rests on is a verified min-max LP answer (the LP of
        :func:`mechlp.solve.questions.minmax`), as ``lp_scan`` says. ``"team"``: the criterion is the
        participation slack of Athey and Segal's balanced team mechanism with a zero-sum bond
        (:func:`mechlp.constructions.participation.team_participation_slack`, ``bond="history"``): where it is
        non-negative :func:`~mechlp.constructions.participation.bonded_team` builds a mechanism with Bayesian IC,
        ``ir`` participation and ex post budget balance (so every ``budget``); where it is negative only that
        construction fails (status ``"refused"`` when it fails on the whole grid). A sufficient condition: its
        critical value is at or above the question's.
    grid : int or sequence of float
        Grid points scanned before bisection (default 41), or the points themselves.
    horizon, tail : optional
        Solve on a history tree of ``horizon`` periods (or a tree with a Markov tail with ``tail=True``)
        instead of the environment's natural space.
    ic : {"bayesian", "local"}
    outside_option :
        Participation levels, as in :func:`mechlp.solve.questions.minmax`.
    backend : {"highs", "cvxpy"}
        LP backend for ``method="lp"``.
    memory_limit : int
        Bytes, for the space of each evaluation.
    parameter : str
        What ``model`` varies, for messages and the result (``CriticalDelta.parameter``): ``"delta"`` (default,
        also ``"discount"``); any other name (e.g. ``"persistence"``: Lamba 2022, Corollary 3) needs a callable
        ``model`` (value -> Environment), and ``lo`` may then be negative.
    ir : {"interim", "ex_post", "ex_ante"}
        The participation notion. The min-max criterion of ``"recursion"`` and ``"lp"`` is Lamba's Theorem 1,
        which needs periodic interim participation, so they take ``"interim"`` only; ``method="team"`` takes all
        three (``"ex_post"``: node-by-node participation, what Athey and Segal's Proposition 3 gives).
    lp_scan : {"confirm", "full"}
        With ``method="lp"``. ``"confirm"`` (default): scan and bisect with the recursion, then evaluate the LP at
        both ends :math:`a < b` of every bracket (:func:`mechlp.model.bisection.confirm_scan`; without a bracket,
        at the grid ends and the grid point nearest zero), each LP warm-started from the recursion's mechanism
        at the same :math:`\delta`. The result stands when every LP answer is on the side the recursion found,
        so the LP itself changes sign in every reported bracket; otherwise, and whenever the recursion is not
        certified tight at every evaluation (then its :math:`\Pi^*` is only a lower bound) or cannot decide,
        every evaluation is redone by the LP as with ``"full"``. ``"full"``: every grid and bisection point an
        LP, each warm-started from the previous LP's optimal basis. ``scanned_by`` and ``lp_evaluations`` of
        the result say which evaluations were which.

    Returns
    -------
    CriticalDelta

    Raises
    ------
    ValueError
        For an unknown ``budget``, ``method`` or ``lp_scan``, a bad interval, ``tol`` or grid.
    SolverFailure
        For a failed evaluation (a solver error, or a recursion that cannot decide: its message says so;
        :class:`mechlp.model.answer.SolverFailure`, a ``RuntimeError``).
    TypeError
        When ``model`` is neither an environment nor a callable.
    """
    budget = parse_notion("budget", budget, allowed=BUDGETS)
    check_choice("method", method, METHODS)
    check_choice("lp_scan", lp_scan, LP_SCANS)
    ir = parse_notion("ir", ir, allowed=TEAM_IR)
    if method != "team" and ir != "interim":
        raise ValueError(
            f"ir={ir!r} needs method='team' (the bonded balanced team mechanism of Athey and Segal, section 6): the "
            "min-max criterion of method='recursion' / 'lp' is Lamba's Theorem 1, which holds for interim IR only"
        )
    if method == "team" and (horizon is not None or tail):
        raise ValueError("method='team' works on the infinite-horizon Markov form; horizon and tail do not apply")
    if not isinstance(parameter, str) or not parameter:
        raise TypeError(f"parameter must be a non-empty string (the name of what is varied), got {parameter!r}")
    discount = parameter in DISCOUNT_NAMES
    if isinstance(model, Environment) and not discount:
        raise ValueError(
            f"varying {parameter!r} needs model as a callable value -> Environment (an Environment only says how to "
            "vary its discount factor); on the command line: mechlp critical-delta MODEL --parameter KEY, any --set key"
        )
    if isinstance(model, Environment):
        base_env = model

        def factory(d: float) -> Environment:
            return _rebuild(base_env, d)

    elif callable(model):
        factory = model
    else:
        raise TypeError(f"model must be an Environment or a callable delta -> Environment, got {type(model).__name__}")
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if discount and not 0.0 <= lo < hi:
        raise ValueError(f"need 0 <= lo < hi, got lo={lo!r}, hi={hi!r}")
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    if tail and horizon is None:
        raise ValueError("tail=True needs horizon, the number of history-dependent periods before the Markov tail")
    crit = _Criterion(factory, budget, horizon, tail, ic, outside_option, backend, memory_limit, parameter)

    t0 = time.perf_counter()
    team_count = [0]

    def team_slack(d: float) -> float:
        team_count[0] += 1
        return team_participation_slack(factory(d), "history", ir)

    if method == "team":
        scan = scan_and_bisect(team_slack, lo, hi, tol, grid, threshold=-tolerances.FEASIBILITY)
        scanned_by, how = "team", ""
    elif method == "recursion":
        scan, scanned_by, how = scan_and_bisect(crit.by_recursion, lo, hi, tol, grid), "recursion", ""
    else:
        scan, scanned_by, how = _scan_by_lp(crit, lo, hi, tol, grid, lp_scan)
    seconds = time.perf_counter() - t0
    if crit.cold:
        how += (
            f"; {crit.cold} LP evaluations answered by a cold minmax(method='lp') (the cvxpy backend, or a warm "
            "HiGHS answer that was not a verified optimum, e.g. infeasible: then minmax's Farkas certificate decides)"
        )
    ic_fail = sorted(set(crit.ic_fail["recursion"] if scanned_by == "recursion" else []) | set(crit.ic_fail["lp"]))
    uncertified = crit.uncertified if method == "recursion" else []
    crit_name = "Pi*(root)" if budget == "ex_ante" else "min_h Pi*(h)"
    if method == "team":
        crit_name = f"min_h (1/I) sum_i f_i(h), the bonded team's {ir} participation slack"
    if scan.feasible_everywhere:
        msg = f"feasible on the whole grid [{scan.grid[0]:g}, {scan.grid[-1]:g}]: no critical {parameter} there"
    elif scan.infeasible_everywhere and method == "team":
        msg = (
            f"the bonded team mechanism is refused on the whole grid [{scan.grid[0]:g}, {scan.grid[-1]:g}] "
            "(this proves nothing about the question)"
        )
    elif scan.infeasible_everywhere:
        msg = f"infeasible on the whole grid [{scan.grid[0]:g}, {scan.grid[-1]:g}]: no value of {parameter} there works"
    else:
        parts = [f"{d} at {parameter} = {c:.10f}" for d, c in zip(scan.directions, scan.critical, strict=True)]
        msg = (f"{len(parts)} sign changes: " if len(parts) > 1 else "") + "; ".join(parts)
    if not scan.monotone and scan.non_increasing:
        msg += f"; the criterion is non-increasing in {parameter}"
    elif not scan.monotone:
        msg += f"; the criterion is NOT monotone in {parameter} ({_count_decreases(scan.violations)})"
    if ic_fail:
        msg += f"; IC itself fails at {len(ic_fail)} evaluated discount factors"
    if uncertified:
        msg += (
            f"; at {len(uncertified)} evaluated discount factors the recursion was not certified tight "
            "(use method='lp')"
        )
    if how:
        msg += f"; {how}"
    return CriticalDelta(
        budget,
        method,
        crit_name,
        scan,
        ic_fail,
        uncertified,
        crit.count["recursion"] + crit.count["lp"] + team_count[0],
        seconds,
        msg,
        scanned_by,
        lp_scan if method == "lp" else None,
        sorted(crit.lp_evaluations),
        crit.count["recursion"],
        how,
        dict(crit.parts),
        parameter,
        ir,
    )


# ---------------------------------------------------------------------------------------------- model
def interleaved_trade(
    n_types: int,
    discount: float = 0.5,
    persistence: float | None = None,
    horizon: int | str = "infinite",
) -> Environment:
    r"""Bilateral trade with values and costs on interleaved grids of ``[0, 1]`` (continuous-limit model).

    The ``2K`` points :math:`z_j = j / (2K - 1)` are dealt alternately: seller costs
    :math:`c_k = z_{2k}`, buyer values :math:`v_k = z_{2k+1}` (``k = 0..K-1``), so
    :math:`0 = c_1 < v_1 < c_2 < \dots < c_K < v_K = 1`; both are uniform on the grid, and as ``K`` grows both
    tend to the uniform distribution on ``[0, 1]`` (Athey and Miller 2007; Lamba 2022, footnote 24).

    Parameters
    ----------
    n_types : int
        ``K >= 1``.
    discount : float
    persistence : float, optional
        ``None`` (default): iid types, every kernel row the uniform prior. Otherwise the renewal kernel of
        :func:`mechlp.catalog.examples.renewal_matrix` (stay with this probability, else move uniformly).
    horizon : int or "infinite"

    Returns
    -------
    Environment
        ``env.meta["kind"] == "bilateral_trade"``; ``meta["grid"] = "interleaved"``.
    """
    if isinstance(n_types, bool) or not isinstance(n_types, int | np.integer) or n_types < 1:
        raise ValueError(f"n_types must be a positive integer, got {n_types!r}")
    k = int(n_types)
    z = np.arange(2 * k) / max(2 * k - 1, 1)
    uni = np.full(k, 1.0 / k)
    kern = np.tile(uni, (k, 1)) if persistence is None else renewal_matrix(k, persistence)
    env = bilateral_trade(
        z[1::2],
        z[0::2],
        uni,
        uni,
        kern,
        kern,
        discount,
        horizon,
        buyer_types=[f"v{j + 1}" for j in range(k)],
        seller_types=[f"c{j + 1}" for j in range(k)],
        name=f"interleaved_trade_K{k}",
    )
    env.meta["grid"] = "interleaved"
    env.meta["persistence"] = persistence
    return env

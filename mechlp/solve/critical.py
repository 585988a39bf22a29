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

from mechlp.model import tolerances
from mechlp.model.answer import Answer
from mechlp.model.bisection import Scan, scan_and_bisect
from mechlp.model.environment import Environment, bilateral_trade, renewal_matrix
from mechlp.model.question import check_choice, parse_notion
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, StateSpace, TreeWithTail
from mechlp.solve import questions as design
from mechlp.solve import recursion

__all__ = [
    "BUDGETS",
    "METHODS",
    "CriticalDelta",
    "Scan",
    "critical_delta",
    "scan_and_bisect",
    "interleaved_trade",
]

BUDGETS: tuple[str, ...] = ("interim", "ex_ante", "ex_post")
METHODS: tuple[str, ...] = ("recursion", "lp")


# ---------------------------------------------------------------------------------------------- critical delta
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
    seconds : float
    message : str
    timings : dict
        (property) ``{"scan": seconds}``.
    size : dict
        (property) ``grid`` points and ``evaluations``.

    JSON (:meth:`to_dict`): the contract's keys plus ``budget``, ``method``, ``criterion``, ``grid``, ``values``
    (``"-inf"`` where IC fails), ``brackets``, ``critical``, ``directions``, ``monotone``, ``violations``,
    ``feasible_everywhere``, ``infeasible_everywhere``, ``ic_infeasible``, ``not_certified``, ``evaluations``,
    ``seconds``.
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

    verification = None
    certificate = None

    @property
    def status(self) -> str:
        if self.scan.brackets:
            return "bracketed"
        return "feasible" if self.scan.feasible_everywhere else "infeasible"

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
        lines = [
            f"critical discount factor for efficiency under {self.budget} budget balance "
            f"(criterion {self.criterion} >= 0, Lamba 2022 Theorem 1 / Corollary 1; method {self.method}):",
            f"  {self.message}",
            f"  grid of {s.grid.size} points on [{s.grid[0]:g}, {s.grid[-1]:g}], {self.evaluations} evaluations, "
            f"{self.seconds:.2f} s",
        ]
        for (a, b), c, d in zip(s.brackets, s.critical, s.directions, strict=True):
            lines.append(f"  {d} at delta = {c:.10f}  (bracket [{a:.12f}, {b:.12f}])")
        if s.monotone:
            lines.append("  the criterion is non-decreasing in delta over every evaluation")
        else:
            lines.append(f"  the criterion is NOT monotone in delta ({len(s.violations)} decreases listed):")
            for d1, v1, d2, v2 in s.violations[:5]:
                lines.append(f"    {v1:.6g} at delta = {d1:.6g} > {v2:.6g} at delta = {d2:.6g}")
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
        }


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
    method : {"recursion", "lp"}
        :func:`mechlp.solve.recursion.solve` (fast; each answer checked for tightness) or
        :func:`mechlp.solve.questions.minmax` (one LP per evaluation, verified).
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

    Returns
    -------
    CriticalDelta

    Raises
    ------
    ValueError
        For an unknown ``budget`` or ``method``, a bad interval, ``tol`` or grid, or a failed evaluation
        (a solver error, or a recursion that cannot decide: its message says so).
    TypeError
        When ``model`` is neither an environment nor a callable.
    """
    budget = parse_notion("budget", budget, allowed=BUDGETS)
    check_choice("method", method, METHODS)
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
    if not 0.0 <= lo < hi:
        raise ValueError(f"need 0 <= lo < hi, got lo={lo!r}, hi={hi!r}")
    if tail and horizon is None:
        raise ValueError("tail=True needs horizon, the number of history-dependent periods before the Markov tail")
    ic_fail: list[float] = []
    uncertified: list[float] = []
    spaces: dict[str, StateSpace] = {}
    count = 0

    def criterion(d: float) -> float:
        nonlocal count
        count += 1
        env = factory(d)
        if not isinstance(env, Environment):
            raise TypeError(f"the factory returned {type(env).__name__} at delta = {d!r}, not an Environment")
        sp = _space_for(env, spaces.get("base"), horizon, tail, memory_limit)
        spaces.setdefault("base", sp)
        if method == "recursion":
            sol = recursion.solve(sp, ic=ic, outside_option=outside_option, memory_limit=memory_limit)
            if sol.status == "infeasible":
                ic_fail.append(d)
                return -math.inf
            if sol.status != "optimal":
                raise ValueError(f"the recursion cannot decide at delta = {d!r}: {sol.message}")
            if not sol.pointwise_optimal:
                uncertified.append(d)
            pi = sol.surplus
        else:
            res = design.minmax(env, space=sp, ic=ic, outside_option=outside_option, backend=backend)
            if res.status == "infeasible":
                ic_fail.append(d)
                return -math.inf
            if res.status != "optimal":
                raise ValueError(f"the min-max LP failed at delta = {d!r}: {res.status}: {res.message}")
            pi = res.surplus
        return float(pi[0]) if budget == "ex_ante" else float(pi.min())

    t0 = time.perf_counter()
    scan = scan_and_bisect(criterion, lo, hi, tol, grid)
    seconds = time.perf_counter() - t0
    crit_name = "Pi*(root)" if budget == "ex_ante" else "min_h Pi*(h)"
    if scan.feasible_everywhere:
        msg = f"feasible on the whole grid [{scan.grid[0]:g}, {scan.grid[-1]:g}]: no critical delta there"
    elif scan.infeasible_everywhere:
        msg = f"infeasible on the whole grid [{scan.grid[0]:g}, {scan.grid[-1]:g}]: no discount factor there works"
    else:
        parts = [f"{d} at delta = {c:.10f}" for d, c in zip(scan.directions, scan.critical, strict=True)]
        msg = (f"{len(parts)} sign changes: " if len(parts) > 1 else "") + "; ".join(parts)
    if not scan.monotone:
        msg += f"; the criterion is NOT monotone in delta ({len(scan.violations)} decreases found)"
    if ic_fail:
        msg += f"; IC itself fails at {len(ic_fail)} evaluated discount factors"
    if uncertified:
        msg += (
            f"; at {len(uncertified)} evaluated discount factors the recursion was not certified tight "
            "(use method='lp')"
        )
    return CriticalDelta(budget, method, crit_name, scan, ic_fail, uncertified, count, seconds, msg)


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

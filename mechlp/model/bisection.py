r"""Sign changes of a scalar criterion of one parameter: grid scan, bisection, and a monotonicity check.

Critical values in mechlp (the critical discount factor of Lamba 2022, Theorem 1 / Corollary 1, and of Yoon's
2015 condition (*); docs/design.md section 7.5) are the parameters where a criterion :math:`f` crosses a feasibility
threshold :math:`\tau`: "feasible" means :math:`f(d) \ge \tau`. Nothing here assumes that :math:`f` is monotone.
:func:`scan_and_bisect` evaluates :math:`f` on a grid :math:`d_0 < \dots < d_G`, bisects *every* bracket
:math:`[d_c, d_{c+1}]` whose ends lie on different sides of :math:`\tau` until it is at most ``tol`` wide, and
checks on all evaluations (grid and bisection points, sorted by :math:`d`) that :math:`f` is non-decreasing:
neighbouring evaluations :math:`d_1 < d_2` violate it when

.. math::
   f(d_1) > f(d_2) + \texttt{tolerances.MONOTONE} \cdot \max(1, |f(d_1)|, |f(d_2)|)

(the maximum over the finite values, so a fall to :math:`-\infty` counts; two infinite values never violate it).
Sign changes that cancel between two grid points are invisible: refine the grid when the criterion is not
monotone.

:func:`confirm_scan` re-evaluates a scan's decisive points by a second (slower, more trusted) evaluation of the
same criterion: both ends of every bracket, so the side of the threshold on each side of every reported critical
value is established by the second evaluation alone; without a bracket, the ends of the grid and the grid point
nearest the threshold. A scan is *confirmed* when every re-evaluation lands on the side the scan found.

This is plain numerics on a callable, so it sits in the model layer where every user (constructions, solve)
can import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mechlp.model import tolerances

__all__ = [
    "Confirmation",
    "Scan",
    "scan_and_bisect",
    "check_grid",
    "confirm_scan",
    "feasible_intervals",
    "monotone_violations",
    "MAX_VIOLATIONS",
]

#: At most this many monotonicity violations are kept in :attr:`Scan.violations`.
MAX_VIOLATIONS = 20


@dataclass
class Scan:
    """What :func:`scan_and_bisect` found for a function of one parameter (a discount factor in mechlp).

    Attributes
    ----------
    grid, values : ndarray
        The scanned parameters and the criterion there.
    brackets : list of (float, float)
        One per sign change seen on the grid, each of width at most ``tol`` after bisection.
    critical : list of float
        Midpoints of ``brackets``.
    directions : list of str
        ``"becomes feasible"`` when the criterion turns non-negative (reaches the threshold) as the parameter
        rises, else ``"becomes infeasible"``.
    evaluations : list of (float, float)
        Every evaluation, grid and bisection, sorted by the parameter.
    monotone : bool
        The criterion is non-decreasing over ``evaluations`` (checked, never assumed; module docstring).
    violations : list of (float, float, float, float)
        ``(d1, v1, d2, v2)`` with ``d1 < d2`` neighbouring evaluations and ``v1 > v2`` beyond
        ``tolerances.MONOTONE`` (at most ``MAX_VIOLATIONS`` listed).
    """

    grid: np.ndarray
    values: np.ndarray
    brackets: list[tuple[float, float]]
    critical: list[float]
    directions: list[str]
    evaluations: list[tuple[float, float]]
    monotone: bool
    violations: list[tuple[float, float, float, float]]

    @property
    def non_increasing(self) -> bool:
        """The criterion never rises over ``evaluations`` (:func:`monotone_violations` of the negated values is
        empty): monotone the other way, as a criterion in persistence is (Lamba 2022, Corollary 3)."""
        return not monotone_violations([(d, -v) for d, v in self.evaluations])

    @property
    def feasible_intervals(self) -> list[tuple[float, float]]:
        """The feasible ranges of the parameter on the grid (:func:`feasible_intervals`)."""
        return feasible_intervals(self.grid, self.critical, self.directions, self.feasible_everywhere)

    @property
    def feasible_everywhere(self) -> bool:
        """No sign change, and every grid value is at least ``-tolerances.SURPLUS``."""
        return not self.brackets and bool(np.all(self.values >= -tolerances.SURPLUS))

    @property
    def infeasible_everywhere(self) -> bool:
        """No sign change, and every grid value is below ``-tolerances.SURPLUS``."""
        return not self.brackets and bool(np.all(~(self.values >= -tolerances.SURPLUS)))


def feasible_intervals(
    grid: Sequence[float] | np.ndarray,
    critical: Sequence[float],
    directions: Sequence[str],
    feasible_everywhere: bool,
) -> list[tuple[float, float]]:
    """The ranges of the parameter on ``[grid[0], grid[-1]]`` where the criterion is feasible, read off a scan:
    the sign changes (``critical``, with their ``directions``) are the inner ends, the ends of the grid the outer
    ones; without a sign change the whole grid or nothing (``feasible_everywhere``)."""
    first, last = float(grid[0]), float(grid[-1])
    if not len(critical):
        return [(first, last)] if feasible_everywhere else []
    out: list[tuple[float, float]] = []
    start = first if directions[0] == "becomes infeasible" else None
    for c, d in zip(critical, directions, strict=True):
        if d == "becomes feasible":
            start = float(c)
        elif start is not None:
            out.append((start, float(c)))
            start = None
    if start is not None:
        out.append((start, last))
    return out


def check_grid(lo: float, hi: float, grid: int | Sequence[float] | np.ndarray) -> np.ndarray:
    """The scan points: ``grid`` equally spaced points on ``[lo, hi]``, or the given strictly increasing points.

    Raises
    ------
    TypeError
        For a bool ``grid``.
    ValueError
        For fewer than 2 points, a non-finite point or points that do not increase strictly.
    """
    if isinstance(grid, bool):
        raise TypeError("grid must be a number of points or a sequence of discount factors, got a bool")
    if isinstance(grid, int | np.integer):
        if grid < 2:
            raise ValueError(f"grid must have at least 2 points, got {grid}")
        return np.linspace(lo, hi, int(grid))
    pts = np.asarray(grid, dtype=float)
    if pts.ndim != 1 or pts.size < 2:
        raise ValueError(f"grid must be a number of points or at least 2 discount factors, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("grid has a non-finite discount factor")
    if np.any(np.diff(pts) <= 0):
        raise ValueError("grid must be strictly increasing")
    return pts


def monotone_violations(evaluations: Sequence[tuple[float, float]]) -> list[tuple[float, float, float, float]]:
    r"""Every neighbouring pair ``(d1, v1, d2, v2)`` of ``evaluations`` (sorted by ``d``) with
    :math:`v_1 > v_2 + \texttt{tolerances.MONOTONE} \max(1, |v_1|, |v_2|)` (the maximum over the finite values,
    so that a fall from a finite value to :math:`-\infty` counts); pairs of two infinite values are skipped."""
    out = []
    for (d1, v1), (d2, v2) in zip(evaluations[:-1], evaluations[1:], strict=True):
        if math.isinf(v1) and math.isinf(v2):
            continue
        scale = max([1.0] + [abs(v) for v in (v1, v2) if math.isfinite(v)])  # a drop to -inf is a decrease
        if v1 > v2 + tolerances.MONOTONE * scale:
            out.append((d1, v1, d2, v2))
    return out


def scan_and_bisect(
    f: Callable[[float], float],
    lo: float,
    hi: float,
    tol: float = tolerances.BISECTION_WIDTH,
    grid: int | Sequence[float] | np.ndarray = 41,
    threshold: float = -tolerances.SURPLUS,
) -> Scan:
    r"""Scan ``f`` on a grid over ``[lo, hi]``, bisect every sign change, and check monotonicity on the way.

    Parameters
    ----------
    f : callable
        ``d -> criterion``; "feasible" means ``f(d) >= threshold``. ``-inf`` is allowed (infeasible);
        NaN is not.
    lo, hi : float
        Interval, ``lo < hi`` (ignored when ``grid`` is a sequence, whose ends are used).
    tol : float
        Width of the final brackets.
    grid : int or sequence of float
        Number of equally spaced points (at least 2), or the points themselves (strictly increasing).
    threshold : float
        Feasibility threshold (default ``-tolerances.SURPLUS``: a surplus is negative only below it).

    Returns
    -------
    Scan

    Raises
    ------
    ValueError
        For ``lo >= hi``, ``tol <= 0``, a bad ``grid`` or a NaN value of ``f``.
    """
    if not (isinstance(tol, int | float | np.floating) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(grid, int | np.integer) and not isinstance(grid, bool) and not float(lo) < float(hi):
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    deltas = check_grid(float(lo), float(hi), grid)
    seen: dict[float, float] = {}

    def value(d: float) -> float:
        v = float(f(float(d)))
        if math.isnan(v):
            raise ValueError(f"the criterion is NaN at delta = {d!r}")
        seen[float(d)] = v
        return v

    vals = np.array([value(d) for d in deltas])
    ok = vals >= threshold
    brackets, crit, dirs = [], [], []
    for c in np.flatnonzero(ok[1:] != ok[:-1]):  # every sign change seen on the grid
        a, b = float(deltas[c]), float(deltas[c + 1])
        ok_a = bool(ok[c])
        while b - a > tol:
            mid = 0.5 * (a + b)
            if (value(mid) >= threshold) == ok_a:
                a = mid
            else:
                b = mid
        brackets.append((a, b))
        crit.append(0.5 * (a + b))
        dirs.append("becomes infeasible" if ok_a else "becomes feasible")
    evals = sorted(seen.items())
    violations = monotone_violations(evals)
    return Scan(deltas, vals, brackets, crit, dirs, evals, not violations, violations[:MAX_VIOLATIONS])


@dataclass
class Confirmation:
    """What :func:`confirm_scan` found: the second evaluation at the scan's decisive points.

    Attributes
    ----------
    evaluations : list of (float, float)
        ``(d, g(d))`` at every point re-evaluated, sorted by ``d``.
    expected : list of bool
        Per point, the side the scan found (``True``: ``f(d) >= threshold``).
    disagreements : list of (float, float)
        ``(d, g(d))`` where ``g`` lands on the other side of the threshold than the scan.
    """

    evaluations: list[tuple[float, float]]
    expected: list[bool]
    disagreements: list[tuple[float, float]]

    @property
    def confirmed(self) -> bool:
        """Every re-evaluation is on the side of the threshold the scan found."""
        return not self.disagreements


def confirm_scan(
    scan: Scan, g: Callable[[float], float], threshold: float = -tolerances.SURPLUS, stop_early: bool = True
) -> Confirmation:
    r"""Re-evaluate the decisive points of ``scan`` by ``g`` (module docstring).

    The points are both ends :math:`a < b` of every bracket of ``scan`` (their sides are known: the bracket's
    direction) or, when ``scan`` has no bracket, the first and last grid points and the grid point whose value is
    nearest the threshold (``scan.values``; the grid value of largest :math:`f` when all are ``-inf``). A
    bracket :math:`[a, b]` is confirmed when :math:`g(a)` and :math:`g(b)` lie on the sides of ``threshold`` that
    ``scan`` found, so :math:`g` itself changes sign in :math:`[a, b]`.

    Parameters
    ----------
    scan : Scan
        From :func:`scan_and_bisect` on a criterion ``f`` with the same ``threshold``.
    g : callable
        ``d -> criterion`` (``-inf`` allowed, NaN not).
    threshold : float
    stop_early : bool
        Stop at the first disagreement (default), leaving the remaining points unevaluated.

    Returns
    -------
    Confirmation

    Raises
    ------
    ValueError
        For a NaN value of ``g``.
    """
    points: dict[float, bool] = {}
    for (a, b), direction in zip(scan.brackets, scan.directions, strict=True):
        ok_a = direction == "becomes infeasible"
        points[float(a)] = ok_a
        points[float(b)] = not ok_a
    if not scan.brackets:
        vals = np.asarray(scan.values, dtype=float)
        finite = np.isfinite(vals)
        near = int(np.argmin(np.where(finite, np.abs(vals - threshold), np.inf))) if finite.any() else 0
        for c in sorted({0, near, vals.size - 1}):
            points[float(scan.grid[c])] = bool(vals[c] >= threshold)
    evals, expected, wrong = [], [], []
    for d in sorted(points):
        v = float(g(d))
        if math.isnan(v):
            raise ValueError(f"the criterion is NaN at delta = {d!r}")
        evals.append((d, v))
        expected.append(points[d])
        if (v >= threshold) != points[d]:
            wrong.append((d, v))
            if stop_early:
                break
    return Confirmation(evals, expected, wrong)

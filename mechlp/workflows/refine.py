r"""Convergence reports for discretised models: solve at ``K = 5, 10, 20, 40, ...`` and extrapolate the limit.

:func:`refine` evaluates :math:`q_K` = ``solve(build(K))`` at increasing ``ks``, reports the sequence, its
differences :math:`d_j = q_{K_{j+1}} - q_{K_j}`, their ratios :math:`r_j = d_{j-1}/d_j` and the observed order
:math:`\hat p_j = \log r_j / \log s` (for a constant refinement ratio :math:`s = K_{j+1}/K_j`), and a Richardson
extrapolation of :math:`\lim_{K\to\infty} q_K` under the error model

.. math:: q_K = q_\infty + c_0 K^{-p} + c_1 K^{-(p+1)} + \dots + c_{m-1} K^{-(p+m-1)} + o(K^{-(p+m-1)}).

Richardson's table (``terms`` = :math:`m` error terms removed, the last :math:`m + 1` values used):
:math:`T_{j,0} = q_{K_j}` and

.. math:: T_{j,l} = T_{j,l-1} + \frac{T_{j,l-1} - T_{j-1,l-1}}{s^{\,p+l-1} - 1}, \qquad l = 1..m,

so with one term the limit is :math:`q_{K_n} + (q_{K_n} - q_{K_{n-1}})/((K_n/K_{n-1})^p - 1)` (any two ``ks``).
With ``order=None`` the leading order :math:`p` is the observed order of the last three values.

The error estimate is the change of the extrapolated limit when the finest value is dropped,
:math:`|L(q_{K_1..K_n}) - L(q_{K_1..K_{n-1}})|` (the same procedure, the order re-estimated): a heuristic, not a
bound. It is honest when the error model holds from the coarser values on; when the observed order is still
drifting it overstates the error, and when it happens to be constant on a sequence it can understate it (give
``order`` when the theory knows it, and check the ``orders`` column).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mechlp.model.answer import dumps

__all__ = ["Refinement", "refine", "richardson"]

#: Relative size below which a difference counts as zero (the sequence has converged to rounding).
_ROUNDING = 64 * np.finfo(float).eps


def _geometric_ratio(ks: np.ndarray) -> float | None:
    """The constant ratio ``K_{j+1}/K_j`` of the integers ``ks`` (checked exactly: :math:`K_{j+1} K_{j-1} =
    K_j^2`), or None when the ratios differ."""
    k = [int(x) for x in ks]
    if any(k[j + 1] * k[j - 1] != k[j] * k[j] for j in range(1, len(k) - 1)):
        return None
    return k[1] / k[0]


def _observed_order(ks: np.ndarray, qs: np.ndarray) -> float:
    """Observed order of the last three values (nan when the differences vanish or change sign)."""
    d1, d2 = qs[-2] - qs[-3], qs[-1] - qs[-2]
    if d1 == 0 or d2 == 0 or d1 * d2 < 0:
        return math.nan
    s = ks[-1] / ks[-2]
    return math.log(d1 / d2) / math.log(s)


def richardson(ks: Sequence[float], values: Sequence[float], order: float | None = None, terms: int = 1) -> float:
    r"""Richardson extrapolation of :math:`\lim_{K\to\infty} q_K` from the last values of a sequence.

    Uses the table of the module docstring on the last ``terms + 1`` values, with leading order ``order``
    (default: the observed order :math:`\log(d_{n-2}/d_{n-1})/\log s` of the last three values). When the last
    difference is zero to rounding the sequence has converged and its last value is returned.

    Parameters
    ----------
    ks : sequence of float
        Increasing numbers of points.
    values : sequence of float
        :math:`q_K` at ``ks``.
    order : float, optional
        Leading order :math:`p > 0` of the error :math:`c K^{-p}`.
    terms : int
        Error terms removed, orders :math:`p, p+1, \dots, p + \text{terms} - 1`. Beyond the first, the table
        assumes a constant ratio :math:`s = K_{j+1}/K_j` (:func:`refine` checks it).

    Returns
    -------
    float
        The extrapolated limit, ``nan`` when the observed order is undefined (the differences change sign) or
        not positive.

    Raises
    ------
    ValueError
        When ``ks`` and ``values`` differ in length or are fewer than ``terms + 1`` (one more with
        ``order=None``).
    """
    k = np.asarray(ks, dtype=float)
    q = np.asarray(values, dtype=float)
    need = int(terms) + 1 + (order is None)
    if k.shape != q.shape or k.ndim != 1 or k.size < need:
        raise ValueError(
            f"ks and values must be two sequences of the same length >= {need} (terms={terms}, order={order!r}); "
            f"got {k.size} and {q.size}"
        )
    scale = max(1.0, float(np.max(np.abs(q))))
    if abs(q[-1] - q[-2]) <= _ROUNDING * scale:
        return float(q[-1])
    p = _observed_order(k, q) if order is None else float(order)
    if not p > 0:
        return math.nan
    use_k, use_q = k[-(terms + 1) :], q[-(terms + 1) :].copy()
    table = use_q
    for level in range(1, terms + 1):
        ratio = use_k[level:] / use_k[:-level]
        if level > 1:  # beyond the first level the step must be the same everywhere (checked by refine)
            ratio = np.full(table.size - 1, use_k[1] / use_k[0])
        table = table[1:] + (table[1:] - table[:-1]) / (ratio ** (p + level - 1) - 1.0)
    return float(table[-1])


@dataclass
class Refinement:
    r"""The convergence report of :func:`refine`.

    Attributes
    ----------
    ks : ndarray of int
        Numbers of points solved.
    values : ndarray
        :math:`q_K` at each ``K``.
    differences : ndarray, shape (n - 1,)
        :math:`d_j = q_{K_{j+1}} - q_{K_j}`.
    ratios : ndarray, shape (n - 2,)
        :math:`d_{j-1}/d_j` (about :math:`s^p` when the error is :math:`c K^{-p}`).
    orders : ndarray, shape (n - 2,)
        Observed orders :math:`\log(d_{j-1}/d_j)/\log s_j`, :math:`s_j = K_{j+1}/K_j`.
    order : float
        The leading order used for the limit (given, or the last observed order; ``nan`` when undefined).
    order_given : bool
    terms : int
        Error terms removed (module docstring).
    limit : float
        Richardson extrapolation from all values (:func:`richardson`).
    error : float
        :math:`|L_n - L_{n-1}|`: the change of the limit when the finest value is dropped (``nan`` when there
        are too few values for both).
    exact : float or None
        The known limit, when given; then :attr:`limit_error` and the table's ``error`` column compare to it.
    name : str
        What :math:`q` is.
    seconds : ndarray
        Wall time of ``build`` plus ``solve`` at each ``K``.
    message : str
    """

    ks: np.ndarray
    values: np.ndarray
    differences: np.ndarray
    ratios: np.ndarray
    orders: np.ndarray
    order: float
    order_given: bool
    terms: int
    limit: float
    error: float
    exact: float | None = None
    name: str = "value"
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    message: str = ""

    @property
    def limit_error(self) -> float | None:
        """:math:`|L - q_\\infty|` against :attr:`exact` (``None`` without it)."""
        return None if self.exact is None else abs(self.limit - self.exact)

    def table(self) -> pd.DataFrame:
        """One row per ``K``: ``K``, the value, ``difference`` (to the previous ``K``), ``ratio``, ``order``
        (observed up to this ``K``), ``seconds`` and, with :attr:`exact`, ``error`` :math:`q_K - q_\\infty`."""
        n = self.ks.size
        pad = np.full(n, np.nan)
        diff, ratio, order = pad.copy(), pad.copy(), pad.copy()
        diff[1:] = self.differences
        ratio[2:] = self.ratios
        order[2:] = self.orders
        cols: dict[str, Any] = {"K": self.ks, self.name: self.values, "difference": diff, "ratio": ratio}
        cols["order"] = order
        if self.exact is not None:
            cols["error"] = self.values - self.exact
        cols["seconds"] = self.seconds if self.seconds.size == n else pad
        return pd.DataFrame(cols)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the table's columns as lists); NaN is written as ``null`` by :meth:`to_json`."""
        return {
            "kind": "Refinement",
            "name": self.name,
            "ks": self.ks,
            "values": self.values,
            "differences": self.differences,
            "ratios": self.ratios,
            "orders": self.orders,
            "order": self.order,
            "order_given": self.order_given,
            "terms": self.terms,
            "limit": self.limit,
            "error": self.error,
            "exact": self.exact,
            "limit_error": self.limit_error,
            "seconds": self.seconds,
            "message": self.message,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` (:func:`mechlp.model.answer.dumps`)."""
        return dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        return self.message + "\n" + self.table().to_string(index=False)


def _check_ks(ks: Any) -> np.ndarray:
    if isinstance(ks, str | bytes) or not isinstance(ks, Sequence | np.ndarray):
        raise TypeError(f"ks must be a sequence of integers, got {type(ks).__name__}")
    out = []
    for j, k in enumerate(ks):
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"ks[{j}] must be a positive integer, got {k!r}")
        out.append(int(k))
    arr = np.asarray(out, dtype=int)
    bad = np.flatnonzero(np.diff(arr) <= 0)
    if bad.size:
        raise ValueError(
            f"ks must be strictly increasing; ks[{int(bad[0]) + 1}] = {arr[bad[0] + 1]} follows {arr[bad[0]]}"
        )
    return arr


def refine(
    build: Callable[[int], Any],
    solve: Callable[[Any], float] | None = None,
    ks: Sequence[int] = (5, 10, 20, 40),
    *,
    order: float | None = None,
    terms: int = 1,
    exact: float | None = None,
    name: str = "value",
) -> Refinement:
    r"""Solve a discretised model at each ``K`` of ``ks`` and report the convergence (module docstring).

    Parameters
    ----------
    build : callable
        ``K -> model`` (e.g. ``lambda k: yoon_continuous(k)``).
    solve : callable, optional
        ``model -> float``, the number whose limit is wanted; default: ``build`` itself returns the number.
    ks : sequence of int
        Strictly increasing numbers of points (default ``(5, 10, 20, 40)``). With ``order=None`` or
        ``terms > 1`` they must have a constant ratio :math:`K_{j+1}/K_j`.
    order : float, optional
        Leading order :math:`p > 0` of the discretisation error :math:`c K^{-p}`; default: the observed order
        of the last three values.
    terms : int
        Error terms removed by the Richardson table (orders :math:`p, \dots, p + \text{terms} - 1`), ``>= 1``.
    exact : float, optional
        The known limit (a closed form from the paper); the report then states the error of every value and of
        the extrapolated limit.
    name : str
        What the number is (the table's column).

    Returns
    -------
    Refinement
        ``limit`` is :func:`richardson` of all values, ``error`` :math:`|L_n - L_{n-1}|` (``nan`` when the
        values before the finest are too few to extrapolate).

    Raises
    ------
    ValueError
        For ``ks`` that are not strictly increasing positive integers, too few of them (``terms + 1`` values,
        one more with ``order=None``), ratios that are not constant where needed, ``order <= 0``,
        ``terms < 1``, or a ``solve`` that does not return a finite number (the message names ``K``).
    TypeError
        When ``build`` or ``solve`` is not callable, or ``ks`` is not a sequence.
    """
    if not callable(build):
        raise TypeError(f"build must be a callable K -> model, got {type(build).__name__}")
    if solve is not None and not callable(solve):
        raise TypeError(f"solve must be a callable model -> float, got {type(solve).__name__}")
    k = _check_ks(ks)
    if isinstance(terms, bool) or not isinstance(terms, int | np.integer) or terms < 1:
        raise ValueError(f"terms must be an integer >= 1, got {terms!r}")
    terms = int(terms)
    if order is not None:
        if isinstance(order, bool) or not isinstance(order, int | float | np.integer | np.floating):
            raise ValueError(f"order must be a positive number, got {order!r}")
        if not (math.isfinite(order) and order > 0):
            raise ValueError(f"order must be a positive number, got {order!r}")
    need = terms + 1 + (order is None)
    if k.size < need:
        raise ValueError(
            f"ks has {k.size} values; order={order!r} with terms={terms} needs at least {need} "
            f"({terms + 1} for the table{', one more to observe the order' if order is None else ''})"
        )
    if (order is None or terms > 1) and _geometric_ratio(k) is None:
        raise ValueError(
            f"ks {k.tolist()} have no constant ratio K[j+1]/K[j]; the observed order and a table with terms > 1 "
            "need one (e.g. (5, 10, 20, 40)), or give order with terms=1"
        )
    values = np.empty(k.size)
    seconds = np.empty(k.size)
    for j, kk in enumerate(k):  # one model per K (the models differ in size; nothing to vectorise)
        t0 = time.perf_counter()
        model = build(int(kk))
        out = model if solve is None else solve(model)
        seconds[j] = time.perf_counter() - t0
        if isinstance(out, bool) or not isinstance(out, int | float | np.integer | np.floating):
            raise ValueError(f"solve must return a finite number; at K={kk} it returned {type(out).__name__}")
        if not math.isfinite(float(out)):
            raise ValueError(f"solve must return a finite number; at K={kk} it returned {out!r}")
        values[j] = float(out)
    diffs = np.diff(values)
    scale = max(1.0, float(np.max(np.abs(values))))
    live = np.abs(diffs) > _ROUNDING * scale  # differences above rounding (others carry no order)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(live[1:], diffs[:-1] / np.where(live[1:], diffs[1:], 1.0), np.nan)
        ok = live[:-1] & live[1:] & (ratios > 0)
        orders = np.where(ok, np.log(np.where(ok, ratios, 1.0)) / np.log(k[2:] / k[1:-1]), np.nan)
    limit = richardson(k, values, order, terms)
    used = float(order) if order is not None else (float(orders[-1]) if orders.size else math.nan)
    error = math.nan
    if k.size > need:
        error = abs(limit - richardson(k[:-1], values[:-1], order, terms))
    p_txt = f"order {used:.4g} ({'given' if order is not None else 'observed'})"
    msg = (
        f"{name} at K = {', '.join(str(int(x)) for x in k)}: {', '.join(f'{v:.10g}' for v in values)}; "
        f"Richardson limit {limit:.10g} ({p_txt}, {terms} term{'s' if terms > 1 else ''}), "
        f"estimated error {error:.3g}"
    )
    if exact is not None:
        msg += f"; exact {float(exact):.10g}: the limit is off by {abs(limit - float(exact)):.3g}"
        msg += f" (the finest value by {abs(values[-1] - float(exact)):.3g})"
    if not live[-1]:
        msg += "; the last difference is zero to rounding: the sequence has converged, the limit is its last value"
    if math.isnan(limit):
        msg += "; no limit: the differences change sign or do not shrink (refine further or give order)"
    return Refinement(
        ks=k,
        values=values,
        differences=diffs,
        ratios=ratios,
        orders=orders,
        order=used,
        order_given=order is not None,
        terms=terms,
        limit=limit,
        error=error,
        exact=None if exact is None else float(exact),
        name=name,
        seconds=seconds,
        message=msg,
    )

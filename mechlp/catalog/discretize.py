r"""Continuous types by discretisation: priors on an interval and AR(1) processes at ``K`` points.

Every discretiser returns a :class:`TypeGrid` (points, prior, Markov kernel); :func:`trade_from_types` turns a
buyer's and a seller's grid into a bilateral-trade :class:`~mechlp.model.environment.Environment`, and
:func:`mechlp.workflows.refine.refine` solves it at ``K = 5, 10, 20, 40, ...`` and extrapolates the limit.

Priors on :math:`[a, b]` (:func:`uniform_types`, :func:`beta_types`), with :math:`h = (b - a)/K`

``method="bins"`` (default)
    ``K`` equal-width bins :math:`[a + kh, a + (k+1)h)`; the point of bin ``k`` is its midpoint
    :math:`x_k = a + (k + \tfrac12) h` and its probability the bin's mass :math:`p_k = F(a + (k+1)h) - F(a + kh)`.
    The grid does not depend on the prior, so a buyer and a seller with different priors on the same interval
    share one grid, and every probability is exact at the resolution of the bins. For a smooth integrand and
    density the error of :math:`\sum_k p_k\, g(x_k)` against :math:`E[g(X)]` is :math:`O(h^2)` (the midpoint
    rule, bin by bin).
``method="quantile"``
    ``K`` points of equal probability :math:`p_k = 1/K` at the quantiles :math:`x_k = F^{-1}((k + \tfrac12)/K)`:
    the midpoint rule for :math:`E[g(X)] = \int_0^1 g(F^{-1}(u))\,du`, :math:`O(K^{-2})` when
    :math:`g \circ F^{-1}` is smooth (slower for a Beta density that vanishes or blows up at an end, where
    :math:`F^{-1}` has a root singularity). Points crowd where the density is high.

For the uniform prior the two coincide (midpoints, equal weights). Types are independent over time
(``kernel=None``) unless a kernel is given.

AR(1) types (:func:`ar1_types`)
    :math:`\theta_{t+1} = m + \rho(\theta_t - m) + \sigma \varepsilon_{t+1}`, :math:`\varepsilon` iid standard
    normal, discretised by QuantEcon's :func:`quantecon.markov.rouwenhorst` (default: it matches the stationary
    mean and variance :math:`\sigma^2/(1-\rho^2)`, the autocorrelation :math:`\rho` and the linear conditional
    mean exactly, for every ``K`` and every :math:`|\rho| < 1`; its grid spans :math:`m \pm
    \sqrt{K-1}\,\sigma/\sqrt{1-\rho^2}`) or :func:`quantecon.markov.tauchen` (grid :math:`m \pm n_{std}\,
    \sigma/\sqrt{1-\rho^2}`, kernel by normal cdfs over half-way cells; accurate for moderate :math:`\rho`).
    The prior is the kernel's stationary distribution unless given.

QuantEcon is the optional extra ``mechlp[discretize]`` (it brings numba and llvmlite). It is imported at the
top of this module when installed; ``import mechlp`` does not load this module, so the cost (about 1 s warm and
3 s cold for ``import quantecon``, measured in the CHANGELOG entry) is paid only by code that discretises.
Without it the interval priors work and :func:`ar1_types` raises :class:`ImportError` saying what to install.

Yoon (2021), section 3.3.1 (A) (:func:`yoon_continuous`)
    Two periods, :math:`\delta = 1`, seller cost and buyer value uniform on :math:`[0, 1]`, independent across
    players and (1) across periods or (2) perfectly persistent. The dynamic pivot runs an expected deficit of
    :math:`E[(\theta_b - \theta_s)^+] = 1/6` per period and, in case (1), a lump-sum fee of :math:`1/6` per
    player covers it. On the ``K``-point midpoint grid both numbers are :math:`1/6 - 1/(6K^2)` exactly
    (:math:`E|i - j| = (K^2 - 1)/(3K)` for ``i, j`` uniform on ``0..K-1``), so Richardson extrapolation with the
    observed order 2 recovers :math:`1/6` to rounding.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

try:  # the optional extra mechlp[discretize]; only ar1_types needs it
    import quantecon.markov as qe_markov
except ImportError:  # not installed: ar1_types says what to install
    qe_markov = None

from mechlp.model import tolerances
from mechlp.model.environment import Environment, bilateral_trade
from mechlp.model.question import check_choice

__all__ = [
    "GRID_METHODS",
    "AR1_METHODS",
    "TypeGrid",
    "uniform_types",
    "beta_types",
    "ar1_types",
    "stationary_distribution",
    "trade_from_types",
    "yoon_continuous",
]

#: Grids for a prior on an interval (module docstring).
GRID_METHODS: tuple[str, ...] = ("bins", "quantile")
#: QuantEcon's AR(1) discretisations.
AR1_METHODS: tuple[str, ...] = ("rouwenhorst", "tauchen")


def _check_points(k: Any, argument: str = "k", least: int = 1) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < least:
        raise ValueError(f"{argument} must be an integer >= {least}, got {k!r}")
    return int(k)


def _check_number(v: Any, argument: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
        raise ValueError(f"{argument} must be a finite number, got {v!r}")
    return float(v)


def _check_interval(low: Any, high: Any) -> tuple[float, float]:
    lo, hi = _check_number(low, "low"), _check_number(high, "high")
    if not lo < hi:
        raise ValueError(f"need low < high, got low={lo!r}, high={hi!r}")
    return lo, hi


def _check_probabilities(vec: np.ndarray, argument: str) -> None:
    bad = np.flatnonzero(~np.isfinite(vec) | (vec < 0))
    if bad.size:
        raise ValueError(f"{argument} has a negative or non-finite entry {float(vec[bad[0]])!r} at index {int(bad[0])}")
    total = float(vec.sum())
    if abs(total - 1.0) > tolerances.PROBABILITY:
        raise ValueError(f"{argument} sums to {total:.12g}, not 1")


# ---------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True, eq=False)
class TypeGrid:
    r"""A continuous type process discretised at ``K`` points.

    Attributes
    ----------
    values : ndarray, shape (K,)
        The points, strictly increasing.
    prior : ndarray, shape (K,)
        First-period probabilities.
    kernel : ndarray, shape (K, K), or None
        Row-stochastic :math:`P(\theta_{t+1} = x_j | \theta_t = x_i)`; ``None``: independent over time (every
        row the prior; :meth:`transition` builds that matrix).
    method : str
        How the grid was built (``"bins"``, ``"quantile"``, ``"rouwenhorst"``, ``"tauchen"``, ``"given"``).
    params : dict
        The continuous model (``{"prior": "beta", "a": 2.0, ...}``).

    Raises
    ------
    ValueError
        When ``values`` is not strictly increasing, ``prior`` is not a distribution of the same length, or
        ``kernel`` is not a ``(K, K)`` row-stochastic matrix (the message names the row).
    """

    values: np.ndarray
    prior: np.ndarray
    kernel: np.ndarray | None = None
    method: str = "given"
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        vals = np.array(self.values, dtype=float)
        if vals.ndim != 1 or vals.size < 1:
            raise ValueError(f"values must be a non-empty one-dimensional array, got shape {vals.shape}")
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            raise ValueError(f"values must be finite; index {int(bad[0])} is {float(vals[bad[0]])!r}")
        steps = np.flatnonzero(~(np.diff(vals) > 0))
        if steps.size:
            j = int(steps[0]) + 1
            now, before = float(vals[j]), float(vals[j - 1])
            raise ValueError(f"values must be strictly increasing; values[{j}] = {now!r} follows {before!r}")
        prior = np.array(self.prior, dtype=float)
        if prior.shape != vals.shape:
            raise ValueError(f"prior has shape {prior.shape}; expected {vals.shape}, one probability per point")
        _check_probabilities(prior, "prior")
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "prior", prior)
        if self.kernel is not None:
            kern = np.array(self.kernel, dtype=float)
            if kern.shape != (vals.size, vals.size):
                raise ValueError(f"kernel has shape {kern.shape}; expected {(vals.size, vals.size)}")
            for r in range(kern.shape[0]):
                _check_probabilities(kern[r], f"kernel row {r}")
            object.__setattr__(self, "kernel", kern)

    @property
    def n_points(self) -> int:
        """``K``."""
        return int(self.values.size)

    def transition(self) -> np.ndarray:
        """The ``(K, K)`` kernel; with ``kernel=None`` every row is the prior (independent over time)."""
        return np.tile(self.prior, (self.n_points, 1)) if self.kernel is None else self.kernel.copy()

    def mean(self) -> float:
        r""":math:`\sum_k p_k x_k` under the prior."""
        return float(self.prior @ self.values)

    def variance(self) -> float:
        r""":math:`\sum_k p_k (x_k - \bar x)^2` under the prior."""
        return float(self.prior @ (self.values - self.mean()) ** 2)


def _interval_grid(k: int, lo: float, hi: float, method: str, dist: Any, kernel: Any, params: dict) -> TypeGrid:
    if method == "bins":
        edges = np.linspace(lo, hi, k + 1)
        values = 0.5 * (edges[:-1] + edges[1:])
        prior = np.diff(dist.cdf(edges))
        prior = prior / prior.sum()  # the cdf at the ends is 0 and 1 up to rounding
    else:
        values = dist.ppf((np.arange(k) + 0.5) / k)
        prior = np.full(k, 1.0 / k)
    return TypeGrid(values, prior, kernel, method, params)


def uniform_types(k: int, low: float = 0.0, high: float = 1.0, *, method: str = "bins", kernel: Any = None) -> TypeGrid:
    r"""The uniform prior on :math:`[a, b]` = ``[low, high]`` at ``k`` points.

    Both methods give the midpoints :math:`x_j = a + (j + \tfrac12)(b - a)/K` with equal weights :math:`1/K`
    (module docstring). For :math:`X, Y` independent on this grid of ``[0, 1]``,
    :math:`E[(Y - X)^+] = 1/6 - 1/(6K^2)` (the continuous value is :math:`1/6`).

    Parameters
    ----------
    k : int
        Number of points ``K >= 1``.
    low, high : float
        The interval, ``low < high``.
    method : {"bins", "quantile"}
    kernel : array_like, optional
        A ``(K, K)`` Markov kernel on the grid; default independent over time.

    Returns
    -------
    TypeGrid

    Raises
    ------
    ValueError
        For ``k`` not a positive integer, ``low >= high`` or an unknown ``method``.
    """
    k = _check_points(k)
    lo, hi = _check_interval(low, high)
    check_choice("method", method, GRID_METHODS)
    dist = stats.uniform(loc=lo, scale=hi - lo)
    return _interval_grid(k, lo, hi, method, dist, kernel, {"prior": "uniform", "low": lo, "high": hi})


def beta_types(
    k: int, a: float, b: float, low: float = 0.0, high: float = 1.0, *, method: str = "bins", kernel: Any = None
) -> TypeGrid:
    r"""The Beta(:math:`\alpha, \beta`) prior scaled to ``[low, high]`` at ``k`` points.

    Density :math:`f(x) \propto (x - \text{low})^{\alpha-1} (\text{high} - x)^{\beta-1}`; mean
    :math:`\text{low} + (\text{high}-\text{low})\,\alpha/(\alpha+\beta)`. ``method="bins"``: bin midpoints with
    the bins' Beta masses; ``"quantile"``: the Beta quantiles at :math:`(j + \tfrac12)/K` with weights
    :math:`1/K` (module docstring). ``beta_types(k, 1, 1)`` is :func:`uniform_types`.

    Parameters
    ----------
    k : int
        Number of points ``K >= 1``.
    a, b : float
        Shape parameters :math:`\alpha, \beta > 0`.
    low, high : float
        The interval, ``low < high``.
    method : {"bins", "quantile"}
    kernel : array_like, optional
        A ``(K, K)`` Markov kernel on the grid; default independent over time.

    Returns
    -------
    TypeGrid

    Raises
    ------
    ValueError
        For ``k`` not a positive integer, ``a <= 0`` or ``b <= 0``, ``low >= high`` or an unknown ``method``.
    """
    k = _check_points(k)
    for name, v in (("a", a), ("b", b)):
        if _check_number(v, name) <= 0:
            raise ValueError(f"{name} must be positive (a Beta shape parameter), got {v!r}")
    lo, hi = _check_interval(low, high)
    check_choice("method", method, GRID_METHODS)
    dist = stats.beta(float(a), float(b), loc=lo, scale=hi - lo)
    params = {"prior": "beta", "a": float(a), "b": float(b), "low": lo, "high": hi}
    return _interval_grid(k, lo, hi, method, dist, kernel, params)


# ---------------------------------------------------------------------------------------------- AR(1)
def stationary_distribution(kernel: np.ndarray) -> np.ndarray:
    r"""A stationary distribution :math:`\pi = \pi P`, :math:`\sum_k \pi_k = 1`, of a row-stochastic kernel.

    Solved as the least-squares system :math:`[P^\top - I;\ \mathbf 1^\top]\,\pi = [0;\ 1]` (unique for an
    irreducible chain), clipped at zero and renormalised.

    Parameters
    ----------
    kernel : ndarray, shape (K, K)

    Returns
    -------
    ndarray, shape (K,)
    """
    p = np.asarray(kernel, dtype=float)
    k = p.shape[0]
    lhs = np.vstack([p.T - np.eye(k), np.ones((1, k))])
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def ar1_types(
    k: int,
    rho: float,
    sigma: float,
    mean: float = 0.0,
    *,
    method: str = "rouwenhorst",
    n_std: float = 3.0,
    prior: Any = None,
) -> TypeGrid:
    r"""The Gaussian AR(1) process :math:`\theta_{t+1} = m + \rho(\theta_t - m) + \sigma\varepsilon_{t+1}` at
    ``k`` points, by QuantEcon.

    ``method="rouwenhorst"`` calls :func:`quantecon.markov.rouwenhorst` ``(k, rho, sigma, mu=m(1-rho))``;
    ``"tauchen"`` calls :func:`quantecon.markov.tauchen` ``(k, rho, sigma, mu=m(1-rho), n_std=n_std)``
    (QuantEcon writes the process as :math:`y_{t+1} = \mu + \rho y_t + \varepsilon`, mean
    :math:`\mu/(1-\rho)`). Rouwenhorst's stationary distribution is Binomial(:math:`K-1, 1/2`) on an evenly
    spaced grid of half-width :math:`\sqrt{K-1}\,s`, :math:`s = \sigma/\sqrt{1-\rho^2}`, so its variance is
    :math:`s^2` for every ``K``.

    Parameters
    ----------
    k : int
        Number of points, ``K >= 2``.
    rho : float
        Autocorrelation, :math:`-1 < \rho < 1`.
    sigma : float
        Standard deviation of the innovation, ``> 0``.
    mean : float
        The stationary mean :math:`m`.
    method : {"rouwenhorst", "tauchen"}
    n_std : float
        ``"tauchen"`` only: half-width of the grid in stationary standard deviations, ``> 0``.
    prior : array_like, optional
        First-period distribution on the grid; default the kernel's stationary distribution
        (:func:`stationary_distribution`).

    Returns
    -------
    TypeGrid
        ``kernel`` is QuantEcon's transition matrix, ``values`` its state values.

    Raises
    ------
    ValueError
        For ``k < 2``, ``|rho| >= 1``, ``sigma <= 0``, ``n_std <= 0``, an unknown ``method`` or a bad ``prior``.
    ImportError
        When QuantEcon is not installed.
    """
    k = _check_points(k, least=2)
    r = _check_number(rho, "rho")
    if not -1.0 < r < 1.0:
        raise ValueError(f"rho must satisfy -1 < rho < 1 (a stationary AR(1)), got {rho!r}")
    s = _check_number(sigma, "sigma")
    if s <= 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    m = _check_number(mean, "mean")
    check_choice("method", method, AR1_METHODS)
    if qe_markov is None:
        raise ImportError(
            "ar1_types needs QuantEcon (quantecon.markov.rouwenhorst / tauchen): pip install 'mechlp[discretize]'"
        )
    if method == "rouwenhorst":
        with warnings.catch_warnings():  # QuantEcon warns about a 2019 change of argument order at every call
            warnings.filterwarnings("ignore", message="The API of rouwenhorst", category=UserWarning)
            mc = qe_markov.rouwenhorst(k, r, s, mu=m * (1.0 - r))
    else:
        width = _check_number(n_std, "n_std")
        if width <= 0:
            raise ValueError(f"n_std must be positive, got {n_std!r}")
        mc = qe_markov.tauchen(k, r, s, mu=m * (1.0 - r), n_std=width)
    kern = np.asarray(mc.P, dtype=float)
    kern = kern / kern.sum(axis=1, keepdims=True)
    start = stationary_distribution(kern) if prior is None else np.asarray(prior, dtype=float)
    params = {"process": "ar1", "rho": r, "sigma": s, "mean": m}
    if method == "tauchen":
        params["n_std"] = float(n_std)
    return TypeGrid(np.asarray(mc.state_values, dtype=float), start, kern, method, params)


# ---------------------------------------------------------------------------------------------- models
def trade_from_types(
    buyer: TypeGrid,
    seller: TypeGrid,
    discount: float,
    horizon: int | str = "infinite",
    *,
    name: str = "discretised_trade",
) -> Environment:
    r"""Repeated bilateral trade (:func:`mechlp.model.environment.bilateral_trade`, the efficient rule) with the
    buyer's values and the seller's costs from two discretised type processes.

    Trade iff :math:`v > c`; a tie (both on one grid) does not trade and loses no surplus.

    Parameters
    ----------
    buyer, seller : TypeGrid
        The buyer's values and the seller's costs (:func:`uniform_types`, :func:`beta_types`,
        :func:`ar1_types`).
    discount : float
    horizon : int or "infinite"
    name : str

    Returns
    -------
    Environment
        Types labelled ``v1..vK`` and ``c1..cK``; ``env.meta["discretised"]`` records both grids' ``method``,
        ``params`` and ``K``.

    Raises
    ------
    TypeError
        When ``buyer`` or ``seller`` is not a :class:`TypeGrid`.
    """
    for arg, g in (("buyer", buyer), ("seller", seller)):
        if not isinstance(g, TypeGrid):
            raise TypeError(f"{arg} must be a TypeGrid (uniform_types, beta_types, ar1_types), got {type(g).__name__}")
    env = bilateral_trade(
        buyer.values,
        seller.values,
        buyer.prior,
        seller.prior,
        buyer.transition(),
        seller.transition(),
        discount,
        horizon,
        name=name,
    )
    env.meta["discretised"] = {
        role: {"method": g.method, "params": dict(g.params), "points": g.n_points}
        for role, g in (("buyer", buyer), ("seller", seller))
    }
    return env


def yoon_continuous(k: int, *, persistent: bool = False, delta: float = 1.0, horizon: int | str = 2) -> Environment:
    r"""Yoon (2021), section 3.3.1 (A), discretised: values and costs uniform on ``[0, 1]`` at ``k`` midpoints.

    (1) ``persistent=False``: independent across periods. The pivot's deficit is :math:`1/6` per period and a
    lump-sum fee of :math:`1/6` per player (the worst-off types' expected payoff, Yoon's condition (*)) covers
    both periods. (2) ``persistent=True``: :math:`\theta^0 = \theta^1` (identity kernel); the deficit is
    again :math:`1/6` per period but the worst-off types (seller at the top, buyer at the bottom) expect
    nothing, so no fee can be charged. On the grid the deficit per period and the fee of (1) are
    :math:`1/6 - 1/(6K^2)` (module docstring); :func:`mechlp.constructions.fees.fee_condition` computes both
    (``deficit / 2`` and ``worst_payoff``).

    Parameters
    ----------
    k : int
        Points per player, ``K >= 1``.
    persistent : bool
        Case (2) instead of case (1).
    delta : float
        Discount factor (Yoon: 1).
    horizon : int or "infinite"
        Yoon: 2 periods.

    Returns
    -------
    Environment
        :func:`trade_from_types` of two :func:`uniform_types` grids, named ``yoon_continuous_K<k>``.
    """
    k = _check_points(k)
    kernel = np.eye(k) if persistent else None
    grid = uniform_types(k, kernel=kernel)
    env = trade_from_types(grid, grid, delta, horizon, name=f"yoon_continuous_K{k}")
    env.meta["persistent"] = bool(persistent)
    return env

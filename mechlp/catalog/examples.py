r"""Ready-made environments from the papers, for tests, notebooks and quick starts.

``lamba_usstp``
    Lamba (2022), section 5.1: the uniform symmetric simple trading problem.
``bv_scheduling``
    Bergemann and Välimäki (2010), section 3: tasks with values :math:`v_1 \ge \dots \ge v_n` compete for one
    facility that completes one task per period; a served task is done (an absorbing, zero-value type), so the
    kernels depend on the action. Efficient: serve the most valuable waiting task.
``license_auction``
    Bergemann and Välimäki (2010), section 5: a license leased every period to one bidder; each bidder's value
    is Bernoulli with an unknown success rate and a Beta prior, and only the winner observes a draw. Types
    are Beta posteriors :math:`(s, f)` (successes, failures), truncated at ``depth`` draws; the flow value is
    the posterior mean. The efficient rule (a bandit / Gittins index policy) is computed by dynamic
    programming.
``yoon_binary``, ``yoon_k_type``
    Repeated bilateral trade of Yoon (2021), section 3.3: buyer values and seller costs in one grid
    :math:`\{v_1 < \dots < v_K\}`, trade iff :math:`\theta_s < \theta_b`, Markov kernels (symmetric persistence
    :math:`\alpha` by default). The binary case has the critical discount :math:`1/(3 - 2\alpha)`.
``bv_diverse``
    A finite version of Bergemann and Välimäki's (2010) Assumption 1 (diverse preferences) for one agent: an
    absorbing zero-value type, for each of two public actions the types that value only it at each point of a
    grid (and move to the zero type for sure), and one persistent type; the other agent has two Markov types
    and no diverse preferences. For transfer ranges and the uniqueness of the dynamic pivot (their Theorem 2).
``public_project``
    Three agents and a public project, for the balanced team mechanism (Athey and Segal 2007).
``correlated_usstp``, ``coupled_kernel``
    Lamba's USSTP with the buyer's and the seller's next types positively correlated (a joint kernel with the
    USSTP marginals; correlation 0 is the USSTP itself), the bundled ``models/bilateral_correlated.toml``.

Every factory takes the discount factor as ``delta``, so ``lambda d: factory(..., delta=d)`` is an
``env_factory`` for :func:`mechlp.constructions.fees.critical_discount`. ``CLASSIC_MODELS`` maps names to
factories (used by ``mechlp pivot`` / ``mechlp fees`` when MODEL is not a file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mechlp.model import tolerances
from mechlp.model.environment import Agent, Environment, bilateral_trade, renewal_matrix

__all__ = [
    "lamba_usstp",
    "bv_scheduling",
    "bv_scheduling_prices",
    "license_auction",
    "beta_states",
    "yoon_binary",
    "yoon_k_type",
    "public_project",
    "bv_diverse",
    "random_trade",
    "coupled_kernel",
    "correlated_usstp",
    "CLASSIC_MODELS",
]


def lamba_usstp(alpha: float = 0.7, delta: float = 0.95, horizon: int | str = "infinite") -> Environment:
    r"""Lamba's uniform symmetric simple trading problem (USSTP, section 5.1).

    :math:`\mathcal V = \{0.05, 1\}`, :math:`\mathcal C = \{0, 0.95\}`, uniform priors and symmetric
    persistence :math:`f(v|v) = g(c|c) = \alpha`. Types are listed in ascending order:
    buyer ``("v_L", "v_H")``, seller ``("c_L", "c_H")``.

    Parameters
    ----------
    alpha : float
        Persistence of both agents' types (renewal kernel). Default 0.7.
    delta : float
        Discount factor. Default 0.95 (Lamba's Table 1).
    horizon : int or "infinite"
        Number of periods. Default ``"infinite"``.

    Returns
    -------
    Environment
        Bilateral trade (:func:`mechlp.model.environment.bilateral_trade`) named ``"lamba_usstp"``.
    """
    return _usstp(alpha, delta, horizon, "lamba_usstp")


def _usstp(alpha: float, delta: float, horizon: int | str, name: str, joint_transition=None) -> Environment:
    """Lamba's USSTP values, costs, priors and renewal kernels; with ``joint_transition``, correlated."""
    kern = renewal_matrix(2, alpha)
    return bilateral_trade(
        [0.05, 1.0],
        [0.0, 0.95],
        [0.5, 0.5],
        [0.5, 0.5],
        kern,
        kern,
        delta,
        horizon,
        buyer_types=("v_L", "v_H"),
        seller_types=("c_L", "c_H"),
        name=name,
        joint_transition=joint_transition,
    )


def coupled_kernel(kernel_a: Any, kernel_b: Any, correlation: float) -> np.ndarray:
    r"""A kernel over the profiles of two agents with given marginal kernels and positively dependent next types.

    From profile :math:`(x, y)` the next profile is drawn from the mixture

    .. math::
       P(\cdot|x, y) = (1 - \rho)\, F_a(\cdot|x) \otimes F_b(\cdot|y) + \rho\, C(\cdot|x, y),

    where :math:`C` is the comonotone (maximally positively dependent) coupling of :math:`F_a(\cdot|x)` and
    :math:`F_b(\cdot|y)`, the law with joint c.d.f. :math:`\min(F_a(\le x'|x), F_b(\le y'|y))` (both agents' next
    types from one uniform draw). Both marginals are :math:`F_a` and :math:`F_b` for every :math:`\rho`, so the
    agents' own kernels stay consistent; :math:`\rho = 0` is the product (independent types).

    Parameters
    ----------
    kernel_a, kernel_b : array_like, shapes (K_a, K_a) and (K_b, K_b)
        Row-stochastic kernels of the two agents.
    correlation : float
        :math:`\rho \in [0, 1]`.

    Returns
    -------
    ndarray, shape (K_a K_b, K_a K_b)
        Rows and columns in C order (agent ``a`` first), as ``Environment(joint_transition=...)`` reads them.
    """
    fa, fb = np.asarray(kernel_a, dtype=float), np.asarray(kernel_b, dtype=float)
    rho = float(correlation)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"correlation must lie in [0, 1], got {correlation!r}")
    ka, kb = fa.shape[0], fb.shape[0]
    ca = np.cumsum(fa, axis=1)[:, None, :, None]  # (x, ., x', .)
    cb = np.cumsum(fb, axis=1)[None, :, None, :]  # (., y, ., y')
    cdf = np.minimum(ca, cb)  # (x, y, x', y'): min of the marginal c.d.f.s
    pad = np.zeros((ka, kb, ka + 1, kb + 1))
    pad[:, :, 1:, 1:] = cdf
    comonotone = pad[:, :, 1:, 1:] - pad[:, :, :-1, 1:] - pad[:, :, 1:, :-1] + pad[:, :, :-1, :-1]
    product = fa[:, None, :, None] * fb[None, :, None, :]
    out = (1.0 - rho) * product + rho * comonotone
    out[np.abs(out) < tolerances.PROBABILITY * 1e-3] = 0.0  # rounding of the differences, not probabilities
    return out.reshape(ka * kb, ka * kb)


def correlated_usstp(
    correlation: float = 0.5,
    alpha: float = 0.7,
    delta: float = 0.95,
    horizon: int | str = "infinite",
    after_trade_only: bool = False,
) -> Environment:
    r"""Lamba's USSTP (:func:`lamba_usstp`) with correlated next types.

    ``joint_transition`` is :func:`coupled_kernel` of the two renewal kernels with ``correlation`` :math:`\rho`
    (0: the USSTP itself, through the correlated code path); with ``after_trade_only`` one kernel per action:
    the product after ``no_trade`` and the coupled kernel after ``trade`` (trading reveals a common shock). The
    agents' own kernels are the renewal kernels (the marginals) either way. The bundled
    ``models/bilateral_correlated.toml`` is ``correlated_usstp(0.5, after_trade_only=True)``.
    """
    kern = renewal_matrix(2, alpha)
    joint = coupled_kernel(kern, kern, correlation)
    if after_trade_only:
        joint = np.stack([np.kron(kern, kern), joint])
    return _usstp(alpha, delta, horizon, "bilateral_correlated", joint_transition=joint)


DEFAULT_VALUES: tuple[tuple[float, float], ...] = ((0.2, 1.0), (0.3, 0.8), (0.1, 1.2))


def public_project(
    values: Sequence[Sequence[float]] = DEFAULT_VALUES,
    cost: float = 1.5,
    persistence: float | Sequence[float] = (0.7, 0.8, 0.6),
    priors: Sequence[Sequence[float]] | None = None,
    discount: float = 0.9,
    horizon: int | str = "infinite",
    names: Sequence[str] | None = None,
) -> Environment:
    r"""A repeated public project (build or not, every period) with ``n`` agents and Markov values.

    Agent :math:`i` has value :math:`\theta_i \in` ``values[i]`` (ascending) for the project in the current
    period and bears the equal cost share :math:`c/n`, so

    .. math::
       v_i(\theta_i, \text{build}) = \theta_i - c/n, \qquad v_i(\theta_i, \text{reject}) = 0,

    and the efficient rule builds iff :math:`\sum_i \theta_i > c` (a tie rejects). Values follow independent
    renewal kernels (:func:`mechlp.catalog.examples.renewal_matrix`): stay with probability ``persistence[i]``,
    otherwise move uniformly to another value. Types are independent across agents and values are private, as
    Athey and Segal (2007) assume.

    Parameters
    ----------
    values : sequence of sequences of float
        Per agent, its possible values, strictly increasing. The default has three agents with two values
        each, ``((0.2, 1.0), (0.3, 0.8), (0.1, 1.2))``: with ``cost = 1.5`` the project is built at 4 of the 8
        profiles, no profile ties, and every agent is pivotal at some profile where the others' net value is
        not zero (so every agent's report moves the others' welfare).
    cost : float
        Per-period cost :math:`c` of the project, shared equally.
    persistence : float or sequence of float
        One number for everyone or one per agent, in ``[0, 1]``.
    priors : sequence of sequences of float, optional
        First-period distributions, one per agent; uniform by default.
    discount : float
        :math:`\delta`.
    horizon : int or "infinite"
    names : sequence of str, optional
        Agent names; default ``agent1``, ``agent2``, ...

    Returns
    -------
    Environment
        Actions ``("reject", "build")``; types labelled ``L``/``H`` for two values, ``t1, t2, ...`` otherwise.
        ``env.meta`` records ``kind="public_project"`` and ``cost``.

    Raises
    ------
    ValueError
        For fewer than two agents, or lengths of ``persistence``, ``priors`` or ``names`` that do not match
        ``values``.
    """
    vals = [np.asarray(v, dtype=float) for v in values]
    n = len(vals)
    if n < 2:
        raise ValueError(f"values must describe at least two agents, got {n}")
    for i, v in enumerate(vals):
        if v.ndim != 1 or v.size < 1:
            raise ValueError(f"values[{i}] must be a non-empty list of numbers, got shape {v.shape}")
    if isinstance(persistence, int | float | np.integer | np.floating):
        pers = [float(persistence)] * n
    else:
        pers = [float(p) for p in persistence]
        if len(pers) != n:
            raise ValueError(f"persistence has {len(pers)} entries; expected {n}, one per agent")
    if priors is not None and len(priors) != n:
        raise ValueError(f"priors has {len(priors)} entries; expected {n}, one per agent")
    if names is None:
        names = [f"agent{i + 1}" for i in range(n)]
    elif len(names) != n:
        raise ValueError(f"names has {len(names)} entries; expected {n}, one per agent")
    share = float(cost) / n
    agents = []
    for i, v in enumerate(vals):
        k = v.size
        labels = ("L", "H") if k == 2 else tuple(f"t{j + 1}" for j in range(k))
        prior = np.full(k, 1.0 / k) if priors is None else priors[i]
        valuation = np.stack([np.zeros(k), v - share], axis=1)
        agents.append(
            Agent(names[i], labels, prior, renewal_matrix(k, pers[i]), valuation, values=v, role="participant")
        )
    return Environment(
        agents,
        ("reject", "build"),
        discount,
        horizon,
        "efficient",
        name="public_project",
        meta={"kind": "public_project", "cost": float(cost)},
    )


# ---------------------------------------------------------------------------------------------- scheduling
def random_trade(k: int, seed: int = 0, discount: float = 0.6, horizon: int | str = "infinite") -> Environment:
    r"""Bilateral trade with ``k`` types per side and random kernels: a test bed where Lamba's FOSD assumption
    generally fails.

    Buyer values ``linspace(0.2, 1.0, k)``, seller costs ``linspace(0.0, 0.8, k)``, uniform priors, the efficient
    rule; each kernel row is integer weights drawn uniformly from 1..9 (``numpy.random.default_rng(seed)``),
    normalised. Check ``agent.is_fosd()`` before reading budget balance off :math:`\Pi^*` (the min-max answer
    says whether :math:`\Pi^*` is certified tight).

    Parameters
    ----------
    k : int
        Types per side.
    seed : int
        Seed of the kernels.
    discount : float
    horizon : int or "infinite"

    Returns
    -------
    Environment
    """
    rng = np.random.default_rng(seed)
    kernels = []
    for _ in range(2):  # buyer, seller
        w = rng.integers(1, 10, size=(k, k)).astype(float)
        kernels.append(w / w.sum(axis=1, keepdims=True))
    uniform = np.full(k, 1.0 / k)
    return bilateral_trade(
        np.linspace(0.2, 1.0, k),
        np.linspace(0.0, 0.8, k),
        uniform,
        uniform,
        *kernels,
        discount,
        horizon,
        name=f"random_{k}x{k}",
    )


def bv_scheduling(
    values: Sequence[float] = (4.0, 3.0, 2.0, 1.0),
    delta: float = 0.9,
    *,
    grid: Sequence[float] | None = None,
    horizon: int | str = "infinite",
) -> Environment:
    r"""Scheduling example of Bergemann and Välimäki (2010), section 3.

    Parameters
    ----------
    values : sequence of float
        Task values :math:`v_1 \ge v_2 \ge \dots \ge v_n > 0` (the first-period types).
    delta : float
        Discount factor (the cost of delay).
    grid : sequence of float, optional
        Richer type sets: each task's type is ``"done"`` or a value in ``grid`` (ascending, positive), so the
        verifier also checks misreports of the value; every ``values[i]`` must lie in ``grid``. Default: the
        types are ``("done", "waiting")`` with the task's own value.
    horizon : int or "infinite"

    Returns
    -------
    Environment
        Agents ``task1..taskn``; actions ``("idle", "serve_task1", ..., "serve_taskn")``. Serving a waiting
        task yields its value and moves it to ``"done"`` (absorbing, zero value); other tasks stay. The prior
        puts probability one on the task's value. ``meta["feasible_without"]``: without task ``i`` the
        planner cannot serve it. The allocation is the dynamic efficient policy (most valuable first; ties to
        the lower index; idle when all are done).
    """
    vals = np.asarray(values, dtype=float)
    if vals.ndim != 1 or vals.size < 1:
        raise ValueError(f"values must be a non-empty list of task values, got {values!r}")
    if np.any(vals <= 0):
        raise ValueError(f"values must be positive, got {vals.tolist()}")
    if np.any(np.diff(vals) > 0):
        raise ValueError(f"values must be non-increasing (v_1 >= v_2 >= ...), got {vals.tolist()}")
    n = vals.size
    names = [f"task{i + 1}" for i in range(n)]
    actions = ["idle", *(f"serve_{nm}" for nm in names)]
    if grid is None:
        levels = [np.array([v]) for v in vals]
        labels = [["done", "waiting"] for _ in range(n)]
    else:
        g = np.asarray(grid, dtype=float)
        if g.ndim != 1 or np.any(g <= 0) or np.any(np.diff(g) <= 0):
            raise ValueError(f"grid must be strictly increasing positive values, got {grid!r}")
        match = {"rtol": tolerances.MATCH_RTOL, "atol": tolerances.MATCH_ATOL}
        missing = [float(v) for v in vals if not np.any(np.isclose(g, v, **match))]
        if missing:
            raise ValueError(f"every task value must lie in grid; missing {missing}")
        levels = [g for _ in range(n)]
        labels = [["done", *(f"v={x:g}" for x in g)] for _ in range(n)]
    agents = []
    for i in range(n):
        lv = levels[i]
        k = lv.size + 1
        valuation = np.zeros((k, len(actions)))
        valuation[1:, 1 + i] = lv
        stay = np.eye(k)
        served = np.zeros((k, k))
        served[:, 0] = 1.0
        kernel = np.stack([served if a == 1 + i else stay for a in range(len(actions))])
        prior = np.zeros(k)
        prior[1 + int(np.argmin(np.abs(lv - vals[i])))] = 1.0
        agents.append(Agent(names[i], labels[i], prior, kernel, valuation, values=np.concatenate([[0.0], lv])))
    meta = {
        "kind": "scheduling",
        "feasible_without": {nm: [a for a in actions if a != f"serve_{nm}"] for nm in names},
        "task_values": vals.tolist(),
    }
    # "efficient" with action-dependent kernels is the dynamic efficient policy
    return Environment(agents, actions, delta, horizon, "efficient", name="bv_scheduling", meta=meta)


def bv_scheduling_prices(values: Sequence[float], delta: float) -> np.ndarray:
    r"""Closed-form pivot prices of the scheduling example (Bergemann and Välimäki 2010, eq. (4)).

    Task :math:`i` is served in period :math:`i` (1-based) along the efficient path and pays

    .. math::
       p_i = v_{i+1} - \sum_{t=i+1}^{n} \delta^{t-i} (v_t - v_{t+1}) = (1-\delta) \sum_{t=i}^{n} \delta^{t-i} v_{t+1},
       \qquad v_{n+1} = 0.
    """
    v = np.append(np.asarray(values, dtype=float), 0.0)  # v[t] is v_{t+1} (0-based), v[n] = 0
    n = v.size - 1
    out = np.empty(n)
    for i in range(n):  # agents
        t = np.arange(i, n)  # 0-based t = i..n-1 <-> paper's t = i+1..n; v_{t+1} -> v[t + 1]
        out[i] = (1.0 - delta) * np.sum(delta ** (t - i) * v[t + 1])
    return out


# ---------------------------------------------------------------------------------------------- learning
def beta_states(depth: int) -> list[tuple[int, int]]:
    """Posterior states ``(s, f)`` with ``s + f <= depth``, ordered by number of draws, then by successes."""
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 0:
        raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
    return [(s, n - s) for n in range(depth + 1) for s in range(n + 1)]


def _beta_agent(name: str, own_action: int, n_actions: int, a0: float, b0: float, depth: int) -> Agent:
    states = beta_states(depth)
    index = {st: j for j, st in enumerate(states)}
    k = len(states)
    mean = np.array([(a0 + s) / (a0 + b0 + s + f) for s, f in states])
    fail = np.array([(b0 + f) / (a0 + b0 + s + f) for s, f in states])  # not 1 - mean: equal odds, equal floats
    learn = np.zeros((k, k))
    for j, (s, f) in enumerate(states):  # loop over an agent's own type set
        if s + f < depth:
            learn[j, index[(s + 1, f)]] = mean[j]
            learn[j, index[(s, f + 1)]] = fail[j]
        else:
            learn[j, j] = 1.0  # truncation: the posterior stops moving (still a martingale)
    kernel = np.stack([learn if a == own_action else np.eye(k) for a in range(n_actions)])
    valuation = np.zeros((k, n_actions))
    valuation[:, own_action] = mean
    prior = np.zeros(k)
    prior[0] = 1.0
    return Agent(name, [f"s{s}f{f}" for s, f in states], prior, kernel, valuation)


def license_auction(
    n_bidders: int = 2,
    delta: float = 0.9,
    *,
    depth: int = 3,
    priors: Sequence[tuple[float, float]] | None = None,
    horizon: int | str = "infinite",
) -> Environment:
    r"""Repeated license auction with Bayesian learning (Bergemann and Välimäki 2010, section 5).

    Parameters
    ----------
    n_bidders : int
        At least two.
    delta : float
    depth : int
        Truncation: a bidder's posterior stops updating after ``depth`` draws. States ``(s, f)`` with
        ``s + f <= depth``; ``(depth + 1)(depth + 2)/2`` types per bidder.
    priors : sequence of (alpha, beta), optional
        Beta prior of each bidder's success rate (default ``(1, 1)`` for everyone).
    horizon : int or "infinite"

    Returns
    -------
    Environment
        Agents ``bidder1..``; actions ``to_bidder1..`` (the license is always assigned). The winner's
        posterior moves to ``(s + 1, f)`` with probability equal to its mean and to ``(s, f + 1)`` otherwise;
        the losers' posteriors stay. Every bidder starts at ``(0, 0)``. The allocation is the dynamic efficient
        (index) policy; ``meta["feasible_without"]``: without bidder ``i`` the license goes to another bidder
        (B–V section 5).
    """
    if isinstance(n_bidders, bool) or not isinstance(n_bidders, int | np.integer) or n_bidders < 2:
        raise ValueError(f"n_bidders must be an integer >= 2, got {n_bidders!r}")
    pri = [(1.0, 1.0)] * n_bidders if priors is None else [tuple(map(float, p)) for p in priors]
    if len(pri) != n_bidders or any(len(p) != 2 or p[0] <= 0 or p[1] <= 0 for p in pri):
        raise ValueError(f"priors must hold {n_bidders} pairs (alpha, beta) of positive numbers, got {priors!r}")
    names = [f"bidder{i + 1}" for i in range(n_bidders)]
    actions = [f"to_{nm}" for nm in names]
    agents = [_beta_agent(names[i], i, n_bidders, pri[i][0], pri[i][1], depth) for i in range(n_bidders)]
    meta = {
        "kind": "license_auction",
        "feasible_without": {nm: [a for a in actions if a != f"to_{nm}"] for nm in names},
        "beta_priors": [list(p) for p in pri],
        "depth": int(depth),
    }
    # "efficient" with learning kernels is the dynamic efficient policy (one table per period on a finite horizon)
    return Environment(agents, actions, delta, horizon, "efficient", name="license_auction", meta=meta)


# ---------------------------------------------------------------------------------------------- Yoon
def yoon_k_type(
    values: Sequence[float] = (0.0, 0.5, 1.0),
    alpha: float = 0.8,
    delta: float = 0.9,
    *,
    seller_prior: Sequence[float] | None = None,
    buyer_prior: Sequence[float] | None = None,
    seller_transition: Any = None,
    buyer_transition: Any = None,
    horizon: int | str = "infinite",
    name: str = "yoon_k_type",
) -> Environment:
    r"""Repeated bilateral trade with ``K`` types on a common grid (Yoon 2021, section 3.3.2).

    Parameters
    ----------
    values : sequence of float
        The grid :math:`v_1 < \dots < v_K` of buyer values and seller costs.
    alpha : float
        Persistence of the default renewal kernels (stay with probability ``alpha``, otherwise move uniformly;
        ``alpha = 1/K`` is i.i.d., ``alpha = 1`` perfectly persistent).
    delta : float
    seller_prior, buyer_prior : sequence of float, optional
        Yoon's ``x`` and ``y``; uniform by default.
    seller_transition, buyer_transition : array_like, optional
        Yoon's :math:`P_s` and :math:`P_b`; override ``alpha``.
    horizon : int or "infinite"
    name : str

    Returns
    -------
    Environment
        :func:`mechlp.model.environment.bilateral_trade` with buyer types ``v=..`` and seller types ``c=..``; trade
        iff cost < value (no trade on ties).
    """
    grid = np.asarray(values, dtype=float)
    k = grid.size
    kern = renewal_matrix(k, alpha)
    uni = np.full(k, 1.0 / k)
    return bilateral_trade(
        grid,
        grid,
        uni if buyer_prior is None else buyer_prior,
        uni if seller_prior is None else seller_prior,
        kern if buyer_transition is None else buyer_transition,
        kern if seller_transition is None else seller_transition,
        delta,
        horizon,
        buyer_types=[f"v={x:g}" for x in grid],
        seller_types=[f"c={x:g}" for x in grid],
        name=name,
    )


def yoon_binary(
    alpha: float = 0.7,
    delta: float = 0.9,
    *,
    seller_transition: Any = None,
    buyer_transition: Any = None,
    horizon: int | str = "infinite",
) -> Environment:
    r"""Yoon's binary bilateral trade (Yoon 2021, sections 3.3.1-3.3.2): values and costs in :math:`\{0, 1\}`.

    Uniform priors; symmetric kernels :math:`\begin{pmatrix}\alpha & 1-\alpha\\ 1-\alpha & \alpha\end{pmatrix}`
    unless ``seller_transition`` / ``buyer_transition`` (Yoon's :math:`P_s`, :math:`P_b`, rows and columns in
    the order 0, 1) are given. Trade only at (seller 0, buyer 1). With an infinite horizon lump-sum fees
    balance the budget iff :math:`\delta \ge 1/(3 - 2\alpha)`.

    Parameters
    ----------
    alpha : float
        Persistence of both kernels when they are not given. Default 0.7.
    delta : float
        Discount factor. Default 0.9.
    seller_transition, buyer_transition : array_like, optional
        Yoon's :math:`P_s`, :math:`P_b` (2 x 2, row-stochastic).
    horizon : int or "infinite"
        Number of periods. Default ``"infinite"``.

    Returns
    -------
    Environment
        Bilateral trade named ``"yoon_binary"`` (:func:`yoon_k_type` with the grid ``(0, 1)``).
    """
    return yoon_k_type(
        (0.0, 1.0),
        alpha,
        delta,
        seller_transition=seller_transition,
        buyer_transition=buyer_transition,
        horizon=horizon,
        name="yoon_binary",
    )


def bv_diverse(
    steps: int = 4,
    delta: float = 0.9,
    *,
    diverse: bool = True,
    persistence: float = 0.7,
    other_values: Sequence[float] = (0.3, 0.8),
    other_transition: Any = ((0.7, 0.3), (0.4, 0.6)),
    horizon: int | str = "infinite",
) -> Environment:
    r"""A finite model with Bergemann and Välimäki's (2010) diverse preferences (Assumption 1) for one agent.

    Two public actions ``("a", "b")``. Agent ``"diverse"`` has the types

    * ``"zero"``: :math:`v(a) = v(b) = 0`, absorbing (Assumption 1(i));
    * ``"a:x"`` and ``"b:x"`` for every ``x`` in the grid :math:`\{1/s, 2/s, \dots, 1\}` (``s = steps``): value
      ``x`` for that action only, and the next type is ``"zero"`` for sure, whatever the action (Assumption
      1(ii), on a grid instead of every :math:`x \ge 0`);
    * ``"P"``: :math:`v(a) = 1`, :math:`v(b) = 0`, staying ``"P"`` with probability ``persistence`` and
      otherwise moving to ``"zero"``.

    Agent ``"other"`` has types ``("L", "H")`` with :math:`v(a) = 0` and :math:`v(b)` = ``other_values`` and the
    Markov kernel ``other_transition``: no zero type and no single-action types, so it has no diverse
    preferences. Priors are uniform; no kernel depends on the action, so the myopic efficient allocation is
    dynamically efficient (ties to ``"a"``). With ``diverse=False`` agent ``"diverse"`` keeps only ``"zero"`` and
    ``"P"`` (Assumption 1(ii) fails for both agents).

    The dynamic pivot charges ``"a:x"`` the externality :math:`c = v_{other}(b)` when :math:`x > c`, else
    nothing; ``"b:x"`` never changes the decision and pays nothing.

    Parameters
    ----------
    steps : int
        Grid points per action (``>= 1``).
    delta : float
    diverse : bool
    persistence : float
        Probability that ``"P"`` stays.
    other_values : pair of float
        ``v(b)`` of ``"L"`` and ``"H"`` (choose values off the grid to see the grid's gap).
    other_transition : 2 x 2 array_like
    horizon : int or "infinite"

    Returns
    -------
    Environment
        Named ``"bv_diverse"``; ``meta["grid"]`` holds the grid.
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not 0.0 <= persistence <= 1.0:
        raise ValueError(f"persistence must lie in [0, 1], got {persistence!r}")
    grid = np.arange(1, int(steps) + 1) / int(steps) if diverse else np.zeros(0)
    labels = ["zero", *(f"a:{x:g}" for x in grid), *(f"b:{x:g}" for x in grid), "P"]
    k = len(labels)
    valuation = np.zeros((k, 2))
    valuation[1 : 1 + grid.size, 0] = grid
    valuation[1 + grid.size : 1 + 2 * grid.size, 1] = grid
    valuation[-1, 0] = 1.0
    kernel = np.zeros((k, k))
    kernel[:-1, 0] = 1.0  # zero is absorbing; the single-action types exit
    kernel[-1, -1] = persistence
    kernel[-1, 0] = 1.0 - persistence
    diverse_agent = Agent("diverse", labels, np.full(k, 1.0 / k), kernel, valuation)
    ov = np.asarray(other_values, dtype=float)
    if ov.shape != (2,):
        raise ValueError(f"other_values must be two numbers (L, H), got {other_values!r}")
    other = Agent("other", ["L", "H"], [0.5, 0.5], other_transition, np.stack([np.zeros(2), ov], axis=1))
    meta = {"kind": "diverse preferences", "grid": grid.tolist(), "diverse": bool(diverse)}
    return Environment([diverse_agent, other], ["a", "b"], delta, horizon, "efficient", name="bv_diverse", meta=meta)


CLASSIC_MODELS: dict[str, Callable[..., Environment]] = {
    "bv_diverse": bv_diverse,
    "bv_scheduling": bv_scheduling,
    "license_auction": license_auction,
    "yoon_binary": yoon_binary,
    "yoon_k_type": yoon_k_type,
    "lamba_usstp": lamba_usstp,
}

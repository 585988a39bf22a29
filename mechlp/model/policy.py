r"""Efficient policies by dynamic programming on the type-profile Markov decision process.

With independent Markov types (docs/design.md section 4.1) the type *profile* is a controlled Markov chain: under
action :math:`a` it moves with the product kernel :math:`P(\theta'|\theta, a) = \prod_j F_j(\theta_j'|\theta_j, a)`.
For a set :math:`S` of included agents (all of them, or all but one) the efficient social value solves the
Bellman equation (Bergemann and Välimäki 2010, section 2; Yoon 2015, section 2.1)

.. math::
   W_S(\theta) = \max_{a \in A_S} \Big[ \sum_{j \in S} v_j(\theta_j, a)
                 + \delta \sum_{\theta'} P(\theta'|\theta, a)\, W_S(\theta') \Big],

where :math:`A_S \subseteq A` are the actions feasible for the agents in :math:`S` (see
:func:`feasible_without`). :math:`W = W_{\{1..n\}}` is the efficient value and :math:`W_{-i} = W_{S \setminus i}`
the value of the others when agent :math:`i` is excluded; :math:`W_{-i}` depends on :math:`\theta_{-i}` only and is
computed on the others' profiles (its transitions use the others' kernels only).

* **Finite horizon** :math:`T`: backward induction over periods, :math:`W^{T+1} \equiv 0`; the policy may depend
  on the period.
* **Infinite horizon**: policy iteration with exact linear solves of :math:`(I - \delta P_\pi) V = r_\pi` (sparse
  direct factorisation; a Krylov solve when the joint kernel would be too large to store), stopped when the
  policy is stable and checked by the value-iteration (Bellman) residual
  :math:`\max_\theta |V(\theta) - \max_a Q(\theta, a)|`.

Ties are broken toward the first action (the rule of :class:`~mechlp.model.environment.Environment`): an action
counts as optimal when its :math:`Q` value is within ``tie_tol`` of the maximum.

The static argmax of ``Environment(allocation="efficient")`` is the dynamic efficient policy only when no
kernel depends on the action (then the continuation value is the same for every action). With learning or
scheduling the dynamic policy differs; :func:`efficient_environment` returns an environment whose
allocation is the dynamic policy. Expectations are tensor contractions, one agent axis at a time: there is
no Python loop over profiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mechlp.model import tolerances


class Environment(Protocol):
    """What this module reads of a :class:`mechlp.model.environment.Environment` (a protocol: the environment
    resolves its rule ``"efficient_dynamic"`` here, so this module cannot import it)."""

    agents: Any
    actions: Any
    discount: float
    horizon: float
    type_counts: tuple[int, ...]
    n_agents: int
    n_actions: int
    n_profiles: int

    def profile_kernel(self) -> np.ndarray: ...


__all__ = [
    "DPSolution",
    "efficient_values",
    "efficient_environment",
    "dynamic_policy_tables",
    "feasible_without",
    "expected_next",
    "others_index",
    "TIE_TOL",
]

TIE_TOL = tolerances.TIE  # relative: Q values within TIE_TOL * scale of the maximum are ties
_DIRECT_NNZ_LIMIT = 20_000_000  # largest joint kernel stored for a direct policy-evaluation solve


@dataclass(frozen=True)
class DPSolution:
    r"""The efficient value and policy for the agents in ``included``.

    Attributes
    ----------
    values : ndarray
        :math:`W_S` at every full type profile: shape ``(K,)`` for an infinite horizon, ``(T, K)`` for a finite
        one (row ``t - 1`` is period ``t``, with ``T - t + 1`` periods to go).
    policy : ndarray of int
        The optimal action index (ties to the first action), same shape as ``values``.
    q_values : ndarray
        :math:`Q(\theta, a)`, shape ``(K, A)`` or ``(T, K, A)``; ``-inf`` for infeasible actions.
    reduced_values, reduced_policy : ndarray
        The same on the profiles of the included agents only (C order over them); equal to ``values`` and
        ``policy`` when every agent is included.
    included : tuple of int
        Agents whose valuations count.
    feasible : ndarray of bool, shape (A,)
        Actions the planner may take.
    horizon : int or float
        Number of periods, or ``inf``.
    residual : float
        Infinite horizon: the Bellman (value-iteration) residual of ``values``; finite horizon: 0.
    iterations : int
        Policy-iteration steps (infinite horizon) or periods (finite horizon).
    tie_tol : float
        Absolute tolerance used to call two ``Q`` values a tie.
    """

    values: np.ndarray
    policy: np.ndarray
    q_values: np.ndarray
    reduced_values: np.ndarray
    reduced_policy: np.ndarray
    included: tuple[int, ...]
    feasible: np.ndarray
    horizon: float
    residual: float
    iterations: int
    tie_tol: float

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.horizon))


# ---------------------------------------------------------------------------------------------- helpers
def feasible_without(env: Environment) -> np.ndarray:
    r"""Actions the planner may take when one agent is excluded: boolean array ``(n_agents, n_actions)``.

    Row ``i`` is the action set :math:`A_{-i}` of the program :math:`W_{-i}` (Bergemann and Välimäki 2010,
    section 2). Sources, in order:

    1. ``env.meta["feasible_without"]``: a mapping ``{agent name: [action labels]}`` (agents not listed keep
       every action) or an array of shape ``(n_agents, n_actions)``;
    2. bilateral trade (``env.meta["kind"] == "bilateral_trade"``): without the buyer or the seller the good
       cannot change hands, so only ``"no_trade"`` remains and :math:`W_{-i} \equiv 0` (Yoon 2021,
       section 3.3: "the social welfare without one player is always zero");
    3. otherwise every action is feasible.
    """
    n, na = env.n_agents, env.n_actions
    spec = env.meta.get("feasible_without")
    if spec is not None:
        if isinstance(spec, Mapping):
            out = np.ones((n, na), dtype=bool)
            for name, labels in spec.items():
                i = env.agent_index(str(name))
                row = np.zeros(na, dtype=bool)
                for lab in labels:
                    if lab not in env.actions:
                        raise ValueError(
                            f"env.meta['feasible_without'][{name!r}] names unknown action {lab!r}; "
                            f"actions are {list(env.actions)}"
                        )
                    row[env.actions.index(lab)] = True
                out[i] = row
        else:
            out = np.asarray(spec, dtype=bool)
            if out.shape != (n, na):
                raise ValueError(
                    f"env.meta['feasible_without'] has shape {out.shape}; expected ({n}, {na}) (agents x actions)"
                )
    elif env.meta.get("kind") == "bilateral_trade" and "no_trade" in env.actions:
        out = np.zeros((n, na), dtype=bool)
        out[:, env.actions.index("no_trade")] = True
    else:
        out = np.ones((n, na), dtype=bool)
    empty = np.flatnonzero(~out.any(axis=1))
    if empty.size:
        raise ValueError(f"no action is feasible without agent {env.agents[int(empty[0])].name!r}")
    return out


def others_index(env: Environment, agent: int) -> np.ndarray:
    """``(K,)``: index of each full profile's :math:`\\theta_{-i}` in the C-ordered profiles of the others."""
    types = env.profile_types()
    counts = env.type_counts
    other = [j for j in range(env.n_agents) if j != agent]
    if not other:
        return np.zeros(env.n_profiles, dtype=np.int64)
    return np.ravel_multi_index(tuple(types[:, j] for j in other), tuple(counts[j] for j in other)).astype(np.int64)


def _rewards(env: Environment, included: Sequence[int]) -> np.ndarray:
    r"""``(K_S, A)``: :math:`\sum_{j \in S} v_j(\theta_j, a)` on the profiles of the included agents."""
    counts = tuple(env.type_counts[j] for j in included)
    na = env.n_actions
    total = np.zeros((*counts, na))
    for pos, j in enumerate(included):
        shape = [1] * len(counts) + [na]
        shape[pos] = counts[pos]
        total = total + env.agents[j].valuation.reshape(shape)
    return total.reshape(-1, na)


def _kernels(env: Environment, included: Sequence[int]) -> list[np.ndarray]:
    env.require_independent("the dynamic programme of the efficient policy (the agents' own kernels)")
    return [env.agents[j].kernel(env.n_actions) for j in included]


def expected_next(values: np.ndarray, kernels: Sequence[np.ndarray], counts: tuple[int, ...]) -> np.ndarray:
    r"""``(K, A)``: :math:`\sum_{\theta'} \prod_j F_j(\theta_j'|\theta_j, a)\, V(\theta')` for every action.

    Parameters
    ----------
    values : ndarray, shape (K,)
        A function of the profile (C order over the agents of ``kernels``).
    kernels : sequence of ndarray, each (A, K_j, K_j)
    counts : tuple of int
        ``(K_1, ..., K_m)``; an empty tuple means a single (empty) profile.
    """
    values = np.asarray(values, dtype=float)
    if not kernels:
        raise ValueError("expected_next needs at least one kernel (the number of actions comes from it)")
    na = kernels[0].shape[0]
    k = int(np.prod(counts)) if counts else 1
    out = np.empty((k, na))
    for a in range(na):
        x = values.reshape(counts)
        for j, f in enumerate(kernels):
            x = np.moveaxis(np.tensordot(f[a], x, axes=([1], [j])), 0, j)
        out[:, a] = np.reshape(x, -1)
    return out


def _expected_all(values: np.ndarray, kernels: list[np.ndarray], counts: tuple[int, ...], na: int) -> np.ndarray:
    if not kernels:  # nobody left: a single profile, the value never moves
        return np.broadcast_to(np.asarray(values, dtype=float).reshape(1, 1), (1, na)).copy()
    return expected_next(values, kernels, counts)


def _first_optimal(q: np.ndarray, tie_tol: float) -> np.ndarray:
    """Index of the first action whose ``Q`` is within ``tie_tol`` of the row maximum."""
    best = q.max(axis=-1, keepdims=True)
    return np.argmax(q >= best - tie_tol, axis=-1)


def _policy_matrix(kernels: list[np.ndarray], counts: tuple[int, ...], policy: np.ndarray) -> sp.csr_matrix | None:
    r"""Sparse :math:`P_\pi` (``K x K``), built as a row-wise (face-splitting) product of the agents' kernel rows.

    Returns ``None`` when it would hold more than ``_DIRECT_NNZ_LIMIT`` entries.
    """
    k = int(np.prod(counts))
    types = np.stack(np.unravel_index(np.arange(k), counts), axis=1) if counts else np.zeros((1, 0), int)
    row_rows = [f[policy, types[:, j]] for j, f in enumerate(kernels)]  # each (K, K_j)
    nnz_per_row = np.ones(k)
    for r in row_rows:
        nnz_per_row = nnz_per_row * np.count_nonzero(r, axis=1)
    if nnz_per_row.sum() > _DIRECT_NNZ_LIMIT:
        return None
    rows = np.arange(k, dtype=np.int64)
    cols = np.zeros(k, dtype=np.int64)
    vals = np.ones(k)
    for r, kj in zip(row_rows, counts, strict=True):
        nz_r, nz_c = np.nonzero(r)  # row-major: sorted by row
        per_row = np.bincount(nz_r, minlength=k)
        starts = np.concatenate([[0], np.cumsum(per_row)[:-1]])
        rep = per_row[rows]
        entry = np.repeat(np.arange(rows.size), rep)
        within = np.arange(entry.size) - np.repeat(np.cumsum(rep) - rep, rep)
        pick = starts[rows[entry]] + within
        rows = rows[entry]
        cols = cols[entry] * kj + nz_c[pick]
        vals = vals[entry] * r[nz_r[pick], nz_c[pick]]
    return sp.csr_matrix((vals, (rows, cols)), shape=(k, k))


def _evaluate(
    kernels: list[np.ndarray], counts: tuple[int, ...], policy: np.ndarray, reward: np.ndarray, delta: float, na: int
) -> np.ndarray:
    r"""Solve :math:`(I - \delta P_\pi) V = r_\pi` exactly (sparse LU), or by GMRES for very large kernels."""
    k = reward.shape[0]
    if not kernels:
        return reward / (1.0 - delta)
    mat = _policy_matrix(kernels, counts, policy)
    if mat is not None:
        system = (sp.identity(k, format="csc") - delta * mat.tocsc()).tocsc()
        return np.asarray(spla.splu(system).solve(reward), dtype=float)

    def matvec(v: np.ndarray) -> np.ndarray:
        ev = _expected_all(np.ravel(v), kernels, counts, na)
        return np.ravel(v) - delta * ev[np.arange(k), policy]

    op = spla.LinearOperator((k, k), matvec=matvec, dtype=float)
    sol, info = spla.gmres(op, reward, rtol=tolerances.GMRES_RTOL, atol=0.0, restart=200, maxiter=10_000)
    if info != 0:
        raise RuntimeError(f"policy evaluation by GMRES did not converge (info={info}) on {k:,} profiles")
    return np.asarray(sol, dtype=float)


# ---------------------------------------------------------------------------------------------- solver
def _solve(
    env: Environment,
    included: tuple[int, ...],
    feasible: np.ndarray,
    horizon: float,
    tie_tol_rel: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, float]:
    """DP on the profiles of ``included``: (values, policy, q, residual, iterations, tie_tol)."""
    counts = tuple(env.type_counts[j] for j in included)
    na = env.n_actions
    delta = env.discount
    reward = _rewards(env, included) if included else np.zeros((1, na))
    if getattr(env, "joint_transition", None) is not None:
        # correlated types: the profile is one Markov chain with the joint kernel (one "agent" of K states)
        if len(included) != env.n_agents:
            raise ValueError(
                "the value of the others without one agent needs types independent across agents (their profile is "
                "not a Markov chain on its own under a joint_transition)"
            )
        kernels, counts = [np.asarray(env.profile_kernel(), dtype=float)], (env.n_profiles,)
    else:
        kernels = _kernels(env, included)
    masked = np.where(feasible[None, :], reward, -np.inf)
    scale = max(1.0, float(np.max(np.abs(reward))))
    if np.isfinite(horizon):
        t_max = int(horizon)
        tie_tol = tie_tol_rel * scale * t_max
        k = reward.shape[0]
        values = np.empty((t_max, k))
        policy = np.empty((t_max, k), dtype=np.int64)
        q_all = np.empty((t_max, k, na))
        nxt = np.zeros(k)
        for t in range(t_max - 1, -1, -1):  # backward induction over periods
            cont = _expected_all(nxt, kernels, counts, na) if t < t_max - 1 else np.zeros((k, na))
            q = masked + delta * cont
            pol = _first_optimal(q, tie_tol)
            q_all[t] = q
            policy[t] = pol
            values[t] = q[np.arange(k), pol]
            nxt = values[t]
        return values, policy, q_all, 0.0, t_max, tie_tol

    tie_tol = tie_tol_rel * scale / (1.0 - delta)
    k = reward.shape[0]
    rows = np.arange(k)
    pol = _first_optimal(masked, tie_tol)  # start from the static (myopic) rule
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        v = _evaluate(kernels, counts, pol, reward[rows, pol], delta, na)
        q = masked + delta * _expected_all(v, kernels, counts, na)
        best = q.max(axis=1)
        improve = q[rows, pol] < best - tie_tol  # switch only on a strict improvement: no cycling on ties
        if not improve.any():
            break
        pol = np.where(improve, np.argmax(q, axis=1), pol)
    else:
        raise RuntimeError(f"policy iteration did not converge in {max_iter} iterations")
    final = _first_optimal(q, tie_tol)  # ties toward the first action, as Environment does
    if np.any(final != pol):
        v = _evaluate(kernels, counts, final, reward[rows, final], delta, na)
        q = masked + delta * _expected_all(v, kernels, counts, na)
    residual = float(np.max(np.abs(v - q.max(axis=1))))
    if residual > 1e3 * tie_tol + tolerances.BELLMAN_RESIDUAL * scale / (1.0 - delta):
        raise RuntimeError(f"policy iteration ended with a Bellman residual of {residual:.3g}")
    return v, final, q, residual, it, tie_tol


def efficient_values(
    env: Environment,
    exclude: int | str | None = None,
    *,
    feasible: Sequence[bool] | np.ndarray | None = None,
    horizon: int | None = None,
    tie_tol: float = TIE_TOL,
    max_iter: int = 1000,
) -> DPSolution:
    r"""The efficient social value and policy, for all agents or for all but ``exclude``.

    Parameters
    ----------
    env : Environment
        Any finite environment; kernels may depend on the action.
    exclude : int or str, optional
        Agent to leave out: the result is :math:`W_{-i}` and :math:`a^*_{-i}` (Bergemann and Välimäki 2010,
        section 2), computed on the others' profiles and broadcast to the full profiles (it does not depend
        on :math:`\theta_i`).
    feasible : array_like of bool, shape (n_actions,), optional
        Actions the planner may take. Default: every action for the full program, and
        ``feasible_without(env)[exclude]`` when an agent is excluded.
    horizon : int, optional
        Number of periods for backward induction; defaults to ``env.horizon``. Passing an integer for an
        infinite-horizon environment solves the truncated game.
    tie_tol : float
        Relative tie tolerance; multiplied by ``max(1, max |reward|)`` and by ``T`` or :math:`1/(1-\delta)`.
    max_iter : int
        Policy-iteration limit (infinite horizon).

    Returns
    -------
    DPSolution
    """
    if not all(hasattr(env, a) for a in ("agents", "actions", "type_counts", "discount", "horizon")):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    n = env.n_agents
    ex = None if exclude is None else env.agent_index(exclude)
    included = tuple(j for j in range(n) if j != ex)
    if feasible is None:
        mask = np.ones(env.n_actions, dtype=bool) if ex is None else feasible_without(env)[ex]
    else:
        mask = np.asarray(feasible, dtype=bool)
        if mask.shape != (env.n_actions,):
            raise ValueError(f"feasible has shape {mask.shape}; expected ({env.n_actions},), one per action")
        if not mask.any():
            raise ValueError("feasible allows no action")
    hor = env.horizon if horizon is None else int(horizon)
    if isinstance(hor, float) and not np.isfinite(hor) and env.discount >= 1.0:
        raise ValueError("an infinite horizon needs discount < 1")
    values, policy, q, residual, iters, ttol = _solve(env, included, mask, hor, float(tie_tol), int(max_iter))
    if ex is None:
        full_v, full_p = values, policy
    else:
        idx = others_index(env, ex)
        full_v, full_p = values[..., idx], policy[..., idx]
        q = q[..., idx, :]
    for arr in (full_v, full_p, q, values, policy):
        arr.setflags(write=False)
    return DPSolution(full_v, full_p, q, values, policy, included, mask, hor, residual, iters, ttol)


def dynamic_policy_tables(env: Environment) -> tuple[np.ndarray, str]:
    r"""The dynamic efficient policy as one-hot allocation tables, one per period (the rule ``"efficient_dynamic"``).

    .. math::
       p_t(a|\theta) = \mathbb{1}[a = a^*_t(\theta)], \qquad
       a^*_t(\theta) = \arg\max_a \Big[\sum_j v_j(\theta_j, a) + \delta\, E[W^{t+1}(\theta') \mid \theta, a]\Big]

    (backward induction on a finite horizon, policy iteration on an infinite one: :func:`efficient_values`; ties to
    the first action).

    Returns
    -------
    tables : ndarray, shape (P, K, A)
        ``P = 1`` when the policy is the same in every period (always on an infinite horizon), else ``P = T``.
    rule : str
        How it was computed, for ``env.meta["allocation_rule"]`` and reports.
    """
    sol = efficient_values(env)
    pol = sol.policy if sol.finite else sol.policy[None]
    if sol.finite and bool(np.all(pol == pol[:1])):
        pol = pol[:1]
    tables = np.zeros((*pol.shape, env.n_actions))
    np.put_along_axis(tables, pol[..., None], 1.0, axis=2)
    if not sol.finite:
        rule = "dynamic efficient (policy iteration)"
    elif pol.shape[0] == 1:
        rule = "dynamic efficient (backward induction; the same in every period)"
    else:
        rule = f"dynamic efficient (backward induction; depends on the period, {pol.shape[0]} tables)"
    return tables, rule


def efficient_environment(env: Environment, *, period: int | None = None, name: str | None = None) -> Environment:
    r"""A copy of ``env`` whose allocation is the *dynamic* efficient policy (:func:`dynamic_policy_tables`).

    Parameters
    ----------
    env : Environment
    period : int, optional
        Finite horizon only: use the policy of period ``t`` (1-based) in every period (then the allocation is
        efficient in period ``t`` only). By default the policy of each period is used in that period (an
        environment with one allocation table per period when the policy changes with the period).
    name : str, optional
        Name of the new environment (default: ``env.name``).

    Returns
    -------
    Environment
        Same agents, actions, discount, horizon and ``meta`` (plus ``meta["allocation_rule"]``).
    """
    tables, rule = dynamic_policy_tables(env)
    if period is not None:
        if env.infinite:
            raise ValueError("period applies to a finite horizon only; the infinite-horizon policy is stationary")
        if not 1 <= int(period) <= int(env.horizon):
            raise ValueError(f"period must lie in 1..{int(env.horizon)}, got {period}")
        tables = tables[min(int(period), tables.shape[0]) - 1]
        rule = f"dynamic efficient in period {int(period)} (backward induction)"
    meta = dict(env.meta)
    meta["allocation_rule"] = rule
    return env.with_allocation(tables, name=env.name if name is None else name, meta=meta)

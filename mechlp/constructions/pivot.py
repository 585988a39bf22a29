r"""The dynamic pivot mechanism of Bergemann and Välimäki (2010) for finite environments.

Notation (Bergemann and Välimäki 2010, eqs. (1), (5)-(7); Yoon 2015, section 2.2). :math:`W` is the efficient
social value and :math:`W_{-i}` the efficient value of the others when agent :math:`i` is excluded, with the
efficient actions :math:`a^*(\theta)` and :math:`a^*_{-i}(\theta_{-i})` (:mod:`mechlp.model.policy`). Write
:math:`C_{-i}(\theta, a) = \sum_{\theta'_{-i}} \prod_{j \ne i} F_j(\theta'_j|\theta_j, a) W_{-i}(\theta'_{-i})` for
the others' expected continuation value after action :math:`a`. Agent :math:`i`'s payment to the designer
(project convention: positive = the agent pays) at profile :math:`\theta` is

.. math::
   z_i(\theta) = \sum_{j \ne i} \big[ v_j(\theta_j, a^*_{-i}) - v_j(\theta_j, a^*) \big]
                 + \delta \big[ C_{-i}(\theta, a^*_{-i}) - C_{-i}(\theta, a^*) \big],

which is the paper's eq. (7) with the same sign: B–V's :math:`p_i^*` is also a payment from the agent, equal to
:math:`v_i(a^*, \theta_i) - m_i(\theta)` (eq. 6), so the agent's flow payoff is the flow marginal contribution

.. math::
   m_i(\theta) = v_i(\theta_i, a^*) - z_i(\theta) = M_i(\theta) - \delta \sum_{\theta'} P(\theta'|\theta, a^*)
                 M_i(\theta'), \qquad M_i = W - W_{-i} \ge 0,

and the agent's utility at every node is :math:`U_i = M_i` (eq. 5). Hence the mechanism is periodic ex post
incentive compatible (B–V Theorem 1) and ex post individually rational; with a random allocation (possible
when no kernel depends on the action) the terms in :math:`a^*` are expectations under :math:`p(a|\theta)`.

With a finite horizon :math:`T` the values depend on the number of periods left, so the transfers depend on the
period: :math:`z_i^t(\theta)` uses :math:`W^{t+1}_{-i}` and :math:`W^{T+1} \equiv 0`. They are computed one
period (depth level) at a time and placed on the history tree by each node's period.

The planner's program without agent :math:`i` may have fewer actions
(:func:`~mechlp.model.policy.feasible_without`): in bilateral trade no trade is possible without the buyer
or the seller, so :math:`W_{-i} \equiv 0` and the pivot pays each side the other's valuation on trade (Yoon 2021,
section 3.3), running a deficit.

The mechanism requires the environment's allocation to be efficient *dynamically*; :func:`dynamic_pivot` checks
it against the Bellman equation and points to :func:`~mechlp.model.policy.efficient_environment` otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, verify
from mechlp.model import tolerances
from mechlp.model.answer import VerifiedOnSpace
from mechlp.model.beliefs import joint_transition
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.policy import (
    DPSolution,
    _evaluate,
    _expected_all,
    _rewards,
    efficient_values,
    feasible_without,
    others_index,
)
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, HistoryTree, StateSpace, question_space

__all__ = [
    "PivotValues",
    "PivotResult",
    "pivot_values",
    "dynamic_pivot",
    "pivot_transfers_on_space",
    "pivot_outside_on_space",
    "exit_nodes",
]


@dataclass
class PivotValues:
    r"""Pivot quantities per profile, with a leading period axis.

    All arrays have a first axis of length ``P``: ``P = 1`` for an infinite horizon (stationary) and ``P = T``
    for a finite horizon (row ``t - 1`` is period ``t``).

    Attributes
    ----------
    W : ndarray, shape (P, K)
        Efficient value :math:`W`.
    W_minus : ndarray, shape (P, n, K)
        :math:`W_{-i}` broadcast to full profiles.
    transfers : ndarray, shape (P, n, K)
        :math:`z_i(\theta)` (payments to the designer).
    marginal : ndarray, shape (P, n, K)
        :math:`M_i = W - W_{-i}`: agent :math:`i`'s utility at every node.
    flow_marginal : ndarray, shape (P, n, K)
        :math:`m_i = \sum_a p(a|\theta) v_i(\theta_i, a) - z_i`.
    policy_minus : ndarray of int, shape (P, n, K)
        :math:`a^*_{-i}` at every full profile.
    outside : ndarray, shape (P, n, K)
        :math:`O_i`: agent :math:`i`'s expected discounted value when it opts out and the planner runs
        :math:`a^*_{-i}` for the others (no transfers; Bergemann and Valimaki 2010, section 2), the outside option
        of their periodic participation constraint. :math:`M_i \ge O_i` always (running :math:`a^*_{-i}` is one
        policy of the full program).
    allocation_loss : float
        Largest shortfall :math:`\max_a Q(\theta, a) - \sum_a p(a|\theta) Q(\theta, a)` of the environment's
        allocation (0 when it is efficient).
    full, minus : DPSolution, list of DPSolution
        The dynamic programs.
    feasible_without : ndarray of bool, shape (n, A)
    horizon : int or float
    """

    W: np.ndarray
    W_minus: np.ndarray
    transfers: np.ndarray
    marginal: np.ndarray
    flow_marginal: np.ndarray
    policy_minus: np.ndarray
    outside: np.ndarray
    allocation_loss: float
    full: DPSolution
    minus: list[DPSolution]
    feasible_without: np.ndarray
    horizon: float

    @property
    def periods(self) -> int:
        return self.W.shape[0]


def _check_allocation(env: Environment, full: DPSolution, tol: float) -> float:
    """Largest loss of the environment's allocation against the Bellman optimum; raise when above ``tol``."""
    q = full.q_values if full.finite else full.q_values[None]
    alloc = _period_allocations(env, q.shape[0])  # (P, K, A): the allocation of each period
    best = q.max(axis=2)  # (P, K)
    used = alloc > 0
    # -inf never occurs here: the full program may take every action
    shortfall = np.where(used, best[:, :, None] - q, 0.0).max(axis=2)  # (P, K)
    loss = float(shortfall.max())
    if loss > tol:
        t, k = np.unravel_index(int(np.argmax(shortfall)), shortfall.shape)
        act = [env.actions[a] for a in np.flatnonzero(alloc[t, k] > 0)]
        opt = env.actions[int(np.argmax(q[t, k]))]
        when = f" in period {t + 1}" if full.finite else ""
        raise ValueError(
            f"the environment's allocation is not dynamically efficient{when}: at profile {env.profile_labels(k)} "
            f"it plays {act} while {opt!r} is worth {loss:.6g} more (Bellman equation). The pivot mechanism "
            "needs the efficient policy: build the model with allocation='efficient_dynamic' (or "
            "mechlp.model.policy.efficient_environment(env))"
        )
    return loss


def _period_allocations(env: Environment, periods: int) -> np.ndarray:
    """``(periods, K, A)``: the environment's allocation table of each period ``1..periods``."""
    return np.stack([env.allocation_at(t + 1) for t in range(periods)]).astype(float)


def pivot_values(
    env: Environment,
    *,
    horizon: int | None = None,
    feasible: np.ndarray | None = None,
    check_tol: float = tolerances.DYNAMIC_EFFICIENCY,
) -> PivotValues:
    r"""Compute :math:`W`, :math:`W_{-i}`, the pivot transfers and the marginal contributions per profile.

    Parameters
    ----------
    env : Environment
        The allocation must be dynamically efficient (checked; see :func:`dynamic_pivot`).
    horizon : int, optional
        Periods for a finite-horizon computation (default ``env.horizon``); an integer for an
        infinite-horizon environment computes the pivot of the truncated game.
    feasible : ndarray of bool, shape (n, A), optional
        Actions of the program without each agent; default :func:`~mechlp.model.policy.feasible_without`.
    check_tol : float
        Relative tolerance of the efficiency check (times ``max(1, max |W|)``).

    Returns
    -------
    PivotValues
    """
    env.require_independent("the dynamic pivot (Bergemann and Valimaki 2010)")
    n, na = env.n_agents, env.n_actions
    fw = feasible_without(env) if feasible is None else np.asarray(feasible, dtype=bool)
    if fw.shape != (n, na):
        raise ValueError(f"feasible has shape {fw.shape}; expected ({n}, {na}) (agents x actions)")
    full = efficient_values(env, horizon=horizon)
    w = full.values if full.finite else full.values[None]  # (P, K)
    p_len, k = w.shape
    loss = _check_allocation(env, full, check_tol * max(1.0, float(np.max(np.abs(w)))))
    alloc_p = _period_allocations(env, p_len)  # (P, K, A)
    delta = env.discount
    types = env.profile_types()
    total = _rewards(env, tuple(range(n)))  # (K, A): sum_j v_j(theta_j, a)
    rows = np.arange(k)
    w_minus = np.empty((p_len, n, k))
    z = np.empty((p_len, n, k))
    pol_minus = np.empty((p_len, n, k), dtype=np.int64)
    outside = np.empty((p_len, n, k))
    own_flow = np.empty((p_len, n, k))
    minus: list[DPSolution] = []
    for i, ag in enumerate(env.agents):
        sol = efficient_values(env, exclude=i, feasible=fw[i], horizon=horizon)
        minus.append(sol)
        red_v = sol.reduced_values if sol.finite else sol.reduced_values[None]  # (P, K_-i)
        red_p = sol.reduced_policy if sol.finite else sol.reduced_policy[None]
        idx = others_index(env, i)
        others = [j for j in range(n) if j != i]
        counts = tuple(env.type_counts[j] for j in others)
        kernels = [env.agents[j].kernel(na) for j in others]
        v_own = ag.valuation[types[:, i]]  # (K, A)
        v_oth = total - v_own  # sum_{j != i} v_j(theta_j, a)
        own_flow[:, i] = np.einsum("pka,ka->pk", alloc_p, v_own)
        for t in range(p_len):  # periods (one for an infinite horizon)
            alloc = alloc_p[t]
            if full.finite:
                nxt = red_v[t + 1] if t + 1 < p_len else np.zeros(red_v.shape[1])
            else:
                nxt = red_v[0]
            cont = _expected_all(nxt, kernels, counts, na)[idx]  # (K, A): C_{-i}(theta, a)
            a_minus = red_p[t][idx]
            term = v_oth + delta * cont
            z[t, i] = term[rows, a_minus] - np.einsum("ka,ka->k", alloc, term)
            w_minus[t, i] = red_v[t][idx]
            pol_minus[t, i] = a_minus
        outside[:, i] = _outside_values(env, pol_minus[:, i], v_own, full.finite)
    marginal = w[:, None, :] - w_minus
    flow = own_flow - z
    for arr in (w, w_minus, z, marginal, flow, pol_minus, outside):
        arr.setflags(write=False)
    return PivotValues(w, w_minus, z, marginal, flow, pol_minus, outside, loss, full, minus, fw, full.horizon)


def _outside_values(env: Environment, policy: np.ndarray, v_own: np.ndarray, finite: bool) -> np.ndarray:
    r"""``(P, K)``: :math:`O_i(\theta) = v_i(\theta_i, a^*_{-i}(\theta)) + \delta E[O_i(\theta') | \theta,
    a^*_{-i}(\theta)]`, every agent's type moving under the action taken (policy evaluation; backwards over the
    periods of a finite horizon)."""
    k, na = env.n_profiles, env.n_actions
    rows = np.arange(k)
    kernels = [ag.kernel(na) for ag in env.agents]
    counts = env.type_counts
    if not finite:
        return _evaluate(kernels, counts, policy[0], v_own[rows, policy[0]], env.discount, na)[None]
    out = np.empty(policy.shape)
    nxt = np.zeros(k)
    for t in range(policy.shape[0] - 1, -1, -1):  # periods, last first
        out[t] = v_own[rows, policy[t]] + env.discount * _expected_all(nxt, kernels, counts, na)[rows, policy[t]]
        nxt = out[t]
    return out


def _on_space(space: StateSpace, per_profile: np.ndarray) -> np.ndarray:
    """``(n, n_nodes)`` from a ``(P, n, K)`` array: each node takes the entry of its period and profile."""
    if per_profile.shape[0] == 1:
        period = np.zeros(space.n_nodes, dtype=np.int64)
    else:
        period = np.asarray(space.hist_period)[space.node_hist] - 1
    return per_profile[period, :, space.node_profile].T


def pivot_transfers_on_space(space: StateSpace, values: PivotValues) -> np.ndarray:
    """``(n, n_nodes)`` transfers: each node pays the pivot transfer of its period and profile."""
    return _on_space(space, values.transfers)


def pivot_outside_on_space(space: StateSpace, values: PivotValues) -> np.ndarray:
    """``(n, n_nodes)`` outside values :math:`O_i` (:attr:`PivotValues.outside`) at every node."""
    return _on_space(space, values.outside)


def exit_nodes(space: StateSpace, values: PivotValues, tol: float = tolerances.EXIT) -> np.ndarray:
    r"""``(n, n_nodes)`` bool: where Bergemann and Välimäki's (2010) efficient exit sets agent ``i``'s payment to 0.

    Their Definition 1: agent :math:`i` is *irrelevant* at a node of period :math:`\tau` when the probability
    that :math:`i` affects the efficient decision in any period :math:`t \ge \tau` is zero,
    :math:`\Pr(\{\theta_t : a^*_t(\theta_t) \ne a^*_{-i,t}(\theta_t)\} | \theta_\tau) = 0`, and a
    mechanism with efficient exit makes no payment to or from :math:`i` there. With ties the decision without
    :math:`i` is read as a set: :math:`i` does not affect the decision at :math:`\theta` when the environment's
    action is optimal for the others' program, i.e. the pivot's externality :math:`z_i(\theta) = Q_{-i}(\theta,
    a^*_{-i}) - Q_{-i}(\theta, a^*) \ge 0` is zero (within ``tol`` times ``max(1, max |W|)``) and every action the
    allocation uses is available without :math:`i` (:attr:`PivotValues.feasible_without`). Irrelevance is
    that at the node's profile and at every profile reached afterwards with positive probability under the
    efficient allocation: a greatest fixed point over profiles (infinite horizon; iterated, at most ``K``
    rounds) or a backward pass over the periods (finite horizon). It depends on the node's period and profile
    only (types are Markov, the efficient allocation depends on the current profile).

    Parameters
    ----------
    space : StateSpace
    values : PivotValues
        :func:`pivot_values` of ``space.env`` (with ``horizon`` the tree's for a truncated tree).
    tol : float
        Relative tolerance of "zero externality".

    Returns
    -------
    ndarray of bool, shape (n_agents, n_nodes)
    """
    env = space.env
    k = env.n_profiles
    scale = tol * max(1.0, float(np.max(np.abs(values.W))))
    # (P, n, K): i changes the decision at this period and profile -- the action is not optimal for the others'
    # program, or not even available to it (feasible_without: in bilateral trade nothing trades without a side)
    used = _period_allocations(env, values.periods) > 0  # (P, K, A)
    unavailable = (used[:, None, :, :] & ~values.feasible_without[None, :, None, :]).any(axis=3)
    relevant_now = (np.abs(values.transfers) > scale) | unavailable
    q = np.asarray(joint_transition(env), dtype=float) > 0  # (P_alloc * K, K): positive-probability successors
    p_alloc = env.n_allocation_periods
    p_len = values.periods
    if p_len == 1:
        rel = relevant_now[0]  # (n, K)
        succ = q[:k] if p_alloc == 1 else q[(p_alloc - 1) * k :]
        for _ in range(k):  # rounds of the fixed point: relevance spreads back along positive transitions
            new = rel | ((succ[None, :, :] & rel[:, None, :]).any(axis=2))
            if np.array_equal(new, rel):
                break
            rel = new
        per = rel[None]
    else:
        per = np.empty_like(relevant_now)
        nxt = np.zeros(relevant_now.shape[1:], dtype=bool)
        for t in range(p_len - 1, -1, -1):  # periods, last first
            table = min(t, p_alloc - 1)
            succ = q[table * k : (table + 1) * k]
            later = (succ[None, :, :] & nxt[:, None, :]).any(axis=2) if t < p_len - 1 else nxt
            per[t] = relevant_now[t] | later
            nxt = per[t]
    return ~_on_space(space, per.astype(float)).astype(bool)


@dataclass
class PivotResult(VerifiedOnSpace):
    r"""The dynamic pivot mechanism on a space, its values and its verification (result contract:
    :mod:`mechlp.model.answer`).

    Attributes
    ----------
    status : str
        (property) ``"verified"`` (both verifications passed), ``"verification_failed"`` or ``"not_verified"``
        (built with ``check=False``).
    mechanism : Mechanism
        Transfers at every node of ``space``.
    transfers : ndarray
        Per profile: ``(n, K)`` for an infinite horizon (stationary), ``(T, n, K)`` for a finite one.
    W, W_minus, marginal, flow_marginal : ndarray
        :math:`W` ``(K,)`` / ``(T, K)``; :math:`W_{-i}`, :math:`M_i`, :math:`m_i` ``(n, K)`` / ``(T, n, K)``.
    surplus : ndarray, shape (n_hist,)
        Designer's expected surplus :math:`\Pi(h)` (``Mechanism.surplus``); ``surplus[0]`` is the root
        (negative = expected deficit).
    verification : Verification or None
        ``verify(mechanism, ic="ex_post", ir="ex_post", budget="none")`` (periodic ex post IC and IR,
        B–V Theorem 1).
    verification_bayesian : Verification or None
        ``verify(mechanism, ic="bayesian", ir="interim", budget="none")``.
    values : PivotValues
    message : str
    certificate : Verification or None
        (property) ``verification``, the ex post check.
    timings : dict
        Seconds: ``"values"`` (the dynamic programs), ``"verify"``.
    size : dict
        (property) ``histories`` and ``nodes`` of the space.

    JSON (:meth:`to_dict`): the contract's keys plus ``transfers_by_profile`` (:meth:`transfer_table`),
    ``ex_ante_surplus``, ``verification_bayesian`` and ``notes``.
    """

    env: Environment
    space: StateSpace
    mechanism: Mechanism
    transfers: np.ndarray
    W: np.ndarray
    W_minus: np.ndarray
    marginal: np.ndarray
    flow_marginal: np.ndarray
    surplus: np.ndarray
    values: PivotValues
    verification: Verification | None = None
    verification_bayesian: Verification | None = None
    message: str = ""
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when both verifications ran and passed."""
        return bool(
            self.verification is not None
            and self.verification.ok
            and self.verification_bayesian is not None
            and self.verification_bayesian.ok
        )

    @property
    def status(self) -> str:
        if self.verification is None or self.verification_bayesian is None:
            return "not_verified"
        return "verified" if self.ok else "verification_failed"

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "transfers_by_profile": self.transfer_table(),
            "ex_ante_surplus": float(self.surplus[0]),
            "verification_bayesian": self.verification_bayesian,
            "notes": list(self.notes),
        }

    def transfer_table(self) -> list[dict]:
        """Rows ``{"period", "profile", "action", "transfers": {agent: z}}`` (period ``None`` if stationary)."""
        env = self.env
        z = self.values.transfers
        rows = []
        for t in range(self.values.periods):  # periods x profiles: a report, not a computation
            act = np.argmax(env.allocation_at(t + 1), axis=1)
            for k in range(env.n_profiles):
                rows.append(
                    {
                        "period": None if self.values.periods == 1 else t + 1,
                        "profile": env.profile_labels(k),
                        "action": env.actions[int(act[k])],
                        "transfers": {ag.name: float(z[t, i, k]) for i, ag in enumerate(env.agents)},
                    }
                )
        return rows


def dynamic_pivot(
    env: Environment,
    space: StateSpace | None = None,
    *,
    feasible: np.ndarray | None = None,
    check: bool = True,
) -> PivotResult:
    r"""The Bergemann–Välimäki (2010) dynamic pivot mechanism, verified.

    Parameters
    ----------
    env : Environment
        Finite environment whose allocation is the (dynamically) efficient policy; kernels may depend on the
        action (then build the environment with :func:`~mechlp.model.policy.efficient_environment`).
    space : StateSpace, optional
        Default: ``MarkovSpace(env)`` for an infinite horizon (the transfers are stationary), the history tree
        otherwise. A :class:`~mechlp.model.spaces.HistoryTree` of an infinite-horizon environment gives the pivot of
        the game truncated at the tree's horizon.
    feasible : ndarray of bool, shape (n, A), optional
        Actions of the program without each agent (default :func:`~mechlp.model.policy.feasible_without`).
    check : bool
        Run the independent verifier twice: ex post IC and IR, and Bayesian IC with interim IR (no budget
        rows). Disable only for models whose Markov space is too large to verify.

    Returns
    -------
    PivotResult

    Raises
    ------
    ValueError
        When the allocation is not dynamically efficient (message names the profile and period).
    """
    env.require_independent("the dynamic pivot (Bergemann and Valimaki 2010)")
    # the pivot builds no LP: the space is sized for the verifier only
    space = question_space(env, "verify", DEFAULT_MEMORY_LIMIT, space=space, advice=" (use a shorter horizon)")
    horizon = space.horizon if isinstance(space, HistoryTree) else None
    t0 = time.perf_counter()
    vals = pivot_values(env, horizon=horizon, feasible=feasible)
    mech = Mechanism(space, pivot_transfers_on_space(space, vals))
    seconds = time.perf_counter() - t0
    stationary = vals.periods == 1
    res = PivotResult(
        env=env,
        space=space,
        mechanism=mech,
        transfers=vals.transfers[0] if stationary else vals.transfers,
        W=vals.W[0] if stationary else vals.W,
        W_minus=vals.W_minus[0] if stationary else vals.W_minus,
        marginal=vals.marginal[0] if stationary else vals.marginal,
        flow_marginal=vals.flow_marginal[0] if stationary else vals.flow_marginal,
        surplus=mech.surplus(),
        values=vals,
        timings={"values": seconds},
    )
    if isinstance(space, HistoryTree) and env.infinite:
        res.notes.append(f"infinite-horizon environment truncated to {space.horizon} periods (pivot of that game)")
    if check:
        t1 = time.perf_counter()
        outside = pivot_outside_on_space(space, vals)  # Bergemann-Valimaki's participation: U_i >= O_i
        res.verification = verify(mech, ic="ex_post", ir="ex_post", budget="none", outside_values=outside)
        res.verification_bayesian = verify(mech, ic="bayesian", ir="interim", budget="none", outside_values=outside)
        res.timings["verify"] = time.perf_counter() - t1
    pi0 = float(res.surplus[0])
    kind = "surplus" if pi0 >= 0 else "deficit"
    status = "not verified" if not check else ("verified" if res.ok else "VERIFICATION FAILED")
    res.message = (
        f"dynamic pivot mechanism ({space.kind} space, {space.n_hist:,} histories): expected {kind} "
        f"{abs(pi0):.6g} at the root; {status}"
    )
    return res

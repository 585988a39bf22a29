r"""Participation in the balanced team mechanism: Athey and Segal (2007), section 6.

Athey and Segal's section 6 makes the balanced team mechanism (:mod:`mechlp.constructions.team`) self-enforcing
in Markov games with patient agents: every agent must prefer to keep participating in every period. This module
computes the paper's constants for a finite model, checks the paper's assumptions, and adds side payments
("bonds") to the balanced team transfers so that participation holds at every history when it can.

Notation follows docs/design.md section 1 (payments :math:`x_i` are *to* the designer; the paper's transfers
:math:`\psi_i = -x_i` are *to* the agent). :math:`Q(\theta'|\theta) = \sum_a p(a|\theta) \prod_j
F_j(\theta'_j|\theta_j, a)` is the chain of type profiles under truth-telling and the allocation,
:math:`w_i(\theta) = \sum_a p(a|\theta) v_i(\theta_i, a)` agent :math:`i`'s flow value, :math:`I` the number of
agents.

The paper's assumptions, as checked here (a ``ValueError`` names the one that fails)
    (i)-(iii) finite type and action sets (always), an **infinite horizon**, a **stationary** allocation (one
    table) and Markov kernels (always): a Markov decision process. (iv) **independent types** (no
    ``joint_transition``) and private values (always). (v) a **null action** :math:`\hat a` with
    :math:`v_i(\theta_i, \hat a) = 0` for every agent and type: the non-participation outcome, normalised to
    zero (here also the outside option of every IR row). Proposition 3 further needs the **efficient**
    allocation (a Blackwell policy: with kernels that ignore the action the per-period efficient rule is one
    for every :math:`\delta`; with action-dependent kernels the model's dynamic policy is used as it is, a
    note says so), a chain :math:`Q` with a **single ergodic set** (Definition 6: one closed communicating
    class; transient profiles allowed, periodicity allowed), and a **positive invariant surplus**
    :math:`\sum_i \bar u_i > 0`.

The constants (proof of Proposition 3)
    :math:`\lambda` is the invariant distribution of :math:`Q`, :math:`\bar u_i = \sum_\theta \lambda_\theta
    w_i(\theta)` agent :math:`i`'s long-run flow value, :math:`M = \max_{i, a, \theta_i} |v_i(\theta_i, a)|`.
    Lemma 1 bounds :math:`|\sum_t \delta^t (Q^t - \mathbf 1 \lambda)|` uniformly in :math:`\delta`; what the proof
    uses is the constant of (6.2),

    .. math::
       C = \sup_{\delta \in (0, 1)} \max_{f, \theta} \Big|\sum_{t \ge 0} \delta^t \big((Q^t f)(\theta)
           - \lambda f\big)\Big| = \sup_\delta \max_{f} \|(I - \delta Q)^{-1} (f - \lambda f)\|_\infty ,

    over the functions :math:`f = w_j` **and** :math:`f = \sum_{k \ne j} w_k` (the paper states (6.2) for
    :math:`u_j` but bounds :math:`|\gamma_j^B| \le 2C` with it, and :math:`\gamma_j^B` is built from
    :math:`\sum_{k \ne j} u_k`; taking both keeps every inequality of the proof true). The supremum is taken
    numerically: on ``C_GRID`` discount factors in :math:`[0, 1)`, the points :math:`1 - 10^{-k}` and the limit
    :math:`\delta \to 1`, where :math:`(I - \delta Q)^{-1}(f - \lambda f) \to (I - Q + \mathbf 1\lambda)^{-1}
    (f - \lambda f)` (the deviation matrix; it exists for a single ergodic set, periodic or not). Then

    .. math::
       K = \frac{2C}{I-1} + \frac{M}{I}, \qquad A_i = \frac{\bar u_i}{I} + K, \qquad
       \delta^* = \frac{x}{1+x}, \quad x = \frac{I\,(C + 2IK + 2M)}{\sum_i \bar u_i},

    the paper's condition :math:`\delta/(1-\delta) > x`. In the paper's game agent :math:`i` hands every other
    agent :math:`j` the amount :math:`z_{ij} = \gamma_j^B/(I-1) + A_i \ge 0` each period; net, agent :math:`i`
    receives :math:`\psi^B_i + \sum_j \bar u_j / I - \bar u_i`: the balanced team transfers plus a constant
    that gives every agent the same long-run flow :math:`\sum_j \bar u_j / I`. :math:`\delta^*` is a *sufficient*
    bound (crude: it covers every off-schedule deviation of the game); :func:`bonded_team` checks participation
    directly at the model's :math:`\delta`, and :func:`team_participation_slack` is the criterion whose sign
    change is the construction's own critical discount factor (``critical_delta(method="team")``).

Bonds (``bond=``), each keeping Bayesian IC and an exactly zero budget at every node
    ``"paper"``
        The paper's constants: at every node agent :math:`i` pays the pool :math:`a_i = \bar u_i -
        \sum_j \bar u_j / I` on top of the balanced team payment (:math:`\sum_i a_i = 0`). A report-independent
        constant stream changes no IC row. For :math:`\delta` near 1 the continuation utility at every node is
        :math:`\sum_j \bar u_j / (I (1 - \delta))` plus terms bounded uniformly in :math:`\delta`, so this gives
        **ex post** (periodic, node-by-node) participation above the paper's :math:`\delta^*`, hence also interim
        and ex ante participation.
    ``"history"``
        A zero-sum bond at every history. Agent :math:`i` holds the bond credit :math:`b_i(h)`
        (:math:`\sum_i b_i(h) = 0`): at node :math:`g = (h, \theta)` he is paid back :math:`b_i(h)` and posts
        :math:`\delta\, b_i(h')` for the next history :math:`h'` (the bond earns the discount rate, so its present
        value is zero), i.e. pays :math:`-b_i(h) + \delta b_i(h')`; a negative credit is a loan from the others.
        Every continuation utility at :math:`h` moves by :math:`b_i(h)` (the recursion telescopes), a constant
        at the history: no IC row changes (the child history is the same after a misreport, Lamba 2022,
        Lemma 1). With :math:`f_i(h)` agent :math:`i`'s worst participation slack at :math:`h` (interim: over
        his types; ex post: over the nodes at :math:`h`; ex ante: the root only) the credit
        :math:`b_i(h) = -f_i(h) + \frac1I \sum_j f_j(h)` gives every agent the slack
        :math:`\frac1I \sum_j f_j(h)`. Since the credits sum to zero, :math:`\sum_j f_j(h)` is the same for
        every such bond: participation holds at every history **iff** :math:`\sum_j f_j(h) \ge 0` at every
        history, and a negative sum is the reason of a refusal (summing those agents' IR rows cancels every
        bond).

A bond held by the designer (posted up front, returned later) would move slack across periods, but it needs a
designer who carries money between periods (ex ante or savings balance); with ex post balance
:math:`\sum_i U_i(g) = W(g)` at every node whatever the transfers, so bonds can only move slack between agents.

Below the construction's threshold :func:`bonded_team` refuses: the result has status ``"refused"`` and a
``reason`` (the history, the agent and the value), with the mechanism kept for inspection.

Continuous time and infinite types
    The paper works with general (possibly infinite) signal spaces and a Blackwell policy; the finite-model
    statements here replace them with finite chains (Lemma 1 is stated for finite chains in the paper too),
    the supremum in :math:`C` is a numerical maximum over a grid of discount factors (docs/design.md section 10),
    and participation is checked against outside option 0 (assumption (v)).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, verify
from mechlp.constructions.team import TeamResult, balanced_team, exact_zero_sum
from mechlp.model import tolerances
from mechlp.model.answer import VerifiedOnSpace
from mechlp.model.beliefs import joint_transition
from mechlp.model.environment import Environment
from mechlp.model.exact import Numbers, to_fractions
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import check_choice, parse_notion
from mechlp.model.spaces import StateSpace

__all__ = [
    "BONDS",
    "C_GRID",
    "ParticipationConstants",
    "BondedTeamResult",
    "athey_segal_constants",
    "bonded_team",
    "team_participation_slack",
]

#: The side-payment schedules of :func:`bonded_team`.
BONDS: tuple[str, ...] = ("paper", "history")
#: IR notions a bond can be built for.
IR_NOTIONS: tuple[str, ...] = ("interim", "ex_post", "ex_ante")
#: Discount factors in [0, 1) on which the supremum of Lemma 1's constant C is taken (plus 1 - 10^-k and the limit).
C_GRID = 1001
#: Exponents k of the extra points 1 - 10^-k of that grid.
C_NEAR_ONE = tuple(range(3, 9))
WHAT = "Athey-Segal section 6 (participation)"


# ---------------------------------------------------------------------------------------------- the chain
def _closed_classes(q: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Closed communicating classes of the chain ``q`` (``q > 0`` as the graph) and the class label of each state."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    graph = csr_matrix(q > 0)
    _, labels = connected_components(graph, directed=True, connection="strong")
    closed = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        outside = np.setdiff1d(np.arange(q.shape[0]), members)
        if not (q[np.ix_(members, outside)] > 0).any():
            closed.append(members)
    return closed, labels


def _period(q: np.ndarray, members: np.ndarray) -> int:
    """Period of a closed class: the gcd of ``level(u) + 1 - level(v)`` over its edges (breadth-first levels)."""
    sub = q[np.ix_(members, members)] > 0
    level = np.full(members.size, -1)
    level[0] = 0
    frontier = np.zeros(members.size, dtype=bool)
    frontier[0] = True
    depth = 0
    while frontier.any():  # breadth-first, one level at a time
        depth += 1
        frontier = sub[frontier].any(axis=0) & (level < 0)
        level[frontier] = depth
    u, v = np.nonzero(sub)
    return int(np.gcd.reduce(np.abs(level[u] + 1 - level[v]))) or 1


def _stationary(q: np.ndarray) -> np.ndarray:
    """The invariant distribution of a chain with one closed class: ``lambda (I - Q) = 0``, ``sum = 1``."""
    k = q.shape[0]
    mat = np.vstack([(np.eye(k) - q).T, np.ones((1, k))])
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    lam = np.linalg.lstsq(mat, rhs, rcond=None)[0]
    lam[np.abs(lam) < tolerances.PROBABILITY] = 0.0
    return lam / lam.sum()


def _centred_sums(q: np.ndarray, lam: np.ndarray, funcs: np.ndarray, delta: float | None) -> np.ndarray:
    r""":math:`\sum_t \delta^t (Q^t f - \lambda f)` for every row ``f`` of ``funcs`` (``delta=None``: the limit 1)."""
    k = q.shape[0]
    centred = funcs - (funcs @ lam)[:, None]
    mat = np.eye(k) - q + np.outer(np.ones(k), lam) if delta is None else np.eye(k) - delta * q
    return np.linalg.solve(mat, centred.T).T


# ---------------------------------------------------------------------------------------------- constants
@dataclass
class ParticipationConstants:
    r"""The constants of Athey and Segal's Proposition 3 for one model (see :func:`athey_segal_constants`).

    Attributes
    ----------
    chain : ndarray, shape (K, K)
        :math:`Q(\theta'|\theta)` under truth-telling and the allocation.
    stationary : ndarray, shape (K,)
        The invariant distribution :math:`\lambda`.
    ergodic_set, transient : list of int
        Profiles of the single closed class and the others.
    period : int
        Period of the ergodic set (1: aperiodic; Lemma 1 allows any).
    mean_values : ndarray, shape (n_agents,)
        :math:`\bar u_i = \lambda w_i`.
    mean_surplus : float
        :math:`\sum_i \bar u_i` (positive).
    M : float
        :math:`\max_{i, a, \theta_i} |v_i(\theta_i, a)|`.
    C : float
        Lemma 1's constant of (6.2), the maximum over the grid of discount factors and the limit 1.
    C_at_delta : float
        The same quantity at the model's discount factor only.
    C_argmax : float
        Discount factor where the maximum was found (``1.0``: the limit).
    lemma1 : float
        Lemma 1's bound itself, :math:`\sup_\delta \max_{\theta, \theta'} |\sum_t \delta^t
        (p^{(t)}_{\theta\theta'} - \lambda_{\theta'})|`, on the same grid (the sums of the indicator functions).
    K : float
        :math:`2C/(I-1) + M/I`.
    A : ndarray, shape (n_agents,)
        :math:`A_i = \bar u_i / I + K`: what agent :math:`i` hands every other agent each period, on top of
        :math:`\gamma_j^B/(I-1)`.
    side_payments : ndarray, shape (n_agents,)
        Net per-period payment of agent :math:`i` to the pool, :math:`a_i = (I-1)A_i - \sum_{j \ne i} A_j =
        \bar u_i - \sum_j \bar u_j / I` (sums to zero).
    x : float
        :math:`I (C + 2IK + 2M) / \sum_i \bar u_i`.
    delta_star : float
        :math:`x / (1 + x)`: for :math:`\delta > \delta^*` the paper's proof applies.
    null_action : str
        The action of assumption (v).
    discount : float
        The model's discount factor.
    assumptions : dict
        Each assumption checked, with what was found.
    notes : list of str
    """

    chain: np.ndarray
    stationary: np.ndarray
    ergodic_set: list[int]
    transient: list[int]
    period: int
    mean_values: np.ndarray
    mean_surplus: float
    M: float
    C: float
    C_at_delta: float
    C_argmax: float
    lemma1: float
    K: float
    A: np.ndarray
    side_payments: np.ndarray
    x: float
    delta_star: float
    null_action: str
    discount: float
    assumptions: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def above(self) -> bool:
        """The model's discount factor exceeds :attr:`delta_star`."""
        return self.discount > self.delta_star

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and lists (for JSON)."""
        return {
            "stationary": self.stationary.tolist(),
            "ergodic_set": list(self.ergodic_set),
            "transient": list(self.transient),
            "period": self.period,
            "mean_values": self.mean_values.tolist(),
            "mean_surplus": self.mean_surplus,
            "M": self.M,
            "C": self.C,
            "C_at_delta": self.C_at_delta,
            "C_argmax": self.C_argmax,
            "lemma1": self.lemma1,
            "K": self.K,
            "A": self.A.tolist(),
            "side_payments": self.side_payments.tolist(),
            "x": self.x,
            "delta_star": self.delta_star,
            "null_action": self.null_action,
            "discount": self.discount,
            "assumptions": dict(self.assumptions),
            "notes": list(self.notes),
        }

    def report(self, names: list[str] | None = None) -> str:
        """Readable lines: the assumptions, the constants and the threshold."""
        names = names or [f"agent {i}" for i in range(self.A.size)]
        lines = ["Athey-Segal (2007) section 6 constants:"]
        lines += [f"  assumption {k}: {v}" for k, v in self.assumptions.items()]
        lines.append(
            f"  invariant surplus sum_i ubar_i = {self.mean_surplus:.6g}; M = {self.M:.6g}; "
            f"C (Lemma 1, sup over delta) = {self.C:.6g} (at delta -> {self.C_argmax:g}; at the model's delta "
            f"{self.C_at_delta:.6g}); Lemma 1 bound = {self.lemma1:.6g}; K = {self.K:.6g}"
        )
        for i, nm in enumerate(names):
            lines.append(
                f"  {nm}: ubar = {self.mean_values[i]:.6g}, A = {self.A[i]:.6g}, net side payment per period "
                f"a = {self.side_payments[i]:.6g}"
            )
        side = "above" if self.above else "below"
        lines.append(
            f"  paper's sufficient threshold delta* = {self.delta_star:.10f} (delta/(1-delta) > {self.x:.6g}); "
            f"the model's delta = {self.discount:g} is {side} it"
        )
        lines += [f"  note: {s}" for s in self.notes]
        return "\n".join(lines)


def _null_action(env: Environment) -> int | None:
    for a in range(env.n_actions):
        if all(np.all(ag.valuation[:, a] == 0.0) for ag in env.agents):
            return a
    return None


def _check_assumptions(env: Environment) -> tuple[dict[str, str], int, list[str]]:
    """Check assumptions (i)-(v) and efficiency; return what was found, the null action and notes."""
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    if env.n_agents < 2:
        raise ValueError(f"{WHAT} needs at least two agents (the side payments go from one agent to the others)")
    if not env.infinite:
        raise ValueError(
            f"{WHAT} needs an infinite horizon (assumptions (i)-(iii): a stationary Markov game); model "
            f"{env.name!r} has horizon {env.horizon}. With a finite horizon the last period is a static problem "
            "where balanced, efficient and IR mechanisms need not exist (Myerson-Satterthwaite)"
        )
    env.require_stationary(f"{WHAT} (assumption (iii): a stationary Markov policy)")
    env.require_independent(f"{WHAT} (assumption (iv): independent types)")
    null = _null_action(env)
    if null is None:
        raise ValueError(
            f"{WHAT} needs assumption (v): an action (non-participation) at which every agent's value is 0 for "
            f"every type; model {env.name!r} has none among {list(env.actions)}"
        )
    found = {
        "(i)-(iii) stationary Markov game": "infinite horizon, one allocation table, Markov kernels",
        "(iv) independent types, private values": "no joint kernel; values depend on own type only",
        "(v) null action": f"{env.actions[null]!r} gives every agent 0",
    }
    notes = []
    if env.action_dependent:
        notes.append(
            "a kernel depends on the action: the allocation is the model's dynamic policy at its discount factor; "
            "the paper needs it to be a Blackwell policy (efficient for all delta near 1), which is not checked"
        )
    return found, null, notes


def athey_segal_constants(env: Environment) -> ParticipationConstants:
    r"""Athey and Segal's (2007) section 6 constants and threshold :math:`\delta^*` for ``env``.

    Checks the paper's assumptions (module docstring), then computes the invariant distribution
    :math:`\lambda` of the profile chain :math:`Q`, the long-run values :math:`\bar u_i`, Lemma 1's constant
    :math:`C` (eq. (6.2), the supremum over :math:`\delta` taken on a grid and the limit 1),
    :math:`K = 2C/(I-1) + M/I`, :math:`A_i = \bar u_i / I + K` and :math:`\delta^* = x/(1+x)` with
    :math:`x = I (C + 2IK + 2M)/\sum_i \bar u_i` (proof of Proposition 3).

    Parameters
    ----------
    env : Environment
        Infinite horizon, stationary efficient allocation, independent types, a null action.

    Returns
    -------
    ParticipationConstants

    Raises
    ------
    ValueError
        Naming the assumption that fails: fewer than two agents, a finite horizon, a period-dependent
        allocation, correlated types, no null action, a chain with more than one ergodic set (Proposition 3),
        or an invariant surplus :math:`\sum_i \bar u_i \le 0`.
    TypeError
        When ``env`` is not an :class:`Environment`.
    """
    return _constants(env, sup=True)


def _constants(env: Environment, sup: bool) -> ParticipationConstants:
    """:func:`athey_segal_constants`; with ``sup=False`` the supremum over discount factors is skipped (``C`` is
    then the larger of the values at the model's delta and at the limit 1: for criteria that do not use it)."""
    found, null, notes = _check_assumptions(env)
    q = np.asarray(joint_transition(env), dtype=float)
    closed, _ = _closed_classes(q)
    if len(closed) != 1:
        sets = "; ".join("{" + ", ".join(_label(env, int(s)) for s in c) + "}" for c in closed)
        raise ValueError(
            f"{WHAT}: Proposition 3 needs the profile chain to have a single ergodic set, but model {env.name!r} has "
            f"{len(closed)}: {sets}. Lemma 1's bound then fails (a report can move the long-run average) and "
            "the balanced transfers grow like 1/(1-delta)"
        )
    erg = closed[0]
    period = _period(q, erg)
    lam = _stationary(q)
    flows = env.flow_values()  # (n, K)
    ubar = flows @ lam
    surplus = float(ubar.sum())
    found["single ergodic set (Definition 6)"] = f"{erg.size} of {q.shape[0]} profiles, period {period}" + (
        "" if period == 1 else " (periodic)"
    )
    if not surplus > tolerances.SURPLUS:
        raise ValueError(
            f"{WHAT}: Proposition 3 needs a positive expected total surplus under the invariant distribution, but "
            f"sum_i ubar_i = {surplus:.6g} for model {env.name!r}: no patience makes participation self-enforcing"
        )
    found["positive invariant surplus"] = f"sum_i ubar_i = {surplus:.6g}"
    n = env.n_agents
    total = flows.sum(axis=0, keepdims=True)
    funcs = np.vstack([flows, total - flows])  # u_j and sum_{k != j} u_k
    # the indicator functions e_theta' give Lemma 1's expression itself: sum_t delta^t (p^(t)_{theta theta'} - lambda)
    nf = funcs.shape[0]
    stacked = np.vstack([funcs, np.eye(q.shape[0])])
    deltas = [*np.linspace(0.0, 1.0, C_GRID)[:-1], *(1.0 - 10.0 ** (-k) for k in C_NEAR_ONE)] if sup else []
    sums = np.abs(_centred_sums(q, lam, stacked, None))
    best, arg, lemma = float(np.max(sums[:nf])), 1.0, float(np.max(sums[nf:]))
    for d in deltas:  # a loop over scalar discount factors
        sums = np.abs(_centred_sums(q, lam, stacked, d))
        v = float(np.max(sums[:nf]))
        lemma = max(lemma, float(np.max(sums[nf:])))
        if v > best:
            best, arg = v, float(d)
    c_at = float(np.max(np.abs(_centred_sums(q, lam, funcs, float(env.discount)))))
    c = max(best, c_at)
    m = max(float(np.max(np.abs(ag.valuation))) for ag in env.agents)
    k_const = 2.0 * c / (n - 1) + m / n
    a_const = ubar / n + k_const
    side = ubar - surplus / n
    x = n * (c + 2 * n * k_const + 2 * m) / surplus
    return ParticipationConstants(
        chain=q,
        stationary=lam,
        ergodic_set=[int(s) for s in erg],
        transient=[int(s) for s in np.setdiff1d(np.arange(q.shape[0]), erg)],
        period=period,
        mean_values=ubar,
        mean_surplus=surplus,
        M=m,
        C=c,
        C_at_delta=c_at,
        C_argmax=arg,
        lemma1=lemma,
        K=k_const,
        A=a_const,
        side_payments=side,
        x=x,
        delta_star=x / (1.0 + x),
        null_action=str(env.actions[null]),
        discount=float(env.discount),
        assumptions=found,
        notes=notes,
    )


def _label(env: Environment, profile: int) -> str:
    return "(" + ", ".join(env.profile_labels(profile).values()) + ")"


# ---------------------------------------------------------------------------------------------- bonds
def _floors(space: StateSpace, mech: Mechanism, ir: str) -> np.ndarray:
    """``(n_agents, n_hist)``: each agent's worst participation level at each history under ``ir``."""
    env = space.env
    k = env.n_profiles
    if ir == "ex_post":
        u = mech.utilities()
        return u.reshape(env.n_agents, space.n_hist, k).min(axis=2)
    ubar = mech.interim_utilities()
    out = np.stack([ub.min(axis=1) for ub in ubar])
    if ir == "ex_ante":
        out[:, 1:] = 0.0  # no participation row after the root
    return out


def _history_credit(floors: np.ndarray) -> np.ndarray:
    r"""The zero-sum bond credit :math:`b_i(h) = -f_i(h) + \frac1I\sum_j f_j(h)` (last agent: minus the others)."""
    credit = -floors + floors.mean(axis=0, keepdims=True)
    credit[-1] = -credit[:-1].sum(axis=0)
    return credit


def _credit_payments(space: StateSpace, credit: np.ndarray, delta: Any) -> np.ndarray:
    r"""Node payments :math:`-b_i(h_g) + \delta b_i(h'_g)` of a bond credit (``h'``: the next history, if any)."""
    child = space.child_hist
    nxt = credit[:, np.maximum(child, 0)] * (child >= 0)
    return -credit[:, space.node_hist] + delta * nxt


def _exact_credit(values: np.ndarray) -> np.ndarray:
    """Floats as exact fractions, the last agent's row minus the others' (so every column sums to exactly 0)."""
    out = to_fractions(values)
    out[-1] = -out[:-1].sum(axis=0)
    return out


@dataclass
class BondedTeamResult(VerifiedOnSpace):
    """Result of :func:`bonded_team` (result contract: :mod:`mechlp.model.answer`).

    Attributes
    ----------
    space : StateSpace
    mechanism : Mechanism
        The balanced team mechanism plus the bond's side payments (kept also when refused, for inspection).
    base : TeamResult
        The balanced team mechanism without side payments (:func:`mechlp.constructions.team.balanced_team`).
    constants : ParticipationConstants
    bond : str
        ``"paper"`` or ``"history"``.
    ir : str
        The participation notion the bond was built for and verified against (outside option 0).
    side_payments : ndarray, shape (n_agents, n_nodes)
        What the bond adds to each payment to the designer (sums to zero at every node).
    credit : ndarray or None
        ``bond="history"``: the bond credit :math:`b_i(h)`, shape ``(n_agents, n_hist)``.
    gross : ndarray or None
        ``bond="paper"``: the paper's bilateral payments :math:`z_{ij}(g) = \\gamma_j(g)/(I-1) + A_i`, shape
        ``(n_agents, n_agents, n_nodes)`` (zero on the diagonal); non-negative by the choice of :math:`K`.
    slack : ndarray, shape (n_hist,)
        The smallest participation slack over agents (and types or nodes) at each history.
    reason : str
        Why the construction was refused (empty when it was not).
    verification : Verification or None
        ``verify(mechanism, ic="bayesian", ir=ir, budget="ex_post")``.
    notes : list of str
    timings : dict
    status : str
        (property) ``"verified"`` (IC, IR and ex post budget pass), ``"refused"`` (participation fails at this
        discount factor: :attr:`reason`), ``"verification_failed"`` or ``"not_verified"``.

    JSON (:meth:`to_dict`): the contract's keys plus ``bond``, ``ir``, ``constants``, ``slack``, ``reason``,
    ``credit``, ``notes``.
    """

    space: StateSpace
    mechanism: Mechanism
    base: TeamResult
    constants: ParticipationConstants
    bond: str
    ir: str
    side_payments: np.ndarray
    slack: np.ndarray
    credit: np.ndarray | None = None
    gross: np.ndarray | None = None
    reason: str = ""
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def env(self) -> Environment:
        return self.space.env

    @property
    def refused(self) -> bool:
        return bool(self.reason)

    @property
    def ok(self) -> bool | None:
        """IC, IR and ex post budget balance pass the verification."""
        if self.verification is None:
            return None
        return bool(self.verification.ok)

    @property
    def status(self) -> str:
        if self.refused:
            return "refused"
        if self.verification is None:
            return "not_verified"
        return "verified" if self.ok else "verification_failed"

    @property
    def message(self) -> str:
        head = (
            f"balanced team mechanism with a {self.bond!r} bond (Athey-Segal 2007, section 6) on the "
            f"{self.space.kind} space, {self.ir} IR"
        )
        if self.refused:
            return f"{head}: REFUSED: {self.reason}"
        return f"{head}: {self.status}"

    @property
    def surplus(self) -> np.ndarray:
        return self.mechanism.surplus()

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "bond": self.bond,
            "ir": self.ir,
            "constants": self.constants.to_dict(),
            "slack": self.slack.tolist(),
            "reason": self.reason,
            "credit": None if self.credit is None else self.credit.tolist(),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """Readable lines: the constants, the bond, the verdict."""
        env = self.env
        lines = [self.message, self.constants.report([ag.name for ag in env.agents])]
        lines.append(f"  smallest participation slack over histories: {float(self.slack.min()):.6g}")
        if self.verification is not None:
            v = self.verification
            lines.append(
                "  verifier: "
                + ", ".join(f"{f} max violation {m:.3g}" for f, m in v.max_violation.items())
                + f" (tol {v.tol:g})"
            )
        lines += [f"  note: {s}" for s in self.notes]
        return "\n".join(lines)


def _apply_bond(
    base: TeamResult, constants: ParticipationConstants, bond: str, ir: str, exact: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The bond's node payments (floats), their exact version, the credit and the paper's gross payments."""
    space = base.space
    env = space.env
    n = env.n_agents
    if bond == "paper":
        a = constants.side_payments.copy()
        a[-1] = -a[:-1].sum()
        side = np.repeat(a[:, None], space.n_nodes, axis=1)
        side_exact = None
        if exact:
            ae = _exact_credit(a[:, None])[:, 0]
            side_exact = np.repeat(ae[:, None], space.n_nodes, axis=1)
        gross = np.zeros((n, n, space.n_nodes))
        for i in range(n):  # loops over agents
            for j in range(n):
                if i != j:
                    gross[i, j] = base.gamma_nodes[j] / (n - 1) + constants.A[i]
        return side, side_exact, None, gross
    credit = _history_credit(_floors(space, base.mechanism, ir))
    side = _credit_payments(space, credit, float(env.discount))
    side_exact = None
    if exact:
        side_exact = _credit_payments(space, _exact_credit(credit), Numbers(env, exact=True).delta)
    return side, side_exact, credit, None


def _slack(space: StateSpace, mech: Mechanism, ir: str) -> np.ndarray:
    f = _floors(space, mech, ir)
    if ir == "ex_ante":
        return f[:, :1].min(axis=0)
    return f.min(axis=0)


def _refusal(
    space: StateSpace, base: TeamResult, slack: np.ndarray, bond: str, ir: str, c: ParticipationConstants
) -> str:
    h = int(np.argmin(slack))
    where = space.describe_history(h)
    d = float(space.env.discount)
    star = f"the paper's sufficient threshold is delta* = {c.delta_star:.6g}"
    if bond == "history":
        total = float(_floors(space, base.mechanism, ir)[:, h].sum())
        return (
            f"at delta = {d:g}, history {where}: the agents' worst {ir} participation levels in the balanced team "
            f"mechanism sum to {total:.6g} < 0; every zero-sum bond shifts them by amounts that sum to zero, so no "
            f"bond makes every agent participate there ({star})"
        )
    return (
        f"at delta = {d:g}, history {where}: with the paper's constants (equal shares of the invariant surplus) "
        f"the smallest {ir} participation slack is {float(slack[h]):.6g} < 0 ({star}; try bond='history')"
    )


def bonded_team(
    env: Environment,
    space: StateSpace | None = None,
    horizon: int | None = None,
    *,
    bond: str = "history",
    ir: str = "interim",
    check: bool = True,
    tol: float = tolerances.FEASIBILITY,
    exact: bool = False,
) -> BondedTeamResult:
    r"""The balanced team mechanism made individually rational by a bond (Athey and Segal 2007, section 6).

    Checks the paper's assumptions and computes its constants (:func:`athey_segal_constants`), builds the
    balanced team mechanism (:func:`mechlp.constructions.team.balanced_team`), adds the bond's side payments
    (module docstring: ``"paper"``, the paper's :math:`A_i`; ``"history"``, a zero-sum bond credit per history)
    and verifies Bayesian IC, ``ir`` participation (outside option 0) and ex post budget balance with
    :func:`mechlp.audit.verifier.verify`. Where participation fails at the model's discount factor the result
    is refused (status ``"refused"`` with the reason).

    Parameters
    ----------
    env : Environment
        See :func:`athey_segal_constants` for what is required.
    space : StateSpace, optional
        Default: the Markov space (stationary transfers of the previous and current report profile, the
        paper's eq. (6.1)).
    horizon : int, optional
        A history tree of this many periods instead (a truncation of the infinite game; only without ``space``).
    bond : {"history", "paper"}
        ``"history"`` (default): the weakest condition of report-independent zero-sum side payments,
        :math:`\sum_i f_i(h) \ge 0` at every history. ``"paper"``: the paper's stationary constants.
    ir : {"interim", "ex_post", "ex_ante"}
        The participation notion the bond is built for and verified against. ``"interim"``: every type at every
        history; ``"ex_post"``: every node (periodic ex post participation, what the paper's proof gives for
        :math:`\delta > \delta^*`); ``"ex_ante"``: the root only.
    check : bool
        Run the independent verifier.
    tol : float
        Participation slack counted as non-negative, and the verifier's tolerance.
    exact : bool
        Build and verify in rational arithmetic too (the bond's floats are taken as exact numbers, the last
        agent's share adjusted so each node sums to exactly zero).

    Returns
    -------
    BondedTeamResult

    Raises
    ------
    ValueError
        When an assumption of the paper fails (:func:`athey_segal_constants`), for an unknown ``bond`` or ``ir``,
        or ``space`` together with ``horizon``.
    """
    return _bonded_team(env, space, horizon, bond, ir, check, tol, exact, sup=True)


def _bonded_team(
    env: Environment,
    space: StateSpace | None,
    horizon: int | None,
    bond: str,
    ir: str,
    check: bool,
    tol: float,
    exact: bool,
    sup: bool,
) -> BondedTeamResult:
    """:func:`bonded_team`; ``sup=False`` skips the supremum of Lemma 1's constant (see :func:`_constants`)."""
    check_choice("bond", bond, BONDS)
    ir = parse_notion("ir", ir, allowed=IR_NOTIONS)
    t0 = time.perf_counter()
    constants = _constants(env, sup)
    base = balanced_team(env, space, horizon, check=False, exact=exact)
    space = base.space
    side, side_exact, credit, gross = _apply_bond(base, constants, bond, ir, exact)
    x, _, rounding = exact_zero_sum(base.mechanism.transfers + side)
    mech = Mechanism(space, x)
    if exact:
        mech.exact_transfers = base.exact_transfers + side_exact
    slack = _slack(space, mech, ir)
    notes = list(constants.notes) + [n for n in base.notes if "IR is not promised" not in n]
    notes.append(f"exact-zero rounding moved payments by at most {rounding:.3g}")
    if space.kind != "markov":
        notes.append("a history tree truncates the infinite game: its last period is static")
    reason = ""
    if float(slack.min()) < -tol:
        reason = _refusal(space, base, slack, bond, ir, constants)
    elif not constants.above:
        notes.append(
            f"delta = {env.discount:g} is below the paper's sufficient threshold delta* = {constants.delta_star:.6g}; "
            "participation holds here by direct computation"
        )
    result = BondedTeamResult(
        space=space,
        mechanism=mech,
        base=base,
        constants=constants,
        bond=bond,
        ir=ir,
        side_payments=side,
        slack=slack,
        credit=credit,
        gross=gross,
        reason=reason,
        notes=notes,
        timings={"build": time.perf_counter() - t0},
    )
    if check:
        t1 = time.perf_counter()
        result.verification = verify(mech, ic="bayesian", ir=ir, budget="ex_post", tol=tol, exact=exact)
        result.timings["verify"] = time.perf_counter() - t1
    return result


def team_participation_slack(env: Environment, bond: str = "history", ir: str = "interim") -> float:
    r"""The smallest participation slack of :func:`bonded_team` at the model's discount factor (no verification).

    Non-negative exactly where :func:`bonded_team` is not refused: the criterion of
    ``critical_delta(method="team")``. For ``bond="history"`` it is :math:`\min_h \frac1I \sum_i f_i(h)`.

    Parameters
    ----------
    env : Environment
    bond, ir : str
        As in :func:`bonded_team`.

    Returns
    -------
    float
    """
    res = _bonded_team(env, None, None, bond, ir, False, tolerances.FEASIBILITY, False, sup=False)
    return float(res.slack.min()) if math.isfinite(float(res.slack.min())) else -math.inf

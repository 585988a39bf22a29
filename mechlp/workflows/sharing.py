r"""Sharing the min-max surplus between agents and designer, and ex post budget balance.

Lamba (2022) characterises every tight mechanism that implements an allocation under interim budget balance
(Corollary 4) as the min-max mechanism plus history-dependent *shares* of its surplus, and shows that any such
mechanism whose designer keeps nothing can be rebuilt with transfers that balance the budget at every node
(Proposition 1, eqs. 12-13; Corollary 5). This module turns both results into constructions on any
:class:`~mechlp.model.spaces.StateSpace` (docs/design.md section 9).

Notation (project convention, docs/design.md section 1: transfers are payments *to* the designer)
---------------------------------------------------------------------------------------------------
:math:`\Pi^*(h)` and :math:`\bar U^*_i(t|h)` are the min-max surplus and interim utilities
(:func:`mechlp.solve.questions.minmax`). A *sharing rule* is a matrix :math:`\beta_i(h) \ge 0`, one row per agent and
one column per history, with

.. math::
   \sum_i \beta_i(h) \le 1 \quad\text{(interim budget)}, \qquad \sum_i \beta_i(h) = 1 \quad\text{(ex post budget)},

and the shared mechanism has interim utilities and surplus

.. math::
   \bar U^\beta_i(t|h) = \bar U^*_i(t|h) + a_i(h), \qquad a_i(h) = \beta_i(h)\,\Pi^*(h), \qquad
   \Pi^\beta(h) = \Bigl(1 - \sum_i \beta_i(h)\Bigr)\,\Pi^*(h).

Adding a constant :math:`a_i(h)` to every interim utility at a history preserves incentive compatibility
(Lamba 2022, Lemma 1: the constant appears on both sides of every one-shot deviation constraint at ``h`` and
drops out of the continuation difference :math:`\sum_{t'} (F_i(t'|t) - F_i(t'|r)) \bar U_i(t'|\cdot)` one
period earlier) and participation (:math:`a_i \ge 0`). Requires :math:`\Pi^*(h) \ge 0` everywhere.

Transfers from interim utilities (``construction``)
----------------------------------------------------
Every deviation payoff, interim participation row and :math:`\Pi(h)` depends on a mechanism only through its
interim utilities (docs/design.md section 4.5), so there are many transfer schemes for the same :math:`\bar U^\beta`.
All three below have the same *interim expected payments*

.. math::
   \bar x_i(t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h)\, x_i(h, (t, \theta_{-i})),

which are pinned down by :math:`\bar U^\beta` (at ``h`` and at the children of ``h``):

``"interim"``
    :math:`U_i(h, \theta) := \bar U^\beta_i(\theta_i|h)` (constant in :math:`\theta_{-i}`) and
    :math:`x_i(h, \theta) = \text{flow}_i(\theta) - U_i(h, \theta)
    + \delta \sum_{\theta'} P(\theta'|\theta) U_i(\text{child}(h, \theta), \theta')`
    (:func:`mechanism_from_interim`).
``"shift"``
    Lemma 1 applied to the ex post utilities of a base mechanism (default: the min-max LP's), which become
    :math:`U^*_i(h, \theta) + a_i(h)`; the transfers become
    :math:`x_i(h, \theta) = x^*_i(h, \theta) - a_i(h) + \delta\, a_i(\text{child}(h, \theta))`
    (:func:`shift_mechanism`). Keeps the base mechanism's ex post structure, so a within-period ex post IC
    base (Lamba's VCG-plus-fee mechanism, appendix 9.2) stays ex post IC.
``"own"``
    Each agent pays its interim expected payment: :math:`x_i(h, \theta) = \bar x_i(\theta_i|h)`.

Ex post budget balance (Lamba 2022, Proposition 1, eqs. 12-13)
---------------------------------------------------------------
When :math:`\Pi(h) = 0` at every history, the *static* expected surplus
:math:`\Pi_t(h) = \Pi(h) - \delta E[\Pi(\text{child})|h] = \sum_i E[\bar x_i|h]` is zero too, and

.. math::
   \hat x_i(h, \theta) = \bar x_i(\theta_i|h) - \frac{1}{n-1} \sum_{j \ne i}
      \bigl(\bar x_j(\theta_j|h) - E[\bar x_j|h]\bigr) \qquad (n \ge 2)

satisfies :math:`\sum_i \hat x_i(h, \theta) = \sum_j E[\bar x_j|h] = \Pi_t(h) = 0` at every node (each centred
term appears :math:`n - 1` times with weight :math:`1/(n-1)`), and, because types are independent across
agents, :math:`E[\hat x_i|\theta_i, h] = \bar x_i(\theta_i|h)`: every interim payment and hence (by backward
induction, or the fixed point on the Markov space) every interim utility is unchanged, so Bayesian IC and
interim IR carry over (:func:`ex_post_balance`). Within-period ex post IC generally does not (Lamba 2022,
section 7.1). For two agents this is Lamba's eq. (12)-(13), implemented literally in
:func:`lamba_ex_post_transfers` for comparison.

Choosing beta (``rule``)
------------------------
``"equal"``: :math:`\beta_i = 1/n` (the agents split all the surplus; Lamba's eqs. 10-11 for ``n = 2``).
``"designer"``: :math:`\beta = 0` (the min-max mechanism itself; interim budget only). An explicit array
(shape ``(n,)`` or ``(n, n_hist)``) is validated against the simplex. Two rules are linear programs in
:math:`\beta` (solved by :func:`mechlp.backends.solve_arrays` with the min-max LP's backend; transfers are linear in
:math:`\beta` for every construction):

``"maxmin"``
    At every history, maximise the smallest agent's expected continuation utility
    :math:`m(h) = \min_i E[\bar U^\beta_i(\theta_i|h) | h] = \min_i (E[\bar U^*_i|h] + \beta_i(h) \Pi^*(h))`;
    the LP maximises :math:`\sum_h m(h)`. Without coupling constraints this is water-filling, which gives
    the agents the whole surplus; the minimum over agents of the *share* :math:`\beta_i(h)\Pi^*(h)` or of the
    lowest types' utilities (zero in the min-max mechanism) would just be the equal split.
``"min-max-transfer"``
    Minimise :math:`\max_{i, h, \theta} |x_i(h, \theta)|` over the chosen construction (and over the
    rebalanced :math:`\hat x` under ``budget="ex_post"``).

Both add the optional transfer limits :math:`lo_i \le x_i(h, \theta) \le hi_i` and the restriction of
:math:`\beta` to Markov (``markov=True``: a function of the calendar period and the last report profile) or
stationary Markov (``stationary=True``: of the last report profile only) rules; on the Markov space every rule
is stationary Markov. Ties are broken by a second LP that keeps the optimal value and minimises
:math:`\sum |\beta - \beta^{ref}|` (the equal split, or ``0`` for ``"min-max-transfer"`` under the interim
budget: the designer gives away only what lowers the largest payment).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mechlp.audit.verifier import Verification, verify
from mechlp.backends import solve_arrays
from mechlp.constructions.vcg import check_bilateral_trade
from mechlp.model import tolerances
from mechlp.model.answer import Answer, CertifiedOnSpace, space_size
from mechlp.model.beliefs import continuation_adjoint, marginal_beliefs, others_beliefs
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism, agent_array
from mechlp.model.question import agent_limits, check_choice, parse_notion
from mechlp.model.spaces import StateSpace
from mechlp.model.transfers import interim_payments as model_interim_payments
from mechlp.model.transfers import rebalance, transfers_from_interim
from mechlp.solve.questions import METHODS, minmax
from mechlp.solve.result import Result

__all__ = [
    "RULES",
    "BUDGETS",
    "CONSTRUCTIONS",
    "BETA_METHODS",
    "NegativeSurplusError",
    "SharingResult",
    "SharingComparison",
    "share_surplus",
    "compare_sharing",
    "payment_weights",
    "shift_mechanism",
    "mechanism_from_interim",
    "interim_payments",
    "static_surplus",
    "ex_post_balance",
    "lamba_ex_post_transfers",
    "markov_node",
]

RULES: tuple[str, ...] = ("equal", "designer", "maxmin", "min-max-transfer")
BUDGETS: tuple[str, ...] = ("interim", "ex_post")
CONSTRUCTIONS: tuple[str, ...] = ("interim", "shift", "own")
#: How the beta of an LP rule is found: ``"auto"`` (per history / by depth level where the rule decomposes, else
#: the LP), ``"structure"`` (the per-history solve, an error where it does not apply) or ``"lp"`` (one LP).
BETA_METHODS: tuple[str, ...] = ("auto", "structure", "lp")
#: ``beta_method="auto"`` solves ``"min-max-transfer"`` by least shares from this many nodes on (below, the LP is
#: faster: the bisection's ~45 passes and small tail LPs cost ~0.5-1 s; benchmarks/sharing.py)
AUTO_LEAST_SHARES_NODES = 20_000

#: tolerance for validating user-given shares (simplex membership): :data:`mechlp.model.tolerances.BETA`
BETA_TOL = tolerances.BETA


class NegativeSurplusError(ValueError):
    """The min-max surplus is negative somewhere: no budget-balanced sharing exists (Lamba 2022, Theorem 1).

    Attributes
    ----------
    history : int
        The history with the most negative :math:`\\Pi^*`.
    where : str
        Its description.
    value : float
        :math:`\\Pi^*` there.
    negative : list of dict
        Up to five histories with negative surplus, most negative first (``history``, ``where``, ``value``).
    """

    def __init__(self, message: str, history: int, where: str, value: float, negative: list[dict]):
        super().__init__(message)
        self.history = history
        self.where = where
        self.value = value
        self.negative = negative


# ------------------------------------------------------------------------------------------- space helpers
class _Ops:
    """Beliefs and index maps of a space, shared by the array constructions and the LP operators."""

    def __init__(self, space: StateSpace):
        env = space.env
        self.space = space
        self.env = env
        self.n = env.n_agents
        self.k = env.n_profiles
        self.h = space.n_hist
        self.counts = env.type_counts
        self.types = env.profile_types()  # (K, n)
        self.node_hist = space.node_hist
        self.node_prof = space.node_profile
        self.child = np.asarray(space.child_hist)
        self.nonterm = np.flatnonzero(self.child >= 0)
        self.delta = env.discount
        self.margs = marginal_beliefs(space)  # (H, K_i) per agent

    def own(self, i: int) -> np.ndarray:
        """Own type index of agent ``i`` at every node."""
        return self.types[self.node_prof, i]

    def others_prob(self, i: int) -> np.ndarray:
        r"""``(H, K)``: :math:`P(\theta_{-i}|h)` at every (history, profile)."""
        return others_beliefs(self.space, i, per_profile=True)

    # -- array operations (no loops over nodes) -------------------------------------------------------
    def interim(self, x: np.ndarray) -> list[np.ndarray]:
        """Interim expected payments of transfers ``x`` (n, N): per agent ``(H, K_i)``
        (:func:`mechlp.model.transfers.interim_payments`)."""
        return model_interim_payments(self.space, x, self.margs)

    def increment(self, a: np.ndarray) -> np.ndarray:
        r"""Transfer change of the Lemma 1 shift: :math:`-a_i(h) + \delta a_i(\text{child})`, shape (n, N)."""
        out = -a[:, self.node_hist]
        out[:, self.nonterm] += self.delta * a[:, self.child[self.nonterm]]
        return out

    def own_payment(self, x: np.ndarray) -> np.ndarray:
        """``x_i(h, theta) := xbar_i(theta_i|h)`` for every agent."""
        xbar = self.interim(x)
        return np.stack([xbar[i][self.node_hist, self.own(i)] for i in range(self.n)])

    def rebalance(self, x: np.ndarray) -> np.ndarray:
        """The n-agent ex post rebalancing of the module docstring, shape (n, N)
        (:func:`mechlp.model.transfers.rebalance`)."""
        return rebalance(self.space, x, self.margs)

    # -- sparse operators for the LP ------------------------------------------------------------------
    def op_increment(self) -> sp.csr_matrix:
        """``(N, H)`` matrix of :meth:`increment` for one agent."""
        n_nodes = self.node_hist.size
        rows = np.concatenate([np.arange(n_nodes), self.nonterm])
        cols = np.concatenate([self.node_hist, self.child[self.nonterm]])
        vals = np.concatenate([-np.ones(n_nodes), np.full(self.nonterm.size, self.delta)])
        return sp.csr_matrix((vals, (rows, cols)), shape=(n_nodes, self.h))

    def op_interim(self, i: int) -> sp.csr_matrix:
        """``(H*K_i, N)``: interim expectation of agent ``i``'s transfers, row ``h*K_i + t``."""
        n_nodes = self.node_hist.size
        ki = self.counts[i]
        rows = self.node_hist * ki + self.own(i)
        vals = self.others_prob(i).reshape(-1)
        return sp.csr_matrix((vals, (rows, np.arange(n_nodes))), shape=(self.h * ki, n_nodes))

    def op_expand(self, i: int) -> sp.csr_matrix:
        """``(N, H*K_i)``: node ``g`` reads entry ``(h(g), theta_i(g))``."""
        n_nodes = self.node_hist.size
        ki = self.counts[i]
        cols = self.node_hist * ki + self.own(i)
        return sp.csr_matrix((np.ones(n_nodes), (np.arange(n_nodes), cols)), shape=(n_nodes, self.h * ki))

    def op_mean(self, i: int) -> sp.csr_matrix:
        """``(H, H*K_i)``: expectation over agent ``i``'s own type at each history."""
        ki = self.counts[i]
        rows = np.repeat(np.arange(self.h), ki)
        return sp.csr_matrix((self.margs[i].reshape(-1), (rows, np.arange(self.h * ki))), shape=(self.h, self.h * ki))

    def op_hist(self) -> sp.csr_matrix:
        """``(N, H)``: node ``g`` reads its history's entry."""
        n_nodes = self.node_hist.size
        return sp.csr_matrix((np.ones(n_nodes), (np.arange(n_nodes), self.node_hist)), shape=(n_nodes, self.h))


# ------------------------------------------------------------------------------------------- constructions
def shift_mechanism(mechanism: Mechanism, shift: Any) -> Mechanism:
    r"""Add history constants to every agent's utilities (Lamba 2022, Lemma 1).

    The new mechanism has ex post utilities :math:`U_i(h, \theta) + a_i(h)` for every current profile
    :math:`\theta`, hence interim utilities :math:`\bar U_i(t|h) + a_i(h)`; its transfers are

    .. math::
       x'_i(h, \theta) = x_i(h, \theta) - a_i(h) + \delta\, a_i(\text{child}(h, \theta))

    (no continuation term where the game ends). Bayesian and within-period ex post IC are preserved (the
    constant does not depend on any current report; Lamba 2022, Lemma 1 and appendix 9.2), interim IR is
    preserved when :math:`a \ge 0`, and the designer's surplus becomes :math:`\Pi(h) - \sum_i a_i(h)`.

    Parameters
    ----------
    mechanism : Mechanism
    shift : array_like, shape (n_agents, n_hist)
        :math:`a_i(h)`.

    Returns
    -------
    Mechanism
    """
    space = mechanism.space
    a = agent_array(space, shift, "shift", per="history")
    return Mechanism(space, mechanism.transfers + _Ops(space).increment(a))


def mechanism_from_interim(space: StateSpace, interim: list[np.ndarray]) -> Mechanism:
    r"""Transfers whose ex post utilities equal given interim utilities: :math:`U_i(h, \theta) = \bar U_i(\theta_i|h)`.

    .. math::
       x_i(h, \theta) = \text{flow}_i(\theta) - \bar U_i(\theta_i|h)
         + \delta \sum_{\theta'} P(\theta'|\theta)\, \bar U_i(\theta'_i|\text{child}(h, \theta)),

    the recursion of docs/design.md section 4.3 solved for :math:`x`
    (:func:`mechlp.model.transfers.transfers_from_interim`).
    The interim utilities of the result are the given ones, so the result satisfies exactly the Bayesian IC and
    interim IR constraints the given interim utilities satisfy.

    Parameters
    ----------
    space : StateSpace
    interim : list of ndarray
        Per agent ``(n_hist, K_i)``, as returned by :meth:`Mechanism.interim_utilities`.

    Returns
    -------
    Mechanism

    Raises
    ------
    ValueError
        When ``interim`` does not hold one ``(n_hist, K_i)`` array per agent.
    """
    return Mechanism(space, transfers_from_interim(space, interim))


def interim_payments(mechanism: Mechanism) -> list[np.ndarray]:
    r"""Interim expected payments :math:`\bar x_i(t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h) x_i(h, (t, \theta_{-i}))`.

    Returns
    -------
    list of ndarray
        Per agent ``(n_hist, K_i)``, defined for every own type (also those of probability zero at ``h``).
    """
    return _Ops(mechanism.space).interim(mechanism.transfers)


def static_surplus(mechanism: Mechanism) -> np.ndarray:
    r"""The designer's expected *flow* surplus :math:`\Pi_t(h) = E[\sum_i x_i(h, \theta) | h]`, shape ``(n_hist,)``.

    Equals :math:`\Pi(h) - \delta E[\Pi(\text{child}) | h]` (Lamba 2022, proof of Proposition 1), so it is zero
    at every history when :math:`\Pi` is.
    """
    ops = _Ops(mechanism.space)
    xbar = ops.interim(mechanism.transfers)
    return sum((xbar[i] * ops.margs[i]).sum(axis=1) for i in range(ops.n))


def _static_check(ops: _Ops, x: np.ndarray, tol: float) -> None:
    xbar = ops.interim(x)
    pit = sum((xbar[i] * ops.margs[i]).sum(axis=1) for i in range(ops.n))
    h = int(np.argmax(np.abs(pit)))
    if abs(pit[h]) > tol:
        raise ValueError(
            f"ex post balance needs zero expected flow surplus at every history (Pi(h) = 0 everywhere); "
            f"E[sum_i x_i | h] = {pit[h]:.6g} at {ops.space.describe_history(h)} (history {h}), tolerance {tol:g}"
        )


def ex_post_balance(mechanism: Mechanism, *, tol: float = tolerances.FEASIBILITY) -> Mechanism:
    r"""Rebalance a mechanism with zero surplus at every history so that payments sum to zero at every node.

    .. math::
       \hat x_i(h, \theta) = \bar x_i(\theta_i|h) - \frac{1}{n-1} \sum_{j \ne i}
          \bigl(\bar x_j(\theta_j|h) - E[\bar x_j|h]\bigr)

    (Lamba 2022, Proposition 1; eq. 12-13 for ``n = 2``). :math:`\sum_i \hat x_i(h, \theta) = \Pi_t(h)`, the
    expected flow surplus, which is zero when :math:`\Pi(h) = 0` at every history; every interim expected
    payment :math:`\bar x_i(t|h)` is unchanged (types are independent), hence so are all interim utilities,
    Bayesian IC and interim IR. Within-period ex post IC is in general lost.

    Parameters
    ----------
    mechanism : Mechanism
        With :math:`\Pi_t(h) = 0` at every history (checked with ``tol``), on an environment with at least
        two agents.
    tol : float
        Largest accepted :math:`|\Pi_t(h)|`.

    Returns
    -------
    Mechanism

    Raises
    ------
    ValueError
        Fewer than two agents, or a history with :math:`|\Pi_t(h)| > tol` (named in the message).
    """
    mechanism.space.env.require_independent("ex_post_balance (Lamba 2022, Proposition 1)")
    ops = _Ops(mechanism.space)
    if ops.n < 2:
        raise ValueError(f"ex post budget balance needs at least two agents; the environment has {ops.n}")
    _static_check(ops, mechanism.transfers, tol)
    return Mechanism(mechanism.space, ops.rebalance(mechanism.transfers))


def lamba_ex_post_transfers(mechanism: Mechanism) -> np.ndarray:
    r"""Lamba's (2022) eqs. (12)-(13), literally: the payment from buyer to seller at every node.

    .. math::
       x^\dagger(v, c | h) = x^o_S(c|h) + \bigl[x^o_B(v|h) - \bar x^o_B(h)\bigr],

    where :math:`x^o_B(v|h)` is the buyer's interim expected payment, :math:`x^o_S(c|h)` the seller's interim
    expected *receipt* (minus her payment in the project convention) and :math:`\bar x^o_B(h) = E[x^o_B|h]`.
    In the project convention the buyer pays :math:`x^\dagger` and the seller pays :math:`-x^\dagger`. It
    coincides with :func:`ex_post_balance` (:math:`\hat x_B = x^\dagger`) whenever the expected flow surplus
    is zero; otherwise only the seller's interim payments are kept.

    Parameters
    ----------
    mechanism : Mechanism
        On a bilateral-trade environment (buyer first).

    Returns
    -------
    ndarray, shape (n_nodes,)
    """
    check_bilateral_trade(mechanism.env, "lamba_ex_post_transfers")
    ops = _Ops(mechanism.space)
    xb, xs = ops.interim(mechanism.transfers)
    receipt_s = -xs[ops.node_hist, ops.own(1)]
    pay_b = xb[ops.node_hist, ops.own(0)]
    mean_b = (xb * ops.margs[0]).sum(axis=1)
    return receipt_s + pay_b - mean_b[ops.node_hist]


def markov_node(space: StateSpace, current: Mapping[str, str], previous: Mapping[str, str] | None = None) -> int:
    """Node index of report profile ``current`` after last period's profile ``previous`` on a Markov space.

    Parameters
    ----------
    space : MarkovSpace
    current, previous : mapping of agent name to type label
        ``previous=None`` is the first period.

    Returns
    -------
    int
    """
    if space.kind != "markov":
        raise ValueError("markov_node needs a MarkovSpace")
    env = space.env

    def profile(labels: Mapping[str, str], what: str) -> int:
        idx = []
        for ag in env.agents:
            if ag.name not in labels:
                raise ValueError(f"{what} has no type for agent {ag.name!r}")
            lab = labels[ag.name]
            if lab not in ag.types:
                raise ValueError(f"{what}: {lab!r} is not a type of agent {ag.name!r} ({list(ag.types)})")
            idx.append(ag.types.index(lab))
        return int(np.ravel_multi_index(tuple(idx), env.type_counts))

    h = 0 if previous is None else 1 + profile(previous, "previous")
    return h * env.n_profiles + profile(current, "current")


# ------------------------------------------------------------------------------------------- the result
@dataclass
class SharingResult(CertifiedOnSpace):
    r"""A shared (and, with ``budget="ex_post"``, rebalanced) tight mechanism with its verification (result
    contract: :mod:`mechlp.model.answer`).

    Attributes
    ----------
    status : str
        ``"optimal"`` (built and verified), ``"infeasible"`` (the LP rule or a fixed rule cannot meet the
        transfer limits), ``"verification_failed"`` or ``"error"`` (LP solver failure).
    message : str
    rule : str
        ``"equal"``, ``"designer"``, ``"maxmin"``, ``"min-max-transfer"`` or ``"explicit"``.
    budget : str
        ``"interim"`` or ``"ex_post"``.
    construction : str
        See the module docstring.
    space : StateSpace
    minmax : Result
        The min-max answer the shares are taken from.
    beta : ndarray, shape (n_agents, n_hist)
        :math:`\beta_i(h)`.
    pi_star : ndarray, shape (n_hist,)
        :math:`\Pi^*(h)`.
    surplus : ndarray or None
        :math:`\Pi^\beta(h)` recomputed from the transfers.
    interim_utilities : list of ndarray or None
        Per agent ``(n_hist, K_i)``, recomputed from the transfers.
    mechanism : Mechanism or None
    certificate : Verification or None
        :func:`mechlp.audit.verifier.verify` with ``budget`` (ex post: every node's payments sum to zero).
    max_abs_transfer : float or None
        :math:`\max_{i,h,\theta} |x_i(h, \theta)|`.
    objective : float or None
        The LP rule's optimal value (:math:`\sum_h m(h)` for ``"maxmin"``, the largest :math:`|x|` for
        ``"min-max-transfer"``).
    checks : dict
        Self-checks of the construction: ``interim_error`` (max :math:`|\bar U - \bar U^* - \beta\Pi^*|`),
        ``surplus_error`` (max :math:`|\Pi - (1 - \sum_i\beta_i)\Pi^*|`), ``limits_violation``.
    options : dict
        ``markov``, ``stationary``, ``limits``, ``ic``.
    verification : Verification or None
        (property) ``certificate``.
    timings : dict
        Seconds: ``"build"`` (shares and transfers) and ``"verify"`` (the min-max solve is in
        ``minmax.timings``).
    size : dict
        (property) ``histories`` and ``nodes``.

    JSON (:meth:`to_dict`): the contract's keys plus ``rule``, ``budget``, ``construction``, ``beta`` (``(n_agents,
    n_hist)``), ``designer_share`` (:math:`1 - \sum_i \beta_i(h)`, ``(n_hist,)``), ``pi_star``,
    ``max_abs_transfer``, ``objective``, ``checks`` and ``options``. :meth:`shares_frame` is ``beta_table`` as a
    frame.
    """

    status: str
    message: str
    rule: str
    budget: str
    construction: str
    space: StateSpace
    minmax: Result
    beta: np.ndarray
    pi_star: np.ndarray
    surplus: np.ndarray | None = None
    interim_utilities: list[np.ndarray] | None = None
    mechanism: Mechanism | None = None
    certificate: Verification | None = None
    max_abs_transfer: float | None = None
    objective: float | None = None
    checks: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def env(self) -> Environment:
        return self.space.env

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "budget": self.budget,
            "construction": self.construction,
            "beta": self.beta,
            "designer_share": 1.0 - self.beta.sum(axis=0),
            "pi_star": self.pi_star,
            "max_abs_transfer": self.max_abs_transfer,
            "objective": self.objective,
            "checks": self.checks,
            "options": self.options,
        }

    def beta_table(self) -> list[dict]:
        """Per history: ``history``, ``where``, ``pi_star``, ``beta`` (``{agent: share}``), ``designer``
        (the designer's share :math:`1 - \\sum_i \\beta_i`) and ``surplus`` (:math:`\\Pi^\\beta`)."""
        names = [ag.name for ag in self.env.agents]
        designer = 1.0 - self.beta.sum(axis=0)
        pi_beta = self.surplus if self.surplus is not None else np.full(self.space.n_hist, np.nan)
        return [
            {
                "history": h,
                "where": self.space.describe_history(h),
                "pi_star": float(self.pi_star[h]),
                "beta": {nm: float(b) for nm, b in zip(names, self.beta[:, h], strict=True)},
                "designer": float(designer[h]),
                "surplus": float(pi_beta[h]),
            }
            for h in range(self.space.n_hist)
        ]

    def shares_frame(self) -> pd.DataFrame:
        r"""Per history: ``history``, ``where``, ``pi_star`` (:math:`\Pi^*(h)`), one column per agent with
        :math:`\beta_i(h)`, ``designer`` (:math:`1 - \sum_i \beta_i(h)`) and ``surplus`` (:math:`\Pi^\beta(h)`,
        NaN when no mechanism was built): the numbers of ``beta``, ``designer_share``, ``pi_star`` and ``surplus``
        in :meth:`to_dict`."""
        names = [ag.name for ag in self.env.agents]
        clash = sorted(set(names) & {"history", "where", "pi_star", "designer", "surplus"})
        if clash:
            raise ValueError(f"shares_frame: agent name(s) {clash} clash with the frame's columns")
        cols: dict[str, Any] = {
            "history": np.arange(self.space.n_hist),
            "where": np.asarray(self.space.describe_histories(), dtype=object),
            "pi_star": np.asarray(self.pi_star, dtype=float),
        }
        cols.update({nm: np.asarray(self.beta[i], dtype=float) for i, nm in enumerate(names)})
        cols["designer"] = 1.0 - self.beta.sum(axis=0)
        cols["surplus"] = (
            np.asarray(self.surplus, dtype=float) if self.surplus is not None else np.full(self.space.n_hist, np.nan)
        )
        return pd.DataFrame(cols)

    def transfer_table(self, max_histories: int = 40) -> list[dict]:
        """Per node of the first ``max_histories`` histories: ``history``, ``where``, ``profile``
        (``{agent: label}``) and ``transfers`` (``{agent: payment}``). Empty without a mechanism."""
        if self.mechanism is None:
            return []
        env = self.env
        k = env.n_profiles
        names = [ag.name for ag in env.agents]
        x = self.mechanism.transfers
        n_nodes = min(self.space.n_hist, max_histories) * k
        return [
            {
                "history": g // k,
                "where": self.space.describe_history(g // k),
                "profile": env.profile_labels(g % k),
                "transfers": {nm: float(v) for nm, v in zip(names, x[:, g], strict=True)},
            }
            for g in range(n_nodes)
        ]

    def __repr__(self) -> str:
        return f"SharingResult(rule={self.rule!r}, budget={self.budget!r}, status={self.status!r})"


# ------------------------------------------------------------------------------------------- validation
def _groups(space: StateSpace, markov: bool, stationary: bool) -> np.ndarray:
    """Group index of every history: histories of a group share one beta."""
    if space.kind == "markov" or not (markov or stationary):
        return np.arange(space.n_hist)
    prev = np.asarray(space.hist_prev_profile) + 1  # 0 at the root
    key = prev if stationary else np.asarray(space.hist_period) * (space.env.n_profiles + 1) + prev
    return np.unique(key, return_inverse=True)[1].reshape(-1)


def _check_negative_surplus(mm: Result) -> None:
    pi = mm.surplus
    neg = np.flatnonzero(pi < -tolerances.SURPLUS)
    if not neg.size:
        return
    order = neg[np.argsort(pi[neg])]
    sp_ = mm.space
    worst = [{"history": int(h), "where": sp_.describe_history(int(h)), "value": float(pi[h])} for h in order[:5]]
    h = worst[0]["history"]
    raise NegativeSurplusError(
        f"the min-max surplus Pi* is negative at {neg.size} histor{'y' if neg.size == 1 else 'ies'}, most negative "
        f"{pi[h]:.6g} at {sp_.describe_history(h)} (history {h}): the allocation cannot be implemented under "
        "interim or ex post budget balance (Lamba 2022, Theorem 1), so there is no surplus to share",
        h,
        sp_.describe_history(h),
        float(pi[h]),
        worst,
    )


def _explicit_beta(beta: Any, space: StateSpace, budget: str, groups: np.ndarray, restricted: bool) -> np.ndarray:
    env = space.env
    n, n_hist = env.n_agents, space.n_hist
    if isinstance(beta, str | bytes):
        raise TypeError(f"beta must be numeric, got {beta!r}")
    try:
        arr = np.array(beta, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"beta must be numeric: {exc}") from None
    if arr.shape == (n,):
        arr = np.repeat(arr[:, None], n_hist, axis=1)
    elif arr.shape != (n, n_hist):
        raise ValueError(f"beta has shape {arr.shape}; expected ({n},) or ({n}, {n_hist}) (agents x histories)")
    arr = agent_array(space, arr, "beta", per="history")
    bad = np.argwhere(arr < -BETA_TOL)
    if bad.size:
        i, h = bad[0]
        raise ValueError(
            f"beta outside the simplex: agent {env.agents[i].name!r} gets {arr[i, h]:.6g} < 0 at "
            f"{space.describe_history(int(h))} (history {h}); shares must be >= 0"
        )
    sums = arr.sum(axis=0)
    if budget == "interim":
        bad = np.flatnonzero(sums > 1.0 + BETA_TOL)
        if bad.size:
            h = int(bad[0])
            raise ValueError(
                f"beta outside the simplex: shares sum to {sums[h]:.6g} > 1 at {space.describe_history(h)} "
                f"(history {h}); under interim balance the designer keeps 1 - sum >= 0"
            )
    else:
        bad = np.flatnonzero(np.abs(sums - 1.0) > BETA_TOL)
        if bad.size:
            h = int(bad[0])
            raise ValueError(
                f"beta outside the simplex: shares sum to {sums[h]:.6g} at {space.describe_history(h)} "
                f"(history {h}); ex post balance gives the agents all the surplus (sum = 1)"
            )
    if restricted:
        n_groups = int(groups.max()) + 1
        lo = np.full((n, n_groups), np.inf)
        hi = np.full((n, n_groups), -np.inf)
        for i in range(n):  # agents only
            np.minimum.at(lo[i], groups, arr[i])
            np.maximum.at(hi[i], groups, arr[i])
        spread = hi - lo
        if spread.max() > BETA_TOL:
            i, gr = np.unravel_index(int(np.argmax(spread)), spread.shape)
            members = np.flatnonzero(groups == gr)
            raise ValueError(
                f"beta of agent {env.agents[i].name!r} is not Markov/stationary as requested: it varies by "
                f"{spread[i, gr]:.6g} across histories {members[:4].tolist()} that share a state"
            )
    return np.clip(arr, 0.0, None)


def _limits(limits: Any, env: Environment) -> tuple[np.ndarray, np.ndarray]:
    return agent_limits(dict(limits) if isinstance(limits, Mapping) else limits, env)


# ------------------------------------------------------------------------------------------- transfers
def _transfers(
    ops: _Ops,
    base: np.ndarray,
    ubar_star: list[np.ndarray],
    a: np.ndarray,
    construction: str,
    budget: str,
    check: bool = True,
) -> np.ndarray:
    """Final transfers for shift ``a`` (n, H) (array path); ``check=False`` skips the zero-flow-surplus check
    (the LP's affine offset at ``a = 0``)."""
    if construction == "interim":
        shifted = [u + a[i][:, None] for i, u in enumerate(ubar_star)]
        x = mechanism_from_interim(ops.space, shifted).transfers
    else:
        x = base + ops.increment(a)
        if construction == "own":
            x = ops.own_payment(x)
    if budget == "ex_post":
        if check:
            _static_check(ops, x, tolerances.FEASIBILITY * max(1.0, float(np.abs(x).max())))
        x = ops.rebalance(x)
    return x


def _linear_map(ops: _Ops, pi: np.ndarray, groups: np.ndarray, construction: str, budget: str) -> sp.csr_matrix:
    """``(n*N, n*G)`` matrix: change of the final transfers (stacked by agent) per unit of the group betas."""
    n = ops.n
    n_groups = int(groups.max()) + 1
    sel = sp.csr_matrix((pi, (np.arange(ops.h), groups)), shape=(ops.h, n_groups))  # a = diag(pi) S b
    inc = ops.op_increment() @ sel  # (N, G)
    hist = ops.op_hist()
    expand = [ops.op_expand(i) for i in range(n)]
    interim = [ops.op_interim(i) for i in range(n)]
    own = []
    if construction == "own" or budget == "ex_post":
        own = [(expand[i] @ (interim[i] @ inc)).tocsr() for i in range(n)]
    if budget == "interim":
        blocks = [[(own[i] if construction == "own" else inc) if j == i else None for j in range(n)] for i in range(n)]
    else:
        # xhat_i = D_i x_i - (1/(n-1)) sum_{j != i} C_j x_j, with C_j = D_j - H E_j P_j
        cent = [own[j] - hist @ (ops.op_mean(j) @ (interim[j] @ inc)) for j in range(n)]
        blocks = [[own[i] if j == i else -cent[j] / (n - 1) for j in range(n)] for i in range(n)]
    n_nodes = ops.node_hist.size
    for i in range(n):
        for j in range(n):
            if blocks[i][j] is None:
                blocks[i][j] = sp.csr_matrix((n_nodes, n_groups))
    return sp.bmat(blocks, format="csr")


def _solve_lp(
    c: np.ndarray,
    a_ub: sp.spmatrix,
    b_ub: np.ndarray,
    a_eq: sp.spmatrix | None,
    b_eq: np.ndarray | None,
    bounds: list[tuple[float | None, float | None]],
    backend: str,
) -> tuple[str, np.ndarray | None, float | None, str]:
    """``min c @ z`` s.t. ``a_ub z <= b_ub``, ``a_eq z = b_eq``, ``bounds`` (``None``: open side), by
    :func:`mechlp.backends.solve_arrays`: status, ``z``, objective, solver message."""
    a = sp.vstack([a_ub] if a_eq is None else [a_ub, a_eq], format="csc")
    eq = np.zeros(0) if b_eq is None else np.asarray(b_eq, dtype=float)
    row_lower = np.concatenate([np.full(a_ub.shape[0], -np.inf), eq])
    row_upper = np.concatenate([np.asarray(b_ub, dtype=float), eq])
    col_lower = np.array([-np.inf if lo is None else lo for lo, _ in bounds], dtype=float)
    col_upper = np.array([np.inf if hi is None else hi for _, hi in bounds], dtype=float)
    out = solve_arrays(a, row_lower, row_upper, col_lower, col_upper, c, backend)
    if out.status != "optimal":
        return out.status, None, None, out.message
    return out.status, out.x, out.objective, out.message


def _beta_lp(
    ops: _Ops,
    rule: str,
    budget: str,
    construction: str,
    pi: np.ndarray,
    ubar_star: list[np.ndarray],
    base: np.ndarray,
    groups: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    backend: str,
) -> tuple[str, np.ndarray | None, float | None, str]:
    """Solve the beta LP of ``rule`` with ``backend``; returns status, beta per history (n, H), objective, solver
    message."""
    n, n_hist = ops.n, ops.h
    n_groups = int(groups.max()) + 1
    nb = n * n_groups
    n_nodes = ops.node_hist.size
    lo_n = np.repeat(lo, n_nodes)
    hi_n = np.repeat(hi, n_nodes)
    if rule == "min-max-transfer" or np.isfinite(lo_n).any() or np.isfinite(hi_n).any():
        x0 = _transfers(ops, base, ubar_star, np.zeros((n, n_hist)), construction, budget, False).reshape(-1)
        amap = _linear_map(ops, pi, groups, construction, budget)  # (n*N, nb)
    else:  # maxmin without limits: no transfer rows (the (n*N, n*G) map is K times denser ex post)
        x0 = amap = None

    # budget rows over groups: sum_i b_i(g) <= 1 or == 1
    budget_rows = sp.hstack([sp.identity(n_groups, format="csr")] * n, format="csr")
    ub_blocks: list[sp.spmatrix] = []
    ub_rhs: list[np.ndarray] = []
    eq_blocks: list[sp.spmatrix] = []
    eq_rhs: list[np.ndarray] = []

    if rule == "min-max-transfer":
        n_extra = 1
        ones = sp.csr_matrix(np.ones((amap.shape[0], 1)))
        ub_blocks += [sp.hstack([amap, -ones]), sp.hstack([-amap, -ones])]
        ub_rhs += [-x0, x0]
        extra_bounds: list[tuple[float | None, float | None]] = [(0.0, None)]
        cost_extra = np.ones(1)
    else:  # maxmin: m_h <= E[Ubar*_i|h] + beta_i(h) Pi*(h)
        n_extra = n_hist
        sel = sp.csr_matrix((pi, (np.arange(n_hist), groups)), shape=(n_hist, n_groups))
        rows_b = sp.block_diag([-sel] * n, format="csr")  # (n*H, nb)
        rows_m = sp.vstack([sp.identity(n_hist, format="csr")] * n, format="csr")
        ub_blocks.append(sp.hstack([rows_b, rows_m]))
        ub_rhs.append(np.concatenate([(ubar_star[i] * ops.margs[i]).sum(axis=1) for i in range(n)]))
        extra_bounds = [(None, None)] * n_hist
        cost_extra = -np.ones(n_hist)

    def pad(m: sp.spmatrix) -> sp.spmatrix:
        return sp.hstack([m, sp.csr_matrix((m.shape[0], n_extra))])

    finite_hi = np.isfinite(hi_n)
    finite_lo = np.isfinite(lo_n)
    if finite_hi.any():
        ub_blocks.append(pad(amap[finite_hi]))
        ub_rhs.append(hi_n[finite_hi] - x0[finite_hi])
    if finite_lo.any():
        ub_blocks.append(pad(-amap[finite_lo]))
        ub_rhs.append(x0[finite_lo] - lo_n[finite_lo])
    if budget == "interim":
        ub_blocks.append(pad(budget_rows))
        ub_rhs.append(np.ones(n_groups))
    else:
        eq_blocks.append(pad(budget_rows))
        eq_rhs.append(np.ones(n_groups))

    a_ub = sp.vstack(ub_blocks, format="csr")
    b_ub = np.concatenate(ub_rhs)
    a_eq = sp.vstack(eq_blocks, format="csr") if eq_blocks else None
    b_eq = np.concatenate(eq_rhs) if eq_rhs else None
    cost = np.concatenate([np.zeros(nb), cost_extra])
    bounds = [(0.0, 1.0)] * nb + extra_bounds
    status, z, obj, msg = _solve_lp(cost, a_ub, b_ub, a_eq, b_eq, bounds, backend)
    if status != "optimal" or z is None or obj is None:
        return status, None, None, msg

    # Tie-break: keep the optimal value, minimise sum |b - ref| (d >= +-(b - ref)).
    ref_value = 0.0 if (rule == "min-max-transfer" and budget == "interim") else 1.0 / n
    ref = np.full(nb, ref_value)
    slack = tolerances.TIE_BREAK_SLACK * max(1.0, abs(obj))
    n_var = nb + n_extra
    a_ub2 = sp.vstack(
        [
            sp.hstack([a_ub, sp.csr_matrix((a_ub.shape[0], nb))]),
            sp.hstack([sp.csr_matrix(cost[None, :]), sp.csr_matrix((1, nb))]),
            sp.hstack([sp.identity(nb), sp.csr_matrix((nb, n_extra)), -sp.identity(nb)]),
            sp.hstack([-sp.identity(nb), sp.csr_matrix((nb, n_extra)), -sp.identity(nb)]),
        ],
        format="csr",
    )
    b_ub2 = np.concatenate([b_ub, [obj + slack], ref, -ref])
    a_eq2 = sp.hstack([a_eq, sp.csr_matrix((a_eq.shape[0], nb))], format="csr") if a_eq is not None else None
    cost2 = np.concatenate([np.zeros(n_var), np.ones(nb)])
    status2, z2, _, _ = _solve_lp(cost2, a_ub2, b_ub2, a_eq2, b_eq, bounds + [(0.0, None)] * nb, backend)
    if status2 == "optimal" and z2 is not None:
        z = z2[:n_var]
    b = np.clip(z[:nb].reshape(n, n_groups), 0.0, 1.0)
    if budget == "ex_post":
        b = b / b.sum(axis=0, keepdims=True)  # remove solver round-off on the equality rows
    value = obj if rule == "min-max-transfer" else -obj  # the first stage's optimum
    return "optimal", b[:, groups], value, msg


# ------------------------------------------------------------------------------------------- per-history solves
def _structure_applies(
    space: StateSpace, rule: str, budget: str, construction: str, grouped: bool, limited: bool
) -> str:
    """Why the per-history solve of ``rule`` does not apply ("" when it does)."""
    if rule == "min-max-transfer" and space.kind == "markov":
        return "on the Markov space every history is a state and every state a child of all (the LP is small)"
    if rule == "min-max-transfer" and space.env.discount == 0.0:
        return "with discount 0 the shares do not reach the parent's payments (the LP is per node)"
    if grouped:
        return "beta is restricted to Markov/stationary groups of histories (markov=True or stationary=True)"
    if rule == "maxmin":
        return "transfer limits couple the histories" if limited else ""
    if budget != "interim":
        return "budget='ex_post' rebalances every node's payments with all the agents' interim payments"
    if construction == "own":
        return "construction='own' makes each payment an expectation over several children's shares"
    return ""


def _maxmin_water_filling(
    ops: _Ops, pi: np.ndarray, ubar_star: list[np.ndarray], budget: str
) -> tuple[np.ndarray, float]:
    r"""The ``"maxmin"`` rule without limits, history by history in closed form (water-filling).

    At each history the LP of the module docstring is :math:`\max m` s.t. :math:`m \le E_i + a_i`,
    :math:`a \ge 0`, :math:`\sum_i a_i \le \Pi^*` (``= \Pi^*`` ex post), with :math:`E_i = E[\bar U^*_i|h]` and
    :math:`a_i = \beta_i \Pi^*(h)`: nothing couples two histories. For :math:`\Pi^* > 0` the optimum is the
    water level :math:`m^* = \min_j (\Pi^* + \sum_{l \le j} E_{(l)}) / j` (:math:`E_{(1)} \le \dots \le E_{(n)}`;
    every partial sum is :math:`\ge \Pi^*` at its own level, with equality for the right :math:`j`), and
    :math:`a_i = \max(0, m^* - E_i)` is the unique optimum (the lowest agents are raised to :math:`m^*` and use
    the whole surplus). Where :math:`\Pi^*(h) \le 0` every :math:`\beta` gives the same :math:`m`, and the
    LP's tie-break picks the equal split :math:`1/n`.

    Returns
    -------
    beta : ndarray, shape (n, n_hist)
    value : float
        :math:`\sum_h m^*(h)` (the LP's first-stage optimum).
    """
    n = ops.n
    e = np.stack([(ubar_star[i] * ops.margs[i]).sum(axis=1) for i in range(n)])  # (n, H)
    pos = pi > 0.0
    es = np.sort(e, axis=0)
    level = np.min((pi[None, :] + np.cumsum(es, axis=0)) / np.arange(1, n + 1)[:, None], axis=0)
    a = np.maximum(level[None, :] - e, 0.0)
    beta = np.full((n, ops.h), 1.0 / n)
    beta[:, pos] = a[:, pos] / pi[pos]
    if budget == "ex_post":
        beta = beta / beta.sum(axis=0, keepdims=True)
    m = np.where(pos, level, e.min(axis=0) + (pi / n if budget == "ex_post" else 0.0) * (~pos))
    return beta, float(m.sum())


class _LeastShares:
    r"""Least shares :math:`a \ge 0` with :math:`a_i(h) - \delta\, a_i(c(g)) \in [L_{ig}, U_{ig}]` at every node of
    a history tree, with or without a Markov tail.

    On the ``"interim"`` and ``"shift"`` constructions under the interim budget every final payment is
    :math:`x_i(g) = x^0_i(g) - a_i(h(g)) + \delta\, a_i(c(g))` (:meth:`_Ops.increment`; :math:`x^0` at
    :math:`a = 0`), so the bounds :math:`\max(-t, lo_i) \le x_i(g) \le \min(t, hi_i)` are *monotone*
    two-variable inequalities (one positive, one negative coefficient), one agent at a time. Their solution
    set is closed under componentwise minimum, so a feasible system has a least solution, which raising lower
    bounds from :math:`a = 0` reaches:

    .. math::
       a_i(h) \ge L_{ig} + \delta\, a_i(c(g)) \ \text{(up)}, \qquad
       a_i(c(g)) \ge (a_i(h) - U_{ig}) / \delta \ \text{(down)}.

    The upper constraints :math:`\sum_i a_i(h) \le \Pi^*(h)` (the interim budget, :math:`0 \le \beta`,
    :math:`\sum_i \beta_i \le 1`) are increasing in :math:`a`, so they hold somewhere iff they hold at the
    least solution. On a tree one pass leaves-up and one pass root-down, depth level by depth level, gives the
    least solution (each child history has one parent node, and a down push from :math:`h` cannot raise
    :math:`h` again since :math:`L \le U`). With a tail, tree values are carried as max-plus affine functions
    of the tail shares :math:`\tau`: :math:`a(h) = \max(c(h), \max_s D(h, s) + \delta^{T+1-p(h)} \tau(s))`
    (every push keeps the gain :math:`\delta^{T+1-p}` of its level), so the tree's pushes into the tail are
    difference constraints :math:`\tau(s) \ge W(s, s') + \tau(s')`, :math:`\tau(s) \ge B(s)`; with the tail's
    own rows they form a ``K``-variable system whose least element is the minimiser of :math:`\sum_s \tau(s)`
    (one small LP per agent). No loop over histories: each level is a handful of array operations.
    """

    def __init__(self, ops: _Ops, pi: np.ndarray):
        space = ops.space
        self.ops = ops
        self.n, self.k, self.delta = ops.n, ops.k, float(ops.delta)
        self.cap = np.maximum(pi, 0.0)
        self.levels = space.levels()
        self.tail = space.kind == "tail"
        self.n_tree = int(self.levels[-1][1])
        self.kt = self.k if self.tail else 0
        period = np.asarray(space.hist_period)[: self.n_tree]
        self.gain = self.delta ** (len(self.levels) + 1 - period) if self.tail else None

    def _tail_lp(self, low, high, b_low, w, tol, backend):
        """Least tail shares per agent (``(n, K)``) or None when infeasible."""
        k, n, d = self.kt, self.n, self.delta
        tails = np.arange(self.n_tree, self.ops.h)
        nodes = (tails[:, None] * k + np.arange(k)[None, :]).reshape(-1)
        s_of = np.repeat(np.arange(k), k)
        th_of = np.tile(np.arange(k), k)
        off = ~np.eye(k, dtype=bool)
        out = np.zeros((n, k))
        for i in range(n):  # agents only
            wi = w[i]
            if np.any(np.diag(wi) > tol):
                return None
            r, c = np.nonzero(off & np.isfinite(wi))
            rows_w = sp.csr_matrix(
                (
                    np.concatenate([np.ones(r.size), -np.ones(r.size)]),
                    (np.tile(np.arange(r.size), 2), np.concatenate([r, c])),
                ),
                shape=(r.size, k),
            )
            rows_t = sp.csr_matrix((np.ones(k * k), (np.arange(k * k), s_of)), shape=(k * k, k)) - sp.csr_matrix(
                (np.full(k * k, d), (np.arange(k * k), th_of)), shape=(k * k, k)
            )
            a_mat = sp.vstack([rows_w, rows_t], format="csc")
            rl = np.concatenate([wi[r, c], low[i, nodes]])
            ru = np.concatenate([np.full(r.size, np.inf), high[i, nodes]])
            col_lo = np.maximum(b_low[i], 0.0)
            col_hi = self.cap[tails]
            if np.any(col_lo > col_hi + tol):
                return None
            res = solve_arrays(
                a_mat,
                rl,
                ru,
                col_lo,
                np.maximum(col_hi, col_lo),
                np.ones(k),
                backend,
                primal_feasibility_tolerance=tolerances.LEAST_SHARES,
                dual_feasibility_tolerance=tolerances.LEAST_SHARES,
            )
            if res.status != "optimal" or res.x is None:
                return None
            out[i] = res.x
        return out

    def solve(self, low: np.ndarray, high: np.ndarray, tol: float, backend: str = "highs") -> np.ndarray | None:
        """Least solution for bounds ``low``/``high`` (n, N) on ``a(h) - delta a(c)`` (on ``a(h)`` where the game
        ends), or None when there is none within the budget."""
        if np.any(low > high + tol):
            return None
        n, k, kt, d = self.n, self.k, self.kt, self.delta
        c = np.zeros((n, self.n_tree))
        dd = np.full((n, self.n_tree, kt), -np.inf)
        last = len(self.levels) - 1
        for lev in range(last, -1, -1):  # leaves up
            s, e = self.levels[lev]
            m = e - s
            lg = low[:, s * k : e * k].reshape(n, m, k)
            if lev == last and self.tail:  # children are the tail states: L + delta tau(theta)
                dd[:, s:e, :] = lg
            elif lev == last:  # the game ends
                c[:, s:e] = np.maximum(lg.max(axis=2), 0.0)
            else:  # children are the histories s*k+1 ... e*k (child of node g is g + 1)
                cc = c[:, s * k + 1 : e * k + 1].reshape(n, m, k)
                c[:, s:e] = np.maximum((lg + d * cc).max(axis=2), 0.0)
                if kt:
                    dc = dd[:, s * k + 1 : e * k + 1].reshape(n, m, k, kt)
                    dd[:, s:e, :] = (lg[..., None] + d * dc).max(axis=2)
        for lev in range(last):  # root down, into the tree's own children
            s, e = self.levels[lev]
            m = e - s
            ug = high[:, s * k : e * k].reshape(n, m, k)
            ch = slice(s * k + 1, e * k + 1)
            c[:, ch] = np.maximum(c[:, ch], ((c[:, s:e, None] - ug) / d).reshape(n, m * k))
            if kt:
                push = (dd[:, s:e, None, :] - ug[..., None]) / d
                dd[:, ch, :] = np.maximum(dd[:, ch, :], push.reshape(n, m * k, kt))
        a = np.zeros((n, self.ops.h))
        if self.tail:
            s, e = self.levels[last]
            m = e - s
            ug = high[:, s * k : e * k].reshape(n, m, k)  # node (h, theta) leads to tail state theta
            b_low = ((c[:, s:e, None] - ug) / d).max(axis=1)  # (n, K)
            w = ((dd[:, s:e, None, :] - ug[..., None]) / d).max(axis=1)  # (n, K theta, K s')
            tau = self._tail_lp(low, high, b_low, w, tol, backend)
            if tau is None:
                return None
            a[:, self.n_tree :] = tau
            a[:, : self.n_tree] = np.maximum(c, (dd + self.gain[None, :, None] * tau[:, None, :]).max(axis=2))
        else:
            a[:, : self.n_tree] = c
        ops = self.ops
        diff = a[:, ops.node_hist] - np.where(ops.child >= 0, d * a[:, np.maximum(ops.child, 0)], 0.0)
        viol = max(float((low - diff).max()), float((diff - high).max()), float((a.sum(axis=0) - self.cap).max()))
        return a if viol <= tol else None


def _min_max_transfer_levels(
    ops: _Ops,
    pi: np.ndarray,
    ubar_star: list[np.ndarray],
    base: np.ndarray,
    construction: str,
    lo: np.ndarray,
    hi: np.ndarray,
    backend: str = "highs",
) -> tuple[str, np.ndarray | None, float | None, str]:
    r"""The ``"min-max-transfer"`` rule under the interim budget with the ``"interim"`` or ``"shift"``
    construction, by least shares (:class:`_LeastShares`) and bisection on the bound :math:`t`.

    Feasibility of :math:`\max |x| \le t` is monotone in :math:`t`, and for each :math:`t` the least shares
    decide it; bisection finds the optimum :math:`t^*` to ``LEAST_SHARES_BISECTION`` relative. The LP's tie-break (keep
    :math:`t \le t^* + \text{slack}`, minimise :math:`\sum \beta`) is the least solution at
    :math:`t^* + \text{slack}` itself: it is below every other feasible point, so it minimises every increasing
    function of :math:`\beta`. Returns status, beta (n, H), :math:`t^*`, message.
    """
    x0 = _transfers(ops, base, ubar_star, np.zeros((ops.n, ops.h)), construction, "interim", False)
    solver = _LeastShares(ops, pi)
    scale = max(1.0, float(np.abs(x0).max()), float(np.abs(pi).max()))
    tol = tolerances.LEAST_SHARES * scale

    def least(t: float) -> np.ndarray | None:
        return solver.solve(x0 - np.minimum(t, hi)[:, None], x0 - np.maximum(-t, lo)[:, None], tol, backend)

    a = least(np.inf)
    if a is None:
        return "infeasible", None, None, "no shares meet the transfer limits"
    t_hi = float(np.abs(x0 + ops.increment(a)).max())
    t_lo = 0.0
    while t_hi - t_lo > tolerances.LEAST_SHARES_BISECTION * max(1.0, t_hi):
        mid = 0.5 * (t_lo + t_hi)
        if least(mid) is None:
            t_lo = mid
        else:
            t_hi = mid
    a = least(t_hi + tolerances.TIE_BREAK_SLACK * max(1.0, t_hi))
    if a is None:
        return "error", None, None, "least shares at the optimum failed"
    pos = pi > 0.0
    beta = np.zeros((ops.n, ops.h))
    beta[:, pos] = np.clip(a[:, pos] / pi[pos], 0.0, 1.0)
    return "optimal", beta, t_hi, "least shares by depth level, bisection on the largest |transfer|"


# ------------------------------------------------------------------------------------------- main entry
def share_surplus(
    source: Environment | Result,
    rule: str | Any = "equal",
    *,
    budget: str = "interim",
    construction: str = "interim",
    markov: bool = False,
    stationary: bool = False,
    limits: Mapping | None = None,
    base: Mechanism | None = None,
    backend: str | None = None,
    method: str = "auto",
    beta_method: str = "auto",
    **minmax_options: Any,
) -> SharingResult:
    r"""Share the min-max surplus :math:`\Pi^*(h)` by a rule :math:`\beta` and build a verified mechanism.

    Parameters
    ----------
    source : Environment or Result
        An environment (then :func:`mechlp.solve.questions.minmax` is solved with ``minmax_options``) or the
        ``"optimal"`` result of ``minmax`` (with interim participation, ``ir="interim"``).
    rule : {"equal", "designer", "maxmin", "min-max-transfer"} or array_like
        See the module docstring. An array gives :math:`\beta` explicitly: shape ``(n_agents,)`` (the same
        at every history) or ``(n_agents, n_hist)``; it must lie in the simplex of ``budget``.
    budget : {"interim", "ex_post"}
        ``"interim"``: :math:`\sum_i\beta_i \le 1`, the designer keeps :math:`\Pi^\beta \ge 0`.
        ``"ex_post"``: :math:`\sum_i \beta_i = 1` and the transfers are rebalanced to sum to zero at every node
        (:func:`ex_post_balance`).
    construction : {"interim", "shift", "own"}
        How transfers are built from the interim utilities (module docstring). Irrelevant under
        ``budget="ex_post"`` (the rebalanced transfers depend only on interim payments).
    markov, stationary : bool
        Restrict :math:`\beta` to depend on (period, last report profile), or on the last report profile only
        (history trees; automatic on the Markov space). For an explicit ``rule`` array the restriction is
        checked.
    limits : dict, optional
        ``{agent name or index: (lo, hi)}`` bounds on every final transfer (``None`` for an open side).
        Constraints of the LP rules; for fixed rules they are checked and a violation gives status
        ``"infeasible"``.
    base : Mechanism, optional
        Base of the ``"shift"`` construction (default: the min-max mechanism of ``source``). It must have
        the min-max interim utilities (e.g. :func:`mechlp.constructions.minmax_mechanism` for bilateral trade).
    backend : {"highs", "cvxpy"}, optional
        LP backend of the min-max LP (when ``source`` is an environment) and of the beta LPs of ``"maxmin"`` and
        ``"min-max-transfer"`` (:func:`mechlp.backends.solve_arrays`). Default: the backend of the min-max
        result (``"highs"`` when it has none, e.g. ``method="recursion"``).
    method : {"auto", "lp", "recursion"}
        Solver of the min-max surplus when ``source`` is an environment (:func:`mechlp.solve.questions.minmax`:
        ``"auto"`` takes the recursion when it is certified tight at every history, else the LP).
        ``options["method"]`` of the result names the one used.
    beta_method : {"auto", "structure", "lp"}
        How the beta of ``"maxmin"`` and ``"min-max-transfer"`` is found. ``"structure"``: ``"maxmin"`` without
        transfer limits history by history in closed form (water-filling, :func:`_maxmin_water_filling`);
        ``"min-max-transfer"`` under the interim budget with the ``"interim"`` or ``"shift"`` construction by
        least shares, depth level by depth level, and bisection on the largest payment
        (:func:`_min_max_transfer_levels`); neither with ``markov``/``stationary`` groups. ``"lp"``: the
        two-stage LP (optimum, then the tie-break). ``"auto"``: the structure where it applies (for
        ``"min-max-transfer"`` from :data:`AUTO_LEAST_SHARES_NODES` nodes on), else the LP.
        ``options["beta_method"]`` of the result names the one used.
    **minmax_options
        Passed to :func:`mechlp.solve.questions.minmax` when ``source`` is an environment (``space``, ``horizon``,
        ``ic``, ...).

    Returns
    -------
    SharingResult

    Raises
    ------
    NegativeSurplusError
        When :math:`\Pi^*(h) < 0` at some history (a ``ValueError`` naming the most negative history).
    ValueError
        For a bad rule, budget or construction, ``"designer"`` with ``budget="ex_post"``, an explicit
        :math:`\beta` outside the simplex, or a min-max result that is not optimal.
    """
    budget = parse_notion("budget", budget, allowed=BUDGETS)
    construction = check_choice("construction", construction, CONSTRUCTIONS)
    check_choice("beta_method", beta_method, BETA_METHODS)
    explicit = not isinstance(rule, str)
    if not explicit:
        check_choice("rule", rule, RULES)
        if rule == "designer" and budget == "ex_post":
            raise ValueError(
                "rule 'designer' leaves all the surplus with the designer (beta = 0), which ex post budget "
                "balance forbids (the shares must sum to 1); use budget='interim'"
            )
    if isinstance(source, Environment | Result):
        src_env = source if isinstance(source, Environment) else source.env
        src_env.require_independent("share_surplus (shares of Pi* kept by interim payments)")
    if isinstance(source, Result):
        if minmax_options or method != "auto":
            raise ValueError("minmax options (method, ...) are only accepted with an Environment source")
        mm = source
    elif isinstance(source, Environment):
        check_choice("method", method, METHODS)
        if backend is not None:
            minmax_options["backend"] = backend
        mm = minmax(source, method=method, **minmax_options)
    else:
        raise TypeError(f"source must be an Environment or a minmax Result, got {type(source).__name__}")
    if mm.question != "minmax" or mm.status != "optimal" or mm.mechanism is None or mm.surplus is None:
        raise ValueError(f"sharing needs an optimal min-max result; got question {mm.question!r}: {mm.message}")
    ir = mm.options.get("ir", "interim")
    if ir != "interim":
        raise ValueError(
            f"sharing needs the min-max surplus with periodic interim participation (ir='interim'); got ir={ir!r}"
        )
    _check_negative_surplus(mm)

    space = mm.space
    env = space.env
    ops = _Ops(space)
    if budget == "ex_post" and ops.n < 2:
        raise ValueError(f"ex post budget balance needs at least two agents; the environment has {ops.n}")
    pi = np.asarray(mm.surplus, dtype=float)
    ubar_star = [np.asarray(u, dtype=float) for u in mm.interim_utilities]
    if base is None:
        base = mm.mechanism
    elif not isinstance(base, Mechanism) or base.space.n_nodes != space.n_nodes or base.env is not env:
        raise ValueError("base must be a Mechanism on the same space (same environment) as the min-max result")
    groups = _groups(space, markov, stationary)
    lo, hi = _limits(limits, env)
    ic = mm.options.get("ic", "bayesian")
    mm_method = str((mm.diagnosis or {}).get("method", mm.options.get("method", "lp"))).split(" ")[0]
    options = {
        "markov": markov,
        "stationary": stationary,
        "limits": limits,
        "ic": ic,
        "method": mm_method,
        "beta_method": "fixed",
    }
    rule_name = "explicit" if explicit else rule
    objective = None

    if explicit:
        beta = _explicit_beta(rule, space, budget, groups, markov or stationary)
    elif rule == "equal":
        beta = np.full((ops.n, ops.h), 1.0 / ops.n)
    elif rule == "designer":
        beta = np.zeros((ops.n, ops.h))
    else:
        limited = bool(np.isfinite(lo).any() or np.isfinite(hi).any())
        why_not = _structure_applies(space, rule, budget, construction, bool(markov or stationary), limited)
        if beta_method == "structure" and why_not:
            raise ValueError(f"beta_method='structure' does not apply to rule {rule!r} here: {why_not}")
        status = "lp"
        lp_backend = mm.options.get("backend", "highs") if backend is None else backend
        small = rule == "min-max-transfer" and space.n_nodes < AUTO_LEAST_SHARES_NODES
        if beta_method == "structure" or (beta_method == "auto" and not why_not and not small):
            if rule == "maxmin":
                beta_lp, objective = _maxmin_water_filling(ops, pi, ubar_star, budget)
                status, msg, options["beta_method"] = "optimal", "", "water-filling"
            else:
                status, beta_lp, objective, msg = _min_max_transfer_levels(
                    ops, pi, ubar_star, base.transfers, construction, lo, hi, lp_backend
                )
                options["beta_method"] = "least-shares"
                if status == "error" and beta_method == "auto":
                    status = "lp"  # did not settle: the LP decides
        if status == "lp":
            options["beta_method"] = "lp"
            status, beta_lp, objective, msg = _beta_lp(
                ops,
                rule,
                budget,
                construction,
                pi,
                ubar_star,
                base.transfers,
                groups,
                lo,
                hi,
                mm.options.get("backend", "highs") if backend is None else backend,
            )
        if status != "optimal" or beta_lp is None:
            what = "with the transfer limits" if np.isfinite(lo).any() or np.isfinite(hi).any() else ""
            return SharingResult(
                status if status in ("infeasible", "error") else "error",
                f"the {rule} LP for beta is {status} {what}: {msg}".replace("  ", " "),
                rule_name,
                budget,
                construction,
                space,
                mm,
                np.full((ops.n, ops.h), np.nan),
                pi,
                options=options,
            )
        beta = beta_lp

    t0 = time.perf_counter()
    a = beta * pi[None, :]
    x = _transfers(ops, base.transfers, ubar_star, a, construction, budget)
    mech = Mechanism(space, x)
    t1 = time.perf_counter()
    cert = verify(
        mech,
        ic="bayesian" if ic == "local" else ic,
        ir="interim",
        budget=budget,
        outside_option=mm.options.get("outside_option", 0.0),
    )
    timings = {"build": t1 - t0, "verify": time.perf_counter() - t1}
    ubar = mech.interim_utilities()
    pi_beta = mech.surplus()
    interim_error = max(float(np.abs(ubar[i] - ubar_star[i] - a[i][:, None]).max()) for i in range(ops.n))
    surplus_error = float(np.abs(pi_beta - (1.0 - beta.sum(axis=0)) * pi).max())
    lo_viol = np.maximum(lo[:, None] - x, 0.0)
    hi_viol = np.maximum(x - hi[:, None], 0.0)
    limits_violation = float(max(lo_viol.max(), hi_viol.max()))
    checks = {"interim_error": interim_error, "surplus_error": surplus_error, "limits_violation": limits_violation}
    scale = max(1.0, float(np.abs(pi).max()))
    tol = tolerances.FEASIBILITY * scale
    res = SharingResult(
        "optimal",
        "",
        rule_name,
        budget,
        construction,
        space,
        mm,
        beta,
        pi,
        surplus=pi_beta,
        interim_utilities=ubar,
        mechanism=mech,
        certificate=cert,
        max_abs_transfer=float(np.abs(x).max()),
        objective=objective,
        checks=checks,
        options=options,
        timings=timings,
    )
    where = "Markov mechanisms on the infinite horizon" if space.kind == "markov" else "history tree"
    if not cert.ok:
        res.status = "verification_failed"
        res.message = "the shared mechanism fails the independent verification:\n" + cert.summary()
    elif interim_error > tol or surplus_error > tol:
        res.status = "verification_failed"
        res.message = (
            f"the construction does not reproduce Ubar* + beta Pi* (error {interim_error:.3g}) or "
            f"(1 - sum beta) Pi* (error {surplus_error:.3g})"
        )
    elif limits_violation > tolerances.FEASIBILITY:
        i, g = np.unravel_index(int(np.argmax(np.maximum(lo_viol, hi_viol))), x.shape)
        res.status = "infeasible"
        res.message = (
            f"the {rule_name} split violates the transfer limits by {limits_violation:.6g}: agent "
            f"{env.agents[i].name!r} pays {x[i, g]:.6g} at {space.describe_history(int(g) // env.n_profiles)}, "
            f"profile {env.profile_labels(int(g) % env.n_profiles)}"
        )
    else:
        kept = 1.0 - beta.sum(axis=0)
        res.message = (
            f"{rule_name} sharing under {budget.replace('_', ' ')} budget balance ({where}): verified; "
            f"largest |transfer| {res.max_abs_transfer:.6g}; Pi* by the {mm_method}"
        )
        if options["beta_method"] != "fixed":
            res.message += f", beta by {options['beta_method']}"
        if budget == "interim":
            res.message += f"; the designer keeps between {kept.min():.3g} and {kept.max():.3g} of Pi*"
        else:
            res.message += "; payments sum to zero at every node"
    return res


# ------------------------------------------------------------------------------------------- comparing rules
def payment_weights(space: StateSpace) -> np.ndarray:
    r"""``(n_nodes,)``: the normalised discounted reach probability of every node under truth-telling.

    .. math::
       w(g) = \frac{c(g)}{\sum_{g'} c(g')}, \qquad c(g) = \sum_{t \ge 0} \delta^t \Pr(\text{node } g
       \text{ in period } t),

    the coefficient of the flow at ``g`` in the expected discounted value at the start (the transpose of the
    continuation values, :func:`mechlp.model.beliefs.continuation_adjoint`, with the prior of the first period's
    profiles as weights). On a history tree ``c(g)`` is :math:`\delta^{t(g)}` times the probability of reaching
    ``g``; on the Markov space it is the discounted occupation measure, which sums to :math:`1/(1-\delta)`.
    These are the weights of the payment variances of :class:`SharingComparison`.

    Parameters
    ----------
    space : StateSpace
        A history tree, a tree with a Markov tail or the Markov space.

    Returns
    -------
    ndarray, shape (n_nodes,)
        Non-negative weights summing to one.
    """
    env = space.env
    k = env.n_profiles
    w0 = np.zeros(space.n_nodes)
    w0[:k] = env.prior_profile()  # the nodes of the first period (history 0)
    c = np.clip(continuation_adjoint(space, w0), 0.0, None)
    return c / c.sum()


@dataclass
class SharingComparison(Answer):
    r"""Several sharing rules of the same min-max surplus, side by side (:func:`compare_sharing`; result contract:
    :mod:`mechlp.model.answer`).

    Every rule :math:`r` gives shares :math:`\beta^r_i(h)` and payments :math:`x^r_i(g)` (a
    :class:`SharingResult`, each with its own independent verification). The comparison reports, per rule:

    * each agent's and the designer's share of :math:`\Pi^*` at the start: :math:`\beta^r_i(h_0)` and
      :math:`1 - \sum_i \beta^r_i(h_0)`, and the values :math:`\beta^r_i(h_0)\Pi^*(h_0)` (agent ``i``'s expected
      gain over the min-max mechanism, ex ante: :math:`\bar U^\beta_i = \bar U^*_i + \beta_i \Pi^*`) and
      :math:`\Pi^\beta(h_0)` (what the designer keeps);
    * the largest payment :math:`\max_{i,g} |x^r_i(g)|`;
    * the variance of each party's payments over nodes, weighted by the normalised discounted reach probability
      :math:`w(g)` (:func:`payment_weights`):
      :math:`\mathrm{Var}^r_i = \sum_g w(g)\,(x^r_i(g) - \bar x^r_i)^2`, :math:`\bar x^r_i = \sum_g w(g) x^r_i(g)`;
      the designer's payment is its net receipt :math:`\sum_i x^r_i(g)` (zero at every node under ex post
      budget balance);
    * who bears risk: the party with the largest variance (every party within ``tolerances.FEASIBILITY`` times
      the scale of :math:`\Pi^*` of the largest standard deviation, comma-separated: with two agents and ex post
      budget balance :math:`x_2 = -x_1` at every node, a tie), ``"none"`` when every standard deviation is below
      that tolerance.

    Attributes
    ----------
    minmax : Result
        The min-max answer every rule shares (solved once).
    results : dict of str to SharingResult
        One per rule, in the order asked.
    budget, construction : str
        As for :func:`share_surplus` (the same for every rule).
    weights : ndarray, shape (n_nodes,)
        :math:`w(g)`.
    timings : dict
        Seconds: ``"minmax"`` (when solved here) and ``"rules"``.
    status : str
        (property) ``"optimal"`` when every rule was built and verified, else the first failing rule's status.
    message : str
        (property) One line per rule.

    JSON (:meth:`to_dict`): the contract's keys (``surplus``: :math:`\Pi^*`; no ``transfers``, which differ per
    rule) plus ``rules``, ``budget``, ``construction``, ``summary`` (the rows of :meth:`summary_frame`),
    ``shares`` (of :meth:`shares_frame`), ``payments`` (of :meth:`payments_frame`), ``variance_weights``
    (:math:`w`) and ``results`` (per rule: ``status``, ``message``, ``options``, ``verification``).
    """

    minmax: Result
    results: dict[str, SharingResult]
    budget: str
    construction: str
    weights: np.ndarray
    timings: dict = field(default_factory=dict)

    verification = None
    certificate = None

    @property
    def space(self) -> StateSpace:
        return self.minmax.space

    @property
    def env(self) -> Environment:
        return self.space.env

    @property
    def surplus(self) -> np.ndarray:
        """:math:`\\Pi^*(h)`, shared by every rule."""
        return np.asarray(self.minmax.surplus, dtype=float)

    @property
    def rules(self) -> list[str]:
        """The rules' labels, in the order compared."""
        return list(self.results)

    @property
    def status(self) -> str:
        bad = [r.status for r in self.results.values() if not r.success]
        return bad[0] if bad else "optimal"

    @property
    def message(self) -> str:
        return "\n".join(
            f"{name}: {r.status}; {r.message.splitlines()[0] if r.message else ''}" for name, r in self.results.items()
        )

    @property
    def size(self) -> dict:
        return {**space_size(self.space), "rules": len(self.results)}

    def _names(self) -> list[str]:
        return [ag.name for ag in self.env.agents]

    def _payments(self, res: SharingResult) -> np.ndarray:
        """``(n_agents + 1, n_nodes)``: the agents' payments and the designer's net receipt (NaN without a
        mechanism)."""
        if res.mechanism is None:
            return np.full((self.env.n_agents + 1, self.space.n_nodes), np.nan)
        x = np.asarray(res.mechanism.transfers, dtype=float)
        return np.vstack([x, x.sum(axis=0, keepdims=True)])

    def summary_frame(self) -> pd.DataFrame:
        r"""One row per rule: ``rule``, ``status``, ``pi_star`` (:math:`\Pi^*(h_0)`), ``share_<agent>`` and
        ``share_designer`` (of :math:`\Pi^*(h_0)`), ``value_<agent>`` and ``value_designer`` (the shares times
        :math:`\Pi^*(h_0)`), ``max_abs_transfer``, ``var_<agent>`` and ``var_designer`` (reach-weighted payment
        variances, class docstring) and ``risk_bearer``."""
        parties = [*self._names(), "designer"]
        pi0 = float(self.surplus[0])
        scale = max(1.0, float(np.abs(self.surplus).max()))
        w = self.weights
        rows = []
        for name, res in self.results.items():
            share = np.append(res.beta[:, 0], 1.0 - res.beta[:, 0].sum())
            x = self._payments(res)
            mean = x @ w
            var = ((x - mean[:, None]) ** 2) @ w
            row: dict[str, Any] = {"rule": name, "status": res.status, "pi_star": pi0}
            row.update({f"share_{p}": float(s) for p, s in zip(parties, share, strict=True)})
            row.update({f"value_{p}": float(s * pi0) for p, s in zip(parties, share, strict=True)})
            row["max_abs_transfer"] = float(res.max_abs_transfer) if res.max_abs_transfer is not None else np.nan
            row.update({f"var_{p}": float(v) for p, v in zip(parties, var, strict=True)})
            if not np.isfinite(var).all():
                row["risk_bearer"] = None
            else:
                sd = np.sqrt(np.maximum(var, 0.0))
                tol = tolerances.FEASIBILITY * scale
                top = [p for p, v in zip(parties, sd, strict=True) if v >= sd.max() - tol]
                row["risk_bearer"] = "none" if sd.max() <= tol else ", ".join(top)
            rows.append(row)
        return pd.DataFrame(rows)

    def shares_frame(self) -> pd.DataFrame:
        r"""Per rule and history: ``rule``, then the columns of :meth:`SharingResult.shares_frame` (``history``,
        ``where``, ``pi_star``, :math:`\beta_i(h)` per agent, ``designer``, ``surplus``)."""
        frames = [res.shares_frame().assign(rule=name) for name, res in self.results.items()]
        df = pd.concat(frames, ignore_index=True)
        return df[["rule", *[c for c in df.columns if c != "rule"]]]

    def payments_frame(self) -> pd.DataFrame:
        """Per node, every rule side by side: ``node``, ``history``, ``where``, ``profile``, ``weight``
        (:func:`payment_weights`) and one column ``"<rule>: <agent>"`` per rule and agent with the payment to the
        designer."""
        names = self._names()
        first = next(iter(self.results.values()))
        base = first.transfers_frame().reset_index()[["node", "history", "where", "profile"]]
        cols: dict[str, Any] = {c: base[c].to_numpy() for c in base.columns}
        cols["weight"] = self.weights
        for name, res in self.results.items():
            x = self._payments(res)
            cols.update({f"{name}: {nm}": x[i] for i, nm in enumerate(names)})
        return pd.DataFrame(cols)

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "budget": self.budget,
            "construction": self.construction,
            "summary": self.summary_frame(),
            "shares": self.shares_frame(),
            "payments": self.payments_frame(),
            "variance_weights": self.weights,
            "results": {
                name: {
                    "status": r.status,
                    "message": r.message,
                    "options": r.options,
                    "verification": None if r.certificate is None else r.certificate.to_dict(),
                }
                for name, r in self.results.items()
            },
        }

    def __repr__(self) -> str:
        return f"SharingComparison(rules={self.rules!r}, budget={self.budget!r}, status={self.status!r})"


def compare_sharing(
    source: Environment | Result,
    rules: Any = RULES,
    *,
    budget: str = "interim",
    construction: str = "interim",
    markov: bool = False,
    stationary: bool = False,
    limits: Mapping | None = None,
    backend: str | None = None,
    method: str = "auto",
    beta_method: str = "auto",
    **minmax_options: Any,
) -> SharingComparison:
    r"""Share the same min-max surplus by several rules and put them side by side (:class:`SharingComparison`).

    The min-max problem is solved once (when ``source`` is an environment); each rule is then
    :func:`share_surplus` of that result with the same ``budget``, ``construction``, restrictions and limits, and
    each is verified independently.

    Parameters
    ----------
    source : Environment or Result
        As for :func:`share_surplus`.
    rules : sequence or mapping
        Rule names (:data:`RULES`; default all of them, in that order), or a mapping ``label -> rule`` whose rules
        are names or explicit share arrays (as :func:`share_surplus`'s ``rule``).
    budget, construction, markov, stationary, limits, backend, method, beta_method, **minmax_options
        As for :func:`share_surplus` (``method`` and ``**minmax_options`` solve the min-max problem).

    Returns
    -------
    SharingComparison

    Raises
    ------
    NegativeSurplusError
        When :math:`\Pi^*(h) < 0` somewhere (no budget-balanced sharing exists).
    ValueError
        For no rules, a repeated rule, an unknown rule name, ``"designer"`` with ``budget="ex_post"``, or any
        error of :func:`share_surplus`.
    """
    if isinstance(rules, str):
        rules = [r.strip() for r in rules.split(",")]
    named = dict(rules) if isinstance(rules, Mapping) else None
    labels = list(named) if named is not None else list(rules)
    if not labels:
        raise ValueError("rules: give at least one sharing rule")
    if named is None:
        for r in labels:
            if not isinstance(r, str):
                raise TypeError(
                    f"rules: a sequence of rule names {RULES}; label explicit shares with a mapping, got {r!r}"
                )
            check_choice("rule", r, RULES)
        named = {r: r for r in labels}
    repeated = sorted({r for r in labels if labels.count(r) > 1})
    if repeated:
        raise ValueError(f"rules: {repeated} given more than once")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if isinstance(source, Environment):
        source.require_independent("compare_sharing (shares of Pi* kept by interim payments)")
        check_choice("method", method, METHODS)
        if backend is not None:
            minmax_options["backend"] = backend
        mm = minmax(source, method=method, **minmax_options)
        timings["minmax"] = time.perf_counter() - t0
    elif isinstance(source, Result):
        if minmax_options or method != "auto":
            raise ValueError("minmax options (method, ...) are only accepted with an Environment source")
        mm = source
    else:
        raise TypeError(f"source must be an Environment or a minmax Result, got {type(source).__name__}")
    t1 = time.perf_counter()
    results = {
        label: share_surplus(
            mm,
            rule,
            budget=budget,
            construction=construction,
            markov=markov,
            stationary=stationary,
            limits=limits,
            backend=backend,
            beta_method=beta_method,
        )
        for label, rule in named.items()
    }
    timings["rules"] = time.perf_counter() - t1
    first = next(iter(results.values()))
    return SharingComparison(
        minmax=mm,
        results=results,
        budget=first.budget,
        construction=first.construction,
        weights=payment_weights(mm.space),
        timings=timings,
    )

r"""Lump-sum fees on top of the dynamic pivot mechanism (Yoon 2015; Yoon 2021, section 3.3).

The pivot mechanism (:mod:`mechlp.constructions.pivot`) gives agent :math:`i` the utility
:math:`M_i(\theta) = W(\theta) - W_{-i}(\theta_{-i}) \ge 0` at every node, and its expected budget surplus at a
history is (Lamba 2022, eq. 4) :math:`\Pi^{piv}(h) = E[W | h] - \sum_i E[M_i | h]` (negative = deficit).
A *lump-sum fee* does not depend on the payer's own reports, so it leaves every incentive constraint intact
and only shifts participation and budget.

Participation against the outside values :math:`O_i`
    Bergemann and Välimäki (2010, section 2) let agent :math:`i` opt out after any history; its outside value
    :math:`O_i(\theta)` is what it gets when the planner runs the efficient policy :math:`a^*_{-i}` for the others
    (:attr:`~mechlp.constructions.pivot.PivotValues.outside`), and the pivot satisfies :math:`M_i \ge O_i` at
    every node. The fee mechanism is held to the same constraint: agent :math:`i`'s interim participation at
    history :math:`h` reads :math:`\bar U_i(\theta_i|h) \ge \bar O_i(\theta_i|h) = E[O_i(\theta_i, \theta_{-i})
    | h]`, and it is verified so (``verify(..., outside_values=O)``). A fee is therefore bounded by agent
    :math:`i`'s smallest participation *slack* :math:`\bar U^{piv}_i - \bar O_i`, not by its smallest payoff.
    Yoon (2015, section 2.2) normalises the autarky payoffs to zero; in bilateral trade without the buyer or the
    seller no trade happens, so :math:`O_i \equiv 0` and every number below is Yoon's. Where an agent's
    outside value is not zero (it values the others' choices, e.g. a public project it dislikes) the fees
    differ from "the worst-off payoff": an agent with negative payoffs can still pay a positive fee when it is
    better off inside than out, and an agent that enjoys the others' choices for free pays less.

Ex ante fees (Yoon 2015, condition (*))
    One fee per agent, paid in the first period whatever the reports. The largest fee agent :math:`i` accepts
    is the participation slack of its worst-off initial type,
    :math:`L_i = \min_{\theta_i} [\bar U_i^{piv}(\theta_i | \text{root}) - \bar O_i(\theta_i | \text{root})]`
    (Yoon's :math:`\inf_{\theta_i} \sum_t \delta^t x_{i|\theta_i}^T P^t m_i` when :math:`O_i = 0`); later
    histories are untouched by the fee, and there :math:`\bar U^{piv}_i \ge \bar O_i` already. So ex ante budget
    balance is reachable iff

    .. math:: \text{slack} = \sum_i L_i + \Pi^{piv}(\text{root}) \ge 0
              \quad\Longleftrightarrow\quad \text{deficit} \le \sum_i L_i .

    ``split="tight"`` charges :math:`L_i` (the designer keeps the slack); ``split="balanced"`` charges
    :math:`L_i - \text{slack}/n` so that :math:`\Pi(\text{root}) = 0` exactly.

    Which types count (``worst_over``): Yoon takes the minimum over the support of the prior
    (``"support"``); the default ``"all"`` takes it over every type, because the independent verifier checks
    interim participation for every type, whatever its probability. The two agree whenever every type has
    positive prior probability (all of Yoon's examples). With ``"support"`` and a zero-probability type whose
    slack is below the fee, the fee mechanism fails the verifier at exactly those rows, and the result says so.

Interim fees (Yoon 2015, section 3)
    Yoon's interim condition asks, after every history, that the expected deficit from there on be covered by
    the worst-off types' continuation slacks: :math:`\Pi^{piv}(h) + \sum_i L_i(h) \ge 0` with
    :math:`L_i(h) = \min_{\theta_i} [\bar U_i^{piv}(\theta_i|h) - \bar O_i(\theta_i|h)]`. It is implemented
    with per-history fees: the expected discounted fees from :math:`h` on are :math:`\Phi_i(h) = L_i(h)`,
    collected as the flow

    .. math:: F_i(h) = \Phi_i(h) - \delta \sum_\theta P(\theta|h)\, \Phi_i(\text{child}(h, \theta)),

    charged at every node of :math:`h` (zero continuation after the last period). When no kernel depends on the
    action, :math:`\bar U^{piv}_i(\cdot|h)` and :math:`\bar O_i(\cdot|h)` depend on the history only through the
    others' last reports (and the period), so :math:`\Phi_i` is a function of the *others'* reports only: the
    fees are type-independent, agent :math:`i` cannot move them, and ex post IC is preserved. Agent :math:`i`'s
    interim utility at :math:`h` becomes :math:`\bar U^{piv}_i(\theta_i|h) - L_i(h) \ge \bar O_i(\theta_i|h)` and
    :math:`\Pi(h) = \Pi^{piv}(h) + \sum_i L_i(h)`, so interim IR against :math:`O_i` holds everywhere and interim
    budget balance holds iff Yoon's condition does.
    The minimum is over *all* own types (not the support at :math:`h`): with a support that depends on the
    agent's own last report the fee would depend on it too. With full-support kernels the two coincide.

Diverse preferences
    An absorbing type whose rent :math:`M_i - O_i` is zero whatever the others' types (Bergemann and Välimäki
    2010, Assumption 1(i): zero value, absorbing, so :math:`M_i = O_i = 0`) has participation slack zero
    forever. When every agent has such a type among the types that count (its prior's support for
    ``worst_over="support"``), :math:`\sum_i L_i = 0` and balance is possible only if the pivot has no deficit,
    for every discount factor (Yoon 2015, section 2.3; Yoon 2021, Theorem 6). The condition reports such types
    and says so.

:func:`critical_discount` scans the slack over a grid of discount factors (it does not assume monotonicity),
then bisects every bracket where its sign changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, verify
from mechlp.constructions.pivot import (
    PivotResult,
    PivotValues,
    dynamic_pivot,
    pivot_outside_on_space,
    pivot_values,
)
from mechlp.model import tolerances
from mechlp.model.answer import Answer, VerifiedOnSpace
from mechlp.model.beliefs import expectation, interim_expectation, joint_transition, next_marginals, others_product
from mechlp.model.bisection import scan_and_bisect
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import check_choice, parse_notion
from mechlp.model.spaces import StateSpace

__all__ = [
    "FeeCondition",
    "FeeResult",
    "CriticalDiscount",
    "fee_condition",
    "lump_sum_fees",
    "critical_discount",
    "zero_rent_types",
]

MODES = ("ex_ante", "interim")
WORST_OVER = ("all", "support")
SPLITS = ("tight", "balanced")


# ---------------------------------------------------------------------------------------------- condition
@dataclass
class FeeCondition:
    r"""Yoon's condition (*) for ex ante budget balance with lump-sum fees (and its interim version).

    Attributes
    ----------
    deficit : float
        Expected discounted budget deficit of the pivot, :math:`-\Pi^{piv}(\text{root})`.
    root_payoffs : list of ndarray
        Per agent, :math:`\bar U^{piv}_i(\theta_i|\text{root})` for every type.
    worst_over : str
        ``"all"`` types or the prior's ``"support"`` (see the module docstring).
    worst_payoff : ndarray, shape (n,)
        :math:`L_i = \min_{\theta_i} [\bar U^{piv}_i(\theta_i|\text{root}) - \bar O_i(\theta_i|\text{root})]`
        over those types: the largest fee agent :math:`i` accepts (its smallest participation slack against
        Bergemann and Välimäki's outside value; the smallest root payoff when :math:`O_i = 0`, Yoon's (*)).
    worst_type : list of str
        The label of that type per agent.
    root_outside : list of ndarray
        Per agent, :math:`\bar O_i(\theta_i|\text{root}) = E[O_i(\theta_i, \theta_{-i})]` under the prior for
        every type (:attr:`~mechlp.constructions.pivot.PivotValues.outside`; zero in Yoon's trade models).
    slack : float
        :math:`\sum_i L_i - \text{deficit}`; ex ante balance is reachable iff ``slack >= -tolerances.SURPLUS``.
    feasible : bool
    interim_slack : ndarray or None
        With ``interim=True``: :math:`\Pi^{piv}(h) + \sum_i \min_{\theta_i} [\bar U_i^{piv}(\theta_i|h) -
        \bar O_i(\theta_i|h)]` per history class — ``[root, after profile 0, ..., after profile K-1]`` for an
        infinite horizon, and ``[root, (period 2, after profile 0), ...]`` (period-major) for a finite one.
    interim_feasible : bool or None
    zero_rent : dict
        ``{agent: [type labels]}``: absorbing types with zero rent :math:`M_i - O_i` (see the module docstring).
    diverse_preferences : bool
        Every agent has such a type among the types that count (then :math:`\sum_i L_i = 0`).
    has_outside : bool
        Some outside value :math:`O_i(\theta)` (any period, profile) differs from zero by more than
        ``tolerances.ZERO_RENT`` times :math:`\max(1, \max |W|)`; when False the numbers are Yoon's.
    message : str
    """

    env: Environment
    deficit: float
    root_payoffs: list[np.ndarray]
    worst_over: str
    worst_payoff: np.ndarray
    worst_type: list[str]
    slack: float
    feasible: bool
    zero_rent: dict[str, list[str]]
    diverse_preferences: bool
    interim_slack: np.ndarray | None = None
    interim_feasible: bool | None = None
    message: str = ""
    root_outside: list[np.ndarray] = field(default_factory=list)
    has_outside: bool = False

    def to_dict(self) -> dict:
        out = {
            "deficit": float(self.deficit),
            "worst_over": self.worst_over,
            "worst_payoff": {ag.name: float(v) for ag, v in zip(self.env.agents, self.worst_payoff, strict=True)},
            "worst_type": {ag.name: t for ag, t in zip(self.env.agents, self.worst_type, strict=True)},
            "worst_outside": {
                ag.name: float(o[ag.types.index(t)])
                for ag, t, o in zip(self.env.agents, self.worst_type, self.root_outside, strict=True)
            },
            "slack": float(self.slack),
            "feasible": bool(self.feasible),
            "zero_rent_types": self.zero_rent,
            "diverse_preferences": bool(self.diverse_preferences),
            "outside_values": bool(self.has_outside),
            "message": self.message,
        }
        if self.interim_slack is not None:
            out["interim_min_slack"] = float(self.interim_slack.min())
            out["interim_feasible"] = bool(self.interim_feasible)
        return out


def _interim_over_others(
    values: np.ndarray, counts: tuple[int, ...], agent: int, beliefs: list[np.ndarray]
) -> np.ndarray:
    r"""``(H, K_i)``: :math:`\sum_{\theta_{-i}} \prod_{j \ne i} b_j(h, \theta_j)\, X(\theta_i, \theta_{-i})`.

    ``values`` has shape ``(K,)`` (profiles in C order); ``beliefs[j]`` is ``(H, K_j)``.
    """
    x = np.moveaxis(values.reshape(counts), agent, 0).reshape(counts[agent], -1)  # (K_i, K_-i)
    po = others_product(beliefs, agent)  # (H, K_-i)
    return po @ x.T


def zero_rent_types(env: Environment, values: PivotValues, tol: float = tolerances.ZERO_RENT) -> dict[str, list[int]]:
    """Per agent, indices of types that are absorbing under every action and have zero rent
    :math:`M_i - O_i = 0` for every :math:`\\theta_{-i}` and period (Bergemann and Välimäki 2010, Assumption
    1(i), generalised; :math:`O_i` is :attr:`PivotValues.outside`, zero for a zero-value type)."""
    env.require_independent("zero-rent types of the pivot")
    out: dict[str, list[int]] = {}
    types = env.profile_types()
    scale = max(1.0, float(np.max(np.abs(values.W))))
    for i, ag in enumerate(env.agents):
        kern = ag.kernel(env.n_actions)
        diag = np.diagonal(kern, axis1=1, axis2=2)  # (A, K_i)
        absorbing = np.all(diag >= 1.0 - tolerances.PROBABILITY, axis=0)
        m = np.abs(values.marginal[:, i, :] - values.outside[:, i, :]).max(axis=0)  # (K,) over periods
        zero = np.ones(ag.n_types, dtype=bool)
        np.logical_and.at(zero, types[:, i], m <= tol * scale)
        out[ag.name] = [int(t) for t in np.flatnonzero(absorbing & zero)]
    return out


def fee_condition(
    env: Environment, *, interim: bool = False, worst_over: str = "all", values: PivotValues | None = None
) -> FeeCondition:
    r"""Evaluate Yoon's condition (*) for the pivot mechanism of ``env`` (no mechanism is built).

    The fee bound of agent :math:`i` is its worst-off type's participation slack against Bergemann and
    Välimäki's outside value, :math:`L_i = \min_{\theta_i} E[M_i - O_i | \text{root}, \theta_i]`, and the
    condition reads :math:`\sum_i L_i \ge -\Pi^{piv}(\text{root})` (module docstring). With :math:`O_i = 0`
    (Yoon's bilateral trade) it is Yoon's (*) verbatim.

    Parameters
    ----------
    env : Environment
        Dynamically efficient allocation (see :func:`~mechlp.constructions.pivot.dynamic_pivot`).
    interim : bool
        Also evaluate the interim condition at every history class (:attr:`FeeCondition.interim_slack`).
    worst_over : {"all", "support"}
        Types over which the worst-off payoff is taken (module docstring); the interim condition always uses
        all types.
    values : PivotValues, optional
        Precomputed :func:`~mechlp.constructions.pivot.pivot_values` of ``env``.

    Returns
    -------
    FeeCondition
    """
    env.require_independent("Yoon's (2015) lump-sum fee condition")
    check_choice("worst_over", worst_over, WORST_OVER)
    pv = pivot_values(env) if values is None else values
    n = env.n_agents
    counts = env.type_counts
    prior = env.prior_profile()
    w1 = pv.W[0]
    m1 = pv.marginal[0]  # (n, K)
    o1 = pv.outside[0]  # (n, K): Bergemann-Valimaki's O_i
    pi_root = float(prior @ (w1 - m1.sum(axis=0)))
    priors = [ag.prior[None, :] for ag in env.agents]
    root_pay = [_interim_over_others(m1[i], counts, i, priors)[0] for i in range(n)]
    root_out = [_interim_over_others(o1[i], counts, i, priors)[0] for i in range(n)]
    worst = np.empty(n)
    worst_type = []
    for i, ag in enumerate(env.agents):
        support = np.flatnonzero(ag.prior > 0) if worst_over == "support" else np.arange(ag.n_types)
        rent = root_pay[i] - root_out[i]  # participation slack against O_i (the payoff itself when O_i = 0)
        t = int(support[np.argmin(rent[support])])
        worst[i] = rent[t]
        worst_type.append(ag.types[t])
    slack = float(worst.sum() + pi_root)
    feasible = slack >= -tolerances.SURPLUS
    zr_idx = zero_rent_types(env, pv)
    zr = {name: [env.agents[env.agent_index(name)].types[t] for t in ts] for name, ts in zr_idx.items()}
    counted = [ag.prior > 0 if worst_over == "support" else np.ones(ag.n_types, dtype=bool) for ag in env.agents]
    diverse = all(any(counted[i][t] for t in zr_idx[ag.name]) for i, ag in enumerate(env.agents))
    cond = FeeCondition(
        env=env,
        deficit=-pi_root,
        root_payoffs=root_pay,
        worst_over=worst_over,
        worst_payoff=worst,
        worst_type=worst_type,
        slack=slack,
        feasible=bool(feasible),
        zero_rent=zr,
        diverse_preferences=bool(diverse),
        root_outside=root_out,
        has_outside=bool(np.max(np.abs(pv.outside)) > tolerances.ZERO_RENT * max(1.0, float(np.max(np.abs(pv.W))))),
    )
    if interim:
        cond.interim_slack = _interim_slack(env, pv)
        cond.interim_feasible = bool(cond.interim_slack.min() >= -tolerances.SURPLUS)
    verdict = "holds" if feasible else "FAILS"
    bound = "worst-off participation slacks" if cond.has_outside else "worst-off payoffs"
    what = bound + (" (pivot payoff minus the outside value O_i)" if cond.has_outside else "")
    msg = (
        f"Yoon's condition (*) {verdict}: pivot deficit {-pi_root:.6g} vs {what} "
        + " + ".join(f"{ag.name}[{t}] {v:.6g}" for ag, t, v in zip(env.agents, worst_type, worst, strict=True))
        + f" = {worst.sum():.6g}; slack {slack:.6g}"
    )
    if diverse:
        where = "in its prior's support" if worst_over == "support" else "(of any prior probability)"
        msg += (
            f"; every agent has an absorbing zero-rent type {where} ("
            + ", ".join(f"{k}: {v}" for k, v in zr.items() if v)
            + f"): diverse preferences (Bergemann-Välimäki 2010, Assumption 1(i)) make the {bound} zero, "
            + (
                "so lump-sum fees cannot cover the deficit, whatever the discount factor (Yoon 2015, section 2.3; "
                "Yoon 2021, Theorem 6)"
                if pi_root < -tolerances.SURPLUS
                else "so no lump-sum fee can be charged (the pivot needs none: it has no deficit)"
            )
        )
    if interim:
        msg += f"; interim condition {'holds' if cond.interim_feasible else 'FAILS'} (smallest slack "
        msg += f"{float(cond.interim_slack.min()):.6g})"
    cond.message = msg
    return cond


def _interim_slack(env: Environment, pv: PivotValues) -> np.ndarray:
    r"""Yoon's interim slack :math:`\Pi^{piv}(h) + \sum_i \min_{\theta_i} E[M_i - O_i | h, \theta_i]` at the root and
    after every previous profile (per period for a finite horizon)."""
    n = env.n_agents
    counts = env.type_counts
    joint_all = joint_transition(env)  # (P * K, K) beliefs after each previous profile, per allocation table
    marg_all = next_marginals(env)  # (P * K, K_j): beliefs about j after each profile
    k = env.n_profiles
    roots = [ag.prior[None, :] for ag in env.agents]
    out = []
    periods = pv.periods
    for t in range(periods):  # periods (one when stationary)
        table = min(max(t - 1, 0), env.n_allocation_periods - 1)  # beliefs in period t + 1 follow period t's table
        band = slice(table * k, (table + 1) * k)
        joint, marg = joint_all[band], [m[band] for m in marg_all]  # the table of the previous period
        surplus_flow = pv.W[t] - pv.marginal[t].sum(axis=0)
        rent = pv.marginal[t] - pv.outside[t]  # (n, K): M_i - O_i, the participation slack at every node
        if t == 0:
            lows = sum(_interim_over_others(rent[i], counts, i, roots).min(axis=1) for i in range(n))
            out.append(np.atleast_1d(env.prior_profile() @ surplus_flow + lows))
        if periods == 1 or t > 0:
            lows = sum(_interim_over_others(rent[i], counts, i, marg).min(axis=1) for i in range(n))
            out.append(joint @ surplus_flow + lows)
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------- fees
@dataclass
class FeeResult(VerifiedOnSpace):
    r"""The pivot mechanism plus lump-sum fees, verified (result contract: :mod:`mechlp.model.answer`).

    Attributes
    ----------
    status : str
        ``"feasible"`` (condition holds and the mechanism passed the verifier), ``"infeasible"`` (the
        condition fails: the mechanism shown charges the largest acceptable fees and still runs a deficit),
        ``"verification_failed"``.
    mode, split : str
    fees : ndarray
        ``"ex_ante"``: shape ``(n,)``, the first-period fee per agent. ``"interim"``: shape ``(n, n_hist)``, the
        flow fee :math:`F_i(h)` charged at every node of history ``h``.
    fee_values : ndarray or None
        ``"interim"``: :math:`\Phi_i(h) = L_i(h) = \min_{\theta_i} [\bar U^{piv}_i(\theta_i|h) -
        \bar O_i(\theta_i|h)]`, the expected discounted fees from ``h`` on.
    condition : FeeCondition
    pivot : PivotResult
    mechanism : Mechanism
    surplus : ndarray
        :math:`\Pi(h)` of the fee mechanism at every history.
    verification : Verification
        ``verify(mechanism, ic="bayesian", ir="interim", budget=mode, outside_values=O)`` with Bergemann and
        Välimäki's outside values :math:`O_i` at every node
        (:func:`~mechlp.constructions.pivot.pivot_outside_on_space`; zero in Yoon's trade models).
    verification_ex_post : Verification
        ``verify(mechanism, ic="ex_post", ir="interim", budget=mode, outside_values=O)`` (fees do not touch ex
        post IC).
    message : str
    certificate : Verification
        (property) ``verification``.
    space, env : (properties) the space and environment of ``mechanism``.
    timings : dict
        Seconds: ``"pivot"`` (when computed here), ``"fees"``, ``"verify"``.
    size : dict
        (property) ``histories`` and ``nodes``.

    JSON (:meth:`to_dict`): the contract's keys plus ``mode``, ``split``, ``fees`` and ``fee_values`` (arrays as
    lists), ``condition`` (:meth:`FeeCondition.to_dict`), ``pivot_surplus``, ``verification_ex_post`` and
    ``notes``. :meth:`fees_frame`: ``when`` is ``"first period"`` (ex ante) or the history in words (interim,
    with the column ``expected_fees``, :math:`\Phi_i(h)`).
    """

    status: str
    mode: str
    split: str
    fees: np.ndarray
    condition: FeeCondition
    pivot: PivotResult
    mechanism: Mechanism
    surplus: np.ndarray
    verification: Verification
    verification_ex_post: Verification
    fee_values: np.ndarray | None = None
    message: str = ""
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def space(self) -> StateSpace:
        return self.mechanism.space

    @property
    def env(self) -> Environment:
        return self.mechanism.space.env

    def _answer_fees(self) -> dict[str, Any]:
        names = np.array([ag.name for ag in self.env.agents], dtype=object)
        if self.mode == "ex_ante":
            return {"agent": names, "when": np.full(names.size, "first period", dtype=object), "fee": self.fees}
        n_hist = self.space.n_hist
        where = self.space.describe_histories()
        return {
            "agent": np.repeat(names, n_hist),
            "when": np.tile(where, names.size),
            "fee": np.asarray(self.fees, dtype=float).reshape(-1),
            "expected_fees": np.asarray(self.fee_values, dtype=float).reshape(-1),
        }

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "split": self.split,
            "fees": self.fees,
            "fee_values": self.fee_values,
            "condition": self.condition.to_dict(),
            "pivot_surplus": float(self.pivot.surplus[0]),
            "verification_ex_post": self.verification_ex_post,
            "notes": list(self.notes),
        }


def lump_sum_fees(
    env: Environment,
    mode: str = "ex_ante",
    *,
    split: str = "tight",
    worst_over: str = "all",
    space: StateSpace | None = None,
    pivot: PivotResult | None = None,
) -> FeeResult:
    r"""The dynamic pivot with Yoon's lump-sum fees, verified with Bayesian and ex post IC, interim IR against
    Bergemann and Välimäki's outside values :math:`O_i` and ``mode`` budget balance.

    Each fee is the largest the agent accepts: its worst-off type's participation slack
    :math:`\min_{\theta_i} [\bar U^{piv}_i(\theta_i|h) - \bar O_i(\theta_i|h)]` (at the root ex ante, at every
    history for ``"interim"``; module docstring). With :math:`O_i = 0` (Yoon's trade models) this is the
    worst-off payoff of Yoon (2015), condition (*).

    Parameters
    ----------
    env : Environment
    mode : {"ex_ante", "interim"}
        First-period fees (Yoon 2015, condition (*)) or per-history fees (Yoon 2015, section 3; needs kernels
        that do not depend on the action, as in Yoon 2015, so that fees cannot be moved by own reports).
    split : {"tight", "balanced"}
        ``"ex_ante"`` only: charge the worst-off slacks :math:`L_i` (largest surplus) or :math:`L_i -
        \text{slack}/n` (zero expected surplus). ``"interim"`` always charges :math:`L_i(h)`.
    worst_over : {"all", "support"}
        ``"ex_ante"`` only: types over which :math:`L_i` is taken (module docstring).
    space : StateSpace, optional
        Default as in :func:`~mechlp.constructions.pivot.dynamic_pivot`.
    pivot : PivotResult, optional
        A precomputed pivot on ``space`` (its own verification is reused).

    Returns
    -------
    FeeResult
    """
    env.require_independent("Yoon's (2015) lump-sum fees")
    mode = parse_notion("budget", mode, allowed=MODES, argument="mode")
    check_choice("split", split, SPLITS)
    if mode == "interim" and split != "tight":
        raise ValueError(
            "split='balanced' is available for ex ante fees only: an interim split that depends on the whole "
            "history would let an agent move its own future fees"
        )
    t0 = time.perf_counter()
    piv = dynamic_pivot(env, space) if pivot is None else pivot
    timings = {"pivot": time.perf_counter() - t0} if pivot is None else {}
    t1 = time.perf_counter()
    sp_ = piv.space
    n = env.n_agents
    cond = fee_condition(env, interim=(mode == "interim"), worst_over=worst_over, values=piv.values)
    outside = pivot_outside_on_space(sp_, piv.values)  # (n, n_nodes): O_i at every node (B-V participation)
    x = piv.mechanism.transfers.copy()
    notes: list[str] = []
    fee_values = None
    if mode == "ex_ante":
        fees = cond.worst_payoff.copy()
        if split == "balanced":
            fees = fees - cond.slack / n
        root_nodes = np.flatnonzero(sp_.node_hist == 0)
        x[:, root_nodes] += fees[:, None]
        if worst_over == "support":
            short = [
                f"{ag.name}[{ag.types[t]}]"
                for i, ag in enumerate(env.agents)
                for t in np.flatnonzero(
                    (ag.prior == 0) & (cond.root_payoffs[i] - cond.root_outside[i] < fees[i] - tolerances.FEASIBILITY)
                )
            ]
            if short:
                notes.append(
                    "fees are bounded by the worst payoff on the prior's support (Yoon's condition (*)); types of "
                    f"prior probability zero {short} would not participate at the root, and the verifier checks "
                    "them too: use worst_over='all' for a mechanism that passes every row"
                )
    else:
        if env.action_dependent and n > 1:
            raise ValueError(
                "interim fees need kernels that do not depend on the action (Yoon 2015's setting): otherwise an "
                "agent's report moves the others' type distribution and, through it, its own future fees"
            )
        ubar = piv.mechanism.interim_utilities()
        obar = [interim_expectation(sp_, i, outside[i]) for i in range(n)]  # E[O_i | h, theta_i]
        phi = np.stack([(u - o).min(axis=1) for u, o in zip(ubar, obar, strict=True)])  # (n, n_hist): L_i(h)
        child = np.asarray(sp_.child_hist)
        phi_child = np.where(child[None, :] >= 0, phi[:, np.maximum(child, 0)], 0.0)  # (n, n_nodes)
        fees = phi - env.discount * expectation(sp_, phi_child)
        x += fees[:, sp_.node_hist]
        fee_values = phi
    mech = Mechanism(sp_, x)
    surplus = mech.surplus()
    timings["fees"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    ver = verify(mech, ic="bayesian", ir="interim", budget=mode, outside_values=outside)
    ver_xp = verify(mech, ic="ex_post", ir="interim", budget=mode, outside_values=outside)
    timings["verify"] = time.perf_counter() - t2
    cond_ok = cond.feasible if mode == "ex_ante" else bool(cond.interim_feasible)
    if not cond_ok:
        status = "infeasible"
    elif ver.ok and ver_xp.ok:
        status = "feasible"
    else:
        status = "verification_failed"
    where = f"surplus at the root {float(surplus[0]):.6g}"
    if mode == "interim":
        where += f", at least {float(surplus.min()):.6g} at every history"
    msg = {
        "feasible": f"{mode.replace('_', ' ')} budget balance with lump-sum fees: FEASIBLE; {where}; "
        f"verified (Bayesian and ex post IC, interim IR, {mode} budget)",
        "infeasible": f"{mode.replace('_', ' ')} budget balance with lump-sum fees: INFEASIBLE; even the largest "
        f"acceptable fees leave a surplus of {float(surplus.min() if mode == 'interim' else surplus[0]):.6g}",
        "verification_failed": "the fee mechanism fails the independent verification:\n" + ver.summary(),
    }[status]
    res = FeeResult(
        status=status,
        mode=mode,
        split=split,
        fees=fees,
        condition=cond,
        pivot=piv,
        mechanism=mech,
        surplus=surplus,
        verification=ver,
        verification_ex_post=ver_xp,
        fee_values=fee_values,
        message=msg + "\n" + cond.message,
        notes=notes,
        timings=timings,
    )
    return res


# ---------------------------------------------------------------------------------------------- critical delta
@dataclass
class CriticalDiscount(Answer):
    r"""Where the slack of Yoon's condition changes sign as the discount factor moves (result contract:
    :mod:`mechlp.model.answer`; no space, mechanism or verification).

    Attributes
    ----------
    status : str
        (property) ``"bracketed"`` (a sign change was found and bisected), ``"feasible"`` (non-negative slack on
        the whole grid) or ``"infeasible"`` (negative on the whole grid).
    grid : ndarray
        Discount factors scanned.
    slack : ndarray
        Slack at each grid point.
    brackets : list of (float, float)
        After bisection, intervals of width at most ``tol`` that contain a sign change (one per change seen
        on the grid).
    critical : list of float
        Midpoints of ``brackets``.
    directions : list of str
        ``"becomes feasible"`` when the slack turns non-negative as :math:`\delta` rises, else
        ``"becomes infeasible"``.
    monotone : bool
        The slack is non-decreasing over every evaluation, grid and bisection points (checked, not assumed;
        :func:`mechlp.model.bisection.scan_and_bisect` with ``tolerances.MONOTONE``).
    feasible_everywhere, infeasible_everywhere : bool
        No sign change on the grid and the sign.
    diverse_preferences : bool
        Some scanned environment had zero-rent absorbing types for every agent (see :class:`FeeCondition`).
    message : str
    timings : dict
        Seconds: ``"scan"`` (grid and bisection).
    size : dict
        (property) ``grid`` points and ``evaluations``.

    JSON (:meth:`to_dict`): the contract's keys plus ``grid``, ``slack``, ``brackets``, ``critical``,
    ``directions``, ``monotone``, ``feasible_everywhere``, ``infeasible_everywhere``, ``diverse_preferences``.
    """

    grid: np.ndarray
    slack: np.ndarray
    brackets: list[tuple[float, float]]
    critical: list[float]
    directions: list[str]
    monotone: bool
    feasible_everywhere: bool
    infeasible_everywhere: bool
    diverse_preferences: bool
    evaluations: int
    message: str
    timings: dict = field(default_factory=dict)

    verification = None
    certificate = None

    @property
    def status(self) -> str:
        if self.brackets:
            return "bracketed"
        return "feasible" if self.feasible_everywhere else "infeasible"

    @property
    def size(self) -> dict:
        return {"grid": int(self.grid.size), "evaluations": int(self.evaluations)}

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "grid": [float(d) for d in self.grid],
            "slack": [float(s) for s in self.slack],
            "brackets": [[float(a), float(b)] for a, b in self.brackets],
            "critical": [float(c) for c in self.critical],
            "directions": self.directions,
            "monotone": bool(self.monotone),
            "feasible_everywhere": bool(self.feasible_everywhere),
            "infeasible_everywhere": bool(self.infeasible_everywhere),
            "diverse_preferences": bool(self.diverse_preferences),
        }


def critical_discount(
    env_factory: Callable[[float], Environment],
    lo: float = 0.01,
    hi: float = 0.99,
    tol: float = tolerances.FEE_BISECTION_WIDTH,
    *,
    grid: int = 41,
    mode: str = "ex_ante",
    worst_over: str = "all",
) -> CriticalDiscount:
    r"""Critical discount factor(s) of Yoon's condition by a grid scan and bisection.

    Parameters
    ----------
    env_factory : callable
        ``delta -> Environment`` (e.g. ``lambda d: yoon_binary(0.7, d)``).
    lo, hi : float
        Interval of discount factors to scan, ``lo < hi`` (default 0.01 to 0.99, as ``critical_delta``).
    tol : float
        Width of the final brackets.
    grid : int
        Number of grid points (at least 2). The slack is evaluated there first; every sign change between
        neighbouring points is bisected, and monotonicity is checked over all evaluations, not assumed
        (:func:`mechlp.model.bisection.scan_and_bisect`). Sign changes that cancel
        between two grid points are not seen: refine the grid when the slack is not monotone.
    mode : {"ex_ante", "interim"}
        Slack of condition (*), or the smallest interim slack over histories.
    worst_over : {"all", "support"}
        Types over which the worst-off payoff is taken (ex ante).

    Returns
    -------
    CriticalDiscount

    Raises
    ------
    ValueError
        For an unknown ``mode``, ``lo >= hi``, ``tol <= 0`` or fewer than 2 grid points.
    """
    mode = parse_notion("budget", mode, allowed=MODES, argument="mode")
    diverse = False
    count = 0

    def slack(d: float) -> float:
        nonlocal diverse, count
        count += 1
        c = fee_condition(env_factory(float(d)), interim=(mode == "interim"), worst_over=worst_over)
        diverse = diverse or c.diverse_preferences
        return c.slack if mode == "ex_ante" else float(c.interim_slack.min())

    t0 = time.perf_counter()
    scan = scan_and_bisect(slack, lo, hi, tol, grid, threshold=-tolerances.SURPLUS)  # validates lo, hi, tol, grid
    deltas, vals = scan.grid, scan.values
    brackets, crit, dirs, monotone = scan.brackets, scan.critical, scan.directions, scan.monotone
    ok = vals >= -tolerances.SURPLUS
    feas_all = bool(ok.all())
    infeas_all = bool((~ok).all())
    if feas_all:
        msg = f"the slack is non-negative on the whole grid [{lo:g}, {hi:g}]: balance is reachable throughout"
    elif infeas_all:
        msg = f"the slack is negative on the whole grid [{lo:g}, {hi:g}]: no discount factor there balances the budget"
    else:
        msg = "; ".join(
            f"{d} at delta = {c:.10f} (bracket [{a:.10f}, {b:.10f}])"
            for d, c, (a, b) in zip(dirs, crit, brackets, strict=True)
        )
        if len(brackets) > 1:
            msg = f"{len(brackets)} sign changes: " + msg
    if not monotone:
        msg += "; the slack is NOT monotone in delta over the evaluations"
    if diverse:
        msg += (
            "; diverse preferences: every agent has an absorbing zero-rent type among the types that count, so "
            "lump-sum fees cannot cover a deficit (Yoon 2015, section 2.3; Yoon 2021, Theorem 6)"
        )
    seconds = {"scan": time.perf_counter() - t0}
    return CriticalDiscount(
        deltas, vals, brackets, crit, dirs, monotone, feas_all, infeas_all, diverse, count, msg, seconds
    )

r"""The team mechanism and its balanced version (Athey and Segal 2007, sections 4 and 5).

Notation follows docs/design.md section 1: transfers :math:`x_i(h, \theta)` are payments *from* agent :math:`i`
*to* the designer (Athey and Segal write transfers :math:`\psi_i = -x_i` *to* the agent). A node
:math:`g = (h, \theta)` pairs a history with the current report profile; :math:`P(\theta|h)` is the belief at
:math:`h` under truth-telling (a product over agents), and
:math:`w_i(\theta) = \sum_a p(a|\theta) v_i(\theta_i, a)` is agent :math:`i`'s expected flow value.

Team mechanism (Athey and Segal 2007, section 4)
    Every agent is paid the others' flow values, :math:`x^M_i(h, \theta) = -\sum_{j \ne i} w_j(\theta)`, so
    each agent's discounted payoff is the total surplus. With an efficient allocation no report can raise
    it: truth-telling is incentive compatible, even within-period ex post (their Proposition 1).

Incentive payments (Athey and Segal 2007, eq. (5.2); their footnote 15 and eq. (6.1) for the Markov form)
    For a base mechanism with payments :math:`x_j` let
    :math:`T_j(g) = -x_j(g) + \delta \sum_{\theta'} P(\theta'|\theta_g)\, T_j(\text{child}(g, \theta'))` be the
    expected discounted transfer *to* :math:`j` from node :math:`g` on. Agent :math:`j`'s incentive payment at
    history :math:`h` after reporting :math:`\theta_j` is the change in that expectation caused by the report:

    .. math::
       \gamma_j(h, \theta_j) = \sum_{\theta_{-j}} P(\theta_{-j}|h)\, T_j(h, (\theta_j, \theta_{-j}))
                              - \sum_{\theta} P(\theta|h)\, T_j(h, \theta).

    (The paper's factor :math:`\delta^{-t}` and the transfers before period :math:`t` cancel here because
    :math:`T_j` is already measured in period-:math:`t` units from :math:`h` on.) For the team mechanism
    :math:`T_j = \sum_{k \ne j} V_k` with :math:`V_k` the continuation value of agent :math:`k`'s flow values.

Balanced transfers (Athey and Segal 2007, eq. (5.1))
    Each agent receives its own incentive payment and pays an equal share of everyone else's:

    .. math::
       x^B_i(h, \theta) = -\gamma_i(h, \theta_i) + \frac{1}{n-1} \sum_{j \ne i} \gamma_j(h, \theta_j),
       \qquad \sum_i x^B_i(h, \theta) = 0 .

Why it works, in this library's terms (a finite restatement of their Claims 1 and 2)
    With independent types the belief :math:`P_j(\cdot|h)` about a truthful agent :math:`j` is correct whatever
    agent :math:`i` reported, so the expected value of :math:`\gamma_j` is zero at every history and the shares
    of the others' payments do not move agent :math:`i`'s expected payoff. Agent :math:`i`'s own payments
    telescope, :math:`\gamma_i(h, r) = E[-x_i(h, (r, \cdot))] + \delta E[M_i(h')] - M_i(h)` with
    :math:`M_i(h) = \sum_\theta P(\theta|h) T_i(h, \theta)`, to the base mechanism's transfers along the
    realised path minus the constant :math:`M_i(h)`. Hence, at every history and for every true type :math:`t`
    and report :math:`r`, the Bayesian IC slack of the balanced mechanism *equals* that of the base mechanism,
    and the interim utilities satisfy

    .. math::
       \bar U^B_i(t|h) = \bar U^{base}_i(t|h) + \bar X^{base}_i(h), \qquad
       \bar X^{base}_i(h) = -M_i(h) \text{ (the base payments expected at } h\text{)}.

    For the team mechanism this is :math:`\bar U^B_i(t|h) = E[V_i \mid h, t] + \gamma_i(h, t)`. Nothing bounds
    it below by zero: **the balanced team mechanism is Bayesian IC and exactly budget balanced, but it does not
    promise individual rationality** (Athey and Segal 2007 obtain participation only in section 6, for patient
    agents in ergodic Markov games, by adding constant side payments;
    :func:`mechlp.constructions.participation.bonded_team` builds that). Within-period ex post IC is lost too:
    :math:`\gamma_i(h, r)` averages over the others' current reports.

Exact zero budget
    In floating point :math:`-\gamma_1 + (\gamma_2 + \gamma_3)/2 + \dots` does not cancel exactly. The balanced
    transfers of agents :math:`1..n-1` are rounded to a common dyadic grid :math:`2^e` (about :math:`2^{-51}`
    times :math:`n` times the largest transfer) and agent :math:`n` pays minus their sum. Every partial sum
    of grid multiples this small is exact in binary64, so :math:`\sum_i x^B_i(h, \theta)` is exactly ``0.0`` at
    every node, in any order of summation, and in rational arithmetic. The rounding moved no transfer by more
    than :attr:`TeamResult.rounding` (reported; ~1e-15 on the examples).

Everything is array arithmetic over all histories at once; the only loops run over agents (and, inside
:func:`mechlp.model.beliefs.continuation_values`, over depth levels of a tree). Beliefs, continuation values and
the expectations over them are those of :mod:`mechlp.model.beliefs`, in floats or exact fractions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, verify
from mechlp.model import tolerances
from mechlp.model.answer import VerifiedOnSpace
from mechlp.model.beliefs import continuation_values, expectation, interim_expectation
from mechlp.model.environment import Environment
from mechlp.model.exact import Numbers
from mechlp.model.mechanism import Mechanism
from mechlp.model.policy import efficient_values
from mechlp.model.spaces import HistoryTree, MarkovSpace, StateSpace, space_for
from mechlp.model.transfers import redistribute

__all__ = [
    "TeamResult",
    "team_transfers",
    "incentive_payments",
    "balance_transfers",
    "balanced_team",
    "exact_zero_sum",
]


# ---------------------------------------------------------------------------------------------- pieces
def team_transfers(space: StateSpace) -> np.ndarray:
    r"""Payments of the team mechanism at every node: :math:`x^M_i(h, \theta) = -\sum_{j \ne i} w_j(\theta)`.

    Athey and Segal (2007), section 4: every agent is paid the other agents' utilities, so that its own
    discounted payoff is the total surplus.

    Parameters
    ----------
    space : StateSpace
        History tree or Markov space; the transfers do not depend on the history.

    Returns
    -------
    ndarray, shape (n_agents, n_nodes)
        Payments to the designer (negative: the designer pays).
    """
    flow = space.node_flow_values()  # (n, N): w_j(theta) under the allocation of the node's period
    return -(flow.sum(axis=0, keepdims=True) - flow)  # minus sum_{j != i} w_j


def incentive_payments(space: StateSpace, transfers: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    r"""Athey and Segal's incentive payments :math:`\gamma_j(h, \theta_j)` of a base mechanism (their eq. (5.2)).

    .. math::
       T_j(g) = -x_j(g) + \delta \sum_{\theta'} P(\theta'|\theta_g)\, T_j(\text{child}(g, \theta')), \qquad
       \gamma_j(h, \theta_j) = \sum_{\theta_{-j}} P(\theta_{-j}|h)\, T_j(h, (\theta_j, \theta_{-j}))
                               - \sum_{\theta} P(\theta|h)\, T_j(h, \theta).

    Parameters
    ----------
    space : StateSpace
        The beliefs :math:`P(\cdot|h)` and the kernel are those of ``space`` (and of its environment).
    transfers : array_like, shape (n_agents, n_nodes)
        Base payments :math:`x_j(g)` to the designer (e.g. :func:`team_transfers`).

    Returns
    -------
    gamma : list of ndarray
        Per agent ``j`` an array ``(n_hist, K_j)``: :math:`\gamma_j(h, \theta_j)`, positive when the report
        raises the expected transfer *to* ``j``. Defined for every type, also those of probability zero at
        ``h``. :math:`\sum_{\theta_j} P_j(\theta_j|h) \gamma_j(h, \theta_j) = 0` at every ``h``.
    gamma_nodes : ndarray, shape (n_agents, n_nodes)
        :math:`\gamma_j(h_g, \theta_{g,j})` at every node ``g``.
    """
    space.env.require_independent("the Athey-Segal incentive payments")
    env = space.env
    x = np.asarray(transfers, dtype=float)
    if x.shape != (env.n_agents, space.n_nodes):
        raise ValueError(f"transfers has shape {x.shape}; expected {(env.n_agents, space.n_nodes)} (agents x nodes)")
    return _gamma(space, Numbers(env, exact=False), -x)


def _gamma(space: StateSpace, nums: Numbers, to_agent: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`incentive_payments` from the flow transfers ``to_agent = -x`` (n, N), in ``nums``'s arithmetic."""
    env = space.env
    t_cont = continuation_values(space, to_agent, nums)  # (n, N): expected discounted transfers TO each agent
    own = env.profile_types()[space.node_profile]  # (N, n)
    gamma: list[np.ndarray] = []
    gamma_nodes = nums.zeros((env.n_agents, space.n_nodes))
    for j in range(env.n_agents):
        gj = interim_expectation(space, j, t_cont[j], nums) - expectation(space, t_cont[j], nums)[:, None]
        gamma.append(gj)
        gamma_nodes[j] = gj[space.node_hist, own[:, j]]
    return gamma, gamma_nodes


def exact_zero_sum(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Round agents ``0..n-2`` to a dyadic grid and let the last agent pay minus their sum (module docstring,
    "Exact zero budget"): afterwards ``x.sum(axis=0)`` is exactly ``0.0`` at every node.

    Parameters
    ----------
    x : ndarray, shape (n_agents, n_nodes)
        Payments whose columns sum to zero up to rounding.

    Returns
    -------
    x : ndarray
        The adjusted payments.
    grid : float
        The grid spacing.
    rounding : float
        The largest change made to any payment.
    """
    n = x.shape[0]
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    if scale == 0.0:
        return np.zeros_like(x), 1.0, 0.0
    # n * scale * 2 < 2**e; grid 2**(e - 52): every partial sum of n grid multiples of size <= scale (plus the
    # rounding) stays below 2**52 grid steps, hence is exact in binary64.
    e = math.frexp(2.0 * n * scale)[1]
    grid = math.ldexp(1.0, e - 52)
    out = np.empty_like(x)
    out[:-1] = np.round(x[:-1] / grid) * grid
    out[-1] = -out[:-1].sum(axis=0)
    return out, grid, float(np.max(np.abs(out - x)))


def balance_transfers(space: StateSpace, transfers: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], float, float]:
    r"""Athey and Segal's balanced transfers (their eq. (5.1)) of any base mechanism on ``space``.

    .. math::
       x^B_i(h, \theta) = -\gamma_i(h, \theta_i) + \frac{1}{n-1} \sum_{j \ne i} \gamma_j(h, \theta_j)

    with :math:`\gamma` from :func:`incentive_payments` (the redistribution of
    :func:`mechlp.model.transfers.redistribute`, shared with Lamba's ex post rebalancing). With independent
    types the Bayesian IC slack of every (history, true type, report) row is the base mechanism's, and
    :math:`\sum_i x^B_i = 0` exactly at every node (see the module docstring for the dyadic rounding that makes
    the zero exact in floating point).

    Parameters
    ----------
    space : StateSpace
    transfers : array_like, shape (n_agents, n_nodes)
        Base payments to the designer.

    Returns
    -------
    x : ndarray, shape (n_agents, n_nodes)
        Balanced payments to the designer.
    gamma : list of ndarray
        The incentive payments, per agent ``(n_hist, K_j)``.
    grid : float
        Spacing of the dyadic grid the transfers were rounded to.
    rounding : float
        Largest change the rounding made to any transfer.

    Raises
    ------
    ValueError
        With a single agent (nobody to charge the incentive payment to).
    """
    x, gamma, _, grid, rounding = _balance(space, transfers)
    return x, gamma, grid, rounding


def _balance(space: StateSpace, transfers: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, float, float]:
    """:func:`balance_transfers` that also returns the node-level incentive payments."""
    n = space.env.n_agents
    if n < 2:
        raise ValueError("balancing needs at least two agents: the incentive payments are charged to the others")
    gamma, g_nodes = incentive_payments(space, transfers)
    raw = redistribute(-g_nodes)  # -gamma_i + (1/(n-1)) sum_{j != i} gamma_j
    x, grid, rounding = exact_zero_sum(raw)
    return x, gamma, g_nodes, grid, rounding


# ---------------------------------------------------------------------------------------------- exact version
def _exact_balanced_team(space: StateSpace) -> tuple[np.ndarray, list[np.ndarray]]:
    r"""The balanced team transfers and incentive payments in rational arithmetic.

    Model numbers are read by :class:`mechlp.model.exact.Numbers` (decimals as written: 0.95 is 19/20); the formulas
    are those of :func:`team_transfers`, :func:`incentive_payments` and :func:`balance_transfers`, so
    :math:`\sum_i x^B_i = 0` holds exactly without rounding.
    """
    env = space.env
    nums = Numbers(env, exact=True)
    flow = nums.flows()  # (n, P * K)
    to_agent = (flow.sum(axis=0)[None, :] - flow)[:, space.node_key]  # team transfers to each agent
    gamma, g_nodes = _gamma(space, nums, to_agent)
    x = redistribute(-g_nodes)  # exact: division of fractions by the integer n - 1
    return x, gamma


# ---------------------------------------------------------------------------------------------- result
@dataclass
class TeamResult(VerifiedOnSpace):
    """Result of :func:`balanced_team` (result contract: :mod:`mechlp.model.answer`).

    Attributes
    ----------
    space : StateSpace
        The history tree or Markov space the mechanisms live on.
    mechanism : Mechanism
        The balanced team mechanism (Athey and Segal 2007, eq. (5.1)): payments to the designer at every node,
        summing to exactly zero.
    team : Mechanism
        The (unbalanced) team mechanism, :math:`x^M_i = -\\sum_{j \\ne i} w_j`.
    incentive : Mechanism
        The incentive payments alone, :math:`x_i = -\\gamma_i` (a dynamic AGV scheme): Bayesian IC, expected
        surplus zero at every history, not balanced node by node.
    gamma : list of ndarray
        Per agent ``(n_hist, K_i)``: :math:`\\gamma_i(h, \\theta_i)`.
    gamma_nodes : ndarray, shape (n_agents, n_nodes)
    budget_residual : float
        ``max |sum_i x_i|`` over the nodes of :attr:`mechanism` (``0.0`` by construction).
    grid, rounding : float
        Dyadic grid of the exact-zero rounding and the largest change it made.
    verification : Verification or None
        :func:`mechlp.audit.verifier.verify` of :attr:`mechanism` with ``ic="bayesian"``, the chosen IR family and
        ``budget="ex_post"``. IR is checked and reported, not promised.
    notes : list of str
    exact_transfers : ndarray of Fraction or None
        With ``exact=True``: the balanced transfers in rational arithmetic (also attached to
        :attr:`mechanism` as ``exact_transfers``, which the exact verifier reads); ``None`` otherwise.
    exact_gamma : list of ndarray of Fraction or None
        With ``exact=True``: :math:`\\gamma_i(h, \\theta_i)` in rationals.
    status : str
        (property) ``"verified"`` (IC and ex post budget balance pass, :attr:`ok`), ``"verification_failed"`` or
        ``"not_verified"`` (``check=False``).
    message : str
        (property) One line: what was built and the status.
    surplus : ndarray
        (property) :math:`\\Pi(h)` of :attr:`mechanism` (zero up to rounding: the budget balances node by node).
    certificate : Verification or None
        (property) ``verification``.
    timings : dict
        Seconds: ``"build"``, ``"exact"`` (with ``exact=True``), ``"verify"``.
    size : dict
        (property) ``histories`` and ``nodes``.

    JSON (:meth:`to_dict`): the contract's keys plus ``budget_residual``, ``grid``, ``rounding``, ``gamma`` (per
    agent, ``(n_hist, K_i)``) and ``notes``.
    """

    space: StateSpace
    mechanism: Mechanism
    team: Mechanism
    incentive: Mechanism
    gamma: list[np.ndarray]
    gamma_nodes: np.ndarray
    budget_residual: float
    grid: float
    rounding: float
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)
    exact_transfers: np.ndarray | None = None
    exact_gamma: list[np.ndarray] | None = None
    timings: dict = field(default_factory=dict)

    @property
    def env(self) -> Environment:
        return self.space.env

    @property
    def status(self) -> str:
        if self.verification is None:
            return "not_verified"
        return "verified" if self.ok else "verification_failed"

    @property
    def message(self) -> str:
        verdict = {
            "verified": "verified (Bayesian IC and ex post budget balance)",
            "verification_failed": "VERIFICATION FAILED",
            "not_verified": "not verified",
        }[self.status]
        return (
            f"balanced team mechanism (Athey-Segal 2007) on the {self.space.kind} space "
            f"({self.space.n_hist:,} histories): {verdict}"
        )

    @property
    def surplus(self) -> np.ndarray:
        return self.mechanism.surplus()

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "budget_residual": float(self.budget_residual),
            "grid": float(self.grid),
            "rounding": float(self.rounding),
            "gamma": list(self.gamma),
            "notes": list(self.notes),
        }

    @property
    def ic_violation(self) -> float | None:
        """Largest Bayesian IC violation found by the verifier (``None`` when not verified)."""
        return None if self.verification is None else float(self.verification.max_violation["ic"])

    @property
    def ir_violation(self) -> float | None:
        """Largest IR violation found by the verifier; positive values are expected (IR is not promised)."""
        return None if self.verification is None else float(self.verification.max_violation["ir"])

    @property
    def ok(self) -> bool | None:
        """IC and ex post budget balance pass the verification (IR is not part of the promise)."""
        if self.verification is None:
            return None
        v = self.verification
        return bool(v.max_violation["ic"] <= v.tol and v.max_violation["budget"] <= v.tol)

    def summary(self) -> str:
        """A few readable lines: what was built, the budget residual, IC, IR and the notes."""
        sp = self.space
        where = (
            "Markov space (stationary, infinite horizon)" if sp.kind == "markov" else f"history tree, T={sp.horizon}"
        )
        lines = [
            f"balanced team mechanism (Athey-Segal 2007, eqs. 5.1-5.2) for {self.env!r}",
            f"  space: {where}; {sp.n_hist:,} histories, {sp.n_nodes:,} nodes",
            f"  ex post budget: max |sum_i x_i| = {self.budget_residual!r} (dyadic grid {self.grid:.3g}, "
            f"rounding moved transfers by at most {self.rounding:.3g})",
        ]
        for i, ag in enumerate(self.env.agents):
            g = self.gamma[i]
            lines.append(f"  gamma[{ag.name}]: range [{g.min():.6g}, {g.max():.6g}]")
        if self.verification is not None:
            v = self.verification
            lines.append(
                f"  IC (bayesian): {'ok' if v.max_violation['ic'] <= v.tol else 'VIOLATED'}, "
                f"max violation {v.max_violation['ic']:.3g}"
            )
            ir = v.max_violation["ir"]
            line = f"  IR ({v.options.get('ir')}): max violation {ir:.6g}"
            if ir > v.tol and v.worst["ir"] is not None:
                line += f" (not promised by the mechanism); worst: {v.worst['ir'].describe()}"
            lines.append(line)
        lines.extend(f"  note: {s}" for s in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main entry
def _check_efficient(env: Environment) -> None:
    """Raise ``ValueError`` when the allocation is not efficient at some profile (and period): it must maximise
    flow welfare when kernels ignore the action, and expected discounted welfare (the Bellman equation,
    :func:`mechlp.model.policy.efficient_values`) when they depend on it."""
    types = env.profile_types()
    total = np.zeros((env.n_profiles, env.n_actions))
    for i, ag in enumerate(env.agents):
        total += ag.valuation[types[:, i]]
    if env.action_dependent:
        sol = efficient_values(env, horizon=None if env.infinite else int(env.horizon))
        q = sol.q_values if sol.finite else sol.q_values[None]  # (P, K, A): welfare now plus continuation
        what = "expected discounted welfare"
    else:
        q = total[None]
        what = "expected welfare"
    periods = q.shape[0] if env.action_dependent else env.n_allocation_periods
    for t in range(periods):  # periods (one when stationary)
        alloc = env.allocation_at(t + 1)
        qt = q[min(t, q.shape[0] - 1)]
        best = qt.max(axis=1)
        got = np.einsum("ka,ka->k", alloc, np.where(alloc > 0, qt, 0.0))
        scale = max(1.0, float(np.max(np.abs(qt))))
        bad = np.flatnonzero(got < best - tolerances.FLOW_EFFICIENCY * scale)
        if bad.size:
            k = int(bad[0])
            when = f" in period {t + 1}" if periods > 1 else ""
            raise ValueError(
                f"the team mechanism needs the efficient allocation; at profile {k} {env.profile_labels(k)}{when} "
                f"the allocation's {what} is {got[k]:.6g} < {best[k]:.6g}. To balance another IC mechanism "
                "use mechlp.constructions.team.balance_transfers"
            )


def balanced_team(
    env: Environment,
    space: StateSpace | None = None,
    horizon: int | None = None,
    *,
    check: bool = True,
    ir: str = "interim",
    outside_option: Any = 0.0,
    tol: float = tolerances.FEASIBILITY,
    exact: bool = False,
) -> TeamResult:
    r"""The balanced team mechanism of Athey and Segal (2007), section 5, for the environment's allocation.

    Builds the team transfers :math:`x^M_i = -\sum_{j \ne i} w_j`, their incentive payments
    :math:`\gamma_j(h, \theta_j)` (eq. (5.2)) and the balanced transfers
    :math:`x^B_i = -\gamma_i + \frac{1}{n-1}\sum_{j \ne i} \gamma_j` (eq. (5.1)); see the module docstring for
    the formulas and for the exact-zero rounding.

    Parameters
    ----------
    env : Environment
        At least two agents, with the efficient allocation (checked per profile: the allocation must maximise
        :math:`\sum_i v_i(\theta_i, a)`).
    space : StateSpace, optional
        Where to build the mechanism. Default: ``make_space(env, horizon)``, i.e. the Markov space for an
        infinite-horizon environment without ``horizon`` (stationary transfers depending on the previous and
        current report profile, Athey and Segal 2007, eq. (6.1)) and a :class:`HistoryTree` otherwise.
    horizon : int, optional
        Number of periods of the history tree (only without ``space``).
    check : bool
        Run :func:`mechlp.audit.verifier.verify` on the balanced mechanism (``ic="bayesian"``, ``ir``,
        ``budget="ex_post"``).
    ir : {"interim", "ex_post", "ex_ante"}
        IR family to *report*; the mechanism does not promise any.
    outside_option : float, sequence or mapping
        Passed to :func:`~mechlp.audit.verifier.verify`.
    tol : float
        Verification tolerance (ignored with ``exact=True``).
    exact : bool
        Also build the mechanism in rational arithmetic (model numbers read as written, see
        :mod:`mechlp.model.exact`), attach it to the mechanism as ``exact_transfers`` and, with ``check``, verify it
        with ``verify(..., exact=True)``: zero violation then means *exactly* zero. Costs Python ``Fraction``
        operations; meant for trees of a few thousand nodes and Markov spaces of at most
        ``mechlp.model.exact.EXACT_MARKOV_PROFILES`` profiles.

    Returns
    -------
    TeamResult

    Raises
    ------
    ValueError
        For one agent, an allocation that is not efficient, or ``space`` together with ``horizon``.

    Notes
    -----
    When some kernel depends on the action, the per-profile welfare maximiser used by ``"efficient"`` need not
    be *dynamically* efficient, and then the team mechanism need not be IC (Athey and Segal's Proposition 1
    needs the surplus-maximising decision plan). The result carries a note and the verification decides.
    """
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    env.require_independent("the balanced team mechanism (Athey and Segal 2007)")
    if env.n_agents < 2:
        raise ValueError("the balanced team mechanism needs at least two agents")
    if space is not None and horizon is not None:
        raise ValueError("give either space or horizon, not both")
    space = space_for(env, space, horizon)
    _check_efficient(env)
    notes: list[str] = []
    if env.action_dependent:
        notes.append(
            "a kernel depends on the action: the per-profile efficient rule may not be dynamically efficient, "
            "so the team mechanism's IC is not guaranteed (see the verification)"
        )
    if isinstance(space, HistoryTree) and env.infinite:
        notes.append(f"infinite-horizon environment truncated to a {space.horizon}-period tree")
    if isinstance(space, MarkovSpace):
        notes.append(
            "stationary Markov transfers (previous and current report profile), exact for the infinite horizon"
        )
    notes.append(
        "Bayesian IC and exact budget balance by construction; IR is not promised (Athey-Segal 2007, s. 5; "
        "bonded_team adds the section-6 bond)"
    )

    t0 = time.perf_counter()
    x_team = team_transfers(space)
    x_bal, gamma, g_nodes, grid, rounding = _balance(space, x_team)
    mech = Mechanism(space, x_bal)
    residual = float(np.max(np.abs(x_bal.sum(axis=0)))) if x_bal.size else 0.0
    result = TeamResult(
        space=space,
        mechanism=mech,
        team=Mechanism(space, x_team),
        incentive=Mechanism(space, -g_nodes),
        gamma=gamma,
        gamma_nodes=g_nodes,
        budget_residual=residual,
        grid=grid,
        rounding=rounding,
        notes=notes,
        timings={"build": time.perf_counter() - t0},
    )
    if exact:
        t1 = time.perf_counter()
        x_exact, g_exact = _exact_balanced_team(space)
        mech.exact_transfers = x_exact  # read by mechlp.audit.verifier.verify(..., exact=True)
        result.exact_transfers, result.exact_gamma = x_exact, g_exact
        gap = float(np.max(np.abs(x_exact.astype(float) - x_bal))) if x_bal.size else 0.0
        notes.append(f"exact rational transfers attached; the float transfers differ from them by at most {gap:.3g}")
        result.timings["exact"] = time.perf_counter() - t1
    if check:
        t2 = time.perf_counter()
        result.verification = verify(
            mech, ic="bayesian", ir=ir, budget="ex_post", outside_option=outside_option, tol=tol, exact=exact
        )
        result.timings["verify"] = time.perf_counter() - t2
    return result

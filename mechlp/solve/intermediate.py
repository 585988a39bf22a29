r"""The intermediate mechanism of Lamba (2022, section 7.2): agents learn only whether trade happened.

Two quantities are called :math:`\Pi^{**}` and this module computes both, on a finite horizon of ``T`` periods
(:class:`~mechlp.model.signals.SignalSpace`, ``horizon=T``: for an infinite-horizon model a truncation) or, for an
infinite-horizon model without ``horizon``, on the infinite horizon over intermediate mechanisms whose payments depend
on the agent's last signal (:class:`~mechlp.model.signals.MarkovSignalSpace`: exact rows for that class; an infeasible
answer is a proof for that class only). An infeasible answer carries a Farkas certificate checked in floats and
rationals (:mod:`mechlp.proofs.intermediate`, :mod:`mechlp.audit.intermediate`).

**The LP over intermediate mechanisms** (:func:`intermediate_minmax`, :func:`intermediate_feasibility`).
Payments measurable with respect to each agent's information (own reports and the realised action), IC and IR at
the agents' information sets (rows in :mod:`mechlp.constraints.signals`), the designer's surplus
:math:`\Pi(h)` at *her* histories (every report profile). At the root the most surplus equals the public
:math:`\Pi^*(\text{root})`, as Lamba states. At a designer history that shares an agent's information set with
another designer history the designer knows more than the agent, and the LP is **unbounded**: payments that
depend on later signals are fair bets under the agent's belief but not under the designer's, so surplus can be
moved between the pooled designer histories without limit. :func:`intermediate_minmax` reports which histories
are bounded (one LP per history) and the bounded values; a pointwise min-max mechanism does not exist there.
Budget-balance questions remain well posed: :func:`intermediate_feasibility` answers them exactly with a
verified mechanism (:func:`mechlp.audit.verifier.verify_intermediate`).

**Lamba's construction** (:func:`lamba_double_star`). Lamba defines the min-max intermediate mechanism by paying
each agent the expectation of his public min-max utility over his information set,
:math:`U^{**}(h_i^t) = E[U_i^*(\tilde h^t) \mid \tilde h^t \in [h_i^t]]`, and

.. math::
   \Pi^{**}(h^{t-1}) = E\Big[\sum_{\tau \ge t} \delta^{\tau - t} \text{welfare}_\tau
      - \sum_i U_i^{**}(\tilde h_i^t) \,\Big|\, h^{t-1}\Big].

This depends on the *ex post* utilities :math:`U^*(h, \theta)` of the public mechanism, which are not unique
(only interim utilities are pinned down); the default is Lamba's own min-max dynamic VCG mechanism (VCG payments
plus Markov fees, :mod:`mechlp.constructions.lamba`), exact for the infinite horizon at every depth of the tree.
On Lamba's simple trading problem with persistent (FOSD) types it gives, in period 2,
:math:`\Pi^{**} = \Pi^*` at the root and after :math:`(v_L, c_H)` (there both agents learned the other's
report), :math:`\Pi^{**} < \Pi^*` after :math:`(v_H, c_H)` and :math:`(v_L, c_L)`, and :math:`\Pi^{**} > \Pi^*`
after :math:`(v_H, c_L)`; the probability-weighted average of :math:`\Pi^{**} - \Pi^*` over period-2 histories is
zero (tower property). The paper's section 7.3 states the two strict inequalities the other way round. The
mechanism behind the signs: after :math:`(v_H, c_H)` the buyer, who reported :math:`v_H` and traded, did not learn
:math:`c_1 = c_H`; he is paid the average of his public min-max utility over his posterior on the seller's costs,
which puts more weight on the low cost than the designer (who knows :math:`c_1 = c_H` and that costs persist) does,
and the high buyer's min-max utility is larger against a low-cost seller. So the designer expects to pay more than
in the public mechanism. After :math:`(v_H, c_L)` the same averaging works in the designer's favour, for both agents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.intermediate import IntermediateCertificate, verify_markov_intermediate
from mechlp.audit.verifier import Verification, verify_intermediate
from mechlp.backends import solve_arrays, solve_lp
from mechlp.constraints.signals import (
    MarkovSignalVariables,
    SignalVariables,
    intermediate_blocks,
    intermediate_surplus_cost,
    markov_intermediate_blocks,
)
from mechlp.constructions.lamba import ex_post_minmax_mechanism, minmax_mechanism
from mechlp.lp.program import assemble
from mechlp.model.answer import CertifiedOnSpace
from mechlp.model.beliefs import continuation_values, expectation, joint_beliefs, reach_probabilities
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import outside_options
from mechlp.model.signals import MarkovSignalSpace, SignalSpace
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, MarkovSpace
from mechlp.proofs.intermediate import intermediate_certificate

__all__ = [
    "IntermediateResult",
    "intermediate_lp",
    "intermediate_minmax",
    "intermediate_feasibility",
    "lamba_double_star",
    "expand_transfers",
]


@dataclass
class IntermediateResult(CertifiedOnSpace):
    """Answer to a question about intermediate mechanisms (result contract: :mod:`mechlp.model.answer`; the
    surplus and the transfers of the contract are indexed by the designer's history tree ``space.tree``).

    Attributes
    ----------
    status : str
        ``"optimal"`` (feasible / solved, mechanism verified), ``"infeasible"``, ``"unbounded"``,
        ``"verification_failed"`` or ``"error"``.
    message : str
    space : SignalSpace
    transfers : list of ndarray or None
        Per agent ``(n_info, S_i)``: :math:`x_i(I, r, a)` (payment to the designer), ``S_i = K_i |A|`` with
        column ``r * |A| + a``.
    surplus : ndarray or None
        :math:`\\Pi(h)` at every designer history for the mechanism found.
    bounded : ndarray of bool or None
        :func:`intermediate_minmax`: whether the most surplus at each designer history is finite.
    best : ndarray or None
        :func:`intermediate_minmax`: the most surplus at each designer history (``inf`` where unbounded).
    certificate : Verification or None
        :func:`mechlp.audit.verifier.verify_intermediate` of the mechanism.
    impossibility : IntermediateCertificate or None
        :func:`intermediate_feasibility` when infeasible: Farkas multipliers over the IC, IR and budget rows
        (:mod:`mechlp.proofs.intermediate`), checked by
        :func:`mechlp.audit.intermediate.check_intermediate_impossibility` in floats and, for exact multipliers, in
        rationals (``impossibility.checks``).
    verification : Verification or None
        (property) ``certificate``.
    timings : dict
        Seconds: ``"verify"``.
    size : dict
        (property) designer ``histories`` and ``nodes`` and the agents' information histories (``information``).

    JSON (:meth:`to_dict`): the contract's keys (``transfers``: each agent's payment at every designer node,
    :func:`expand_transfers`) plus ``options``, ``bounded``, ``best`` (``null`` where unbounded) and
    ``information_transfers`` (per agent, ``(n_info, S_i)``).
    """

    status: str
    message: str
    space: SignalSpace
    transfers: list[np.ndarray] | None = None
    surplus: np.ndarray | None = None
    bounded: np.ndarray | None = None
    best: np.ndarray | None = None
    certificate: Verification | None = None
    impossibility: IntermediateCertificate | None = None
    options: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def size(self) -> dict:
        return {**super().size, "information": list(self.space.n_info)}

    def _answer_space(self) -> Any:
        return self.space.tree

    def _answer_transfers(self) -> np.ndarray | None:
        return None if self.transfers is None else expand_transfers(self.space, self.transfers)

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "bounded": self.bounded,
            "best": self.best,
            "information_transfers": self.transfers,
            "impossibility": None if self.impossibility is None else self.impossibility.to_dict(),
        }


def expand_transfers(space: SignalSpace, transfers: list[np.ndarray]) -> np.ndarray:
    """``(n_agents, tree.n_nodes)``: each agent's payment at every designer node (measurable by construction)."""
    return np.stack([np.asarray(x, dtype=float).reshape(-1)[space.info_node[i]] for i, x in enumerate(transfers)])


def _signal_space(env: Environment, space, horizon: int | None, memory_limit: int):
    """The space asked for: ``space``; on an infinite horizon without ``horizon`` the last-signal Markov space
    (:class:`~mechlp.model.signals.MarkovSignalSpace`); otherwise the ``horizon``-period information tree."""
    if space is not None:
        if space.env is not env:
            raise ValueError("space was built for a different environment than env")
        return space
    if env.infinite and horizon is None:
        return MarkovSignalSpace(env)
    return SignalSpace(env, horizon, memory_limit=memory_limit)


def _where(sp) -> str:
    if sp.kind == "signal_markov":
        return "intermediate mechanism, infinite horizon, payments on the last signal"
    return f"intermediate mechanism, {sp.horizon} periods"


def intermediate_lp(
    space: SignalSpace,
    *,
    ir: str = "interim",
    budget: str = "none",
    outside_option=0.0,
    weights: np.ndarray | None = None,
):
    """The assembled LP (:func:`mechlp.lp.program.assemble`) of the intermediate mechanism, maximising
    :math:`\\sum_h w_h \\Pi(h)` over designer histories (``w = 1`` by default)."""
    outside = outside_options(outside_option, space.env)
    if space.kind == "signal_markov":
        variables = MarkovSignalVariables(space)
        blocks = markov_intermediate_blocks(variables, ir=ir, budget=budget, outside=outside)
    else:
        variables = SignalVariables(space)
        blocks = intermediate_blocks(variables, ir=ir, budget=budget, outside=outside)
    w = np.ones(space.tree.n_hist) if weights is None else np.asarray(weights, dtype=float)
    return assemble(variables, blocks, intermediate_surplus_cost(variables, w))


def _answer(space, lp, z, ir, budget, outside_option, question) -> IntermediateResult:
    parts = lp.variables.split(z)
    transfers = parts["x"]
    surplus = Mechanism(space.tree, expand_transfers(space, transfers)).surplus()
    t0 = time.perf_counter()
    check = verify_markov_intermediate if space.kind == "signal_markov" else verify_intermediate
    cert = check(space, transfers, ir=ir, budget=budget, outside_option=outside_option)
    seconds = time.perf_counter() - t0
    res = IntermediateResult(
        "optimal",
        "",
        space,
        transfers,
        surplus,
        certificate=cert,
        options={"ir": ir, "budget": budget, "outside_option": outside_option, "question": question},
        timings={"verify": seconds},
    )
    if not cert.ok:
        res.status = "verification_failed"
        res.message = "the solver's mechanism fails the independent verification:\n" + cert.summary()
    return res


def intermediate_feasibility(
    env: Environment,
    budget: str = "interim",
    *,
    horizon: int | None = None,
    space: SignalSpace | None = None,
    ir: str = "interim",
    outside_option=0.0,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    backend: str = "highs",
    exact: bool = True,
    **solver_options,
) -> IntermediateResult:
    """Is the allocation implementable by an intermediate mechanism with IC, IR and ``budget`` balance?

    ``budget`` in ``("interim", "ex_ante", "ex_post", "none")``. Solved with the objective ``Pi(root)`` (the
    surplus at the other designer histories may be unbounded, see the module docstring); a feasible answer carries
    a mechanism verified by :func:`mechlp.audit.verifier.verify_intermediate`.

    Parameters
    ----------
    env : Environment
    budget : {"interim", "ex_ante", "ex_post", "none"}
        Budget notion at the designer's histories. Default ``"interim"``.
    horizon : int, optional
        Number of periods of the information tree; required for an infinite-horizon environment (a truncation).
    space : SignalSpace, optional
        A prebuilt space for ``env`` (instead of ``horizon``).
    ir : {"interim", "ex_ante"}
        Participation at every information history, or in the first period only.
    outside_option : float or per-agent values
    memory_limit : int
        Bytes; larger trees are refused before they are built.
    backend : {"highs", "cvxpy"}
        Backend of the LP (:func:`mechlp.backends.solve_lp`).
    exact : bool
        When infeasible, recompute the Farkas multipliers in rationals and check them exactly (default True).
    **solver_options
        Passed to the backend.

    Returns
    -------
    IntermediateResult
        ``status`` ``"optimal"`` (feasible, mechanism verified), ``"infeasible"`` (with ``impossibility``, a
        Farkas certificate that passed the independent check: exactly when ``exact``), ``"unverified"``
        (the solver says infeasible, no certificate passed), or the solver's status, with a message.
    """
    env.require_independent("the intermediate mechanism (SignalSpace beliefs)")
    sp = _signal_space(env, space, horizon, memory_limit)
    weights = np.zeros(sp.tree.n_hist)
    weights[0] = 1.0
    lp = intermediate_lp(sp, ir=ir, budget=budget, outside_option=outside_option, weights=weights)
    out = solve_lp(lp, backend, **solver_options)
    status, z = out.status, out.x
    where = _where(sp)
    opts = {"ir": ir, "budget": budget, "outside_option": outside_option}
    if status == "infeasible":
        return _infeasible(sp, lp, ir, budget, outside_option, exact, backend, where, opts)
    if status != "optimal":
        return IntermediateResult(
            status, f"{budget} budget balance: {status} ({where}; {backend}: {out.message})", sp, options=opts
        )
    res = _answer(sp, lp, z, ir, budget, outside_option, "feasibility")
    if res.status == "optimal":
        res.message = f"feasible under {budget} budget balance ({where}); mechanism verified"
    return res


def _infeasible(sp, lp, ir, budget, outside_option, exact, backend, where, opts) -> IntermediateResult:
    """The infeasible answer with its certificate, or ``"unverified"`` when none passes (ex post
    balance is certified with the interim rows, which it implies)."""
    if budget == "ex_post":
        lp = intermediate_lp(
            sp, ir=ir, budget="interim", outside_option=outside_option, weights=np.zeros(sp.tree.n_hist)
        )
    cert = intermediate_certificate(
        lp, ir=ir, budget=budget, outside_option=outside_option, exact=exact, backend=backend
    )
    checks = {} if cert is None else cert.checks
    passed = bool(checks) and all(c["ok"] for c in checks.values()) and (cert.exact or not exact)
    if not passed:
        why = (
            "no Farkas certificate found"
            if cert is None
            else "; ".join(f"{k}: {c['message']}" for k, c in checks.items())
        )
        return IntermediateResult(
            "unverified",
            f"{budget} budget balance: the solver reports infeasible ({where}) but no certificate passed ({why})",
            sp,
            impossibility=cert,
            options=opts,
        )
    kind = "exact" if cert.exact else "float"
    scope = (
        " among intermediate mechanisms whose payments depend on the last signal" if sp.kind == "signal_markov" else ""
    )
    rows = "interim rows (ex post balance implies them)" if budget == "ex_post" else f"{budget} rows"
    return IntermediateResult(
        "infeasible",
        f"infeasible under {budget} budget balance{scope} ({where}); Farkas certificate over the IC, IR and {rows} "
        f"verified ({kind}: {checks[kind]['message']})",
        sp,
        impossibility=cert,
        options=opts,
    )


def intermediate_minmax(
    env: Environment,
    *,
    horizon: int | None = None,
    space: SignalSpace | None = None,
    ir: str = "interim",
    outside_option=0.0,
    histories: np.ndarray | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    backend: str = "highs",
    **solver_options,
) -> IntermediateResult:
    """The most designer surplus at each designer history over IC and IR intermediate mechanisms.

    One LP per history (``histories``: the designer histories to examine, default all), each maximising that
    history's :math:`\\Pi(h)` alone; ``best[h]`` is the optimum or ``inf`` when the LP is unbounded, ``bounded[h]``
    says which. ``transfers`` / ``surplus`` / ``certificate`` are those of the root's LP (which is always bounded
    when the public one is: its value equals the public :math:`\\Pi^*(\\text{root})`, Lamba 2022, section 7.3).

    Parameters
    ----------
    env : Environment
    horizon, space, ir, outside_option, memory_limit, backend, **solver_options
        As in :func:`intermediate_feasibility` (the LPs go to :func:`mechlp.backends.solve_arrays`).
    histories : array_like of int, optional
        Designer histories to examine (the root is always included). Default: all.

    Returns
    -------
    IntermediateResult
        With ``best`` and ``bounded`` per designer history and the root LP's mechanism, verified.
    """
    env.require_independent("the intermediate mechanism (SignalSpace beliefs)")
    sp = _signal_space(env, space, horizon, memory_limit)
    n_hist = sp.tree.n_hist
    hs = np.arange(n_hist) if histories is None else np.asarray(histories, dtype=np.int64)
    if hs.size == 0 or hs[0] != 0:
        hs = np.concatenate([[0], hs[hs != 0]])
    best = np.full(n_hist, np.nan)
    bounded = np.zeros(n_hist, dtype=bool)
    root = None
    lp = intermediate_lp(sp, ir=ir, outside_option=outside_option, weights=np.zeros(n_hist))
    for h in hs:  # one LP per examined history: same rows, the objective is that history's surplus
        cost = intermediate_surplus_cost(lp.variables, np.eye(1, n_hist, int(h))[0])
        out = solve_arrays(
            lp.A, lp.row_lower, lp.row_upper, lp.col_lower, lp.col_upper, cost, backend, **solver_options
        )
        status, z = out.status, out.x
        if status == "optimal":
            best[h] = -float(cost @ z)
            bounded[h] = True
            if h == 0:
                root = z
        elif status == "unbounded":
            best[h] = np.inf
        else:
            return IntermediateResult(status, f"{backend} returned {status} at designer history {h}: {out.message}", sp)
    res = _answer(sp, lp, root, ir, "none", outside_option, "minmax")
    unb = [int(h) for h in hs if not bounded[h]]
    res.best, res.bounded = best, bounded
    if res.status == "optimal":
        res.message = f"{_where(sp)}: most surplus at the root {best[0]:.6g}; " + (
            f"unbounded at {len(unb)} of {hs.size} designer histories examined (e.g. "
            f"{sp.describe_history(unb[0])}), where an agent's information pools designer histories"
            if unb
            else "bounded at every designer history examined"
        )
    return res


#: Public mechanisms :func:`lamba_double_star` can average: name -> constructor on ``MarkovSpace(env)``.
PUBLIC_MECHANISMS = {
    "ex_post": ex_post_minmax_mechanism,  # Lamba 2022, eqs. (5)-(6): the paper's comparison
    "markov_fees": minmax_mechanism,  # VCG plus fees on the previous profile (section 6.1); the default until 14
}


_PUBLIC_TEXT = {
    "ex_post": "Lamba 2022 eqs. (5)-(6): VCG plus a fee on the other agent's current report",
    "markov_fees": "VCG plus fees on the previous profile, Lamba 2022 section 6.1",
}


def lamba_double_star(
    env: Environment, horizon: int = 2, mechanism: Mechanism | None = None, public: str = "ex_post"
) -> dict:
    r"""Lamba's :math:`\Pi^{**}` (2022, section 7.2) next to :math:`\Pi^*` at every designer history of a tree.

    Parameters
    ----------
    env : Environment
        Bilateral trade with an infinite horizon (for the public mechanisms named by ``public``), or any
        environment when ``mechanism`` is given.
    horizon : int
        Depth of the designer's tree: :math:`\Pi^{**}` is computed at the histories of periods ``1..horizon``.
    mechanism : Mechanism, optional
        A public mechanism whose *ex post* utilities :math:`U^*(h, \theta)` are averaged over the agents'
        information sets: on ``MarkovSpace(env)`` (read at the last profile) or on ``HistoryTree(env, horizon)``.
        Overrides ``public``.
    public : {"ex_post", "markov_fees"}
        Which of Lamba's min-max dynamic VCG mechanisms to average when ``mechanism`` is not given (both have the
        same interim utilities and :math:`\Pi^*`, different ex post utilities): ``"ex_post"`` (default) the
        paper's eqs. (5)-(6), VCG plus a fee on the other agent's current report
        (:func:`mechlp.constructions.lamba.ex_post_minmax_mechanism`); ``"markov_fees"`` VCG plus fees on the
        previous profile (:func:`mechlp.constructions.lamba.minmax_mechanism`, section 6.1).

    Returns
    -------
    dict
        ``"space"`` (SignalSpace), ``"pi_star"`` and ``"pi_double_star"`` (``(tree.n_hist,)`` each),
        ``"where"`` (descriptions), ``"u_double_star"`` (per agent ``(tree.n_nodes,)``: the information-set average
        of the ex post utility at each designer node), ``"public_mechanism"`` (``public``, or ``"given"``),
        ``"mechanism_space"`` and ``"statement"``: what :math:`\Pi^{**}` is the surplus of, and that it is not an
        answer to the feasibility question (see Notes).

    Notes
    -----
    :math:`U^{**}_i(g) = \sum_{g' \sim_i g} \Pr(g') U_i^*(g') / \sum_{g' \sim_i g} \Pr(g')`, the average over the
    designer nodes ``g'`` of the same period that agent ``i`` cannot tell from ``g`` (same information node: own
    reports and signals), weighted by their probability under truth-telling. Then
    :math:`\Pi^{**}(h) = \sum_\theta P(\theta|h) [W(h,\theta) - \sum_i U^{**}_i(h,\theta)]` with ``W`` the
    expected discounted welfare, against :math:`\Pi^*(h) = \sum_\theta P(\theta|h)[W - \sum_i U^*_i]`.

    :math:`\Pi^{**}` is computed for *Lamba's averaged mechanism*, built from one public mechanism's ex post
    utilities; it is not the mechanism :func:`intermediate_feasibility` finds, and its sign is not a verified
    answer to whether an IC and IR intermediate mechanism with interim budget balance exists (no IC check of the
    averaged utilities is made here). ``"statement"`` says so in every result.
    """
    if mechanism is None and public not in PUBLIC_MECHANISMS:
        raise ValueError(f"public must be one of {sorted(PUBLIC_MECHANISMS)}, got {public!r}")
    sp = SignalSpace(env, horizon)
    tree = sp.tree
    k = env.n_profiles
    name = "given" if mechanism is not None else public
    if mechanism is None:
        mechanism = PUBLIC_MECHANISMS[public](env)
    if mechanism.env is not env:
        raise ValueError("mechanism was built for a different environment than env")
    u_m = mechanism.utilities()
    w_m = mechanism.space.env.welfare()
    welfare = continuation_values(mechanism.space, w_m[mechanism.space.node_profile][None, :])[0]
    if mechanism.space.kind == "markov":
        # tree node (h, theta) -> Markov node (state of h's last profile, theta)
        state = np.where(tree.hist_prev_profile < 0, 0, 1 + tree.hist_prev_profile)
        where = state[tree.node_hist] * k + tree.node_profile
    elif mechanism.space.kind == "tree" and mechanism.space.n_nodes == tree.n_nodes:
        where = np.arange(tree.n_nodes)
    else:
        raise ValueError("mechanism must live on MarkovSpace(env) or HistoryTree(env, horizon)")
    u_star = u_m[:, where]
    w_nodes = welfare[where]
    node_prob = (reach_probabilities(tree)[:, None] * joint_beliefs(tree)).reshape(-1)
    u_dd = np.empty_like(u_star)
    for i in range(env.n_agents):  # average over each agent's information nodes
        ids = sp.info_node[i]
        mass = np.bincount(ids, weights=node_prob, minlength=sp.n_info[i] * sp.n_signals[i])
        tot = np.bincount(ids, weights=node_prob * u_star[i], minlength=mass.size)
        u_dd[i] = tot[ids] / np.where(mass[ids] > 0, mass[ids], 1.0)
    pi_star = expectation(tree, w_nodes - u_star.sum(axis=0))
    pi_dd = expectation(tree, w_nodes - u_dd.sum(axis=0))
    return {
        "space": sp,
        "pi_star": pi_star,
        "pi_double_star": pi_dd,
        "where": [sp.describe_history(h) for h in range(tree.n_hist)],
        "u_double_star": u_dd,
        "mechanism_space": MarkovSpace.__name__ if mechanism.space.kind == "markov" else "HistoryTree",
        "public_mechanism": name,
        "statement": (
            f"Pi** is the surplus of Lamba's averaged intermediate mechanism built from the ex post utilities of the "
            f"public mechanism {name!r} ({_PUBLIC_TEXT.get(name, 'passed by the caller')}); it is not the mechanism "
            f"of intermediate_feasibility, and its sign is not a verified feasibility answer"
        ),
    }

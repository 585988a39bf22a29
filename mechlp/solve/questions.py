r"""The questions of docs/design.md section 7.1, answered as verified :class:`~mechlp.solve.result.Result` objects.

``minmax``
    The tight (min-max) mechanism: maximise the designer's surplus :math:`\Pi(h)` at every history subject
    to IC and IR, without budget rows (Lamba 2022, Theorem 1 and Lemma 6). Implemented as one LP maximising
    :math:`\sum_h \Pi(h)` (all weights 1); with positive weights the optimum is the pointwise maximum when
    one exists, which Lamba proves for bilateral trade with FOSD kernels. The result carries
    :math:`\Pi^*(h)` for every history and, for bilateral trade on the Markov space, the fees on top of the
    static discrete VCG (section 6.1).
``feasibility``
    Can the environment's allocation be implemented with IC, IR and the chosen budget notion
    (``"ex_ante"``, ``"interim"``, ``"ex_post"``)? Solved as one LP with the budget rows and the same
    surplus objective, so a feasible answer is the tightest mechanism that meets the budget. An infeasible
    answer is diagnosed with the min-max surplus: Lamba's Theorem 1 / Corollary 1 say interim (and ex post)
    balance fails iff :math:`\Pi^*(h) < 0` at some history, ex ante balance iff :math:`\Pi^*(\text{root}) < 0`;
    the message names the history with the most negative :math:`\Pi^*` -- when :math:`\Pi^*` is certified tight at
    every history (``diagnosis["tightness"]`` of ``minmax``); otherwise the answer rests on the budget LP and its
    proof alone, and no history is named.

Every mechanism is re-verified by :func:`mechlp.audit.verifier.verify` (code independent of the LP rows)
before the result is returned; a failed verification is the status ``"verification_failed"``.
Infinite-horizon environments are solved on the Markov space: the answer is about *Markov* mechanisms
(exact for the min-max mechanism, which is Markov in Lamba's setting), and the result says so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from mechlp.backends import solve_lp
from mechlp.backends.base import check_backend
from mechlp.constraints.formulation import build_lp
from mechlp.constructions.minmax import markov_fee_table
from mechlp.model import tolerances
from mechlp.model.beliefs import joint_beliefs
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question, check_choice
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, HistoryTree, StateSpace, question_space
from mechlp.model.transfers import balanced_transfers
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.proofs.margins import exact_feasible_mechanism
from mechlp.solve.recursion import minmax_result, refuse_correlated, structure_refusal
from mechlp.solve.result import Result, attach_verified, lp_result

__all__ = ["minmax", "feasibility", "solve", "QUESTIONS", "METHODS"]

QUESTIONS = ("minmax", "feasibility")
METHODS = ("auto", "lp", "recursion")
#: How :func:`feasibility` answers: ``"auto"`` from the min-max structure where it applies, else the LP.
ROUTES = ("auto", "lp")


def _scope_note(space: StateSpace) -> str:
    if space.kind == "markov":
        return " (Markov mechanisms on the infinite horizon)"
    if space.kind == "tail":
        periods = f"{space.horizon} period" + ("s" if space.horizon != 1 else "")
        return f" (history dependent for {periods}, then stationary Markov)"
    return f" (history tree, {space.horizon} periods)"


class _Clock:
    """Wall-clock budget of one answer (``time_limit`` seconds, or none) and its phase reports (``progress``)."""

    def __init__(self, time_limit: float | None, progress: bool | Callable[[str], None]):
        if time_limit is not None:
            if isinstance(time_limit, bool) or not isinstance(time_limit, int | float | np.integer | np.floating):
                raise TypeError(f"time_limit must be a number of seconds, got {type(time_limit).__name__}")
            if not time_limit > 0:
                raise ValueError(f"time_limit must be > 0 seconds, got {time_limit!r}")
        if not isinstance(progress, bool) and not callable(progress):
            raise TypeError(
                f"progress must be a bool or callable (it receives each phase's name), got {type(progress).__name__}"
            )
        self.limit = None if time_limit is None else float(time_limit)
        self.start = time.perf_counter()
        self.progress = self._print if progress is True else (progress or None)

    def _print(self, name: str) -> None:
        sys.stderr.write(f"mechlp: {name} (at {time.perf_counter() - self.start:.1f} s)\n")
        sys.stderr.flush()

    def remaining(self) -> float | None:
        """Seconds left (at least a millisecond, so that a solver called with it stops at once), or ``None``."""
        if self.limit is None:
            return None
        return max(1e-3, self.limit - (time.perf_counter() - self.start))

    def options(self, solver_options: dict) -> dict:
        """``solver_options`` with the remaining time as the solver's ``time_limit``."""
        left = self.remaining()
        return solver_options if left is None else {**solver_options, "time_limit": left}

    def phase(self, name: str) -> None:
        if self.progress is not None:
            self.progress(name)


def _solve(
    q: Question,
    question: str,
    space: StateSpace | None,
    horizon: int | None,
    backend: str,
    memory_limit: int,
    solver_options: dict,
    certify: bool = False,
    exact: bool = False,
) -> Result:
    check_backend(backend)
    env = q.env
    sp = question_space(
        env,
        question,
        memory_limit,
        space=space,
        horizon=horizon,
        ic=q.ic,
        ir=q.ir,
        budget=q.budget,
        certify=certify,
        exact=exact,
    )
    options = {**q.to_dict(), "backend": backend}
    weights = None
    if q.ir == "ex_ante":
        # Participation only at the start: surplus at later histories can be raised without bound by shifting
        # utility forward, so only Pi(root) is a meaningful objective (and Pi at other histories is not unique).
        weights = np.zeros(sp.n_hist)
        weights[0] = 1.0
    lp = build_lp(sp, q, weights=weights)
    out = solve_lp(lp, backend, **solver_options)
    res = lp_result(Result, question, options, sp, lp, out, q, backend)
    if out.status != "optimal":
        return res
    # A local-IC answer must hold globally: attach_verified checks all misreports.
    cert = attach_verified(res, Mechanism(sp, lp.variables.split(out.x)["x"]), q)
    if not cert.ok:
        res.status = "verification_failed"
        res.message = "the solver's mechanism fails the independent verification:\n" + cert.summary()
    return res


#: Spaces with at most this many histories get their min-max tightness checked by one LP per history when no
#: theorem covers the model (Markov spaces and small trees).
POINTWISE_CHECK_HISTORIES = 64


def _tightness(res: Result, q: Question, method: str, backend: str, solver_options: dict) -> dict:
    r"""Is :math:`\Pi^*` tight at every history -- one mechanism maximising every :math:`\Pi(h)` at once?

    Lamba (2022, Lemma 6) proves it for bilateral trade with FOSD kernels (Bayesian or local IC, interim IR
    against zero, no limits). Otherwise, on small spaces, every :math:`\Pi(h)` is maximised by its own LP and
    compared with the answer; else the recursion's sufficient condition, or nothing (not certified). Random
    non-FOSD models do have histories where another IC + IR mechanism raises more than the weighted-sum answer.
    """
    env, sp, pi = res.env, res.space, res.surplus
    theorem = (
        env.meta.get("kind") == "bilateral_trade"
        and not env.correlated  # Lemma 6 assumes independent types
        and env.n_agents == 2
        and not env.action_dependent
        and all(ag.is_fosd() for ag in env.agents)
        and q.ic in ("bayesian", "local")
        and q.ir == "interim"
        and not q.has_limits
        and all(not np.any(o) for o in q.outside)
    )
    if theorem:
        return {"tight": True, "by": "Lamba (2022), Lemma 6: bilateral trade with FOSD kernels"}
    if method == "recursion":
        ok = (res.diagnosis or {}).get("recursion", {}).get("pointwise_optimal")
        if ok:
            return {"tight": True, "by": "the recursion's pointwise-optimality condition"}
    if method == "lp" and q.ir != "ex_ante" and sp.n_hist <= POINTWISE_CHECK_HISTORIES:
        best = np.empty(sp.n_hist)
        for h in range(sp.n_hist):  # one LP per history of a small space
            weights = np.zeros(sp.n_hist)
            weights[h] = 1.0
            lp = build_lp(sp, q, weights=weights)
            out = solve_lp(lp, backend, **solver_options)
            if out.status != "optimal":
                return {"tight": None, "by": f"not certified: maximising Pi at history {h} returned {out.status}"}
            best[h] = -float(out.objective)
        gap = best - pi
        scale = tolerances.FEASIBILITY * (1.0 + np.abs(pi))
        worst = int(np.argmax(gap - scale))
        if gap[worst] > scale[worst]:
            return {
                "tight": False,
                "by": f"each Pi(h) maximised by its own LP ({sp.n_hist} LPs)",
                "history": worst,
                "where": sp.describe_history(worst),
                "best": float(best[worst]),
                "gap": float(gap[worst]),
            }
        return {"tight": True, "by": f"each Pi(h) maximised by its own LP ({sp.n_hist} LPs)"}
    return {
        "tight": None,
        "by": "not certified (no theorem covers this model and the space is too large to maximise every Pi(h))",
    }


def _conditioning_note(env: Environment) -> str | None:
    """A sentence when the discount factor makes float answers ill-conditioned (``tolerances.DISCOUNT_GAP``)."""
    delta = float(env.discount)
    if not env.infinite or 1.0 - delta >= tolerances.DISCOUNT_GAP:
        return None
    return (
        f"the discount factor {delta!r} makes the problem ill-conditioned: 1 - delta = {1.0 - delta:.3g} is below "
        f"{tolerances.DISCOUNT_GAP:g}, so the solvers' tolerances are below the rounding of values of size "
        f"1/(1 - delta) = {1.0 / (1.0 - delta):.3g}"
    )


def _unbacked(res: Result, why: str) -> Result:
    """No status without its proof: an answer nothing verified backs becomes ``"unverified"`` (or
    ``"ill_conditioned"`` when the discount factor explains it); the claim stays in the message."""
    note = _conditioning_note(res.env)
    res.status = "ill_conditioned" if note else "unverified"
    res.message = f"UNVERIFIED: {why}; " + (f"{note}; " if note else "") + f"the solver said: {res.message}"
    return res


def _worst_histories(space: StateSpace, surplus: np.ndarray, limit: int = 5) -> list[dict]:
    neg = np.flatnonzero(surplus < -tolerances.SURPLUS)
    order = neg[np.argsort(surplus[neg])][:limit]
    return [{"history": int(h), "where": space.describe_history(int(h)), "value": float(surplus[h])} for h in order]


def minmax(
    env: Environment,
    *,
    space: StateSpace | None = None,
    horizon: int | None = None,
    tail: bool = False,
    ic: str = "bayesian",
    ir: str = "interim",
    outside_option=0.0,
    limits=None,
    backend: str = "highs",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    method: str = "auto",
    time_limit: float | None = None,
    progress: bool | Callable[[str], None] = False,
    **solver_options,
) -> Result:
    r"""The min-max (tight) mechanism and the surplus :math:`\Pi^*(h)` at every history.

    Parameters
    ----------
    env : Environment
    space : StateSpace, optional
        Defaults to the Markov space for an infinite horizon and the history tree otherwise.
    horizon : int, optional
        Build a history tree of this many periods instead (also for infinite-horizon environments: a
        truncation).
    tail : bool
        With ``horizon=T`` on an infinite-horizon environment: use :class:`~mechlp.model.spaces.TreeWithTail`,
        history dependent for ``T`` periods and stationary Markov afterwards (no truncation). Default False.
    ic, ir : str
        Notions (see :mod:`mechlp.model.question`; both ``"ex_post"`` and ``"ex-post"`` are read).
        ``ic="local"`` is solved with adjacent-type rows and then verified against *all* misreports.
    outside_option : float or per-agent values
    limits : dict, optional
        Transfer bounds ``{agent: (lo, hi)}``.
    backend : {"highs", "cvxpy"}
    memory_limit : int
        Bytes; trees predicted to need more are refused before they are built.
    method : {"lp", "recursion", "auto"}
        ``"auto"``: the recursion when it applies and its answer is certified tight at every history (then it
        is also an optimum of the LP, which maximises the sum), else the LP; ``diagnosis["method"]`` says which.
        ``"lp"``: one LP maximising :math:`\sum_h \Pi(h)`. ``"recursion"``: the backward recursion of
        :mod:`mechlp.solve.recursion` (Lamba 2022, Lemma 6; linear in the number of nodes), for Bayesian or local IC
        with interim IR and no transfer limits; the same verification, and ``diagnosis["recursion"]`` says
        whether the answer is certified tight at every history. With correlated types (``env.correlated``) the
        recursion does not apply: ``"auto"`` solves the LP and says why (``diagnosis["method_reason"]``, the
        message), ``"recursion"`` raises ValueError.
    time_limit : float, optional
        Seconds for the whole answer: every LP solve gets the time that is left, and one that runs out gives the
        status ``"time_limit"``. The recursion (linear in the nodes) is not interrupted; a time limit does not
        turn ``method="auto"`` into the LP.
    progress : bool or callable
        Report each phase as it starts (e.g. ``"min-max: recursion"``, ``"certificate: Farkas LP"``): ``True``
        prints a line per phase with the elapsed time to standard error (``mechlp solve --progress``); a callable
        receives the phase names. Default ``False``.
    **solver_options
        Passed to the backend (HiGHS option names for ``"highs"``); with ``method="recursion"`` only
        ``max_iter`` (Markov fixed point).

    Returns
    -------
    Result
        ``status`` ``"optimal"`` with ``surplus`` = :math:`\Pi^*`, the mechanism and its verification;
        ``message`` states whether :math:`\Pi^* \ge 0` everywhere (efficiency under interim / ex post
        balance, Lamba Theorem 1) and at the root (ex ante balance, Corollary 1).
    """
    check_choice("method", method, METHODS)
    clock = _Clock(solver_options.pop("time_limit", time_limit), progress)
    q = Question.parse(env, ic=ic, ir=ir, budget="none", outside_option=outside_option, limits=limits)
    if tail:
        space = question_space(
            env,
            "minmax",
            memory_limit,
            space=space,
            horizon=horizon,
            tail=True,
            method="lp" if method == "lp" or env.correlated else "recursion",
            ic=q.ic,
            ir=q.ir,
        )
    check_backend(backend)
    if method == "recursion":
        refuse_correlated(env)
    refusal = structure_refusal(env)  # why the recursion does not apply (None: it does)
    why_lp = f"auto: {refusal}" if method == "auto" and refusal is not None else None
    if method == "auto":
        # LP solver options (time limits, HiGHS settings) ask for the LP; so do the options the recursion lacks
        recursion_ok = not solver_options and q.ir == "interim" and q.ic in ("bayesian", "local") and not q.has_limits
        if recursion_ok and refusal is None:
            clock.phase("min-max: recursion")
            try:
                rec = _by_recursion(q, space, horizon, backend, memory_limit)
            except MemoryError:
                rec = None  # the LP's own estimate decides (and says) whether it fits
            if (
                rec is not None
                and rec.status == "optimal"
                and (rec.diagnosis or {}).get("tightness", {}).get("tight") is True
            ):
                rec.diagnosis["method"] = "recursion (auto: Pi* certified tight, so it is the LP's optimum too)"
                rec.options["backend"] = backend  # the backend of any LP asked later (sharing, feasibility)
                return rec
        method = "lp"
    if method == "recursion":
        clock.phase("min-max: recursion")
        res = minmax_result(env, space=space, horizon=horizon, memory_limit=memory_limit, question=q, **solver_options)
    else:
        clock.phase("min-max: LP")
        res = _solve(q, "minmax", space, horizon, backend, memory_limit, clock.options(solver_options))
    if res.status == "infeasible" and method == "lp":
        # IC + IR (and limits) alone: the Farkas certificate over their rows proves it, or the answer is not backed
        # (for the efficient allocation IC and IR are always satisfiable without limits; others may fail IC)
        clock.phase("certificate: Farkas LP")
        res.certificate = impossibility_certificate(
            res.space, question=q, backend=backend, time_limit=clock.remaining()
        )
        if res.certificate is None or not res.certificate.ok:
            return _unbacked(
                res, "the min-max LP (IC and IR, no budget rows) reports infeasible without a verified proof"
            )
        res.message += (
            "; Farkas certificate over the IC and IR rows" + (" and limits" if q.has_limits else "") + " verified"
        )
        return res
    if res.surplus is None:
        return res
    sp = res.space
    pi = res.surplus
    h_min = int(np.argmin(pi))
    interim_ok = bool(pi.min() >= -tolerances.SURPLUS)
    ante_ok = bool(pi[0] >= -tolerances.SURPLUS)
    if res.status == "optimal" and q.ir == "ex_ante":
        res.message = (
            f"min-max surplus{_scope_note(sp)} with ex ante participation only: Pi*(root) = {pi[0]:.6g}; "
            "surplus at later histories is not determined (participation binds only at the start)"
        )
    elif res.status == "optimal":
        tight = _tightness(res, q, method, backend, clock.options(solver_options))
        res.diagnosis = {**(res.diagnosis or {}), "tightness": tight}
        head = (
            f"min-max surplus{_scope_note(sp)}: Pi*(root) = {pi[0]:.6g}, smallest Pi* = {pi[h_min]:.6g} at "
            f"{sp.describe_history(h_min)}"
        )
        verdict = (
            f"ex ante balance {'possible' if ante_ok else 'impossible'}, "
            f"interim/ex post balance {'possible' if interim_ok else 'impossible'}"
        )
        if tight["tight"]:
            res.message = f"{head}; {verdict} (Pi* tight at every history: {tight['by']})"
        elif tight["tight"] is False:
            res.message = (
                f"{head}; NOT tight at every history: at {tight['where']} another IC + IR mechanism reaches "
                f"Pi = {tight['best']:.6g} (> {pi[tight['history']]:.6g}; {tight['by']}), so Pi* does not decide "
                "budget balance here -- ask feasibility, which answers from its own LP and proof"
            )
        else:
            res.message = f"{head}; {verdict} if Pi* is tight at every history, which is {tight['by']}"
    if method == "recursion" and res.status == "optimal":
        res.message += "; " + res.solver.message
    if why_lp is not None:
        res.message += f"; solved by the LP ({refusal}: the Lemma 6 recursion does not apply)"
    res.diagnosis = {
        "method": method,
        **({"method_reason": why_lp} if why_lp is not None else {}),
        **(res.diagnosis or {}),
        "negative": _worst_histories(sp, pi),
        "min_surplus": float(pi[h_min]),
        "argmin": sp.describe_history(h_min),
    }
    if (
        sp.kind == "markov"
        and env.meta.get("kind") == "bilateral_trade"
        and res.mechanism is not None
        and env.n_agents == 2
    ):
        res.fees = markov_fee_table(res.mechanism)
    return res


def feasibility(
    env: Environment,
    budget: str = "interim",
    *,
    space: StateSpace | None = None,
    horizon: int | None = None,
    tail: bool = False,
    ic: str = "bayesian",
    ir: str = "interim",
    outside_option=0.0,
    limits=None,
    backend: str = "highs",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    minmax_result: Result | None = None,
    certify: bool = True,
    exact: bool = False,
    route: str = "auto",
    time_limit: float | None = None,
    progress: bool | Callable[[str], None] = False,
    **solver_options,
) -> Result:
    """Is the environment's allocation implementable with IC, IR and ``budget`` balance?

    Parameters
    ----------
    env, space, horizon, tail, ic, ir, outside_option, limits, backend, memory_limit, **solver_options
        As in :func:`minmax`.
    time_limit, progress
        As in :func:`minmax`, for the whole answer (min-max, certificate, feasibility LP and diagnosis): each
        LP gets the time left; when it runs out the status is ``"time_limit"`` (no proof either way).
    budget : {"interim", "ex_ante", "ex_post", "none", "savings"}
        The budget notion (Lamba 2022, Definitions 3-5; ``"savings"``: an intermediary that may carry past
        surplus forward, :mod:`mechlp.constraints.budget`). Default ``"interim"``.
    minmax_result : Result, optional
        A :func:`minmax` result for the same environment, space and options, reused for the diagnosis instead of
        solving the min-max LP again.
    certify : bool
        For an infeasible answer, compute Farkas multipliers over the labelled constraints
        (:func:`mechlp.proofs.farkas.impossibility_certificate`), verified in floats and exactly; stored in
        ``result.certificate``. Available for every IC, IR and budget notion and transfer limits
        (:meth:`Question.certifying`). The Farkas LP is
        solved with ``backend``.
    exact : bool
        For a feasible answer, also build a mechanism that satisfies every row exactly
        (:func:`mechlp.proofs.margins.exact_feasible_mechanism`, its margin LP solved with ``backend``) and
        re-check it in rationals: ``result.exact_mechanism``, ``result.exact_check``.
    route : {"auto", "lp"}
        ``"auto"`` (default) answers from the min-max structure where it applies (Bayesian or local IC, interim
        IR, no transfer limits; :func:`_from_structure`): with :math:`\\Pi^*` certified tight at every history
        and :math:`\\Pi^* \\ge 0` where the budget notion needs it (interim: every history; ex ante: the root),
        the min-max mechanism, which maximises every :math:`\\Pi(h)` at once, is the verified witness (ex post
        budget: with :math:`\\Pi^*` shared equally and the payments rebalanced node by node, Lamba 2022,
        Corollary 5 and Proposition 1, :func:`mechlp.model.transfers.balanced_transfers`); with
        :math:`\\Pi^*(h) < 0` somewhere (interim or ex post budget), a Farkas certificate is the proof: on a tree,
        one on the subtree of the lowest :math:`\\Pi^*`; on a Markov space or a tree with a tail, one over the
        interim rows (:func:`mechlp.proofs.farkas.impossibility_certificate`). No transfer LP is solved then;
        ``diagnosis["route"]`` says which was used. Everything else, and ``route="lp"``, solves the feasibility
        LP. With correlated types (``env.correlated``) the structure does not apply (Lamba's Lemma 6 assumes
        independent types): ``"auto"`` solves the LP and ``diagnosis["route_reason"]`` says why.

    Returns
    -------
    Result
        ``"optimal"``: feasible, with a verified mechanism (the one maximising total surplus under the
        budget rows). ``"infeasible"``: ``diagnosis["negative"]`` lists the histories with the most negative
        min-max surplus :math:`\\Pi^*`, which is why balance fails (Lamba 2022, Theorem 1) -- only when
        :math:`\\Pi^*` is certified tight at every history (``diagnosis["tightness"]`` of :func:`minmax`); else
        it is empty and the answer rests on the LP and its Farkas certificate.
    """
    check_choice("route", route, ROUTES)
    clock = _Clock(solver_options.pop("time_limit", time_limit), progress)
    q = Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option=outside_option, limits=limits)
    budget = q.budget
    if tail:
        space = question_space(
            env,
            "feasibility",
            memory_limit,
            space=space,
            horizon=horizon,
            tail=True,
            ic=q.ic,
            ir=q.ir,
            budget=budget,
            certify=certify,
            exact=exact,
        )
    # correlated types: the structure routes read Lamba's recursion, which assumes independent types
    refusal = structure_refusal(env)
    why_lp = f"auto: {refusal}" if route == "auto" and refusal is not None else None
    if route == "auto" and refusal is None:
        res = _from_structure(q, space, horizon, backend, memory_limit, minmax_result, certify, exact, clock)
        if res is not None:
            return res
    clock.phase("feasibility: LP")
    res = _solve(q, "feasibility", space, horizon, backend, memory_limit, clock.options(solver_options), certify, exact)
    reason = {"route_reason": why_lp} if why_lp is not None else {}
    res.diagnosis = {"route": "lp", **reason}
    sp = res.space
    if res.status == "optimal":
        res.message = f"feasible under {budget} budget balance{_scope_note(sp)}; mechanism verified"
    if res.status not in ("optimal", "infeasible"):
        note = _conditioning_note(env)
        if note:
            res.status, res.message = "ill_conditioned", f"{note}; the solver said: {res.message}"
        return res
    # Diagnose (and cross-check) with the min-max surplus on the same space.
    mm = minmax_result
    same = mm is not None and mm.space is sp and mm.question_spec is not None and _same_constraints(mm.question_spec, q)
    if not same:
        clock.phase("diagnosis: min-max")
        mm = minmax(
            env,
            space=sp,
            ic=q.ic,
            ir=q.ir,
            outside_option=list(q.outside),
            limits=q.limits,
            backend=backend,
            memory_limit=memory_limit,
            time_limit=clock.remaining(),
            **solver_options,
        )
    if mm.surplus is None:  # IC and IR alone fail (no min-max surplus): the Farkas LP over the question's rows
        if res.status == "infeasible" and certify:
            t0 = time.perf_counter()
            clock.phase("certificate: Farkas LP")
            res.certificate = impossibility_certificate(sp, question=q, backend=backend, time_limit=clock.remaining())
            res.timings["certificate"] = time.perf_counter() - t0
            if res.certificate is not None and res.certificate.ok:
                res.message += (
                    f"; IC and IR{' and the transfer limits' if q.has_limits else ''} alone cannot be met (min-max: "
                    + mm.status
                    + "); Farkas certificate verified "
                    + ("in floats and exactly" if "exact" in res.certificate.checks else "in floats")
                )
        return _infeasible_needs_proof(res, q, certify)
    pi = mm.surplus
    relevant = pi[:1] if budget in ("ex_ante", "savings") else pi
    worst = _worst_histories(sp, relevant)
    res.diagnosis = {
        "minmax_surplus": pi,
        "negative": worst,
        "min_surplus": float(relevant.min()),
        "route": "lp",
        **reason,
    }
    if res.status == "infeasible" and certify:
        t0 = time.perf_counter()
        clock.phase("certificate: Farkas LP")
        cert = impossibility_certificate(
            sp, question=q, minmax_surplus=pi, backend=backend, time_limit=clock.remaining()
        )
        res.timings["certificate"] = time.perf_counter() - t0
        res.certificate = cert
    if res.status == "optimal" and exact and not q.has_limits:
        t0 = time.perf_counter()
        mech, check = exact_feasible_mechanism(sp, question=q, backend=backend)
        res.timings["exact"] = time.perf_counter() - t0
        res.exact_mechanism = mech
        res.exact_check = check
    predicted_feasible: bool | None = budget == "none" or not worst
    if budget == "savings" and not worst and not _savings_equals_ex_ante(sp, q.ic, q.ir):
        predicted_feasible = None  # Pi*(root) >= 0 is necessary, sufficient only in the case of the helper
    tight = (mm.diagnosis or {}).get("tightness", {}).get("tight")
    if budget == "ex_post" and q.pointwise:
        # Pi* >= 0 gives ex post balance by rebalancing node by node (Lamba 2022, Prop. 1), which keeps interim
        # utilities only: with ex post IC or IR or limits, Pi* predicts nothing about ex post balance
        predicted_feasible = None
    if tight is not True and budget != "none":
        # Lamba's Theorem 1 / Corollary 1 read feasibility off Pi* only when one mechanism maximises every Pi(h)
        # (the LP maximises their sum): without that, Pi* predicts nothing and the answer rests on the LP's proof
        predicted_feasible = None
        worst = []
        res.diagnosis["negative"] = []  # a negative Pi*(h) is no reason when another mechanism raises more there
    if res.status == "infeasible":
        if worst:
            w = worst[0]
            res.message = (
                f"infeasible under {budget} budget balance{_scope_note(sp)}: the most surplus any IC+IR mechanism "
                f"can raise at {w['where']} is {w['value']:.6g} < 0"
                + (
                    f" ({len(np.flatnonzero(relevant < -tolerances.SURPLUS))} histories negative)"
                    if budget not in ("ex_ante", "savings")
                    else ""
                )
            )
        else:
            res.message = f"infeasible under {budget} budget balance{_scope_note(sp)}"
        if certify:
            cert = res.certificate
            if cert is None:
                res.message += "; no Farkas certificate for these options"
            elif cert.ok:
                res.message += "; Farkas certificate verified " + (
                    "in floats and exactly" if "exact" in cert.checks else "in floats"
                )
            else:
                res.message += "; WARNING: the Farkas certificate did not verify: " + "; ".join(
                    c["message"] for c in cert.checks.values() if not c["ok"]
                )
    if not q.has_limits and predicted_feasible is not None and predicted_feasible != (res.status == "optimal"):
        res.message += (
            f"; WARNING: the min-max surplus predicts {'feasible' if predicted_feasible else 'infeasible'} "
            f"(smallest Pi* = {float(relevant.min()):.3g}), which disagrees with the LP"
        )
    if why_lp is not None:
        res.message += f"; solved by the LP ({refusal}: Lamba's Lemma 6 structure does not apply)"
    return _infeasible_needs_proof(res, q, certify)


def _by_recursion(
    q: Question, space: StateSpace | None, horizon: int | None, backend: str, memory_limit: int
) -> Result:
    """:func:`minmax` of ``q``'s IC, IR, outside options by the Lemma 6 recursion (for the structure routes)."""
    return minmax(
        q.env,
        space=space,
        horizon=horizon,
        ic=q.ic,
        ir=q.ir,
        outside_option=list(q.outside),
        backend=backend,
        memory_limit=memory_limit,
        method="recursion",
    )


def _from_structure(
    q: Question,
    space: StateSpace | None,
    horizon: int | None,
    backend: str,
    memory_limit: int,
    mm: Result | None,
    certify: bool,
    exact: bool,
    clock: _Clock,
) -> Result | None:
    r"""Feasibility answered from the min-max structure, or ``None`` where it does not apply (see
    :func:`feasibility`, ``route``).

    The min-max mechanism comes from ``mm`` when it answers the same constraints on the same space, else from
    the recursion (Lamba 2022, Lemma 6). Feasible: :math:`\Pi^*` tight at every history (``diagnosis
    ["tightness"]``) and nonnegative where the budget notion needs it, so the min-max mechanism meets the
    budget (ex post: after :func:`~mechlp.model.transfers.balanced_transfers`); it is re-verified against the
    whole question. Infeasible: a verified Farkas certificate (:func:`~mechlp.proofs.farkas.impossibility_certificate`:
    on a tree only on the subtree of the lowest :math:`\Pi^*`, ``subtree_only``; elsewhere over the interim
    rows); it proves impossibility whether or not :math:`\Pi^*` is tight.
    """
    budget = q.budget
    if q.has_limits or q.ir != "interim" or q.ic not in ("bayesian", "local") or budget not in _STRUCTURE_BUDGETS:
        return None
    if structure_refusal(q.env) is not None:
        return None  # the LP route answers (its diagnosis names the route)
    t0 = time.perf_counter()
    usable = (
        mm is not None
        and mm.question_spec is not None
        and _same_constraints(mm.question_spec, q)
        and (space is None or mm.space is space)
        and (horizon is None or getattr(mm.space, "horizon", None) == horizon)
    )
    if usable and space is None:
        space, horizon = mm.space, None
    if exact:  # the exact stage solves the margin LP, as large as the feasibility LP: refuse it here as there
        space = question_space(
            q.env,
            "feasibility",
            memory_limit,
            space=space,
            horizon=None if space is not None else horizon,
            ic=q.ic,
            ir=q.ir,
            budget=budget,
            certify=certify,
            exact=True,
        )
        horizon = None
    if not usable:
        clock.phase("min-max: recursion")
        try:
            mm = _by_recursion(q, space, horizon, backend, memory_limit)
        except MemoryError:
            return None  # the LP route refuses with its own estimate (the LP needs more than the recursion)
    if mm.status != "optimal" or mm.surplus is None or mm.mechanism is None:
        return None
    seconds = time.perf_counter() - t0
    sp, pi = mm.space, np.asarray(mm.surplus, dtype=float)
    relevant = pi[:1] if budget == "ex_ante" else pi
    worst = _worst_histories(sp, relevant)
    tight = (mm.diagnosis or {}).get("tightness", {}).get("tight")
    # histories are named as failing only when Pi* is certified tight (another mechanism may raise them)
    diagnosis = {"minmax_surplus": pi, "negative": worst if tight is True else [], "min_surplus": float(relevant.min())}
    options = {**q.to_dict(), "backend": backend}
    size = {"histories": sp.n_hist, "nodes": sp.n_nodes}
    res = Result("", "", "feasibility", options, sp, timings={"minmax": seconds}, size=size, question_spec=q)
    if not worst and tight is True:
        if budget == "ex_post":  # Lamba 2022, Cor. 5 and Prop. 1: share Pi*, then rebalance node by node
            # the min-max answer's own interim utilities and Pi (verified with its mechanism), not recomputed
            interim = mm.interim_utilities if mm.interim_utilities is not None else mm.mechanism.interim_utilities()
            witness = Mechanism(sp, balanced_transfers(sp, interim, pi))
            what = "the min-max mechanism with Pi* shared equally and rebalanced node by node (Lamba 2022, Prop. 1)"
        else:
            witness, what = mm.mechanism, "the min-max mechanism"
        clock.phase("verify the witness")
        check = attach_verified(res, witness, q)
        if not check.ok:
            return None
        res.status = "optimal"
        res.diagnosis = {**diagnosis, "route": f"structure: {what} (Pi* tight and >= 0) is the witness"}
        res.message = (
            f"feasible under {budget} budget balance{_scope_note(sp)}; {what} is the witness "
            f"(Pi* tight at every history: {(mm.diagnosis or {})['tightness']['by']}); mechanism verified"
        )
        if exact:
            t1 = time.perf_counter()
            res.exact_mechanism, res.exact_check = exact_feasible_mechanism(sp, question=q, backend=backend)
            res.timings["exact"] = time.perf_counter() - t1
        return res
    if not worst or budget == "ex_ante" or not certify:
        return None
    t1 = time.perf_counter()
    # a tree: the subtree of the lowest Pi* (else the LP route); Markov spaces and tails: the interim-row Farkas LP
    subtree_only = isinstance(sp, HistoryTree)
    clock.phase("certificate: from the recursion's binding rows, else a Farkas LP")
    cert = impossibility_certificate(
        sp,
        question=q,
        minmax_surplus=pi,
        backend=backend,
        subtree_only=subtree_only,
        time_limit=clock.remaining(),
        interim_utilities=mm.interim_utilities,
    )
    res.timings["certificate"] = time.perf_counter() - t1
    if cert is None or not cert.ok:
        return None
    w = worst[0]
    res.status = "infeasible"
    res.certificate = cert
    focus = cert.options.get("focus")
    if cert.options.get("method") == "structure":
        scope = "built from the recursion's binding rows" + (f" below {focus}" if focus else "") + " (no LP)"
    else:
        scope = "over the interim rows" if focus is None else f"on the subtree of {focus}"
    res.diagnosis = {**diagnosis, "route": f"structure: a Farkas certificate {scope}"}
    n_neg = len(np.flatnonzero(relevant < -tolerances.SURPLUS))
    where = (
        f"the most surplus any IC+IR mechanism can raise at {w['where']} is {w['value']:.6g} < 0 "
        f"({n_neg} histories negative)"
    )
    res.message = (
        f"infeasible under {budget} budget balance{_scope_note(sp)}: "
        + (where if tight is True else f"a certificate {scope}")
        + "; Farkas certificate verified "
        + ("in floats and exactly" if "exact" in cert.checks else "in floats")
    )
    return res


#: Budget notions :func:`_from_structure` answers (ex post: infeasible side only, through the interim rows).
_STRUCTURE_BUDGETS = ("interim", "ex_ante", "ex_post")


def _infeasible_needs_proof(res: Result, q: Question, certify: bool) -> Result:
    """``"infeasible"`` stands only with a verified impossibility certificate; otherwise the answer is
    ``"unverified"`` (or ``"ill_conditioned"``) and the message says why: no certificate was asked for
    (``certify=False``), none exists for the options (:meth:`Question.certifying` is ``None``), none was
    found, or it did not verify. The LP's claim stays in the message."""
    if res.status != "infeasible" or (res.certificate is not None and res.certificate.ok):
        return res
    if not certify:
        why = "no impossibility certificate was asked for (certify=False)"
    elif q.certifying() is None:
        why = f"mechlp has no impossibility certificate for these options yet ({q.describe()})"
    elif res.certificate is None:
        why = "no Farkas certificate was found"
    else:
        why = "its Farkas certificate did not verify"
    return _unbacked(res, f"the LP reports infeasible, but {why}")


def _same_constraints(a: Question, b: Question) -> bool:
    """Same IC, IR, outside options and limits (the budget may differ): a min-max result for ``a`` diagnoses ``b``."""
    return a.env is b.env and not a.differences(b, ignore=("budget",))


def _savings_equals_ex_ante(space: StateSpace, ic: str, ir: str) -> bool:
    """Savings balance is equivalent to ex ante balance (see :mod:`mechlp.constraints.budget`) when payments can be
    re-arranged across the profiles of every history: Bayesian IC, interim or ex ante IR, at least two agents and
    beliefs of full support."""
    return (
        ic in ("bayesian", "local")
        and ir in ("interim", "ex_ante")
        and space.env.n_agents >= 2
        and not space.env.correlated  # the rearrangement keeps interim utilities only with independent types
        and bool(np.all(joint_beliefs(space) > 0))
    )


def solve(env: Environment, question: str = "minmax", **kwargs) -> Result:
    """Dispatch to :func:`minmax` or :func:`feasibility` (``question`` as in ``QUESTIONS``)."""
    check_choice("question", question, QUESTIONS)
    return minmax(env, **kwargs) if question == "minmax" else feasibility(env, **kwargs)

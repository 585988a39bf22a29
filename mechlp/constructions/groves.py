r"""The dynamic Groves family: efficient allocation, each agent paid the others' values, plus a term of his own.

Notation follows docs/design.md section 1 (payments :math:`x_i` *from* agent :math:`i` *to* the designer). Let
:math:`w_j(g) = \sum_a p(a|\theta_g) v_j(\theta_{g,j}, a)` be agent :math:`j`'s expected flow value at node
:math:`g = (h, \theta)` and :math:`V_{-i}` the others' expected discounted values under the efficient policy.
Yoon (2021, Definition 1) writes a dynamic Groves mechanism through its *total* transfer (the expected discounted
payments from a node on), :math:`Z_i(\theta) = -V_{-i}(\theta) + \Phi_i(\theta_{-i})`; here the distribution
term may also depend on the public history, :math:`h_i(h, \theta_{-i})` (any function of the history and the
others' current reports). The flow payments that have this total are

.. math::
   x_i(h, \theta) = -\sum_{j \ne i} w_j(\theta) + h_i(h, \theta_{-i})
                    - \delta \sum_{\theta'} P(\theta'|\theta)\, h_i(\text{child}(h, \theta), \theta'_{-i})

(the :math:`-V_{-i}` parts telescope to the flow term; :math:`P(\theta'|\theta)` mixes the kernels over the
allocation). Agent :math:`i`'s utility at every node is then :math:`U_i(h, \theta) = W(\theta) - h_i(h,
\theta_{-i})`, and a one-shot misreport :math:`r` yields :math:`Q(\theta, a(r, \theta_{-i})) - h_i(h,
\theta_{-i})`: the others' next types move with the action only (independent types), so the two expectations of
:math:`h_i` at the deviation's child cancel. With a dynamically efficient allocation, :math:`Q \le W`: every
member is periodic ex post IC (Yoon 2021, Theorem 3; Bergemann and Välimäki 2010, Theorem 1 for the pivot).

Members
    ``h = "zero"``: the team mechanism of Athey and Segal (2007, section 4),
    :func:`mechlp.constructions.team.team_transfers`. ``h = "clarke"``: :math:`h_i = W_{-i}(\theta_{-i})`, the
    others' efficient value without :math:`i` (period by period on a finite horizon), which gives the dynamic
    pivot of Bergemann and Välimäki (2010), :func:`mechlp.constructions.pivot.dynamic_pivot`: its flow payment
    :math:`z_i = \sum_{j\ne i}[v_j(a^*_{-i}) - v_j(a^*)] + \delta(C_{-i}(a^*_{-i}) - C_{-i}(a^*))` is the formula
    above with :math:`W_{-i}(\theta_{-i}) = \sum_{j \ne i} v_j(a^*_{-i}) + \delta C_{-i}(\theta, a^*_{-i})`. Any
    other term is given per node (``(n_agents, n_nodes)``, constant in the agent's own current type) or per
    history and others' profile (one ``(n_hist, M_i)`` array per agent).

Yoon's Theorem 4 is the converse: on an unrestricted domain every periodic ex post IC mechanism with an efficient
policy is a Groves mechanism. On a finite model it need not hold; :func:`mechlp.solve.ranges.transfer_ranges`
measures how much freedom the rows leave.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, verify
from mechlp.constructions.pivot import pivot_values
from mechlp.model import tolerances
from mechlp.model.answer import VerifiedOnSpace
from mechlp.model.beliefs import expected_continuation
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, HistoryTree, StateSpace, question_space

__all__ = ["GrovesResult", "groves_terms", "groves_transfers", "groves"]

#: The named distribution terms of :func:`groves_terms`.
NAMED_TERMS = ("zero", "clarke")


def groves_terms(space: StateSpace, h: Any = "clarke") -> np.ndarray:
    r"""The distribution terms :math:`h_i(h, \theta_{-i})` at every node, ``(n_agents, n_nodes)``.

    Parameters
    ----------
    space : StateSpace
    h : {"zero", "clarke"}, ndarray of shape (n_agents, n_nodes), or sequence of arrays
        ``"zero"`` (the team mechanism), ``"clarke"`` (:math:`W_{-i}(\theta_{-i})`, the dynamic pivot), one value
        per agent and node (it must not vary with the agent's own current type: checked exactly), or per agent an
        array ``(n_hist, M_i)`` indexed by history and the others' profile (``env.profile_index`` order).

    Raises
    ------
    ValueError
        For an unknown name, a wrong shape, a non-finite entry, or a term that varies with the agent's own type
        (the message names the agent, the history and the others' profile).
    """
    env = space.env
    n, k = env.n_agents, env.n_profiles
    if isinstance(h, str):
        if h not in NAMED_TERMS:
            raise ValueError(f"h must be one of {NAMED_TERMS} or an array, got {h!r}")
        if h == "zero":
            return np.zeros((n, space.n_nodes))
        horizon = space.horizon if isinstance(space, HistoryTree) else None
        vals = pivot_values(env, horizon=horizon)
        period = (
            np.zeros(space.n_nodes, dtype=np.int64)
            if vals.periods == 1
            else np.asarray(space.hist_period)[space.node_hist] - 1
        )
        return vals.W_minus[period, :, space.node_profile].T
    if isinstance(h, np.ndarray) and h.ndim == 2 and h.shape == (n, space.n_nodes):
        out = np.asarray(h, dtype=float)
        if not np.isfinite(out).all():
            raise ValueError("h must be finite")
        for i in range(n):  # agents: the term may not depend on the agent's own current type
            idx = env.profile_index(i, np.arange(env.type_counts[i])[:, None], np.arange(env.others_count(i))[None])
            per = out[i].reshape(space.n_hist, k)[:, idx]  # (H, K_i, M_i)
            bad = np.argwhere(per != per[:, :1, :])
            if bad.size:
                hist, t, m = (int(v) for v in bad[0])
                raise ValueError(
                    f"h for agent {env.agents[i].name!r} varies with the agent's own type at history {hist} "
                    f"(others' profile {m}, own type {env.agents[i].types[t]!r}); a Groves term is h_i(h, theta_-i)"
                )
        return out
    if isinstance(h, list | tuple) and len(h) == n:
        out = np.empty((n, space.n_nodes))
        for i in range(n):  # agents: expand (n_hist, M_i) to the nodes
            arr = np.asarray(h[i], dtype=float)
            m_i = env.others_count(i)
            if arr.shape != (space.n_hist, m_i):
                raise ValueError(f"h[{i}] has shape {arr.shape}; expected ({space.n_hist}, {m_i}) (histories x others)")
            if not np.isfinite(arr).all():
                raise ValueError(f"h[{i}] must be finite")
            idx = env.profile_index(i, np.arange(env.type_counts[i])[:, None], np.arange(m_i)[None])
            others = np.empty(k, dtype=np.int64)
            others[idx.reshape(-1)] = np.tile(np.arange(m_i), env.type_counts[i])
            out[i] = arr[space.node_hist, others[space.node_profile]]
        return out
    raise ValueError(
        f"h must be one of {NAMED_TERMS}, an array of shape ({n}, {space.n_nodes}) or a sequence of {n} arrays "
        "(n_hist, M_i)"
    )


def groves_transfers(space: StateSpace, terms: np.ndarray) -> np.ndarray:
    r"""Flow payments of the Groves mechanism with distribution terms ``terms`` (module docstring):
    :math:`x_i(g) = -\sum_{j \ne i} w_j(g) + h_i(g) - \delta E[h_i(\text{child}) | g]`.

    Parameters
    ----------
    space : StateSpace
    terms : ndarray, shape (n_agents, n_nodes)
        :func:`groves_terms`.

    Returns
    -------
    ndarray, shape (n_agents, n_nodes)
    """
    flow = space.node_flow_values()  # (n, N)
    team = -(flow.sum(axis=0, keepdims=True) - flow)
    return team + terms - space.env.discount * expected_continuation(space, terms)


@dataclass
class GrovesResult(VerifiedOnSpace):
    """A member of the dynamic Groves family on a space and its verification (result contract:
    :mod:`mechlp.model.answer`).

    Attributes
    ----------
    status : str
        (property) ``"verified"`` when the verifier finds no IC violation (periodic ex post IC, the family's
        promise), ``"verification_failed"``, or ``"not_verified"`` (``check=False``). Participation is reported
        (``participation_ok``), not promised: the team mechanism (``h = "zero"``) is not IR.
    mechanism : Mechanism
    terms : ndarray, shape (n_agents, n_nodes)
        The distribution terms :math:`h_i(h, \\theta_{-i})`.
    h : str
        ``"zero"``, ``"clarke"`` or ``"given"``.
    verification : Verification or None
        ``verify(mechanism, ic="ex_post", ir=ir, budget="none", outside_option=...)``.
    participation_ok : bool or None
        Whether the IR rows of that verification hold.
    surplus : ndarray
        :math:`\\Pi(h)` of the mechanism.

    JSON (:meth:`to_dict`): the contract's keys plus ``h``, ``participation_ok`` and ``ex_ante_surplus``.
    """

    env: Environment
    space: StateSpace
    mechanism: Mechanism
    terms: np.ndarray
    h: str
    surplus: np.ndarray
    verification: Verification | None = None
    participation_ok: bool | None = None
    tol: float = tolerances.FEASIBILITY
    message: str = ""
    timings: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.verification is None:
            return "not_verified"
        return "verified" if self.verification.max_violation["ic"] <= self.tol else "verification_failed"

    def _answer_fields(self) -> dict[str, Any]:
        return {"h": self.h, "participation_ok": self.participation_ok, "ex_ante_surplus": float(self.surplus[0])}


def groves(
    env: Environment,
    space: StateSpace | None = None,
    *,
    h: Any = "clarke",
    check: bool = True,
    ir: str = "ex_post",
    outside_option: Any = 0.0,
    tol: float = tolerances.FEASIBILITY,
) -> GrovesResult:
    r"""A member of the dynamic Groves family (module docstring), verified periodic ex post IC.

    Parameters
    ----------
    env : Environment
        Independent types; the allocation should be dynamically efficient (``h="clarke"`` checks it; otherwise
        the verification decides).
    space : StateSpace, optional
        Default: the Markov space for an infinite horizon, the history tree otherwise (sized for the verifier).
    h : {"zero", "clarke"} or array
        The distribution terms (:func:`groves_terms`): ``"zero"`` is the team mechanism, ``"clarke"`` the dynamic
        pivot.
    check : bool
        Run the independent verifier (``ic="ex_post"``, ``ir``, ``budget="none"``).
    ir : {"ex_post", "interim", "ex_ante"}
        Participation family to report (with ``outside_option``).
    outside_option : float, sequence or mapping
    tol : float
        Verification tolerance.

    Returns
    -------
    GrovesResult
    """
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    env.require_independent("the dynamic Groves family (others' next types must move with the action only)")
    space = question_space(env, "verify", DEFAULT_MEMORY_LIMIT, space=space, advice=" (use a shorter horizon)")
    t0 = time.perf_counter()
    terms = groves_terms(space, h)
    mech = Mechanism(space, groves_transfers(space, terms))
    name = h if isinstance(h, str) else "given"
    res = GrovesResult(env, space, mech, terms, name, mech.surplus(), tol=tol, timings={"build": 0.0})
    res.timings["build"] = time.perf_counter() - t0
    if check:
        t1 = time.perf_counter()
        res.verification = verify(mech, ic="ex_post", ir=ir, budget="none", outside_option=outside_option, tol=tol)
        res.participation_ok = bool(res.verification.max_violation["ir"] <= tol)
        res.timings["verify"] = time.perf_counter() - t1
    label = {"zero": "team mechanism (h = 0)", "clarke": "dynamic pivot (Clarke h = W_-i)"}.get(name, "given h")
    ic_text = {"verified": "ex post IC verified", "not_verified": "not verified"}.get(
        res.status, "ex post IC VERIFICATION FAILED"
    )
    ir_text = "" if res.participation_ok is None else (f"; IR {ir} " + ("holds" if res.participation_ok else "fails"))
    res.message = (
        f"Groves mechanism, {label} ({space.kind} space, {space.n_hist:,} histories): {ic_text}{ir_text}; "
        f"expected surplus {float(res.surplus[0]):.6g} at the root"
    )
    return res

r"""The min-max surplus by backward recursion, history by history (Lamba 2022, Lemma 6 and Theorem 1).

Why a recursion
    In interim utilities (:mod:`mechlp.constraints.interim`) the rows of the min-max problem at a history ``h``
    for agent ``i`` are *difference constraints* between the agent's own interim utilities at ``h``:

    .. math::
       \bar U_i(t|h) - \bar U_i(r|h) \ge c_i(t, r|h), \qquad \bar U_i(t|h) \ge o_i(t),

    .. math::
       c_i(t, r|h) = \sum_m P(m|h) \sum_a p(a|r,m)[v_i(t,a) - v_i(r,a)]
       + \delta \sum_m P(m|h) \sum_{t'} [G_i(t'|t; r,m) - G_i(t'|r; r,m)]\, \bar U_i(t'|h(r,m)),

    where ``m`` runs over the others' report profiles, ``h(r, m)`` is the history after the report profile
    ``(r, m)`` and :math:`G_i(\cdot|x; s) = \sum_a p(a|s) F_i(\cdot|x, a)` is agent ``i``'s kernel from type ``x``
    under the allocation at profile ``s``. The weights ``c`` depend only on the *children's* interim utilities,
    and the designer's surplus :math:`\Pi(h) = W(h) - \sum_i \sum_t P_i(t|h) \bar U_i(t|h)` (Lamba 2022, eq. 4,
    with :math:`W(h)` the expected discounted welfare) falls in every :math:`\bar U_i(t|h)`. Given the children,
    the smallest solution at ``h`` is the **longest-path** solution on the graph with a source, an edge
    ``source -> t`` of weight :math:`o_i(t)` and an edge ``r -> t`` of weight :math:`c_i(t, r|h)`:

    .. math::
       \bar U_i(t|h) = \max\Big(o_i(t),\; \max_{r \ne t} \bar U_i(r|h) + c_i(t, r|h)\Big).

    It is computed by Bellman-Ford (at most ``K_i`` rounds of relaxation), vectorized over all the histories of
    a depth level at once (arrays ``(n_hist_level, K_i, K_i)``). A **positive cycle** means IC cannot hold at
    ``h`` with this continuation; it is reported with its types and weight (:class:`Cycle`).

Trees and Markov spaces
    On a :class:`~mechlp.model.spaces.HistoryTree` the recursion runs backwards one depth level at a time (children
    first): linear in the number of nodes. On the :class:`~mechlp.model.spaces.MarkovSpace` the children are the
    states themselves; the backward map is iterated to its fixed point. The constraints of agent ``i`` at a
    state depend on the state only through the others' beliefs :math:`P(m|h)`, so states with the same beliefs
    share one *context* (for bilateral trade with action-free kernels: the other agent's last report). Once the
    binding edges (the longest-path tree) stop changing, an **exact-structure step** solves the linear system
    "every binding edge holds with equality" for all contexts at once, and one more application of the map
    confirms the fixed point (``residual``). The number of iterations is reported.

Tightness: is this Lamba's min-max?
    The recursion always returns an IC + IR mechanism that maximizes :math:`\Pi(h)` at each ``h`` *given its own
    continuation*. It is the pointwise smallest IC + IR solution -- so it maximizes :math:`\Pi(h)` at every
    history simultaneously, the min-max mechanism of Lamba (2022, Theorem 1) -- when the following sufficient
    condition holds, which is checked (``pointwise_optimal``): write the continuation part of every binding
    edge's weight in terms of the child's own binding edges (the child's utilities as sums of edge differences
    from the source); every coefficient must be non-negative (by backward induction any feasible solution then
    has binding-edge differences at least as large, hence larger utilities). On stationary (Markov) states the
    induction is replaced by a fixed-point argument: the differences ``z`` of any feasible solution satisfy
    :math:`z \ge A z` with the non-negative coefficient matrix ``A``, so :math:`z \ge 0` when its spectral
    radius is below 1 (checked with a Collatz-Wielandt upper bound from power iteration). Ties between binding
    rows are broken towards adjacent types (the tree the check uses; the values do not depend on it). With
    first-order stochastically dominant kernels and a monotone allocation (Lamba's setting: local downward IC
    and the IR of the lowest type bind, Lemma 6) the coefficients are the differences
    :math:`\Pr(t' \ge j | t) - \Pr(t' \ge j | t-1) \ge 0`. When the check fails,
    :func:`mechlp.solve.questions.minmax` with ``method="lp"`` answers the min-max question.

The answer is returned as interim utilities per agent ``(n_hist, K_i)`` and :math:`\Pi^*(h)` for every history;
:meth:`RecursionSolution.mechanism` builds transfers with :math:`U_i(h, \theta) = \bar U_i(\theta_i|h)`,

.. math::
   x_i(h, \theta) = \sum_a p(a|\theta) v_i(\theta_i, a) - \bar U_i(\theta_i|h)
   + \delta \sum_{t'} G_i(t'|\theta_i; \theta)\, \bar U_i(t'|h\theta),

(:func:`mechlp.model.transfers.transfers_from_interim`), so that :func:`mechlp.audit.verifier.verify` re-checks the
answer exactly like an LP answer (:func:`minmax_result`, used by :func:`mechlp.solve.questions.minmax` with
``method="recursion"``).

Correlated types (``env.correlated``) are refused (:func:`refuse_correlated`): the rows above use that agent
``i``'s belief about the others does not depend on its own type and that the others' kernels sum out of the
continuation, which fails with a joint kernel; :func:`mechlp.solve.questions.minmax` then uses the LP.

Everything is array arithmetic: Python loops run over depth levels, agents, types (Bellman-Ford rounds),
actions, fixed-point iterations and the distinct shapes of binding trees -- never over histories or nodes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import surplus as verifier_surplus
from mechlp.audit.verifier import verify
from mechlp.backends.base import SolverOutput
from mechlp.constraints.deviation import flow_gain, ic_pair_mask, kernel_gap
from mechlp.model import tolerances
from mechlp.model.answer import Answer, space_size
from mechlp.model.beliefs import (
    joint_beliefs,
    joint_transition,
    marginal_beliefs,
    mixed_kernels,
    next_marginals,
    others_beliefs,
)
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question, outside_options, parse_notion
from mechlp.model.spaces import (
    DEFAULT_MEMORY_LIMIT,
    MAX_MEMORY_LIMIT,
    HistoryTree,
    MarkovSpace,
    StateSpace,
    TreeWithTail,
    check_memory,
    estimate_memory,
)
from mechlp.model.transfers import transfers_from_interim
from mechlp.solve.result import Result

__all__ = [
    "structure_refusal",
    "Cycle",
    "RecursionSolution",
    "Boundary",
    "solve",
    "minmax_result",
    "estimate_bytes",
    "IC_MODES",
    "RELAX_TOL",
    "FIXED_POINT_TOL",
    "EXACT_STEP_MAX_UNKNOWNS",
]

#: IC modes the recursion handles (Bayesian IC over all type pairs, or adjacent pairs only).
IC_MODES: tuple[str, ...] = ("bayesian", "local")
#: A Bellman-Ford relaxation counts only when it raises a utility by more than ``RELAX_TOL * (1 + |U|)``:
#: zero-weight cycles (pooled types) then never update, so the binding edges always form a tree; a history still
#: improving after ``K_i`` rounds has a positive cycle (weight above this threshold) and is reported.
RELAX_TOL: float = tolerances.RELAX
#: Markov fixed point: accepted when one more application of the backward map moves no interim utility by more
#: than ``FIXED_POINT_TOL * (1 + max |U|)``.
FIXED_POINT_TOL: float = tolerances.FIXED_POINT
#: Largest linear system (contexts x types of one agent) of the exact-structure step; larger Markov problems
#: are iterated until the change is below ``FIXED_POINT_TOL``.
EXACT_STEP_MAX_UNKNOWNS: int = 3000
#: An edge is tight (binding) when its slack is at most ``TIGHT_TOL * (1 + |U|)``.
TIGHT_TOL: float = tolerances.TIGHT
#: Coefficients of the pointwise-optimality check may be this negative (rounding of kernel differences).
CHECK_TOL: float = tolerances.POINTWISE_CHECK
_MAX_CYCLES_REPORTED = 5


# ---------------------------------------------------------------------------------------------- records
@dataclass
class Cycle:
    """A positive cycle of the IC difference constraints of one agent at one history (IC fails there).

    Attributes
    ----------
    agent : str
    history : int
    where : str
        ``space.describe_history(history)``.
    types : list of str
        Type labels around the cycle: ``types[k]`` is constrained by ``types[k+1]`` (true type ``types[k]``
        must not gain by reporting ``types[k+1]``), cyclically. Empty when the cycle could not be traced.
    weight : float
        Sum of the edge weights :math:`c_i(t, r|h)` around the cycle (positive: the rows contradict each other).
    static_weight : float
        The part of ``weight`` from current-period valuations only.
    conclusive : bool
        The continuation terms of the cycle's rows vanish for *every* continuation (last period, ``delta = 0``,
        or equal kernel rows), so no mechanism is IC here. Otherwise the cycle only shows that the recursion's
        own continuation cannot be extended; :func:`mechlp.solve.questions.minmax` with ``method="lp"`` decides.
    """

    agent: str
    history: int
    where: str
    types: list[str]
    weight: float
    static_weight: float
    conclusive: bool

    def describe(self) -> str:
        path = " -> ".join([*self.types, self.types[0]]) if self.types else "(not traced)"
        return (
            f"{self.agent} at {self.where}: positive IC cycle {path} of weight {self.weight:.6g} "
            f"(current-period part {self.static_weight:.6g}; "
            f"{'no mechanism is IC here' if self.conclusive else 'given the recursion continuation'})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "history": int(self.history),
            "where": self.where,
            "types": list(self.types),
            "weight": float(self.weight),
            "static_weight": float(self.static_weight),
            "conclusive": bool(self.conclusive),
        }


@dataclass
class RecursionSolution(Answer):
    r"""Result of :func:`solve` (result contract: :mod:`mechlp.model.answer`; the recursion does not verify, so
    ``verification`` and ``certificate`` are ``None``: :func:`minmax` verifies its mechanism).

    Attributes
    ----------
    space : StateSpace
    status : str
        ``"optimal"`` (solved), ``"infeasible"`` (a conclusive positive cycle: IC cannot hold), ``"error"``
        (a positive cycle given the recursion's continuation, or no fixed point within ``max_iter``).
    message : str
    interim_utilities : list of ndarray or None
        Per agent ``(n_hist, K_i)``: :math:`\bar U^*_i(t|h)`.
    surplus : ndarray or None
        :math:`\Pi^*(h)` at every history.
    welfare : ndarray or None
        :math:`W(h)`, expected discounted welfare of the allocation from ``h`` on.
    parents : list of ndarray or None
        Per agent ``(n_hist, K_i)``: the binding edge into each type (``-1``: participation binds; ``r``: the
        row "true type ``t`` does not report ``r``" binds).
    pointwise_optimal : bool or None
        The sufficient condition of the module docstring holds: the recursion's :math:`\Pi^*` is the largest
        surplus at every history (the LP answer).
    min_coefficient, radius_bound : float
        The quantities of that check: the smallest coefficient (must be ``>= 0``) and, for stationary states, an
        upper bound on the spectral radius of the coefficient matrix (must be ``< 1``).
    cycles : list of Cycle
    iterations : dict
        Markov space: fixed-point iterations per agent (``{}`` on a tree).
    exact_step : dict
        Markov space: per agent, whether the exact-structure step produced the fixed point.
    residual : float
        Markov space: largest change of one more application of the backward map at the returned point.
    seconds : dict
        ``"solve"`` (interim utilities, with the pointwise-optimality check when requested) and ``"surplus"``
        (welfare and :math:`\Pi^*`).
    options : dict
        ``ic`` and ``outside_option`` (per agent, per type).
    timings : dict
        (property) ``seconds``.
    size : dict
        (property) ``histories`` and ``nodes``.

    JSON (:meth:`to_dict`): the contract's keys (``transfers`` from :meth:`transfers` when solved) plus
    ``interim_utilities``, ``welfare``, ``pointwise_optimal``, ``min_coefficient``, ``radius_bound``, ``cycles``,
    ``iterations``, ``exact_step``, ``residual`` and ``options``.
    """

    space: StateSpace
    status: str
    message: str
    interim_utilities: list[np.ndarray] | None = None
    surplus: np.ndarray | None = None
    welfare: np.ndarray | None = None
    parents: list[np.ndarray] | None = None
    pointwise_optimal: bool | None = None
    min_coefficient: float = 0.0
    radius_bound: float = 0.0
    cycles: list[Cycle] = field(default_factory=list)
    iterations: dict[str, int] = field(default_factory=dict)
    exact_step: dict[str, bool] = field(default_factory=dict)
    residual: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    verification = None
    certificate = None

    @property
    def timings(self) -> dict:
        return dict(self.seconds)

    @property
    def size(self) -> dict:
        return space_size(self.space)

    def _answer_transfers(self) -> np.ndarray | None:
        return None if self.interim_utilities is None else self.transfers()

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "interim_utilities": self.interim_utilities,
            "welfare": self.welfare,
            "pointwise_optimal": self.pointwise_optimal,
            "min_coefficient": float(self.min_coefficient),
            "radius_bound": float(self.radius_bound),
            "cycles": [cy.to_dict() for cy in self.cycles],
            "iterations": self.iterations,
            "exact_step": self.exact_step,
            "residual": float(self.residual),
            "options": self.options,
        }

    def transfers(self) -> np.ndarray:
        r"""``(n_agents, n_nodes)`` transfers implementing the interim utilities (module docstring formula;
        :func:`mechlp.model.transfers.transfers_from_interim`)."""
        if self.interim_utilities is None:
            raise ValueError(f"no interim utilities to implement: the recursion ended with status {self.status!r}")
        return transfers_from_interim(self.space, self.interim_utilities)

    def mechanism(self) -> Mechanism:
        """The :class:`~mechlp.model.mechanism.Mechanism` with :meth:`transfers` (verify it with
        :func:`mechlp.audit.verifier.verify`)."""
        return Mechanism(self.space, self.transfers())

    def summary(self) -> str:
        if self.status != "optimal":
            return self.message
        pi = self.surplus
        h = int(np.argmin(pi))
        return (
            f"Pi*(root) = {pi[0]:.6g}, smallest Pi* = {pi[h]:.6g} at {self.space.describe_history(h)}; {self.message}"
        )


@dataclass(frozen=True)
class Boundary:
    r"""Given values at the deepest level of a :class:`~mechlp.model.spaces.HistoryTree` (the roots of subtrees
    solved apart, :mod:`mechlp.workflows.split`): :func:`solve` takes them instead of solving that level.

    Pi* and the min-max utilities at a history depend on its subtree only (the recursion runs children first), so
    the levels above a cut need from each subtree root exactly what the recursion reads from a child: its interim
    utilities, its binding edges (for the pointwise-optimality check) and its welfare :math:`W`.

    Attributes
    ----------
    interim_utilities : list of ndarray
        Per agent ``(n_last, K_i)``: :math:`\bar U^*_i(t|h)` at the histories of the tree's last level, in order.
    parents : list of ndarray
        Per agent ``(n_last, K_i)``: the binding edges there (:attr:`RecursionSolution.parents`).
    welfare : ndarray
        ``(n_last,)``: :math:`W(h)` there (the whole continuation from ``h`` on, not one period).
    """

    interim_utilities: list[np.ndarray]
    parents: list[np.ndarray]
    welfare: np.ndarray

    def check(self, space: StateSpace) -> None:
        """``ValueError`` unless ``space`` is a history tree and every array has one row per last-level history."""
        if not isinstance(space, HistoryTree):
            raise ValueError(f"boundary needs a HistoryTree, got a {space.kind} space")
        a, b = space.levels()[-1]
        n = space.env.n_agents
        for what, arrs in (("interim_utilities", self.interim_utilities), ("parents", self.parents)):
            if len(arrs) != n:
                raise ValueError(f"boundary.{what} has {len(arrs)} arrays; expected {n}, one per agent")
            for i, (arr, ag) in enumerate(zip(arrs, space.env.agents, strict=True)):
                if np.shape(arr) != (b - a, ag.n_types):
                    raise ValueError(
                        f"boundary.{what}[{i}] has shape {np.shape(arr)}; expected ({b - a}, {ag.n_types}) "
                        "(last-level histories x types)"
                    )
        if np.shape(self.welfare) != (b - a,):
            raise ValueError(f"boundary.welfare has shape {np.shape(self.welfare)}; expected ({b - a},)")


# ---------------------------------------------------------------------------------------------- model
@dataclass
class _AgentData:
    index: int
    name: str
    labels: tuple[str, ...]
    k: int  # own types K_i
    m: int  # others' profiles M
    others: list[int]
    prof: np.ndarray  # (K_i, M) profile of (own type, others' profile)
    flow_gain: np.ndarray  # (K_i * K_i, M): row t * K_i + r, sum_a p(a|r,m) [v(t,a) - v(r,a)]
    kern: np.ndarray  # (K, K_i, K_i) mixed kernel G_i(.|x; s) (mechlp.model.beliefs.mixed_kernels)
    action_dep: bool
    outside: np.ndarray  # (K_i,)
    no_edge: np.ndarray  # (K_i, K_i) bool, [t, r]: no IC row "t does not report r" (diagonal; non-adjacent if local)
    direction: int  # +1 when the valuation rises with the type (binding chain from the lowest type), else -1


class _Model:
    """Arrays of the environment the recursion needs (per profile; never per node)."""

    def __init__(self, env: Environment, ic: str, outside: list[np.ndarray]):
        self.env = env
        self.delta = float(env.discount)
        self.counts = env.type_counts
        self.k = env.n_profiles
        self.alloc = np.asarray(env.allocation, dtype=float)  # (K, A)
        self.types = env.profile_types()  # (K, n)
        kernels = [np.asarray(ag.kernel(env.n_actions), dtype=float) for ag in env.agents]
        self.any_action_dep = env.action_dependent
        self.kernels = [kern if ag.action_dependent else kern[:1] for ag, kern in zip(env.agents, kernels, strict=True)]
        mixed = mixed_kernels(env)  # (K, K_j, K_j) per agent: G_j(.|x; s) = sum_a p(a|s) F_j(.|x, a)
        # next-period marginal of agent j after the truthful profile s: G_j(.|s_j; s), (K, K_j)
        self.next_marg = next_marginals(env)
        self.flow = env.flow_values()  # (n, K)
        self.agents: list[_AgentData] = []
        for i, ag in enumerate(env.agents):
            ki = ag.n_types
            others = [j for j in range(env.n_agents) if j != i]
            m = env.others_count(i)
            prof = env.profile_index(i, np.arange(ki)[:, None], np.arange(m)[None, :])
            val = np.asarray(ag.valuation, dtype=float)
            gain = flow_gain(self.alloc, val, prof).reshape(ki * ki, m)
            no_edge = ~ic_pair_mask(ki, local=(ic == "local"))
            self.agents.append(
                _AgentData(
                    i,
                    ag.name,
                    ag.types,
                    ki,
                    m,
                    others,
                    prof,
                    gain,
                    mixed[i],
                    ag.action_dependent,
                    np.asarray(outside[i], dtype=float),
                    no_edge,
                    1 if float((val[-1] - val[0]).sum()) >= 0 else -1,
                )
            )

    # -- kernels ------------------------------------------------------------------------------
    def apply_transition(self, y: np.ndarray) -> np.ndarray:
        r"""``(Q y)[s] = \sum_a p(a|s) \sum_{s'} \prod_j F_j(s'_j|s_j, a) y[s']`` without forming ``Q``.

        The product kernel of one action is applied one agent axis at a time (cost ``K * sum_j K_j``). Exact for
        the environments :class:`~mechlp.model.environment.Environment` accepts (kernels that ignore the action, or a
        deterministic allocation).
        """

        def kron_apply(mats: list[np.ndarray]) -> np.ndarray:
            t = y.reshape(self.counts)
            for j, f in enumerate(mats):
                t = np.moveaxis(np.tensordot(f, t, axes=([1], [j])), 0, j)
            return t.reshape(-1)

        if not self.any_action_dep:
            return kron_apply([kern[0] for kern in self.kernels])
        out = np.zeros(self.k)
        for a in range(self.alloc.shape[1]):  # loop over actions
            if np.any(self.alloc[:, a] > 0):
                out += self.alloc[:, a] * kron_apply([kern[min(a, kern.shape[0] - 1)] for kern in self.kernels])
        return out

    # -- the backward map ---------------------------------------------------------------------
    def gain(self, ad: _AgentData, poth: np.ndarray) -> np.ndarray:
        """``(H, K_i, K_i)``: current-period part of :math:`c_i(t, r|h)`."""
        return (poth @ ad.flow_gain.T).reshape(poth.shape[0], ad.k, ad.k)

    def next_expectation(self, ad: _AgentData, uchild: np.ndarray) -> np.ndarray:
        r"""``(..., K, K_i)``: :math:`\sum_{t'} G_i(t'|x; s)\, u[..., s, t']`, indexed ``[..., s, x]``."""
        if not ad.action_dep:
            return uchild @ ad.kern[0].T
        return np.einsum("...sy,sxy->...sx", uchild, ad.kern)

    def weights(self, ad: _AgentData, gain: np.ndarray, v: np.ndarray | None) -> np.ndarray:
        r"""Edge weights ``c[h, t, r]`` from ``V[h, x, r]`` (continuation of true type ``x`` after report ``r``)."""
        if v is None:
            c = gain.copy()
        else:
            c = gain + self.delta * (v - np.diagonal(v, axis1=1, axis2=2)[:, None, :])
        c[:, ad.no_edge] = -np.inf
        return c

    def gap(self, ad: _AgentData, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        r"""``(E, M, K_i)``: :math:`G_i(\cdot|t; s) - G_i(\cdot|p; s)` for edges ``(t, p)`` at the reported profiles
        ``s = prof[p, m]`` (:func:`mechlp.constraints.deviation.kernel_gap`)."""
        return kernel_gap(self.alloc, self.kernels[ad.index], ad.prof, t, p)


# ---------------------------------------------------------------------------------------------- longest path
def _evaluate_tree(c: np.ndarray, o: np.ndarray, par: np.ndarray) -> np.ndarray:
    """Path values of the tree ``par`` (``-1``: source edge) under the weights ``c``: ``(H, K)``."""
    h, k = par.shape
    rows = np.arange(h)[:, None]
    has = par >= 0
    safe = np.where(has, par, 0)
    w = np.where(has, c[rows, np.arange(k)[None, :], safe], 0.0)
    dist = np.broadcast_to(o, (h, k)).copy()
    for _ in range(k):  # tree depth <= K rounds
        dist = np.where(has, dist[rows, safe] + w, o[None, :])
    return dist


def _longest_path(
    c: np.ndarray, o: np.ndarray, parent: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Longest paths from the source, for every history at once (Bellman-Ford, Jacobi rounds).

    Parameters
    ----------
    c : ndarray (H, K, K)
        ``c[h, t, r]``: weight of the edge ``r -> t`` (``-inf``: no edge).
    o : ndarray (K,)
        Weights of the source edges (outside options).
    parent : ndarray (H, K), optional
        A tree to start from (warm start): its path values are lower bounds of the longest paths.

    Returns
    -------
    dist : ndarray (H, K)
    parent : ndarray (H, K) of int
        The binding edge into each type (``-1``: the source edge).
    cycle : ndarray (H, K) of bool
        Types still improving after ``K`` rounds: a positive cycle at that history.
    """
    h, k, _ = c.shape
    if parent is None:
        dist = np.broadcast_to(o, (h, k)).copy()
        par = np.full((h, k), -1, dtype=np.int64)
    else:
        par = parent.astype(np.int64, copy=True)
        dist = _evaluate_tree(c, o, par)
        below = o[None, :] > dist + RELAX_TOL * (1.0 + np.abs(dist))  # the source edges relax too
        dist = np.where(below, o[None, :], dist)
        par = np.where(below, -1, par)
    improving = np.zeros((h, k), dtype=bool)
    for _ in range(k):  # K - 1 rounds reach every simple path; an update in round K means a positive cycle
        cand = dist[:, None, :] + c
        best_r = np.argmax(cand, axis=2)
        best = np.take_along_axis(cand, best_r[..., None], axis=2)[..., 0]
        improving = best > dist + RELAX_TOL * (1.0 + np.abs(dist))
        if not improving.any():
            break
        dist = np.where(improving, best, dist)
        par = np.where(improving, best_r, par)
    return dist, par, improving


def _prefer_adjacent(c: np.ndarray, o: np.ndarray, dist: np.ndarray, par: np.ndarray, direction: int) -> np.ndarray:
    """Among tight edges, re-choose each type's binding edge: the nearest type on the agent's side, else the source.

    Longest paths are unique but their trees are not when several rows bind (ties). The values do not depend on
    the choice; the pointwise-optimality check does, and Lamba's structure (Lemma 6: local IC and the
    participation of the extreme type bind, the chain running from the type whose valuation is lowest) is found
    by preferring, for ``direction = +1``, the next lower type, then lower ones, then the source, then higher
    types (mirrored for ``-1``). A switch ``t <- r`` is made only when the edge is tight and ``r`` is not a
    descendant of ``t`` (the edges stay a tree). Loops over types only.
    """
    h, k = par.shape
    if k < 2:
        return par
    par = par.copy()
    rows = np.arange(h)
    scale = TIGHT_TOL * (1.0 + np.abs(dist))
    step = (np.arange(k)[:, None] - np.arange(k)[None, :]) * direction  # [t, r] > 0: r on the preferred side
    rank = np.where(step > 0, step, k - step).astype(float)  # preferred side 1..K-1, then the other side
    source_rank = float(k)
    order = range(k) if direction > 0 else range(k - 1, -1, -1)
    for t in order:  # loop over types
        slack = dist[:, t : t + 1] - dist - c[:, t, :]  # (H, K) over r; missing edges give +inf
        tight = np.abs(slack) <= scale[:, t : t + 1]
        tight[:, t] = False
        if not tight.any():
            continue
        node = np.broadcast_to(np.arange(k), (h, k)).copy()  # exclude descendants of t (walk up <= K steps)
        desc = np.zeros((h, k), dtype=bool)
        for _ in range(k):
            desc |= node == t
            node = np.where(node >= 0, par[rows[:, None], np.maximum(node, 0)], -1)
        pref = np.where(tight & ~desc, rank[t][None, :], np.inf)
        best = np.argmin(pref, axis=1)
        best_d = pref[rows, best]
        cur = par[:, t]
        source_tight = np.abs(dist[:, t] - o[t]) <= scale[:, t]
        cur_d = np.where(cur >= 0, rank[t][np.maximum(cur, 0)], np.where(source_tight, source_rank, np.inf))
        switch = best_d < cur_d
        par[switch, t] = best[switch]
        back = (cur >= 0) & source_tight & (source_rank < np.minimum(best_d, cur_d))
        par[back, t] = -1
    return par


def _trace_cycle(par: np.ndarray, start: int) -> list[int]:
    """Walk the binding edges back from ``start`` into the cycle they contain (one history; loops over types)."""
    k = par.size
    t = start
    for _ in range(k):
        t = int(par[t])
        if t < 0:
            return []
    cyc = [t]
    u = int(par[t])
    while u != t and len(cyc) <= k:
        cyc.append(u)
        u = int(par[u])
    return cyc[::-1] if u == t else []


def _ancestors(shapes: np.ndarray) -> np.ndarray:
    """``(S, K, K)``: ``anc[s, t', t'']`` is 1 when ``t''`` is ``t'`` or an ancestor of ``t'`` in tree ``s``."""
    n_s, k = shapes.shape
    anc = np.zeros((n_s, k, k))
    anc[:, np.arange(k), np.arange(k)] = 1.0
    cur = np.broadcast_to(np.arange(k), (n_s, k)).copy()
    for _ in range(k):  # loop over tree depth
        cur = np.where(cur >= 0, np.take_along_axis(shapes, np.maximum(cur, 0), axis=1), -1)
        s_idx, t_idx = np.nonzero(cur >= 0)
        anc[s_idx, t_idx, cur[s_idx, t_idx]] = 1.0
    return anc


def _distinct_rows(par: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a parent array ``(n, K)`` and the row each one maps to (fast path: rows as integers)."""
    n, k = par.shape
    if (k + 1) ** k < 2**62:
        code = (par.astype(np.int64) + 1) @ ((k + 1) ** np.arange(k, dtype=np.int64))
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        return par[first], np.asarray(inverse).reshape(-1)
    shapes, inverse = np.unique(par, axis=0, return_inverse=True)
    return shapes, np.asarray(inverse).reshape(-1)


def _optimality_terms(
    model: _Model,
    ad: _AgentData,
    par: np.ndarray,
    poth: np.ndarray,
    child_of: np.ndarray,
    child_par: np.ndarray,
    radius: bool = False,
) -> tuple[float, float]:
    r"""The pointwise-optimality check at some histories: smallest coefficient, and (``radius``) a bound on the
    spectral radius of :math:`\delta A`.

    ``par`` (H, K_i): binding edges here; ``poth`` (H, M); ``child_of`` (H, K) child history or context after
    each profile; ``child_par`` (n_children, K_i): the children's binding edges. The coefficient of the child's
    binding edge ``e''`` in the continuation part of binding edge ``e`` is :math:`A_{e e''} = \delta
    \sum_m P(m|h) \sum_{t' \in \text{sub}(e'')} [G(t'|t; p,m) - G(t'|p; p,m)]` (``sub``: the types below
    ``e''`` in the child's tree). With ``radius`` (Markov: children are the same contexts), ``A`` restricted to
    type edges is square and the Collatz-Wielandt bound :math:`\max_i (A w)_i / w_i` for a positive ``w`` from
    power iteration bounds its spectral radius; below 1, every feasible solution dominates the recursion's.
    """
    hh, tt = np.nonzero(par >= 0)
    if hh.size == 0 or model.delta == 0.0:
        return 0.0, 0.0
    pp = par[hh, tt]
    s = ad.prof[pp]  # (E, M) profiles (p, m)
    kid = child_of[hh[:, None], s]  # (E, M)
    shapes, shape_of = _distinct_rows(child_par)
    anc = _ancestors(shapes)
    kid_shape = shape_of[kid]
    w = poth[hh]  # (E, M)
    n_e, n_s = hh.size, shapes.shape[0]
    k = ad.k
    n_child = child_par.shape[0]
    if not ad.action_dep:
        # the kernel gap depends on the edge only: one (E, K_i) product per child shape
        gap = ad.kern[0][tt] - ad.kern[0][pp]  # (E, K_i)
        subs = [gap @ anc[sh] for sh in range(n_s)]  # loop over the distinct shapes of binding trees
        reach = np.bincount((np.arange(n_e)[:, None] * n_s + kid_shape)[w > 0], minlength=n_e * n_s).reshape(n_e, n_s)
        lows = [float(subs[sh][reach[:, sh] > 0].min()) for sh in range(n_s) if np.any(reach[:, sh] > 0)]
        min_coef = min(lows) if lows else 0.0
        if not radius:
            return min_coef, 0.0
        cell = (np.arange(n_e)[:, None] * n_child + kid).reshape(-1)
        agg = np.bincount(cell, weights=w.reshape(-1), minlength=n_e * n_child).reshape(n_e, n_child)
        mat = np.empty((n_e, n_child, k))
        for sh in range(n_s):  # loop over the distinct shapes of binding trees
            cols = shape_of == sh
            mat[:, cols, :] = model.delta * agg[:, cols, None] * np.maximum(subs[sh], 0.0)[:, None, :]
        mat = mat.reshape(n_e, -1)
    else:
        gap = model.gap(ad, tt, pp)  # (E, M, K_i)
        sub = np.empty(gap.shape)
        for sh in range(n_s):  # loop over the distinct shapes of binding trees
            sel = kid_shape == sh
            sub[sel] = gap[sel] @ anc[sh]
        live = np.broadcast_to((w > 0)[:, :, None], sub.shape)
        min_coef = float(sub[live].min()) if live.any() else 0.0
        if not radius:
            return min_coef, 0.0
        n_cols = n_child * k
        flat = (np.arange(n_e)[:, None, None] * n_cols + kid[:, :, None] * k + np.arange(k)[None, None, :]).reshape(-1)
        weights = (model.delta * w[:, :, None] * np.maximum(sub, 0.0)).reshape(-1)
        mat = np.bincount(flat, weights=weights, minlength=n_e * n_cols).reshape(n_e, n_cols)
    mat = mat[:, (child_par >= 0).reshape(-1)]  # type edges only (source edges: z >= 0 by participation)
    vec = np.ones(n_e)
    bound = np.inf
    for _ in range(200):  # power iteration towards the Perron vector, until the bound certifies (< 1)
        nxt = mat @ vec
        bound = min(bound, float(np.max(nxt / vec)))  # Collatz-Wielandt: an upper bound for every positive vec
        top = float(nxt.max())
        if bound < 1.0 - tolerances.SPECTRAL_MARGIN or top == 0.0:
            break
        vec = nxt / top + tolerances.POWER_ITERATION_FLOOR
    return min_coef, bound


# ---------------------------------------------------------------------------------------------- solve
#: Why the recursion does not apply to correlated types (``env.correlated``): named by every refusal and by the
#: routes of :mod:`mechlp.solve.questions` that pick the LP instead.
CORRELATED_REASON = (
    "correlated types (a joint_transition): agent i's belief about the others depends on its own type and the "
    "deviation's continuation on the others' next types, so the IC rows are not difference constraints in the "
    "interim utilities and Lamba's Lemma 6 recursion (pointwise tightness) does not apply"
)


def refuse_correlated(env: Environment) -> None:
    """Refuse the recursion on a correlated environment (:data:`CORRELATED_REASON`)."""
    if env.correlated:
        raise ValueError(
            f"method='recursion' needs types independent across agents; {CORRELATED_REASON}; use method='lp'"
        )


def _check_options(ic: str) -> str:
    try:
        return parse_notion("ic", ic, allowed=IC_MODES)
    except ValueError as exc:
        raise ValueError(
            f"{exc} for the recursion (its rows are difference constraints in interim utilities); use method='lp' "
            "for ex post IC"
        ) from None


def estimate_bytes(space_or_env: StateSpace | Environment, horizon: int | None = None, verify: bool = True) -> int:
    """Peak bytes of :func:`solve` (``verify=False``) or :func:`minmax_result` (recursion, transfers and the
    independent verifier) on a space or on the history tree / Markov space of ``env``, predicted without building
    it: :func:`mechlp.model.spaces.estimate_memory` (questions ``"recursion"`` and ``"minmax"`` by recursion), the
    one calibrated estimator (``benchmarks/memory.py``)."""
    question = "minmax" if verify else "recursion"
    if isinstance(space_or_env, StateSpace):
        return estimate_memory(space_or_env.env, question, space=space_or_env, method="recursion").bytes
    return estimate_memory(space_or_env, question, horizon=horizon, method="recursion").bytes


def recursion_space(
    env: Environment,
    horizon: int | None,
    memory_limit: int,
    *,
    verify: bool,
    needs: str = "the recursion needs",
    advice: str = "",
) -> StateSpace:
    """The Markov space for an infinite horizon without ``horizon``; else the history tree, refused with
    ``MemoryError`` when :func:`estimate_bytes` (with ``verify``: plus the verifier) exceeds ``memory_limit``.

    The LP size estimate of :class:`~mechlp.model.spaces.HistoryTree` does not apply to the recursion, so the tree
    is built without it. ``needs`` words the estimate in the message (``"<needs> about X GiB"``); ``advice`` follows
    the limit (:func:`~mechlp.model.spaces.check_memory`); ``needs=""`` says only the size. The Markov space is
    checked by :func:`_check_space` (its size does not depend on a horizon).
    """
    if env.infinite and horizon is None:
        return MarkovSpace(env)
    need = estimate_bytes(env, horizon, verify=verify)
    what = " ".join(filter(None, [needs, f"about {need / 2**30:.2f} GiB"]))
    check_memory(need, memory_limit, f"history tree with horizon {horizon or int(env.horizon)}: {what}", advice)
    return HistoryTree(env, horizon, memory_limit=MAX_MEMORY_LIMIT)


def _check_space(space: StateSpace, memory_limit: int, verify: bool) -> None:
    """Refuse a built space whose recursion (with ``verify``: plus transfers and the verifier) is predicted to need
    more than ``memory_limit`` (:func:`estimate_bytes`), before the recursion allocates anything."""
    need = estimate_bytes(space, verify=verify)
    if space.kind == "markov":
        where = f"Markov space with {space.env.n_profiles} profiles"
    else:
        where = f"{space.kind} space of horizon {space.horizon}"
    what = "verifying the mechanism needs" if verify else "the recursion needs"
    advice = "; mechlp.solve.recursion.solve gives Pi* at every state without a verified mechanism" if verify else ""
    check_memory(need, memory_limit, f"{where}: {what} about {need / 2**30:.2f} GiB", advice)


def solve(
    model: StateSpace | Environment,
    *,
    horizon: int | None = None,
    ic: str = "bayesian",
    outside_option: Any = 0.0,
    max_iter: int = 100_000,
    surplus: bool = True,
    check: bool = True,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    boundary: Boundary | None = None,
) -> RecursionSolution:
    r"""Min-max interim utilities and surplus :math:`\Pi^*(h)` at every history by backward recursion.

    Parameters
    ----------
    model : StateSpace or Environment
        A :class:`~mechlp.model.spaces.HistoryTree`, :class:`~mechlp.model.spaces.MarkovSpace` or
        :class:`~mechlp.model.spaces.TreeWithTail` (the tail's fixed point first, then the tree backwards), or an
        environment: its history tree (finite horizon, or ``horizon`` given) or Markov space (infinite horizon).
    horizon : int, optional
        With an environment: solve on the history tree of this many periods.
    ic : {"bayesian", "local"}
        All misreports, or adjacent types only (Lamba 2022, appendix 9.1; verify the answer globally).
    outside_option : float or per agent (per type)
        Participation levels :math:`o_i(t)` of the interim IR rows (as in :func:`mechlp.solve.questions.minmax`).
    max_iter : int
        Markov space: cap on fixed-point iterations per agent.
    surplus : bool
        Also compute :math:`W(h)` and :math:`\Pi^*(h)` (skip for interim utilities only).
    check : bool
        Run the pointwise-optimality check (module docstring).
    memory_limit : int
        Bytes; a history tree whose recursion (without verification) is predicted to need more is refused.
    boundary : Boundary, optional
        History tree only: the values at its last level, taken as given (not solved); the levels above are
        solved backwards from them (:mod:`mechlp.workflows.split`).

    Returns
    -------
    RecursionSolution

    Raises
    ------
    ValueError
        For an unsupported ``ic``, a bad ``outside_option`` or ``max_iter``, a ``boundary`` of the wrong shapes.
    MemoryError
        When the tree is predicted not to fit in ``memory_limit``.
    """
    ic = _check_options(ic)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if isinstance(model, Environment):
        space: StateSpace = recursion_space(model, horizon, memory_limit, verify=False)
    elif isinstance(model, HistoryTree | MarkovSpace | TreeWithTail):
        space = model
    else:
        raise TypeError(
            f"model must be an Environment, a HistoryTree, a MarkovSpace or a TreeWithTail, got {type(model).__name__}"
        )
    refuse_correlated(space.env)
    if not isinstance(space, HistoryTree) or not isinstance(model, Environment):  # (the tree was checked above)
        _check_space(space, memory_limit, verify=False)
    if boundary is not None:
        boundary.check(space)
    env = space.env
    outside = outside_options(outside_option, env)
    m = _Model(env, ic, outside)
    sol = RecursionSolution(space, "optimal", "", options={"ic": ic, "outside_option": [o.tolist() for o in outside]})
    t0 = time.perf_counter()
    ubar = [np.zeros((space.n_hist, ad.k)) for ad in m.agents]
    parents = [np.full((space.n_hist, ad.k), -1, dtype=np.int16 if ad.k < 2**15 else np.int64) for ad in m.agents]
    markov = _markov_part(space)
    ok = True
    if boundary is not None:
        a, b = space.levels()[-1]
        for i in range(env.n_agents):
            ubar[i][a:b] = boundary.interim_utilities[i]
            parents[i][a:b] = boundary.parents[i]
    if markov is not None:  # the stationary part first: the tree's last level leads into it
        ok = _solve_markov(m, space, sol, check, int(max_iter), *markov, ubar, parents)
    if ok:
        ok = _solve_tree(m, space, sol, check, ubar, parents, given_last=boundary is not None)
    if ok:
        sol.interim_utilities = ubar
        sol.parents = parents
    sol.seconds["solve"] = time.perf_counter() - t0
    if not ok:
        return sol
    if surplus:
        t1 = time.perf_counter()
        sol.welfare = _welfare(m, space, None if boundary is None else boundary.welfare)
        sol.surplus = sol.welfare - sum(
            np.einsum("ht,ht->h", marg, sol.interim_utilities[ad.index])
            for ad, marg in zip(m.agents, marginal_beliefs(space), strict=True)
        )
        sol.seconds["surplus"] = time.perf_counter() - t1
    if check:
        sol.pointwise_optimal = sol.min_coefficient >= -CHECK_TOL and (markov is None or sol.radius_bound < 1.0)
    sol.message = _message(sol)
    return sol


def _message(sol: RecursionSolution) -> str:
    where = {"tree": "history tree", "markov": "Markov space", "tail": "tree with a Markov tail"}
    parts = [f"backward recursion on the {where.get(sol.space.kind, sol.space.kind)}"]
    if sol.iterations:
        its = ", ".join(f"{a} {n}" for a, n in sol.iterations.items())
        exact = [a for a, e in sol.exact_step.items() if e]
        parts.append(
            f"fixed point after {its} iterations"
            + (f" (exact-structure step for {', '.join(exact)})" if exact else "")
            + f", residual {sol.residual:.2g}"
        )
    if sol.pointwise_optimal is True:
        parts.append("tight at every history (binding-edge coefficients >= 0: the pointwise smallest IC+IR solution)")
    elif sol.pointwise_optimal is False:
        parts.append(
            f"NOT certified tight at every history (smallest binding-edge coefficient {sol.min_coefficient:.3g}"
            + (f", spectral radius bound {sol.radius_bound:.3g}" if sol.space.kind != "tree" else "")
            + "); an IC+IR mechanism, maximal given its own continuation -- method='lp' answers the min-max question"
        )
    return "; ".join(parts)


def _cycle_reports(
    m: _Model,
    ad: _AgentData,
    space: StateSpace,
    hist: np.ndarray,
    c: np.ndarray,
    gain: np.ndarray,
    par: np.ndarray,
    improving: np.ndarray,
    poth: np.ndarray,
    has_children: bool,
) -> list[Cycle]:
    """Describe the positive cycles at the flagged histories (at most ``_MAX_CYCLES_REPORTED``)."""
    out = []
    flagged = np.flatnonzero(improving.any(axis=1))
    for loc in flagged[:_MAX_CYCLES_REPORTED]:  # a few histories, for the message
        start = int(np.flatnonzero(improving[loc])[0])
        cyc = _trace_cycle(par[loc], start)
        if cyc:
            # cyc lists types along binding edges p -> t; row "t does not report p" has weight c[t, p]
            pairs = [(cyc[(j + 1) % len(cyc)], cyc[j]) for j in range(len(cyc))]
        else:
            r = int(np.argmax(c[loc, start]))
            pairs = [(start, r)]
        weight = float(sum(c[loc, t, p] for t, p in pairs))
        static = float(sum(gain[loc, t, p] for t, p in pairs))
        conclusive = not has_children or m.delta == 0.0
        if not conclusive:
            tt = np.array([t for t, _ in pairs])
            pp = np.array([p for _, p in pairs])
            g = m.gap(ad, tt, pp)
            live = poth[loc][None, :] > 0
            conclusive = bool(np.all(np.abs(g[np.broadcast_to(live, g.shape[:2])]) <= CHECK_TOL))
        types = [ad.labels[t] for t in cyc[::-1]] if cyc else [ad.labels[t] for t in pairs[0]]
        h = int(hist[loc])
        out.append(Cycle(ad.name, h, space.describe_history(h), types, weight, static, conclusive))
    return out


def _fail(sol: RecursionSolution, cycles: list[Cycle], n_flagged: int) -> bool:
    sol.cycles = cycles
    conclusive = all(cy.conclusive for cy in cycles)
    sol.status = "infeasible" if conclusive else "error"
    lines = "; ".join(cy.describe() for cy in cycles)
    more = f" ({n_flagged} histories in all)" if n_flagged > len(cycles) else ""
    if conclusive:
        sol.message = f"IC cannot hold: {lines}{more}"
    else:
        sol.message = (
            f"the recursion stops: {lines}{more}. The cycle's continuation terms do not vanish, so another "
            "continuation might restore IC; design.minmax(method='lp') decides"
        )
    return False


def _markov_part(space: StateSpace) -> tuple[np.ndarray, np.ndarray] | None:
    """``(states, child_state)``: the stationary states of the space and the state after each profile."""
    k = space.env.n_profiles
    if isinstance(space, MarkovSpace):
        return np.arange(space.n_hist), 1 + np.arange(k)
    if isinstance(space, TreeWithTail):
        return space.tail_hists, space.n_tree + np.arange(k)
    return None


def _tree_levels(space: StateSpace) -> list[tuple[int, int]]:
    return space.levels() if isinstance(space, HistoryTree | TreeWithTail) else []


def _solve_tree(
    m: _Model,
    space: StateSpace,
    sol: RecursionSolution,
    check: bool,
    ubar: list,
    parents: list,
    given_last: bool = False,
) -> bool:
    """Backward by depth level over the tree part (children first: the next level, or the tail states);
    ``given_last``: the last level's values are given (:class:`Boundary`), start one level above."""
    k = m.k
    levels = _tree_levels(space)
    n_lev = len(levels)
    tail = isinstance(space, TreeWithTail)
    min_coef = sol.min_coefficient
    for depth in range(n_lev - 1 - int(given_last), -1, -1):  # loop over depth levels, deepest first
        a, b = levels[depth]
        has_kids = depth < n_lev - 1 or tail
        kids = space.child_hist[a * k : b * k].reshape(b - a, k) if has_kids else None
        margs = marginal_beliefs(space, hists=np.arange(a, b))  # once per level, for every agent
        for ad in m.agents:
            poth = others_beliefs(space, ad.index, hists=np.arange(a, b), marginals=margs)
            gain = m.gain(ad, poth)
            v = None
            if kids is not None and m.delta != 0.0:
                w = m.next_expectation(ad, ubar[ad.index][kids])  # (H, K, K_i) [h, s, x]
                v = np.einsum("hm,hrmx->hxr", poth, w[:, ad.prof])
                del w
            c = m.weights(ad, gain, v)
            dist, par, improving = _longest_path(c, ad.outside)
            if improving.any():
                cycles = _cycle_reports(m, ad, space, np.arange(a, b), c, gain, par, improving, poth, kids is not None)
                return _fail(sol, cycles, int(improving.any(axis=1).sum()))
            if check:
                par = _prefer_adjacent(c, ad.outside, dist, par, ad.direction)
            ubar[ad.index][a:b] = dist
            parents[ad.index][a:b] = par
            if check and kids is not None:
                lo = int(kids.min())
                hi = int(kids.max()) + 1
                coef, _ = _optimality_terms(m, ad, par, poth, kids - lo, parents[ad.index][lo:hi])
                min_coef = min(min_coef, coef)
    sol.min_coefficient = min_coef
    return True


def _solve_markov(
    m: _Model,
    space: StateSpace,
    sol: RecursionSolution,
    check: bool,
    max_iter: int,
    states: np.ndarray,
    child_state: np.ndarray,
    ubar: list,
    parents: list,
) -> bool:
    """Fixed point of the backward map on the stationary states (contexts: states with equal beliefs)."""
    k = m.k
    min_coef, max_row, residual = sol.min_coefficient, sol.radius_bound, 0.0
    pos = np.full(space.n_hist, -1)
    pos[states] = np.arange(states.size)
    for ad in m.agents:  # agents do not interact: one fixed point each
        poth_all = others_beliefs(space, ad.index, hists=states)  # (n_states, M)
        pctx, ctx = _distinct_beliefs(poth_all)
        child_ctx = ctx[pos[child_state]]  # context of the state after profile s
        gain = m.gain(ad, pctx)
        n_ctx = pctx.shape[0]

        # "simple": the child's context depends on the others' reports only and the own kernel ignores the action;
        # then the continuation of true type x does not depend on the report (V[c, x, r] = Vbar[c, x]) and the
        # binding-edge system is a Stein equation (see _stein_step).
        ctx_of_m = child_ctx[ad.prof[0]]  # (M,)
        simple = not ad.action_dep and bool(np.all(child_ctx[ad.prof] == ctx_of_m[None, :]))
        agg = None
        if simple:
            agg = np.zeros((n_ctx, n_ctx))
            np.add.at(agg.T, ctx_of_m, pctx.T)  # agg[c, c'] = sum_{m: ctx(m) = c'} P(m|c)

        def backward(u, par, ad=ad, pctx=pctx, gain=gain, child_ctx=child_ctx, agg=agg):
            if m.delta == 0.0:
                c = m.weights(ad, gain, None)
            elif agg is not None:
                vbar = agg @ (u @ ad.kern[0].T)  # (C, K_i): sum_m P(m|c) sum_t' F(t'|x) U(t'|ctx(m))
                c = gain + m.delta * (vbar[:, :, None] - vbar[:, None, :])
                c[:, ad.no_edge] = -np.inf
            else:
                w = m.next_expectation(ad, u[child_ctx])  # (K, K_i) [s, x]
                wp = w[ad.prof]  # (K_i r, M, K_i x)
                v = (pctx @ wp.transpose(1, 0, 2).reshape(ad.m, ad.k * ad.k)).reshape(-1, ad.k, ad.k)
                c = m.weights(ad, gain, v.transpose(0, 2, 1))
            return (*_longest_path(c, ad.outside, par), c)

        u = np.zeros((n_ctx, ad.k))
        par = None
        stable, wait, exact_used = 0, 2, False
        it = 0
        converged = False
        change = np.inf
        while it < max_iter:
            it += 1
            dist, new_par, improving, c = backward(u, par)
            if improving.any():
                first = states[_first_states(ctx, n_ctx)]
                cycles = _cycle_reports(m, ad, space, first, c, gain, new_par, improving, pctx, m.delta != 0.0)
                return _fail(sol, cycles, int(improving.any(axis=1).sum()))
            scale = 1.0 + float(np.abs(dist).max())
            change = float(np.abs(dist - u).max())
            stable = stable + 1 if par is not None and np.array_equal(new_par, par) else 0
            u, par = dist, new_par
            if change <= FIXED_POINT_TOL * scale:
                converged = True
                break
            small = n_ctx * ad.k <= EXACT_STEP_MAX_UNKNOWNS
            if stable >= wait and (agg is not None or small):
                u_ex = None
                if agg is not None:
                    try:
                        u_ex = _stein_step(m, ad, agg, gain, par)
                    except _NotStein:
                        pass
                if u_ex is None and small:
                    u_ex = _exact_step(m, ad, pctx, child_ctx, gain, par)
                if u_ex is not None:
                    it += 1
                    d2, p2, imp2, _ = backward(u_ex, par)
                    res = float(np.abs(d2 - u_ex).max())
                    if not imp2.any() and res <= FIXED_POINT_TOL * (1.0 + float(np.abs(d2).max())):
                        u, par, change, converged, exact_used = d2, p2, res, True, True
                        break
                    u, par = d2, p2  # the binding edges were not final yet: keep iterating, try again later
                stable, wait = 0, 2 * wait
        if not converged:
            sol.status = "error"
            sol.message = (
                f"no fixed point for {ad.name} within {max_iter} iterations (last change {change:.3g}); raise max_iter"
            )
            return False
        sol.iterations[ad.name] = it
        sol.exact_step[ad.name] = exact_used
        residual = max(residual, change)
        if check:
            _, _, _, c = backward(u, par)
            par = _prefer_adjacent(c, ad.outside, u, par, ad.direction)
            coef, row = _optimality_terms(m, ad, par, pctx, np.broadcast_to(child_ctx, (n_ctx, k)), par, radius=True)
            min_coef, max_row = min(min_coef, coef), max(max_row, row)
        ubar[ad.index][states] = u[ctx]
        parents[ad.index][states] = par[ctx]
    sol.min_coefficient = min_coef
    sol.radius_bound = max_row
    sol.residual = residual
    return True


def _distinct_beliefs(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``p`` (exact equality) and the row each state maps to: the contexts.

    Rows are grouped by a random projection (one sort of floats) and the grouping is checked exactly; on a
    (practically impossible) collision, ``np.unique(axis=0)`` decides.
    """
    key = p @ np.random.default_rng(12345).uniform(0.5, 1.5, p.shape[1])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    if np.array_equal(p, p[first][inverse]):
        return p[first], inverse
    rows, inverse = np.unique(p, axis=0, return_inverse=True)
    return rows, np.asarray(inverse).reshape(-1)


def _first_states(ctx: np.ndarray, n_ctx: int) -> np.ndarray:
    """The first state of every context (to name contexts in messages)."""
    _, first = np.unique(ctx, return_index=True)
    return first[:n_ctx]


def _stein_step(m: _Model, ad: _AgentData, agg: np.ndarray, gain: np.ndarray, par: np.ndarray) -> np.ndarray:
    r"""Exact-structure step when the continuation does not depend on the report (action-free own kernel).

    Along a binding path from the source edge of type :math:`\rho` the continuation terms telescope:
    :math:`\bar U(c, t) = B(c, t) + \phi(c, t) - \phi(c, \rho(c, t))` with ``B`` the path's outside option plus
    current-period gains and :math:`\phi(c, \cdot) = \delta F \sum_{c'} A_{cc'} \bar U(c', \cdot)`
    (``A = agg``: beliefs aggregated by child context). When every context has the same roots :math:`\rho`,
    this is the Stein equation :math:`X = \delta A X N + B`, :math:`N = F^T (I - J)^T` with
    :math:`J_{t\rho(t)} = 1`, solved exactly by complex Schur forms of ``A`` and ``N`` (Bartels-Stewart; a loop
    over the ``K_i`` columns). Otherwise the dense system of :func:`_exact_step` is solved.
    """

    n_ctx, k = par.shape
    base = _evaluate_tree(m.weights(ad, gain, None), ad.outside, par)  # B: outside option + path gains
    roots = np.arange(k)[None, :].repeat(n_ctx, axis=0)
    for _ in range(k):  # follow the binding edges up to the source (tree depth <= K)
        up = par[np.arange(n_ctx)[:, None], roots]
        roots = np.where(up >= 0, up, roots)
    if not np.all(roots == roots[:1]):
        raise _NotStein
    jmat = np.zeros((k, k))
    jmat[np.arange(k), roots[0]] = 1.0
    return _solve_stein(agg, ad.kern[0].T @ (np.eye(k) - jmat).T, base, m.delta)


def _solve_stein(a: np.ndarray, n: np.ndarray, b: np.ndarray, delta: float) -> np.ndarray:
    r"""Solve the Stein equation :math:`X = \delta A X N + B` (Bartels-Stewart with complex Schur forms).

    With :math:`A = Q T Q^H` and :math:`N = Z S Z^H`, :math:`Y = Q^H X Z` solves :math:`Y = \delta T Y S + Q^H B Z`;
    ``S`` is upper triangular, so column ``j`` of ``Y`` solves the triangular system
    :math:`(I - \delta S_{jj} T) Y_j = D_j + \delta T \sum_{l<j} Y_l S_{lj}` (a loop over the columns).
    """
    import scipy.linalg as sla

    ta, qa = sla.schur(a, output="complex")
    tn, zn = sla.schur(n, output="complex")
    d = qa.conj().T @ b @ zn
    y = np.zeros(d.shape, dtype=complex)
    eye = np.eye(a.shape[0])
    for j in range(d.shape[1]):  # loop over columns (types or profiles of one agent)
        rhs = d[:, j] + delta * ta @ (y[:, :j] @ tn[:j, j])
        y[:, j] = sla.solve_triangular(eye - delta * tn[j, j] * ta, rhs)
    return (qa @ y @ zn.conj().T).real


class _NotStein(Exception):
    """The contexts' binding trees have different roots: use the dense exact step."""


def _exact_step(
    m: _Model, ad: _AgentData, pctx: np.ndarray, child_ctx: np.ndarray, gain: np.ndarray, par: np.ndarray
) -> np.ndarray:
    r"""Solve "every binding edge holds with equality" for all contexts at once (the Markov fixed point of a tree).

    Unknowns :math:`\bar U(c, t)`; rows: :math:`\bar U(c,t) = o(t)` for source edges, otherwise
    :math:`\bar U(c,t) - \bar U(c,p) - \delta \sum_m P(m|c) \sum_{t'} [G(t'|t;p,m) - G(t'|p;p,m)]
    \bar U(c(p,m), t') = \text{gain}(c, t, p)`.
    """
    n_ctx, k = par.shape
    n = n_ctx * k
    idx = np.arange(n).reshape(n_ctx, k)
    mat = np.zeros(n * n)
    mat[idx.reshape(-1) * (n + 1)] = 1.0
    rhs = np.broadcast_to(ad.outside, (n_ctx, k)).copy()
    cc, tt = np.nonzero(par >= 0)
    if cc.size:
        pp = par[cc, tt]
        rows = idx[cc, tt]
        mat[rows * n + idx[cc, pp]] -= 1.0
        rhs[cc, tt] = gain[cc, tt, pp]
        if m.delta != 0.0:
            s = ad.prof[pp]  # (E, M)
            coef = -m.delta * pctx[cc][:, :, None] * m.gap(ad, tt, pp)  # (E, M, K_i)
            cols = child_ctx[s][:, :, None] * k + np.arange(k)[None, None, :]
            flat = (rows[:, None, None] * n + cols).reshape(-1)
            mat += np.bincount(flat, weights=coef.reshape(-1), minlength=n * n)
    return np.linalg.solve(mat.reshape(n, n), rhs.reshape(-1)).reshape(n_ctx, k)


#: Markov welfare values of at most this many profiles are one dense solve (the fixed point iterates about
#: ``log(tol) / log(delta)`` times, tens of millions near ``delta = 1``).
DIRECT_WELFARE_PROFILES = 2000


def _welfare(m: _Model, space: StateSpace, given_last: np.ndarray | None = None) -> np.ndarray:
    r""":math:`W(h) = \sum_\theta P(\theta|h)[w(\theta) + \delta W(h\theta)]` at every history.

    Stationary states: node values :math:`W_n = w + \delta Q W_n`. With at most two agents and action-free
    kernels :math:`Q = F_1 \otimes F_2`, so :math:`W_n` (as a ``K_1 x K_2`` matrix) solves the Stein equation
    :math:`W_n = \delta F_1 W_n F_2^T + w` exactly (:func:`_solve_stein`); otherwise by fixed-point iteration
    with the structured product :meth:`_Model.apply_transition`, stopped by the a posteriori bound
    :math:`\frac{\delta}{1-\delta}\|W_n^{k+1} - W_n^k\| \le 10^{-14}(1 + \|W_n\|)`. Then
    :math:`W(h) = P(\cdot|h) \cdot W_n`; tree levels backwards from their children (``given_last``: the values
    of the last tree level, :class:`Boundary`).
    """
    k = m.k
    w = m.flow.sum(axis=0)  # (K,)
    prior = joint_beliefs(space, hists=[0])[0]  # the root's belief
    out = np.empty(space.n_hist)
    markov = _markov_part(space)
    if markov is not None:
        if m.delta != 0.0 and not m.any_action_dep and len(m.counts) <= 2:
            f1 = m.kernels[0][0]
            f2 = m.kernels[1][0] if len(m.counts) == 2 else np.ones((1, 1))
            wn = _solve_stein(f1, f2.T, w.reshape(f1.shape[0], f2.shape[0]), m.delta).reshape(-1)
        elif k <= DIRECT_WELFARE_PROFILES:  # one dense solve (I - delta Q) W_n = w: no iteration count in 1/(1-delta)
            wn = np.linalg.solve(np.eye(k) - m.delta * joint_transition(space.env), w)
        else:
            wn = w.copy()
            factor = m.delta / (1.0 - m.delta) if m.delta != 0.0 else 0.0
            while m.delta != 0.0:  # fixed-point iterations (a delta-contraction in the sup norm)
                new = w + m.delta * m.apply_transition(wn)
                change = float(np.abs(new - wn).max())
                wn = new
                if factor * change <= tolerances.WELFARE_FIXED_POINT * (1.0 + float(np.abs(wn).max())) or change == 0.0:
                    break
        states = markov[0]
        prev = space.hist_prev_profile[states]
        qw = m.apply_transition(wn)
        out[states] = np.where(prev < 0, prior @ wn, qw[np.maximum(prev, 0)])
    levels = _tree_levels(space)
    if given_last is not None:
        a, b = levels[-1]
        out[a:b] = given_last
        levels = levels[:-1]
    if levels:
        for a, b in reversed(levels):  # loop over depth levels, deepest first
            kids = space.child_hist[a * k : b * k].reshape(b - a, k)
            node = np.broadcast_to(w, (b - a, k))
            if m.delta != 0.0 and kids.min() >= 0:
                node = node + m.delta * out[kids]
            out[a:b] = np.einsum("hs,hs->h", joint_beliefs(space, hists=np.arange(a, b)), node)
    return out


# ---------------------------------------------------------------------------------------------- Result
def structure_refusal(env: Environment) -> str | None:
    """Why the Lemma 6 recursion (and the structure routes built on it) does not apply to ``env``, or ``None``.

    It works with one allocation per profile: an allocation that changes with the period is answered by the LP
    (``route="auto"`` and ``method="auto"`` choose it and say so).
    """
    if env.period_dependent:
        return (
            f"the allocation depends on the period ({env.n_allocation_periods} tables); the recursion needs one "
            "allocation per profile"
        )
    if env.correlated:
        return f"types are correlated across agents ({CORRELATED_REASON})"
    return None


def minmax_result(
    env: Environment,
    *,
    space: StateSpace | None = None,
    horizon: int | None = None,
    ic: str = "bayesian",
    ir: str = "interim",
    outside_option: Any = 0.0,
    limits: Any = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    max_iter: int = 100_000,
    question: Question | None = None,
    **unsupported: Any,
):
    r"""The min-max mechanism by recursion, as a verified :class:`~mechlp.solve.result.Result`
    (:func:`mechlp.solve.questions.minmax` with ``method="recursion"``).

    The recursion's interim utilities are implemented by transfers (:meth:`RecursionSolution.mechanism`) and
    re-checked by :func:`mechlp.audit.verifier.verify` with Bayesian IC over all misreports (also after
    ``ic="local"``) and interim IR; the surplus recomputed by the verifier's own code
    (:func:`mechlp.audit.verifier.surplus`) must match :math:`\Pi^*` to ``tolerances.FEASIBILITY``.

    Parameters are those of :func:`mechlp.solve.questions.minmax`; the recursion needs ``ir="interim"`` (participation
    rows at every history are the source edges) and no transfer ``limits``, and takes ``max_iter`` (Markov
    fixed point) instead of solver options.

    Returns
    -------
    Result
        ``"optimal"`` with the mechanism and its verification; ``"infeasible"`` / ``"error"`` for a positive
        IC cycle (``diagnosis["cycles"]``); ``"verification_failed"`` if the verifier disagrees.

    Raises
    ------
    ValueError
        For unsupported options (message says which and why).
    MemoryError
        When the tree with verification is predicted to exceed ``memory_limit``, or a Markov space is too
        large for the verifier (use :func:`solve` for :math:`\Pi^*` without a verified mechanism).
    """
    if unsupported:
        raise ValueError(
            f"method='recursion' takes no solver options; got {sorted(unsupported)} (they are for the LP backends)"
        )
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    refusal = structure_refusal(env)
    if refusal is not None:
        raise ValueError(f"method='recursion': {refusal}; use method='lp' (or 'auto')")
    q = question or Question.parse(env, ic=ic, ir=ir, budget="none", outside_option=outside_option, limits=limits)
    _check_options(q.ic)
    if q.ir != "interim":
        raise ValueError(
            f"method='recursion' needs ir='interim' (participation at every history); got ir={q.ir!r} -- use "
            "method='lp'"
        )
    if q.has_limits:
        raise ValueError("method='recursion' does not handle transfer limits; use method='lp'")
    if space is not None:
        if space.env is not env:
            raise ValueError("space was built for a different environment than env")
        sp = space
    else:
        sp = recursion_space(
            env,
            horizon,
            memory_limit,
            verify=True,
            needs="recursion plus verification need",
            advice=" (raise memory_limit, or use mechlp.solve.recursion.solve for Pi* without a verified mechanism)",
        )
    if space is not None or isinstance(sp, MarkovSpace):  # (a tree built here was checked by recursion_space)
        _check_space(sp, memory_limit, verify=True)
    options = {**q.to_dict(), "backend": "recursion", "method": "recursion"}
    t0 = time.perf_counter()
    sol = solve(sp, ic=q.ic, outside_option=list(q.outside), max_iter=max_iter, memory_limit=memory_limit)
    seconds = time.perf_counter() - t0
    size = {"histories": sp.n_hist, "nodes": sp.n_nodes}
    timings = {"solve": seconds}
    native = SolverOutput(sol.status, "recursion", sol.message, None, None, None, seconds, "recursion")
    res = Result(
        sol.status, sol.message, "minmax", options, sp, solver=native, timings=timings, size=size, question_spec=q
    )
    res.diagnosis = {
        "recursion": {
            "pointwise_optimal": sol.pointwise_optimal,
            "min_coefficient": sol.min_coefficient,
            "radius_bound": sol.radius_bound,
            "iterations": dict(sol.iterations),
            "exact_step": dict(sol.exact_step),
            "residual": sol.residual,
            "cycles": [cy.to_dict() for cy in sol.cycles],
        }
    }
    if sol.status != "optimal":
        return res
    t1 = time.perf_counter()
    mech = sol.mechanism()
    timings["mechanism"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    cert = verify(mech, question=q.replace(ic="bayesian"))
    gap = float(np.abs(verifier_surplus(mech) - sol.surplus).max())
    timings["verify"] = time.perf_counter() - t2
    native.objective = float(sol.surplus.sum())
    res.diagnosis["recursion"]["surplus_gap"] = gap
    res.mechanism = mech
    res.certificate = cert
    res.surplus = sol.surplus
    res.interim_utilities = sol.interim_utilities
    if not cert.ok:
        res.status = "verification_failed"
        res.message = "the recursion's mechanism fails the independent verification:\n" + cert.summary()
    elif gap > tolerances.FEASIBILITY * (1.0 + float(np.abs(sol.surplus).max())):
        res.status = "verification_failed"
        res.message = f"the verifier's surplus differs from the recursion's Pi* by {gap:.3g}"
    return res

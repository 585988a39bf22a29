r"""Transfer ranges: how much freedom the rows of a question leave in each payment (issue #14, item 5).

For the environment's allocation and a question (IC, IR and budget notions, outside options, limits; the rows of
:func:`mechlp.constraints.formulation.build_lp` on a space), the range of agent :math:`i`'s payment at node
:math:`g` over every mechanism that satisfies the rows is

.. math::
   \underline x_i(g) = \min \{ x_i(g) : \text{rows} \}, \qquad \overline x_i(g) = \max \{ x_i(g) : \text{rows} \},

two LPs per coordinate, solved on one solver instance with only the cost changed between them
(:func:`mechlp.backends.solve_objectives`: HiGHS restarts from the last optimal basis). A coordinate is
*unique* when :math:`\overline x - \underline x \le` ``tolerances.RANGE_UNIQUE`` (relative), a node when every
ranged agent's payment there is, the question when every ranged coordinate is. A non-unique answer carries two
witness mechanisms, the minimiser and the maximiser of its widest coordinate (for an unbounded one, the
minimiser and maximiser with that payment held within one unit of a feasible value), each passed through the
independent verifier (:func:`mechlp.audit.verifier.verify`) with the same parsed question: two verified
mechanisms whose payments differ prove non-uniqueness. A unique verdict is proved by weak duality: the solver's
duals of each LP, checked in floats (:func:`mechlp.solve.second_best.dual_certificate`, as for the second best),
bound every feasible payment from below and above, and the bounds must enclose one point; otherwise the answer is
``"unverified"``. The feasible mechanism found first is verified too.

Options beyond the question, both from Bergemann and Välimäki (2010):

* ``outside_values="pivot"``: participation against the value of opting out while the planner runs the efficient
  policy without the agent, :math:`O_i(h, \theta)` (their periodic ex post participation;
  :attr:`mechlp.constructions.pivot.PivotValues.outside`), instead of a per-type outside option; or any
  ``(n_agents, n_nodes)`` array.
* ``efficient_exit=True``: their Definition 1, :math:`x_i(h, \theta) = 0` wherever agent :math:`i` can no
  longer affect the efficient decision (:func:`mechlp.constructions.pivot.exit_nodes`), as column bounds. Those
  coordinates are fixed, so they are not ranged (``exit`` in :meth:`RangeResult.ranges_frame`).

With ``ic="ex_post"``, ``ir="ex_post"``, ``outside_values="pivot"``, ``efficient_exit=True`` and ``budget="none"``
this is the question of their Theorem 2 (uniqueness of the dynamic pivot under diverse preferences); the dynamic
pivot's payment is reported beside every range (``reference``) whenever the allocation is dynamically efficient.

The number of LPs, ``2 x agents x nodes``, is checked against ``max_lps`` and the LP's memory against
``memory_limit`` (:func:`mechlp.model.spaces.estimate_memory`, question ``"ranges"``) before anything is built.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mechlp.audit.verifier import Verification, verify
from mechlp.backends import check_backend, solve_objectives
from mechlp.constraints.formulation import build_lp
from mechlp.constructions.pivot import exit_nodes, pivot_outside_on_space, pivot_transfers_on_space, pivot_values
from mechlp.model import tolerances
from mechlp.model.answer import Answer, space_summary
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, HistoryTree, StateSpace, estimate_memory, question_space
from mechlp.solve.second_best import dual_certificate

__all__ = ["RangeResult", "transfer_ranges", "DEFAULT_MAX_LPS"]

#: Default largest number of LPs (two per agent and node) :func:`transfer_ranges` accepts.
DEFAULT_MAX_LPS = 20_000


@dataclass
class RangeResult(Answer):
    r"""The smallest and largest payment of each agent at each node over the mechanisms satisfying the rows
    (result contract: :mod:`mechlp.model.answer`).

    Attributes
    ----------
    status : str
        ``"optimal"`` (every LP solved, the feasible mechanism and the witnesses verified), ``"unverified"`` (the
        solver found no mechanism satisfying the rows; mechlp has no impossibility certificate for these rows),
        ``"verification_failed"``, ``"time_limit"`` or ``"error"``.
    message : str
    space : StateSpace
    question_spec : Question
        The parsed question the rows were built from.
    lower, upper : ndarray, shape (n_agents, n_nodes)
        :math:`\min x_i(g)` and :math:`\max x_i(g)` (``-inf`` / ``inf`` when unbounded, NaN where not ranged).
    ranged : ndarray of bool, shape (n_agents, n_nodes)
    lower_bound, upper_bound : ndarray, shape (n_agents, n_nodes) or None
        Outer bounds from the solver's duals, checked in floats (weak duality,
        :func:`mechlp.solve.second_best.dual_certificate`): every mechanism satisfying the rows pays between
        them. A unique verdict needs them to enclose one point.
    exit : ndarray of bool, shape (n_agents, n_nodes) or None
        Coordinates fixed to 0 by efficient exit (``efficient_exit=True``).
    reference : ndarray, shape (n_agents, n_nodes) or None
        The dynamic pivot's payments (when the allocation is dynamically efficient).
    unique : bool or None
        ``True``: every ranged coordinate unique, proved by the dual bounds; ``False``: some coordinate is not,
        proved by the two verified witnesses; ``None``: not every LP was solved, or the LPs say unique but some
        dual bound does not check (status ``"unverified"``).
    unique_agents : dict
        Agent name -> whether all its ranged coordinates are unique.
    mechanism : Mechanism or None
        A verified mechanism satisfying the rows (the first feasible point).
    verification : Verification or None
        Its verification (also ``certificate``).
    witnesses : tuple of Mechanism or None
        The minimiser and maximiser of the widest non-unique coordinate.
    witness_verifications : tuple of Verification or None
    witness_coordinate : dict or None
        ``agent``, ``node``, ``history``, ``where``, ``profile``, ``lower``, ``upper`` and the two witnesses'
        payments there (``witness_values``).
    options : dict
        The question (``Question.to_dict()``) plus ``outside_values``, ``efficient_exit`` and ``backend``.
    timings, size : dict
        ``size``: histories, nodes, LP rows, columns, nonzeros and ``lps``; ``solver``: status counts and
        simplex iterations.

    JSON (:meth:`to_dict`): the contract's keys (``transfers`` are the feasible mechanism's) plus ``options``,
    ``unique``, ``unique_agents``, ``ranges`` (the rows of :meth:`ranges_frame`), ``witness_coordinate``,
    ``witness_transfers`` and ``witness_verifications``.
    """

    status: str
    message: str
    space: StateSpace
    question_spec: Question
    lower: np.ndarray
    upper: np.ndarray
    ranged: np.ndarray
    options: dict
    exit: np.ndarray | None = None
    reference: np.ndarray | None = None
    lower_bound: np.ndarray | None = None
    upper_bound: np.ndarray | None = None
    unique: bool | None = None
    unique_agents: dict = field(default_factory=dict)
    mechanism: Mechanism | None = None
    verification: Verification | None = None
    witnesses: tuple | None = None
    witness_verifications: tuple | None = None
    witness_coordinate: dict | None = None
    solver: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    size: dict = field(default_factory=dict)

    @property
    def certificate(self) -> Verification | None:
        """The verification of the feasible mechanism (the witnesses have theirs in ``witness_verifications``)."""
        return self.verification

    @property
    def width(self) -> np.ndarray:
        """``upper - lower`` (NaN where not ranged)."""
        return self.upper - self.lower

    def unique_mask(self) -> np.ndarray:
        """``(n_agents, n_nodes)`` bool: ranged and of width at most ``RANGE_UNIQUE`` (relative)."""
        return _unique(self.lower, self.upper) & self.ranged

    def node_unique(self) -> np.ndarray:
        """``(n_nodes,)`` bool: every ranged agent's payment at the node is unique (True where none is ranged)."""
        return (self.unique_mask() | ~self.ranged).all(axis=0)

    def ranges_frame(self) -> pd.DataFrame:
        """One row per agent and node: ``agent``, ``node``, ``history``, ``where``, ``profile``, ``type`` (the
        agent's own type), ``lower``, ``upper``, ``width``, ``lower_bound``, ``upper_bound`` (the dual bounds),
        ``unique``, ``exit`` and ``reference`` (the pivot's payment, NaN without it); fixed (exit) and ranged
        coordinates only."""
        env = self.space.env
        k = env.n_profiles
        show = self.ranged | (self.exit if self.exit is not None else False)
        agent, node = np.nonzero(show)
        where = np.asarray(self.space.describe_histories(), dtype=object)[node // k]
        profiles = np.asarray(space_summary(self.space)["profiles"], dtype=object)[node % k]
        names = np.asarray([ag.name for ag in env.agents], dtype=object)
        own = env.profile_types()[node % k, agent]
        labels = np.empty(agent.size, dtype=object)
        for i, ag in enumerate(env.agents):  # agents: the own type's label
            sel = agent == i
            labels[sel] = np.asarray(ag.types, dtype=object)[own[sel]]
        lo, hi = self.lower[agent, node], self.upper[agent, node]
        ex = np.zeros(agent.size, dtype=bool) if self.exit is None else self.exit[agent, node]
        ref = np.full(agent.size, np.nan) if self.reference is None else self.reference[agent, node]
        df = pd.DataFrame(
            {
                "agent": names[agent],
                "node": node,
                "history": node // k,
                "where": where,
                "profile": profiles,
                "type": labels,
                "lower": lo,
                "upper": hi,
                "width": hi - lo,
                "lower_bound": self.lower_bound[agent, node] if self.lower_bound is not None else np.nan,
                "upper_bound": self.upper_bound[agent, node] if self.upper_bound is not None else np.nan,
                "unique": self.unique_mask()[agent, node] | ex,
                "exit": ex,
                "reference": ref,
            }
        )
        df.attrs.update({"kind": self._kind(), "status": self.status})
        return df

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "unique": self.unique,
            "unique_agents": self.unique_agents,
            "ranges": self.ranges_frame().to_dict(orient="records"),
            "witness_coordinate": self.witness_coordinate,
            "witness_transfers": None if self.witnesses is None else [w.transfers for w in self.witnesses],
            "witness_verifications": self.witness_verifications,
            "solver": self.solver,
        }

    def __repr__(self) -> str:
        return f"RangeResult(status={self.status!r}, unique={self.unique!r}, message={self.message!r})"


def _unique(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        scale = np.maximum(1.0, np.maximum(np.abs(lower), np.abs(upper)))
        return np.isfinite(lower) & np.isfinite(upper) & (upper - lower <= tolerances.RANGE_UNIQUE * scale)


def _agent_indices(env: Environment, agents: Sequence | None) -> list[int]:
    if agents is None:
        return list(range(env.n_agents))
    if isinstance(agents, str | int):
        agents = [agents]
    names = [ag.name for ag in env.agents]
    out = []
    for a in agents:
        if isinstance(a, str):
            if a not in names:
                raise ValueError(f"agents: unknown agent {a!r}; the agents are {names}")
            out.append(names.index(a))
        elif isinstance(a, int | np.integer) and not isinstance(a, bool) and 0 <= int(a) < env.n_agents:
            out.append(int(a))
        else:
            raise ValueError(f"agents: {a!r} is neither an agent name {names} nor an index 0..{env.n_agents - 1}")
    return sorted(set(out))


def _history_indices(histories: Any, n_hist: int) -> np.ndarray:
    if histories is None:
        return np.arange(n_hist, dtype=np.int64)
    h = np.unique(np.asarray(histories).reshape(-1))
    if h.size == 0 or not np.issubdtype(h.dtype, np.integer):
        raise ValueError("histories must be a non-empty sequence of history indices")
    if h[0] < 0 or h[-1] >= n_hist:
        bad = int(h[0] if h[0] < 0 else h[-1])
        raise ValueError(f"histories: index {bad} is outside 0..{n_hist - 1}")
    return h.astype(np.int64)


def transfer_ranges(
    env: Environment,
    *,
    space: StateSpace | None = None,
    horizon: int | None = None,
    tail: bool = False,
    ic: str = "ex_post",
    ir: str = "ex_post",
    budget: str = "none",
    outside_option: Any = 0.0,
    limits: Any = None,
    outside_values: Any = None,
    efficient_exit: bool = False,
    agents: Sequence | None = None,
    histories: Sequence[int] | None = None,
    backend: str = "highs",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    max_lps: int = DEFAULT_MAX_LPS,
    time_limit: float | None = None,
) -> RangeResult:
    r"""The smallest and largest payment of each agent at each node over all mechanisms satisfying the rows.

    See the module docstring for the LPs, the verdicts and the witnesses.

    Parameters
    ----------
    env : Environment
        The allocation is the environment's (fixed).
    space : StateSpace, optional
        Default: the Markov space for an infinite horizon without ``horizon``, else the history tree (``tail``:
        a tree with a Markov tail), as for :func:`mechlp.solve.questions.feasibility`.
    horizon : int, optional
    tail : bool
    ic, ir, budget, outside_option, limits
        The question (:meth:`mechlp.model.question.Question.parse`). The defaults (ex post IC and IR, no budget
        rows) are the setting of Bergemann and Välimäki (2010) and Yoon (2021, section 3.2).
    outside_values : {None, "pivot"} or ndarray of shape (n_agents, n_nodes)
        Outside options per node (``"pivot"``: Bergemann and Välimäki's :math:`O_i`); ``outside_option`` must
        then be 0.
    efficient_exit : bool
        Fix :math:`x_i = 0` where agent :math:`i` can no longer affect the efficient decision (Bergemann and
        Välimäki 2010, Definition 1; needs a dynamically efficient allocation).
    agents : sequence of str or int, optional
        Agents whose payments are ranged (default all).
    histories : sequence of int, optional
        Histories whose nodes are ranged (default all).
    backend : {"highs", "cvxpy"}
    memory_limit : int
        Bytes; the LP is refused before it is built when :func:`mechlp.model.spaces.estimate_memory` exceeds it.
    max_lps : int
        Refuse when ``2 x agents x nodes`` exceeds it (the message gives the count).
    time_limit : float, optional
        Seconds for all the LPs.

    Returns
    -------
    RangeResult

    Raises
    ------
    ValueError
        For too many LPs, unknown agents or histories, ``outside_values`` of the wrong shape or together with a
        nonzero ``outside_option``, or ``efficient_exit``/``"pivot"`` with an allocation that is not dynamically
        efficient.
    MemoryError
        When the LP would exceed ``memory_limit``.
    """
    t0 = time.perf_counter()
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    check_backend(backend)
    if isinstance(max_lps, bool) or not isinstance(max_lps, int | np.integer) or max_lps < 2:
        raise ValueError(f"max_lps must be an integer >= 2, got {max_lps!r}")
    q = Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option=outside_option, limits=limits)
    who = _agent_indices(env, agents)
    # count the LPs before anything is built
    if space is not None:
        n_hist = space.n_hist
    else:
        kind = "tail" if tail else ("markov" if env.infinite and horizon is None else "tree")
        est = estimate_memory(env, "ranges", kind=kind, horizon=horizon, ic=q.ic, ir=q.ir, budget=q.budget)
        n_hist = est.histories
    hists = _history_indices(histories, n_hist)
    n_lps = 2 * len(who) * hists.size * env.n_profiles
    if n_lps > max_lps:
        raise ValueError(
            f"transfer_ranges: {n_lps:,} LPs (2 x {len(who)} agents x {hists.size * env.n_profiles:,} nodes) exceed "
            f"max_lps={max_lps:,}; range fewer histories (histories=...) or agents (agents=...), or raise max_lps"
        )
    space = question_space(
        env, "ranges", memory_limit, space=space, horizon=horizon, tail=tail, ic=q.ic, ir=q.ir, budget=q.budget
    )
    k = env.n_profiles
    nodes = (hists[:, None] * k + np.arange(k)[None, :]).reshape(-1)
    # the pivot: reference payments, outside values, exit
    t_piv = time.perf_counter()
    pv, pivot_note = None, ""
    try:
        pv = pivot_values(env, horizon=space.horizon if isinstance(space, HistoryTree) else None)
    except ValueError as err:  # not dynamically efficient (or a correlated model): no pivot to compare with
        pivot_note = str(err)
    if pv is None and (efficient_exit or (isinstance(outside_values, str) and outside_values == "pivot")):
        raise ValueError(
            "efficient_exit and outside_values='pivot' need the dynamic pivot's values (Bergemann and Valimaki "
            f"2010): {pivot_note}"
        )
    reference = None if pv is None else pivot_transfers_on_space(space, pv)
    ov = outside_values
    if isinstance(ov, str):
        if ov != "pivot":
            raise ValueError(f"outside_values must be 'pivot' or an (n_agents, n_nodes) array, got {ov!r}")
        ov = pivot_outside_on_space(space, pv)
    if ov is not None:
        ov = np.asarray(ov, dtype=float)
        if ov.shape != (env.n_agents, space.n_nodes):
            raise ValueError(
                f"outside_values has shape {ov.shape}; expected ({env.n_agents}, {space.n_nodes}) (agents x nodes)"
            )
        if not np.isfinite(ov).all():
            raise ValueError("outside_values must be finite")
        if any(np.any(o != 0) for o in q.outside):
            raise ValueError("give outside_option or outside_values, not both")
    exit_mask = exit_nodes(space, pv) if efficient_exit else None
    timings = {"pivot": time.perf_counter() - t_piv}
    # one LP, many objectives
    lp = build_lp(space, q, outside_values=ov)
    var = lp.variables
    if exit_mask is not None:
        lp.col_lower = lp.col_lower.copy()
        lp.col_upper = lp.col_upper.copy()
        for i in range(env.n_agents):  # agents: pin the exit payments
            cols = var.x(i, np.flatnonzero(exit_mask[i]))
            lp.col_lower[cols] = 0.0
            lp.col_upper[cols] = 0.0
    coords = []  # (agent, node) pairs to range, agents first
    for i in who:  # agents
        keep = nodes if exit_mask is None else nodes[~exit_mask[i, nodes]]
        coords.append(np.stack([np.full(keep.size, i), keep], axis=1))
    coords = np.concatenate(coords) if coords else np.zeros((0, 2), dtype=np.int64)
    cols = var.x(coords[:, 0], coords[:, 1]) if coords.size else np.zeros(0, dtype=np.int64)
    # objective 0: zero (a feasible point); then +x (min) and -x (max) for every coordinate
    m = 1 + 2 * cols.size
    rows = np.arange(1, m)
    costs = sp.csr_matrix((np.tile([1.0, -1.0], cols.size), (rows, np.repeat(cols, 2))), shape=(m, var.n_cols))
    timings["build"] = lp.build_seconds
    bounds = np.full(m, np.nan)  # weak-duality lower bound of each minimisation (second_best.dual_certificate)
    dual_ok = np.zeros(m, dtype=bool)

    def _bound(k: int, out) -> None:
        if k == 0:
            return
        cert = dual_certificate(dataclasses.replace(lp, cost=costs[k].toarray().ravel()), out)
        bounds[k] = -cert.bound  # g(y, d) <= min over the rows
        dual_ok[k] = cert.ok

    batch = solve_objectives(lp, costs, backend, keep=[0], time_limit=time_limit, on_optimal=_bound)
    timings["solve"] = batch.solve_seconds
    n, nn = env.n_agents, space.n_nodes
    lower = np.full((n, nn), np.nan)
    upper = np.full((n, nn), np.nan)
    ranged = np.zeros((n, nn), dtype=bool)
    st_min, st_max = batch.status[1::2], batch.status[2::2]
    lo = np.where(st_min == "optimal", batch.objective[1::2], np.where(st_min == "unbounded", -np.inf, np.nan))
    hi = np.where(st_max == "optimal", -batch.objective[2::2], np.where(st_max == "unbounded", np.inf, np.nan))
    # outer bounds from the duals: min x >= g_min, max x <= -g_max (infinite where the LP is unbounded)
    lo_b = np.where(st_min == "unbounded", -np.inf, bounds[1::2])
    hi_b = np.where(st_max == "unbounded", np.inf, -bounds[2::2])
    certified = (dual_ok[1::2] | (st_min == "unbounded")) & (dual_ok[2::2] | (st_max == "unbounded"))
    lower_bound = np.full((n, nn), np.nan)
    upper_bound = np.full((n, nn), np.nan)
    if coords.size:
        lower[coords[:, 0], coords[:, 1]] = lo
        upper[coords[:, 0], coords[:, 1]] = hi
        ranged[coords[:, 0], coords[:, 1]] = True
        lower_bound[coords[:, 0], coords[:, 1]] = lo_b
        upper_bound[coords[:, 0], coords[:, 1]] = hi_b
    if exit_mask is not None:
        lower[exit_mask] = 0.0
        upper[exit_mask] = 0.0
    counts = {str(s): int(c) for s, c in zip(*np.unique(batch.status.astype(str), return_counts=True), strict=True)}
    size = {"histories": space.n_hist, "nodes": nn, "rows": lp.n_rows, "columns": lp.n_cols, "nonzeros": lp.nnz}
    size["lps"] = int(m - 1)
    options = {
        **q.to_dict(),
        "outside_values": None if outside_values is None else ("pivot" if isinstance(outside_values, str) else "given"),
        "efficient_exit": bool(efficient_exit),
        "backend": backend,
    }
    res = RangeResult(
        "optimal",
        "",
        space,
        q,
        lower,
        upper,
        ranged,
        options,
        exit=exit_mask,
        reference=reference,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        solver={"status_counts": counts, "iterations": batch.iterations, "backend": batch.backend},
        timings=timings,
        size=size,
    )
    first = batch.status[0]
    if first == "infeasible":
        res.status = "unverified"
        res.message = (
            f"the solver ({backend}) found no mechanism satisfying the rows ({q.describe()}); mechlp has no "
            "impossibility certificate for this combination, so this is unverified"
        )
        return _finish(res, t0)
    bad = [s for s in batch.status if s not in ("optimal", "unbounded")]
    if bad:
        res.status = "time_limit" if all(s in ("time_limit", "skipped") for s in bad) else "error"
        res.message = f"{len(bad):,} of {m:,} LPs were not solved ({counts}); the ranges are incomplete"
        return _finish(res, t0)
    # the feasible point, verified
    t_ver = time.perf_counter()
    res.mechanism = Mechanism(space, var.split(batch.x[0])["x"])
    res.verification = _verify(res.mechanism, q, ov)
    uniq = _unique(lo, hi)
    proved = certified & _unique(lo_b, hi_b)  # the dual bounds enclose a point
    res.unique_agents = {env.agents[i].name: bool(uniq[coords[:, 0] == i].all()) for i in who}
    if not uniq.all():
        res.unique = False
        _witnesses(res, lp, coords, lo, hi, batch.x[0], backend, q, ov, exit_mask)
    elif proved.all():
        res.unique = True
    else:  # the LPs say unique, but some dual bound does not check
        res.unique = None
        res.status = "unverified"
    timings["verify"] = time.perf_counter() - t_ver
    checks = [res.verification] + list(res.witness_verifications or ())
    if not all(v.ok for v in checks) or _exit_violation(res) > 0:
        res.status = "verification_failed"
    res.message = _message(res, coords, lo, hi)
    return _finish(res, t0)


def _verify(mech: Mechanism, q: Question, ov: np.ndarray | None) -> Verification:
    """The independent check of a mechanism against the parsed question (local IC re-checked globally)."""
    spec = q.replace(ic="bayesian") if q.ic == "local" else q
    return verify(mech, question=spec, outside_values=ov)


def _exit_violation(res: RangeResult) -> float:
    """Largest ``|x_i(g)|`` at an exit node over the feasible mechanism and the witnesses (0 without exit)."""
    if res.exit is None:
        return 0.0
    mechs = [m for m in [res.mechanism, *(res.witnesses or ())] if m is not None]
    return max((float(np.max(np.abs(m.transfers[res.exit]), initial=0.0)) for m in mechs), default=0.0)


def _witnesses(res, lp, coords, lo, hi, start, backend, q, ov, exit_mask) -> None:
    """Minimiser and maximiser of the widest non-unique coordinate, verified (module docstring)."""
    width = hi - lo
    unbounded = ~np.isfinite(width)
    j = int(np.flatnonzero(unbounded)[0]) if unbounded.any() else int(np.nanargmax(width))
    i, g = (int(v) for v in coords[j])
    var = lp.variables
    col = int(var.x(i, g))
    if unbounded[j]:  # hold the payment within one unit of the feasible point's
        v0 = float(start[col])
        lo_c, hi_c = lp.col_lower.copy(), lp.col_upper.copy()
        lo_c[col] = max(lo_c[col], v0 - 1.0)
        hi_c[col] = min(hi_c[col], v0 + 1.0)
        lp = dataclasses.replace(lp, col_lower=lo_c, col_upper=hi_c)
    costs = sp.csr_matrix(([1.0, -1.0], ([0, 1], [col, col])), shape=(2, var.n_cols))
    out = solve_objectives(lp, costs, backend, keep=[0, 1])
    if not all(s == "optimal" for s in out.status):
        res.status = "error"
        return
    mechs = tuple(Mechanism(res.space, var.split(out.x[s])["x"]) for s in (0, 1))
    res.witnesses = mechs
    res.witness_verifications = tuple(_verify(mm, q, ov) for mm in mechs)
    env = res.space.env
    k = env.n_profiles
    res.witness_coordinate = {
        "agent": env.agents[i].name,
        "node": g,
        "history": g // k,
        "where": res.space.describe_history(g // k),
        "profile": "(" + ", ".join(env.profile_labels(g % k).values()) + ")",
        "lower": float(lo[j]),
        "upper": float(hi[j]),
        "witness_values": [float(mm.transfers[i, g]) + 0.0 for mm in mechs],  # + 0.0: no "-0"
    }


def _message(res: RangeResult, coords, lo, hi) -> str:
    n_c = coords.shape[0]
    fixed = 0 if res.exit is None else int(res.exit.sum())
    head = f"transfer ranges ({res.question_spec.describe()}"
    if res.options.get("outside_values"):
        head += f", outside values {res.options['outside_values']}"
    if res.options.get("efficient_exit"):
        head += ", efficient exit"
    head += f"; {res.space.kind} space, {res.space.n_hist:,} histories): {n_c:,} payments ranged"
    if fixed:
        head += f", {fixed:,} fixed at 0 by efficient exit"
    if res.unique is None:
        return head + (
            "; the LPs find every payment unique, but some dual bound does not check (unverified: see "
            "lower_bound / upper_bound)"
        )
    if res.unique:
        text = head + "; every payment is unique (proved by the dual bounds)"
        if res.reference is not None:
            dev = np.abs(lo - res.reference[coords[:, 0], coords[:, 1]])
            text += f" (largest distance from the dynamic pivot's {float(np.max(dev, initial=0.0)):.3g})"
        return text
    n_bad = int((~_unique(lo, hi)).sum())
    wc = res.witness_coordinate or {}
    text = head + f"; NOT unique: {n_bad:,} payments have a range of positive width"
    if wc:
        text += (
            f"; widest: {wc['agent']} at {wc['where']}, profile {wc['profile']}: [{wc['lower']:.6g}, "
            f"{wc['upper']:.6g}]; two witnesses pay {wc['witness_values'][0]:.6g} and {wc['witness_values'][1]:.6g}"
        )
        oks = [v.ok for v in res.witness_verifications]
        text += " (both verified)" if all(oks) else " (WITNESS VERIFICATION FAILED)"
    per = ", ".join(f"{a}: {'unique' if u else 'not unique'}" for a, u in res.unique_agents.items())
    return text + f" [{per}]"


def _finish(res: RangeResult, t0: float) -> RangeResult:
    res.timings["total"] = time.perf_counter() - t0
    return res

r"""The min-max recursion on a history tree too large for memory: split at a cut depth, solve and verify the
subtrees apart (in this process or on a Dask cluster), join the top levels after (issue #12, item 6).

What the top levels need from a subtree
    The recursion of Lamba (2022, Lemma 6; :mod:`mechlp.solve.recursion`) runs children first. At a history
    ``h`` the rows of agent ``i`` are difference constraints in :math:`\bar U_i(\cdot|h)` whose weights

    .. math::
       c_i(t, r|h) = \sum_m P(m|h) \sum_a p(a|r,m)[v_i(t,a) - v_i(r,a)]
       + \delta \sum_m P(m|h) \sum_{t'} [G_i(t'|t; r,m) - G_i(t'|r; r,m)]\, \bar U_i(t'|h(r,m))

    read the children only through their interim utilities :math:`\bar U_i(\cdot|h(r,m))`; the surplus
    :math:`\Pi^*(h) = W(h) - \sum_i \sum_t P_i(t|h) \bar U^*_i(t|h)` reads them through the welfare
    :math:`W(h) = \sum_\theta P(\theta|h)[w(\theta) + \delta W(h\theta)]`. So :math:`\Pi^*` at every history of
    the subtree rooted at ``b`` depends on that subtree only, and the levels above a cut need from each subtree
    root exactly :math:`\bar U^*_i(\cdot|b)` (``K_i`` numbers per agent), :math:`W(b)` (one number) and, for the
    pointwise-optimality check, the binding edges at ``b`` (:class:`mechlp.solve.recursion.Boundary`).

Identical subtrees
    The beliefs at a history depend on it only through its last report profile ``s`` (on a tree the type law
    after ``h`` is the kernel row :math:`G_j(\cdot|s_j; s)`, :func:`mechlp.model.beliefs.next_marginals`), and the
    allocation, kernels, valuations and outside options of this codebase depend on the current profile and type,
    never on the history. So the subtree rooted at a depth-``d`` history with last profile ``s`` *is* the model
    started with priors :math:`f_j^0 = G_j(\cdot|s_j; s)` and horizon ``T - d`` (:func:`subtree_environment`),
    and the ``K^d`` subtrees at a cut are only ``K`` distinct ones (``distinct=True``: one solve per profile).
    ``distinct=False`` solves one subtree per depth-``d`` history (the general path, where per-root data would
    enter; the recursion takes no history-dependent allocation -- :class:`~mechlp.model.mechanism.Mechanism` has
    one for second-best mechanisms, :mod:`mechlp.solve.second_best`, but the min-max recursion does not -- so it
    gives the same numbers, which the tests check bitwise).

What is verified, and why it covers the whole mechanism
    The whole mechanism has the top's transfers at depths ``< d`` and each subtree's transfers below. Each
    subtree's mechanism (:meth:`~mechlp.solve.recursion.RecursionSolution.mechanism`) is verified on its own
    tree by :func:`mechlp.audit.verifier.verify` (Bayesian IC over all misreports, interim IR; its surplus
    :math:`\Pi` recomputed by the verifier must match :math:`\Pi^*` to ``tolerances.FEASIBILITY``), as
    :func:`mechlp.solve.recursion.minmax_result` does. Every IC and IR row at a history ``h`` reads only the ex
    post utilities :math:`U_i` at the nodes of ``h`` and of its children, and the beliefs at ``h``; utilities are
    continuation values of the transfers below (Lamba 2022, eq. 3). So:

    * a row at depth ``>= d`` is the same row of its subtree (same transfers below, same beliefs): checked by the
      subtree's verification -- once per distinct subtree, which is the same mechanism at each of its copies;
    * a row at depth ``< d`` reads :math:`U_i` at depths ``<= d``. The top is checked on the tree of ``d + 1``
      periods whose last level's transfers are set to :math:`x_i = \sum_a p(a|\theta) v_i - U^{sub}_i(\theta)`,
      with :math:`U^{sub}_i` the subtree mechanism's own ex post utilities at its root nodes (from its transfers):
      there the utilities equal the whole mechanism's, and above it the transfers are the whole mechanism's, so
      the rows at depths ``< d`` are the whole mechanism's rows, evaluated by the verifier
      (:func:`_top_rows`). The collapsed last level's own rows are *not* the whole mechanism's (they lack the
      continuation) and are not counted; they are the subtree roots' rows, checked by the subtrees.

    Together every IC and IR row of the whole tree is checked, with the verifier's arithmetic and tolerance. By the
    one-shot deviation principle on a finite tree (the verifier's rows are one-shot deviations at every
    history), that is Bayesian IC and interim IR of the whole mechanism. The top's surplus is recomputed from the
    transfers too: the designer values :math:`B` of the top with the subtrees' own :math:`B` at their root nodes
    (:func:`mechlp.model.beliefs.continuation_values`), compared with :math:`\Pi^*`. Not verified: exactness
    (floats with the verifier's tolerance, as for every recursion answer) and, when the pointwise-optimality
    check fails (``pointwise_optimal`` false), that :math:`\Pi^*` is the LP's min-max value.

Memory and files
    The cut depth is the smallest ``d >= 1`` at which a subtree of ``T - d`` periods (with its verification) and
    the top of ``d + 1`` periods each fit ``memory_limit`` (:func:`choose_cut`, from the one calibrated estimator
    :func:`mechlp.model.spaces.estimate_memory`). Subtrees run one at a time in this process, or one per worker
    on a Dask ``distributed.Client`` (or any ``concurrent.futures.Executor``): each worker needs
    ``memory_limit``. With ``directory``, every subtree's :math:`\Pi^*` (breadth-first order of its own tree)
    is written by the process that solved it to ``subtree-<key>.npy`` (``pyarrow`` is not a dependency, so no
    Parquet; ``.npy`` is memory-mappable), the top's to ``top.npy``, a manifest to ``split.json``, and with
    ``expand=True`` :math:`\Pi^*` at every history of the whole tree in its breadth-first order to
    ``surplus.npy``, streamed level by level and subtree by subtree (the tree's order at depth ``L >= d`` is the
    concatenation of the subtrees' depth ``L - d`` levels, subtree roots in order). :meth:`SplitResult.surplus_at`
    reads :math:`\Pi^*` at any histories of the whole tree without expanding it.

Python loops run over subtrees (``K`` of them, or ``K^d`` with ``distinct=False``), depth levels and agents;
never over histories or nodes.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mechlp.audit.verifier import surplus as verifier_surplus
from mechlp.audit.verifier import verify
from mechlp.model import tolerances
from mechlp.model.beliefs import continuation_values, expectation, next_marginals
from mechlp.model.environment import Agent, Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, MAX_MEMORY_LIMIT, HistoryTree, estimate_memory, space_counts
from mechlp.model.transfers import transfers_from_interim
from mechlp.solve.recursion import CHECK_TOL, Boundary, solve

__all__ = [
    "SubtreeRecord",
    "SplitResult",
    "split_minmax",
    "choose_cut",
    "subtree_environment",
    "subtree_histories",
]


# ---------------------------------------------------------------------------------------------- the model below a cut
def subtree_environment(env: Environment, profile: int, horizon: int) -> Environment:
    r"""The model of the subtree rooted at a history whose last report profile is ``profile``, for ``horizon``
    periods: the same agents, actions, allocation and discount, with priors :math:`f_j^0 = G_j(\cdot|s_j; s)`
    (the beliefs after ``s``, :func:`mechlp.model.beliefs.next_marginals`).

    Raises
    ------
    ValueError
        For ``profile`` outside ``0..K-1`` or ``horizon < 1``, and with correlated types (``env.correlated``).
    """
    env.require_independent("subtree_environment (the beliefs after a cut as the agents' own priors)")
    k = env.n_profiles
    if isinstance(profile, bool) or not isinstance(profile, int | np.integer) or not 0 <= profile < k:
        raise ValueError(f"profile must be an integer in 0..{k - 1}, got {profile!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    rows = next_marginals(env)
    agents = [
        Agent(ag.name, ag.types, rows[j][int(profile)], ag.transition, ag.valuation, ag.values, ag.role)
        for j, ag in enumerate(env.agents)
    ]
    return Environment(agents, env.actions, env.discount, int(horizon), np.asarray(env.allocation), env.name, env.meta)


def _level_start(k: int, horizon: int) -> np.ndarray:
    """``[0, 1, 1 + K, ...]``: first history of each depth level of a ``horizon``-period tree (and the end)."""
    return np.concatenate([[0], np.cumsum(np.array([k**t for t in range(horizon)], dtype=np.int64))]).astype(np.int64)


def subtree_histories(
    k: int, horizon: int, cut_depth: int, hists: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Where histories of depth ``>= cut_depth`` of the ``horizon``-period tree live in the subtrees at the cut.

    Breadth-first order: a history at depth ``L`` with offset ``o`` in its level sits in the subtree of the
    depth-``d`` root with offset :math:`\lfloor o / K^{L-d} \rfloor`, at local depth ``L - d`` and local offset
    :math:`o \bmod K^{L-d}`.

    Returns
    -------
    depth : ndarray
        Depth of each history (``0`` at the root).
    root : ndarray
        Offset of its subtree's root among the depth-``d`` histories (``-1`` above the cut).
    local : ndarray
        Its index in the subtree's own breadth-first order (``-1`` above the cut).
    """
    ls = _level_start(k, horizon)
    h = np.asarray(hists, dtype=np.int64).reshape(-1)
    if h.size and (h.min() < 0 or h.max() >= ls[-1]):
        raise ValueError(f"hists must be in 0..{int(ls[-1]) - 1} (the histories of the {horizon}-period tree)")
    depth = np.searchsorted(ls, h, side="right") - 1
    below = depth >= cut_depth
    e = np.where(below, depth - cut_depth, 0)
    width = np.asarray(k, dtype=np.int64) ** e
    off = h - ls[depth]
    local_ls = _level_start(k, max(horizon - cut_depth, 1))
    root = np.where(below, off // width, -1)
    local = np.where(below, local_ls[e] + off % width, -1)
    return depth, root, local


# ---------------------------------------------------------------------------------------------- memory
def _need(env: Environment, horizon: int, verify: bool) -> int:
    return estimate_memory(env, "minmax" if verify else "recursion", horizon=horizon, method="recursion").bytes


def choose_cut(env: Environment, horizon: int, memory_limit: int, verify: bool = True) -> int:
    """The smallest cut depth ``d`` in ``1..horizon-1`` at which one subtree of ``horizon - d`` periods and the top
    of ``d + 1`` periods each fit ``memory_limit`` (:func:`mechlp.model.spaces.estimate_memory`, recursion with
    ``verify``: plus transfers and the verifier), predicted before anything is built.

    Raises
    ------
    MemoryError
        When no cut depth fits (the message gives the smallest subtree and top estimates).
    """
    best = None
    for d in range(1, horizon):  # loop over depth levels
        sub, top = _need(env, horizon - d, verify), _need(env, d + 1, verify)
        if sub <= memory_limit and top <= memory_limit:
            return d
        best = (d, sub, top) if best is None or max(sub, top) < max(best[1], best[2]) else best
    if best is None:
        raise MemoryError(f"a tree of horizon {horizon} has no cut depth (horizon must be >= 2)")
    d, sub, top = best
    raise MemoryError(
        f"no cut depth of the {horizon}-period tree fits the memory limit of {memory_limit / 2**30:.2f} GiB: at best "
        f"(d = {d}) a subtree needs about {sub / 2**30:.2f} GiB and the top {top / 2**30:.2f} GiB"
    )


# ---------------------------------------------------------------------------------------------- one subtree
@dataclass
class SubtreeRecord:
    r"""What a subtree's solve returns to the join (small: ``O(K)`` numbers, the rest is on disk).

    Attributes
    ----------
    key : int
        The last report profile of its roots (``distinct=True``) or the offset of its root among the cut's
        histories (``distinct=False``).
    profile : int
        Last report profile of the root(s).
    horizon, histories, nodes : int
        Of the subtree.
    status, message : str
        Of the recursion (``"optimal"`` when solved).
    interim_utilities, parents : list of ndarray
        Per agent ``(K_i,)``: :math:`\bar U^*_i(\cdot|b)` and the binding edges at the root.
    welfare, surplus : float
        :math:`W(b)`, :math:`\Pi^*(b)`.
    root_utilities : ndarray
        ``(n_agents, K)``: the subtree mechanism's ex post utilities at its root nodes, from its transfers.
    root_designer : ndarray
        ``(K,)``: its designer values :math:`B` at the root nodes, from its transfers.
    min_surplus : float
        Smallest :math:`\Pi^*` over the subtree; ``argmin`` its first history (the subtree's breadth-first order).
    pointwise_optimal : bool or None
    min_coefficient : float
    verification : dict or None
        :meth:`mechlp.audit.verifier.Verification.to_dict` of the subtree's mechanism (``None`` without verify).
    surplus_gap : float
        Largest :math:`|\Pi - \Pi^*|` with :math:`\Pi` the verifier's surplus of the mechanism.
    seconds : dict
    peak_rss : int
        Peak resident bytes of the process that solved it (its running maximum).
    file : str or None
        ``subtree-<key>.npy`` in the result's directory.
    surplus_array : ndarray or None
        :math:`\Pi^*` of the subtree when there is no directory.
    """

    key: int
    profile: int
    horizon: int
    histories: int
    nodes: int
    status: str
    message: str
    interim_utilities: list[np.ndarray] = field(default_factory=list)
    parents: list[np.ndarray] = field(default_factory=list)
    welfare: float = float("nan")
    surplus: float = float("nan")
    root_utilities: np.ndarray | None = None
    root_designer: np.ndarray | None = None
    min_surplus: float = float("nan")
    argmin: int = -1
    pointwise_optimal: bool | None = None
    min_coefficient: float = 0.0
    verification: dict | None = None
    surplus_gap: float = 0.0
    seconds: dict = field(default_factory=dict)
    peak_rss: int = 0
    file: str | None = None
    surplus_array: np.ndarray | None = None

    @property
    def verified(self) -> bool:
        """The subtree's mechanism passed the verifier and its surplus matches :math:`\\Pi^*`."""
        return self.verification is not None and bool(self.verification["ok"]) and self.status == "optimal"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": int(self.key),
            "profile": int(self.profile),
            "horizon": int(self.horizon),
            "histories": int(self.histories),
            "nodes": int(self.nodes),
            "status": self.status,
            "surplus": float(self.surplus),
            "min_surplus": float(self.min_surplus),
            "argmin": int(self.argmin),
            "pointwise_optimal": self.pointwise_optimal,
            "min_coefficient": float(self.min_coefficient),
            "verified": self.verified,
            "max_violation": None if self.verification is None else self.verification["max_violation"],
            "surplus_gap": float(self.surplus_gap),
            "seconds": dict(self.seconds),
            "peak_rss": int(self.peak_rss),
            "file": self.file,
        }


@dataclass(frozen=True)
class _Task:
    env: Environment
    key: int
    profile: int
    horizon: int
    ic: str
    outside: tuple[np.ndarray, ...]
    verify: bool
    memory_limit: int
    directory: str | None


def _peak_rss() -> int:
    """Peak resident bytes of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _solve_subtree(task: _Task) -> SubtreeRecord:
    """Solve, verify and write one subtree (runs in this process or on a worker; module-level to pickle)."""
    t0 = time.perf_counter()
    env = subtree_environment(task.env, task.profile, task.horizon)
    space = HistoryTree(env, task.horizon, memory_limit=MAX_MEMORY_LIMIT)  # (its estimate was checked by the caller)
    sol = solve(space, ic=task.ic, outside_option=list(task.outside), memory_limit=task.memory_limit)
    rec = SubtreeRecord(task.key, task.profile, task.horizon, space.n_hist, space.n_nodes, sol.status, sol.message)
    rec.seconds["solve"] = time.perf_counter() - t0
    if sol.status != "optimal":
        rec.peak_rss = _peak_rss()
        return rec
    pi = sol.surplus
    rec.interim_utilities = [u[0].copy() for u in sol.interim_utilities]
    rec.parents = [p[0].copy() for p in sol.parents]
    rec.welfare, rec.surplus = float(sol.welfare[0]), float(pi[0])
    rec.argmin = int(np.argmin(pi))
    rec.min_surplus = float(pi[rec.argmin])
    rec.pointwise_optimal, rec.min_coefficient = sol.pointwise_optimal, float(sol.min_coefficient)
    k = env.n_profiles
    if task.verify:
        t1 = time.perf_counter()
        mech = sol.mechanism()
        q = Question.parse(env, ic="bayesian", ir="interim", budget="none", outside_option=list(task.outside))
        cert = verify(mech, question=q)
        rec.surplus_gap = float(np.abs(verifier_surplus(mech) - pi).max())
        rec.root_utilities = mech.utilities()[:, :k].copy()
        rec.root_designer = mech.designer_values()[:k].copy()
        del mech
        rec.verification = cert.to_dict()
        if rec.surplus_gap > tolerances.FEASIBILITY * (1.0 + float(np.abs(pi).max())):
            rec.verification["ok"] = False
        rec.seconds["verify"] = time.perf_counter() - t1
    if task.directory is not None:
        t2 = time.perf_counter()
        rec.file = f"subtree-{task.key}.npy"
        np.save(Path(task.directory) / rec.file, pi)
        rec.seconds["write"] = time.perf_counter() - t2
    else:
        rec.surplus_array = pi
    rec.peak_rss = _peak_rss()
    return rec


# ---------------------------------------------------------------------------------------------- the top
def _top_rows(
    space: HistoryTree, transfers: np.ndarray, outside: list[np.ndarray], end: int
) -> tuple[dict[str, float], dict[str, int]]:
    """Largest IC (Bayesian) and IR (interim) violation over the rows at histories ``< end`` of ``space``, by
    :func:`mechlp.audit.verifier.verify` restricted to those histories (the collapsed last level's rows are not
    rows of the whole mechanism). Returns (max violation, rows) per family."""
    ver = verify(
        Mechanism(space, transfers),
        ic="bayesian",
        ir="interim",
        budget="none",
        outside_option=[np.asarray(o, dtype=float) for o in outside],
        histories=np.arange(end),
    )
    return dict(ver.max_violation), dict(ver.n_rows)


# ---------------------------------------------------------------------------------------------- result
@dataclass
class SplitResult:
    r"""Result of :func:`split_minmax`.

    Attributes
    ----------
    env : Environment
    horizon, cut_depth : int
    status : str
        ``"optimal"``, ``"verification_failed"``, or the first failing subtree's (or the top's) recursion status.
    message : str
    histories, nodes : int
        Of the whole tree.
    distinct : bool
        One subtree per last profile (else one per cut history).
    roots : ndarray
        ``(K^d,)``: the subtree key of each history at the cut, in order.
    top_surplus : ndarray or None
        :math:`\Pi^*` at the histories of depth ``<= d`` (the whole tree's indices: the first histories).
    subtrees : list of SubtreeRecord
    min_surplus : float
        Smallest :math:`\Pi^*` over every history of the whole tree; ``argmin`` the first history (breadth-first
        index of the whole tree) where it is attained, ``argmin_where`` its path.
    pointwise_optimal : bool or None
        Every subtree's and the top's pointwise-optimality check passed.
    verified : bool
        Every subtree's mechanism and the top's rows passed (module docstring).
    top_verification : dict
        ``max_violation`` and ``n_rows`` per family of the top's rows, ``surplus_gap``.
    estimate : dict
        Predicted bytes: ``subtree``, ``top``, ``unsplit`` (the whole tree, for comparison), ``memory_limit``.
    directory : Path or None
    seconds : dict
    """

    env: Environment
    horizon: int
    cut_depth: int
    status: str
    message: str
    histories: int
    nodes: int
    distinct: bool
    roots: np.ndarray
    top_surplus: np.ndarray | None
    subtrees: list[SubtreeRecord]
    min_surplus: float = float("nan")
    argmin: int = -1
    argmin_where: str = ""
    pointwise_optimal: bool | None = None
    verified: bool = False
    top_verification: dict = field(default_factory=dict)
    estimate: dict = field(default_factory=dict)
    directory: Path | None = None
    seconds: dict = field(default_factory=dict)

    def _subtree_surplus(self, key: int) -> np.ndarray:
        rec = self.subtrees[self._index[key]]
        if rec.surplus_array is not None:
            return rec.surplus_array
        return np.load(self.directory / rec.file, mmap_mode="r")

    @property
    def _index(self) -> dict[int, int]:
        return {rec.key: j for j, rec in enumerate(self.subtrees)}

    def surplus_at(self, hists: np.ndarray | list[int]) -> np.ndarray:
        r""":math:`\Pi^*` at histories of the whole tree (breadth-first indices), read from the top and the
        subtrees' arrays (memory-mapped files), one gather per subtree."""
        if self.top_surplus is None:
            raise ValueError(f"no Pi* to read: the split ended with status {self.status!r}")
        h = np.asarray(hists, dtype=np.int64).reshape(-1)
        depth, root, local = subtree_histories(self.env.n_profiles, self.horizon, self.cut_depth, h)
        out = np.empty(h.size)
        top = depth < self.cut_depth
        out[top] = self.top_surplus[h[top]]
        key = np.where(top, -1, self.roots[np.maximum(root, 0)])
        for rec in self.subtrees:  # loop over subtrees
            sel = np.flatnonzero(key == rec.key)
            if sel.size:
                out[sel] = self._subtree_surplus(rec.key)[local[sel]]
        return out

    def summary(self) -> str:
        head = (
            f"{self.horizon}-period tree ({self.histories:,} histories, {self.nodes:,} nodes) cut at depth "
            f"{self.cut_depth}: {len(self.subtrees)} subtree solve(s) of {self.horizon - self.cut_depth} periods "
            f"for {self.roots.size} cut histories"
        )
        if self.status != "optimal" and self.top_surplus is None:
            return f"{head}; {self.message}"
        return (
            f"{head}; Pi*(root) = {self.top_surplus[0]:.6g}, smallest Pi* = {self.min_surplus:.6g} at "
            f"{self.argmin_where}; verified: {self.verified}; pointwise optimal: {self.pointwise_optimal}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.env.name,
            "horizon": int(self.horizon),
            "cut_depth": int(self.cut_depth),
            "status": self.status,
            "message": self.message,
            "histories": int(self.histories),
            "nodes": int(self.nodes),
            "distinct": bool(self.distinct),
            "roots": [int(r) for r in self.roots],
            "surplus_root": None if self.top_surplus is None else float(self.top_surplus[0]),
            "min_surplus": float(self.min_surplus),
            "argmin": int(self.argmin),
            "argmin_where": self.argmin_where,
            "pointwise_optimal": self.pointwise_optimal,
            "verified": bool(self.verified),
            "top_verification": self.top_verification,
            "estimate": {k: int(v) for k, v in self.estimate.items()},
            "seconds": dict(self.seconds),
            "subtrees": [rec.to_dict() for rec in self.subtrees],
        }


def _describe(env: Environment, h: int) -> str:
    """The report profiles leading to tree history ``h`` (walks up one branch: depth steps only)."""
    k, path = env.n_profiles, []
    while h > 0:
        path.append(env.profile_labels((h - 1) % k))
        h = (h - 1) // k
    return " -> ".join("(" + ", ".join(p.values()) + ")" for p in path[::-1]) or "root (period 1)"


def _run(tasks: list[_Task], executor: Any) -> list[SubtreeRecord]:
    if isinstance(executor, str):
        if executor != "serial":
            raise ValueError(f"executor must be 'serial', a distributed.Client or an Executor, got {executor!r}")
        return [_solve_subtree(t) for t in tasks]  # loop over subtrees, one at a time
    if not (isinstance(executor, Executor) or (hasattr(executor, "submit") and hasattr(executor, "gather"))):
        raise TypeError(
            f"executor must be 'serial', a distributed.Client or an Executor, got {type(executor).__name__}"
        )
    futures = [executor.submit(_solve_subtree, t) for t in tasks]
    return [f.result() for f in futures]


def _write_expanded(res: SplitResult, path: Path) -> None:
    """Stream :math:`\\Pi^*` at every history, breadth-first, to ``path`` (``.npy``): the top's levels, then each
    deeper level as the subtrees' local levels, roots in order (loops over levels and roots; one slice each)."""
    k, d, n = res.env.n_profiles, res.cut_depth, res.histories
    local_ls = _level_start(k, res.horizon - d)
    arrays = {rec.key: res._subtree_surplus(rec.key) for rec in res.subtrees}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
        f.write(np.ascontiguousarray(res.top_surplus[: int(_level_start(k, d)[-1])], dtype="<f8").tobytes())
        for e in range(res.horizon - d):  # loop over depth levels below the cut
            a, b = int(local_ls[e]), int(local_ls[e + 1])
            for key in res.roots:  # loop over the cut's histories (subtree roots)
                f.write(np.ascontiguousarray(arrays[int(key)][a:b], dtype="<f8").tobytes())


def split_minmax(
    env: Environment,
    horizon: int | None = None,
    *,
    cut_depth: int | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ic: str = "bayesian",
    outside_option: Any = 0.0,
    directory: str | Path | None = None,
    executor: Any = "serial",
    distinct: bool = True,
    verify: bool = True,
    expand: bool = False,
) -> SplitResult:
    r"""Min-max :math:`\Pi^*` at every history of a ``horizon``-period tree, by subtrees below a cut depth.

    The subtrees of ``horizon - d`` periods rooted at the cut's histories are solved by the recursion of Lamba
    (2022, Lemma 6; :func:`mechlp.solve.recursion.solve`) and verified (:func:`mechlp.audit.verifier.verify`), apart;
    the top ``d`` levels are then solved from the subtree roots' values (:class:`mechlp.solve.recursion.Boundary`)
    and their rows verified; together this verifies the whole mechanism (module docstring).

    Parameters
    ----------
    env : Environment
    horizon : int, optional
        Periods ``T >= 2`` (default ``env.horizon``).
    cut_depth : int, optional
        ``d`` in ``1..T-1``; default :func:`choose_cut` (the smallest that fits ``memory_limit``).
    memory_limit : int
        Bytes one subtree (and the top) may use, per process: each Dask worker needs this much.
    ic : {"bayesian", "local"}
        Rows of the recursion (the verification always uses Bayesian IC over all misreports).
    outside_option : float or per agent (per type)
        As in :func:`mechlp.solve.questions.minmax` (interim IR).
    directory : str or Path, optional
        Where the subtrees' and the top's :math:`\Pi^*` and the manifest ``split.json`` are written (module
        docstring); without it they stay in memory (small trees).
    executor : "serial", distributed.Client or concurrent.futures.Executor
        Where subtrees run. A Client's workers must see ``directory`` (a ``LocalCluster`` does).
    distinct : bool
        Solve one subtree per last report profile (exact here: module docstring), else one per cut history.
    verify : bool
        Verify every subtree's mechanism and the top's rows.
    expand : bool
        Also write :math:`\Pi^*` at every history of the whole tree to ``directory/surplus.npy``.

    Returns
    -------
    SplitResult

    Raises
    ------
    ValueError
        For a bad ``horizon``, ``cut_depth``, ``executor``, or ``expand`` without ``directory``.
    MemoryError
        When a subtree or the top at ``cut_depth`` (or at every cut depth) is predicted to exceed ``memory_limit``.
    """
    t0 = time.perf_counter()
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    if horizon is None:
        if env.infinite:
            raise ValueError("horizon is required when the environment's horizon is infinite")
        horizon = int(env.horizon)
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 2:
        raise ValueError(f"horizon must be an integer >= 2 to split the tree, got {horizon!r}")
    horizon = int(horizon)
    if expand and directory is None:
        raise ValueError("expand=True writes surplus.npy: give directory")
    q = Question.parse(env, ic=ic, ir="interim", budget="none", outside_option=outside_option)
    if q.ic not in ("bayesian", "local"):
        raise ValueError(f"ic must be 'bayesian' or 'local' for the recursion, got {ic!r}")
    if cut_depth is None:
        d = choose_cut(env, horizon, memory_limit, verify)
    else:
        if isinstance(cut_depth, bool) or not isinstance(cut_depth, int | np.integer) or not 1 <= cut_depth < horizon:
            raise ValueError(f"cut_depth must be an integer in 1..{horizon - 1} (horizon {horizon}), got {cut_depth!r}")
        d = int(cut_depth)
    est = {
        "subtree": _need(env, horizon - d, verify),
        "top": _need(env, d + 1, verify),
        "unsplit": _need(env, horizon, verify),
        "memory_limit": int(memory_limit),
    }
    for part, per in (("subtree", horizon - d), ("top", d + 1)):
        if est[part] > memory_limit:
            raise MemoryError(
                f"cut_depth {d}: the {part} of {per} periods needs about {est[part] / 2**30:.2f} GiB, over the memory "
                f"limit of {memory_limit / 2**30:.2f} GiB (choose another cut_depth, or leave it to choose_cut)"
            )
    k = env.n_profiles
    out_dir = None if directory is None else Path(directory)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    top_space = HistoryTree(env, d + 1, memory_limit=MAX_MEMORY_LIMIT)
    a_d, b_d = top_space.levels()[-1]
    cut_prof = top_space.hist_prev_profile[a_d:b_d]
    if distinct:
        keys = np.unique(cut_prof)
        roots = cut_prof.astype(np.int64)
        profiles = keys
    else:
        keys = np.arange(b_d - a_d)
        roots = keys.copy()
        profiles = cut_prof
    tasks = [
        _Task(
            env,
            int(key),
            int(p),
            horizon - d,
            q.ic,
            q.outside,
            verify,
            int(memory_limit),
            None if out_dir is None else str(out_dir),
        )
        for key, p in zip(keys, profiles, strict=True)
    ]
    n_hist, n_nodes, _ = space_counts(env, "tree", horizon)
    t1 = time.perf_counter()
    records = _run(tasks, executor)
    res = SplitResult(env, horizon, d, "optimal", "", n_hist, n_nodes, bool(distinct), roots, None, records)
    res.estimate, res.directory = est, out_dir
    res.seconds["subtrees"] = time.perf_counter() - t1
    bad = [r for r in records if r.status != "optimal"]
    if bad:
        res.status, res.message = bad[0].status, f"subtree after profile {bad[0].profile}: {bad[0].message}"
        return res

    # the top levels, from the subtree roots' values
    t2 = time.perf_counter()
    rec_keys = np.array([r.key for r in records])
    order = np.argsort(rec_keys)
    rec_of_root = order[np.searchsorted(rec_keys[order], roots)]  # the record of each cut history
    boundary = Boundary(
        [np.stack([r.interim_utilities[i] for r in records])[rec_of_root] for i in range(env.n_agents)],
        [np.stack([r.parents[i] for r in records])[rec_of_root] for i in range(env.n_agents)],
        np.array([r.welfare for r in records])[rec_of_root],
    )
    top = solve(top_space, ic=q.ic, outside_option=list(q.outside), memory_limit=memory_limit, boundary=boundary)
    res.seconds["top"] = time.perf_counter() - t2
    if top.status != "optimal":
        res.status, res.message = top.status, f"top levels: {top.message}"
        return res
    res.top_surplus = top.surplus
    res.pointwise_optimal = bool(top.min_coefficient >= -CHECK_TOL) and all(r.pointwise_optimal for r in records)

    # smallest Pi*: the top above the cut, each subtree's first minimum at its first root (breadth-first order)
    cands = [(float(top.surplus[:a_d].min()), int(np.argmin(top.surplus[:a_d])))]
    ls = _level_start(k, horizon)
    local_ls = _level_start(k, horizon - d)
    for rec in records:  # loop over subtrees
        e = int(np.searchsorted(local_ls, rec.argmin, side="right") - 1)
        first_root = int(np.flatnonzero(roots == rec.key)[0])
        cands.append((rec.min_surplus, int(ls[d + e] + first_root * k**e + rec.argmin - local_ls[e])))
    res.min_surplus, res.argmin = min(cands)
    res.argmin_where = _describe(env, res.argmin)

    if verify:
        t3 = time.perf_counter()
        x = transfers_from_interim(top_space, top.interim_utilities)
        u_sub = np.stack([r.root_utilities for r in records])[rec_of_root]  # (K^d, n_agents, K)
        flow = env.flow_values()  # (n, K)
        x[:, a_d * k :] = (flow[None, :, :] - u_sub).transpose(1, 0, 2).reshape(env.n_agents, -1)
        viol, n_rows = _top_rows(top_space, x, list(q.outside), a_d)
        b_flow = x.sum(axis=0)
        b_flow[a_d * k :] = np.stack([r.root_designer for r in records])[rec_of_root].reshape(-1)
        pi_ver = expectation(top_space, continuation_values(top_space, b_flow[None, :])[0])
        gap = float(np.abs(pi_ver - top.surplus).max())
        scale = 1.0 + float(np.abs(top.surplus).max())
        ok_top = all(v <= tolerances.FEASIBILITY for v in viol.values()) and gap <= tolerances.FEASIBILITY * scale
        res.top_verification = {"ok": ok_top, "max_violation": viol, "n_rows": n_rows, "surplus_gap": gap}
        res.verified = ok_top and all(r.verified for r in records)
        res.seconds["verify_top"] = time.perf_counter() - t3
        if not res.verified:
            res.status = "verification_failed"
            failed = [f"subtree {r.key}" for r in records if not r.verified] + ([] if ok_top else ["the top levels"])
            res.message = f"the split mechanism fails the independent verification in {', '.join(failed)}"
    if out_dir is not None:
        t4 = time.perf_counter()
        np.save(out_dir / "top.npy", top.surplus)
        if expand:
            _write_expanded(res, out_dir / "surplus.npy")
        res.seconds["write"] = time.perf_counter() - t4
    if not res.message:
        res.message = "solved by subtrees" + (" and verified" if res.verified else "")
    res.seconds["total"] = time.perf_counter() - t0
    if out_dir is not None:
        (out_dir / "split.json").write_text(json.dumps(res.to_dict(), indent=1) + "\n")
    return res

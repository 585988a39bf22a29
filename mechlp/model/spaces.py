r"""State spaces on which mechanisms live: the finite history tree and the infinite-horizon Markov form.

Both spaces share one indexing scheme (docs/design.md section 5.1). A *history* ``h`` is the public information
before a period's reports; a *node* is a pair ``(h, theta)`` of a history and the current report profile.
With ``K`` type profiles:

* the nodes of history ``h`` are the contiguous block ``h*K .. h*K + K - 1``, node ``g`` has profile
  ``g % K`` and history ``g // K``;
* after node ``g`` the next history is ``child_hist[g]`` (``-1`` when the game ends), so the children of ``g``
  are the nodes ``child_hist[g]*K + theta'``;
* ``hist_prev_profile[h]`` is the report profile of the last period (``-1`` at the root), which is all the
  beliefs depend on: :math:`P(\theta|h) = \prod_i F_i(\theta_i|\theta^{prev}_i, a^{prev})` (computed in
  :mod:`mechlp.model.beliefs`, with reach probabilities and continuation values).

**HistoryTree** (form 1): histories in breadth-first order; history ``0`` is the root and history ``g + 1``
follows node ``g``. Size grows like ``K^T``; :func:`estimate_tree_size` predicts it and the constructor
refuses trees whose LP would exceed ``memory_limit``.

**MarkovSpace** (form 2): history ``0`` is the initial state, history ``1 + s`` means "last report profile was
``s``". A mechanism on this space is stationary and Markov; an LP on it answers "is there a Markov mechanism".

**TreeWithTail** (form 3): the histories of a ``T``-period tree (indexed exactly as in ``HistoryTree``)
followed by ``K`` Markov states: history ``n_tree + s`` means "period ``T + 1`` or later, last report profile
``s``". The nodes of the tree's last period and of every tail state lead to the tail state of their own profile,
so a mechanism is history dependent for ``T`` periods and stationary Markov afterwards.

**MergedTree**: a ``HistoryTree`` whose histories with identical subtrees (same period, same last profile, same
node data below) are merged into one (:func:`merge_identical_subtrees`); an acyclic graph with the tree's indexing
scheme, used by the exact verifier to evaluate each distinct subtree once.

Everything here is array arithmetic; there is no Python loop over nodes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from mechlp.model.environment import Environment
from mechlp.model.question import parse_notion

__all__ = [
    "ActionTree",
    "StateSpace",
    "HistoryTree",
    "MarkovSpace",
    "TreeWithTail",
    "MergedTree",
    "merge_identical_subtrees",
    "distinct_continuations",
    "SizeEstimate",
    "estimate_tree_size",
    "estimate_tail_size",
    "make_space",
    "space_for",
    "check_memory",
    "space_counts",
    "lp_counts",
    "estimate_memory",
    "ESTIMATED_QUESTIONS",
    "question_space",
]

DEFAULT_MEMORY_LIMIT = 8 * 2**30  # bytes; override per call
#: ``memory_limit`` for building a space whose question was already checked against its own estimate
#: (:func:`question_space`): the constructor's default-LP estimate does not apply to it.
MAX_MEMORY_LIMIT = 2**62


@dataclass(frozen=True)
class SizeEstimate:
    """Predicted size of a space and of the LP built on it (docs/design.md section 5.3)."""

    histories: int
    nodes: int
    columns: int
    rows: int
    nonzeros: int
    bytes: int

    def describe(self, purpose: str = "to build and solve") -> str:
        lp = f"{self.columns:,} columns, {self.rows:,} rows, {self.nonzeros:,} nonzeros, " if self.columns else ""
        return f"{self.histories:,} histories, {self.nodes:,} nodes, {lp}about {self.bytes / 2**30:.2f} GiB {purpose}"


#: No space of more histories than this can be built on any machine; larger trees are refused before their size
#: is even computed exactly (``K**T`` has ``T log2 K`` bits).
MAX_HISTORIES = 2**62


def _tree_histories(k: int, horizon: int) -> int:
    r""":math:`\sum_{t<T} K^t = (K^T - 1)/(K - 1)` (``T`` for ``K = 1``), refusing trees beyond ``MAX_HISTORIES``."""
    if k == 1:
        return int(horizon)
    if horizon * math.log2(k) > math.log2(MAX_HISTORIES):
        raise MemoryError(
            f"a history tree of {horizon} periods with {k} report profiles has more than 2**62 histories "
            f"(about {k}**{horizon}); no machine holds it -- use a shorter horizon, or the Markov space"
        )
    return (k**horizon - 1) // (k - 1)


def estimate_tree_size(env: Environment, horizon: int) -> SizeEstimate:
    """Size of the history tree of ``horizon`` periods and its LP, computed without building anything (closed
    form; trees beyond ``MAX_HISTORIES`` are refused with ``MemoryError``)."""
    k = env.n_profiles
    n_hist = _tree_histories(k, horizon)
    n_nodes = n_hist * k
    n_nonterminal = n_nodes - k**horizon
    return _lp_size(env, n_hist, n_nodes, n_nonterminal)


def estimate_tail_size(env: Environment, horizon: int) -> SizeEstimate:
    """Size of the tree-with-tail space (``horizon`` tree periods plus ``K`` Markov states) and of its LP."""
    k = env.n_profiles
    n_hist = _tree_histories(k, horizon) + k
    return _lp_size(env, n_hist, n_hist * k, n_hist * k)


def _check_horizon(horizon: object) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
        raise TypeError(f"horizon must be an integer, got {type(horizon).__name__}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return int(horizon)


def _path_text(env: Environment, profiles: list[int]) -> str:
    return " -> ".join("(" + ", ".join(env.profile_labels(p).values()) + ")" for p in profiles)


def _profile_texts(env: Environment) -> np.ndarray:
    """``(K,)`` object array: ``"(label_1, ..., label_n)"`` of every report profile (loop over profiles)."""
    out = np.empty(env.n_profiles, dtype=object)
    out[:] = ["(" + ", ".join(env.profile_labels(p).values()) + ")" for p in range(env.n_profiles)]
    return out


def _tree_path_texts(env: Environment, level_start: np.ndarray) -> np.ndarray:
    """``(n_tree,)`` object array: the profiles leading to each tree history joined by ``" -> "`` (``""`` at the
    root), built level by level (loop over depth levels only)."""
    k = env.n_profiles
    prof = _profile_texts(env)
    out = np.empty(int(level_start[-1]), dtype=object)
    out[0] = ""
    for t in range(1, level_start.size - 1):
        h = np.arange(level_start[t], level_start[t + 1])
        last = prof[(h - 1) % k]
        out[h] = last if t == 1 else out[(h - 1) // k] + " -> " + last
    return out


def _tree_path(k: int, h: int) -> list[int]:
    """Profiles leading to tree history ``h`` (oldest first): walks up one branch, depth steps only."""
    out = []
    while h > 0:
        g = h - 1
        out.append(g % k)
        h = g // k
    return out[::-1]


class StateSpace:
    """Common interface of the spaces (see module docstring for the indexing scheme).

    Attributes
    ----------
    env : Environment
    kind : str
        ``"tree"``, ``"markov"`` or ``"tail"``.
    n_profiles, n_hist, n_nodes : int
    hist_prev_profile : ndarray of int, shape (n_hist,)
        Last period's report profile, ``-1`` at the root.
    child_hist : ndarray of int, shape (n_nodes,)
        History that follows each node, ``-1`` when the game ends there.
    hist_period : ndarray of int, shape (n_hist,)
        Calendar period (1-based) of the reports made at each history; in the Markov space ``1`` for the
        root and ``2`` for every other state (meaning "period 2 onwards"); in a tree with a tail ``T + 1`` for
        the tail states (meaning "period T + 1 onwards").
    """

    kind: str
    env: Environment
    n_hist: int
    hist_prev_profile: np.ndarray
    child_hist: np.ndarray
    hist_period: np.ndarray

    @property
    def n_profiles(self) -> int:
        return self.env.n_profiles

    @property
    def n_nodes(self) -> int:
        return self.n_hist * self.env.n_profiles

    @functools.cached_property
    def node_profile(self) -> np.ndarray:
        """``(n_nodes,)`` profile of every node (read-only; computed once per space)."""
        out = np.tile(np.arange(self.env.n_profiles), self.n_hist)
        out.flags.writeable = False
        return out

    @functools.cached_property
    def node_hist(self) -> np.ndarray:
        """``(n_nodes,)`` history of every node (read-only; computed once per space)."""
        out = np.repeat(np.arange(self.n_hist), self.env.n_profiles)
        out.flags.writeable = False
        return out

    @functools.cached_property
    def hist_table(self) -> np.ndarray:
        r"""``(n_hist,)``: the allocation table of each history's period, :math:`\min(t - 1, P - 1)` for
        ``hist_period`` ``t`` and ``P`` tables (``env.allocations``); zeros for a stationary allocation."""
        p_len = self.env.n_allocation_periods
        out = np.minimum(np.asarray(self.hist_period) - 1, p_len - 1).astype(np.int64)
        out.flags.writeable = False
        return out

    @functools.cached_property
    def node_key(self) -> np.ndarray:
        r"""``(n_nodes,)``: row of every node in the per-period tables of :mod:`mechlp.model.beliefs` and
        ``env.allocations.reshape(P * K, A)``: ``table * K + profile``. Equal to :attr:`node_profile` (the same
        array) for a stationary allocation."""
        if self.env.n_allocation_periods == 1:
            return self.node_profile
        k = self.env.n_profiles
        out = np.repeat(self.hist_table * k, k) + self.node_profile
        out.flags.writeable = False
        return out

    @functools.cached_property
    def hist_prev_key(self) -> np.ndarray:
        """``(n_hist,)``: :attr:`node_key` of the node before each history (the key of its previous profile under
        the allocation of the previous period), ``-1`` at the root. Equal to ``hist_prev_profile`` for a
        stationary allocation."""
        prev = np.asarray(self.hist_prev_profile)
        if self.env.n_allocation_periods == 1:
            return prev
        p_len = self.env.n_allocation_periods
        table = np.clip(np.asarray(self.hist_period) - 2, 0, p_len - 1)
        out = np.where(prev < 0, -1, table * self.env.n_profiles + prev).astype(np.int64)
        out.flags.writeable = False
        return out

    def node_allocation(self) -> np.ndarray:
        """``(n_nodes, n_actions)``: the environment's allocation at every node (its period's table)."""
        a = self.env.allocations
        return a.reshape(-1, a.shape[2])[self.node_key]

    def node_flow_values(self) -> np.ndarray:
        r"""``(n_agents, n_nodes)``: :math:`\sum_a p_t(a|\theta_g) v_i(\theta_{g,i}, a)` at every node under
        truth-telling, the allocation of the node's period."""
        flows = self.env.period_flow_values()  # (P, n, K)
        return flows.transpose(1, 0, 2).reshape(flows.shape[1], -1)[:, self.node_key]

    def history_path(self, h: int) -> list[dict[str, str]]:
        """The report profiles leading to history ``h`` (oldest first), as ``{agent: label}`` dicts."""
        raise NotImplementedError

    def describe_history(self, h: int) -> str:
        path = self.history_path(h)
        if not path:
            return "root (period 1)"
        parts = ["(" + ", ".join(p.values()) + ")" for p in path]
        return " -> ".join(parts)

    def describe_histories(self) -> np.ndarray:
        """``(n_hist,)`` object array of :meth:`describe_history` for every history (vectorised in the
        built-in spaces; this generic fallback calls :meth:`describe_history` once per history)."""
        out = np.empty(self.n_hist, dtype=object)
        out[:] = [self.describe_history(h) for h in range(self.n_hist)]
        return out

    def size(self) -> SizeEstimate:
        return _lp_size(self.env, self.n_hist, self.n_nodes, int(np.count_nonzero(self.child_hist >= 0)))


class HistoryTree(StateSpace):
    """The finite history tree of ``horizon`` periods (form 1 of docs/design.md section 5.2).

    Parameters
    ----------
    env : Environment
    horizon : int, optional
        Number of periods; defaults to ``env.horizon`` (which must then be finite).
    memory_limit : int, optional
        Bytes the LP may use; the constructor raises ``MemoryError`` with the size estimate when the
        prediction of :func:`estimate_tree_size` exceeds it. Default 8 GiB.
    """

    kind = "tree"

    def __init__(self, env: Environment, horizon: int | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT):
        if horizon is None:
            if env.infinite:
                raise ValueError("horizon is required for a HistoryTree when the environment's horizon is infinite")
            horizon = int(env.horizon)
        horizon = _check_horizon(horizon)
        est = estimate_tree_size(env, horizon)
        check_memory(
            est.bytes,
            memory_limit,
            f"history tree with horizon {horizon} is too large: {est.describe()}",
            " (raise memory_limit or use the Markov form)",
        )
        self.env = env
        self.horizon = int(horizon)
        self.estimate = est
        k = env.n_profiles
        self.n_hist = est.histories
        # histories at period t (1-based) are [level_start[t-1], level_start[t]).
        self.level_start = np.concatenate([[0], np.cumsum([k**t for t in range(self.horizon)])]).astype(np.int64)
        self.hist_period = np.repeat(np.arange(1, self.horizon + 1), np.diff(self.level_start)).astype(np.int64)
        h = np.arange(self.n_hist, dtype=np.int64)
        self.hist_prev_profile = np.where(h == 0, -1, (h - 1) % k).astype(np.int64)
        g = np.arange(self.n_nodes, dtype=np.int64)
        terminal = g >= self.level_start[-2] * k  # nodes of the last period's histories
        self.child_hist = np.where(terminal, -1, g + 1)

    def levels(self) -> list[tuple[int, int]]:
        """``[(first history, end history)]`` per period, root first."""
        return [(int(a), int(b)) for a, b in zip(self.level_start[:-1], self.level_start[1:], strict=True)]

    def history_path(self, h: int) -> list[dict[str, str]]:
        return [self.env.profile_labels(p) for p in _tree_path(self.env.n_profiles, h)]

    def descendants(self, hists: np.ndarray | list[int]) -> np.ndarray:
        """Sorted histories of the subtrees rooted at ``hists`` (themselves included), one depth level at a time.

        Rows of any constraint family at these histories involve only their nodes and their children's, so a
        subtree is closed: a Farkas certificate over its rows is one for the whole tree.
        """
        k = self.env.n_profiles
        frontier = np.unique(np.asarray(hists, dtype=np.int64))
        if frontier.size and (frontier[0] < 0 or frontier[-1] >= self.n_hist):
            raise ValueError(f"histories must be in 0..{self.n_hist - 1}")
        out = [frontier]
        while frontier.size:  # one pass per depth level
            kids = self.child_hist[(frontier[:, None] * k + np.arange(k)).reshape(-1)]
            frontier = kids[kids >= 0]
            out.append(frontier)
        return np.unique(np.concatenate(out))

    def describe_histories(self) -> np.ndarray:
        out = _tree_path_texts(self.env, self.level_start)
        out[0] = "root (period 1)"
        return out

    def size(self) -> SizeEstimate:
        return self.estimate


class MarkovSpace(StateSpace):
    """Infinite-horizon stationary Markov form (form 2 of docs/design.md section 5.2).

    State ``0`` is the first period; state ``1 + s`` means the last report profile was ``s``. A mechanism on
    this space depends on the history only through the previous report profile, so an LP on it decides
    whether a *Markov* mechanism exists (exact for Lamba's min-max mechanism, which is Markov).

    Parameters
    ----------
    env : Environment
        An infinite-horizon environment (``ValueError`` otherwise).
    """

    kind = "markov"

    def __init__(self, env: Environment):
        if not env.infinite:
            raise ValueError(
                f"MarkovSpace needs an infinite horizon; the environment has horizon {int(env.horizon)} "
                "(use HistoryTree)"
            )
        if env.period_dependent:
            raise ValueError(
                f"MarkovSpace needs an allocation that does not depend on the period; model {env.name!r} has "
                f"{env.n_allocation_periods} period tables (use TreeWithTail with horizon >= "
                f"{env.n_allocation_periods})"
            )
        self.env = env
        k = env.n_profiles
        self.n_hist = 1 + k
        self.hist_prev_profile = np.arange(-1, k, dtype=np.int64)
        self.child_hist = 1 + np.tile(np.arange(k, dtype=np.int64), self.n_hist)
        self.hist_period = np.where(np.arange(self.n_hist) == 0, 1, 2).astype(np.int64)

    def history_path(self, h: int) -> list[dict[str, str]]:
        return [] if h == 0 else [self.env.profile_labels(h - 1)]

    def describe_history(self, h: int) -> str:
        if h == 0:
            return "period 1"
        return "after " + "(" + ", ".join(self.env.profile_labels(h - 1).values()) + ")"

    def describe_histories(self) -> np.ndarray:
        out = np.empty(self.n_hist, dtype=object)
        out[0] = "period 1"
        out[1:] = "after " + _profile_texts(self.env)
        return out

    def size(self) -> SizeEstimate:
        return _lp_size(self.env, self.n_hist, self.n_nodes, self.n_nodes)


class TreeWithTail(StateSpace):
    r"""History dependent for the first ``horizon`` periods, stationary Markov afterwards (form 3 of
    docs/design.md section 5.2).

    Histories ``0 .. n_tree - 1`` are those of ``HistoryTree(env, horizon)`` (same indices, same node blocks);
    history ``n_tree + s`` is the *tail state* "period ``horizon + 1`` or later, last report profile ``s``".
    Node ``g`` of the tree's last period and node ``(n_tree + s, theta)`` of a tail state both lead to the tail
    state ``n_tree + theta``, so a mechanism on this space is an arbitrary function of the history in the first
    ``horizon`` periods and a stationary Markov mechanism from period ``horizon + 1`` on. For an infinite-horizon
    environment this is exact (no truncation); with ``horizon`` periods of history dependence it nests the
    Markov space (a Markov mechanism is a tree-with-tail mechanism that ignores all but the last profile).

    Parameters
    ----------
    env : Environment
        Must have an infinite horizon.
    horizon : int
        Number of history-dependent periods ``T >= 1``.
    memory_limit : int, optional
        Bytes; see :class:`HistoryTree`.

    Attributes
    ----------
    n_tree : int
        Number of tree histories (``sum_{t < T} K^t``); tail states follow.
    level_start : ndarray
        Tree histories of period ``t`` are ``[level_start[t-1], level_start[t])``.
    """

    kind = "tail"

    def __init__(self, env: Environment, horizon: int, memory_limit: int = DEFAULT_MEMORY_LIMIT):
        if not env.infinite:
            raise ValueError(
                f"TreeWithTail needs an infinite horizon; the environment has horizon {int(env.horizon)} "
                "(use HistoryTree)"
            )
        horizon = _check_horizon(horizon)
        if horizon < env.n_allocation_periods:
            raise ValueError(
                f"TreeWithTail after {horizon} periods: the allocation of model {env.name!r} changes until period "
                f"{env.n_allocation_periods}, so the stationary tail must start later (horizon >= "
                f"{env.n_allocation_periods})"
            )
        est = estimate_tail_size(env, horizon)
        check_memory(
            est.bytes,
            memory_limit,
            f"tree with a Markov tail after {horizon} periods is too large: {est.describe()}",
            " (raise memory_limit or lower horizon)",
        )
        self.env = env
        self.horizon = horizon
        self.estimate = est
        k = env.n_profiles
        self.level_start = np.concatenate([[0], np.cumsum([k**t for t in range(horizon)])]).astype(np.int64)
        self.n_tree = int(self.level_start[-1])
        self.n_hist = self.n_tree + k
        h = np.arange(self.n_hist, dtype=np.int64)
        tail = h >= self.n_tree
        self.hist_prev_profile = np.where(h == 0, -1, np.where(tail, h - self.n_tree, (h - 1) % k)).astype(np.int64)
        self.hist_period = np.concatenate(
            [np.repeat(np.arange(1, horizon + 1), np.diff(self.level_start)), np.full(k, horizon + 1)]
        ).astype(np.int64)
        g = np.arange(self.n_nodes, dtype=np.int64)
        into_tail = g >= self.level_start[-2] * k  # the tree's last period and the tail states
        self.child_hist = np.where(into_tail, self.n_tree + g % k, g + 1)

    @property
    def tail_hists(self) -> np.ndarray:
        """Indices of the ``K`` tail states."""
        return np.arange(self.n_tree, self.n_hist, dtype=np.int64)

    def levels(self) -> list[tuple[int, int]]:
        """``[(first history, end history)]`` per tree period, root first (tail states excluded)."""
        return [(int(a), int(b)) for a, b in zip(self.level_start[:-1], self.level_start[1:], strict=True)]

    def history_path(self, h: int) -> list[dict[str, str]]:
        """Tree history: all earlier profiles; tail state: the last profile only (see :meth:`describe_history`)."""
        if h >= self.n_tree:
            return [self.env.profile_labels(h - self.n_tree)]
        return [self.env.profile_labels(p) for p in _tree_path(self.env.n_profiles, h)]

    def describe_history(self, h: int) -> str:
        if h >= self.n_tree:
            last = "(" + ", ".join(self.env.profile_labels(h - self.n_tree).values()) + ")"
            return f"after {last}, period >= {self.horizon + 1}"
        if h == 0:
            return "period 1 (root)"
        return f"period {int(self.hist_period[h])}: " + _path_text(self.env, _tree_path(self.env.n_profiles, h))

    def describe_histories(self) -> np.ndarray:
        heads = np.empty(self.horizon + 1, dtype=object)
        heads[:] = [f"period {t}: " for t in range(self.horizon + 1)]
        out = np.empty(self.n_hist, dtype=object)
        out[: self.n_tree] = heads[self.hist_period[: self.n_tree]] + _tree_path_texts(self.env, self.level_start)
        out[0] = "period 1 (root)"
        out[self.n_tree :] = "after " + _profile_texts(self.env) + f", period >= {self.horizon + 1}"
        return out

    def size(self) -> SizeEstimate:
        return self.estimate


class ActionTree:
    r"""The history tree whose histories record the realised actions: histories are sequences of (report profile,
    action) pairs, for kernels that depend on the action together with a randomised allocation (Yoon 2021,
    section 2: :math:`F_2(\theta_2|\theta_1, a_1)`), where beliefs depend on the action realised.

    Not a :class:`StateSpace`: a node has one child history per action. History ``h`` owns the nodes
    ``h*K .. h*K + K - 1`` (node ``g``: profile ``g % K``, history ``g // K``); the history after node ``g`` and
    action ``a`` is ``1 + g*A + a`` (``child_hist[g, a]``, ``-1`` in the last period), so the histories of period
    ``t`` are ``[level_start[t-1], level_start[t])`` with ``(K A)^(t-1)`` of them. The beliefs at ``h`` depend on
    its previous profile and action only (:func:`mechlp.model.beliefs.action_tree_beliefs`).

    Parameters
    ----------
    env : Environment
        A finite environment (or ``horizon``); its allocation is not used: a mechanism on this space carries
        its own node allocation ``(n_nodes, A)``.
    horizon : int, optional
        Number of periods (default ``env.horizon``).
    memory_limit : int
        Bytes; the space is refused when its node count times a conservative 2 KiB per node exceeds it.
    """

    kind = "action_tree"

    def __init__(self, env: Environment, horizon: int | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT):
        if horizon is None:
            if env.infinite:
                raise ValueError("horizon is required for an ActionTree when the environment's horizon is infinite")
            horizon = int(env.horizon)
        horizon = _check_horizon(horizon)
        k, na = env.n_profiles, env.n_actions
        n_hist = _tree_histories(k * na, horizon)
        check_memory(
            n_hist * k * 2048,
            memory_limit,
            f"action tree with horizon {horizon} is too large: {n_hist:,} histories of {k} profiles and {na} actions",
            " (raise memory_limit or lower horizon)",
        )
        self.env = env
        self.horizon = int(horizon)
        self.n_actions = na
        self.n_hist = n_hist
        self.level_start = np.concatenate([[0], np.cumsum([(k * na) ** t for t in range(self.horizon)])]).astype(
            np.int64
        )
        self.hist_period = np.repeat(np.arange(1, self.horizon + 1), np.diff(self.level_start)).astype(np.int64)
        h = np.arange(n_hist, dtype=np.int64)
        self.hist_prev_profile = np.where(h == 0, -1, ((h - 1) // na) % k).astype(np.int64)
        self.hist_prev_action = np.where(h == 0, -1, (h - 1) % na).astype(np.int64)
        g = np.arange(n_hist * k, dtype=np.int64)
        terminal = g >= self.level_start[-2] * k
        self.child_hist = np.where(terminal[:, None], -1, 1 + g[:, None] * na + np.arange(na)[None, :])
        for arr in (self.level_start, self.hist_period, self.hist_prev_profile, self.hist_prev_action, self.child_hist):
            arr.flags.writeable = False

    @property
    def n_profiles(self) -> int:
        return self.env.n_profiles

    @property
    def n_nodes(self) -> int:
        return self.n_hist * self.env.n_profiles

    def levels(self) -> list[tuple[int, int]]:
        """``[(first history, end history)]`` per period, root first."""
        return [(int(a), int(b)) for a, b in zip(self.level_start[:-1], self.level_start[1:], strict=True)]

    def history_path(self, h: int) -> list[tuple[dict[str, str], str]]:
        """The (report profile, action) pairs leading to history ``h``, oldest first."""
        k, na = self.env.n_profiles, self.n_actions
        out = []
        while h > 0:
            g, a = divmod(h - 1, na)
            out.append((self.env.profile_labels(g % k), self.env.actions[a]))
            h = g // k
        return out[::-1]

    def describe_history(self, h: int) -> str:
        path = self.history_path(h)
        if not path:
            return "root (period 1)"
        return " -> ".join("(" + ", ".join(p.values()) + f"; {a})" for p, a in path)


def distinct_continuations(space: StateSpace, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (child history, profile) pairs of ``nodes`` (all with a continuation) and each node's pair.

    A node's continuation term -- the expectation of next period's values given the current profile -- depends
    on the node only through this pair: on a tree every node has its own, on a Markov space the child is the
    state of the profile, so there are only ``K``. Keys ``child * K + profile``, deduplicated by a table over
    their range (linear, no sort). Returns ``(keys, inverse)`` with ``keys`` sorted and ``keys[inverse]`` the
    nodes' keys.
    """
    k = space.env.n_profiles
    idx = np.asarray(nodes, dtype=np.int64)
    cached = getattr(space, "_distinct_continuations", None)  # (nodes, result): the verifier asks repeatedly
    if cached is not None and cached[0].shape == idx.shape and np.array_equal(cached[0], idx):
        return cached[1]
    keys = np.asarray(space.child_hist)[idx] * k + idx % k
    if keys.size and keys.min() < 0:
        raise ValueError("distinct_continuations: every node must have a continuation (child_hist >= 0)")
    seen = np.zeros(space.n_hist * k, dtype=bool)
    seen[keys] = True
    uniq = np.flatnonzero(seen)
    pos = np.cumsum(seen) - 1
    out = (uniq, pos[keys])
    space._distinct_continuations = (idx.copy(), out)
    return out


class MergedTree(StateSpace):
    r"""A :class:`HistoryTree` with every set of histories whose subtrees are identical merged into one history.

    Two tree histories are merged when they are in the same period, have the same last report profile, carry
    the same node data (e.g. the same transfer bits) at their nodes, and their children are merged pairwise,
    recursively to the last period. On such histories every quantity computed from the subtree (continuation
    values, interim utilities, deviation payoffs, :math:`\Pi(h)`) is the same, and so are the beliefs
    (:math:`P(\theta|h)` depends on the last profile only), so every constraint row takes the same value at all
    of them. The merged histories form an acyclic graph with the usual indexing (``child_hist``,
    ``hist_prev_profile``, ``hist_period``); its period ``t`` histories are ``levels()[t - 1]``.

    Attributes
    ----------
    tree : HistoryTree
        The tree merged.
    classes : ndarray of int, shape (tree.n_hist,)
        The merged history of each tree history (the root stays ``0``).
    representative : ndarray of int, shape (n_hist,)
        One tree history of each merged history (its smallest index).
    """

    kind = "merged"

    def __init__(self, tree: HistoryTree, classes: np.ndarray, representative: np.ndarray, level_start: np.ndarray):
        k = tree.env.n_profiles
        self.env = tree.env
        self.tree = tree
        self.horizon = tree.horizon
        self.classes = classes
        self.representative = representative
        self.level_start = level_start
        self.n_hist = int(representative.size)
        self.hist_prev_profile = tree.hist_prev_profile[representative]
        self.hist_period = tree.hist_period[representative]
        rep_nodes = (representative[:, None] * k + np.arange(k)).reshape(-1)
        kids = tree.child_hist[rep_nodes]
        self.child_hist = np.where(kids >= 0, classes[np.maximum(kids, 0)], -1)

    @property
    def representative_nodes(self) -> np.ndarray:
        """``(n_nodes,)``: the tree node of every node of the merged histories."""
        k = self.env.n_profiles
        return (self.representative[:, None] * k + np.arange(k)).reshape(-1)

    def levels(self) -> list[tuple[int, int]]:
        """``[(first history, end history)]`` per period, root first."""
        return [(int(a), int(b)) for a, b in zip(self.level_start[:-1], self.level_start[1:], strict=True)]

    def history_path(self, h: int) -> list[dict[str, str]]:
        """The path of the representative tree history."""
        return self.tree.history_path(int(self.representative[h]))

    def describe_history(self, h: int) -> str:
        return self.tree.describe_history(int(self.representative[h]))


def merge_identical_subtrees(tree: HistoryTree, node_keys: np.ndarray) -> MergedTree:
    """Merge the histories of ``tree`` whose subtrees carry identical ``node_keys`` (:class:`MergedTree`).

    Parameters
    ----------
    tree : HistoryTree
    node_keys : ndarray of int64, shape (n_nodes, m)
        Data attached to every node (e.g. the bit patterns of the transfers); histories merge only when these
        agree at every node of their subtrees.

    Notes
    -----
    One ``numpy.unique`` over the rows ``(last profile, keys of the history's nodes, merged children)`` per
    period, deepest first (each row compared as one byte string): linear in the nodes up to the sort, no Python
    loop over histories.
    """
    if not isinstance(tree, HistoryTree):
        raise TypeError(f"tree must be a HistoryTree, got {type(tree).__name__}")
    keys = np.asarray(node_keys)
    if keys.ndim != 2 or keys.shape[0] != tree.n_nodes or keys.dtype.kind not in "iu":
        raise ValueError(f"node_keys must be an integer array of shape ({tree.n_nodes}, m), got {keys.shape}")
    k = tree.env.n_profiles
    levels = tree.levels()
    local = np.zeros(tree.n_hist, dtype=np.int64)  # class within its period
    firsts: list[np.ndarray] = []  # per period (deepest first): the first tree history of each class
    for a, b in reversed(levels):  # periods, deepest first
        n = b - a
        parts = [tree.hist_prev_profile[a:b, None], keys[a * k : b * k].reshape(n, -1)]
        kids = tree.child_hist[a * k : b * k]
        if b < tree.n_hist:  # children are in the next period, already merged
            parts.append(local[kids].reshape(n, k))
        rows = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.int64)
        rows = rows.view(np.dtype((np.void, rows.shape[1] * 8))).reshape(-1)  # one byte string per row
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        local[a:b] = inverse.reshape(-1)
        firsts.append(first + a)
    firsts.reverse()
    sizes = np.array([f.size for f in firsts], dtype=np.int64)
    level_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    classes = local + np.repeat(level_start[:-1], [b - a for a, b in levels])
    return MergedTree(tree, classes, np.concatenate(firsts), level_start)


def make_space(
    env: Environment, horizon: int | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT, tail: bool = False
) -> StateSpace:
    """The natural space for ``env``: Markov for an infinite horizon, the history tree otherwise.

    With ``tail=True`` (infinite horizon only), :class:`TreeWithTail` with ``horizon`` history-dependent periods.
    """
    if tail:
        if horizon is None:
            raise ValueError("tail=True needs horizon, the number of history-dependent periods before the Markov tail")
        return TreeWithTail(env, horizon, memory_limit=memory_limit)
    if env.infinite and horizon is None:
        return MarkovSpace(env)
    return HistoryTree(env, horizon, memory_limit=memory_limit)


def space_for(
    env: Environment,
    space: StateSpace | None = None,
    horizon: int | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    tail: bool = False,
) -> StateSpace:
    """The space a question on ``env`` is solved on: ``space`` when given (checked), else :func:`make_space`.

    Parameters
    ----------
    env : Environment
    space : StateSpace, optional
        Must have been built for ``env`` (the same object); with ``tail=True`` it must be a
        :class:`TreeWithTail`.
    horizon, memory_limit, tail
        As in :func:`make_space`, when ``space`` is not given.

    Raises
    ------
    TypeError
        When ``env`` is not an :class:`Environment`.
    ValueError
        When ``space`` belongs to another environment or ``tail=True`` conflicts with its kind.
    """
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    if space is None:
        return make_space(env, horizon, memory_limit, tail=tail)
    if space.env is not env:
        raise ValueError("space was built for a different environment than env")
    if tail and space.kind != "tail":
        raise ValueError(f"tail=True conflicts with the given {space.kind} space")
    return space


def check_memory(need: int, memory_limit: int, what: str, advice: str = "") -> None:
    """Refuse, before building, what is predicted to need more than ``memory_limit`` bytes.

    Raises ``MemoryError("<what>, over the memory limit of <GiB> GiB<advice>")`` when ``need > memory_limit``;
    ``what`` says what was to be built and its size, ``advice`` (with its leading punctuation) what to do instead.
    """
    if need > memory_limit:
        raise MemoryError(f"{what}, over the memory limit of {memory_limit / 2**30:.2f} GiB{advice}")


# ---------------------------------------------------------------------------------------------- memory estimates
#: Bytes per unit of each stage's size, calibrated by ``benchmarks/memory.py`` (peak RSS of a fresh process minus
#: that of a process that only imports mechlp) on Lamba's 2x2 trees (T = 4..8), Yoon's 3x3 trees (T = 4..6) and
#: Markov spaces of K x K interleaved-grid trade (K = 2..30), rounded up so that predictions are >= the peak.
LP_BYTES_PER_NONZERO = 250  # build_lp triplets and CSR/CSC, HiGHS's copy, presolve and factors
LP_BYTES_PER_LINE = 550  # per row and per column: bounds, labels, HiGHS's row/column work arrays, the solution
RECURSION_BYTES_PER_NODE = 160  # interim utilities, transfers (mechanism), the verifier's per-node arrays
RECURSION_BYTES_PER_EDGE = 11  # the verifier's children gathers: one float per (distinct continuation, profile)
EXACT_BYTES_PER_NODE = 1200  # ``verify(exact=True)``: Fraction objects per node (utilities, payments, beliefs)
EXACT_BYTES_PER_EDGE = 200  # exact continuation sums: Fractions per (node, next profile)
CERTIFICATE_FILE_BYTES_PER_NODE = (
    4000  # ``check_certificate``: the parsed JSON entries and the mechanism read from them
)
FIXED_BYTES = 2 * 2**20  # modules imported on first use, allocator arenas
#: Questions :func:`estimate_memory` predicts.
ESTIMATED_QUESTIONS = ("recursion", "minmax", "feasibility", "check", "verify", "ranges")


def space_counts(env: Environment, kind: str, horizon: int | None = None) -> tuple[int, int, int]:
    r"""``(histories, nodes, nodes with a continuation)`` of a space, in closed form, without building it.

    Tree of ``T`` periods with ``K`` profiles: :math:`H = \sum_{t<T} K^t`, ``N = H K``, ``N - K^T`` nodes with
    children. Markov space: ``H = 1 + K``, every node continues. Tree with a tail: ``H = \sum_{t<T} K^t + K``,
    every node continues. Trees beyond ``MAX_HISTORIES`` are refused with ``MemoryError``.
    """
    k = env.n_profiles
    if kind == "markov":
        return 1 + k, (1 + k) * k, (1 + k) * k
    if horizon is None:
        raise ValueError(f"a {kind} space needs horizon")
    n_tree = _tree_histories(k, int(horizon))
    if kind == "tail":
        return n_tree + k, (n_tree + k) * k, (n_tree + k) * k
    if kind != "tree":
        raise ValueError(f"kind must be 'tree', 'markov' or 'tail', got {kind!r}")
    return n_tree, n_tree * k, n_tree * k - k ** int(horizon)


def lp_counts(
    env: Environment,
    n_hist: int,
    n_nodes: int,
    n_cont: int,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
) -> tuple[int, int, int]:
    r"""``(columns, rows, nonzeros)`` of ``mechlp.constraints.formulation.build_lp`` on a space of ``n_hist``
    histories, ``n_nodes`` nodes and ``n_cont`` nodes with a continuation (docs/design.md section 5.3).

    With ``n`` agents, ``K = prod_i K_i`` profiles, ``M_i = K / K_i`` others' profiles and ``P_i`` IC pairs
    (``K_i (K_i - 1)``; local IC ``2 (K_i - 1)``): columns ``(2n + 1) N`` (``U_i``, ``x_i``, ``B``; ``+ H`` for
    savings); recursion rows ``(n + 1) N`` with ``(3n + 1) N + (n + 1) C K`` entries; IC rows ``H P_i`` (ex post
    IC: ``H P_i M_i``) with ``2 M_i`` current and ``M_i K`` child entries each (child entries only where the
    history continues, ``C / K`` histories); IR rows ``H K_i`` with ``M_i`` entries (ex post: ``N`` rows of one;
    ex ante: the root only); budget rows: interim ``H`` of ``K``, ex ante one of ``K``, ex post ``N`` of ``n``,
    savings ``H + C + 1`` of ``(1 + K) H + (2 + n) C + 1``. Rows and columns are exact; nonzeros an upper bound,
    exact unless beliefs, kernel differences or transition probabilities vanish (those entries are dropped).
    """
    n, k = env.n_agents, env.n_profiles
    ic, ir, budget = parse_notion("ic", ic), parse_notion("ir", ir), parse_notion("budget", budget)
    cols = (2 * n + 1) * n_nodes + (n_hist if budget == "savings" else 0)
    rows = (n + 1) * n_nodes
    nnz = (3 * n + 1) * n_nodes + (n + 1) * n_cont * k
    cont_hist = n_cont // k
    for i, ag in enumerate(env.agents):
        ki, m = ag.n_types, env.others_count(i)
        pairs = 2 * (ki - 1) if ic == "local" else ki * (ki - 1)
        rows += n_hist * pairs * (m if ic == "ex_post" else 1)
        nnz += pairs * (n_hist * 2 * m + cont_hist * m * k)
        if ir == "ex_post":
            rows, nnz = rows + n_nodes, nnz + n_nodes
        else:
            h_ir = 1 if ir == "ex_ante" else n_hist
            rows, nnz = rows + h_ir * ki, nnz + h_ir * ki * m
    if budget in ("interim", "ex_ante"):
        h_b = 1 if budget == "ex_ante" else n_hist
        rows, nnz = rows + h_b, nnz + h_b * k
    elif budget == "ex_post":
        rows, nnz = rows + n_nodes, nnz + n * n_nodes
    elif budget == "savings":
        rows, nnz = rows + n_hist + n_cont + 1, nnz + (1 + k) * n_hist + (2 + n) * n_cont + 1
    return int(cols), int(rows), int(nnz)


def _lp_bytes(cols: int, rows: int, nnz: int) -> int:
    return LP_BYTES_PER_NONZERO * nnz + LP_BYTES_PER_LINE * (rows + cols)


def _verify_bytes(env: Environment, n_nodes: int, n_cont: int, exact: bool = False) -> int:
    """The independent verifier (and, for the recursion, its own arrays): per node and per (distinct continuation,
    next profile). ``n_cont``: the distinct (child history, profile) pairs whose continuations the verifier gathers
    (:func:`_gathered`). With period tables the IC rows of each table are computed apart and then put together,
    so their slacks are held twice: the estimate doubles (measured on the licence auction, 3 and 4 periods: peak
    above the interpreter 393 and 466 MiB against 328 and 568 MiB predicted)."""
    edges = n_cont * env.n_profiles
    copies = 2 if env.period_dependent else 1
    if exact:
        return copies * (EXACT_BYTES_PER_NODE * n_nodes + EXACT_BYTES_PER_EDGE * edges)
    return copies * (RECURSION_BYTES_PER_NODE * n_nodes + RECURSION_BYTES_PER_EDGE * edges)


def _gathered(env: Environment, kind: str, n_cont: int) -> int:
    """Distinct (child history, profile) pairs of a space: every continuing node on a tree (and, bounding it, a
    tree with a tail), one per profile on a Markov space (a node's child is the state of its profile)."""
    return env.n_profiles if kind == "markov" else n_cont


def _lp_size(env: Environment, n_hist: int, n_nodes: int, n_cont: int) -> SizeEstimate:
    """The default LP (Bayesian IC, interim IR, interim budget) on a space of these counts, and its bytes."""
    cols, rows, nnz = lp_counts(env, n_hist, n_nodes, n_cont)
    need = max(_lp_bytes(cols, rows, nnz), _verify_bytes(env, n_nodes, n_cont)) + FIXED_BYTES
    return SizeEstimate(n_hist, n_nodes, cols, rows, nnz, int(need))


def estimate_memory(
    env: Environment,
    question: str = "feasibility",
    *,
    space: StateSpace | None = None,
    kind: str | None = None,
    horizon: int | None = None,
    method: str = "lp",
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    certify: bool = True,
    exact: bool = False,
    **_: object,
) -> SizeEstimate:
    r"""Peak bytes a question needs, predicted in closed form before anything is built (issue #11, item 6).

    The one estimator of every question path; calibrated by ``benchmarks/memory.py`` (predicted / measured peak
    within [1/1.5, 1.5], mostly above 1, on trees and Markov spaces). With ``H`` histories, ``N`` nodes, ``C``
    nodes with a continuation, ``K`` profiles (:func:`space_counts`) and the LP's ``nnz``, rows and columns
    (:func:`lp_counts`), plus ``FIXED_BYTES``:

    * ``"recursion"`` (``mechlp.solve.recursion.solve``) and ``"minmax"`` with ``method="recursion"``
      (plus transfers and the verifier): ``RECURSION_BYTES_PER_NODE N + RECURSION_BYTES_PER_EDGE C K``, with
      ``C`` here the distinct (child history, profile) pairs the verifier gathers: the continuing nodes of a tree,
      ``K`` on a Markov space;
    * ``"minmax"`` (LP): ``max(LP_BYTES_PER_NONZERO nnz + LP_BYTES_PER_LINE (rows + cols), verifier)`` for the
      LP without budget rows;
    * ``"feasibility"``: the same for the LP with ``budget`` rows (it also solves the smaller min-max LP, one at a
      time); with ``exact``, plus the exact stage ``EXACT_BYTES_PER_NODE N + EXACT_BYTES_PER_EDGE C K``. ``certify``
      adds nothing: the Farkas LP is smaller than the feasibility LP, and its certificate is re-checked in fractions
      only on small spaces (``mechlp.proofs.farkas.AUTO_EXACT_COLUMNS``);
    * ``"ranges"`` (:func:`mechlp.solve.ranges.transfer_ranges`): the feasibility LP with ``budget`` rows (one
      solver instance re-solved for every objective; the number of LPs is checked separately);
    * ``"verify"`` (a given mechanism checked by the float verifier: the pivot, the team mechanism): the verifier
      only, as for the recursion;
    * ``"check"`` (``check_certificate``, ``mechlp check``): ``CERTIFICATE_FILE_BYTES_PER_NODE N`` for the file's
      entries, plus the float verifier, plus with ``exact`` the exact one.

    Parameters
    ----------
    env : Environment
    question : {"recursion", "minmax", "feasibility", "check", "verify", "ranges"}
    space : StateSpace, optional
        A built space (its counts are used); else ``kind`` and ``horizon`` describe it (``kind`` defaults to
        ``"markov"`` for an infinite horizon without ``horizon``, else ``"tree"``).
    method, ic, ir, budget, certify, exact
        As for the question (other keyword options are accepted and do not change the size).

    Returns
    -------
    SizeEstimate
        Counts of the space and of the LP the question builds (zero LP counts for the recursion and checks).
    """
    if question not in ESTIMATED_QUESTIONS:
        raise ValueError(f"question must be one of {ESTIMATED_QUESTIONS}, got {question!r}")
    if space is not None:
        n_hist, n_nodes = space.n_hist, space.n_nodes
        n_cont = int(np.count_nonzero(space.child_hist >= 0))
        kind = space.kind
    else:
        if kind is None:
            kind = "markov" if env.infinite and horizon is None else "tree"
        if kind == "tree" and horizon is None:
            horizon = int(env.horizon)
        n_hist, n_nodes, n_cont = space_counts(env, kind, horizon)
    gathered = _gathered(env, kind, n_cont)
    cols = rows = nnz = 0
    if question in ("recursion", "verify") or (question == "minmax" and method == "recursion"):
        need = _verify_bytes(env, n_nodes, gathered)
    elif question == "check":
        need = CERTIFICATE_FILE_BYTES_PER_NODE * n_nodes + _verify_bytes(env, n_nodes, gathered)
        if exact:
            need += _verify_bytes(env, n_nodes, gathered, exact=True)
    else:
        cols, rows, nnz = lp_counts(env, n_hist, n_nodes, n_cont, ic, ir, "none" if question == "minmax" else budget)
        need = max(_lp_bytes(cols, rows, nnz), _verify_bytes(env, n_nodes, gathered))
        if question == "feasibility" and exact:  # the margin LP's mechanism, re-checked in fractions, on top
            need += _verify_bytes(env, n_nodes, gathered, exact=True)
    return SizeEstimate(n_hist, n_nodes, cols, rows, nnz, int(need + FIXED_BYTES))


def _space_words(env: Environment, kind: str, horizon: int | None) -> str:
    if kind == "markov":
        return f"Markov space with {env.n_profiles} profiles"
    if kind == "tail":
        return f"tree with a Markov tail after {horizon} periods"
    return f"history tree with horizon {horizon}"


def question_space(
    env: Environment,
    question: str,
    memory_limit: int,
    *,
    space: StateSpace | None = None,
    horizon: int | None = None,
    tail: bool = False,
    advice: str = " (raise memory_limit or use the Markov form)",
    **options: object,
) -> StateSpace:
    """The space ``question`` is answered on (:func:`space_for`), refused before anything is built when
    :func:`estimate_memory` for that question exceeds ``memory_limit``.

    Raises ``MemoryError("<space> is too large for <question>: <sizes>, about X GiB ..., over the memory limit of
    Y GiB<advice>")`` (:func:`check_memory`). ``options`` are those of :func:`estimate_memory` (``method``,
    ``ic``, ``ir``, ``budget``, ``certify``, ``exact``).
    """
    if not isinstance(env, Environment):
        raise TypeError(f"env must be an Environment, got {type(env).__name__}")
    if horizon is not None:
        horizon = _check_horizon(horizon)
    if space is not None:
        est = estimate_memory(env, question, space=space, **options)
        kind, horizon = space.kind, getattr(space, "horizon", None)
    else:
        kind = "tail" if tail else ("markov" if env.infinite and horizon is None else "tree")
        if kind == "tree" and horizon is None:
            horizon = int(env.horizon)
        if kind == "tail" and horizon is None:
            raise ValueError("tail=True needs horizon, the number of history-dependent periods before the Markov tail")
        est = estimate_memory(env, question, kind=kind, horizon=horizon, **options)
    what = f"for {question}" + (" by recursion" if options.get("method") == "recursion" else "")
    check_memory(
        est.bytes, memory_limit, f"{_space_words(env, kind, horizon)} is too large: {est.describe(what)}", advice
    )
    return space_for(env, space, horizon, MAX_MEMORY_LIMIT, tail=tail)

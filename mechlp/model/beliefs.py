r"""Beliefs under truth-telling, the mixed kernels they are made of, and continuation values: the one home.

Notation of docs/design.md section 4.2 (Lamba 2022, section 3.1). Agent ``j`` has a prior :math:`f_j^0` and a kernel
:math:`F_j(\theta'|\theta, a)`; types are independent across agents; the allocation :math:`p(a|s)` depends on the
current report profile :math:`s`. Everything here follows from three formulas.

Mixed kernel (agent ``j``'s transition under the allocation at profile ``s``)
    .. math::
       G_j(\tau'|\tau; s) = \sum_a p(a|s)\, F_j(\tau'|\tau, a).

    With kernels that ignore the action this is :math:`F_j` itself (taken as it is, without re-mixing); with
    action-dependent kernels the environment insists on a deterministic allocation, so it is the kernel of the
    chosen action. In both cases the product over agents is the exact law of the next report profile,
    :math:`P(s'|s) = \sum_a p(a|s) \prod_j F_j(s'_j|s_j, a) = \prod_j G_j(s'_j|s_j; s)` (:func:`joint_transition`).

Beliefs at a history
    A history ``h`` matters for beliefs only through its previous report profile :math:`s = s(h)`
    (``space.hist_prev_profile``; ``-1`` at the root):

    .. math::
       P_j(\theta_j|h) = f_j^0(\theta_j) \text{ at the root}, \qquad P_j(\theta_j|h) = G_j(\theta_j|s_j; s),

    .. math::
       P(\theta|h) = \prod_j P_j(\theta_j|h), \qquad
       P(\theta_{-i}|h) = \prod_{j \ne i} P_j(\theta_j|h) = \sum_{\theta_i} P(\theta|h)

    (the last equality is independence: the others' belief is a marginal of the joint one, computed here as a
    product, which is exact and defined also where agent ``i``'s own type has probability zero).

Continuation values
    The value recursion of the (p, U) representation (Lamba 2022, eq. 3) for any flow ``f`` on the nodes:

    .. math::
       V(g) = f(g) + \delta \sum_{\theta'} P(\theta'|\theta_g)\, V(\text{child}(g, \theta')),

    with no continuation where the game ends (:func:`continuation_values`): backwards one depth level at a time on
    a tree, one ``K x K`` solve on a Markov space, both on a tree with a Markov tail. Its transpose
    (:func:`continuation_adjoint`) gives the coefficient of every flow in a weighted sum of values, forwards from
    the root.

Every function works in floats (``nums=None``) or in the arithmetic of a :class:`~mechlp.model.exact.Numbers`
(exact fractions with ``Numbers(env, exact=True)``), by one code path on numpy arrays (object arrays of exact
rationals, :data:`mechlp.model.exact.Rational`, in exact mode). Everything is vectorised over histories and nodes;
Python loops run over agents and depth levels only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mechlp.model import tolerances
from mechlp.model.environment import Environment
from mechlp.model.exact import EXACT_MARKOV_PROFILES, Numbers, Rational, solve_exact
from mechlp.model.spaces import ActionTree, HistoryTree, MarkovSpace, MergedTree, StateSpace, TreeWithTail

__all__ = [
    "mixed_kernels",
    "next_marginals",
    "joint_transition",
    "independent_product",
    "marginal_beliefs",
    "joint_beliefs",
    "others_beliefs",
    "others_product",
    "conditional_beliefs",
    "reach_probabilities",
    "interim_expectation",
    "expectation",
    "expected_continuation",
    "continuation_values",
    "continuation_adjoint",
    "action_tree_beliefs",
    "action_reach",
]


def _numbers(env: Environment, nums: Numbers | None) -> Numbers:
    return Numbers(env, exact=False) if nums is None else nums


def _hists(space: StateSpace, hists: Sequence[int] | np.ndarray | None) -> np.ndarray:
    return np.arange(space.n_hist) if hists is None else np.asarray(hists, dtype=np.int64).reshape(-1)


# ---------------------------------------------------------------------------------------------- kernels
def mixed_kernels(env: Environment, nums: Numbers | None = None) -> list[np.ndarray]:
    r"""Each agent's transition under the allocation at every report profile.

    .. math::
       G_j[s, \tau, \tau'] = \sum_a p(a|s)\, F_j(\tau'|\tau, a)

    Parameters
    ----------
    env : Environment
    nums : Numbers, optional
        The arithmetic (default: floats of ``env``).

    Returns
    -------
    list of ndarray
        Per agent ``j``, shape ``(K, K_j, K_j)`` (``K`` profiles): row ``[s, tau]`` is the law of agent ``j``'s
        next type from type ``tau`` when the allocation is that of profile ``s``. For an agent whose kernel
        ignores the action it is :math:`F_j` at every ``s`` (a read-only broadcast view, not re-mixed).

    Raises
    ------
    NotImplementedError
        When an action-dependent kernel meets a randomised allocation (beliefs would depend on realised actions,
        which histories do not record; :class:`~mechlp.model.environment.Environment` refuses this already).
    ValueError
        When ``env.correlated``: an agent's own kernel is not defined then (use :func:`joint_transition`).
    """
    _refuse_correlated(env, "mixed_kernels (each agent's own kernel under the allocation)")
    nums = _numbers(env, nums)
    k = env.n_allocation_periods * env.n_profiles
    out = []
    for ag, kern in zip(env.agents, nums.kernels, strict=True):
        if not ag.action_dependent:
            out.append(np.broadcast_to(kern[0], (k, *kern.shape[1:])))
            continue
        if np.any(np.asarray(env.allocations).max(axis=2) < 1.0 - tolerances.PROBABILITY):
            raise NotImplementedError(
                f"agent {ag.name!r} has an action-dependent kernel while the allocation randomises; "
                "beliefs would depend on realised actions, which histories do not record"
            )
        out.append(np.einsum("sa,axy->sxy", nums.alloc, kern))
    return out


def next_marginals(env: Environment, nums: Numbers | None = None) -> list[np.ndarray]:
    r"""Law of each agent's next type after each truthful report profile: :math:`G_j(\cdot|s_j; s)`.

    Returns
    -------
    list of ndarray
        Per agent ``j``, shape ``(K, K_j)``: row ``s`` is :math:`\sum_a p(a|s) F_j(\cdot|s_j, a)`, the belief
        :math:`P_j(\cdot|h)` at every history whose previous profile is ``s``. With correlated types
        (``env.correlated``) the marginals of the rows of :func:`joint_transition`.
    """
    if env.correlated:
        return _correlated_next_marginals(env, nums)
    types = np.tile(env.profile_types(), (env.n_allocation_periods, 1))
    rows = np.arange(types.shape[0])
    return [g[rows, types[:, j]] for j, g in enumerate(mixed_kernels(env, nums))]


def independent_product(factors: Sequence[np.ndarray], n_rows: int) -> np.ndarray:
    r"""Row-wise product distribution of independent factors, profiles in C order over the factors.

    .. math::
       \text{out}[r, (\tau_1, \dots, \tau_m)] = \prod_l \text{factors}_l[r, \tau_l]

    Parameters
    ----------
    factors : sequence of ndarray
        Each ``(n_rows, K_l)``; object arrays of fractions give an exact product.
    n_rows : int
        Number of rows (needed when ``factors`` is empty: the product is then a column of ones).

    Returns
    -------
    ndarray, shape (n_rows, prod_l K_l)
    """
    if any(np.asarray(f).dtype == object for f in factors):
        out = np.empty((n_rows, 1), dtype=object)
        out.fill(Rational(1))
    else:
        out = np.ones((n_rows, 1))
    for f in factors:
        out = (out[:, :, None] * f[:, None, :]).reshape(n_rows, -1)
    return out


def joint_transition(
    env: Environment, nums: Numbers | None = None, deviator: int | None = None, true_type: int | None = None
) -> np.ndarray:
    r"""``(K, K)`` law of the next report profile after each report profile.

    .. math::
       P(s'|s) = \prod_j G_j(s'_j|s_j; s)

    With ``deviator=i`` and ``true_type=t``, agent ``i``'s factor is :math:`G_i(s'_i|t; s)` instead: the law of
    next period's types after agent ``i`` of true type ``t`` reported :math:`s_i` (the one-shot deviation
    :math:`D_i` of docs/design.md section 4.4; the allocation is that of the *reported* profile).

    With correlated types (``env.correlated``) the kernel is the environment's ``joint_transition`` under the
    allocation, :math:`P(s'|s) = \sum_a p(a|s) P(s'|s, a)`, and the deviation's law is the row of the profile
    ``(t, s_{-i})`` under the allocation of the reported ``s``, :math:`\sum_a p(a|s) P(\cdot|(t, s_{-i}), a)`
    (:func:`_correlated_transition`).
    """
    if env.correlated:
        return _correlated_transition(env, nums, deviator, true_type)
    k = env.n_allocation_periods * env.n_profiles
    rows = np.arange(k)
    types = np.tile(env.profile_types(), (env.n_allocation_periods, 1))
    factors = []
    for j, g in enumerate(mixed_kernels(env, nums)):
        own = types[:, j] if j != deviator else np.full(k, int(true_type))
        factors.append(g[rows, own])
    return independent_product(factors, k)


# ---------------------------------------------------------------------------------------------- beliefs
def marginal_beliefs(
    space: StateSpace, nums: Numbers | None = None, hists: Sequence[int] | np.ndarray | None = None
) -> list[np.ndarray]:
    r"""Each agent's belief about its current type at each history, under truth-telling.

    .. math::
       P_j(\theta_j|h) = f_j^0(\theta_j) \text{ at the root}, \qquad
       P_j(\theta_j|h) = \sum_a p(a|s) F_j(\theta_j|s_j, a) \text{ after the report profile } s

    Parameters
    ----------
    space : StateSpace
    nums : Numbers, optional
        The arithmetic (default: floats).
    hists : array_like of int, optional
        Histories to compute (default: all, in order).

    Returns
    -------
    list of ndarray
        Per agent ``j``, shape ``(len(hists), K_j)``. With correlated types, the marginals of
        :func:`joint_beliefs`.
    """
    env = space.env
    if env.correlated:
        return _correlated_marginals(space, nums, hists)
    nums = _numbers(env, nums)
    prev = np.asarray(space.hist_prev_key)[_hists(space, hists)]
    root = prev < 0
    out = []
    for j, nxt in enumerate(next_marginals(env, nums)):
        m = nums.zeros((prev.size, env.agents[j].n_types))
        m[root] = nums.priors[j]
        m[~root] = nxt[prev[~root]]
        out.append(m)
    return out


def joint_beliefs(
    space: StateSpace,
    nums: Numbers | None = None,
    hists: Sequence[int] | np.ndarray | None = None,
    marginals: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    r"""``(len(hists), K)``: the belief about the current report profile, :math:`P(\theta|h) = \prod_j P_j(\theta_j|h)`.

    Parameters are those of :func:`marginal_beliefs`; profiles in C order over agents. ``marginals``: the
    result of :func:`marginal_beliefs` for the same ``nums`` and ``hists``, when the caller has it already.
    Without it, when there are more histories than profiles, the rows are gathered from the ``(K, K)`` table of
    the truthful kernel (the belief after profile ``s`` is its row ``s``; the prior's product at the root): one
    lookup per history instead of one product.

    With correlated types (``env.correlated``; ``marginals`` is then ignored) the row of :func:`joint_transition`
    at the previous profile, and the product of the priors at the root.
    """
    idx = _hists(space, hists)
    env = space.env
    if env.correlated:
        return _correlated_joint_beliefs(space, nums, idx)
    if marginals is not None or idx.size <= env.n_profiles:
        margs = marginal_beliefs(space, nums, idx) if marginals is None else marginals
        return independent_product(margs, idx.size)
    nums = _numbers(env, nums)
    prev = np.asarray(space.hist_prev_key)[idx]
    table = independent_product(next_marginals(env, nums), env.n_allocation_periods * env.n_profiles)  # P(theta'|s)
    out = table[np.maximum(prev, 0)]
    root = prev < 0
    if root.any():
        out[root] = independent_product([p[None, :] for p in nums.priors], 1)[0]
    return out


def _others_index(env: Environment, agent: int) -> tuple[np.ndarray, np.ndarray]:
    """``prof (K_i, M)``: the profile of (own type, others' profile ``m``); ``m_of (K,)``: ``m`` of each profile."""
    m = env.others_count(agent)
    prof = env.profile_index(agent, np.arange(env.agents[agent].n_types)[:, None], np.arange(m)[None, :])
    m_of = np.empty(env.n_profiles, dtype=np.int64)
    m_of[prof.reshape(-1)] = np.tile(np.arange(m), prof.shape[0])
    return prof, m_of


def others_beliefs(
    space: StateSpace,
    agent: int,
    nums: Numbers | None = None,
    hists: Sequence[int] | np.ndarray | None = None,
    per_profile: bool = False,
    marginals: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    r"""Agent ``i``'s belief about the others' current types: :math:`\prod_{j \ne i} P_j(\theta_j|h)`.

    .. math::
       P(\theta_{-i}|h) = \prod_{j \ne i} P_j(\theta_j|h)

    Types are independent, so this is also :math:`\sum_{\theta_i} P(\theta|h)`, the marginal of the joint belief;
    it does not depend on agent ``i``'s own type.

    Parameters
    ----------
    space : StateSpace
    agent : int
    nums : Numbers, optional
    hists : array_like of int, optional
        Histories to compute (default: all).
    per_profile : bool
        Layout of the answer (see Returns).
    marginals : list of ndarray, optional
        The result of :func:`marginal_beliefs` for the same ``nums`` and ``hists`` (saves recomputing it).

    Returns
    -------
    ndarray
        ``(len(hists), M)`` with ``M = prod_{j != i} K_j`` and column ``m`` the others' profile in C order over the
        other agents (:meth:`Environment.profile_index`); with ``per_profile=True``, ``(len(hists), K)`` with
        column ``s`` the probability of the others' part of profile ``s``.

    Raises
    ------
    ValueError
        When ``space.env.correlated``: the belief then depends on agent ``i``'s own type
        (:func:`conditional_beliefs`).
    """
    _refuse_correlated(space.env, "others_beliefs (the others' types independent of the agent's own)")
    idx = _hists(space, hists)
    margs = marginal_beliefs(space, nums, idx) if marginals is None else marginals
    return others_product(margs, agent, space.env if per_profile else None)


def others_product(marginals: Sequence[np.ndarray], agent: int, env: Environment | None = None) -> np.ndarray:
    r"""Agent ``i``'s belief about the others' types from given marginal beliefs, in their arithmetic.

    .. math::
       P(\theta_{-i}|h) = \prod_{j \ne i} P_j(\theta_j|h)

    The product behind :func:`others_beliefs`, for callers that hold the marginals already (e.g. in exact
    arithmetic, :func:`mechlp.model.transfers.interim_payments`).

    Parameters
    ----------
    marginals : sequence of ndarray
        Per agent ``j``, ``(n_rows, K_j)``: :math:`P_j(\cdot|h)` (floats, or object arrays of fractions).
    agent : int
    env : Environment, optional
        Given: the per-profile layout (see Returns).

    Returns
    -------
    ndarray
        ``(n_rows, M)``, column ``m`` the others' profile in C order over the other agents; with ``env``,
        ``(n_rows, K)`` with column ``s`` the probability of the others' part of profile ``s``. Rationals when the
        marginals are fractions (also for a single agent, where the product is empty and equal to one).
    """
    own = np.asarray(marginals[agent])
    n_rows = own.shape[0]
    out = independent_product([m for j, m in enumerate(marginals) if j != agent], n_rows)
    if len(marginals) == 1 and own.dtype == object:
        out = np.full((n_rows, 1), Rational(1), dtype=object)
    if env is not None:
        return out[:, _others_index(env, agent)[1]]
    return out


def reach_probabilities(space: StateSpace, nums: Numbers | None = None) -> np.ndarray:
    r"""``(n_hist,)``: probability of reaching each history under truth-telling (1 at the root).

    On a tree, :math:`\Pr(h\theta) = \Pr(h)\, P(\theta|h)` level by level. On a tree with a Markov tail, the tail
    state ``s`` gets the probability that period ``T``'s profile is ``s`` (the state in which period ``T + 1``
    starts).

    Raises
    ------
    TypeError
        On a Markov space, where a state is reached in many periods.
    """
    if not isinstance(space, HistoryTree | TreeWithTail):
        raise TypeError(
            f"reach probabilities need a HistoryTree or a TreeWithTail, got {type(space).__name__} "
            "(a Markov state is reached in many periods)"
        )
    nums = _numbers(space.env, nums)
    k = space.env.n_profiles
    bel = joint_beliefs(space, nums)
    out = nums.zeros((space.n_hist,))
    out[0] = nums.ones((1,))[0]
    for a, b in space.levels()[1:]:  # loop over depth levels only
        nodes = np.arange(a, b) - 1  # node g precedes history g + 1
        out[a:b] = out[nodes // k] * bel[nodes // k, nodes % k]
    if isinstance(space, TreeWithTail):
        a, b = space.levels()[-1]
        out[space.n_tree :] = (out[a:b, None] * bel[a:b]).sum(axis=0)
    return out


# ---------------------------------------------------------------------------------------------- expectations
def interim_expectation(
    space: StateSpace,
    agent: int,
    values: np.ndarray,
    nums: Numbers | None = None,
    marginals: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    r"""Interim expectation over the others' current types, for every own type of agent ``i``.

    .. math::
       \bar X_i(\theta_i|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h)\, X(h, (\theta_i, \theta_{-i}))

    Applied to the ex post utilities this is the interim utility :math:`\bar U_i(\theta_i|h)` (docs/design.md
    section 4.5); applied to payments, the interim expected payment. Defined for every own type, also types of
    probability zero at ``h``.

    Parameters
    ----------
    space : StateSpace
    agent : int
    values : ndarray, shape (n_nodes,)
        :math:`X` at every node.
    nums : Numbers, optional

    Returns
    -------
    ndarray, shape (n_hist, K_i)

    Notes
    -----
    With correlated types (``env.correlated``) the belief is conditioned on the own type,
    :math:`P(\theta_{-i}|\theta_i, h)` (:func:`conditional_beliefs`); ``marginals`` is then ignored.
    """
    if space.env.correlated:
        return _correlated_interim(space, agent, values, nums)
    prof, _ = _others_index(space.env, agent)
    vals = np.asarray(values).reshape(space.n_hist, space.env.n_profiles)[:, prof]  # (H, K_i, M)
    return np.einsum("htm,hm->ht", vals, others_beliefs(space, agent, nums, marginals=marginals))


def expectation(space: StateSpace, values: np.ndarray, nums: Numbers | None = None) -> np.ndarray:
    r""":math:`\sum_\theta P(\theta|h)\, X(h, \theta)` at every history (e.g. :math:`\Pi(h)` from :math:`B`).

    Parameters
    ----------
    space : StateSpace
    values : ndarray, shape (..., n_nodes)
    nums : Numbers, optional

    Returns
    -------
    ndarray, shape (..., n_hist)
    """
    vals = np.asarray(values)
    shaped = vals.reshape(*vals.shape[:-1], space.n_hist, space.env.n_profiles)
    return np.einsum("...hk,hk->...h", shaped, joint_beliefs(space, nums))


# ---------------------------------------------------------------------------------------------- continuation
def _next_expectation(space: StateSpace, q: np.ndarray, values: np.ndarray, nodes: np.ndarray, zero) -> np.ndarray:
    """``(m, len(nodes))``: the one-step expectation of ``values`` (m, n_nodes) under the kernel ``q``."""
    k = space.env.n_profiles
    child = np.asarray(space.child_hist)[nodes]
    prof = np.asarray(space.node_key)[nodes]  # the row of the node's kernel (profile, period table)
    out = np.empty((values.shape[0], nodes.size), dtype=values.dtype)
    out.fill(zero)
    live = np.flatnonzero(child >= 0)
    if live.size:
        kids = (child[live][:, None] * k + np.arange(k)).reshape(-1)
        cont = values[:, kids].reshape(values.shape[0], live.size, k)
        out[:, live] = np.einsum("mnk,nk->mn", cont, q[prof[live]])
    return out


def expected_continuation(
    space: StateSpace,
    values: np.ndarray,
    nums: Numbers | None = None,
    nodes: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    r"""The expectation of next period's node values after each node, under truth-telling.

    .. math::
       E[V \mid g] = \sum_{\theta'} P(\theta'|\theta_g)\, V(\text{child}(g, \theta')), \qquad 0 \text{ where the game
       ends after } g

    (the continuation term of the recursion in :func:`continuation_values`, and of the transfers
    :math:`x = \sum_a p v - U + \delta E[U \mid g]` that implement given utilities).

    Parameters
    ----------
    space : StateSpace
    values : ndarray, shape (n_nodes,) or (m, n_nodes)
    nums : Numbers, optional
    nodes : array_like of int, optional
        Nodes to compute (default: all).

    Returns
    -------
    ndarray, shape (len(nodes),) or (m, len(nodes)), as ``values``
    """
    env = space.env
    nums = _numbers(env, nums)
    vals = np.asarray(values)
    idx = np.arange(space.n_nodes) if nodes is None else np.asarray(nodes, dtype=np.int64).reshape(-1)
    zero = nums.zeros((1,))[0]
    out = _next_expectation(space, joint_transition(env, nums), np.atleast_2d(vals), idx, zero)
    return out[0] if vals.ndim == 1 else out


def _markov_lu(space: StateSpace, delta: float, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""LU factors of :math:`I - \delta Q`, computed once per space and kernel (cached on it): the verifier, the
    mechanism and the certificate check solve with it, and with its transpose, many times."""
    cached = getattr(space, "_float_lu", None)
    if cached is None or cached[0] != delta or not np.array_equal(cached[1], q):
        cached = (delta, np.array(q, copy=True), sla.lu_factor(np.eye(q.shape[0]) - delta * q))
        space._float_lu = cached
    return cached[2]


def _markov_solve(space: StateSpace, nums: Numbers, q: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""``c`` with :math:`c = b + \delta Q c` for every row of ``b`` ``(m, K)``: the LU factors of
    :math:`I - \delta Q` (floats) or the exact inverse :math:`(I - \delta Q)^{-1}`, computed once per space and
    model numbers (cached on it)."""
    k = q.shape[0]
    if not nums.exact:
        return sla.lu_solve(_markov_lu(space, nums.delta, q), b.T).T
    if k > EXACT_MARKOV_PROFILES:
        raise ValueError(
            f"exact mode solves Markov spaces of at most {EXACT_MARKOV_PROFILES} profiles; this one has {k}"
        )
    key = (nums.delta, tuple(q.reshape(-1)))
    cached = getattr(space, "_exact_inverse", None)
    if cached is None or cached[0] != key:
        mat = -nums.delta * q
        mat[np.arange(k), np.arange(k)] = mat[np.arange(k), np.arange(k)] + 1
        eye = nums.zeros((k, k))
        eye[np.arange(k), np.arange(k)] = Rational(1)
        cached = (key, solve_exact(mat, eye).T)
        space._exact_inverse = cached
    return b @ cached[1].T


def continuation_values(
    space: StateSpace, flows: np.ndarray, nums: Numbers | None = None, hists: np.ndarray | None = None
) -> np.ndarray:
    r"""Solve the value recursion on ``space`` for one or more flows.

    .. math::
       V(g) = f(g) + \delta \sum_{\theta'} P(\theta'|\theta_g)\, V(\text{child}(g, \theta'))

    (Lamba 2022, eq. 3; docs/design.md section 4.3), with :math:`P` the :func:`joint_transition` and no continuation
    where the game ends. With :math:`f = \sum_a p(a|\theta) v_i - x_i` this gives the ex post utilities
    :math:`U_i`, with :math:`f = \sum_i x_i` the designer's values :math:`B`.

    Parameters
    ----------
    space : StateSpace
    flows : ndarray, shape (m, n_nodes) or (n_nodes,)
        One row per quantity (e.g. one per agent).
    nums : Numbers, optional
        The arithmetic (default: floats). Exact mode handles trees, Markov spaces of at most
        ``EXACT_MARKOV_PROFILES`` profiles and trees with a Markov tail.
    hists : array_like of int, optional
        On a :class:`~mechlp.model.spaces.HistoryTree` only: compute the values in the subtrees of these
        histories only (:meth:`~mechlp.model.spaces.HistoryTree.descendants`, which are closed under the
        recursion); the other nodes keep their flows. Exact work then follows the subtrees' size.

    Returns
    -------
    ndarray, shape (m, n_nodes)

    Notes
    -----
    On a tree (and a :class:`~mechlp.model.spaces.MergedTree`) the recursion runs backwards one depth level at a
    time. On a
    :class:`~mechlp.model.spaces.MarkovSpace` every node leads to the state of its own profile, and on a
    :class:`~mechlp.model.spaces.TreeWithTail` the tail nodes ``(s, theta)`` lead to the tail state ``theta``, so
    :math:`V(s,\theta) = f(s,\theta) + \delta c(\theta)` with :math:`c = (I - \delta Q)^{-1} b`,
    :math:`b(\theta) = \sum_{\theta'} Q(\theta'|\theta) f(\theta, \theta')` (one ``K x K`` solve); the tree levels
    are then filled backwards from the tail.
    """
    env = space.env
    nums = _numbers(env, nums)
    out = np.atleast_2d(np.array(flows, dtype=object if nums.exact else float, copy=True))
    k = env.n_profiles
    delta = nums.delta
    q = joint_transition(env, nums)  # (P * K, K): rows space.node_key
    prof = space.node_key
    zero = nums.zeros((1,))[0]

    sub = None
    if hists is not None:
        if not isinstance(space, HistoryTree):
            raise TypeError(f"continuation values on subtrees need a HistoryTree, got {type(space).__name__}")
        sub = space.descendants(hists)

    def backward(levels: list[tuple[int, int]]) -> np.ndarray:
        for a, b in reversed(levels):  # depth levels, deepest first
            if sub is None:
                nodes = np.arange(a * k, b * k)
            else:
                hs = sub[np.searchsorted(sub, a) : np.searchsorted(sub, b)]
                nodes = (hs[:, None] * k + np.arange(k)).reshape(-1)
            out[:, nodes] = out[:, nodes] + delta * _next_expectation(space, q, out, nodes, zero)
        return out

    if isinstance(space, HistoryTree | MergedTree):
        return backward(space.levels()[:-1])  # the last level has no continuation
    if isinstance(space, MarkovSpace | TreeWithTail):
        # In the Markov part the next state is the current profile: V(g) = f(g) + delta c(theta_g) with
        # c = b + delta Q c, b(theta) = sum_theta' Q[theta, theta'] f(state of theta, theta'): a K x K system.
        first = k if isinstance(space, MarkovSpace) else space.n_tree * k  # first node of the Markov states
        f_next = out[:, first:].reshape(out.shape[0], k, k)  # [m, state theta, theta']
        q_tail = q[-k:]  # the Markov part is stationary: the last period table (TreeWithTail checks it)
        c = _markov_solve(space, nums, q_tail, np.einsum("mst,st->ms", f_next, q_tail))  # (m, K)
        tail_prof = space.node_profile
        if isinstance(space, MarkovSpace):
            return out + delta * c[:, tail_prof]
        out[:, first:] = out[:, first:] + delta * c[:, tail_prof[first:]]
        return backward(space.levels())
    if nums.exact:
        raise TypeError(
            f"exact continuation values need a HistoryTree, MarkovSpace or TreeWithTail, got {type(space).__name__}"
        )
    n = space.n_nodes  # any other space: one sparse solve
    child = np.asarray(space.child_hist)
    has = child >= 0
    rows = np.repeat(np.flatnonzero(has), k)
    cols = (child[has][:, None] * k + np.arange(k)).reshape(-1)
    m = sp.csr_matrix((q[prof[has]].reshape(-1), (rows, cols)), shape=(n, n))
    lu = spla.splu((sp.identity(n, format="csc") - delta * m).tocsc())
    return np.stack([lu.solve(f) for f in out])


def continuation_adjoint(space: StateSpace, weights: np.ndarray, nums: Numbers | None = None) -> np.ndarray:
    r"""The coefficient of every flow in a weighted sum of continuation values: the transpose of
    :func:`continuation_values`.

    With :math:`V = (I - \delta P)^{-1} f` (``P`` the one-step law from a node to the nodes of its child history),
    :math:`\sum_g w(g) V(g) = \sum_g c(g) f(g)` for every flow ``f`` exactly when

    .. math::
       c = w + \delta P^{\top} c, \qquad
       c(\text{child}(g, \theta')) \mathrel{+}= \delta\, P(\theta'|\theta_g)\, c(g),

    solved forwards from the root one depth level at a time on a tree (only nodes with a nonzero coefficient are
    propagated, which keeps exact arithmetic proportional to the support of ``w`` and its subtrees); on a Markov
    space (and a tree's Markov tail) the nodes' coefficients are summed per profile, :math:`W(s)`, and
    :math:`c(s,\theta') \mathrel{+}= \delta\, [(I - \delta Q)^{-\top} W](s)\, Q(\theta'|s)` (one ``K x K``
    solve). Used by :func:`mechlp.audit.verifier.check_impossibility` to compute the coefficient of every transfer
    in a certificate's combination of rows (:math:`A^{\top} y`) in one pass.

    Parameters
    ----------
    space : StateSpace
    weights : ndarray, shape (m, n_nodes) or (n_nodes,)
        :math:`w`, one row per weighted sum.
    nums : Numbers, optional
        The arithmetic (default: floats).

    Returns
    -------
    ndarray, shape as ``weights``
    """
    env = space.env
    nums = _numbers(env, nums)
    w = np.asarray(weights)
    out = np.atleast_2d(np.array(w, dtype=object if nums.exact else float, copy=True))
    k = env.n_profiles
    delta = nums.delta
    q = joint_transition(env, nums)  # (P * K, K): rows space.node_key
    prof = space.node_key
    child = np.asarray(space.child_hist)

    def forward(levels: list[tuple[int, int]]) -> None:
        for a, b in levels:  # depth levels, root first
            nodes = np.arange(a * k, b * k)
            nodes = nodes[child[nodes] >= 0]
            if nums.exact:  # propagate only what is nonzero: exact work follows the support
                nodes = nodes[(out[:, nodes] != 0).any(axis=0)]
            if nodes.size == 0 or delta == 0:
                continue
            kids = (child[nodes][:, None] * k + np.arange(k)).reshape(-1)
            add = (delta * out[:, nodes][:, :, None] * q[prof[nodes]][None, :, :]).reshape(out.shape[0], -1)
            for row in range(out.shape[0]):  # loop over the (few) weighted sums
                np.add.at(out[row], kids, add[row])

    def markov(first: int) -> None:
        # V(g) = f(g) + delta c(theta_g) for nodes g >= first (every node on a Markov space), c = M b,
        # M = (I - delta Q)^{-1}, b(s) = sum_t Q[s, t] f(first + s*k + t).
        lo = 0 if isinstance(space, MarkovSpace) else first
        q_tail = q[-k:]  # the Markov part is stationary: the last period table (TreeWithTail checks it)
        tot = nums.zeros((out.shape[0], k))
        for row in range(out.shape[0]):  # loop over the (few) weighted sums; one pass over the nodes each
            np.add.at(tot[row], space.node_profile[lo:], out[row, lo:])
        if nums.exact:
            eye = nums.zeros((k, k))
            eye[np.arange(k), np.arange(k)] = Rational(1)
            z = tot @ _markov_solve(space, nums, q_tail, eye).T  # rows of W M; _markov_solve of unit rows is M^T
        else:
            z = sla.lu_solve(_markov_lu(space, delta, q_tail), tot.T, trans=1).T  # (I - delta Q)^T z^T = W^T
        out[:, first:] = out[:, first:] + (delta * z[:, :, None] * q_tail[None, :, :]).reshape(out.shape[0], -1)

    if isinstance(space, HistoryTree):
        forward(space.levels()[:-1])
    elif isinstance(space, TreeWithTail):
        forward(space.levels())
        markov(space.n_tree * k)
    elif isinstance(space, MarkovSpace):
        markov(k)
    elif nums.exact:
        raise TypeError(
            f"exact continuation adjoints need a HistoryTree, MarkovSpace or TreeWithTail, got {type(space).__name__}"
        )
    else:
        n = space.n_nodes
        has = child >= 0
        rows = np.repeat(np.flatnonzero(has), k)
        cols = (child[has][:, None] * k + np.arange(k)).reshape(-1)
        m = sp.csr_matrix((q[prof[has]].reshape(-1), (rows, cols)), shape=(n, n))
        lu = spla.splu((sp.identity(n, format="csc") - delta * m).tocsc())
        out = np.stack([lu.solve(v, trans="T") for v in out])
    return out[0] if w.ndim == 1 else out


# ---------------------------------------------------------------------------------------------- correlated types
# With a joint kernel over profiles (env.correlated; docs/design.md section 4.6) the public functions above
# dispatch here: P(theta'|s) = sum_a p(a|s) P(theta'|s, a) (a deviation of agent i of true type t: the row of
# (t, s_-i) under the allocation of s), beliefs are its rows, marginals are summed out of them, and agent i's
# belief about the others is conditioned on its own type (conditional_beliefs). The independence-only functions
# (mixed_kernels, others_beliefs) refuse.
def _refuse_correlated(env: Environment, what: str) -> None:
    """Refuse an independence-only computation on a correlated environment (``env.correlated``;
    :meth:`~mechlp.model.environment.Environment.require_independent`)."""
    env.require_independent(f"{what} (use joint_transition, joint_beliefs or conditional_beliefs)")


def _correlated_transition(
    env: Environment, nums: Numbers | None, deviator: int | None = None, true_type: int | None = None
) -> np.ndarray:
    r"""``(K, K)``: :math:`\sum_a p(a|s) P(\cdot|\tilde s, a)` per reported profile ``s``, with :math:`\tilde s = s`,
    or :math:`\tilde s = (t, s_{-i})` for the deviation of agent ``i = deviator`` of true type ``t``."""
    nums = _numbers(env, nums)
    k = env.n_profiles
    src = np.arange(k)
    if deviator is not None:
        types = env.profile_types().copy()
        types[:, deviator] = int(true_type)
        src = np.ravel_multi_index(tuple(types.T), env.type_counts)
    kern = nums.joint  # (A, K, K)
    out = None
    for a in range(kern.shape[0]):  # loop over actions
        term = nums.alloc[:, a][:, None] * kern[a][src]
        out = term if out is None else out + term
    return out


def _correlated_next_marginals(env: Environment, nums: Numbers | None) -> list[np.ndarray]:
    """Per agent ``j``, ``(K, K_j)``: the marginal of agent ``j``'s next type in each row of the joint kernel."""
    q = _correlated_transition(env, nums)
    return _profile_marginals(env, q)


def _profile_marginals(env: Environment, joint: np.ndarray) -> list[np.ndarray]:
    """Per agent ``j``, the marginals ``(n, K_j)`` of ``joint`` ``(n, K)`` (profiles in C order over agents)."""
    n, counts = joint.shape[0], env.type_counts
    full = joint.reshape(n, *counts)
    out = []
    for j in range(env.n_agents):  # loop over agents
        axes = tuple(1 + a for a in range(env.n_agents) if a != j)
        out.append(full.sum(axis=axes) if axes else full.copy())
    return out


def _correlated_joint_beliefs(space: StateSpace, nums: Numbers | None, idx: np.ndarray) -> np.ndarray:
    r"""``(len(idx), K)``: :math:`P(\theta|h)`, the joint kernel's row at the previous profile (prior at the root)."""
    env = space.env
    nums = _numbers(env, nums)
    prev = np.asarray(space.hist_prev_profile)[idx]
    table = _correlated_transition(env, nums)
    out = table[np.maximum(prev, 0)]
    root = prev < 0
    if root.any():
        out[root] = independent_product([p[None, :] for p in nums.priors], 1)[0]
    return out


def _correlated_marginals(
    space: StateSpace, nums: Numbers | None, hists: Sequence[int] | np.ndarray | None
) -> list[np.ndarray]:
    """Per agent, ``(len(hists), K_j)``: the marginals of :func:`_correlated_joint_beliefs`."""
    return _profile_marginals(space.env, _correlated_joint_beliefs(space, nums, _hists(space, hists)))


def conditional_beliefs(
    space: StateSpace,
    agent: int,
    nums: Numbers | None = None,
    hists: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    r"""Agent ``i``'s belief about the others' current types given its own type, at each history.

    .. math::
       P(\theta_{-i}|\theta_i, h) = \frac{P(\theta|h)}{P_i(\theta_i|h)}, \qquad
       P_i(\theta_i|h) = \sum_{\theta_{-i}} P(\theta|h),

    with :math:`P(\theta|h)` from :func:`joint_beliefs`. Where the own type has probability zero at ``h`` the
    ratio is undefined; the others' marginal :math:`P(\theta_{-i}|h) = \sum_{\theta_i} P(\theta|h)` is used
    there (with independent types both are the product :math:`\prod_{j \ne i} P_j(\theta_j|h)` of
    :func:`others_beliefs`, so the product special case is reproduced exactly). Works for any environment.

    Parameters
    ----------
    space : StateSpace
    agent : int
    nums : Numbers, optional
    hists : array_like of int, optional
        Histories to compute (default: all).

    Returns
    -------
    ndarray, shape (len(hists), K_i, M)
        ``[h, t, m]``, ``m`` the others' profile in C order over the other agents (:meth:`Environment.profile_index`).
    """
    env = space.env
    nums = _numbers(env, nums)
    idx = _hists(space, hists)
    if not env.correlated:
        oth = others_beliefs(space, agent, nums, hists=idx)
        return np.broadcast_to(oth[:, None, :], (idx.size, env.agents[agent].n_types, oth.shape[1])).copy()
    prof, _ = _others_index(env, agent)
    joint = _correlated_joint_beliefs(space, nums, idx)[:, prof]  # (H, K_i, M): P((t, m)|h)
    own = joint.sum(axis=2)  # (H, K_i)
    others = joint.sum(axis=1)  # (H, M)
    out = others[:, None, :].repeat(own.shape[1], axis=1)  # the fallback where P_i(t|h) = 0
    pos = own > 0
    hh, tt = np.nonzero(pos)
    if hh.size:
        out[hh, tt] = joint[hh, tt] / own[hh, tt][:, None]
    return out


def _correlated_interim(space: StateSpace, agent: int, values: np.ndarray, nums: Numbers | None) -> np.ndarray:
    r""":math:`\sum_{\theta_{-i}} P(\theta_{-i}|\theta_i, h) X(h, (\theta_i, \theta_{-i}))`, ``(n_hist, K_i)``."""
    prof, _ = _others_index(space.env, agent)
    vals = np.asarray(values).reshape(space.n_hist, space.env.n_profiles)[:, prof]  # (H, K_i, M)
    return np.einsum("htm,htm->ht", vals, conditional_beliefs(space, agent, nums))


# ---------------------------------------------------------------------------------------------- realised actions
def action_tree_beliefs(space: ActionTree, nums: Numbers | None = None) -> list[np.ndarray]:
    r"""Each agent's belief about its current type at every history of an :class:`~mechlp.model.spaces.ActionTree`.

    .. math::
       P_j(\theta_j|h) = f_j^0(\theta_j) \text{ at the root}, \qquad
       P_j(\theta_j|h) = F_j(\theta_j|s_j, a) \text{ after the report profile } s \text{ and the action } a

    (the history records the realised action, so no mixing over the allocation; the joint belief is the
    product, :func:`independent_product`). Independent types only.

    Returns
    -------
    list of ndarray
        Per agent ``j``, shape ``(n_hist, K_j)``, in the arithmetic of ``nums`` (floats by default).
    """
    env = space.env
    env.require_independent("beliefs on an ActionTree")
    nums = _numbers(env, nums)
    prev = np.asarray(space.hist_prev_profile)
    act = np.asarray(space.hist_prev_action)
    root = prev < 0
    types = env.profile_types()
    out = []
    for j, kern in enumerate(nums.kernels):  # kern: (A, K_j, K_j) (repeated when it ignores the action)
        kern = np.broadcast_to(kern, (env.n_actions, *kern.shape[1:])) if kern.shape[0] == 1 else kern
        m = nums.zeros((space.n_hist, env.agents[j].n_types))
        m[root] = nums.priors[j]
        m[~root] = kern[act[~root], types[prev[~root], j]]
        out.append(m)
    return out


def action_reach(space: ActionTree, allocation: np.ndarray) -> np.ndarray:
    r"""``(n_hist,)``: :math:`\pi(h) = \prod_t p(a_t|g_t)`, the probability that the allocation takes the actions
    recorded in ``h`` at its nodes (whatever was reported there; 1 at the root). A history with
    :math:`\pi(h) = 0` is never reached, whatever anybody reports, so its rows are vacuous.

    Parameters
    ----------
    allocation : ndarray, shape (n_nodes, n_actions)
        :math:`p(a|g)` (floats or exact fractions).
    """
    p = np.asarray(allocation)
    out = np.empty(space.n_hist, dtype=p.dtype)
    out[0] = p.dtype.type(1) if p.dtype != object else Rational(1)
    na = space.n_actions
    for a, b in space.levels()[1:]:  # depth levels only
        h = np.arange(a, b)
        g, act = np.divmod(h - 1, na)
        out[a:b] = out[g // space.env.n_profiles] * p[g, act]
    return out

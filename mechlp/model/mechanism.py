r"""Mechanisms on a state space: the allocation of the environment plus transfers at every node.

A :class:`Mechanism` stores transfers ``x[i, g]`` (payments from agent ``i`` to the designer at node ``g``)
and derives everything else by the recursion of docs/design.md section 4.3 (Lamba 2022, eq. 3):

.. math::
   U_i(g) = \sum_a p(a|\theta_g) v_i(\theta_{g,i}, a) - x_i(g)
            + \delta \sum_{\theta'} P(\theta'|\theta_g) U_i(\text{child}(g, \theta')),

.. math::
   B(g) = \sum_i x_i(g) + \delta \sum_{\theta'} P(\theta'|\theta_g) B(\text{child}(g, \theta')),

the interim utilities :math:`\bar U_i(\theta_i|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h) U_i(h, \theta)` and the
designer's expected surplus :math:`\Pi(h) = \sum_\theta P(\theta|h) B(h, \theta)`.

On a tree the recursion is solved backwards one depth level at a time; on the Markov space it is the
sparse linear system :math:`(I - \delta M) U = \text{flow} - x`; on a tree with a Markov tail the tail is solved
first (a ``K x K`` system, see :func:`continuation_values`) and the tree backwards from it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mechlp.model.spaces import HistoryTree, MarkovSpace, StateSpace, TreeWithTail

__all__ = ["Mechanism", "continuation_values"]


def continuation_values(space: StateSpace, flow: np.ndarray) -> np.ndarray:
    r"""Solve :math:`V(g) = \text{flow}(g) + \delta \sum_{\theta'} P(\theta'|\theta_g) V(\text{child}(g,\theta'))`.

    Parameters
    ----------
    space : StateSpace
    flow : ndarray, shape (m, n_nodes)
        One row per quantity (e.g. one per agent).

    Returns
    -------
    ndarray, shape (m, n_nodes)

    Notes
    -----
    On a :class:`~mechlp.model.spaces.MarkovSpace` every node leads to the state of its own profile, and on a
    :class:`~mechlp.model.spaces.TreeWithTail` the tail nodes ``(s, theta)`` lead to the tail state ``theta``,
    so :math:`V(s,\theta) = f(s,\theta) + \delta c(\theta)` with
    :math:`c = (I - \delta Q)^{-1} b`, :math:`b(\theta) = \sum_{\theta'} Q(\theta'|\theta) f(\theta, \theta')`
    (one dense ``K x K`` solve); the tree levels are then filled backwards from the tail.
    """
    flow = np.atleast_2d(np.asarray(flow, dtype=float))
    env = space.env
    k = env.n_profiles
    delta = env.discount
    q = space.joint_transition()
    prof = space.node_profile
    child = space.child_hist

    def backward(out: np.ndarray, levels: list[tuple[int, int]]) -> np.ndarray:
        for a, b in reversed(levels):  # depth levels, deepest first
            nodes = np.arange(a * k, b * k)
            kids = child[nodes]
            cont = out[:, (kids[:, None] * k + np.arange(k)).reshape(-1)].reshape(flow.shape[0], nodes.size, k)
            out[:, nodes] += delta * np.einsum("mnk,nk->mn", cont, q[prof[nodes]])
        return out

    if isinstance(space, HistoryTree):
        return backward(flow.copy(), space.levels()[:-1])  # the last level has no continuation
    if isinstance(space, TreeWithTail):
        out = flow.copy()
        f_tail = out[:, space.n_tree * k :].reshape(flow.shape[0], k, k)  # [m, state theta, theta']
        b = np.einsum("mst,st->ms", f_tail, q)
        c = np.linalg.solve(np.eye(k) - delta * q, b.T).T  # (m, K)
        out[:, space.n_tree * k :] += delta * np.tile(c, (1, k))
        return backward(out, space.levels())
    if isinstance(space, MarkovSpace):
        # the next state is the current profile: V(g) = f(g) + delta c(theta_g), c = (I - delta Q)^{-1} b with
        # b(theta) = sum_theta' Q(theta'|theta) f(state 1 + theta, theta'): one dense K x K solve.
        f_next = flow[:, k:].reshape(flow.shape[0], k, k)
        b = np.einsum("mst,st->ms", f_next, q)
        c = np.linalg.solve(np.eye(k) - delta * q, b.T).T  # (m, K)
        return flow + delta * c[:, prof]
    n = space.n_nodes
    has = child >= 0
    rows = np.repeat(np.flatnonzero(has), k)
    cols = (child[has][:, None] * k + np.arange(k)).reshape(-1)
    vals = q[prof[has]].reshape(-1)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    system = (sp.identity(n, format="csc") - delta * m).tocsc()
    lu = spla.splu(system)
    return np.stack([lu.solve(f) for f in flow])


def _check_node_allocation(space: StateSpace, allocation) -> np.ndarray:
    """Validate a node allocation: shape ``(n_nodes, n_actions)``, finite, rows distributions (to 1e-9)."""
    env = space.env
    p = np.asarray(allocation, dtype=float)
    shape = (space.n_nodes, env.n_actions)
    if p.shape != shape:
        raise ValueError(f"allocation has shape {p.shape}; expected {shape} (nodes x actions)")
    if env.action_dependent:
        raise ValueError(
            "a node-dependent allocation needs kernels that ignore the action (beliefs would depend on it)"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(p), axis=1) | np.any(p < -1e-9, axis=1) | (np.abs(p.sum(1) - 1) > 1e-9))
    if bad.size:
        raise ValueError(f"allocation row of node {int(bad[0])} is not a probability distribution: {p[bad[0]]}")
    p = np.clip(p, 0.0, None)
    p = p / p.sum(axis=1, keepdims=True)
    p.setflags(write=False)
    return p


class Mechanism:
    """Transfers on a state space, with the environment's allocation.

    Parameters
    ----------
    space : StateSpace
    transfers : array_like, shape (n_agents, n_nodes)
        ``transfers[i, g]``: payment from agent ``i`` to the designer at node ``g``.
    exact_transfers : ndarray of Fraction, optional
        The same transfers as exact fractions (object array), when known; ``transfers`` are then their floats.
    allocation : array_like, shape (n_nodes, n_actions), optional
        A node-dependent allocation :math:`p(a|h, \theta)` (e.g. a second-best allocation,
        :mod:`mechlp.solve.second_best`) replacing the environment's per-profile rule; every row a distribution.
        Only with kernels that ignore the action (beliefs then do not depend on the allocation).
    """

    def __init__(
        self,
        space: StateSpace,
        transfers: np.ndarray,
        exact_transfers: np.ndarray | None = None,
        allocation: np.ndarray | None = None,
    ):
        x = np.asarray(transfers, dtype=float)
        shape = (space.env.n_agents, space.n_nodes)
        if x.shape != shape:
            raise ValueError(f"transfers has shape {x.shape}; expected {shape} (agents x nodes)")
        bad = np.argwhere(~np.isfinite(x))
        if bad.size:
            i, g = bad[0]
            raise ValueError(f"transfers is not finite for agent {space.env.agents[i].name!r} at node {g}")
        self.space = space
        self.env = space.env
        self.transfers = x
        if exact_transfers is not None and np.shape(exact_transfers) != shape:
            raise ValueError(f"exact_transfers has shape {np.shape(exact_transfers)}; expected {shape}")
        #: optional exact (``Fraction``) transfers, used by ``verify(..., exact=True)``
        self.exact_transfers = exact_transfers
        #: optional node-dependent allocation ``(n_nodes, n_actions)``; ``None``: the environment's rule
        self.allocation = None if allocation is None else _check_node_allocation(space, allocation)

    # -- derived quantities -------------------------------------------------------------------
    def flow_values(self) -> np.ndarray:
        r"""``(n_agents, n_nodes)``: :math:`\sum_a p(a|g) v_i(\theta_{g,i}, a)` under this mechanism's allocation."""
        if self.allocation is None:
            return self.env.flow_values()[:, self.space.node_profile]
        types = self.env.profile_types()[self.space.node_profile]  # (N, n)
        return np.stack(
            [np.einsum("ga,ga->g", self.allocation, ag.valuation[types[:, i]]) for i, ag in enumerate(self.env.agents)]
        )

    def utilities(self) -> np.ndarray:
        """Ex post utilities ``U[i, g]`` (within-period, before the next period's types)."""
        return continuation_values(self.space, self.flow_values() - self.transfers)

    def designer_values(self) -> np.ndarray:
        """``B[g]``: expected discounted designer surplus from node ``g`` on."""
        return continuation_values(self.space, self.transfers.sum(axis=0, keepdims=True))[0]

    def surplus(self) -> np.ndarray:
        r"""``Pi[h]`` for every history: :math:`\sum_\theta P(\theta|h) B(h, \theta)`."""
        k = self.env.n_profiles
        return np.einsum("hk,hk->h", self.space.beliefs(), self.designer_values().reshape(-1, k))

    def interim_utilities(self) -> list[np.ndarray]:
        r"""Per agent ``i``, an array ``(n_hist, K_i)`` of :math:`\bar U_i(\theta_i|h)`."""
        env = self.env
        u = self.utilities()
        bel = self.space.beliefs()
        out = []
        shape = (self.space.n_hist, *env.type_counts)
        uu = u.reshape(env.n_agents, *shape)
        bb = bel.reshape(shape)
        for i in range(env.n_agents):
            # P(theta_-i | h): beliefs are products across agents, so sum out agent i's own axis. Defined for
            # every own type, including types of probability zero at h.
            others = bb.sum(axis=i + 1, keepdims=True)
            axes = tuple(j + 1 for j in range(env.n_agents) if j != i)
            out.append((uu[i] * others).sum(axis=axes))
        return out

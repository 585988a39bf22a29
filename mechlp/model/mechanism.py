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

The recursion is :func:`mechlp.model.beliefs.continuation_values` (backwards by depth level on a tree, a ``K x K``
solve on the Markov space, both on a tree with a Markov tail); beliefs and the expectations over them are those of
:mod:`mechlp.model.beliefs`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mechlp.model import tolerances
from mechlp.model.beliefs import (
    action_tree_beliefs,
    continuation_values,
    expectation,
    independent_product,
    interim_expectation,
)
from mechlp.model.spaces import ActionTree, StateSpace

__all__ = ["Mechanism", "ActionMechanism", "agent_array"]


def agent_array(space: StateSpace | ActionTree, value: Any, what: str, per: str = "node") -> np.ndarray:
    """``value`` as a finite float array with one row per agent and one column per node (``per="node"``) or per
    history (``per="history"``) of ``space``.

    Raises
    ------
    ValueError
        For another shape, or a non-finite entry (the message names ``what``, the agent and the node or history).
    """
    a = np.asarray(value, dtype=float)
    shape = (space.env.n_agents, space.n_nodes if per == "node" else space.n_hist)
    if a.shape != shape:
        plural = "nodes" if per == "node" else "histories"
        raise ValueError(f"{what} has shape {a.shape}; expected {shape} (agents x {plural})")
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        i, col = bad[0]
        raise ValueError(f"{what} is not finite for agent {space.env.agents[i].name!r} at {per} {col}")
    return a


def _check_node_allocation(space: StateSpace | ActionTree, allocation, learning_ok: bool = False) -> np.ndarray:
    """Validate a node allocation: shape ``(n_nodes, n_actions)``, finite, rows distributions
    (to ``tolerances.PROBABILITY``; clipped and renormalised, read-only). On a :class:`StateSpace` the kernels
    must ignore the action (``learning_ok`` on an :class:`ActionTree`, whose histories record it)."""
    env = space.env
    p = np.asarray(allocation, dtype=float)
    shape = (space.n_nodes, env.n_actions)
    if p.shape != shape:
        raise ValueError(f"allocation has shape {p.shape}; expected {shape} (nodes x actions)")
    if env.action_dependent and not learning_ok:
        raise ValueError(
            "a node-dependent allocation needs kernels that ignore the action (beliefs would depend on it); "
            "with learning kernels use an ActionTree and ActionMechanism (histories record the realised actions)"
        )
    tol = tolerances.PROBABILITY
    bad = np.flatnonzero(~np.all(np.isfinite(p), axis=1) | np.any(p < -tol, axis=1) | (np.abs(p.sum(1) - 1) > tol))
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
    exact_allocation : ndarray of fractions, shape (n_nodes, n_actions), optional
        The same allocation as exact fractions (object array), when known (``allocation`` is then required and holds
        their floats); ``verify(..., exact=True)`` reads it as given (it checks that every row is a distribution
        exactly). Without it an exact check takes the float allocation's entries exactly as the floats they are.
    """

    def __init__(
        self,
        space: StateSpace,
        transfers: np.ndarray,
        exact_transfers: np.ndarray | None = None,
        allocation: np.ndarray | None = None,
        exact_allocation: np.ndarray | None = None,
    ):
        x = agent_array(space, transfers, "transfers")
        shape = x.shape
        self.space = space
        self.env = space.env
        self.transfers = x
        if exact_transfers is not None and np.shape(exact_transfers) != shape:
            raise ValueError(f"exact_transfers has shape {np.shape(exact_transfers)}; expected {shape}")
        #: optional exact (``Fraction``) transfers, used by ``verify(..., exact=True)``
        self.exact_transfers = exact_transfers
        #: optional node-dependent allocation ``(n_nodes, n_actions)``; ``None``: the environment's rule
        self.allocation = None if allocation is None else _check_node_allocation(space, allocation)
        if exact_allocation is not None:
            if allocation is None:
                raise ValueError("exact_allocation needs allocation (its floats)")
            if np.shape(exact_allocation) != self.allocation.shape:
                raise ValueError(
                    f"exact_allocation has shape {np.shape(exact_allocation)}; expected {self.allocation.shape}"
                )
        #: optional exact (fractions) node allocation, used by ``verify(..., exact=True)`` as given
        self.exact_allocation = exact_allocation

    # -- derived quantities -------------------------------------------------------------------
    def flow_values(self) -> np.ndarray:
        r"""``(n_agents, n_nodes)``: :math:`\sum_a p(a|g) v_i(\theta_{g,i}, a)` under this mechanism's allocation."""
        if self.allocation is None:
            return self.space.node_flow_values()
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
        return expectation(self.space, self.designer_values())

    def interim_utilities(self) -> list[np.ndarray]:
        r"""Per agent ``i``, an array ``(n_hist, K_i)`` of :math:`\bar U_i(\theta_i|h)`."""
        u = self.utilities()
        return [interim_expectation(self.space, i, u[i]) for i in range(self.env.n_agents)]


class ActionMechanism:
    r"""A mechanism on an :class:`~mechlp.model.spaces.ActionTree`: a node allocation and node transfers.

    .. math::
       U_i(g) = \sum_a p(a|g) \Big[v_i(\theta_{g,i}, a) + \delta \sum_{\theta'} P(\theta'|\theta_g, a)\,
                U_i(\text{child}(g, a), \theta')\Big] - x_i(g),
       \qquad P(\theta'|\theta, a) = \prod_j F_j(\theta'_j|\theta_j, a)

    Parameters
    ----------
    space : ActionTree
    allocation : array_like, shape (n_nodes, n_actions)
        :math:`p(a|g)`, every row a distribution (to ``tolerances.PROBABILITY``; clipped and renormalised).
    transfers : array_like, shape (n_agents, n_nodes)
        Payments to the designer at every node (before the action is drawn).
    """

    def __init__(self, space: ActionTree, allocation: Any, transfers: Any):
        if not isinstance(space, ActionTree):
            raise TypeError(f"space must be an ActionTree, got {type(space).__name__}")
        env = space.env
        p = _check_node_allocation(space, allocation, learning_ok=True)
        x = agent_array(space, transfers, "transfers")
        x.setflags(write=False)
        self.space, self.env, self.allocation, self.transfers = space, env, p, x

    def flow_values(self) -> np.ndarray:
        r"""``(n_agents, n_nodes)``: :math:`\sum_a p(a|g) v_i(\theta_{g,i}, a)`."""
        types = self.env.profile_types()[np.tile(np.arange(self.env.n_profiles), self.space.n_hist)]
        return np.stack(
            [np.einsum("ga,ga->g", self.allocation, ag.valuation[types[:, i]]) for i, ag in enumerate(self.env.agents)]
        )

    def _values(self, flows: np.ndarray) -> np.ndarray:
        """Backward recursion of ``flows`` ``(m, n_nodes)`` on the tree, one depth level at a time."""
        space, env = self.space, self.env
        k, na, delta = env.n_profiles, env.n_actions, env.discount
        out = np.array(flows, dtype=float, copy=True)
        joint = independent_product(action_tree_beliefs(space), space.n_hist)  # (H, K): P(theta|h)
        for a, b in reversed(space.levels()[:-1]):  # depth levels, deepest first
            nodes = np.arange(a * k, b * k)
            kids = space.child_hist[nodes]  # (N, A)
            cont = out[:, (kids[:, :, None] * k + np.arange(k)).reshape(-1)].reshape(out.shape[0], nodes.size, na, k)
            ev = np.einsum("mnak,nak->mna", cont, joint[kids])  # E[V(child(g, a), .)]
            out[:, nodes] += delta * np.einsum("na,mna->mn", self.allocation[nodes], ev)
        return out

    def utilities(self) -> np.ndarray:
        """Ex post utilities ``U[i, g]``."""
        return self._values(self.flow_values() - self.transfers)

    def designer_values(self) -> np.ndarray:
        """``B[g]``: expected discounted payments from node ``g`` on."""
        return self._values(self.transfers.sum(axis=0, keepdims=True))[0]

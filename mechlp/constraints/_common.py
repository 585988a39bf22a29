"""Per-agent precomputations shared by the constraint builders (the only home of the constraint maths)."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from mechlp.constraints.deviation import flow_gain, ic_pairs
from mechlp.model.beliefs import conditional_beliefs, joint_transition, others_beliefs
from mechlp.model.spaces import StateSpace


class AgentView:
    r"""Arrays that the IC and IR rows of agent ``i`` are made of.

    Attributes
    ----------
    prof : ndarray (K_i, M)
        Profile index of (own type ``t``, others' profile ``m``); ``M = prod_{j != i} K_j``.
    others_belief : ndarray (n_hist, M) or None
        :math:`P(\theta_{-i} = m | h)` (:func:`mechlp.model.beliefs.others_beliefs`); ``None`` with correlated
        types, where the belief depends on the own type (:meth:`belief`).
    conditional : ndarray (n_hist, K_i, M) or None
        With correlated types: :math:`P(\theta_{-i} = m | \theta_i = t, h)`
        (:func:`mechlp.model.beliefs.conditional_beliefs`).
    """

    def __init__(self, space: StateSpace, agent: int):
        env = space.env
        self.space = space
        self.agent = agent
        self.n_types = env.agents[agent].n_types
        self.n_others = env.others_count(agent)
        self.prof = env.profile_index(agent, np.arange(self.n_types)[:, None], np.arange(self.n_others)[None, :])
        self.others_belief = None if env.correlated else others_beliefs(space, agent)
        self.conditional = conditional_beliefs(space, agent) if env.correlated else None

    def belief(self, true_type: int) -> np.ndarray:
        r"""``(n_hist, M)``: the belief of agent ``i`` of type ``t`` about the others, :math:`P(m|t, h)` (the same
        for every ``t`` with independent types)."""
        return self.others_belief if self.conditional is None else self.conditional[:, true_type, :]

    @cached_property
    def flow_gain(self) -> np.ndarray:
        r"""``(P, K_i, K_i, M)``: :math:`\sum_a p_p(a|r, m)\,[v_i(t, a) - v_i(r, a)]` indexed ``[p, t, r, m]``
        for each period table ``p`` of the allocation (:func:`mechlp.constraints.deviation.flow_gain`)."""
        env = self.space.env
        alloc = env.allocations.reshape(-1, env.n_actions)
        val = env.agents[self.agent].valuation
        return np.stack([flow_gain(alloc, val, self.prof + p * env.n_profiles) for p in range(len(env.allocations))])

    def transition_gap(self, true_type: int, report: int) -> np.ndarray:
        r"""``(P, M, K)``: :math:`P_{t}(\theta'|r, m) - P(\theta'|r, m)` at the reported profiles ``(r, m)``, for
        each period table ``p`` of the allocation.

        The first law moves agent ``i`` on from the true type ``t``, the second from the report ``r``
        (:func:`mechlp.model.beliefs.joint_transition`).
        """
        env = self.space.env
        rows = self.prof[report][None, :] + env.n_profiles * np.arange(env.n_allocation_periods)[:, None]
        return joint_transition(env, deviator=self.agent, true_type=true_type)[rows] - joint_transition(env)[rows]

    def type_pairs(self, local: bool) -> list[tuple[int, int]]:
        """IC pairs ``(t, r)`` of this agent (:func:`mechlp.constraints.deviation.ic_pairs`)."""
        return ic_pairs(self.n_types, local)

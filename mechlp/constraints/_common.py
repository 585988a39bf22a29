"""Per-agent precomputations shared by the constraint builders (the only home of the constraint maths)."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from mechlp.model.beliefs import joint_transition, others_beliefs
from mechlp.model.spaces import StateSpace


class AgentView:
    r"""Arrays that the IC and IR rows of agent ``i`` are made of.

    Attributes
    ----------
    prof : ndarray (K_i, M)
        Profile index of (own type ``t``, others' profile ``m``); ``M = prod_{j != i} K_j``.
    others_belief : ndarray (n_hist, M)
        :math:`P(\theta_{-i} = m | h)` (:func:`mechlp.model.beliefs.others_beliefs`).
    """

    def __init__(self, space: StateSpace, agent: int):
        env = space.env
        self.space = space
        self.agent = agent
        self.n_types = env.agents[agent].n_types
        self.n_others = env.others_count(agent)
        self.prof = env.profile_index(agent, np.arange(self.n_types)[:, None], np.arange(self.n_others)[None, :])
        self.others_belief = others_beliefs(space, agent)

    @cached_property
    def flow_gain(self) -> np.ndarray:
        r"""``(K_i, K_i, M)``: :math:`\sum_a p(a|r, m)\,[v_i(t, a) - v_i(r, a)]` indexed ``[t, r, m]``."""
        env = self.space.env
        val = env.agents[self.agent].valuation  # (K_i, A)
        alloc_r = env.allocation[self.prof]  # (K_i[r], M, A)
        diff = val[:, None, :] - val[None, :, :]  # (t, r, A)
        return np.einsum("rma,tra->trm", alloc_r, diff)

    def transition_gap(self, true_type: int, report: int) -> np.ndarray:
        r"""``(M, K)``: :math:`P_{t}(\theta'|r, m) - P(\theta'|r, m)` at the reported profiles ``(r, m)``.

        The first law moves agent ``i`` on from the true type ``t``, the second from the report ``r``
        (:func:`mechlp.model.beliefs.joint_transition`).
        """
        env = self.space.env
        rows = self.prof[report]
        return joint_transition(env, deviator=self.agent, true_type=true_type)[rows] - joint_transition(env)[rows]

    def type_pairs(self, local: bool) -> list[tuple[int, int]]:
        k = self.n_types
        return [(t, r) for t in range(k) for r in range(k) if t != r and (not local or abs(t - r) == 1)]


def outside_options(outside_option, env) -> list[np.ndarray]:
    """Normalise ``outside_option`` (scalar, per agent, or per agent per type) to per-agent type arrays."""
    out = []
    if np.isscalar(outside_option):
        return [np.full(ag.n_types, float(outside_option)) for ag in env.agents]
    seq = list(outside_option)
    if len(seq) != env.n_agents:
        raise ValueError(f"outside_option has {len(seq)} entries; expected one per agent ({env.n_agents})")
    for i, (ag, val) in enumerate(zip(env.agents, seq, strict=True)):
        arr = (
            np.broadcast_to(np.asarray(val, dtype=float), (ag.n_types,)).copy()
            if np.ndim(val) == 0
            else (np.asarray(val, dtype=float))
        )
        if arr.shape != (ag.n_types,):
            raise ValueError(
                f"outside_option[{i}] for agent {ag.name!r} has shape {arr.shape}; expected ({ag.n_types},)"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"outside_option[{i}] for agent {ag.name!r} is not finite")
        out.append(arr)
    return out

r"""Information structures: what each agent observes, for Lamba's *intermediate mechanism* (2022, section 7.2).

In the public mechanism of the rest of the library every agent sees the whole history of report profiles. In
the intermediate mechanism agent ``i`` sees only his own reports and the realised allocation (the *public
signal*: whether trade happened), and his payments may depend on nothing else. The designer still sees every
report.

:class:`SignalSpace` holds both views on a finite horizon of ``T`` periods:

* the designer's history tree ``tree`` (a :class:`~mechlp.model.spaces.HistoryTree`: nodes ``(h, theta)``, beliefs
  :math:`P(\theta|h)`, the same indexing as everywhere else);
* for every agent ``i`` his *information histories* ``I``: sequences of signals :math:`(r_i, a)` (own report, realised
  action), one per past period. ``info_hist[i][h]`` is the information history of agent ``i`` at designer history
  ``h``; agent ``i``'s *information nodes* are the triples ``(I, r_i, a)`` with index ``I * S_i + r_i * |A| + a``
  (``S_i = K_i |A|`` signals), ``info_node[i][g]`` the one of designer node ``g``, and ``info_child[i][j]`` the
  information history that follows information node ``j`` (``-1`` when the game ends or when the node is never
  reached).

Agent ``i``'s belief about the others' current types at ``I`` is the posterior under truth-telling,

.. math::
   P_i(\theta_{-i} | I) = \frac{\sum_{h \in I} \Pr(h)\, P(\theta_{-i} | h)}{\sum_{h \in I} \Pr(h)},

with :math:`\Pr(h)` the probability of reaching designer history ``h`` (uniform weights over the members of an
information history that is reached with probability zero). It depends on the agent's reports and signals only,
not on his true types, so it is also his belief after a misreport. Realised actions are the signal, so the
allocation must be deterministic (with a randomised allocation observing the action is not observing the
allocation probabilities; Lamba 2022, footnote 33).

Everything is vectorised over histories and nodes; Python loops run over agents and depth levels only. An infinite
horizon environment is truncated to ``horizon`` periods (the designer's tree is then a truncation too).
"""

from __future__ import annotations

import numpy as np

from mechlp.model import tolerances
from mechlp.model.beliefs import others_beliefs, reach_probabilities
from mechlp.model.environment import Environment
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, HistoryTree

__all__ = ["SignalSpace"]


class SignalSpace:
    """The designer's history tree plus every agent's information histories (see module docstring).

    Parameters
    ----------
    env : Environment
        With a deterministic allocation.
    horizon : int, optional
        Number of periods; defaults to ``env.horizon`` (required for an infinite horizon: a truncation).
    memory_limit : int
        Bytes, for the designer's tree (see :class:`~mechlp.model.spaces.HistoryTree`).

    Attributes
    ----------
    tree : HistoryTree
    n_signals : list of int
        ``S_i = K_i * |A|`` per agent.
    n_info : list of int
        Number of information histories per agent.
    info_hist : list of ndarray, each ``(tree.n_hist,)``
    info_level_start : list of ndarray
        Information histories of period ``t`` are ``[info_level_start[i][t-1], info_level_start[i][t])``.
    info_parent, info_signal : list of ndarray, each ``(n_info[i],)``
        The previous information history and the signal ``r * |A| + a`` that led to each one (``-1`` at the root).
    info_node : list of ndarray, each ``(tree.n_nodes,)``
    info_child : list of ndarray, each ``(n_info[i] * n_signals[i],)``
    reached : list of ndarray of bool, each ``(n_info[i] * n_signals[i],)``
        Information nodes that some designer node maps to.
    others_posterior : list of ndarray, each ``(n_info[i], M_i)``
        :math:`P_i(\\theta_{-i} | I)`, others' profiles in C order.
    action_probability : list of ndarray, each ``(n_info[i], K_i, |A|)``
        :math:`P_i(a | I, r) = \\sum_m P_i(m | I)\\, p(a | r, m)`: the chance of signal ``a`` after reporting ``r``.
    """

    kind = "signal"

    def __init__(self, env: Environment, horizon: int | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT):
        if not isinstance(env, Environment):
            raise TypeError(f"env must be an Environment, got {type(env).__name__}")
        random_rows = np.flatnonzero(np.max(env.allocation, axis=1) < 1.0 - tolerances.PROBABILITY)
        if random_rows.size:
            r = int(random_rows[0])
            raise ValueError(
                f"SignalSpace needs a deterministic allocation (the realised action is the public signal); "
                f"allocation row {r} (profile {env.profile_labels(r)}) randomises"
            )
        self.env = env
        self.tree = HistoryTree(env, horizon, memory_limit=memory_limit)
        self.horizon = self.tree.horizon
        tree = self.tree
        k, n_act = env.n_profiles, env.n_actions
        prof = tree.node_profile
        act = env.actions_by_profile()
        types = env.profile_types()
        reach = reach_probabilities(tree)
        levels = tree.levels()
        self.n_signals, self.n_info = [], []
        self.info_hist, self.info_level_start, self.info_parent, self.info_signal = [], [], [], []
        self.info_node, self.info_child, self.reached = [], [], []
        self.others_posterior, self.action_probability = [], []
        for i, ag in enumerate(env.agents):  # loop over agents; each agent's arrays are built level by level
            n_sig = ag.n_types * n_act
            signal = types[prof, i] * n_act + act[prof]  # (n_nodes,) signal of agent i at each designer node
            ids = np.zeros(tree.n_hist, dtype=np.int64)
            starts, parents, sigs = [0, 1], [np.array([-1])], [np.array([-1])]
            for a, b in levels[1:]:  # depth levels
                g = np.arange(a, b) - 1  # designer node g precedes designer history g + 1
                key = ids[g // k] * n_sig + signal[g]
                uniq, inverse = np.unique(key, return_inverse=True)
                ids[a:b] = starts[-1] + inverse
                parents.append(uniq // n_sig)
                sigs.append(uniq % n_sig)
                starts.append(starts[-1] + uniq.size)
            n_info = starts[-1]
            node = ids[tree.node_hist] * n_sig + signal
            child = np.full(n_info * n_sig, -1, dtype=np.int64)
            has = tree.child_hist >= 0
            child[node[has]] = ids[tree.child_hist[has]]
            reached = np.zeros(n_info * n_sig, dtype=bool)
            reached[node] = True
            # posterior over the others' current profile: reach-weighted average of P(theta_-i | h) over I
            m_count = env.others_count(i)
            pidx = env.profile_index(i, np.arange(ag.n_types)[:, None], np.arange(m_count)[None, :])  # (K_i, M)
            others = others_beliefs(tree, i)  # (n_hist, M): P(theta_-i | h)
            mass = np.bincount(ids, weights=reach, minlength=n_info)
            weight = np.where(mass[ids] > 0, reach, 1.0)  # uniform over the members of a null information history
            post = np.zeros((n_info, m_count))
            np.add.at(post, ids, weight[:, None] * others)
            post /= post.sum(axis=1, keepdims=True)
            alloc = env.allocation[pidx]  # (K_i, M, A)
            self.n_signals.append(n_sig)
            self.n_info.append(int(n_info))
            self.info_hist.append(ids)
            self.info_level_start.append(np.array(starts, dtype=np.int64))
            self.info_parent.append(np.concatenate(parents).astype(np.int64))
            self.info_signal.append(np.concatenate(sigs).astype(np.int64))
            self.info_node.append(node)
            self.info_child.append(child)
            self.reached.append(reached)
            self.others_posterior.append(post)
            self.action_probability.append(np.einsum("Im,rma->Ira", post, alloc))

    # ------------------------------------------------------------------ descriptions
    def info_path(self, agent: int, info: int) -> list[tuple[str, str]]:
        """Signals ``(own report label, action label)`` leading to information history ``info`` of ``agent``."""
        ag = self.env.agents[agent]
        n_act = self.env.n_actions
        out = []
        while info > 0:  # walks up one branch: depth steps only
            s = int(self.info_signal[agent][info])
            out.append((ag.types[s // n_act], self.env.actions[s % n_act]))
            info = int(self.info_parent[agent][info])
        return out[::-1]

    def describe_info(self, agent: int, info: int) -> str:
        """E.g. ``"buyer after (v_H, trade) -> (v_L, no_trade)"`` (own report, public signal per period)."""
        path = self.info_path(agent, info)
        name = self.env.agents[agent].name
        if not path:
            return f"{name} in period 1"
        return f"{name} after " + " -> ".join(f"({r}, {a})" for r, a in path)

    def describe_history(self, h: int) -> str:
        """The designer's history ``h`` (see :meth:`HistoryTree.describe_history`)."""
        return self.tree.describe_history(h)

    def pooled(self) -> np.ndarray:
        """``(tree.n_hist,)`` bool: designer histories that share some agent's information history with another
        designer history (where the designer knows more than that agent)."""
        out = np.zeros(self.tree.n_hist, dtype=bool)
        for ids in self.info_hist:
            counts = np.bincount(ids)
            out |= counts[ids] > 1
        return out

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
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, HistoryTree, MarkovSpace

__all__ = ["SignalSpace", "MarkovSignalSpace", "BELIEF_DEPTH"]


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


#: Depth of the belief enumeration of :class:`MarkovSignalSpace` (periods of signals followed from the first
#: period); the enumeration stops earlier once the belief sets are closed under the filter.
BELIEF_DEPTH = 64


class MarkovSignalSpace:
    r"""The intermediate mechanism on the infinite horizon: payments that depend on the agent's *last signal*.

    Agent ``i``'s payment is :math:`x_i(s, r, a)` with ``s`` his *signal state*: ``0`` in the first period,
    ``1 + r' |A| + a'`` after his own last report ``r'`` and last realised action ``a'`` (``n_info[i] = 1 + S_i``
    states). This is measurable with respect to his information, so every mechanism here is an intermediate
    mechanism of Lamba (2022, section 7.2); it is a *restriction* of that class (payments may not depend on older
    signals), the analogue of the Markov mechanisms of the public case.

    **Why the rows are finite and exact for this class.** With types independent across agents and Markov, and
    payments depending on ``s`` only, the value of truth-telling from state ``s`` with own type ``t`` when the others'
    current profile is ``m`` is a number :math:`V_i(s, t, m)` of a finite Markov chain over ``(s, t, m)``. The agent
    does not know ``m``: at an information history ``I`` he holds the belief :math:`b_I(m)` (the filter of his own
    reports and signals), and his interim utility and his one-shot deviation payoffs are *linear* in :math:`b_I`:
    :math:`\bar U_i(I, t) = \sum_m b_I(m) V_i(s, t, m)` and
    :math:`D_i(I, t, r) = \sum_m b_I(m) [v_i(t, a(r, m)) - x_i(s, r, a(r,m)) + \delta \sum_{t', m'} F_i(t'|t)
    G_i(m'|m) V_i(s'(r, a(r, m)), t', m')]`. So IC and IR at every information history hold iff they hold at the
    extreme points of the convex hull of the beliefs reachable at each state. The filter step
    :math:`b \mapsto (b \odot 1[a(r,\cdot) = a]) G_i / (b \cdot 1[a(r,\cdot)=a])` is linear-fractional, so it maps
    the hull of a set into the hull of the set's images: if the images of a finite set :math:`E_s` of reachable
    beliefs at each state lie in :math:`\mathrm{conv}(E_{s'})`, every reachable belief lies in
    :math:`\mathrm{conv}(E_s)` (induction). The enumeration follows the filter from the first period's belief
    (the others' prior) for up to :data:`BELIEF_DEPTH` periods and keeps the hull's extreme points; it needs each
    agent's others to have two profiles (beliefs are one number, hulls are intervals) and refuses otherwise.

    The designer's rows are exact too: every agent's state is a function of the last report profile, so her
    continuation surplus is :math:`\Pi(\theta_{t-1})`, on :class:`~mechlp.model.spaces.MarkovSpace` (``tree``).

    Attributes
    ----------
    env : Environment
    tree : MarkovSpace
        The designer's space (the name keeps the interface of :class:`SignalSpace`).
    horizon : str
        ``"markov"``.
    n_signals : list of int
        ``S_i = K_i |A|``.
    n_states : list of int
        ``1 + S_i``.
    beliefs : list of ndarray
        Per agent ``(n_info[i], M_i)``: the extreme reachable beliefs, grouped by state (``belief_state``).
    belief_state : list of ndarray
        Per agent ``(n_info[i],)``: the signal state of each belief row.
    n_info : list of int
        Rows per agent (state, extreme belief) at which IC and IR are imposed.
    others_kernel, others_prior : list of ndarray
        :math:`G_i(m'|m)` ``(M_i, M_i)`` and the first period's belief ``(M_i,)``.
    info_node : list of ndarray
        Per agent ``(tree.n_nodes,)``: the payment coordinate ``s * S_i + r |A| + a`` at each designer node.
    depth : list of int
        Periods of filter the enumeration needed until the belief sets were closed.
    """

    kind = "signal_markov"

    def __init__(self, env: Environment, belief_depth: int = BELIEF_DEPTH):
        if not isinstance(env, Environment):
            raise TypeError(f"env must be an Environment, got {type(env).__name__}")
        if not env.infinite:
            raise ValueError(
                f"MarkovSignalSpace is the infinite-horizon intermediate mechanism; env has horizon {env.horizon} "
                "(use SignalSpace for a finite horizon)"
            )
        env.require_independent("the intermediate mechanism on the infinite horizon (MarkovSignalSpace)")
        if env.action_dependent:
            raise ValueError("MarkovSignalSpace needs action-independent kernels (types evolve exogenously)")
        if env.allocations.shape[0] != 1:
            raise ValueError("MarkovSignalSpace needs one stationary allocation table")
        random_rows = np.flatnonzero(np.max(env.allocation, axis=1) < 1.0 - tolerances.PROBABILITY)
        if random_rows.size:
            r = int(random_rows[0])
            raise ValueError(
                f"MarkovSignalSpace needs a deterministic allocation (the realised action is the public signal); "
                f"allocation row {r} (profile {env.profile_labels(r)}) randomises"
            )
        self.env = env
        self.tree = MarkovSpace(env)
        self.horizon = "markov"
        n_act = env.n_actions
        act = env.actions_by_profile()
        kern = env.profile_kernel()[0]  # (K, K)
        prior = np.ones(1)
        for ag in env.agents:
            prior = np.multiply.outer(prior, ag.prior).reshape(-1)
        tree = self.tree
        prev = tree.hist_prev_profile[tree.node_hist]  # (n_nodes,) previous profile, -1 in the first period
        types = env.profile_types()
        self.n_signals, self.n_states, self.n_info = [], [], []
        self.beliefs, self.belief_state, self.others_kernel, self.others_prior = [], [], [], []
        self.info_node, self.depth, self.own_action = [], [], []
        for i, ag in enumerate(env.agents):  # agents; the enumeration loops over depth and signals
            m_count = env.others_count(i)
            if m_count != 2:
                raise ValueError(
                    f"MarkovSignalSpace needs the others of each agent to have 2 type profiles (beliefs are one "
                    f"number); agent {ag.name!r} faces {m_count}"
                )
            n_sig = ag.n_types * n_act
            pidx = env.profile_index(i, np.arange(ag.n_types)[:, None], np.arange(m_count)[None, :])  # (K_i, M)
            g = kern[pidx[0]][:, pidx].sum(axis=1)  # (M, M): sum over the own next type t' of P((0,m),(t',m'))
            b0 = prior[pidx].sum(axis=0)
            a_rm = act[pidx]  # (K_i, M): action after own report r and others' m
            ext = {0: (float(b0[1]), float(b0[1]))}  # state -> (lowest, highest) belief that others are m = 1
            frontier = [(0, b0[1])]
            depth = 0
            while frontier and depth < belief_depth:  # periods of filtering
                depth += 1
                new = []
                for _, p1 in frontier:  # the frontier's beliefs (at most two per state)
                    b = np.array([1.0 - p1, p1])
                    for r in range(ag.n_types):
                        for a in range(n_act):
                            mask = a_rm[r] == a
                            w = float(b @ mask)
                            if w <= tolerances.PROBABILITY:
                                continue
                            nb = ((b * mask) @ g) / w
                            s2 = 1 + r * n_act + a
                            lo, hi = ext.get(s2, (np.inf, -np.inf))
                            q = float(nb[1])
                            if q < lo - tolerances.PROBABILITY or q > hi + tolerances.PROBABILITY:
                                ext[s2] = (min(lo, q), max(hi, q))
                                new.append((s2, q))
                frontier = new
            if frontier:
                raise ValueError(
                    f"MarkovSignalSpace: the beliefs of agent {ag.name!r} are not closed after {belief_depth} "
                    "periods of filtering (raise belief_depth)"
                )
            states = sorted(ext)
            rows_state, rows_belief = [], []
            for s in states:  # signal states (at most 1 + S_i)
                lo, hi = ext[s]
                for q in (lo, hi) if hi - lo > tolerances.PROBABILITY else (lo,):
                    rows_state.append(s)
                    rows_belief.append([1.0 - q, q])
            self.n_signals.append(n_sig)
            self.n_states.append(1 + n_sig)
            self.beliefs.append(np.array(rows_belief))
            self.belief_state.append(np.array(rows_state, dtype=np.int64))
            self.n_info.append(len(rows_state))
            self.others_kernel.append(g)
            self.others_prior.append(b0)
            self.own_action.append(a_rm)
            state = np.where(prev < 0, 0, 1 + types[np.maximum(prev, 0), i] * n_act + act[np.maximum(prev, 0)])
            self.info_node.append(state * n_sig + types[tree.node_profile, i] * n_act + act[tree.node_profile])
            self.depth.append(depth)

    def describe_state(self, agent: int, s: int) -> str:
        """E.g. ``"buyer after (v_H, trade)"`` or ``"buyer in period 1"``."""
        ag = self.env.agents[agent]
        if s == 0:
            return f"{ag.name} in period 1"
        r, a = divmod(s - 1, self.env.n_actions)
        return f"{ag.name} after ({ag.types[r]}, {self.env.actions[a]})"

    def describe_info(self, agent: int, row: int) -> str:
        """The state and belief of a row, e.g. ``"buyer after (v_H, trade), belief (0.3, 0.7)"``."""
        b = self.beliefs[agent][row]
        text = ", ".join(f"{v:.6g}" for v in b)
        return f"{self.describe_state(agent, int(self.belief_state[agent][row]))}, belief ({text})"

    def describe_history(self, h: int) -> str:
        return self.tree.describe_history(h)

r"""Rows of the *intermediate mechanism* (Lamba 2022, section 7.2) on a :class:`~mechlp.model.signals.SignalSpace`.

Agent ``i`` observes his own reports and the realised action (the public signal); his payment
:math:`x_i(I, r, a)` depends on his information history ``I``, his current report ``r`` and the signal ``a`` only.
Variables: per agent the interim utility :math:`\bar U_i(I, t)` of true type ``t`` at ``I`` (truthful from now on)
and the payments :math:`x_i(I, r, a)`; for the designer :math:`B(g)` at every node of the designer's tree.
With :math:`P_i(a|I,r)` the chance of signal ``a`` after report ``r`` under agent ``i``'s posterior and
:math:`F_i(t'|t,a)` his kernel, the rows are

* recursion (equality), per agent, ``I`` and ``t``:

  .. math::
     \bar U_i(I,t) = \sum_a P_i(a|I,t) \Big[ v_i(t,a) - x_i(I,t,a)
        + \delta \sum_{t'} F_i(t'|t,a)\, \bar U_i(I(t,a), t') \Big]

  where :math:`I(r,a)` is the information history after signal ``(r, a)`` (no term in the last period);
* IC, per agent, ``I``, true ``t`` and report ``r != t`` (one-shot deviation, truthful afterwards): the deviator
  pays :math:`x_i(I,r,a)`, learns only the signal, moves to :math:`I(r,a)`, and his type moves on from ``t``:

  .. math::
     \bar U_i(I,t) \ge \sum_a P_i(a|I,r) \Big[ v_i(t,a) - x_i(I,r,a)
        + \delta \sum_{t'} F_i(t'|t,a)\, \bar U_i(I(r,a), t') \Big];

* IR: :math:`\bar U_i(I,t) \ge \underline u_i(t)` at every ``I`` (``"interim"``) or at the first period only
  (``"ex_ante"``);
* designer (equality) at every designer node ``g`` with profile :math:`\theta_g`:
  :math:`B(g) = \sum_i x_i(I_i(g), \theta_{g,i}, a(\theta_g)) + \delta \sum_{\theta'} P(\theta'|\theta_g) B(g\theta')`,
  and :math:`\Pi(h) = \sum_\theta P(\theta|h) B(h,\theta)` at every designer history;
* budget: ``"interim"`` :math:`\Pi(h) \ge 0` at every designer history, ``"ex_ante"`` at the root,
  ``"ex_post"`` :math:`\sum_i x_i(I_i(g), \theta_{g,i}, a(\theta_g)) = 0` at every designer node, ``"none"``.

The only difference from the public rows of :mod:`mechlp.constraints.ic` is the information: beliefs and
continuations are indexed by what the agent saw, and payments cannot depend on the other reports except through
the signal.
"""

from __future__ import annotations

import numpy as np

from mechlp.constraints.budget import surplus_block, zero_sum_block
from mechlp.lp.program import Block
from mechlp.model.beliefs import joint_beliefs, joint_transition
from mechlp.model.question import parse_notion
from mechlp.model.signals import MarkovSignalSpace, SignalSpace

__all__ = [
    "SignalVariables",
    "MarkovSignalVariables",
    "INTERMEDIATE_BUDGETS",
    "intermediate_blocks",
    "markov_intermediate_blocks",
    "intermediate_surplus_cost",
]

INTERMEDIATE_BUDGETS = ("interim", "ex_ante", "ex_post", "none")


class SignalVariables:
    """Column layout: per agent ``Ubar_i`` (``n_info_i * K_i``, index ``I * K_i + t``) and ``x_i``
    (``n_info_i * S_i``, index ``I * S_i + r * |A| + a``), then the designer's ``B`` (one per designer node)."""

    def __init__(self, space: SignalSpace):
        self.space = space
        env = space.env
        start = 0
        self.u_start, self.x_start = [], []
        for i, ag in enumerate(env.agents):
            self.u_start.append(start)
            start += space.n_info[i] * ag.n_types
            self.x_start.append(start)
            start += space.n_info[i] * space.n_signals[i]
        self.b_start = start
        self.n_cols = start + space.tree.n_nodes

    def U(self, agent: int, info: np.ndarray, t: np.ndarray | int) -> np.ndarray:
        k = self.space.env.agents[agent].n_types
        return self.u_start[agent] + np.asarray(info, dtype=np.int64) * k + np.asarray(t, dtype=np.int64)

    def x(self, agent: int, info_node: np.ndarray) -> np.ndarray:
        return self.x_start[agent] + np.asarray(info_node, dtype=np.int64)

    def B(self, nodes: np.ndarray) -> np.ndarray:
        return self.b_start + np.asarray(nodes, dtype=np.int64)

    def split(self, z: np.ndarray) -> dict:
        """``{"U": [per agent (n_info, K_i)], "x": [per agent (n_info, S_i)], "B": (n_nodes,)}``."""
        sp = self.space
        env = sp.env
        u = [z[self.u_start[i] : self.x_start[i]].reshape(sp.n_info[i], ag.n_types) for i, ag in enumerate(env.agents)]
        x = [
            z[self.x_start[i] : self.x_start[i] + sp.n_info[i] * sp.n_signals[i]].reshape(sp.n_info[i], -1)
            for i in range(env.n_agents)
        ]
        return {"U": u, "x": x, "B": z[self.b_start :]}


def _payoff_terms(variables: SignalVariables, i: int, t: int, r: int):
    """Triplets (local row = information history, column, value) and constant of the payoff of true type ``t``
    reporting ``r`` at every information history of agent ``i``, written ``lhs - payoff`` with ``lhs = Ubar(I,t)``:
    the returned values are those of ``-payoff`` minus its constant, which is returned separately."""
    sp = variables.space
    env = sp.env
    ag = env.agents[i]
    n_act = env.n_actions
    delta = env.discount
    n_info, n_sig = sp.n_info[i], sp.n_signals[i]
    info = np.arange(n_info, dtype=np.int64)
    prob = sp.action_probability[i][:, r, :]  # (n_info, A): chance of each signal after reporting r
    const = prob @ ag.valuation[t]  # expected flow value of the true type
    rows, cols, vals = [], [], []
    nodes = info[:, None] * n_sig + r * n_act + np.arange(n_act)[None, :]  # (n_info, A) information nodes
    ii, aa = np.nonzero(prob > 0)
    rows.append(ii)
    cols.append(variables.x(i, nodes[ii, aa]))
    vals.append(prob[ii, aa])  # + x: the payment lowers the payoff, so -payoff has +x
    kids = sp.info_child[i][nodes[ii, aa]]
    cont = kids >= 0
    if delta != 0 and cont.any():
        kern = ag.kernel(n_act)[aa[cont], t, :]  # (E, K_i): next own type from the true type
        coef = -delta * prob[ii[cont], aa[cont]][:, None] * kern
        rows.append(np.repeat(ii[cont], ag.n_types))
        cols.append(variables.U(i, np.repeat(kids[cont], ag.n_types), np.tile(np.arange(ag.n_types), cont.sum())))
        vals.append(coef.reshape(-1))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), const


def _pi_triplets(variables: SignalVariables, hists: np.ndarray):
    tree = variables.space.tree
    k = tree.env.n_profiles
    bel = joint_beliefs(tree, hists=hists)
    nodes = hists[:, None] * k + np.arange(k)
    return np.repeat(np.arange(hists.size), k), variables.B(nodes.reshape(-1)), bel.reshape(-1)


def intermediate_blocks(
    variables: SignalVariables, ir: str = "interim", budget: str = "none", outside: list[np.ndarray] | None = None
) -> list[Block]:
    """All rows of the module docstring as labelled blocks (``hist`` labels an information history for the agent
    rows and a designer history for the designer rows)."""
    if ir not in ("interim", "ex_ante"):
        raise ValueError(f"the intermediate mechanism supports ir 'interim' or 'ex_ante', got {ir!r}")
    budget = parse_notion("budget", budget, allowed=INTERMEDIATE_BUDGETS)
    sp = variables.space
    env = sp.env
    blocks: list[Block] = []
    for i, ag in enumerate(env.agents):  # loops over agents and type pairs; rows are vectorised over histories
        info = np.arange(sp.n_info[i], dtype=np.int64)
        lo = 0.0 if outside is None else outside[i]
        for t in range(ag.n_types):
            own = variables.U(i, info, t)
            for r in range(ag.n_types):
                rows, cols, vals, const = _payoff_terms(variables, i, t, r)
                rows = np.concatenate([info, rows])
                cols = np.concatenate([own, cols])
                vals = np.concatenate([np.ones(info.size), vals])
                if r == t:
                    blocks.append(
                        Block(
                            "recursion_U",
                            info.size,
                            rows,
                            cols,
                            vals,
                            const,
                            const.copy(),
                            {"agent": i, "hist": info, "type": t},
                        )
                    )
                else:
                    blocks.append(
                        Block(
                            "ic",
                            info.size,
                            rows,
                            cols,
                            vals,
                            const,
                            np.full(info.size, np.inf),
                            {"agent": i, "hist": info, "type": t, "misreport": r},
                        )
                    )
            ir_info = info if ir == "interim" else info[:1]
            level = float(np.broadcast_to(lo, (ag.n_types,))[t])
            blocks.append(
                Block(
                    "ir",
                    ir_info.size,
                    np.arange(ir_info.size),
                    variables.U(i, ir_info, t),
                    np.ones(ir_info.size),
                    np.full(ir_info.size, level),
                    np.full(ir_info.size, np.inf),
                    {"agent": i, "hist": ir_info, "type": t},
                )
            )
    return blocks + _designer_blocks(variables, budget)


def _designer_blocks(variables, budget: str) -> list[Block]:
    """The designer's recursion and budget rows, on ``space.tree`` (a history tree or the Markov space)."""
    sp = variables.space
    env = sp.env
    tree = sp.tree
    k = env.n_profiles
    blocks: list[Block] = []
    nodes = np.arange(tree.n_nodes, dtype=np.int64)
    has = np.flatnonzero(tree.child_hist >= 0)
    q = joint_transition(env)
    kids = (tree.child_hist[has][:, None] * k + np.arange(k)).reshape(-1)
    probs = q[has % k].reshape(-1)
    keep = probs != 0
    rows = [nodes, np.repeat(has, k)[keep]] + [nodes] * env.n_agents
    cols = [variables.B(nodes), variables.B(kids[keep])] + [
        variables.x(i, sp.info_node[i]) for i in range(env.n_agents)
    ]
    vals = [np.ones(nodes.size), -env.discount * probs[keep]] + [-np.ones(nodes.size)] * env.n_agents
    zeros = np.zeros(nodes.size)
    blocks.append(
        Block(
            "recursion_B",
            nodes.size,
            np.concatenate(rows),
            np.concatenate(cols),
            np.concatenate(vals),
            zeros,
            zeros.copy(),
            {"node": nodes, "hist": nodes // k},
        )
    )
    if budget == "ex_post":
        cols = np.concatenate([variables.x(i, sp.info_node[i]) for i in range(env.n_agents)])
        blocks.append(zero_sum_block(nodes, cols, env.n_agents, k))
    elif budget in ("interim", "ex_ante"):
        hists = np.arange(tree.n_hist if budget == "interim" else 1, dtype=np.int64)
        blocks.append(surplus_block(hists, *_pi_triplets(variables, hists)))
    return blocks


def intermediate_surplus_cost(variables: SignalVariables, weights: np.ndarray) -> np.ndarray:
    r"""Cost vector of :math:`-\sum_h w_h \Pi(h)` over designer histories (HiGHS minimises)."""
    hists = np.arange(variables.space.tree.n_hist, dtype=np.int64)
    rows, cols, vals = _pi_triplets(variables, hists)
    cost = np.zeros(variables.n_cols)
    np.add.at(cost, cols, -np.asarray(weights, dtype=float)[rows] * vals)
    return cost


class MarkovSignalVariables:
    """Column layout on a :class:`~mechlp.model.signals.MarkovSignalSpace`: per agent ``V_i(s, t, m)``
    (index ``(s K_i + t) M_i + m``) and ``x_i(s, r, a)`` (index ``s S_i + r |A| + a``), then the designer's ``B``
    (one per node of the Markov space)."""

    def __init__(self, space: MarkovSignalSpace):
        self.space = space
        env = space.env
        start = 0
        self.v_start, self.x_start, self.m_count = [], [], []
        for i, ag in enumerate(env.agents):
            m = env.others_count(i)
            self.m_count.append(m)
            self.v_start.append(start)
            start += space.n_states[i] * ag.n_types * m
            self.x_start.append(start)
            start += space.n_states[i] * space.n_signals[i]
        self.b_start = start
        self.n_cols = start + space.tree.n_nodes

    def V(self, agent: int, s, t, m) -> np.ndarray:
        k = self.space.env.agents[agent].n_types
        mm = self.m_count[agent]
        return self.v_start[agent] + (np.asarray(s, dtype=np.int64) * k + np.asarray(t, dtype=np.int64)) * mm + m

    def x(self, agent: int, info_node: np.ndarray) -> np.ndarray:
        return self.x_start[agent] + np.asarray(info_node, dtype=np.int64)

    def B(self, nodes: np.ndarray) -> np.ndarray:
        return self.b_start + np.asarray(nodes, dtype=np.int64)

    def split(self, z: np.ndarray) -> dict:
        """``{"x": [per agent (n_states, S_i)], "B": (n_nodes,)}``."""
        sp = self.space
        x = [
            z[self.x_start[i] : self.x_start[i] + sp.n_states[i] * sp.n_signals[i]].reshape(sp.n_states[i], -1)
            for i in range(sp.env.n_agents)
        ]
        return {"x": x, "B": z[self.b_start :]}


def _markov_payoff(variables: MarkovSignalVariables, i: int, t: int, r: int, s: np.ndarray, m: np.ndarray):
    """Triplets (local row = entry of ``s`` / ``m``, column, value) of ``x_i(s, r, a(r,m)) - delta E V_i(next)``
    for true type ``t`` reporting ``r`` when the others are at ``m``, and the flow value ``v_i(t, a(r, m))``."""
    sp = variables.space
    env = sp.env
    ag = env.agents[i]
    n_act, k = env.n_actions, ag.n_types
    mm = variables.m_count[i]
    a = sp.own_action[i][r, m]  # (E,)
    local = np.arange(s.size)
    rows = [local]
    cols = [variables.x(i, s * sp.n_signals[i] + r * n_act + a)]
    vals = [np.ones(s.size)]
    if env.discount != 0:
        nxt = 1 + r * n_act + a
        f = ag.kernel(n_act)[0, t]  # (K_i,) own next type
        g = sp.others_kernel[i][m]  # (E, M)
        coef = -env.discount * f[None, :, None] * g[:, None, :]  # (E, K_i, M)
        tt, m2 = np.meshgrid(np.arange(k), np.arange(mm), indexing="ij")
        rows.append(np.repeat(local, k * mm))
        cols.append(variables.V(i, nxt[:, None, None], tt[None], m2[None]).reshape(-1))
        vals.append(coef.reshape(-1))
    flow = ag.valuation[t, a]
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), flow


def markov_intermediate_blocks(
    variables: MarkovSignalVariables, ir: str = "interim", budget: str = "none", outside: list[np.ndarray] | None = None
) -> list[Block]:
    r"""The rows of the infinite-horizon intermediate mechanism (:class:`~mechlp.model.signals.MarkovSignalSpace`).

    * recursion (equality), per agent, state ``s``, type ``t`` and others' profile ``m``, with
      :math:`a = a(t, m)`: :math:`V_i(s,t,m) = v_i(t,a) - x_i(s,t,a) + \delta \sum_{t',m'} F_i(t'|t) G_i(m'|m)
      V_i(1 + t|A| + a, t', m')`;
    * IC per belief row ``j`` (state ``s_j``, belief ``b_j``), ``t != r``:
      :math:`\sum_m b_j(m) [V_i(s_j,t,m) - v_i(t,a(r,m)) + x_i(s_j,r,a(r,m)) - \delta \sum F_i G_i
      V_i(1 + r|A| + a(r,m), \cdot)] \ge 0`;
    * IR per belief row: :math:`\sum_m b_j(m) V_i(s_j,t,m) \ge \underline u_i(t)` (``"interim"``; ``"ex_ante"``:
      the first period's row only);
    * the designer's rows of :func:`intermediate_blocks` on the Markov space.
    """
    if ir not in ("interim", "ex_ante"):
        raise ValueError(f"the intermediate mechanism supports ir 'interim' or 'ex_ante', got {ir!r}")
    budget = parse_notion("budget", budget, allowed=INTERMEDIATE_BUDGETS)
    sp = variables.space
    env = sp.env
    blocks: list[Block] = []
    for i, ag in enumerate(env.agents):  # agents and type pairs; rows are vectorised over states and beliefs
        k, mm, n_st = ag.n_types, variables.m_count[i], sp.n_states[i]
        lo = 0.0 if outside is None else outside[i]
        s_all, m_all = np.repeat(np.arange(n_st), mm), np.tile(np.arange(mm), n_st)
        rows_b = np.arange(sp.n_info[i])
        bel = sp.beliefs[i]  # (n_info, M)
        s_b = sp.belief_state[i]
        for t in range(k):
            rows, cols, vals, flow = _markov_payoff(variables, i, t, t, s_all, m_all)
            own = variables.V(i, s_all, t, m_all)
            n = s_all.size
            blocks.append(
                Block(
                    "recursion_U",
                    n,
                    np.concatenate([np.arange(n), rows]),
                    np.concatenate([own, cols]),
                    np.concatenate([np.ones(n), vals]),
                    flow,
                    flow.copy(),
                    {"agent": i, "hist": s_all, "type": t, "others": m_all},
                )
            )
            # belief-weighted rows: row j, others' profile m with weight b_j(m)
            jj, mj = np.repeat(rows_b, mm), np.tile(np.arange(mm), rows_b.size)
            w = bel[jj, mj]
            for r in range(k):
                if r == t:
                    continue
                rr, cc, vv, fl = _markov_payoff(variables, i, t, r, s_b[jj], mj)
                const = np.bincount(jj, weights=w * fl, minlength=rows_b.size)
                blocks.append(
                    Block(
                        "ic",
                        rows_b.size,
                        np.concatenate([jj, jj[rr]]),
                        np.concatenate([variables.V(i, s_b[jj], t, mj), cc]),
                        np.concatenate([w, w[rr] * vv]),
                        const,
                        np.full(rows_b.size, np.inf),
                        {"agent": i, "hist": rows_b, "type": t, "misreport": r},
                    )
                )
            ir_rows = rows_b if ir == "interim" else rows_b[s_b == 0]
            keep = np.isin(jj, ir_rows)
            level = float(np.broadcast_to(lo, (k,))[t])
            local = np.searchsorted(ir_rows, jj[keep])
            blocks.append(
                Block(
                    "ir",
                    ir_rows.size,
                    local,
                    variables.V(i, s_b[jj[keep]], t, mj[keep]),
                    w[keep],
                    np.full(ir_rows.size, level),
                    np.full(ir_rows.size, np.inf),
                    {"agent": i, "hist": ir_rows, "type": t},
                )
            )
    return blocks + _designer_blocks(variables, budget)

r"""Second best and optimal mechanisms for learning models: kernels that depend on the action (issue #13, item 2).

When a kernel depends on the action, :math:`F_j(\theta'_j|\theta_j, a)` (Yoon 2021, section 2: the buyer learns
its value only after trade), the beliefs after a randomised allocation depend on the action *realised*. A
mechanism that records the realised action lives on an :class:`~mechlp.model.spaces.ActionTree`: histories are
sequences of (report profile, action), history :math:`h` owns the nodes :math:`g = (h, \theta)`, and the history
after node :math:`g` and action :math:`a` is :math:`\text{child}(g, a)`. Its beliefs
(:func:`mechlp.model.beliefs.action_tree_beliefs`) are constants: :math:`P(\theta'|h') = \prod_j
F_j(\theta'_j|\theta_{g,j}, a)` after :math:`(g, a)`, the prior at the root. What still multiplies is the
allocation and the continuation utility, :math:`p(a|g)\,U_i(\text{child}(g, a), \theta')`.

The occupation-measure linearisation
------------------------------------
Let :math:`\pi(h) = \prod_t p(a_t|g_t)` be the probability that the allocation takes the actions recorded in
:math:`h` (:func:`mechlp.model.beliefs.action_reach`; :math:`\pi(\text{root}) = 1`, :math:`\pi(\text{child}(g,
a)) = \pi(h)\,p(a|g)`). The LP variables are the *scaled* quantities, per node :math:`g` of history :math:`h`,

.. math::
   q(g, a) = \pi(h)\,p(a|g) \ge 0, \qquad \tilde U_i(g) = \pi(h)\,U_i(g), \qquad
   \tilde x_i(g) = \pi(h)\,x_i(g), \qquad \tilde B(g) = \pi(h)\,B(g)

(``U`` the truthful continuation utility, ``x`` the payment to the designer, ``B`` the designer's continuation
value). Every row of the unscaled problem at history :math:`h`, multiplied by :math:`\pi(h) \ge 0`, becomes
linear in them, because :math:`\pi(h)\,p(a|g) = q(g, a) = \pi(\text{child}(g, a))` turns each product
:math:`\pi(h)\,p(a|g)\,U_i(\text{child}(g, a), \theta')` into :math:`\tilde U_i(\text{child}(g, a), \theta')`:

flow (``"flow"``)
    :math:`\sum_a q(g, a) = \pi(h)`, with :math:`\pi(\text{root}) = 1` and :math:`\pi(\text{child}(g, a)) =
    q(g, a)` (so :math:`\sum_a q(g', a) = q(g, a)` at every node :math:`g'` of the child history): the scaled
    form of :math:`\sum_a p(a|g) = 1`.
utility recursion (``"utility"``), :math:`\pi(h)` times :math:`U_i(g) = \sum_a p(a|g)[v_i + \delta E U_i] - x_i(g)`
    .. math::
       \tilde U_i(g) = \sum_a q(g, a)\, v_i(\theta_{g,i}, a) - \tilde x_i(g)
         + \delta \sum_a \sum_{\theta'} P(\theta'|\theta_g, a)\, \tilde U_i(\text{child}(g, a), \theta')
designer recursion (``"designer"``)
    :math:`\tilde B(g) = \sum_i \tilde x_i(g) + \delta \sum_a \sum_{\theta'} P(\theta'|\theta_g, a)\,
    \tilde B(\text{child}(g, a), \theta')`.
Bayesian IC (``"ic"``), agent :math:`i`, true type :math:`t`, report :math:`r`, others' profile :math:`m`
    .. math::
       \sum_m P(m|h)\, \tilde U_i(h, (t, m)) \ge \sum_m P(m|h) \Big[\sum_a q(g_r, a)\, v_i(t, a) - \tilde x_i(g_r)
         + \delta \sum_a \sum_{\theta'} F_i(\theta'_i|t, a) \prod_{j \ne i} F_j(\theta'_j|m_j, a)\,
         \tilde U_i(\text{child}(g_r, a), \theta')\Big], \qquad g_r = (h, (r, m))

    (one-shot deviations: after the lie the agent is truthful, its true next type drawn from
    :math:`F_i(\cdot|t, a)`; with independent types the later IC rows, conditional on the own type, do not
    depend on the agent's belief about it).
IR (``"ir"``)
    interim :math:`\sum_m P(m|h)\, \tilde U_i(h, (t, m)) \ge \pi(h)\, O_i(t)` at every history; ex post
    :math:`\tilde U_i(g) \ge \pi(h)\, O_i(\theta_{g,i})`; ex ante: the interim rows at the root only (the
    project's convention, :mod:`mechlp.constraints.ir`: participation decided once, in period 1, knowing the
    first type).
budget (``"budget"``)
    interim :math:`\sum_\theta P(\theta|h)\, \tilde B(h, \theta) \ge 0` at every history; ex ante at the root
    only; ex post :math:`\sum_i \tilde x_i(g) = 0` (balance at every node, :mod:`mechlp.constraints.budget`).
objective (root, :math:`\pi = 1`)
    welfare :math:`\sum_\theta P(\theta|\text{root}) [\sum_i \tilde U_i + \tilde B](\text{root}, \theta)`
    (transfers cancel), revenue :math:`\sum_\theta P(\theta|\text{root})\, \tilde B(\text{root}, \theta)`,
    gains from trade the welfare minus that of always taking the first action.

Exactness. Every mechanism on the tree gives a feasible point (scale its rows by :math:`\pi(h)`), with the same
objective (:math:`\pi = 1` at the root). Conversely, from a feasible point recover
:math:`p(a|g) = q(g, a)/\pi(h)` and :math:`x_i(g) = \tilde x_i(g)/\pi(h)` where :math:`\pi(h) > 0` (elsewhere
the first action and :math:`x = 0`, the status quo: those histories are never reached, so their rows are vacuous,
but a check of pointwise rows at every node, e.g. ex post IR, then meets no trade and no payment). The recursions give
:math:`\tilde U = \pi U` and :math:`\tilde B = \pi B` for the recovered mechanism *when the scaled transfers
vanish below every unreached history*; then each row at a reached history is the recovered mechanism's unscaled
row times :math:`\pi(h) > 0`, and a row at :math:`\pi(h) = 0` reads :math:`0 \ge 0` (vacuous). Without that
condition the LP may place transfers at histories it never reaches (:math:`q = 0` but :math:`\tilde x \ne 0`),
which no mechanism does: the LP value is then the supremum over mechanisms (approached by taking those actions
with a vanishing probability and a correspondingly large transfer), not attained. ``transfer_bound=M`` imposes
:math:`|\tilde x_i(g)| \le M\,\pi(h)` (the scaled form of :math:`|x_i| \le M`), which rules this out exactly;
without it the answer is checked, and when the recovered mechanism fails the rows the LP is re-solved with
:math:`|x_i| \le` ``RETRY_TRANSFER_BOUND`` :math:`(1 + T \max|v|)`: the unbounded LP is a relaxation of every
mechanism, so a verified bounded answer of the same value is optimal among all mechanisms
(``method["unbounded_optimal"]``); otherwise the message reports the unattained supremum.

Verification: the recovered mechanism is re-checked by the independent verifier
:func:`mechlp.audit.realised.verify_realised` (``certificate``); the LP's scaled rows are also evaluated at the
mechanism's own scaled quantities (:math:`q = \pi p`, :math:`\tilde U = \pi U`, ... computed by
:class:`~mechlp.model.mechanism.ActionMechanism`; ``method["min_slack"]``), which tells an unattained relaxation
(those rows fail) from a defect (they hold, the verifier objects: ``"verification_failed"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mechlp.audit.realised import verify_realised
from mechlp.backends import solve_arrays
from mechlp.backends.base import check_backend
from mechlp.lp.program import MatrixSizes
from mechlp.model import tolerances
from mechlp.model.beliefs import action_reach, action_tree_beliefs, independent_product
from mechlp.model.environment import Environment
from mechlp.model.mechanism import ActionMechanism
from mechlp.model.question import check_choice, outside_options
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT, ActionTree

__all__ = ["LEARNING_OBJECTIVES", "LearningProgram", "LearningResult", "build_learning_lp", "second_best_learning"]

LEARNING_OBJECTIVES = ("welfare", "gains_from_trade", "revenue")
LEARNING_IR = ("interim", "ex_post", "ex_ante")
LEARNING_BUDGETS = ("interim", "ex_ante", "ex_post", "none")
#: When the LP without ``transfer_bound`` is not attained, :func:`second_best_learning` re-solves with
#: :math:`|x_i| \le` this factor times :math:`1 + \max|v| \cdot T` (module docstring).
RETRY_TRANSFER_BOUND = 100.0


@dataclass
class LearningProgram(MatrixSizes):
    """The scaled LP on an :class:`~mechlp.model.spaces.ActionTree` (HiGHS form: ``min cost @ z`` s.t.
    ``row_lower <= A z <= row_upper``, ``col_lower <= z <= col_upper``).

    Columns: ``q`` at ``[0, N A)`` (``g*A + a``), ``Ut`` at ``N A + i*N + g``, ``xt`` at ``N A + n N + i*N + g``,
    ``Bt`` at ``N A + 2 n N + g``. ``family`` names each row's family (module docstring).
    """

    space: ActionTree
    A: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    cost: np.ndarray
    family: np.ndarray
    build_seconds: float = 0.0

    def split(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """``{"q": (N, A), "Ut": (n, N), "xt": (n, N), "Bt": (N,)}``."""
        sp_, n = self.space, self.space.env.n_agents
        nn, na = sp_.n_nodes, sp_.n_actions
        o = nn * na
        return {
            "q": z[:o].reshape(nn, na),
            "Ut": z[o : o + n * nn].reshape(n, nn),
            "xt": z[o + n * nn : o + 2 * n * nn].reshape(n, nn),
            "Bt": z[o + 2 * n * nn : o + (2 * n + 1) * nn],
        }

    def stack(self, q: np.ndarray, ut: np.ndarray, xt: np.ndarray, bt: np.ndarray) -> np.ndarray:
        """The column vector of the scaled quantities (inverse of :meth:`split`)."""
        return np.concatenate([np.ravel(q), np.ravel(ut), np.ravel(xt), np.ravel(bt)])

    def min_slack(self, z: np.ndarray) -> dict[str, float]:
        """Per row family, the smallest slack of ``z`` (``min(Az - lower, upper - Az)``; equality rows: minus the
        absolute residual)."""
        az = self.A @ z
        slack = np.minimum(az - self.row_lower, self.row_upper - az)
        return {f: float(slack[self.family == f].min(initial=np.inf)) for f in dict.fromkeys(self.family)}


class _Rows:
    """Triplets of row families appended one after another."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.fam: list[np.ndarray] = []
        self.n = 0

    def add(self, family: str, n_rows: int, rows, cols, vals, lower, upper) -> None:
        rows, cols, vals = (np.ravel(np.asarray(x)) for x in np.broadcast_arrays(rows, cols, vals))
        self.r.append(rows.astype(np.int64) + self.n)
        self.c.append(cols.astype(np.int64))
        self.v.append(vals.astype(float))
        self.lo.append(np.broadcast_to(np.asarray(lower, dtype=float), (n_rows,)))
        self.hi.append(np.broadcast_to(np.asarray(upper, dtype=float), (n_rows,)))
        self.fam.append(np.full(n_rows, family, dtype=object))
        self.n += n_rows

    def pi_term(self, family: str, hists: np.ndarray, coef: np.ndarray, lower, upper, rows, cols, vals) -> None:
        """Add rows ``sum(vals * z[cols]) + coef * pi(h)`` in ``[lower, upper]``: :math:`\\pi(h)` is the column
        ``q`` of index ``h - 1`` for ``h > 0`` and the constant 1 at the root (moved to the bounds)."""
        n_rows = hists.size
        lower = np.broadcast_to(np.asarray(lower, dtype=float), (n_rows,)).copy()
        upper = np.broadcast_to(np.asarray(upper, dtype=float), (n_rows,)).copy()
        coef = np.broadcast_to(np.asarray(coef, dtype=float), (n_rows,))
        root = hists == 0
        lower[root] -= coef[root]
        upper[root] -= coef[root]
        rows, cols, vals = (np.ravel(x) for x in np.broadcast_arrays(rows, cols, vals))
        keep = np.flatnonzero(~root)
        rows = np.concatenate([rows, keep])
        cols = np.concatenate([cols, hists[keep] - 1])
        vals = np.concatenate([vals, coef[keep]])
        self.add(family, n_rows, rows, cols, vals, lower, upper)

    def matrix(self, n_cols: int):
        a = sp.csc_matrix((np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))), (self.n, n_cols))
        a.sum_duplicates()
        return a, np.concatenate(self.lo), np.concatenate(self.hi), np.concatenate(self.fam)


def _others_beliefs(env: Environment, joint: np.ndarray, agent: int) -> tuple[np.ndarray, np.ndarray]:
    """``(prof, P)``: ``prof[t, m]`` the profile of own type ``t`` and others' index ``m``; ``P[h, m]`` the others'
    belief :math:`P(m|h)` (the joint belief summed over the agent's own type)."""
    m = env.others_count(agent)
    prof = np.stack([env.profile_index(agent, t, np.arange(m)) for t in range(env.agents[agent].n_types)])
    return prof, joint[:, prof].sum(axis=1)


def build_learning_lp(
    space: ActionTree,
    *,
    objective: str = "welfare",
    budget: str = "interim",
    ir: str = "interim",
    outside_option: Any = 0.0,
    transfer_bound: float | None = None,
) -> LearningProgram:
    r"""Assemble the scaled LP of the module docstring on ``space`` (cost: minus the objective at the root; for
    ``"gains_from_trade"`` the same cost as ``"welfare"``, the constant is subtracted by the caller).

    Vectorised over histories and nodes; the loops run over agents, type pairs and actions only.
    """
    if not isinstance(space, ActionTree):
        raise TypeError(f"space must be an ActionTree, got {type(space).__name__}")
    check_choice("objective", objective, LEARNING_OBJECTIVES)
    check_choice("budget", budget, LEARNING_BUDGETS)
    check_choice("ir", ir, LEARNING_IR)
    if transfer_bound is not None and not (np.isfinite(transfer_bound) and transfer_bound >= 0):
        raise ValueError(f"transfer_bound must be a finite number >= 0, got {transfer_bound!r}")
    started = time.perf_counter()
    env = space.env
    env.require_independent("second_best_learning (beliefs on an ActionTree)")
    k, na, n, delta = env.n_profiles, space.n_actions, env.n_agents, env.discount
    nh, nn = space.n_hist, space.n_nodes
    outside = outside_options(outside_option, env)
    marg = action_tree_beliefs(space)
    joint = independent_product(marg, nh)  # (H, K): P(theta|h)
    types = env.profile_types()  # (K, n)
    nodes = np.arange(nn)
    node_hist, node_prof = np.divmod(nodes, k)
    kids = np.asarray(space.child_hist)  # (N, A), -1 in the last period
    inner = np.flatnonzero(kids[:, 0] >= 0)  # nodes with a continuation
    hist_inner = space.n_hist - (space.level_start[-1] - space.level_start[-2])  # histories before the last period
    o_u, o_x = nn * na, nn * na + n * nn
    o_b = nn * na + 2 * n * nn
    n_cols = nn * na + (2 * n + 1) * nn

    def cq(g, a):
        return np.asarray(g) * na + a

    def cu(i, g):
        return o_u + i * nn + np.asarray(g)

    def cx(i, g):
        return o_x + i * nn + np.asarray(g)

    def cb(g):
        return o_b + np.asarray(g)

    def kid_nodes(g):  # (len(g), A, K) nodes of child(g, a) and weights P(theta'|theta_g, a)
        kh = kids[g]
        return kh[:, :, None] * k + np.arange(k), joint[kh]

    rows = _Rows()
    acts = np.arange(na)
    # flow: sum_a q(g, a) - pi(h) = 0
    rows.pi_term("flow", node_hist, -1.0, 0.0, 0.0, np.arange(nn)[:, None], cq(nodes[:, None], acts), 1.0)
    # recursions of Ut_i and Bt
    kn, kw = kid_nodes(inner)
    loc_inner = inner[:, None, None] + np.zeros((1, na, k), dtype=np.int64)
    for i, ag in enumerate(env.agents):  # loop over agents
        val = ag.valuation[types[node_prof, i]]  # (N, A)
        r = [nodes, nodes[:, None], nodes, loc_inner]
        c = [cu(i, nodes), cq(nodes[:, None], acts), cx(i, nodes), cu(i, kn)]
        v = [np.ones(nn), -val, np.ones(nn), -delta * kw]
        rows.add("utility", nn, *_flat(r, c, v), 0.0, 0.0)
    r = [nodes] + [nodes] * n + [loc_inner]
    c = [cb(nodes)] + [cx(i, nodes) for i in range(n)] + [cb(kn)]
    v = [np.ones(nn)] + [-np.ones(nn)] * n + [-delta * kw]
    rows.add("designer", nn, *_flat(r, c, v), 0.0, 0.0)
    hists = np.arange(nh)
    for i, ag in enumerate(env.agents):  # loop over agents
        prof, pm = _others_beliefs(env, joint, i)  # (K_i, M), (H, M)
        mm = prof.shape[1]
        hm = hists[:, None] * k  # (H, 1) first node of each history
        for t in range(ag.n_types):  # loop over type pairs
            g_t = hm + prof[t]  # (H, M)
            for rep in range(ag.n_types):
                if rep == t:
                    continue
                g_r = hm + prof[rep]
                loc = hists[:, None] + np.zeros((1, mm), dtype=np.int64)
                r = [loc, loc[:, :, None], loc]
                c = [cu(i, g_t), cq(g_r[:, :, None], acts), cx(i, g_r)]
                v = [pm, -pm[:, :, None] * ag.valuation[t][None, None, :], pm]
                # continuation: the lie at g_r, the agent's next type from F_i(.|t, a) (the child of g_t's weights)
                gi_t, gi_r = g_t[:hist_inner], g_r[:hist_inner]
                w = joint[kids[gi_t]]  # (H', M, A, K)
                nodes_r = kids[gi_r][..., None] * k + np.arange(k)  # (H', M, A, K)
                r.append(loc[:hist_inner, :, None, None] + np.zeros((1, 1, na, k), dtype=np.int64))
                c.append(cu(i, nodes_r))
                v.append(-delta * pm[:hist_inner, :, None, None] * w)
                rows.add("ic", nh, *_flat(r, c, v), 0.0, np.inf)
        # IR
        if ir in ("interim", "ex_ante"):
            hi_ = hists if ir == "interim" else hists[:1]
            for t in range(ag.n_types):
                rows.pi_term(
                    "ir",
                    hi_,
                    -outside[i][t],
                    0.0,
                    np.inf,
                    hi_[:, None] + np.zeros((1, prof.shape[1]), dtype=np.int64),
                    cu(i, hi_[:, None] * k + prof[t]),
                    pm[hi_],
                )
        elif ir == "ex_post":
            rows.pi_term(
                "ir", node_hist, -outside[i][types[node_prof, i]], 0.0, np.inf, np.arange(nn), cu(i, nodes), 1.0
            )
    if budget in ("interim", "ex_ante"):
        hb = hists if budget == "interim" else hists[:1]
        rows.add(
            "budget",
            hb.size,
            hb[:, None] + np.zeros((1, k), dtype=np.int64),
            cb(hb[:, None] * k + np.arange(k)),
            joint[hb],
            0.0,
            np.inf,
        )
    elif budget == "ex_post":  # sum_i xt_i(g) = 0: pi(h) times the balance of every node
        rows.add("budget", nn, np.tile(nodes, n), np.concatenate([cx(i, nodes) for i in range(n)]), 1.0, 0.0, 0.0)
    if transfer_bound is not None:
        for i in range(n):
            rows.pi_term("transfer_bound", node_hist, -transfer_bound, -np.inf, 0.0, np.arange(nn), cx(i, nodes), 1.0)
            rows.pi_term("transfer_bound", node_hist, transfer_bound, 0.0, np.inf, np.arange(nn), cx(i, nodes), 1.0)
    a, lo, hi, fam = rows.matrix(n_cols)
    col_lo = np.full(n_cols, -np.inf)
    col_lo[: nn * na] = 0.0
    cost = np.zeros(n_cols)
    root = np.arange(k)
    cost[cb(root)] -= joint[0]
    if objective != "revenue":
        for i in range(n):
            cost[cu(i, root)] -= joint[0]
    return LearningProgram(space, a, lo, hi, col_lo, np.full(n_cols, np.inf), cost, fam, time.perf_counter() - started)


def _flat(rows: list, cols: list, vals: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate broadcast triplet pieces."""
    out = [np.broadcast_arrays(r, c, v) for r, c, v in zip(rows, cols, vals, strict=True)]
    return tuple(np.concatenate([np.ravel(p[j]) for p in out]) for j in range(3))


# ---------------------------------------------------------------------------------------------- values
def first_best_learning(space: ActionTree) -> tuple[float, np.ndarray]:
    r"""The first best on the tree: ``(welfare, allocation)`` of the dynamic programme
    :math:`V(g) = \max_a [\sum_i v_i(\theta_{g,i}, a) + \delta \sum_{\theta'} P(\theta'|\theta_g, a)\,
    V(\text{child}(g, a), \theta')]` (ties to the first action), ignoring incentives and budgets: with learning
    the myopic rule need not be first best."""
    env = space.env
    k = env.n_profiles
    joint = independent_product(action_tree_beliefs(space), space.n_hist)
    total = sum(ag.valuation[env.profile_types()[:, i]] for i, ag in enumerate(env.agents))  # (K, A)
    vals = np.zeros(space.n_nodes)
    alloc = np.zeros((space.n_nodes, space.n_actions))
    for a, b in reversed(space.levels()):  # depth levels, deepest first
        g = np.arange(a * k, b * k)
        q = total[g % k].copy()
        kh = space.child_hist[g]
        if kh[0, 0] >= 0:
            q += env.discount * np.einsum("gak,gak->ga", vals[kh[:, :, None] * k + np.arange(k)], joint[kh])
        best = np.argmax(q, axis=1)
        alloc[g, best] = 1.0
        vals[g] = q[np.arange(g.size), best]
    return float(joint[0] @ vals[:k]), alloc


def welfare_learning(mech: ActionMechanism) -> float:
    """Expected discounted welfare from the root of a mechanism on an ActionTree (transfers cancel)."""
    k = mech.env.n_profiles
    joint0 = independent_product([m[:1] for m in action_tree_beliefs(mech.space)], 1)[0]
    return float(joint0 @ (mech.utilities().sum(axis=0) + mech.designer_values())[:k])


def revenue_learning(mech: ActionMechanism) -> float:
    r""":math:`\Pi(\text{root}) = \sum_\theta P(\theta|\text{root})\, B(\text{root}, \theta)`."""
    k = mech.env.n_profiles
    joint0 = independent_product([m[:1] for m in action_tree_beliefs(mech.space)], 1)[0]
    return float(joint0 @ mech.designer_values()[:k])


def recover_mechanism(program: LearningProgram, z: np.ndarray) -> tuple[ActionMechanism, np.ndarray]:
    r"""``(mechanism, reach)`` from an LP point: :math:`p = q/\pi`, :math:`x = \tilde x/\pi` where
    :math:`\pi(h) > \text{tolerances.PROBABILITY}`; elsewhere the first action and ``x = 0`` (never reached)."""
    space = program.space
    k = space.env.n_profiles
    parts = program.split(z)
    q = np.clip(parts["q"], 0.0, None)
    pi = np.empty(space.n_hist)
    pi[0] = 1.0
    pi[1:] = q.reshape(-1)[: space.n_hist - 1]
    pi_node = np.repeat(pi, k)
    reached = pi_node > tolerances.PROBABILITY
    p = np.zeros_like(q)
    p[:, 0] = 1.0  # the status quo where nothing is reached
    p[reached] = q[reached] / q[reached].sum(axis=1, keepdims=True)
    x = np.zeros_like(parts["xt"])
    x[:, reached] = parts["xt"][:, reached] / pi_node[reached]
    mech = ActionMechanism(space, p, x)
    return mech, action_reach(space, mech.allocation)


def scaled_point(program: LearningProgram, mech: ActionMechanism) -> np.ndarray:
    """The LP point of a mechanism: :math:`(\\pi p, \\pi U, \\pi x, \\pi B)` (``pi`` from its own allocation)."""
    k = mech.env.n_profiles
    pi = np.repeat(action_reach(mech.space, mech.allocation), k)
    return program.stack(
        pi[:, None] * mech.allocation, pi * mech.utilities(), pi * mech.transfers, pi * mech.designer_values()
    )


# ---------------------------------------------------------------------------------------------- result
@dataclass
class LearningResult:
    """The answer of :func:`second_best_learning`.

    Attributes
    ----------
    status : str
        ``"not_proved"`` (solved and the recovered mechanism passed the check; optimality rests on the float LP:
        no exact optimality certificate for this LP yet, so never ``"optimal"``), ``"not_attained"`` (solved, but the
        recovered mechanism fails a row: the LP placed transfers at unreached histories, module docstring; without
        ``transfer_bound`` the re-solve with a bound is returned instead, ``method["relaxation_value"]``),
        ``"verification_failed"``, or the solver's status (``"infeasible"``, ...).
    value : float or None
        The objective recomputed from the recovered mechanism (``lp_value`` is the solver's).
    first_best : float
        The first-best welfare on the tree (minus the status quo for gains from trade).
    mechanism : ActionMechanism or None
    reach : ndarray (n_hist,) or None
        :math:`\\pi(h)` of the answer.
    method : dict
        ``verifier`` (``"verify_realised"``), ``min_slack`` (the LP rows at the answer, per family), LP sizes.
    """

    status: str
    objective: str
    value: float | None = None
    lp_value: float | None = None
    first_best: float | None = None
    welfare: float | None = None
    revenue: float | None = None
    mechanism: ActionMechanism | None = None
    reach: np.ndarray | None = field(default=None, repr=False)
    space: ActionTree | None = field(default=None, repr=False)
    message: str = ""
    method: dict = field(default_factory=dict)
    certificate: Any = field(default=None, repr=False)

    #: no dual certificate yet (the fields the ``second-best`` command reads)
    dual: Any = None

    @property
    def allocation(self) -> np.ndarray | None:
        return None if self.mechanism is None else self.mechanism.allocation

    @property
    def env(self) -> Environment | None:
        return None if self.space is None else self.space.env

    @property
    def verification(self) -> Any:
        """The :func:`mechlp.audit.realised.verify_realised` answer (``certificate``)."""
        return self.certificate

    def allocation_table(self, histories=None) -> list[dict]:
        r"""``[{"history", "where", "profile", "reach", "p": {action: prob}}]`` for the given histories (default:
        the reached ones, :math:`\pi(h) > 0`)."""
        if self.mechanism is None:
            return []
        env, space = self.space.env, self.space
        k = env.n_profiles
        hs = np.flatnonzero(self.reach > tolerances.PROBABILITY) if histories is None else histories
        return [
            {
                "history": int(h),
                "where": space.describe_history(int(h)),
                "profile": env.profile_labels(s),
                "reach": float(self.reach[int(h)]),
                "p": dict(zip(env.actions, map(float, self.allocation[int(h) * k + s]), strict=True)),
            }
            for h in hs
            for s in range(k)
        ]


def second_best_learning(
    env: Environment,
    *,
    objective: str = "welfare",
    budget: str = "interim",
    ir: str = "interim",
    outside_option: Any = 0.0,
    horizon: int | None = None,
    transfer_bound: float | None = None,
    backend: str = "highs",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    **solver_options,
) -> LearningResult:
    r"""Second best (``objective="welfare"`` / ``"gains_from_trade"``) or the revenue-optimal mechanism
    (``"revenue"``) among mechanisms that record the realised actions (module docstring), Bayesian IC.

    Parameters
    ----------
    env : Environment
        Independent types; kernels may depend on the action. Finite horizon, or ``horizon`` given.
    objective : {"welfare", "gains_from_trade", "revenue"}
    budget : {"interim", "ex_ante", "ex_post", "none"}
    ir : {"interim", "ex_post", "ex_ante"}
    outside_option
        As in :func:`mechlp.model.question.outside_options`.
    horizon : int, optional
        Number of periods (default ``env.horizon``; required when it is infinite).
    transfer_bound : float, optional
        :math:`|x_i(g)| \le M` (scaled: :math:`|\tilde x_i(g)| \le M \pi(h)`): rules out transfers at
        unreached histories (module docstring).
    backend, **solver_options
        As in :func:`mechlp.backends.solve_arrays`.
    """
    check_choice("objective", objective, LEARNING_OBJECTIVES)
    check_backend(backend)
    space = ActionTree(env, horizon, memory_limit=memory_limit)
    prog = build_learning_lp(
        space, objective=objective, budget=budget, ir=ir, outside_option=outside_option, transfer_bound=transfer_bound
    )
    fb, _ = first_best_learning(space)
    status_quo = np.zeros((space.n_nodes, space.n_actions))
    status_quo[:, 0] = 1.0
    shift = (
        welfare_learning(ActionMechanism(space, status_quo, np.zeros((env.n_agents, space.n_nodes))))
        if objective == "gains_from_trade"
        else 0.0
    )
    method = {"rows": prog.n_rows, "cols": prog.n_cols, "nnz": prog.nnz, "build_seconds": prog.build_seconds}
    out = solve_arrays(
        prog.A, prog.row_lower, prog.row_upper, prog.col_lower, prog.col_upper, prog.cost, backend, **solver_options
    )
    method["solve_seconds"] = out.solve_seconds
    res = LearningResult(out.status, objective, first_best=fb - shift, space=space, method=method)
    if out.status != "optimal":
        res.message = f"the learning LP returned {out.status}: {out.message}"
        return res
    res.lp_value = float(-(prog.cost @ out.x)) - shift
    mech, reach = recover_mechanism(prog, out.x)
    res.mechanism, res.reach = mech, reach
    res.welfare = welfare_learning(mech)
    res.revenue = revenue_learning(mech)
    res.value = res.revenue if objective == "revenue" else res.welfare - shift
    # ---- verification: the independent verifier, and the LP rows at the mechanism's own scaled point
    # (pi p, pi U, pi x, pi B), which tell an unattained relaxation from a defect
    slack = prog.min_slack(scaled_point(prog, mech))
    method["min_slack"] = slack
    tol = tolerances.FEASIBILITY
    cert = verify_realised(mech, ic="bayesian", ir=ir, budget=budget, outside_option=outside_option)
    res.certificate = cert
    method["verifier"] = "verify_realised"
    ok = bool(cert.ok)
    gap = abs(res.value - res.lp_value)
    name = {"welfare": "welfare", "gains_from_trade": "gains from trade", "revenue": "revenue"}[objective]
    res.message = (
        f"optimal {name} = {res.value:.10g} (realised-action tree, horizon {space.horizon}; first best "
        f"{res.first_best:.10g}; LP {res.lp_value:.10g}); budget {budget}, IR {ir}; "
        f"{prog.n_rows:,} rows x {prog.n_cols:,} columns"
    )
    rows_ok = min(slack.values()) >= -tol * (1.0 + abs(res.value))
    if not ok or gap > tol * (1.0 + abs(res.lp_value)):
        # the LP rows fail at the mechanism's own point: the LP used transfers at unreached histories (a supremum);
        # they hold but the verifier (or the value) disagrees: a defect to report
        res.status = "not_attained" if not rows_ok or gap > tol * (1.0 + abs(res.lp_value)) else "verification_failed"
        res.message += (
            f"; the recovered mechanism fails the check (min LP-row slack {min(slack.values()):.3g}, value gap "
            f"{gap:.3g})"
            + (
                ": the LP value is a supremum over mechanisms (transfers at unreached histories); give transfer_bound"
                if res.status == "not_attained"
                else "; " + cert.summary()
            )
        )
    else:
        # verified, but no exact optimality certificate for the realised-action LP yet: its own status
        res.status = "not_proved"
        res.message += (
            f"; mechanism verified ({method['verifier']}); optimality NOT proved exactly: it rests on the float LP "
            "(no exact optimality certificate for the realised-action LP yet)"
        )
    if res.status == "not_attained" and transfer_bound is None:
        # re-solve with |x| <= M (exact: no transfers at unreached histories). The first LP is a relaxation of
        # every mechanism, so a verified answer of the bounded LP with the same value is optimal among all.
        vmax = max(float(np.abs(ag.valuation).max()) for ag in env.agents)
        bound = RETRY_TRANSFER_BOUND * (1.0 + vmax * space.horizon)
        again = second_best_learning(
            env,
            objective=objective,
            budget=budget,
            ir=ir,
            outside_option=outside_option,
            horizon=space.horizon,
            transfer_bound=bound,
            backend=backend,
            memory_limit=memory_limit,
            **solver_options,
        )
        again.method["relaxation_value"] = res.lp_value
        if again.status == "not_proved":  # the bounded LP's answer passed the verifier
            same = again.value >= res.lp_value - tol * (1.0 + abs(res.lp_value))
            again.message += (
                f"; re-solved with |x| <= {bound:g} after the unbounded LP placed transfers at unreached histories: "
                + (
                    "the same value, so optimal among all mechanisms"
                    if same
                    else f"the unbounded supremum {res.lp_value:.10g} is not attained (optimal for |x| <= {bound:g})"
                )
            )
            again.method["unbounded_optimal"] = bool(same)
        return again
    return res

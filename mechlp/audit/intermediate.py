r"""Impossibility certificates for the intermediate mechanism (Lamba 2022, section 7.2), checked independently.

The rows are those of :func:`mechlp.audit.verifier.verify_intermediate`, recomputed here in either arithmetic
(floats or exact rationals, :class:`~mechlp.model.exact.Numbers`) from the model's priors, kernels and values on a
:class:`~mechlp.model.signals.SignalSpace`; this module never sees LP rows. With every row written
``slack_r(x) >= 0`` as functions of the payments :math:`x_i(I, r, a)` alone (interim utilities by backward recursion
over each agent's information histories, the designer's :math:`\Pi(h)` by backward recursion over her tree),

* IC: :math:`\bar U_i(I,t) - \text{dev}_i(I,t,r)` for every information history ``I`` and ``t != r``;
* IR: :math:`\bar U_i(I,t) - \underline u_i(t)` at every ``I`` (``"interim"``) or the first period (``"ex_ante"``);
* budget: :math:`\Pi(h)` at every designer history (``"interim"``) or the root (``"ex_ante"``),

a certificate is ``y >= 0`` over these rows with :math:`L(x) = \sum_r y_r\,\text{slack}_r(x) = -\gamma < 0` for
*every* payment schedule ``x``. Each slack is affine in ``x``; :func:`intermediate_affine` evaluates all of them at
``x = 0`` and at every unit payment (one batched forward pass, the batch being the payment coordinates), so
:func:`check_intermediate_impossibility` computes every coefficient of ``L`` and its constant, exactly in rational
mode: a proof, not a probe. An ex post budget question is certified by interim rows (ex post balance makes every
:math:`\Pi(h)` zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, Violation, _Block, _summarise
from mechlp.model import tolerances
from mechlp.model.beliefs import joint_beliefs, others_beliefs, reach_probabilities
from mechlp.model.exact import Numbers, Rational, solve_exact, to_fractions
from mechlp.model.question import outside_options, parse_notion

__all__ = [
    "IntermediateCertificate",
    "intermediate_affine",
    "markov_intermediate_affine",
    "verify_markov_intermediate",
    "check_intermediate_impossibility",
    "CERTIFICATE_COORDINATES",
]

#: Largest number of payment coordinates (sum over agents of information nodes) a certificate is checked on:
#: the check evaluates every row at every unit payment.
CERTIFICATE_COORDINATES = 5000


def _zeros(shape: tuple[int, ...], exact: bool) -> np.ndarray:
    if exact:
        out = np.empty(shape, dtype=object)
        out.fill(Rational(0))
        return out
    return np.zeros(shape)


def _linear_solve(mat: np.ndarray, rhs: np.ndarray, exact: bool) -> np.ndarray:
    """``X`` with ``mat @ X = rhs`` (``rhs`` ``(n, batch)``), in rationals or floats."""
    if exact:
        return solve_exact(mat, rhs.T).T
    return np.linalg.solve(np.asarray(mat, dtype=float), np.asarray(rhs, dtype=float))


def _eye(n: int, exact: bool) -> np.ndarray:
    out = _zeros((n, n), exact)
    out[np.arange(n), np.arange(n)] = Rational(1) if exact else 1.0
    return out


def markov_intermediate_affine(
    space: Any, ir: str, budget: str, outside_option: Any = 0.0, exact: bool = False, payments: list | None = None
) -> dict:
    r"""The rows of the infinite-horizon intermediate mechanism (:class:`~mechlp.model.signals.MarkovSignalSpace`)
    at ``x = 0`` and at every unit payment (or at ``payments``: per agent ``(n_states * S_i, batch)``).

    Recomputed from the model: the others' kernel :math:`G_i(m'|m)` and first-period belief from the priors and
    kernels, the values :math:`V_i(s,t,m)` of truth-telling by solving
    :math:`V = v - x + \delta P V` on the chain over ``(s, t, m)`` (next state ``1 + t|A| + a(t,m)``), IC and IR at
    each belief row of the space (state, belief), and the designer's :math:`\Pi` by solving her recursion on the
    Markov space. Same return layout as :func:`intermediate_affine` (IC/IR rows indexed by belief row).
    """
    ir = parse_notion("ir", ir, allowed=("interim", "ex_ante"))
    budget = parse_notion("budget", budget, allowed=("interim", "ex_ante", "none"))
    env = space.env
    tree = space.tree
    n_act, k = env.n_actions, env.n_profiles
    nums = Numbers(env, exact=exact)
    delta = nums.delta
    conv = (lambda a: to_fractions(a)) if exact else (lambda a: np.asarray(a, dtype=float))
    outside = [nums.array(o) for o in outside_options(outside_option, env)]
    xs = _unit_payments(space, exact) if payments is None else [conv(np.asarray(p)) for p in payments]
    n_batch = xs[0].shape[1]
    act = np.argmax(env.allocation, axis=1)  # deterministic allocation: the action of each profile
    out: dict[str, Any] = {"ic": {}, "ir": {}, "n_coordinates": n_batch - 1 if payments is None else 0}
    x_nodes = []
    for i, ag in enumerate(env.agents):  # agents, types, reports
        ki, n_sig, n_st = ag.n_types, space.n_signals[i], space.n_states[i]
        m_count = env.others_count(i)
        pidx = env.profile_index(i, np.arange(ki)[:, None], np.arange(m_count)[None, :])  # (K_i, M)
        a_rm = act[pidx]
        # the others' kernel from their own kernels (C order over the others), and their prior
        g = np.ones((1, 1), dtype=object if exact else float)
        b0 = np.ones(1, dtype=object if exact else float)
        for j, other in enumerate(env.agents):
            if j != i:
                g = np.einsum("ab,cd->acbd", g, nums.kernels[j][0]).reshape(g.shape[0] * other.n_types, -1)
                b0 = np.multiply.outer(b0, nums.priors[j]).reshape(-1)
        f = nums.kernels[i][0]  # (K_i, K_i)
        x = xs[i].reshape(n_st, n_sig, n_batch)
        x_nodes.append(xs[i][space.info_node[i]])
        n_v = n_st * ki * m_count

        def vid(s, t, m, ki=ki, m_count=m_count):
            return (np.asarray(s) * ki + np.asarray(t)) * m_count + np.asarray(m)

        # truthful chain: V(s,t,m) = v(t,a) - x(s,t,a) + delta sum F(t'|t) G(m'|m) V(1 + t|A| + a, t', m')
        mat = _eye(n_v, exact)
        rhs = _zeros((n_v, n_batch), exact)
        s_, t_, m_ = np.meshgrid(np.arange(n_st), np.arange(ki), np.arange(m_count), indexing="ij")
        s_, t_, m_ = s_.reshape(-1), t_.reshape(-1), m_.reshape(-1)
        a_ = a_rm[t_, m_]
        row = vid(s_, t_, m_)
        nxt = 1 + t_ * n_act + a_
        t2, m2 = np.meshgrid(np.arange(ki), np.arange(m_count), indexing="ij")
        t2, m2 = t2.reshape(-1), m2.reshape(-1)
        coef = f[t_][:, t2] * g[m_][:, m2]  # (n_v, K_i M)
        np.add.at(
            mat,
            (np.repeat(row, t2.size), vid(np.repeat(nxt, t2.size), np.tile(t2, row.size), np.tile(m2, row.size))),
            -delta * coef.reshape(-1),
        )
        rhs[row] = nums.valuation[i][t_, a_][:, None] - x[s_, t_ * n_act + a_]
        v = _linear_solve(mat, rhs, exact)  # (n_v, batch)
        bel = _belief_rows(space, i, g, b0, a_rm, exact)  # (n_info, M), recomputed and checked here
        s_b = space.belief_state[i]
        truth = _zeros((space.n_info[i], ki, n_batch), exact)
        for t in range(ki):
            truth[:, t] = sum(bel[:, m][:, None] * v[vid(s_b, t, m)] for m in range(m_count))
        for t in range(ki):
            for r in range(ki):
                if r == t:
                    continue
                dev = _zeros((space.n_info[i], n_batch), exact)
                for m in range(m_count):  # others' profiles
                    a = a_rm[r, m]
                    nx = 1 + r * n_act + a
                    cont = sum(
                        f[t, t3] * g[m, m3] * v[vid(nx, t3, m3)][None, :] for t3 in range(ki) for m3 in range(m_count)
                    )
                    dev = dev + bel[:, m][:, None] * (nums.valuation[i][t, a] - x[s_b, r * n_act + a] + delta * cont)
                out["ic"][(i, t, r)] = truth[:, t] - dev
        rows = truth if ir == "interim" else truth[s_b == 0]
        out["ir"][i] = rows - outside[i][None, :, None]
    # designer on the Markov space: B(d, theta) = sum_i x_i + delta sum_theta' P(theta'|theta) B(theta, theta')
    joint = joint_beliefs(tree, nums)  # (1 + K, K)
    collected = sum(x_nodes[1:], x_nodes[0])
    n_nodes = tree.n_nodes
    mat = _eye(n_nodes, exact)
    nodes = np.arange(n_nodes)
    kid = tree.child_hist[nodes]
    kid_nodes = kid[:, None] * k + np.arange(k)[None, :]
    np.add.at(mat, (np.repeat(nodes, k), kid_nodes.reshape(-1)), -delta * joint[kid].reshape(-1))
    b = _linear_solve(mat, collected, exact)
    hists = np.arange(tree.n_hist if budget == "interim" else (1 if budget == "ex_ante" else 0))
    node_of = hists[:, None] * k + np.arange(k)[None, :]
    out["budget"] = (joint[hists][:, :, None] * b[node_of]).sum(axis=1) if hists.size else _zeros((0, n_batch), exact)
    return out


def _belief_rows(space: Any, i: int, g: np.ndarray, b0: np.ndarray, a_rm: np.ndarray, exact: bool) -> np.ndarray:
    r"""The space's belief rows of agent ``i``, recomputed by this module's own filter in the arithmetic asked for.

    Follows the filter :math:`b \mapsto (b \odot 1[a(r,\cdot)=a]) G / (b \cdot 1[a(r, \cdot) = a])` from the
    first-period belief ``b0``, keeping per signal state the lowest and highest belief that the others are at
    profile 1, until no image leaves the current intervals (then every reachable belief lies in them, see
    :class:`~mechlp.model.signals.MarkovSignalSpace`). ``ValueError`` when the result does not match the space's
    rows (within ``tolerances.PROBABILITY``) or is not closed after ``2 * max(space.depth) + 2`` periods.
    """
    n_act = space.env.n_actions
    ki = space.env.agents[i].n_types
    ext = {0: (b0[1], b0[1])}
    frontier = [b0[1]]
    one = Rational(1) if exact else 1.0
    limit = 2 * max(space.depth) + 2
    for _ in range(limit):  # periods of filtering
        if not frontier:
            break
        new = []
        for p1 in frontier:  # new extreme beliefs of the last period
            b = np.array([one - p1, p1], dtype=object if exact else float)
            for r in range(ki):
                for a in range(n_act):
                    mask = a_rm[r] == a
                    w = b[mask].sum()
                    if w == 0:
                        continue
                    q = (b * mask) @ g[:, 1] / w
                    s2 = 1 + r * n_act + a
                    lo, hi = ext.get(s2, (None, None))
                    if lo is None or q < lo or q > hi:
                        ext[s2] = (q if lo is None else min(lo, q), q if hi is None else max(hi, q))
                        new.append(q)
        frontier = new
    if frontier:
        raise ValueError(f"belief rows of agent {i}: the filter is not closed after {limit} periods")
    want = space.beliefs[i][:, 1]
    got = []
    for s, q in zip(space.belief_state[i], want, strict=True):  # the space's rows
        lo, hi = ext.get(int(s), (None, None))
        if lo is None:
            raise ValueError(f"belief rows of agent {i}: state {int(s)} is not reachable")
        best = lo if abs(float(lo) - q) <= abs(float(hi) - q) else hi
        if abs(float(best) - q) > tolerances.PROBABILITY:
            raise ValueError(f"belief rows of agent {i}: the space's belief {q} at state {int(s)} is not an extreme")
        got.append(best)
    for s, (lo, hi) in ext.items():  # every extreme of this filter must be a row of the space
        have = want[space.belief_state[i] == s]
        for q in (lo, hi):
            if have.size == 0 or np.min(np.abs(have - float(q))) > tolerances.PROBABILITY:
                raise ValueError(f"belief rows of agent {i}: state {s}'s extreme belief {float(q)} is missing")
    col = np.array(got, dtype=object if exact else float)
    return np.stack([one - col, col], axis=1)


def verify_markov_intermediate(
    space: Any,
    transfers: list[np.ndarray],
    *,
    ir: str = "interim",
    budget: str = "interim",
    outside_option: Any = 0.0,
    tol: float = tolerances.FEASIBILITY,
    exact: bool = False,
) -> Verification:
    """Verify an infinite-horizon intermediate mechanism: ``transfers[i]`` ``(n_states, S_i)`` is
    :math:`x_i(s, r, a)`; rows of :func:`markov_intermediate_affine` (IC and IR at every belief row, which covers
    every reachable belief by the space's hull argument; budget at every designer state). Ex post budget balance
    is checked node by node on the Markov space."""
    env = space.env
    pay = []
    for i in range(env.n_agents):
        x = np.asarray(transfers[i])
        want = (space.n_states[i], space.n_signals[i])
        if x.shape != want:
            raise ValueError(f"transfers[{i}] (agent {env.agents[i].name!r}) has shape {x.shape}; expected {want}")
        pay.append(x.reshape(-1, 1))
    rows_budget = "none" if budget in ("none", "ex_post") else budget
    rows = markov_intermediate_affine(space, ir, rows_budget, outside_option, exact=exact, payments=pay)
    families: dict[str, list[_Block]] = {"ic": [], "ir": []}
    for (i, t, r), slack in rows["ic"].items():

        def describe(f: int, v: float, i=i, t=t, r=r) -> Violation:
            ag = env.agents[i]
            return Violation(
                "ic", ag.name, int(f), space.describe_info(i, int(f)), ag.types[t], ag.types[r], None, float(v)
            )

        families["ic"].append(_Block("ic", slack[:, 0], describe, lambda f: f, (i, t, r)))
    for i, slack in rows["ir"].items():
        ki = env.agents[i].n_types

        def describe_ir(f: int, v: float, i=i, ki=ki) -> Violation:
            row, t = divmod(int(f), ki)
            ag = env.agents[i]
            return Violation("ir", ag.name, row, space.describe_info(i, row), ag.types[t], None, None, float(v))

        families["ir"].append(_Block("ir", slack[..., 0], describe_ir, lambda f, ki=ki: f // ki, (i,)))
    if budget == "ex_post":
        coll = sum(np.asarray(p[space.info_node[i], 0], dtype=float) for i, p in enumerate(pay))
        slack = -np.abs(coll)

        def describe_b(f: int, v: float) -> Violation:
            h = int(f) // env.n_profiles
            return Violation("budget", None, h, space.describe_history(h), None, None, None, float(v))

        families["budget"] = [_Block("budget", slack, describe_b, lambda f: f // env.n_profiles)]
    elif budget != "none":

        def describe_pi(f: int, v: float) -> Violation:
            return Violation("budget", None, int(f), space.describe_history(int(f)), None, None, None, float(v))

        families["budget"] = [_Block("budget", rows["budget"][:, 0], describe_pi, lambda f: f)]
    max_violation, worst, binding, n_binding, n_rows = {}, {}, {}, {}, {}
    for fam, blocks in families.items():
        mv, wr, bind, nb, nr = _summarise(blocks, tolerances.BINDING)
        max_violation[fam], worst[fam], binding[fam], n_binding[fam] = float(mv), wr, bind, nb
        n_rows[fam] = nr
    ok = all(v <= tol for v in max_violation.values())
    options = {
        "ic": "intermediate (last-signal, infinite horizon)",
        "ir": ir,
        "budget": budget,
        "outside_option": outside_option
        if isinstance(outside_option, str)
        else np.asarray(outside_option, dtype=float).tolist(),
        "exact": exact,
        "max_denominator": None,
    }
    return Verification(ok, float(tol), max_violation, worst, binding, n_binding, n_rows, options)


def _unit_payments(space: Any, exact: bool) -> list[np.ndarray]:
    """Per agent ``(n_info * S_i, 1 + n)`` payments: column 0 is ``x = 0``, column ``1 + j`` the ``j``-th unit
    payment over all agents' coordinates (agent 0's first)."""
    states = space.n_states if space.kind == "signal_markov" else space.n_info
    sizes = [states[i] * space.n_signals[i] for i in range(space.env.n_agents)]
    n = sum(sizes)
    out, start = [], 0
    for s in sizes:
        x = _zeros((s, 1 + n), exact)
        x[np.arange(s), 1 + start + np.arange(s)] = Rational(1) if exact else 1.0
        out.append(x)
        start += s
    return out


def intermediate_affine(space: Any, ir: str, budget: str, outside_option: Any = 0.0, exact: bool = False) -> dict:
    """Dispatch: :func:`markov_intermediate_affine` on a ``MarkovSignalSpace``, the tree rows otherwise."""
    if space.kind == "signal_markov":
        return markov_intermediate_affine(space, ir, budget, outside_option, exact)
    return _tree_affine(space, ir, budget, outside_option, exact)


def _tree_affine(space: Any, ir: str, budget: str, outside_option: Any = 0.0, exact: bool = False) -> dict:
    r"""Every row's slack at ``x = 0`` and at every unit payment: the affine maps of the module docstring.

    Returns
    -------
    dict
        ``"ic"``: ``{(agent, t, r): (n_info, 1 + n)}``, ``"ir"``: ``{agent: (n_ir, K_i, 1 + n)}``,
        ``"budget"``: ``(n_budget, 1 + n)`` (empty for ``"none"``); column 0 is the constant, column ``1 + j``
        the constant plus the coefficient of coordinate ``j``. ``"n_coordinates"``: ``n``.
    """
    ir = parse_notion("ir", ir, allowed=("interim", "ex_ante"))
    budget = parse_notion("budget", budget, allowed=("interim", "ex_ante", "none"))
    env = space.env
    tree = space.tree
    n_act, k = env.n_actions, env.n_profiles
    nums = Numbers(env, exact=exact)
    delta = nums.delta
    outside = [nums.array(o) for o in outside_options(outside_option, env)]
    reach = reach_probabilities(tree, nums)
    xs = _unit_payments(space, exact)
    n_batch = xs[0].shape[1]
    one = Rational(1) if exact else 1.0
    out: dict[str, Any] = {"ic": {}, "ir": {}, "n_coordinates": n_batch - 1}
    x_nodes = []
    for i, ag in enumerate(env.agents):  # loops over agents, levels, types and actions
        ki, n_sig, n_info = ag.n_types, space.n_signals[i], space.n_info[i]
        x = xs[i].reshape(n_info, n_sig, n_batch)
        x_nodes.append(xs[i][space.info_node[i]])
        po = others_beliefs(tree, i, nums)  # (H, M): the designer's P(theta_-i | h)
        ids = space.info_hist[i]
        mass = _zeros((n_info,), exact)
        np.add.at(mass, ids, reach)
        w = np.where(mass[ids] > 0, reach, one)  # uniform over the members of a null information history
        post = _zeros((n_info, po.shape[1]), exact)
        np.add.at(post, ids, w[:, None] * po)
        post = post / post.sum(axis=1, keepdims=True)
        m_count = po.shape[1]
        pidx = env.profile_index(i, np.arange(ki)[:, None], np.arange(m_count)[None, :])  # (K_i, M)
        alloc = nums.alloc[pidx]  # (K_i, M, A)
        prob = (post[:, None, :, None] * alloc[None, :, :, :]).sum(axis=2)  # (n_info, K_i, A)
        kern = nums.kernels[i]  # (A, K_i, K_i)
        child = space.info_child[i].reshape(n_info, ki, n_act)
        ubar = _zeros((n_info, ki, n_batch), exact)
        dev = _zeros((n_info, ki, ki, n_batch), exact)  # [I, true t, report r, batch]
        starts = space.info_level_start[i]
        for lo, hi in reversed(list(zip(starts[:-1], starts[1:], strict=True))):  # deepest level first
            info = np.arange(lo, hi)
            for t in range(ki):
                for r in range(ki):
                    val = _zeros((info.size, n_batch), exact)
                    for a in range(n_act):
                        p = prob[info, r, a][:, None]
                        kid = child[info, r, a]
                        cont = _zeros((info.size, n_batch), exact)
                        ok = kid >= 0
                        if ok.any():
                            cont[ok] = (ubar[kid[ok]] * kern[a, t][None, :, None]).sum(axis=1)
                        val = val + p * (nums.valuation[i][t, a] - x[info, r * n_act + a] + delta * cont)
                    dev[info, t, r] = val
            ubar[info] = dev[info][:, np.arange(ki), np.arange(ki)]
        for t in range(ki):
            for r in range(ki):
                if t != r:
                    out["ic"][(i, t, r)] = ubar[:, t] - dev[:, t, r]
        rows = ubar if ir == "interim" else ubar[:1]
        out["ir"][i] = rows - outside[i][None, :, None]
    # the designer: B(g) = sum_i x_i(g) + delta sum_theta' P(theta'|g) B(g theta'), Pi(h) = sum_theta P(theta|h) B
    joint = joint_beliefs(tree, nums)  # (H, K)
    collected = sum(x_nodes[1:], x_nodes[0])  # (n_nodes, batch)
    b = _zeros((tree.n_nodes, n_batch), exact)
    levels = tree.levels()
    for lo, hi in reversed(levels):  # depth levels, deepest first
        nodes = (np.arange(lo, hi)[:, None] * k + np.arange(k)[None, :]).reshape(-1)
        val = collected[nodes]
        kid = tree.child_hist[nodes]
        ok = kid >= 0
        if ok.any():
            kid_nodes = kid[ok][:, None] * k + np.arange(k)[None, :]  # (E, K)
            cont = (joint[kid[ok]][:, :, None] * b[kid_nodes]).sum(axis=1)
            val = val.copy()
            val[ok] = val[ok] + delta * cont
        b[nodes] = val
    hists = np.arange(tree.n_hist if budget == "interim" else (1 if budget == "ex_ante" else 0))
    node_of = hists[:, None] * k + np.arange(k)[None, :]
    out["budget"] = (joint[hists][:, :, None] * b[node_of]).sum(axis=1) if hists.size else _zeros((0, n_batch), exact)
    return out


@dataclass
class IntermediateCertificate:
    r"""Farkas multipliers proving that no intermediate mechanism on ``space`` satisfies IC, IR and the budget.

    Attributes
    ----------
    space : SignalSpace
    options : dict
        ``ir``, ``budget`` (the rows used: ``"interim"`` or ``"ex_ante"``), ``question_budget`` (the notion asked
        about) and ``outside_option``.
    gamma : Fraction
        :math:`-L`, the amount by which every mechanism misses.
    ic : dict
        ``(agent, t, r) -> (n_info,)`` multipliers (rationals, or floats for a float certificate).
    ir : dict
        ``agent -> (n_ir, K_i)``.
    budget : ndarray
        ``(n_budget,)`` over designer histories (all, or the root for ``"ex_ante"``).
    exact : bool
        Whether the multipliers are exact rationals (recomputed on the support) or the solver's floats.
    checks : dict
        ``"float"`` / ``"exact"`` results of :func:`check_intermediate_impossibility`.
    """

    space: Any
    options: dict
    gamma: Any
    ic: dict
    ir: dict
    budget: np.ndarray
    exact: bool = False
    checks: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON: ``options``, ``gamma`` and ``multipliers``, one entry per positive multiplier, each with the
        family, agent, information history (index and description) or designer history, types and the value as
        an exact fraction string."""
        sp, env = self.space, self.space.env
        entries = []
        for (i, t, r), y in self.ic.items():
            for f in np.flatnonzero(np.asarray(y != 0)):
                ag = env.agents[i]
                entries.append(
                    {
                        "family": "ic",
                        "agent": ag.name,
                        "info": int(f),
                        "where": sp.describe_info(i, int(f)),
                        "type": ag.types[t],
                        "misreport": ag.types[r],
                        "value": str(Fraction(y[f])),
                    }
                )
        for i, y in self.ir.items():
            ag = env.agents[i]
            for f, t in zip(*np.nonzero(np.asarray(y != 0)), strict=True):
                entries.append(
                    {
                        "family": "ir",
                        "agent": ag.name,
                        "info": int(f),
                        "where": sp.describe_info(i, int(f)),
                        "type": ag.types[t],
                        "value": str(Fraction(y[f, t])),
                    }
                )
        for h in np.flatnonzero(np.asarray(self.budget != 0)):
            entries.append(
                {
                    "family": "budget",
                    "history": int(h),
                    "where": sp.describe_history(int(h)),
                    "value": str(Fraction(self.budget[h])),
                }
            )
        return {
            "options": dict(self.options),
            "gamma": str(Fraction(self.gamma)),
            "exact_multipliers": bool(self.exact),
            "multipliers": entries,
        }

    @classmethod
    def from_dict(cls, doc: dict, space: Any) -> IntermediateCertificate:
        """Read :meth:`to_dict` back on ``space`` (rationals, as written); each entry's ``where`` must describe
        the row it indexes, so a file for another space is refused naming the entry."""
        env = space.env
        opts = dict(doc.get("options", {}))
        ir = parse_notion("ir", opts.get("ir", "interim"), allowed=("interim", "ex_ante"))
        budget = parse_notion("budget", opts.get("budget", "interim"), allowed=("interim", "ex_ante"))
        names = {ag.name: i for i, ag in enumerate(env.agents)}
        ic = {
            (i, t, r): np.zeros(space.n_info[i], dtype=object)
            for i, ag in enumerate(env.agents)
            for t in range(ag.n_types)
            for r in range(ag.n_types)
            if t != r
        }
        n_ir = {i: space.n_info[i] if ir == "interim" else 1 for i in range(env.n_agents)}
        irm = {i: np.zeros((n_ir[i], ag.n_types), dtype=object) for i, ag in enumerate(env.agents)}
        n_b = space.tree.n_hist if budget == "interim" else 1
        bud = np.zeros(n_b, dtype=object)
        for j, e in enumerate(doc.get("multipliers", [])):  # entries of the certificate (its support)
            where = f"certificate: multipliers[{j}]"
            fam = e.get("family")
            value = to_fractions([str(e.get("value"))])[0]
            if fam == "budget":
                h = int(e["history"])
                if not 0 <= h < n_b or e.get("where") != space.describe_history(h):
                    raise ValueError(f"{where}: budget row {h} is not {e.get('where')!r} on this space")
                bud[h] = value
                continue
            if fam not in ("ic", "ir") or e.get("agent") not in names:
                raise ValueError(f"{where}: unknown family {fam!r} or agent {e.get('agent')!r}")
            i = names[e["agent"]]
            ag = env.agents[i]
            f = int(e["info"])
            limit = space.n_info[i] if fam == "ic" else n_ir[i]
            if not 0 <= f < limit or e.get("where") != space.describe_info(i, f):
                raise ValueError(f"{where}: information history {f} of {ag.name} is not {e.get('where')!r}")
            if e.get("type") not in ag.types:
                raise ValueError(f"{where}: {ag.name} has no type {e.get('type')!r}")
            t = list(ag.types).index(e["type"])
            if fam == "ic":
                if e.get("misreport") not in ag.types:
                    raise ValueError(f"{where}: {ag.name} has no type {e.get('misreport')!r}")
                r = list(ag.types).index(e["misreport"])
                if r == t:
                    raise ValueError(f"{where}: an IC row needs a misreport other than the type")
                ic[(i, t, r)][f] = value
            else:
                irm[i][f, t] = value
        gamma = to_fractions([str(doc.get("gamma", "0"))])[0]
        opts.update({"ir": ir, "budget": budget})
        return cls(space, opts, gamma, ic, irm, bud, exact=bool(doc.get("exact_multipliers", True)))


def check_intermediate_impossibility(cert: IntermediateCertificate, exact: bool = False) -> dict:
    r"""Verify an intermediate-mechanism certificate: ``y >= 0``, every coefficient of ``L`` zero, ``L(0) < 0``.

    ``L(x) = sum_r y_r slack_r(x)`` is computed from :func:`intermediate_affine` (this module's rows) at ``x = 0``
    and at every unit payment. Exact mode (rationals, model numbers read as written): the coefficients must be
    exactly zero and ``L(0)`` exactly negative, a proof. Floats: the coefficients at most
    ``tolerances.FARKAS_FLOAT_CHECK`` relative to the size of the terms, ``L(0)`` below minus that.

    Returns
    -------
    dict
        ``ok``, ``message``, ``L0`` (float), ``max_deviation`` (largest ``|coefficient|``), ``coordinates``,
        ``nonzero`` and ``exact``.
    """
    sp = cert.space
    states = sp.n_states if sp.kind == "signal_markov" else sp.n_info
    n = sum(states[i] * sp.n_signals[i] for i in range(sp.env.n_agents))
    if n > CERTIFICATE_COORDINATES:
        raise ValueError(
            f"check_intermediate_impossibility: {n} payment coordinates exceed CERTIFICATE_COORDINATES "
            f"({CERTIFICATE_COORDINATES})"
        )
    opts = cert.options
    rows = intermediate_affine(sp, opts["ir"], opts["budget"], opts.get("outside_option", 0.0), exact=exact)
    conv = (lambda a: to_fractions(np.asarray(a, dtype=object))) if exact else (lambda a: np.asarray(a, dtype=float))
    terms, weights = [], []
    for key, slack in rows["ic"].items():
        terms.append(slack)
        weights.append(conv(cert.ic[key]))
    for i, slack in rows["ir"].items():
        terms.append(slack.reshape(-1, slack.shape[-1]))
        weights.append(conv(cert.ir[i]).reshape(-1))
    terms.append(rows["budget"])
    weights.append(conv(cert.budget))
    for w, s in zip(weights, terms, strict=True):
        if w.shape[0] != s.shape[0]:
            return {"ok": False, "message": "multipliers do not match the rows of this space", "exact": exact}
    y = np.concatenate(weights)
    slack = np.concatenate(terms, axis=0)  # (rows, 1 + n)
    if np.any(y < 0):
        return {"ok": False, "message": "a multiplier is negative", "exact": exact, "L0": float("nan")}
    total = (y[:, None] * slack).sum(axis=0)
    l0 = total[0]
    coef = total[1:] - l0
    scale = float(np.abs((y[:, None] * slack).astype(float)).sum(axis=0).max()) if slack.size else 0.0
    if exact:
        nonzero = int(np.count_nonzero(coef != 0))
        ok = nonzero == 0 and l0 < 0
    else:
        tol = tolerances.FARKAS_FLOAT_CHECK * max(1.0, scale)
        nonzero = int(np.count_nonzero(np.abs(coef) > tol))
        ok = nonzero == 0 and l0 < -tol
    dev = float(np.max(np.abs(coef.astype(float)))) if coef.size else 0.0
    msg = (
        f"L = {float(l0):.6g} for every payment schedule ({n} coordinates, all coefficients "
        f"{'exactly zero' if exact else f'within {tolerances.FARKAS_FLOAT_CHECK:g} relative'})"
        if ok
        else f"not a certificate: L(0) = {float(l0):.6g}, {nonzero} of {n} coefficients nonzero (largest {dev:.3g})"
    )
    return {
        "ok": bool(ok),
        "message": msg,
        "L0": float(l0),
        "max_deviation": dev,
        "coordinates": n,
        "nonzero": nonzero,
        "exact": exact,
    }

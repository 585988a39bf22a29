r"""Structured impossibility certificates: the dual of the min-max problem, read off the recursion's binding edges.

When :math:`\Pi^*(h^*) < 0` at some history (Lamba 2022, Lemma 6 and Theorem 1: no IC + IR mechanism raises more
than :math:`\Pi^*(h)` at ``h``), the interim rows of :mod:`mechlp.constraints.interim` admit a Farkas certificate
(sign convention of :mod:`mechlp.proofs.farkas`: ``y >= 0``, ``A^T y = 0``, ``b^T y > 0``) that need not be
searched for by an LP. It is the dual solution of the min-max problem at :math:`h^*`, built matrix-free:

* multiplier 1 on the budget row at :math:`h^*`; its coefficients on the interim utilities are
  :math:`-P_i(t|h^*)`, a *demand* :math:`d_i(t|h^*) = P_i(t|h^*)` to cancel;
* at every history ``s`` and for every agent, the demand :math:`d_i(\cdot|s)` is routed back along the binding
  tree of the min-max solution (the tight row into each type, :attr:`mechlp.solve.recursion.RecursionSolution.
  parents`): the IC row on the binding edge ``p -> t`` ("true ``t`` does not report ``p``") and, for a source
  type, its IR row get the multiplier

  .. math::
     y_i(t|s) = D_i(t|s) = \sum_{t' \in \text{subtree}(t)} d_i(t'|s),

  which cancels :math:`d_i(\cdot|s)` on the utilities at ``s`` (each IC row is ``+1`` on ``t``, ``-1`` on ``p``);
* each such IC row also has continuation coefficients
  :math:`-\delta P(m|s)\,\Delta_i(t'|t, p; m)` on :math:`\bar U_i(t'|s(p, m))` (the kernel gap of
  :mod:`mechlp.constraints.deviation`, summing to zero over ``t'``), a new demand at the child histories:

  .. math::
     d_i(t'|c) = [c = h^*]\,P_i(t'|h^*) + \delta \sum_{(s, t, m):\, s(p_s(t), m) = c} y_i(t|s)\, P(m|s)\,
     \Delta_i(t'|t, p_s(t); m),

  i.e. ``d = e + delta T d``, linear in ``d`` and separate per agent. On a tree it is one forward pass from
  :math:`h^*` down its subtree, level by level; on stationary (Markov) states, whose children depend on the
  report profile only, ``T`` is applied with sums over profiles (the states are aggregated first) and the fixed
  point is iterated (geometric convergence at rate ``delta`` times the routing's gain); a tree with a Markov tail
  does both.

Every row used is tight at the min-max solution except the budget row, so
:math:`\gamma = b^T y = -\Pi^*(h^*) > 0`. The multipliers are non-negative when the subtree sums are: always at
:math:`h^*` (the demands are probabilities), and elsewhere (zero-sum demands) under first-order stochastically
dominant kernels with the binding chain of Lamba's Lemma 6 (local downward IC, the IR of the lowest type), where
:math:`D_i(t|c)` is a difference of upper-tail probabilities :math:`\Pr(t' \ge t|x) - \Pr(t' \ge t|x')` of the
dominating and dominated rows. When some multiplier would be negative (non-FOSD kernels, other binding shapes),
when the binding edges do not form a forest with IR sources, or the fixed point does not settle,
:func:`structured_multipliers` returns ``None`` and :func:`mechlp.proofs.farkas.impossibility_certificate` falls
back to the Farkas LP. Whatever is returned is checked by the independent
:func:`mechlp.audit.verifier.check_impossibility`.

The binding edges come from the recursion (``parents``) or are recomputed from the min-max interim utilities
(:func:`binding_parents`: the tight row into each type, with the edge weights
:math:`c_i(t, r|h)` of :mod:`mechlp.solve.recursion` evaluated matrix-free). Python loops run over agents, types,
depth levels and fixed-point iterations, never over histories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mechlp.audit.verifier import ImpossibilityCertificate, check_impossibility
from mechlp.constraints.deviation import flow_gain, ic_pair_mask
from mechlp.model import tolerances
from mechlp.model.beliefs import marginal_beliefs, mixed_kernels, others_beliefs
from mechlp.model.exact import Numbers, dyadic
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree, StateSpace

__all__ = [
    "StructuredMultipliers",
    "binding_parents",
    "structured_multipliers",
    "structured_certificate",
    "labelled",
    "MAX_ITER",
    "FIXED_POINT_TOL",
    "NEGATIVE_TOL",
]

#: Largest number of fixed-point iterations on stationary states (``d = e + delta T d``).
MAX_ITER: int = 20_000
#: The fixed point is accepted when one more application moves no multiplier by more than this times the largest.
FIXED_POINT_TOL: float = tolerances.FARKAS_ZERO
#: Multipliers down to ``-NEGATIVE_TOL * max(y)`` are rounding (set to 0); more negative ones: ``None``.
NEGATIVE_TOL: float = tolerances.TIGHT  # the rounding level of a tight row
#: Histories per block when edge weights are evaluated history by history (trees; bounds the memory).
_CHUNK = 2048


@dataclass
class StructuredMultipliers:
    """Multipliers of :func:`structured_multipliers` (floats), per agent over all histories.

    Attributes
    ----------
    focus : int
        :math:`h^*`, the history of the budget row (multiplier 1).
    y : list of ndarray
        Per agent ``(n_hist, K_i)``: the multiplier of the binding row into each type (``0`` off the support).
    parents : list of ndarray
        Per agent ``(n_hist, K_i)``: the binding edges (``-1``: the IR row; ``r``: the IC row "``t`` does not
        report ``r``").
    gamma : float
        :math:`b^T y` (equals :math:`-\\Pi^*(h^*)` when every row used is tight).
    iterations : int
        Fixed-point iterations on the stationary histories (children by profile only: Markov and tail states;
        on a tree its last level, settled at once).
    """

    focus: int
    y: list[np.ndarray]
    parents: list[np.ndarray]
    gamma: float
    iterations: int


# ---------------------------------------------------------------------------------------------- structure
def _stationary(space: StateSpace) -> tuple[np.ndarray, np.ndarray]:
    """Histories whose children depend on the report profile only, as the last history's (Markov states, tail
    states and the tree level before the tail, a tree's last level), and that common row of children ``(K,)``."""
    k = space.env.n_profiles
    child = np.asarray(space.child_hist).reshape(space.n_hist, k)
    row = child[-1]
    return np.flatnonzero((child == row[None, :]).all(axis=1)), row


def _agent_data(space: StateSpace, i: int, nums: Numbers):
    env = space.env
    own = np.arange(env.type_counts[i])
    prof = env.profile_index(i, own[:, None], np.arange(env.others_count(i))[None, :])  # (K_i, M) [report, m]
    gains = flow_gain(nums.alloc, nums.valuation[i], prof)  # (K_i, K_i, M) [t, r, m]
    mixed = mixed_kernels(env, nums)[i]  # (K, K_i, K_i) [s, x, t']
    return prof, gains, mixed


def _edge_weights(space, i, nums, ubar_i, hists, prof, gains, mixed, stat_mask, stat_row) -> np.ndarray:
    r"""``(H, K_i, K_i)``: :math:`c_i(t, r|h)` at ``hists`` (recursion module docstring), matrix-free:
    :math:`\sum_m P(m|h)[g_i(t, r; m) + \delta (V(s, t) - V(s, r))]`, ``s = prof[r, m]``,
    :math:`V(s, x|h) = \sum_{t'} G_i(t'|x; s)\,\bar U_i(t'|h s)`."""
    k = space.env.n_profiles
    child = np.asarray(space.child_hist).reshape(space.n_hist, k)
    ki = prof.shape[0]
    out = np.empty((hists.size, ki, ki))
    p_oth = others_beliefs(space, i, nums, hists=hists)  # (H, M)
    ubar_z = np.vstack([ubar_i, np.zeros((1, ki))])  # row -1: no child (the game ends)

    def x_of(v):  # v (..., K, K_i) -> X (..., t, r, m)
        vp = v[..., prof, :]  # (..., r, m, x)
        cont = np.moveaxis(vp, -1, -3) - np.einsum("...rmr->...rm", vp)[..., None, :, :]  # [.., t, r, m]
        return gains + nums.delta * cont

    stat = stat_mask[hists]
    if stat.any():
        v = np.einsum("sxt,st->sx", mixed, ubar_z[stat_row])
        out[stat] = np.einsum("hm,trm->htr", p_oth[stat], x_of(v))
    rest = np.flatnonzero(~stat)
    for a in range(0, rest.size, _CHUNK):  # blocks of histories (memory), not a loop over histories
        blk = rest[a : a + _CHUNK]
        v = np.einsum("sxt,hst->hsx", mixed, ubar_z[child[hists[blk]]])
        out[blk] = np.einsum("hm,htrm->htr", p_oth[blk], x_of(v))
    return out


def binding_parents(
    space: StateSpace,
    interim_utilities: list[np.ndarray],
    question: Question,
    hists: np.ndarray | None = None,
) -> list[np.ndarray] | None:
    r"""The binding row into each type at the min-max interim utilities: per agent ``(n_hist, K_i)``, ``-1`` for
    participation, ``r`` for the IC row "``t`` does not report ``r``" (as
    :attr:`mechlp.solve.recursion.RecursionSolution.parents`; ``-2`` outside ``hists``).

    A row is tight when its slack :math:`\bar U_i(t|h) - \bar U_i(r|h) - c_i(t, r|h)` (IR:
    :math:`\bar U_i(t|h) - o_i(t)`) is at most ``tolerances.TIGHT * (1 + |U|)``; ties go to adjacent reports,
    then participation, then the nearest report. ``None`` when some type has no tight row or the chosen rows
    have a cycle (then they are not the longest-path tree of a min-max solution), and with correlated types
    (``env.correlated``: the rows are not difference constraints in interim utilities).
    """
    env = space.env
    if env.correlated:
        return None
    nums = Numbers(env, exact=False)
    hists = np.arange(space.n_hist) if hists is None else np.asarray(hists, dtype=np.int64)
    stat_idx, stat_row = _stationary(space)
    stat_mask = np.zeros(space.n_hist, dtype=bool)
    stat_mask[stat_idx] = True
    out = []
    for i in range(env.n_agents):  # loop over agents
        ubar = np.asarray(interim_utilities[i], dtype=float)
        ki = ubar.shape[1]
        prof, gains, mixed = _agent_data(space, i, nums)
        c = _edge_weights(space, i, nums, ubar, hists, prof, gains, mixed, stat_mask, stat_row)
        u = ubar[hists]  # (H, K_i)
        tol = tolerances.TIGHT * (1.0 + np.abs(u))
        slack = u[:, :, None] - u[:, None, :] - c  # [h, t, r]
        allowed = ic_pair_mask(ki, local=question.ic == "local")
        dist = np.abs(np.arange(ki)[:, None] - np.arange(ki)[None, :]).astype(float)
        rank = np.where(dist == 1, 0.0, 1.0 + dist)  # adjacent first, then IR (rank 1), then the nearest
        cost = np.where(allowed[None] & (slack <= tol[:, :, None]), rank[None], np.inf)
        ir_slack = u - np.asarray(question.outside[i], dtype=float)[None, :]
        cost_ir = np.where(ir_slack <= tol, 1.0, np.inf)
        full = np.concatenate([cost, cost_ir[:, :, None]], axis=2)  # index K_i: IR
        choice = np.argmin(full, axis=2)
        if not np.isfinite(np.take_along_axis(full, choice[:, :, None], axis=2)).all():
            return None
        par = np.where(choice == ki, -1, choice)
        cur = par.copy()
        rows = np.arange(hists.size)[:, None]
        for _ in range(ki):  # pointer jumping: every chain must reach a source within K_i steps
            cur = np.where(cur >= 0, par[rows, np.maximum(cur, 0)], -1)
        if np.any(cur >= 0):
            return None
        full_par = np.full((space.n_hist, ki), -2, dtype=np.int64)
        full_par[hists] = par
        out.append(full_par)
    return out


def _depths(par: np.ndarray) -> np.ndarray:
    """Depth of every type in its binding tree (sources 0), per row; ``-1`` where a chain does not end."""
    n, ki = par.shape
    rows = np.arange(n)[:, None]
    depth = np.zeros((n, ki), dtype=np.int64)
    cur = par.copy()
    for _ in range(ki):  # loop over depth steps
        live = cur >= 0
        if not live.any():
            return depth
        depth += live
        cur = np.where(live, par[rows, np.maximum(cur, 0)], -1)
    return np.where(cur >= 0, -1, depth)


class _Router:
    """Subtree sums ``D`` of demands ``d`` over one agent's binding trees at a set of histories."""

    def __init__(self, par: np.ndarray):
        self.par = par
        n, ki = par.shape
        depth = _depths(par)
        self.ok = bool((depth >= 0).all())
        flat_par = (np.arange(n)[:, None] * ki + np.maximum(par, 0)).reshape(-1)
        self.levels = []
        for lev in range(int(depth.max(initial=0)), 0, -1):  # deepest first (loop over depth levels)
            sel = np.flatnonzero(depth.reshape(-1) == lev)
            self.levels.append((sel, flat_par[sel]))

    def __call__(self, d: np.ndarray) -> np.ndarray:
        out = d.copy().reshape(-1)
        for sel, to in self.levels:
            np.add.at(out, to, out[sel])
        return out.reshape(d.shape)


def _push_stationary(y, par, p_oth, prof, mixed, stat_row, delta, n_hist, action_free):
    r"""Demands at the children of stationary histories: for each agent's binding IC rows ``(t, p)`` aggregate
    :math:`Z(t, p, m) = \sum_s y(t|s) P(m|s)` over the states first (children depend on ``(p, m)`` only), then
    :math:`d(t'|c(p, m)) \mathrel{+}= \delta \sum_t Z(t, p, m)\,[G(t'|t; s) - G(t'|p; s)]`, ``s = prof[p, m]``."""
    n, ki = y.shape
    m_count = prof.shape[1]
    ic = par >= 0
    rows_ = (np.arange(ki)[None, :] * ki + np.maximum(par, 0))[ic]  # (t, p) flat
    cols_ = np.broadcast_to(np.arange(n)[:, None], (n, ki))[ic]
    b = sp.csr_matrix((y[ic], (rows_, cols_)), shape=(ki * ki, n))
    z = np.asarray(b @ p_oth).reshape(ki, ki, m_count)  # [t, p, m]
    zsum = z.sum(axis=0)  # [p, m]
    if action_free:
        f = mixed[0]
        acc = np.einsum("tpm,tu->pmu", z, f) - zsum[:, :, None] * f[:, None, :]
    else:
        acc = np.empty((ki, m_count, ki))
        for p in range(ki):  # loop over reports
            g = mixed[prof[p]]  # (M, x, t')
            acc[p] = np.einsum("tm,mtu->mu", z[:, p, :], g) - zsum[p][:, None] * g[:, p, :]
    out = np.zeros((n_hist, ki))
    kids = stat_row[prof]  # (p, m)
    live = kids >= 0
    np.add.at(out, kids[live], delta * acc[live])
    return out


def _push_rows(y, par, hists, p_oth, prof, mixed, child, delta, n_hist):
    r"""The same push from histories whose children differ (tree levels): per binding edge ``(s, t, p)``,
    :math:`d(t'|s(p, m)) \mathrel{+}= \delta\, y(t|s) P(m|s) [G(t'|t; s') - G(t'|p; s')]`, ``s' = prof[p, m]``."""
    ki = y.shape[1]
    out = np.zeros((n_hist, ki))
    own = np.arange(ki)
    for t in own:  # loop over types
        sel = np.flatnonzero((par[:, t] >= 0) & (y[:, t] != 0))
        if sel.size == 0:
            continue
        p = par[sel, t]
        s_prof = prof[p]  # (E, M)
        gap = mixed[s_prof, t, :] - mixed[s_prof, p[:, None], :]  # (E, M, K_i)
        w = (delta * y[sel, t])[:, None] * p_oth[sel]  # (E, M)
        kids = child[hists[sel][:, None], s_prof]  # (E, M)
        live = kids >= 0
        np.add.at(out, kids[live], w[live][:, None] * gap[live])
    return out


def structured_multipliers(
    space: StateSpace,
    question: Question,
    minmax_surplus: np.ndarray,
    *,
    interim_utilities: list[np.ndarray] | None = None,
    parents: list[np.ndarray] | None = None,
    max_iter: int = MAX_ITER,
) -> StructuredMultipliers | None:
    r"""The dual of the min-max problem at the history of the lowest :math:`\Pi^*` (module docstring).

    Parameters
    ----------
    space : StateSpace
    question : Question
        Its certifying relaxation must be Bayesian or local IC, interim IR and interim budget rows
        (:meth:`Question.certifying`; an ex post question is certified by the interim rows).
    minmax_surplus : ndarray (n_hist,)
        :math:`\Pi^*` per history (:func:`mechlp.solve.questions.minmax`).
    interim_utilities : list of ndarray, optional
        The min-max utilities per agent ``(n_hist, K_i)``; needed for ``gamma`` and, without ``parents``, for
        the binding edges (:func:`binding_parents`).
    parents : list of ndarray, optional
        The binding edges (:attr:`mechlp.solve.recursion.RecursionSolution.parents`).
    max_iter : int
        Fixed-point iterations on stationary states.

    Returns
    -------
    StructuredMultipliers or None
        ``None`` when the construction does not apply: an allocation that depends on the period, no history with
        :math:`\Pi^* < 0`, other constraints
        than the ones above, no binding forest, a negative multiplier (kernels not first-order stochastically
        dominant, or another binding shape), or no fixed point; the Farkas LP then answers.
    """
    if space.env.period_dependent:
        return None  # the binding trees and fixed points are per profile; the Farkas LP answers
    if space.env.correlated:  # the construction reads interim-utility rows, which need independent types
        return None
    relaxed = question.certifying()
    if relaxed is None or relaxed.ic not in ("bayesian", "local") or relaxed.ir != "interim":
        return None
    if relaxed.budget != "interim" or interim_utilities is None:
        return None
    env = space.env
    pi = np.asarray(minmax_surplus, dtype=float)
    if pi.shape != (space.n_hist,) or len(interim_utilities) != env.n_agents:
        return None
    h_star = int(np.argmin(pi))
    if not pi[h_star] < -tolerances.SURPLUS:
        return None
    support = space.descendants([h_star]) if isinstance(space, HistoryTree) else np.arange(space.n_hist)
    if parents is None:
        parents = binding_parents(space, interim_utilities, relaxed, hists=support)
        if parents is None:
            return None
    nums = Numbers(env, exact=False)
    delta = float(nums.delta)
    margs = marginal_beliefs(space, nums, hists=[h_star])
    k = env.n_profiles
    child = np.asarray(space.child_hist).reshape(space.n_hist, k)
    stat_idx, stat_row = _stationary(space)
    stat_mask = np.zeros(space.n_hist, dtype=bool)
    stat_mask[stat_idx] = True
    in_support = np.zeros(space.n_hist, dtype=bool)
    in_support[support] = True
    stat = np.flatnonzero(stat_mask & in_support)
    tree = np.flatnonzero(~stat_mask & in_support)
    periods = np.asarray(space.hist_period)[tree]
    ys, gamma, n_iter = [], 0.0, 0
    for i in range(env.n_agents):  # the agents' demands are separate (only the budget row joins them)
        par = np.asarray(parents[i], dtype=np.int64)
        ki = env.type_counts[i]
        if par.shape != (space.n_hist, ki) or np.any(par[support] < -1):
            return None
        prof, gains, mixed = _agent_data(space, i, nums)
        action_free = not env.agents[i].action_dependent
        p_oth = others_beliefs(space, i, nums)  # (n_hist, M)
        d = np.zeros((space.n_hist, ki))
        d[h_star] = np.asarray(margs[i][0], dtype=float)
        y = np.zeros((space.n_hist, ki))
        for per in np.unique(periods):  # tree levels, first to last (loop over depth levels)
            hs = tree[periods == per]
            route = _Router(par[hs])
            if not route.ok:
                return None
            y[hs] = route(d[hs])
            d += _push_rows(y[hs], par[hs], hs, p_oth[hs], prof, mixed, child, delta, space.n_hist)
        if stat.size:
            inflow = d[stat].copy()
            route = _Router(par[stat])
            if not route.ok:
                return None
            ps, pp = par[stat], p_oth[stat]
            y_s = route(inflow)
            it = 0
            while it < max_iter:  # fixed-point iterations d = e + delta T d
                it += 1
                push = _push_stationary(y_s, ps, pp, prof, mixed, stat_row, delta, space.n_hist, action_free)
                new = route(inflow + push[stat])
                change = float(np.abs(new - y_s).max())
                y_s = new
                if change <= FIXED_POINT_TOL * max(1.0, float(np.abs(y_s).max())):
                    break
                if not np.isfinite(change) or change > 1e12:
                    return None
            else:  # no fixed point within max_iter
                return None
            n_iter = max(n_iter, it)
            y[stat] = y_s
        top = float(np.abs(y).max(initial=0.0))
        if np.any(y < -NEGATIVE_TOL * max(top, 1.0)):
            return None
        y[y < NEGATIVE_TOL * max(top, 1.0)] = 0.0
        ys.append(y)
        # b^T y over this agent's rows: IC rows P(.|s) . g(t, p; .), IR rows o(t)
        sel_h, sel_t = np.nonzero((y != 0) & (par >= 0))
        b_ic = np.einsum("em,em->e", p_oth[sel_h], gains[sel_t, par[sel_h, sel_t]])
        gamma += float(y[sel_h, sel_t] @ b_ic)
        ir_h, ir_t = np.nonzero((y != 0) & (par == -1))
        gamma += float(y[ir_h, ir_t] @ np.asarray(question.outside[i], dtype=float)[ir_t])
    # budget row at h*: b = -W(h*) = -(Pi*(h*) + sum_i P_i(.|h*) . U_i(.|h*)) (Lamba 2022, eq. 4)
    welfare = pi[h_star] + sum(
        float(np.asarray(margs[i][0], dtype=float) @ np.asarray(interim_utilities[i], dtype=float)[h_star])
        for i in range(env.n_agents)
    )
    gamma -= welfare
    if not gamma > 0:
        return None
    return StructuredMultipliers(h_star, ys, [np.asarray(p, dtype=np.int64) for p in parents], float(gamma), n_iter)


def labelled(space: StateSpace, mult: StructuredMultipliers) -> dict[str, np.ndarray]:
    """The nonzero multipliers as labelled arrays (``family``, ``agent``, ``hist``, ``type``, ``misreport``,
    ``value``), in the labels of :class:`mechlp.constraints.interim.InterimRows`."""
    fam, ag, hs, ts, rs, vs = [], [], [], [], [], []
    for i, (y, par) in enumerate(zip(mult.y, mult.parents, strict=True)):
        h, t = np.nonzero(y)
        p = par[h, t]
        fam.append(np.where(p >= 0, "ic", "ir"))
        ag.append(np.full(h.size, i))
        hs.append(h)
        ts.append(t)
        rs.append(p)
        vs.append(y[h, t])
    fam.append(np.array(["budget"]))
    ag.append(np.array([-1]))
    hs.append(np.array([mult.focus]))
    ts.append(np.array([-1]))
    rs.append(np.array([-1]))
    vs.append(np.array([1.0]))
    return {
        "family": np.concatenate(fam),
        "agent": np.concatenate(ag),
        "hist": np.concatenate(hs),
        "type": np.concatenate(ts),
        "misreport": np.concatenate(rs),
        "value": np.concatenate(vs),
    }


def structured_certificate(
    space: StateSpace,
    mult: StructuredMultipliers,
    options: dict,
    minmax_surplus: np.ndarray | None = None,
) -> ImpossibilityCertificate:
    """The :class:`~mechlp.audit.verifier.ImpossibilityCertificate` of ``mult`` (floats made exact rationals,
    dyadic), built directly in the certificate's format (no rows), with the independent float check
    :func:`~mechlp.audit.verifier.check_impossibility` in ``checks["float"]``."""
    env = space.env
    zero = 0
    ic: dict = {}
    ir: dict = {}
    for i, (y, par) in enumerate(zip(mult.y, mult.parents, strict=True)):  # loop over agents
        arr = np.empty((space.n_hist, env.type_counts[i]), dtype=object)
        arr.fill(zero)
        h, t = np.nonzero((y != 0) & (par == -1))
        arr[h, t] = dyadic(y[h, t])
        ir[i] = arr
        for t in range(env.type_counts[i]):  # loop over types and their binding reports
            col_par = par[:, t]
            for r in np.unique(col_par[(y[:, t] != 0) & (col_par >= 0)]):
                sel = np.flatnonzero((col_par == r) & (y[:, t] != 0))
                vec = np.empty(space.n_hist, dtype=object)
                vec.fill(zero)
                vec[sel] = dyadic(y[sel, t])
                ic[(i, t, int(r))] = vec
    budget = np.empty(space.n_hist, dtype=object)
    budget.fill(zero)
    budget[mult.focus] = 1
    opts = dict(options)
    cert = ImpossibilityCertificate(
        space, opts, dyadic(np.array([mult.gamma]))[0], ic, ir, budget, False, {}, minmax_surplus
    )
    cert.checks["float"] = check_impossibility(cert, exact=False)
    return cert

r"""The same constraints in interim utilities only, in either arithmetic (floats or exact fractions).

With Bayesian (or local) IC, interim participation and interim or ex ante budget balance, every row depends on
the mechanism only through the interim utilities :math:`\bar U_i(t|h)`:

* IC (agent ``i``, history ``h``, true ``t``, report ``r``), the one-shot deviation of docs/design.md section 4.4 with
  the others' kernels summed out:

  .. math::
     \bar U_i(t|h) - \bar U_i(r|h) - \delta \sum_m P(m|h) \sum_{t'} [G_i(t'|t; r,m) - G_i(t'|r; r,m)]
     \bar U_i(t'|h(r,m)) \;\ge\; \sum_m P(m|h) \sum_a p(a|r,m)[v_i(t,a) - v_i(r,a)]

  where ``h(r,m)`` is the history after the report profile ``(r, m)`` and :math:`G_i(\cdot|x; s)` agent ``i``'s
  kernel from type ``x`` under the allocation at profile ``s``;
* IR: :math:`\bar U_i(t|h) \ge \underline u_i(t)`;
* budget, by Lamba (2022) eq. (4): :math:`-\sum_i \sum_t P_i(t|h) \bar U_i(t|h) \ge -W(h)` with :math:`W(h)` the
  expected discounted welfare from ``h`` on.

With correlated types (``env.correlated``) the rows cannot be written in interim utilities (the belief about the
others depends on the own type, so the deviation weights the *other* type's ex post utilities differently);
:func:`interim_rows` then returns the same labelled rows in **ex post utilities** :math:`U_i(h, \theta)`, one
column per agent and node (the transfers are eliminated: any :math:`U` is implemented by
:math:`x = \text{flow} - U + \delta E[U|g]`, and :math:`\Pi(h) = W(h) - \sum_i \sum_\theta P(\theta|h) U_i(h, \theta)`);
see :func:`_correlated_rows`.

This is the natural space for impossibility certificates (every IR row touches one variable, every budget row
the variables of one history), so Farkas multipliers can be made exact. Columns: agent ``i``'s block starts at
``n_hist * sum_{j<i} K_j``; within it, ``h * K_i + t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechlp.constraints.deviation import flow_gain, ic_pairs, kernel_gap
from mechlp.model.beliefs import (
    conditional_beliefs,
    continuation_values,
    joint_beliefs,
    joint_transition,
    marginal_beliefs,
    others_beliefs,
)
from mechlp.model.exact import Numbers
from mechlp.model.spaces import HistoryTree, StateSpace

__all__ = ["InterimRows", "interim_rows"]


@dataclass
class InterimRows:
    """All rows ``A z >= b`` of the interim formulation, as triplets, with labels.

    ``family`` is ``"ic"``, ``"ir"`` or ``"budget"`` per row; ``agent``, ``hist``, ``type``, ``misreport`` are
    ``-1`` where they do not apply. Values and ``b`` are floats or fractions (object arrays), as ``nums``.
    """

    n_cols: int
    col_offsets: list[int]
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    b: np.ndarray
    family: np.ndarray
    agent: np.ndarray
    hist: np.ndarray
    type: np.ndarray
    misreport: np.ndarray
    marginals: list[np.ndarray]

    @property
    def n_rows(self) -> int:
        return int(self.b.shape[0])

    def col(self, agent: int, hist: np.ndarray, t: np.ndarray) -> np.ndarray:
        k = self.marginals[agent].shape[1]
        return self.col_offsets[agent] + np.asarray(hist) * k + np.asarray(t)

    def transpose_times(self, y: np.ndarray, nums: Numbers) -> np.ndarray:
        """``A^T y`` in ``nums``'s arithmetic."""
        out = nums.zeros((self.n_cols,))
        np.add.at(out, self.cols, self.vals * y[self.rows])
        return out


def interim_rows(
    space: StateSpace,
    nums: Numbers,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside: list[np.ndarray] | None = None,
    hists: np.ndarray | None = None,
) -> InterimRows:
    """Build the interim rows (see module docstring). ``ic`` in {bayesian, local}; ``ir`` in {interim, ex_ante};
    ``budget`` in {interim, ex_ante, none}.

    ``hists``: build the rows at these histories only (the root's rows for ex ante IR and budget only when the
    root is among them); columns keep their indices in the whole space. On a
    :class:`~mechlp.model.spaces.HistoryTree` the welfare values are then computed on the histories' subtrees
    only, so the cost follows them. With ``hists`` a subtree
    (:meth:`~mechlp.model.spaces.HistoryTree.descendants`), a Farkas certificate over these rows is one for the
    whole tree, at the cost of the subtree.

    With correlated types the rows are in ex post utilities (module docstring, :func:`_correlated_rows`; the
    ``marginals`` of the result are then the joint beliefs :math:`P(\theta|h)`, ``(n_hist, K)`` per agent, and
    ``col(i, h, s)`` is the column of :math:`U_i(h, s)`).
    """
    if ic not in ("bayesian", "local"):
        raise ValueError(f"the interim formulation needs ic 'bayesian' or 'local', got {ic!r}")
    if ir not in ("interim", "ex_ante"):
        raise ValueError(f"the interim formulation needs ir 'interim' or 'ex_ante', got {ir!r}")
    if budget not in ("interim", "ex_ante", "none"):
        raise ValueError(f"the interim formulation needs budget 'interim', 'ex_ante' or 'none', got {budget!r}")
    env = space.env
    if env.correlated:
        return _correlated_rows(space, nums, ic, ir, budget, outside, hists)
    n_hist, k = space.n_hist, env.n_profiles
    counts = env.type_counts
    margs = marginal_beliefs(space, nums)
    offsets = list(np.cumsum([0] + [n_hist * c for c in counts]))
    n_cols = int(offsets[-1])
    if hists is None:
        hists = np.arange(n_hist)
        sub = None
    else:
        hists = np.unique(np.asarray(hists, dtype=np.int64))
        sub = hists if isinstance(space, HistoryTree) else None  # welfare on the subtrees only (trees)
    n_rows_h = hists.size
    local = np.arange(n_rows_h)
    has_root = n_rows_h > 0 and hists[0] == 0
    n_tables = env.n_allocation_periods  # one allocation table per period (1: stationary)
    table = np.asarray(space.hist_table)[hists]  # (H,): each row's period table
    parts: list[tuple] = []  # (family, rows_local, cols, vals, b, agent, hist, type, misreport)

    def col(i, h, t):
        return offsets[i] + np.asarray(h) * counts[i] + np.asarray(t)

    for i, _ag in enumerate(env.agents):
        m_count = env.others_count(i)
        p_oth = others_beliefs(space, i, nums, hists=hists)  # (H, M)
        own = np.arange(counts[i])
        prof = env.profile_index(i, own[:, None], np.arange(m_count)[None, :])  # (K_i, M)
        gains = np.stack([flow_gain(nums.alloc, nums.valuation[i], prof + p * k) for p in range(n_tables)])
        for t, r in ic_pairs(counts[i], local=(ic == "local")):
            gain = gains[:, t, r][table]  # (H, M) [p, t, r, m]: the gain at each row's period
            rows = [local, local]
            cols = [col(i, hists, t), col(i, hists, r)]
            vals = [nums.ones((n_rows_h,)), -nums.ones((n_rows_h,))]
            nodes = hists[:, None] * k + prof[r][None, :]  # (H, M)
            child = np.asarray(space.child_hist)[nodes]
            hh, mm = np.nonzero(child >= 0)
            if hh.size:
                gap = np.stack(
                    [kernel_gap(nums.alloc, nums.kernels[i], prof + p * k, t, r)[0] for p in range(n_tables)]
                )  # (P, M, K_i)
                coef = (-nums.delta) * p_oth[hh, mm][:, None] * gap[table[hh], mm]  # (E, K_i)
                rows.append(np.repeat(hh, counts[i]))
                cols.append(col(i, np.repeat(child[hh, mm], counts[i]), np.tile(own, hh.size)))
                vals.append(coef.reshape(-1))
            b = p_oth @ gains[0, t, r] if n_tables == 1 else (p_oth * gain).sum(axis=1)
            parts.append(("ic", rows, cols, vals, b, i, hists, t, r))
        ir_h = hists if ir == "interim" else hists[:1] if has_root else hists[:0]
        for t in range(counts[i]):
            level = 0.0 if outside is None else outside[i][t]
            out_t = nums.array(np.full(ir_h.size, level, dtype=object))
            parts.append(
                ("ir", [np.arange(ir_h.size)], [col(i, ir_h, t)], [nums.ones((ir_h.size,))], out_t, i, ir_h, t, -1)
            )
    bh = hists if budget == "interim" else hists[:1] if has_root else hists[:0]
    if budget != "none" and bh.size:
        flow = nums.flows().sum(axis=0)[np.asarray(space.node_key)][None, :]  # welfare at every node
        w_node = continuation_values(space, flow, nums, hists=None if sub is None else bh)[0].reshape(n_hist, k)
        w_hist = np.einsum("hk,hk->h", w_node[bh], joint_beliefs(space, nums, hists=bh))
        rows, cols, vals = [], [], []
        for i in range(env.n_agents):
            rows.append(np.repeat(np.arange(bh.size), counts[i]))
            cols.append(col(i, np.repeat(bh, counts[i]), np.tile(np.arange(counts[i]), bh.size)))
            vals.append(-margs[i][bh].reshape(-1))
        parts.append(("budget", rows, cols, vals, -w_hist, -1, bh, -1, -1))

    return _assemble(parts, n_cols, [int(o) for o in offsets[:-1]], margs)


def _correlated_rows(
    space: StateSpace,
    nums: Numbers,
    ic: str,
    ir: str,
    budget: str,
    outside: list[np.ndarray] | None,
    hists: np.ndarray | None,
) -> InterimRows:
    r"""The rows of :func:`interim_rows` with correlated types, in ex post utilities (module docstring).

    * IC ``(i, h, t, r)``: :math:`\sum_m P(m|t, h) [U_i(h, (t, m)) - U_i(h, (r, m)) - \delta \sum_{\theta'}
      (Q_t(\theta'|r, m) - Q(\theta'|r, m)) U_i(h(r, m), \theta')] \ge \sum_m P(m|t, h)\, g_i(t, r; m)`, with
      :math:`Q_t(\cdot|r, m) = \sum_a p(a|r, m) P(\cdot|(t, m), a)` (:func:`mechlp.model.beliefs.joint_transition`);
    * IR ``(i, h, t)``: :math:`\sum_m P(m|t, h) U_i(h, (t, m)) \ge o_i(t)`;
    * budget ``h``: :math:`-\sum_i \sum_\theta P(\theta|h) U_i(h, \theta) \ge -W(h)`.

    Columns: agent ``i``'s block starts at ``i * n_nodes``; within it, node ``h * K + s``.
    """
    env = space.env
    n_hist, k, n_nodes = space.n_hist, env.n_profiles, space.n_nodes
    counts = env.type_counts
    if hists is None:
        hists = np.arange(n_hist)
        sub = None
    else:
        hists = np.unique(np.asarray(hists, dtype=np.int64))
        sub = hists if isinstance(space, HistoryTree) else None
    n_rows_h = hists.size
    has_root = n_rows_h > 0 and hists[0] == 0
    child_all = np.asarray(space.child_hist)
    q = joint_transition(env, nums)
    parts: list[tuple] = []
    for i in range(env.n_agents):
        base = i * n_nodes
        m_count = env.others_count(i)
        prof = env.profile_index(i, np.arange(counts[i])[:, None], np.arange(m_count)[None, :])  # (K_i, M)
        cond = conditional_beliefs(space, i, nums, hists=hists)  # (H, K_i, M)
        gains = flow_gain(nums.alloc, nums.valuation[i], prof)  # (K_i, K_i, M)
        for t, r in ic_pairs(counts[i], local=(ic == "local")):
            w = cond[:, t, :]  # (H, M)
            loc = np.repeat(np.arange(n_rows_h)[:, None], m_count, axis=1)
            nodes_t = hists[:, None] * k + prof[t][None, :]
            nodes_r = hists[:, None] * k + prof[r][None, :]
            rows = [loc.reshape(-1), loc.reshape(-1)]
            cols = [base + nodes_t.reshape(-1), base + nodes_r.reshape(-1)]
            vals = [w.reshape(-1), -w.reshape(-1)]
            child = child_all[nodes_r]
            hh, mm = np.nonzero(child >= 0)
            if hh.size:
                gap = joint_transition(env, nums, deviator=i, true_type=t)[prof[r]] - q[prof[r]]  # (M, K)
                coef = (-nums.delta) * w[hh, mm][:, None] * gap[mm]  # (E, K)
                rows.append(np.repeat(hh, k))
                cols.append(base + (child[hh, mm][:, None] * k + np.arange(k)[None, :]).reshape(-1))
                vals.append(coef.reshape(-1))
            parts.append(("ic", rows, cols, vals, (w * gains[t, r][None, :]).sum(axis=1), i, hists, t, r))
        ir_at = np.arange(n_rows_h) if ir == "interim" else np.arange(1) if has_root else np.arange(0)
        for t in range(counts[i]):
            level = 0.0 if outside is None else outside[i][t]
            w = cond[ir_at, t, :]  # (n, M)
            loc = np.repeat(np.arange(ir_at.size)[:, None], m_count, axis=1)
            nodes = hists[ir_at][:, None] * k + prof[t][None, :]
            out_t = nums.array(np.full(ir_at.size, level, dtype=object))
            parts.append(
                ("ir", [loc.reshape(-1)], [base + nodes.reshape(-1)], [w.reshape(-1)], out_t, i, hists[ir_at], t, -1)
            )
    bh = hists if budget == "interim" else hists[:1] if has_root else hists[:0]
    if budget != "none" and bh.size:
        flow = nums.flows().sum(axis=0)[np.asarray(space.node_key)][None, :]  # welfare at every node
        w_node = continuation_values(space, flow, nums, hists=None if sub is None else bh)[0].reshape(n_hist, k)
        bel = joint_beliefs(space, nums, hists=bh)  # (n, K)
        w_hist = np.einsum("hk,hk->h", w_node[bh], bel)
        loc = np.repeat(np.arange(bh.size)[:, None], k, axis=1).reshape(-1)
        nodes = (bh[:, None] * k + np.arange(k)[None, :]).reshape(-1)
        rows = [loc] * env.n_agents
        cols = [i * n_nodes + nodes for i in range(env.n_agents)]
        vals = [-bel.reshape(-1)] * env.n_agents
        parts.append(("budget", rows, cols, vals, -w_hist, -1, bh, -1, -1))
    joint = joint_beliefs(space, nums)
    return _assemble(parts, env.n_agents * n_nodes, [i * n_nodes for i in range(env.n_agents)], [joint] * env.n_agents)


def _assemble(parts: list[tuple], n_cols: int, offsets: list[int], marginals: list[np.ndarray]) -> InterimRows:
    """Labelled rows from ``(family, rows, cols, vals, b, agent, hist, type, misreport)`` parts."""
    all_rows, all_cols, all_vals, all_b = [], [], [], []
    fam, ag_l, h_l, t_l, r_l = [], [], [], [], []
    offset = 0
    for family, rows, cols, vals, b, i, hs, t, r in parts:
        n_r = int(np.asarray(b).shape[0])
        all_rows.append(np.concatenate(rows) + offset)
        all_cols.append(np.concatenate(cols))
        all_vals.append(np.concatenate(vals))
        all_b.append(np.asarray(b))
        fam += [family] * n_r
        ag_l.append(np.full(n_r, i))
        h_l.append(np.asarray(hs))
        t_l.append(np.full(n_r, t))
        r_l.append(np.full(n_r, r))
        offset += n_r
    vals = np.concatenate(all_vals)
    keep = np.array([v != 0 for v in vals], dtype=bool) if vals.dtype == object else vals != 0
    return InterimRows(
        n_cols,
        offsets,
        np.concatenate(all_rows)[keep],
        np.concatenate(all_cols)[keep],
        vals[keep],
        np.concatenate(all_b),
        np.array(fam),
        np.concatenate(ag_l),
        np.concatenate(h_l),
        np.concatenate(t_l),
        np.concatenate(r_l),
        marginals,
    )

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
see :func:`utility_rows`, which also writes the ex post IC, IR and budget rows and transfer limits
(the rows of impossibility certificates for those questions).

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

__all__ = ["InterimRows", "interim_rows", "utility_rows", "LABELS"]

#: The label fields of every row (:class:`InterimRows`), ``-1`` where a field does not apply.
LABELS = ("agent", "hist", "type", "misreport", "node", "others", "side")


@dataclass
class InterimRows:
    """All rows ``A z >= b`` of the interim formulation, as triplets, with labels.

    ``family`` is ``"ic"``, ``"ir"``, ``"budget"`` or ``"limits"`` per row; the labels (:data:`LABELS`:
    ``agent``, ``hist``, ``type``, ``misreport``, and for rows of :func:`utility_rows` ``node`` (a node's row),
    ``others`` (the others' profile of an ex post IC row) and ``side`` (0 lower, 1 upper limit)) are ``-1``
    where they do not apply. ``free`` marks equality rows (ex post budget), whose multipliers have either
    sign; every other row is ``A z >= b``. Values and ``b`` are floats or fractions (object arrays), as
    ``nums``.
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
    node: np.ndarray
    others: np.ndarray
    side: np.ndarray
    marginals: list[np.ndarray]
    free: np.ndarray

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

    With correlated types the rows are in ex post utilities (module docstring, :func:`utility_rows`; the
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
        return utility_rows(space, nums, ic, ir, budget, outside, hists=hists)
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
            parts.append(("ic", rows, cols, vals, b, {"agent": i, "hist": hists, "type": t, "misreport": r}))
        ir_h = hists if ir == "interim" else hists[:1] if has_root else hists[:0]
        for t in range(counts[i]):
            level = 0.0 if outside is None else outside[i][t]
            out_t = nums.array(np.full(ir_h.size, level, dtype=object))
            labels = {"agent": i, "hist": ir_h, "type": t}
            parts.append(("ir", [np.arange(ir_h.size)], [col(i, ir_h, t)], [nums.ones((ir_h.size,))], out_t, labels))
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
        parts.append(("budget", rows, cols, vals, -w_hist, {"hist": bh}))

    return _assemble(parts, n_cols, [int(o) for o in offsets[:-1]], margs)


def utility_rows(
    space: StateSpace,
    nums: Numbers,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside: list[np.ndarray] | None = None,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
    hists: np.ndarray | None = None,
) -> InterimRows:
    r"""Every labelled row of a question in **ex post utilities** :math:`U_i(h, \theta)`, in either arithmetic.

    The transfers are eliminated (any :math:`U` is implemented by :math:`x_i(g) = \text{flow}_i(g) - U_i(g) +
    \delta \sum_{\theta'} Q(\theta'|g) U_i(g\theta')`, and :math:`\Pi(h) = W(h) - \sum_i \sum_\theta
    P(\theta|h) U_i(h, \theta)`), so a Farkas certificate over these rows is one in transfers (the recursion
    rows of :mod:`mechlp.constraints.accounting` are identities here). With ``w = P(m|t, h)`` (the belief of
    type ``t`` about the others' profile ``m``; :math:`P(m|h)` with independent types) and
    :math:`Q_t(\cdot|r, m)` the law of the next profile after ``(r, m)`` when agent ``i``'s true type is ``t``
    (:func:`mechlp.model.beliefs.joint_transition`):

    * IC ``(i, h, t, r)`` (``"bayesian"``, ``"local"``): :math:`\sum_m w [U_i(h, (t, m)) - U_i(h, (r, m)) -
      \delta \sum_{\theta'} (Q_t - Q)(\theta'|r, m) U_i(h(r, m), \theta')] \ge \sum_m w\, g_i(t, r; m)`;
      ``"ex_post"``: the same row for each ``m`` with weight 1 (label ``others = m``; Lamba 2022, Definition 7);
    * IR ``(i, h, t)``: :math:`\sum_m w\, U_i(h, (t, m)) \ge o_i(t)` (``"interim"``; the root only for
      ``"ex_ante"``); ``"ex_post"``: :math:`U_i(g) \ge o_i(\theta_{g,i})` at every node ``g`` (label ``node``);
    * budget ``h`` (``"interim"``, ``"ex_ante"``): :math:`-\sum_i \sum_\theta P(\theta|h) U_i(h, \theta)
      \ge -W(h)`; ``"ex_post"``: the *equality* :math:`\sum_i x_i(g) = 0` at every node, i.e.
      :math:`\sum_i [-U_i(g) + \delta \sum_{\theta'} Q(\theta'|g) U_i(g\theta')] = -\sum_i
      \text{flow}_i(g)` (label ``node``; ``free``: its multiplier has either sign);
    * limits ``(i, g, side)`` from ``limits = (lo, hi)`` (per agent, ``inf`` where open):
      :math:`x_i(g) - lo_i \ge 0` (``side = 0``) and :math:`hi_i - x_i(g) \ge 0` (``side = 1``), in
      :math:`U` as above (family ``"limits"``, label ``node``).

    ``hists``: the rows at these histories only (node rows at their nodes); columns keep their indices.
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
    key_all = np.asarray(space.node_key)  # each node's row in the stacked period tables
    q = joint_transition(env, nums)
    nodes_all = (hists[:, None] * k + np.arange(k)[None, :]).reshape(-1)  # the nodes of the rows' histories
    flows = nums.flows()  # (n, P K)
    parts: list[tuple] = []

    def next_terms(nodes: np.ndarray, law: np.ndarray, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row position, node of U, coefficient) of ``scale * delta * sum_theta' law(theta'|g) U(g theta')``."""
        child = child_all[nodes]
        (pos,) = np.nonzero(child >= 0)
        coef = nums.delta * law[pos] * (scale[pos][:, None] if np.ndim(scale) else scale)  # (E, K)
        kid_nodes = child[pos][:, None] * k + np.arange(k)[None, :]
        return np.repeat(pos, k), kid_nodes.reshape(-1), coef.reshape(-1)

    for i in range(env.n_agents):
        base = i * n_nodes
        m_count = env.others_count(i)
        prof = env.profile_index(i, np.arange(counts[i])[:, None], np.arange(m_count)[None, :])  # (K_i, M)
        cond = conditional_beliefs(space, i, nums, hists=hists)  # (H, K_i, M)
        table = np.asarray(space.hist_table)[hists]  # (H,): each row's period table
        n_tables = env.n_allocation_periods
        gains = np.stack([flow_gain(nums.alloc, nums.valuation[i], prof + p * k) for p in range(n_tables)])
        for t, r in ic_pairs(counts[i], local=(ic == "local")):
            w = cond[:, t, :] if ic != "ex_post" else nums.ones((n_rows_h, m_count))  # (H, M)
            loc = np.repeat(np.arange(n_rows_h)[:, None], m_count, axis=1)
            if ic == "ex_post":
                loc = np.arange(n_rows_h * m_count).reshape(n_rows_h, m_count)
            nodes_t = hists[:, None] * k + prof[t][None, :]
            nodes_r = hists[:, None] * k + prof[r][None, :]
            rows = [loc.reshape(-1), loc.reshape(-1)]
            cols = [base + nodes_t.reshape(-1), base + nodes_r.reshape(-1)]
            vals = [w.reshape(-1), -w.reshape(-1)]
            gap = joint_transition(env, nums, deviator=i, true_type=t) - q  # (P K, K), rows: reported profiles
            pos, kid, coef = next_terms(nodes_r.reshape(-1), gap[key_all[nodes_r.reshape(-1)]], -w.reshape(-1))
            rows.append(loc.reshape(-1)[pos])
            cols.append(base + kid)
            vals.append(coef)
            gain = gains[table][:, t, r, :]  # (H, M): the flow gain at each row's period table
            labels = {"agent": i, "hist": hists, "type": t, "misreport": r}
            if ic == "ex_post":
                labels = {**labels, "hist": np.repeat(hists, m_count), "others": np.tile(np.arange(m_count), n_rows_h)}
                parts.append(("ic", rows, cols, vals, gain.reshape(-1), labels))
            else:
                parts.append(("ic", rows, cols, vals, (w * gain).sum(axis=1), labels))
        if ir == "ex_post":
            own = env.profile_types()[nodes_all % k, i]
            out_n = nums.array(np.asarray([0.0 if outside is None else outside[i][t] for t in range(counts[i])]))[own]
            loc = np.arange(nodes_all.size)
            labels = {"agent": i, "hist": nodes_all // k, "type": own, "node": nodes_all}
            parts.append(("ir", [loc], [base + nodes_all], [nums.ones((nodes_all.size,))], out_n, labels))
        else:
            ir_at = np.arange(n_rows_h) if ir == "interim" else np.arange(1) if has_root else np.arange(0)
            for t in range(counts[i]):
                level = 0.0 if outside is None else outside[i][t]
                w = cond[ir_at, t, :]  # (n, M)
                loc = np.repeat(np.arange(ir_at.size)[:, None], m_count, axis=1)
                nodes = hists[ir_at][:, None] * k + prof[t][None, :]
                out_t = nums.array(np.full(ir_at.size, level, dtype=object))
                labels = {"agent": i, "hist": hists[ir_at], "type": t}
                parts.append(("ir", [loc.reshape(-1)], [base + nodes.reshape(-1)], [w.reshape(-1)], out_t, labels))
        lo, hi = (None, None) if limits is None else (limits[0][i], limits[1][i])
        for side, bound, sign in ((0, lo, 1), (1, hi, -1)):
            if bound is None or not np.isfinite(bound):
                continue
            # sign * (x_i(g) - bound) >= 0 with x_i(g) = flow_i(g) - U_i(g) + delta E[U_i(g theta')]
            loc = np.arange(nodes_all.size)
            pos, kid, coef = next_terms(nodes_all, q[key_all[nodes_all]], nums.full((1,), sign)[0])
            rows = [loc, pos]
            cols = [base + nodes_all, base + kid]
            vals = [nums.full((nodes_all.size,), -sign), coef]
            b = (nums.array(np.full(nodes_all.size, float(bound), dtype=object)) - flows[i][key_all[nodes_all]]) * sign
            labels = {"agent": i, "hist": nodes_all // k, "node": nodes_all, "side": side}
            parts.append(("limits", rows, cols, vals, b, labels))
    if budget == "ex_post":
        # sum_i x_i(g) = 0: sum_i [-U_i(g) + delta E U_i(g theta')] = -sum_i flow_i(g), an equality
        loc = np.arange(nodes_all.size)
        pos, kid, coef = next_terms(nodes_all, q[key_all[nodes_all]], nums.ones((1,))[0])
        rows, cols, vals = [], [], []
        for i in range(env.n_agents):
            base = i * n_nodes
            rows += [loc, pos]
            cols += [base + nodes_all, base + kid]
            vals += [-nums.ones((nodes_all.size,)), coef]
        b = -flows.sum(axis=0)[key_all[nodes_all]]
        parts.append(("budget", rows, cols, vals, b, {"hist": nodes_all // k, "node": nodes_all, "free": True}))
    bh = hists if budget == "interim" else hists[:1] if has_root and budget == "ex_ante" else hists[:0]
    if budget in ("interim", "ex_ante") and bh.size:
        flow = flows.sum(axis=0)[key_all][None, :]  # welfare at every node
        w_node = continuation_values(space, flow, nums, hists=None if sub is None else bh)[0].reshape(n_hist, k)
        bel = joint_beliefs(space, nums, hists=bh)  # (n, K)
        w_hist = np.einsum("hk,hk->h", w_node[bh], bel)
        loc = np.repeat(np.arange(bh.size)[:, None], k, axis=1).reshape(-1)
        nodes = (bh[:, None] * k + np.arange(k)[None, :]).reshape(-1)
        rows = [loc] * env.n_agents
        cols = [i * n_nodes + nodes for i in range(env.n_agents)]
        vals = [-bel.reshape(-1)] * env.n_agents
        parts.append(("budget", rows, cols, vals, -w_hist, {"hist": bh}))
    joint = joint_beliefs(space, nums)
    return _assemble(parts, env.n_agents * n_nodes, [i * n_nodes for i in range(env.n_agents)], [joint] * env.n_agents)


def _assemble(parts: list[tuple], n_cols: int, offsets: list[int], marginals: list[np.ndarray]) -> InterimRows:
    """Labelled rows from ``(family, rows, cols, vals, b, labels)`` parts; ``labels`` maps a field of
    :data:`LABELS` to a number or one entry per row (missing fields are ``-1``; ``free`` is ``False``)."""
    all_rows, all_cols, all_vals, all_b, fam = [], [], [], [], []
    lab: dict[str, list] = {name: [] for name in (*LABELS, "free")}
    offset = 0
    for family, rows, cols, vals, b, labels in parts:
        n_r = int(np.asarray(b).shape[0])
        all_rows.append(np.concatenate(rows) + offset)
        all_cols.append(np.concatenate(cols))
        all_vals.append(np.concatenate(vals))
        all_b.append(np.asarray(b))
        fam += [family] * n_r
        for name in LABELS:
            lab[name].append(np.broadcast_to(np.asarray(labels.get(name, -1), dtype=np.int64), (n_r,)))
        lab["free"].append(np.full(n_r, bool(labels.get("free", False))))
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
        *(np.concatenate(lab[name]) for name in LABELS),
        marginals,
        np.concatenate(lab["free"]),
    )

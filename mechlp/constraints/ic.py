r"""Incentive compatibility rows (one-shot deviations; Lamba 2022, Definition 1; docs/design.md section 6.4).

For agent ``i``, history ``h``, true type ``t`` and report ``r != t`` (others truthful, truth afterwards):

.. math::
   \bar U_i(t|h) - \bar U_i(r|h)
   - \delta \sum_{m} P(m|h) \sum_{\theta'} [P_t(\theta'|r,m) - P(\theta'|r,m)]\, U_i((h,(r,m))\theta')
   \;\ge\; \sum_m P(m|h) \sum_a p(a|r,m) [v_i(t,a) - v_i(r,a)]

with :math:`\bar U_i(t|h) = \sum_m P(m|h) U_i(h,(t,m))` and ``m`` the others' profile. With correlated types
(``env.correlated``) :math:`P(m|h)` is :math:`P(m|t, h)`, conditioned on the true type, and :math:`P_t(\theta'|r, m)`
is the joint kernel's row at ``(t, m)`` under the allocation of ``(r, m)``
(:func:`mechlp.model.beliefs.joint_transition`). The child node records
the report ``r``; agent ``i``'s type moves on from ``t`` (:math:`P_t`).

Modes: ``"bayesian"`` (interim, the default), ``"ex_post"`` (within-period ex post: one row per ``m``, weights 1),
``"local"`` (adjacent types only; valid with monotone allocations and FOSD kernels, Lamba appendix 9.1,
and to be re-verified globally after solving).
"""

from __future__ import annotations

import numpy as np

from mechlp.constraints._common import AgentView
from mechlp.lp.program import Block, Variables
from mechlp.model.question import parse_notion


def ic_blocks(variables: Variables, views: list[AgentView], mode: str = "bayesian") -> list[Block]:
    mode = parse_notion("ic", mode)
    space = variables.space
    env = space.env
    k = env.n_profiles
    delta = env.discount
    n_hist = space.n_hist
    hists = np.arange(n_hist, dtype=np.int64)
    blocks = []
    for view in views:
        i = view.agent
        m_count = view.n_others
        for t, r in view.type_pairs(local=(mode == "local")):
            w = view.belief(t)  # (n_hist, M): P(m|t, h) (the same for every t with independent types)
            nodes_t = hists[:, None] * k + view.prof[t][None, :]
            nodes_r = hists[:, None] * k + view.prof[r][None, :]
            table = space.hist_table  # (n_hist,): each history's period table
            stationary = len(view.flow_gain) == 1
            gain = view.flow_gain[0, t, r] if stationary else view.flow_gain[:, t, r][table]  # (M,) or (n_hist, M)
            if mode == "ex_post":
                n_rows = n_hist * m_count
                row_of = np.arange(n_rows, dtype=np.int64).reshape(n_hist, m_count)
                weight = np.ones_like(w)
                rhs = np.broadcast_to(gain, (n_hist, m_count)).reshape(-1).copy()
                labels = {
                    "agent": i,
                    "hist": np.repeat(hists, m_count),
                    "type": t,
                    "misreport": r,
                    "others": np.tile(np.arange(m_count), n_hist),
                }
            else:
                n_rows = n_hist
                row_of = np.repeat(hists[:, None], m_count, axis=1)
                weight = w
                rhs = w @ gain if stationary else (w * gain).sum(axis=1)
                labels = {"agent": i, "hist": hists, "type": t, "misreport": r}
            rows = [row_of.reshape(-1), row_of.reshape(-1)]
            cols = [variables.U(i, nodes_t).reshape(-1), variables.U(i, nodes_r).reshape(-1)]
            vals = [weight.reshape(-1), -weight.reshape(-1)]
            gap = view.transition_gap(t, r)  # (M, K)
            child = space.child_hist[nodes_r]  # (n_hist, M)
            has = child >= 0
            if delta != 0 and has.any():
                hh, mm = np.nonzero(has)
                coef = -delta * weight[hh, mm][:, None] * (gap[0, mm] if stationary else gap[table[hh], mm])  # (E, K)
                kid_cols = variables.U(i, child[hh, mm][:, None] * k + np.arange(k))
                rows.append(np.repeat(row_of[hh, mm], k))
                cols.append(kid_cols.reshape(-1))
                vals.append(coef.reshape(-1))
            rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
            nz = vals != 0
            blocks.append(Block("ic", n_rows, rows[nz], cols[nz], vals[nz], rhs, np.full(n_rows, np.inf), labels))
    return blocks

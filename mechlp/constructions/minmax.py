r"""Fees of a mechanism on top of the static discrete VCG (Lamba 2022, section 6.1).

For a tight mechanism that implements the efficient allocation, every agent's interim expected payment at a
history differs from the static VCG payment by an amount that does not depend on the agent's own type: the
per-period *fee*

.. math::
   z_i(h) = \bar x_i(\theta_i|h) - \bar x^{vcg}_i(\theta_i|h), \qquad
   \bar x_i(\theta_i|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h)\, x_i(h, (\theta_i, \theta_{-i})).

Interim payments are unique for the min-max mechanism (its interim utilities are), so the fee is a property of
the LP's answer, not of the particular ex post transfers the solver returned. :func:`vcg_fees` computes
``z_i(h)`` for every own type and reports the spread across types: a spread above the tolerance means the
mechanism is *not* "VCG plus a fee" (e.g. without FOSD).
"""

from __future__ import annotations

import numpy as np

from mechlp.constructions.vcg import discrete_vcg_transfers
from mechlp.model.beliefs import interim_expectation, marginal_beliefs
from mechlp.model.mechanism import Mechanism

__all__ = ["vcg_fees", "markov_fee_table"]


def vcg_fees(mechanism: Mechanism) -> tuple[list[np.ndarray], list[float]]:
    r"""Per agent: the fee at every history (averaged over own types) and the largest spread across own types.

    The fee of own type ``t`` at ``h`` is the interim expected excess over the VCG payment,
    :math:`\sum_{\theta_{-i}} P(\theta_{-i}|h) (x_i - x_i^{vcg})(h, (t, \theta_{-i}))`, and ``0`` for types of
    probability zero at ``h``.
    """
    space = mechanism.space
    env = space.env
    excess = mechanism.transfers - discrete_vcg_transfers(env)[:, space.node_profile]  # (n, N)
    margs = marginal_beliefs(space)
    fees, spreads = [], []
    for i in range(env.n_agents):
        z = np.where(margs[i] > 0, interim_expectation(space, i, excess[i]), 0.0)  # (n_hist, K_i)
        fees.append(z.mean(axis=1))
        spreads.append(float(np.max(z.max(axis=1) - z.min(axis=1))))
    return fees, spreads


def markov_fee_table(mechanism: Mechanism) -> dict:
    """Bilateral trade on the Markov space: ``{agent: {"first": z1, "by_state": {other's prev label: z}}}``.

    Lamba's fee ``z_B(c)`` depends only on the seller's previous report; the table reports, for each label of
    the other agent, the fee averaged over the agent's own previous report, and ``"spread"`` records the
    largest deviation from that (over own types and own previous reports; zero for a Markov VCG-plus-fee
    mechanism).
    """
    space = mechanism.space
    env = space.env
    if space.kind != "markov" or env.n_agents != 2:
        raise ValueError("markov_fee_table needs a two-agent environment on the Markov space")
    fees, spreads = vcg_fees(mechanism)
    prev = env.profile_types()  # previous profile of state 1 + s
    table = {}
    for i, ag in enumerate(env.agents):
        other = 1 - i
        z = fees[i][1:]
        by_state, spread = {}, spreads[i]
        for lab_idx, label in enumerate(env.agents[other].types):
            vals = z[prev[:, other] == lab_idx]
            by_state[label] = float(vals.mean())
            spread = max(spread, float(vals.max() - vals.min()))
        table[ag.name] = {
            "first": float(fees[i][0]),
            "by_state": by_state,
            "spread": spread,
            "other": env.agents[other].name,
        }
    return table

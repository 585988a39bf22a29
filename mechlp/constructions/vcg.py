r"""The static VCG mechanism for discrete bilateral trade, adjusted for gaps in the type sets.

With finite value and cost sets the textbook VCG payments (the buyer pays the seller's cost, the seller is
paid the buyer's value) leave rents that the gaps between types allow the designer to extract. The
gap-adjusted version (Kos and Manea 2009; used as the starting point of Lamba 2022, section 5) charges the
*threshold* types instead. On trade (:math:`v > c`, the efficient rule):

.. math::
   x_B^{vcg}(v, c) = \min\{v' \in \mathcal V : v' > c\}, \qquad
   \text{seller receives } \max\{c' \in \mathcal C : v > c'\},

and nothing changes hands without trade. In the project convention (docs/design.md section 1) transfers are
payments *to* the designer, so the seller's entry is minus her receipt:

.. math::
   x_S^{vcg}(v, c) = -\max\{c' \in \mathcal C : v > c'\}\,\mathbb 1[v > c].

Both payments depend on the agent's own report only through whether trade happens, and trade is monotone in
each report, so the mechanism is (within-period ex post) incentive compatible and individually rational;
local incentive constraints bind.
"""

from __future__ import annotations

import numpy as np

from mechlp.model.environment import Environment
from mechlp.model.exact import MODEL_DENOMINATOR, to_fractions
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import StateSpace

__all__ = ["discrete_vcg_transfers", "discrete_vcg", "check_bilateral_trade"]


def check_bilateral_trade(env: Environment, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate that ``env`` is a two-agent bilateral-trade environment with the efficient rule.

    Parameters
    ----------
    env : Environment
    what : str
        Name of the construction, used in error messages.

    Returns
    -------
    values, costs : ndarray
        The buyer's values and the seller's costs (ascending).

    Raises
    ------
    ValueError
        When ``env.meta["kind"]`` is not ``"bilateral_trade"``, the agents are not (buyer, seller) with
        numeric ``values``, or the allocation is not "trade iff v > c".
    """
    kind = env.meta.get("kind")
    if kind != "bilateral_trade":
        raise ValueError(
            f"{what} needs a bilateral-trade environment (env.meta['kind'] == 'bilateral_trade', as built by "
            f"mechlp.model.environment.bilateral_trade); got kind {kind!r} for environment {env.name!r}"
        )
    if env.n_agents != 2:
        raise ValueError(f"{what} needs exactly two agents (buyer, seller); environment has {env.n_agents}")
    buyer, seller = env.agents
    if buyer.values is None or seller.values is None:
        raise ValueError(f"{what} needs numeric type values: agents[0] (buyer) values and agents[1] (seller) costs")
    if env.actions != ("no_trade", "trade"):
        raise ValueError(f"{what} needs actions ('no_trade', 'trade'); got {env.actions}")
    v = buyer.values[env.profile_types()[:, 0]]
    c = seller.values[env.profile_types()[:, 1]]
    efficient = (v > c).astype(float)
    bad = np.flatnonzero(np.abs(env.allocation[:, 1] - efficient) > 0)
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"{what} needs the efficient rule (trade iff v > c); the allocation differs at profile {k} "
            f"{env.profile_labels(k)}: P(trade) = {env.allocation[k, 1]:g}"
        )
    return np.asarray(buyer.values, dtype=float), np.asarray(seller.values, dtype=float)


def discrete_vcg_transfers(env: Environment) -> np.ndarray:
    r"""Gap-adjusted static VCG payments for bilateral trade at every type profile.

    Lamba (2022), section 5 (after Kos and Manea 2009). On trade (:math:`v > c`) the buyer pays the lowest
    value that still trades against ``c``, :math:`\min\{v' \in \mathcal V: v' > c\}`, and the seller receives
    the highest cost that still trades against ``v``, :math:`\max\{c' \in \mathcal C: v > c'\}`; without
    trade both pay zero.

    Parameters
    ----------
    env : Environment
        A bilateral-trade environment (``env.meta["kind"] == "bilateral_trade"``): ``agents[0]`` is the buyer
        with ``values`` = valuations, ``agents[1]`` the seller with ``values`` = costs, efficient allocation.
        Ties ``v == c`` are allowed (no trade there).

    Returns
    -------
    ndarray, shape (2, n_profiles)
        Payments to the designer (project convention): row 0 the buyer's, row 1 the seller's, which is
        minus her receipt. Profiles in C order over agents, buyer first.

    Raises
    ------
    ValueError
        For an environment that is not bilateral trade with the efficient rule.
    """
    values, costs = check_bilateral_trade(env, "discrete_vcg_transfers")
    types = env.profile_types()
    v = values[types[:, 0]]
    c = costs[types[:, 1]]
    trade = v > c
    # first value strictly above c (exists on trade since v > c); last cost strictly below v.
    i_buy = np.minimum(np.searchsorted(values, c, side="right"), values.size - 1)
    i_sell = np.maximum(np.searchsorted(costs, v, side="left") - 1, 0)
    out = np.zeros((2, env.n_profiles))
    out[0] = np.where(trade, values[i_buy], 0.0)
    out[1] = 0.0 - np.where(trade, costs[i_sell], 0.0)
    return out


def discrete_vcg(space: StateSpace) -> Mechanism:
    """The gap-adjusted static VCG mechanism repeated at every node of ``space``.

    Transfers are ``x[:, g] = discrete_vcg_transfers(env)[:, g % K]`` (history independent). See
    :func:`discrete_vcg_transfers`; Lamba (2022), section 5.

    Parameters
    ----------
    space : StateSpace
        A history tree or Markov space of a bilateral-trade environment.

    Returns
    -------
    Mechanism
    """
    x = discrete_vcg_transfers(space.env)
    exact = to_fractions(x, MODEL_DENOMINATOR)  # the payments are model numbers (values and costs)
    return Mechanism(space, x[:, space.node_profile], exact_transfers=exact[:, space.node_profile])

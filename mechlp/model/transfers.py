r"""Transfers from interim utilities, interim expected payments, and ex post rebalancing (pure model maths).

Notation of docs/design.md section 4: transfers :math:`x_i(h, \theta)` are payments *from* agent ``i`` *to* the
designer at node :math:`(h, \theta)`; :math:`\text{flow}_i(\theta) = \sum_a p(a|\theta) v_i(\theta_i, a)`.

Transfers from interim utilities (:func:`transfers_from_interim`)
    The recursion of docs/design.md section 4.3 (Lamba 2022, eq. 3) solved for :math:`x`, with ex post utilities set to
    the given interim utilities, :math:`U_i(h, \theta) = \bar U_i(\theta_i|h)` (constant in :math:`\theta_{-i}`):

    .. math::
       x_i(h, \theta) = \text{flow}_i(\theta) - \bar U_i(\theta_i|h)
          + \delta \sum_{\theta'} P(\theta'|\theta)\, \bar U_i(\theta'_i|\text{child}(h, \theta))
       = \text{flow}_i(\theta) - \bar U_i(\theta_i|h) + \delta \sum_{t'} P_i(t'|\theta)\, \bar U_i(t'|h\theta),

    :math:`P_i(\cdot|\theta)` the law of agent ``i``'s next type, a marginal of the truthful profile kernel
    (no continuation where the game ends). The mechanism's interim utilities are then the given ones, so it
    satisfies exactly the Bayesian IC, interim IR and budget rows those interim utilities satisfy.

Interim expected payments (:func:`interim_payments`)
    :math:`\bar x_i(t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h)\, x_i(h, (t, \theta_{-i}))`, for every own type
    (also those of probability zero at ``h``).

Ex post rebalancing (Lamba 2022, Proposition 1, eqs. 12-13; :func:`rebalance`)
    .. math::
       \hat x_i(h, \theta) = \bar x_i(\theta_i|h) - \frac{1}{n-1} \sum_{j \ne i}
          \bigl(\bar x_j(\theta_j|h) - E[\bar x_j|h]\bigr) \qquad (n \ge 2).

    Every centred term appears :math:`n-1` times with weight :math:`1/(n-1)`, so
    :math:`\sum_i \hat x_i(h, \theta) = \sum_j E[\bar x_j|h]`, the expected flow surplus, at every node; types are
    independent across agents, so :math:`E[\hat x_i|\theta_i, h] = \bar x_i(\theta_i|h)`: interim payments, hence
    interim utilities, Bayesian IC and interim IR, are unchanged. The redistribution step alone
    (:func:`redistribute`) is also Athey and Segal's (2007) eq. (5.1) for their incentive payments.

Every function works in either arithmetic: floats, or object arrays of :class:`fractions.Fraction` (pass
``nums=Numbers(env, exact=True)`` and exact marginals), so exact certificates use the same formulas; in
fractions :math:`\sum_i \hat x_i = \sum_j E[\bar x_j|h]` holds with no rounding at all.
"""

from __future__ import annotations

import numpy as np

from mechlp.model.beliefs import expected_continuation, joint_transition, marginal_beliefs, others_product
from mechlp.model.exact import Numbers
from mechlp.model.spaces import StateSpace, distinct_continuations

__all__ = [
    "transfers_from_interim",
    "transfers_from_utilities",
    "interim_payments",
    "rebalance",
    "redistribute",
    "balanced_transfers",
]


def _check_per_agent(space: StateSpace, arrays: list[np.ndarray], name: str) -> None:
    """``arrays`` holds one ``(n_hist, K_i)`` array per agent (``ValueError`` naming ``name`` and the index)."""
    env = space.env
    if len(arrays) != env.n_agents:
        raise ValueError(f"{name} has {len(arrays)} entries; expected {env.n_agents}, one per agent")
    for i, (arr, k_i) in enumerate(zip(arrays, env.type_counts, strict=True)):
        if np.shape(arr) != (space.n_hist, k_i):
            raise ValueError(
                f"{name}[{i}] has shape {np.shape(arr)}; expected ({space.n_hist}, {k_i}) (histories x own types)"
            )


def _refuse_correlated(space: StateSpace, what: str) -> None:
    """Refuse the independence-only rebalancing on a correlated environment."""
    if space.env.correlated:
        raise ValueError(
            f"{what} keeps interim payments only when types are independent across agents, but environment "
            f"{space.env.name!r} has a joint_transition (correlated types); ex post budget balance is answered by "
            "the LP"
        )


def transfers_from_utilities(space: StateSpace, utilities: np.ndarray, nums: Numbers | None = None) -> np.ndarray:
    r"""``(n_agents, n_nodes)`` transfers that implement given ex post utilities :math:`U_i(h, \theta)`.

    .. math::
       x_i(g) = \text{flow}_i(\theta_g) - U_i(g) + \delta\, E[U_i \mid g]

    (the recursion of Lamba 2022, eq. 3, solved for :math:`x`; :func:`mechlp.model.beliefs.expected_continuation`,
    zero where the game ends). Valid for every environment, also with correlated types.

    Parameters
    ----------
    space : StateSpace
    utilities : ndarray, shape (n_agents, n_nodes)
        Floats, or fractions with an exact ``nums``.
    nums : Numbers, optional

    Returns
    -------
    ndarray, shape (n_agents, n_nodes)
    """
    env = space.env
    u = np.asarray(utilities)
    if u.shape != (env.n_agents, space.n_nodes):
        raise ValueError(f"utilities has shape {u.shape}; expected {(env.n_agents, space.n_nodes)} (agents x nodes)")
    nums = Numbers(env, exact=False) if nums is None else nums
    flow = nums.flows()[:, np.asarray(space.node_key)]  # each node's period table
    return flow - u + nums.delta * expected_continuation(space, u, nums)


def _other_axes(n: int, i: int) -> tuple[int, ...]:
    return tuple(1 + j for j in range(n) if j != i)


def transfers_from_interim(space: StateSpace, interim: list[np.ndarray], nums: Numbers | None = None) -> np.ndarray:
    r"""``(n_agents, n_nodes)`` transfers with :math:`U_i(h,\theta) = \bar U_i(\theta_i|h)` (module docstring).

    Parameters
    ----------
    space : StateSpace
        History tree, Markov space or tree with a Markov tail.
    interim : list of ndarray
        Per agent ``(n_hist, K_i)``: :math:`\bar U_i(t|h)` (floats, or fractions with an exact ``nums``).
    nums : Numbers, optional
        The model's numbers in the arithmetic to use; ``None``: floats from the environment.

    Returns
    -------
    ndarray
        Floats, or an object array of fractions when ``nums.exact``.

    Raises
    ------
    ValueError
        When ``interim`` does not hold one ``(n_hist, K_i)`` array per agent.
    """
    _check_per_agent(space, interim, "interim")
    env = space.env
    n, k, n_hist = env.n_agents, env.n_profiles, space.n_hist
    types = env.profile_types()
    kids = np.asarray(space.child_hist).reshape(n_hist, k)  # node h*K + s is (h, s)
    live = np.flatnonzero(kids.max(axis=1) >= 0)  # histories with a continuation
    if live.size and live[-1] - live[0] + 1 == live.size:
        live = slice(int(live[0]), int(live[-1]) + 1)  # a block of histories (every space of mechlp): no copies
    kids_live = kids[live]
    ends = kids_live < 0  # nodes of such histories where the game ends (none on the spaces of mechlp)
    if ends.any():
        kids_live = np.maximum(kids_live, 0)
    if nums is None:
        flow = env.period_flow_values().transpose(1, 0, 2).reshape(n, -1)  # (n, P * K)
        q = joint_transition(env)
        delta = float(env.discount)
        zeros = np.zeros
    else:
        flow = nums.flows()  # (n, P * K)
        q = joint_transition(env, nums)
        delta = nums.delta
        zeros = nums.zeros
    q_full = q.reshape(q.shape[0], *env.type_counts)
    keys = np.asarray(space.node_key).reshape(n_hist, k)  # each node's row in the period tables
    # the continuation term depends on a node only through (child history, profile); gather once per distinct pair
    # when they repeat (Markov spaces, tails), else per node
    live_nodes = (np.arange(n_hist)[live][:, None] * k + np.arange(k)).reshape(-1)
    live_nodes = live_nodes[np.asarray(space.child_hist)[live_nodes] >= 0]
    uniq, inv = distinct_continuations(space, live_nodes)
    repeated = None
    if uniq.size < live_nodes.size and not ends.any():
        key_of = np.empty(uniq.size, dtype=np.int64)
        key_of[inv] = np.asarray(space.node_key)[live_nodes]  # the pair fixes the period: one key each
        repeated = (uniq, inv.reshape(kids_live.shape), key_of)
    x = zeros((n, space.n_nodes))
    for i in range(n):
        ubar = np.asarray(interim[i], dtype=float) if nums is None else np.asarray(interim[i])
        xi = x[i].reshape(n_hist, k)  # a view: rows are histories, columns current profiles
        xi[:] = flow[i][keys] - ubar[:, types[:, i]]
        if kids_live.size:
            own_next = q_full.sum(axis=_other_axes(n, i))  # (P * K, K_i): P_i(t'|theta) per period table
            if repeated is None and env.n_allocation_periods == 1:
                cont = np.einsum("hst,st->hs", ubar[kids_live], own_next)  # (H_live, K)
            elif repeated is None:
                cont = np.einsum("hst,hst->hs", ubar[kids_live], own_next[keys[live]])
            else:  # one row per distinct (child history, profile): a Markov space has K of them
                uniq, inv, key_of = repeated
                cont = np.einsum("ut,ut->u", ubar[uniq // k], own_next[key_of])[inv]
            if ends.any():
                cont[ends] = 0 * cont[ends]
            xi[live] += delta * cont
    return x


def interim_payments(space: StateSpace, transfers: np.ndarray, marginals: list[np.ndarray]) -> list[np.ndarray]:
    r"""Interim expected payments :math:`\bar x_i(t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h) x_i(h, (t, \theta_{-i}))`.

    :math:`P(\theta_{-i}|h)` is the product of the others' given marginals
    (:func:`mechlp.model.beliefs.others_product`, the arithmetic of the marginals).

    Parameters
    ----------
    space : StateSpace
    transfers : ndarray, shape (n_agents, n_nodes)
        Floats or fractions.
    marginals : list of ndarray
        Per agent ``(n_hist, K_j)``: :math:`P_j(\cdot|h)`, in the arithmetic of the answer.

    Returns
    -------
    list of ndarray
        Per agent ``(n_hist, K_i)``, defined for every own type (also those of probability zero at ``h``).

    Raises
    ------
    ValueError
        With correlated types (``env.correlated``): the others' belief then depends on the own type, and
        Lamba's rebalancing (which keeps these payments) assumes independence.
    """
    _refuse_correlated(space, "interim_payments")
    _check_per_agent(space, marginals, "marginals")
    env = space.env
    n, k = env.n_agents, env.n_profiles
    x = np.asarray(transfers)
    if x.shape != (n, space.n_nodes):
        raise ValueError(f"transfers has shape {x.shape}; expected {(n, space.n_nodes)} (agents x nodes)")
    out = []
    for i in range(n):
        w = (x[i].reshape(space.n_hist, k) * others_product(marginals, i, env)).reshape(space.n_hist, *env.type_counts)
        out.append(w.sum(axis=_other_axes(n, i)))
    return out


def redistribute(own: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    r"""Each agent keeps its own term and pays an equal share of everyone else's centred term.

    .. math::
       y_i = a_i - \frac{1}{n-1} \sum_{j \ne i} (a_j - m_j), \qquad \sum_i y_i = \sum_j m_j .

    With :math:`a_i = \bar x_i(\theta_i|h)` and :math:`m_i = E[\bar x_i|h]` this is Lamba's (2022) rebalancing
    (:func:`rebalance`); with :math:`a_i = -\gamma_i` and ``means=None`` (zero) Athey and Segal's (2007) balanced
    transfers, eq. (5.1), which sum to zero.

    Parameters
    ----------
    own : ndarray, shape (n, ...)
        :math:`a_i` per agent (floats or fractions), ``n >= 2``.
    means : ndarray of the same shape, optional
        :math:`m_i`; ``None``: zero.

    Returns
    -------
    ndarray, shape of ``own``

    Raises
    ------
    ValueError
        For fewer than two agents, or ``means`` of another shape.
    """
    n = own.shape[0]
    if n < 2:
        raise ValueError(f"redistribution needs at least two agents (own has {n} rows): the others pay the shares")
    if means is not None and np.shape(means) != own.shape:
        raise ValueError(f"means has shape {np.shape(means)}; expected {own.shape}, the shape of own")
    cent = own if means is None else own - means
    return own - (cent.sum(axis=0, keepdims=True) - cent) / (n - 1)


def rebalance(space: StateSpace, transfers: np.ndarray, marginals: list[np.ndarray]) -> np.ndarray:
    r"""Lamba's (2022, Proposition 1) node-by-node rebalancing that keeps every interim expected payment.

    :math:`\hat x_i(h, \theta) = \bar x_i(\theta_i|h) - \frac{1}{n-1} \sum_{j \ne i}(\bar x_j(\theta_j|h) -
    E[\bar x_j|h])` (module docstring): :math:`\sum_i \hat x_i(h, \theta)` is the expected flow surplus
    :math:`\sum_j E[\bar x_j|h]`, hence zero at every node when :math:`\Pi(h) = 0` at every history.

    Parameters
    ----------
    space : StateSpace
    transfers : ndarray, shape (n_agents, n_nodes)
        Floats or fractions.
    marginals : list of ndarray
        Per agent ``(n_hist, K_j)``: :math:`P_j(\cdot|h)`, in the arithmetic of the answer.

    Returns
    -------
    ndarray, shape (n_agents, n_nodes)

    Raises
    ------
    ValueError
        With fewer than two agents, or arrays of the wrong shapes.
    """
    env = space.env
    _refuse_correlated(space, "rebalance (Lamba 2022, Proposition 1)")
    if env.n_agents < 2:
        raise ValueError(f"ex post budget balance needs at least two agents; the environment has {env.n_agents}")
    xbar = interim_payments(space, transfers, marginals)
    types = env.profile_types()
    own = np.stack([xbar[i][:, types[:, i]] for i in range(env.n_agents)])  # (n, H, K): node h*K + s is (h, s)
    means = np.stack([(xbar[i] * marginals[i]).sum(axis=1) for i in range(env.n_agents)])  # (n, H)
    return redistribute(own, np.broadcast_to(means[:, :, None], own.shape)).reshape(env.n_agents, space.n_nodes)


def balanced_transfers(
    space: StateSpace, interim: list[np.ndarray], surplus: np.ndarray, nums: Numbers | None = None
) -> np.ndarray:
    r"""Ex post balanced transfers from interim utilities whose surplus :math:`\Pi(h)` is nonnegative.

    The surplus is handed to the agents in equal shares at every history (Lamba 2022, Corollary 5),

    .. math::
       \bar U'_i(t|h) = \bar U_i(t|h) + \Pi(h)/n ,

    which leaves every Bayesian IC row unchanged (a constant in the agent's own type at each history cancels
    from the deviation gain), raises every interim IR row by :math:`\Pi(h)/n \ge 0` and makes :math:`\Pi'(h) = 0`;
    the transfers that implement :math:`\bar U'` (:func:`transfers_from_interim`) are then rebalanced node by
    node (:func:`rebalance`, Proposition 1), so :math:`\sum_i \hat x_i(h, \theta) = 0` at every node (exactly in
    rationals, to rounding in floats).

    Parameters
    ----------
    space : StateSpace
    interim : list of ndarray
        Per agent ``(n_hist, K_i)``: :math:`\bar U_i(t|h)`.
    surplus : ndarray, shape (n_hist,)
        :math:`\Pi(h)` of the mechanism with those interim utilities.
    nums : Numbers, optional
        The arithmetic (default floats); with exact numbers pass exact ``interim`` and ``surplus``.

    Returns
    -------
    ndarray, shape (n_agents, n_nodes)
    """
    env = space.env
    _check_per_agent(space, interim, "interim")
    if np.shape(surplus) != (space.n_hist,):
        raise ValueError(f"surplus has shape {np.shape(surplus)}; expected ({space.n_hist},) (one per history)")
    share = np.asarray(surplus, dtype=object if nums is not None and nums.exact else float) / env.n_agents
    shared = [u + share[:, None] for u in interim]
    return rebalance(space, transfers_from_interim(space, shared, nums), marginal_beliefs(space, nums))

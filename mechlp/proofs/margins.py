r"""Exactly feasible mechanisms: a mechanism whose exact re-check shows zero violations.

A solver's optimum sits on binding constraints, so its float transfers violate some rows by ~1e-16 when they are
re-checked in rationals. A *certificate of feasibility* therefore needs room: :func:`exact_feasible_mechanism`
solves the interim formulation (:mod:`mechlp.constraints.interim`) with every row tightened by a margin
``epsilon`` (IC, IR and budget rows hold with slack at least ``epsilon``), takes the interim utilities
:math:`\bar U` exactly as the floats they are, and builds transfers in rationals:

.. math::
   U_i(h,\theta) = \bar U_i(\theta_i|h), \qquad
   x_i(h,\theta) = \sum_a p(a|\theta) v_i(\theta_i,a) - U_i(h,\theta)
      + \delta \sum_{\theta'} P(\theta'|\theta)\, U_i(\text{child}(h,\theta), \theta'),

so every slack is the float LP's slack up to rounding far below ``epsilon``. For ex post budget balance the
surplus is then handed to the agents in equal shares (Lamba 2022, Corollary 5), which makes :math:`\Pi(h) = 0`
exactly, and the payments are rebalanced node by node (Proposition 1; docs/design.md section 9):

.. math::
   \hat x_i(h,\theta) = \bar x_i(\theta_i|h)
      - \tfrac{1}{n-1}\sum_{j\ne i}\bigl(\bar x_j(\theta_j|h) - E[\bar x_j|h]\bigr),

exactly, so :math:`\sum_i \hat x_i = 0` at every node with no rounding at all. Bayesian IC and interim IR are
unchanged (interim payments are).

The margin costs at most ``epsilon`` per row; when the constraints leave no room (e.g. two types that no
allocation separates, or :math:`\Pi^*(h) = 0` exactly) the margin LP is infeasible and no exact certificate is
produced (the float verification still stands).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from mechlp.backends.highs import solve_arrays
from mechlp.constraints import outside_options
from mechlp.constraints.interim import interim_rows
from mechlp.model.exact import Numbers, to_fractions, transition
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import StateSpace
from mechlp.verify.checker import verify

__all__ = ["exact_feasible_mechanism", "transfers_from_interim", "rebalance", "DEFAULT_MARGIN"]

DEFAULT_MARGIN = 1e-6


def transfers_from_interim(space: StateSpace, nums: Numbers, interim: list[np.ndarray]) -> np.ndarray:
    r"""``(n, N)`` transfers with :math:`U_i(h,\theta) = \bar U_i(\theta_i|h)`, in ``nums``'s arithmetic."""
    env = space.env
    k = env.n_profiles
    types = env.profile_types()
    prof = space.node_profile
    hist = space.node_hist
    child = np.asarray(space.child_hist)
    nonterm = np.flatnonzero(child >= 0)
    q = transition(env, nums)
    x = nums.zeros((env.n_agents, space.n_nodes))
    for i in range(env.n_agents):
        flow = np.einsum("ka,ka->k", nums.alloc, nums.valuation[i][types[:, i]])[prof]
        u = interim[i][hist, types[prof, i]]
        cont = nums.zeros((space.n_nodes,))
        kids = u.reshape(space.n_hist, k)[child[nonterm]]
        cont[nonterm] = np.einsum("nk,nk->n", kids, q[prof[nonterm]])
        x[i] = flow - u + nums.delta * cont
    return x


def _others_weights(space: StateSpace, nums: Numbers, margs: list[np.ndarray], i: int) -> np.ndarray:
    """``(n_hist, K)``: :math:`P(\\theta_{-i}|h)` at every profile."""
    env = space.env
    types = env.profile_types()
    out = nums.ones((space.n_hist, env.n_profiles))
    for j in range(env.n_agents):
        if j != i:
            out = out * margs[j][:, types[:, j]]
    return out


def rebalance(space: StateSpace, nums: Numbers, x: np.ndarray, margs: list[np.ndarray]) -> np.ndarray:
    """Node-by-node ex post rebalancing keeping interim payments (see module docstring); any arithmetic."""
    env = space.env
    n, k = env.n_agents, env.n_profiles
    if n < 2:
        raise ValueError("ex post budget balance needs at least two agents")
    types = env.profile_types()
    xbar_nodes, mean = [], []
    for i in range(n):
        w = _others_weights(space, nums, margs, i)  # (H, K)
        xi = x[i].reshape(space.n_hist, k)
        own = types[:, i]
        xbar = nums.zeros((space.n_hist, env.agents[i].n_types))
        for t in range(env.agents[i].n_types):  # loop over own types
            cols = own == t
            xbar[:, t] = (xi[:, cols] * w[:, cols]).sum(axis=1)
        xbar_nodes.append(xbar[:, own])  # (H, K): xbar_i(theta_i|h) at each profile
        mean.append((xbar * margs[i]).sum(axis=1)[:, None])
    out = nums.zeros(x.shape)
    for i in range(n):
        others = sum(xbar_nodes[j] - mean[j] for j in range(n) if j != i)
        out[i] = (xbar_nodes[i] - others * (Fraction(1, n - 1) if nums.exact else 1.0 / (n - 1))).reshape(-1)
    return out


def exact_feasible_mechanism(
    space: StateSpace,
    *,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside_option=0.0,
    margin: float = DEFAULT_MARGIN,
):
    """A mechanism satisfying every row exactly, with its exact verification, or ``(None, reason)``.

    Supported: ``ic`` bayesian/local (verified against all misreports), ``ir`` interim/ex_ante, ``budget``
    interim/ex_ante/ex_post/none. Returns ``(mechanism, verification)`` where ``mechanism.exact_transfers`` holds
    the fractions and ``verification`` is ``verify(..., exact=True)``.
    """
    if ic not in ("bayesian", "local") or ir not in ("interim", "ex_ante"):
        return None, f"exact feasibility certificates need ic bayesian/local and ir interim/ex_ante (got {ic}, {ir})"
    if budget not in ("interim", "ex_ante", "ex_post", "none"):
        return None, f"exact feasibility certificates support budget interim/ex_ante/ex_post/none (got {budget})"
    env = space.env
    outside = outside_options(outside_option, env)
    rows_budget = "interim" if budget == "ex_post" else budget
    rows = interim_rows(space, Numbers(env, exact=False), ic, ir, rows_budget, outside)
    a = sp.csr_matrix((rows.vals.astype(float), (rows.rows, rows.cols)), shape=(rows.n_rows, rows.n_cols))
    lower = rows.b.astype(float) + margin
    # objective: the agents' expected interim utilities (the tightest mechanism within the margins)
    cost = np.zeros(rows.n_cols)
    for i, m in enumerate(rows.marginals):
        hh, tt = np.meshgrid(np.arange(m.shape[0]), np.arange(m.shape[1]), indexing="ij")
        cost[rows.col(i, hh.reshape(-1), tt.reshape(-1))] += m.reshape(-1)
    status, z, native = solve_arrays(
        a, lower, np.full(rows.n_rows, np.inf), np.full(rows.n_cols, -np.inf), np.full(rows.n_cols, np.inf), cost
    )
    if status != "optimal":
        return None, f"no mechanism satisfies every row with margin {margin:g} ({native})"
    nums = Numbers(env, exact=True)
    interim = []
    for i, m in enumerate(rows.marginals):
        hh, tt = np.meshgrid(np.arange(m.shape[0]), np.arange(m.shape[1]), indexing="ij")
        interim.append(to_fractions(z[rows.col(i, hh, tt)]))
    if budget == "ex_post":
        rows_x = interim_rows(space, nums, ic, ir, "interim", outside)
        pi = -rows_x.b[rows_x.family == "budget"]  # W(h), one per history
        for i, m in enumerate(rows_x.marginals):
            pi = pi - (interim[i] * m).sum(axis=1)
        share = Fraction(1, env.n_agents)
        interim = [u + (pi * share)[:, None] for u in interim]  # Pi(h) = 0 exactly afterwards
        x = rebalance(space, nums, transfers_from_interim(space, nums, interim), rows_x.marginals)
    else:
        x = transfers_from_interim(space, nums, interim)
    mech = Mechanism(space, x.astype(float), exact_transfers=x)
    check_ic = "bayesian" if ic == "local" else ic
    ver = verify(mech, ic=check_ic, ir=ir, budget=budget, outside_option=outside_option, exact=True)
    return mech, ver

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

(:func:`mechlp.model.transfers.transfers_from_interim`, in rationals), so every slack is the float LP's slack up
to rounding far below ``epsilon``. For ex post budget balance the surplus is then handed to the agents in equal
shares (Lamba 2022, Corollary 5), which makes :math:`\Pi(h) = 0` exactly, and the payments are rebalanced node
by node (Proposition 1; docs/design.md section 9):

.. math::
   \hat x_i(h,\theta) = \bar x_i(\theta_i|h)
      - \tfrac{1}{n-1}\sum_{j\ne i}\bigl(\bar x_j(\theta_j|h) - E[\bar x_j|h]\bigr),

exactly (:func:`mechlp.model.transfers.rebalance`), so :math:`\sum_i \hat x_i = 0` at every node with no
rounding at all. Bayesian IC and interim IR are unchanged (interim payments are).

The margin costs at most ``epsilon`` per row; when the constraints leave no room (e.g. two types that no
allocation separates, or :math:`\Pi^*(h) = 0` exactly) the margin LP is infeasible and no exact certificate is
produced (the float verification still stands).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mechlp.audit.verifier import verify
from mechlp.backends import solve_arrays
from mechlp.constraints.interim import interim_rows
from mechlp.model import tolerances
from mechlp.model.exact import Numbers, to_fractions
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.spaces import StateSpace
from mechlp.model.transfers import balanced_transfers, transfers_from_interim, transfers_from_utilities

__all__ = ["exact_feasible_mechanism", "DEFAULT_MARGIN"]

#: default margin on every row (:data:`mechlp.model.tolerances.EXACT_MARGIN`)
DEFAULT_MARGIN = tolerances.EXACT_MARGIN


def exact_feasible_mechanism(
    space: StateSpace,
    *,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside_option=0.0,
    margin: float = DEFAULT_MARGIN,
    question: Question | None = None,
    backend: str = "highs",
):
    """A mechanism satisfying every row exactly, with its exact verification, or ``(None, reason)``.

    Supported: ``ic`` bayesian/local (verified against all misreports), ``ir`` interim/ex_ante, ``budget``
    interim/ex_ante/ex_post/none. Returns ``(mechanism, verification)`` where ``mechanism.exact_transfers`` holds
    the fractions and ``verification`` is ``verify(..., exact=True)``. ``question`` (a
    :class:`~mechlp.model.question.Question`) replaces ``ic``, ``ir``, ``budget`` and ``outside_option``.
    ``backend`` (``"highs"`` or ``"cvxpy"``) solves the margin LP (:func:`mechlp.backends.solve_arrays`).
    """
    env = space.env
    q = question or Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option=outside_option)
    ic, ir, budget = q.ic, q.ir, q.budget
    if ic not in ("bayesian", "local") or ir not in ("interim", "ex_ante"):
        return None, f"exact feasibility certificates need ic bayesian/local and ir interim/ex_ante (got {ic}, {ir})"
    if budget not in ("interim", "ex_ante", "ex_post", "none"):
        return None, f"exact feasibility certificates support budget interim/ex_ante/ex_post/none (got {budget})"
    if env.correlated and budget == "ex_post":
        return None, (
            "exact feasibility certificates for ex post budget balance rebalance interim payments (Lamba 2022, "
            "Prop. 1), which needs independent types; this environment is correlated"
        )
    outside = list(q.outside)
    rows_budget = "interim" if budget == "ex_post" else budget
    rows = interim_rows(space, Numbers(env, exact=False), ic, ir, rows_budget, outside)
    a = sp.csr_matrix((rows.vals.astype(float), (rows.rows, rows.cols)), shape=(rows.n_rows, rows.n_cols))
    lower = rows.b.astype(float) + margin
    # objective: the agents' expected interim utilities (the tightest mechanism within the margins)
    cost = np.zeros(rows.n_cols)
    for i, m in enumerate(rows.marginals):
        hh, tt = np.meshgrid(np.arange(m.shape[0]), np.arange(m.shape[1]), indexing="ij")
        cost[rows.col(i, hh.reshape(-1), tt.reshape(-1))] += m.reshape(-1)
    out = solve_arrays(
        a,
        lower,
        np.full(rows.n_rows, np.inf),
        np.full(rows.n_cols, -np.inf),
        np.full(rows.n_cols, np.inf),
        cost,
        backend,
    )
    if out.status != "optimal":
        return None, f"no mechanism satisfies every row with margin {margin:g} ({out.message})"
    z = out.x
    nums = Numbers(env, exact=True)
    if env.correlated:  # the columns are ex post utilities U_i(h, theta) (mechlp.constraints.interim)
        u = to_fractions(z.reshape(env.n_agents, space.n_nodes))
        x = transfers_from_utilities(space, u, nums)
        mech = Mechanism(space, x.astype(float), exact_transfers=x)
        return mech, verify(mech, question=q.replace(ic="bayesian") if ic == "local" else q, exact=True)
    interim = []
    for i, m in enumerate(rows.marginals):
        hh, tt = np.meshgrid(np.arange(m.shape[0]), np.arange(m.shape[1]), indexing="ij")
        interim.append(to_fractions(z[rows.col(i, hh, tt)]))
    if budget == "ex_post":
        rows_x = interim_rows(space, nums, ic, ir, "interim", outside)
        pi = -rows_x.b[rows_x.family == "budget"]  # W(h), one per history
        for i, m in enumerate(rows_x.marginals):
            pi = pi - (interim[i] * m).sum(axis=1)
        x = balanced_transfers(space, interim, pi, nums)  # Pi(h) = 0 and sum_i x_i = 0 exactly
    else:
        x = transfers_from_interim(space, interim, nums)
    mech = Mechanism(space, x.astype(float), exact_transfers=x)
    ver = verify(mech, question=q.replace(ic="bayesian") if ic == "local" else q, exact=True)
    return mech, ver

r"""Impossibility certificates: Farkas multipliers over the labelled IC, IR and budget constraints, made exact.

Sign convention (the project's). Every constraint is written ``slack_r(mechanism) >= 0`` (IC: truthful minus
deviation payoff; IR: interim utility minus outside option; budget: :math:`\Pi(h)`). A certificate is a vector
``y >= 0`` over these rows such that

.. math::
   L(\text{mechanism}) = \sum_r y_r\, \text{slack}_r(\text{mechanism}) = -\gamma \quad\text{for every mechanism,}
   \qquad \gamma > 0 .

If a mechanism satisfied every row, ``L`` would be ``>= 0``: contradiction. In LP terms, with the rows
``A z >= b`` of the interim formulation (:mod:`mechlp.constraints.interim`): ``y >= 0``, ``A^T y = 0``,
``b^T y = gamma > 0``.

How a certificate is made (:func:`impossibility_certificate`):

1. build the interim rows in floats and solve the Farkas LP ``min 1^T y`` s.t. ``A^T y = 0``, ``b^T y = 1``,
   ``y >= 0`` with the chosen backend (:func:`mechlp.backends.solve_arrays`; our own LP, so presolve cannot
   hide the ray);
2. recompute the vertex exactly: on the support of the float solution, solve ``A_S^T y_S = 0``,
   ``b_S^T y_S = 1`` in rationals with the rows rebuilt from the model's numbers (small problems, up to
   ``SUPPORT_SOLVE_COLUMNS`` variables); otherwise
3. take ``y`` exactly (floats are dyadic rationals), compute the residual ``A^T y`` exactly and repair it:
   every IR row touches one variable and every interim budget row the variables of one history with weights
   ``-P_i(t|h)``, so raising a history's budget multiplier and then the IR multipliers zeroes every residual
   while keeping ``y >= 0``; ``gamma`` moves by the size of the noise.

The result is verified independently by :func:`mechlp.audit.verifier.check_impossibility` (floats or exact),
which evaluates ``L`` with the verifier's own constraint code. Certificates are available for Bayesian or local
IC with interim or ex ante participation; for ex post budget balance the interim certificate is returned, which
is a valid proof because ex post balance implies interim balance (Lamba 2022, section 3.4); for savings balance
the ex ante certificate, valid because savings implies :math:`\Pi(\text{root}) \ge 0`
(:mod:`mechlp.constraints.budget`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from mechlp.audit.verifier import ImpossibilityCertificate
from mechlp.backends import solve_arrays
from mechlp.constraints.interim import InterimRows, interim_rows
from mechlp.model import tolerances
from mechlp.model.exact import Numbers, solve_consistent, to_fractions
from mechlp.model.question import Question
from mechlp.model.spaces import StateSpace

__all__ = ["impossibility_certificate"]

#: Largest interim formulation (columns) whose Farkas vertex is recomputed exactly on its support; above it the
#: float multipliers are repaired instead (see module docstring).
SUPPORT_SOLVE_COLUMNS = 200

#: Automatic exactness (``exact=None``): model denominators and problem size up to which certificates are exact.
AUTO_EXACT_DENOMINATOR = 10**6
AUTO_EXACT_COLUMNS = 2000


def _farkas_float(rows: InterimRows, backend: str = "highs") -> np.ndarray | None:
    a = sp.csr_matrix((rows.vals.astype(float), (rows.rows, rows.cols)), shape=(rows.n_rows, rows.n_cols))
    b = rows.b.astype(float)
    # variables y (one per row); constraints: A^T y = 0 (n_cols rows) and b^T y = 1
    system = sp.vstack([a.T, sp.csr_matrix(b[None, :])]).tocsc()
    rhs = np.zeros(rows.n_cols + 1)
    rhs[-1] = 1.0
    m = rows.n_rows
    out = solve_arrays(system, rhs, rhs, np.zeros(m), np.full(m, np.inf), np.ones(m), backend)
    return out.x if out.status == "optimal" else None


def _support_solve(rows: InterimRows, y_float: np.ndarray) -> np.ndarray | None:
    """The exact Farkas vertex on the float solution's support: ``A_S^T y_S = 0``, ``b_S^T y_S = 1``, ``y_S >= 0``."""
    support = np.flatnonzero(y_float > 0)
    if support.size == 0:
        return None
    pos = np.full(rows.n_rows, -1)
    pos[support] = np.arange(support.size)
    keep = pos[rows.rows] >= 0
    mat = np.empty((rows.n_cols + 1, support.size), dtype=object)
    mat.fill(Fraction(0))
    np.add.at(mat, (rows.cols[keep], pos[rows.rows[keep]]), rows.vals[keep])
    mat[-1] = rows.b[support]
    rhs = np.empty(rows.n_cols + 1, dtype=object)
    rhs.fill(Fraction(0))
    rhs[-1] = Fraction(1)
    ys = solve_consistent(mat, rhs)
    if ys is None or any(v < 0 for v in ys):
        return None
    y = np.empty(rows.n_rows, dtype=object)
    y.fill(Fraction(0))
    y[support] = ys
    return y


def _repair(rows: InterimRows, y: np.ndarray, nums: Numbers) -> np.ndarray | None:
    """Make ``A^T y = 0`` hold exactly (see module docstring); ``None`` when the residual cannot be absorbed."""
    ir_of_col = np.full(rows.n_cols, -1)
    ir_rows = np.flatnonzero(rows.family == "ir")
    ir_cols = rows.cols[np.isin(rows.rows, ir_rows)]
    ir_of_col[ir_cols] = rows.rows[np.isin(rows.rows, ir_rows)]
    budget_rows = np.flatnonzero(rows.family == "budget")
    budget_of_hist = {int(rows.hist[r]): int(r) for r in budget_rows}
    col_hist = np.empty(rows.n_cols, dtype=np.int64)
    col_prob = np.empty(rows.n_cols, dtype=object)
    for i, m in enumerate(rows.marginals):  # loop over agents
        n_hist, k = m.shape
        cols = rows.col(i, np.repeat(np.arange(n_hist), k), np.tile(np.arange(k), n_hist))
        col_hist[cols] = np.repeat(np.arange(n_hist), k)
        col_prob[cols] = m.reshape(-1)

    res = rows.transpose_times(y, nums)
    # (a) positive residual on a column with an IR multiplier: lower that multiplier as far as it goes
    pos = np.flatnonzero((res > 0) & (ir_of_col >= 0))
    if pos.size:
        r_idx = ir_of_col[pos]
        cut = np.minimum(y[r_idx], res[pos])
        y[r_idx] = y[r_idx] - cut
        res = rows.transpose_times(y, nums)
    # (b) remaining positive residuals: raise the budget multiplier of their history
    pos = np.flatnonzero(res > 0)
    if pos.size:
        for h in np.unique(col_hist[pos]):  # loop over the (few) affected histories, not over nodes
            cols_h = pos[col_hist[pos] == h]
            if int(h) not in budget_of_hist or any(col_prob[c] <= 0 for c in cols_h):
                return None
            eps = max(res[c] / col_prob[c] for c in cols_h)
            y[budget_of_hist[int(h)]] += eps
        res = rows.transpose_times(y, nums)
    # (c) negative residuals: raise the IR multipliers
    neg = np.flatnonzero(res < 0)
    if neg.size:
        if np.any(ir_of_col[neg] < 0):
            return None
        y[ir_of_col[neg]] = y[ir_of_col[neg]] - res[neg]
        res = rows.transpose_times(y, nums)
    if any(v != 0 for v in res) or any(v < 0 for v in y):
        return None
    return y


def impossibility_certificate(
    space: StateSpace,
    *,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside_option=0.0,
    minmax_surplus: np.ndarray | None = None,
    exact: bool | None = None,
    question: Question | None = None,
    backend: str = "highs",
) -> ImpossibilityCertificate | None:
    """Farkas multipliers proving that no mechanism satisfies IC, IR and ``budget`` on ``space``.

    ``question`` (a :class:`~mechlp.model.question.Question`) replaces ``ic``, ``ir``, ``budget`` and
    ``outside_option``. The multipliers are over the rows of its certifying relaxation
    (:meth:`Question.certifying`: ex post budget balance is certified by the interim rows, savings by the ex
    ante row). Returns ``None`` when the question has no certifying relaxation (ex post IC or IR, transfer
    limits, no budget rows) or the relaxation is feasible.
    The returned certificate is exact (fractions) and has been checked by
    :func:`mechlp.audit.verifier.check_impossibility` in floats and in exact arithmetic; its ``verification``
    records both. ``minmax_surplus`` (``Pi*`` per history) is used for the plain-language summary.

    ``exact=None`` (default) makes the certificate exact when that is cheap: every model number has a
    denominator of at most ``AUTO_EXACT_DENOMINATOR`` once read as written (short decimals such as 0.95) and the
    interim formulation has at most ``AUTO_EXACT_COLUMNS`` variables. Models typed with long floats (random
    kernels) make rational arithmetic explode; their certificates are then checked in floats only, which the
    summary says. ``exact=True`` forces the exact path, ``False`` skips it.

    ``backend`` (``"highs"`` or ``"cvxpy"``) solves the Farkas LP (:func:`mechlp.backends.solve_arrays`); the
    certificate is checked the same way whichever backend found it.
    """
    env = space.env
    q = question or Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option=outside_option)
    relaxed = q.certifying()
    if relaxed is None:
        return None
    ic, ir, budget, rows_budget = relaxed.ic, relaxed.ir, q.budget, relaxed.budget
    outside = list(q.outside)
    rows_f = interim_rows(space, Numbers(env, exact=False), ic, ir, rows_budget, outside)
    y_float = _farkas_float(rows_f, backend)
    if y_float is None:
        return None
    y_float[y_float < tolerances.FARKAS_ZERO * y_float.max()] = 0.0
    nums = Numbers(env, exact=True)
    if exact is None:
        exact = nums.largest_denominator() <= AUTO_EXACT_DENOMINATOR and rows_f.n_cols <= AUTO_EXACT_COLUMNS
    if not exact:
        return ImpossibilityCertificate.from_rows(
            space,
            rows_f,
            to_fractions(y_float),
            Fraction(float(rows_f.b @ y_float)),
            options={"ic": ic, "ir": ir, "budget": rows_budget, "question_budget": budget, "outside_option": outside},
            minmax_surplus=minmax_surplus,
            check_exact=False,
        )
    rows_x = interim_rows(space, nums, ic, ir, rows_budget, outside)
    y = _support_solve(rows_x, y_float) if rows_x.n_cols <= SUPPORT_SOLVE_COLUMNS else None
    if y is None:
        y = _repair(rows_x, to_fractions(y_float), nums)
    exact = y is not None
    if y is None:
        y = to_fractions(y_float)
    gamma = Fraction(sum(rows_x.b * y))
    cert = ImpossibilityCertificate.from_rows(
        space,
        rows_x,
        y,
        gamma,
        options={"ic": ic, "ir": ir, "budget": rows_budget, "question_budget": budget, "outside_option": outside},
        exact_repaired=exact,
        minmax_surplus=minmax_surplus,
    )
    return cert

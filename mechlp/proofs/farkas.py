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

0. with the min-max solution at hand (``minmax_surplus`` and ``interim_utilities`` or ``parents``), first the
   *structured* certificate of :mod:`mechlp.proofs.structured`: the dual of the min-max problem at the history
   of the lowest :math:`\Pi^*`, read off the binding edges matrix-free (no rows, no LP; ``options["method"]`` is
   ``"structure"``). It is checked like any other; where it does not apply (``None``: e.g. kernels that are not
   first-order stochastically dominant) or does not pass, the steps below (``options["method"] = "lp"``);
1. choose the rows. On a history tree with interim or ex post budget and interim or ex post IR, first the
   *subtree* of the history with the lowest min-max surplus :math:`\Pi^*(h)` (Lamba 2022, Lemma 6: no IC + IR
   mechanism raises more than :math:`\Pi^*(h)` there when the lemma applies): the rows at a history involve
   only its nodes and its children's, so the rows of a subtree are closed and a certificate over them is one
   for the whole tree, found at the cost of the subtree (``focus`` in the certificate's options names it). When
   that subproblem has no certificate (the lemma's assumptions fail, or the impossibility needs rows
   elsewhere), all rows are used;
2. build those interim rows in floats and solve the Farkas LP ``min 1^T y`` s.t. ``A^T y = 0``, ``b^T y = 1``,
   ``y >= 0`` with the chosen backend (:func:`mechlp.backends.solve_arrays`; our own LP, so presolve cannot
   hide the ray);
3. recompute the vertex exactly: on the support of the float solution, solve ``A_S^T y_S = 0``,
   ``b_S^T y_S = 1`` in rationals with the support's rows rebuilt from the model's numbers at the support's
   histories only (supports of up to ``SUPPORT_SOLVE_ROWS`` rows, whatever the size of the space); otherwise
4. take ``y`` exactly (floats are dyadic rationals), compute the residual ``A^T y`` exactly and repair it:
   every IR row touches one variable and every interim budget row the variables of one history with weights
   ``-P_i(t|h)``, so raising a history's budget multiplier and then the IR multipliers zeroes every residual
   while keeping ``y >= 0``; ``gamma`` moves by the size of the noise.

With correlated types (``env.correlated``, docs/design.md section 4.6) the rows are the same labelled rows written in
ex post utilities (:func:`mechlp.constraints.interim.interim_rows`), the structured certificate of step 0 does not
apply, and the repair of step 4 seldom succeeds (an IR row then weights several utilities); the exact vertex of
step 3 is the exact route.

Pointwise rows (ex post IC or IR, transfer limits; :attr:`Question.pointwise`) and ex post budget rows next to
them are not rows in interim utilities: the rows are then those of
:func:`mechlp.constraints.interim.utility_rows`, in ex post utilities :math:`U_i(h, \theta)` (the transfers,
and with them the recursion rows of the generic formulation, eliminated; a limit or ex post budget row touches
the utilities of one node and its children), in either arithmetic. The ex post budget rows are equalities: their
multipliers are free (split ``y = y+ - y-`` in the Farkas LP), so the exact support solve checks the sign of the
other multipliers only; the repair of step 4 applies where every column has an IR row (ex post IR), otherwise
the support solve is the exact route.

The result is verified independently by :func:`mechlp.audit.verifier.check_impossibility` (floats or exact),
which evaluates ``L`` with the verifier's own constraint code. Certificates are available for every IC, IR and
budget notion and transfer limits (:meth:`Question.certifying`), with independent or correlated types (the
verifier's correlated adjoint, ``_correlated_weights``, reads ex post IC and IR multipliers too).
For ex post budget balance with interim rows otherwise and independent types, the interim certificate is
returned, which is a valid proof because ex post balance implies interim balance, and complete because the two
are then equivalent (Lamba 2022, section 3.4, Proposition 1); with a pointwise row or correlated types the ex
post budget rows themselves. For savings
balance the ex ante certificate, valid because savings implies :math:`\Pi(\text{root}) \ge 0`
(:mod:`mechlp.constraints.budget`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from mechlp.audit.verifier import ImpossibilityCertificate
from mechlp.backends import solve_arrays
from mechlp.constraints.interim import InterimRows, interim_rows, utility_rows
from mechlp.model import tolerances
from mechlp.model.exact import Numbers, solve_consistent, to_fractions
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree, StateSpace
from mechlp.proofs.structured import labelled, structured_certificate, structured_multipliers

__all__ = ["impossibility_certificate"]

#: Largest support (rows with a positive multiplier) whose Farkas vertex is recomputed exactly, from the rows at
#: the support's histories only; larger supports are repaired instead (see module docstring).
SUPPORT_SOLVE_ROWS = 400

#: Automatic exactness (``exact=None``): model denominators and problem size up to which certificates are exact.
AUTO_EXACT_DENOMINATOR = 10**6
AUTO_EXACT_COLUMNS = 2000


def _farkas_float(rows: InterimRows, backend: str = "highs", time_limit: float | None = None) -> np.ndarray | None:
    a = sp.csr_matrix((rows.vals.astype(float), (rows.rows, rows.cols)), shape=(rows.n_rows, rows.n_cols))
    used = np.unique(rows.cols)  # rows on part of a space touch part of the columns: the others are 0 = 0
    b = rows.b.astype(float)
    # variables y (one per row); constraints: A^T y = 0 (one per used column) and b^T y = 1
    system = sp.vstack([a[:, used].T, sp.csr_matrix(b[None, :])]).tocsc()
    rhs = np.zeros(used.size + 1)
    rhs[-1] = 1.0
    m = rows.n_rows
    free = rows.free  # equality rows (ex post budget): y of either sign, y = y+ - y- with cost |y|
    if not free.any():
        out = solve_arrays(
            system, rhs, rhs, np.zeros(m), np.full(m, np.inf), np.ones(m), backend, time_limit=time_limit
        )
        return out.x if out.status == "optimal" else None
    fr = np.flatnonzero(free)
    system = sp.hstack([system, -system[:, fr]]).tocsc()
    n = m + fr.size
    out = solve_arrays(system, rhs, rhs, np.zeros(n), np.full(n, np.inf), np.ones(n), backend, time_limit=time_limit)
    if out.status != "optimal":
        return None
    y = out.x[:m].copy()
    y[fr] -= out.x[m:]
    return y


def _row_keys(rows: InterimRows, space: StateSpace) -> np.ndarray:
    """One integer label per row (family and :data:`~mechlp.constraints.interim.LABELS`), to match rows built
    twice."""
    k = space.env.n_profiles
    prof = np.where(rows.node >= 0, rows.node % k, -1)  # a node row's profile (its history is ``hist``)
    return _label_keys(
        space, rows.family, rows.agent, rows.hist, rows.type, rows.misreport, rows.others, prof, rows.side
    )


def _label_keys(space: StateSpace, family, agent, hist, typ, misreport, others=-1, prof=-1, side=-1) -> np.ndarray:
    fam = np.searchsorted(np.array(["budget", "ic", "ir", "limits"]), family)
    k_max = max(space.env.type_counts) + 1
    k = space.env.n_profiles + 1
    dims = (4, space.env.n_agents + 1, space.n_hist, k_max, k_max, k, k, 3)
    labels = (fam, agent + 1, hist, typ + 1, misreport + 1, np.asarray(others) + 1, np.asarray(prof) + 1)
    labels = np.broadcast_arrays(*labels, np.asarray(side) + 1)
    return np.ravel_multi_index(tuple(labels), dims)


def _support_solve(
    space: StateSpace, rows_f: InterimRows, y_float: np.ndarray, build
) -> tuple[InterimRows, np.ndarray] | None:
    """The exact Farkas vertex on the float solution's support: ``A_S^T y_S = 0``, ``b_S^T y_S = 1``, ``y_S >= 0``.

    The support's rows are rebuilt exactly (``build(hists)``: :func:`interim_rows` at the support's histories),
    so the cost follows the support, not the space. Returns the exact rows and ``y`` over them, or ``None``.
    """
    support = np.flatnonzero(y_float != 0)
    if support.size == 0 or support.size > SUPPORT_SOLVE_ROWS:
        return None
    rows = build(np.unique(rows_f.hist[support]))
    keys = _row_keys(rows, space)
    order = np.argsort(keys)
    want = _row_keys(rows_f, space)[support]
    pos = np.searchsorted(keys[order], want)
    if np.any(pos >= keys.size) or np.any(keys[order][np.minimum(pos, keys.size - 1)] != want):
        return None
    support = order[pos]  # the support's rows in the exact build
    at = np.full(rows.n_rows, -1)
    at[support] = np.arange(support.size)
    keep = at[rows.rows] >= 0
    used, col_at = np.unique(rows.cols[keep], return_inverse=True)
    mat = np.empty((used.size + 1, support.size), dtype=object)
    mat.fill(Fraction(0))
    np.add.at(mat, (col_at, at[rows.rows[keep]]), rows.vals[keep])
    mat[-1] = rows.b[support]
    rhs = np.empty(used.size + 1, dtype=object)
    rhs.fill(Fraction(0))
    rhs[-1] = Fraction(1)
    ys = solve_consistent(mat, rhs)
    if ys is None or any(v < 0 for v, free in zip(ys, rows.free[support], strict=True) if not free):
        return None
    y = np.empty(rows.n_rows, dtype=object)
    y.fill(Fraction(0))
    y[support] = ys
    return rows, y


def _focus(space: StateSpace, relaxed: Question, minmax_surplus: np.ndarray | None) -> int | None:
    """The history whose subtree is tried first (module docstring, step 1), or ``None``."""
    if (
        not isinstance(space, HistoryTree)
        or minmax_surplus is None
        or relaxed.budget not in ("interim", "ex_post")  # budget rows (and IR rows) at every history
        or relaxed.ir not in ("interim", "ex_post")
    ):
        return None
    pi = np.asarray(minmax_surplus, dtype=float)
    if pi.shape != (space.n_hist,):
        return None
    h = int(np.argmin(pi))
    return h if h > 0 and pi[h] < -tolerances.SURPLUS else None


def _repair(rows: InterimRows, y: np.ndarray, nums: Numbers) -> np.ndarray | None:
    """Make ``A^T y = 0`` hold exactly (see module docstring); ``None`` when the residual cannot be absorbed."""
    ir_of_col = np.full(rows.n_cols, -1)
    ir_rows = np.flatnonzero(rows.family == "ir")
    ir_cols = rows.cols[np.isin(rows.rows, ir_rows)]
    ir_of_col[ir_cols] = rows.rows[np.isin(rows.rows, ir_rows)]
    budget_rows = np.flatnonzero((rows.family == "budget") & ~rows.free)
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
    if any(v != 0 for v in res) or any(v < 0 for v in y[~rows.free]):
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
    subtree_only: bool = False,
    time_limit: float | None = None,
    interim_utilities: list[np.ndarray] | None = None,
    parents: list[np.ndarray] | None = None,
) -> ImpossibilityCertificate | None:
    """Farkas multipliers proving that no mechanism satisfies IC, IR and ``budget`` on ``space``.

    ``question`` (a :class:`~mechlp.model.question.Question`) replaces ``ic``, ``ir``, ``budget`` and
    ``outside_option``. The multipliers are over the rows of its certifying relaxation
    (:meth:`Question.certifying`: ex post budget balance is certified by the interim rows, savings by the ex
    ante row; pointwise rows and ex post budget rows next to them by themselves, in ex post utilities). Returns
    ``None`` when the question has no certifying relaxation or the relaxation is feasible.
    The returned certificate is exact (fractions) and has been checked by
    :func:`mechlp.audit.verifier.check_impossibility` in floats and in exact arithmetic; its ``verification``
    records both. ``minmax_surplus`` (``Pi*`` per history) is used for the plain-language summary.

    ``exact=None`` (default) makes the certificate exact when that is cheap: every model number has a
    denominator of at most ``AUTO_EXACT_DENOMINATOR`` once read as written (short decimals such as 0.95), and the
    support has at most ``SUPPORT_SOLVE_ROWS`` rows (an exact solve over the support's rows, at any size of
    space) or the rows used have at most ``AUTO_EXACT_COLUMNS`` variables (an exact repair). Models typed with
    long floats (random kernels) make rational arithmetic explode; their certificates are then checked in floats
    only, which the summary says. ``exact=True`` forces the exact path, ``False`` skips it.

    ``subtree_only=True``: search only the subtree of the lowest ``Pi*`` (module docstring, step 1) and return
    ``None`` when it has no certificate or does not apply, instead of solving the Farkas LP over all rows (the
    caller then answers by its own LP).

    ``backend`` (``"highs"`` or ``"cvxpy"``) solves the Farkas LP (:func:`mechlp.backends.solve_arrays`); the
    certificate is checked the same way whichever backend found it. ``time_limit`` (seconds) bounds each Farkas
    LP solve; a solve that runs out of time gives no certificate (``None``).

    ``interim_utilities`` (the min-max utilities per agent, ``(n_hist, K_i)``, e.g. ``Result.interim_utilities``
    of :func:`mechlp.solve.questions.minmax`) and optionally ``parents`` (the recursion's binding edges) together
    with ``minmax_surplus`` enable the structured certificate (module docstring, step 0), tried first; it is
    exact under the same rule as the LP's (rows rebuilt at its support's histories when they are few), else
    checked in floats. ``options["method"]`` says which was used: ``"structure"`` or ``"lp"``.
    """
    env = space.env
    q = question or Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option=outside_option)
    relaxed = q.certifying()
    if relaxed is None:
        return None
    ic, ir, budget, rows_budget = relaxed.ic, relaxed.ir, q.budget, relaxed.budget
    outside = list(q.outside)
    limits = (relaxed.limits_lo, relaxed.limits_hi)

    def build(nums: Numbers, hists: np.ndarray | None) -> InterimRows:
        if relaxed.ex_post_rows:  # ex post IC / IR / budget rows or limits: the rows in ex post utilities
            return utility_rows(space, nums, ic, ir, rows_budget, outside, limits=limits, hists=hists)
        return interim_rows(space, nums, ic, ir, rows_budget, outside, hists=hists)

    floats = Numbers(env, exact=False)
    options = {
        "ic": ic,
        "ir": ir,
        "budget": rows_budget,
        "question_budget": budget,
        "outside_option": outside,
    }
    if relaxed.has_limits:
        options["limits"] = {name: list(pair) for name, pair in (relaxed.limits or {}).items()}
    if minmax_surplus is not None and (interim_utilities is not None or parents is not None):
        mult = structured_multipliers(space, q, minmax_surplus, interim_utilities=interim_utilities, parents=parents)
        if mult is not None:
            cert = _structured(space, mult, options, exact, build, floats, minmax_surplus)
            if cert.ok:
                return cert
    focus = _focus(space, relaxed, minmax_surplus)
    rows_f = y_float = None
    if focus is not None:
        rows_f = build(floats, space.descendants([focus]))
        y_float = _farkas_float(rows_f, backend, time_limit)
        if y_float is None:
            focus = None
    if y_float is None and subtree_only:
        return None
    if y_float is None:
        rows_f = build(floats, None)
        y_float = _farkas_float(rows_f, backend, time_limit)
    if y_float is None:
        return None
    y_float[np.abs(y_float) < tolerances.FARKAS_ZERO * np.abs(y_float).max()] = 0.0
    options["method"] = "lp"
    if focus is not None:
        options["focus"] = space.describe_history(focus)
    hists = None if focus is None else space.descendants([focus])
    return _exact_or_float(space, rows_f, y_float, hists, options, exact, build, minmax_surplus)


def _exact_or_float(
    space: StateSpace,
    rows_f: InterimRows,
    y_float: np.ndarray,
    hists: np.ndarray | None,
    options: dict,
    exact: bool | None,
    build,
    minmax_surplus: np.ndarray | None,
) -> ImpossibilityCertificate:
    """Steps 3-4 of the module docstring for float multipliers ``y_float`` over ``rows_f`` (rows at ``hists``,
    or all): the exact certificate when cheap, else the float one (checked in floats)."""
    env = space.env
    nums = Numbers(env, exact=True)
    forced = exact is True
    if exact is None:
        exact = nums.largest_denominator() <= AUTO_EXACT_DENOMINATOR
    if exact:
        found = _support_solve(space, rows_f, y_float, lambda hs: build(nums, hs))
        if found is None and (forced or np.unique(rows_f.cols).size <= AUTO_EXACT_COLUMNS):
            rows_x = build(nums, hists)
            y = _repair(rows_x, _match(space, rows_x, rows_f, y_float), nums)
            found = None if y is None else (rows_x, y)
        if found is not None:
            rows_x, y = found
            return ImpossibilityCertificate.from_rows(
                space,
                rows_x,
                y,
                Fraction(sum(rows_x.b * y)),
                options=options,
                exact_repaired=True,
                minmax_surplus=minmax_surplus,
            )
    return ImpossibilityCertificate.from_rows(
        space,
        rows_f,
        to_fractions(y_float),
        Fraction(float(rows_f.b @ y_float)),
        options=options,
        minmax_surplus=minmax_surplus,
        check_exact=False,
    )


def _match(space: StateSpace, rows_x: InterimRows, rows_f: InterimRows, y_float: np.ndarray) -> np.ndarray:
    """``y_float`` (over ``rows_f``) as exact fractions over the rows of ``rows_x`` (the same rows, rebuilt)."""
    y = np.empty(rows_x.n_rows, dtype=object)
    y.fill(Fraction(0))
    kx = _row_keys(rows_x, space)
    order = np.argsort(kx)
    pos = order[np.searchsorted(kx[order], _row_keys(rows_f, space))]
    y[pos] = to_fractions(y_float)
    return y


def _structured(
    space: StateSpace,
    mult,
    options: dict,
    exact: bool | None,
    build,
    floats: Numbers,
    minmax_surplus: np.ndarray,
) -> ImpossibilityCertificate:
    """The certificate of structured multipliers (:func:`mechlp.proofs.structured.structured_multipliers`).

    When its support's histories carry at most ``AUTO_EXACT_COLUMNS`` own utilities (or ``exact=True``), the
    rows there are built and the multipliers go through the exact steps 3-4 like the LP's; otherwise the
    certificate is built directly in its own format (:func:`~mechlp.proofs.structured.structured_certificate`,
    no rows) and checked in floats."""
    opts = {**options, "method": "structure"}
    if isinstance(space, HistoryTree):
        opts["focus"] = space.describe_history(mult.focus)
    lab = labelled(space, mult)
    hists = np.unique(lab["hist"])
    small = hists.size * sum(space.env.type_counts) <= AUTO_EXACT_COLUMNS
    wants = exact is True or (
        exact is None and Numbers(space.env, exact=True).largest_denominator() <= AUTO_EXACT_DENOMINATOR
    )
    if wants and (small or exact is True):
        rows_f = build(floats, hists)
        keys = _row_keys(rows_f, space)
        order = np.argsort(keys)
        want = _label_keys(space, lab["family"], lab["agent"], lab["hist"], lab["type"], lab["misreport"])
        pos = np.searchsorted(keys[order], want)
        if np.all(pos < keys.size) and np.all(keys[order][np.minimum(pos, keys.size - 1)] == want):
            y_float = np.zeros(rows_f.n_rows)
            y_float[order[pos]] = lab["value"]
            return _exact_or_float(space, rows_f, y_float, hists, opts, exact, build, minmax_surplus)
    return structured_certificate(space, mult, opts, minmax_surplus=minmax_surplus)

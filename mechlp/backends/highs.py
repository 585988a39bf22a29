"""HiGHS through highspy, the LP handed over as raw CSC arrays (``Highs.passModel``, int32 indices).

Filling ``HighsLp`` fields is several times slower for large trees (docs/design.md section 12), so this backend
never builds one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time

import highspy
import numpy as np
import scipy.sparse as sp

from mechlp.backends.base import BatchOutput, SolverOutput, solver_log
from mechlp.model import tolerances

_S = highspy.HighsModelStatus

#: native HiGHS model status -> project status
STATUS_MAP: dict = {
    _S.kOptimal: "optimal",
    _S.kInfeasible: "infeasible",
    _S.kUnbounded: "unbounded",
    _S.kTimeLimit: "time_limit",
    _S.kIterationLimit: "time_limit",
    _S.kUnboundedOrInfeasible: "infeasible_or_unbounded",  # resolved below by a presolve-free re-solve
    _S.kNotset: "error",
    _S.kLoadError: "error",
    _S.kModelError: "error",
    _S.kPresolveError: "error",
    _S.kSolveError: "error",
    _S.kPostsolveError: "error",
    _S.kModelEmpty: "error",
    _S.kMemoryLimit: "error",
    _S.kInterrupt: "error",
    _S.kUnknown: "error",
    _S.kObjectiveBound: "error",
    _S.kObjectiveTarget: "error",
    _S.kSolutionLimit: "error",
}

#: Options of every run: quiet, simplex, and ``small_matrix_value`` =
#: :data:`mechlp.model.tolerances.HIGHS_SMALL_MATRIX_VALUE` (HiGHS's smallest allowed value; its default 1e-9
#: drops the continuation terms of small discount factors, see that constant).
DEFAULT_OPTIONS = {
    "output_flag": False,
    "solver": "simplex",
    "small_matrix_value": tolerances.HIGHS_SMALL_MATRIX_VALUE,
}

#: Fallbacks tried, in order, when a run ends in a solver error (not for infeasible/unbounded answers).
#: Dual simplex has ended in kSolveError/kUnknown on nearly degenerate kernels (rows differing by ~1e-7, or a
#: 3x3 model at delta = 0.25) where presolve-free, primal simplex or interior point runs answer correctly.
RETRIES: tuple[dict, ...] = ({"presolve": "off"}, {"simplex_strategy": 4}, {"solver": "ipm"})


try:  # the C library, to flush what HiGHS printed before file descriptor 1 is restored
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None)
except OSError:  # no such handle on some platforms: the banner is then not silenced
    _LIBC = None


@contextlib.contextmanager
def _quiet_stdout():
    """Send file descriptor 1 to the null device for a moment: ``highspy.Highs()`` prints its banner ("Running
    HiGHS ...") from C++ when it is constructed, before any option (``output_flag``) can be set
    (ERGO-Code/HiGHS issues 1702 and 1932), and mechlp's output is the user's data."""
    if _LIBC is None:
        yield
        return
    if sys.stdout is not None:  # None under some redirections
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters)
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        _LIBC.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def new_highs() -> highspy.Highs:
    """A quiet ``Highs`` instance: no banner, ``output_flag`` off."""
    with _quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


def highs_from_arrays(a, row_lower, row_upper, col_lower, col_upper, cost, **options) -> highspy.Highs:
    """A ``Highs`` instance for ``min cost @ z, row_lower <= a @ z <= row_upper, col_lower <= z <= col_upper``.

    ``a`` is converted to CSC; the arrays go to ``Highs.passModel`` as they are (int32 indices, float64 values).
    """
    h = new_highs()
    for key, value in {**DEFAULT_OPTIONS, "output_flag": solver_log(), **options}.items():
        h.setOptionValue(key, value)
    a = a.tocsc()
    n_row, n_col = a.shape
    h.passModel(
        n_col,
        n_row,
        int(a.nnz),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        np.ascontiguousarray(cost, dtype=np.float64),
        np.ascontiguousarray(col_lower, dtype=np.float64),
        np.ascontiguousarray(col_upper, dtype=np.float64),
        np.ascontiguousarray(row_lower, dtype=np.float64),
        np.ascontiguousarray(row_upper, dtype=np.float64),
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        np.ascontiguousarray(a.data, dtype=np.float64),
        np.zeros(n_col, dtype=np.int32),
    )
    return h


def solve_arrays(
    a, row_lower, row_upper, col_lower, col_upper, cost, time_limit: float | None = None, **options
) -> SolverOutput:
    """Solve ``min cost @ z`` s.t. ``row_lower <= a @ z <= row_upper``, ``col_lower <= z <= col_upper`` with HiGHS
    (dual simplex with presolve by default); ``options`` are HiGHS option names.

    A run that ends in a solver error is retried with the settings of :data:`RETRIES`; the message says
    which attempt answered. An ``UnboundedOrInfeasible`` answer is resolved by a presolve-free re-solve.
    """
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    t0 = time.perf_counter()
    attempts = [dict(options)] + [{**options, **extra} for extra in RETRIES]
    note = ""
    for n, attempt in enumerate(attempts):
        h = highs_from_arrays(a, row_lower, row_upper, col_lower, col_upper, cost, **attempt)
        h.run()
        model_status = h.getModelStatus()
        status = STATUS_MAP.get(model_status, "error")
        if status == "infeasible_or_unbounded":
            h.setOptionValue("presolve", "off")
            h.run()
            model_status = h.getModelStatus()
            status = STATUS_MAP.get(model_status, "error")
            if status == "infeasible_or_unbounded":
                status = "error"
        if status != "error":
            if n:
                note = f" (after a solver error; retried with {attempt})"
            break
    message = h.modelStatusToString(model_status) + note
    x, obj, dual, col_dual = _solution(h) if status == "optimal" else (None, None, None, None)
    return SolverOutput(
        status, str(model_status.name), message, x, obj, dual, time.perf_counter() - t0, "highs", col_dual
    )


def _solution(h: highspy.Highs) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Column values, objective, row duals and column duals of a solved model."""
    sol = h.getSolution()
    x = np.asarray(sol.col_value, dtype=float)
    dual = np.asarray(sol.row_dual, dtype=float)
    col_dual = np.asarray(sol.col_dual, dtype=float)
    return x, float(h.getInfo().objective_function_value), dual, col_dual


def solve_warm(
    a,
    row_lower,
    row_upper,
    col_lower,
    col_upper,
    cost,
    *,
    basis: highspy.HighsBasis | None = None,
    start: np.ndarray | None = None,
    **options,
) -> tuple[SolverOutput, highspy.HighsBasis | None]:
    """One HiGHS run of the LP of :func:`solve_arrays`, started from ``basis`` or from the primal point ``start``.

    ``basis`` is the optimal basis an earlier call returned for an LP of the same shape (``Highs.setBasis``);
    ``start`` a vector of column values (``Highs.setSolution``; HiGHS's crossover makes a basis of it). Neither
    changes what an ``"optimal"`` answer means: the simplex proves optimality from wherever it starts. There are
    no retries: a caller falls back to :func:`solve_arrays` on any other status.

    Returns
    -------
    SolverOutput, HighsBasis or None
        The answer and, when it is optimal, its basis (to start the next LP from).
    """
    t0 = time.perf_counter()
    h = highs_from_arrays(a, row_lower, row_upper, col_lower, col_upper, cost, **options)
    if basis is not None:
        h.setBasis(basis)
    elif start is not None:
        point = highspy.HighsSolution()
        point.col_value = np.asarray(start, dtype=np.float64).tolist()
        point.value_valid = True
        h.setSolution(point)
    h.run()
    model_status = h.getModelStatus()
    status = STATUS_MAP.get(model_status, "error")
    x, obj, dual, col_dual = _solution(h) if status == "optimal" else (None, None, None, None)
    new_basis = h.getBasis() if status == "optimal" else None
    out = SolverOutput(
        status,
        str(model_status.name),
        h.modelStatusToString(model_status),
        x,
        obj,
        dual,
        time.perf_counter() - t0,
        "highs",
        col_dual,
    )
    return out, new_basis


def solve_objectives(
    a,
    row_lower,
    row_upper,
    col_lower,
    col_upper,
    costs,
    *,
    keep=(),
    time_limit: float | None = None,
    on_optimal=None,
    **options,
) -> BatchOutput:
    r"""Minimise each row of ``costs`` over one feasible set, on one HiGHS instance, warm from the last basis.

    The LP :math:`\{z : l_r \le A z \le u_r,\ l_c \le z \le u_c\}` is passed once (``passModel``); for each
    objective ``c_k`` (row ``k`` of ``costs``) only the changed costs are sent (``changeColsCost``: the previous
    objective's nonzeros are zeroed, the new ones set) and ``run`` restarts the simplex from the basis of the
    previous optimum, which stays primal feasible when only the costs change. An objective whose run ends in a
    solver error is solved again from scratch by :func:`solve_arrays` (with its retries).

    Parameters
    ----------
    a, row_lower, row_upper, col_lower, col_upper
        As for :func:`solve_arrays`.
    costs : scipy.sparse matrix or ndarray, shape (m, n)
        One objective per row (minimised; maximise ``c`` as ``-c``).
    keep : iterable of int
        Objectives whose primal solution is returned (``BatchOutput.x``).
    time_limit : float, optional
        Seconds for the whole batch; objectives not reached are ``"skipped"``.
    on_optimal : callable, optional
        Called as ``on_optimal(k, out)`` with a :class:`SolverOutput` (primal values, row and column duals) for
        every objective ``k`` solved to optimality (e.g. to check a dual bound without keeping every solution).
    **options
        HiGHS option names.

    Returns
    -------
    BatchOutput
    """
    t0 = time.perf_counter()
    c = sp.csr_matrix(costs)
    m, n_col = c.shape
    status = np.full(m, "skipped", dtype=object)
    objective = np.full(m, np.nan)
    kept: dict[int, np.ndarray] = {}
    keep = {int(k) for k in keep}
    h = highs_from_arrays(a, row_lower, row_upper, col_lower, col_upper, np.zeros(n_col), **options)
    iterations = 0
    prev = np.zeros(0, dtype=np.int32)
    for k in range(m):  # objectives, one warm re-solve each
        if time_limit is not None:
            left = time_limit - (time.perf_counter() - t0)
            if left <= 0:
                break
            h.setOptionValue("time_limit", float(left))
        lo, hi = c.indptr[k], c.indptr[k + 1]
        idx = c.indices[lo:hi].astype(np.int32)
        vals = c.data[lo:hi].astype(np.float64)
        gone = np.setdiff1d(prev, idx).astype(np.int32)
        both = np.concatenate([gone, idx])
        if both.size:
            h.changeColsCost(int(both.size), both, np.concatenate([np.zeros(gone.size), vals]))
        prev = idx
        h.run()
        if k == 0:  # later runs start from this basis: presolve would only rebuild what the basis already has
            h.setOptionValue("presolve", "off")
        info = h.getInfo()
        iterations += int(info.simplex_iteration_count)
        st = STATUS_MAP.get(h.getModelStatus(), "error")
        x = None
        if st in ("error", "infeasible_or_unbounded"):  # from scratch, with the retries of solve_arrays
            cost = np.zeros(n_col)
            cost[idx] = vals
            out = solve_arrays(a, row_lower, row_upper, col_lower, col_upper, cost, **options)
            st, x = out.status, out.x
            objective[k] = np.nan if out.objective is None else out.objective
            if st == "optimal" and on_optimal is not None:
                on_optimal(k, out)
            h = highs_from_arrays(a, row_lower, row_upper, col_lower, col_upper, cost, **options)
        elif st == "optimal":
            objective[k] = float(info.objective_function_value)
            if k in keep or on_optimal is not None:
                x, obj, dual, col_dual = _solution(h)
                if on_optimal is not None:
                    on_optimal(k, SolverOutput(st, "kOptimal", "Optimal", x, obj, dual, 0.0, "highs", col_dual))
        status[k] = st
        if st == "optimal" and k in keep and x is not None:
            kept[k] = x
        if st == "infeasible":  # the feasible set is empty: every other objective too
            break
    return BatchOutput(status, objective, kept, time.perf_counter() - t0, iterations, "highs")

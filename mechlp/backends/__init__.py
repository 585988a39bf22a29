"""Solver backends: the one entry point for every linear program of the package.

:func:`solve_arrays` solves ``min cost @ z`` s.t. ``row_lower <= A z <= row_upper``,
``col_lower <= z <= col_upper`` with the chosen backend; :func:`solve_lp` is the same call on an assembled
:class:`~mechlp.lp.program.LinearProgram`. The main LPs (min-max, feasibility, second best) and the auxiliary
ones (Farkas multipliers, margin mechanisms, intermediate mechanisms, the surplus-sharing LPs for beta) all go
through here, so ``backend="cvxpy"`` reaches every one of them. No other module imports a solver.

Each backend returns a :class:`SolverOutput` and maps native statuses through its own ``STATUS_MAP``. Project
statuses (documented in :mod:`mechlp.solve.result`): ``optimal``, ``infeasible``, ``unbounded``,
``time_limit``, ``error``.

Solvers are quiet: HiGHS's banner and log and cvxpy's output are off unless :func:`set_solver_log` turns them on
(``mechlp --verbose COMMAND``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp

from mechlp.backends import cvxpy as cvxpy_backend
from mechlp.backends import highs as highs_backend
from mechlp.backends.base import BACKENDS, BatchOutput, SolverOutput, check_backend, set_solver_log, solver_log
from mechlp.lp.program import LinearProgram

__all__ = [
    "SolverOutput",
    "BatchOutput",
    "solve_arrays",
    "solve_lp",
    "solve_objectives",
    "BACKENDS",
    "set_solver_log",
    "solver_log",
]

_SOLVERS = {"highs": highs_backend.solve_arrays, "cvxpy": cvxpy_backend.solve_arrays}


def solve_arrays(
    a,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    cost: np.ndarray,
    backend: str = "highs",
    **options,
) -> SolverOutput:
    r"""Solve :math:`\min_z c^\top z` s.t. :math:`l_r \le A z \le u_r`, :math:`l_c \le z \le u_c` with ``backend``.

    Parameters
    ----------
    a : scipy.sparse matrix, shape (m, n)
    row_lower, row_upper : ndarray, shape (m,)
        Row bounds (``-inf`` / ``inf`` for an open side; equal for an equality row).
    col_lower, col_upper : ndarray, shape (n,)
        Column bounds.
    cost : ndarray, shape (n,)
    backend : {"highs", "cvxpy"}
        ``"highs"``: highspy with raw CSC arrays (retries after solver errors, primal and dual values);
        ``"cvxpy"``: cvxpy over the same arrays (primal values only).
    **options
        ``time_limit`` (seconds) for both; otherwise HiGHS option names for ``"highs"``, or ``solver`` and
        ``Problem.solve`` keywords for ``"cvxpy"``.

    Returns
    -------
    SolverOutput
        ``x`` and ``objective`` are set only when ``status == "optimal"``.

    Raises
    ------
    ValueError
        For an unknown ``backend``.
    """
    check_backend(backend)
    return _SOLVERS[backend](a, row_lower, row_upper, col_lower, col_upper, cost, **options)


def solve_lp(lp: LinearProgram, backend: str = "highs", **options) -> SolverOutput:
    """Solve an assembled ``lp`` with ``backend``: :func:`solve_arrays` on its matrix, bounds and cost."""
    return solve_arrays(lp.A, lp.row_lower, lp.row_upper, lp.col_lower, lp.col_upper, lp.cost, backend, **options)


def solve_objectives(
    lp: LinearProgram,
    costs,
    backend: str = "highs",
    *,
    keep=(),
    time_limit: float | None = None,
    on_optimal=None,
    **options,
) -> BatchOutput:
    """Minimise each row of ``costs`` (a sparse ``(m, n_cols)`` matrix) over the feasible set of ``lp``.

    ``"highs"`` keeps one solver instance and re-solves warm after each change of cost
    (:func:`mechlp.backends.highs.solve_objectives`); ``"cvxpy"`` solves one LP per objective with
    :func:`solve_arrays`. ``keep`` lists the objectives whose primal solution is returned; ``time_limit`` is for
    the whole batch (objectives not reached are ``"skipped"``). An infeasible set stops the batch.
    ``on_optimal(k, out)`` is called with the :class:`SolverOutput` of every objective solved to optimality.
    """
    check_backend(backend)
    if backend == "highs":
        return highs_backend.solve_objectives(
            lp.A,
            lp.row_lower,
            lp.row_upper,
            lp.col_lower,
            lp.col_upper,
            costs,
            keep=keep,
            time_limit=time_limit,
            on_optimal=on_optimal,
            **options,
        )
    t0 = time.perf_counter()
    c = sp.csr_matrix(costs)
    status = np.full(c.shape[0], "skipped", dtype=object)
    objective = np.full(c.shape[0], np.nan)
    kept = {}
    keep = {int(k) for k in keep}
    for k in range(c.shape[0]):  # objectives: one cvxpy problem each
        if time_limit is not None and time.perf_counter() - t0 >= time_limit:
            break
        out = solve_lp(_with_cost(lp, c[k]), backend, **options)
        status[k] = out.status
        if out.status == "optimal":
            objective[k] = out.objective
            if k in keep:
                kept[k] = out.x
            if on_optimal is not None:
                on_optimal(k, out)
        if out.status == "infeasible":
            break
    return BatchOutput(status, objective, kept, time.perf_counter() - t0, 0, backend)


def _with_cost(lp: LinearProgram, row) -> LinearProgram:
    """``lp`` with the cost vector replaced by the sparse row ``row``."""
    return dataclasses.replace(lp, cost=np.asarray(row.toarray(), dtype=float).ravel())

"""cvxpy over the same arrays (for small or user-extended problems).

The LP's rows are split into equality rows (``lower == upper``), rows with a finite lower bound and rows with
a finite upper bound; column bounds (transfer limits, sign constraints) become variable bounds. cvxpy is slower
than the direct HiGHS path (its compile step; ratios measured in ``benchmarks/README.md``, docs/design.md section
12), so it is not
the default.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from mechlp.backends.base import SolverOutput, solver_log

#: native cvxpy problem status (the values of cvxpy's status constants, checked by a test) -> project status.
#: "Inaccurate" answers are passed on as optimal/infeasible:
#: every primal answer is re-verified independently before it is reported.
STATUS_MAP: dict[str, str] = {
    "optimal": "optimal",  # cvxpy.OPTIMAL
    "optimal_inaccurate": "optimal",  # cvxpy.OPTIMAL_INACCURATE
    "infeasible": "infeasible",  # cvxpy.INFEASIBLE
    "infeasible_inaccurate": "infeasible",  # cvxpy.INFEASIBLE_INACCURATE
    "unbounded": "unbounded",  # cvxpy.UNBOUNDED
    "unbounded_inaccurate": "unbounded",  # cvxpy.UNBOUNDED_INACCURATE
    "infeasible_or_unbounded": "infeasible_or_unbounded",  # cvxpy.settings.INFEASIBLE_OR_UNBOUNDED: resolved below
    "user_limit": "time_limit",  # cvxpy.USER_LIMIT
    "solver_error": "error",  # cvxpy.SOLVER_ERROR
}


def solve_arrays(
    a,
    row_lower,
    row_upper,
    col_lower,
    col_upper,
    cost,
    solver: str | None = None,
    time_limit: float | None = None,
    **options,
) -> SolverOutput:
    """Solve ``min cost @ z`` s.t. ``row_lower <= a @ z <= row_upper``, ``col_lower <= z <= col_upper`` with cvxpy.

    ``solver`` is a cvxpy solver name (default HiGHS when installed); ``options`` go to ``Problem.solve``. With
    HiGHS an ``infeasible_or_unbounded`` answer is resolved by a presolve-free re-solve, as in the HiGHS backend;
    left unresolved it is an ``"error"``. No duals are reported.
    """
    import cvxpy as cp  # ~0.7 s to import: loaded only when this backend is used

    t0 = time.perf_counter()
    a = sp.csr_matrix(a)
    lo = np.asarray(row_lower, dtype=float)
    hi = np.asarray(row_upper, dtype=float)
    col_lower = np.asarray(col_lower, dtype=float)
    col_upper = np.asarray(col_upper, dtype=float)
    eq = lo == hi
    ge = ~eq & np.isfinite(lo)
    le = ~eq & np.isfinite(hi)
    bounded = np.isfinite(col_lower) | np.isfinite(col_upper)
    z = cp.Variable(a.shape[1], bounds=[col_lower, col_upper] if bounded.any() else None)
    cons = []
    if eq.any():
        cons.append(a[eq] @ z == lo[eq])
    if ge.any():
        cons.append(a[ge] @ z >= lo[ge])
    if le.any():
        cons.append(a[le] @ z <= hi[le])
    prob = cp.Problem(cp.Minimize(np.asarray(cost, dtype=float) @ z), cons)
    chosen = solver or ("HIGHS" if "HIGHS" in cp.installed_solvers() else None)
    kwargs = {"verbose": solver_log(), **options}
    if time_limit is not None and chosen == "HIGHS":
        kwargs["time_limit"] = float(time_limit)
    try:
        prob.solve(solver=chosen, canon_backend="SCIPY", ignore_dpp=True, **kwargs)
        native = str(prob.status)
        status = STATUS_MAP.get(native, "error")
        if status == "infeasible_or_unbounded" and chosen == "HIGHS":
            prob.solve(solver=chosen, canon_backend="SCIPY", ignore_dpp=True, **{**kwargs, "presolve": "off"})
            native = str(prob.status)
            status = STATUS_MAP.get(native, "error")
    except cp.SolverError as exc:
        return SolverOutput("error", "solver_error", str(exc), None, None, None, time.perf_counter() - t0, "cvxpy")
    if status == "infeasible_or_unbounded":
        status = "error"
    x = obj = None
    if status == "optimal" and z.value is not None:
        x = np.asarray(z.value, dtype=float)
        obj = float(prob.value)
    return SolverOutput(
        status,
        native,
        f"cvxpy/{chosen or 'default'}: {native}",
        x,
        obj,
        None,
        time.perf_counter() - t0,
        "cvxpy",
    )

"""cvxpy over the same assembled matrices (for small or user-extended problems).

The LP's rows are split into equality rows (``lower == upper``), rows with a finite lower bound and rows with
a finite upper bound; transfer limits become variable bounds. cvxpy is slower than the direct HiGHS
path (its compile step; ratios measured in ``benchmarks/README.md``, docs/design.md section 12), so it is not
the default.
"""

from __future__ import annotations

import time

import numpy as np

from mechlp.backends.base import SolverOutput
from mechlp.lp.program import LinearProgram

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
    "user_limit": "time_limit",  # cvxpy.USER_LIMIT
    "solver_error": "error",  # cvxpy.SOLVER_ERROR
}


def solve(lp: LinearProgram, solver: str | None = None, time_limit: float | None = None, **options) -> SolverOutput:
    import cvxpy as cp  # ~0.7 s to import: loaded only when this backend is used

    t0 = time.perf_counter()
    a = lp.A.tocsr()
    lo, hi = lp.row_lower, lp.row_upper
    eq = lo == hi
    ge = ~eq & np.isfinite(lo)
    le = ~eq & np.isfinite(hi)
    bounded = np.isfinite(lp.col_lower) | np.isfinite(lp.col_upper)
    z = cp.Variable(lp.n_cols, bounds=[lp.col_lower, lp.col_upper] if bounded.any() else None)
    cons = []
    if eq.any():
        cons.append(a[eq] @ z == lo[eq])
    if ge.any():
        cons.append(a[ge] @ z >= lo[ge])
    if le.any():
        cons.append(a[le] @ z <= hi[le])
    prob = cp.Problem(cp.Minimize(lp.cost @ z), cons)
    chosen = solver or ("HIGHS" if "HIGHS" in cp.installed_solvers() else None)
    kwargs = dict(options)
    if time_limit is not None and chosen == "HIGHS":
        kwargs["time_limit"] = float(time_limit)
    try:
        prob.solve(solver=chosen, canon_backend="SCIPY", ignore_dpp=True, **kwargs)
    except cp.SolverError as exc:
        return SolverOutput("error", "solver_error", str(exc), None, None, None, time.perf_counter() - t0, "cvxpy")
    native = str(prob.status)
    status = STATUS_MAP.get(native, "error")
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

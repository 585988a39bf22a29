"""Common solver output and dispatch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lp import LinearProgram

STATUSES = ("optimal", "infeasible", "unbounded", "time_limit", "error")
BACKENDS = ("highs", "cvxpy")


@dataclass
class SolverOutput:
    """What a backend returns: project status, native status/message, primal and dual values, timing."""

    status: str
    native_status: str
    message: str
    x: np.ndarray | None
    objective: float | None
    row_dual: np.ndarray | None
    solve_seconds: float
    backend: str
    #: reduced costs (HiGHS ``col_dual``: ``cost - A^T row_dual``) when the backend reports them
    col_dual: np.ndarray | None = None


def solve_lp(lp: LinearProgram, backend: str = "highs", **options) -> SolverOutput:
    """Solve ``lp`` with ``backend`` (``"highs"``: highspy with raw CSC arrays; ``"cvxpy"``: cvxpy over the
    same matrices)."""
    if backend == "highs":
        from .highs import solve

        return solve(lp, **options)
    if backend == "cvxpy":
        from .cvxpy import solve

        return solve(lp, **options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")

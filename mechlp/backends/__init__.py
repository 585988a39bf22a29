"""Solver backends. Each returns a :class:`SolverOutput` and maps native statuses through its own ``STATUS_MAP``.

Project statuses (documented in :mod:`mechlp.solve.result`): ``optimal``, ``infeasible``, ``unbounded``,
``time_limit``, ``error``.
"""

from __future__ import annotations

from mechlp.backends import cvxpy as cvxpy_backend
from mechlp.backends import highs as highs_backend
from mechlp.backends.base import BACKENDS, SolverOutput
from mechlp.lp.program import LinearProgram

__all__ = ["SolverOutput", "solve_lp", "BACKENDS"]


def solve_lp(lp: LinearProgram, backend: str = "highs", **options) -> SolverOutput:
    """Solve ``lp`` with ``backend`` (``"highs"``: highspy with raw CSC arrays; ``"cvxpy"``: cvxpy over the
    same matrices)."""
    if backend == "highs":
        return highs_backend.solve(lp, **options)
    if backend == "cvxpy":
        return cvxpy_backend.solve(lp, **options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")

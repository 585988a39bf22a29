"""What every backend returns (:class:`SolverOutput`), the project statuses and the backend names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechlp.model.question import check_choice

STATUSES = ("optimal", "infeasible", "unbounded", "time_limit", "error")
BACKENDS = ("highs", "cvxpy")


_SOLVER_LOG = {"on": False}


def set_solver_log(on: bool) -> None:
    """Show (``True``) or hide (``False``, the default) the solvers' own logs for every later solve: HiGHS's
    ``output_flag`` and cvxpy's ``verbose``. ``mechlp --verbose COMMAND`` sets it for one command."""
    if not isinstance(on, bool):
        raise TypeError(f"set_solver_log takes True or False, got {on!r}")
    _SOLVER_LOG["on"] = on


def solver_log() -> bool:
    """Whether solver logs are shown (:func:`set_solver_log`)."""
    return _SOLVER_LOG["on"]


def check_backend(backend: str) -> None:
    """``ValueError`` naming the choices when ``backend`` is not one of :data:`BACKENDS`
    (:func:`mechlp.model.question.check_choice`)."""
    check_choice("backend", backend, BACKENDS)


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


@dataclass
class BatchOutput:
    """What a backend returns for many objectives over one feasible set (:func:`mechlp.backends.solve_objectives`).

    Attributes
    ----------
    status : ndarray of str, shape (m,)
        Project status of each objective (``optimal``, ``unbounded``, ``infeasible``, ``time_limit``, ``error``;
        ``"skipped"`` for objectives not reached before the time limit or after the set was found infeasible).
    objective : ndarray, shape (m,)
        Optimal value of each objective (NaN unless ``optimal``).
    x : dict
        Objective index -> primal solution, for the indices asked for in ``keep`` that were solved to optimality.
    solve_seconds : float
    iterations : int
        Simplex iterations over all objectives (0 when the backend does not report them).
    backend : str
    """

    status: np.ndarray
    objective: np.ndarray
    x: dict
    solve_seconds: float
    iterations: int
    backend: str

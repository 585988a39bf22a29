"""Solver backends. Each returns a :class:`SolverOutput` and maps native statuses through its own ``STATUS_MAP``.

Project statuses (documented in :mod:`mechlp.result`): ``optimal``, ``infeasible``, ``unbounded``,
``time_limit``, ``error``.
"""

from .base import SolverOutput, solve_lp

__all__ = ["SolverOutput", "solve_lp"]

"""Result objects returned by the questions of :mod:`mechlp.solve.questions`.

Status strings (``Result.status``)
----------------------------------
``"optimal"``
    The LP was solved and the mechanism passed the independent verifier. For a feasibility question this
    means *feasible*: the returned mechanism satisfies every requested constraint.
``"infeasible"``
    No mechanism satisfies the constraints (on this space: for the Markov space, no *Markov* mechanism).
    ``Result.diagnosis`` names the histories where the min-max surplus is negative when that explains it.
``"unbounded"``
    The objective is unbounded (cannot happen for the built-in questions; kept for user objectives).
``"time_limit"``
    The solver stopped at a time or iteration limit.
``"verification_failed"``
    The solver claimed a solution but the independent verifier found a violation above the tolerance
    (``mechlp.model.tolerances.FEASIBILITY``); the message carries the verifier's summary. Never silent.
``"error"``
    The solver failed (native status and message in ``Result.solver``).

Each backend maps its native statuses to these through one table (``STATUS_MAP`` in
``mechlp/backends/highs.py`` and ``mechlp/backends/cvxpy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.backends.base import SolverOutput
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.spaces import StateSpace
from mechlp.solve.figures import draw

__all__ = ["Result", "STATUSES"]

STATUSES = ("optimal", "infeasible", "unbounded", "time_limit", "verification_failed", "error")


@dataclass
class Result:
    """Answer to one question on one space.

    Attributes
    ----------
    status, message : str
        See the module docstring for the status strings.
    question : str
        ``"minmax"`` or ``"feasibility"``.
    options : dict
        The constraint options used, in their written spellings (ic, ir, budget, outside_option, limits,
        backend): ``question_spec.to_dict()`` plus the backend.
    space : StateSpace
    mechanism : Mechanism or None
        The mechanism (transfers at every node) when one was found.
    surplus : ndarray or None
        Designer's expected surplus ``Pi(h)`` at every history of ``space`` (``Pi*`` for the min-max question).
    interim_utilities : list of ndarray or None
        Per agent, ``(n_hist, K_i)`` interim utilities.
    certificate : Verification, ImpossibilityCertificate or None
        For a mechanism, its independent verification (:func:`mechlp.verify.checker.verify`); for an infeasible
        feasibility question, the Farkas certificate (:class:`mechlp.verify.checker.ImpossibilityCertificate`).
    exact_mechanism, exact_check : Mechanism, Verification or str, optional
        With ``feasibility(..., exact=True)``: a mechanism satisfying every row exactly and its exact re-check
        (or the reason none could be built).
    solver : SolverOutput or None
        Native status, message and timing of the backend.
    fees : dict or None
        Bilateral trade on the Markov space: per-period fees on top of the static discrete VCG
        (Lamba 2022, section 6.1), ``{agent: {"first": z1, "by_state": {other's previous label: z}}}``.
    question_spec : Question or None
        The parsed question (:class:`mechlp.model.question.Question`) the builders and the verifier used.
    diagnosis : dict or None
        For an infeasible answer: the min-max surplus and the histories where it is negative.
    """

    status: str
    message: str
    question: str
    options: dict
    space: StateSpace
    mechanism: Mechanism | None = None
    surplus: np.ndarray | None = None
    interim_utilities: list[np.ndarray] | None = None
    certificate: Any = None
    solver: SolverOutput | None = None
    fees: dict | None = None
    diagnosis: dict | None = None
    exact_mechanism: Mechanism | None = None
    exact_check: Any = None
    timings: dict = field(default_factory=dict)
    size: dict = field(default_factory=dict)
    question_spec: Question | None = None

    @property
    def success(self) -> bool:
        return self.status == "optimal"

    @property
    def env(self):
        return self.space.env

    def surplus_table(self) -> list[dict]:
        """``[{"history": h, "where": description, "value": Pi(h)}]`` for every history."""
        if self.surplus is None:
            return []
        return [
            {"history": h, "where": self.space.describe_history(h), "value": float(v)}
            for h, v in enumerate(self.surplus)
        ]

    def plot(self, kind: str | None = None, **kwargs):
        """Figure of this result (``"tree"`` for history trees, ``"states"`` for Markov spaces by default);
        keyword arguments as :func:`mechlp.solve.figures.draw` (e.g. ``path="fig.png"``)."""
        return draw(self, kind, **kwargs)

    def __repr__(self) -> str:
        return f"Result(question={self.question!r}, status={self.status!r}, message={self.message!r})"

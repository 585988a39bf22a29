"""Result objects returned by the questions of :mod:`mechlp.solve.questions`.

:class:`Result` follows the result contract of :mod:`mechlp.model.answer` (``status``, ``message``, ``success``,
``verification``, ``certificate``, ``timings``, ``size``, the labelled frames, ``to_dict`` / ``to_json`` and
:func:`mechlp.model.answer.read_result`).

Status strings (``Result.status``; a subset of :data:`mechlp.model.answer.STATUSES`)
------------------------------------------------------------------------------------
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

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.audit.verifier import Verification, verify
from mechlp.backends.base import SolverOutput
from mechlp.lp.program import LinearProgram
from mechlp.model.answer import STATUSES, Answer
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.spaces import StateSpace
from mechlp.solve.figures import draw

__all__ = ["Result", "STATUSES", "lp_result", "attach_verified"]


@dataclass
class Result(Answer):
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
        For a mechanism, its independent verification (:func:`mechlp.audit.verifier.verify`); for an infeasible
        feasibility question, the Farkas certificate (:class:`mechlp.audit.verifier.ImpossibilityCertificate`).
    verification : Verification or None
        (property) ``certificate`` when it is the verification of a mechanism, else ``None``.
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
    timings, size : dict
        Seconds per step; LP and space sizes.

    JSON (:meth:`to_dict`): the contract's keys plus ``question``, ``options``, ``fees``, ``diagnosis`` (when
    present, without the ``minmax_surplus`` array), ``interim_utilities`` (per agent, ``(n_hist, K_i)``),
    ``exact_verification`` (with ``exact=True``) and ``solver`` (``backend``, ``native_status``).
    :meth:`fees_frame`: ``when`` is ``"first period"`` or ``"after <other agent>=<label>"``.
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
    def verification(self) -> Verification | None:
        """The independent verification of the mechanism (``certificate`` unless that is a Farkas certificate)."""
        return self.certificate if isinstance(self.certificate, Verification) else None

    @property
    def exact_verification(self) -> dict | None:
        """``exact_check`` as JSON data: the exact verification's ``to_dict()``, or ``{"ok": False, "reason"}``
        when no exactly feasible mechanism could be built; ``None`` without ``exact=True``."""
        if self.exact_check is None:
            return None
        if hasattr(self.exact_check, "to_dict"):
            return self.exact_check.to_dict()
        return {"ok": False, "reason": self.exact_check}

    @property
    def env(self):
        return self.space.env

    def surplus_table(self) -> list[dict]:
        """``[{"history": h, "where": description, "value": Pi(h)}]`` for every history (the rows of
        :meth:`surplus_frame`; ``[]`` without a surplus)."""
        return self._surplus_rows()

    def _answer_fees(self) -> dict[str, Any] | None:
        if not self.fees:
            return None
        cols: dict[str, list] = {"agent": [], "when": [], "fee": []}
        for name, f in self.fees.items():  # agents, then the other agent's previous types
            whens = ["first period", *(f"after {f['other']}={lab}" for lab in f["by_state"])]
            cols["agent"] += [name] * len(whens)
            cols["when"] += whens
            cols["fee"] += [float(f["first"]), *(float(v) for v in f["by_state"].values())]
        return cols

    def _answer_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question": self.question, "options": self.options, "fees": self.fees}
        if self.diagnosis:
            out["diagnosis"] = {k: v for k, v in self.diagnosis.items() if k != "minmax_surplus"}
        out["interim_utilities"] = self.interim_utilities
        if self.exact_check is not None:
            out["exact_verification"] = self.exact_verification
        out["solver"] = {
            "backend": self.options.get("backend"),
            "native_status": None if self.solver is None else self.solver.native_status,
        }
        return out

    def plot(self, kind: str | None = None, **kwargs):
        """Figure of this result (``"tree"`` for history trees, ``"states"`` for Markov spaces by default);
        keyword arguments as :func:`mechlp.solve.figures.draw` (e.g. ``path="fig.png"``)."""
        return draw(self, kind, **kwargs)

    def __repr__(self) -> str:
        return f"Result(question={self.question!r}, status={self.status!r}, message={self.message!r})"


# ---------------------------------------------------------------------------------------------- builders
def lp_result(
    cls: type[Result],
    question: str,
    options: dict,
    space: StateSpace,
    lp: LinearProgram,
    out: SolverOutput,
    spec: Question,
    backend: str,
) -> Result:
    """The answer to one LP before its mechanism is read: ``out``'s status, the LP's size and timings.

    ``size`` holds ``histories``, ``nodes``, ``rows``, ``columns`` and ``nonzeros``; ``timings`` ``build`` and
    ``solve``. When the solver did not return ``"optimal"``, ``message`` says what ``backend`` returned.
    ``cls`` is :class:`Result` or a subclass with the same constructor.
    """
    size = {"histories": space.n_hist, "nodes": space.n_nodes, "rows": lp.n_rows, "columns": lp.n_cols}
    size["nonzeros"] = lp.nnz
    timings = {"build": lp.build_seconds, "solve": out.solve_seconds}
    res = cls(out.status, "", question, options, space, solver=out, timings=timings, size=size, question_spec=spec)
    if out.status != "optimal":
        res.message = f"{backend} returned {out.status}: {out.message}"
    return res


def attach_verified(res: Result, mechanism: Mechanism, spec: Question) -> Verification:
    """Verify ``mechanism`` against ``spec`` with :func:`mechlp.audit.verifier.verify` and store it on ``res``.

    Local IC is checked over *all* misreports (an answer to the local rows must hold globally). Sets
    ``res.mechanism``, ``res.certificate`` (the verification), ``res.surplus`` (``Pi(h)``),
    ``res.interim_utilities`` and ``res.timings["verify"]``; returns the verification.
    """
    t0 = time.perf_counter()
    cert = verify(mechanism, question=spec.replace(ic="bayesian") if spec.ic == "local" else spec)
    res.timings["verify"] = time.perf_counter() - t0
    res.mechanism = mechanism
    res.certificate = cert
    res.surplus = mechanism.surplus()
    res.interim_utilities = mechanism.interim_utilities()
    return cert

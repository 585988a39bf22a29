r"""One contract for every answer: questions (:mod:`mechlp.solve`), constructions (:mod:`mechlp.constructions`),
workflows (sharing) and scans (critical discount factors), and the one JSON writer.

It lives in :mod:`mechlp.model` because every layer that returns an answer imports from here (constructions sit
below :mod:`mechlp.solve`, the verifier's certificate files below both).

The contract (:class:`Answer`)
------------------------------
Every result class mixes in :class:`Answer` and provides

``status`` : str
    One of :data:`STATUSES` (below).
``message`` : str
    One readable sentence (or a few lines) on what was found.
``success`` : bool
    ``status in SUCCESS_STATUSES``: the object asked for exists and passed its check.
``verification`` : Verification or None
    The independent check of the answer's mechanism (:func:`mechlp.audit.verifier.verify`), ``None`` when the
    answer has no mechanism or it was not checked.
``certificate`` : Verification, ImpossibilityCertificate or None
    The proof object: the verification of a mechanism, or the Farkas certificate of an impossibility.
``timings`` : dict
    Seconds per step (``{}`` when not measured).
``size`` : dict
    Sizes of what was solved or built (histories, nodes, LP rows and columns, grid points...).

and, from this mixin, :meth:`~Answer.to_dict`, :meth:`~Answer.to_json`, :meth:`~Answer.from_json` and the
labelled pandas views :meth:`~Answer.surplus_frame` (:math:`\Pi(h)` by history or state, with its description),
:meth:`~Answer.transfers_frame` (payments by node, history, profile and agent) and :meth:`~Answer.fees_frame`.
Answers that solve no LP take ``certificate``/``verification`` and ``size`` from :class:`VerifiedOnSpace`
(constructions: the verification is the proof object) or :class:`CertifiedOnSpace` (sharing, intermediate
mechanisms: the proof object is the verification).

Status strings (:data:`STATUSES`)
---------------------------------
``"optimal"``
    A question was solved and its mechanism passed the independent verifier (for a feasibility question: the
    requested constraints can be met).
``"feasible"``
    A construction or scan found the requested property to hold (lump-sum fees balance the budget; a scan is
    feasible at every grid point).
``"verified"``
    A construction (pivot, team mechanism) was built and passed the independent verifier.
``"bracketed"``
    A scan found, and bisected, at least one sign change (critical discount factors).
``"infeasible"``
    No mechanism satisfies the constraints (or the condition fails / a scan is infeasible everywhere).
``"unbounded"``, ``"time_limit"``
    Solver outcomes.
``"not_verified"``
    Built, but the verifier was not run (``check=False``).
``"refused"``
    A construction's own condition fails, with the reason (e.g. Athey and Segal's bonded team mechanism below
    its participation threshold); nothing is claimed about the question itself.
``"unverified"``
    The solver claimed an answer that no verified proof backs (e.g. "infeasible" without a verified
    impossibility certificate, or a min-max LP "infeasible" although IC and IR alone are always satisfiable):
    reported, never passed on as an answer.
``"ill_conditioned"``
    As ``"unverified"``, with a discount factor so close to 1 that :math:`1-\delta` is below
    ``tolerances.DISCOUNT_GAP``: float tolerances are meaningless at that scale.
``"verification_failed"``
    The independent verifier found a violation above the tolerance; never silent.
``"not_proved"``
    A second best or optimal mechanism whose mechanism passed the verifier but whose optimality has no exact
    certificate (:func:`mechlp.audit.verifier.check_optimality`: an exact gap above
    ``tolerances.OPTIMALITY_GAP``, or a formulation, backend or option the exact certificate does not cover, or
    ``certify=False``); the message says which.
``"error"``
    The solver or the recursion failed or could not decide.

The JSON document (:meth:`Answer.to_dict`)
------------------------------------------
``schema_version`` (:data:`SCHEMA_VERSION`), ``kind`` (the result class, e.g. ``"Result"``,
``"PivotResult"``), ``status``, ``success``, ``message``; when the answer lives on a space: ``model``,
``agents``, ``space`` (``kind``, ``horizon``, ``histories``, ``nodes``, ``profiles``: the label of every report
profile); ``surplus`` (``[{"history", "where", "value"}]``, empty without one), ``transfers`` (``(n_agents,
n_nodes)`` payments to the designer as nested lists, or ``null``), ``fees_table`` (the rows of
:meth:`~Answer.fees_frame`), ``verification`` (:meth:`Verification.to_dict` or ``null``), ``certificate``
(``{"kind": "verification", "ok": ...}`` when the proof is that verification, the impossibility certificate's
``to_dict()`` (``"kind": "impossibility"``), or ``null``), ``timings``, ``size``, then the fields of the class
(documented with each class). Arrays are written as lists; NaN and infinities as ``null``.

Reading it back (:func:`read_result`)
-------------------------------------
:func:`read_result` (also ``Answer.from_json``) restores the JSON-level content as a :class:`ResultRecord`:
``status``, ``message``, ``success``, ``kind``, ``schema_version``, ``surplus`` and ``transfers`` (float arrays),
the history descriptions, ``agents``, ``profiles``, ``verification`` and ``certificate`` (as dicts), ``timings``,
``size`` and every other key in ``data``. The record has the same frames. It does not rebuild the environment,
the space or the mechanism (re-check a mechanism with a certificate file, :mod:`mechlp.audit.certfile`).

One writer
----------
:func:`jsonable` turns numpy values, fractions, mappings, sequences, DataFrames and objects with ``to_dict``
into plain JSON data; :func:`dumps` and :func:`write_json` are the only places that format JSON text (the
exports, certificate files and every ``--json`` of the command line go through them).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "SUCCESS_STATUSES",
    "Answer",
    "ResultRecord",
    "read_result",
    "jsonable",
    "dumps",
    "write_json",
    "space_summary",
    "space_size",
    "VerifiedOnSpace",
    "CertifiedOnSpace",
    "SolverFailure",
]

#: Version of the JSON documents written by :meth:`Answer.to_dict` and the command line's ``--json``.
#: 2: notions in their written spelling (``"ex_ante"``); 1 (mechlp 0.1) wrote the CLI spelling (``"ex-ante"``)
#: in ``mechlp solve --json``. :func:`read_result` reads both.
SCHEMA_VERSION = 2


class SolverFailure(RuntimeError):
    """A solver gave no answer where a computation needed one (e.g. a min-max LP inside a scan): not bad input.
    The command line exits 3 for it (:mod:`mechlp.cli.exits`), where a ``ValueError`` (bad input) exits 2."""


#: Every status string an answer can have (module docstring).
STATUSES: tuple[str, ...] = (
    "optimal",
    "feasible",
    "verified",
    "bracketed",
    "infeasible",
    "unbounded",
    "time_limit",
    "not_verified",
    "refused",
    "unverified",
    "ill_conditioned",
    "verification_failed",
    "not_proved",
    "error",
)

#: The statuses for which ``success`` is True.
SUCCESS_STATUSES: tuple[str, ...] = ("optimal", "feasible", "verified", "bracketed")

#: Keys of the document that :meth:`Answer.to_dict` owns; a class's own fields may not reuse them.
CONTRACT_KEYS = (
    "schema_version",
    "kind",
    "status",
    "success",
    "message",
    "model",
    "agents",
    "space",
    "surplus",
    "transfers",
    "fees_table",
    "verification",
    "certificate",
    "timings",
    "size",
)

_TRANSFER_COLUMNS = ("history", "where", "profile")
_FEE_INDEX = ["agent", "when"]


# ---------------------------------------------------------------------------------------------- the writer
def jsonable(value: Any) -> Any:
    """Plain JSON data from numpy arrays and scalars, fractions, mappings, sequences, DataFrames and objects with
    a ``to_dict`` method (results, verifications, certificates).

    NaN and infinities become ``None`` (JSON has no such numbers); fractions become exact strings (``"-19/20"``).
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, numbers.Rational):  # Fraction, gmpy2.mpq
        return str(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """JSON text of ``value`` (through :func:`jsonable`; strict JSON: no NaN)."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> str:
    """Write ``value`` as JSON to ``path`` (UTF-8, trailing newline) and return the text: the one JSON writer."""
    text = dumps(value, indent=indent)
    Path(path).write_text(text + "\n", encoding="utf-8")
    return text


# ---------------------------------------------------------------------------------------------- labels
def space_summary(space: Any) -> dict[str, Any]:
    """``{"kind", "horizon", "histories", "nodes", "profiles"}`` of a state space (``profiles``: the label
    ``"(t_1, ..., t_n)"`` of every report profile, in profile order)."""
    env = space.env
    horizon = getattr(space, "horizon", None)
    return {
        "kind": space.kind,
        "horizon": "infinite" if horizon is None or space.kind == "markov" else int(horizon),
        "histories": int(space.n_hist),
        "nodes": int(space.n_nodes),
        "profiles": ["(" + ", ".join(env.profile_labels(p).values()) + ")" for p in range(env.n_profiles)],
    }


def space_size(space: Any) -> dict[str, int]:
    """``{"histories", "nodes"}`` of a state space: the ``size`` of an answer that solved no LP on it."""
    return {"histories": int(space.n_hist), "nodes": int(space.n_nodes)}


def _frame_attrs(answer: Answer) -> dict[str, Any]:
    return {"kind": answer._kind(), "status": answer.status}


def _surplus_frame(labels: Any, surplus: np.ndarray | None, attrs: dict) -> pd.DataFrame:
    if surplus is None:
        df = pd.DataFrame({"where": pd.Series(dtype=object), "surplus": pd.Series(dtype=float)})
    else:
        n = surplus.shape[0]
        where = np.asarray(labels, dtype=object) if labels is not None else np.full(n, None, dtype=object)
        df = pd.DataFrame({"where": where, "surplus": np.asarray(surplus, dtype=float)})
    df.index = pd.RangeIndex(len(df), name="history")
    df.attrs.update(attrs)
    return df


def _transfers_frame(
    labels: Any, profiles: list[str] | None, agents: list[str], transfers: np.ndarray | None, attrs: dict
) -> pd.DataFrame:
    clash = sorted(set(agents) & set(_TRANSFER_COLUMNS))
    if clash:
        raise ValueError(f"transfers_frame: agent name(s) {clash} clash with the columns {list(_TRANSFER_COLUMNS)}")
    if transfers is None:
        cols: dict[str, Any] = {c: pd.Series(dtype=object) for c in _TRANSFER_COLUMNS}
        cols.update({a: pd.Series(dtype=float) for a in agents})
        df = pd.DataFrame(cols)
    else:
        n_nodes = transfers.shape[1]
        k = len(profiles) if profiles else 1
        node = np.arange(n_nodes)
        hist = node // k
        where = np.asarray(labels, dtype=object)[hist] if labels is not None else np.full(n_nodes, None, dtype=object)
        prof = np.asarray(profiles, dtype=object)[node % k] if profiles else np.full(n_nodes, None, dtype=object)
        cols = {"history": hist, "where": where, "profile": prof}
        cols.update({a: np.asarray(transfers[i], dtype=float) for i, a in enumerate(agents)})
        df = pd.DataFrame(cols)
    df.index = pd.RangeIndex(len(df), name="node")
    df.attrs.update(attrs)
    return df


def _fees_frame(columns: dict[str, Any] | None, attrs: dict) -> pd.DataFrame:
    if not columns:
        df = pd.DataFrame(
            {"agent": pd.Series(dtype=object), "when": pd.Series(dtype=object), "fee": pd.Series(dtype=float)}
        )
    else:
        df = pd.DataFrame(columns)
    df = df.set_index(_FEE_INDEX)
    df.attrs.update(attrs)
    return df


# ---------------------------------------------------------------------------------------------- contract
class Answer:
    """Mixin of every result class (module docstring: the contract).

    A class provides ``status``, ``message``, ``verification``, ``certificate``, ``timings`` and ``size`` (as
    fields or properties) and may override the hooks

    * ``_answer_space()`` -- the state space its surplus and transfers are indexed by (default ``self.space``);
    * ``_answer_surplus()`` -- :math:`\\Pi(h)` per history (default ``self.surplus``);
    * ``_answer_transfers()`` -- ``(n_agents, n_nodes)`` payments (default ``self.mechanism.transfers``);
    * ``_answer_fees()`` -- the columns of :meth:`fees_frame` (default: no fees);
    * ``_answer_fields()`` -- the class's own JSON content (default: none).
    """

    # -- hooks ------------------------------------------------------------------------------------------------
    def _kind(self) -> str:
        return type(self).__name__

    def _answer_space(self) -> Any:
        return getattr(self, "space", None)

    def _answer_surplus(self) -> np.ndarray | None:
        pi = getattr(self, "surplus", None)
        return None if pi is None else np.asarray(pi, dtype=float)

    def _answer_transfers(self) -> np.ndarray | None:
        mech = getattr(self, "mechanism", None)
        return None if mech is None else np.asarray(mech.transfers, dtype=float)

    def _answer_fees(self) -> dict[str, Any] | None:
        return None

    def _answer_fields(self) -> dict[str, Any]:
        return {}

    def _labels(self) -> tuple[Any, list[str] | None, list[str]]:
        """History descriptions, profile labels and agent names (``None``, ``None``, ``[]`` without a space)."""
        sp = self._answer_space()
        if sp is None:
            return None, None, []
        summary = space_summary(sp)
        return sp.describe_histories(), summary["profiles"], [ag.name for ag in sp.env.agents]

    def _surplus_rows(self) -> list[dict[str, Any]]:
        """``[{"history", "where", "value"}]``: the rows of :meth:`surplus_frame`."""
        df = self.surplus_frame().reset_index().rename(columns={"surplus": "value"})
        return df.to_dict(orient="records")

    # -- contract ---------------------------------------------------------------------------------------------
    @property
    def success(self) -> bool:
        """``status in SUCCESS_STATUSES``."""
        return self.status in SUCCESS_STATUSES

    def surplus_frame(self) -> pd.DataFrame:
        r"""The designer's expected surplus :math:`\Pi(h)` by history (``Pi*`` for the min-max question).

        Returns
        -------
        DataFrame
            Index ``history`` (0 .. n_hist - 1); columns ``where`` (the history or Markov state in words,
            :meth:`StateSpace.describe_history`) and ``surplus``. No rows when the answer has no surplus.
            ``attrs`` carry ``kind`` and ``status``.
        """
        labels, _, _ = self._labels()
        return _surplus_frame(labels, self._answer_surplus(), _frame_attrs(self))

    def transfers_frame(self) -> pd.DataFrame:
        """The mechanism's payments to the designer at every node.

        Returns
        -------
        DataFrame
            Index ``node`` (``g = h * K + profile``); columns ``history`` (``g // K``), ``where`` (the history
            in words), ``profile`` (the current report profile, ``"(t_1, ..., t_n)"``) and one column per agent
            (by name) with :math:`x_i(g)`. No rows without a mechanism.
        """
        labels, profiles, agents = self._labels()
        return _transfers_frame(labels, profiles, agents, self._answer_transfers(), _frame_attrs(self))

    def fees_frame(self) -> pd.DataFrame:
        """Fees by agent (lump-sum fees, or the per-period fees on top of the static VCG).

        Returns
        -------
        DataFrame
            Index ``(agent, when)``; column ``fee`` (and ``expected_fees`` for per-history lump-sum fees). No
            rows when the answer has no fees. ``when`` is documented by each class.
        """
        return _fees_frame(self._answer_fees(), _frame_attrs(self))

    def to_dict(self) -> dict[str, Any]:
        """The answer as plain JSON data (module docstring: the document); arrays as lists."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": self._kind(),
            "status": self.status,
            "success": bool(self.success),
            "message": self.message,
        }
        sp = self._answer_space()
        if sp is not None:
            out["model"] = sp.env.name
            out["agents"] = [ag.name for ag in sp.env.agents]
            out["space"] = space_summary(sp)
        out["surplus"] = self._surplus_rows()
        x = self._answer_transfers()
        out["transfers"] = None if x is None else x
        fees = self.fees_frame()
        out["fees_table"] = fees.reset_index().to_dict(orient="records") if len(fees) else []
        ver = self.verification
        cert = self.certificate
        out["verification"] = _proof_dict(ver)
        if cert is not None and cert is ver:
            out["certificate"] = {"kind": "verification", "ok": bool(out["verification"].get("ok"))}
        else:
            out["certificate"] = _proof_dict(cert)
        out["timings"] = dict(self.timings)
        out["size"] = dict(self.size)
        own = self._answer_fields()
        clash = sorted(set(own) & set(CONTRACT_KEYS))
        if clash:  # pragma: no cover - a programming error in a result class
            raise ValueError(f"{self._kind()}: fields {clash} reuse keys of the result contract")
        out.update(own)
        return jsonable(out)

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` when given (:func:`write_json`)."""
        return dumps(self, indent=indent) if path is None else write_json(path, self, indent=indent)

    @classmethod
    def from_json(cls, source: str | os.PathLike | Mapping) -> ResultRecord:
        """Read a document written by :meth:`to_json` (text, a path or the parsed dict) as a
        :class:`ResultRecord`; on a subclass, the document's ``kind`` must name that class or a subclass."""
        rec = read_result(source)
        if cls not in (Answer, ResultRecord):
            names = {c.__name__ for c in _subclasses(cls)} | {cls.__name__}
            if rec.kind not in names:
                raise ValueError(f"from_json: the document holds a {rec.kind!r}, not a {cls.__name__!r}")
        return rec


class _SizedBySpace(Answer):
    """``size`` counts the histories and nodes of :meth:`_answer_space` (:func:`space_size`)."""

    @property
    def size(self) -> dict:
        return space_size(self._answer_space())


class VerifiedOnSpace(_SizedBySpace):
    """Mixin of an answer that stores the verification of its mechanism as ``verification`` (the constructions):
    its proof object ``certificate`` is that verification; ``size`` counts the histories and nodes of
    :meth:`_answer_space` (:func:`space_size`)."""

    @property
    def certificate(self) -> Any:
        return self.verification


class CertifiedOnSpace(_SizedBySpace):
    """Mixin of an answer that stores the verification of its mechanism as ``certificate`` (sharing, intermediate
    mechanisms): ``verification`` is that field; ``size`` counts the histories and nodes of :meth:`_answer_space`
    (:func:`space_size`)."""

    @property
    def verification(self) -> Any:
        return self.certificate


def _proof_dict(proof: Any) -> dict | None:
    """A verification or certificate as a dict (``to_dict()``; a dict read back from JSON as it is)."""
    if proof is None:
        return None
    return dict(proof) if isinstance(proof, Mapping) else proof.to_dict()


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class ResultRecord(Answer):
    """The JSON-level content of an answer, restored by :func:`read_result`.

    Attributes
    ----------
    kind : str
        The class that wrote the document (``"Result"``, ``"PivotResult"``, ...).
    status, message : str
    surplus : ndarray or None
        :math:`\\Pi(h)` by history (``null`` entries, i.e. non-finite values, read as NaN).
    transfers : ndarray or None
        ``(n_agents, n_nodes)`` payments to the designer.
    where : list of str or None
        The description of every history (from the surplus table).
    agents : list of str
    profiles : list of str or None
        The label of every report profile.
    space : dict or None
        The document's ``space`` entry (kind, horizon, histories, nodes, profiles): not a :class:`StateSpace`.
    verification, certificate : dict or None
        As written (a certificate ``{"kind": "verification"}`` reads as the verification itself).
    timings, size : dict
    fees : list of dict
        The rows of :meth:`fees_frame`.
    data : dict
        The whole document as read.
    schema_version : int
    """

    kind: str
    status: str
    message: str
    surplus: np.ndarray | None = None
    transfers: np.ndarray | None = None
    where: list[str] | None = None
    agents: list[str] = field(default_factory=list)
    profiles: list[str] | None = None
    space: dict | None = None
    verification: dict | None = None
    certificate: dict | None = None
    timings: dict = field(default_factory=dict)
    size: dict = field(default_factory=dict)
    fees: list[dict] = field(default_factory=list)
    data: dict = field(default_factory=dict, repr=False)
    schema_version: int = SCHEMA_VERSION

    def _kind(self) -> str:
        return self.kind

    def _answer_space(self) -> Any:
        return None

    def _labels(self) -> tuple[Any, list[str] | None, list[str]]:
        return self.where, self.profiles, list(self.agents)

    def _answer_transfers(self) -> np.ndarray | None:
        return self.transfers

    def _answer_fees(self) -> dict[str, Any] | None:
        if not self.fees:
            return None
        return pd.DataFrame(self.fees).to_dict(orient="list")

    def to_dict(self) -> dict[str, Any]:
        """The document again: :attr:`data`, with the contract keys taken from the attributes."""
        out = {**self.data, **super().to_dict()}
        if self.agents or "agents" in self.data:
            out["agents"] = list(self.agents)
        if self.space is not None:
            out["space"] = self.space
        return jsonable(out)

    def __repr__(self) -> str:
        return f"ResultRecord(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"


def _float_array(value: Any, key: str) -> np.ndarray:
    """A list (or list of lists) of numbers as a float array; ``null`` entries read as NaN."""
    try:
        if value and isinstance(value[0], list):
            return pd.DataFrame(value, dtype=float).to_numpy()
        return pd.Series(value, dtype=float).to_numpy()
    except (TypeError, ValueError):
        raise ValueError(f"read_result: {key!r} must be a list of numbers (or of lists of numbers)") from None


def read_result(source: str | os.PathLike | Mapping) -> ResultRecord:
    """Restore the JSON-level content of an answer written by :meth:`Answer.to_json` (module docstring).

    Parameters
    ----------
    source : str, path or mapping
        JSON text (starting with ``{``), a path to a JSON file, or the parsed document.

    Returns
    -------
    ResultRecord

    Raises
    ------
    ValueError
        When the document is not an object, lacks ``kind``, ``status`` or ``message``, has a status outside
        :data:`STATUSES`, or a ``schema_version`` newer than :data:`SCHEMA_VERSION`.
    """
    if isinstance(source, Mapping):
        doc = dict(source)
    else:
        text = source if isinstance(source, str) and source.lstrip().startswith("{") else None
        if text is None:
            text = Path(source).read_text(encoding="utf-8")
        doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError(f"read_result: the document must be a JSON object, got {type(doc).__name__}")
    for key in ("kind", "status", "message"):
        if key not in doc:
            raise ValueError(f"read_result: the document has no {key!r} (not written by Answer.to_json?)")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"read_result: schema_version must be an integer in 1..{SCHEMA_VERSION}, got {version!r}")
    if doc["status"] not in STATUSES:
        raise ValueError(f"read_result: status {doc['status']!r} is not one of {STATUSES}")
    rows = doc.get("surplus") or []
    surplus = _float_array([r.get("value") for r in rows], "surplus") if rows else None
    where = [r.get("where") for r in rows] if rows else None
    transfers = doc.get("transfers")
    x = None if transfers is None else _float_array(transfers, "transfers")
    space = doc.get("space")
    ver = doc.get("verification")
    cert = doc.get("certificate")
    if isinstance(cert, dict) and cert.get("kind") == "verification":
        cert = ver
    return ResultRecord(
        kind=str(doc["kind"]),
        status=doc["status"],
        message=doc["message"],
        surplus=surplus,
        transfers=x,
        where=where,
        agents=list(doc.get("agents") or []),
        profiles=None if not isinstance(space, dict) else space.get("profiles"),
        space=space,
        verification=ver,
        certificate=cert,
        timings=dict(doc.get("timings") or {}),
        size=dict(doc.get("size") or {}),
        fees=list(doc.get("fees_table") or []),
        data=doc,
        schema_version=version,
    )

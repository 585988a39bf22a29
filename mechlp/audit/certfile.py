"""Certificate files: JSON that can be re-checked later without re-solving (``mechlp check``).

A file (``"format": "mechlp-certificate/2"``, :data:`FORMAT`; version 1 files, without the rows of ex post IC, IR,
budget and limits, are read too) holds the model (the TOML schema as a dict, with a SHA-256 of its
canonical JSON), the question as :meth:`mechlp.model.question.Question.to_dict` writes it (``ic``, ``ir``,
``budget``, ``outside_option``, ``limits``, in the written spellings; read back strictly by
:meth:`~mechlp.model.question.Question.from_dict`: unknown keys or notions are errors, missing keys take their
defaults), the space (``"markov"``, or ``"tree"`` / ``"tail"`` with its ``horizon``; it must be the model's own
game unless the checker asks about a truncation, see :func:`check_certificate`) and either

* ``"kind": "mechanism"`` and ``"transfers"``: one entry per node,
  ``{"history": [{agent: label}, ...], "profile": {agent: label}, "payments": {agent: value}}`` where
  ``history`` lists the earlier report profiles (empty in the first period; on the Markov space at most the
  previous one; entries of a tree's Markov tail carry ``"tail": true`` and the previous profile) and values are
  payments to the designer, as exact fraction strings (``"-19/20"``), decimal
  strings or numbers (read exactly as written). This is also the format for auditing a mechanism from a paper:
  write the transfers by hand and run ``mechlp check``; or
* ``"kind": "impossibility"`` and ``"multipliers"``: Farkas multipliers over labelled rows
  (:meth:`mechlp.audit.verifier.ImpossibilityCertificate.to_dict`); or
* ``"kind": "intermediate_impossibility"``: Farkas multipliers over the rows of Lamba's intermediate mechanism
  (agents see their own reports and the realised action) on the ``"signal"`` space of ``horizon`` periods
  (:meth:`mechlp.audit.intermediate.IntermediateCertificate.to_dict`); its ``question`` holds ``ic``
  (``"intermediate"``), ``ir``, ``budget`` and ``outside_option``.
* ``"kind": "optimality"`` (``"format": "mechlp-certificate/3"``, :data:`OPTIMALITY_FORMAT`; second best and
  optimal mechanisms, :func:`optimality_payload`): ``objective``, ``transfers`` entries that also carry the node
  allocation (``"allocation": {action: value}``), dual ``multipliers`` over labelled rows with the ``options`` of
  those rows, and the stated bounds ``optimality`` (``lower``, ``upper``, ``gap`` as fractions). The check
  recomputes both sides exactly (:func:`mechlp.audit.verifier.check_optimality`: the mechanism verified with its
  allocation as written, its objective, the multipliers' signs, the zero transfer coefficients of the Lagrangian
  and the weak-duality bound) and fails when the stated bounds differ from the recomputed ones.

``verification`` records what was found when the file was written; ``mechlp check`` recomputes everything.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mechlp.audit.intermediate import IntermediateCertificate, check_intermediate_impossibility
from mechlp.audit.verifier import (
    BOUND_OBJECTIVES,
    ImpossibilityCertificate,
    check_impossibility,
    check_optimality,
    verify,
)
from mechlp.model.answer import write_json as _write_json
from mechlp.model.environment import Environment
from mechlp.model.files import exact_number, read_text
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.serialize import model_to_dict
from mechlp.model.signals import MarkovSignalSpace, SignalSpace
from mechlp.model.spaces import (
    DEFAULT_MEMORY_LIMIT,
    MAX_MEMORY_LIMIT,
    HistoryTree,
    MarkovSpace,
    StateSpace,
    TreeWithTail,
    check_memory,
    estimate_memory,
)

#: The format written; :data:`FORMATS` are read. Version 2 adds the rows of ex post IC, IR and budget and of
#: transfer limits to the multipliers (keys ``others``, ``profile``, ``side``; family ``limits``; ``options.limits``);
#: a version-1 file is a version-2 file without them.
FORMAT = "mechlp-certificate/2"
#: Version 3 adds the kind ``"optimality"`` (written only for it; the other kinds are still written as version 2):
#: transfers entries with ``allocation``, dual ``multipliers`` with their ``options``, the ``objective`` and the
#: stated ``optimality`` bounds.
OPTIMALITY_FORMAT = "mechlp-certificate/3"
FORMATS = ("mechlp-certificate/1", FORMAT, OPTIMALITY_FORMAT)

__all__ = [
    "FORMAT",
    "FORMATS",
    "OPTIMALITY_FORMAT",
    "optimality_payload",
    "read_allocation",
    "model_hash",
    "question_hash",
    "certificate_payload",
    "check_certificate",
    "read_mechanism",
]


def model_hash(env: Environment) -> str:
    """SHA-256 of the canonical JSON of the model (what the certificate was made for)."""
    text = json.dumps(model_to_dict(env), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def question_hash(model_sha256: str, question: dict) -> str:
    """SHA-256 binding a question (:meth:`Question.to_dict`) to a model hash: detects a question block edited
    after the file was written (a forger can recompute it; what a certificate proves is re-derived anyway)."""
    text = json.dumps({"model_sha256": model_sha256, "question": question}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _row_options(rel: Question, question_budget: str) -> dict:
    """The options of the rows an impossibility certificate for ``rel`` is made of (its certifying relaxation)."""
    out = {
        "ic": rel.ic,
        "ir": rel.ir,
        "budget": rel.budget,
        "question_budget": question_budget,
        "outside_option": [o.tolist() for o in rel.outside],
    }
    if rel.has_limits:
        out["limits"] = {name: list(pair) for name, pair in (rel.limits or {}).items()}
    return out


def _row_mismatch(stated: Any, rows: dict, env: Environment) -> list[str]:
    """How the options a file states for its multipliers differ from the rows its question certifies."""
    if stated is None:
        return []
    if not isinstance(stated, dict):
        return [f"'options' must be an object, got {stated!r}"]
    out = [
        f"{key}: the file says {stated.get(key)!r}, its question needs {rows[key]!r}"
        for key in ("ic", "ir", "budget", "question_budget")
        if key in stated and stated.get(key) != rows[key]
    ]
    if stated.get("limits") != rows.get("limits") and ("limits" in stated or "limits" in rows):
        out.append(f"limits: the file says {stated.get('limits')!r}, its question needs {rows.get('limits')!r}")
    if "outside_option" in stated:
        try:
            given = Question.parse(env, outside_option=stated["outside_option"]).outside
        except (TypeError, ValueError) as exc:
            return [*out, f"outside_option: {exc}"]
        if not all(np.array_equal(a, b) for a, b in zip(given, rows["outside_option"], strict=True)):
            out.append("outside_option: the multipliers' rows use other outside options than the question")
    return out


def _space_dict(space: StateSpace) -> dict:
    return {"space": space.kind, "horizon": int(space.horizon) if space.kind in ("tree", "tail") else "infinite"}


def _transfer_entries(mech: Mechanism) -> list[dict]:
    """One entry per node: ``history``, ``profile``, ``payments`` and, for a mechanism with an exact node
    allocation, ``allocation`` (``{action: fraction}``)."""
    space = mech.space
    env = space.env
    k = env.n_profiles
    exact = mech.exact_transfers
    alloc = getattr(mech, "exact_allocation", None)
    entries = []
    for h in range(space.n_hist):  # serialisation: one JSON entry per node is the file format itself
        path = space.history_path(h)
        for p in range(k):
            g = h * k + p
            pay = {
                ag.name: (str(Fraction(exact[i, g])) if exact is not None else repr(float(mech.transfers[i, g])))
                for i, ag in enumerate(env.agents)
            }
            entry = {"history": path, "profile": env.profile_labels(p), "payments": pay}
            if alloc is not None:
                entry["allocation"] = {a: str(Fraction(alloc[g, j])) for j, a in enumerate(env.actions)}
            if space.kind == "tail" and h >= space.n_tree:
                entry["tail"] = True  # a Markov state of the tail: "history" holds the previous profile only
            entries.append(entry)
    return entries


def certificate_payload(result: Any, exact: bool = False) -> dict:
    """The certificate file of a feasibility result (a :class:`mechlp.solve.result.Result`, read by attribute:
    the verifier imports nothing above the model): its mechanism (feasible) or its Farkas multipliers."""
    if getattr(result.space, "kind", None) in ("signal", "signal_markov"):
        return _intermediate_payload(result)
    env = result.env
    sp = result.space
    spec = result.question_spec
    if spec is None:  # a result built by hand: its options hold the question
        opts = result.options
        spec = Question.parse(
            env,
            ic=opts["ic"],
            ir=opts["ir"],
            budget=opts["budget"],
            outside_option=opts.get("outside_option", 0.0),
            limits=opts.get("limits"),
        )
    question = spec.to_dict()
    base = {
        "format": FORMAT,
        "model": model_to_dict(env),
        "model_sha256": model_hash(env),
        "question": question,
        "question_sha256": question_hash(model_hash(env), question),
        **_space_dict(sp),
        "status": result.status,
        "message": result.message,
    }
    if result.status == "infeasible":
        if result.certificate is None:
            raise ValueError("this infeasible result has no Farkas certificate to write")
        return {**base, "kind": "impossibility", **result.certificate.to_dict()}
    if result.status != "optimal" or result.mechanism is None:
        raise ValueError(f"no certificate for a result with status {result.status!r}")
    mech = result.mechanism
    ver = result.certificate
    if exact and result.exact_mechanism is not None:
        mech, ver = result.exact_mechanism, result.exact_check
    return {
        **base,
        "kind": "mechanism",
        "exact": mech.exact_transfers is not None,
        "verification": ver.to_dict(),
        "transfers": _transfer_entries(mech),
    }


def _intermediate_question(result: Any) -> dict:
    opts = result.options
    oo = opts.get("outside_option", 0.0)
    return {
        "ic": "intermediate",
        "ir": opts["ir"],
        "budget": opts["budget"],
        "outside_option": np.asarray(oo, dtype=float).tolist() if not isinstance(oo, str) else oo,
    }


def _intermediate_payload(result: Any) -> dict:
    """The certificate file of an infeasible intermediate-mechanism answer (Farkas multipliers; a feasible answer
    is re-checked by re-solving, its mechanism has no file format yet)."""
    cert = getattr(result, "impossibility", None)
    if result.status != "infeasible" or cert is None:
        raise ValueError(
            f"no certificate file for an intermediate-mechanism result with status {result.status!r}: only "
            "infeasible answers with a verified impossibility certificate are written"
        )
    env = result.space.env
    question = _intermediate_question(result)
    return {
        "format": "mechlp-certificate/1",
        "model": model_to_dict(env),
        "model_sha256": model_hash(env),
        "question": question,
        "question_sha256": question_hash(model_hash(env), question),
        **(
            {"space": "signal_markov"}
            if result.space.kind == "signal_markov"
            else {"space": "signal", "horizon": int(result.space.horizon)}
        ),
        "status": result.status,
        "message": result.message,
        "kind": "intermediate_impossibility",
        **cert.to_dict(),
        "verification": {k: {kk: vv for kk, vv in v.items()} for k, v in cert.checks.items()},
    }


def _float_and_exact(check, cert: Any, exact: bool, doc: dict, what: str, lines: list[str]) -> bool:
    """Run a certificate ``check`` in floats and (``exact``) in rationals, adding one line each to ``lines``."""
    res = check(cert, exact=False)
    ok = bool(res["ok"])
    lines.append(
        f"{what} certificate ({len(doc.get('multipliers', []))} multipliers), float check: "
        f"{'OK' if ok else 'FAILED'} ({res['message']})"
    )
    if exact:
        res_x = check(cert, exact=True)
        ok = ok and bool(res_x["ok"])
        lines.append(f"exact check: {'OK' if res_x['ok'] else 'FAILED'} ({res_x['message']})")
    return ok


def _check_intermediate(
    env: Environment, doc: dict, exact: bool, question: Question | None, horizon: int | None, memory_limit: int
) -> tuple[bool, str]:
    """:func:`check_certificate` for ``"kind": "intermediate_impossibility"``."""
    q = doc.get("question", {})
    if not isinstance(q, dict) or q.get("ic") != "intermediate":
        return False, "certificate: an intermediate-mechanism file needs question.ic = 'intermediate'"
    stated_hash = doc.get("question_sha256")
    if stated_hash is not None and stated_hash != question_hash(model_hash(env), q):
        return False, "the certificate's question block does not match its question_sha256: it was edited"
    budget = q.get("budget", "interim")
    if budget not in ("interim", "ex_ante", "ex_post"):
        return False, f"certificate: question.budget {budget!r} cannot be proved impossible"
    rows_budget = "ex_ante" if budget == "ex_ante" else "interim"
    stated = doc.get("options", {})
    if stated.get("budget", rows_budget) != rows_budget or stated.get("ir", q.get("ir")) != q.get("ir"):
        return False, "the multipliers' stated rows do not match the certificate's question"
    if question is not None:
        diff = [
            f"{name} {a!r} vs {b!r}"
            for name, a, b in (("budget", budget, question.budget), ("ir", q.get("ir"), question.ir))
            if a != b
        ]
        if diff:
            return False, "the certificate answers another question than the one asked: " + "; ".join(diff)
    if doc.get("space") == "signal_markov":
        if horizon is not None or not env.infinite:
            return False, (
                "the certificate is about the infinite-horizon intermediate mechanism (payments on the last "
                f"signal), not about {'a finite horizon' if not env.infinite else f'{horizon} periods'}"
            )
        space = MarkovSignalSpace(env)
        game = "infinite horizon, payments on the agents' last signal"
    else:
        t = doc.get("horizon")
        if doc.get("space") != "signal" or isinstance(t, bool) or not isinstance(t, int) or t < 1:
            return (
                False,
                "certificate: an intermediate-mechanism file needs space 'signal' (with a positive horizon) "
                "or 'signal_markov'",
            )
        if horizon is not None and horizon != t:
            return (
                False,
                f"the certificate is on the {t}-period information tree, not on the {horizon} periods asked for",
            )
        if horizon is None and (env.infinite or t != env.horizon):
            return False, (
                f"the certificate is on the {t}-period information tree, a truncation of this model, so it proves "
                f"nothing about the model; to check the truncation itself, pin it with horizon={t} "
                f"(mechlp check ... --horizon {t})"
            )
        space = SignalSpace(env, t, memory_limit=memory_limit)
        game = f"the {t}-period information tree"
    cert = IntermediateCertificate.from_dict(
        {
            **doc,
            "options": {
                "ir": q.get("ir", "interim"),
                "budget": rows_budget,
                "outside_option": q.get("outside_option", 0.0),
            },
        },
        space,
    )
    lines = [
        f"question: intermediate mechanism (agents see their own reports and the realised action), IR "
        f"{q.get('ir')}, budget {budget}, on {game} (rows: budget {rows_budget})"
    ]
    ok = _float_and_exact(check_intermediate_impossibility, cert, exact, doc, "intermediate impossibility", lines)
    if ok:
        scope = (
            " among intermediate mechanisms with payments on the last signal" if space.kind == "signal_markov" else ""
        )
        lines.append(f"=> no intermediate mechanism satisfies IC, IR {q.get('ir')} and {budget} budget balance{scope}")
    return ok, "\n".join(lines)


def optimality_payload(result: Any) -> dict:
    """The certificate file of a second best or optimal mechanism whose exact optimality certificate holds
    (``result.optimality``, a :class:`mechlp.audit.verifier.OptimalityCertificate`; read by attribute): the
    primal mechanism (payments and allocation per node, exact fractions), the dual multipliers over labelled
    rows with the options of those rows, the objective and the stated bounds."""
    oc = getattr(result, "optimality", None)
    if oc is None or not oc.ok:
        raise ValueError(f"no optimality certificate for a result with status {result.status!r}")
    env = result.env
    question = result.question_spec.to_dict()
    mult = oc.multipliers.to_dict()
    return {
        "format": OPTIMALITY_FORMAT,
        "model": model_to_dict(env),
        "model_sha256": model_hash(env),
        "question": question,
        "question_sha256": question_hash(model_hash(env), question),
        **_space_dict(oc.mechanism.space),
        "status": result.status,
        "message": result.message,
        "kind": "optimality",
        "objective": oc.objective,
        "exact": True,
        "optimality": oc.to_dict(),
        "options": mult["options"],
        "multipliers": mult["multipliers"],
        "transfers": _transfer_entries(oc.mechanism),
    }


def _check_optimality_file(doc: dict, space: StateSpace, q: Question, lines: list[str]) -> bool:
    """The ``"optimality"`` kind of :func:`check_certificate`: everything recomputed exactly from the file."""
    if doc.get("format") != OPTIMALITY_FORMAT:
        raise ValueError(f"certificate: kind 'optimality' needs 'format': {OPTIMALITY_FORMAT!r}")
    objective = doc.get("objective")
    if objective not in BOUND_OBJECTIVES:
        raise ValueError(f"certificate: 'objective' must be one of {BOUND_OBJECTIVES}, got {objective!r}")
    entries = doc.get("transfers", [])
    mech = read_mechanism(space, entries)
    alloc = read_allocation(space, entries)
    floats = alloc.astype(float)
    sums = floats.sum(axis=1, keepdims=True)
    floats = np.clip(floats, 0.0, None) / np.where(sums > 0, sums, 1.0)
    try:
        mech = Mechanism(
            space, mech.transfers, exact_transfers=mech.exact_transfers, allocation=floats, exact_allocation=alloc
        )
    except ValueError as exc:
        return _fail(lines, f"the allocation is not a distribution at every node: {exc}")
    opts = doc.get("options")
    if not isinstance(opts, dict) or not {"ic", "ir", "budget"} <= set(opts):
        raise ValueError("certificate: an optimality certificate needs 'options' naming the rows (ic, ir, budget)")
    rows = {**opts, "outside_option": opts.get("outside_option", [o.tolist() for o in q.outside])}
    cert = ImpossibilityCertificate.from_dict({**doc, "options": rows, "gamma": "0"}, space)
    lines.append(
        f"question: {q.describe()}, on the {_space_text(space)}; objective {objective} (re-checked in exact "
        "rational arithmetic whatever --exact says: the proof is exact)"
    )
    try:
        res = check_optimality(mech, cert, objective, q)
    except ValueError as exc:
        return _fail(lines, f"the multipliers do not bound this question: {exc}")
    lines += res.summary().splitlines()
    stated = doc.get("optimality") if isinstance(doc.get("optimality"), dict) else {}
    ok = res.ok
    for key, have in (("lower", res.lower), ("upper", res.upper)):
        want = stated.get(key)
        if want is None or have is None or exact_number(want, f"optimality.{key}") != have:
            ok = False
            lines.append(f"the stated {key} bound {want} is not the recomputed one ({have})")
    if ok:
        lines.append(
            f"=> the optimal {objective.replace('_', ' ')} is in [{float(res.lower):.12g}, {float(res.upper):.12g}] "
            f"(exact gap {float(res.gap):.3g}): the mechanism is optimal within it"
        )
    return ok


def _fail(lines: list[str], text: str) -> bool:
    lines.append(text)
    return False


def _space_for(
    env: Environment, doc: dict, exact: bool = False, memory_limit: int = DEFAULT_MEMORY_LIMIT
) -> StateSpace:
    """The file's space, refused (``MemoryError``) before it is built when checking it would need more than
    ``memory_limit`` (:func:`mechlp.model.spaces.estimate_memory`, question ``"check"``)."""
    kind, horizon = doc.get("space"), doc.get("horizon")
    if kind not in ("markov", "tree", "tail"):
        raise ValueError(f"certificate: 'space' must be 'markov', 'tree' or 'tail', got {kind!r}")
    if kind != "markov" and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
        raise ValueError(f"certificate: a {kind} space needs 'horizon', a positive integer, got {horizon!r}")
    est = estimate_memory(env, "check", kind=kind, horizon=None if kind == "markov" else horizon, exact=exact)
    check_memory(
        est.bytes,
        memory_limit,
        f"checking the certificate's {kind} space{'' if kind == 'markov' else f' of horizon {horizon}'}"
        f"{' exactly' if exact else ''} is too large: {est.describe()}",
        " (raise memory_limit" + (", or check without exact)" if exact else ")"),
    )
    if kind == "markov":
        return MarkovSpace(env)
    if kind == "tree":
        return HistoryTree(env, horizon, memory_limit=MAX_MEMORY_LIMIT)
    return TreeWithTail(env, horizon, memory_limit=MAX_MEMORY_LIMIT)


def _other_game(env: Environment, space: StateSpace, horizon: int | None) -> str | None:
    """Why a file's space is not the game asked about, or ``None``.

    Without ``horizon`` the game is the model's own: the Markov space or a tree with a Markov tail for an infinite
    horizon (both are that game, restricted to a class of mechanisms), the full history tree for a finite one. A
    tree of fewer periods (or any tree of an infinite-horizon model) is a truncation, another game: what holds
    there says nothing about the model, so it is checked only when ``horizon`` asks for that tree.
    """
    is_tree = space.kind == "tree"
    if horizon is not None:
        if is_tree and space.horizon == horizon:
            return None
        return f"the certificate is on the {_space_text(space)}, not on the {horizon}-period history tree asked for"
    if is_tree and (env.infinite or space.horizon != env.horizon):
        model = "an infinite horizon" if env.infinite else f"{int(env.horizon)} periods"
        return (
            f"the certificate is on the {_space_text(space)}, a truncation of this model ({model}), so it proves "
            f"nothing about the model; to check the truncation itself, pin it with horizon={space.horizon} "
            f"(mechlp check ... --horizon {space.horizon})"
        )
    return None


def _space_text(space: StateSpace) -> str:
    if space.kind == "markov":
        return "Markov space (stationary Markov mechanisms on the infinite horizon)"
    if space.kind == "tail":
        return f"tree with a Markov tail (history dependent for {space.horizon} periods, then stationary Markov)"
    return f"{space.horizon}-period history tree"


def _profile_index(env: Environment, labels: dict, where: str) -> int:
    if not isinstance(labels, dict):
        raise ValueError(f"{where}: a profile must be an object {{agent: type label}}, got {labels!r}")
    idx = []
    for ag in env.agents:
        if ag.name not in labels:
            raise ValueError(f"{where}: profile {labels} has no type for agent {ag.name!r}")
        if labels[ag.name] not in ag.types:
            raise ValueError(f"{where}: {labels[ag.name]!r} is not a type of agent {ag.name!r} {list(ag.types)}")
        idx.append(ag.types.index(labels[ag.name]))
    extra = set(labels) - {ag.name for ag in env.agents}
    if extra:
        raise ValueError(f"{where}: unknown agent(s) {sorted(extra)}")
    return int(np.ravel_multi_index(tuple(idx), env.type_counts))


def _entry_node(space: StateSpace, e: dict, where: str) -> int:
    """The node of a ``transfers`` entry (its ``history`` path, ``tail`` mark and ``profile``)."""
    env = space.env
    k = env.n_profiles
    h = 0
    path = e["history"]
    if space.kind == "tail" and e.get("tail"):
        if len(path) != 1:
            raise ValueError(f"{where}: a tail entry's 'history' holds exactly the previous profile")
        h = space.n_tree + _profile_index(env, path[0], where)
    elif space.kind == "markov":
        if len(path) > 1:
            raise ValueError(f"{where}: on the Markov space 'history' holds at most the previous profile")
        if path:
            h = 1 + _profile_index(env, path[0], where)
    else:
        if len(path) >= space.horizon:
            raise ValueError(f"{where}: history of length {len(path)} is too long for horizon {space.horizon}")
        for p in path:
            h = h * k + _profile_index(env, p, where) + 1
    return h * k + _profile_index(env, e["profile"], where)


def read_allocation(space: StateSpace, entries: list) -> np.ndarray:
    """The node allocation ``(n_nodes, n_actions)`` of certificate entries (their ``"allocation"``: ``{action:
    value}``, exactly as written; every node of the space must have one, which :func:`read_mechanism` checks for
    the entries themselves). Distributions are checked by the verifier (family ``"allocation"``), not here."""
    env = space.env
    alloc = np.empty((space.n_nodes, env.n_actions), dtype=object)
    seen = np.zeros(space.n_nodes, dtype=bool)
    for j, e in enumerate(entries):  # serialisation: one JSON entry per node is the file format itself
        where = f"transfers entry #{j}"
        probs = e.get("allocation") if isinstance(e, dict) else None
        if not isinstance(probs, dict) or sorted(probs) != sorted(env.actions):
            raise ValueError(
                f"{where}: 'allocation' must be an object {{action: probability}} over {list(env.actions)}"
            )
        g = _entry_node(space, e, where)
        seen[g] = True
        alloc[g] = [exact_number(probs[a], f"{where}: probability of {a!r}") for a in env.actions]
    if not seen.all():
        raise ValueError(f"allocation: {int((~seen).sum())} nodes without an entry")
    return alloc


def read_mechanism(space: StateSpace, entries: list) -> Mechanism:
    """Transfers from certificate entries (exactly as written), checking that every node appears once."""
    env = space.env
    k = env.n_profiles
    exact = np.empty((env.n_agents, space.n_nodes), dtype=object)
    seen = np.zeros(space.n_nodes, dtype=bool)
    if not isinstance(entries, list):
        raise ValueError(f"certificate: 'transfers' must be a list of entries, got {type(entries).__name__}")
    for j, e in enumerate(entries):
        where = f"transfers entry #{j}"
        if not isinstance(e, dict) or not {"history", "profile", "payments"} <= set(e):
            raise ValueError(f"{where}: needs keys 'history', 'profile', 'payments'")
        if not isinstance(e["history"], list) or not isinstance(e["payments"], dict):
            raise ValueError(f"{where}: 'history' must be a list of profiles and 'payments' an object {{agent: value}}")
        g = _entry_node(space, e, where)
        h = g // k
        if seen[g]:
            raise ValueError(f"{where}: node {space.describe_history(h)}, profile {e['profile']} appears twice")
        seen[g] = True
        for i, ag in enumerate(env.agents):
            if ag.name not in e["payments"]:
                raise ValueError(f"{where}: no payment for agent {ag.name!r}")
            exact[i, g] = exact_number(e["payments"][ag.name], f"{where}: payment of {ag.name!r}")
    if not seen.all():
        g = int(np.flatnonzero(~seen)[0])
        raise ValueError(
            f"transfers: no entry for node {space.describe_history(g // k)}, profile {env.profile_labels(g % k)} "
            f"({int((~seen).sum())} nodes missing)"
        )
    return Mechanism(space, exact.astype(float), exact_transfers=exact)


def check_certificate(
    env: Environment,
    doc: dict | str | Path,
    exact: bool = False,
    question: Question | None = None,
    horizon: int | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> tuple[bool, str]:
    """Re-check a certificate file (or its parsed JSON) against ``env`` without re-solving.

    What a file proves is derived from its ``question`` block, parsed strictly
    (:meth:`mechlp.model.question.Question.from_dict`), never from the labels it attaches to its proof: a
    mechanism is verified against that question; Farkas multipliers are evaluated on the rows of the question's
    certifying relaxation (:meth:`Question.certifying`), and options stated next to the multipliers must agree
    with those rows. One choice is left to the file: for an ex post budget question certified by ex post
    budget rows, multipliers stated over interim budget rows are read on those (ex post balance implies
    interim balance, so they prove it too; files of format 1 certified correlated ex post questions so). The
    report states the whole question, outside options and limits included.

    Parameters
    ----------
    env : Environment
        The model the certificate is about; its SHA-256 must match the file's ``model_sha256`` when present.
    doc : dict, str or Path
        The parsed JSON of a certificate file, or the file's path.
    exact : bool
        Re-check in rational arithmetic. Default False (floats).
    question : Question, optional
        The question the caller wants answered (``mechlp check`` pins one, with ``solve``'s defaults): a file
        that answers another question is refused, naming the difference. ``None``: the file's own question.
    horizon : int, optional
        The game asked about. ``None`` (default): the model's own game, so the file's space must be the Markov
        space or a tree with a Markov tail (infinite horizon) or the model's full history tree (finite horizon).
        ``T``: the ``T``-period history tree, which for an infinite-horizon or longer model is a truncation
        (``mechlp solve --horizon T`` writes such files); the file must be on that tree.
    memory_limit : int
        Bytes; a check predicted to need more (:func:`mechlp.model.spaces.estimate_memory`) is refused with
        ``MemoryError`` before the space and the mechanism are built.

    Returns
    -------
    tuple of (bool, str)
        ``(ok, report)``; ``ok`` is False when the model differs, the file answers another question than
        ``question`` or is about another game than ``horizon`` asks for (a truncation), its question block was
        edited after it was written, the file is malformed for this model, or the mechanism / multipliers do not
        verify. The report names the space the answer is about.
    """
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
        raise ValueError(
            f"horizon must be None or a positive integer (periods of the tree asked about), got {horizon!r}"
        )
    if not isinstance(doc, dict):
        text = read_text(doc, "certificate file")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{doc}: not JSON: {exc}") from None
        except RecursionError:
            raise ValueError(f"{doc}: JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise ValueError("certificate: the file must hold a JSON object")
    lines = []
    if "format" in doc and doc["format"] not in FORMATS:
        raise ValueError(f"certificate: 'format' must be one of {FORMATS}, got {doc['format']!r}")
    want = doc.get("model_sha256")
    have = model_hash(env)
    if want is not None and want != have:
        return (
            False,
            f"the certificate was made for a different model (sha256 {want[:12]}..., this model {have[:12]}...)",
        )
    if doc.get("kind") == "intermediate_impossibility":
        return _check_intermediate(env, doc, exact, question, horizon, memory_limit)
    q = Question.from_dict(env, doc.get("question", {}), where="certificate: question")
    stated_hash = doc.get("question_sha256")
    if stated_hash is not None and stated_hash != question_hash(have, q.to_dict()):
        return False, "the certificate's question block does not match its question_sha256: it was edited"
    if question is not None:
        diff = q.differences(question)
        if diff:
            return False, (
                f"the certificate answers another question ({q.describe()}) than the one asked "
                f"({question.describe()}): " + "; ".join(f"{d} (file vs asked)" for d in diff)
            )
    space = _space_for(env, doc, exact, memory_limit)
    other = _other_game(env, space, horizon)
    if other is not None:
        return False, other
    kind = doc.get("kind")
    if kind == "mechanism":
        mech = read_mechanism(space, doc.get("transfers", []))
        checked = q.replace(ic="bayesian") if q.ic == "local" else q  # local IC answers must hold globally
        lines.append(f"question: {checked.describe()}, on the {_space_text(space)}")
        ver = verify(mech, question=checked)
        ok = ver.ok
        lines.append("mechanism certificate, float re-check:")
        lines += ["  " + s for s in ver.summary().splitlines()]
        if exact:
            ver_x = verify(mech, question=checked, exact=True)
            ok = ok and ver_x.ok
            if doc.get("exact") is False:
                lines.append(
                    "note: this certificate is float-only (its payments are the solver's floats, not a mechanism "
                    "built to hold exactly): binding rows may miss by rounding in the exact re-check"
                )
            lines.append("exact re-check (payments exactly as written):")
            lines += ["  " + s for s in ver_x.summary().splitlines()]
        return ok, "\n".join(lines)
    if kind == "impossibility":
        rel = q.certifying()
        if rel is None:
            return False, (
                f"an impossibility certificate cannot prove this question ({q.describe()}): it has no certifying "
                "relaxation (Question.certifying)"
            )
        stated = doc.get("options")
        if rel.budget == "ex_post" and isinstance(stated, dict) and stated.get("budget") == "interim":
            # ex post balance implies interim balance: interim budget rows are a relaxation of every ex post
            # question (files written before pointwise rows and correlated types got the ex post rows use them)
            rel = Question(env, rel.ic, rel.ir, "interim", rel.outside, rel.limits_lo, rel.limits_hi)
        rows = _row_options(rel, q.budget)
        mismatch = _row_mismatch(stated, rows, env)
        if mismatch:
            return False, "the multipliers' stated rows do not match the certificate's question: " + "; ".join(mismatch)
        cert = ImpossibilityCertificate.from_dict({**doc, "options": rows}, space)
        lines.append(
            f"question: {q.describe()}, on the {_space_text(space)} (multipliers over the rows of: {rel.describe()})"
        )
        ok = _float_and_exact(check_impossibility, cert, exact, doc, "impossibility", lines)
        if ok:
            scope = {"markov": " among stationary Markov mechanisms", "tail": " among tree-with-tail mechanisms"}
            lines.append(f"=> no mechanism satisfies {q.describe()}{scope.get(space.kind, '')}")
        return ok, "\n".join(lines)
    if kind == "optimality":
        return _check_optimality_file(doc, space, q, lines), "\n".join(lines)
    raise ValueError(f"certificate: 'kind' must be 'mechanism', 'impossibility' or 'optimality', got {kind!r}")


def write_json(path: str | Path, payload: Any) -> None:
    """Write a certificate file (or any payload) with the one JSON writer, :func:`mechlp.model.answer.write_json`."""
    _write_json(path, payload, indent=1)

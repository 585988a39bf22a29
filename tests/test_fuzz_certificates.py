"""Fuzzing certificate files (issue #11, item 8): genuine certificates of models/lamba_usstp.toml, mutated.

The genuine files are written by ``mechlp solve MODEL --certificate C.json`` (feasible and infeasible answers,
Markov, tree and tail spaces, exact and float-only mechanisms). Each case mutates one (multipliers, gamma,
payments, entries, question fields with or without a recomputed ``question_sha256``, labels, spaces, kinds,
types, huge numbers, raw JSON damage) and runs ``mechlp check MODEL C.json`` in-process with a pinned question
(usually the file's own, sometimes another). The properties:

* the command exits 0 (``certificate HOLDS``), 1 (``does NOT hold``) or 2 (one line ``mechlp: error: ...``),
  never with a traceback, an internal error or a hang;
* **no false acceptance**: when a file HOLDS, the statement is re-derived here without the certificate code.
  A mechanism file is parsed by this test's own reader and must pass :func:`mechlp.audit.verifier.verify` for
  the *pinned* question, and the LP (:func:`mechlp.solve.questions.feasibility`) must not call that question
  infeasible; an impossibility file must be about a question that the LP answers ``infeasible``. Either must
  be about the model's own game (Markov or tail space for an infinite horizon, the full tree for a finite one)
  unless ``--horizon T`` pins a truncation;
* an unmutated genuine file, checked with the question it was written for, holds.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from fuzzing import assert_clean_stderr, time_budget
from fuzzing import paths as _paths
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mechlp.audit.certfile import check_certificate, question_hash
from mechlp.audit.verifier import verify
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail
from mechlp.solve import questions as design

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
#: ex ante feasible, interim and ex post infeasible (tests/test_forgery.py)
P9D8 = ("persistence=0.9", "discount=0.8")
TIME_BUDGET = 10.0

CI = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(CI, derandomize=False)

#: name -> (model overrides, solve options, the question it answers, --horizon for check when a truncation)
GENUINE = {
    "impossible_interim": (P9D8, {"budget": "interim"}, None),
    "impossible_ex_post": (P9D8, {"budget": "ex-post"}, None),
    "mechanism_ex_ante": (P9D8, {"budget": "ex-ante"}, None),
    "mechanism_interim": ((), {"budget": "interim"}, None),
    "mechanism_savings_float_only": (P9D8, {"budget": "savings"}, None),
    "mechanism_ex_post_ir_float_only": (P9D8, {"budget": "none", "ir": "ex-post"}, None),
    "tree_impossible": ((*P9D8, "horizon=2"), {"budget": "interim"}, None),
    "tree_mechanism": (("horizon=3",), {"budget": "ex-ante"}, None),
    "tail_mechanism": (P9D8, {"budget": "ex-ante", "horizon": "1", "tail": True}, None),
    "truncation_impossible": (P9D8, {"budget": "ex-ante", "horizon": "1"}, 1),
}


# ---------------------------------------------------------------------------------------------- helpers


def _flags(question: dict) -> list[str]:
    out = []
    for key, value in question.items():
        if key == "tail":
            out += ["--tail"] if value else []
        elif key == "limits":
            for name, bounds in value.items():
                out += ["--limit", f"{name}={bounds}"]
        else:
            out += [f"--{key.replace('_', '-')}", str(value)]
    return out


@cache
def environment(sets: tuple[str, ...]):
    return load_model(MODEL, list(sets))


def _question(env, asked: dict) -> Question:
    limits = {}
    for name, bounds in asked.get("limits", {}).items():
        lo, hi = bounds.split(":")
        limits[name] = (float(lo) if lo else None, float(hi) if hi else None)
    return Question.parse(
        env,
        budget=asked.get("budget", "interim"),
        ic=asked.get("ic", "bayesian"),
        ir=asked.get("ir", "interim"),
        outside_option=float(asked.get("outside_option", 0.0)),
        limits=limits or None,
    )


def _space(env, doc: dict):
    kind, horizon = doc["space"], doc.get("horizon")
    if kind == "markov":
        return MarkovSpace(env)
    assert isinstance(horizon, int) and not isinstance(horizon, bool), f"check accepted horizon {horizon!r}"
    return HistoryTree(env, horizon) if kind == "tree" else TreeWithTail(env, horizon)


@cache
def lp_status(sets: tuple[str, ...], asked: tuple, space_kind: str, horizon) -> str:
    """The LP's answer to the pinned question on the given space (the ground truth of this test)."""
    env = environment(sets)
    q = _question(env, dict(asked))
    space = _space(env, {"space": space_kind, "horizon": horizon})
    res = design.feasibility(
        env, q.budget, space=space, ic=q.ic, ir=q.ir, outside_option=list(q.outside), limits=q.limits
    )
    assert res.status in ("optimal", "infeasible"), res.message
    return res.status


def read_transfers(space, entries) -> np.ndarray:
    """The payments of a mechanism file, read by this test's own reader (the file format of
    :mod:`mechlp.audit.certfile`), as exact fractions, one column per node."""
    env = space.env
    k = env.n_profiles
    x = np.full((env.n_agents, space.n_nodes), None, dtype=object)

    def profile(labels) -> int:
        assert set(labels) == {ag.name for ag in env.agents}, labels
        return int(np.ravel_multi_index([ag.types.index(labels[ag.name]) for ag in env.agents], env.type_counts))

    for e in entries:
        path = e["history"]
        if space.kind == "markov":
            assert len(path) <= 1
            h = 1 + profile(path[0]) if path else 0
        elif space.kind == "tail" and e.get("tail"):
            assert len(path) == 1
            h = space.n_tree + profile(path[0])
        else:
            assert len(path) < space.horizon
            h = 0
            for p in path:
                h = h * k + profile(p) + 1
        g = h * k + profile(e["profile"])
        assert x[0, g] is None, f"node {g} twice"
        for i, ag in enumerate(env.agents):
            x[i, g] = Fraction(str(e["payments"][ag.name]))
    assert all(v is not None for v in x.ravel()), "a node without payments"
    return x


def assert_true_statement(doc: dict, sets: tuple[str, ...], asked: dict, exact: bool, pinned_horizon) -> str:
    """A file that HOLDS states something true (module docstring); returns its kind."""
    env = environment(sets)
    space = _space(env, doc)
    if pinned_horizon is not None:
        assert space.kind == "tree" and space.horizon == pinned_horizon, (space.kind, doc.get("horizon"))
    elif env.infinite:
        assert space.kind in ("markov", "tail"), f"a {space.kind} file proves nothing about the infinite model"
    else:
        assert space.kind == "tree" and space.horizon == env.horizon, "a truncated tree is another game"
    q = _question(env, asked)
    truth = lp_status(sets, tuple(sorted(asked.items())), space.kind, getattr(space, "horizon", None))
    if doc["kind"] == "mechanism":
        x = read_transfers(space, doc["transfers"])
        mech = Mechanism(space, x.astype(float), exact_transfers=x)
        checked = q.replace(ic="bayesian") if q.ic == "local" else q
        ver = verify(mech, question=checked, exact=exact)
        assert ver.ok, f"a mechanism that HOLDS fails the pinned question {q.describe()}:\n{ver.summary()}"
        assert truth == "optimal", f"the LP calls {q.describe()} infeasible, yet a mechanism holds"
    else:
        assert doc["kind"] == "impossibility"
        assert truth == "infeasible", f"an impossibility file holds for {q.describe()}, which the LP solves"
    return doc["kind"]


# ---------------------------------------------------------------------------------------------- genuine files
class _Files(dict):
    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing case
        return f"<{len(self)} genuine certificates>"


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """name -> parsed JSON of the certificate ``mechlp solve`` writes."""
    root = tmp_path_factory.mktemp("genuine_certificates")
    out = {}
    for name, (sets, options, _) in GENUINE.items():
        path = root / f"{name}.json"
        argv = ["solve", str(MODEL), *(f"--set={kv}" for kv in sets), *_flags(options), "--certificate", str(path)]
        with contextlib.redirect_stdout(None):
            assert main(argv) == 0, argv
        out[name] = json.loads(path.read_text())
    return _Files(out)


def _asked(name: str) -> dict:
    """The question a genuine file answers, as ``mechlp check`` flags (without space options)."""
    return {k: v for k, v in GENUINE[name][1].items() if k not in ("horizon", "tail")}


def test_genuine_certificates_hold(genuine, tmp_path, capsys):
    for name, doc in genuine.items():
        sets, _, pinned = GENUINE[name]
        exact = doc.get("exact") is not False  # a float-only file may miss binding rows by rounding, exactly
        code, out = run_check(tmp_path, json.dumps(doc), sets, _asked(name), exact, pinned, capsys)
        assert code == 0 and "certificate HOLDS" in out, (name, out)
        kind = assert_true_statement(doc, sets, _asked(name), exact, pinned)
        assert kind == ("impossibility" if "impossible" in name else "mechanism")


def run_check(tmp_path, text: str, sets, asked: dict, exact: bool, horizon, capsys) -> tuple[int, str]:
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    argv = ["check", str(MODEL), str(path), *(f"--set={kv}" for kv in sets), *_flags(asked)]
    argv += ["--exact"] * exact + (["--horizon", str(horizon)] if horizon is not None else [])
    capsys.readouterr()
    with time_budget(TIME_BUDGET, f"mechlp {' '.join(argv)}"):
        code = main(argv)
    cap = capsys.readouterr()
    assert_clean_stderr(cap.err, code)
    assert code in (0, 1, 2), f"exit {code}: {cap.err}"
    if code == 0:
        assert cap.out.rstrip().endswith("certificate HOLDS"), cap.out
    elif code == 1:
        assert cap.out.rstrip().endswith("certificate does NOT hold"), cap.out
    return code, cap.out


# ---------------------------------------------------------------------------------------------- mutations
WEIRD = [
    None, True, False, 0, 1, -1, 2**70, 10**400, -(10**400), 0.5, 1e308, -1e308, 1e-320, math.nan, math.inf,
    -math.inf, "", "0", "1/3", "-19/20", "1e400", "1e-400", "nan", "inf", "1/0", "abc", "0x10", "é\U0001f600",
    [], {}, [0], {"a": 1}, [[[[[[[[[[0]]]]]]]]]], "9" * 500,
]  # fmt: skip
weird = st.sampled_from(WEIRD) | st.integers() | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    weird,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
LABELS = ["buyer", "seller", "v_L", "v_H", "c_L", "c_H", "", "x", "BUYER"]
NOTION_VALUES = {
    "ic": ["bayesian", "ex_post", "local", "ex-post", "dominant", None, 1],
    "ir": ["interim", "ex_post", "ex_ante", "none", None],
    "budget": ["interim", "ex_ante", "ex_post", "savings", "none", "ex-ante", "foo", None],
    "question_budget": ["interim", "ex_ante", "ex_post", "savings", "none"],
    "outside_option": [0.0, 0, -1.0, 0.5, -1e9, [0.0, 0.0], [[0, 0], [0, 0]], {"buyer": -1}, {"x": 0}, "0", None],
    "limits": [None, {}, {"buyer": [0, None]}, {"seller": [None, 0.5]}, {"buyer": [1, 0]}, {"x": [0, 1]}, [0, 1]],
}


CERTIFICATE_OPS = [
    "multiplier", "multiplier_field", "multipliers", "gamma", "options", "payment", "payments_shift", "entry",
    "question", "forge", "space", "kind", "generic", "model", "delete",
]  # fmt: skip
SPACES = [
    ("markov", "infinite"), ("tree", 1), ("tree", 2), ("tree", 3), ("tail", 1), ("tail", 2), ("tree", "2"),
    ("tree", 2.0), ("tree", True), ("tree", 10**9), ("tree", 10**400), ("tree", -1), ("tail", 0), ("tree", None),
    ("x", None), ("markov", 2), (None, None),
]  # fmt: skip


def _number(draw, value):
    """A changed number: slightly, by a factor, or into something that is not one."""
    how = draw(st.sampled_from(["scale", "shift", "weird"]))
    try:
        exact = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        exact = Fraction(0)
    if how == "scale":
        factor = draw(st.sampled_from([Fraction(2), Fraction(1, 2), Fraction(0), Fraction(-1), 1 + Fraction(1, 10**9)]))
        return str(exact * factor)
    if how == "shift":
        return str(exact + draw(st.sampled_from([Fraction(1, 10**k) for k in (1, 3, 6, 9, 12)] + [Fraction(-1, 10)])))
    return draw(weird)


def _pick(draw, seq):
    return draw(st.integers(0, len(seq) - 1)) if seq else None


def mutate(draw, doc):
    """One mutation of a certificate document (in place where possible); returns the document."""
    if not isinstance(doc, dict):  # an earlier mutation replaced the whole document
        return doc
    op = draw(st.sampled_from(CERTIFICATE_OPS))
    mults = doc.get("multipliers") if isinstance(doc.get("multipliers"), list) else None
    entries = doc.get("transfers") if isinstance(doc.get("transfers"), list) else None
    if op == "multiplier" and mults:
        m = mults[_pick(draw, mults)]
        if isinstance(m, dict):
            m["value"] = _number(draw, m.get("value", 0))
            if draw(st.booleans()):
                with contextlib.suppress(ValueError, ZeroDivisionError, OverflowError, TypeError):
                    m["value_float"] = float(Fraction(str(m["value"])))
        return doc
    if op == "multiplier_field" and mults:
        m = mults[_pick(draw, mults)]
        if isinstance(m, dict):
            field = draw(st.sampled_from(["family", "agent", "type", "misreport", "history", "where", "value"]))
            choices = {
                "family": ["ic", "ir", "budget", "limits", "x", None, 1],
                "history": [-1, 0, 1, 2, 3, 4, 5, 100, 2**70, "0", 0.5, True, None],
            }.get(field, LABELS + [None, 0])
            if draw(st.integers(0, 4)) == 0:
                m.pop(field, None)
            else:
                m[field] = draw(st.sampled_from(choices) | weird)
        return doc
    if op == "multipliers" and mults is not None:
        how = draw(st.sampled_from(["delete", "duplicate", "add_budget", "clear", "scale_all"]))
        if how == "delete" and mults:
            del mults[_pick(draw, mults)]
        elif how == "duplicate" and mults:
            mults.append(copy.deepcopy(mults[_pick(draw, mults)]))
        elif how == "add_budget":
            mults.append({"family": "budget", "history": draw(st.integers(0, 5)), "value": draw(weird)})
        elif how == "clear":
            mults.clear()
        else:
            factor = draw(st.sampled_from([Fraction(2), Fraction(1, 3), Fraction(10**30)]))
            for m in mults:
                if isinstance(m, dict):
                    with contextlib.suppress(ValueError, ZeroDivisionError, TypeError):
                        m["value"] = str(Fraction(str(m["value"])) * factor)
            if "gamma" in doc and draw(st.booleans()):
                with contextlib.suppress(ValueError, ZeroDivisionError, TypeError):
                    doc["gamma"] = str(Fraction(str(doc["gamma"])) * factor)
        return doc
    if op == "gamma":
        doc["gamma"] = _number(draw, doc.get("gamma", 1))
        return doc
    if op == "options" and isinstance(doc.get("options"), dict):
        key = draw(st.sampled_from(["ic", "ir", "budget", "question_budget", "outside_option", "extra"]))
        if draw(st.integers(0, 5)) == 0:
            doc.pop("options")
        else:
            doc["options"][key] = draw(st.sampled_from(NOTION_VALUES.get(key, [None, 1])) | weird)
        return doc
    if op == "payment" and entries:
        e = entries[_pick(draw, entries)]
        if isinstance(e, dict) and isinstance(e.get("payments"), dict) and e["payments"]:
            who = draw(st.sampled_from(sorted(e["payments"])))
            e["payments"][who] = _number(draw, e["payments"][who])
        return doc
    if op == "payments_shift" and entries:  # the same change at every node: IR / budget rows move together
        who = draw(st.sampled_from(["buyer", "seller"]))
        shift = draw(st.sampled_from([Fraction(1, 10**6), Fraction(-1, 10**6), Fraction(1, 10), Fraction(10)]))
        for e in entries:
            with contextlib.suppress(KeyError, TypeError, ValueError, ZeroDivisionError):
                e["payments"][who] = str(Fraction(str(e["payments"][who])) + shift)
        return doc
    if op == "entry" and entries:
        j = _pick(draw, entries)
        how = draw(st.sampled_from(["delete", "duplicate", "swap", "label", "history", "tail", "extra_agent"]))
        e = entries[j]
        if how == "delete":
            del entries[j]
        elif how == "duplicate":
            entries.append(copy.deepcopy(e))
        elif how == "swap" and isinstance(e, dict):
            other = entries[_pick(draw, entries)]
            if isinstance(other, dict):
                e["payments"], other["payments"] = other.get("payments"), e.get("payments")
        elif how == "label" and isinstance(e, dict) and isinstance(e.get("profile"), dict):
            e["profile"][draw(st.sampled_from(["buyer", "seller", "x"]))] = draw(st.sampled_from(LABELS))
        elif how == "history" and isinstance(e, dict):
            e["history"] = draw(
                st.sampled_from([[], [{"buyer": "v_L", "seller": "c_L"}], [{"buyer": "v_H", "seller": "c_H"}] * 2])
                | json_values
            )
        elif how == "tail" and isinstance(e, dict):
            e["tail"] = draw(st.sampled_from([True, False, 1, "yes"]))
        elif isinstance(e, dict) and isinstance(e.get("payments"), dict):
            e["payments"]["x"] = "1"
        return doc
    if op == "question":
        question = doc.get("question") if isinstance(doc.get("question"), dict) else {}
        key = draw(st.sampled_from(["ic", "ir", "budget", "outside_option", "limits", "extra"]))
        how = draw(st.sampled_from(["set", "set", "delete", "replace_block"]))
        if how == "set":
            question[key] = draw(st.sampled_from(NOTION_VALUES.get(key, [None, 1])) | weird)
        elif how == "delete":
            question.pop(key, None)
        else:
            question = draw(st.sampled_from([{}, None, [], "interim"]) | json_values)
        doc["question"] = question
        if draw(st.booleans()) and isinstance(doc.get("model_sha256"), str):  # a careful forger
            with contextlib.suppress(TypeError, ValueError):
                doc["question_sha256"] = question_hash(doc["model_sha256"], question)
        return doc
    if op == "forge":  # a consistent forgery: the question, the options of the rows and the hash agree
        key = draw(st.sampled_from(["ic", "ir", "budget", "outside_option"]))
        value = draw(st.sampled_from([v for v in NOTION_VALUES[key] if isinstance(v, str | float)]))
        if isinstance(doc.get("question"), dict):
            doc["question"][key] = value
        if isinstance(doc.get("options"), dict):
            if key == "budget":
                doc["options"]["question_budget"] = value
                doc["options"]["budget"] = draw(st.sampled_from(["interim", "ex_ante", "none", value]))
            elif key == "outside_option":
                doc["options"][key] = [[value] * 2] * 2
            else:
                doc["options"][key] = value
        with contextlib.suppress(KeyError, TypeError, ValueError):
            doc["question_sha256"] = question_hash(doc["model_sha256"], doc["question"])
        return doc
    if op == "space":
        doc["space"], doc["horizon"] = draw(st.sampled_from(SPACES))
        return doc
    if op == "kind":
        doc["kind"] = draw(st.sampled_from(["mechanism", "impossibility", "x", None]))
        return doc
    if op == "model":
        how = draw(st.sampled_from(["hash", "no_hash", "model"]))
        if how == "hash":
            doc["model_sha256"] = draw(st.sampled_from(["0" * 64, "", 1, None]))
        elif how == "no_hash":
            doc.pop("model_sha256", None)
        else:
            doc["model"] = draw(json_values)
        return doc
    if op == "delete":
        key = draw(st.sampled_from(sorted(doc) if isinstance(doc, dict) and doc else ["x"]))
        if isinstance(doc, dict):
            doc.pop(key, None)
        return doc
    # generic: any node replaced by any JSON value
    path = draw(st.sampled_from(list(_paths(doc))))
    value = draw(json_values)
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _certificate_case(data, genuine, tmp_path, capsys):
    name = data.draw(st.sampled_from(sorted(GENUINE)), label="genuine file")
    sets, _, pinned = GENUINE[name]
    asked = _asked(name)
    if data.draw(st.integers(0, 2)) == 0:  # another question than the file's
        asked = {
            "budget": data.draw(st.sampled_from(["interim", "ex-ante", "ex-post", "savings", "none"])),
            "ic": data.draw(st.sampled_from(["bayesian", "bayesian", "ex-post", "local"])),
            "ir": data.draw(st.sampled_from(["interim", "interim", "ex-ante", "ex-post"])),
            "outside_option": data.draw(st.sampled_from(["0", "0", "-1", "0.5"])),
        }
    if data.draw(st.integers(0, 5)) == 0:  # another model (the overrides of another genuine file)
        sets = GENUINE[data.draw(st.sampled_from(sorted(GENUINE)))][0]
    if data.draw(st.integers(0, 5)) == 0:
        pinned = data.draw(st.sampled_from([None, 1, 2, 3]))
    exact = data.draw(st.booleans(), label="--exact")
    doc = copy.deepcopy(genuine[name])
    n = data.draw(st.sampled_from([0, 1, 1, 1, 2, 3]), label="mutations")
    for _ in range(n):
        doc = mutate(data.draw, doc)
    text = json.dumps(doc)
    damaged = data.draw(st.integers(0, 19)) == 0
    if damaged:  # raw damage
        at = data.draw(st.integers(0, len(text)))
        text = data.draw(st.sampled_from([text[:at], text[:at] + "]" + text[at:], "[" * 100000, "", "null"]))
        try:
            doc = json.loads(text)  # the damage may leave valid JSON (a "]" inside a string)
        except (ValueError, RecursionError):
            doc = None
    code, out = run_check(tmp_path, text, sets, asked, exact, pinned, capsys)
    event(f"mechlp check: exit {code}")
    if code == 0:
        kind = assert_true_statement(doc, sets, asked, exact, pinned)
        event(f"HOLDS: {kind}{' (mutated)' if n else ''}")
    elif (
        n == 0
        and not damaged
        and (sets, asked, pinned) == (GENUINE[name][0], _asked(name), GENUINE[name][2])
        and not (exact and doc.get("exact") is False)
    ):
        raise AssertionError(f"the genuine file {name} does not hold for its own question:\n{out}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_certificates")


@settings(CI, max_examples=150)
@given(data=st.data())
def test_fuzz_certificates(data, genuine, workdir, capsys):
    _certificate_case(data, genuine, workdir, capsys)


@pytest.mark.slow
@settings(SLOW, max_examples=2000)
@given(data=st.data())
def test_fuzz_certificates_many(data, genuine, workdir, capsys):
    _certificate_case(data, genuine, workdir, capsys)


# ---------------------------------------------------------------------------------------------- regressions
# Each found by the fuzzers above, then fixed at its root.
def test_a_truncation_proves_nothing_about_the_infinite_model(genuine, workdir, capsys):
    """The false acceptance: ``solve --horizon 1 --budget ex-ante`` proves the one-period truncation infeasible,
    and ``mechlp check`` said "=> no mechanism satisfies IC bayesian, IR interim (outside option 0), budget
    ex_ante" and "certificate HOLDS" of the infinite-horizon model, which the ex ante budget is feasible for."""
    sets = GENUINE["truncation_impossible"][0]
    assert lp_status(sets, (("budget", "ex-ante"),), "markov", None) == "optimal"
    text = json.dumps(genuine["truncation_impossible"])
    code, out = run_check(workdir, text, sets, {"budget": "ex-ante"}, False, None, capsys)
    assert code == 1 and "a truncation of this model (an infinite horizon), so it proves nothing" in out
    assert "--horizon 1" in out
    code, out = run_check(workdir, text, sets, {"budget": "ex-ante"}, False, 2, capsys)
    assert code == 1 and "not on the 2-period history tree asked for" in out
    code, out = run_check(workdir, text, sets, {"budget": "ex-ante"}, True, 1, capsys)
    assert code == 0 and "on the 1-period history tree" in out


def test_a_truncation_of_a_finite_model_is_refused_too(workdir, capsys):
    sets = ("horizon=3",)
    path = workdir / "t2.json"
    argv = ["solve", str(MODEL), "--set=horizon=3", "--horizon", "2", "--budget", "ex-ante", "--certificate", str(path)]
    assert main(argv) == 0
    assert "--horizon 2" in capsys.readouterr().out  # the re-check command solve prints pins the truncation
    code, out = run_check(workdir, path.read_text(), sets, {"budget": "ex-ante"}, False, None, capsys)
    assert code == 1 and "a truncation of this model (3 periods)" in out
    code, out = run_check(workdir, path.read_text(), sets, {"budget": "ex-ante"}, False, 2, capsys)
    assert code == 0


@pytest.mark.parametrize("horizon", ["abc", "2", 2.0, True, 0, -1, 1e300, None, [2]])
def test_a_space_horizon_must_be_a_positive_integer(genuine, workdir, capsys, horizon):
    """``"horizon": "abc"`` gave "invalid literal for int() with base 10: 'abc'"; ``1e300`` a tree of
    10**300 periods; ``2.0`` and ``True`` were read as 2 and 1."""
    doc = copy.deepcopy(genuine["tree_mechanism"])
    doc["horizon"] = horizon
    path = workdir / "h.json"
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["check", str(MODEL), str(path), "--set", "horizon=3", "--budget", "ex-ante"]) == 2
    err = capsys.readouterr().err
    assert err == f"mechlp: error: certificate: a tree space needs 'horizon', a positive integer, got {horizon!r}\n"


def test_check_certificate_validates_its_horizon(genuine):
    for bad in (True, 0, 2.5, "1"):
        with pytest.raises(ValueError, match=r"horizon must be None or a positive integer"):
            check_certificate(environment(P9D8), genuine["mechanism_ex_ante"], horizon=bad)


def test_the_report_names_the_space_of_the_answer(genuine):
    ok, report = check_certificate(environment(P9D8), genuine["impossible_interim"])
    assert ok and "on the Markov space (stationary Markov mechanisms on the infinite horizon)" in report
    assert report.endswith("budget interim among stationary Markov mechanisms")
    ok, report = check_certificate(environment(P9D8), genuine["tail_mechanism"])
    assert ok and "on the tree with a Markov tail (history dependent for 1 periods" in report

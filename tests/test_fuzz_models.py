"""Fuzzing model input (issue #11, item 8): mutated TOML model files and random ``--set key=value`` overrides.

Every case starts from a bundled model (models/*.toml) and mutates it: wrong types, missing and extra keys,
huge / NaN / negative numbers, deep nesting, non-stochastic kernels, unicode, empty lists, raw text damage.
Each mutated file is read by :func:`mechlp.catalog.io.load_model` and (for a share of the cases) solved by
``mechlp solve FILE`` in-process. The properties:

* ``load_model`` returns a valid environment (its numbers re-checked here: finite, distributions and kernels
  stochastic, discount in range) or raises ``ValueError`` / ``TypeError`` whose message starts with the file name;
* ``mechlp solve`` exits 0 with a verified answer (``--json``: the mechanism's verification or the Farkas
  certificate holds), 3 with an honest non-answer (``unverified``, ...), or 2 with one line ``mechlp: error: ...``
  on stderr (warnings one line each) -- never a traceback, an internal error (exit 4) or a hang (each case
  has a time budget);
* ``mechlp solve --certificate C.json`` writes a certificate that holds when re-checked with the command it
  prints, split as a shell would split it.

The CI-sized runs are deterministic (``derandomize``); the ``slow`` ones (``pytest -m slow``) draw thousands of
fresh cases.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import re
import shlex
import tomllib
from pathlib import Path

import numpy as np
import pytest
from fuzzing import assert_clean_stderr, time_budget
from fuzzing import paths as _paths
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.model import tolerances
from mechlp.model.environment import Environment

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = {p.stem: p for p in sorted((ROOT / "models").glob("*.toml"))}
DOCS = {name: tomllib.loads(p.read_text(encoding="utf-8")) for name, p in MODEL_FILES.items()}
TEXTS = {name: p.read_text(encoding="utf-8") for name, p in MODEL_FILES.items()}

#: Seconds one case may take (a load is milliseconds, a solve of these models a fraction of a second).
TIME_BUDGET = 8.0
#: ``mechlp solve`` is told to refuse anything bigger: the fuzzer tests input handling, not large solves.
MEMORY_LIMIT = "256MiB"

CI = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(CI, derandomize=False)


# ---------------------------------------------------------------------------------------------- time budget


# ---------------------------------------------------------------------------------------------- writing TOML
def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    """Any value of a parsed TOML document as an inline TOML value (an independent writer, not the library's)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, datetime.date | datetime.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_string(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc) -> str:
    if not isinstance(doc, dict):  # a mutation replaced the whole document: write it as one key
        return f"doc = {toml_value(doc)}\n"
    return "".join(f"{_toml_string(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


# ---------------------------------------------------------------------------------------------- strategies
NAN, INF = float("nan"), float("inf")
SPECIAL = [
    0, 1, 2, 3, -1, 10**6, 10**30, -(10**30), 2**63, 10**400, 0.0, -0.0, 0.5, 1.0, 1.5, -0.5, 0.999999999999,
    1 + 1e-12, 1e-320, 1e308, -1e308, NAN, INF, -INF, True, False, "", " ", "infinite", "inf", "efficient",
    "table", "general", "bilateral_trade", "buyer", "seller", "participant", "v_L", "c_H", "reject", "build",
    "no_trade", "trade", "é中\U0001f600", "\x00", "a" * 300, "0.5", "[0.5, 0.5]",
    datetime.date(2020, 1, 1), datetime.time(12, 30),
]  # fmt: skip
scalars = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 2),
    st.text(max_size=12),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
matrices = st.lists(
    st.lists(st.floats(-1, 2) | st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0, NAN]), max_size=4), max_size=4
)
KEYS = [
    "name", "kind", "discount", "horizon", "actions", "role", "types", "values", "prior", "transition",
    "persistence", "valuation", "rule", "table", "model", "agents", "allocation", "build", "reject", "x",
]  # fmt: skip


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _put(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: Numbers that break models: huge (beyond float range), tiny, non-finite, negative, off-by-rounding.
NUMBERS = [
    0, 1, 2, -1, 10**6, 2**63, 10**30, 10**308, 10**400, -(10**400), 0.0, -0.0, 0.5, 1.0, 1.5, -0.5, 1e-320,
    1e-12, 1e308, -1e308, 1.7976931348623157e308, NAN, INF, -INF, 0.999999999999, 1 + 1e-12, 1 - 1e-15,
]  # fmt: skip
numbers = st.sampled_from(NUMBERS) | st.floats(allow_nan=True, allow_infinity=True) | st.integers()

#: (operation, which nodes it applies to)
OPS = {
    "replace": lambda v: True,
    "valid": lambda v: _is_num(v) or (isinstance(v, list) and v and all(_is_num(x) for x in v)),
    "number": lambda v: _is_num(v),
    "scale": lambda v: _is_num(v),
    "nudge": lambda v: _is_num(v),
    "delete": lambda v: True,
    "add_key": lambda v: isinstance(v, dict),
    "rename": lambda v: True,
    "matrix": lambda v: isinstance(v, list),
    "wrap": lambda v: True,
    "deepen": lambda v: True,
    "empty": lambda v: isinstance(v, list | dict),
    "grow": lambda v: isinstance(v, list),
    "shrink": lambda v: isinstance(v, list) and bool(v),
    "reverse": lambda v: isinstance(v, list),
    "retype": lambda v: True,
    "unicode": lambda v: isinstance(v, str),
}


def _mutate(draw, doc):
    """One mutation: an operation, then a node it applies to; returns the new document."""
    op = draw(st.sampled_from(sorted(OPS)))
    paths = [p for p in _paths(doc) if OPS[op](_get(doc, p)) and (p or op not in ("delete", "rename"))]
    if not paths:
        return doc
    path = draw(st.sampled_from(paths))
    node = _get(doc, path)
    if op == "replace":
        return _put(doc, path, draw(values))
    if op == "valid":  # a plausible value: a probability, a distribution of the same length, a discount
        if _is_num(node):
            return _put(doc, path, draw(st.floats(0, 1) | st.sampled_from([0.0, 1.0, 0.5, 0.999999])))
        weights = draw(st.lists(st.floats(0, 1) | st.just(0.0), min_size=len(node), max_size=len(node)))
        total = sum(weights)
        return _put(doc, path, [w / total for w in weights] if total > 0 else [1.0] + [0.0] * (len(node) - 1))
    if op == "number":
        return _put(doc, path, draw(numbers))
    if op in ("scale", "nudge"):
        if op == "scale":
            factor = draw(st.sampled_from([-1, 0, 2, 10, 10**400, 1e10, 1e300, 1e-300, NAN, INF]))
            change = lambda v: v * factor  # noqa: E731
        else:
            delta = draw(st.sampled_from([1e-3, -1e-3, 1e-9, 1e-13, -1e-16, 0.5, -0.5]))
            change = lambda v: v + delta  # noqa: E731
        try:
            return _put(doc, path, change(node))
        except OverflowError:  # a huge integer and a float
            return _put(doc, path, INF)
    if op == "delete":
        del _get(doc, path[:-1])[path[-1]]
        return doc
    if op == "add_key":
        node[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(values)
        return doc
    if op == "rename":
        parent = _get(doc, path[:-1])
        if isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = parent.pop(path[-1])
        return doc
    if op == "matrix":
        return _put(doc, path, draw(matrices))
    if op == "wrap":
        return _put(doc, path, draw(st.sampled_from([[node], {"x": node}, {"build": node, "reject": node}])))
    if op == "deepen":
        for _ in range(draw(st.integers(1, 60))):
            node = [node]
        return _put(doc, path, node)
    if op == "empty":
        return _put(doc, path, type(node)())
    if op == "grow":
        return _put(doc, path, node + [copy.deepcopy(node[-1]) if node else draw(values)])
    if op == "shrink":
        return _put(doc, path, node[:-1])
    if op == "reverse":
        return _put(doc, path, node[::-1])
    if op == "retype":
        if isinstance(node, bool):
            return _put(doc, path, int(node))
        if isinstance(node, int):
            return _put(doc, path, draw(st.sampled_from([float(node) if abs(node) < 1e308 else 0.0, str(node)])))
        if isinstance(node, float):
            return _put(doc, path, draw(st.sampled_from([str(node), int(node) if math.isfinite(node) else 0])))
        if isinstance(node, str):
            return _put(doc, path, draw(st.sampled_from([[node], 0, 0.5, True])))
        return _put(doc, path, str(node))
    return _put(doc, path, draw(st.text(max_size=10)))  # unicode


@st.composite
def mutated_models(draw):
    """(model name, TOML text): a bundled model with 1-3 structural mutations, or with its text damaged."""
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = copy.deepcopy(DOCS[name])
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        doc = _mutate(draw, doc)
    text = toml_document(doc)
    if draw(st.integers(0, 9)) == 0:  # raw text damage, to the original file or to the mutated one
        text = draw(st.sampled_from([text, TEXTS[name]]))
        at = draw(st.integers(0, len(text)))
        damage = draw(st.sampled_from(["cut", "insert", "truncate", "dup_line", "nest"]))
        if damage == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif damage == "insert":
            junk = draw(st.text(max_size=10) | st.sampled_from(["[", "]", "=", '"', "\n[[agents]]\n", "\n[model]\n"]))
            text = text[:at] + junk + text[at:]
        elif damage == "truncate":
            text = text[:at]
        elif damage == "dup_line":
            lines = text.splitlines(keepends=True)
            j = draw(st.integers(0, max(len(lines) - 1, 0)))
            text = "".join(lines[: j + 1] + lines[j:])
        else:
            depth = draw(st.sampled_from([10, 500, 5000]))
            text += "\nz = " + "[" * depth + "]" * depth + "\n"
    return name, text


def _override_keys(name: str) -> list[str]:
    """The valid ``--set`` keys of a bundled model."""
    doc = DOCS[name]
    keys = ["discount", "horizon", "persistence", "model.discount", "model.horizon", "model.name"]
    for agent in doc["agents"]:
        who = agent.get("name", agent.get("role"))
        keys += [f"agents.{who}.{k}" for k in ("prior", "values", "types", "transition", "persistence", "name")]
        if "valuation" in agent:
            keys.append(f"agents.{who}.valuation")
    return keys


JUNK_KEYS = [
    "", " ", "=", "model", "model.kind", "model.actions", "agents", "agents.", "agents..prior", "agents.x.prior",
    "agents.buyer.prior.x", "allocation.rule", "DISCOUNT", " discount ", "é", "agents.buyer.valuation",
]  # fmt: skip
OVERRIDE_TEXTS = [
    "0.9", "0.8", "0", "1", "-1", "2", "0.99999999", "nan", "inf", "-inf", "1e999", "1e-999", "10", "1000000000",
    "1" + "0" * 400, "[0.4, 0.6]", "[0.5, 0.5, 0.0]", "[[0.9, 0.1], [0.1, 0.9]]", "[[0.9, 0.2], [0.1, 0.9]]", "[]",
    "{}", "[[]]", "{reject = [0, 0], build = [-0.3, 0.6]}", '"text"', "infinite", "finite", "true", "[", "]]", "'",
    '"', "1_000", "0x10", "2020-01-01", "[1, 'a']", "[" * 3000 + "]" * 3000, "a = 1", "1\nw = 2", "é", "",
]  # fmt: skip
override_values = st.one_of(
    st.sampled_from(OVERRIDE_TEXTS),
    st.floats(0, 1).map(repr),
    st.lists(st.floats(0, 1), min_size=1, max_size=4).map(toml_value),
    st.integers(-2, 5).map(str),
    st.text(max_size=20),
    values.map(toml_value),
)


def _distribution(draw, n: int) -> list[float]:
    weights = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else [1.0] + [0.0] * (n - 1)


def _plausible(draw, name: str, key: str) -> str:
    """A value of the right kind for ``key`` (a distribution for a prior, a kernel for a transition, ...)."""
    akey = key.rpartition(".")[2]
    if akey in ("discount", "persistence"):
        return repr(draw(st.floats(0, 1) | st.sampled_from([0.0, 1.0, 0.5, 0.999999])))
    if akey == "horizon":
        return draw(st.sampled_from(["1", "2", "3", "infinite", '"infinite"']))
    if akey == "name":
        return draw(st.text(max_size=8))
    who = key.split(".")[1]
    agent = next(a for a in DOCS[name]["agents"] if a.get("name", a.get("role")) == who)
    n = len(agent["prior"]) + draw(st.sampled_from([0, 0, 0, 1, -1]))
    n = max(n, 1)
    if akey == "prior":
        return toml_value(_distribution(draw, n))
    if akey == "transition":
        return toml_value([_distribution(draw, n) for _ in range(n)])
    if akey == "values":
        return toml_value(sorted(draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n))))
    if akey == "types":
        return toml_value(draw(st.lists(st.text(min_size=1, max_size=4), min_size=n, max_size=n, unique=True)))
    columns = {a: draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n)) for a in agent["valuation"]}
    return toml_value(columns)


@st.composite
def overrides(draw):
    """(model name, ["key=value", ...]): 1-3 overrides of a bundled model: valid keys with plausible values
    (which may still be wrong: a kernel of another size, decreasing values), valid keys with junk, junk keys."""
    name = draw(st.sampled_from(sorted(DOCS)))
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["plausible", "plausible", "junk value", "junk key"]))
        if kind == "junk key":
            key = draw(st.sampled_from(JUNK_KEYS) | st.text(max_size=12))
        else:
            key = draw(st.sampled_from(_override_keys(name)))
        value = _plausible(draw, name, key) if kind == "plausible" else draw(override_values)
        items.append(f"{key}={value}")
    return name, items


# ---------------------------------------------------------------------------------------------- properties
def assert_valid_environment(env: Environment) -> None:
    """What an accepted model must be, re-checked here independently of the validation in the library."""
    assert isinstance(env, Environment)
    assert math.isfinite(env.discount) and 0.0 <= env.discount <= 1.0
    assert env.horizon == math.inf and env.discount < 1.0 or (env.horizon == int(env.horizon) and env.horizon >= 1)
    tol = tolerances.PROBABILITY
    for ag in env.agents:
        assert isinstance(ag.name, str) and ag.name
        assert len(set(ag.types)) == len(ag.types) == ag.prior.shape[0] >= 1
        for arr in (ag.prior, ag.transition, ag.valuation):
            assert np.isfinite(arr).all()
        assert (ag.prior >= 0).all() and abs(ag.prior.sum() - 1) <= tol
        assert (ag.transition >= 0).all() and np.abs(ag.transition.sum(axis=-1) - 1).max() <= tol
        if ag.values is not None:
            assert np.isfinite(ag.values).all() and (np.diff(ag.values) > 0).all()
    assert np.isfinite(env.allocations).all() and np.abs(env.allocations.sum(axis=2) - 1).max() <= tol


def check_load(path: Path, sets: list[str] = ()) -> Environment | None:
    """``load_model``: a valid environment, or ValueError / TypeError naming the file."""
    with time_budget(TIME_BUDGET, f"load_model({path.name})"):
        try:
            env = load_model(path, list(sets))
        except (ValueError, TypeError) as exc:
            assert str(exc).startswith(str(path)), f"the error does not name the file: {exc!r}"
            event("load_model: refused")
            return None
    event("load_model: accepted")
    assert_valid_environment(env)
    return env


def check_solve(path: Path, capsys, sets: list[str] = (), extra: list[str] = (), certificate: bool = False) -> int:
    """``mechlp solve``: a verified answer (0), an honest non-answer (3) or one clean error line (2). With
    ``certificate``, the certificate written must hold when re-checked with the command ``solve`` prints."""
    out = path.with_suffix(".json")
    out.unlink(missing_ok=True)
    argv = ["solve", str(path), *(f"--set={kv}" for kv in sets), *extra, "--memory-limit", MEMORY_LIMIT]
    if certificate:
        argv += ["--certificate", str(path.with_suffix(".cert.json"))]
    capsys.readouterr()
    with time_budget(TIME_BUDGET, f"mechlp {' '.join(argv)}"):
        code = main([*argv, "--json", str(out)])
    cap = capsys.readouterr()
    assert_clean_stderr(cap.err, code)
    assert code in (0, 2, 3), f"exit {code}: {cap.err}"
    event(f"mechlp solve: exit {code}")
    if code == 2:
        return code
    payload = json.loads(out.read_text())
    if code == 0:
        assert payload["status"] in ("feasible", "infeasible")
        if payload["status"] == "feasible":
            assert payload["verification"]["ok"] is True
        else:
            assert payload["impossibility_certificate"]["ok"] is True
        if certificate:
            recheck(cap.out, capsys)
            event("certificate re-checked")
    else:
        assert payload["status"] not in ("feasible", "infeasible")
        event(f"mechlp solve: exit 3 ({payload['status']})")
    return code


def recheck(solve_output: str, capsys) -> str:
    """Run the re-check command ``mechlp solve --certificate`` prints, as a shell would split it: it holds."""
    hint = re.search(r"\(re-check: (mechlp check .*)\)\s*\Z", solve_output, re.DOTALL)  # quoted newlines too
    assert hint, solve_output
    argv = shlex.split(hint.group(1))
    with time_budget(TIME_BUDGET, hint.group(1)):
        code = main(argv[1:])
    cap = capsys.readouterr()
    assert code == 0 and cap.out.rstrip().endswith("certificate HOLDS"), (hint.group(1), cap.out, cap.err)
    return cap.out


solve_options = st.tuples(
    st.sampled_from([[], ["--budget", "ex-ante"], ["--budget", "ex-post"], ["--budget", "savings"]]),
    st.sampled_from([[], [], ["--horizon", "2"], ["--horizon", "1", "--tail"], ["--method", "recursion"]]),
).map(lambda t: t[0] + t[1])


#: what a case runs: load_model only; also mechlp solve; also solve --certificate and the re-check it prints
MODES = st.sampled_from(["load", "load", "solve", "certificate"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_models")


def _model_case(case, workdir, capsys, mode: str, options: list[str]):
    name, text = case
    path = workdir / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    env = check_load(path)
    if mode != "load":
        code = check_solve(path, capsys, extra=options, certificate=mode == "certificate")
        if env is None:
            assert code == 2, "mechlp solve accepted a model file that load_model refuses"


def _override_case(case, workdir, capsys, mode: str):
    name, sets = case
    path = workdir / f"{name}.toml"
    path.write_text(TEXTS[name], encoding="utf-8")
    env = check_load(path, sets)
    if mode != "load":
        code = check_solve(path, capsys, sets=sets, certificate=mode == "certificate")
        if env is None:
            assert code == 2, "mechlp solve accepted overrides that load_model refuses"


@settings(CI, max_examples=120)
@given(case=mutated_models(), mode=MODES, options=solve_options)
def test_fuzz_model_files(case, mode, options, workdir, capsys):
    _model_case(case, workdir, capsys, mode, options)


@settings(CI, max_examples=80)
@given(case=overrides(), mode=MODES)
def test_fuzz_overrides(case, mode, workdir, capsys):
    _override_case(case, workdir, capsys, mode)


@pytest.mark.slow
@settings(SLOW, max_examples=3000)
@given(case=mutated_models(), mode=MODES, options=solve_options)
def test_fuzz_model_files_many(case, mode, options, workdir, capsys):
    _model_case(case, workdir, capsys, mode, options)


@pytest.mark.slow
@settings(SLOW, max_examples=1500)
@given(case=overrides(), mode=MODES)
def test_fuzz_overrides_many(case, mode, workdir, capsys):
    _override_case(case, workdir, capsys, mode)


# ---------------------------------------------------------------------------------------------- regressions
# Each found by the fuzzers above, then fixed at its root.
HUGE = 10**400  # a TOML integer no float holds


def test_an_override_nested_too_deeply_is_a_value_error_naming_the_file_and_key():
    """``--set discount=[[[...]]]`` (3000 deep) escaped load_model as RecursionError."""
    path = MODEL_FILES["lamba_usstp"]
    with pytest.raises(ValueError, match=r"lamba_usstp\.toml: override 'discount': the value is nested too deeply"):
        load_model(path, ["discount=" + "[" * 3000 + "]" * 3000])


@pytest.mark.parametrize(
    ("model", "override", "match"),
    [
        ("lamba_usstp", f"discount={HUGE}", r"\[model\]: key 'discount' must be a number, got an integer of 401"),
        ("lamba_usstp", f"persistence={HUGE}", r"'buyer'\): key 'persistence' must be a number, got an integer of 401"),
        ("lamba_usstp", f"agents.seller.values=[0, {HUGE}]", r"entry values\[1\] must be a number, got an integer of"),
        ("lamba_usstp", f"agents.buyer.prior=[{-HUGE}, 1]", r"entry prior\[0\] must be a number, got an integer of"),
        ("public_project", f"agents.agent2.valuation={{reject = [0, 0], build = [{HUGE}, 0]}}", r"valuation\.build"),
        ("yoon_binary", f"horizon={HUGE}", r"key 'horizon' must be a positive integer or \"infinite\", got an integer"),
    ],
)
def test_integers_beyond_the_float_range_are_value_errors_naming_the_key(model, override, match):
    """A TOML integer beyond ~1.8e308 escaped load_model as OverflowError ("int too large to convert to float")."""
    with pytest.raises(ValueError, match=match) as info:
        load_model(MODEL_FILES[model], [override])
    assert str(info.value).startswith(str(MODEL_FILES[model])) and "beyond the float range" in str(info.value)


def test_a_huge_integer_in_a_model_file_is_one_line(workdir, capsys):
    path = workdir / "huge.toml"
    path.write_text(TEXTS["lamba_usstp"].replace("discount = 0.95", f"discount = {HUGE}"), encoding="utf-8")
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mechlp: error: {path}: [model]: key 'discount' must be a number, got an integer of 401")
    assert len(err.strip().splitlines()) == 1


def test_the_environment_reads_huge_integers_as_a_type_error():
    """The same integer passed to the Python API: TypeError naming the argument, not OverflowError."""
    from_file = load_model(MODEL_FILES["lamba_usstp"])
    buyer = from_file.agents[0]
    with pytest.raises(TypeError, match=r"prior of agent 'buyer' must be numeric: int too large"):
        type(buyer)("buyer", buyer.types, [HUGE, 0], buyer.transition, buyer.valuation)


def test_warnings_reach_the_command_line_as_one_line(capsys):
    """A tiny discount factor warns about coefficients HiGHS drops; Python printed two lines with the
    library's source path (``.../questions.py:99: RuntimeWarning: ...`` and the source line)."""
    assert main(["solve", str(MODEL_FILES["yoon_k_type"]), "--set", "discount=1e-14", "--method", "lp"]) == 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("mechlp: warning: ") for line in lines), err
    assert "coefficients of the" in err and "below 1e-12 in magnitude" in err and ".py:" not in err


def test_the_printed_recheck_command_survives_a_shell(workdir, capsys):
    """``--set agents.buyer.prior=[1.0, 0.0]`` was printed unquoted in the re-check command, so a shell split it
    at the space and ``mechlp check`` stopped with a usage error."""
    cert = workdir / "my cert.json"
    sets = ["--set", "agents.buyer.prior=[0.4, 0.6]", "--set", "agents.seller.name=the seller"]
    assert main(["solve", str(MODEL_FILES["lamba_usstp"]), *sets, "--certificate", str(cert)]) == 0
    out = capsys.readouterr().out
    assert "'--set=agents.buyer.prior=[0.4, 0.6]'" in out and f"'{cert}'" in out
    recheck(out, capsys)

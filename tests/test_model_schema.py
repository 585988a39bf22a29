"""The JSON Schema of model files (``mechlp/catalog/model.schema.json``) against the loader (``mechlp.catalog.io``).

Evidence both ways: every bundled model, every TOML block of the docs and the writer's output for every example
factory validate against the schema *and* load; typo'd or misplaced keys are rejected by both, each naming the
key; and the key lists of the schema are the loader's own (``_MODEL_KEYS``, ``_GENERAL_AGENT_KEYS``, ...), so the
two cannot drift apart silently.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest

from mechlp.catalog import examples
from mechlp.catalog import io as model_io
from mechlp.catalog.io import MODEL_SCHEMA, dump_model_toml, load_model, model_from_dict, model_schema

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "models").glob("*.toml"))
DOCS = ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))
TOML_FENCE = re.compile(r"^```toml[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


@pytest.fixture(scope="module")
def validator():
    schema = model_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in validator.iter_errors(doc)]


def _doc_blocks() -> list[tuple[str, int, str]]:
    out = []
    for name in DOCS:
        text = (ROOT / name).read_text(encoding="utf-8")
        for m in TOML_FENCE.finditer(text):
            out.append((name, text.count("\n", 0, m.start()) + 2, m.group(1)))
    return out


def test_the_schema_ships_with_the_package():
    assert MODEL_SCHEMA.is_file() and MODEL_SCHEMA.parent == Path(model_io.__file__).parent
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "model.schema.json" in pyproject["tool"]["setuptools"]["package-data"]["mechlp.catalog"]
    assert model_schema()["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_every_bundled_model_validates(validator, path):
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    assert _errors(validator, doc) == []
    load_model(path)  # and the loader accepts it


def test_there_are_bundled_models_and_documented_blocks():
    assert len(MODELS) >= 9
    blocks = _doc_blocks()
    assert {name for name, _, _ in blocks} >= {"README.md", "docs/user_guide.md"}
    # the general schema is documented by a complete file (user guide, "General model files")
    assert any('kind = "general"' in code for _, _, code in blocks)


@pytest.mark.parametrize("name,line,code", _doc_blocks(), ids=[f"{n}:{ln}" for n, ln, _ in _doc_blocks()])
def test_every_documented_toml_block_validates_and_loads(validator, name, line, code):
    doc = tomllib.loads(code)
    assert _errors(validator, doc) == [], f"{name}, block at line {line}"
    model_from_dict(doc, f"{name}:{line}")


FACTORIES = {
    "lamba_usstp": lambda: examples.lamba_usstp(0.7, 0.9),
    "lamba_usstp_T3": lambda: examples.lamba_usstp(0.7, 0.9, horizon=3),
    "yoon_k_type": lambda: examples.yoon_k_type((0.0, 0.5, 1.0), 0.8, 0.9),
    "bv_scheduling": lambda: examples.bv_scheduling(),
    "license_auction": lambda: examples.license_auction(horizon=3, depth=2),
    "public_project": lambda: examples.public_project(),
    "correlated_usstp": lambda: examples.correlated_usstp(),
}


@pytest.mark.parametrize("factory", list(FACTORIES), ids=list(FACTORIES))
def test_written_models_validate(validator, factory):
    """``dump_model_toml`` writes both schemas, per-action kernels, period tables and joint kernels."""
    doc = tomllib.loads(dump_model_toml(FACTORIES[factory]()))
    assert _errors(validator, doc) == []


def _usstp() -> dict:
    return tomllib.loads((ROOT / "models" / "lamba_usstp.toml").read_text(encoding="utf-8"))


def _project() -> dict:
    return tomllib.loads((ROOT / "models" / "public_project.toml").read_text(encoding="utf-8"))


def _rename(doc: dict, path: tuple, new: str) -> dict:
    doc = copy.deepcopy(doc)
    table = doc
    for part in path[:-1]:
        table = table[part]
    table[new] = table.pop(path[-1])
    return doc


#: (document, where the key sits, the typo): one typo'd key per table of both schemas
TYPOS = [
    (_usstp, ("model", "discount"), "discuont"),
    (_usstp, ("agents", 0, "transition"), "transtion"),
    (_usstp, ("agents", 1, "values"), "value"),
    (_usstp, ("allocation", "rule"), "rules"),
    (_project, ("model", "horizon"), "horizn"),
    (_project, ("agents", 2, "persistence"), "persistance"),
    (_project, ("agents", 0, "valuation"), "valuations"),
    (_project, ("allocation", "rule"), "rul"),
]


@pytest.mark.parametrize("make,path,typo", TYPOS, ids=[t for _, _, t in TYPOS])
def test_a_typod_key_is_reported_by_the_schema_and_the_loader(validator, make, path, typo):
    doc = _rename(make(), path, typo)
    errors = _errors(validator, doc)
    assert any(f"'{typo}'" in e and "not allowed" in e for e in errors), errors
    with pytest.raises(ValueError, match=f"unknown key '{typo}'"):
        model_from_dict(doc, "typo.toml")


def test_a_typod_top_level_table_is_reported_by_both(validator):
    doc = _usstp()
    doc["alocation"] = doc.pop("allocation")
    assert any("'alocation'" in e for e in _errors(validator, doc))
    with pytest.raises(ValueError, match="top level: unknown key 'alocation'"):
        model_from_dict(doc, "typo.toml")


def test_general_only_keys_are_refused_in_a_bilateral_file_by_both(validator):
    doc = _usstp()
    doc["agents"][0]["valuation"] = {"no_trade": [0.0, 0.0], "trade": [0.05, 1.0]}
    assert any("'valuation'" in e for e in _errors(validator, doc))
    with pytest.raises(ValueError, match="unknown key 'valuation'"):
        model_from_dict(doc, "x.toml")


@pytest.mark.parametrize(
    "change,loader_match",
    [
        (lambda d: d["agents"][0].update(persistence=0.7), "exactly one of 'transition' and 'persistence'"),
        (lambda d: d["agents"][0].pop("transition"), "missing key 'transition'"),
        (lambda d: d["agents"][1].pop("prior"), "missing key 'prior'"),
        (lambda d: d["model"].pop("discount"), "missing key 'discount'"),
        (lambda d: d["agents"][1].update(role="broker"), '\'role\' must be "buyer" or "seller"'),
        (lambda d: d["agents"].pop(), "found 1 agent table"),
        (lambda d: d["model"].update(horizon=0), "horizon"),
        (lambda d: d["model"].update(horizon="forever"), "horizon"),
        (lambda d: d["allocation"].update(rule="greedy"), "key 'rule' must be"),
    ],
    ids=[
        "both-kernels",
        "no-kernel",
        "no-prior",
        "no-discount",
        "role",
        "one-agent",
        "horizon-0",
        "horizon-word",
        "rule",
    ],
)
def test_structural_errors_are_refused_by_both(validator, change, loader_match):
    doc = _usstp()
    change(doc)
    assert _errors(validator, doc)
    with pytest.raises((ValueError, TypeError), match=loader_match):
        model_from_dict(doc, "x.toml")


def test_general_allocation_and_actions_rules_are_refused_by_both(validator):
    doc = _project()
    doc["allocation"]["table"] = ["reject"] * 8
    assert _errors(validator, doc)
    with pytest.raises(ValueError, match="not both"):
        model_from_dict(doc, "x.toml")
    doc = _project()
    doc["actions"] = doc["model"]["actions"]
    assert _errors(validator, doc)
    with pytest.raises(ValueError, match="both at the top level and in"):
        model_from_dict(doc, "x.toml")


def _props(schema: dict, ref: str) -> dict:
    node = schema
    for part in ref.split("/"):
        node = node[part]
    return node


def test_the_schema_lists_exactly_the_loaders_keys():
    """The schema's tables have the loader's key tuples: a key added to one is added to the other."""
    s = model_schema()
    d = s["definitions"]
    bil, gen = d["bilateral"]["properties"], d["general"]["properties"]
    assert set(bil) == set(model_io._TOP_KEYS)
    assert set(gen) == set(model_io._GENERAL_TOP_KEYS)
    assert set(bil["model"]["properties"]) == {*model_io._MODEL_KEYS, "kind"}
    assert set(gen["model"]["properties"]) == set(model_io._GENERAL_MODEL_KEYS)
    assert set(bil["agents"]["items"]["properties"]) == set(model_io._AGENT_KEYS)
    assert set(gen["agents"]["items"]["properties"]) == set(model_io._GENERAL_AGENT_KEYS)
    assert set(bil["allocation"]["properties"]) == set(model_io._ALLOCATION_KEYS)
    assert set(gen["allocation"]["properties"]) == set(model_io._GENERAL_ALLOCATION_KEYS)
    assert set(d["joint_transition"]["properties"]) == set(model_io._JOINT_KEYS)
    assert d["rule"]["enum"] == list(model_io._RULES)


def test_the_schema_page_names_every_key():
    """docs/model_schema.md has a row for every key the schema allows."""
    page = (ROOT / "docs" / "model_schema.md").read_text(encoding="utf-8")
    d = model_schema()["definitions"]
    keys = set()
    for kind in ("bilateral", "general"):
        props = d[kind]["properties"]
        keys |= set(props["model"]["properties"]) | set(props["agents"]["items"]["properties"])
        keys |= set(props["allocation"]["properties"])
    keys |= set(d["joint_transition"]["properties"])
    missing = sorted(k for k in keys if f"| `{k}` |" not in page)
    assert missing == []

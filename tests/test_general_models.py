"""General (n-agent) model files: schema, round trip, the bundled public project, and the CLI end to end."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from mechlp.catalog.examples import public_project
from mechlp.catalog.io import apply_overrides, dump_model_toml, load_model, model_from_dict
from mechlp.cli import main
from mechlp.model.environment import Agent, Environment
from mechlp.model.serialize import model_to_dict

PROJECT_FILE = Path(__file__).resolve().parents[1] / "models" / "public_project.toml"
SRC = "models/g.toml"


def general_doc() -> dict:
    return {
        "model": {"name": "g", "kind": "general", "discount": 0.9, "horizon": "infinite", "actions": ["a", "b"]},
        "agents": [
            {
                "name": "one",
                "types": ["lo", "hi"],
                "prior": [0.5, 0.5],
                "persistence": 0.7,
                "valuation": {"a": [0.0, 0.0], "b": [-0.5, 0.5]},
            },
            {
                "name": "two",
                "types": ["lo", "hi"],
                "prior": [0.4, 0.6],
                "transition": {"a": [[0.9, 0.1], [0.2, 0.8]], "b": [[0.6, 0.4], [0.3, 0.7]]},
                "valuation": {"a": [0.0, 0.0], "b": [-0.2, 0.4]},
            },
        ],
        "allocation": {"rule": "efficient"},
    }


def assert_same(a: Environment, b: Environment, atol: float = 0.0) -> None:
    assert (a.name, a.actions, a.discount, a.horizon) == (b.name, b.actions, b.discount, b.horizon)
    np.testing.assert_array_equal(a.allocation, b.allocation)
    assert len(a.agents) == len(b.agents)
    for x, y in zip(a.agents, b.agents, strict=True):
        assert (x.name, x.role, x.types) == (y.name, y.role, y.types)
        for attr in ("prior", "transition", "valuation"):
            np.testing.assert_allclose(getattr(x, attr), getattr(y, attr), rtol=0, atol=atol, err_msg=attr)
        if x.values is None or y.values is None:
            assert x.values is None and y.values is None
        else:
            np.testing.assert_allclose(x.values, y.values, rtol=0, atol=atol)


def test_bundled_public_project_equals_the_factory():
    env = load_model(PROJECT_FILE)
    # the file writes 0.3 where the factory computes 0.8 - 1.5/3 = 0.30000000000000004
    assert_same(env, public_project(), atol=1e-15)
    assert env.meta["kind"] == "general" and env.meta["source"] == str(PROJECT_FILE)


@pytest.mark.parametrize(
    "env",
    [
        public_project(),
        public_project(values=((0.0, 0.5, 1.0), (0.2, 0.9)), persistence=0.5, horizon=3, names=("x y", "z")),
        model_from_dict(general_doc(), SRC),
    ],
    ids=["project", "three-types-finite", "action-dependent"],
)
def test_round_trip(env):
    doc = model_to_dict(env)
    text = dump_model_toml(env)
    assert tomllib.loads(text) == doc
    assert_same(model_from_dict(tomllib.loads(text), SRC), env)


def test_explicit_allocation_table_round_trip_and_top_level_actions():
    doc = general_doc()
    doc["agents"][1]["transition"] = [[0.9, 0.1], [0.2, 0.8]]  # randomised rules need action-free kernels
    doc["allocation"] = {"table": ["b", [0.25, 0.75], "a", "b"]}
    env = model_from_dict(doc, SRC)
    np.testing.assert_array_equal(env.allocation, [[0, 1], [0.25, 0.75], [1, 0], [0, 1]])
    out = model_to_dict(env)
    assert out["allocation"] == {"table": ["b", [0.25, 0.75], "a", "b"]}
    assert_same(model_from_dict(tomllib.loads(dump_model_toml(env)), SRC), env)
    top = general_doc()
    top["actions"] = top["model"].pop("actions")
    del top["model"]["kind"]  # detected from `actions`
    assert_same(model_from_dict(top, SRC), model_from_dict(general_doc(), SRC))


def test_single_agent_environment_is_written_in_the_general_schema():
    env = Environment([Agent("solo", ["a"], [1.0], [[1.0]], [[0.0, 1.0]])], ("x", "y"), 0.9, 2)
    back = model_from_dict(model_to_dict(env), SRC)
    assert_same(back, Environment([Agent("solo", ["a"], [1.0], [[1.0]], [[0.0, 1.0]])], ("x", "y"), 0.9, 2))


def mutate(path, value=None, delete=False):
    doc = copy.deepcopy(general_doc())
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


GENERAL_ERRORS = [
    (("model", "kind"), "auction", "[model]: key 'kind' must be one of 'bilateral_trade', 'general', got 'auction'"),
    (("model", "actions"), "DELETE", "[model]: missing key 'actions'"),
    (("model", "actions"), ["a", "a"], "[model]: key 'actions': label 'a' at index 1 appears twice"),
    (("model", "colour"), 1, "[model]: unknown key 'colour'; valid keys are 'name', 'kind', 'discount'"),
    (("agents", 0, "valuation"), "DELETE", "[[agents]] #1 ('one'): missing key 'valuation'"),
    (("agents", 0, "valuation", "b"), "DELETE", "[[agents]] #1 ('one'): key 'valuation': missing action 'b'"),
    (("agents", 0, "valuation", "c"), [1, 2], "[[agents]] #1 ('one'): key 'valuation': unknown action 'c'"),
    (("agents", 0, "valuation", "b"), [1.0], "[[agents]] #1 ('one'): key 'valuation.b' has 1 entries; expected 2"),
    (("agents", 1, "transition", "b"), "DELETE", "[[agents]] #2 ('two'): key 'transition': missing action 'b'"),
    (("agents", 1, "transition", "a"), [[0.5, 0.4], [0.2, 0.8]], "[[agents]] #2 ('two'): transition row 0"),
    (("agents", 0, "bid"), 1, "[[agents]] #1 ('one'): unknown key 'bid'; valid keys are 'name', 'role', 'types'"),
    (("agents", 0, "types"), "DELETE", "[[agents]] #1 ('one'): missing key 'types'"),
    (("allocation",), {"table": ["a"]}, "[allocation]: key 'table' must be an array with one entry per type profile"),
    (("allocation",), {"table": ["a", "a", "z", "a"]}, "[allocation]: key 'table': entry 2 names unknown action 'z'"),
    (("allocation",), {"table": ["a", [1.0], "a", "a"]}, "[allocation]: key 'table': entry 1 has 1 probabilities"),
    (
        ("allocation", "table"),
        ["a", "a", "a", "a"],
        "[allocation]: give either rule = \"efficient\" or 'table', not both",
    ),
    (("allocation", "rule"), "second_best", "[allocation]: key 'rule' must be \"efficient\" (or give 'table'"),
]


@pytest.mark.parametrize(("path", "value", "message"), GENERAL_ERRORS)
def test_general_schema_errors_name_file_table_and_key(path, value, message):
    doc = mutate(path, delete=True) if value == "DELETE" else mutate(path, value)
    with pytest.raises(ValueError, match=re.escape(f"{SRC}: {message}")):
        model_from_dict(doc, SRC)


def test_overrides_on_general_models():
    doc = apply_overrides(general_doc(), ["agents.one.persistence=0.9", "agents.two.valuation={a=[0,0], b=[0,1]}"])
    env = model_from_dict(doc, SRC)
    np.testing.assert_allclose(env.agents[0].transition, [[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_array_equal(env.agents[1].valuation, [[0, 0], [0, 1]])
    with pytest.raises(
        ValueError, match=r"agents\.one\.\{name,role,types,values,prior,transition,persistence,valuation"
    ):
        apply_overrides(general_doc(), ["agents.one.bid=1"])


def test_three_agents_solve_end_to_end_with_certificates(tmp_path, capsys):
    cert = tmp_path / "C.json"
    assert main(["solve", str(PROJECT_FILE), "--budget", "ex-post", "--certificate", str(cert)]) == 0
    out = capsys.readouterr().out
    assert "efficient allocation under ex_post budget balance: FEASIBLE" in out  # the written spelling
    assert "after (H, H, H)" in out and "fees" not in out  # fees are bilateral only
    doc = json.loads(cert.read_text())
    assert doc["kind"] == "mechanism" and doc["model"]["model"]["kind"] == "general"
    assert len(doc["transfers"]) == 9 * 8
    assert main(["check", str(PROJECT_FILE), str(cert), "--budget", "ex-post"]) == 0
    assert "certificate HOLDS" in capsys.readouterr().out
    # an impossibility certificate for the same model at a low discount factor, re-checked exactly
    cert2 = tmp_path / "D.json"
    assert main(["solve", str(PROJECT_FILE), "--set", "discount=0.3", "--certificate", str(cert2)]) == 0
    assert "INFEASIBLE" in capsys.readouterr().out
    assert main(["check", str(PROJECT_FILE), str(cert2), "--exact", "--set", "discount=0.3"]) == 0
    assert "certificate HOLDS" in capsys.readouterr().out

"""TOML model files: mechlp.catalog.io (load_model, model_from_dict, model_to_dict, dump_model_toml, overrides)."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.catalog.io import apply_overrides, dump_model_toml, load_model, model_from_dict
from mechlp.model.environment import INFINITE, Agent, Environment, bilateral_trade, renewal_matrix
from mechlp.model.serialize import model_to_dict

USSTP_FILE = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
SRC = "models/x.toml"


def base_doc() -> dict:
    return {
        "model": {"name": "m", "discount": 0.9, "horizon": "infinite"},
        "agents": [
            {
                "name": "buyer",
                "role": "buyer",
                "types": ["v_L", "v_H"],
                "values": [0.05, 1.0],
                "prior": [0.5, 0.5],
                "transition": [[0.7, 0.3], [0.3, 0.7]],
            },
            {
                "name": "seller",
                "role": "seller",
                "types": ["c_L", "c_H"],
                "values": [0.0, 0.95],
                "prior": [0.5, 0.5],
                "persistence": 0.7,
            },
        ],
        "allocation": {"rule": "efficient"},
    }


def assert_same_env(a: Environment, b: Environment, atol: float = 0.0) -> None:
    assert a.name == b.name
    assert a.actions == b.actions
    assert a.discount == b.discount
    assert a.horizon == b.horizon
    np.testing.assert_array_equal(a.allocation, b.allocation)
    assert len(a.agents) == len(b.agents)
    for x, y in zip(a.agents, b.agents, strict=True):
        assert (x.name, x.role, x.types) == (y.name, y.role, y.types)
        for attr in ("prior", "transition", "valuation", "values"):
            np.testing.assert_allclose(getattr(x, attr), getattr(y, attr), rtol=0, atol=atol, err_msg=attr)
    assert a.meta["kind"] == b.meta["kind"]
    assert a.meta["disjoint_supports"] == b.meta["disjoint_supports"]


def write(tmp_path: Path, text: str, name: str = "model.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def file_error(path: Path, message: str) -> str:
    """Regex for an error ``"<path>: <message>"`` (message given literally)."""
    return "^" + re.escape(f"{path}: {message}")


def dict_error(message: str) -> str:
    return "^" + re.escape(f"{SRC}: {message}")


# ------------------------------------------------------------------------------------------ the USSTP file
def test_usstp_file_matches_examples():
    env = load_model(USSTP_FILE)
    # The file writes 0.3; renewal_matrix computes 1 - 0.7 = 0.30000000000000004: equal up to one ulp.
    assert_same_env(env, lamba_usstp(0.7, 0.95), atol=1e-15)
    assert env.agents[0].types == ("v_L", "v_H") and env.agents[1].types == ("c_L", "c_H")
    assert env.horizon == INFINITE
    assert env.meta["source"] == str(USSTP_FILE)


def test_usstp_file_with_persistence_override_is_bitwise_equal_to_examples():
    assert_same_env(load_model(USSTP_FILE, ["persistence=0.7"]), lamba_usstp(0.7, 0.95))


def test_usstp_file_cites_lamba():
    text = USSTP_FILE.read_text()
    assert re.search(r"^#.*Lamba \(2022\).*section 5\.1", text, flags=re.MULTILINE)


# ---------------------------------------------------------------------------------------------- round trips
def round_trip_envs() -> list[Environment]:
    three = bilateral_trade(
        [0.0, 0.5, 1.0],
        [0.25, 0.75],
        [0.2, 0.3, 0.5],
        [0.9, 0.1],
        renewal_matrix(3, 0.6),
        [[0.6, 0.4], [0.1, 0.9]],
        1.0,
        4,
        buyer_types=["lo", "mid", "hi"],
        buyer_name='Bob "the buyer"',
        seller_name="Sally\\seller",
        name="three types\nand a newline, ünïcode",
    )
    learning = bilateral_trade(
        [0.2, 1.0],
        [0.5],
        [0.5, 0.5],
        [1.0],
        np.stack([np.eye(2), renewal_matrix(2, 0.6)]),  # types move only after trade
        [[1.0]],
        0.8,
    )
    tie = bilateral_trade([0.5, 1.0], [0.0, 0.5], [0.5, 0.5], [0.5, 0.5], np.eye(2), np.eye(2), 1e-5, 1)
    return [lamba_usstp(0.7, 0.95), lamba_usstp(0.3, 0.5, horizon=2), three, learning, tie]


@pytest.mark.parametrize("env", round_trip_envs(), ids=lambda e: e.name.split()[0])
def test_model_to_dict_round_trip(env):
    doc = model_to_dict(env)
    assert_same_env(model_from_dict(doc), env)
    # plain data only
    assert tomllib.loads(dump_model_toml(env)) == doc


@pytest.mark.parametrize("env", round_trip_envs(), ids=lambda e: e.name.split()[0])
def test_dump_model_toml_round_trip_through_a_file(env, tmp_path):
    text = dump_model_toml(env)
    assert text.startswith("[model]\n")
    assert_same_env(load_model(write(tmp_path, text)), env)


def test_model_to_dict_content():
    doc = model_to_dict(lamba_usstp(0.7, 0.95, horizon=3))
    assert doc["model"] == {"name": "lamba_usstp", "discount": 0.95, "horizon": 3}
    assert [a["role"] for a in doc["agents"]] == ["buyer", "seller"]
    assert doc["agents"][1]["values"] == [0.0, 0.95]
    assert doc["allocation"] == {"rule": "efficient"}
    assert model_to_dict(lamba_usstp())["model"]["horizon"] == "infinite"


def test_model_to_dict_writes_other_environments_in_the_general_schema():
    ag = Agent("solo", ["a"], [1.0], [[1.0]], [[0.0, 1.0]])
    doc = model_to_dict(Environment([ag], ("x", "y"), 0.9, 2))
    assert doc["model"]["kind"] == "general" and doc["model"]["actions"] == ["x", "y"]
    assert doc["agents"][0]["valuation"] == {"x": [0.0], "y": [1.0]}


def test_seller_first_defaults_and_name_from_file_stem(tmp_path):
    text = """
[model]
discount = 0.5

[[agents]]
role = "seller"
values = [0.2]
prior = [1.0]
transition = [[1.0]]

[[agents]]
role = "buyer"
values = [0.1, 0.9]
prior = [0.25, 0.75]
persistence = 0.8
"""
    env = load_model(write(tmp_path, text, "my_market.toml"))
    assert env.name == "my_market"
    assert [a.name for a in env.agents] == ["buyer", "seller"]
    assert env.agents[0].types == ("v1", "v2") and env.agents[1].types == ("c1",)
    assert env.horizon == INFINITE
    np.testing.assert_array_equal(env.agents[0].transition, renewal_matrix(2, 0.8))
    np.testing.assert_array_equal(env.allocation[:, 1], [0.0, 1.0])  # trade iff v > c
    assert model_from_dict(tomllib.loads(text)).name == "bilateral_trade"


# ---------------------------------------------------------------------------------------------- overrides
def test_override_discount_and_horizon():
    env = load_model(USSTP_FILE, ["discount=0.5", "horizon=3"])
    assert env.discount == 0.5
    assert env.horizon == 3 and not env.infinite
    env = load_model(USSTP_FILE, {"model.horizon": "3", "model.discount": "0.25"})
    assert (env.discount, env.horizon) == (0.25, 3)


def test_override_horizon_back_to_infinite_bare_string():
    env = load_model(USSTP_FILE, ["horizon=5", "horizon = infinite"])
    assert env.horizon == INFINITE
    assert load_model(USSTP_FILE, ['horizon="infinite"']).horizon == INFINITE


def test_override_persistence_changes_both_kernels():
    env = load_model(USSTP_FILE, ["persistence=0.9"])
    for ag in env.agents:
        np.testing.assert_allclose(ag.transition, [[0.9, 0.1], [0.1, 0.9]], rtol=0, atol=1e-15)


def test_override_agent_keys():
    env = load_model(USSTP_FILE, ["agents.buyer.prior=[0.4, 0.6]", "agents.seller.persistence=0.9"])
    np.testing.assert_array_equal(env.agents[0].prior, [0.4, 0.6])
    np.testing.assert_array_equal(env.agents[1].prior, [0.5, 0.5])
    np.testing.assert_allclose(env.agents[0].transition, [[0.7, 0.3], [0.3, 0.7]])
    np.testing.assert_array_equal(env.agents[1].transition, renewal_matrix(2, 0.9))


def test_override_transition_replaces_persistence_and_vice_versa():
    doc = apply_overrides(base_doc(), ["persistence=0.6"])
    assert all("transition" not in a and a["persistence"] == 0.6 for a in doc["agents"])
    doc = apply_overrides(doc, ["agents.seller.transition=[[1.0, 0.0], [0.5, 0.5]]"])
    assert "persistence" not in doc["agents"][1]
    assert doc["agents"][1]["transition"] == [[1.0, 0.0], [0.5, 0.5]]
    env = model_from_dict(doc)
    np.testing.assert_array_equal(env.agents[1].transition, [[1.0, 0.0], [0.5, 0.5]])


def test_override_names_are_strings():
    env = load_model(USSTP_FILE, ["model.name=run 7", "agents.buyer.name=123"])
    assert env.name == "run 7"
    assert env.agents[0].name == "123"
    doc = apply_overrides(base_doc(), ['model.name="quoted"'])
    assert doc["model"]["name"] == "quoted"


def test_override_accepts_non_string_mapping_values():
    doc = apply_overrides(base_doc(), {"discount": 0.3, "agents.buyer.values": [0.1, 0.2]})
    assert doc["model"]["discount"] == 0.3
    assert doc["agents"][0]["values"] == [0.1, 0.2]


def test_apply_overrides_does_not_mutate_its_input():
    doc = base_doc()
    before = copy.deepcopy(doc)
    apply_overrides(doc, ["persistence=0.9", "discount=0.1", "agents.buyer.prior=[0.1, 0.9]"])
    assert doc == before


def test_override_value_with_injected_key_is_a_bare_string():
    doc = apply_overrides(base_doc(), ["model.name=x\ndiscount = 0.1"])
    assert doc["model"]["discount"] == 0.9


def test_override_unknown_key_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown override key 'dicsount'; valid keys are discount, horizon,") as e:
        load_model(USSTP_FILE, ["dicsount=0.5"])
    assert "agents.buyer.{name,role,types,values,prior,transition,persistence}" in str(e.value)
    assert str(e.value).startswith(str(USSTP_FILE))


def test_override_unknown_agent():
    with pytest.raises(ValueError, match=r"unknown override key 'agents.bob.prior' \(no agent 'bob'\)"):
        load_model(USSTP_FILE, ["agents.bob.prior=[1.0, 0.0]"])


def test_override_unknown_agent_key():
    with pytest.raises(ValueError, match=r"unknown override key 'agents.buyer.priors' \(no key 'priors'\)"):
        load_model(USSTP_FILE, ["agents.buyer.priors=[1.0, 0.0]"])


@pytest.mark.parametrize("key", ["model.dicount", "model", "agents.buyer", "allocation.rule"])
def test_override_other_unknown_keys(key):
    with pytest.raises(ValueError, match=re.escape(f"unknown override key {key!r}")):
        apply_overrides(base_doc(), [f"{key}=1"])


def test_override_without_equals_sign():
    with pytest.raises(ValueError, match="override #2 must have the form 'key=value', got 'discount'"):
        load_model(USSTP_FILE, ["horizon=2", "discount"])


def test_overrides_must_not_be_a_bare_string():
    with pytest.raises(TypeError, match="overrides must be a mapping or a sequence of 'key=value' strings"):
        load_model(USSTP_FILE, "discount=0.5")


def test_override_bad_value_is_reported_like_a_file_error():
    with pytest.raises(ValueError, match=file_error(USSTP_FILE, "[model]: key 'discount' must be a number, got 'abc'")):
        load_model(USSTP_FILE, ["discount=abc"])


# ---------------------------------------------------------------------------------------------- file errors
def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_model(path)


def test_directory_is_not_a_model_file(tmp_path):
    with pytest.raises(ValueError, match=file_error(tmp_path, "not a file")):
        load_model(tmp_path)


def test_toml_syntax_error(tmp_path):
    path = write(tmp_path, "[model]\ndiscount = = 0.9\n")
    with pytest.raises(ValueError, match=file_error(path, "TOML syntax error: ") + r".*line 2"):
        load_model(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b'[model]\nname = "\xff"\n')
    with pytest.raises(ValueError, match=file_error(path, "not UTF-8 text")):
        load_model(path)


def test_file_errors_name_the_file(tmp_path):
    text = USSTP_FILE.read_text().replace("values = [0.0, 0.95]\n", "")
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=file_error(path, "[[agents]] #2 ('seller'): missing key 'values'") + "$"):
        load_model(path)


def test_environment_errors_get_the_file_prefix(tmp_path):
    text = USSTP_FILE.read_text().replace("prior = [0.5, 0.5]", "prior = [0.5, 0.4]", 1)
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=file_error(path, "prior of agent 'buyer' sums to 0.9, not 1")):
        load_model(path)


def mutate(path: tuple, value=None, delete: bool = False) -> dict:
    doc = base_doc()
    target = doc
    for p in path[:-1]:
        target = target[p]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


SCHEMA_ERRORS = [
    # (path into the document, new value or DELETE, error message after "models/x.toml: ")
    (("model", "discount"), "abc", "[model]: key 'discount' must be a number, got 'abc'"),
    (("model", "discount"), True, "[model]: key 'discount' must be a number, got True"),
    (("model", "discount"), "DELETE", "[model]: missing key 'discount'"),
    (
        ("model", "dicount"),
        0.9,
        "[model]: unknown key 'dicount'; valid keys are 'name', 'discount', 'horizon'",
    ),
    (("model", "name"), 7, "[model]: key 'name' must be a non-empty string, got 7"),
    (
        ("model", "horizon"),
        False,
        "[model]: key 'horizon' must be a positive integer or \"infinite\", got False",
    ),
    (("model",), "DELETE", "missing table [model]"),
    (("model",), 3, "'model' must be a table [model], got 3"),
    (("agents",), "DELETE", "missing [[agents]] tables (one buyer and one seller)"),
    (("agents",), {"name": "x"}, "'agents' must be an array of tables [[agents]], got {'name': 'x'}"),
    (("extra",), 1, "top level: unknown key 'extra'; valid keys are 'model', 'agents', 'allocation'"),
    (("allocation", "rule"), "second_best", "[allocation]: key 'rule' must be \"efficient\""),
    (("allocation", "rul"), "efficient", "[allocation]: unknown key 'rul'; valid keys are 'rule'"),
    (("allocation",), "efficient", "'allocation' must be a table [allocation], got 'efficient'"),
    (("agents", 1, "values"), "DELETE", "[[agents]] #2 ('seller'): missing key 'values'"),
    (("agents", 0, "prior"), "DELETE", "[[agents]] #1 ('buyer'): missing key 'prior'"),
    (("agents", 0, "role"), "DELETE", "[[agents]] #1 ('buyer'): missing key 'role'"),
    (
        ("agents", 0, "priors"),
        [0.5, 0.5],
        "[[agents]] #1 ('buyer'): unknown key 'priors'; valid keys are 'name', 'role', 'types', 'values', "
        "'prior', 'transition', 'persistence'",
    ),
    (
        ("agents", 0, "role"),
        "bidder",
        "[[agents]] #1 ('buyer'): key 'role' must be \"buyer\" or \"seller\", got 'bidder'",
    ),
    (("agents", 1, "role"), "buyer", "[[agents]]: both agents have role 'buyer'; bilateral trade needs one"),
    (("agents", 0, "name"), "", "[[agents]] #1 ('buyer'): key 'name' must be a non-empty string, got ''"),
    (("agents", 0, "types"), ["a", 2], "[[agents]] #1 ('buyer'): key 'types' must be an array of strings"),
    (("agents", 0, "values"), [], "[[agents]] #1 ('buyer'): key 'values' is empty"),
    (
        ("agents", 0, "values"),
        1.0,
        "[[agents]] #1 ('buyer'): key 'values' must be an array of numbers, got 1.0",
    ),
    (
        ("agents", 0, "values"),
        [0.05, "1.0"],
        "[[agents]] #1 ('buyer'): key 'values': entry values[1] must be a number, got '1.0'",
    ),
    (
        ("agents", 0, "prior"),
        [[0.5, 0.5]],
        "[[agents]] #1 ('buyer'): key 'prior' must be an array of numbers",
    ),
    (
        ("agents", 0, "transition"),
        [[0.7, 0.3], [1.0]],
        "[[agents]] #1 ('buyer'): key 'transition': transition[1] has shape (1,), transition[0] has shape "
        "(2,); rows must have equal length",
    ),
    (
        ("agents", 0, "transition"),
        [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0]]],
        "[[agents]] #1 ('buyer'): key 'transition': transition[1] has shape (1, 2), transition[0] has shape "
        "(2, 2); rows must have equal length",
    ),
    (
        ("agents", 0, "transition"),
        [0.7, 0.3],
        "[[agents]] #1 ('buyer'): key 'transition' must be a matrix (an array of arrays of numbers) or a "
        "stack of matrices",
    ),
    (
        ("agents", 0, "persistence"),
        0.7,
        "[[agents]] #1 ('buyer'): give exactly one of 'transition' and 'persistence', not both",
    ),
    (
        ("agents", 1, "persistence"),
        "DELETE",
        "[[agents]] #2 ('seller'): missing key 'transition' (or 'persistence'",
    ),
    (
        ("agents", 1, "persistence"),
        "high",
        "[[agents]] #2 ('seller'): key 'persistence' must be a number, got 'high'",
    ),
    (
        ("agents", 1, "persistence"),
        1.5,
        "[[agents]] #2 ('seller'): key 'persistence': persistence must lie in [0, 1]",
    ),
    # errors raised by mechlp.model.environment, with the source prepended and their text kept
    (("model", "horizon"), "forever", "horizon must be a positive integer or 'infinite', got 'forever'"),
    (("model", "horizon"), 0, "horizon must be >= 1, got 0"),
    (("model", "discount"), 1.0, "discount must lie in [0, 1) for an infinite horizon, got 1"),
    (
        ("agents", 0, "values"),
        [1.0, 0.05],
        "values of agent 'buyer' must be strictly increasing: values[1] = 0.05",
    ),
    (("agents", 0, "types"), ["v_L"], "prior of agent 'buyer' has shape (2,); expected (1,)"),
    (("agents", 1, "name"), "buyer", "agents[1] has the name 'buyer' of agents[0]; names must differ"),
    (
        ("agents", 0, "transition"),
        [[0.5, 0.5], [0.5, 0.47]],
        "transition row 1 of agent 'buyer' sums to 0.97, not 1",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), SCHEMA_ERRORS, ids=[m[:40] for _, _, m in SCHEMA_ERRORS])
def test_schema_errors(path, value, message):
    doc = mutate(path, delete=True) if value == "DELETE" else mutate(path, value)
    with pytest.raises(ValueError, match=dict_error(message)):
        model_from_dict(doc, SRC)


@pytest.mark.parametrize("n_agents", [1, 3])
def test_bilateral_trade_needs_exactly_two_agents(n_agents):
    doc = base_doc()
    doc["agents"] = (doc["agents"] * 2)[:n_agents]
    with pytest.raises(
        ValueError,
        match=dict_error(f"[[agents]]: found {n_agents} agent table(s); model files describe bilateral trade")
        + ".*the only model this schema supports for now",
    ):
        model_from_dict(doc, SRC)


def test_model_must_be_a_dict():
    with pytest.raises(TypeError, match=dict_error("a model must be a table (dict), got list")):
        model_from_dict([], SRC)


def test_default_source_in_messages():
    doc = mutate(("model", "discount"), "abc")
    with pytest.raises(ValueError, match=re.escape("<dict>: [model]: key 'discount' must be a number")):
        model_from_dict(doc)

r"""Model files: environments described in TOML.

Model files are read with :mod:`tomllib` and nothing else: model input is never evaluated, imported or
unpickled. Two schemas share the same ``[model]`` / ``[[agents]]`` / ``[allocation]`` layout:

* **bilateral trade** (one buyer, one seller, Lamba 2022 section 2, built with
  :func:`mechlp.model.environment.bilateral_trade` and the efficient rule): the default;
* **general** (``n`` agents, any finite actions, valuation tables, kernels that may depend on the action, the
  efficient rule or an explicit allocation table; :class:`mechlp.model.environment.Environment`): chosen by
  ``kind = "general"`` in ``[model]`` or by giving ``actions``.

Bilateral-trade schema
----------------------
.. code-block:: toml

    [model]
    name = "lamba_usstp"        # optional; defaults to the file name without ".toml"
    discount = 0.95             # required; in [0, 1) for an infinite horizon, [0, 1] for a finite one
    horizon = "infinite"        # optional, default "infinite"; or a positive integer (number of periods)

    [[agents]]                  # exactly two [[agents]] tables: one buyer and one seller, in either order
    name = "buyer"              # optional; defaults to the role
    role = "buyer"              # required: "buyer" or "seller"
    types = ["v_L", "v_H"]      # optional labels; default v1, v2, ... (buyer) and c1, c2, ... (seller)
    values = [0.05, 1.0]        # required: buyer valuations / seller costs, strictly increasing
    prior = [0.5, 0.5]          # required: first-period distribution, one entry per type
    transition = [[0.7, 0.3], [0.3, 0.7]]   # row theta, column theta'; rows sum to 1
    # instead of `transition`: persistence = 0.7  (renewal kernel, mechlp.catalog.examples.renewal_matrix:
    # stay with probability 0.7, otherwise move uniformly to another type) -- exactly one of the two.
    # `transition` may also be one matrix per action, [no_trade_matrix, trade_matrix], when types
    # respond to the allocation.

    [[agents]]
    name = "seller"
    role = "seller"
    types = ["c_L", "c_H"]
    values = [0.0, 0.95]
    prior = [0.5, 0.5]
    persistence = 0.7

    [allocation]                # optional table
    rule = "efficient"          # the only rule supported in model files: trade iff value > cost

General schema
--------------
.. code-block:: toml

    [model]
    name = "public_project"     # optional; defaults to the file name without ".toml"
    kind = "general"            # optional when `actions` is given ("bilateral_trade" is the other kind)
    discount = 0.9              # required
    horizon = "infinite"        # optional, default "infinite"; or a positive integer
    actions = ["reject", "build"]   # required: action labels (also accepted as a top-level key)

    [[agents]]                  # one table per agent (at least one), in the order of the type profiles
    name = "agent1"             # optional; default agent1, agent2, ...
    role = "participant"        # optional free text
    types = ["L", "H"]          # required: type labels
    values = [0.2, 1.0]         # optional numeric type values, strictly increasing
    prior = [0.5, 0.5]          # required
    persistence = 0.7           # renewal kernel, or instead `transition`: one matrix (row theta, column theta')
    # or one matrix per action, keyed by action label (types that respond to the allocation):
    # transition = { reject = [[0.7, 0.3], [0.3, 0.7]], build = [[0.9, 0.1], [0.1, 0.9]] }
    valuation = { reject = [0.0, 0.0], build = [-0.3, 0.5] }   # required: v_i(type, action), a list over
                                # types for every action (equivalently a sub-table [agents.valuation])

    [allocation]                # optional table
    rule = "efficient"          # default: the action maximising the sum of valuations (ties: the first listed)
    # or an explicit rule, one entry per type profile (profiles in C order: the first agent's type varies
    # slowest, the last agent's fastest), each an action label or a list of probabilities over `actions`:
    # table = ["reject", "reject", "build", ...]

Correlated types (both schemas)
-------------------------------
An optional top-level table gives a kernel over type *profiles* (``Environment(joint_transition=...)``, Yoon
2015's general model; ``env.correlated``). The profile order is stated and checked: C order over the agents as
listed (the first agent's type varies slowest), each profile written as its type labels joined by ``", "``.

.. code-block:: toml

    [joint_transition]
    profiles = ["v_L, c_L", "v_L, c_H", "v_H, c_L", "v_H, c_H"]   # required: the order of rows and columns
    matrix = [[0.5, 0.1, 0.1, 0.3], ...]    # row = current profile, column = next profile; rows sum to 1
    # or one matrix per action, keyed by action label (general schema; bilateral: no_trade, trade):
    # matrix = { no_trade = [[...], ...], trade = [[...], ...] }

With it an agent's ``transition`` / ``persistence`` may be omitted; when given it must be the marginal of the
joint kernel (checked). The first-period prior stays the product of the agents' priors.

JSON Schema
-----------
Both schemas are also written as a JSON Schema (draft-07), shipped as ``mechlp/catalog/model.schema.json``
(:data:`MODEL_SCHEMA`, read by :func:`model_schema`), for editors that validate TOML against a schema and for
other tools; ``tests/test_model_schema.py`` validates every bundled model and every TOML block of the docs against
it, and checks that the schema and this loader reject the same typo'd keys. The loader does not need it (no
``jsonschema`` at run time) and checks more: lengths that must match the number of types or profiles, rows that
sum to 1, values strictly increasing, action labels as table keys.

Unknown keys and tables are errors (they are usually typos). Every error names the file, the table and
the key, e.g. ``models/x.toml: [[agents]] #2 ('seller'): missing key 'values'``; validation errors of
:mod:`mechlp.model.environment` are re-raised with the file name prepended.

Overrides
---------
:func:`load_model` applies ``key=value`` overrides (the command line's ``--set``) to the parsed file before
building the environment. Keys:

* ``model.discount``, ``model.horizon``, ``model.name`` and the shorthands ``discount``, ``horizon``;
* ``agents.<agent name>.<key>`` for any agent key of the model's schema, e.g. ``agents.buyer.prior=[0.4, 0.6]``,
  ``agents.seller.persistence=0.9``, ``agents.agent1.valuation={reject = [0, 0], build = [-0.3, 0.6]}``;
* ``persistence``: sets ``persistence`` on every agent.

Values are parsed as TOML values (``0.9``, ``[0.4, 0.6]``, ``"text"``); anything that does not parse is
taken as a bare string (``horizon=infinite``). Setting ``persistence`` on an agent removes its
``transition`` and vice versa.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mechlp.model.environment import Agent, Environment, bilateral_trade, renewal_matrix
from mechlp.model.files import read_text
from mechlp.model.serialize import model_to_dict

#: Largest model file read (bytes): model files are small tables.
MAX_MODEL_BYTES = 16 << 20

__all__ = [
    "MODEL_SCHEMA",
    "load_model",
    "model_from_dict",
    "dump_model_toml",
    "apply_overrides",
    "toml_value",
    "model_schema",
]

#: The JSON Schema of model files (both schemas of the module docstring), shipped with the package.
MODEL_SCHEMA = Path(__file__).with_name("model.schema.json")

_TOP_KEYS = ("model", "agents", "allocation", "joint_transition")
_MODEL_KEYS = ("name", "discount", "horizon")
_AGENT_KEYS = ("name", "role", "types", "values", "prior", "transition", "persistence")
_ALLOCATION_KEYS = ("rule",)
_RULES = ("efficient", "efficient_dynamic", "efficient_myopic")
_KINDS = ("bilateral_trade", "general")
_GENERAL_TOP_KEYS = ("model", "agents", "allocation", "actions", "joint_transition")
_JOINT_KEYS = ("profiles", "matrix")
_GENERAL_MODEL_KEYS = ("name", "kind", "discount", "horizon", "actions")
_GENERAL_AGENT_KEYS = ("name", "role", "types", "values", "prior", "transition", "persistence", "valuation")
_GENERAL_ALLOCATION_KEYS = ("rule", "table", "periods")
_ROLES = ("buyer", "seller")
_STRING_KEYS = ("name", "role")  # override values for these keys are taken verbatim unless quoted TOML


def model_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of model files, parsed from :data:`MODEL_SCHEMA`.

    Returns
    -------
    dict
        Validate a parsed model document with e.g. ``jsonschema.Draft7Validator(model_schema())``
        (``jsonschema`` is in the ``dev`` extra; :func:`load_model` does not use it).
    """
    return json.loads(MODEL_SCHEMA.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- helpers
def _is_number(value: Any) -> bool:
    """A TOML number that a float holds: not a boolean, and not an integer beyond the float range (~1.8e308)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, float) or abs(value) <= sys.float_info.max


def _shown(value: Any) -> str:
    """``repr(value)`` for messages, naming an integer too large for a float instead of printing its digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        return f"an integer of {len(str(abs(value)))} digits (beyond the float range, about 1.8e308)"
    return repr(value)


def _list_keys(keys: Sequence[str]) -> str:
    return ", ".join(repr(k) for k in keys)


def _unknown_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}; valid keys are {_list_keys(allowed)}")


def _numeric_array(value: Any, where: str, key: str, ndims: tuple[int, ...]) -> list:
    """Check that ``value`` is a rectangular nested list of numbers with one of the dimensions ``ndims``."""
    shapes = {
        1: "an array of numbers",
        2: "a matrix (an array of arrays of numbers)",
        3: "a stack of matrices (one matrix per action)",
    }
    wanted = " or ".join(shapes[d] for d in ndims)

    def depth_of(v: Any) -> int:
        return 1 + depth_of(v[0]) if isinstance(v, list) and v else (1 if isinstance(v, list) else 0)

    if not isinstance(value, list):
        raise ValueError(f"{where}: key {key!r} must be {wanted}, got {value!r}")
    depth = depth_of(value)
    if depth not in ndims:
        raise ValueError(f"{where}: key {key!r} must be {wanted}, got {value!r}")

    def check(v: Any, level: int, path: str) -> tuple[int, ...]:
        if level == depth:
            if not _is_number(v):
                raise ValueError(f"{where}: key {key!r}: entry {key}{path} must be a number, got {_shown(v)}")
            return ()
        if not isinstance(v, list):
            raise ValueError(f"{where}: key {key!r}: entry {key}{path} must be an array, got {v!r}")
        shapes_seen = [check(item, level + 1, f"{path}[{j}]") for j, item in enumerate(v)]
        for j, s in enumerate(shapes_seen[1:], start=1):
            if s != shapes_seen[0]:
                raise ValueError(
                    f"{where}: key {key!r}: {key}{path}[{j}] has shape {s}, {key}{path}[0] has shape "
                    f"{shapes_seen[0]}; rows must have equal length"
                )
        return (len(v), *(shapes_seen[0] if shapes_seen else ()))

    check(value, 0, "")
    return value


def _agent_where(source: str, idx: int, table: Mapping[str, Any]) -> str:
    label = ""
    for key in ("name", "role"):  # the agent's name, else its role, when usable as a label
        value = table.get(key)
        if isinstance(value, str) and value:
            label = f" ({value!r})"
            break
    return f"{source}: [[agents]] #{idx + 1}{label}"


def _is_general(doc: Mapping[str, Any], source: str) -> bool:
    """Which schema a document uses: ``[model] kind``, else general exactly when ``actions`` is given."""
    model = doc.get("model")
    model = model if isinstance(model, Mapping) else {}
    kind = model.get("kind")
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"{source}: [model]: key 'kind' must be one of {_list_keys(_KINDS)}, got {kind!r}")
    if kind is not None:
        return kind == "general"
    return "actions" in model or "actions" in doc


def _check_structure(doc: Any, source: str) -> None:
    """Top-level shape of the document: the tables exist and have the right kinds."""
    if not isinstance(doc, Mapping):
        raise TypeError(f"{source}: a model must be a table (dict), got {type(doc).__name__}")
    _unknown_keys(doc, _GENERAL_TOP_KEYS if _is_general(doc, source) else _TOP_KEYS, f"{source}: top level")
    if "model" not in doc:
        raise ValueError(f"{source}: missing table [model]")
    if not isinstance(doc["model"], Mapping):
        raise ValueError(f"{source}: 'model' must be a table [model], got {doc['model']!r}")
    if "agents" not in doc:
        raise ValueError(f"{source}: missing [[agents]] tables (one buyer and one seller)")
    agents = doc["agents"]
    if not isinstance(agents, list) or not all(isinstance(a, Mapping) for a in agents):
        raise ValueError(f"{source}: 'agents' must be an array of tables [[agents]], got {agents!r}")
    if "allocation" in doc and not isinstance(doc["allocation"], Mapping):
        raise ValueError(f"{source}: 'allocation' must be a table [allocation], got {doc['allocation']!r}")
    if "joint_transition" in doc and not isinstance(doc["joint_transition"], Mapping):
        raise ValueError(
            f"{source}: 'joint_transition' must be a table [joint_transition], got {_shown(doc['joint_transition'])}"
        )


def _agent_name(table: Mapping[str, Any]) -> Any:
    return table.get("name", table.get("role"))


def _agent_keys(doc: Mapping[str, Any]) -> tuple[str, ...]:
    return _GENERAL_AGENT_KEYS if _is_general(doc, "<model>") else _AGENT_KEYS


# ---------------------------------------------------------------------------------------------- overrides
def toml_value(text: str) -> Any:
    """``text`` read as one TOML value (``0.9``, ``[3, 2, 1]``, ``true``, ``"quoted"``), or the stripped text itself
    when it is not exactly one (a bare word such as ``infinite`` or ``maxmin``). Nothing is evaluated.

    The one reading of ``key=value`` values: model overrides (``--set``), factory parameters (``--param``),
    question options (``--option``, ``--where``) and grid lists (:func:`mechlp.workflows.sweep.parse_grid_spec`).

    Raises
    ------
    ValueError
        For a value nested too deeply to read.
    """
    text = text.strip()
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ValueError("the value is nested too deeply") from None
    return parsed["v"] if set(parsed) == {"v"} else text


def _parse_value(key: str, raw: Any, source: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        value = toml_value(raw)
    except ValueError as exc:
        raise ValueError(f"{source}: override {key!r}: {exc}") from None
    if key in _STRING_KEYS and not isinstance(value, str):
        return raw.strip()
    return value


def _override_items(overrides: Mapping[str, Any] | Sequence[str]) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return [(str(k).strip(), v) for k, v in overrides.items()]
    if isinstance(overrides, str | bytes) or not isinstance(overrides, Sequence):
        raise TypeError(
            f"overrides must be a mapping or a sequence of 'key=value' strings, got {type(overrides).__name__}"
        )
    items = []
    for j, item in enumerate(overrides):
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"override #{j + 1} must have the form 'key=value', got {item!r}")
        key, _, value = item.partition("=")
        items.append((key.strip(), value))
    return items


def _valid_override_keys(doc: Mapping[str, Any]) -> str:
    names = [str(_agent_name(a)) for a in doc.get("agents", []) if isinstance(a, Mapping)]
    agent_keys = "{" + ",".join(_agent_keys(doc)) + "}"
    per_agent = ", ".join(f"agents.{n}.{agent_keys}" for n in names) or f"agents.<name>.{agent_keys}"
    return f"discount, horizon, persistence, model.discount, model.horizon, model.name, {per_agent}"


def _set_agent_key(table: dict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    if key == "persistence":
        table.pop("transition", None)
    elif key == "transition":
        table.pop("persistence", None)


def apply_overrides(
    doc: Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[str], source: str = "<dict>"
) -> dict[str, Any]:
    """Return a copy of the model document ``doc`` with ``key=value`` overrides applied.

    Parameters
    ----------
    doc : mapping
        A parsed model file (see the module docstring for the schema).
    overrides : mapping of str to str, or sequence of "key=value" strings
        Keys as listed in the module docstring. String values are parsed as TOML values, falling back to
        a bare string; non-string values in a mapping are used as they are.
    source : str
        Names the model in error messages.

    Returns
    -------
    dict
        A deep copy of ``doc`` with the overrides applied in order (later ones win).

    Raises
    ------
    ValueError
        For an unknown key (the message lists the valid ones) or a malformed override.
    """
    _check_structure(doc, source)
    out: dict[str, Any] = copy.deepcopy(dict(doc))
    out["model"] = dict(out["model"])
    out["agents"] = [dict(a) for a in out["agents"]]
    for key, raw in _override_items(overrides):
        parts = key.split(".")
        if len(parts) == 1 and key in ("discount", "horizon"):
            out["model"][key] = _parse_value(key, raw, source)
        elif len(parts) == 2 and parts[0] == "model" and parts[1] in ("name", "discount", "horizon"):
            out["model"][parts[1]] = _parse_value(parts[1], raw, source)
        elif key == "persistence":
            value = _parse_value(key, raw, source)
            for table in out["agents"]:
                _set_agent_key(table, "persistence", value)
        elif key.startswith("agents.") and key.count(".") >= 2:
            name, _, akey = key[len("agents.") :].rpartition(".")
            targets = [t for t in out["agents"] if _agent_name(t) == name]
            keys = _agent_keys(out)
            if akey not in keys or not targets:
                what = f"key {akey!r}" if akey not in keys else f"agent {name!r}"
                raise ValueError(
                    f"{source}: unknown override key {key!r} (no {what}); valid keys are {_valid_override_keys(out)}"
                )
            value = _parse_value(akey, raw, source)
            for table in targets:
                _set_agent_key(table, akey, copy.deepcopy(value))
        else:
            raise ValueError(f"{source}: unknown override key {key!r}; valid keys are {_valid_override_keys(out)}")
    return out


# ---------------------------------------------------------------------------------------------- reading
def _read_model_table(table: Mapping[str, Any], source: str, default_name: str) -> tuple[str, float, Any]:
    where = f"{source}: [model]"
    _unknown_keys(table, _MODEL_KEYS, where)
    name = table.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: key 'name' must be a non-empty string, got {name!r}")
    if "discount" not in table:
        raise ValueError(f"{where}: missing key 'discount'")
    discount = table["discount"]
    if not _is_number(discount):
        raise ValueError(f"{where}: key 'discount' must be a number, got {_shown(discount)}")
    horizon = table.get("horizon", "infinite")
    if not (isinstance(horizon, str) or _is_number(horizon)):
        raise ValueError(f"{where}: key 'horizon' must be a positive integer or \"infinite\", got {_shown(horizon)}")
    return name, float(discount), horizon


def _read_agent(table: Mapping[str, Any], idx: int, source: str, joint: bool = False) -> dict[str, Any]:
    where = _agent_where(source, idx, table)
    _unknown_keys(table, _AGENT_KEYS, where)
    for key in ("role", "values", "prior"):
        if key not in table:
            raise ValueError(f"{where}: missing key {key!r}")
    role = table["role"]
    if role not in _ROLES:
        raise ValueError(f'{where}: key \'role\' must be "buyer" or "seller", got {role!r}')
    name = table.get("name", role)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: key 'name' must be a non-empty string, got {name!r}")
    types = table.get("types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise ValueError(f"{where}: key 'types' must be an array of strings (type labels), got {types!r}")
    values = _numeric_array(table["values"], where, "values", (1,))
    if not values:
        raise ValueError(f"{where}: key 'values' is empty; an agent needs at least one type")
    prior = _numeric_array(table["prior"], where, "prior", (1,))
    transition = _renewal_or(table, where, len(values), joint)
    if transition is None and "transition" in table:
        transition = _numeric_array(table["transition"], where, "transition", (2, 3))
    return {
        "name": name,
        "role": role,
        "types": types,
        "values": values,
        "prior": prior,
        "transition": transition,
    }


def _renewal_or(table: Mapping[str, Any], where: str, n_types: int, joint: bool = False) -> Any:
    """The renewal kernel when the agent table gives ``persistence``; ``None`` when it gives ``transition``.

    Exactly one of the two keys must be present (errors name the table); with ``joint`` (the model has a
    ``[joint_transition]``) neither is needed (``None``).
    """
    has_t, has_p = "transition" in table, "persistence" in table
    if has_t and has_p:
        raise ValueError(f"{where}: give exactly one of 'transition' and 'persistence', not both")
    if not has_t and not has_p and joint:
        return None
    if not has_t and not has_p:
        raise ValueError(f"{where}: missing key 'transition' (or 'persistence' for a renewal kernel)")
    if has_t:
        return None
    persistence = table["persistence"]
    if not _is_number(persistence):
        raise ValueError(f"{where}: key 'persistence' must be a number, got {_shown(persistence)}")
    try:
        return renewal_matrix(n_types, float(persistence))
    except ValueError as exc:
        raise ValueError(f"{where}: key 'persistence': {exc}") from exc


# ---------------------------------------------------------------------------------------------- general schema
def _label_list(value: Any, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise ValueError(f"{where}: key {key!r} must be an array of non-empty strings (labels), got {value!r}")
    if not value:
        raise ValueError(f"{where}: key {key!r} is empty")
    for j, lab in enumerate(value):
        if lab in value[:j]:
            raise ValueError(f"{where}: key {key!r}: label {lab!r} at index {j} appears twice")
    return list(value)


def _by_action(value: Any, where: str, key: str, actions: list[str]) -> dict[str, Any]:
    """A table keyed by action label that names every action exactly once."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: key {key!r} must be a table keyed by action label {actions}, got {value!r}")
    for lab in value:
        if lab not in actions:
            raise ValueError(f"{where}: key {key!r}: unknown action {lab!r}; actions are {_list_keys(actions)}")
    for lab in actions:
        if lab not in value:
            raise ValueError(f"{where}: key {key!r}: missing action {lab!r} (one entry per action is required)")
    return dict(value)


def _read_general_agent(
    table: Mapping[str, Any], idx: int, source: str, actions: list[str], joint: bool = False
) -> Agent:
    where = _agent_where(source, idx, table)
    _unknown_keys(table, _GENERAL_AGENT_KEYS, where)
    for key in ("types", "prior", "valuation"):
        if key not in table:
            raise ValueError(f"{where}: missing key {key!r}")
    name = table.get("name", f"agent{idx + 1}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: key 'name' must be a non-empty string, got {name!r}")
    role = table.get("role")
    if role is not None and not isinstance(role, str):
        raise ValueError(f"{where}: key 'role' must be a string, got {role!r}")
    types = _label_list(table["types"], where, "types")
    values = None if "values" not in table else _numeric_array(table["values"], where, "values", (1,))
    prior = _numeric_array(table["prior"], where, "prior", (1,))
    transition: Any = _renewal_or(table, where, len(types), joint)
    if transition is None and "transition" not in table:
        pass  # a [joint_transition] moves the types
    elif transition is None and isinstance(table["transition"], Mapping):
        per_action = _by_action(table["transition"], where, "transition", actions)
        transition = [
            _numeric_array(per_action[a], where, f"transition.{a}", (2,))
            for a in actions  # one matrix per action
        ]
    elif transition is None:
        transition = _numeric_array(table["transition"], where, "transition", (2,))
    per_action = _by_action(table["valuation"], where, "valuation", actions)
    columns = []
    for a in actions:
        col = _numeric_array(per_action[a], where, f"valuation.{a}", (1,))
        if len(col) != len(types):
            raise ValueError(
                f"{where}: key 'valuation.{a}' has {len(col)} entries; expected {len(types)}, one per type {types}"
            )
        columns.append(col)
    valuation = np.array(columns, dtype=float).T
    try:
        return Agent(name, types, prior, transition, valuation, values=values, role=role)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{where}: {exc}") from exc


def _general_allocation(table: Mapping[str, Any], source: str, actions: list[str], counts: list[int]) -> Any:
    where = f"{source}: [allocation]"
    _unknown_keys(table, _GENERAL_ALLOCATION_KEYS, where)
    given = [key for key in ("table", "periods") if key in table]
    if not given:
        return _rule(table.get("rule", "efficient"), where)
    if len(given) == 2:
        raise ValueError(f"{where}: give either 'table' (every period) or 'periods' (one table per period), not both")
    if "rule" in table:
        raise ValueError(f"{where}: give either rule = \"{table['rule']}\" or '{given[0]}', not both")
    if "table" in table:
        return _allocation_rows(table["table"], f"{where}: key 'table'", actions, counts)
    periods = table["periods"]
    if not isinstance(periods, list) or not periods:
        raise ValueError(
            f"{where}: key 'periods' must be a non-empty array of tables (one per period), got {periods!r}"
        )
    return np.stack(
        [
            _allocation_rows(rows, f"{where}: key 'periods', period {t + 1}", actions, counts)
            for t, rows in enumerate(periods)
        ]
    )


def _rule(rule: Any, where: str) -> str:
    if rule not in _RULES:
        raise ValueError(
            f"{where}: key 'rule' must be \"efficient\" (or give 'table' or 'periods'; the other rules are "
            f"{', '.join(repr(r) for r in _RULES[1:])}), got {rule!r}"
        )
    return rule


def _allocation_rows(rows: Any, where: str, actions: list[str], counts: list[int]) -> np.ndarray:
    """One allocation table: an entry per type profile, an action label or probabilities over the actions."""
    n_prof = int(np.prod(counts))
    if not isinstance(rows, list) or len(rows) != n_prof:
        got = len(rows) if isinstance(rows, list) else repr(rows)
        raise ValueError(
            f"{where} must be an array with one entry per type profile ({n_prof} = "
            f"{' x '.join(str(c) for c in counts)}), got {got}"
        )
    out = np.zeros((n_prof, len(actions)))
    for r, entry in enumerate(rows):
        if isinstance(entry, str):
            if entry not in actions:
                raise ValueError(f"{where}: entry {r} names unknown action {entry!r}; actions are {actions}")
            out[r, actions.index(entry)] = 1.0
        else:
            probs = _numeric_array(entry, where, f"entry {r}", (1,))
            if len(probs) != len(actions):
                raise ValueError(
                    f"{where}: entry {r} has {len(probs)} probabilities; expected {len(actions)}, one per action "
                    f"{actions}"
                )
            out[r] = probs
    return out


def _general_model(doc: Mapping[str, Any], source: str, default_name: str) -> Environment:
    where = f"{source}: [model]"
    table = doc["model"]
    _unknown_keys(table, _GENERAL_MODEL_KEYS, where)
    if "actions" in table and "actions" in doc:
        raise ValueError(f"{source}: 'actions' is given both at the top level and in [model]; keep one")
    if "actions" not in table and "actions" not in doc:
        raise ValueError(f"{where}: missing key 'actions' (the general schema needs the action labels)")
    actions = _label_list(table.get("actions", doc.get("actions")), where, "actions")
    name, discount, horizon = _read_model_table(
        {k: v for k, v in table.items() if k in _MODEL_KEYS}, source, default_name
    )
    joint = "joint_transition" in doc
    agents = [_read_general_agent(t, j, source, actions, joint) for j, t in enumerate(doc["agents"])]
    if not agents:
        raise ValueError(f"{source}: [[agents]]: no agent tables; a model needs at least one agent")
    alloc = _general_allocation(doc.get("allocation", {}), source, actions, [a.n_types for a in agents])
    profiles, matrix = _read_joint(doc, source, actions)

    def build() -> Environment:
        env = Environment(
            agents, actions, discount, horizon, alloc, name=name, meta={"kind": "general"}, joint_transition=matrix
        )
        _check_profile_order(env, profiles)
        return env

    return _located(source, build)


def _read_joint(doc: Mapping[str, Any], source: str, actions: Sequence[str]) -> tuple[list[str] | None, Any]:
    """``(profiles, matrix)`` of the ``[joint_transition]`` table, or ``(None, None)`` without one."""
    if "joint_transition" not in doc:
        return None, None
    table = doc["joint_transition"]
    where = f"{source}: [joint_transition]"
    _unknown_keys(table, _JOINT_KEYS, where)
    for key in _JOINT_KEYS:
        if key not in table:
            raise ValueError(f"{where}: missing key {key!r}")
    profiles = _label_list(table["profiles"], where, "profiles")
    if isinstance(table["matrix"], Mapping):
        per_action = _by_action(table["matrix"], where, "matrix", list(actions))
        return profiles, [_numeric_array(per_action[a], where, f"matrix.{a}", (2,)) for a in actions]
    return profiles, _numeric_array(table["matrix"], where, "matrix", (2,))


def profile_label(env: Environment, k: int) -> str:
    """Profile ``k`` as model files write it: the agents' type labels joined by ``", "`` (C order)."""
    return ", ".join(env.profile_labels(k).values())


def _check_profile_order(env: Environment, profiles: list[str] | None) -> None:
    """The ``profiles`` key of ``[joint_transition]`` must list the profiles in C order over agents."""
    if profiles is None:
        return
    want = [profile_label(env, k) for k in range(env.n_profiles)]
    if len(profiles) != len(want):
        raise ValueError(
            f"[joint_transition]: key 'profiles' has {len(profiles)} entries; expected {len(want)}, one per type "
            "profile"
        )
    for k, (got, exp) in enumerate(zip(profiles, want, strict=True)):
        if got != exp:
            raise ValueError(
                f"[joint_transition]: key 'profiles': entry {k} is {got!r}; expected {exp!r} (C order over "
                "agents: the first agent's type varies slowest; labels joined by ', ')"
            )


def _located(source: str, build: Callable[[], Environment], rule: str = "efficient") -> Environment:
    """``build()`` (with the allocation ``rule`` when it is not the default), with ``"<source>: "`` prepended to
    its ``ValueError`` / ``TypeError`` (same type), and ``env.meta["source"]`` set."""
    try:
        env = build()
        if rule != "efficient":
            env = env.with_allocation(rule)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    except TypeError as exc:
        raise TypeError(f"{source}: {exc}") from exc
    env.meta["source"] = source
    return env


def model_from_dict(
    doc: Mapping[str, Any], source: str = "<dict>", *, default_name: str = "bilateral_trade"
) -> Environment:
    """Build a bilateral-trade :class:`~mechlp.model.environment.Environment` from a parsed model document.

    Parameters
    ----------
    doc : mapping
        The parsed TOML document (schema in the module docstring).
    source : str
        Names the model (usually the file path) at the start of every error message.
    default_name : str
        Environment name when ``[model]`` has no ``name``.

    Returns
    -------
    Environment
        Built by :func:`mechlp.model.environment.bilateral_trade`; ``env.meta["source"]`` records ``source``.

    Raises
    ------
    ValueError, TypeError
        Naming the source, table and key; validation errors of :mod:`mechlp.model.environment` keep their
        type and text with ``"<source>: "`` prepended.
    """
    _check_structure(doc, source)
    if _is_general(doc, source):
        return _general_model(doc, source, default_name)
    model = {k: v for k, v in doc["model"].items() if k != "kind"}  # kind = "bilateral_trade" is the default
    name, discount, horizon = _read_model_table(model, source, default_name)
    alloc = doc.get("allocation", {})
    _unknown_keys(alloc, _ALLOCATION_KEYS, f"{source}: [allocation]")
    rule = _rule(alloc.get("rule", "efficient"), f"{source}: [allocation]")
    joint = "joint_transition" in doc
    agents = [_read_agent(t, j, source, joint) for j, t in enumerate(doc["agents"])]
    if len(agents) != 2:
        raise ValueError(
            f"{source}: [[agents]]: found {len(agents)} agent table(s); model files describe bilateral trade "
            "(exactly two agents: one buyer and one seller), the only model this schema supports for now; "
            'for other models use the general schema ([model] kind = "general" with actions = [...])'
        )
    roles = [a["role"] for a in agents]
    if roles[0] == roles[1]:
        raise ValueError(
            f'{source}: [[agents]]: both agents have role {roles[0]!r}; bilateral trade needs one "buyer" '
            'and one "seller"'
        )
    buyer = agents[roles.index("buyer")]
    seller = agents[roles.index("seller")]
    profiles, matrix = _read_joint(doc, source, ("no_trade", "trade"))

    def build() -> Environment:
        env = bilateral_trade(
            buyer["values"],
            seller["values"],
            buyer["prior"],
            seller["prior"],
            buyer["transition"],
            seller["transition"],
            discount,
            horizon,
            buyer_types=buyer["types"],
            seller_types=seller["types"],
            buyer_name=buyer["name"],
            seller_name=seller["name"],
            name=name,
            joint_transition=matrix,
        )
        _check_profile_order(env, profiles)
        return env

    return _located(source, build, rule)


def load_model(path: str | Path, overrides: Mapping[str, Any] | Sequence[str] = ()) -> Environment:
    """Read a TOML model file, apply overrides and build the environment.

    Parameters
    ----------
    path : str or Path
        The model file (schema in the module docstring).
    overrides : mapping of str to str, or sequence of "key=value" strings
        Applied before building, see :func:`apply_overrides`.

    Returns
    -------
    Environment

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For a TOML syntax error (with :mod:`tomllib`'s message) and for schema errors, naming the file,
        the table and the key.
    """
    p = Path(path)
    source = str(path)
    text = read_text(p, "model file", MAX_MODEL_BYTES)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: TOML syntax error: {exc}") from exc
    except RecursionError:
        raise ValueError(f"{source}: TOML nested too deeply") from None
    if overrides:
        doc = apply_overrides(doc, overrides, source)
    return model_from_dict(doc, source, default_name=p.stem)


# ---------------------------------------------------------------------------------------------- writing
def _toml_string(s: str) -> str:
    out = ['"']
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(k: str) -> str:
    bare = k and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in k)
    return k if bare else _toml_string(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest repr that round-trips; always valid TOML (e.g. 0.95, 1e-05, 1.0)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):  # inline table
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} value {v!r} to a model file")


def dump_model_toml(env: Environment) -> str:
    """Write an environment as a TOML model file (either schema of the module docstring, see
    :func:`model_to_dict`; tables keyed by action label are written inline).

    ``tomllib.loads(dump_model_toml(env)) == model_to_dict(env)``; floats are written with their shortest
    round-tripping representation, so :func:`load_model` rebuilds identical arrays.
    """
    doc = model_to_dict(env)
    lines = ["[model]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc["model"].items()]
    for ag in doc["agents"]:
        lines += ["", "[[agents]]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in ag.items()]
    lines += ["", "[allocation]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc["allocation"].items()]
    if "joint_transition" in doc:
        lines += ["", "[joint_transition]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc["joint_transition"].items()]
    return "\n".join(lines) + "\n"

r"""Parameter sweeps: one question answered at every point of a grid, in parallel, streamed to CSV.

:func:`sweep` evaluates a question of :mod:`mechlp.solve.questions` (or a construction of :mod:`mechlp.constructions`)
at every point of the Cartesian product of a grid and returns one row per point as a :class:`pandas.DataFrame`.

Models
------
``model`` is one of

* a TOML model file (:mod:`mechlp.catalog.io`): each point's values are applied as overrides, so grid keys are override
  keys: ``persistence``, ``discount``, ``horizon``, ``agents.buyer.prior``, ``agents.seller.persistence``, ...;
* the name of a built-in factory of :data:`mechlp.catalog.examples.CLASSIC_MODELS` (``"lamba_usstp"``,
  ``"yoon_binary"``, ...), called with the point's values as keyword arguments (``alpha``, ``delta``, ...);
* a callable ``**params -> Environment`` (e.g. :func:`mechlp.catalog.examples.lamba_usstp`). With the process
  executor it must be picklable by reference: a module-level function or a :func:`functools.partial` of one
  (not a lambda, nor a function defined in a notebook; use ``executor="serial"`` or Dask for those).

Questions and their columns
---------------------------
Every row holds the grid values, ``status`` (``"ok"``: answered and verified; ``"failed"``: a solver or the
independent verification failed, reason in ``error``; ``"error"``: an exception, its text in ``error``), the
answer columns below, what the sweep is (``question``, ``budget``, ``options``, ``model``, ``model_sha256``: see
"The output file"), ``seconds`` (wall time of the point), ``cpu_seconds`` (CPU time of the process spent on
it), ``pid`` and ``finished`` (Unix time).

``"minmax"`` (:func:`mechlp.solve.questions.minmax`)
    ``pi_root`` (:math:`\Pi^*` at the start), ``pi_min``, ``argmin`` (where the minimum is), ``n_negative``,
    ``ex_ante_ok`` / ``interim_ok`` (:math:`\Pi^*(\text{root}) \ge 0`, every :math:`\Pi^* \ge 0`: Lamba 2022, Theorem 1
    and Corollary 1; ``False`` only when ``tight`` is ``True``, empty when a negative :math:`\Pi^*` does not decide),
    ``tight`` (:math:`\Pi^*` certified to maximise every :math:`\Pi(h)`: ``True``, refuted: ``False``, not certified:
    empty; ``diagnosis["tightness"]`` of :func:`mechlp.solve.questions.minmax`), ``verified``; on the Markov space one
    column ``pi(<labels>)`` per last-period report profile, e.g. ``pi(v_H,c_L)``; for bilateral trade the fees on top of
    the static VCG (Lamba 2022, section 6.1): ``fee_<agent>_first``, ``fee_<agent>(<other's label>)`` and
    ``fee_<agent>_pv``, the value at the start of the agent's whole fee stream (what an upfront payment replacing the
    fees would cost).
``"feasible"`` (:func:`mechlp.solve.questions.feasibility`, one min-max solve shared by the budget notions)
    ``feasible_<budget>`` and ``certified_<budget>`` for every notion in ``budget`` (default
    ``("ex_ante", "interim")``), plus ``pi_root``, ``pi_min``, ``argmin``. ``certified`` is the independent
    verification of the mechanism (feasible) or of the Farkas certificate (infeasible).
``"share"`` (:func:`mechlp.workflows.sharing.share_surplus`, ``budget`` ``"interim"`` or ``"ex_post"``)
    ``share_status`` (``"optimal"``, ``"infeasible"``, ``"negative_surplus"``, ...), ``beta_<agent>`` and
    ``designer_share`` at the root, ``max_abs_transfer``, ``objective``, ``verified``, ``pi_root``, ``pi_min``.
``"fees"`` (:func:`mechlp.constructions.fees.lump_sum_fees`, Yoon's lump-sum fees on the dynamic pivot;
``budget`` ``"ex_ante"`` or ``"interim"``)
    ``feasible_lump_sum``, ``fees_status``, ``fee_<agent>`` (ex ante) or ``fee_<agent>_max`` (interim),
    ``deficit``, ``slack``, ``surplus_root``, ``verified`` (Bayesian and ex post IC, interim IR and, when
    feasible, the budget; an infeasible point's fee mechanism misses the budget by construction).

A callable ``question(env, **options) -> mapping`` adds its own columns (``status`` is then ``"ok"``).
``options`` are passed to the question's function (``{"certify": False}``, ``{"rule": "maxmin"}``,
``{"horizon": 3}``, ...).

Executors and interrupts
------------------------
``executor="processes"`` (default) runs chunks of points on a :class:`concurrent.futures.ProcessPoolExecutor`
with ``workers`` processes (default ``os.cpu_count()``). They are started with ``forkserver`` where available,
so workers never inherit solver threads; a script must therefore keep its top-level code under
``if __name__ == "__main__":``, as with any non-forking process pool. Workers ignore Ctrl-C (the parent
handles it) and end with the parent: each watches the parent's sentinel
(:func:`multiprocessing.parent_process`) and exits when the parent is gone, even after ``kill -9``.
``"serial"`` runs the points in this process; a ``distributed.Client`` or an address ``"dask://HOST:PORT"``
submits the same chunks to a Dask cluster. Ctrl-C stops the workers (the pool is terminated), keeps every row
already written and raises :class:`SweepInterrupted` (a :class:`KeyboardInterrupt`) saying how many.

The output file (``out``)
-------------------------
A sweep's CSV file holds one sweep: one grid (its keys), one question, one budget, one set of options and one
model. Each row is keyed by the whole point: besides the grid values it carries ``question``, ``budget`` (the
written spellings), ``options`` (canonical JSON: notions in their written spelling, options equal to the
question function's default left out), ``model`` and ``model_sha256``
(:func:`mechlp.audit.certfile.model_hash` of the model built at the point). ``model`` names the base model:

* a TOML file: ``toml:`` and the SHA-256 of the parsed document (canonical JSON), so a moved or re-formatted
  file is the same model and any edit of its content is another; the point's model is that document with the
  point's overrides;
* a built-in name or a callable: ``callable:`` and the factory's qualified name (``module.qualname``; a
  :func:`functools.partial` adds its arguments' ``repr``), so ``"lamba_usstp"`` and
  :func:`mechlp.catalog.examples.lamba_usstp` are the same model; its content is pinned by ``model_sha256``.

Running again with the same ``out``:

* a file written for another sweep is refused before anything is written (:class:`SweepMismatchError`, a
  :class:`ValueError` naming the difference: grid keys, question, budget, options or model). The grid's
  values may change: points already in the file are skipped (matched by their grid values), new ones are
  computed, and rows whose grid values are not in the new grid are kept as they are (the returned frame
  holds the points of the new grid only). A row is reused only when the model built now at its point has its
  ``model_sha256`` (one model build per reused point);
* rows are only ever appended, one ``write`` (then flush) per finished chunk, so a kill loses no finished
  row; a partial last line left by a kill is cut off (the file is truncated to its last complete line) and
  that point computed again; a line break inside a text cell is written as a space, so each row is one line;
* rows with status ``"error"`` are computed again unless ``retry_errors=False`` (their old rows are removed
  first); when a new answer column appears (the first answered point after errors) the header is widened.
  These two cases replace the file atomically (a temporary file, checked cell by cell against the old one,
  then renamed); every other row's cells are kept.

Grid values that are not numbers or strings (e.g. a prior ``[0.4, 0.6]``) are stored in the CSV as JSON text.
Two sweeps must not write the same file at the same time (nothing locks it).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import inspect
import io
import itertools
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import stat
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechlp.audit.certfile import model_hash
from mechlp.catalog.examples import CLASSIC_MODELS
from mechlp.catalog.io import apply_overrides, model_from_dict, toml_value
from mechlp.constructions.fees import MODES as FEE_MODES
from mechlp.constructions.fees import lump_sum_fees
from mechlp.model import tolerances
from mechlp.model.environment import Environment
from mechlp.model.question import FAMILIES, parse_notion
from mechlp.solve import questions as design
from mechlp.workflows.sharing import BUDGETS as SHARE_BUDGETS
from mechlp.workflows.sharing import NegativeSurplusError, share_surplus

__all__ = [
    "SweepMismatchError",
    "SweepInterrupted",
    "QUESTIONS",
    "EXECUTORS",
    "sweep",
    "evaluate_point",
    "environment_builder",
    "grid_points",
    "parse_grid_spec",
    "load_sweep",
    "grid_keys",
    "ANSWER_META",
]

QUESTIONS = ("minmax", "feasible", "share", "fees")
EXECUTORS = ("processes", "serial")
DEFAULT_BUDGETS = {"minmax": None, "feasible": ("ex_ante", "interim"), "share": "interim", "fees": "ex_ante"}
BASE_COLUMNS = ("status", "error")
#: What a sweep is, written in every row (module docstring, "The output file").
IDENTITY = ("question", "budget", "options", "model")
ANSWER_META = (*IDENTITY, "model_sha256", "seconds", "cpu_seconds", "pid", "finished")
_TEXT_COLUMNS = ("error", "budget", "options", "model", "model_sha256")  # read back as text, never as numbers
_FEASIBILITY_ONLY = ("certify", "exact")
_SIGNIFICANT = 12  # digits kept by parse_grid_spec (np.linspace gives 0.7000000000000001)


class SweepMismatchError(ValueError):
    """An output file written for another sweep (grid keys, question, budget, options or model), or damaged."""


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C after its workers were stopped; every row already written is kept.

    Attributes
    ----------
    points : int
        Points of the grid.
    done : int
        Points of the grid with a row (in ``out``, or computed in this run when there is no ``out``).
    computed : int
        Rows computed in this run before the interrupt.
    out : str or None
        The output file.
    """

    def __init__(self, points: int, done: int, computed: int, out: str | None):
        self.points, self.done, self.computed, self.out = points, done, computed, out
        if out is None:
            text = f"{computed} of {points} points computed; none kept (no output file)"
        else:
            text = (
                f"{out} keeps the rows of {done} of {points} points ({computed} computed in this run); "
                "run the same sweep again to finish"
            )
        super().__init__(text)


# ---------------------------------------------------------------------------------------------- cells
def _cell(value: Any) -> str:
    """Text of one CSV cell (floats round-trip exactly; lists and dicts as JSON; a line break becomes a space,
    so that every row is one line of the file)."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        return "" if math.isnan(v) else repr(v)
    if isinstance(value, str):
        return value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value)


def _canon(text: str) -> str:
    """Canonical form of a cell's text, used as a resume key (``"0.5"``, ``"5e-01"`` and ``0.5`` match)."""
    text = text.strip()
    try:
        v = float(text)
    except ValueError:
        return text
    return repr(v) if math.isfinite(v) else text


def _key(params: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(_canon(_cell(params[k])) for k in keys)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (for DataFrame construction and JSON)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------- grids
def _check_grid(grid: Mapping[str, Any]) -> dict[str, list]:
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping of parameter name to a sequence of values, got {type(grid).__name__}")
    if not grid:
        raise ValueError("grid is empty: give at least one parameter and its values")
    out: dict[str, list] = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"grid keys must be non-empty strings, got {key!r}")
        if key in BASE_COLUMNS or key in ANSWER_META:
            raise ValueError(f"grid key {key!r} clashes with a result column; reserved: {BASE_COLUMNS + ANSWER_META}")
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise ValueError(f"grid[{key!r}] must be a sequence of values, got {values!r}")
        vals = [_plain(v) for v in (values.tolist() if isinstance(values, np.ndarray) else list(values))]
        if not vals:
            raise ValueError(f"grid[{key!r}] has no values")
        keys = [_canon(_cell(v)) for v in vals]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"grid[{key!r}] repeats the value {dup}")
        out[key] = vals
    return out


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The points of ``grid`` (Cartesian product, the first key varying slowest) as dicts."""
    g = _check_grid(grid)
    keys = list(g)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*g.values())]


def parse_grid_spec(spec: str) -> tuple[str, list]:
    """Parse one command-line grid spec.

    ``KEY=START:STOP:NUM`` gives ``NUM`` evenly spaced values from ``START`` to ``STOP`` inclusive (rounded to
    12 significant digits, so ``0.5:0.9:5`` is ``0.5, 0.6, 0.7, 0.8, 0.9``); ``KEY=V1,V2,...`` lists the
    values (parsed as TOML values: numbers, ``"text"``, ``[0.4, 0.6]`` for an array; a list of arrays is
    written ``KEY=[0.4,0.6];[0.5,0.5]`` with ``;`` between the values).

    Returns
    -------
    (str, list)
        The key and its values.

    Raises
    ------
    ValueError
        Naming the spec when it does not parse.
    """
    key, sep, rhs = spec.partition("=")
    key = key.strip()
    form = "KEY=START:STOP:NUM or KEY=V1,V2,..."
    if not sep or not key or not rhs.strip():
        raise ValueError(f"bad grid spec {spec!r}: expected {form}")
    rhs = rhs.strip()
    if ":" in rhs and not rhs.startswith(("[", '"')):
        parts = rhs.split(":")
        if len(parts) != 3:
            raise ValueError(f"bad grid spec {spec!r}: a range is START:STOP:NUM (three fields), expected {form}")
        try:
            start, stop = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"bad grid spec {spec!r}: START and STOP must be numbers") from None
        try:
            num = int(parts[2])
        except ValueError:
            raise ValueError(f"bad grid spec {spec!r}: NUM must be a positive integer, got {parts[2]!r}") from None
        if num < 1:
            raise ValueError(f"bad grid spec {spec!r}: NUM must be a positive integer, got {num}")
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise ValueError(f"bad grid spec {spec!r}: START and STOP must be finite")
        vals = [float(f"{v:.{_SIGNIFICANT}g}") for v in np.linspace(start, stop, num)]
        return key, vals
    items = rhs.split(";") if rhs.startswith("[") else rhs.split(",")
    vals = []
    for item in items:
        text = item.strip()
        if not text:
            raise ValueError(f"bad grid spec {spec!r}: empty value in the list")
        vals.append(toml_value(text))  # a bare string stays a string, e.g. horizon=infinite
    return key, vals


# ---------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class _Task:
    """Everything a worker needs to evaluate a point (picklable)."""

    source: str
    doc: dict | None = None  # parsed TOML model
    factory: Callable[..., Environment] | None = None
    question: str | Callable[..., Mapping[str, Any]] = "minmax"
    budget: Any = None
    options: dict = field(default_factory=dict)
    identity: dict = field(default_factory=dict)  # IDENTITY column -> cell text (written in every row)

    @property
    def question_name(self) -> str:
        if isinstance(self.question, str):
            return self.question
        return getattr(self.question, "__name__", type(self.question).__name__)

    def environment(self, params: Mapping[str, Any]) -> Environment:
        if self.doc is not None:
            return model_from_dict(apply_overrides(self.doc, dict(params), self.source), self.source)
        assert self.factory is not None
        return self.factory(**params)

    def model_sha256(self, params: Mapping[str, Any]) -> str:
        """:func:`mechlp.audit.certfile.model_hash` of the model at a point, or why it cannot be built."""
        try:
            env = self.environment(params)
        except Exception as exc:  # noqa: BLE001 - reported as a difference, never raised
            return f"(the model cannot be built: {type(exc).__name__}: {exc})"
        return _env_sha256(env)


def _env_sha256(env: Environment) -> str:
    """:func:`mechlp.audit.certfile.model_hash` of ``env``; empty when it has no model document."""
    try:
        return model_hash(env)
    except Exception:  # noqa: BLE001 - an environment model_to_dict cannot write: no per-point identity
        return ""


def _callable_name(fn: Any) -> str:
    """``module.qualname`` of a callable; a :func:`functools.partial` adds the ``repr`` of its arguments."""
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in sorted(fn.keywords.items())]
        return f"{_callable_name(fn.func)}({', '.join(args)})"
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str)):
        module, qualname = type(fn).__module__, type(fn).__qualname__
    return f"{module}.{qualname}"


def _json_data(value: Any) -> Any:
    """Plain JSON data of an option value (numpy arrays and tuples as lists; other objects by ``repr``)."""
    if isinstance(value, Mapping):
        return {str(k): _json_data(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _json_data(value.tolist())
    if isinstance(value, list | tuple):
        return [_json_data(v) for v in value]
    value = _plain(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _canonical_options(question: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that define a sweep: notions in their written spelling (``"ex-post"`` -> ``"ex_post"``),
    values equal to the question function's default left out (``ic="bayesian"`` is the same sweep as none)."""
    if isinstance(question, str):
        fn: Any = {
            "minmax": design.minmax,
            "feasible": design.feasibility,
            "share": share_surplus,
            "fees": lump_sum_fees,
        }[question]
    else:
        fn = question
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    out: dict[str, Any] = {}
    for key in sorted(options):
        value = _json_data(options[key])
        if key in FAMILIES and isinstance(value, str):
            try:
                value = parse_notion(key, value)
            except ValueError:
                pass  # the question reports it at every point
        par = params.get(key)
        if par is not None and par.default is not par.empty and _same_value(value, _json_data(par.default)):
            continue
        out[key] = value
    return out


def _document_sha256(doc: Mapping[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _with_identity(task: _Task) -> _Task:
    """``task`` with its IDENTITY cells (module docstring, "The output file")."""
    if task.doc is not None:
        model = f"toml:{_document_sha256(task.doc)}"
    else:
        model = f"callable:{_callable_name(task.factory)}"
    budget = " ".join(task.budget) if isinstance(task.budget, tuple | list) else task.budget  # notions: no spaces
    identity = {
        "question": task.question_name,
        "budget": _cell(budget),
        "options": json.dumps(_canonical_options(task.question, task.options), sort_keys=True),
        "model": model,
    }
    return dataclasses.replace(task, identity=identity)


def _read_toml(path: Path) -> dict:
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: TOML syntax error: {exc}") from exc


def _make_task(model: Any, grid: dict[str, list], question: Any, budget: Any, options: Mapping | None) -> _Task:
    opts = dict(options or {})
    first = {k: v[0] for k, v in grid.items()}
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if path.is_file():
            doc = _read_toml(path)
            apply_overrides(doc, first, str(model))  # unknown keys fail here, before any work
            return _with_identity(_Task(str(model), doc=doc, question=question, budget=budget, options=opts))
        if isinstance(model, str) and model in CLASSIC_MODELS:
            return _make_task(CLASSIC_MODELS[model], grid, question, budget, options)
        if path.exists():
            raise ValueError(f"{model}: not a file")
        raise FileNotFoundError(
            f"model {str(model)!r} is neither a model file nor a built-in model; built-in models: "
            f"{sorted(CLASSIC_MODELS)}"
        )
    if not callable(model):
        raise TypeError(f"model must be a TOML path, a built-in model name or a callable, got {type(model).__name__}")
    name = getattr(model, "__name__", repr(model))
    try:
        sig = inspect.signature(model)
    except (TypeError, ValueError):  # builtins without a signature: trust the caller
        sig = None
    if sig is not None:
        try:
            sig.bind_partial(**first)
        except TypeError:
            params = [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            bad = [k for k in first if k not in params]
            raise ValueError(
                f"model {name}() does not take the grid key(s) {bad}; its parameters are {params}"
            ) from None
    return _with_identity(_Task(f"{name}()", factory=model, question=question, budget=budget, options=opts))


def environment_builder(model: Any, example: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Environment]:
    """``params -> Environment`` for ``model`` as :func:`sweep` reads it (a TOML path with override keys, a
    built-in model name, or a callable taking the keys as keyword arguments), checked once on the keys of
    ``example``; the builder is picklable, so it can be sent to worker processes."""
    return _make_task(model, {k: [v] for k, v in example.items()}, "minmax", None, None).environment


def _check_budget(question: Any, budget: Any) -> Any:
    """Normalise ``budget`` for ``question`` to written spellings (``"ex-ante"`` is read as ``"ex_ante"``)."""

    def norm(b: Any, allowed: tuple[str, ...] | None = None) -> str:
        if not isinstance(b, str):
            raise ValueError(f"budget must be a string or a sequence of strings, got {b!r}")
        try:
            return parse_notion("budget", b.strip(), allowed=allowed)
        except ValueError as exc:
            raise ValueError(f"budget {b!r} is not one of the notions of question {question!r}: {exc}") from None

    if not isinstance(question, str):
        return budget
    if budget is None:
        return DEFAULT_BUDGETS[question]
    if question == "minmax":
        raise ValueError(
            "budget does not apply to question 'minmax' (its rows report ex_ante_ok and interim_ok from Pi*); "
            "use question='feasible' to solve with budget rows"
        )
    if question == "feasible":
        items = [budget] if isinstance(budget, str) else list(budget)
        if not items:
            raise ValueError("budget: give at least one budget notion")
        return tuple(norm(b) for b in items)
    return norm(budget, tuple(SHARE_BUDGETS if question == "share" else FEE_MODES))


# ---------------------------------------------------------------------------------------------- answers
def _markov_labels(env: Environment, h: int) -> str:
    return ",".join(env.profile_labels(h - 1).values())


def _surplus_columns(res: Any, pi: np.ndarray) -> dict[str, Any]:
    sp = res.space
    h_min = int(np.argmin(pi))
    out: dict[str, Any] = {
        "pi_root": float(pi[0]),
        "pi_min": float(pi[h_min]),
        "argmin": sp.describe_history(h_min),
        "n_negative": int(np.count_nonzero(pi < -tolerances.SURPLUS)),
    }
    return out


def _fee_pv(env: Environment, name: str, fee: Mapping[str, Any]) -> float | None:
    """Value at the start of an agent's fee stream: ``z1 + delta * prior_o @ (I - delta G)^{-1} z``."""
    other = env.agents[env.agent_index(fee["other"])]
    if other.action_dependent or env.correlated:  # Lamba's fee stream follows the other's own kernel
        return None
    z = np.array([fee["by_state"][lab] for lab in other.types])
    g = np.asarray(other.transition, dtype=float)
    phi = np.linalg.solve(np.eye(other.n_types) - env.discount * g, z)
    return float(fee["first"] + env.discount * other.prior @ phi)


def _answer_minmax(env: Environment, budget: Any, options: dict) -> tuple[str, str | None, dict]:
    res = design.minmax(env, **options)
    cols: dict[str, Any] = {}
    if res.surplus is not None:
        pi = res.surplus
        cols.update(_surplus_columns(res, pi))
        # Pi* >= 0 is witnessed by the verified min-max mechanism itself; Pi* < 0 proves impossibility only when
        # Pi* is certified tight at every history (Lamba 2022, Lemma 6, or one LP per history): else None
        tight = (res.diagnosis or {}).get("tightness", {}).get("tight")
        cols["tight"] = tight
        ante, interim = bool(pi[0] >= -tolerances.SURPLUS), bool(pi.min() >= -tolerances.SURPLUS)
        cols["ex_ante_ok"] = ante if ante or tight is True else None
        cols["interim_ok"] = interim if interim or tight is True else None
        cols["verified"] = bool(res.certificate is not None and res.certificate.ok)
        if res.space.kind == "markov":
            for h in range(1, res.space.n_hist):
                cols[f"pi({_markov_labels(env, h)})"] = float(pi[h])
    if res.fees:
        for name, f in res.fees.items():
            cols[f"fee_{name}_first"] = f["first"]
            for lab, v in f["by_state"].items():
                cols[f"fee_{name}({lab})"] = v
            cols[f"fee_{name}_pv"] = _fee_pv(env, name, f)
    if res.status == "optimal":
        return "ok", None, cols
    return "failed", f"{res.status}: {res.message}", cols


def _answer_feasible(env: Environment, budget: tuple[str, ...], options: dict) -> tuple[str, str | None, dict]:
    mm_opts = {k: v for k, v in options.items() if k not in _FEASIBILITY_ONLY}
    mm = design.minmax(env, **mm_opts)
    cols: dict[str, Any] = {}
    failures = []
    if mm.surplus is not None:
        cols.update(_surplus_columns(mm, mm.surplus))
    for b in budget:
        res = design.feasibility(env, b, space=mm.space, minmax_result=mm, **options)
        cols[f"feasible_{b}"] = res.status == "optimal" if res.status in ("optimal", "infeasible") else None
        cert = res.certificate
        cols[f"certified_{b}"] = bool(cert is not None and cert.ok)
        if res.status not in ("optimal", "infeasible"):
            failures.append(f"{b}: {res.status}: {res.message}")
        elif "WARNING" in res.message:
            failures.append(f"{b}: {res.message}")
    if mm.status != "optimal":
        failures.insert(0, f"minmax: {mm.status}: {mm.message}")
    return ("failed", "; ".join(failures), cols) if failures else ("ok", None, cols)


def _answer_share(env: Environment, budget: str, options: dict) -> tuple[str, str | None, dict]:
    opts = dict(options)
    rule = opts.pop("rule", "equal")
    try:
        res = share_surplus(env, rule, budget=budget, **opts)
    except NegativeSurplusError as exc:
        return "ok", None, {"share_status": "negative_surplus", "pi_min": float(exc.value), "argmin": exc.where}
    names = [ag.name for ag in env.agents]
    cols: dict[str, Any] = {"share_status": res.status}
    if np.isfinite(res.beta).all():
        for i, nm in enumerate(names):
            cols[f"beta_{nm}"] = float(res.beta[i, 0])
        cols["designer_share"] = float(1.0 - res.beta[:, 0].sum())
    cols["max_abs_transfer"] = res.max_abs_transfer
    cols["objective"] = res.objective
    cols["verified"] = bool(res.certificate is not None and res.certificate.ok)
    cols["pi_root"] = float(res.pi_star[0])
    cols["pi_min"] = float(res.pi_star.min())
    if res.status in ("optimal", "infeasible"):
        return "ok", None, cols
    return "failed", f"{res.status}: {res.message}", cols


def _answer_fees(env: Environment, budget: str, options: dict) -> tuple[str, str | None, dict]:
    res = lump_sum_fees(env, budget, **options)
    cols: dict[str, Any] = {"feasible_lump_sum": res.status == "feasible", "fees_status": res.status}
    for i, ag in enumerate(env.agents):
        if res.mode == "ex_ante":
            cols[f"fee_{ag.name}"] = float(res.fees[i])
        else:
            cols[f"fee_{ag.name}_max"] = float(np.max(res.fees[i]))
    cols["deficit"] = float(res.condition.deficit)
    cols["slack"] = float(res.condition.slack if res.mode == "ex_ante" else res.condition.interim_slack.min())
    cols["surplus_root"] = float(res.surplus[0])
    if res.status == "infeasible":  # the budget row fails by construction: verify incentives and participation
        tol = tolerances.FEASIBILITY
        checks = (res.verification, res.verification_ex_post)
        cols["verified"] = all(v.max_violation[f] <= tol for v in checks for f in ("ic", "ir"))
    else:
        cols["verified"] = bool(res.verification.ok and res.verification_ex_post.ok)
    if res.status == "verification_failed":
        return "failed", res.message.splitlines()[0], cols
    return "ok", None, cols


_ANSWERS: dict[str, Callable[[Environment, Any, dict], tuple[str, str | None, dict]]] = {
    "minmax": _answer_minmax,
    "feasible": _answer_feasible,
    "share": _answer_share,
    "fees": _answer_fees,
}


def _run_point(task: _Task, params: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate one point; never raises (an exception becomes a row with status ``"error"``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    row: dict[str, Any] = dict(params)
    sha = ""
    try:
        env = task.environment(params)
        sha = _env_sha256(env)
        if isinstance(task.question, str):
            status, error, cols = _ANSWERS[task.question](env, task.budget, dict(task.options))
        else:
            answer = task.question(env, **task.options)
            if not isinstance(answer, Mapping):
                raise TypeError(f"question {task.question_name}() must return a mapping of column -> value")
            status, error, cols = "ok", None, dict(answer)
            clash = [c for c in cols if c in row or c in BASE_COLUMNS or c in ANSWER_META]
            if clash:
                raise ValueError(f"question {task.question_name}() returned reserved or grid column(s) {clash}")
    except Exception as exc:  # a failing point is recorded, the sweep goes on
        status, error, cols = "error", f"{type(exc).__name__}: {exc}", {}
    row["status"] = status
    row["error"] = error
    row.update({k: _plain(v) for k, v in cols.items()})
    row.update(_identity_cells(task))
    row["model_sha256"] = sha
    row["seconds"] = time.perf_counter() - t0
    row["cpu_seconds"] = time.process_time() - c0
    row["pid"] = os.getpid()
    row["finished"] = time.time()
    return row


def _identity_cells(task: _Task) -> dict[str, Any]:
    """The IDENTITY columns of a row (``budget`` ``None`` when empty, as pandas reads an empty cell)."""
    return {k: (v if v != "" else None) for k, v in task.identity.items()}


def _run_chunk(task: _Task, chunk: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [_run_point(task, p) for p in chunk]


def evaluate_point(
    model: Any,
    params: Mapping[str, Any],
    question: Any = "minmax",
    *,
    budget: Any = None,
    options: Mapping | None = None,
) -> dict[str, Any]:
    """Evaluate one point as :func:`sweep` would, in this process, and return its row as a dict."""
    grid = _check_grid({k: [v] for k, v in params.items()})
    _check_question(question)
    _check_options(question, options)
    task = _make_task(model, grid, question, _check_budget(question, budget), options)
    return _run_point(task, {k: v[0] for k, v in grid.items()})


def _check_question(question: Any) -> None:
    if isinstance(question, str):
        if question not in QUESTIONS:
            raise ValueError(f"unknown question {question!r}; questions are {QUESTIONS} (or a callable)")
    elif not callable(question):
        raise TypeError(f"question must be one of {QUESTIONS} or a callable, got {type(question).__name__}")


def _check_options(question: Any, options: Mapping | None) -> None:
    """Refuse, before any work, an option that question ``"fees"`` (:func:`lump_sum_fees`, no ``**kwargs``) does not
    take; the other built-in questions pass their options on to the min-max problem."""
    if question != "fees" or not options:
        return
    params = inspect.signature(lump_sum_fees).parameters
    for key in options:
        if key == "outside_option":
            raise ValueError(
                "options: 'outside_option' does not apply to question 'fees': Yoon's lump-sum fees, like the dynamic "
                "pivot, are checked against Bergemann-Valimaki's outside values O_i (the value of opting out while "
                "the others' efficient policy runs); reservation utilities are options of the questions 'minmax', "
                "'feasible' and 'share'"
            )
        if key not in params or key in ("env", "mode"):
            raise ValueError(f"options: {key!r} is not an option of question 'fees' (lump_sum_fees)")


# ---------------------------------------------------------------------------------------------- CSV store
def _line(cells: Sequence[str]) -> str:
    """One CSV record (``\\r\\n`` ended, as :mod:`csv` writes it)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue()


def _records(text: str) -> list[list[str]]:
    """The CSV records of ``text`` (blank lines skipped)."""
    return [r for r in csv.reader(io.StringIO(text, newline="")) if r]


def _complete_part(data: bytes) -> tuple[bytes, bytes]:
    """``data`` cut after its last line break: (complete lines, partial last line left by a kill)."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def _show(cell: str) -> str:
    return repr(cell) if cell else "none"


class _Store:
    """The output CSV of one sweep (module docstring, "The output file").

    :meth:`load` reads and validates the file without writing; :meth:`repair` cuts off a partial last line;
    :meth:`drop` removes rows to compute again; :meth:`append` writes finished rows, one ``write`` per call.
    Rows are kept as the text of their cells (``dict`` column -> cell), so nothing already in the file is
    re-encoded.
    """

    def __init__(self, path: Path | None, task: _Task, grid_keys: list[str]):
        self.path = path
        self.task = task
        self.grid_keys = grid_keys
        self.header: list[str] = []
        self.torn = b""  # a partial last line (a run killed while writing)
        self.fd: int | None = None

    # ---------------------------------------------------------------- reading
    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        """Header and rows of the file's complete lines; sets ``self.torn``. Validates the shape only."""
        assert self.path is not None
        if not self.path.exists():
            return [], []
        data = self.path.read_bytes()
        body, self.torn = _complete_part(data)
        try:
            text = body.decode("utf-8")
            torn_text = self.torn.decode("utf-8", errors="replace")
        except UnicodeDecodeError as exc:
            raise SweepMismatchError(f"{self.path} is not a sweep file (not UTF-8 text: {exc})") from None
        records = _records(text)
        if not records:
            start = ",".join([*self.grid_keys, *BASE_COLUMNS])
            if torn_text and not (start.startswith(torn_text) or torn_text.startswith(start)):
                raise SweepMismatchError(
                    f"{self.path} was not written by a sweep over {self.grid_keys} (it starts {torn_text[:60]!r}); "
                    "choose another output file or remove it"
                )
            self.torn = data  # blank, or only a header cut short by a kill: nothing to keep
            return [], []
        header = records[0]
        if "status" not in header:
            raise SweepMismatchError(
                f"{self.path} was not written by a sweep over {self.grid_keys} (no 'status' column; its columns "
                f"are {header[:6]}...); choose another output file or remove it"
            )
        file_keys = header[: header.index("status")]
        if set(file_keys) != set(self.grid_keys):
            gone = [k for k in file_keys if k not in self.grid_keys]
            new = [k for k in self.grid_keys if k not in file_keys]
            what = "; ".join(
                part
                for part in (
                    f"{gone} not in this grid" if gone else "",
                    f"{new} not in the file's grid" if new else "",
                )
                if part
            )
            raise SweepMismatchError(
                f"{self.path} was not written by a sweep over {self.grid_keys}: its grid is {file_keys} ({what}); "
                "choose another output file or remove it"
            )
        missing = [c for c in (*BASE_COLUMNS, *ANSWER_META) if c not in header]
        if missing:
            raise SweepMismatchError(
                f"{self.path} has no column(s) {missing}: written by an older mechlp or another program, its rows "
                "cannot be matched to this sweep; choose another output file or remove it"
            )
        if len(set(header)) != len(header):
            raise SweepMismatchError(f"{self.path} repeats a column in its header: not a file a sweep wrote")
        rows = []
        for n, rec in enumerate(records[1:], start=2):
            if len(rec) != len(header):
                raise SweepMismatchError(
                    f"{self.path} row {n} has {len(rec)} cells and the header {len(header)}: the file is damaged "
                    "(repair or remove that row)"
                )
            rows.append(dict(zip(header, rec, strict=True)))
        return header, rows

    def _identity_difference(self, row: Mapping[str, str]) -> str | None:
        """One line naming how ``row``'s sweep differs from this one, or ``None``."""
        want = self.task.identity
        q_old, q_new = row["question"], want["question"]
        if q_old != q_new:
            return f"{self.path} holds answers to question {q_old!r}, not {q_new!r}"
        b_old, b_new = row["budget"], want["budget"]
        if b_old != b_new:
            same = row["question"] == "feasible" and sorted(b_old.split()) == sorted(b_new.split())  # a set of notions
            if not same:
                return f"{self.path} holds a sweep with budget {_show(b_old)}, not {_show(b_new)}"
        o_old, o_new = row["options"], want["options"]
        if o_old != o_new:
            try:
                same = json.loads(o_old) == json.loads(o_new)
            except ValueError:
                same = False
            if not same:
                return f"{self.path} holds a sweep with options {o_old or '(none)'}, not {o_new}"
        m_old, m_new = row["model"], want["model"]
        if m_old != m_new:
            return f"{self.path} holds a sweep of another model: {_describe_model(m_old)}, not {_describe_model(m_new)}"
        return None

    def load(self) -> list[dict[str, str]]:
        """The rows of the file, after checking that it holds this sweep (nothing is written).

        Raises
        ------
        SweepMismatchError
            Naming, in one line, the first difference: grid keys, question, budget, options or model; or the
            damaged row of a file that is not one a sweep wrote.
        """
        if self.path is None:
            return []
        header, rows = self._read()
        seen: set[tuple[str, ...]] = set()
        for r in rows:
            ident = tuple(r[c] for c in IDENTITY)
            if ident in seen:
                continue
            seen.add(ident)
            diff = self._identity_difference(r)
            if diff is not None:
                raise SweepMismatchError(f"{diff}; choose another output file or remove it")
        self.header = header
        return rows

    # ---------------------------------------------------------------- writing
    def repair(self) -> int:
        """Cut off a partial last line (a kill while writing); returns the bytes removed."""
        if self.path is None or not self.torn:
            return 0
        n = len(self.torn)
        os.truncate(self.path, self.path.stat().st_size - n)
        self.torn = b""
        return n

    def drop(self, rows: Sequence[Mapping[str, str]]) -> None:
        """Remove ``rows`` (rows returned by :meth:`load`) from the file, atomically; the others keep their cells."""
        if self.path is None or not rows:
            return
        _, current = self._read()
        gone = {tuple(r[c] for c in self.header) for r in rows}
        self._replace(self.header, [r for r in current if tuple(r[c] for c in self.header) not in gone])

    def _replace(self, header: list[str], rows: list[dict[str, str]]) -> None:
        """Write ``header`` and ``rows`` (cell texts) to a temporary file, read it back and check every cell, then
        rename it over the file (so the file is either the old one or the new one, whenever a kill comes)."""
        assert self.path is not None
        self.close()
        text = _line(header) + "".join(_line([r.get(c, "") for c in header]) for r in rows)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            back = _records(Path(tmp).read_bytes().decode("utf-8"))
            same = back[0] == header and len(back) == len(rows) + 1
            for rec, r in zip(back[1:], rows, strict=False):
                got = dict(zip(header, rec, strict=False))
                same = same and len(rec) == len(header) and all(got.get(c) == v for c, v in r.items())
            if not same:  # pragma: no cover - a failure of the csv module; the old file stays as it was
                raise RuntimeError(f"rewriting {self.path} would change its rows; the file was left unchanged")
            os.chmod(tmp, stat.S_IMODE(self.path.stat().st_mode))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.header = header

    def _widen(self, extra: list[str]) -> None:
        """Add answer columns (before the metadata columns), keeping every row's cells."""
        at = min((self.header.index(c) for c in ANSWER_META if c in self.header), default=len(self.header))
        header = [*self.header[:at], *extra, *self.header[at:]]
        _, current = self._read()
        self._replace(header, current)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append finished rows with one ``write`` (and flush): a kill leaves at most a partial last line."""
        if self.path is None or not rows:
            return
        cells = [{c: _cell(v) for c, v in r.items()} for r in rows]
        head = ""
        if not self.header:
            answers = list(dict.fromkeys(c for r in cells for c in r if c not in self._fixed))
            self.header = [*self.grid_keys, *BASE_COLUMNS, *answers, *ANSWER_META]
            if self.path.exists() and self.path.stat().st_size > 0:  # pragma: no cover - load() saw it empty
                raise SweepMismatchError(f"{self.path} changed while the sweep ran")
            head = _line(self.header)
        else:
            extra = list(dict.fromkeys(c for r in cells for c in r if c not in self.header))
            if extra:
                self._widen(extra)
        data = (head + "".join(_line([r.get(c, "") for c in self.header]) for r in cells)).encode("utf-8")
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    @property
    def _fixed(self) -> set[str]:
        return {*self.grid_keys, *BASE_COLUMNS, *ANSWER_META}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _describe_model(cell: str) -> str:
    kind, _, what = cell.partition(":")
    if kind == "toml":
        return f"the TOML document with sha256 {what[:12]}"
    if kind == "callable":
        return f"{what}()"
    return repr(cell) if cell else "none"


# ---------------------------------------------------------------------------------------------- executors
def _mp_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mechlp.workflows.sweep"])  # workers fork from a server that imported mechlp once
        return ctx
    return multiprocessing.get_context("spawn")


def _error_rows(task: _Task, chunk: Sequence[Mapping[str, Any]], exc: BaseException) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            **p,
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            **_identity_cells(task),
            "model_sha256": "",
            "seconds": None,
            "cpu_seconds": None,
            "pid": None,
            "finished": now,
        }
        for p in chunk
    ]


def _iter_serial(task: _Task, chunks: list[list[dict]]) -> Iterator[list[dict[str, Any]]]:
    for chunk in chunks:
        for p in chunk:
            yield [_run_point(task, p)]


def _iter_pool(task: _Task, chunks: list[list[dict]], pool: Executor) -> Iterator[list[dict[str, Any]]]:
    futures = {pool.submit(_run_chunk, task, c): c for c in chunks}
    try:
        for fut in as_completed(futures):
            try:
                rows = fut.result()
            except Exception as exc:  # e.g. a worker died (BrokenProcessPool) or the task did not unpickle
                rows = _error_rows(task, futures[fut], exc)
            yield rows
    finally:
        for fut in futures:
            fut.cancel()


def _exit_with_parent(sentinel: Any) -> None:
    multiprocessing.connection.wait([sentinel])  # ready when the parent process is gone
    os._exit(70)


def _worker_init() -> None:
    """Initializer of the worker processes: leave Ctrl-C to the parent, and end when the parent ends.

    The parent's sentinel (:func:`multiprocessing.parent_process`) becomes ready when the parent dies, however
    it dies (``kill -9`` included); a daemon thread waits for it and ends the worker. A worker started by the
    forkserver is a child of the forkserver, so the parent-death signal of the OS would watch the wrong process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), name="mechlp-parent", daemon=True).start()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a process pool now: cancel what has not started and terminate the workers."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            proc.kill()
            proc.join(timeout=5)


def _iter_processes(task: _Task, chunks: list[list[dict]], workers: int) -> Iterator[list[dict[str, Any]]]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_worker_init)
    finished = False
    try:
        yield from _iter_pool(task, chunks, pool)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted (Ctrl-C), closed early or failed: stop the workers
            _terminate(pool)


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "distributed" and hasattr(obj, "submit") and hasattr(obj, "gather")


def _iter_dask(task: _Task, chunks: list[list[dict]], client: Any) -> Iterator[list[dict[str, Any]]]:
    from distributed import as_completed as dask_as_completed

    futures = [client.submit(_run_chunk, task, c, pure=False) for c in chunks]
    index = {f.key: c for f, c in zip(futures, chunks, strict=True)}
    try:
        for fut in dask_as_completed(futures):
            try:
                rows = fut.result()
            except Exception as exc:
                rows = _error_rows(task, index[fut.key], exc)
            yield rows
    finally:
        client.cancel([f for f in futures if not f.done()])


def _check_executor(executor: Any, workers: int | None) -> None:
    if isinstance(executor, str):
        if executor not in EXECUTORS and not executor.startswith("dask://"):
            raise ValueError(
                f"unknown executor {executor!r}; use one of {EXECUTORS}, 'dask://HOST:PORT', a distributed.Client "
                "or a concurrent.futures.Executor"
            )
        if executor.startswith("dask://") and not executor[len("dask://") :].strip():
            raise ValueError(f"executor {executor!r}: give the scheduler address, dask://HOST:PORT")
    elif not (isinstance(executor, Executor) or _is_dask_client(executor)):
        raise TypeError(
            f"executor must be a string, a distributed.Client or an Executor, got {type(executor).__name__}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def _check_picklable(task: _Task) -> None:
    try:
        pickle.loads(pickle.dumps(task))
    except Exception as exc:
        raise ValueError(
            f"the model or question cannot be sent to worker processes ({type(exc).__name__}: {exc}); use a "
            "module-level function (or functools.partial of one), a model file, executor='serial' or Dask"
        ) from None
    for fn in (task.factory, task.question):
        if (
            callable(fn)
            and getattr(fn, "__module__", None) == "__main__"
            and not hasattr(sys.modules["__main__"], "__file__")
        ):
            raise ValueError(
                f"{getattr(fn, '__name__', fn)!r} is defined interactively (in __main__), so worker processes "
                "cannot import it; move it to a module, or use executor='serial' or Dask"
            )


# ---------------------------------------------------------------------------------------------- sweep
def sweep(
    model: Any,
    grid: Mapping[str, Sequence[Any]],
    question: str | Callable[..., Mapping[str, Any]] = "minmax",
    *,
    budget: str | Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    executor: Any = "processes",
    workers: int | None = None,
    chunksize: int | None = None,
    progress: bool = True,
    retry_errors: bool = True,
) -> pd.DataFrame:
    """Answer ``question`` at every point of ``grid`` and return one row per point.

    Parameters
    ----------
    model : str, path, or callable
        A TOML model file (grid keys are override keys such as ``persistence``, ``discount``,
        ``agents.buyer.prior``), a built-in model name of :data:`mechlp.catalog.examples.CLASSIC_MODELS`, or a
        callable ``**params -> Environment`` (grid keys are its keyword arguments). See the module docstring.
    grid : mapping of str to sequence
        Parameter values; the points are their Cartesian product, the first key varying slowest.
    question : {"minmax", "feasible", "share", "fees"} or callable
        What to compute at each point (columns in the module docstring). A callable ``(env, **options) ->
        mapping`` contributes its own columns.
    budget : str or sequence of str, optional
        ``"feasible"``: the budget notions to test (default ``("ex_ante", "interim")``; any of
        ``ex_ante, interim, ex_post, none``); ``"share"``: ``"interim"`` (default) or ``"ex_post"``;
        ``"fees"``: ``"ex_ante"`` (default) or ``"interim"``. Not accepted for ``"minmax"``. ``"ex-ante"`` is
        read as ``"ex_ante"``.
    options : mapping, optional
        Keyword arguments of the question's function, e.g. ``{"ic": "ex_post"}``, ``{"certify": False}``,
        ``{"rule": "maxmin"}``, ``{"horizon": 3}``.
    out : str or path, optional
        CSV file of this sweep: rows are appended and flushed as points finish; points already in the file are
        skipped, rows of points not in ``grid`` are kept; a file written for another sweep is refused (module
        docstring, "The output file").
    executor : {"processes", "serial"}, "dask://HOST:PORT", distributed.Client or concurrent.futures.Executor
        Where points run (module docstring). An Executor or Client passed in is used and left open.
    workers : int, optional
        Processes for ``"processes"`` (default ``os.cpu_count()``).
    chunksize : int, optional
        Points per task sent to a worker (default: about 16 tasks per worker, at most 8 points each).
    progress : bool
        Show a tqdm progress bar on stderr.
    retry_errors : bool
        Compute again the points whose row in ``out`` has status ``"error"``.

    Returns
    -------
    pandas.DataFrame
        One row per grid point, in grid order. With ``out`` the frame is read back from the CSV file (so it is
        the same as :func:`load_sweep` gives later). ``df.attrs`` holds ``grid`` (the keys), ``question``,
        ``points``, ``computed``, ``skipped``, ``errors`` (rows with status ``"error"``), ``failed`` (status
        ``"failed"``), ``repaired`` (bytes of a partial last line cut off ``out``), ``seconds`` (wall time) and
        ``out``.

    Raises
    ------
    SweepMismatchError
        (a ValueError) When ``out`` was written for another sweep: other grid keys, question, budget, options or
        model (the message names the difference), or is damaged; the file is left as it was.
    ValueError
        For a bad grid, an unknown question, budget, executor or override key, or a model factory that does not
        take a grid key.
    FileNotFoundError
        When ``model`` is neither a file nor a built-in model.
    SweepInterrupted
        (a KeyboardInterrupt) On Ctrl-C, after the workers were stopped; the rows written so far stay in ``out``.
    """
    t_start = time.perf_counter()
    g = _check_grid(grid)
    _check_question(question)
    _check_options(question, options)
    bud = _check_budget(question, budget)
    _check_executor(executor, workers)
    if chunksize is not None and (isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1):
        raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
    task = _make_task(model, g, question, bud, options)
    keys = list(g)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*g.values())]
    index = {_key(p, keys): i for i, p in enumerate(points)}

    store = _Store(Path(out) if out is not None else None, task, keys)
    existing = store.load()  # refuses a file of another sweep before anything is written
    latest: dict[tuple[str, ...], dict[str, str]] = {}  # rows of the new grid's points (a sweep writes one each)
    retry: list[dict[str, str]] = []  # their error rows, to compute again
    for r in existing:
        k = tuple(_canon(r[c]) for c in keys)
        if k in index:
            latest[k] = r
            if retry_errors and r["status"] == "error":
                retry.append(r)
    done = {k: r for k, r in latest.items() if not (retry_errors and r["status"] == "error")}
    for k, r in done.items():
        if r["status"] == "error":
            continue
        now = task.model_sha256(points[index[k]])
        if r["model_sha256"] != now:
            where = ", ".join(f"{c}={r[c]}" for c in keys)
            raise SweepMismatchError(
                f"{out} holds a row computed for another model at {where} (model sha256 "
                f"{r['model_sha256'][:12] or 'none'} in the file, {now[:12] if len(now) == 64 else now} now: the "
                "model file or factory changed); choose another output file or remove it"
            )
    repaired = store.repair()
    store.drop(retry)
    todo = [p for p in points if _key(p, keys) not in done]

    if isinstance(executor, str) and executor == "processes":
        n_workers = workers or os.cpu_count() or 1
    elif isinstance(executor, str) and executor == "serial":
        n_workers = 1
    else:
        n_workers = workers or 2
    if chunksize is None:
        chunksize = max(1, min(8, len(todo) // (16 * n_workers)))  # many small tasks: even load, fine streaming
    chunks = [todo[i : i + chunksize] for i in range(0, len(todo), chunksize)]

    new_rows: list[dict[str, Any]] = []
    own_client = None
    if todo:
        if isinstance(executor, str) and executor == "processes":
            _check_picklable(task)
            rows_iter = _iter_processes(task, chunks, min(n_workers, len(chunks)))
        elif isinstance(executor, str) and executor == "serial":
            rows_iter = _iter_serial(task, chunks)
        elif isinstance(executor, str):  # dask://HOST:PORT
            from distributed import Client

            own_client = Client(executor[len("dask://") :])
            rows_iter = _iter_dask(task, chunks, own_client)
        elif _is_dask_client(executor):
            rows_iter = _iter_dask(task, chunks, executor)
        else:
            rows_iter = _iter_pool(task, chunks, executor)
        from tqdm import tqdm

        bar = tqdm(
            total=len(points),
            initial=len(points) - len(todo),
            desc=f"sweep {task.question_name}",
            unit="pt",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        interrupted = False
        try:
            for rows in rows_iter:
                store.append(rows)
                new_rows.extend(rows)
                bar.update(len(rows))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            if hasattr(rows_iter, "close"):
                rows_iter.close()  # stops the workers when the loop did not finish
            store.close()
            if own_client is not None:
                own_client.close()
        if interrupted:
            kept = {_key(r, keys) for r in new_rows} | set(done)
            raise SweepInterrupted(len(points), len(kept), len(new_rows), str(out) if out is not None else None)

    if store.path is not None:
        df = load_sweep(store.path, grid_keys=keys)
        df = _select(df, keys, index)
    else:
        df = pd.DataFrame([{k: _plain(v) for k, v in r.items()} for r in new_rows])
        if not df.empty:
            order = [index[_key(r, keys)] for r in new_rows]
            df = df.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    df.attrs.update(
        {
            "grid": keys,
            "question": task.question_name,
            "points": len(points),
            "computed": len(new_rows),
            "skipped": len(points) - len(todo),
            "errors": int((df["status"] == "error").sum()) if "status" in df else 0,
            "failed": int((df["status"] == "failed").sum()) if "status" in df else 0,
            "repaired": repaired,
            "seconds": time.perf_counter() - t_start,
            "out": str(out) if out is not None else None,
        }
    )
    return df


def _select(df: pd.DataFrame, keys: list[str], index: dict[tuple[str, ...], int]) -> pd.DataFrame:
    """Rows of ``df`` that belong to the grid, in grid order (the last row of a point, were there more)."""
    if df.empty:
        return df
    ks = [tuple(_canon(_cell(_plain(v))) for v in vals) for vals in zip(*(df[k] for k in keys), strict=True)]
    pos = np.array([index.get(k, -1) for k in ks])
    rev = np.flatnonzero(pos >= 0)[::-1]
    _, last = np.unique(pos[rev], return_index=True)  # sorted by grid position
    return df.iloc[rev[last]].reset_index(drop=True)


def grid_keys(df: pd.DataFrame) -> list[str]:
    """The grid keys of a sweep frame: ``df.attrs["grid"]``, else the columns before ``status``."""
    if df.attrs.get("grid"):
        return list(df.attrs["grid"])
    cols = list(df.columns)
    if "status" not in cols:
        raise ValueError("not a sweep result: no 'status' column")
    return cols[: cols.index("status")]


def load_sweep(path: str | os.PathLike, *, grid_keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a sweep CSV written by :func:`sweep` (or ``mechlp sweep --out``).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    grid_keys : sequence of str, optional
        The grid columns; default: the columns before ``status``.

    Returns
    -------
    pandas.DataFrame
        One row per point; ``df.attrs["grid"]`` holds the grid keys and ``df.attrs["question"]`` the question.
        A partial last line (a sweep killed while writing) is not read.
    """
    body, _ = _complete_part(Path(path).read_bytes())
    if not body.strip():
        raise ValueError(f"{path}: not a sweep result (no complete header line)")
    df = pd.read_csv(io.BytesIO(body), dtype={c: str for c in _TEXT_COLUMNS})
    cols = list(df.columns)
    if "status" not in cols:
        raise ValueError(f"{path}: not a sweep result (no 'status' column)")
    df.attrs["grid"] = list(grid_keys) if grid_keys is not None else cols[: cols.index("status")]
    if "question" in df and len(df):
        df.attrs["question"] = str(df["question"].iloc[0])
    return df

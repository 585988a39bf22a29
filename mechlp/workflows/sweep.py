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
answer columns below, and ``question``, ``seconds`` (wall time of the point), ``cpu_seconds`` (CPU time of the
process spent on it), ``pid`` and ``finished`` (Unix time).

``"minmax"`` (:func:`mechlp.solve.questions.minmax`)
    ``pi_root`` (:math:`\Pi^*` at the start), ``pi_min``, ``argmin`` (where the minimum is), ``n_negative``,
    ``ex_ante_ok`` / ``interim_ok`` (:math:`\Pi^*(\text{root}) \ge 0`, every :math:`\Pi^* \ge 0`: Lamba 2022,
    Theorem 1 and Corollary 1), ``verified``; on the Markov space one column ``pi(<labels>)`` per last-period
    report profile, e.g. ``pi(v_H,c_L)``; for bilateral trade the fees on top of the static VCG (Lamba 2022,
    section 6.1): ``fee_<agent>_first``, ``fee_<agent>(<other's label>)`` and ``fee_<agent>_pv``, the value at
    the start of the agent's whole fee stream (what an upfront payment replacing the fees would cost).
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

Executors, streaming and resuming
---------------------------------
``executor="processes"`` (default) runs chunks of points on a :class:`concurrent.futures.ProcessPoolExecutor`
with ``workers`` processes (default ``os.cpu_count()``). They are started with ``forkserver`` where available,
so workers never inherit solver threads; a script must therefore keep its top-level code under
``if __name__ == "__main__":``, as with any non-forking process pool. ``"serial"`` runs the points in this
process; a ``distributed.Client`` or an address ``"dask://HOST:PORT"`` submits the same chunks to a Dask
cluster. With ``out``, every finished row is appended to the CSV file and flushed at once, so an interrupted
sweep loses nothing that finished. Running again with the same ``out`` skips every point already there
(matched by its grid values); rows with status ``"error"`` are computed again unless ``retry_errors=False``.
Grid values that are not numbers or strings
(e.g. a prior ``[0.4, 0.6]``) are stored in the CSV as JSON text.
"""

from __future__ import annotations

import csv
import inspect
import io
import itertools
import json
import math
import multiprocessing
import os
import pickle
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechlp.catalog.examples import CLASSIC_MODELS
from mechlp.catalog.io import apply_overrides, model_from_dict, toml_value
from mechlp.constructions.fees import MODES as FEE_MODES
from mechlp.constructions.fees import lump_sum_fees
from mechlp.model import tolerances
from mechlp.model.environment import Environment
from mechlp.model.question import parse_notion
from mechlp.solve import questions as design
from mechlp.workflows.sharing import BUDGETS as SHARE_BUDGETS
from mechlp.workflows.sharing import NegativeSurplusError, share_surplus

__all__ = [
    "QUESTIONS",
    "EXECUTORS",
    "sweep",
    "evaluate_point",
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
ANSWER_META = ("question", "seconds", "cpu_seconds", "pid", "finished")
_FEASIBILITY_ONLY = ("certify", "exact")
_SIGNIFICANT = 12  # digits kept by parse_grid_spec (np.linspace gives 0.7000000000000001)


# ---------------------------------------------------------------------------------------------- cells
def _cell(value: Any) -> str:
    """Text of one CSV cell (floats round-trip exactly; lists and dicts as JSON)."""
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
        return value
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
            return _Task(str(model), doc=doc, question=question, budget=budget, options=opts)
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
    return _Task(f"{name}()", factory=model, question=question, budget=budget, options=opts)


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
    if other.action_dependent:
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
        cols["ex_ante_ok"] = bool(pi[0] >= -tolerances.SURPLUS)
        cols["interim_ok"] = bool(pi.min() >= -tolerances.SURPLUS)
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
    try:
        env = task.environment(params)
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
    row["question"] = task.question_name
    row["seconds"] = time.perf_counter() - t0
    row["cpu_seconds"] = time.process_time() - c0
    row["pid"] = os.getpid()
    row["finished"] = time.time()
    return row


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
    task = _make_task(model, grid, question, _check_budget(question, budget), options)
    return _run_point(task, {k: v[0] for k, v in grid.items()})


def _check_question(question: Any) -> None:
    if isinstance(question, str):
        if question not in QUESTIONS:
            raise ValueError(f"unknown question {question!r}; questions are {QUESTIONS} (or a callable)")
    elif not callable(question):
        raise TypeError(f"question must be one of {QUESTIONS} or a callable, got {type(question).__name__}")


# ---------------------------------------------------------------------------------------------- CSV store
class _Store:
    """The output CSV: read what is there, append rows (flushed one by one), widen the header when needed."""

    def __init__(self, path: Path | None, grid_keys: list[str]):
        self.path = path
        self.grid_keys = grid_keys
        self.answer_cols: list[str] = []
        self.fh: io.TextIOWrapper | None = None
        self.writer: Any = None
        self.needs_rewrite = False

    @property
    def header(self) -> list[str]:
        return [*self.grid_keys, *BASE_COLUMNS, *self.answer_cols, *ANSWER_META]

    def read(self) -> list[dict[str, str]]:
        """Rows already in the file (a partial last line from a killed run is dropped)."""
        if self.path is None or not self.path.exists() or self.path.stat().st_size == 0:
            return []
        text = self.path.read_bytes().decode("utf-8")
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # the last row was cut short (a killed run): drop it
            self.needs_rewrite = True
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            return []
        header = rows[0]
        expect = set(self.grid_keys) | set(BASE_COLUMNS) | set(ANSWER_META)
        if header[: len(self.grid_keys)] != self.grid_keys or not expect <= set(header):
            raise ValueError(
                f"{self.path} was not written by a sweep over {self.grid_keys} (its columns are "
                f"{header[: len(self.grid_keys) + 2]}...); choose another output file or remove it"
            )
        start, stop = len(self.grid_keys) + len(BASE_COLUMNS), len(header) - len(ANSWER_META)
        self.answer_cols = header[start:stop]
        good = [dict(zip(header, r, strict=True)) for r in rows[1:] if len(r) == len(header)]
        if len(good) != len(rows) - 1:
            self.needs_rewrite = True
        return good

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the file by ``rows`` under the current header (atomically)."""
        assert self.path is not None
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(self.header)
            for r in rows:
                w.writerow([_cell(r.get(c)) for c in self.header])
        os.replace(tmp, self.path)

    def open(self) -> None:
        if self.path is None:
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.fh = open(self.path, "a", encoding="utf-8", newline="")
        self.writer = csv.writer(self.fh)
        if new:
            self.writer.writerow(self.header)
            self.fh.flush()

    def append(self, row: dict[str, Any]) -> None:
        if self.path is None:
            return
        extra = [c for c in row if c not in self.header]
        if extra:  # a new answer column (e.g. the first successful point after errors): widen the file
            self.answer_cols.extend(extra)
            assert self.fh is not None
            self.fh.flush()
            old = self.read_current()
            self.rewrite(old)
            self.open()
        assert self.writer is not None and self.fh is not None
        self.writer.writerow([_cell(row.get(c)) for c in self.header])
        self.fh.flush()

    def read_current(self) -> list[dict[str, str]]:
        assert self.path is not None
        with open(self.path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        header = rows[0]
        return [dict(zip(header, r, strict=True)) for r in rows[1:] if len(r) == len(header)]

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
            self.writer = None


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
            "question": task.question_name,
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


def _iter_processes(task: _Task, chunks: list[list[dict]], workers: int) -> Iterator[list[dict[str, Any]]]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())
    try:
        yield from _iter_pool(task, chunks, pool)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


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
        CSV file: rows are appended and flushed as points finish; points already in the file are skipped.
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
        ``points``, ``computed``, ``skipped``, ``errors``, ``seconds`` (wall time) and ``out``.

    Raises
    ------
    ValueError
        For a bad grid, an unknown question, budget, executor or override key, a model factory that does not
        take a grid key, or an ``out`` file written by a different sweep.
    FileNotFoundError
        When ``model`` is neither a file nor a built-in model.
    """
    t_start = time.perf_counter()
    g = _check_grid(grid)
    _check_question(question)
    bud = _check_budget(question, budget)
    _check_executor(executor, workers)
    if chunksize is not None and (isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1):
        raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
    task = _make_task(model, g, question, bud, options)
    keys = list(g)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*g.values())]
    index = {_key(p, keys): i for i, p in enumerate(points)}

    store = _Store(Path(out) if out is not None else None, keys)
    existing = store.read()
    done: dict[tuple[str, ...], dict] = {}
    keep: list[dict] = []
    dropped = 0
    for r in existing:
        k = tuple(_canon(r[c]) for c in keys)
        if k in index and retry_errors and r.get("status") == "error":
            dropped += 1
            continue
        if k in index and r.get("question") != task.question_name:
            raise ValueError(
                f"{out} holds answers to question {r.get('question')!r}, not {task.question_name!r}; "
                "choose another output file"
            )
        if k in done:  # a duplicate (should not happen): keep the later row
            keep.remove(done[k])
            dropped += 1
        done[k] = r
        keep.append(r)
    done = {k: r for k, r in done.items() if k in index}
    if store.path is not None and (store.needs_rewrite or dropped or len(existing) != len(keep)):
        store.rewrite(keep)
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

        store.open()
        bar = tqdm(
            total=len(points),
            initial=len(points) - len(todo),
            desc=f"sweep {task.question_name}",
            unit="pt",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        try:
            for rows in rows_iter:
                for row in rows:
                    store.append(row)
                    new_rows.append(row)
                bar.update(len(rows))
        finally:
            bar.close()
            store.close()
            if hasattr(rows_iter, "close"):
                rows_iter.close()
            if own_client is not None:
                own_client.close()

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
            "seconds": time.perf_counter() - t_start,
            "out": str(out) if out is not None else None,
        }
    )
    return df


def _select(df: pd.DataFrame, keys: list[str], index: dict[tuple[str, ...], int]) -> pd.DataFrame:
    """Rows of ``df`` that belong to the grid, in grid order."""
    if df.empty:
        return df
    ks = [tuple(_canon(_cell(_plain(v))) for v in vals) for vals in zip(*(df[k] for k in keys), strict=True)]
    pos = np.array([index.get(k, -1) for k in ks])
    sel = np.flatnonzero(pos >= 0)
    sel = sel[np.argsort(pos[sel], kind="stable")]
    return df.iloc[sel].reset_index(drop=True)


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
    """
    df = pd.read_csv(path)
    cols = list(df.columns)
    if "status" not in cols:
        raise ValueError(f"{path}: not a sweep result (no 'status' column)")
    df.attrs["grid"] = list(grid_keys) if grid_keys is not None else cols[: cols.index("status")]
    if "question" in df and len(df):
        df.attrs["question"] = str(df["question"].iloc[0])
    return df

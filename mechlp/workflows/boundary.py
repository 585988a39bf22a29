r"""Feasibility regions with exact boundaries: one critical-value scan per grid line.

A sweep over a two-dimensional grid (:func:`mechlp.workflows.sweep.sweep`, question ``"feasible"``) answers yes or
no at every cell, so a region drawn from it is a staircase whose steps are as coarse as the grid. Each boundary
of the region is a critical value, which a scan with bisection finds to any width. :func:`feasibility_boundary`
therefore takes a grid of the first parameter ``x`` only, and along each line ``x = const`` finds every value of
the second parameter ``y`` where feasibility changes:

``question="minmax"``
    Lamba (2022), Theorem 1 and Corollary 1: implementable with Bayesian IC, periodic interim IR and interim (or
    ex post) budget balance iff :math:`\min_h \Pi^*(h) \ge 0`, ex ante iff :math:`\Pi^*(\text{root}) \ge 0`
    (:func:`mechlp.solve.critical.critical_delta`, any ``y``: the discount factor or another model key,
    e.g. Lamba's Corollary 3 in persistence).
``question="fees"``
    Yoon's (2015) condition (*) for the dynamic pivot with lump-sum fees
    (:func:`mechlp.constructions.fees.critical_discount`); on binary bilateral trade the boundary is Yoon's
    (2021, section 3.3.2) :math:`\delta = 1/(3 - 2\alpha)`.

Nothing assumes monotonicity: every sign change on a line is bisected, and the feasible set on the line is a union
of intervals (:func:`mechlp.model.bisection.feasible_intervals`), each ending at a critical value or at an end of
the scanned range. :func:`mechlp.workflows.plots.plot` with ``kind="boundary"`` fills these intervals between
neighbouring lines, so the region's edges are the critical-value curves, not cell edges.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from mechlp.constructions.fees import MODES as FEE_MODES
from mechlp.constructions.fees import critical_discount
from mechlp.model import tolerances
from mechlp.model.answer import SolverFailure
from mechlp.model.bisection import feasible_intervals
from mechlp.model.question import check_choice, parse_notion
from mechlp.solve.critical import BUDGETS as CRITICAL_BUDGETS
from mechlp.solve.critical import METHODS, critical_delta
from mechlp.workflows.sweep import environment_builder

__all__ = ["QUESTIONS", "COLUMNS", "HEADER", "feasibility_boundary", "load_boundary"]

#: The criteria a boundary can follow (module docstring).
QUESTIONS: tuple[str, ...] = ("minmax", "fees")
#: Columns of :func:`feasibility_boundary`'s frame after the ``x`` column (JSON lists in a CSV file).
COLUMNS: tuple[str, ...] = (
    "budget",
    "parameter",
    "critical",
    "directions",
    "intervals",
    "monotone",
    "evaluations",
    "seconds",
    "message",
)
_JSON_COLUMNS = ("critical", "directions", "intervals")
#: First line of a boundary CSV file (then the frame's ``attrs`` as JSON).
HEADER = "# mechlp boundary "


def _one_line(job: tuple) -> dict[str, Any]:
    """Every critical value of ``y`` on the line ``x = value`` for one budget (run in a worker process); an error
    names the line."""
    try:
        return _scan_line(*job)
    except SolverFailure as exc:  # no answer on this line: still not bad input (exit code 3)
        raise SolverFailure(f"line {job[2]} = {job[3]:g}, budget {job[6]}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"line {job[2]} = {job[3]:g}, budget {job[6]}: {exc}") from None


def _scan_line(build, fixed, x, value, y, question, budget, scan) -> dict[str, Any]:
    t0 = time.perf_counter()

    def model(v: float):
        return build({**fixed, x: value, y: v})

    if question == "minmax":
        res = critical_delta(model, budget, parameter=y, **scan)
        found = res.scan
        grid, crit, dirs, everywhere = found.grid, found.critical, found.directions, found.feasible_everywhere
        monotone = bool(found.monotone or found.non_increasing)
        evaluations = int(res.evaluations)
    else:
        res = critical_discount(
            model, scan["lo"], scan["hi"], scan["tol"], grid=scan["grid"], mode=budget, worst_over=scan["worst_over"]
        )
        grid, crit, dirs, everywhere = res.grid, res.critical, res.directions, res.feasible_everywhere
        monotone, evaluations = bool(res.monotone), int(res.evaluations)
    return {
        x: value,
        "budget": budget,
        "parameter": y,
        "critical": [float(c) for c in crit],
        "directions": list(dirs),
        "intervals": [[a, b] for a, b in feasible_intervals(grid, crit, dirs, everywhere)],
        "monotone": monotone,
        "evaluations": evaluations,
        "seconds": time.perf_counter() - t0,
        "message": res.message,
    }


def feasibility_boundary(
    model: Any,
    x: str,
    values: Sequence[float],
    y: str = "discount",
    *,
    budget: str | Sequence[str] = ("ex_ante", "interim"),
    question: str = "minmax",
    fixed: Mapping[str, Any] | None = None,
    lo: float = 0.01,
    hi: float = 0.99,
    grid: int = 21,
    tol: float = tolerances.BISECTION_WIDTH,
    method: str = "recursion",
    horizon: int | None = None,
    tail: bool = False,
    ic: str = "bayesian",
    outside_option: Any = 0.0,
    worst_over: str = "all",
    workers: int = 1,
    out: str | os.PathLike | None = None,
) -> pd.DataFrame:
    r"""The boundary of the feasibility region in ``(x, y)``: every critical ``y`` on each line ``x = value``.

    Parameters
    ----------
    model : str, path or callable
        As :func:`mechlp.workflows.sweep.sweep` reads it: a TOML model (``x`` and ``y`` are override keys such as
        ``persistence`` and ``discount``), a built-in model name, or a callable taking ``x`` and ``y`` as keyword
        arguments (e.g. ``lamba_usstp`` with ``alpha`` and ``delta``).
    x : str
        The key of the grid lines; ``values`` its values (at least one, finite).
    y : str
        The key scanned and bisected along each line (default ``"discount"``), on ``[lo, hi]`` with ``grid``
        points and final brackets of width ``tol``.
    budget : str or sequence of str
        ``question="minmax"``: any of ``interim``, ``ex_ante``, ``ex_post`` (criterion of
        :func:`mechlp.solve.critical.critical_delta`); ``"fees"``: ``ex_ante`` or ``interim`` (the mode of
        :func:`mechlp.constructions.fees.critical_discount`). One row per line and budget.
    question : {"minmax", "fees"}
        The criterion (module docstring).
    fixed : mapping, optional
        Other keys held fixed on every line (as ``--set`` on the command line).
    method, horizon, tail, ic, outside_option :
        Passed to :func:`~mechlp.solve.critical.critical_delta` (``question="minmax"``).
    worst_over : {"all", "support"}
        Passed to :func:`~mechlp.constructions.fees.critical_discount` (``question="fees"``).
    workers : int
        Lines run on this many worker processes (default 1: in this process).
    out : str or path, optional
        CSV file of the frame (the list columns as JSON; read it back with :func:`load_boundary`).

    Returns
    -------
    pandas.DataFrame
        One row per ``(value, budget)``: the ``x`` column, then ``COLUMNS``. ``critical`` and ``directions``
        list every sign change on the line (``"becomes feasible"`` as ``y`` rises, or ``"becomes infeasible"``);
        ``intervals`` the feasible ``[a, b]`` ranges of ``y`` on ``[lo, hi]``; ``monotone`` that the criterion
        was monotone (either way) over all evaluations, so no sign change can hide between grid points.
        ``frame.attrs`` records ``x``, ``y``, ``lo``, ``hi``, ``question``.

    Raises
    ------
    ValueError
        For an unknown ``question``, budget or ``method``, no values, a non-finite value, ``x == y``, or a model
        that does not take the keys; any error of a scan (its message names the line).
    """
    check_choice("question", question, QUESTIONS)
    check_choice("method", method, METHODS)
    allowed = CRITICAL_BUDGETS if question == "minmax" else FEE_MODES
    budgets = [budget] if isinstance(budget, str) else list(budget)
    if not budgets:
        raise ValueError("budget: give at least one budget notion")
    budgets = [parse_notion("budget", b, allowed=allowed) for b in budgets]
    for name, key in (("x", x), ("y", y)):
        if not isinstance(key, str) or not key:
            raise TypeError(f"{name} must be a non-empty key, got {key!r}")
    if x == y:
        raise ValueError(f"x and y must be different keys, both are {x!r}")
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("values: give at least one value of x")
    bad = [i for i, v in enumerate(vals) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"values[{bad[0]}] is not finite: {vals[bad[0]]!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    fixed = dict(fixed or {})
    build = environment_builder(model, {**fixed, x: vals[0], y: hi})  # unknown keys fail here, before any work
    if question == "minmax":
        scan = {
            "lo": lo,
            "hi": hi,
            "tol": tol,
            "grid": grid,
            "method": method,
            "horizon": horizon,
            "tail": tail,
            "ic": ic,
            "outside_option": outside_option,
        }
    else:
        scan = {"lo": lo, "hi": hi, "tol": tol, "grid": grid, "worst_over": worst_over}
    jobs = [(build, fixed, x, v, y, question, b, scan) for v in vals for b in budgets]
    if workers == 1:
        rows = [_one_line(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(_one_line, jobs))
    frame = pd.DataFrame(rows, columns=[x, *COLUMNS])
    frame.attrs.update({"x": x, "y": y, "lo": float(lo), "hi": float(hi), "question": question})
    if out is not None:
        _write(frame, Path(out))
    return frame


def _write(frame: pd.DataFrame, path: Path) -> None:
    text = frame.copy()
    for col in _JSON_COLUMNS:
        text[col] = [json.dumps(v) for v in text[col]]
    meta = json.dumps(frame.attrs, sort_keys=True)
    path.write_text(f"{HEADER}{meta}\n" + text.to_csv(index=False))


def load_boundary(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV file written by :func:`feasibility_boundary` (``out=``): the list columns parsed back from JSON
    and ``attrs`` restored.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    pandas.DataFrame
        The frame :func:`feasibility_boundary` returned.

    Raises
    ------
    ValueError
        When the file does not start with the ``# mechlp boundary`` line or lacks a column.
    """
    path = Path(path)
    text = path.read_text()
    first, _, rest = text.partition("\n")
    if not first.startswith(HEADER):
        raise ValueError(f"{path}: not a boundary file (its first line must start with {HEADER.strip()!r})")
    try:
        attrs = json.loads(first[len(HEADER) :])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: bad header line: {exc}") from None
    frame = pd.read_csv(io.StringIO(rest))
    missing = [c for c in (attrs.get("x", ""), *COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column {missing[0]!r}")
    for col in _JSON_COLUMNS:
        frame[col] = [json.loads(v) for v in frame[col]]
    frame.attrs.update(attrs)
    return frame

"""Command line: ``mechlp sweep`` (parameter grids) and ``mechlp plot`` (figures of sweeps and results).

``mechlp sweep MODEL --grid KEY=START:STOP:NUM ... [--question minmax|feasible|share|fees] [--budget B ...]
[--option KEY=VALUE ...] [--out FILE] [--executor processes|serial|dask://HOST:PORT] [--workers N]``
    Answer the question at every grid point (:func:`mechlp.workflows.sweep.sweep`). MODEL is a TOML model file
    (grid keys
    are override keys: ``persistence``, ``discount``, ``agents.buyer.prior``, ...) or a built-in model name
    (grid keys are its parameters: ``alpha``, ``delta``, ...). Rows are appended to ``--out`` as points finish;
    re-running with the same ``--out`` skips the points already there and keeps the rows of points outside
    the new grid; a file written for another sweep (grid keys, question, budget, options or model) is refused,
    naming the difference. Prints a summary (and the table when there is no ``--out``).
``mechlp plot RESULT --kind surplus|feasibility|fees|tree|states --out FIG.png|pdf``
    Draw a sweep CSV (:func:`mechlp.workflows.plots.plot`); or, when RESULT is a TOML model, solve the min-max mechanism
    (on a history tree with ``--horizon T``) and draw it (kinds ``tree`` and ``states``).

Exit codes: 0 every point answered (status ``ok``), 2 bad input (an ``--out`` file of another sweep included),
3 some or every point not answered (status ``failed`` or ``error``: the last line says how many), 130
interrupted (Ctrl-C: the workers are stopped and one line says how many rows the file keeps).

``mechlp boundary MODEL --x KEY=START:STOP:NUM [--y discount] [--budget B ...] [--question minmax|fees]
[--set KEY=VALUE ...] [--lo --hi --grid --tol --method] [--workers N] [--out FILE.csv] [--plot FIG.png]``
    The feasibility region's boundary (:func:`mechlp.workflows.boundary.feasibility_boundary`): on every line
    ``KEY = value``, every critical value of ``--y`` by scan and bisection; prints one line per line and budget,
    writes the frame (``--out``, read back by ``mechlp plot``) and draws the region (``--plot``).

``add_parsers(subparsers)`` registers the three commands; :func:`main` runs them standalone.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mechlp.catalog.io import load_model
from mechlp.cli.exits import BAD_INPUT, NOT_ANSWERED, SolverFailure
from mechlp.cli.options import add_command, add_options, parse_assignments, signature_default
from mechlp.solve import questions as design
from mechlp.workflows import plots
from mechlp.workflows.boundary import QUESTIONS as BOUNDARY_QUESTIONS
from mechlp.workflows.boundary import feasibility_boundary
from mechlp.workflows.sweep import ANSWER_META, EXECUTORS, QUESTIONS, SweepInterrupted, parse_grid_spec, sweep

__all__ = ["add_parsers", "main", "parse_options"]

PLOT_KINDS = plots.KINDS
SUMMARY_ROWS = 40


def parse_options(items: Sequence[str] | None, flag: str = "--option") -> dict[str, Any]:
    """``["certify=false", "rule=maxmin"]`` -> ``{"certify": False, "rule": "maxmin"}``
    (:func:`mechlp.cli.options.parse_assignments`; ``flag`` names the option in messages)."""
    return parse_assignments(items, flag)


def _cmd_sweep(args: argparse.Namespace) -> int:
    if not args.grid:
        raise ValueError("give at least one --grid KEY=START:STOP:NUM")
    grid: dict[str, list] = {}
    for spec in args.grid:
        key, values = parse_grid_spec(spec)
        if key in grid:
            raise ValueError(f"--grid {key!r} given twice")
        grid[key] = values
    budget: Any = None
    if args.budget:
        budget = args.budget if args.question == "feasible" else args.budget[0]
        if args.question != "feasible" and len(args.budget) > 1:
            raise ValueError(f"question {args.question!r} takes one --budget, got {args.budget}")
    t0 = time.perf_counter()
    try:
        df = sweep(
            args.model,
            grid,
            args.question,
            budget=budget,
            options=parse_options(args.options),
            out=args.out,
            executor=args.executor,
            workers=args.workers,
            chunksize=args.chunksize,
            progress=args.progress,
            retry_errors=args.retry_errors,
        )
    except SweepInterrupted as exc:
        print(f"mechlp: interrupted: {exc}", file=sys.stderr)
        return 130
    wall = time.perf_counter() - t0
    a = df.attrs
    n_bad = int((df["status"] != "ok").sum()) if "status" in df else 0
    rate = a["computed"] / wall if wall > 0 else float("nan")
    print(
        f"sweep {a['question']} of {args.model}: {a['points']} points ({' x '.join(str(len(v)) for v in grid.values())}"
        f" over {', '.join(grid)}); computed {a['computed']}, already done {a['skipped']}; "
        f"{wall:.2f} s ({rate:.2f} points/s); {n_bad} not ok"
    )
    if n_bad:
        bad = df[df["status"] != "ok"].head(5)
        for _, row in bad.iterrows():
            where = ", ".join(f"{k}={row[k]}" for k in grid)
            print(f"  {row['status']} at {where}: {row['error']}")
    if a.get("repaired"):
        print(f"cut off a partial last line of {args.out} ({a['repaired']} bytes, left by a killed run)")
    if args.out:
        print(f"wrote {args.out}")
    else:
        show = [c for c in df.columns if c not in ANSWER_META or c in ("seconds", "cpu_seconds")]
        print(df[show].to_string(max_rows=SUMMARY_ROWS, max_colwidth=40))
    if n_bad:  # some point has no answer: say how many, exit 3
        counts = df.loc[df["status"] != "ok", "status"].value_counts()
        kinds = ", ".join(f"{n} {status}" for status, n in counts.items())
        total = a["points"]
        head = f"every point failed ({total} of {total}: " if n_bad == total else f"{n_bad} of {total} points failed ("
        print(f"mechlp: {head}{kinds})", file=sys.stderr)
        return 3
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    src = Path(args.result)
    where = parse_options(args.where, "--where") if args.where else None
    if src.suffix == ".toml":
        kind = args.kind or ("tree" if args.horizon else "states")
        if kind not in ("tree", "states"):
            raise ValueError(f"a model file is drawn as kind 'tree' or 'states', not {kind!r}; plot a sweep CSV")
        env = load_model(src, args.set or [])
        res = design.minmax(env, horizon=args.horizon) if args.horizon else design.minmax(env)
        if res.status != "optimal":
            raise SolverFailure(f"the min-max LP did not solve: {res.message}")
        plots.plot(res, kind, path=args.out, title=args.title or f"min-max mechanism: {env.name}", size=args.size)
    else:
        if args.set or args.horizon:
            raise ValueError("--set and --horizon apply when RESULT is a TOML model file")
        if not src.is_file():
            raise FileNotFoundError(f"result file not found: {args.result}")
        plots.plot(
            str(src),
            args.kind,
            path=args.out,
            x=args.x,
            y=args.y,
            panel=args.panel,
            columns=args.column,
            where=where,
            overlay=args.overlay,
            agent=args.agent,
            title=args.title,
            size=args.size,
            ncols=args.ncols,
            sharey=args.sharey,
        )
    print(f"wrote {args.out}")
    return 0


def _cmd_boundary(args: argparse.Namespace) -> int:
    key, values = parse_grid_spec(args.x)
    fixed = parse_assignments(args.set, "--set") if args.set else None
    t0 = time.perf_counter()
    frame = feasibility_boundary(
        args.model,
        key,
        values,
        args.y,
        budget=args.budget,
        question=args.question,
        fixed=fixed,
        lo=args.lo,
        hi=args.hi,
        grid=args.grid,
        tol=args.tol,
        method=args.method,
        horizon=args.horizon,
        tail=args.tail,
        ic=args.ic,
        outside_option=args.outside_option,
        worst_over=args.worst_over,
        workers=args.workers,
        out=args.out,
    )
    print(
        f"boundary of {args.model} ({args.question}): critical {args.y} on {len(values)} lines of {key}, "
        f"{', '.join(dict.fromkeys(frame['budget']))}; {time.perf_counter() - t0:.2f} s"
    )
    for _, row in frame.iterrows():
        ivs = " u ".join(f"[{a:.8f}, {b:.8f}]" for a, b in row["intervals"]) or "none"
        note = "" if row["monotone"] else f" (criterion not monotone in {args.y}: refine --grid)"
        print(f"  {key} = {row[key]:g}, {row['budget']}: feasible {args.y} in {ivs}{note}")
    if args.out:
        print(f"wrote {args.out}")
    if args.plot:
        plots.plot(frame, "boundary", path=args.plot, overlay=args.overlay, title=args.title)
        print(f"wrote {args.plot}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sweep``, ``plot`` and ``boundary`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    default = functools.partial(signature_default, (sweep,))
    s = add_command(
        subparsers,
        "sweep",
        help="answer a question at every point of a parameter grid (parallel, resumable CSV)",
        description=(
            "Answer a question at every point of a parameter grid. Rows stream to --out as points finish; "
            "running again with the same --out skips the points already there."
        ),
    )
    s.add_argument("model", help="TOML model file, or a built-in model (lamba_usstp, yoon_binary, ...)")
    s.add_argument(
        "--grid",
        action="append",
        metavar="KEY=START:STOP:NUM",
        help="grid axis: NUM values from START to STOP, or KEY=V1,V2,... (repeat for more axes)",
    )
    s.add_argument("--question", choices=QUESTIONS, default=default("question"), help="what to compute")
    s.add_argument(
        "--budget",
        nargs="+",
        metavar="BUDGET",
        default=default("budget"),
        help="feasible: budget notions (none given: ex_ante interim); share: interim|ex_post; fees: ex_ante|interim",
    )
    s.add_argument(
        "--option",
        dest="options",
        action="append",
        metavar="KEY=VALUE",
        default=default("options"),
        help="keyword argument of the question (TOML value), repeatable",
    )
    s.add_argument("--out", metavar="FILE", default=default("out"), help="CSV file to stream rows to (and resume from)")
    s.add_argument(
        "--executor",
        default=default("executor"),
        metavar="{" + ",".join(EXECUTORS) + ",dask://HOST:PORT}",
        help="where points run",
    )
    s.add_argument("--workers", type=int, default=default("workers"), help="worker processes (None: CPU count)")
    s.add_argument("--chunksize", type=int, default=default("chunksize"), help="points per task (None: automatic)")
    s.add_argument("--no-progress", dest="progress", action="store_false", default=True, help="no progress bar")
    s.add_argument(
        "--no-retry-errors",
        dest="retry_errors",
        action="store_false",
        default=True,
        help="on resume, keep the rows that failed instead of computing them again",
    )
    s.set_defaults(func=_cmd_sweep)

    p = add_command(
        subparsers,
        "plot",
        help="draw a sweep CSV (or a model's min-max mechanism) to PNG/PDF",
        description="Draw a sweep CSV, or the min-max mechanism of a TOML model, to a PNG, PDF or SVG file.",
    )
    p.add_argument("result", help="sweep CSV (from mechlp sweep --out), or a TOML model file")
    p.add_argument("--kind", choices=PLOT_KINDS, default=None, help="figure kind (default: from the sweep question)")
    p.add_argument("--out", required=True, metavar="FIG", help="output file: .png, .pdf or .svg")
    p.add_argument("--x", default=None, help="grid key on the x axis")
    p.add_argument("--y", default=None, help="grid key on the y axis (feasibility)")
    p.add_argument("--panel", default=None, help="grid key with one panel per value")
    p.add_argument("--column", action="append", metavar="COL", help="column to draw (repeat; default: by kind)")
    p.add_argument("--where", action="append", metavar="KEY=VALUE", help="keep rows with this grid value")
    p.add_argument("--overlay", choices=["yoon"], default=None, help="feasibility: draw delta = 1/(3 - 2 alpha)")
    p.add_argument("--agent", default=None, help="fees: this agent's fee columns")
    p.add_argument("--title", default=None)
    p.add_argument("--size", choices=plots.SIZES, default="page", help="journal column, full page width or slide")
    p.add_argument("--ncols", type=int, default=None, help="panels per row (default: near-square grid)")
    p.add_argument("--sharey", action="store_true", default=False, help="one y-scale for every panel")
    p.add_argument("--horizon", type=int, default=None, help="TOML model: solve on a history tree of T periods")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="TOML model: override an entry")
    p.set_defaults(func=_cmd_plot)

    b = add_command(
        subparsers,
        "boundary",
        help="feasibility region with exact boundaries: every critical value along each grid line",
        description=(
            "On every line KEY = value of --x, find every critical value of --y (scan and bisection) where the "
            "question's budget notion becomes (in)feasible; the region's edges are these curves, not grid cells."
        ),
    )
    bdefault = functools.partial(signature_default, (feasibility_boundary,))
    b.add_argument("model", help="TOML model file, or a built-in model (lamba_usstp, yoon_binary, ...)")
    b.add_argument("--x", required=True, metavar="KEY=START:STOP:NUM", help="the grid lines (or KEY=V1,V2,...)")
    b.add_argument("--y", default=bdefault("y"), metavar="KEY", help="the key scanned and bisected on each line")
    b.add_argument(
        "--budget",
        nargs="+",
        metavar="BUDGET",
        default=list(bdefault("budget")),
        help="minmax: interim, ex_ante, ex_post; fees: ex_ante, interim",
    )
    b.add_argument("--question", choices=BOUNDARY_QUESTIONS, default=bdefault("question"), help="the criterion")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="hold a model key fixed (repeatable)")
    add_options(b, (feasibility_boundary,), ("lo", "hi", "tol", "grid", "method", "horizon", "tail", "ic"))
    add_options(b, (feasibility_boundary,), ("outside_option",))
    b.add_argument(
        "--worst-over",
        dest="worst_over",
        choices=("all", "support"),
        default=bdefault("worst_over"),
        help="fees: types over which Yoon's worst-off payoff is taken",
    )
    b.add_argument("--workers", type=int, default=bdefault("workers"), help="worker processes (1: this process)")
    b.add_argument(
        "--out", metavar="FILE", default=bdefault("out"), help="CSV file of the boundary (mechlp plot reads it)"
    )
    b.add_argument("--plot", metavar="FIG", default=None, help="draw the region (.png, .pdf or .svg)")
    b.add_argument("--overlay", choices=["yoon"], default=None, help="with --plot: draw delta = 1/(3 - 2 alpha)")
    b.add_argument("--title", default=None, help="with --plot: figure title")
    b.set_defaults(func=_cmd_boundary)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sweep`` / ``plot`` standalone: ``python -m mechlp.cli.sweep sweep MODEL ...``."""
    parser = argparse.ArgumentParser(prog="mechlp", description="Dynamic mechanism design with linear programming.")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SolverFailure as exc:
        print(f"mechlp: no answer: {exc}", file=sys.stderr)
        return NOT_ANSWERED
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"mechlp: error: {exc}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

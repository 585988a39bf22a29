"""Performance anchors of docs/design.md section 12, measured in one run and reported as ratios.

    python benchmarks/run.py                 # T = 8 history tree (87,380 nodes), then benchmarks/scale.py
    python benchmarks/run.py --quick         # T = 5 and scale.py --quick, under a minute
    python benchmarks/run.py --horizon 7     # any horizon
    python benchmarks/run.py --no-scale      # the LP anchor only
    python benchmarks/run.py --proofs        # then every issue-12 benchmark, each in its own process

After the anchor, the scale benchmarks of issue #7 run (``benchmarks/scale.py``: the backward recursion against
the LP paths on trees up to T = 10, Markov spaces up to 50 x 50 types, the continuous-limit critical delta).

The instance is Lamba's (2022) USSTP (2x2 bilateral trade, alpha = 0.7, delta = 0.95) on the finite history
tree, with bayesian IC, interim IR and ex ante budget balance, maximising the summed surplus (the LP that
``design.feasibility(env, "ex_ante", route="lp")`` solves). One LP is built once and handed to every solver path, so all
paths solve the same matrices:

* ``build``        ``build_lp(HistoryTree(env), budget="ex_ante")`` (median of ``--repeat`` runs);
* ``bare highspy`` ``passModel`` on the raw CSC arrays + ``run`` written inline here: the baseline;
* ``highs path``   ``mechlp.backends.solve_lp(lp, "highs")`` (includes its ``passModel`` and solution reads);
* ``feasibility``  ``design.feasibility(env, "ex_ante", route="lp")`` end to end, split into the timings its result
  reports (build / solve / verify) and the min-max diagnosis LP that ``feasibility`` also solves;
* ``cvxpy path``   ``mechlp.backends.solve_lp(lp, "cvxpy")`` (model construction + compile + HiGHS).

Solver paths are repeated ``--repeat`` times, interleaved, and the median is reported. Peak RSS is the
process's running maximum (``resource.getrusage``) after each stage, so it only grows down the table.
The objective values of all paths must agree to 1e-6 relative, otherwise the exit code is 1. Targets
(build < 0.5 s, HiGHS path within 1.5x of bare highspy) are reported as met / missed; ``--strict`` turns a
miss into exit code 2. Results are also written as JSON (default ``benchmarks/results/latest.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cvxpy
import highspy
import numpy as np
import scipy

import mechlp
import mechlp.solve.questions as design
from mechlp.backends import solve_lp
from mechlp.catalog.examples import lamba_usstp
from mechlp.constraints.formulation import build_lp
from mechlp.model.spaces import HistoryTree

ALPHA, DELTA = 0.7, 0.95
FULL_HORIZON, QUICK_HORIZON = 8, 5
BUILD_TARGET_S = 0.5  # build_lp at T = 8
HIGHS_RATIO_TARGET = 1.5  # HiGHS path / bare highspy
OBJ_RTOL = 1e-6
CVXPY_SLOW_S = 300.0  # if cvxpy takes longer than this, it is also measured at CVXPY_FALLBACK_HORIZON
CVXPY_FALLBACK_HORIZON = 6
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def bare_highspy(arrays: dict) -> tuple[float, float, int, str]:
    """The baseline: one Highs object, output off, passModel on the raw arrays, run. Returns
    (seconds, objective, simplex iterations, model status)."""
    t0 = time.perf_counter()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(
        arrays["n_col"],
        arrays["n_row"],
        arrays["nnz"],
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        arrays["cost"],
        arrays["col_lower"],
        arrays["col_upper"],
        arrays["row_lower"],
        arrays["row_upper"],
        arrays["start"],
        arrays["index"],
        arrays["value"],
        arrays["integrality"],
    )
    h.run()
    seconds = time.perf_counter() - t0
    info = h.getInfo()
    return seconds, float(info.objective_function_value), int(info.simplex_iteration_count), h.getModelStatus().name


def raw_arrays(lp) -> dict:
    """The LP's matrices as the contiguous float64 / int32 arrays passModel takes (prepared untimed)."""
    a = lp.A
    f64 = lambda v: np.ascontiguousarray(v, dtype=np.float64)  # noqa: E731
    return {
        "n_col": lp.n_cols,
        "n_row": lp.n_rows,
        "nnz": int(a.nnz),
        "cost": f64(lp.cost),
        "col_lower": f64(lp.col_lower),
        "col_upper": f64(lp.col_upper),
        "row_lower": f64(lp.row_lower),
        "row_upper": f64(lp.row_upper),
        "start": a.indptr.astype(np.int32),
        "index": a.indices.astype(np.int32),
        "value": f64(a.data),
        "integrality": np.zeros(lp.n_cols, dtype=np.int32),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def measure_instance(horizon: int, repeat: int, with_feasibility: bool, with_cvxpy: bool, log) -> dict:
    """Build the USSTP tree LP at ``horizon`` and time every path on it."""
    env = lamba_usstp(ALPHA, DELTA, horizon=horizon)
    name = f"USSTP a={ALPHA} d={DELTA} T={horizon}"
    log(f"[{name}] building ({repeat}x) ...")
    build_times, tree_times = [], []
    lp = None
    for _ in range(repeat):
        lp = None  # let the previous LP go before building the next one
        t0 = time.perf_counter()
        tree = HistoryTree(env)
        t1 = time.perf_counter()
        lp = build_lp(tree, budget="ex_ante")
        t2 = time.perf_counter()
        tree_times.append(t1 - t0)
        build_times.append(t2 - t1)
    inst = {
        "instance": name,
        "alpha": ALPHA,
        "delta": DELTA,
        "horizon": horizon,
        "budget": "ex_ante",
        "nodes": int(tree.n_nodes),
        "histories": int(tree.n_hist),
        "rows": int(lp.n_rows),
        "cols": int(lp.n_cols),
        "nonzeros": int(lp.nnz),
        "paths": {},
    }
    paths = inst["paths"]
    paths["build"] = {
        "seconds": median(build_times),
        "runs": build_times,
        "history_tree_seconds": median(tree_times),
        "peak_rss_mib": peak_rss_mib(),
    }

    arrays = raw_arrays(lp)
    bare_runs, highs_runs = [], []
    bare_obj = highs_obj = None
    log(f"[{name}] bare highspy and HiGHS path ({repeat}x each, interleaved) ...")
    for _ in range(repeat):
        sec, bare_obj, iters, bare_status = bare_highspy(arrays)
        bare_runs.append(sec)
        t0 = time.perf_counter()
        out = solve_lp(lp, "highs")
        highs_runs.append(time.perf_counter() - t0)
        if out.status != "optimal":
            raise RuntimeError(f"HiGHS path returned {out.status}: {out.message}")
        highs_obj = out.objective
    base = median(bare_runs)
    paths["bare highspy"] = {
        "seconds": base,
        "runs": bare_runs,
        "objective": bare_obj,
        "status": bare_status,
        "simplex_iterations": iters,
        "peak_rss_mib": peak_rss_mib(),
    }
    paths["highs path"] = {
        "seconds": median(highs_runs),
        "runs": highs_runs,
        "objective": highs_obj,
        "status": out.status,
        "peak_rss_mib": peak_rss_mib(),
    }
    del arrays, out

    if with_feasibility:
        log(f"[{name}] design.feasibility(env, 'ex_ante', route='lp') ...")
        nested: list[dict] = []
        original = design.minmax

        def timed_minmax(*args, **kwargs):  # time the diagnosis LP that feasibility() solves after its own
            t = time.perf_counter()
            res = original(*args, **kwargs)
            nested.append({"seconds": time.perf_counter() - t, "timings": dict(res.timings)})
            return res

        design.minmax = timed_minmax
        try:
            t0 = time.perf_counter()
            res = design.feasibility(env, "ex_ante", route="lp")
            total = time.perf_counter() - t0
        finally:
            design.minmax = original
        if res.status != "optimal":
            raise RuntimeError(f"feasibility returned {res.status}: {res.message}")
        diag = sum(n["seconds"] for n in nested)
        own = {k: float(v) for k, v in res.timings.items()}
        paths["feasibility"] = {
            "seconds": total,
            "timings": own,
            "minmax_diagnosis_seconds": diag,
            "minmax_diagnosis_timings": nested[0]["timings"] if nested else {},
            "other_seconds": total - sum(own.values()) - diag,
            "objective": res.solver.objective,
            "status": res.status,
            "message": res.message,
            "peak_rss_mib": peak_rss_mib(),
        }
        del res

    if with_cvxpy:
        cvx_runs = []
        cvx_obj = None
        log(f"[{name}] cvxpy path ...")
        stats: list[tuple[float, float]] = []  # cvxpy's own (compilation_time, solver solve_time) per run
        original_solve = cvxpy.Problem.solve

        def recording_solve(self, *args, **kwargs):  # observe cvxpy's split without changing the call
            value = original_solve(self, *args, **kwargs)
            stats.append((float(self.compilation_time or 0.0), float(self.solver_stats.solve_time or 0.0)))
            return value

        cvxpy.Problem.solve = recording_solve
        try:
            for _ in range(repeat):
                t0 = time.perf_counter()
                out = solve_lp(lp, "cvxpy")
                cvx_runs.append(time.perf_counter() - t0)
                if out.status != "optimal":
                    raise RuntimeError(f"cvxpy path returned {out.status}: {out.message}")
                cvx_obj = out.objective
                if cvx_runs[-1] > 60:  # slow: one run is enough
                    break
        finally:
            cvxpy.Problem.solve = original_solve
        paths["cvxpy path"] = {
            "seconds": median(cvx_runs),
            "runs": cvx_runs,
            "compile_seconds": median([c for c, _ in stats]) if stats else None,
            "highs_seconds": median([s for _, s in stats]) if stats else None,
            "objective": cvx_obj,
            "status": out.status,
            "message": out.message,
            "peak_rss_mib": peak_rss_mib(),
        }

    for p in paths.values():
        p["ratio_to_bare"] = p["seconds"] / base

    objs = {k: p["objective"] for k, p in paths.items() if p.get("objective") is not None}
    ref = objs["bare highspy"]
    worst = max(abs(v - ref) / max(abs(v), abs(ref), 1e-12) for v in objs.values())
    inst["objectives"] = objs
    inst["objective_max_rel_diff"] = worst
    inst["objectives_agree"] = bool(worst <= OBJ_RTOL)
    return inst


LEFT = {0, 5}  # instance and path columns are left-aligned, numbers right-aligned


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i in LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


def table(instances: list[dict]) -> str:
    head = ["instance", "nodes", "rows", "cols", "nonzeros", "path", "seconds", "x bare", "objective", "peak RSS MiB"]
    lines = []
    for inst in instances:
        common = [
            inst["instance"],
            f"{inst['nodes']:,}",
            f"{inst['rows']:,}",
            f"{inst['cols']:,}",
            f"{inst['nonzeros']:,}",
        ]
        for path, p in inst["paths"].items():
            obj = p.get("objective")
            lines.append(
                common
                + [
                    path,
                    f"{p['seconds']:.3f}",
                    f"{p['ratio_to_bare']:.2f}",
                    "" if obj is None else f"{obj:.9g}",
                    f"{p['peak_rss_mib']:.0f}",
                ]
            )
            if path == "feasibility":
                t = p["timings"]
                for part in ("build", "solve", "verify"):
                    if part in t:
                        lines.append([""] * 5 + [f"  - {part}", f"{t[part]:.3f}", "", "", ""])
                lines.append([""] * 5 + ["  - min-max diagnosis", f"{p['minmax_diagnosis_seconds']:.3f}", "", "", ""])
                lines.append([""] * 5 + ["  - other", f"{p['other_seconds']:.3f}", "", "", ""])
            if path == "cvxpy path" and p.get("compile_seconds") is not None:
                lines.append([""] * 5 + ["  - cvxpy compile", f"{p['compile_seconds']:.3f}", "", "", ""])
                lines.append([""] * 5 + ["  - HiGHS inside cvxpy", f"{p['highs_seconds']:.3f}", "", "", ""])
    widths = [max(len(r[j]) for r in [head, *lines]) for j in range(len(head))]
    out = [fmt_row(head, widths), "  ".join("-" * w for w in widths)]
    out += [fmt_row(r, widths) for r in lines]
    return "\n".join(out)


def targets(main: dict) -> list[dict]:
    p = main["paths"]
    out = []
    if main["horizon"] == FULL_HORIZON:
        out.append(
            {
                "target": f"build < {BUILD_TARGET_S} s (T = 8)",
                "value": p["build"]["seconds"],
                "met": p["build"]["seconds"] < BUILD_TARGET_S,
            }
        )
    out.append(
        {
            "target": f"HiGHS path <= {HIGHS_RATIO_TARGET}x bare highspy",
            "value": p["highs path"]["ratio_to_bare"],
            "met": p["highs path"]["ratio_to_bare"] <= HIGHS_RATIO_TARGET,
        }
    )
    out.append(
        {
            "target": f"objectives agree to {OBJ_RTOL:g} relative",
            "value": main["objective_max_rel_diff"],
            "met": main["objectives_agree"],
        }
    )
    return out


#: The issue-12 benchmarks (proofs, critical values, sharing, second best, trees by subtrees), run by ``--proofs``.
PROOF_SCRIPTS = ("proofs.py", "structured.py", "critical.py", "sharing.py", "second_best.py", "split.py")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"small tree (T = {QUICK_HORIZON})")
    ap.add_argument("--horizon", type=int, default=None, help=f"tree horizon (default {FULL_HORIZON})")
    ap.add_argument("--repeat", type=int, default=3, help="runs per path; the median is reported (default 3)")
    ap.add_argument("--no-cvxpy", action="store_true", help="skip the cvxpy path")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file (default %(default)s)")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a performance target is missed")
    ap.add_argument("--no-scale", action="store_true", help="skip the scale benchmarks (benchmarks/scale.py)")
    ap.add_argument(
        "--proofs",
        action="store_true",
        help=f"also run {', '.join(PROOF_SCRIPTS)} (issue #12), each in a fresh process (with --quick: quick modes)",
    )
    args = ap.parse_args(argv)
    horizon = args.horizon if args.horizon is not None else (QUICK_HORIZON if args.quick else FULL_HORIZON)
    if horizon < 1 or args.repeat < 1:
        ap.error("--horizon and --repeat must be positive")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    instances = [measure_instance(horizon, args.repeat, True, not args.no_cvxpy, log)]
    cvx = instances[0]["paths"].get("cvxpy path")
    if cvx is not None and cvx["seconds"] > CVXPY_SLOW_S and horizon > CVXPY_FALLBACK_HORIZON:
        log(f"cvxpy took {cvx['seconds']:.0f} s > {CVXPY_SLOW_S:.0f} s: measuring T = {CVXPY_FALLBACK_HORIZON} too")
        instances.append(measure_instance(CVXPY_FALLBACK_HORIZON, args.repeat, False, True, log))

    checks = targets(instances[0])
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "mechlp": getattr(mechlp, "__version__", "?"),
            "highspy": highspy_version(),
            "cvxpy": cvxpy.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "repeat": args.repeat,
        "instances": instances,
        "targets": checks,
        "peak_rss_mib": peak_rss_mib(),
        "total_seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(table(instances))
    print()
    for c in checks:
        print(f"{'MET ' if c['met'] else 'MISS'}  {c['target']}: {c['value']:.3g}")
    for inst in instances:
        if "cvxpy path" in inst["paths"]:
            print(
                f"cvxpy path / bare highspy at T = {inst['horizon']}: "
                f"{inst['paths']['cvxpy path']['ratio_to_bare']:.2f}x (stated, no target)"
            )
    print(
        f"peak RSS {report['peak_rss_mib']:.0f} MiB, {os.cpu_count()} CPUs, total {report['total_seconds']:.0f} s; "
        f"JSON written to {args.output}"
    )
    scale_code = 0
    if not args.no_scale:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import scale

        print("\n# scale benchmarks (benchmarks/scale.py)\n")
        scale_code = scale.run(quick=args.quick)
    proof_codes = {}
    if args.proofs:
        here = Path(__file__).resolve().parent
        for script in PROOF_SCRIPTS:  # a fresh process each: their peak-memory numbers stay their own
            print(f"\n# {script}\n", flush=True)
            cmd = [sys.executable, str(here / script)] + (["--quick"] if args.quick else [])
            proof_codes[script] = subprocess.run(cmd, check=False).returncode
    if any(proof_codes.values()):
        print(f"ERROR: benchmark scripts failed: {proof_codes}", file=sys.stderr)
        return 1
    if not all(inst["objectives_agree"] for inst in instances):
        print("ERROR: objective values disagree:", [inst["objectives"] for inst in instances], file=sys.stderr)
        return 1
    if scale_code:
        return scale_code
    if args.strict and not all(c["met"] for c in checks):
        return 2
    return 0


def highspy_version() -> str:
    try:
        from importlib.metadata import version

        return version("highspy")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "?"


if __name__ == "__main__":
    sys.exit(main())

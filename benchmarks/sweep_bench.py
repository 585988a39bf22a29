"""Sweep benchmark: a 40 x 40 (persistence, discount) feasibility sweep of Lamba's USSTP, killed and resumed,
and the points per second of the process executor against a plain serial loop, measured in one run.

    python benchmarks/sweep_bench.py              # full: 40 x 40 grid (a few minutes on 2 cores)
    python benchmarks/sweep_bench.py --quick      # 10 x 10 grid, 25 speed points
    python benchmarks/sweep_bench.py --speed-only # stage 3 only
    python benchmarks/sweep_bench.py --n 40 --speed-points 196 --rounds 3 --workers 2 --output FILE

Stages (all on models/lamba_usstp.toml, question "feasible": ex ante and interim budget balance, min-max
surplus, certificates verified):

1. **full sweep**: ``mechlp sweep`` as a subprocess with the default executor (processes, one per core) and a
   progress bar, uninterrupted, into a fresh CSV; wall time and points per second.
2. **kill and resume**: the same command into another CSV, killed (SIGKILL to its process group) once half the
   rows are written, then run again. Checks that the second run computes exactly the missing points, that every
   row written before the kill is unchanged (same ``finished`` timestamp and worker ``pid``), and that both CSVs
   hold the same answers.
3. **speed**: the same ``--speed-points`` points (a sub-grid) through a plain serial loop (the point function
   called in a ``for`` loop, no sweep machinery), ``sweep(executor="serial")`` and
   ``sweep(executor="processes")``, interleaved over ``--rounds`` rounds (so a burst of outside load hits all
   three alike); median points per second and the ratio to the plain loop.

Results are printed and written as JSON (default ``benchmarks/results/sweep_latest.json``).
Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mechlp.workflows.sweep import _check_budget, _make_task, _run_point, sweep

ROOT = Path(__file__).resolve().parent.parent
MODEL = str(ROOT / "models" / "lamba_usstp.toml")
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "sweep_latest.json"
ANSWER_COLS = ("status", "feasible_ex_ante", "feasible_interim", "certified_ex_ante", "certified_interim", "pi_min")


def _rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return []
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:] if len(r) == len(rows[0])]


def _cmd(n: int, out: Path, workers: int | None, progress: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "mechlp.cli",
        "sweep",
        MODEL,
        "--grid",
        f"persistence=0.5:0.99:{n}",
        "--grid",
        f"discount=0.3:0.99:{n}",
        "--question",
        "feasible",
        "--out",
        str(out),
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    if not progress:
        cmd.append("--no-progress")
    return cmd


def full_sweep(n: int, tmp: Path, workers: int | None) -> dict:
    out = tmp / "full.csv"
    t0 = time.perf_counter()
    res = subprocess.run(_cmd(n, out, workers, progress=True), stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    rows = _rows(out)
    print(res.stdout.strip())
    busy = sum(float(r["seconds"]) for r in rows if r["seconds"])
    return {
        "points": n * n,
        "rows": len(rows),
        "seconds": wall,
        "point_seconds_sum": busy,
        "effective_parallelism": busy / wall,
        "points_per_second": n * n / wall,
        "not_ok": sum(r["status"] != "ok" for r in rows),
        "feasible_interim": sum(r["feasible_interim"] == "True" for r in rows),
        "feasible_ex_ante": sum(r["feasible_ex_ante"] == "True" for r in rows),
        "exit_code": res.returncode,
        "csv": out,
    }


def kill_and_resume(n: int, tmp: Path, workers: int | None, full_csv: Path) -> dict:
    out = tmp / "resume.csv"
    cmd = _cmd(n, out, workers, progress=False)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and len(_rows(out)) < n * n // 2:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first_wall = time.perf_counter() - t0
    before = {(r["persistence"], r["discount"]): (r["finished"], r["pid"]) for r in _rows(out)}
    t1 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    second_wall = time.perf_counter() - t1
    after = _rows(out)
    keys = [(r["persistence"], r["discount"]) for r in after]
    kept = {k: (r["finished"], r["pid"]) for k, r in zip(keys, after, strict=True) if k in before}
    expected = f"computed {n * n - len(before)}, already done {len(before)}"
    full = {(r["persistence"], r["discount"]): tuple(r[c] for c in ANSWER_COLS) for r in _rows(full_csv)}
    mine = {k: tuple(r[c] for c in ANSWER_COLS) for k, r in zip(keys, after, strict=True)}
    checks = {
        "all points present once": len(after) == n * n and len(set(keys)) == n * n,
        "second run computed only the missing points": expected in res.stdout,
        "rows written before the kill unchanged": kept == before,
        "same answers as the uninterrupted sweep": mine == full,
    }
    return {
        "rows_at_kill": len(before),
        "killed_after_seconds": first_wall,
        "resume_seconds": second_wall,
        "resume_output": res.stdout.strip(),
        "checks": checks,
    }


def speed(n_points: int, workers: int | None, rounds: int) -> dict:
    """Plain loop, serial sweep and process sweep on the same points, interleaved over ``rounds``; medians."""
    side = max(2, int(round(n_points**0.5)))
    grid = {
        "persistence": [float(f"{v:.12g}") for v in np.linspace(0.5, 0.99, side)],
        "discount": [float(f"{v:.12g}") for v in np.linspace(0.3, 0.99, side)],
    }
    points = [{"persistence": a, "discount": d} for a in grid["persistence"] for d in grid["discount"]]
    task = _make_task(MODEL, grid, "feasible", _check_budget("feasible", None), None)
    times: dict[str, list[float]] = {"plain_loop": [], "sweep_serial": [], "sweep_processes": []}
    same = True
    busy, cpu_plain, cpu_proc = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        plain = [_run_point(task, p) for p in points]
        times["plain_loop"].append(time.perf_counter() - t0)
        cpu_plain.append(sum(r["cpu_seconds"] for r in plain))
        t0 = time.perf_counter()
        ser = sweep(MODEL, grid, "feasible", executor="serial", progress=False)
        times["sweep_serial"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        par = sweep(MODEL, grid, "feasible", executor="processes", workers=workers, progress=False)
        times["sweep_processes"].append(time.perf_counter() - t0)
        busy.append(float(par["seconds"].sum()) / times["sweep_processes"][-1])
        cpu_proc.append(float(par["cpu_seconds"].sum()))
        feas = [r["feasible_interim"] for r in plain]
        same = same and feas == list(par["feasible_interim"]) == list(ser["feasible_interim"])
    t0 = time.perf_counter()
    sweep(MODEL, {"persistence": [0.5, 0.6], "discount": [0.9]}, "feasible", workers=workers, progress=False)
    t_start = time.perf_counter() - t0  # a pool for two cheap points: mostly process start-up
    m = len(points)
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict = {"points": m, "rounds": rounds, "workers": workers or os.cpu_count()}
    for k, v in times.items():
        out[k] = {"seconds": med[k], "points_per_second": m / med[k], "runs": v}
    out["ratio_processes_to_plain"] = med["plain_loop"] / med["sweep_processes"]
    out["ratio_serial_sweep_to_plain"] = med["plain_loop"] / med["sweep_serial"]
    out["ratios_by_round"] = [p / q for p, q in zip(times["plain_loop"], times["sweep_processes"], strict=True)]
    out["pool_startup_seconds"] = t_start
    # CPU time per point is what contention from other processes does not change: the throughput the process
    # executor would reach on otherwise idle cores is about workers * (plain CPU / worker CPU), less start-up
    out["cpu_seconds_plain"] = statistics.median(cpu_plain)
    out["cpu_seconds_workers"] = statistics.median(cpu_proc)
    out["cpu_bound_ratio_estimate"] = out["workers"] * out["cpu_seconds_plain"] / out["cpu_seconds_workers"]
    out["effective_parallelism"] = statistics.median(busy)
    out["same_answers"] = bool(same)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="grid side (n x n points; default 40)")
    ap.add_argument("--speed-points", type=int, default=196, help="points in the speed comparison (default 196)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the speed comparison (default 3)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    ap.add_argument("--quick", action="store_true", help="10 x 10 grid and 25 speed points")
    ap.add_argument("--speed-only", action="store_true", help="run stage 3 only")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = ap.parse_args(argv)
    n, m = (10, 25) if args.quick else (args.n, args.speed_points)
    report: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "grid": f"{n} x {n}: persistence 0.5..0.99, discount 0.3..0.99, question feasible (ex ante, interim)",
    }
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before starting: other processes compete for the cores")
    ok = True
    if not args.speed_only:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            print(f"== 1. full {n} x {n} sweep (default executor, progress bar on stderr)")
            full = full_sweep(n, tmp, args.workers)
            print(
                f"   {full['points']} points in {full['seconds']:.1f} s = {full['points_per_second']:.2f} points/s; "
                f"effective parallelism (sum of point times / wall) {full['effective_parallelism']:.2f}"
            )
            print("== 2. kill at half, then resume")
            kr = kill_and_resume(n, tmp, args.workers, full["csv"])
            print(
                f"   killed with {kr['rows_at_kill']} rows after {kr['killed_after_seconds']:.1f} s; resumed in "
                f"{kr['resume_seconds']:.1f} s: {kr['resume_output']}"
            )
            for name, passed in kr["checks"].items():
                print(f"   {'OK  ' if passed else 'FAIL'} {name}")
            full.pop("csv")
        report.update({"full_sweep": full, "kill_and_resume": kr})
        ok = all(kr["checks"].values()) and full["exit_code"] == 0 and full["not_ok"] == 0
    rounds = 1 if args.quick else args.rounds
    print(f"== 3. speed on {m} points (median of {rounds} interleaved rounds)")
    sp = speed(m, args.workers, rounds)
    for key in ("plain_loop", "sweep_serial", "sweep_processes"):
        print(f"   {key:<16} {sp[key]['seconds']:7.2f} s  {sp[key]['points_per_second']:6.2f} points/s")
    print(
        f"   pool start-up {sp['pool_startup_seconds']:.2f} s; effective parallelism {sp['effective_parallelism']:.2f}"
    )
    print("   processes / plain loop by round: " + ", ".join(f"{r:.2f}x" for r in sp["ratios_by_round"]))
    print(
        f"   CPU seconds for the points: plain loop {sp['cpu_seconds_plain']:.2f}, workers "
        f"{sp['cpu_seconds_workers']:.2f} -> on idle cores about {sp['cpu_bound_ratio_estimate']:.2f}x"
    )
    print(
        f"   processes / plain loop: {sp['ratio_processes_to_plain']:.2f}x with {sp['workers']} workers; "
        f"serial sweep / plain loop: {sp['ratio_serial_sweep_to_plain']:.2f}x; same answers: {sp['same_answers']}"
    )
    report.update({"speed": sp, "load_average_at_end": os.getloadavg()})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.output}")
    return 0 if ok and sp["same_answers"] else 1


if __name__ == "__main__":
    sys.exit(main())

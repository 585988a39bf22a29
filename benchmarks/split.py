"""Split recursion benchmark (issue #12, item 6): Pi* at every history of trees too large for one recursion.

    python benchmarks/split.py            # T = 10..12 against the unsplit recursion, T = 13 split (serial, Dask with
                                          # 2 workers, one subtree per cut history): about 8 minutes on 2 cores
    python benchmarks/split.py --quick    # T = 8, 9 at a 16 MiB limit (forced cuts), Dask at T = 9: under a minute
    python benchmarks/split.py --memory-limit 2 --unsplit-limit 6 --keep DIR

Every run is a fresh Python process (peak RSS is its ``ru_maxrss``; a Dask run's workers report their own). Rows:

* ``unsplit``   ``mechlp.solve.recursion.minmax_result`` on the whole tree (recursion, transfers, verifier), only
  where the estimator predicts it fits ``--unsplit-limit`` GiB;
* ``split``     ``mechlp.workflows.split.split_minmax`` with the cut depth chosen for ``--memory-limit`` GiB per
  process, one subtree per last profile, Pi* of every history streamed to ``surplus.npy`` (``expand=True``);
* ``dask``      the same on a ``distributed.LocalCluster`` of 2 worker processes (one thread each);
* ``general``   one subtree per cut history (``distinct=False``), serial.

``max |dPi*|`` compares Pi* at every history with the unsplit recursion's (where it ran) or with the serial split's
(``dask``, ``general``); ``ratio`` is seconds / unsplit seconds. Results: ``benchmarks/results/split.json``.
Exit code 1 if any run is unverified or disagrees by more than 1e-12.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GIB = 2**30
TOL = 1e-12


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(spec: dict) -> dict:
    """One run, in this (fresh) process."""
    import numpy as np

    from mechlp.catalog.examples import lamba_usstp
    from mechlp.workflows.split import split_minmax

    horizon, out = spec["horizon"], Path(spec["out"])
    env = lamba_usstp(horizon=horizon)
    out.mkdir(parents=True, exist_ok=True)
    row: dict = {"kind": spec["kind"], "T": horizon}
    t0 = time.perf_counter()
    if spec["kind"] == "unsplit":
        from mechlp.solve.recursion import minmax_result

        res = minmax_result(env, horizon=horizon, memory_limit=spec["unsplit_limit"])
        row.update(seconds=time.perf_counter() - t0, verified=res.status == "optimal", nodes=res.space.n_nodes)
        row.update(cut=0, subtrees=1, cut_histories=1, min_surplus=float(res.surplus.min()))
        np.save(out / "surplus.npy", res.surplus)
        row["peak_rss"] = _peak()
        return row
    kw = {"memory_limit": spec["memory_limit"], "directory": out, "expand": True}
    if spec["kind"] == "general":
        kw["distinct"] = False
    if spec["kind"] == "dask":
        import distributed

        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            t0 = time.perf_counter()  # (the cluster's start-up is not counted)
            res = split_minmax(env, executor=client, **kw)
    else:
        res = split_minmax(env, **kw)
    row.update(seconds=time.perf_counter() - t0, verified=res.verified, nodes=res.nodes, cut=res.cut_depth)
    row.update(subtrees=len(res.subtrees), cut_histories=int(res.roots.size), min_surplus=res.min_surplus)
    row.update(pointwise_optimal=res.pointwise_optimal, estimate=res.estimate, split_seconds=res.seconds)
    row["peak_rss"] = _peak()
    row["worker_peak_rss"] = max(r.peak_rss for r in res.subtrees)
    return row


def run(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"run {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(a: Path, b: Path) -> float:
    import numpy as np

    x, y = np.load(a, mmap_mode="r"), np.load(b, mmap_mode="r")
    if x.shape != y.shape:
        return float("inf")
    step = 1 << 22
    return max(float(np.abs(x[i : i + step] - y[i : i + step]).max()) for i in range(0, x.size, step))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-limit", type=float, default=None, help="GiB per process for a subtree (default 2)")
    ap.add_argument("--unsplit-limit", type=float, default=6.0, help="GiB: run the unsplit recursion below this")
    ap.add_argument("--keep", type=Path, default=None, help="keep the Pi* files in this directory")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from mechlp.catalog.examples import lamba_usstp
    from mechlp.model.spaces import estimate_memory

    limit = int((args.memory_limit or (1 / 64 if args.quick else 2.0)) * GIB)
    unsplit_limit = int(args.unsplit_limit * GIB)
    if args.quick:
        plan = [(8, ["unsplit", "split", "general"]), (9, ["unsplit", "split", "dask"])]
    else:
        plan = [(10, ["unsplit", "split"]), (11, ["unsplit", "split"]), (12, ["unsplit", "split"])]
        plan.append((13, ["unsplit", "split", "dask", "general"]))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mechlp-split-"))
    rows, bad = [], False
    header = (
        f"{'T':>3} {'nodes':>11} {'run':>8} {'cut d':>5} {'subtrees':>9} {'seconds':>8} {'ratio':>6} "
        f"{'peak RSS MiB':>12} {'worker MiB':>10} {'min Pi*':>9} {'max |dPi*|':>10} verified"
    )
    print(f"Lamba USSTP (alpha 0.7, delta 0.95); subtree memory limit {limit / GIB:.3g} GiB per process")
    print(header)
    print("-" * len(header))
    try:
        for horizon, kinds in plan:
            base, base_s = None, None
            for kind in kinds:
                out = work / f"T{horizon}-{kind}"
                if kind == "unsplit":
                    need = estimate_memory(lamba_usstp(horizon=horizon), "minmax", horizon=horizon, method="recursion")
                    if need.bytes > unsplit_limit:
                        print(
                            f"{horizon:>3} {need.nodes:>11,} {'unsplit':>8}   (predicted {need.bytes / GIB:.2f} GiB "
                            f"> --unsplit-limit {unsplit_limit / GIB:.3g} GiB: not run)"
                        )
                        continue
                spec = {"kind": kind, "horizon": horizon, "out": str(out), "memory_limit": limit}
                spec["unsplit_limit"] = unsplit_limit
                row = run(spec)
                if kind == "unsplit":
                    row["max_diff"] = None
                elif kind == "split":
                    row["max_diff"] = None if base is None else compare(out / "surplus.npy", base / "surplus.npy")
                else:
                    row["max_diff"] = compare(out / "surplus.npy", work / f"T{horizon}-split" / "surplus.npy")
                if kind == "unsplit":
                    base, base_s = out, row["seconds"]
                row["ratio"] = None if base_s is None else row["seconds"] / base_s
                bad |= not row["verified"] or (row["max_diff"] is not None and row["max_diff"] > TOL)
                rows.append(row)
                worker = f"{row['worker_peak_rss'] / 2**20:>10.0f}" if kind == "dask" else " " * 10
                ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
                diff = "" if row["max_diff"] is None else f"{row['max_diff']:.1e}"
                print(
                    f"{horizon:>3} {row['nodes']:>11,} {kind:>8} {row['cut']:>5} "
                    f"{str(row['subtrees']) + '/' + str(row['cut_histories']):>9} {row['seconds']:>8.2f} "
                    f"{ratio:>6} {row['peak_rss'] / 2**20:>12.0f} "
                    f"{worker} {row['min_surplus']:>9.4g} "
                    f"{diff:>10} {row['verified']}",
                    flush=True,
                )
            if not args.keep:
                for p in work.glob(f"T{horizon}-*"):
                    shutil.rmtree(p, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "split.json").write_text(json.dumps({"memory_limit": limit, "rows": rows}, indent=1) + "\n")
    print("subtrees: solved / cut histories; ratio: seconds / unsplit seconds (same T); max |dPi*| against the unsplit")
    print("recursion (split) or the serial split (dask, general) at every history")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

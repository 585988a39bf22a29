"""Scale benchmarks of issue #7: the backward recursion against the LP paths, in one run, as ratios.

    python benchmarks/scale.py            # everything below, a few minutes on 2 cores
    python benchmarks/scale.py --quick    # small instances only, well under a minute

(``python benchmarks/run.py`` runs the LP anchor of docs/design.md section 12 and then this script.)

Instances and paths
    * 2x2 bilateral trade trees (Lamba's USSTP, alpha = 0.7, delta = 0.95), T = 4..10, and 3x3 trees
      (values 0.2/0.6/1.0, costs 0/0.4/0.8, renewal kernels 0.7, delta = 0.9), T = 4..7;
    * Markov spaces of interleaved-grid bilateral trade (:func:`mechlp.solve.critical.interleaved_trade`) with
      K x K types, renewal kernels (persistence 0.7) or iid uniform types, delta = 0.9, K = 5, 10, 20, 50.

    Paths (each in a fresh Python process, so that its peak resident memory is its own):

    * ``recursion``       ``mechlp.solve.recursion.solve``: interim utilities and Pi* at every history, with the
      pointwise-optimality check;
    * ``recursion+verify`` ``design.minmax(method="recursion")``: the above plus transfers, the independent
      verifier (all misreports) and the verifier's own surplus (split in the table);
    * ``lp (highs)``      ``design.minmax(backend="highs")``: build, HiGHS, verify;
    * ``lp (cvxpy)``      ``design.minmax(backend="cvxpy")``.

    Ratios are path seconds / ``recursion+verify`` seconds (same work: a verified min-max mechanism). Agreement
    is ``max_h |Pi*_rec(h) - Pi*_lp(h)|`` and must be <= 1e-9 wherever both run (exit code 1 otherwise).
    LP paths are skipped above the sizes in ``LP_LIMITS`` and stopped after ``LP_TIMEOUT`` seconds.

Also measured
    * the verifier's own peak (``tracemalloc``, numpy allocations) at T = 10;
    * the critical discount factor for efficiency under interim budget balance on interleaved K-point grids with
      iid uniform types, K = 10, 20, 40, 80 (Athey and Miller 2007; Lamba 2022 footnote 24: it rises toward 1/2).

Results go to ``benchmarks/results/scale.json`` (gitignored); the README table is copied from the printout.
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
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "scale.json"
AGREE = 1e-9
LP_TIMEOUT = 120.0  # seconds per LP worker (the process is stopped after this)
#: largest instances each LP path is attempted on: (family, K per agent) -> horizon or Markov K
LP_LIMITS = {"highs": {"2x2": 8, "3x3": 6, "markov": 5}, "cvxpy": {"2x2": 7, "3x3": 5, "markov": 5}}
REPEAT_BUDGET_S = 3.0  # repeat a path (median) while the runs so far took less than this


# ---------------------------------------------------------------------------------------------- instances
def make_env(spec: dict):
    from mechlp.catalog.examples import lamba_usstp
    from mechlp.model.environment import bilateral_trade, renewal_matrix
    from mechlp.solve.critical import interleaved_trade

    if spec["family"] == "2x2":
        return lamba_usstp(0.7, 0.95)
    if spec["family"] == "3x3":
        kern = renewal_matrix(3, 0.7)
        third = [1 / 3, 1 / 3, 1 / 3]
        return bilateral_trade([0.2, 0.6, 1.0], [0.0, 0.4, 0.8], third, third, kern, kern, 0.9, name="trade_3x3")
    return interleaved_trade(spec["k"], 0.9, persistence=spec.get("persistence"))


def instance_name(spec: dict) -> str:
    if spec["family"] in ("2x2", "3x3"):
        return f"{spec['family']} tree T={spec['horizon']}"
    kern = "iid" if spec.get("persistence") is None else f"renewal {spec['persistence']}"
    return f"Markov {spec['k']}x{spec['k']} {kern}"


# ---------------------------------------------------------------------------------------------- worker
def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB: ``VmHWM`` of ``/proc/self/status`` on Linux (it belongs to the
    process image, whereas ``ru_maxrss`` survives ``exec`` and would report the parent's peak), else
    ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def worker(task: dict) -> dict:
    """Run one path on one instance in this (fresh) process; return timings, sizes and the surplus file."""
    import tracemalloc

    from mechlp.audit.verifier import verify
    from mechlp.solve import questions as design
    from mechlp.solve import recursion

    warnings.simplefilter("ignore", RuntimeWarning)
    spec, path = task["spec"], task["path"]
    base_rss = peak_rss_mib()
    env = make_env(spec)
    kw = {"horizon": spec["horizon"]} if "horizon" in spec else {}
    runs: list[float] = []
    out: dict = {"path": path}
    pi = None
    while True:
        t0 = time.perf_counter()
        if path == "recursion":
            sol = recursion.solve(env, **kw)
            runs.append(time.perf_counter() - t0)
            assert sol.status == "optimal", sol.message
            pi = sol.surplus
            out.update(
                pointwise_optimal=sol.pointwise_optimal,
                split={k: float(v) for k, v in sol.seconds.items()},
                iterations=sol.iterations,
                exact_step=sol.exact_step,
                residual=sol.residual,
                histories=int(sol.space.n_hist),
                nodes=int(sol.space.n_nodes),
            )
        elif path == "verifier memory":
            sol = recursion.solve(env, **kw)
            mech = sol.mechanism()
            tracemalloc.start()
            t1 = time.perf_counter()
            cert = verify(mech, ic="bayesian", ir="interim", budget="none")
            runs.append(time.perf_counter() - t1)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out.update(tracemalloc_peak_mib=peak / 2**20, ok=bool(cert.ok))
        else:
            method = "recursion" if path == "recursion+verify" else "lp"
            backend = "cvxpy" if path == "lp (cvxpy)" else "highs"
            res = design.minmax(env, method=method, backend=backend, **kw)
            runs.append(time.perf_counter() - t0)
            assert res.status == "optimal", res.message
            pi = res.surplus
            out.update(
                split={k: float(v) for k, v in res.timings.items()},
                verified=bool(res.certificate.ok),
                nonzeros=res.size.get("nonzeros"),
                rows=res.size.get("rows"),
            )
        if sum(runs) > REPEAT_BUDGET_S or len(runs) >= 3:
            break
    out.update(seconds=float(statistics.median(runs)), runs=runs, peak_rss_mib=peak_rss_mib(), base_rss_mib=base_rss)
    if pi is not None:
        np.save(task["pi_file"], pi)
        out["pi_file"] = task["pi_file"]
    return out


def run_worker(task: dict, timeout: float, log) -> dict:
    """Run ``worker(task)`` in a fresh interpreter (stopped after ``timeout`` seconds)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        log(f"    {task['path']}: stopped after {timeout:.0f} s")
        return {"path": task["path"], "skipped": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        log(proc.stderr[-2000:])
        return {"path": task["path"], "skipped": f"failed: {proc.stderr.strip().splitlines()[-1][:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- driver
def lp_allowed(spec: dict, backend: str) -> bool:
    lim = LP_LIMITS[backend]
    if spec["family"] in ("2x2", "3x3"):
        return spec["horizon"] <= lim[spec["family"]]
    return spec["k"] <= lim["markov"]


def lp_size(spec: dict) -> str:
    """The LP's predicted size (for skipped LP paths)."""
    from mechlp.model.spaces import MarkovSpace, estimate_tree_size

    env = make_env(spec)
    est = estimate_tree_size(env, spec["horizon"]) if "horizon" in spec else MarkovSpace(env).size()
    return f"{est.nonzeros:,} nonzeros, ~{est.bytes / 2**30:.1f} GiB predicted"


def measure(spec: dict, tmp: Path, log, with_lp: bool = True) -> dict:
    name = instance_name(spec)
    log(f"[{name}]")
    paths = ["recursion", "recursion+verify"] if spec.get("verify", True) else ["recursion"]
    if with_lp:
        paths += [p for p, b in (("lp (highs)", "highs"), ("lp (cvxpy)", "cvxpy")) if lp_allowed(spec, b)]
    results = {}
    for path in paths:
        task = {"spec": spec, "path": path, "pi_file": str(tmp / f"{name}-{path}.npy".replace(" ", "_"))}
        timeout = LP_TIMEOUT if path.startswith("lp") else 600.0
        results[path] = run_worker(task, timeout, log)
        r = results[path]
        if "seconds" in r:
            log(f"    {path}: {r['seconds']:.3f} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    inst = {"instance": name, "spec": spec, "paths": results}
    rec = results["recursion"]
    inst["histories"], inst["nodes"] = rec.get("histories"), rec.get("nodes")
    ref = results.get("recursion+verify", rec)
    pi_rec = np.load(rec["pi_file"])
    for path, r in results.items():
        if "seconds" in r and "seconds" in ref:
            r["ratio"] = r["seconds"] / ref["seconds"]
        if path.startswith("lp") and "pi_file" in r:
            r["agreement"] = float(np.max(np.abs(np.load(r["pi_file"]) - pi_rec)))
        if r.get("nonzeros"):
            inst["nonzeros"] = r["nonzeros"]
    if with_lp and not any(p.startswith("lp") and "seconds" in r for p, r in results.items()):
        inst["lp_note"] = "LP not run: " + lp_size(spec)
    inst["min_surplus"] = float(pi_rec.min())
    inst["root_surplus"] = float(pi_rec[0])
    return inst


def continuous_limit(ks: list[int], log) -> list[dict]:
    from mechlp.solve.critical import critical_delta, interleaved_trade

    out = []
    for k in ks:
        t0 = time.perf_counter()
        cd = critical_delta(interleaved_trade(k), "interim", lo=0.25, hi=0.75, grid=11, tol=1e-9)
        sec = time.perf_counter() - t0
        log(f"[continuous limit K={k}] critical delta {cd.critical} in {sec:.1f} s ({cd.evaluations} evaluations)")
        out.append(
            {
                "K": k,
                "critical": cd.critical,
                "brackets": cd.brackets,
                "monotone": cd.monotone,
                "not_certified": cd.not_certified,
                "evaluations": cd.evaluations,
                "seconds": sec,
                "seconds_per_evaluation": sec / cd.evaluations,
            }
        )
    return out


def table(instances: list[dict]) -> str:
    head = ["instance", "nodes", "LP nonzeros", "path", "seconds", "x rec+verify", "peak RSS MiB", "max |dPi*|"]
    rows = []
    for inst in instances:
        first = True
        for path, r in inst["paths"].items():
            cells = [
                inst["instance"] if first else "",
                f"{inst['nodes']:,}" if first and inst.get("nodes") else "",
                f"{inst['nonzeros']:,}" if first and inst.get("nonzeros") else "",
                path,
            ]
            if "seconds" in r:
                cells += [
                    f"{r['seconds']:.3f}",
                    f"{r['ratio']:.1f}" if "ratio" in r else "",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{r['agreement']:.1e}" if "agreement" in r else "",
                ]
            else:
                cells += [r.get("skipped", ""), "", "", ""]
            rows.append(cells)
            first = False
            if path in ("recursion", "recursion+verify") and "split" in r:
                split = ", ".join(f"{k} {v:.3f}" for k, v in r["split"].items())
                rows.append(["", "", "", f"  (last run: {split})", "", "", "", ""])
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    left = {0, 3}

    def fmt(r):
        cells = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if j in left else c.rjust(w) for j, (c, w) in cells).rstrip()

    notes = [f"{inst['instance']}: {inst['lp_note']}" for inst in instances if inst.get("lp_note")]
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *[fmt(r) for r in rows], *notes])


def run(quick: bool = False, output: Path = DEFAULT_OUTPUT, log=None) -> int:
    """Run the scale benchmarks; print the tables; write JSON. Returns an exit code (1: disagreement)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    started = time.perf_counter()
    if quick:
        specs = [{"family": "2x2", "horizon": t} for t in (4, 6, 8)]
        specs += [{"family": "3x3", "horizon": 4}]
        specs += [{"family": "markov", "k": 5, "persistence": 0.7}, {"family": "markov", "k": 50, "persistence": 0.7}]
        ks = [10, 20]
    else:
        specs = [{"family": "2x2", "horizon": t} for t in range(4, 11)]
        specs += [{"family": "3x3", "horizon": t} for t in range(4, 8)]
        specs += [{"family": "markov", "k": k, "persistence": 0.7} for k in (5, 10, 20, 50)]
        specs += [{"family": "markov", "k": 50, "persistence": None}]
        ks = [10, 20, 40, 80]
    for s in specs:  # the verifier needs an n_nodes x n_nodes sparse LU on Markov spaces: small ones only
        if s["family"] == "markov" and s["k"] > 10:
            s["verify"] = False
    instances = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            instances.append(measure(spec, Path(tmp), log))
        base = run_worker(
            {"spec": {"family": "2x2", "horizon": 1}, "path": "recursion", "pi_file": f"{tmp}/b.npy"}, 60, log
        )
        verifier = None
        if not quick:
            verifier = run_worker(
                {"spec": {"family": "2x2", "horizon": 10}, "path": "verifier memory", "pi_file": f"{tmp}/v.npy"},
                600,
                log,
            )
    limit = continuous_limit(ks, log)
    agreements = [r["agreement"] for i in instances for r in i["paths"].values() if "agreement" in r]
    worst = max(agreements) if agreements else 0.0
    checks = _targets(instances, verifier)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "baseline_rss_mib": base.get("peak_rss_mib"),
        "instances": instances,
        "verifier_T10": verifier,
        "continuous_limit": limit,
        "max_agreement": worst,
        "targets": checks,
        "total_seconds": time.perf_counter() - started,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(table(instances))
    print()
    print("continuous limit (interleaved K-point grids, iid uniform types, interim budget balance):")
    for row in limit:
        crit = ", ".join(f"{c:.9f}" for c in row["critical"])
        print(
            f"  K = {row['K']:3d}: critical delta {crit}  ({row['evaluations']} evaluations, {row['seconds']:.1f} s, "
            f"{row['seconds_per_evaluation'] * 1000:.0f} ms each)"
        )
    if verifier and "seconds" in verifier:
        print(
            f"verifier alone at T = 10: {verifier['seconds']:.2f} s, tracemalloc peak "
            f"{verifier['tracemalloc_peak_mib']:.0f} MiB, process peak RSS {verifier['peak_rss_mib']:.0f} MiB"
        )
    print(f"fresh-process baseline (imports + T = 1 solve): {base.get('peak_rss_mib', float('nan')):.0f} MiB RSS")
    for c in checks:
        print(f"{'MET ' if c['met'] else 'MISS'}  {c['target']}: {c['value']}")
    print(
        f"max |Pi*_rec - Pi*_lp| over all instances: {worst:.2e}; total {report['total_seconds']:.0f} s; JSON {output}"
    )
    if worst > AGREE:
        print(f"ERROR: recursion and LP disagree by {worst:.3g} > {AGREE:g}", file=sys.stderr)
        return 1
    return 0


def _targets(instances: list[dict], verifier: dict | None) -> list[dict]:
    by = {i["instance"]: i for i in instances}
    out = []
    t10 = by.get("2x2 tree T=10")
    if t10 and "seconds" in t10["paths"].get("recursion+verify", {}):
        r = t10["paths"]["recursion+verify"]
        out.append(
            {"target": "2x2 T=10 Pi* + verification < 10 s", "value": f"{r['seconds']:.2f} s", "met": r["seconds"] < 10}
        )
        out.append(
            {
                "target": "2x2 T=10 peak < 4 GiB",
                "value": f"{r['peak_rss_mib']:.0f} MiB",
                "met": r["peak_rss_mib"] < 4096,
            }
        )
    t8 = by.get("2x2 tree T=8")
    if t8 and "ratio" in t8["paths"].get("lp (highs)", {}):
        ratio = t8["paths"]["lp (highs)"]["ratio"]
        out.append({"target": "2x2 T=8 LP path / recursion >= 20x", "value": f"{ratio:.1f}x", "met": ratio >= 20})
    for name in ("Markov 50x50 renewal 0.7", "Markov 50x50 iid"):
        m = by.get(name)
        if m and "seconds" in m["paths"]["recursion"]:
            s = m["paths"]["recursion"]["seconds"]
            out.append({"target": f"{name}: Pi* at every state < 2 s", "value": f"{s:.3f} s", "met": s < 2})
    ag = [r["agreement"] for i in instances for r in i["paths"].values() if "agreement" in r]
    if ag:
        out.append({"target": f"recursion = LP to {AGREE:g}", "value": f"{max(ag):.1e}", "met": max(ag) <= AGREE})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small instances only")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file (default %(default)s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker)), default=float))
        return 0
    return run(args.quick, args.output)


if __name__ == "__main__":
    sys.exit(main())

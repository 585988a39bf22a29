"""Critical discount factors at the speed of answers (issue #12): ``critical_delta`` by each method.

For each model, median of ``--repeat`` runs in this process, default grid (41 points on [0.01, 0.99], then
bisection to 1e-9):

* ``recursion``: ``critical_delta(method="recursion")``: every evaluation by the recursion (Lamba 2022, Lemma 6);
* ``lp``: ``critical_delta(method="lp")`` (``lp_scan="confirm"``): the recursion scans and bisects, verified LP
  answers confirm the sign at both ends of every bracket (every evaluation an LP when the recursion is not
  certified tight, e.g. non-FOSD kernels);
* ``lp full``: ``critical_delta(method="lp", lp_scan="full")``: every evaluation a verified LP, warm-started;
* ``old lp``: the implementation before this change, written out here: ``scan_and_bisect`` over
  ``minmax(env, method="lp")`` at every point (a cold LP each, plus minmax's tightness diagnosis: one LP per
  history on small spaces that no theorem covers). It takes minutes on 5 x 5 models, so it runs once, and on the
  5 x 5 models (and with ``--quick`` on the 3 x 3 one) it is estimated as (evaluations of the recursion's scan) x
  (median of 3 single evaluations at delta = 0.5), marked ``est.``, unless ``--old-everywhere``.

``x Pi*`` is seconds / one recursion evaluation of Pi* (``recursion.solve`` at delta = 0.5, median of 5, same
run); ``old/this`` is ``old lp`` seconds / seconds (the speed-up). The critical values of every method must agree
to 2 x tol (exit code 1 otherwise). Run: ``python benchmarks/critical.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds

import mechlp as ml  # noqa: E402
from mechlp.model import tolerances  # noqa: E402
from mechlp.model.bisection import scan_and_bisect  # noqa: E402
from mechlp.model.environment import Environment  # noqa: E402
from mechlp.model.spaces import DEFAULT_MEMORY_LIMIT  # noqa: E402
from mechlp.solve import questions as design  # noqa: E402
from mechlp.solve import recursion  # noqa: E402
from mechlp.solve.critical import critical_delta, interleaved_trade  # noqa: E402

TOL = tolerances.BISECTION_WIDTH


def _rebuild(env: Environment, d: float) -> Environment:
    return Environment(env.agents, env.actions, d, env.horizon, env.allocation, name=env.name, meta=env.meta)


def old_lp_criterion(env: Environment, budget: str, counter: list[int] | None = None):
    """The criterion of the old ``method="lp"``: one cold, verified ``minmax(method="lp")`` per discount factor."""

    def f(d: float) -> float:
        if counter is not None:
            counter[0] += 1
        res = design.minmax(_rebuild(env, d), method="lp")
        if res.status == "infeasible":
            return -np.inf
        if res.status != "optimal":
            raise ValueError(f"the min-max LP failed at delta = {d!r}: {res.status}: {res.message}")
        return float(res.surplus[0]) if budget == "ex_ante" else float(res.surplus.min())

    return f


def old_lp(env: Environment, budget: str, grid: int = 41):
    """``scan_and_bisect`` over :func:`old_lp_criterion` on [0.01, 0.99] (the old ``critical_delta`` LP path)."""
    return scan_and_bisect(old_lp_criterion(env, budget), 0.01, 0.99, TOL, grid)


def models(quick: bool) -> list[tuple[str, Environment, str, bool]]:
    """``(name, env, budget, run the old LP in full)``."""
    out = [
        ("usstp 2x2 interim", ml.lamba_usstp(0.7, 0.9), "interim", True),
        ("interleaved K=5 iid interim", interleaved_trade(5), "interim", False),
        ("interleaved K=5 p=0.5 interim", interleaved_trade(5, persistence=0.5), "interim", False),
        ("interleaved K=5 p=0.5 ex_ante", interleaved_trade(5, persistence=0.5), "ex_ante", False),
        ("random 3x3 (not FOSD) interim", ml.random_trade(3), "interim", not quick),
    ]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run each; the old LP path estimated on 5x5 models")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-full", action="store_true", help="skip lp_scan='full'")
    ap.add_argument(
        "--old-everywhere", action="store_true", help="run the old LP path in full on every model (minutes)"
    )
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    ok = True
    print(
        f"{'model':31} {'method':8} {'evaluations':>16} {'seconds':>8} {'x Pi*':>8} {'old/this':>8}  "
        "critical (time per stage)"
    )
    for name, env, budget, full_old in models(args.quick):
        sp = recursion.recursion_space(_rebuild(env, 0.5), None, DEFAULT_MEMORY_LIMIT, verify=False, needs="")
        t_pi, _ = median_seconds(lambda sp=sp: recursion.solve(sp), 5)
        rows = []
        runs = [("recursion", {"method": "recursion"}), ("lp", {"method": "lp"})]
        if not args.no_full:
            runs.append(("lp full", {"method": "lp", "lp_scan": "full"}))
        for label, kw in runs:
            secs, cd = median_seconds(lambda kw=kw, env=env, budget=budget: critical_delta(env, budget, **kw), repeat)
            n_lp = len(cd.lp_evaluations)
            evals = f"{cd.recursion_evaluations} rec + {n_lp} LP" if label != "recursion" else f"{cd.evaluations} rec"
            parts = ", ".join(f"{k} {v:.2f}" for k, v in cd.parts.items() if v >= 0.005)
            rows.append([label, evals, secs, cd.critical, parts])
        counter = [0]
        if full_old or args.old_everywhere:
            t0 = time.perf_counter()
            old = scan_and_bisect(old_lp_criterion(env, budget, counter), 0.01, 0.99, TOL, 41)
            t_old, est, old_crit = time.perf_counter() - t0, "", old.critical
        else:  # minutes: (evaluations of the recursion's scan) x (median of 3 single evaluations)
            f = old_lp_criterion(env, budget, counter)
            cds = rows[0]
            per, _ = median_seconds(lambda f=f: f(0.5), 3)
            counter[0] = int(cds[1].split()[0])
            t_old, est, old_crit = per * counter[0], " est.", None
        rows.append(["old lp", f"{counter[0]} LP{est}", t_old, old_crit, ""])
        reference = rows[0][3]
        for label, evals, secs, crit, parts in rows:
            ratio_old = t_old / secs if secs > 0 else float("inf")
            agree = ""
            if crit is not None:
                same = len(crit) == len(reference) and all(
                    abs(a - b) <= 2 * TOL for a, b in zip(crit, reference, strict=True)
                )
                ok &= same
                agree = "" if same else "  DISAGREES"
            crit_txt = "n/a" if crit is None else ", ".join(f"{c:.10f}" for c in crit) or "none"
            print(
                f"{name:31} {label:8} {evals:>16} {secs:8.3f} {secs / t_pi:8.0f} {ratio_old:8.1f}  "
                f"{crit_txt}{agree}" + (f"  ({parts})" if parts else "")
            )
        print(f"{'':31} one recursion Pi* evaluation: {t_pi * 1e3:.1f} ms")
    print("critical values agree across methods" if ok else "DISAGREEMENT between methods")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

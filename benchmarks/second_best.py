"""Second best on the Markov space by structure (issue #12): seconds of the original LP and of the new default.

    python benchmarks/second_best.py           # K = 3..10 (about 2 minutes on 2 cores)
    python benchmarks/second_best.py --quick   # K = 3..6 (about 20 s)

Model: :func:`mechlp.solve.critical.interleaved_trade` with ``K`` types per side, renewal kernels of persistence
0.7 (FOSD), discount 0.5, gains from trade under interim budget balance (``K x K`` profiles, ``K^2 + 1``
histories). Per ``K`` the table shows

* ``old``: ``second_best(env, formulation="ex_post", rows="all")`` (the LP over ``(U, x, B, p)`` with every IC
  row), measured only while the previous ``K`` took less than ``--old-limit`` seconds (default 5: the old path
  grows about 10x per step, so the next one would take about a minute or more);
* ``new``: the default ``second_best(env)`` (interim formulation, generated IC rows), with its rounds and the IC
  rows of its last LP against all IC rows;
* ``recursion``: :func:`mechlp.solve.recursion.solve` (the min-max recursion with the efficient allocation) on the
  same space in the same run, and ``new / rec`` the ratio of the two.

Exit code 1 when a measured old value differs from the new one by more than 1e-9 relative, or an answer is not
verified.
"""

from __future__ import annotations

import argparse
import sys
import time

from mechlp.model.spaces import MarkovSpace
from mechlp.solve.critical import interleaved_trade
from mechlp.solve.recursion import solve as recursion_solve
from mechlp.solve.second_best import second_best


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K = 3..6 only")
    ap.add_argument("--old-limit", type=float, default=5.0, help="skip the old path after a K slower than this")
    args = ap.parse_args(argv)
    ks = range(3, 7) if args.quick else range(3, 11)
    head = (
        f"{'K':>3} {'nodes':>7} {'IC rows':>8} {'new IC rows':>11} {'rounds':>6} {'old s':>8} {'new s':>8} "
        f"{'old/new':>8} {'rec s':>7} {'new/rec':>8}  value"
    )
    print(head)
    print("-" * len(head))
    bad = 0
    old_ok = True
    for k in ks:
        env = interleaved_trade(k, discount=0.5, persistence=0.7)
        space = MarkovSpace(env)
        new, t_new = _timed(lambda env=env, space=space: second_best(env, objective="gains_from_trade", space=space))
        _, t_rec = _timed(lambda space=space: recursion_solve(space))
        old = t_old = None
        if old_ok:
            old, t_old = _timed(
                lambda env=env, space=space: second_best(
                    env, objective="gains_from_trade", space=space, formulation="ex_post", rows="all"
                )
            )
            old_ok = t_old < args.old_limit
        m = new.method
        ok = new.status == "optimal" and new.certificate.ok
        if old is not None:
            ok &= old.status == "optimal" and abs(old.value - new.value) <= 1e-9 * max(1.0, abs(old.value))
        bad += not ok
        old_s = f"{t_old:8.2f}" if t_old is not None else f"{'-':>8}"
        ratio = f"{t_old / t_new:8.1f}" if t_old is not None else f"{'-':>8}"
        print(
            f"{k:>3} {space.n_nodes:>7,} {m['ic_rows_all']:>8,} {m['ic_rows']:>11,} {m['rounds']:>6} {old_s} "
            f"{t_new:8.2f} {ratio} {t_rec:7.3f} {t_new / t_rec:8.0f}  {new.value:.12g}"
            + ("" if ok else "  MISMATCH or NOT VERIFIED")
        )
        sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Sharing rules on the fast path (issue #12, item 4): per-history solves against the two-stage beta LP.

    python benchmarks/sharing.py            # 2x2 tail T = 8, 3x3 tail T = 4, Markov 10x10: several minutes
    python benchmarks/sharing.py --quick    # small instances, well under a minute

For each space and rule, in one process: ``share_surplus`` end to end (min-max by ``method="auto"``, beta, transfers,
the independent verifier) with ``beta_method="auto"`` (new: water-filling for ``maxmin``, least shares by depth
level for ``min-max-transfer``) and with ``beta_method="lp"`` (old: the two-stage LP), median of ``--repeat`` runs
(the old LP runs once when it takes longer than 10 s); and ``minmax(method="recursion")`` on the same space, the
ratio's denominator. ``agree`` is ``max |beta Pi*_new - beta Pi*_old|`` (the shares of the surplus; the LP's
tie-break may move them by up to ``TIE_BREAK_SLACK * |optimum|``) and the objectives' difference.
Exit code 1 if any objective differs by more than 1e-9 relative.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402

from mechlp.catalog.examples import lamba_usstp  # noqa: E402
from mechlp.model.environment import bilateral_trade, renewal_matrix  # noqa: E402
from mechlp.model.spaces import make_space  # noqa: E402
from mechlp.solve.critical import interleaved_trade  # noqa: E402
from mechlp.solve.questions import minmax  # noqa: E402
from mechlp.workflows.sharing import share_surplus  # noqa: E402

RULES = (("equal", "interim"), ("maxmin", "interim"), ("maxmin", "ex_post"), ("min-max-transfer", "interim"))
SLOW = 10.0  # seconds: run the old path once above this


def spaces(quick: bool):
    t = 5 if quick else 8
    usstp = lamba_usstp(0.7, 0.95)
    third = [1 / 3] * 3
    kern = renewal_matrix(3, 0.7)
    trade3 = bilateral_trade([0.2, 0.6, 1.0], [0.0, 0.4, 0.8], third, third, kern, kern, 0.9)
    k = 5 if quick else 10
    return [
        (f"2x2 tree+tail T={t}", usstp, make_space(usstp, t, tail=True)),
        (f"3x3 tree+tail T={2 if quick else 4}", trade3, make_space(trade3, 2 if quick else 4, tail=True)),
        (f"Markov {k}x{k}", interleaved_trade(k, 0.9, persistence=0.7), None),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    bad = 0
    head = f"{'space':<22} {'rule':<24} {'new s':>8} {'old s':>8} {'old/new':>8} {'new/rec':>8} {'old/rec':>8}"
    print(head + f" {'beta by':<14} {'agree a':>9} {'agree obj':>9}")
    print("-" * (len(head) + 35))
    for name, env, space in spaces(args.quick):
        kw = {"space": space} if space is not None else {}
        t_rec, rec = median_seconds(lambda env=env, kw=kw: minmax(env, method="recursion", **kw), args.repeat, SLOW)
        for rule, budget in RULES:

            def run(bm, rule=rule, budget=budget, env=env, kw=kw):
                return share_surplus(env, rule, budget=budget, beta_method=bm, **kw)

            t_new, new = median_seconds(lambda run=run: run("auto"), args.repeat, SLOW)
            t_old, old = median_seconds(lambda run=run: run("lp"), args.repeat, SLOW)
            assert new.status == old.status == "optimal", (new.message, old.message)
            d_a = float(np.abs((new.beta - old.beta) * new.pi_star).max())
            d_obj = 0.0 if new.objective is None else abs(new.objective - old.objective)
            if new.objective is not None and d_obj > 1e-9 * max(1.0, abs(old.objective)):
                bad = 1
            label = f"{rule} ({budget})"
            print(
                f"{name:<22} {label:<24} {t_new:>8.3f} {t_old:>8.3f} {t_old / t_new:>7.1f}x {t_new / t_rec:>7.1f}x "
                f"{t_old / t_rec:>7.1f}x {new.options['beta_method']:<14} {d_a:>9.1e} {d_obj:>9.1e}",
                flush=True,
            )
        print(f"{'':<22} {'minmax recursion':<24} {t_rec:>8.3f}   (Pi* by {rec.diagnosis['method']})")
    return bad


if __name__ == "__main__":
    sys.exit(main())

"""Structured impossibility certificates (issue #12): the dual of the min-max problem from the binding edges.

For interleaved K x K trade (discount 0.3, persistence 0.5: interim balance fails) and 3-agent public projects
(discount 0.2), on the Markov space:

* ``recursion``: ``mechlp.solve.recursion.solve`` (Lamba 2022, Lemma 6: Pi* and the binding edges);
* ``multipliers``: ``structured_multipliers`` from the recursion's utilities (binding edges recomputed, then the
  demand fixed point ``d = e + delta T d``), with its fixed-point iterations;
* ``check``: the independent float ``check_impossibility`` of that certificate (``structured_certificate``);
* ``feasibility``: ``mechlp.feasibility(env, "interim")`` end to end (min-max with its verified mechanism, then
  ``impossibility_certificate`` with the structure tried first), and the method it used;
* ``LP``: the Farkas-LP certificate (``impossibility_certificate`` without the min-max utilities), up to
  ``--lp-max`` profiles (it builds every interim row: 3.5 s at 10 x 10, out of memory at 50 x 50).

Run: ``python benchmarks/structured.py [--quick]`` (quick: K = 10, 30 and projects with 5 values; about a minute).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mechlp as ml
from mechlp.model.question import Question
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.proofs.structured import structured_certificate, structured_multipliers
from mechlp.solve import recursion
from mechlp.solve.critical import interleaved_trade


def models(quick: bool) -> dict:
    out = {}
    for k in (10, 30) if quick else (10, 30, 50):
        out[f"trade {k}x{k}"] = interleaved_trade(k, discount=0.3, persistence=0.5)
    for k in (5,) if quick else (5, 10):
        out[f"project 3x{k}"] = ml.public_project(values=[list(np.linspace(0.1, 1.0, k))] * 3, discount=0.2)
    return out


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K = 10, 30 and 3 x 5 projects")
    ap.add_argument("--lp-max", type=int, default=200, help="largest profile count for the Farkas-LP column")
    args = ap.parse_args(argv)
    print(
        f"{'model':14} {'profiles':>8} {'recursion':>10} {'multipliers':>12} {'iter':>5} {'check':>8} "
        f"{'feasibility':>12} {'method':>9} {'LP cert':>8}"
    )
    for name, env in models(args.quick).items():
        q = Question.parse(env, budget="interim")
        t_rec, sol = _timed(lambda env=env: recursion.solve(ml.MarkovSpace(env)))
        sp = sol.space
        t_mult, mult = _timed(
            lambda sp=sp, q=q, sol=sol: structured_multipliers(
                sp, q, sol.surplus, interim_utilities=sol.interim_utilities
            )
        )
        assert mult is not None, f"{name}: no structured certificate"
        opts = {
            "ic": q.ic,
            "ir": q.ir,
            "budget": "interim",
            "question_budget": "interim",
            "outside_option": list(q.outside),
        }
        t_chk, cert = _timed(lambda sp=sp, mult=mult, opts=opts: structured_certificate(sp, mult, opts))
        assert cert.checks["float"]["ok"], cert.checks["float"]["message"]
        t_feas, res = _timed(lambda env=env: ml.feasibility(env, "interim"))
        assert res.status == "infeasible" and res.certificate.ok, res.message
        lp = f"{'-':>8}"
        if env.n_profiles <= args.lp_max:
            t_lp, c_lp = _timed(
                lambda sp=sp, q=q, sol=sol: impossibility_certificate(sp, question=q, minmax_surplus=sol.surplus)
            )
            assert c_lp is not None and c_lp.ok and c_lp.options["method"] == "lp"
            lp = f"{t_lp:7.2f}s"
        print(
            f"{name:14} {env.n_profiles:>8,} {t_rec:9.2f}s {t_mult:11.2f}s {mult.iterations:>5} {t_chk:7.2f}s "
            f"{t_feas:11.2f}s {res.certificate.options['method']:>9} {lp}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

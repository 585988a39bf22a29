"""Proofs at the speed of answers (issue #12): the structured answer and its proofs against the recursion.

On the 2x2 USSTP tree (alpha 0.9, delta 0.3: interim balance fails) and a 3 x 2 bilateral model, for each horizon,
median of ``--repeat`` runs in this process:

* ``recursion``: ``minmax(method="recursion")`` (Lamba's Lemma 6, verified) -- the baseline;
* ``certificate``: ``impossibility_certificate`` on the subtree of the lowest Pi*, with its float and exact checks;
* ``answer``: ``feasibility(..., "interim")`` (route ``"auto"``: the whole answer, certificate included);
* ``exact check``: ``check_impossibility(exact=True)`` of that certificate (A^T y = 0 over every transfer);
* ``exact verify``: ``verify(exact=True)`` of the min-max mechanism (GMP rationals; identical subtrees merged,
  so each (period, last profile) is evaluated once), up to ``--exact-verify-max``;
* ``every history``: the same exact verify with merging switched off (``verifier.MERGE_SHARE = -1``), the cost for
  a mechanism without repeated subtrees, up to ``--unmerged-max``.

Then, on Markov spaces (K x K trade up to 50 x 50, 3-agent public projects up to 10 values each): ``minmax`` with its
verified mechanism and the ``feasibility`` answer from the structure (the ex post witness, or a certificate).

Ratios are against the recursion measured in the same run. Run: ``python benchmarks/proofs.py [--quick]``.
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import median_seconds

import mechlp as ml
from mechlp.audit import verifier
from mechlp.audit.verifier import check_impossibility, verify
from mechlp.model.question import Question
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.solve.critical import interleaved_trade


def models():
    usstp = ml.lamba_usstp(0.9, 0.3)
    kb = np.array([[0.6, 0.3, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]])
    three_two = ml.bilateral_trade([0.2, 0.6, 1.0], [0.1, 0.7], [1 / 3] * 3, [0.5, 0.5], kb, [[0.5, 0.5]] * 2, 0.9)
    return {"usstp 2x2": usstp, "bilateral 3x2": three_two}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="horizons 6-8 (2x2) and 5-6 (3x2), one run each")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exact-verify-max", type=int, default=10, help="largest 2x2 horizon for the exact verify")
    ap.add_argument("--unmerged-max", type=int, default=9, help="largest 2x2 horizon for the unmerged exact verify")
    ap.add_argument("--no-markov", action="store_true", help="skip the Markov-space scale table")
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    horizons = {"usstp 2x2": (6, 7, 8) if args.quick else (8, 9, 10), "bilateral 3x2": (5, 6) if args.quick else (6, 7)}
    print(
        f"{'model':14} {'T':>3} {'nodes':>10} {'recursion':>10} {'certificate':>17} {'answer':>17} "
        f"{'exact check':>17} {'exact verify':>17} {'every history':>17}"
    )
    for name, env in models().items():
        q = Question.parse(env, budget="interim")
        for horizon in horizons[name]:
            t_rec, mm = median_seconds(
                lambda env=env, horizon=horizon: ml.minmax(env, horizon=horizon, method="recursion"), repeat
            )
            sp = mm.space
            t_cert, cert = median_seconds(
                lambda sp=sp, q=q, mm=mm: impossibility_certificate(sp, question=q, minmax_surplus=mm.surplus),
                repeat,
            )
            assert cert is not None and cert.ok and "exact" in cert.checks, "no exact certificate"
            t_ans, ans = median_seconds(lambda env=env, sp=sp: ml.feasibility(env, "interim", space=sp), repeat)
            assert ans.status == "infeasible" and ans.certificate.ok
            t_chk, chk = median_seconds(lambda cert=cert: check_impossibility(cert, exact=True), repeat)
            assert chk["ok"] and chk["nonzero"] == 0
            ver = unmerged = f"{'-':>17}"
            if name == "usstp 2x2" and horizon <= args.exact_verify_max:
                t_ver, v = median_seconds(lambda mm=mm: verify(mm.mechanism, budget="none", exact=True), repeat)
                assert v.options.get("distinct_histories", sp.n_hist) < sp.n_hist, "nothing merged"
                ver = f"{t_ver:8.2f}s {t_ver / t_rec:6.1f}x"
            if name == "usstp 2x2" and horizon <= args.unmerged_max:
                share, verifier.MERGE_SHARE = verifier.MERGE_SHARE, -1.0
                try:
                    t_all, _ = median_seconds(lambda mm=mm: verify(mm.mechanism, budget="none", exact=True), 1)
                finally:
                    verifier.MERGE_SHARE = share
                unmerged = f"{t_all:8.2f}s {t_all / t_rec:6.1f}x"
            cells = [f"{t:8.2f}s {t / t_rec:6.1f}x" for t in (t_cert, t_ans, t_chk)]
            print(f"{name:14} {horizon:>3} {sp.n_nodes:>10,} {t_rec:9.2f}s " + " ".join(cells) + f" {ver} {unmerged}")
    if not args.no_markov:
        markov_scale(args.quick, repeat)
    return 0


def markov_models(quick: bool) -> dict:
    """K x K interleaved-grid trade (persistence 0.5) and 3-agent public projects with K values each."""
    out = {}
    for k in (10, 30) if quick else (10, 30, 50):
        out[f"trade {k}x{k}"] = (interleaved_trade(k, discount=0.9, persistence=0.5), ("ex_post",))
    for k in (5,) if quick else (5, 10):
        values = [list(np.linspace(0.1, 1.0, k) + 0.01 * j) for j in range(3)]
        out[f"project 3x{k}"] = (ml.public_project(values=values, discount=0.9), ("ex_post",))
    out["trade 10x10 d=0.3"] = (interleaved_trade(10, discount=0.3, persistence=0.5), ("interim",))
    return out


def markov_scale(quick: bool, repeat: int) -> None:
    """Markov spaces: the min-max answer with its verified mechanism (``minmax``, method auto), then the
    feasibility answer (structure route: the rebalanced witness, or a certificate over the interim rows)."""
    print()
    print(f"{'Markov model':18} {'profiles':>8} {'nodes':>10} {'minmax+verify':>14} {'feasibility':>12}  answer")
    for name, (env, budgets) in markov_models(quick).items():
        t_mm, mm = median_seconds(lambda env=env: ml.minmax(env), repeat)
        assert mm.status == "optimal" and mm.verification.ok
        for budget in budgets:
            t_f, res = median_seconds(lambda env=env, budget=budget: ml.feasibility(env, budget), repeat)
            assert res.status in ("optimal", "infeasible"), res.message
            assert res.verification.ok if res.status == "optimal" else res.certificate.ok
            sp = mm.space
            print(
                f"{name:18} {env.n_profiles:>8,} {sp.n_nodes:>10,} {t_mm:13.2f}s {t_f:11.2f}s  "
                f"{budget}: {res.status} ({res.diagnosis['route'].split(' (')[0]})"
            )


if __name__ == "__main__":
    raise SystemExit(main())

"""Min-max tightness on random bilateral-trade models, FOSD and not (issue #11, item 3).

For each seeded model (2x2, 2x3 or 3x3 types; persistent FOSD kernels or arbitrary kernels, often not FOSD;
discount 0.1..0.95; the Markov space or a 2-period tree) it asks ``ml.minmax`` and ``ml.feasibility(...,
"interim")`` and counts:

* the min-max tightness claims by their proof (Lamba's Lemma 6, one LP per history, the recursion's condition)
  and the results that claim nothing ("not certified") or say Pi* is not tight;
* claims made by Lemma 6, cross-checked by maximising each Pi(h) with its own LP (one per history): the lemma's
  answer must not be beaten;
* contradictions: a min-max message that calls balance impossible without tightness, a feasibility answer whose
  status lacks its proof (infeasible without a verified certificate, optimal without a verified mechanism), or a
  message that disagrees with itself ("disagrees").

Run: ``python benchmarks/tightness.py [--models 300]``; prints the counts, exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np

import mechlp as ml
from mechlp.backends import solve_lp
from mechlp.constraints.formulation import build_lp
from mechlp.model.question import Question


def random_model(seed: int):
    rng = np.random.default_rng(seed)
    kb, ks = [(2, 2), (2, 3), (3, 3)][seed % 3]
    fosd = seed % 2 == 0

    def kernel(k):
        if fosd:
            alpha = round(float(rng.uniform(0.0, 0.95)), 2)
            prior = np.full(k, 1.0 / k)
            return alpha * np.eye(k) + (1 - alpha) * prior[None, :]
        w = rng.integers(1, 10, size=(k, k)).astype(float)
        return w / w.sum(axis=1, keepdims=True)

    values = np.sort(np.round(rng.uniform(0.0, 1.5, size=kb), 2))
    costs = np.sort(np.round(rng.uniform(0.0, 1.5, size=ks), 2))
    values = values + 0.01 * np.arange(kb)  # distinct types
    costs = costs + 0.01 * np.arange(ks)
    delta = round(float(rng.uniform(0.1, 0.95)), 2)
    horizon = "infinite" if seed % 4 < 2 else 2
    env = ml.bilateral_trade(values, costs, [1 / kb] * kb, [1 / ks] * ks, kernel(kb), kernel(ks), delta, horizon)
    return env


def pointwise_best(res) -> np.ndarray:
    """max Pi(h) over IC + IR mechanisms, one LP per history."""
    sp = res.space
    q = Question.parse(sp.env, budget="none")
    best = np.empty(sp.n_hist)
    for h in range(sp.n_hist):  # one LP per history of a small space
        w = np.zeros(sp.n_hist)
        w[h] = 1.0
        out = solve_lp(build_lp(sp, q, weights=w))
        best[h] = -float(out.objective)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=300)
    args = ap.parse_args(argv)
    counts: collections.Counter = collections.Counter()
    bad: list[str] = []
    t0 = time.perf_counter()
    for seed in range(args.models):
        env = random_model(seed)
        fosd = all(ag.is_fosd() for ag in env.agents)
        counts["fosd" if fosd else "not fosd"] += 1
        mm = ml.minmax(env)
        tight = (mm.diagnosis or {}).get("tightness", {})
        claim = {True: "tight", False: "not tight", None: "not certified"}[tight.get("tight")]
        by = tight.get("by", "no proof named").split(":")[0].split(" (")[0]
        counts[f"minmax {claim} ({by})"] += 1
        if tight.get("tight") is not True and "impossible" in mm.message.split("(")[0] and "tight" not in mm.message:
            bad.append(f"seed {seed}: minmax calls balance impossible without tightness: {mm.message}")
        if tight.get("by", "").startswith("Lamba"):
            gap = pointwise_best(mm) - mm.surplus
            if gap.max() > 1e-7 * (1 + np.abs(mm.surplus).max()):
                bad.append(f"seed {seed}: Lemma 6 claimed but a history's own LP beats Pi* by {gap.max():.3g}")
            counts["Lemma 6 claims cross-checked by per-history LPs"] += 1
        fe = ml.feasibility(env, "interim")
        counts[f"feasibility {fe.status}"] += 1
        if fe.status == "infeasible" and not (fe.certificate is not None and fe.certificate.ok):
            bad.append(f"seed {seed}: infeasible without a verified certificate")
        if fe.status == "optimal" and not (fe.verification is not None and fe.verification.ok):
            bad.append(f"seed {seed}: optimal without a verified mechanism")
        if "disagree" in fe.message or "WARNING" in fe.message:
            bad.append(f"seed {seed}: {fe.message}")
        if fe.status == "optimal" and tight.get("tight") is True and (mm.surplus < -1e-9).any():
            bad.append(f"seed {seed}: tight Pi* < 0 somewhere but interim balance feasible")
        if fe.status == "infeasible" and tight.get("tight") is True and (mm.surplus >= -1e-9).all():
            bad.append(f"seed {seed}: tight Pi* >= 0 everywhere but interim balance infeasible")
    for key in sorted(counts):
        print(f"{counts[key]:5d}  {key}")
    print(f"{len(bad)} violations in {args.models} models ({time.perf_counter() - t0:.1f} s)")
    for line in bad[:20]:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

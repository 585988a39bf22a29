"""Min-max tightness on random models (issue #11, item 3), checked against the independent ground truth of
benchmarks/tightness.py (its own LP in interim utilities, scipy's linprog, one LP per history).

CI runs 30 seeded models; the 300 of the benchmark run under ``pytest -m slow`` (or
``python benchmarks/tightness.py``). The 3 x 3, discount 0.3, non-FOSD model where the min-max surplus and the
interim budget LP used to contradict each other ("FEASIBLE ... WARNING: the min-max surplus predicts infeasible")
is answered consistently by ``minmax``, ``feasibility``, ``mechlp solve`` and both sweep questions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.catalog.io import dump_model_toml
from mechlp.cli import main
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.model.environment import bilateral_trade
from mechlp.solve import questions as design
from mechlp.workflows.sweep import sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tightness as bench  # noqa: E402

#: integer kernel weights (rows / row sums) of the contradiction model, found by
#: ``python benchmarks/tightness.py --find-contradiction`` (seed 143)
WEIGHTS_B = np.array([[2, 8, 9], [5, 4, 5], [1, 3, 4]], dtype=float)
WEIGHTS_S = np.array([[7, 8, 1], [3, 7, 4], [4, 1, 2]], dtype=float)


def contradiction_model(discount: float = 0.3):
    kb = WEIGHTS_B / WEIGHTS_B.sum(axis=1, keepdims=True)
    ks = WEIGHTS_S / WEIGHTS_S.sum(axis=1, keepdims=True)
    return bilateral_trade([0.4, 0.9, 1.4], [0.3, 1.1, 1.6], [1 / 3] * 3, [1 / 3] * 3, kb, ks, discount)


# ---------------------------------------------------------------------------------------------- the ground truth
def test_ground_truth_reproduces_lamba_closed_form():
    """The benchmark's LP (no library LP code) gives Lamba's eq. (8)-(9) at every state of the USSTP."""
    for alpha, delta in ((0.7, 0.9), (0.9, 0.5)):
        env = lamba_usstp(alpha, delta)
        best = bench.ground_truth(env).pointwise_max()
        cf = minmax_closed_form(env)
        np.testing.assert_allclose(best, cf.pi_markov, atol=1e-9)


def test_ground_truth_tree_indexing_at_discount_zero():
    """With discount 0 every history is a static problem under its beliefs: the two-period tree's root and
    children are the Markov space's root and states (a check of the tree's indexing, child = h * K + k + 1)."""
    env = bench.make_env(bench.Spec(5, (3, 2), ("random", "anti"), 0.0, 2))
    markov = bench.make_env(bench.Spec(5, (3, 2), ("random", "anti"), 0.0, "infinite"))
    a = bench.ground_truth(env).pointwise_max()
    b = bench.ground_truth(markov).pointwise_max()
    assert a.shape == b.shape == (7,)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_random_models_cover_the_cases():
    specs = [bench.random_spec(s) for s in range(300)]
    envs = [bench.make_env(sp) for sp in specs[:60]]
    assert {sp.shape for sp in specs} == set(bench.SHAPES)
    assert {sp.horizon for sp in specs} == {"infinite", 2, 3, 4}
    assert min(sp.discount for sp in specs) < 0.15 and max(sp.discount for sp in specs) > 0.9
    fosd = [all(ag.is_fosd() for ag in env.agents) for env in envs]
    assert any(fosd) and not all(fosd)


# ---------------------------------------------------------------------------------------------- invariants
def _audit(seeds):
    records = [bench.audit(bench.random_spec(s)) for s in seeds]
    bad = [f"{r.spec.describe()}: {v}" for r in records for v in r.violations]
    assert not bad, "\n".join(bad)
    return records


def test_thirty_random_models_claim_only_what_is_proven():
    records = _audit(range(1000, 1030))
    # the sample exercises every branch: certified tight (by a theorem and by LPs), refuted, not certified
    claims = " | ".join(r.claims["lp"] for r in records)
    assert "Lemma 6" in claims and "own LP" in claims and "not tight, said so" in claims
    assert any(r.truth_tight is False for r in records)
    assert any(r.feas["interim"] == "infeasible" for r in records)


@pytest.mark.slow
def test_three_hundred_random_models_claim_only_what_is_proven():
    records = _audit(range(300))
    assert sum(r.truth_tight is False for r in records) > 30


# ---------------------------------------------------------------------------------------------- the contradiction
def test_the_contradiction_model_is_what_it_was():
    """min Pi* < 0, yet (independent LP) some IC + IR mechanism has Pi(h) > 0 at every history."""
    env = contradiction_model()
    assert not any(ag.is_fosd() for ag in env.agents)
    truth = bench.ground_truth(env)
    assert truth.interim_margin() > 1e-5
    mm = design.minmax(env)
    h = int(np.argmin(mm.surplus))
    assert mm.surplus[h] < -1e-3
    assert truth.pointwise_max()[h] > 1e-4  # at the history where Pi* < 0 another mechanism raises a surplus


def test_the_contradiction_model_is_answered_consistently():
    env = contradiction_model()
    mm = design.minmax(env)
    t = mm.diagnosis["tightness"]
    assert t["tight"] is False
    assert "NOT tight at every history" in mm.message and "possible" not in mm.message
    assert "Pi* does not decide budget balance" in mm.message
    for budget in ("interim", "ex_ante", "ex_post"):
        res = design.feasibility(env, budget, space=mm.space, minmax_result=mm)
        assert res.status == "optimal" and res.certificate.ok, (budget, res.message)
        assert "WARNING" not in res.message and "predicts" not in res.message
        if budget != "ex_ante":  # the witness: Pi(h) >= 0 at every history (= 0 under ex post balance)
            assert (res.mechanism.surplus() >= -1e-9).all()
    res = design.feasibility(env, "interim")  # without the shared min-max result: the same answer
    assert res.status == "optimal" and "WARNING" not in res.message


def test_mechlp_solve_on_the_contradiction_model(tmp_path, capsys):
    path = tmp_path / "contradiction.toml"
    path.write_text(dump_model_toml(contradiction_model()), encoding="utf-8")
    assert main(["solve", str(path), "--budget", "interim"]) == 0
    out = capsys.readouterr().out
    assert "under interim budget balance: FEASIBLE" in out
    assert "WARNING" not in out and "impossible" not in out and "disagrees" not in out
    # the Pi* table is not called the largest surplus at every history, which it is not here
    assert "designer's largest expected surplus" not in out and "NOT the largest at every history" in out


def test_sweep_columns_on_the_contradiction_model():
    mm = sweep(contradiction_model, {"discount": [0.3]}, "minmax", executor="serial", progress=False).iloc[0]
    assert mm["status"] == "ok" and mm["pi_min"] < 0
    assert bool(mm["tight"]) is False or mm["tight"] == "False"
    assert pd.isna(mm["interim_ok"])  # a negative Pi* that is not tight does not say "impossible"
    assert bool(mm["ex_ante_ok"]) is True  # Pi*(root) >= 0 is witnessed by the verified mechanism
    fe = sweep(contradiction_model, {"discount": [0.3]}, "feasible", executor="serial", progress=False).iloc[0]
    assert fe["status"] == "ok" and fe["error"] is None or pd.isna(fe["error"])
    assert bool(fe["feasible_interim"]) and bool(fe["certified_interim"])


def test_sweep_columns_keep_their_verdict_where_pi_star_is_tight():
    row = sweep(lamba_usstp, {"alpha": [0.9], "delta": [0.8]}, "minmax", executor="serial", progress=False).iloc[0]
    assert bool(row["tight"]) is True
    truth = bench.ground_truth(lamba_usstp(0.9, 0.8))
    margin, best = truth.interim_margin(), truth.pointwise_max()
    assert margin < -1e-3 and best[0] > 1e-3  # interim impossible, ex ante possible (independent LPs)
    assert bool(row["interim_ok"]) is False and bool(row["ex_ante_ok"]) is True  # decided: Lemma 6 certifies Pi*


# ---------------------------------------------------------------------------------------------- named histories
def untight_tree():
    """Anti-persistent 2 x 2 trade on a two-period tree (benchmark seed 255, rounded): Pi*(root) < 0, yet another
    IC + IR mechanism raises a positive surplus at the root."""
    kb = [[0.086, 0.914], [0.914, 0.086]]
    ks = [[0.056, 0.944], [0.944, 0.056]]
    return bilateral_trade([0.6, 1.2], [0.4, 1.1], [0.09, 0.91], [0.75, 0.25], kb, ks, 0.762, horizon=2)


def test_negative_pi_star_that_is_not_tight_names_no_failing_history(tmp_path):
    env = untight_tree()
    truth = bench.ground_truth(env)
    best = truth.pointwise_max()
    assert best[0] > 0.1 and truth.interim_margin() < -0.1  # ex ante possible, interim impossible
    mm = design.minmax(env)
    assert mm.surplus[0] < -0.01 and mm.diagnosis["tightness"]["tight"] is False
    ante = design.feasibility(env, "ex_ante", space=mm.space, minmax_result=mm)
    assert ante.status == "optimal" and ante.certificate.ok and "WARNING" not in ante.message
    interim = design.feasibility(env, "interim", space=mm.space, minmax_result=mm)
    assert interim.status == "infeasible" and interim.certificate.ok
    # Pi*(root) < 0 is no reason here (the root can reach 0.47): no history is named from Pi*
    assert interim.diagnosis["negative"] == [] and "can raise at" not in interim.message
    path = tmp_path / "untight.toml"
    path.write_text(dump_model_toml(env), encoding="utf-8")
    assert main(["solve", str(path), "--budget", "interim", "--json", str(tmp_path / "out.json")]) == 0
    payload = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert payload["status"] == "infeasible" and payload["failing_histories"] == []


def test_tight_infeasible_models_name_truly_failing_histories():
    """Where Pi* is certified tight the named histories stay, and each is one where the independent LP's
    maximum of Pi(h) is negative."""
    env = lamba_usstp(0.9, 0.8)
    res = design.feasibility(env, "interim")
    best = bench.ground_truth(env).pointwise_max()
    assert res.status == "infeasible" and res.diagnosis["negative"]
    for w in res.diagnosis["negative"]:
        assert best[w["history"]] < 0 and w["value"] == pytest.approx(best[w["history"]], abs=1e-7)

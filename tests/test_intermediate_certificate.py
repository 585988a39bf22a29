"""Impossibility certificates for Lamba's intermediate mechanism (issue 14, item 1): float and exact, files,
`mechlp check`, tampered copies fail."""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mechlp.audit.certfile import certificate_payload, check_certificate, write_json
from mechlp.audit.intermediate import check_intermediate_impossibility, intermediate_affine
from mechlp.audit.verifier import verify_intermediate
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.model.signals import SignalSpace
from mechlp.solve.intermediate import intermediate_feasibility, intermediate_minmax

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"


@pytest.fixture(scope="module")
def env():
    return load_model(MODEL, ["horizon=2"])  # the USSTP over two periods: the intermediate question is infeasible


@pytest.fixture(scope="module")
def infeasible(env):
    return intermediate_feasibility(env, "interim")


def test_infeasible_answer_carries_a_verified_exact_certificate(infeasible):
    res = infeasible
    assert res.status == "infeasible" and "verified (exact" in res.message
    cert = res.impossibility
    assert cert.exact and cert.gamma == 1
    assert cert.checks["float"]["ok"] and cert.checks["exact"]["ok"]
    assert cert.checks["exact"]["nonzero"] == 0 and cert.checks["exact"]["L0"] == -1.0
    assert all(isinstance(v, Fraction) or hasattr(v, "denominator") for v in cert.budget)


def test_affine_rows_agree_with_verify_intermediate(infeasible):
    # the certificate's rows (audit.intermediate) against verify_intermediate's rows at random payment schedules
    space = infeasible.space
    rows = intermediate_affine(space, "interim", "interim")
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = [rng.normal(scale=0.3, size=(space.n_info[i], space.n_signals[i])) for i in range(2)]
        flat = np.concatenate([v.reshape(-1) for v in x])
        ver = verify_intermediate(space, x, budget="interim")

        def worst(slacks, flat=flat):
            return min(float(np.min(s[..., 0] + (s[..., 1:] - s[..., :1]) @ flat)) for s in slacks)

        for fam, slacks in (("ic", rows["ic"].values()), ("ir", rows["ir"].values()), ("budget", [rows["budget"]])):
            assert max(0.0, -worst(slacks)) == pytest.approx(ver.max_violation[fam], abs=1e-9)


def test_every_budget_notion_and_ex_ante_ir(env):
    for budget in ("ex_post", "ex_ante"):
        res = intermediate_feasibility(env, budget)
        assert res.status == "infeasible" and res.impossibility.checks["exact"]["ok"]
    res = intermediate_feasibility(env, "ex_ante", ir="ex_ante")
    assert res.status in ("infeasible", "optimal")
    if res.status == "infeasible":
        assert res.impossibility.checks["exact"]["ok"]


def test_certificate_is_consistent_with_the_minmax_lp(env):
    # independent evidence: the most root surplus over IC + IR intermediate mechanisms is negative on the two-period
    # tree (equal to the public one, Lamba 7.3), so even ex ante balance fails, and the ex ante certificate's only
    # budget multiplier sits at the root
    mm = intermediate_minmax(env, histories=[0])
    assert mm.status == "optimal" and mm.best[0] < 0
    res = intermediate_feasibility(env, "ex_ante")
    budget = [e for e in res.impossibility.to_dict()["multipliers"] if e["family"] == "budget"]
    assert [e["history"] for e in budget] == [0]


def test_file_roundtrip_and_tampering(env, infeasible, tmp_path):
    doc = json.loads(json.dumps(certificate_payload(infeasible)))
    ok, report = check_certificate(env, doc, exact=True)
    assert ok and "exact check: OK" in report and "no intermediate mechanism satisfies" in report
    bad = copy.deepcopy(doc)
    entry = next(e for e in bad["multipliers"] if e["family"] == "ic")
    entry["value"] = str(Fraction(entry["value"]) * 2)
    ok, report = check_certificate(env, bad, exact=True)
    assert not ok and "not a certificate" in report
    bad = copy.deepcopy(doc)
    bad["multipliers"].pop()
    assert not check_certificate(env, bad, exact=True)[0]
    bad = copy.deepcopy(doc)
    bad["question"]["budget"] = "ex_ante"
    ok, report = check_certificate(env, bad)
    assert not ok and "edited" in report
    bad = copy.deepcopy(doc)
    bad["multipliers"][0]["where"] = "buyer in period 7"
    with pytest.raises(ValueError, match=r"multipliers\[0\]"):
        check_certificate(env, bad)
    # the same file says nothing about the infinite-horizon model (a truncation)
    ok, report = check_certificate(load_model(MODEL), doc)
    assert not ok


def test_negative_multiplier_is_refused(infeasible):
    cert = copy.deepcopy(infeasible.impossibility)
    key = next(iter(cert.ic))
    cert.ic[key] = cert.ic[key].copy()
    cert.ic[key][0] = Fraction(-1)
    assert not check_intermediate_impossibility(cert, exact=True)["ok"]


def test_mechlp_check_holds_and_fails_on_a_tampered_copy(infeasible, tmp_path, capsys):
    path = tmp_path / "inter.json"
    write_json(path, certificate_payload(infeasible))
    code = main(["check", str(MODEL), str(path), "--set", "horizon=2", "--exact"])
    out = capsys.readouterr().out
    assert code == 0 and "certificate HOLDS" in out
    doc = json.loads(path.read_text())
    doc["multipliers"][0]["value"] = "1/3"
    path.write_text(json.dumps(doc))
    code = main(["check", str(MODEL), str(path), "--set", "horizon=2", "--exact"])
    out = capsys.readouterr().out
    assert code == 1 and "does NOT hold" in out


def test_uncertified_infeasibility_has_its_own_status(env, monkeypatch):
    import mechlp.solve.intermediate as inter

    monkeypatch.setattr(inter, "intermediate_certificate", lambda *a, **k: None)
    res = inter.intermediate_feasibility(env, "interim")
    assert res.status == "unverified" and "no Farkas certificate" in res.message


def test_space_size_guard(env):
    space = SignalSpace(env)
    assert sum(space.n_info[i] * space.n_signals[i] for i in range(2)) == 32

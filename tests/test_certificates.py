"""Certificates either way: Farkas multipliers for impossibility, exact mechanisms for feasibility, files."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mechlp.audit.certfile import certificate_payload, check_certificate, read_mechanism
from mechlp.audit.verifier import ImpossibilityCertificate, check_impossibility, verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.constructions.vcg import discrete_vcg_transfers
from mechlp.model.spaces import HistoryTree, MarkovSpace
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.solve import questions as design

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
INFEASIBLE = ["--set", "persistence=0.9", "--set", "discount=0.3"]


@pytest.fixture(scope="module")
def infeasible():
    return design.feasibility(lamba_usstp(0.9, 0.3), "interim")


def test_infeasible_usstp_certificate_verifies_float_and_exact(infeasible):
    res = infeasible
    assert res.status == "infeasible"
    cert = res.certificate
    assert isinstance(cert, ImpossibilityCertificate)
    assert cert.checks["float"]["ok"] and cert.checks["exact"]["ok"]
    assert cert.gamma == 1  # the exact vertex of the normalised Farkas LP
    assert cert.checks["exact"]["L0"] == -1.0
    # the summary names the state with the most negative Pi* and its value
    pi = res.diagnosis["minmax_surplus"]
    worst = int(np.argmin(pi))
    assert res.space.describe_history(worst) == "after (v_H, c_L)"
    assert f"{res.space.describe_history(worst)}: weight" in cert.summary()
    assert f"Pi* = {pi[worst]:.6g}" in cert.summary()
    assert "verified in floats and exactly" in res.message


def test_certificate_sign_and_constancy_are_both_needed(infeasible):
    cert = infeasible.certificate
    # a negative multiplier is rejected outright
    key = next(iter(cert.ic))
    h = int(np.flatnonzero(cert.ic[key] != 0)[0]) if np.any(cert.ic[key] != 0) else 0
    bad = ImpossibilityCertificate(
        cert.space, cert.options, cert.gamma, {k: v.copy() for k, v in cert.ic.items()}, cert.ir, cert.budget
    )
    bad.ic[key][h] = Fraction(-1)
    assert check_impossibility(bad)["message"] == "a multiplier is negative"
    # doubling one budget multiplier breaks A^T y = 0: L is no longer constant
    moved = ImpossibilityCertificate(cert.space, cert.options, cert.gamma, cert.ic, cert.ir, cert.budget * 2)
    for exact in (False, True):
        out = check_impossibility(moved, exact=exact)
        assert not out["ok"] and out["max_deviation"] > 1e-3


@pytest.mark.parametrize(
    ("env", "budget"),
    [
        (lamba_usstp(0.9, 0.8), "ex_post"),
        (lamba_usstp(0.9, 0.3), "ex_ante"),
        (lamba_usstp(0.7, 0.95, horizon=3), "interim"),
    ],
)
def test_certificates_for_other_budgets_and_trees(env, budget):
    res = design.feasibility(env, budget)
    assert res.status == "infeasible"
    cert = res.certificate
    assert cert.ok and set(cert.checks) == {"float", "exact"}
    if budget == "ex_ante":
        assert len(cert.budget) == 1  # only the root's budget row exists
    if res.space.kind == "tree":
        hb = int(np.flatnonzero(cert.budget != 0)[0])
        assert res.space.hist_period[hb] == 3  # the failing rows are in the last (static) period


def test_feasible_settings_have_no_certificate_and_exact_mechanisms():
    space = MarkovSpace(lamba_usstp(0.7, 0.95))
    assert impossibility_certificate(space, budget="interim") is None
    for budget in ("interim", "ex_post", "ex_ante"):
        res = design.feasibility(space.env, budget, space=space, exact=True)
        assert res.status == "optimal"
        check = res.exact_check
        assert check.ok and check.options["exact"] and set(check.exact_violation.values()) == {"0"}
        if budget == "ex_post":
            assert all(sum(res.exact_mechanism.exact_transfers[:, g]) == 0 for g in range(space.n_nodes))


def test_float_tight_mechanism_is_not_exactly_feasible_but_margin_one_is():
    """Why the margin construction exists: the LP's binding rows fail an exact re-check by rounding."""
    res = design.feasibility(lamba_usstp(0.7, 0.95), "ex_ante", exact=True)
    loose = verify(res.mechanism, budget="ex_ante", exact=True)
    assert not loose.ok and max(float(Fraction(v)) for v in loose.exact_violation.values()) < 1e-12
    assert res.exact_check.ok


def test_vcg_is_exactly_ic_and_ir():
    from mechlp.constructions.vcg import discrete_vcg

    for space in (MarkovSpace(lamba_usstp(0.7, 0.95)), HistoryTree(lamba_usstp(0.7, 0.95, 4))):
        ver = verify(discrete_vcg(space), budget="none", exact=True)
        assert ver.ok and ver.exact_violation == {"ic": "0", "ir": "0"}
        assert ver.n_binding["ic"] > 0  # local IC binds exactly (gap-adjusted VCG)


def test_mechanism_certificate_file_round_trip(tmp_path):
    env = lamba_usstp(0.7, 0.95)
    res = design.feasibility(env, "ex_post", exact=True)
    doc = json.loads(json.dumps(certificate_payload(res, exact=True)))
    ok, report = check_certificate(env, doc, exact=True)
    assert ok, report
    # change one payment: the check fails and names the family
    doc["transfers"][5]["payments"]["buyer"] = str(Fraction(doc["transfers"][5]["payments"]["buyer"]) + 1)
    ok, report = check_certificate(env, doc, exact=True)
    assert not ok and "VIOLATED" in report


def test_hand_written_mechanism_file_audit():
    """A user writes the static discrete VCG by hand (decimals): IC and IR hold exactly, the budget does not."""
    env = lamba_usstp(0.7, 0.95, horizon=2)
    space = HistoryTree(env)
    x = discrete_vcg_transfers(env)
    entries = []
    for h in range(space.n_hist):
        for p in range(env.n_profiles):
            entries.append(
                {
                    "history": space.history_path(h),
                    "profile": env.profile_labels(p),
                    "payments": {"buyer": f"{x[0, p]:.2f}", "seller": f"{x[1, p]:.2f}"},
                }
            )
    doc = {
        "kind": "mechanism",
        "space": "tree",
        "horizon": 2,
        "transfers": entries,
        "question": {"ic": "bayesian", "ir": "interim", "budget": "none"},
    }
    ok, report = check_certificate(env, doc, exact=True)
    assert ok and "exact re-check" in report
    doc["question"]["budget"] = "ex_ante"
    ok, report = check_certificate(env, doc, exact=True)
    assert not ok and "budget: VIOLATED" in report
    with pytest.raises(ValueError, match="no entry for node"):
        read_mechanism(space, entries[:-1])
    with pytest.raises(ValueError, match="'v_M' is not a type of agent 'buyer'"):
        bad = [dict(e) for e in entries]
        bad[0] = {**bad[0], "profile": {"buyer": "v_M", "seller": "c_L"}}
        read_mechanism(space, bad)


def test_cli_solve_certificate_and_check(tmp_path, capsys):
    cert = tmp_path / "imp.json"
    assert main(["solve", str(MODEL), *INFEASIBLE, "--certificate", str(cert)]) == 0
    capsys.readouterr()
    assert main(["check", str(MODEL), str(cert), *INFEASIBLE, "--exact"]) == 0
    out = capsys.readouterr().out
    assert "certificate HOLDS" in out and "exact check: OK" in out
    # the certificate belongs to its model
    assert main(["check", str(MODEL), str(cert)]) == 1
    assert "different model" in capsys.readouterr().out
    # a deliberately wrong certificate: one multiplier changed
    doc = json.loads(cert.read_text())
    doc["multipliers"][0]["value"] = str(Fraction(doc["multipliers"][0]["value"]) * 2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["check", str(MODEL), str(bad), *INFEASIBLE, "--exact"]) == 1
    out = capsys.readouterr().out
    assert "certificate does NOT hold" in out and "(must be 0)" in out


def test_cli_exact_mechanism_certificate(tmp_path, capsys):
    cert = tmp_path / "mech.json"
    assert main(["solve", str(MODEL), "--budget", "ex-post", "--exact", "--certificate", str(cert)]) == 0
    assert "every row holds in rationals" in capsys.readouterr().out
    # check pins the question it is asked (solve's defaults: interim): an ex post certificate needs --budget
    assert main(["check", str(MODEL), str(cert), "--exact", "--budget", "ex-post"]) == 0
    assert "certificate HOLDS" in capsys.readouterr().out
    assert main(["check", str(MODEL), str(cert)]) == 1
    assert "budget: ex_post vs interim (file vs asked)" in capsys.readouterr().out
    env = load_model(MODEL)
    assert json.loads(cert.read_text())["model_sha256"]
    assert check_certificate(env, cert)[0]

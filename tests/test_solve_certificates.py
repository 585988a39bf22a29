"""Every certificate `mechlp solve` writes on the bundled models passes `mechlp check --exact`, or says it is
float-only (issue #11, item 4); answers nothing backs get their own status and a non-zero exit (item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechlp.catalog.io import load_model
from mechlp.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("model", sorted(p.name for p in MODELS.glob("*.toml")))
@pytest.mark.parametrize("budget", ["ex-ante", "interim", "ex-post"])
def test_solve_certificates_pass_the_exact_check(model, budget, tmp_path, capsys):
    cert = tmp_path / "c.json"
    path = str(MODELS / model)
    code = main(["solve", path, "--budget", budget, "--certificate", str(cert)])
    out, err = capsys.readouterr()
    if budget == "ex-post" and load_model(path).n_agents == 1:  # battaglini.toml: one buyer, nothing to balance
        assert code == 2 and "ex post budget balance needs at least two agents" in err
        return
    assert code == 0, out
    doc = json.loads(cert.read_text())
    code = main(["check", path, str(cert), "--budget", budget, "--exact"])
    report = capsys.readouterr().out
    if doc["kind"] == "mechanism" and not doc["exact"]:
        assert "float-only" in out and "float-only" in report
    else:
        assert code == 0 and "certificate HOLDS" in report, report
        assert ("exact re-check" in report) if doc["kind"] == "mechanism" else ("exact check: OK" in report)


@pytest.mark.parametrize("k", [3, 6, 10, 16])
def test_discount_near_one_has_no_unbacked_status(k, tmp_path, capsys):
    """Discount 1 - 1e-k: either a verified answer (exit 0) or a status that says it is not backed (exit 3)."""
    code = main(
        [
            "solve",
            str(MODELS / "lamba_usstp.toml"),
            "--set",
            f"discount={1 - 10.0**-k!r}",
            "--budget",
            "ex-ante",
            "--json",
            str(tmp_path / "a.json"),
        ]
    )
    payload = json.loads((tmp_path / "a.json").read_text())
    if payload["status"] in ("feasible", "infeasible"):
        assert code == 0
        assert (
            payload["verification"]["ok"]
            if payload["status"] == "feasible"
            else (payload["impossibility_certificate"]["ok"])
        )
    else:
        assert code == 3 and payload["status"] in ("unverified", "ill_conditioned", "verification_failed", "error")

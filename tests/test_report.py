"""The HTML report (mechlp.workflows.report, mechlp report): answers with their proof status, self-contained."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.cli.main import main as cli_main
from mechlp.solve import questions as design
from mechlp.workflows.report import proof_status, report

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def usstp_page():
    return report(ROOT / "models" / "lamba_usstp.toml")


def test_page_is_self_contained(usstp_page):
    assert usstp_page.startswith("<!DOCTYPE html>")
    # nothing is loaded from anywhere (XML namespace names such as http://www.w3.org/2000/svg are not loads)
    for loader in ("<script", "src=", "<link", "@import", 'href="http', "href='http"):
        assert loader not in usstp_page, loader
    assert not re.search(r"url\((?!#)", usstp_page)  # only references inside the page (SVG clip paths)
    assert usstp_page.count("<svg") >= 1


def test_page_answers_every_budget_with_its_proof(usstp_page):
    # alpha 0.7, delta 0.95: feasible under every notion (Lamba 2022, Figure 2: every Pi* entry positive)
    for budget in ("ex_ante", "interim", "ex_post"):
        row = re.search(rf"<td class='text'>{budget}</td><td class='text'><span class=\"(\w+)\">", usstp_page)
        assert row is not None and row.group(1) == "yes", budget
    assert "verified mechanism" in usstp_page
    # the critical discount factor under ex ante balance: Lamba's Corollary 1 at alpha 0.7 (independent check below)
    assert "Critical discount factors" in usstp_page


def test_infeasible_answer_shows_its_certificate():
    page = report(lamba_usstp(0.9, 0.3), budgets=["interim"], critical=False)
    assert '<span class="no">no</span>' in page
    assert "verified impossibility certificate" in page and "exact rationals" in page


def test_numbers_are_the_json_numbers():
    env = lamba_usstp(0.7, 0.95)
    page = report(env, budgets=["interim"], critical=False)
    surplus = design.minmax(env).to_dict()["surplus"]
    for entry in surplus:
        assert f">{entry['value']:.6g}<" in page


def test_proof_status_unproven_without_proof():
    class Fake:
        status, message, verification, certificate = "infeasible", "the LP says so", None, None

    verdict, why = proof_status(Fake())
    assert verdict == "unproven" and "the LP says so" in why


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"budgets": ["nope"]}, "budget"), ({"model": "/nope.toml"}, "not found")]
)
def test_validation(kwargs, match):
    model = kwargs.pop("model", lamba_usstp(0.7, 0.95))
    with pytest.raises(ValueError, match=match):
        report(model, **kwargs)


def test_model_type_error():
    with pytest.raises(TypeError, match="Environment or a TOML path"):
        report(3)


def test_cli_writes_the_page(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli_main(["report", str(ROOT / "models" / "lamba_usstp.toml"), "--out", str(out), "--no-critical"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert cli_main(["report", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package: chromium)")
def test_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    report(ROOT / "models" / "lamba_usstp.toml", page)
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            "--window-size=1100,2400",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console  # no console message at all (the page has no script and loads nothing)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # not blank
    dark_rows = (pixels < 128).any(axis=1).mean()
    assert dark_rows > 0.2  # text and figures down a good part of the page

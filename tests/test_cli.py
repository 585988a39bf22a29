"""`mechlp solve` end to end on the bundled model: report, JSON schema, exit codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mechlp.backends import set_solver_log, solver_log
from mechlp.catalog.examples import lamba_usstp
from mechlp.cli import main
from mechlp.constructions.lamba import minmax_closed_form

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"


def run(args, tmp_path, capsys):
    out = tmp_path / "answer.json"
    code = main(["solve", str(MODEL), "--json", str(out), *args])
    text = capsys.readouterr().out
    return code, text, (json.loads(out.read_text()) if out.exists() else None)


def test_solve_default_is_interim_and_feasible(tmp_path, capsys):
    code, text, payload = run([], tmp_path, capsys)
    assert code == 0
    assert payload["status"] == "feasible" and payload["budget"] == "interim"
    assert "FEASIBLE" in text and "fees on top of the static discrete VCG" in text
    # schema of the issue: ex_ante_surplus, surplus_by_state, fees, verification
    closed = minmax_closed_form(lamba_usstp(0.7, 0.95))  # Lamba eqs. (8)-(9) by linear algebra, no LP
    assert payload["ex_ante_surplus"] == pytest.approx(closed.pi_root, abs=1e-9)
    states = {(s["state"]["buyer"], s["state"]["seller"]): s["value"] for s in payload["surplus_by_state"]}
    assert set(states) == {("v_L", "c_L"), ("v_L", "c_H"), ("v_H", "c_L"), ("v_H", "c_H")}
    assert min(states, key=states.get) == ("v_H", "c_L")
    fees = payload["fees"]["buyer"]
    by = {tuple(d["state"].items())[0]: d["value"] for d in fees["by_state"]}
    assert math.floor(by[("seller", "c_H")] * 1000) == 192 and math.floor(by[("seller", "c_L")] * 1000) == 243
    assert math.floor(fees["first"] * 1000) == 218
    assert set(payload["verification"]["max_violation"]) == {"ic", "ir", "budget"}
    assert all(v <= 1e-7 for v in payload["verification"]["max_violation"].values())


def test_solve_overrides_and_budgets(tmp_path, capsys):
    code, text, payload = run(["--set", "persistence=0.9", "--set", "discount=0.8"], tmp_path, capsys)
    assert code == 0 and payload["status"] == "infeasible"
    assert payload["failing_histories"][0]["where"] == "after (v_H, c_L)"
    code, _, payload = run(
        ["--set", "persistence=0.9", "--set", "discount=0.8", "--budget", "ex-ante"], tmp_path, capsys
    )
    # --json writes the one written spelling (schema_version 2); the CLI reads both
    assert code == 0 and payload["status"] == "feasible" and payload["budget"] == "ex_ante"
    assert payload["schema_version"] == 2


def test_solve_finite_horizon_names_histories(tmp_path, capsys):
    code, text, payload = run(["--set", "horizon=2", "--budget", "ex-post"], tmp_path, capsys)
    assert code == 0 and payload["status"] == "infeasible"
    assert "surplus_by_history" in payload and "fees" not in payload
    assert payload["failing_histories"][0]["value"] == pytest.approx(-0.42, abs=1e-9)


def test_bad_input_exit_code(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert main(["solve", str(MODEL), "--set", "discount=1.5"]) == 2
    assert "discount" in capsys.readouterr().err


def test_console_script_module_entry():
    proc = subprocess.run(
        [sys.executable, "-m", "mechlp.cli", "solve", str(MODEL)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "min-max surplus Pi*" in proc.stdout


def test_solve_savings_and_tail(tmp_path, capsys):
    """`--budget savings` sits between interim and ex ante; `--tail` solves a tree with a Markov tail."""
    code, _, payload = run(
        ["--set", "persistence=0.9", "--set", "discount=0.8", "--budget", "savings"], tmp_path, capsys
    )
    assert code == 0 and payload["status"] == "feasible" and payload["budget"] == "savings"
    code, _, payload = run(["--horizon", "2", "--tail"], tmp_path, capsys)
    closed = minmax_closed_form(lamba_usstp(0.7, 0.95))
    assert code == 0 and payload["space"] == "tail"
    assert payload["ex_ante_surplus"] == pytest.approx(closed.pi_root, abs=1e-9)  # the tail answer is the Markov one
    assert main(["solve", str(MODEL), "--tail"]) == 2
    assert "--tail needs --horizon" in capsys.readouterr().err


def test_no_solver_banner_reaches_the_output():
    """highspy prints "Running HiGHS ..." from C++ when a Highs object is built; mechlp silences it, in a fresh
    process whose stdout is a pipe (where C buffering would otherwise flush it late)."""
    out = subprocess.run(
        [sys.executable, "-m", "mechlp.cli", "solve", str(MODEL), "--budget", "ex_post", "--route", "lp"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "HiGHS" not in out.stdout and "HiGHS" not in out.stderr
    assert "FEASIBLE" in out.stdout


def test_critical_delta_refuses_method_auto(capsys):
    code = main(["critical-delta", str(MODEL), "--method", "auto"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "--method auto does not apply to the critical discount factor; use one of recursion, lp" in err[0]


def test_verbose_shows_the_solver_log_and_only_then():
    cmd = [sys.executable, "-m", "mechlp.cli", "--verbose", "solve", str(MODEL), "--budget", "ex_post", "--route", "lp"]
    loud = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "HiGHS" in loud.stdout  # HiGHS's own log (its output_flag on)
    assert "FEASIBLE" in loud.stdout


def test_set_solver_log_takes_a_bool():
    with pytest.raises(TypeError, match="set_solver_log takes True or False"):
        set_solver_log("yes")
    assert solver_log() is False

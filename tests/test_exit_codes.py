"""Exit codes, command by command and situation by situation (the table of ``docs/exit_codes.md``).

The docs' table is the specification: every row ``| command | situation | code |`` has a case here and every case
a row. Economic answers (infeasible, a fee condition that fails, no sharing, a pivot that is not IR against 0)
exit 0; bad input 2; a certificate that does not hold 1; no answer 3. "Tampered" cases hand the independent
verifier a mechanism whose first agent pays 0.5 more at every node (IR, and budget balance where it is checked,
then fail), so a failed verification is never reported as an answer.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mechlp.audit import verifier
from mechlp.backends import solve_lp
from mechlp.catalog.io import load_model
from mechlp.cli import exits
from mechlp.cli.main import build_parser, main
from mechlp.constructions import fees, pivot, team
from mechlp.model.answer import STATUSES
from mechlp.model.mechanism import Mechanism
from mechlp.solve import critical, questions, result, second_best
from mechlp.workflows import sharing

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
USSTP = str(MODELS / "lamba_usstp.toml")
INFEASIBLE = ["--set", "persistence=0.9", "--set", "discount=0.8"]  # user guide: interim infeasible here

#: agent3 values the project negatively whatever its type: its marginal contribution is negative, so the pivot
#: (IR against Bergemann-Valimaki's outside values O_i) is not IR against the outside option 0
DISLIKED = """
[model]
name = "disliked_project"
kind = "general"
discount = 0.8
actions = ["reject", "build"]

[[agents]]
name = "agent1"
types = ["L", "H"]
prior = [0.5, 0.5]
persistence = 0.0
valuation = { reject = [0.0, 0.0], build = [0.1, 0.7] }

[[agents]]
name = "agent2"
types = ["L", "H"]
prior = [0.5, 0.5]
persistence = 0.0
valuation = { reject = [0.0, 0.0], build = [0.0, 0.6] }

[[agents]]
name = "agent3"
types = ["L", "H"]
prior = [0.5, 0.5]
persistence = 0.0
valuation = { reject = [0.0, 0.0], build = [-0.5, -0.2] }
"""


@dataclass(frozen=True)
class Case:
    argv: list[str]
    code: int
    setup: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    says: str | None = None  # a word the output must contain (case-insensitive): why this code


def _tamper(module) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """Patch ``module.verify`` so that it checks a mechanism whose first agent pays 0.5 more at every node."""
    real = verifier.verify

    def setup(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
        def tampered(mech, *args, **kwargs):
            x = np.array(mech.transfers, dtype=float)
            x[0] += 0.5
            kwargs.pop("exact", None)  # the tampered copy has no exact transfers
            return real(Mechanism(mech.space, x), *args, **kwargs)

        monkeypatch.setattr(module, "verify", tampered)

    return setup


def _status(module, name: str, status: str) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """Patch ``module.name`` so that the answers it returns carry ``status`` (a solver that reports an error)."""
    real = getattr(module, name)

    def setup(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
        def failing(*args, **kwargs):
            out = real(*args, **kwargs)
            if dataclasses.is_dataclass(out) and type(out).__dataclass_params__.frozen:
                return dataclasses.replace(out, status=status)
            out.status = status
            return out

        monkeypatch.setattr(module, name, failing)

    return setup


def _scan_lp_error(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """Every LP of the scan reports an error: the warm-started one (then the scan falls back to a cold
    ``minmax``) and the cold one."""

    def warm_error(*args, **kwargs):
        out, basis = real_warm(*args, **kwargs)
        return dataclasses.replace(out, status="error"), basis

    real_warm = critical.solve_warm
    monkeypatch.setattr(critical, "solve_warm", warm_error)
    _status(questions, "minmax", "error")(monkeypatch, tmp)


def _certificate(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    assert main(["solve", USSTP, "--certificate", str(tmp / "cert.json")]) == 0


def _not_json(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    (tmp / "cert.json").write_text("{not json", encoding="utf-8")


def _disliked(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    (tmp / "disliked.toml").write_text(DISLIKED, encoding="utf-8")


def _sweep_csv(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    argv = ["sweep", USSTP, "--grid", "discount=0.8,0.9", "--executor", "serial", "--no-progress"]
    assert main([*argv, "--out", str(tmp / "s.csv")]) == 0


SWEEP = ["--executor", "serial", "--no-progress"]

#: (command, situation as written in docs/exit_codes.md) -> case; paths "{tmp}/..." are in the test's tmp dir
CASES: dict[tuple[str, str], Case] = {
    ("solve", "feasible (the USSTP under interim budget balance)"): Case(["solve", USSTP], 0),
    ("solve", "infeasible, with its verified Farkas certificate (persistence 0.9, discount 0.8)"): Case(
        ["solve", USSTP, *INFEASIBLE], 0, says="INFEASIBLE"
    ),
    ("solve", "the solver hits its time limit"): Case(
        ["solve", str(MODELS / "license_auction_3.toml"), "--time-limit", "0.0001"], 3, says="time_limit"
    ),
    ("solve", "tampered: the mechanism fails the verification"): Case(["solve", USSTP], 3, _tamper(result), "fail"),
    ("solve", "model file not found"): Case(["solve", "{tmp}/missing.toml"], 2),
    ("solve", "unknown option value (`--budget sometimes`)"): Case(["solve", USSTP, "--budget", "sometimes"], 2),
    ("critical-delta", "brackets found and bisected"): Case(["critical-delta", USSTP], 0),
    ("critical-delta", "the min-max LP reports an error during the scan"): Case(
        ["critical-delta", USSTP, "--method", "lp", "--lp-scan", "full"], 3, _scan_lp_error
    ),
    ("critical-delta", "budget notion without a critical discount (`--budget none`)"): Case(
        ["critical-delta", USSTP, "--budget", "none"], 2
    ),
    ("check", "the certificate holds"): Case(["check", USSTP, "{tmp}/cert.json"], 0, _certificate),
    ("check", "the certificate does not hold (another discount factor)"): Case(
        ["check", USSTP, "{tmp}/cert.json", "--set", "discount=0.5"], 1, _certificate
    ),
    ("check", "the certificate file is not JSON"): Case(["check", USSTP, "{tmp}/cert.json"], 2, _not_json),
    ("pivot", "verified"): Case(["pivot", USSTP], 0),
    ("pivot", "verified, and not IR against the outside option 0 (an agent dislikes the project)"): Case(
        ["pivot", "{tmp}/disliked.toml"], 0, _disliked, "verified"
    ),
    ("pivot", "built with `--no-check`"): Case(["pivot", USSTP, "--no-check"], 0, says="not verified"),
    ("pivot", "tampered: the mechanism fails the verification"): Case(["pivot", USSTP], 3, _tamper(pivot), "fail"),
    ("pivot", "correlated types (the pivot assumes independence)"): Case(
        ["pivot", str(MODELS / "bilateral_correlated.toml")], 2
    ),
    ("fees", "the fee condition holds (ex ante budget balance with lump-sum fees)"): Case(
        ["fees", str(MODELS / "yoon_binary.toml")], 0
    ),
    ("fees", "the fee condition fails (discount 0.3)"): Case(
        ["fees", str(MODELS / "yoon_binary.toml"), "--set", "discount=0.3"], 0, says="INFEASIBLE"
    ),
    ("fees", "tampered: the fee mechanism fails the verification"): Case(
        ["fees", str(MODELS / "yoon_binary.toml")], 3, _tamper(fees), "fail"
    ),
    ("share", "a verified sharing"): Case(["share", USSTP], 0),
    ("share", "no budget-balanced sharing exists (negative min-max surplus)"): Case(
        ["share", USSTP, *INFEASIBLE], 0, says="no budget-balanced sharing exists"
    ),
    ("share", "the rule's transfers break the transfer limits"): Case(
        ["share", USSTP, "--limit", "buyer=-0.01:0.01"], 0, says="violates the transfer limits"
    ),
    ("share", "the shares LP reports infeasible (no certificate)"): Case(
        ["share", USSTP, "--rule", "min-max-transfer", "--budget", "ex-post", "--limit", "buyer=0.3:0.4"],
        3,
        says="no certificate backs it",
    ),
    ("share", "tampered: the shared mechanism fails the verification"): Case(
        ["share", USSTP], 3, _tamper(sharing), "fail"
    ),
    ("share", "rule designer under ex post budget balance"): Case(
        ["share", USSTP, "--rule", "designer", "--budget", "ex-post"], 2
    ),
    ("team", "verified (IC and ex post budget balance; IR reported)"): Case(
        ["team", str(MODELS / "public_project.toml")], 0
    ),
    ("team", "bonded team refused below its threshold (the reason printed)"): Case(
        ["team", USSTP, "--bond", "paper", "--set", "discount=0.3"], 0
    ),
    ("team", "built with `--no-check`"): Case(["team", str(MODELS / "public_project.toml"), "--no-check"], 0),
    ("team", "tampered: the mechanism fails the verification"): Case(
        ["team", str(MODELS / "public_project.toml")], 3, _tamper(team), "fail"
    ),
    ("second-best", "optimal"): Case(["second-best", USSTP, *INFEASIBLE], 0),
    ("second-best", "the LP reports an error"): Case(
        ["second-best", USSTP, *INFEASIBLE], 3, _status(second_best, "solve_lp", "error")
    ),
    ("second-best", "model file not found"): Case(["second-best", "{tmp}/missing.toml"], 2),
    ("sweep", "every point answered"): Case(
        ["sweep", USSTP, "--grid", "discount=0.8,0.9", *SWEEP, "--out", "{tmp}/s.csv"], 0
    ),
    ("sweep", "a point without an answer (discount 1.5)"): Case(
        ["sweep", USSTP, "--grid", "discount=0.8,1.5", *SWEEP, "--out", "{tmp}/s.csv"], 3
    ),
    ("sweep", "no `--grid`"): Case(["sweep", USSTP, *SWEEP], 2),
    ("plot", "a sweep CSV drawn"): Case(["plot", "{tmp}/s.csv", "--out", "{tmp}/p.png"], 0, _sweep_csv),
    ("plot", "result file not found"): Case(["plot", "{tmp}/missing.csv", "--out", "{tmp}/p.png"], 2),
    ("boundary", "the boundary found on every line"): Case(
        ["boundary", USSTP, "--x", "persistence=0.6,0.8", "--budget", "interim", "--workers", "1"], 0
    ),
    ("boundary", "a grid key the model does not take"): Case(
        ["boundary", "yoon_binary", "--x", "persistence=0.6,0.8", "--question", "fees", "--workers", "1"], 2
    ),
    ("report", "the page written"): Case(
        ["report", str(MODELS / "yoon_binary.toml"), "--no-critical", "--budget", "interim", "--out", "{tmp}/r.html"],
        0,
    ),
    ("report", "model file not found"): Case(["report", "{tmp}/missing.toml", "--out", "{tmp}/r.html"], 2),
    ("transfer-ranges", "not unique, two verified witnesses"): Case(
        [
            "transfer-ranges",
            "bv_diverse",
            "--param",
            "steps=1",
            "--outside-values",
            "pivot",
            "--efficient-exit",
            "--agents",
            "diverse",
        ],
        0,
    ),
    ("transfer-ranges", "an unknown agent"): Case(["transfer-ranges", "bv_diverse", "--agents", "nobody"], 2),
    ("groves", "the Clarke term: the dynamic pivot, verified"): Case(["groves", USSTP, "--h", "clarke"], 0),
    ("groves", "an unknown term"): Case(["groves", USSTP, "--h", "nope"], 2),
}

ROW = re.compile(r"^\| `([a-z-]+)` \| (.+?) \| (\d+) \|$", re.M)


def _doc_rows() -> dict[tuple[str, str], int]:
    text = (ROOT / "docs" / "exit_codes.md").read_text(encoding="utf-8")
    return {(cmd, situation): int(code) for cmd, situation, code in ROW.findall(text)}


def _run(argv: list[str], tmp: Path) -> int:
    try:
        return main([a.replace("{tmp}", str(tmp)) for a in argv])
    except SystemExit as exc:  # argparse's own errors (unknown choice): exit 2
        return int(exc.code)


@pytest.mark.parametrize("key", list(CASES), ids=[f"{c}: {s}" for c, s in CASES])
def test_exit_code(key, tmp_path, monkeypatch, capsys):
    case = CASES[key]
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(monkeypatch, tmp_path)
    capsys.readouterr()
    code = _run(case.argv, tmp_path)
    captured = capsys.readouterr()
    assert code == case.code, f"{key}: exit {code}, expected {case.code}\n{captured.err}"
    assert "Traceback" not in captured.err
    if case.says is not None:
        assert case.says.lower() in (captured.out + captured.err).lower(), (key, captured.out[-2000:])
    if code == 2 and "usage:" not in captured.err:  # the CLI's own bad-input line (argparse prints its usage)
        assert captured.err.startswith("mechlp: error: ") and captured.err.count("\n") == 1


def test_the_docs_table_and_the_cases_agree():
    rows = _doc_rows()
    assert rows == {key: case.code for key, case in CASES.items()}


def test_every_subcommand_has_cases_for_an_answer_and_for_bad_input():
    parser = build_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    tested = {cmd for cmd, _ in CASES}
    assert commands == tested, f"subcommands without exit-code cases: {sorted(commands - tested)}"
    for cmd in commands:
        codes = {case.code for (c, _), case in CASES.items() if c == cmd}
        assert 0 in codes and codes - {0}, cmd


def test_the_pivot_case_is_really_not_ir_against_zero(tmp_path):
    """Independent evidence for the 'not IR against 0' row: the verifier against outside option 0 fails, while
    the pivot's own verification (against Bergemann-Valimaki's O_i) passes."""
    (tmp_path / "d.toml").write_text(DISLIKED, encoding="utf-8")
    res = pivot.dynamic_pivot(load_model(tmp_path / "d.toml"))
    assert res.ok and res.status == "verified"
    against_zero = verifier.verify(res.mechanism, ic="ex_post", ir="ex_post", budget="none")
    assert not against_zero.ok and against_zero.max_violation["ir"] > 0.1


def test_the_help_epilog_is_the_table():
    text = build_parser().format_help()
    assert "exit codes (every command" in text
    for code, meaning in exits.EXIT_CODES:
        first = meaning.split()[0]
        assert re.search(rf"^\s+{code}\s+{re.escape(first)}", text, re.M), code
    doc = (ROOT / "docs" / "exit_codes.md").read_text(encoding="utf-8")
    for code, meaning in exits.EXIT_CODES:
        assert f"| {code} | {meaning} |" in doc


def test_every_status_has_an_exit_code():
    assert set(exits.STATUS_EXIT) == set(STATUSES)
    assert {exits.exit_code(s) for s in STATUSES} == {0, 3}
    with pytest.raises(ValueError, match="status must be one of"):
        exits.exit_code("maybe")


def test_a_solver_failure_is_not_bad_input(monkeypatch, capsys):
    cli_main = sys.modules["mechlp.cli.main"]

    @functools.wraps(cli_main.critical_delta)  # the parser reads its signature
    def fail(*args, **kwargs):
        raise exits.SolverFailure("the min-max LP failed at delta = 0.5: error")

    monkeypatch.setattr(cli_main, "critical_delta", fail)
    assert main(["critical-delta", USSTP]) == 3
    assert capsys.readouterr().err == "mechlp: no answer: the min-max LP failed at delta = 0.5: error\n"


def test_solve_lp_is_the_second_best_solver():
    """The second-best case patches ``mechlp.solve.second_best.solve_lp``: it must be the backends' function."""
    assert second_best.solve_lp is solve_lp

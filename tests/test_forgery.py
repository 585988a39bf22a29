"""Certificates bind their question (issue #11, item 1): the two forgeries of the issue are rejected."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from mechlp.audit.certfile import certificate_payload, check_certificate, question_hash
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.model.question import Question
from mechlp.solve import questions as design

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
#: ex ante feasible, interim infeasible (Pi* after (v_H, c_L) is negative)
SETS = ["--set", "persistence=0.9", "--set", "discount=0.8"]


@pytest.fixture(scope="module")
def env():
    return load_model(MODEL, ["persistence=0.9", "discount=0.8"])


@pytest.fixture(scope="module")
def interim_impossibility(env):
    res = design.feasibility(env, "interim")
    assert res.status == "infeasible" and res.certificate.ok
    assert design.feasibility(env, "ex_ante").status == "optimal"  # the forged claim below is false
    return json.loads(json.dumps(certificate_payload(res)))


def _write(tmp_path, doc, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_the_genuine_certificate_holds(env, interim_impossibility, tmp_path, capsys):
    ok, report = check_certificate(env, interim_impossibility, exact=True)
    assert ok, report
    assert "=> no mechanism satisfies IC bayesian, IR interim (outside option 0), budget interim" in report
    assert main(["check", str(MODEL), _write(tmp_path, interim_impossibility), *SETS, "--exact"]) == 0


def test_forged_question_budget_next_to_the_multipliers_is_rejected(env, interim_impossibility, tmp_path, capsys):
    doc = json.loads(json.dumps(interim_impossibility))
    doc["options"]["question_budget"] = "ex_ante"
    ok, report = check_certificate(env, doc, exact=True)
    assert not ok and "question_budget: the file says 'ex_ante', its question needs 'interim'" in report
    assert main(["check", str(MODEL), _write(tmp_path, doc), *SETS, "--exact"]) == 1
    assert "certificate does NOT hold" in capsys.readouterr().out


@pytest.mark.parametrize("budget", ["ex_ante", "savings"])
def test_forged_budget_in_the_question_is_rejected(env, interim_impossibility, budget):
    """Claiming that interim multipliers prove ex ante (or savings) impossibility: the claim's certifying rows
    are the ex ante row, not the interim rows the multipliers are over."""
    doc = json.loads(json.dumps(interim_impossibility))
    doc["question"]["budget"] = budget
    doc["question_sha256"] = question_hash(doc["model_sha256"], doc["question"])  # a careful forger
    asked = Question.parse(env, budget=budget)
    ok, report = check_certificate(env, doc, exact=True, question=asked)
    assert not ok and "budget: the file says 'interim', its question needs 'ex_ante'" in report
    # and with the file's stated rows removed, the multipliers do not prove the ex ante claim
    del doc["options"]
    with pytest.raises(ValueError, match=r"budget row at history \d+, but the rows of this question"):
        check_certificate(env, doc, exact=True, question=asked)


def test_interim_multipliers_relabelled_as_an_ex_post_question_are_refused(env, interim_impossibility):
    doc = json.loads(json.dumps(interim_impossibility))
    doc["question"]["ic"] = "ex_post"
    doc.pop("question_sha256")
    ok, report = check_certificate(env, doc)
    assert not ok and "ic: the file says 'bayesian', its question needs 'ex_post'" in report
    # without the stated rows, the multipliers are read on the ex post IC rows, one per others' profile
    no_rows = {k: v for k, v in doc.items() if k != "options"}
    with pytest.raises(ValueError, match=r"multiplier #\d+ .* is not valid for this model: 'others'"):
        check_certificate(env, no_rows)
    doc["question"].update(ic="bayesian", budget="none")  # IC + IR alone: the interim multipliers do not fit
    ok, report = check_certificate(env, doc)
    assert not ok and "budget: the file says 'interim', its question needs 'none'" in report


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("budget", "foo", r"budget must be one of"),
        ("ic", "foo", r"ic must be one of"),
        ("ic", None, r"ic must be one of .*got None"),
        ("ir", 1, r"ir must be one of .*got 1"),
        ("question_budget", "ex_ante", r"unknown key 'question_budget'"),
    ],
)
def test_unknown_question_values_are_errors(env, interim_impossibility, key, value, match):
    doc = json.loads(json.dumps(interim_impossibility))
    doc["question"][key] = value
    with pytest.raises(ValueError, match=match):
        check_certificate(env, doc)


def test_an_edited_question_block_is_detected(env, interim_impossibility):
    doc = json.loads(json.dumps(interim_impossibility))
    doc["question"]["outside_option"] = 0.5
    ok, report = check_certificate(env, doc)
    assert not ok and "does not match its question_sha256" in report


def test_forged_mechanism_with_a_huge_negative_outside_option_is_rejected(env, tmp_path, capsys):
    """Add 10 to every payment of the min-max mechanism and claim interim budget balance with outside option
    -1e9: the IR rows then hold trivially. `mechlp check` pins the question (solve's defaults) and refuses;
    the Python check of the file's own question says which outside option it verified."""
    mm = design.minmax(env)
    doc = json.loads(json.dumps(certificate_payload(mm)))
    for entry in doc["transfers"]:
        entry["payments"] = {k: str(Fraction(v) + 10) for k, v in entry["payments"].items()}
    doc["question"]["budget"] = "interim"
    doc["question"]["outside_option"] = -1e9
    doc["question_sha256"] = question_hash(doc["model_sha256"], doc["question"])
    path = _write(tmp_path, doc)
    assert main(["check", str(MODEL), path, *SETS, "--exact"]) == 1
    out = capsys.readouterr().out
    assert "outside_option: -1000000000.0 vs 0.0 (file vs asked)" in out and "does NOT hold" in out
    ok, report = check_certificate(env, doc)
    assert ok and "outside option -1e+09" in report  # true of the question it states, which it prints
    asked = Question.parse(env, budget="interim")
    assert not check_certificate(env, doc, question=asked)[0]

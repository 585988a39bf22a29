"""Impossibility certificates for ex post IC, ex post IR, ex post budget rows and transfer limits (issue #14, item 1).

Each question below is infeasible while the same question without the option is feasible (with a verified
mechanism); the infeasibility is also confirmed independently: by an LP written here from the model's numbers
(the one-period cases) and by the generic formulation solved with the other backend (cvxpy with Clarabel).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

from mechlp.audit.certfile import FORMAT, check_certificate, question_hash
from mechlp.audit.verifier import ImpossibilityCertificate, certificate_coefficients, check_impossibility
from mechlp.backends import solve_lp
from mechlp.catalog.examples import correlated_usstp, lamba_usstp
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.constraints.formulation import build_lp
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree, MarkovSpace
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.solve import questions as design

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"

#: USSTP numbers (Lamba 2022, section 5.1): values, costs, uniform priors
V, C = (0.05, 1.0), (0.0, 0.95)


def _static_lp_feasible(ic: str, ir: str, outside: float) -> bool:
    """The one-period USSTP with ex post budget balance, written here from the model's numbers.

    Variables: the buyer's payments ``x[v, c]``; the seller gets ``-x`` (ex post balance). Trade iff ``v > c``.
    IC / IR rows as Lamba's Definitions 1, 2 and 7 state them; returns whether the LP is feasible."""
    trade = np.array([[V[v] > C[c] for c in range(2)] for v in range(2)], dtype=float)
    idx = {(v, c): 2 * v + c for v in range(2) for c in range(2)}
    rows, rhs = [], []  # a @ x <= b

    def row(coef: dict, b: float) -> None:  # sum coef[(v, c)] x[v, c] <= b
        a = np.zeros(4)
        for key, val in coef.items():
            a[idx[key]] += val
        rows.append(a)
        rhs.append(b)

    # buyer of value v reporting w (seller's cost c): u = V[v] trade[w, c] - x[w, c]
    for v in range(2):
        w = 1 - v
        per_c = [({(v, c): 1.0, (w, c): -1.0}, V[v] * (trade[v, c] - trade[w, c])) for c in range(2)]
        if ic == "ex_post":
            for coef, b in per_c:
                row(coef, b)
        else:
            row({k: 0.5 * val for coef, _ in per_c for k, val in coef.items()}, 0.5 * sum(b for _, b in per_c))
    # seller of cost c reporting d (buyer's value v): u = x[v, d] - C[c] trade[v, d]
    for c in range(2):
        d = 1 - c
        per_v = [({(v, d): 1.0, (v, c): -1.0}, C[c] * (trade[v, d] - trade[v, c])) for v in range(2)]
        if ic == "ex_post":
            for coef, b in per_v:
                row(coef, b)
        else:
            row({k: 0.5 * val for coef, _ in per_v for k, val in coef.items()}, 0.5 * sum(b for _, b in per_v))
    # IR: buyer V[v] trade - x >= outside; seller x - C[c] trade >= outside
    buyer = [({(v, c): 1.0}, V[v] * trade[v, c] - outside) for v in range(2) for c in range(2)]
    seller = [({(v, c): -1.0}, -C[c] * trade[v, c] - outside) for v in range(2) for c in range(2)]
    if ir == "ex_post":
        for coef, b in buyer + seller:
            row(coef, b)
    else:
        for part, own in ((buyer, 0), (seller, 1)):
            for t in range(2):
                mine = [(coef, b) for (coef, b), (v, c) in zip(part, idx, strict=True) if (v, c)[own] == t]
                row({k: 0.5 * val for coef, _ in mine for k, val in coef.items()}, 0.5 * sum(b for _, b in mine))
    out = scipy.optimize.linprog(np.zeros(4), A_ub=np.array(rows), b_ub=np.array(rhs), bounds=[(None, None)] * 4)
    return out.status == 0


def _generic_lp_status(space, question: Question) -> str:
    """The generic formulation (recursion rows, transfers as variables) solved with the other backend and another
    algorithm (cvxpy with Clarabel, an interior-point solver; HiGHS is the default)."""
    return solve_lp(build_lp(space, question), backend="cvxpy", solver="CLARABEL").status


def _assert_certified(res, ic: str, ir: str, budget: str) -> None:
    assert res.status == "infeasible", res.message
    cert = res.certificate
    assert cert.ok and cert.checks["exact"]["ok"] and cert.checks["float"]["ok"]
    assert (cert.options["ic"], cert.options["ir"], cert.options["budget"]) == (ic, ir, budget)
    assert all(v == 0 for v in certificate_coefficients(cert, exact=True).reshape(-1))
    assert "Farkas certificate verified in floats and exactly" in res.message


@pytest.fixture(scope="module")
def static():
    return lamba_usstp(0.7, 0.95, horizon=1)


def test_the_independent_static_lp_reproduces_the_feasibility_pattern():
    """The ex post IC and the ex post IR question at outside option -0.1 are infeasible, the Bayesian, interim one
    feasible; at -0.05 all fail (Myerson-Satterthwaite)."""
    assert _static_lp_feasible("bayesian", "interim", -0.1)
    assert not _static_lp_feasible("ex_post", "interim", -0.1)
    assert not _static_lp_feasible("bayesian", "ex_post", -0.1)
    assert not _static_lp_feasible("bayesian", "interim", -0.05)


@pytest.mark.parametrize("outside", [-0.05, -0.1, -0.2, -0.3])
@pytest.mark.parametrize(
    ("ic", "ir"), [("bayesian", "interim"), ("ex_post", "interim"), ("bayesian", "ex_post"), ("ex_post", "ex_post")]
)
def test_every_static_answer_agrees_with_the_independent_lp(static, ic, ir, outside):
    """mechlp's answer (a verified mechanism, or a verified certificate) matches the LP written in this file."""
    res = design.feasibility(static, "ex_post", ic=ic, ir=ir, outside_option=outside)
    assert res.status in ("optimal", "infeasible") and res.certificate.ok, res.message
    assert (res.status == "optimal") == _static_lp_feasible(ic, ir, outside)


@pytest.mark.parametrize(("ic", "ir"), [("ex_post", "interim"), ("bayesian", "ex_post")])
def test_pointwise_rows_with_ex_post_budget_are_certified(static, ic, ir):
    """(a) ex post IC, (b) ex post IR: infeasible under ex post balance at outside option -0.1, where the Bayesian,
    interim question is feasible; the certificate is over the ex post budget rows (the interim budget rows
    are no longer equivalent: with interim budget balance the same pointwise question is feasible)."""
    base = design.feasibility(static, "ex_post", outside_option=-0.1)
    assert base.status == "optimal" and base.certificate.ok
    res = design.feasibility(static, "ex_post", ic=ic, ir=ir, outside_option=-0.1)
    _assert_certified(res, ic, ir, "ex_post")
    assert "WARNING" not in res.message  # Pi* >= 0 predicts nothing about ex post balance with pointwise rows
    assert design.feasibility(static, "interim", ic=ic, ir=ir, outside_option=-0.1).status == "optimal"
    q = Question.parse(static, ic=ic, ir=ir, budget="ex_post", outside_option=-0.1)
    assert _generic_lp_status(HistoryTree(static, 1), q) == "infeasible"


def test_a_transfer_limit_is_certified():
    """(c) the seller may be paid at most 0.1 per period: infeasible on the Markov space of the USSTP (alpha 0.7,
    delta 0.95), which is feasible without the limit."""
    env = lamba_usstp(0.7, 0.95)
    assert design.feasibility(env, "interim").status == "optimal"
    limits = {"seller": (-0.1, None)}
    res = design.feasibility(env, "interim", limits=limits)
    _assert_certified(res, "bayesian", "interim", "interim")
    cert = res.certificate
    assert cert.options["limits"] == {"seller": [-0.1, None]}
    assert any(np.any(a != 0) for a in cert.limits.values())
    assert {side for (_, side) in cert.limits} == {0}
    assert _generic_lp_status(MarkovSpace(env), Question.parse(env, limits=limits)) == "infeasible"
    assert design.feasibility(env, "interim", limits={"seller": (-0.3, None)}).status == "optimal"


def test_section_7_1_at_low_delta_is_certified_by_ex_post_rows():
    """Lamba section 7.1 (ex post IC, IR and budget) at alpha 0.9, delta 0.3: infeasible, with a certificate over
    the ex post rows themselves."""
    env = lamba_usstp(0.9, 0.3)
    res = design.feasibility(env, "ex_post", ic="ex_post", ir="ex_post")
    _assert_certified(res, "ex_post", "ex_post", "ex_post")
    q = Question.parse(env, ic="ex_post", ir="ex_post", budget="ex_post")
    assert _generic_lp_status(MarkovSpace(env), q) == "infeasible"


def test_section_7_1_on_a_tree_is_found_on_the_subtree_of_the_lowest_pi_star():
    env = lamba_usstp(0.9, 0.3, horizon=4)
    res = design.feasibility(env, "ex_post", ic="ex_post", ir="ex_post")
    _assert_certified(res, "ex_post", "ex_post", "ex_post")
    assert res.certificate.options["focus"] not in (None, "root (period 1)")  # a subtree below the root


def test_the_certificate_on_a_two_period_tree(static):
    """Ex post IC at outside option -0.3 on the 2-period tree (infeasible; Bayesian IC feasible)."""
    env = lamba_usstp(0.7, 0.95, horizon=2)
    assert design.feasibility(env, "ex_post", outside_option=-0.3).status == "optimal"
    res = design.feasibility(env, "ex_post", ic="ex_post", outside_option=-0.3)
    _assert_certified(res, "ex_post", "interim", "ex_post")


def test_float_only_certificates_are_checked_in_floats(static):
    q = Question.parse(static, ic="ex_post", budget="ex_post", outside_option=-0.1)
    cert = impossibility_certificate(HistoryTree(static, 1), question=q, exact=False)
    assert cert.ok and "exact" not in cert.checks


# ---------------------------------------------------------------------------------------------- files
SETS_A = ["--horizon", "1", "--budget", "ex_post", "--ic", "ex_post", "--outside-option=-0.1"]
SETS_B = ["--horizon", "1", "--budget", "ex_post", "--ir", "ex_post", "--outside-option=-0.1"]
SETS_C = ["--limit=seller=-0.1:"]


def _written(tmp_path, argv, name):
    path = tmp_path / name
    assert main(["solve", str(MODEL), *argv, "--certificate", str(path)]) == 0  # infeasible with its proof
    return path


@pytest.mark.parametrize(("argv", "name"), [(SETS_A, "a.json"), (SETS_B, "b.json"), (SETS_C, "c.json")])
def test_files_hold_and_tampered_copies_fail(tmp_path, capsys, argv, name):
    path = _written(tmp_path, argv, name)
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["kind"] == "impossibility"
    assert main(["check", str(MODEL), str(path), *argv, "--exact"]) == 0
    assert "certificate HOLDS" in capsys.readouterr().out
    # one multiplier changed
    forged = json.loads(path.read_text())
    m = forged["multipliers"][0]
    m["value"] = str(Fraction(m["value"]) * 2)
    bad = tmp_path / f"m_{name}"
    bad.write_text(json.dumps(forged))
    assert main(["check", str(MODEL), str(bad), *argv, "--exact"]) == 1
    assert "certificate does NOT hold" in capsys.readouterr().out
    # the question block changed (and its hash recomputed: a careful forger), asked as the file now claims
    forged = json.loads(path.read_text())
    if forged["question"]["limits"]:
        forged["question"]["limits"] = {"seller": [-0.3, None]}  # a weaker limit: feasible
        asked = ["--limit=seller=-0.3:"]
    else:
        forged["question"]["outside_option"] = -0.3  # a weaker outside option: feasible
        asked = [a if not a.startswith("--outside-option") else "--outside-option=-0.3" for a in argv]
    forged["question_sha256"] = question_hash(forged["model_sha256"], forged["question"])
    bad = tmp_path / f"q_{name}"
    bad.write_text(json.dumps(forged))
    assert main(["check", str(MODEL), str(bad), *asked, "--exact"]) == 1
    out = capsys.readouterr().out
    assert "certificate does NOT hold" in out
    # the stated rows still name the old numbers, so the check refuses them before any arithmetic; without them
    # the multipliers are evaluated on the claimed rows and fail there
    del forged["options"]
    env = load_model(MODEL)
    horizon = 1 if "--horizon" in argv else None
    ok, report = check_certificate(env, forged, exact=True, horizon=horizon)
    assert not ok and "FAILED" in report


def test_a_version_1_file_is_read_and_an_unknown_format_refused(tmp_path, capsys):
    path = _written(tmp_path, SETS_C, "c.json")
    doc = json.loads(path.read_text())
    env = load_model(MODEL)
    ok, _ = check_certificate(env, {**doc, "format": "mechlp-certificate/1"})
    assert ok
    with pytest.raises(ValueError, match=r"'format' must be one of .*got 'mechlp-certificate/9'"):
        check_certificate(env, {**doc, "format": "mechlp-certificate/9"})


# ---------------------------------------------------------------------------------------------- validation
@pytest.fixture(scope="module")
def ex_post_ir_doc(static):
    res = design.feasibility(static, "ex_post", ir="ex_post", outside_option=-0.1)
    return res.certificate.to_dict(), HistoryTree(static, 1)


def _first(doc, family):
    return next(j for j, m in enumerate(doc["multipliers"]) if m["family"] == family and "profile" in m)


def test_a_node_row_without_every_agent_in_its_profile_is_refused(ex_post_ir_doc):
    doc, space = ex_post_ir_doc
    doc = json.loads(json.dumps(doc))
    j = _first(doc, "budget")
    doc["multipliers"][j]["profile"] = {"buyer": "v_L"}
    with pytest.raises(ValueError, match=rf"multiplier #{j} .*'profile' must name the type of every agent"):
        ImpossibilityCertificate.from_dict(doc, space)


def test_an_ex_post_ir_row_whose_type_is_not_in_its_profile_is_refused(ex_post_ir_doc):
    doc, space = ex_post_ir_doc
    doc = json.loads(json.dumps(doc))
    j = _first(doc, "ir")
    m = doc["multipliers"][j]
    ag = m["agent"]
    types = {"buyer": ["v_L", "v_H"], "seller": ["c_L", "c_H"]}[ag]
    m["type"] = types[1 - types.index(m["type"])]
    with pytest.raises(ValueError, match=rf"multiplier #{j} .*is not the type of '{ag}' in 'profile'"):
        ImpossibilityCertificate.from_dict(doc, space)


def test_a_limit_row_on_an_open_side_is_refused():
    env = lamba_usstp(0.7, 0.95)
    res = design.feasibility(env, "interim", limits={"seller": (-0.1, None)})
    doc = json.loads(json.dumps(res.certificate.to_dict()))
    j = next(j for j, m in enumerate(doc["multipliers"]) if m["family"] == "limits")
    doc["multipliers"][j]["side"] = "upper"
    with pytest.raises(ValueError, match=rf"multiplier #{j} .*a row on the upper limit of 'seller', which is open"):
        ImpossibilityCertificate.from_dict(doc, MarkovSpace(env))


def test_a_negative_multiplier_on_an_inequality_row_fails_and_budget_rows_take_either_sign(static):
    q = Question.parse(static, ic="ex_post", budget="ex_post", outside_option=-0.1)
    cert = impossibility_certificate(HistoryTree(static, 1), question=q)
    assert cert.ok
    arr = next(a for a in cert.ic.values() if np.any(a != 0))
    h, m = map(int, np.argwhere(arr != 0)[0])
    arr[h, m] = -arr[h, m]
    assert check_impossibility(cert, exact=True)["message"] == "a multiplier is negative"
    arr[h, m] = -arr[h, m]
    g = int(np.flatnonzero(cert.budget != 0)[0])
    cert.budget[g] = -cert.budget[g]  # allowed sign, but the coefficients no longer cancel
    res = check_impossibility(cert, exact=True)
    assert not res["ok"] and res["nonzero"] > 0


def test_an_ex_post_ic_row_with_malformed_others_is_refused(static):
    res = design.feasibility(static, "ex_post", ic="ex_post", outside_option=-0.1)
    doc = json.loads(json.dumps(res.certificate.to_dict()))
    j = next(j for j, m in enumerate(doc["multipliers"]) if m["family"] == "ic")
    doc["multipliers"][j]["others"] = {"nobody": "v_L"}
    with pytest.raises(ValueError, match=rf"multiplier #{j} .*'others' must name the type of every other agent"):
        ImpossibilityCertificate.from_dict(doc, HistoryTree(static, 1))


def test_stated_limits_that_differ_from_the_question_are_refused(tmp_path):
    doc = json.loads(_written(tmp_path, SETS_C, "c.json").read_text())
    doc["options"]["limits"] = {"seller": [-0.3, None]}
    ok, report = check_certificate(load_model(MODEL), doc)
    assert not ok and "limits: the file says {'seller': [-0.3, None]}, its question needs" in report


# ---------------------------------------------------------------------------------------------- correlated types
@pytest.mark.parametrize(("ic", "ir"), [("ex_post", "interim"), ("bayesian", "ex_post")])
def test_correlated_pointwise_rows_are_certified(ic, ir):
    """The USSTP with correlated next types (correlation 0.5), one period, outside option -0.1, ex post balance:
    Bayesian IC with interim IR is feasible, ex post IC or ex post IR is not."""
    env = correlated_usstp(0.5, 0.7, 0.95, horizon=1)
    assert design.feasibility(env, "ex_post", outside_option=-0.1).status == "optimal"
    res = design.feasibility(env, "ex_post", ic=ic, ir=ir, outside_option=-0.1)
    _assert_certified(res, ic, ir, "ex_post")
    q = Question.parse(env, ic=ic, ir=ir, budget="ex_post", outside_option=-0.1)
    assert _generic_lp_status(HistoryTree(env, 1), q) == "infeasible"


def test_correlated_ex_post_balance_is_certified_where_the_interim_rows_are_feasible():
    """Two periods, outside option -0.1: interim balance is feasible, ex post balance is not (rebalancing does not
    keep interim utilities with correlated types); the certificate is over the ex post budget rows."""
    env = correlated_usstp(0.5, 0.7, 0.95, horizon=2)
    assert design.feasibility(env, "interim", outside_option=-0.1).status == "optimal"
    res = design.feasibility(env, "ex_post", outside_option=-0.1)
    _assert_certified(res, "bayesian", "interim", "ex_post")
    q = Question.parse(env, budget="ex_post", outside_option=-0.1)
    assert _generic_lp_status(HistoryTree(env, 2), q) == "infeasible"


def test_an_interim_budget_certificate_still_proves_a_correlated_ex_post_question(tmp_path):
    """Files of format 1 certified a correlated ex post question over the interim budget rows: still a proof
    (ex post balance implies interim balance), so still read; the same multipliers fail on a weaker claim."""
    env = correlated_usstp(0.5, 0.7, 0.95, horizon=1)
    res = design.feasibility(env, "interim", outside_option=-0.05)
    assert res.status == "infeasible" and res.certificate.options["budget"] == "interim"
    doc = json.loads(json.dumps(res.certificate.to_dict()))
    doc["options"]["question_budget"] = "ex_post"
    file = {"question": {"budget": "ex_post", "outside_option": -0.05}, "space": "tree", "horizon": 1, **doc}
    ok, report = check_certificate(env, file, exact=True)
    assert ok, report
    assert "multipliers over the rows of: IC bayesian, IR interim (outside option -0.05), budget interim" in report
    file["question"]["outside_option"] = -0.1
    file["options"]["outside_option"] = [[-0.1, -0.1], [-0.1, -0.1]]
    ok, report = check_certificate(env, file, exact=True)
    assert not ok and "FAILED" in report

"""Structured impossibility certificates (mechlp.proofs.structured): the dual of the min-max problem read off the
binding edges, checked by the independent verifier, against the Farkas LP."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import mechlp as ml
from mechlp.audit.verifier import ImpossibilityCertificate, check_impossibility
from mechlp.model.question import Question
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.proofs.structured import binding_parents, structured_certificate, structured_multipliers
from mechlp.solve import recursion
from mechlp.solve.critical import interleaved_trade

OPTS = {"ic": "bayesian", "ir": "interim", "budget": "interim", "question_budget": "interim"}


def _anti_trade() -> ml.Environment:
    """Anti-persistent kernels (high types tend to become low): not first-order stochastically dominant."""
    anti = np.array([[0.2, 0.8], [0.8, 0.2]])
    return ml.bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.5, 0.5], [0.5, 0.5], anti, anti, 0.3)


def _models():
    return {
        "trade 4x4 markov": (interleaved_trade(4, discount=0.3, persistence=0.5), None),
        "project 3x3 markov": (ml.public_project(values=[[0.1, 0.5, 0.9]] * 3, discount=0.2), None),
        "usstp tree": (ml.lamba_usstp(0.9, 0.3), 5),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_structured_certificate_passes_the_independent_check_and_agrees_with_the_lp(name):
    env, horizon = _models()[name]
    sol = recursion.solve(ml.HistoryTree(env, horizon) if horizon else ml.MarkovSpace(env))
    sp = sol.space
    q = Question.parse(env, budget="interim")
    assert sol.surplus.min() < 0  # interim balance fails on these models
    mult = structured_multipliers(sp, q, sol.surplus, interim_utilities=sol.interim_utilities, parents=sol.parents)
    assert mult is not None
    assert mult.focus == int(np.argmin(sol.surplus))
    assert mult.gamma == pytest.approx(-sol.surplus.min(), abs=1e-9)  # every row but the budget is tight
    assert all(np.all(y >= 0) for y in mult.y)
    cert = structured_certificate(sp, mult, {**OPTS, "outside_option": list(q.outside)})
    assert cert.checks["float"]["ok"], cert.checks["float"]["message"]
    # the hook: structured first (exact here: the support is small), the LP without the min-max utilities
    via = impossibility_certificate(sp, question=q, minmax_surplus=sol.surplus, interim_utilities=sol.interim_utilities)
    lp = impossibility_certificate(sp, question=q, minmax_surplus=sol.surplus)
    assert via is not None and lp is not None
    assert via.options["method"] == "structure" and lp.options["method"] == "lp"
    assert via.ok and lp.ok and "exact" in via.checks and via.checks["exact"]["ok"]
    assert float(via.gamma) > 0 and float(lp.gamma) > 0


@pytest.mark.parametrize("name", list(_models()))
def test_binding_parents_from_the_utilities_are_the_recursion_edges(name):
    env, horizon = _models()[name]
    sol = recursion.solve(ml.HistoryTree(env, horizon) if horizon else ml.MarkovSpace(env))
    par = binding_parents(sol.space, sol.interim_utilities, Question.parse(env, budget="interim"))
    assert par is not None
    for mine, theirs in zip(par, sol.parents, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_three_agent_markov_certificate_from_the_utilities_alone():
    env = ml.public_project(values=[[0.1, 0.4, 0.7, 1.0]] * 3, discount=0.2)
    mm = ml.minmax(env)
    q = Question.parse(env, budget="interim")
    cert = impossibility_certificate(
        mm.space, question=q, minmax_surplus=mm.surplus, interim_utilities=mm.interim_utilities, exact=False
    )
    assert cert is not None and cert.options["method"] == "structure" and cert.ok
    assert "exact" not in cert.checks  # exact=False: floats only
    assert cert.checks["float"]["L0"] == pytest.approx(mm.surplus.min(), abs=1e-9)


def test_not_applicable_on_anti_persistent_kernels_and_the_lp_answers():
    env = _anti_trade()
    sol = recursion.solve(ml.MarkovSpace(env))
    q = Question.parse(env, budget="interim")
    assert sol.surplus.min() < 0
    assert structured_multipliers(sol.space, q, sol.surplus, interim_utilities=sol.interim_utilities) is None
    cert = impossibility_certificate(
        sol.space, question=q, minmax_surplus=sol.surplus, interim_utilities=sol.interim_utilities
    )
    assert cert is not None and cert.ok and cert.options["method"] == "lp"


def test_not_applicable_without_a_negative_surplus_or_with_other_rows():
    env = interleaved_trade(3, discount=0.3, persistence=0.5)
    sol = recursion.solve(ml.MarkovSpace(env))
    q = Question.parse(env, budget="interim")
    kw = {"interim_utilities": sol.interim_utilities}
    assert structured_multipliers(sol.space, q, np.abs(sol.surplus), **kw) is None  # Pi* >= 0 everywhere
    assert structured_multipliers(sol.space, Question.parse(env, budget="ex_ante"), sol.surplus, **kw) is None
    assert structured_multipliers(sol.space, q, sol.surplus) is None  # no utilities, no parents


def _small_cert() -> ImpossibilityCertificate:
    env = interleaved_trade(3, discount=0.3, persistence=0.5)
    sol = recursion.solve(ml.MarkovSpace(env))
    q = Question.parse(env, budget="interim")
    mult = structured_multipliers(sol.space, q, sol.surplus, interim_utilities=sol.interim_utilities)
    cert = structured_certificate(sol.space, mult, {**OPTS, "outside_option": list(q.outside)})
    assert cert.checks["float"]["ok"]
    return cert


def test_a_perturbed_multiplier_is_rejected():
    cert = _small_cert()
    key = max(cert.ic, key=lambda k: float(np.abs(cert.ic[k].astype(float)).sum()))
    h = int(np.flatnonzero(cert.ic[key] != 0)[0])
    cert.ic[key][h] = Fraction(cert.ic[key][h]) * Fraction(101, 100)
    out = check_impossibility(cert)
    assert not out["ok"] and out["max_deviation"] > 1e-6


def test_a_negative_or_missing_multiplier_is_rejected():
    cert = _small_cert()
    key = next(iter(cert.ic))
    h = int(np.flatnonzero(cert.ic[key] != 0)[0])
    cert.ic[key][h] = -Fraction(cert.ic[key][h])
    out = check_impossibility(cert)
    assert not out["ok"] and out["message"] == "a multiplier is negative"
    cert = _small_cert()
    cert.budget[cert.budget != 0] = 0  # drop the budget row: no contradiction left
    assert not check_impossibility(cert)["ok"]


def test_feasibility_answers_with_the_structured_certificate():
    env = interleaved_trade(5, discount=0.3, persistence=0.5)
    res = ml.feasibility(env, "interim")
    assert res.status == "infeasible" and res.certificate.ok
    assert res.certificate.options["method"] == "structure"
    lp = ml.feasibility(env, "interim", route="lp")
    assert lp.status == "infeasible" and lp.certificate.ok

"""Exact optimality certificates of the second best and of optimal mechanisms (issue #14, item 1).

An exactly verified mechanism (transfers *and* node allocation, checked in rationals by the independent verifier)
bounds the optimum from below; exact dual multipliers over the verifier's rows (every transfer coefficient of the
Lagrangian exactly zero) bound it from above by weak duality. The expected values come from an LP written here
from the paper's numbers (Lamba 2022, USSTP: V = {0.05, 1}, C = {0, 0.95}, uniform priors, f(v|v) = alpha),
not from mechlp's output.
"""

from __future__ import annotations

import copy
import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from mechlp.audit.certfile import check_certificate, optimality_payload
from mechlp.audit.verifier import check_dual_bound, check_optimality, verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.cli import main
from mechlp.model import tolerances
from mechlp.model.mechanism import Mechanism
from mechlp.solve.second_best import optimal_mechanism, second_best

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
ALPHA, DELTA = 0.9, 0.3


def _usstp_two_period_lp(alpha: float, delta: float, objective: str = "gains") -> float:
    """The two-period USSTP second best (Bayesian IC over one-shot deviations, interim IR and interim budget at
    every history), written from scratch over trade probabilities and payments at every node, solved by scipy.

    Nodes: the root's four profiles (v, c) and, after each, the four profiles of period 2. Variables per node:
    ``p`` (probability of trade), ``xb`` (buyer pays), ``xs`` (seller pays; the seller's receipt is ``-xs``).
    """
    vals, costs = [0.05, 1.0], [0.0, 0.95]

    def f(nxt, cur):  # symmetric persistence (Lamba 2022, section 5.1): f(v|v) = g(c|c) = alpha
        return alpha if nxt == cur else 1 - alpha

    profiles = list(itertools.product(range(2), range(2)))
    nodes = [((), th) for th in profiles] + [((h,), th) for h in profiles for th in profiles]
    idx = {n: j for j, n in enumerate(nodes)}
    n_var = 3 * len(nodes)

    def var(kind, node):
        return 3 * idx[node] + {"p": 0, "xb": 1, "xs": 2}[kind]

    def belief(hist, th):  # P(theta | history): prior at the root, the kernels after the reported profile
        if not hist:
            return 0.25
        (v0, c0) = hist[0]
        return f(th[0], v0) * f(th[1], c0)

    def util(agent, hist, true_type, report_node_profile, coef):
        """Add the utility of ``agent`` (0 buyer, 1 seller) with true current type at the node of the reported
        profile, and (at the root) the continuation from the true type, to ``coef`` (a dict var -> weight)."""
        th = report_node_profile
        node = (hist, th)
        if agent == 0:
            coef[var("p", node)] = coef.get(var("p", node), 0) + vals[true_type]
            coef[var("xb", node)] = coef.get(var("xb", node), 0) - 1
        else:
            coef[var("p", node)] = coef.get(var("p", node), 0) - costs[true_type]
            coef[var("xs", node)] = coef.get(var("xs", node), 0) - 1
        if not hist:  # continuation: own next type from the true type, the other's from his report
            for nxt in profiles:
                own_next, other_next = (nxt[0], nxt[1]) if agent == 0 else (nxt[1], nxt[0])
                other_now = th[1] if agent == 0 else th[0]
                w = delta * f(own_next, true_type) * f(other_next, other_now)
                sub = {}
                util(agent, (th,), own_next, nxt, sub)
                for k, v in sub.items():
                    coef[k] = coef.get(k, 0) + w * v

    def interim(agent, hist, t, r):  # expected utility over the other's current type, reporting r as type t
        coef = {}
        for o in range(2):
            th_true = (t, o) if agent == 0 else (o, t)
            th_rep = (r, o) if agent == 0 else (o, r)
            w = belief(hist, th_true) / sum(belief(hist, (t, oo) if agent == 0 else (oo, t)) for oo in range(2))
            sub = {}
            util(agent, hist, t, th_rep, sub)
            for k, v in sub.items():
                coef[k] = coef.get(k, 0) + w * v
        return coef

    rows, rhs = [], []

    def geq(coef):  # sum coef z >= 0  ->  -coef z <= 0
        row = np.zeros(n_var)
        for k, v in coef.items():
            row[k] -= v
        rows.append(row)
        rhs.append(0.0)

    hists = [()] + [(h,) for h in profiles]
    for hist in hists:
        for agent in range(2):
            for t in range(2):
                truth = interim(agent, hist, t, t)
                geq(truth)  # interim IR
                lie = interim(agent, hist, t, 1 - t)
                geq({k: truth.get(k, 0) - lie.get(k, 0) for k in set(truth) | set(lie)})  # Bayesian IC
        budget = {}  # Pi(h) >= 0
        for th in profiles:
            w = belief(hist, th)
            for kind in ("xb", "xs"):
                budget[var(kind, (hist, th))] = budget.get(var(kind, (hist, th)), 0) + w
                if not hist:
                    for nxt in profiles:
                        child = ((th,), nxt)
                        budget[var(kind, child)] = budget.get(var(kind, child), 0) + w * delta * belief((th,), nxt)
        geq(budget)
    cost = np.zeros(n_var)
    for th in profiles:
        w = 0.25
        cost[var("p", ((), th))] -= w * (vals[th[0]] - costs[th[1]])
        for nxt in profiles:
            cost[var("p", ((th,), nxt))] -= w * delta * belief((th,), nxt) * (vals[nxt[0]] - costs[nxt[1]])
    bounds = [(0, 1) if j % 3 == 0 else (None, None) for j in range(n_var)]
    res = linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun


@pytest.fixture(scope="module")
def sb_tree3():
    return second_best(lamba_usstp(ALPHA, DELTA, horizon=3), objective="gains_from_trade")


def test_two_period_value_matches_an_independent_lp():
    """The exact bounds bracket the optimum of an LP written here from the paper's numbers (not from mechlp)."""
    ref = _usstp_two_period_lp(ALPHA, DELTA)
    res = second_best(lamba_usstp(ALPHA, DELTA, horizon=2), objective="gains_from_trade")
    oc = res.optimality
    assert res.status == "optimal" and oc.ok
    assert res.value == pytest.approx(ref, abs=1e-9)
    assert float(oc.lower) - 1e-9 <= ref <= float(oc.upper) + 1e-9
    assert 0 <= oc.gap <= Fraction(tolerances.OPTIMALITY_GAP)


@pytest.mark.parametrize("horizon", [None, 3, 5])
def test_usstp_second_best_is_proved_optimal(horizon):
    """USSTP (alpha 0.9, delta 0.3): Markov space and finite trees; the gap is exact, nonnegative and tiny."""
    env = lamba_usstp(ALPHA, DELTA) if horizon is None else lamba_usstp(ALPHA, DELTA, horizon=horizon)
    res = second_best(env, objective="gains_from_trade")
    oc = res.optimality
    assert res.status == "optimal" and oc.ok and oc.primal_ok and oc.dual_ok
    assert isinstance(oc.gap, Fraction) and 0 <= oc.gap <= Fraction(tolerances.OPTIMALITY_GAP)
    assert oc.lower <= oc.upper
    assert float(oc.lower) == pytest.approx(res.value, abs=1e-9)
    assert oc.verification.options["exact"] and "allocation" in oc.verification.max_violation
    assert "exact optimality" in res.message and "(proved)" in res.message
    doc = res.to_dict()
    assert doc["optimality"]["ok"] and Fraction(doc["optimality"]["gap"]) == oc.gap


def test_certified_value_beats_the_default_solver_tolerances():
    """With HiGHS's default tolerances the 5-period tree's "optimum" is 1.7e-7 short of the true one; the
    certified answer (tight tolerances) has an exact dual bound within 1e-12 of its value."""
    env = lamba_usstp(ALPHA, DELTA, horizon=5)
    loose = second_best(env, objective="gains_from_trade", certify=False)
    tight = second_best(env, objective="gains_from_trade")
    assert loose.status == "not_proved" and "certify=False" in loose.message
    assert tight.value > loose.value + 1e-7
    assert float(tight.optimality.gap) < 1e-12


def test_revenue_optimal_mechanisms_are_proved():
    """optimal_mechanism (no budget rows: IR deficits are settled through IC rows) on a tree and on the infinite
    horizon (the tail search, certified on the tree with a Markov tail)."""
    for env in (lamba_usstp(ALPHA, DELTA, horizon=3), lamba_usstp(ALPHA, DELTA)):
        for ir in ("interim", "ex_ante"):
            res = optimal_mechanism(env, ir=ir)
            assert res.status == "optimal" and res.optimality.ok, res.message
            assert res.optimality.objective == "revenue"


def test_ex_post_balance_is_proved_on_its_interim_relaxation():
    env = lamba_usstp(ALPHA, DELTA, horizon=3)
    res = second_best(env, objective="gains_from_trade", budget="ex_post")
    oc = res.optimality
    assert res.status == "optimal" and oc.ok
    assert oc.multipliers.options["budget"] == "interim"  # the relaxation's rows
    assert oc.verification.options["budget"] == "ex_post"  # the primal holds ex post balance exactly
    assert all(s == 0 for s in oc.mechanism.exact_transfers.sum(axis=0))


def test_unsupported_questions_get_their_own_status():
    env = lamba_usstp(ALPHA, DELTA, horizon=2)
    res = second_best(env, objective="gains_from_trade", ic="ex_post")
    assert res.status == "not_proved" and res.optimality is None
    assert "interim" in res.optimality_note and res.certificate.ok
    assert second_best(env, objective="gains_from_trade", limits={"buyer": (-1, 1)}).status == "not_proved"
    assert second_best(env, objective="gains_from_trade", budget="savings").status == "not_proved"


def test_dual_bound_check_fails_on_wrong_multipliers(sb_tree3):
    cert = sb_tree3.optimality.multipliers
    assert check_dual_bound(cert, "gains_from_trade", exact=True)["ok"]
    bad = copy.deepcopy(cert)
    key = next(iter(bad.ic))
    h = int(np.flatnonzero(bad.ic[key] != 0)[0])
    bad.ic[key][h] = bad.ic[key][h] + Fraction(1, 10**9)
    out = check_dual_bound(bad, "gains_from_trade", exact=True)
    assert not out["ok"] and out["nonzero"] > 0 and "nonzero coefficient" in out["message"]
    neg = copy.deepcopy(cert)
    neg.budget[0] = Fraction(-1)
    assert check_dual_bound(neg, "gains_from_trade", exact=True)["message"] == "a multiplier is negative"


def test_bound_is_an_upper_bound_for_other_mechanisms(sb_tree3):
    """Weak duality: a verified mechanism with another allocation (the float optimum's, rounded) has a value below
    the exact bound; the check refuses multipliers over rows the question does not imply."""
    oc = sb_tree3.optimality
    q = sb_tree3.question_spec
    with pytest.raises(ValueError, match="does not imply"):
        check_optimality(oc.mechanism, oc.multipliers, "gains_from_trade", q.replace(budget="ex_ante"))


def test_exact_verification_reads_the_allocation_as_given(sb_tree3):
    mech = sb_tree3.optimality.mechanism
    assert verify(mech, question=sb_tree3.question_spec, exact=True).ok
    alloc = mech.exact_allocation.copy()
    alloc[5, 0] = alloc[5, 0] + Fraction(1, 10**12)  # no longer a distribution, by 1e-12
    bad = Mechanism(mech.space, mech.transfers, mech.exact_transfers, mech.allocation, exact_allocation=alloc)
    ver = verify(bad, question=sb_tree3.question_spec, exact=True)
    assert not ver.ok and ver.max_violation["allocation"] > 0
    assert "sum of p - 1" in ver.worst["allocation"].describe()
    with pytest.raises(ValueError, match="exact_allocation needs allocation"):
        Mechanism(mech.space, mech.transfers, exact_allocation=alloc)


def _tampered(doc: dict, how: str) -> dict:
    d = copy.deepcopy(doc)
    if how == "payment":
        e = d["transfers"][7]
        name = next(iter(e["payments"]))
        e["payments"][name] = str(Fraction(e["payments"][name]) + Fraction(1, 1000))
    elif how == "allocation":  # still a distribution: moves probability to trade at a node where it matters
        for e in d["transfers"]:
            p = {a: Fraction(v) for a, v in e["allocation"].items()}
            if 0 < p["trade"] < 1 or p["trade"] == 1:
                e["allocation"] = {"no_trade": "1", "trade": "0"}
                break
    elif how == "multiplier":
        m = next(m for m in d["multipliers"] if m["family"] == "ic")
        m["value"] = str(Fraction(m["value"]) * 2)
    elif how == "upper":
        d["optimality"]["upper"] = str(Fraction(d["optimality"]["upper"]) - Fraction(1, 10**6))
    elif how == "objective":
        d["objective"] = "revenue"
    return d


def test_certificate_file_holds_and_fails_when_tampered(sb_tree3):
    env = sb_tree3.env
    doc = json.loads(json.dumps(optimality_payload(sb_tree3), default=str))
    assert doc["kind"] == "optimality" and doc["format"] == "mechlp-certificate/3"
    ok, report = check_certificate(env, doc, exact=True, horizon=3)
    assert ok, report
    assert "PROVED" in report
    for how in ("payment", "allocation", "multiplier", "upper", "objective"):
        ok, report = check_certificate(env, _tampered(doc, how), exact=True, horizon=3)
        assert not ok, how


def test_cli_second_best_certificate_and_check(tmp_path, capsys):
    cert = tmp_path / "sb.json"
    common = ["--set", f"persistence={ALPHA}", "--set", f"discount={DELTA}"]
    code = main(["second-best", str(MODEL), *common, "--horizon", "3", "--certificate", str(cert)])
    out = capsys.readouterr().out
    assert code == 0 and "PROVED" in out and "wrote certificate" in out
    assert main(["check", str(MODEL), str(cert), *common, "--horizon", "3"]) == 0
    assert "certificate HOLDS" in capsys.readouterr().out
    doc = json.loads(cert.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_tampered(doc, "payment")))
    assert main(["check", str(MODEL), str(bad), *common, "--horizon", "3"]) == 1
    assert "certificate does NOT hold" in capsys.readouterr().out
    code = main(["second-best", str(MODEL), *common, "--horizon", "2", "--no-certify", "--certificate", str(bad)])
    assert code == 3 and "no certificate written" in capsys.readouterr().out


def test_markov_exact_vertex_on_the_float_support(monkeypatch):
    """The fallback of the Markov repair (the exact vertex on the float support) proves the same optimum."""
    import mechlp.solve.second_best as sb

    monkeypatch.setattr(sb, "_settle_locally", lambda *args: "skipped")
    res = sb.second_best(lamba_usstp(ALPHA, DELTA), objective="gains_from_trade")
    assert res.status == "optimal" and 0 <= res.optimality.gap < Fraction(1, 10**12)
    monkeypatch.setattr(sb, "DUAL_SUPPORT_COLUMNS", 4)
    res = sb.second_best(lamba_usstp(ALPHA, DELTA), objective="gains_from_trade")
    assert res.status == "not_proved" and "limited to 4 interim-utility columns" in res.optimality_note

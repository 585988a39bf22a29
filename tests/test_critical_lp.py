"""critical_delta(method="lp"): the recursion's scan confirmed by verified LP answers, the warm-started full LP
scan, and their agreement with the old path (one cold minmax(method="lp") per evaluation)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mechlp.backends.highs import solve_arrays, solve_warm
from mechlp.catalog.examples import lamba_usstp, public_project, random_trade
from mechlp.cli import main
from mechlp.constraints.formulation import build_lp
from mechlp.model import tolerances
from mechlp.model.bisection import Confirmation, confirm_scan, scan_and_bisect
from mechlp.model.environment import Environment, bilateral_trade
from mechlp.model.question import Question
from mechlp.model.spaces import MarkovSpace
from mechlp.solve import critical as critical_module
from mechlp.solve import questions as design
from mechlp.solve import recursion
from mechlp.solve.critical import critical_delta, interleaved_trade

THRESHOLD = -tolerances.SURPLUS


def _env_at(env: Environment, d: float) -> Environment:
    return Environment(env.agents, env.actions, d, env.horizon, env.allocation, name=env.name, meta=env.meta)


def old_lp_scan(env: Environment, budget: str, lo: float, hi: float, grid: int, tol: float = 1e-9, **kw):
    """The old LP path: scan_and_bisect over one cold, verified minmax(method="lp") per discount factor."""

    def f(d):
        res = design.minmax(_env_at(env, d), method="lp", **kw)
        if res.status == "infeasible":
            return -math.inf
        assert res.status == "optimal" and res.certificate.ok
        return float(res.surplus[0]) if budget == "ex_ante" else float(res.surplus.min())

    return scan_and_bisect(f, lo, hi, tol, grid)


def non_fosd(k: int, seed: int = 0) -> Environment:
    env = random_trade(k, seed)
    assert not all(ag.is_fosd() for ag in env.agents)
    return env


# ---------------------------------------------------------------------------------------------- confirm_scan
def test_confirm_scan_evaluates_both_ends_of_every_bracket():
    def f(d):
        return (d - 0.3) * (d - 0.7)

    scan = scan_and_bisect(f, 0.0, 1.0, tol=1e-9, grid=11, threshold=0.0)
    seen = []
    conf = confirm_scan(scan, lambda d: seen.append(d) or f(d), threshold=0.0)
    ends = sorted(x for ab in scan.brackets for x in ab)
    assert conf.confirmed and seen == ends and [d for d, _ in conf.evaluations] == ends
    assert conf.expected == [True, False, False, True]  # feasible, infeasible | infeasible, feasible


def test_confirm_scan_reports_the_first_disagreement():
    scan = scan_and_bisect(lambda d: d - 0.3, 0.0, 1.0, tol=1e-9, grid=11, threshold=0.0)
    conf = confirm_scan(scan, lambda d: d - 0.5, threshold=0.0)  # g still negative at the bracket's upper end
    assert not conf.confirmed and len(conf.evaluations) == 2
    (d, v), b = conf.disagreements[0], scan.brackets[0][1]
    assert d == b and v < 0
    assert isinstance(conf, Confirmation)


def test_confirm_scan_without_bracket_checks_the_ends_and_the_point_nearest_the_threshold():
    scan = scan_and_bisect(lambda d: (d - 0.5) ** 2 + 0.1, 0.0, 1.0, grid=5, threshold=0.0)
    assert scan.feasible_everywhere
    conf = confirm_scan(scan, lambda d: 1.0, threshold=0.0)
    assert [d for d, _ in conf.evaluations] == [0.0, 0.5, 1.0] and conf.confirmed
    dead = scan_and_bisect(lambda d: -math.inf, 0.0, 1.0, grid=4, threshold=0.0)
    conf = confirm_scan(dead, lambda d: -math.inf, threshold=0.0)
    assert [d for d, _ in conf.evaluations] == [0.0, 1.0] and conf.confirmed
    wrong = confirm_scan(dead, lambda d: 1.0, threshold=0.0, stop_early=False)
    assert len(wrong.disagreements) == 2


def test_confirm_scan_rejects_nan():
    scan = scan_and_bisect(lambda d: d - 0.3, 0.0, 1.0, grid=3, threshold=0.0)
    with pytest.raises(ValueError, match="NaN at delta"):
        confirm_scan(scan, lambda d: math.nan, threshold=0.0)


# ---------------------------------------------------------------------------------------------- warm HiGHS runs
def test_solve_warm_from_a_basis_or_a_primal_point_gives_the_cold_optimum():
    env = interleaved_trade(3, discount=0.6, persistence=0.5)
    sp = MarkovSpace(env)
    q = Question.parse(env, budget="none")
    lp = build_lp(sp, q)
    arrays = (lp.A, lp.row_lower, lp.row_upper, lp.col_lower, lp.col_upper, lp.cost)
    cold = solve_arrays(*arrays)
    first, basis = solve_warm(*arrays)
    assert first.status == "optimal" and basis is not None
    assert first.objective == pytest.approx(cold.objective, rel=1e-10, abs=1e-10)
    # the basis of delta = 0.6 starts the LP of delta = 0.65; the recursion's mechanism starts it too
    env2 = _env_at(env, 0.65)
    sp2 = MarkovSpace(env2)
    lp2 = build_lp(sp2, Question.parse(env2, budget="none"))
    arrays2 = (lp2.A, lp2.row_lower, lp2.row_upper, lp2.col_lower, lp2.col_upper, lp2.cost)
    cold2 = solve_arrays(*arrays2)
    by_basis, _ = solve_warm(*arrays2, basis=basis)
    mech = recursion.solve(sp2).mechanism()
    point = np.concatenate([mech.utilities().ravel(), mech.transfers.ravel(), mech.designer_values()])
    by_point, _ = solve_warm(*arrays2, start=point)
    for out in (by_basis, by_point):
        assert out.status == "optimal"
        assert out.objective == pytest.approx(cold2.objective, rel=1e-10, abs=1e-10)


# ---------------------------------------------------------------------------------------------- critical_delta
@pytest.mark.parametrize("budget", ["interim", "ex_ante"])
def test_lp_confirms_the_recursion_on_a_markov_model_with_verified_lp_answers(budget):
    env = interleaved_trade(3, persistence=0.5)
    rec = critical_delta(env, budget)
    lp = critical_delta(env, budget, method="lp")
    assert lp.scanned_by == "recursion" and lp.lp_scan == "confirm" and rec.scanned_by == "recursion"
    assert lp.critical == pytest.approx(rec.critical, abs=1e-12) and len(lp.critical) == 1
    (a, b), ok_a = lp.brackets[0], lp.scan.directions[0] == "becomes infeasible"
    assert [d for d, _ in lp.lp_evaluations] == [a, b]
    assert lp.recursion_evaluations == rec.evaluations and lp.evaluations == rec.evaluations + 2
    # each confirmed end is the value of a cold, verified minmax LP, on the side the scan reports
    for d, value in lp.lp_evaluations:
        cold = design.minmax(_env_at(env, d), method="lp")
        assert cold.status == "optimal" and cold.certificate.ok
        want = cold.surplus[0] if budget == "ex_ante" else cold.surplus.min()
        assert value == pytest.approx(want, abs=1e-9)
        assert (value >= THRESHOLD) == (ok_a if d == a else not ok_a)
    assert "confirmed by 2 verified LP answers at both ends of every bracket" in lp.message
    payload = lp.to_dict()
    assert payload["scanned_by"] == "recursion" and len(payload["lp_evaluations"]) == 2
    assert payload["recursion_evaluations"] == rec.evaluations and "warm-started" in payload["how"]
    assert "warm-started from the recursion's mechanism" in lp.report()
    assert payload["parts"]["lp_solve"] > 0 and payload["parts"]["recursion"] > 0


def test_full_lp_scan_matches_the_old_path_and_the_recursion():
    env = lamba_usstp(0.7, 0.9)
    full = critical_delta(env, "interim", lo=0.5, hi=0.9, grid=5, method="lp", lp_scan="full")
    old = old_lp_scan(env, "interim", 0.5, 0.9, 5)
    rec = critical_delta(env, "interim", lo=0.5, hi=0.9, grid=5)
    assert full.scanned_by == "lp" and full.recursion_evaluations == 0
    assert len(full.lp_evaluations) == full.evaluations == len(old.evaluations)
    assert full.critical == pytest.approx(old.critical, abs=1e-9)
    assert full.critical == pytest.approx(rec.critical, abs=1e-9)
    assert full.critical[0] == pytest.approx(0.6954617784, abs=1e-8)  # tests/test_critical.py, the USSTP value
    got = dict(full.lp_evaluations)
    for d, v in old.evaluations:  # the same points, the same values: warm starts change no answer
        assert got[d] == pytest.approx(v, abs=1e-9)


@pytest.mark.parametrize("budget", ["interim", pytest.param("ex_ante", marks=pytest.mark.slow)])
def test_non_fosd_model_every_evaluation_by_the_lp(budget):
    env = non_fosd(2)
    lp = critical_delta(env, budget, lo=0.05, hi=0.5, grid=4, method="lp", tol=1e-7)
    rec = critical_delta(env, budget, lo=0.05, hi=0.5, grid=4, tol=1e-7)
    assert rec.not_certified  # the recursion's Pi* is only a lower bound here
    assert lp.scanned_by == "lp" and lp.not_certified == []
    assert "not certified tight at delta = 0.05" in lp.how and lp.recursion_evaluations == 1
    old = old_lp_scan(env, budget, 0.05, 0.5, 4, tol=1e-7)
    assert lp.critical == pytest.approx(old.critical, abs=1e-7) and len(lp.critical) == 1


def test_finite_tree_tail_and_many_agents_agree_across_methods():
    cases = [
        (lamba_usstp(0.7, 0.9, horizon=3), "ex_ante", {}, 0.01),
        (lamba_usstp(0.7, 0.9), "interim", {"horizon": 2, "tail": True}, 0.01),
        (public_project(), "interim", {}, 0.3),
    ]
    for env, budget, kw, lo in cases:
        rec = critical_delta(env, budget, lo=lo, hi=0.9, grid=4, **kw)
        lp = critical_delta(env, budget, lo=lo, hi=0.9, grid=4, method="lp", **kw)
        assert len(rec.critical) == 1 and lp.scanned_by == "recursion"
        assert lp.critical == pytest.approx(rec.critical, abs=1e-12)
    assert rec.critical[0] == pytest.approx(0.3191974412, abs=1e-8)  # public project: the old LP path, grid 9
    tree = lamba_usstp(0.7, 0.9, horizon=3)
    old = old_lp_scan(tree, "ex_ante", 0.01, 0.99, 4)
    for kw in ({}, {"lp_scan": "full"}):
        assert critical_delta(tree, "ex_ante", grid=4, method="lp", **kw).critical == pytest.approx(
            old.critical, abs=1e-9
        )


def test_lp_without_bracket_and_where_ic_fails():
    # ex ante balance holds on the whole grid: the LP confirms at the ends and at the point nearest zero
    feas = critical_delta(public_project(), "ex_ante", grid=5, method="lp")
    assert feas.status == "feasible" and feas.scanned_by == "recursion"
    assert 2 <= len(feas.lp_evaluations) <= 3 and all(v >= THRESHOLD for _, v in feas.lp_evaluations)
    assert "the grid ends and the grid point nearest zero" in feas.how
    # an allocation IC cannot implement: the LP answers infeasible (Farkas-certified by minmax), -inf everywhere
    iid = np.full((2, 2), 0.5)
    base = bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.5, 0.5], [0.5, 0.5], iid, iid, 0.9)
    alloc = np.array([[0, 1], [1, 0], [1, 0], [1, 0]], dtype=float)
    env = Environment(base.agents, base.actions, 0.9, "infinite", alloc)
    for kw in ({}, {"lp_scan": "full"}):
        cd = critical_delta(env, lo=0.1, hi=0.9, grid=3, method="lp", **kw)
        assert cd.scan.infeasible_everywhere and cd.lp_evaluations
        assert all(v == -math.inf for _, v in cd.lp_evaluations)
        assert "answered by a cold minmax(method='lp')" in cd.how and len(cd.ic_infeasible) == 3
        assert cd.to_dict()["lp_evaluations"][0][1] == "-inf"


def test_a_disagreeing_lp_answer_sends_every_evaluation_to_the_lp(monkeypatch):
    env = lamba_usstp(0.7, 0.9)

    def disagree(scan, g, threshold=THRESHOLD, stop_early=True):
        d = scan.brackets[0][0]
        return Confirmation([(d, 1.0)], [False], [(d, 1.0)])

    monkeypatch.setattr(critical_module, "confirm_scan", disagree)
    cd = critical_delta(env, "interim", lo=0.5, hi=0.9, grid=5, method="lp")
    assert cd.scanned_by == "lp" and "is on the other side than the recursion's" in cd.how
    assert cd.critical[0] == pytest.approx(0.6954617784, abs=1e-8)
    assert len(cd.lp_evaluations) == cd.evaluations - cd.recursion_evaluations


def test_cvxpy_backend_goes_through_minmax():
    env = lamba_usstp(0.7, 0.9)
    cd = critical_delta(env, "ex_ante", lo=0.5, hi=0.6, grid=3, method="lp", backend="cvxpy", tol=1e-6)
    assert cd.scanned_by == "recursion" and cd.critical[0] == pytest.approx(40 / 73, abs=1e-6)
    assert "2 LP evaluations answered by a cold minmax(method='lp') (the cvxpy backend" in cd.how


def test_lp_scan_must_be_known():
    with pytest.raises(ValueError, match="lp_scan must be one of"):
        critical_delta(lamba_usstp(), method="lp", lp_scan="sometimes")


@pytest.mark.slow
def test_five_by_five_markov_lp_confirmation_matches_cold_lps():
    env = interleaved_trade(5, persistence=0.5)
    rec = critical_delta(env, "interim")
    lp = critical_delta(env, "interim", method="lp")
    assert lp.scanned_by == "recursion" and lp.critical == pytest.approx(rec.critical, abs=1e-12)
    for d, value in lp.lp_evaluations:
        cold = design.minmax(_env_at(env, d), method="lp")
        assert cold.surplus.min() == pytest.approx(value, abs=1e-9)
    full = critical_delta(env, "interim", method="lp", lp_scan="full")
    assert full.critical == pytest.approx(rec.critical, abs=1e-9)


def test_cli_lp_scan(tmp_path, capsys):
    model = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
    out = tmp_path / "crit.json"
    args = ["critical-delta", str(model), "--budget", "ex-ante", "--grid", "3", "--lo", "0.5", "--hi", "0.6"]
    assert main([*args, "--method", "lp", "--lp-scan", "full", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    payload = json.loads(out.read_text())["critical_delta"]
    assert payload["scanned_by"] == "lp" and payload["lp_scan"] == "full" and payload["recursion_evaluations"] == 0
    assert payload["critical"][0] == pytest.approx(40 / 73, abs=1e-8) and "every evaluation by the verified LP" in text
    assert main([*args, "--method", "lp", "--json", str(out)]) == 0
    capsys.readouterr()
    payload = json.loads(out.read_text())["critical_delta"]
    assert payload["scanned_by"] == "recursion" and len(payload["lp_evaluations"]) == 2

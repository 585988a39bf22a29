"""Critical discount factors (mechlp.solve.critical): scan + bisection, monotonicity checks, LP cross-checks, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.cli import main
from mechlp.model.environment import Environment, bilateral_trade
from mechlp.solve import questions as design
from mechlp.solve.critical import critical_delta, interleaved_trade, scan_and_bisect

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"


# ---------------------------------------------------------------------------------------------- generic scan
def test_every_sign_change_of_a_non_monotone_function_is_found():
    roots = (0.3, 0.6, 0.8)

    def f(d):
        return (d - roots[0]) * (d - roots[1]) * (d - roots[2])

    scan = scan_and_bisect(f, 0.0, 1.0, tol=1e-10, grid=21, threshold=0.0)
    assert scan.directions == ["becomes feasible", "becomes infeasible", "becomes feasible"]
    for (a, b), r in zip(scan.brackets, roots, strict=True):
        assert b - a <= 1e-10 and a - 1e-12 <= r <= b + 1e-12
    assert not scan.monotone and scan.violations
    d1, v1, d2, v2 = scan.violations[0]
    assert d1 < d2 and v1 > v2 and 0.3 < d1 < 0.8  # the decreasing stretch between the outer roots
    assert not scan.feasible_everywhere and not scan.infeasible_everywhere


def test_a_dip_that_does_not_cross_zero_is_still_reported():
    scan = scan_and_bisect(lambda d: 1.0 + math.sin(12 * d), 0.0, 1.0, grid=41)
    assert scan.brackets == [] and scan.feasible_everywhere
    assert not scan.monotone


def test_monotone_function_one_bracket_and_every_evaluation_recorded():
    scan = scan_and_bisect(lambda d: d - 1 / 3, 0.0, 1.0, tol=1e-9, grid=5)
    assert scan.monotone and scan.violations == []
    assert scan.directions == ["becomes feasible"]
    assert scan.critical[0] == pytest.approx(1 / 3, abs=1e-9)
    ds = [d for d, _ in scan.evaluations]
    assert ds == sorted(ds) and len(ds) > 5


def test_infinite_values_mean_infeasible():
    scan = scan_and_bisect(lambda d: -math.inf if d < 0.5 else 1.0, 0.0, 1.0, tol=1e-6, grid=3)
    assert scan.directions == ["becomes feasible"] and scan.monotone


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.5, 0.5), "lo < hi"),
        ((0.0, 1.0, 0.0), "tol must be a positive number"),
        ((0.0, 1.0, 1e-9, 1), "at least 2 points"),
        ((0.0, 1.0, 1e-9, [0.5, 0.2]), "strictly increasing"),
    ],
)
def test_scan_errors(args, match):
    with pytest.raises(ValueError, match=match):
        scan_and_bisect(lambda d: d, *args)
    with pytest.raises(ValueError, match="NaN"):
        scan_and_bisect(lambda d: math.nan, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------- Lamba USSTP
@pytest.mark.parametrize("budget", ["interim", "ex_ante"])
def test_usstp_critical_delta_matches_a_dense_grid_of_lp_answers(budget):
    env = lamba_usstp(0.7, 0.95)
    rec = critical_delta(env, budget, lo=0.3, hi=0.9, grid=13)
    assert rec.method == "recursion" and rec.monotone and not rec.not_certified
    assert len(rec.critical) == 1 and rec.scan.directions == ["becomes feasible"]
    crit = rec.critical[0]
    a, b = rec.brackets[0]
    assert b - a <= 1e-9
    # a dense grid of LP answers (one verified min-max LP per discount factor) switches sign at the same place
    grid = np.linspace(0.3, 0.9, 61)
    lp_ok = []
    for d in grid:
        res = design.minmax(Environment(env.agents, env.actions, d, env.horizon, env.allocation))
        assert res.status == "optimal" and res.certificate.ok
        value = res.surplus[0] if budget == "ex_ante" else res.surplus.min()
        lp_ok.append(value >= 0)
    lp_ok = np.array(lp_ok)
    assert np.all(lp_ok == (grid > crit)), (crit, grid[lp_ok.argmax()])
    # and the LP method brackets the same discount factor
    lp = critical_delta(env, budget, lo=crit - 0.01, hi=crit + 0.01, grid=3, method="lp", tol=1e-8)
    assert lp.critical[0] == pytest.approx(crit, abs=1e-8)


def test_tree_with_tail_and_finite_tree():
    # a tree with a Markov tail is exact for the infinite horizon: same critical delta as the Markov space
    tail = critical_delta(lamba_usstp(0.7, 0.9), "interim", lo=0.6, hi=0.8, grid=3, horizon=2, tail=True)
    assert tail.critical[0] == pytest.approx(0.6954617784, abs=1e-8)
    # a finite tree always fails interim balance in its last (static) period: no delta works
    tree = critical_delta(lamba_usstp(0.7, 0.9), "interim", lo=0.1, hi=0.99, grid=4, horizon=3)
    assert tree.scan.infeasible_everywhere and "infeasible on the whole grid" in tree.message


def test_usstp_known_values_callable_and_ex_post():
    interim = critical_delta(lambda d: lamba_usstp(0.7, d), "interim", lo=0.5, hi=0.9, grid=5)
    assert interim.critical[0] == pytest.approx(0.6954617784, abs=1e-8)
    ex_post = critical_delta(lamba_usstp(0.7, 0.5), "ex_post", lo=0.5, hi=0.9, grid=5)
    assert ex_post.critical == pytest.approx(interim.critical, abs=1e-9)  # Lamba Theorem 1: same condition
    ante = critical_delta(lamba_usstp(0.7, 0.5), "ex_ante", lo=0.4, hi=0.9, grid=6)
    assert ante.critical[0] == pytest.approx(40 / 73, abs=1e-8)
    assert ante.critical[0] < interim.critical[0]  # ex ante balance is the weaker requirement
    d = ante.to_dict()
    assert d["critical"] == ante.critical and d["monotone"] is True and d["budget"] == "ex_ante"
    assert "becomes feasible at delta = 0.54794520" in ante.report()


def test_ic_failure_is_reported_as_infeasible_everywhere():
    iid = np.full((2, 2), 0.5)
    base = bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.5, 0.5], [0.5, 0.5], iid, iid, 0.9)
    alloc = np.array([[0, 1], [1, 0], [1, 0], [1, 0]], dtype=float)  # trades only when the buyer is low
    env = Environment(base.agents, base.actions, 0.9, "infinite", alloc)
    cd = critical_delta(env, lo=0.1, hi=0.9, grid=3)
    assert cd.scan.infeasible_everywhere and len(cd.ic_infeasible) == 3
    assert "IC itself fails" in cd.message and cd.to_dict()["values"] == ["-inf"] * 3


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"budget": "weekly"}, ValueError, "budget must be one of"),
        ({"method": "simplex"}, ValueError, "method must be one of"),
        ({"lo": 0.6, "hi": 0.2}, ValueError, "0 <= lo < hi"),
        ({"lo": math.nan}, ValueError, "lo must be a finite number"),
        ({"grid": 1}, ValueError, "at least 2 points"),
        ({"tail": True}, ValueError, "tail=True needs horizon"),
    ],
)
def test_critical_delta_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        critical_delta(lamba_usstp(), **kwargs)
    with pytest.raises(TypeError, match="Environment or a callable"):
        critical_delta(0.95)


# ---------------------------------------------------------------------------------------------- continuous limit
def test_interleaved_grid_iid_critical_delta_rises_toward_one_half():
    # Athey and Miller (2007); Lamba (2022) footnote 24: in the continuous iid limit delta >= 1/2 suffices
    crit = {}
    for k in (10, 20):
        env = interleaved_trade(k)
        assert env.agents[0].values[-1] == 1.0 and env.agents[1].values[0] == 0.0
        cd = critical_delta(env, "interim", lo=0.3, hi=0.6, grid=7, tol=1e-7)
        assert len(cd.critical) == 1 and cd.monotone and not cd.not_certified
        crit[k] = cd.critical[0]
    assert 0.4 < crit[10] < crit[20] < 0.5
    assert crit[10] == pytest.approx(5 / 12, abs=1e-6)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_critical_delta_prints_the_bracket(tmp_path, capsys):
    out = tmp_path / "crit.json"
    code = main(["solve", str(MODEL), "--critical-delta", "--budget", "ex-ante", "--grid", "6", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "becomes feasible at delta = 0.54794520" in text and "bracket [" in text
    payload = json.loads(out.read_text())["critical_delta"]
    assert payload["method"] == "recursion" and payload["critical"][0] == pytest.approx(40 / 73, abs=1e-8)


def test_cli_solve_with_the_recursion(tmp_path, capsys):
    out = tmp_path / "answer.json"
    code = main(["solve", str(MODEL), "--method", "recursion", "--json", str(out)])
    capsys.readouterr()
    payload = json.loads(out.read_text())
    assert code == 0 and payload["status"] == "feasible"
    assert payload["ex_ante_surplus"] == pytest.approx(4.733871, abs=1e-6)
    assert math.floor(payload["fees"]["buyer"]["first"] * 1000) == 218


# ---------------------------------------------------------------------------------------------- any parameter
def test_critical_persistence_is_lambas_corollary_3(tmp_path):
    """Lamba (2022), Corollary 3: on the USSTP at delta = 0.95 interim balance fails above persistence
    0.94578523 (the issue's value); from the command line, varying any --set key of the model file."""
    out = tmp_path / "crit.json"
    model = str(Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml")
    argv = ["critical-delta", model, "--parameter", "persistence", "--lo", "0.5", "--hi", "0.99", "--json", str(out)]
    assert main(argv) == 0
    crit = json.loads(out.read_text())["critical_delta"]
    assert crit["parameter"] == "persistence" and crit["directions"] == ["becomes infeasible"]
    assert crit["critical"][0] == pytest.approx(0.94578523, abs=1e-7)
    assert crit["non_increasing"] is True and crit["monotone"] is False


def test_critical_parameter_needs_a_callable_model():
    with pytest.raises(ValueError, match=r"varying 'persistence' needs model as a callable value -> Environment"):
        critical_delta(lamba_usstp(0.7, 0.95), parameter="persistence")
    res = critical_delta(lambda p: lamba_usstp(p, 0.95), lo=0.5, hi=0.99, grid=9, parameter="persistence")
    assert "at persistence = 0.94578" in res.message and "delta" not in res.report().split("\n", 1)[1]


def test_solve_critical_key_is_critical_delta_with_that_parameter(tmp_path, capsys):
    model = str(Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml")
    out = tmp_path / "crit.json"
    assert main(["solve", model, "--critical", "persistence", "--lo", "0.5", "--hi", "0.99", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["critical_delta"]["critical"][0] == pytest.approx(0.94578523, abs=1e-7)
    assert main(["solve", model, "--critical", "persistence", "--critical-delta"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["solve", model, "--critical", "no_such_key"]) == 2
    assert "no_such_key" in capsys.readouterr().err

"""The per-history solves of the sharing rules (issue #12, item 4) against the two-stage beta LP.

``"maxmin"`` without limits is water-filling history by history; ``"min-max-transfer"`` under the interim budget
(constructions ``"interim"``/``"shift"``) is the least solution of monotone two-variable rows, found depth level
by depth level, with bisection on the largest payment. The old LP stays reachable (``beta_method="lp"``); these
tests compare the two on random small models (trees, tails, Markov spaces, three agents, non-FOSD kernels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import random_models

from mechlp.catalog.examples import lamba_usstp
from mechlp.cli.share import add_parsers
from mechlp.model import tolerances
from mechlp.model.beliefs import marginal_beliefs
from mechlp.model.environment import Agent, Environment
from mechlp.solve.questions import minmax
from mechlp.workflows.sharing import share_surplus

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"


def random_bilateral(seed: int, horizon) -> Environment:
    """2x2, 2x3 or 3x2 bilateral trade; even seeds FOSD-persistent kernels, odd seeds arbitrary (non-FOSD)."""
    return random_models.random_bilateral(seed, horizon, values=(0.3, 1.5), costs=(0.0, 0.9), delta=(0.2, 0.95))


def random_three(seed: int, horizon) -> Environment:
    """Three agents, two types each, two actions, the efficient allocation (random kernels and valuations)."""
    rng = np.random.default_rng(seed)
    agents = []
    for j in range(3):
        w = rng.integers(1, 10, size=(2, 2)).astype(float)
        val = np.round(rng.uniform(-0.5, 1.0, size=(2, 2)), 2)
        agents.append(Agent(f"a{j}", ["lo", "hi"], [0.5, 0.5], w / w.sum(axis=1, keepdims=True), val))
    types = np.array(np.unravel_index(np.arange(8), (2, 2, 2))).T
    welfare = np.stack([sum(agents[j].valuation[types[:, j], a] for j in range(3)) for a in range(2)], axis=1)
    alloc = np.zeros((8, 2))
    alloc[np.arange(8), welfare.argmax(axis=1)] = 1.0
    return Environment(agents, ["x", "y"], round(float(rng.uniform(0.3, 0.9)), 2), horizon, alloc, name="three")


CASES = (
    [("tree", s) for s in range(6)]
    + [("tail", s) for s in range(6)]
    + [("markov", s) for s in range(4)]
    + [("three-tree", s) for s in range(2)]
    + [("three-tail", 7)]
)


def case_minmax(kind: str, seed: int):
    if kind == "tree":
        return minmax(random_bilateral(seed, 3))
    if kind == "tail":
        return minmax(random_bilateral(seed, "infinite"), horizon=2, tail=True)
    if kind == "markov":
        return minmax(random_bilateral(seed, "infinite"))
    if kind == "three-tree":
        return minmax(random_three(seed, 3))
    return minmax(random_three(seed, "infinite"), horizon=2, tail=True)


def shares(res) -> np.ndarray:
    """a_i(h) = beta_i(h) Pi*(h): the surplus each agent receives (beta itself is arbitrary where Pi* = 0)."""
    return res.beta * res.pi_star[None, :]


def assert_agree(new, old, objective_scale: float) -> None:
    """The per-history answer against the LP's: both verified, objectives to 1e-9, shares and transfers within
    the LP's own tie-break slack (TIE_BREAK_SLACK * max(1, |optimum|): the LP may trade that much of its first
    objective for a smaller tie-break distance)."""
    assert new.status == old.status == "optimal", (new.message, old.message)
    assert new.certificate.ok and old.certificate.ok
    slack = tolerances.TIE_BREAK_SLACK * max(1.0, objective_scale)
    assert abs(new.objective - old.objective) <= 1e-9 * max(1.0, abs(old.objective))
    np.testing.assert_allclose(shares(new), shares(old), atol=2 * slack + 1e-9)
    np.testing.assert_allclose(new.mechanism.transfers, old.mechanism.transfers, atol=10 * slack + 1e-9)


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_per_history_solves_agree_with_the_beta_lp(kind, seed):
    mm = case_minmax(kind, seed)
    assert mm.status == "optimal", mm.message
    runs = [("maxmin", "interim", "interim"), ("maxmin", "ex_post", "interim")]
    if kind != "markov":  # the Markov space keeps the LP for min-max-transfer (auto)
        runs += [("min-max-transfer", "interim", "interim"), ("min-max-transfer", "interim", "shift")]
    for rule, budget, construction in runs:
        new = share_surplus(mm, rule, budget=budget, construction=construction, beta_method="structure")
        old = share_surplus(mm, rule, budget=budget, construction=construction, beta_method="lp")
        assert new.options["beta_method"] == ("water-filling" if rule == "maxmin" else "least-shares")
        assert old.options["beta_method"] == "lp"
        assert_agree(new, old, abs(old.objective))
        if rule == "min-max-transfer":  # the optimum is the largest payment of the built mechanism
            assert abs(new.max_abs_transfer - new.objective) <= 2e-9 * max(1.0, new.objective)


@pytest.mark.parametrize("limits", [{"buyer": (None, 0.9)}, {"seller": (-0.9, None), "buyer": (-2.0, 2.0)}])
def test_least_shares_with_transfer_limits_agree_with_the_lp(limits):
    mm = minmax(lamba_usstp(0.7, 0.9), horizon=3, tail=True)
    new = share_surplus(mm, "min-max-transfer", limits=limits, beta_method="structure")
    old = share_surplus(mm, "min-max-transfer", limits=limits, beta_method="lp")
    if old.status == "infeasible":
        assert new.status == "infeasible"
        return
    assert_agree(new, old, abs(old.objective))
    assert new.checks["limits_violation"] <= tolerances.FEASIBILITY


def test_least_shares_infeasible_limits_like_the_lp():
    mm = minmax(lamba_usstp(0.7, 0.9), horizon=3, tail=True)
    limits = {"buyer": (0.0, 0.05), "seller": (-0.05, 0.0)}
    old = share_surplus(mm, "min-max-transfer", limits=limits, beta_method="lp")
    new = share_surplus(mm, "min-max-transfer", limits=limits, beta_method="structure")
    assert old.status == new.status == "infeasible"
    assert np.isnan(new.beta).all()


def test_water_filling_optimality_conditions():
    """KKT of max min_i (E_i + a_i), sum a_i = Pi*, a >= 0, read off the result (not the code's formula): where
    Pi* > 0 the shares sum to one, every agent who gets a share ends at the common level m, and every other agent
    already has E_i >= m."""
    res = share_surplus(minmax(random_three(4, 3)), "maxmin", beta_method="structure")
    pi = res.pi_star
    e = np.stack(
        [(u * m).sum(axis=1) for u, m in zip(res.minmax.interim_utilities, marginal_beliefs(res.space), strict=True)]
    )
    level = (e + shares(res)).min(axis=0)
    pos = pi > 1e-9
    assert pos.any()
    np.testing.assert_allclose(res.beta[:, pos].sum(axis=0), 1.0, atol=1e-12)
    got = res.beta[:, pos] > 1e-12
    np.testing.assert_allclose((e + shares(res))[:, pos][got], np.broadcast_to(level[pos], got.shape)[got], atol=1e-9)
    assert np.all(e[:, pos][~got] >= np.broadcast_to(level[pos], got.shape)[~got] - 1e-9)
    assert abs(res.objective - float(level[pos].sum() + e[:, ~pos].min(axis=0).sum())) <= 1e-9 * abs(res.objective)


def test_auto_falls_back_to_the_lp_and_says_why():
    mm = minmax(lamba_usstp(0.7, 0.9), horizon=3, tail=True)
    res = share_surplus(mm, "maxmin", limits={"buyer": (None, 2.0)})
    assert res.status == "optimal" and res.options["beta_method"] == "lp"
    assert res.message.endswith(res.message.split("; ")[-1]) and "beta by lp" in res.message
    with pytest.raises(ValueError, match=r"beta_method='structure' does not apply to rule 'maxmin'.*limits"):
        share_surplus(mm, "maxmin", limits={"buyer": (None, 2.0)}, beta_method="structure")
    with pytest.raises(ValueError, match=r"beta_method='structure' does not apply.*budget='ex_post'"):
        share_surplus(mm, "min-max-transfer", budget="ex_post", beta_method="structure")
    with pytest.raises(ValueError, match=r"does not apply.*construction='own'"):
        share_surplus(mm, "min-max-transfer", construction="own", beta_method="structure")
    with pytest.raises(ValueError, match=r"does not apply.*markov=True or stationary=True"):
        share_surplus(mm, "maxmin", markov=True, beta_method="structure")
    with pytest.raises(ValueError, match=r"does not apply.*Markov space"):
        share_surplus(minmax(lamba_usstp(0.7, 0.9)), "min-max-transfer", beta_method="structure")
    with pytest.raises(ValueError, match=r"beta_method must be one of \('auto', 'structure', 'lp'\), got 'fast'"):
        share_surplus(mm, "maxmin", beta_method="fast")


def test_method_is_passed_to_minmax_and_named():
    env = lamba_usstp(0.7, 0.9)
    auto = share_surplus(env, "equal", horizon=3, tail=True)
    lp = share_surplus(env, "equal", horizon=3, tail=True, method="lp")
    assert auto.options["method"] == "recursion" and "Pi* by the recursion" in auto.message
    assert lp.options["method"] == "lp" and "Pi* by the lp" in lp.message
    assert lp.minmax.diagnosis["method"] == "lp"
    np.testing.assert_allclose(auto.pi_star, lp.pi_star, atol=1e-9)
    with pytest.raises(ValueError, match=r"method must be one of \('auto', 'lp', 'recursion'\), got 'simplex'"):
        share_surplus(env, "equal", horizon=3, tail=True, method="simplex")
    with pytest.raises(ValueError, match=r"minmax options \(method, \.\.\.\) are only accepted with an Environment"):
        share_surplus(auto.minmax, "equal", method="lp")


def test_cli_share_method_and_beta_method(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="mechlp")
    add_parsers(parser.add_subparsers(dest="command"))
    out = tmp_path / "share.json"
    base = [
        "share",
        str(MODEL),
        "--rule",
        "min-max-transfer",
        "--horizon",
        "2",
        "--tail",
        "--json",
        str(out),
    ]
    args = parser.parse_args([*base, "--method", "lp", "--beta-method", "lp"])
    assert args.func(args) == 0
    old = json.loads(out.read_text())
    assert parser.parse_args(base).method == "auto" and parser.parse_args(base).beta_method == "auto"
    args = parser.parse_args([*base, "--beta-method", "structure"])
    assert args.func(args) == 0
    new = json.loads(out.read_text())
    capsys.readouterr()
    assert old["options"]["method"] == "lp" and old["options"]["beta_method"] == "lp"
    assert new["options"]["method"] == "recursion" and new["options"]["beta_method"] == "least-shares"
    assert abs(new["objective"] - old["objective"]) <= 1e-9

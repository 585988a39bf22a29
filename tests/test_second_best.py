"""Second best (Lamba 2022, section 8 open question): the allocation chosen by the LP together with transfers."""

from __future__ import annotations

import numpy as np
import pytest

from mechlp.audit.verifier import verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.model.environment import Agent, Environment
from mechlp.model.mechanism import Mechanism
from mechlp.solve.questions import feasibility, minmax
from mechlp.solve.second_best import efficient_welfare, second_best


@pytest.fixture(scope="module")
def low_delta():
    env = lamba_usstp(alpha=0.9, delta=0.3)
    return env, second_best(env, objective="gains_from_trade", budget="interim")


def test_usstp_low_delta_second_best_strictly_between(low_delta):
    """delta = 0.3, alpha = 0.9: efficiency is not implementable under interim balance, so the second best
    trades off gains from trade (0 < GFT* < first best), with a verified mechanism and a matching dual bound."""
    env, res = low_delta
    assert res.status == "optimal", res.message
    assert res.certificate.ok
    assert res.first_best == pytest.approx(0.39285714285714285, abs=1e-12)
    assert 0.01 < res.value < res.first_best - 1e-3
    assert res.value == pytest.approx(0.3792784576, abs=1e-8)
    # allocation: a distribution at every node, randomised somewhere (the second best is not the efficient rule)
    p = res.allocation
    assert p.shape == (res.space.n_nodes, env.n_actions)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.any((p[:, 1] > 1e-6) & (p[:, 1] < 1 - 1e-6))
    # dual certificate: HiGHS duals are feasible and the bound equals the value (strong duality)
    assert res.dual is not None and res.dual.ok, res.dual.summary()
    assert res.dual.bound == pytest.approx(res.value, abs=1e-8)
    # the budget rows hold for the answer and the efficient rule alone would fail them
    assert res.surplus.min() >= -1e-9
    assert feasibility(env, "interim").status == "infeasible"  # with its verified certificate
    rows = res.allocation_table([0])
    assert len(rows) == env.n_profiles and set(rows[0]["p"]) == set(env.actions)


def test_usstp_high_delta_second_best_is_first_best():
    """Past the efficiency threshold (delta = 0.95) the second best reaches the first best (to 1e-8)."""
    env = lamba_usstp(alpha=0.9, delta=0.95)
    res = second_best(env, objective="gains_from_trade", budget="interim")
    assert res.status == "optimal", res.message
    fb, _ = efficient_welfare(res.space)
    assert res.value == pytest.approx(fb, abs=1e-8)
    assert res.dual.ok and res.dual.bound == pytest.approx(fb, abs=1e-8)
    assert feasibility(env, "interim", certify=False).status == "optimal"


def test_no_budget_reaches_first_best_on_a_tree():
    """Without budget rows the efficient rule is implementable (e.g. the team mechanism), so welfare = first best;
    on a history tree the allocation is history dependent and the verifier checks it node by node."""
    env = lamba_usstp(alpha=0.7, delta=0.9, horizon=3)
    res = second_best(env, objective="welfare", budget="none")
    assert res.status == "optimal" and res.certificate.ok
    assert res.value == pytest.approx(res.first_best, abs=1e-8)
    tight = second_best(env, objective="welfare", budget="ex_ante")
    assert tight.status == "optimal" and tight.certificate.ok
    assert 0 <= tight.value <= res.value + 1e-9
    assert tight.dual.ok


def test_node_allocation_verifier_matches_profile_allocation():
    """A Mechanism carrying the environment's allocation node by node verifies exactly like one without it,
    and a node allocation that changes the trade rule breaks the min-max transfers' IC."""
    env = lamba_usstp(alpha=0.7, delta=0.9, horizon=2)
    mm = minmax(env)
    same = Mechanism(mm.space, mm.mechanism.transfers, allocation=env.allocation[mm.space.node_profile])
    np.testing.assert_allclose(same.utilities(), mm.mechanism.utilities(), atol=1e-12)
    a, b = verify(same, budget="none"), verify(mm.mechanism, budget="none")
    assert a.ok and b.ok and a.max_violation == pytest.approx(b.max_violation, abs=1e-12)
    always = np.zeros_like(same.allocation)
    always[:, 1] = 1.0  # trade at every node: the min-max transfers no longer fit this allocation
    bad = Mechanism(mm.space, mm.mechanism.transfers, allocation=always)
    assert not verify(bad, budget="none").ok
    with pytest.raises(ValueError, match="probability distribution"):
        Mechanism(mm.space, mm.mechanism.transfers, allocation=always * 2)


def test_refusals():
    env = lamba_usstp(alpha=0.7, delta=0.9, horizon=2)
    with pytest.raises(ValueError, match="objective"):
        second_best(env, objective="profit")
    with pytest.raises(ValueError, match="local IC"):
        second_best(env, ic="local")
    learn = Agent("a", ["l", "h"], [0.5, 0.5], [np.eye(2), [[0.5, 0.5], [0.5, 0.5]]], [[0, 1], [0, 2]])
    learn_env = Environment([learn], ("no", "yes"), 0.9, "infinite")  # finite learning models: realised-action LP
    with pytest.raises(ValueError, match="depend on the action.*infinite horizon is refused; give horizon"):
        second_best(learn_env, budget="none")


def test_budget_notions_order_and_equivalences(low_delta):
    """Ex post and interim balance give the same second best (Lamba 2022, Theorem 1 / Proposition 1: the
    rebalancing keeps any allocation), savings equals ex ante (two agents, Bayesian IC, interim IR), and ex ante
    is weakly looser than interim."""
    env, interim = low_delta
    vals = {b: second_best(env, objective="gains_from_trade", budget=b) for b in ("ex_post", "ex_ante", "savings")}
    assert all(r.certificate.ok and r.dual.ok for r in vals.values())
    # ex post balance is proved exactly (the interim relaxation's dual, a rebalanced exact primal); savings is not
    assert vals["ex_post"].status == vals["ex_ante"].status == "optimal"
    assert vals["savings"].status == "not_proved" and "savings" in vals["savings"].optimality_note
    assert vals["ex_post"].value == pytest.approx(interim.value, abs=1e-8)
    assert vals["savings"].value == pytest.approx(vals["ex_ante"].value, abs=1e-8)
    assert interim.value <= vals["ex_ante"].value + 1e-9 <= interim.first_best + 2e-9


def test_cli_second_best(tmp_path, capsys):
    """`mechlp second-best` on the bundled model where efficiency fails: value strictly inside (0, first best)."""
    import json
    from pathlib import Path

    from mechlp.cli import main

    model = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"
    out = tmp_path / "sb.json"
    code = main(["second-best", str(model), "--set", "persistence=0.9", "--set", "discount=0.3", "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "optimal" and 0 < doc["value"] < doc["first_best"]
    assert doc["dual_bound"]["ok"] and abs(doc["dual_bound"]["bound"] - doc["value"]) < 1e-8
    assert doc["verification"]["ok"]
    assert "allocation p(action | history, report profile)" in capsys.readouterr().out

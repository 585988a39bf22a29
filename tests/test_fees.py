"""Yoon's lump-sum fees on the dynamic pivot, the critical discount factor, and the CLI commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from mechlp.catalog.examples import bv_scheduling, lamba_usstp, yoon_binary, yoon_k_type
from mechlp.catalog.io import load_model
from mechlp.cli.constructions import add_parsers
from mechlp.constructions.fees import critical_discount, fee_condition, lump_sum_fees
from mechlp.solve import questions as design

MODELS = Path(__file__).resolve().parents[1] / "models"


def binary_slack(alpha: float, delta: float) -> float:
    """Yoon (2021), section 3.3.2: worst-off payoffs minus the deficit 1/(4(1-delta))."""
    worst = 0.25 * (1 / (1 - delta) - 1 / (1 - delta * (2 * alpha - 1)))
    return 2 * worst - 1 / (4 * (1 - delta))


# ---------------------------------------------------------------------------------------------- binary trade
@pytest.mark.parametrize("alpha", [0.55, 0.7, 0.9])
def test_binary_critical_discount(alpha):
    for d in (0.3, 0.6, 0.95):
        assert fee_condition(yoon_binary(alpha, d)).slack == pytest.approx(binary_slack(alpha, d), abs=1e-10)
    cd = critical_discount(lambda d: yoon_binary(alpha, d), 0.05, 0.99, 1e-8)
    assert len(cd.brackets) == 1 and cd.directions == ["becomes feasible"]
    assert abs(cd.critical[0] - 1 / (3 - 2 * alpha)) < 1e-6
    # the slack dips before it rises when alpha > 3/4 (derivative 1/4 - (2 alpha - 1)/2 at delta = 0): checked,
    # not assumed
    assert cd.monotone == (alpha <= 0.75)


def test_perfect_persistence_is_infeasible_for_every_delta():
    cd = critical_discount(lambda d: yoon_binary(1.0, d), 0.01, 0.99, grid=25)
    assert cd.infeasible_everywhere and not cd.brackets
    assert np.all(cd.slack < 0)
    assert np.allclose(cd.slack, -1 / (4 * (1 - cd.grid)))  # worst-off payoffs are zero, deficit remains
    assert cd.diverse_preferences and "Theorem 6" in cd.message
    cond = fee_condition(yoon_binary(1.0, 0.9))
    assert cond.zero_rent == {"buyer": ["v=0"], "seller": ["c=1"]} and not cond.feasible


def test_absorbing_zero_types_preclude_balance():
    """Yoon (2021), Theorem 6: the seller's highest cost and the buyer's lowest value absorbing."""
    ps = [[0.7, 0.3], [0.0, 1.0]]
    pb = [[1.0, 0.0], [0.3, 0.7]]
    cd = critical_discount(lambda d: yoon_binary(0.5, d, seller_transition=ps, buyer_transition=pb), 0.05, 0.99)
    assert cd.infeasible_everywhere and cd.diverse_preferences
    cond = fee_condition(yoon_binary(0.5, 0.99, seller_transition=ps, buyer_transition=pb))
    assert cond.worst_payoff == pytest.approx([0.0, 0.0], abs=1e-12) and cond.diverse_preferences
    assert "diverse preferences" in cond.message


def test_two_sign_changes_are_all_reported():
    def alpha(d: float) -> float:
        return min(1.0, 0.5 + 4 * (d - 0.6) ** 2)

    cd = critical_discount(lambda d: yoon_binary(alpha(d), d), 0.3, 0.99, 1e-10)
    assert cd.directions == ["becomes feasible", "becomes infeasible"]
    for c in cd.critical:  # each root solves delta = 1/(3 - 2 alpha(delta))
        assert abs(c - 1 / (3 - 2 * alpha(c))) < 1e-6
    assert not cd.monotone and "2 sign changes" in cd.message


def test_two_period_discrete_examples_of_yoon_2021():
    """Section 3.3.1 B (two periods, delta = 1): deficit and worst-off payoffs from the text."""
    ps = np.array([[0.6, 0.4], [0.3, 0.7]])
    pb = np.array([[0.8, 0.2], [0.45, 0.55]])
    cond = fee_condition(yoon_binary(seller_transition=ps, buyer_transition=pb, delta=1.0, horizon=2))
    (s00, _, s10, _), (_, b01, _, b11) = ps.ravel(), pb.ravel()
    assert cond.deficit == pytest.approx((1 + (s00 + s10) * (b01 + b11)) / 4, abs=1e-12)
    buyer, seller = cond.root_payoffs
    assert buyer == pytest.approx([b01 * (s00 + s10) / 2, (1 + b11 * (s00 + s10)) / 2], abs=1e-12)
    assert seller == pytest.approx([(1 + s00 * (b01 + b11)) / 2, s10 * (b01 + b11) / 2], abs=1e-12)
    # symmetric alpha: the inequality becomes 1/2 <= 1 - alpha
    for a in (0.3, 0.5, 0.7):
        assert fee_condition(yoon_binary(a, 1.0, horizon=2)).slack == pytest.approx(0.5 - a, abs=1e-12)
    # independent valuations: LHS = RHS = 1/2; persistent: LHS = 1/2, RHS = 0
    ind = fee_condition(yoon_binary(0.5, 1.0, horizon=2))
    assert ind.deficit == pytest.approx(0.5) and ind.worst_payoff.sum() == pytest.approx(0.5) and ind.feasible
    per = fee_condition(yoon_binary(1.0, 1.0, horizon=2))
    assert per.deficit == pytest.approx(0.5) and per.worst_payoff.sum() == pytest.approx(0.0) and not per.feasible


# ---------------------------------------------------------------------------------------------- K types
def test_k_type_iid_threshold():
    """Yoon (2021), section 3.3.2, i.i.d. valuations: delta >= K^2 S_x / (K^2 S_x + S)."""
    v = np.array([0.0, 0.4, 1.0])
    x = np.array([0.5, 0.3, 0.2])  # seller
    y = np.array([0.2, 0.3, 0.5])  # buyer
    k = v.size
    gap = np.triu(v[None, :] - v[:, None], 1)
    s_x, s = float(x @ gap @ y), float(gap.sum())
    expected = k**2 * s_x / (k**2 * s_x + s)

    def make(d):
        return yoon_k_type(v, 1.0 / k, d, seller_prior=x, buyer_prior=y)

    cd = critical_discount(make, 0.05, 0.99, 1e-9)
    assert len(cd.critical) == 1 and abs(cd.critical[0] - expected) < 1e-6


def test_k_type_condition_matches_yoon_matrix_series():
    v = np.array([0.0, 0.5, 1.0])
    ps = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]])
    pb = np.array([[0.5, 0.3, 0.2], [0.25, 0.5, 0.25], [0.1, 0.2, 0.7]])
    x = np.array([0.3, 0.3, 0.4])
    y = np.array([0.4, 0.35, 0.25])
    delta = 0.8
    gap = np.triu(v[None, :] - v[:, None], 1)  # Yoon's V: v_j - v_i above the diagonal (seller i, buyer j)
    series = np.zeros_like(gap)
    a, b = np.eye(3), np.eye(3)
    for t in range(400):  # sum_t delta^t P_s^t V (P_b^t)^T
        series += delta**t * a @ gap @ b.T
        a, b = a @ ps, b @ pb
    cond = fee_condition(
        yoon_k_type(v, delta=delta, seller_prior=x, buyer_prior=y, seller_transition=ps, buyer_transition=pb)
    )
    assert cond.deficit == pytest.approx(x @ series @ y, abs=1e-10)
    buyer, seller = cond.root_payoffs
    assert seller == pytest.approx(series @ y, abs=1e-10)
    assert buyer == pytest.approx(x @ series, abs=1e-10)
    assert cond.slack == pytest.approx((series @ y).min() + (x @ series).min() - x @ series @ y, abs=1e-10)


# ---------------------------------------------------------------------------------------------- fee mechanisms
def test_ex_ante_fees_verified():
    env = yoon_binary(0.7, 0.9)
    tight = lump_sum_fees(env)
    assert tight.status == "feasible" and tight.verification.ok and tight.verification_ex_post.ok
    assert tight.verification.options == {**tight.verification.options, "ic": "bayesian", "ir": "interim"}
    assert tight.verification.options["budget"] == "ex_ante"
    assert tight.fees == pytest.approx(tight.condition.worst_payoff, abs=1e-12)
    assert tight.surplus[0] == pytest.approx(binary_slack(0.7, 0.9), abs=1e-10)
    # the worst-off types' interim IR binds at the root
    assert tight.verification.n_binding["ir"] == 2
    bal = lump_sum_fees(env, split="balanced")
    assert bal.status == "feasible" and bal.verification.ok and abs(bal.surplus[0]) < 1e-10
    # below the critical discount factor: infeasible, and the verifier sees the deficit
    low = lump_sum_fees(yoon_binary(0.7, 0.6))
    assert low.status == "infeasible"
    assert low.verification.max_violation["budget"] == pytest.approx(-binary_slack(0.7, 0.6), abs=1e-10)
    assert low.verification.max_violation["ic"] < 1e-9 and low.verification.max_violation["ir"] < 1e-9


def test_interim_fees_verified_and_type_independent():
    env = lamba_usstp(0.7, 0.95)
    res = lump_sum_fees(env, "interim")
    assert res.status == "feasible" and res.verification.ok and res.verification_ex_post.ok
    assert res.verification.options["budget"] == "interim"
    piv = res.pivot
    lows = np.stack([u.min(axis=1) for u in piv.mechanism.interim_utilities()])
    assert np.allclose(res.surplus, piv.surplus + lows.sum(axis=0), atol=1e-10)
    # the buyer's fee depends only on the seller's last report (and vice versa)
    by_state = res.fees[:, 1:].reshape(2, 2, 2)  # agent, buyer's last report, seller's last report
    assert np.allclose(by_state[0, 0], by_state[0, 1]) and np.allclose(by_state[1, :, 0], by_state[1, :, 1])
    with pytest.raises(ValueError, match="do not depend on the action"):
        lump_sum_fees(bv_scheduling((3.0, 1.0), 0.9), "interim")


def test_scheduling_fees_worst_type_over_support_or_all():
    env = bv_scheduling((4.0, 3.0, 2.0, 1.0), 0.9)
    res = lump_sum_fees(env)  # every type counts: "done" has zero rent, so no fee can be charged
    assert res.status == "feasible" and res.verification.ok and np.all(np.abs(res.fees) < 1e-12)
    assert res.condition.zero_rent["task1"] == ["done"] and res.condition.diverse_preferences
    assert "no deficit" in res.condition.message
    sup = lump_sum_fees(env, worst_over="support", pivot=res.pivot)  # Yoon's (*): "done" has prior 0
    assert not sup.condition.diverse_preferences and np.all(sup.fees > 0)
    assert sup.fees[0] == pytest.approx(sup.condition.root_payoffs[0][1], abs=1e-12)
    # the verifier still checks the zero-probability type at the root, and the result names it
    assert sup.status == "verification_failed" and "task1[done]" in sup.notes[0]
    worst = sup.verification.worst["ir"]
    assert worst.history == 0 and worst.type == "done"


def test_minmax_surplus_dominates_pivot_plus_fees_on_usstp():
    env = lamba_usstp(0.7, 0.95)
    mm = design.minmax(env)
    assert mm.status == "optimal"
    ante = lump_sum_fees(env)
    inter = lump_sum_fees(env, "interim", space=mm.space)
    assert ante.status == inter.status == "feasible"
    assert mm.surplus[0] >= ante.surplus[0] - 1e-9
    assert np.all(mm.surplus >= inter.surplus - 1e-9)
    assert mm.surplus[0] == pytest.approx(4.733871, abs=1e-6) and ante.surplus[0] == pytest.approx(4.693548, abs=1e-6)


# ---------------------------------------------------------------------------------------------- models and CLI
def test_model_files_match_factories():
    pairs = [("yoon_binary.toml", yoon_binary(0.7, 0.9)), ("yoon_k_type.toml", yoon_k_type((0, 0.5, 1), 0.8, 0.9))]
    for fname, env in pairs:
        m = load_model(MODELS / fname)
        assert m.discount == env.discount and m.type_counts == env.type_counts
        for a, b in zip(m.agents, env.agents, strict=True):
            assert a.types == b.types
            assert np.allclose(a.prior, b.prior) and np.allclose(a.transition, b.transition, atol=1e-15)
            assert np.array_equal(a.valuation, b.valuation)


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="mechlp")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"mechlp: error: {exc}")
        code = 2
    return code, capsys.readouterr().out


def test_cli_pivot(tmp_path, capsys):
    out = tmp_path / "pivot.json"
    code, text = run(["pivot", str(MODELS / "yoon_binary.toml"), "--json", str(out)], capsys)
    assert code == 0 and "expected deficit 2.5" in text
    payload = json.loads(out.read_text())
    assert payload["status"] == "verified" and payload["ex_ante_surplus"] == pytest.approx(-2.5)
    trade = [r for r in payload["transfers"] if r["action"] == "trade"]
    assert len(trade) == 1 and trade[0]["transfers"] == {"buyer": 0.0, "seller": -1.0}
    assert all(v < 1e-9 for v in payload["verification"]["ex_post"]["max_violation"].values())
    code, text = run(["pivot", "bv_scheduling", "--param", "values=[3, 2, 1]", "--param", "delta=0.5"], capsys)
    assert code == 0 and "verified" in text
    code, text = run(["pivot", "no_such_model"], capsys)
    assert code == 2 and "built-in models" in text


def test_cli_fees_critical_delta(tmp_path, capsys):
    out = tmp_path / "fees.json"
    argv = ["fees", str(MODELS / "yoon_binary.toml"), "--set", "persistence=0.9", "--critical-delta"]
    code, text = run([*argv, "--json", str(out)], capsys)
    assert code == 0 and "becomes feasible at delta = 0.83333" in text
    payload = json.loads(out.read_text())
    assert payload["status"] == "feasible" and payload["mode"] == "ex_ante"
    assert abs(payload["critical_discount"]["critical"][0] - 1 / 1.2) < 1e-6
    assert payload["fees"]["buyer"] == pytest.approx(payload["condition"]["worst_payoff"]["buyer"])
    code, text = run(["fees", "yoon_binary", "--param", "alpha=0.7", "--param", "delta=0.6"], capsys)
    assert code == 0 and "INFEASIBLE" in text
    code, text = run(["fees", "lamba_usstp", "--mode", "interim", "--json", str(out)], capsys)
    payload = json.loads(out.read_text())
    assert code == 0 and payload["status"] == "feasible" and len(payload["fees"]["buyer"]) == 5


def test_interim_fees_on_a_tree_match_the_interim_condition():
    """Finite horizon: the last period is static, so interim balance fails there (docs/design.md section 5.4)."""
    env = yoon_binary(0.5, 0.9, horizon=3)
    res = lump_sum_fees(env, "interim")
    assert res.status == "infeasible"
    assert res.verification.max_violation["ic"] < 1e-12 and res.verification.max_violation["ir"] < 1e-12
    assert res.verification_ex_post.max_violation["ic"] < 1e-12
    # the DP-only condition (root + period x previous profile) and the tree mechanism agree
    assert res.condition.interim_slack.min() == pytest.approx(res.surplus.min(), abs=1e-12)
    assert res.surplus.min() == pytest.approx(-0.25, abs=1e-12)  # static last period: deficit 1/4, no rents left

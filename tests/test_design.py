"""The LP questions on Lamba's repeated bilateral trade: Table 1, Pi* facts, budget notions, finite trees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.constructions.vcg import discrete_vcg_transfers
from mechlp.model.beliefs import joint_beliefs
from mechlp.model.spaces import HistoryTree, MarkovSpace
from mechlp.solve import questions as design

# Lamba (2022), Table 1 (USSTP, delta = 0.95): z_B(c_H), z_B(c_L), z_B,1, printed truncated to 3 decimals.
TABLE1 = {
    0.5: (0.225, 0.225, 0.225),
    0.6: (0.215, 0.230, 0.222),
    0.7: (0.192, 0.243, 0.218),
    0.8: (0.160, 0.259, 0.209),
    0.9: (0.114, 0.261, 0.188),
}


def trunc3(x: float) -> int:
    """Thousandths, truncated (the paper truncates); the 1e-9 guards against float fuzz below an integer."""
    return math.floor(x * 1000 + 1e-9)


@pytest.fixture(scope="module")
def minmax_by_alpha():
    return {a: design.minmax(lamba_usstp(a, 0.95)) for a in TABLE1}


@pytest.mark.parametrize("alpha", sorted(TABLE1))
def test_table1_fees_from_the_lp(minmax_by_alpha, alpha):
    res = minmax_by_alpha[alpha]
    assert res.status == "optimal", res.message
    assert res.certificate.ok
    fb = res.fees["buyer"]
    got = (fb["by_state"]["c_H"], fb["by_state"]["c_L"], fb["first"])
    assert tuple(trunc3(g) for g in got) == tuple(round(p * 1000) for p in TABLE1[alpha])
    # the LP's mechanism is "VCG plus a fee": the fee does not depend on the agent's own type
    assert fb["spread"] < 1e-9 and res.fees["seller"]["spread"] < 1e-9


@pytest.mark.parametrize("alpha", sorted(TABLE1))
def test_lp_matches_lamba_closed_forms(minmax_by_alpha, alpha):
    """LP answer vs Lamba eqs. (8)-(9) and the section 6.1 fees evaluated by linear algebra."""
    res = minmax_by_alpha[alpha]
    cf = minmax_closed_form(res.env)
    assert res.surplus[0] == pytest.approx(cf.pi_root, abs=1e-8)
    np.testing.assert_allclose(res.surplus[1:], cf.pi_markov[1:], atol=1e-8)
    fb, fs = res.fees["buyer"], res.fees["seller"]
    assert fb["first"] == pytest.approx(cf.fee_first[0], abs=1e-8)
    assert fs["first"] == pytest.approx(cf.fee_first[1], abs=1e-8)
    np.testing.assert_allclose([fb["by_state"]["c_L"], fb["by_state"]["c_H"]], cf.fee_by_state[0], atol=1e-8)
    np.testing.assert_allclose([fs["by_state"]["v_L"], fs["by_state"]["v_H"]], cf.fee_by_state[1], atol=1e-8)


def _pi_by_profile(res) -> dict[tuple[str, str], float]:
    env = res.env
    return {tuple(env.profile_labels(s).values()): float(res.surplus[1 + s]) for s in range(env.n_profiles)}


@pytest.mark.parametrize("alpha", [0.6, 0.7, 0.8, 0.9])
def test_pi_star_smallest_after_vH_cL(minmax_by_alpha, alpha):
    """Lamba footnote 29: the best trading types leave the smallest surplus; symmetry gives equal corners."""
    pi = _pi_by_profile(minmax_by_alpha[alpha])
    assert min(pi, key=pi.get) == ("v_H", "c_L")
    assert pi[("v_H", "c_L")] < min(v for k, v in pi.items() if k != ("v_H", "c_L")) - 1e-6
    assert pi[("v_H", "c_H")] == pytest.approx(pi[("v_L", "c_L")], abs=1e-9)


def test_pi_star_iid_is_history_independent(minmax_by_alpha):
    res = minmax_by_alpha[0.5]
    np.testing.assert_allclose(res.surplus, res.surplus[0], atol=1e-9)
    assert np.ptp(res.surplus) < 1e-9


def test_higher_persistence_lowers_every_pi_star(minmax_by_alpha):
    alphas = sorted(TABLE1)
    for lo, hi in zip(alphas, alphas[1:], strict=False):
        assert np.all(minmax_by_alpha[hi].surplus < minmax_by_alpha[lo].surplus + 1e-12)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (0.8, {"ex_ante": "optimal", "interim": "infeasible", "ex_post": "infeasible"}),
        (0.95, {"ex_ante": "optimal", "interim": "optimal", "ex_post": "optimal"}),
    ],
)
def test_budget_notions_differ_where_they_should(delta, expected):
    env = lamba_usstp(0.9, delta)
    for budget, status in expected.items():
        res = design.feasibility(env, budget)
        assert res.status == status, (budget, res.message)
        if status == "optimal":
            assert res.certificate.ok and res.certificate.max_violation["budget"] <= 1e-9
            if budget == "ex_post":
                assert np.abs(res.mechanism.transfers.sum(axis=0)).max() < 1e-9
            if budget == "interim":
                assert res.surplus.min() >= -1e-9
        else:
            assert "after (v_H, c_L)" in res.message
            assert "WARNING" not in res.message


def test_interim_infeasible_message_names_the_worst_state():
    res = design.feasibility(lamba_usstp(0.9, 0.8), "interim")
    assert res.status == "infeasible"
    worst = res.diagnosis["negative"][0]
    assert worst["where"] == "after (v_H, c_L)" and worst["value"] < 0
    assert f"{worst['value']:.6g}" in res.message


def _static_minmax_surplus(env, belief: np.ndarray) -> float:
    """Static min-max surplus at a belief, by hand: welfare minus the VCG rents above each lowest type."""
    x = discrete_vcg_transfers(env)
    flow = env.flow_values() - x  # (2, K) static VCG utilities
    p = belief.reshape(2, 2)
    pb, ps = p.sum(axis=1), p.sum(axis=0)
    ub = (flow[0].reshape(2, 2) * ps[None, :]).sum(axis=1)  # buyer's interim utility by own type
    us = (flow[1].reshape(2, 2) * pb[:, None]).sum(axis=0)
    rents = pb @ (ub - ub.min()) + ps @ (us - us.min())
    return float(belief @ env.welfare() - rents)


def test_finite_tree_last_period_is_static_and_fails_interim_balance():
    env = lamba_usstp(0.7, 0.95, horizon=3)
    mm = design.minmax(env)
    sp = mm.space
    assert isinstance(sp, HistoryTree) and sp.horizon == 3
    bel = joint_beliefs(sp)
    last = np.flatnonzero(sp.hist_period == 3)
    expected = np.array([_static_minmax_surplus(env, bel[h]) for h in last[:16]])
    np.testing.assert_allclose(mm.surplus[last[:16]], expected, atol=1e-9)
    assert np.all(mm.surplus[last] < 0)  # the static problem runs a deficit after every history
    res = design.feasibility(env, "interim")
    assert res.status == "infeasible"
    worst = res.diagnosis["negative"][0]
    assert worst["value"] == pytest.approx(float(mm.surplus.min()), abs=1e-9)
    assert worst["where"] in res.message and "->" in worst["where"]


def test_finite_tree_converges_to_markov_answer():
    """Pi*(root) of T-period trees approaches the infinite-horizon Markov value (delta = 0.5)."""
    env_inf = lamba_usstp(0.7, 0.5)
    target = design.minmax(env_inf).surplus[0]
    gaps = [abs(design.minmax(env_inf, horizon=t).surplus[0] - target) for t in range(1, 7)]
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] < 0.02


def test_cvxpy_backend_agrees_with_highs():
    for env in (lamba_usstp(0.8, 0.9), lamba_usstp(0.8, 0.9, horizon=2)):
        a = design.minmax(env, backend="highs")
        b = design.minmax(env, backend="cvxpy")
        assert a.status == b.status == "optimal"
        np.testing.assert_allclose(a.surplus, b.surplus, atol=1e-6)


def test_local_ic_gives_the_same_minmax_and_is_verified_globally():
    env = lamba_usstp(0.8, 0.95)
    full = design.minmax(env)
    local = design.minmax(env, ic="local")
    assert local.status == "optimal" and local.certificate.options["ic"] == "bayesian"
    np.testing.assert_allclose(local.surplus, full.surplus, atol=1e-8)


def test_ex_post_ic_with_interim_budget():
    """Lamba section 7.1: when Bayesian IC works under interim balance, within-period ex post IC does too."""
    res = design.feasibility(lamba_usstp(0.7, 0.95), "interim", ic="ex_post")
    assert res.status == "optimal" and res.certificate.options["ic"] == "ex_post"


def test_transfer_limits_are_respected_or_infeasible():
    env = lamba_usstp(0.7, 0.95)
    res = design.feasibility(env, "interim", limits={"buyer": (-2.0, 2.0), "seller": (-2.0, 2.0)})
    assert res.status == "optimal"
    assert res.mechanism.transfers.min() >= -2.0 - 1e-9 and res.mechanism.transfers.max() <= 2.0 + 1e-9
    tight = design.feasibility(env, "interim", limits={"buyer": (0.0, 0.01)})
    # the LP's "infeasible" is passed on with its verified certificate over the IC, IR and limit rows
    assert tight.status == "infeasible" and tight.certificate.ok and "exact" in tight.certificate.checks
    assert tight.certificate.limits
    unproved = design.feasibility(env, "interim", limits={"buyer": (0.0, 0.01)}, certify=False)
    assert unproved.status == "unverified" and "certify=False" in unproved.message
    quick = design.feasibility(lamba_usstp(0.9, 0.3), "interim", certify=False)
    assert quick.status == "unverified" and "certify=False" in quick.message


def test_default_spaces():
    assert design.minmax(lamba_usstp(0.7, 0.95)).space.kind == "markov"
    assert design.minmax(lamba_usstp(0.7, 0.95, horizon=2)).space.kind == "tree"
    res = design.solve(lamba_usstp(0.7, 0.95))  # default question is minmax
    assert res.question == "minmax" and res.status == "optimal"


def test_verification_failure_is_a_status(monkeypatch):
    """A solver that returns a wrong point (one buyer payment raised by 0.5) is caught, never reported."""
    import mechlp.solve.questions as d

    real = d.solve_lp

    def corrupt(lp, backend, **kw):
        out = real(lp, backend, **kw)
        out.x = out.x.copy()
        out.x[lp.variables.x(0, 0)] += 0.5  # buyer, first node: (v_L, c_L) in period 1
        return out

    monkeypatch.setattr(d, "solve_lp", corrupt)
    res = d.minmax(lamba_usstp(0.7, 0.95), method="lp")
    assert res.status == "verification_failed"
    assert "fails the independent verification" in res.message
    assert res.certificate.max_violation["ir"] == pytest.approx(0.5 * 0.5, abs=1e-9)  # P(c_L) = 1/2 at the root


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ic": "dominant"}, r"ic must be one of 'bayesian', 'ex_post', 'local'; got 'dominant'"),
        ({"ir": "sometimes"}, r"ir must be one of .*got 'sometimes'"),
        ({"backend": "gurobi"}, r"backend must be one of \('highs', 'cvxpy'\), got 'gurobi'"),
    ],
)
def test_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        design.minmax(lamba_usstp(), **kwargs)


def test_budget_and_question_errors():
    with pytest.raises(ValueError, match=r"budget must be one of .*got 'sometimes'"):
        design.feasibility(lamba_usstp(), "sometimes")
    with pytest.raises(ValueError, match=r"question must be one of \('minmax', 'feasibility'\)"):
        design.solve(lamba_usstp(), question="revenue")
    with pytest.raises(TypeError, match="env must be an Environment"):
        design.minmax("lamba_usstp")
    with pytest.raises(ValueError, match="space was built for a different environment"):
        design.minmax(lamba_usstp(), space=MarkovSpace(lamba_usstp()))


def test_tree_too_large_is_refused_with_estimate():
    env = lamba_usstp(0.7, 0.95, horizon=12)
    with pytest.raises(MemoryError, match=r"horizon 12 is too large: 5,592,405 histories, 22,369,620 nodes"):
        design.minmax(env, memory_limit=2**30)

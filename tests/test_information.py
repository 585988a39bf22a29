"""Lamba's intermediate mechanism (2022, section 7.2): information histories, the LP, Lamba's Pi**, verification."""

from __future__ import annotations

import numpy as np
import pytest

from mechlp.audit.verifier import verify_intermediate
from mechlp.catalog.examples import lamba_usstp
from mechlp.model.beliefs import joint_beliefs
from mechlp.model.environment import bilateral_trade
from mechlp.model.signals import SignalSpace
from mechlp.solve import questions as design
from mechlp.solve.intermediate import intermediate_feasibility, intermediate_minmax, lamba_double_star

ENV = lamba_usstp(0.7, 0.95)  # the USSTP of Lamba's section 5.1 (an STP: v_H > c_H > v_L > c_L)
# designer histories of period 2 on the tree: 1 + profile, profiles (v_L,c_L), (v_L,c_H), (v_H,c_L), (v_H,c_H)
LL, LH, HL, HH = 1, 2, 3, 4


def test_information_histories_match_a_brute_force_projection():
    space = SignalSpace(ENV, 3)
    tree, k = space.tree, ENV.n_profiles
    types, act = ENV.profile_types(), ENV.actions_by_profile()
    for i in range(2):
        keys = {}
        for h in range(tree.n_hist):
            path = [g % k for g in _path(h, k)]
            key = tuple((int(types[p, i]), int(act[p])) for p in path)
            keys.setdefault(key, set()).add(int(space.info_hist[i][h]))
        assert all(len(v) == 1 for v in keys.values())  # same signals <=> same information history
        assert len(keys) == space.n_info[i]
        np.testing.assert_allclose(space.others_posterior[i].sum(axis=1), 1.0)
    # a buyer who reports v_H trades whatever the seller says and learns nothing; reporting v_L reveals c
    np.testing.assert_allclose(space.action_probability[0][:, 1, 1], 1.0)
    assert space.describe_info(0, int(space.info_hist[0][HL])) == "buyer after (v_H, trade)"
    assert space.pooled()[[0, LL, LH, HL, HH]].tolist() == [False, True, False, True, True]


def _path(h: int, k: int) -> list[int]:
    out = []
    while h > 0:
        out.append(h - 1)
        h = (h - 1) // k
    return out[::-1]


def test_deterministic_allocation_required():
    env = lamba_usstp(0.7, 0.95)
    from mechlp.model.environment import Environment

    rnd = Environment(env.agents, env.actions, 0.95, 2, np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="SignalSpace needs a deterministic allocation"):
        SignalSpace(rnd, 2)


@pytest.mark.parametrize("horizon", [2, 3])
def test_lp_root_equals_public_and_pooled_histories_are_unbounded(horizon):
    res = intermediate_minmax(ENV, horizon=horizon)
    public = design.minmax(ENV, horizon=horizon)
    assert res.status == "optimal" and res.certificate.ok
    # Lamba 7.3: the same first-period surplus with and without hiding the reports
    assert res.best[0] == pytest.approx(public.surplus[0], abs=1e-8)
    # after (v_L, c_H) both agents learned the other's report: no information is hidden
    assert res.bounded[LH] and res.best[LH] == pytest.approx(public.surplus[LH], abs=1e-8)
    # where an agent's information pools designer histories, side bets make the surplus unbounded
    assert not res.bounded[[LL, HL, HH]].any() and np.isinf(res.best[[LL, HL, HH]]).all()
    # unbounded only where the designer's information differs from an agent's (not conversely: at the last period
    # after (v_L, c_H) the designer knows older reports, but they do not change anyone's beliefs)
    assert not (~res.bounded & ~res.space.pooled()).any()


def test_lamba_double_star_orderings():
    out = lamba_double_star(ENV, horizon=2, public="markov_fees")
    pi, pdd = out["pi_star"], out["pi_double_star"]
    np.testing.assert_allclose(
        pi, np.r_[4.733870967741936, [4.78104078, 4.89462873, 4.47877358, 4.78104078]], atol=1e-7
    )
    assert pdd[0] == pytest.approx(pi[0], abs=1e-12)  # Pi** = Pi* at the root
    assert pdd[LH] == pytest.approx(pi[LH], abs=1e-12)  # Pi**(v_L, c_H) = Pi*(v_L, c_H)
    # With Lamba's definition the strict inequalities of section 7.3 come out the other way round:
    assert pdd[HH] < pi[HH] - 0.1  # the paper states Pi**(v_H, c_H) > Pi*(v_H, c_H)
    assert pdd[HL] > pi[HL] + 0.1  # the paper states Pi**(v_H, c_L) < Pi*(v_H, c_L)
    # tower property: on average over the period-2 histories nothing changes
    probs = joint_beliefs(out["space"].tree)[0]
    assert probs @ (pdd[1:5] - pi[1:5]) == pytest.approx(0.0, abs=1e-12)


def test_lamba_double_star_orderings_on_an_asymmetric_stp_and_with_a_tree_mechanism():
    env = bilateral_trade(
        [0.3, 1.0],
        [0.0, 0.6],
        [0.3, 0.7],
        [0.6, 0.4],
        [[0.8, 0.2], [0.1, 0.9]],
        [[0.6, 0.4], [0.3, 0.7]],
        0.9,
        buyer_types=("v_L", "v_H"),
        seller_types=("c_L", "c_H"),
    )
    out = lamba_double_star(env, horizon=3, public="markov_fees")
    d = out["pi_double_star"] - out["pi_star"]
    assert abs(d[0]) < 1e-12 and abs(d[LH]) < 1e-12 and d[HH] < 0 < d[HL]
    # any public mechanism can be averaged: the tree min-max mechanism of a finite horizon
    fin = lamba_usstp(0.7, 0.95, horizon=2)
    mm = design.minmax(fin)
    tree_out = lamba_double_star(fin, horizon=2, mechanism=mm.mechanism)
    assert tree_out["pi_double_star"][0] == pytest.approx(mm.surplus[0], abs=1e-9)


def test_verifier_catches_violations_and_feasibility_matches_public_ex_ante():
    res = intermediate_minmax(ENV, horizon=2, histories=[0])
    x = [t.copy() for t in res.transfers]
    assert verify_intermediate(res.space, x, budget="none").ok
    x[0][0, 0 * 2 + 0] += 0.2  # the low buyer pays more when he does not trade in period 1: IR fails
    bad = verify_intermediate(res.space, x, budget="none")
    assert not bad.ok and (bad.worst["ir"].agent, bad.worst["ir"].type) == ("buyer", "v_L")
    assert bad.worst["ir"].where == "buyer in period 1"
    x = [t.copy() for t in res.transfers]
    x[0][0, 0 * 2 + 1] -= 0.2  # a cheaper v_L trade tempts the high buyer
    bad = verify_intermediate(res.space, x, budget="none")
    assert not bad.ok and (bad.worst["ic"].type, bad.worst["ic"].misreport) == ("v_H", "v_L")
    for env, horizon in ((lamba_usstp(0.55, 0.95), 2), (lamba_usstp(0.7, 0.95), 3), (lamba_usstp(0.7, 0.8), 3)):
        inter = intermediate_feasibility(env, "ex_ante", horizon=horizon)
        pub = design.feasibility(env, "ex_ante", horizon=horizon, certify=False)
        assert (inter.status == "optimal") == (pub.status == "optimal")
        if inter.status == "optimal":
            assert inter.certificate.ok and inter.surplus[0] >= -1e-9

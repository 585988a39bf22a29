"""Lamba (2022) closed forms: the gap-adjusted VCG, the min-max dynamic VCG surplus and its fixed fees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.constructions import (
    discrete_vcg,
    discrete_vcg_transfers,
    minmax_closed_form,
    minmax_mechanism,
    vcg_interim_utilities,
)
from mechlp.model.environment import Agent, Environment, bilateral_trade, renewal_matrix
from mechlp.model.spaces import MarkovSpace

DELTA = 0.95
ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)
# Profile indices of the USSTP (C order, buyer first; types ascending): (buyer, seller).
LL, LH, HL, HH = 0, 1, 2, 3  # (v_L,c_L), (v_L,c_H), (v_H,c_L), (v_H,c_H)
V_L, V_H, C_L, C_H = 0, 1, 0, 1  # type indices

# Lamba (2022), Table 1: z_B(c_H), z_B(c_L), z_{B,1} at delta = 0.95, in thousandths (the paper truncates).
TABLE_1 = {
    0.5: (225, 225, 225),
    0.6: (215, 230, 222),
    0.7: (192, 243, 218),
    0.8: (160, 259, 209),
    0.9: (114, 261, 188),
}


def truncate_thousandths(x: float) -> int:
    """Truncate to three decimals, as Table 1 does; the 1e-9 absorbs float fuzz just below a boundary."""
    return math.floor(x * 1000 + 1e-9)


# ---------------------------------------------------------------- static VCG
def test_vcg_transfers_usstp_hand_table():
    # Lamba (2022), footnote 27, in the project sign convention (the seller's receipt is a negative payment):
    # buyer pays v_L at (v_H,c_L) and (v_L,c_L), v_H at (v_H,c_H), nothing at (v_L,c_H);
    # seller receives c_H at (v_H,c_H) and (v_H,c_L), c_L = 0 at (v_L,c_L), nothing at (v_L,c_H).
    x = discrete_vcg_transfers(lamba_usstp(0.7, DELTA))
    expected = np.zeros((2, 4))
    expected[0, [LL, LH, HL, HH]] = [0.05, 0.0, 0.05, 1.0]
    expected[1, [LL, LH, HL, HH]] = [-0.0, 0.0, -0.95, -0.95]
    np.testing.assert_array_equal(x, expected)


def test_vcg_transfers_three_types_and_ties():
    # V = {1, 2, 4}, C = {0, 2, 3}: a tie v == c = 2 means no trade; thresholds skip the gaps.
    k = renewal_matrix(3, 0.6)
    env = bilateral_trade([1, 2, 4], [0, 2, 3], [1 / 3] * 3, [1 / 3] * 3, k, k, 0.9)
    x = discrete_vcg_transfers(env).reshape(2, 3, 3)  # [agent, v, c]
    trade = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 1]], dtype=bool)
    # buyer pays min{v' > c}: c=0 -> 1, c=2 -> 4, c=3 -> 4
    # seller receives max{c' < v}: v=1 -> 0, v=2 -> 0, v=4 -> 3
    buyer_pay = np.array([[1, 4, 4]] * 3, dtype=float)
    seller_recv = np.array([[0] * 3, [0] * 3, [3] * 3], dtype=float)
    np.testing.assert_array_equal(x[0], np.where(trade, buyer_pay, 0.0))
    np.testing.assert_array_equal(x[1], np.where(trade, -seller_recv, 0.0))


def test_discrete_vcg_mechanism_repeats_transfers():
    env = lamba_usstp(0.7, DELTA)
    space = MarkovSpace(env)
    mech = discrete_vcg(space)
    x = discrete_vcg_transfers(env)
    np.testing.assert_array_equal(mech.transfers, x[:, space.node_profile])


# ---------------------------------------------------------------- Table 1
@pytest.mark.parametrize("alpha", ALPHAS)
def test_table_1_buyer_fees(alpha):
    cf = minmax_closed_form(lamba_usstp(alpha, DELTA))
    z_b, _ = cf.fee_by_state
    got = tuple(truncate_thousandths(z) for z in (z_b[C_H], z_b[C_L], cf.fee_first[0]))
    assert got == TABLE_1[alpha]


def test_iid_hand_derivation():
    # alpha = 0.5 is iid. Under the VCG, v_L never gains within a period: against c_L it trades at price
    # v_L = 0.05 (utility 0), against c_H there is no trade. Each later period the buyer's expected utility is
    # P(v_H, c_L) * (v_H - v_L) = 0.25 * 0.95 = 0.2375 (at (v_H, c_H) he pays v_H = 1, utility 0). Hence
    # Ubar_B^vcg(v_L) = 0 + delta/(1 - delta) * 0.2375 = 19 * 0.2375 = 4.5125, the same after every history,
    # and z_B = Ubar - delta * Ubar = (1 - delta) * 4.5125 = 0.225625 for z_B(c_H), z_B(c_L) and z_{B,1}.
    env = lamba_usstp(0.5, DELTA)
    ubar_b, ubar_s = vcg_interim_utilities(env)
    np.testing.assert_allclose(ubar_b[:, V_L], DELTA / (1 - DELTA) * 0.2375, rtol=1e-12)
    np.testing.assert_allclose(ubar_s[:, C_H], DELTA / (1 - DELTA) * 0.2375, rtol=1e-12)
    cf = minmax_closed_form(env)
    np.testing.assert_allclose(cf.fee_by_state[0], 0.05 * 4.5125, rtol=1e-12)
    np.testing.assert_allclose(cf.fee_first, 0.225625, rtol=1e-12)


# ---------------------------------------------------------------- structure of the Pi* vector
def test_iid_surplus_is_history_independent_and_symmetric():
    cf = minmax_closed_form(lamba_usstp(0.5, DELTA))
    np.testing.assert_allclose(cf.pi_by_state, cf.pi_root, rtol=1e-12)
    np.testing.assert_allclose(cf.fee_by_state[1], cf.fee_by_state[0][::-1], rtol=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_usstp_symmetry(alpha):
    cf = minmax_closed_form(lamba_usstp(alpha, DELTA))
    z_b, z_s = cf.fee_by_state
    # mirror: the seller's fee after v_L equals the buyer's after c_H, and after v_H the buyer's after c_L
    np.testing.assert_allclose(z_s, z_b[::-1], rtol=1e-10, atol=1e-12)
    assert cf.fee_first[1] == pytest.approx(cf.fee_first[0], rel=1e-10)
    pi = cf.pi_by_state
    assert pi[V_H, C_H] == pytest.approx(pi[V_L, C_L], rel=1e-10)


@pytest.mark.parametrize("alpha", ALPHAS[1:])
def test_usstp_footnote_29_ranking(alpha):
    cf = minmax_closed_form(lamba_usstp(alpha, DELTA))
    pi = cf.pi_by_state
    assert np.argmin(pi.reshape(-1)) == HL  # smallest Pi*(v, c) at (v_H, c_L)
    assert pi[V_H, C_L] < min(pi[V_L, C_L], pi[V_L, C_H], pi[V_H, C_H])
    pv = cf.pi_vcg_by_state
    assert pv[V_H, C_H] == pytest.approx(pv[V_L, C_L], rel=1e-10)
    # Footnote 29 of Lamba (2022) ranks Pi^vcg(v_L,c_H) between Pi^vcg(v_L,c_L) and Pi^vcg(v_H,c_L).
    # We find it the LARGEST, and a one-step check agrees: the VCG's flow budget is 0.05 at (v_L,c_L) and
    # (v_H,c_H), 0 at (v_L,c_H), -0.9 at (v_H,c_L); after (v_L,c_H) the costly profile (v_H,c_L) has
    # probability (1-alpha)^2, after (v_L,c_L) alpha(1-alpha). E.g. alpha = 0.9: next-period budget 0 after
    # (v_L,c_H), -0.04 after (v_L,c_L). The recursion is cross-checked against Mechanism below. The end
    # result (Pi* smallest at (v_H,c_L)) and the other two inequalities of the footnote do hold.
    assert pv[V_L, C_H] > pv[V_L, C_L] > pv[V_H, C_L]
    ubar_b, ubar_s = cf.vcg_interim
    # Ubar_B(v_L | c_L) > Ubar_B(v_L | c_H) and Ubar_S(c_H | v_H) > Ubar_S(c_H | v_L)
    assert ubar_b[1 + LL, V_L] > ubar_b[1 + LH, V_L]
    assert ubar_s[1 + HL, C_H] > ubar_s[1 + LL, C_H]


def test_pi_decreases_with_persistence():
    roots = [minmax_closed_form(lamba_usstp(a, DELTA)).pi_root for a in ALPHAS]
    assert all(a > b for a, b in zip(roots, roots[1:], strict=False))


# ---------------------------------------------------------------- cross-checks with Mechanism (no LP)
def _three_type_env() -> Environment:
    f = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6]])
    g = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [0.1, 0.2, 0.7]])
    return bilateral_trade([0.1, 0.5, 1.0], [0.0, 0.3, 0.8], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2], f, g, 0.9)


@pytest.mark.parametrize("env", [lamba_usstp(0.7, DELTA), lamba_usstp(0.9, 0.8), _three_type_env()])
def test_closed_form_agrees_with_mechanism_recursion(env):
    space = MarkovSpace(env)
    cf = minmax_closed_form(env)
    vcg = discrete_vcg(space)
    # VCG interim utilities and surplus (Lamba eq. 4: Pi = E[welfare] - E[Ubar_B] - E[Ubar_S] = E[payments])
    for mine, theirs in zip(cf.vcg_interim, vcg.interim_utilities(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cf.pi_vcg_markov, vcg.surplus(), rtol=1e-10, atol=1e-12)
    # lowest types (v_1, c_M) minimise the VCG interim utility under FOSD
    ubar_b, ubar_s = cf.vcg_interim
    assert np.all(ubar_b[:, [0]] <= ubar_b + 1e-12)
    assert np.all(ubar_s[:, [-1]] <= ubar_s + 1e-12)
    # the min-max mechanism (VCG + fees) leaves the lowest types exactly zero and raises Pi* everywhere
    mm = minmax_mechanism(env)
    ub, us = mm.interim_utilities()
    np.testing.assert_allclose(ub[:, 0], 0.0, atol=1e-10)
    np.testing.assert_allclose(us[:, -1], 0.0, atol=1e-10)
    assert np.all(ub >= -1e-10) and np.all(us >= -1e-10)
    np.testing.assert_allclose(mm.surplus(), cf.pi_markov, rtol=1e-10, atol=1e-10)


def test_feasibility_flags():
    cf = minmax_closed_form(lamba_usstp(0.7, DELTA))
    assert cf.interim_budget_feasible and cf.ex_ante_budget_feasible
    # static-like (delta = 0): Myerson-Satterthwaite bites, Pi* < 0 when c_H - v_L > 1/2 (Lamba footnote 28)
    cf0 = minmax_closed_form(lamba_usstp(0.7, 0.0))
    assert cf0.pi_root < 0
    assert not cf0.interim_budget_feasible and not cf0.ex_ante_budget_feasible


# ---------------------------------------------------------------- preconditions
def _generic_env() -> Environment:
    a = Agent("a", ["lo", "hi"], [0.5, 0.5], np.eye(2), [[0.0, 1.0], [0.0, 2.0]])
    b = Agent("b", ["lo", "hi"], [0.5, 0.5], np.eye(2), [[0.0, -1.0], [0.0, -0.5]])
    return Environment([a, b], ["no_trade", "trade"], 0.9, "infinite")


def test_not_bilateral_trade_is_refused():
    env = _generic_env()
    with pytest.raises(ValueError, match="bilateral-trade environment"):
        discrete_vcg_transfers(env)
    with pytest.raises(ValueError, match="bilateral-trade environment"):
        minmax_closed_form(env)
    with pytest.raises(ValueError, match="bilateral-trade environment"):
        vcg_interim_utilities(env)


def test_finite_horizon_is_refused():
    with pytest.raises(ValueError, match="infinite horizon"):
        minmax_closed_form(lamba_usstp(0.7, DELTA, horizon=5))


def test_overlapping_supports_are_refused():
    k = renewal_matrix(2, 0.7)
    env = bilateral_trade([0.5, 1.0], [0.0, 0.5], [0.5, 0.5], [0.5, 0.5], k, k, DELTA)
    assert env.meta["disjoint_supports"] is False
    with pytest.raises(ValueError, match="disjoint supports"):
        minmax_closed_form(env)
    # the static VCG itself is defined with ties (no trade at v == c)
    assert discrete_vcg_transfers(env).shape == (2, 4)


def test_non_fosd_kernel_is_refused():
    anti = renewal_matrix(2, 0.2)  # mean-reverting past the midpoint: a low type is more likely to turn high
    good = renewal_matrix(2, 0.7)
    env = bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.5, 0.5], [0.5, 0.5], good, anti, DELTA)
    with pytest.raises(ValueError, match="first-order stochastic dominance.*'seller'"):
        minmax_closed_form(env)


def test_action_dependent_kernel_is_refused():
    k = renewal_matrix(2, 0.7)
    stack = np.stack([k, renewal_matrix(2, 0.9)])
    env = bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.5, 0.5], [0.5, 0.5], stack, k, DELTA)
    with pytest.raises(ValueError, match="action-independent kernels"):
        minmax_closed_form(env)


def test_mechanism_needs_markov_space_of_same_env():
    cf = minmax_closed_form(lamba_usstp(0.7, DELTA))
    with pytest.raises(ValueError, match="MarkovSpace"):
        cf.mechanism(MarkovSpace(lamba_usstp(0.7, DELTA)))

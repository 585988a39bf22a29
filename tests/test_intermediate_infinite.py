"""Lamba's eqs. (5)-(6) public mechanism and Pi** of the averaged intermediate mechanism (issue 14, item 3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mechlp.audit.verifier import verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.constructions.lamba import ex_post_minmax_mechanism, minmax_mechanism
from mechlp.solve.intermediate import lamba_double_star

V, C = (0.05, 1.0), (0.0, 0.95)  # USSTP (Lamba 2022, section 5.1): v_L < c_H, types ascending


def _usstp_by_hand(alpha: float, delta: float):
    """Independent code: profiles (v, c) in C order, VCG ex post utilities, welfare, eq. (5)-(6) utilities."""
    kern = np.array([[alpha, 1 - alpha], [1 - alpha, alpha]])
    prof = list(itertools.product(range(2), range(2)))  # (v index, c index)
    q = np.array([[kern[v, v2] * kern[c, c2] for (v2, c2) in prof] for (v, c) in prof])
    trade = np.array([V[v] > C[c] for v, c in prof], dtype=float)
    # gap-adjusted VCG: the buyer pays the lowest value above c, the seller receives the highest cost below v
    pay_b = np.array([min(x for x in V if x > C[c]) if V[v] > C[c] else 0.0 for v, c in prof])
    get_s = np.array([max(x for x in C if V[v] > x) if V[v] > C[c] else 0.0 for v, c in prof])
    flow_b = np.array([V[v] for v, c in prof]) * trade - pay_b
    flow_s = get_s - np.array([C[c] for v, c in prof]) * trade
    inv = np.linalg.inv(np.eye(4) - delta * q)
    ub, us = inv @ flow_b, inv @ flow_s
    welfare = inv @ (np.array([V[v] - C[c] for v, c in prof]) * trade)
    idx = {p: n for n, p in enumerate(prof)}
    eq5_b = np.array([ub[n] - ub[idx[(0, c)]] for n, (v, c) in enumerate(prof)])  # minus the lowest value's
    eq5_s = np.array([us[n] - us[idx[(v, 1)]] for n, (v, c) in enumerate(prof)])  # minus the highest cost's
    return prof, q, trade, welfare, eq5_b, eq5_s


def _pi_double_star_period2(alpha: float, delta: float) -> np.ndarray:
    """Pi** after each period-1 profile: average eq. (5)-(6) utilities over each agent's information set."""
    prof, q, trade, welfare, eq5_b, eq5_s = _usstp_by_hand(alpha, delta)
    nodes = [(h, g) for h in range(4) for g in range(4)]  # (period-1 profile, period-2 profile)
    prob = {(h, g): 0.25 * q[h, g] for h, g in nodes}
    keys_b = {(h, g): (prof[h][0], trade[h], prof[g][0], trade[g]) for h, g in nodes}  # own reports + signals
    keys_s = {(h, g): (prof[h][1], trade[h], prof[g][1], trade[g]) for h, g in nodes}
    out = np.zeros(4)
    for h in range(4):
        total = 0.0
        for g in range(4):
            avg = []
            for keys, u in ((keys_b, eq5_b), (keys_s, eq5_s)):
                same = [n for n in nodes if keys[n] == keys[(h, g)]]
                avg.append(sum(prob[n] * u[n[1]] for n in same) / sum(prob[n] for n in same))
            total += q[h, g] * (welfare[g] - sum(avg))
        out[h] = total
    return out


def test_eq5_mechanism_is_ic_ir_and_has_the_markov_fees_interim_utilities():
    env = lamba_usstp(0.7, 0.95)
    mech, fees = ex_post_minmax_mechanism(env), minmax_mechanism(env)
    check = verify(mech, budget="interim")
    assert check.ok
    np.testing.assert_allclose(mech.surplus(), fees.surplus(), atol=1e-10)  # the same Pi*(h)
    _, _, _, _, eq5_b, eq5_s = _usstp_by_hand(0.7, 0.95)
    # ex post utilities at the first period's nodes are the paper's eqs. (5)-(6)
    np.testing.assert_allclose(mech.utilities()[:, :4], np.vstack([eq5_b, eq5_s]), atol=1e-10)
    assert np.abs(mech.utilities() - fees.utilities()).max() > 0.05  # ex post utilities differ


@pytest.mark.parametrize(("alpha", "delta"), [(0.7, 0.95), (0.9, 0.6)])
def test_pi_double_star_default_is_eq5_and_matches_independent_code(alpha, delta):
    env = lamba_usstp(alpha, delta)
    out = lamba_double_star(env, horizon=2)
    assert out["public_mechanism"] == "ex_post" and "not a verified feasibility answer" in out["statement"]
    np.testing.assert_allclose(out["pi_double_star"][1:5], _pi_double_star_period2(alpha, delta), atol=1e-10)
    assert out["pi_double_star"][0] == pytest.approx(out["pi_star"][0], abs=1e-12)
    old = lamba_double_star(env, horizon=2, public="markov_fees")
    assert old["public_mechanism"] == "markov_fees"
    np.testing.assert_allclose(old["pi_star"], out["pi_star"], atol=1e-10)


def test_pi_double_star_orderings_with_eq5():
    out = lamba_double_star(lamba_usstp(0.7, 0.95), horizon=2)
    pi, pdd = out["pi_star"], out["pi_double_star"]
    ll, lh, hl, hh = 1, 2, 3, 4
    assert pdd[lh] == pytest.approx(pi[lh], abs=1e-12)  # Lamba 7.3: Pi**(v_L, c_H) = Pi*(v_L, c_H)
    # with the paper's own eq. (5) the strict inequalities still come out opposite to section 7.3
    assert pdd[hh] < pi[hh] and pdd[hl] > pi[hl] and pdd[ll] < pi[ll]


def test_unknown_public_mechanism_is_refused():
    with pytest.raises(ValueError, match="public must be one of"):
        lamba_double_star(lamba_usstp(0.7, 0.95), public="vcg")

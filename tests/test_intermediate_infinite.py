"""The intermediate mechanism on the infinite horizon and Lamba's eqs. (5)-(6) comparison (issue 14, item 3)."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mechlp.audit.certfile import certificate_payload, write_json
from mechlp.audit.intermediate import verify_markov_intermediate
from mechlp.audit.verifier import verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.cli import main
from mechlp.constructions.lamba import ex_post_minmax_mechanism, minmax_mechanism
from mechlp.model.signals import MarkovSignalSpace
from mechlp.solve.intermediate import intermediate_feasibility, intermediate_minmax, lamba_double_star

MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"

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


# ---------------------------------------------------------------- Lamba Prop. 3 on the infinite horizon
def _pi_star_by_hand(alpha: float, delta: float) -> np.ndarray:
    """Pi* at the first period and after each profile, from eqs. (5)-(6) utilities (independent code)."""
    prof, q, trade, welfare, eq5_b, eq5_s = _usstp_by_hand(alpha, delta)
    flow = welfare - eq5_b - eq5_s
    return np.r_[0.25 * flow.sum(), q @ flow]


def _check_by_simulation(res, alpha: float, delta: float, seed: int = 0, n_paths: int = 200, depth: int = 12):
    """Independent check of a last-signal intermediate mechanism: each agent's beliefs along random report paths
    (his own filter, written here), his truthful values by a linear system, IC and IR at every belief met."""
    kern = np.array([[alpha, 1 - alpha], [1 - alpha, alpha]])
    rng = np.random.default_rng(seed)
    worst = np.inf
    for i in range(2):  # 0 buyer (others: the seller's cost), 1 seller
        x = res.transfers[i]  # (1 + 4, 4): state, column r * 2 + a
        own_val = V if i == 0 else C

        def action(r, m, i=i):
            v, c = (r, m) if i == 0 else (m, r)
            return int(V[v] > C[c])

        def flow(t, a, i=i, own_val=own_val):
            return own_val[t] * a if i == 0 else -own_val[t] * a

        # values V(s, t, m) of truth-telling: 5 * 2 * 2 unknowns
        n = 20
        mat, rhs = np.eye(n), np.zeros(n)
        for s in range(5):
            for t in range(2):
                for m in range(2):
                    a = action(t, m)
                    j = (s * 2 + t) * 2 + m
                    rhs[j] = flow(t, a) - x[s, t * 2 + a]
                    s2 = 1 + t * 2 + a
                    for t2 in range(2):
                        for m2 in range(2):
                            mat[j, (s2 * 2 + t2) * 2 + m2] -= delta * kern[t, t2] * kern[m, m2]
        val = np.linalg.solve(mat, rhs).reshape(5, 2, 2)
        for _ in range(n_paths):
            s, b = 0, np.array([0.5, 0.5])
            for _ in range(depth):
                for t in range(2):
                    truth = b @ val[s, t]
                    worst = min(worst, truth)  # IR
                    for r in range(2):
                        dev = 0.0
                        for m in range(2):
                            a = action(r, m)
                            s2 = 1 + r * 2 + a
                            cont = sum(
                                kern[t, t2] * kern[m, m2] * val[s2, t2, m2] for t2 in range(2) for m2 in range(2)
                            )
                            dev += b[m] * (flow(t, a) - x[s, r * 2 + a] + delta * cont)
                        worst = min(worst, truth - dev)  # IC
                r = int(rng.integers(2))  # any report path: beliefs after misreports are reached too
                m = int(rng.choice(2, p=b))
                a = action(r, m)
                mask = np.array([action(r, mm) == a for mm in range(2)], dtype=float)
                b = (b * mask) / (b @ mask) @ kern
                s = 1 + r * 2 + a
    return worst


@pytest.mark.parametrize(
    ("alpha", "delta", "public_ok", "inter_ok"),
    [(0.7, 0.95, True, True), (0.8, 0.8, False, True), (0.9, 0.6, False, False)],
)
def test_prop3_on_the_infinite_horizon(alpha, delta, public_ok, inter_ok):
    env = lamba_usstp(alpha, delta)
    pi_star = _pi_star_by_hand(alpha, delta)
    assert (pi_star.min() >= 0) == public_ok  # Lamba Theorem 1 (public mechanism)
    res = intermediate_feasibility(env, "interim")
    assert res.space.kind == "signal_markov"
    dd = lamba_double_star(env, horizon=3)["pi_double_star"]
    assert (dd.min() >= 0) == inter_ok  # Lamba Prop. 3's condition, over the histories of periods 1..3
    if inter_ok:
        assert res.status == "optimal" and res.certificate.ok
        assert res.surplus.min() >= -1e-9
        assert _check_by_simulation(res, alpha, delta) >= -1e-8
    else:
        assert res.status == "infeasible" and "payments depend on the last signal" in res.message
        assert res.impossibility.checks["exact"]["ok"] and res.impossibility.checks["float"]["ok"]
    # Lamba 7.3: the most first-period surplus equals the public Pi*
    mm = intermediate_minmax(env, histories=[0])
    assert mm.best[0] == pytest.approx(pi_star[0], abs=1e-8)


def test_markov_signal_space_beliefs_are_the_filter_extremes():
    sp = MarkovSignalSpace(lamba_usstp(0.7, 0.95))
    # buyer: after v_L he learns c (belief G(.|c)); after v_H nothing: the one-step prediction of [0.3, 0.7]
    rows = {sp.describe_info(0, j) for j in range(sp.n_info[0])}
    assert rows == {
        "buyer in period 1, belief (0.5, 0.5)",
        "buyer after (v_L, no_trade), belief (0.3, 0.7)",
        "buyer after (v_L, trade), belief (0.7, 0.3)",
        "buyer after (v_H, trade), belief (0.58, 0.42)",
        "buyer after (v_H, trade), belief (0.42, 0.58)",
    }


def test_markov_signal_space_refusals():
    with pytest.raises(ValueError, match="infinite-horizon intermediate mechanism"):
        MarkovSignalSpace(lamba_usstp(0.7, 0.95, horizon=2))


def test_markov_certificate_file_and_mechlp_check(tmp_path, capsys):
    res = intermediate_feasibility(lamba_usstp(0.9, 0.6), "interim")
    path = tmp_path / "markov.json"
    write_json(path, certificate_payload(res))
    args = ["check", str(MODEL), str(path), "--set", "persistence=0.9", "--set", "discount=0.6", "--exact"]
    assert main(args) == 0
    assert "payments on the last signal" in capsys.readouterr().out
    doc = json.loads(path.read_text())
    doc["multipliers"][-1]["value"] = str(Fraction(doc["multipliers"][-1]["value"]) + 1)
    path.write_text(json.dumps(doc))
    assert main(args) == 1
    assert "does NOT hold" in capsys.readouterr().out


def test_markov_verifier_catches_a_cheaper_low_report():
    res = intermediate_feasibility(lamba_usstp(0.7, 0.95), "interim")
    x = [t.copy() for t in res.transfers]
    assert verify_markov_intermediate(res.space, x).ok
    x[0][0, 0 * 2 + 1] -= 0.5  # the buyer pays less for a v_L trade in period 1: the high buyer wants to say v_L
    bad = verify_markov_intermediate(res.space, x)
    assert not bad.ok and (bad.worst["ic"].type, bad.worst["ic"].misreport) == ("v_H", "v_L")
    assert bad.worst["ic"].where == "buyer in period 1, belief (0.5, 0.5)"

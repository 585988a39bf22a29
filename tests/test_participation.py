"""Athey and Segal (2007), section 6: the constants A_i, Lemma 1's C, delta*, and the bonded balanced team
mechanism (``mechlp.constructions.participation``).

Expected numbers come from code written here (the profile chain and its invariant distribution by explicit loops
and power iteration, Lemma 1's sums by truncated power series, the USSTP's eigen-decomposition in closed form)
or from the paper's formulas; mechanisms are checked by the independent verifier (``mechlp.audit.verifier``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mechlp.audit.verifier import verify
from mechlp.catalog.examples import correlated_usstp, lamba_usstp, public_project
from mechlp.cli.main import main
from mechlp.cli.team import add_parsers
from mechlp.constructions.participation import (
    athey_segal_constants,
    bonded_team,
    team_participation_slack,
)
from mechlp.model.environment import Agent, Environment, bilateral_trade
from mechlp.solve.critical import critical_delta

IC_TOL = 1e-9
MODEL = Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml"


# ---------------------------------------------------------------------------------------------- independent code
def profile_chain(env: Environment) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Profiles in C order and Q[s, s'] = prod_i F_i(s'_i | s_i), by explicit loops (kernels ignore the action)."""
    profiles = list(itertools.product(*[range(ag.n_types) for ag in env.agents]))
    q = np.zeros((len(profiles), len(profiles)))
    for a, s in enumerate(profiles):
        for b, t in enumerate(profiles):
            p = 1.0
            for i, ag in enumerate(env.agents):
                p *= float(ag.transition[s[i], t[i]])
            q[a, b] = p
    return profiles, q


def power_stationary(q: np.ndarray, steps: int = 20000) -> np.ndarray:
    lam = np.full(q.shape[0], 1.0 / q.shape[0])
    for _ in range(steps):
        new = np.zeros_like(lam)
        for a in range(q.shape[0]):
            for b in range(q.shape[0]):
                new[b] += lam[a] * q[a, b]
        if np.max(np.abs(new - lam)) < 1e-15:
            return new
        lam = new
    return lam


def flows_by_loops(env: Environment, profiles) -> np.ndarray:
    """w_i(s) = v_i(s_i, a*(s)) with a*(s) the action maximising the sum of values (first on ties)."""
    out = np.zeros((env.n_agents, len(profiles)))
    for k, s in enumerate(profiles):
        best, arg = -math.inf, 0
        for a in range(env.n_actions):
            tot = sum(float(ag.valuation[s[i], a]) for i, ag in enumerate(env.agents))
            if tot > best + 1e-12:
                best, arg = tot, a
        for i, ag in enumerate(env.agents):
            out[i, k] = float(ag.valuation[s[i], arg])
    return out


def lemma1_sup(q: np.ndarray, lam: np.ndarray, funcs: np.ndarray, terms: int = 4000) -> float:
    """max over delta in {0, 0.001, ..., 0.999, 1} of |sum_t delta^t (Q^t f - lambda f)| by a truncated series."""
    series = []
    cur = funcs - (funcs @ lam)[:, None]  # centred
    for _ in range(terms):
        series.append(cur)
        cur = cur @ q.T  # (Q f)(s) = sum_s' Q[s, s'] f(s')
    series = np.array(series)  # (terms, F, K)
    best = 0.0
    for d in [*np.arange(0.0, 1.0, 0.001), 1.0]:
        weights = d ** np.arange(terms)
        best = max(best, float(np.max(np.abs(np.tensordot(weights, series, axes=1)))))
    return best


def paper_threshold(n: int, c: float, m: float, surplus: float) -> float:
    k = 2 * c / (n - 1) + m / n
    x = n * (c + 2 * n * k + 2 * m) / surplus
    return x / (1 + x)


# ---------------------------------------------------------------------------------------------- constants
@pytest.mark.parametrize("env", [lamba_usstp(0.7, 0.95), public_project()], ids=["usstp", "public_project"])
def test_constants_match_independent_computation(env):
    profiles, q = profile_chain(env)
    lam = power_stationary(q)
    w = flows_by_loops(env, profiles)
    ubar = w @ lam
    n = env.n_agents
    funcs = np.vstack([w, w.sum(axis=0) - w])
    c = lemma1_sup(q, lam, funcs)
    m = max(float(np.max(np.abs(ag.valuation))) for ag in env.agents)
    got = athey_segal_constants(env)
    np.testing.assert_allclose(got.stationary, lam, atol=1e-12)
    np.testing.assert_allclose(got.mean_values, ubar, atol=1e-12)
    assert got.M == m
    # our grid is coarser: the library's supremum is at least ours and, the sums being smooth in delta, close
    assert got.C >= c - 1e-9 and got.C == pytest.approx(c, rel=1e-3)
    k = 2 * got.C / (n - 1) + m / n
    np.testing.assert_allclose(got.A, ubar / n + k, atol=1e-12)
    np.testing.assert_allclose(got.side_payments, ubar - ubar.sum() / n, atol=1e-12)
    assert got.delta_star == pytest.approx(paper_threshold(n, got.C, m, float(ubar.sum())), rel=1e-12)
    assert got.delta_star == pytest.approx(paper_threshold(n, c, m, float(ubar.sum())), abs=1e-5)
    # Lemma 1's expression itself: the same series for the indicator functions of the profiles
    lemma = lemma1_sup(q, lam, np.eye(len(profiles)))
    assert got.lemma1 >= lemma - 1e-9 and got.lemma1 == pytest.approx(lemma, rel=1e-3)


def test_usstp_constants_closed_form():
    """USSTP: buyer flow v 1[v > c], seller -c 1[v > c], uniform invariant law; each kernel keeps the type with
    probability alpha (Lamba's f(v|v) = alpha), so its non-unit eigenvalue is mu = 2 alpha - 1 and the centred sum
    is g_b/(1 - delta mu) + g_s/(1 - delta mu) + g_bs/(1 - delta mu^2) (ANOVA parts of f); here every part has
    the sign of the whole at the maximising profile, so the supremum is the limit delta -> 1."""
    alpha = 0.7
    mu = 2 * alpha - 1
    v, cst = (0.05, 1.0), (0.0, 0.95)
    got = athey_segal_constants(lamba_usstp(alpha, 0.95))
    assert got.mean_values[0] == pytest.approx((0.05 + 1 + 1) / 4)
    assert got.mean_values[1] == pytest.approx(-0.95 / 4)
    best = 0.0
    for agent in range(2):
        f = np.zeros((2, 2))
        for a in range(2):
            for b in range(2):
                trade = v[a] > cst[b]
                f[a, b] = (v[a] if agent == 0 else -cst[b]) * trade
        mean = f.mean()
        gb = f.mean(axis=1) - mean
        gs = f.mean(axis=0) - mean
        for a in range(2):
            for b in range(2):
                gbs = f[a, b] - mean - gb[a] - gs[b]
                best = max(best, abs(gb[a] / (1 - mu) + gs[b] / (1 - mu) + gbs / (1 - mu**2)))
    assert got.C == pytest.approx(best, rel=1e-9)
    assert got.C_argmax == 1.0
    assert got.delta_star == pytest.approx(paper_threshold(2, best, 1.0, 0.275), rel=1e-9)
    assert got.period == 1 and got.ergodic_set == [0, 1, 2, 3] and got.null_action == "no_trade"


def test_periodic_chain_has_a_single_ergodic_set():
    """Lemma 1 allows a periodic ergodic set: one agent flips deterministically, the other is iid."""
    flip = Agent("a", ["lo", "hi"], [0.5, 0.5], [[0, 1], [1, 0]], [[0, 0.4], [0, 1.0]])
    iid = Agent("b", ["lo", "hi"], [0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], [[0, -0.2], [0, -0.6]])
    env = Environment([flip, iid], ["no", "yes"], 0.9, "infinite")
    got = athey_segal_constants(env)
    assert got.period == 2 and len(got.ergodic_set) == 4
    np.testing.assert_allclose(got.stationary, [0.25] * 4)


# ---------------------------------------------------------------------------------------------- refusals of assumptions
def _no_null_action() -> Environment:
    ag = [Agent(nm, ["l", "h"], [0.5, 0.5], [[0.7, 0.3], [0.3, 0.7]], [[1.0, 0.0], [0.0, 2.0]]) for nm in "xy"]
    return Environment(ag, ["left", "right"], 0.9, "infinite")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: lamba_usstp(0.7, 0.95, horizon=3), "needs an infinite horizon"),
        (lambda: correlated_usstp(0.5), "independent types"),
        (_no_null_action, r"assumption \(v\)"),
        (lambda: lamba_usstp(1.0, 0.95), "single ergodic set"),
        (
            lambda: bilateral_trade(
                [0.1, 0.2], [0.5, 0.6], [0.5, 0.5], [0.5, 0.5], np.eye(2) * 0.4 + 0.3, np.eye(2) * 0.4 + 0.3, 0.9
            ),
            "positive expected total surplus",
        ),
    ],
    ids=["finite", "correlated", "no_null_action", "two_ergodic_sets", "no_surplus"],
)
def test_refuses_models_outside_the_papers_assumptions(make, match):
    with pytest.raises(ValueError, match=match):
        athey_segal_constants(make())
    with pytest.raises(ValueError, match=match):
        bonded_team(make())


def test_refuses_one_agent():
    ag = Agent("x", ["l", "h"], [0.5, 0.5], [[0.7, 0.3], [0.3, 0.7]], [[0.0, 1.0], [0.0, 2.0]])
    with pytest.raises(ValueError, match="at least two agents"):
        athey_segal_constants(Environment([ag], ["no", "yes"], 0.9, "infinite"))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bond"):
        bonded_team(lamba_usstp(0.7, 0.95), bond="designer")
    with pytest.raises(ValueError, match="ir"):
        bonded_team(lamba_usstp(0.7, 0.95), ir="sometimes")
    with pytest.raises(TypeError, match="env must be an Environment"):
        athey_segal_constants("lamba_usstp")
    with pytest.raises(ValueError, match="needs method='team'"):
        critical_delta(lamba_usstp(0.7, 0.95), ir="ex_post")
    with pytest.raises(ValueError, match="horizon and tail do not apply"):
        critical_delta(lamba_usstp(0.7, 0.95), method="team", horizon=3)


# ---------------------------------------------------------------------------------------------- the bonded mechanism
MODELS = {
    "usstp": lambda d: lamba_usstp(0.7, d),
    "public_project": lambda d: public_project(discount=d),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_paper_constants_give_ex_post_participation_above_delta_star(name):
    """Proposition 3: above delta*, the paper's constants make every node's continuation utility >= 0."""
    star = athey_segal_constants(MODELS[name](0.9)).delta_star
    d = star + (1 - star) / 4
    res = bonded_team(MODELS[name](d), bond="paper", ir="ex_post", exact=True)
    assert res.status == "verified", res.message
    v = verify(res.mechanism, ic="bayesian", ir="ex_post", budget="ex_post")
    assert v.ok and v.max_violation["ic"] <= IC_TOL
    assert verify(res.mechanism, ic="bayesian", ir="ex_post", budget="ex_post", exact=True).ok
    assert np.all(res.mechanism.transfers.sum(axis=0) == 0.0)  # exactly zero, node by node
    # the paper's gross bilateral payments z_ij = gamma_j/(I-1) + A_i are non-negative (the choice of K)
    n = res.env.n_agents
    assert min(res.gross[i, j].min() for i in range(n) for j in range(n) if i != j) >= 0.0


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("ir", ["interim", "ex_post", "ex_ante"])
def test_history_bond_verified_above_and_refused_below(name, ir):
    crit = critical_delta(MODELS[name], method="team", ir=ir, tol=1e-6, grid=21)
    assert crit.status == "bracketed" and crit.brackets and crit.scan.directions[0] == "becomes feasible"
    lo, hi = crit.brackets[0]
    star = athey_segal_constants(MODELS[name](0.9)).delta_star
    assert hi <= star  # the construction's own threshold is below the paper's sufficient bound
    above = bonded_team(MODELS[name](min(hi + 0.02, 0.99)), ir=ir, exact=True)
    assert above.status == "verified", above.message
    assert verify(above.mechanism, ic="bayesian", ir=ir, budget="ex_post", exact=True).ok
    below = bonded_team(MODELS[name](lo - 0.05), ir=ir)
    assert below.status == "refused" and "no bond makes every agent participate" in below.reason
    assert below.verification.max_violation["ir"] > 1e-7  # the verifier sees the failure too
    assert below.verification.max_violation["ic"] <= IC_TOL and below.verification.max_violation["budget"] == 0.0


def test_history_bond_condition_is_the_sum_of_worst_levels():
    """The refusal's reason: at the worst history the agents' worst interim utilities in the balanced team
    mechanism sum to a negative number; a zero-sum shift of those utilities cannot change the sum (checked by
    shifting with random zero-sum credits and re-verifying)."""
    env = lamba_usstp(0.7, 0.5)
    res = bonded_team(env)
    assert res.refused
    ub = res.base.mechanism.interim_utilities()
    sums = sum(u.min(axis=1) for u in ub)  # (n_hist,)
    h = int(np.argmin(sums))
    assert sums[h] < 0 and f"sum to {sums[h]:.6g}" in res.reason
    np.testing.assert_allclose(res.slack, sums / env.n_agents, atol=1e-12)
    ub_bonded = res.mechanism.interim_utilities()
    worst = [u.min(axis=1) for u in ub_bonded]
    np.testing.assert_allclose(worst[0], worst[1], atol=1e-12)  # equal slack for every agent


def test_bond_keeps_ic_slack_and_shifts_interim_utilities_by_the_credit():
    env = public_project(discount=0.9)
    res = bonded_team(env)
    base = res.base.mechanism.interim_utilities()
    bonded = res.mechanism.interim_utilities()
    for i in range(env.n_agents):
        np.testing.assert_allclose(
            bonded[i] - base[i], np.repeat(res.credit[i][:, None], base[i].shape[1], 1), atol=1e-9
        )
    np.testing.assert_allclose(res.credit.sum(axis=0), 0.0, atol=1e-12)


def test_tampered_bond_fails_the_verifier():
    """Moving part of one agent's bond credit to another at the tightest history breaks IR; skipping the
    other side of the move breaks the budget."""
    env = lamba_usstp(0.7, 0.75)
    res = bonded_team(env)
    assert res.status == "verified"
    sp = res.space
    h = int(np.argmin(res.slack))
    nodes = np.flatnonzero(sp.node_hist == h)
    moved = res.slack[h] + 0.01  # more than the slack: agent 0 now falls below zero at h
    x = res.mechanism.transfers.copy()
    x[0, nodes] += moved
    x[1, nodes] -= moved
    v = verify(type(res.mechanism)(sp, x), ic="bayesian", ir="interim", budget="ex_post")
    assert v.max_violation["ir"] > 1e-3 and v.max_violation["budget"] == 0.0
    x[1, nodes] += moved
    v = verify(type(res.mechanism)(sp, x), ic="bayesian", ir="interim", budget="ex_post")
    assert v.max_violation["budget"] > 1e-3


def test_slack_function_matches_the_construction():
    env = lamba_usstp(0.7, 0.8)
    assert team_participation_slack(env) == pytest.approx(float(bonded_team(env, check=False).slack.min()))


def test_critical_team_is_refused_everywhere_on_a_low_grid():
    crit = critical_delta(MODELS["usstp"], method="team", lo=0.05, hi=0.4, grid=5)
    assert crit.status == "refused" and "proves nothing" in crit.message


# ---------------------------------------------------------------------------------------------- command line
def _run(argv):
    parser = argparse.ArgumentParser(prog="mechlp")
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_critical_delta_team(capsys):
    model = str(MODEL)
    assert main(["critical-delta", model, "--method", "team", "--ir", "ex_post", "--grid", "11"]) == 0
    out = capsys.readouterr().out
    assert "ex_post IR" in out and "becomes feasible at delta" in out
    assert main(["critical-delta", model, "--ir", "ex_post"]) == 2
    assert "needs method='team'" in capsys.readouterr().err


def test_cli_bond(tmp_path, capsys):
    model = str(MODEL)
    out = tmp_path / "bonded.json"
    assert _run(["team", model, "--bond", "history", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "verified" and doc["bond"] == "history"
    assert doc["constants"]["delta_star"] == pytest.approx(athey_segal_constants(lamba_usstp(0.7, 0.95)).delta_star)
    assert _run(["team", model, "--bond", "paper", "--set", "discount=0.3"]) == 0  # refused, with its reason: an answer
    assert "REFUSED" in capsys.readouterr().out

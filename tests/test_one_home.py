"""One home each (issue #10): the one-shot deviation coefficients (mechlp.constraints.deviation), transfers from
interim utilities and ex post rebalancing (mechlp.model.transfers). Closed forms, brute-force loops and the
independent verifier, never the code's own output."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from mechlp.audit.verifier import interim_utilities as verifier_interim_utilities
from mechlp.audit.verifier import verify
from mechlp.constraints.deviation import flow_gain, ic_pair_mask, ic_pairs, kernel_gap
from mechlp.constraints.interim import interim_rows
from mechlp.model.beliefs import continuation_values, marginal_beliefs, others_beliefs, others_product
from mechlp.model.environment import Agent, Environment
from mechlp.model.exact import Numbers, Rational
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail
from mechlp.model.transfers import interim_payments, rebalance, redistribute, transfers_from_interim


# ---------------------------------------------------------------------------------------------- models
def _rational_rows(rng: np.random.Generator, n_rows: int, k: int) -> np.ndarray:
    """Rows of a stochastic matrix with entries in tenths (read exactly by ``Numbers``)."""
    out = np.empty((n_rows, k))
    for r in range(n_rows):
        cuts = np.sort(rng.choice(np.arange(1, 10), size=k - 1, replace=False))
        out[r] = np.diff(np.concatenate([[0], cuts, [10]])) / 10
    return out


def random_three_agents(seed: int = 3, horizon: int | str = 3, action_kernels: bool = False) -> Environment:
    """Three agents with two types each, two actions, random kernels/priors/valuations in tenths."""
    rng = np.random.default_rng(seed)
    agents = []
    for j in range(3):
        prior = _rational_rows(rng, 1, 2)[0]
        kern = np.stack([_rational_rows(rng, 2, 2) for _ in range(2)]) if action_kernels else _rational_rows(rng, 2, 2)
        val = rng.integers(-5, 6, size=(2, 2)) / 10
        agents.append(Agent(f"a{j}", ["lo", "hi"], prior, kern, val))
    profiles = 8
    alloc = np.zeros((profiles, 2))
    alloc[np.arange(profiles), rng.integers(0, 2, size=profiles)] = 1.0  # deterministic (action kernels need it)
    return Environment(agents, ["x", "y"], 0.9, horizon, alloc, name="random3")


def _exact_interim(space, values: np.ndarray, margs: list[np.ndarray]) -> list[np.ndarray]:
    """Brute force: sum over every profile of P(theta_-i|h) values[i](h, theta), in fractions."""
    env = space.env
    types = env.profile_types()
    out = []
    for i in range(env.n_agents):
        arr = np.empty((space.n_hist, env.type_counts[i]), dtype=object)
        arr.fill(Fraction(0))
        for s in range(env.n_profiles):  # loop over profiles (a test, not the library)
            w = np.ones(space.n_hist, dtype=object)
            for j in range(env.n_agents):
                if j != i:
                    w = w * margs[j][:, types[s, j]]
            t = types[s, i]
            arr[:, t] = arr[:, t] + w * values[i][np.arange(space.n_hist) * env.n_profiles + s]
        out.append(arr)
    return out


# ---------------------------------------------------------------------------------------------- deviation
def test_ic_pairs_all_and_local():
    assert ic_pairs(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert ic_pairs(3, local=True) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert ic_pairs(1) == []
    mask = ic_pair_mask(4, local=True)
    assert mask.sum() == 6 and not mask.diagonal().any() and mask[2, 3] and not mask[0, 2]


def test_flow_gain_matches_a_brute_force_sum_over_actions():
    env = random_three_agents()
    alloc = env.allocation
    for i, ag in enumerate(env.agents):
        m_count = env.others_count(i)
        prof = env.profile_index(i, np.arange(ag.n_types)[:, None], np.arange(m_count)[None, :])
        got = flow_gain(alloc, ag.valuation, prof)
        for t, r, m in itertools.product(range(ag.n_types), range(ag.n_types), range(m_count)):
            s = prof[r, m]
            want = sum(alloc[s, a] * (ag.valuation[t, a] - ag.valuation[r, a]) for a in range(env.n_actions))
            assert got[t, r, m] == pytest.approx(want, abs=1e-15)
        assert np.all(got[np.arange(ag.n_types), np.arange(ag.n_types)] == 0)


@pytest.mark.parametrize("action_kernels", [False, True])
def test_kernel_gap_is_the_difference_of_mixed_kernels_and_sums_to_zero_exactly(action_kernels):
    env = random_three_agents(action_kernels=action_kernels)
    nums = Numbers(env, exact=True)
    for i, ag in enumerate(env.agents):
        m_count = env.others_count(i)
        prof = env.profile_index(i, np.arange(ag.n_types)[:, None], np.arange(m_count)[None, :])
        tt, rr = np.array([0, 1]), np.array([1, 0])
        gap = kernel_gap(nums.alloc, nums.kernels[i], prof, tt, rr)
        assert gap.shape == (2, m_count, ag.n_types)
        for e, m in itertools.product(range(2), range(m_count)):
            s = prof[rr[e], m]
            # G_i(.|x; s) = sum_a p(a|s) F_i(.|x, a)
            g_true = sum(nums.alloc[s, a] * nums.kernels[i][a, tt[e]] for a in range(env.n_actions))
            g_rep = sum(nums.alloc[s, a] * nums.kernels[i][a, rr[e]] for a in range(env.n_actions))
            assert list(gap[e, m]) == list(g_true - g_rep)
            assert sum(gap[e, m]) == 0  # both kernels are distributions: exactly zero in fractions
        floats = kernel_gap(env.allocation, ag.kernel(env.n_actions), prof, tt, rr)
        np.testing.assert_allclose(floats, gap.astype(float), atol=1e-15)


def test_kernel_gap_ignores_the_allocation_when_the_kernel_ignores_the_action():
    env = random_three_agents()
    ag = env.agents[0]
    prof = env.profile_index(0, np.arange(2)[:, None], np.arange(4)[None, :])
    gap = kernel_gap(env.allocation, ag.kernel(env.n_actions), prof, 1, 0)
    np.testing.assert_array_equal(gap[0], np.tile(ag.transition[1] - ag.transition[0], (4, 1)))


@pytest.mark.parametrize(("action_kernels", "seed"), [(False, 10), (True, 14)])
def test_interim_ic_rows_agree_with_the_independent_verifier(action_kernels, seed):
    """The IC rows built from the shared coefficients, at random interim utilities, have the slacks the verifier
    finds (its own arithmetic) on the mechanism that implements those utilities."""
    env = random_three_agents(seed=seed, action_kernels=action_kernels)
    for ag in env.agents:  # persistent enough that the continuation terms weigh in every agent's rows
        kern = ag.kernel(env.n_actions)
        assert np.min(np.abs(kern[:, 0, 0] - kern[:, 1, 0])) >= 0.2
    space = HistoryTree(env, 3)
    rng = np.random.default_rng(23)
    ubar = [rng.normal(size=(space.n_hist, k)) for k in env.type_counts]
    for u in ubar:
        u[0] *= 100.0  # the most violated row is at the root, where the continuation terms enter
    rows = interim_rows(space, Numbers(env, exact=False), "bayesian", "interim", "none")
    z = np.zeros(rows.n_cols)
    for i, u in enumerate(ubar):
        hh, tt = np.meshgrid(np.arange(space.n_hist), np.arange(2), indexing="ij")
        z[rows.col(i, hh, tt)] = u
    lhs = np.bincount(rows.rows, weights=rows.vals * z[rows.cols], minlength=rows.n_rows)
    slack = (lhs - rows.b)[rows.family == "ic"]
    ver = verify(Mechanism(space, transfers_from_interim(space, ubar)), ic="bayesian", ir="interim", budget="none")
    worst = int(np.argmin(slack))
    assert slack[worst] < -10 and rows.hist[rows.family == "ic"][worst] == 0
    assert ver.max_violation["ic"] == pytest.approx(-slack[worst], abs=1e-10)


# ---------------------------------------------------------------------------------------------- transfers
@pytest.mark.parametrize("kind", ["tree", "markov", "tail"])
def test_transfers_from_interim_reproduce_the_interim_utilities(kind):
    env = random_three_agents(horizon=3 if kind == "tree" else "infinite")
    space = {
        "tree": lambda: HistoryTree(env, 3),
        "markov": lambda: MarkovSpace(env),
        "tail": lambda: TreeWithTail(env, 2),
    }[kind]()
    rng = np.random.default_rng(11)
    ubar = [rng.normal(size=(space.n_hist, k)) for k in env.type_counts]
    mech = Mechanism(space, transfers_from_interim(space, ubar))
    for got, want in zip(verifier_interim_utilities(mech), ubar, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-10)
    # U_i(h, theta) = Ubar_i(theta_i|h): the ex post utilities do not depend on the others' types
    u = mech.utilities()
    types = env.profile_types()
    for i in range(env.n_agents):
        np.testing.assert_allclose(u[i], ubar[i][space.node_hist, types[space.node_profile, i]], atol=1e-10)


def test_transfers_from_interim_in_fractions_are_exact():
    env = random_three_agents(horizon=2)
    space = HistoryTree(env, 2)
    nums = Numbers(env, exact=True)
    rng = np.random.default_rng(5)
    ubar = [
        np.array([[Fraction(int(v), 7) for v in row] for row in rng.integers(-9, 10, size=(space.n_hist, k))])
        for k in env.type_counts
    ]
    x = transfers_from_interim(space, ubar, nums)
    assert x.dtype == object and isinstance(x[0, 0], Rational)
    types = env.profile_types()
    flow = np.stack(
        [np.einsum("ka,ka->k", nums.alloc, nums.valuation[i][types[:, i]])[space.node_profile] for i in range(3)]
    )
    u = continuation_values(space, flow - x, nums)
    margs = marginal_beliefs(space, nums)
    for got, want in zip(_exact_interim(space, u, margs), ubar, strict=True):
        assert np.all(got == want)


def test_transfers_from_interim_validates_its_argument():
    env = random_three_agents(horizon=2)
    space = HistoryTree(env, 2)
    good = [np.zeros((space.n_hist, 2))] * 3
    with pytest.raises(ValueError, match=r"interim has 2 entries; expected 3, one per agent"):
        transfers_from_interim(space, good[:2])
    with pytest.raises(ValueError, match=r"interim\[1\] has shape \(9, 3\); expected \(9, 2\)"):
        transfers_from_interim(space, [good[0], np.zeros((space.n_hist, 3)), good[2]])


# ---------------------------------------------------------------------------------------------- rebalancing
def test_redistribute_closed_form():
    own = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]])
    means = np.array([[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]])
    y = redistribute(own, means)
    cent = own - means
    np.testing.assert_allclose(y[0], own[0] - (cent[1] + cent[2]) / 2)
    np.testing.assert_allclose(y[2], own[2] - (cent[0] + cent[1]) / 2)
    np.testing.assert_allclose(y.sum(axis=0), means.sum(axis=0))
    z = redistribute(-own)  # Athey-Segal eq. (5.1) with gamma = own: -gamma_i + (1/(n-1)) sum_{j != i} gamma_j
    np.testing.assert_allclose(z[1], -own[1] + (own[0] + own[2]) / 2)
    frac = redistribute(np.array([[Fraction(1, 3)], [Fraction(2, 7)], [Fraction(-5, 11)]], dtype=object))
    assert sum(frac[:, 0]) == 0 and isinstance(frac[0, 0], Fraction)
    with pytest.raises(ValueError, match="at least two agents"):
        redistribute(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"means has shape \(3, 1\); expected \(3, 2\)"):
        redistribute(own, np.zeros((3, 1)))


def _zero_flow_surplus(space, x: np.ndarray, margs: list[np.ndarray]) -> np.ndarray:
    """Shift agent 0's payments by a history constant so that sum_j E[xbar_j|h] = 0 at every history."""
    xbar = _exact_interim(space, x, margs)
    pit = sum((xbar[j] * margs[j]).sum(axis=1) for j in range(space.env.n_agents))
    out = x.copy()
    out[0] = out[0] - pit[space.node_hist]
    return out


@pytest.mark.parametrize("kind", ["tree", "markov"])
def test_rebalance_sums_to_zero_exactly_and_keeps_interim_payments(kind):
    env = random_three_agents(horizon=2 if kind == "tree" else "infinite")
    space = HistoryTree(env, 2) if kind == "tree" else MarkovSpace(env)
    nums = Numbers(env, exact=True)
    margs = marginal_beliefs(space, nums)
    rng = np.random.default_rng(17)
    raw = rng.integers(-20, 21, size=(3, space.n_nodes))
    x = np.array([[Fraction(int(v), 9) for v in row] for row in raw], dtype=object)
    x = _zero_flow_surplus(space, x, margs)
    xhat = rebalance(space, x, margs)
    assert all(v == 0 for v in xhat.sum(axis=0))  # exactly zero at every node
    for got, want in zip(_exact_interim(space, xhat, margs), _exact_interim(space, x, margs), strict=True):
        assert np.all(got == want)  # interim payments unchanged, exactly
    for got, want in zip(interim_payments(space, x, margs), _exact_interim(space, x, margs), strict=True):
        assert np.all(got == want)
    # floats: the same identities to rounding
    margs_f = marginal_beliefs(space)
    xf = x.astype(float)
    xhat_f = rebalance(space, xf, margs_f)
    assert np.abs(xhat_f.sum(axis=0)).max() < 1e-12
    for got, want in zip(interim_payments(space, xhat_f, margs_f), interim_payments(space, xf, margs_f), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_rebalance_keeps_the_expected_flow_surplus_at_every_node():
    """Without Pi_t(h) = 0 the node sums equal sum_j E[xbar_j|h] (Lamba 2022, proof of Proposition 1)."""
    env = random_three_agents(horizon=2)
    space = HistoryTree(env, 2)
    nums = Numbers(env, exact=True)
    margs = marginal_beliefs(space, nums)
    x = np.array(
        [[Fraction(int(v), 5) for v in row] for row in np.random.default_rng(2).integers(-9, 9, (3, space.n_nodes))]
    )
    xbar = _exact_interim(space, x, margs)
    pit = sum((xbar[j] * margs[j]).sum(axis=1) for j in range(3))
    assert np.all(rebalance(space, x, margs).sum(axis=0) == pit[space.node_hist])


def test_rebalance_validates_its_arguments():
    env = random_three_agents(horizon=2)
    space = HistoryTree(env, 2)
    margs = marginal_beliefs(space)
    with pytest.raises(ValueError, match=r"transfers has shape \(3, 5\); expected \(3, 72\)"):
        rebalance(space, np.zeros((3, 5)), margs)
    with pytest.raises(ValueError, match=r"marginals has 2 entries; expected 3"):
        rebalance(space, np.zeros((3, space.n_nodes)), margs[:2])
    solo = Environment([Agent("solo", ["a", "b"], [0.5, 0.5], np.eye(2), [[0.0], [1.0]])], ["x"], 0.9, 2)
    solo_space = HistoryTree(solo, 2)
    with pytest.raises(ValueError, match="at least two agents"):
        rebalance(solo_space, np.zeros((1, solo_space.n_nodes)), marginal_beliefs(solo_space))


# ---------------------------------------------------------------------------------------------- others' beliefs
def test_others_product_is_the_product_of_the_other_marginals_exactly():
    """One home of P(theta_-i|h): a brute-force product over the other agents at every profile, in fractions."""
    env = random_three_agents(horizon=2)
    space = HistoryTree(env, 2)
    nums = Numbers(env, exact=True)
    margs = marginal_beliefs(space, nums)
    types = env.profile_types()
    for i in range(env.n_agents):
        got = others_product(margs, i, env)
        assert got.shape == (space.n_hist, env.n_profiles)
        for s in range(env.n_profiles):  # a test, not the library
            want = np.ones(space.n_hist, dtype=object)
            for j in range(env.n_agents):
                if j != i:
                    want = want * margs[j][:, types[s, j]]
            assert all(isinstance(v, Rational) for v in got[:, s])
            assert np.all(got[:, s] == want)
        # the (H, M) layout is the belief the model computes from the space itself
        assert np.all(others_product(margs, i) == others_beliefs(space, i, nums))
        np.testing.assert_array_equal(others_product(marginal_beliefs(space), i), others_beliefs(space, i))


def test_interim_payments_of_a_single_agent_stay_exact():
    """No other agents: P(theta_-i|h) is an empty product, one as a rational, so payments stay exact."""
    solo = Environment([Agent("solo", ["a", "b"], [0.5, 0.5], np.eye(2), [[0.0], [1.0]])], ["x"], 0.9, 2)
    space = HistoryTree(solo, 2)
    nums = Numbers(solo, exact=True)
    x = np.array([[Fraction(j, 7) for j in range(space.n_nodes)]], dtype=object)
    (xbar,) = interim_payments(space, x, marginal_beliefs(space, nums))
    assert all(isinstance(v, Fraction | Rational) for v in xbar.reshape(-1))
    assert np.all(xbar.reshape(-1) == x[0])  # node h*K + t is (h, t): the payment itself

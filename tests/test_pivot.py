"""Dynamic programming and the Bergemann-Välimäki (2010) dynamic pivot mechanism."""

from __future__ import annotations

import numpy as np
import pytest

from mechlp.audit.verifier import verify
from mechlp.catalog.examples import (
    bv_scheduling,
    bv_scheduling_prices,
    lamba_usstp,
    license_auction,
    public_project,
    yoon_binary,
    yoon_k_type,
)
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.model.beliefs import joint_transition
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.policy import efficient_environment, efficient_values, feasible_without
from mechlp.model.spaces import HistoryTree, MarkovSpace

VALUES = (4.0, 3.0, 2.0, 1.0)


def _path_profile(env: Environment, served: int) -> int:
    """Scheduling: the first ``served`` tasks are done, the others wait (index 1 = waiting)."""
    return int(np.ravel_multi_index(tuple([0] * served + [1] * (env.n_agents - served)), env.type_counts))


# ---------------------------------------------------------------------------------------------- DP
def test_dp_matches_linear_algebra_when_kernels_ignore_the_action():
    env = yoon_k_type((0.0, 0.4, 1.0), 0.75, 0.85)
    sol = efficient_values(env)
    assert np.array_equal(sol.policy, env.actions_by_profile())  # static argmax is dynamic here
    q = joint_transition(env)
    w = np.linalg.solve(np.eye(env.n_profiles) - env.discount * q, env.welfare())
    assert np.max(np.abs(sol.values - w)) < 1e-12
    assert sol.residual < 1e-12
    # bilateral trade: nothing can be traded without one side, so W_-i = 0
    fw = feasible_without(env)
    assert fw.tolist() == [[True, False], [True, False]]
    assert np.all(efficient_values(env, exclude="buyer").values == 0.0)


def test_dp_scheduling_values_closed_forms():
    delta = 0.9
    env = bv_scheduling(VALUES, delta)
    start = _path_profile(env, 0)
    v = np.array(VALUES)
    w = efficient_values(env)
    assert w.values[start] == pytest.approx(np.sum(delta ** np.arange(4) * v), abs=1e-12)  # B-V eq. (2)
    for i in range(4):  # B-V eq. (3): skip task i, the later tasks move up one period
        rest = np.delete(v, i)
        wm = efficient_values(env, exclude=i)
        assert wm.values[start] == pytest.approx(np.sum(delta ** np.arange(3) * rest), abs=1e-12)
    # finite horizon: only the first T tasks are served
    fin = efficient_values(env, horizon=2)
    assert fin.values.shape == (2, env.n_profiles)
    assert fin.values[0, start] == pytest.approx(v[0] + delta * v[1], abs=1e-12)


def test_dynamic_policy_differs_from_static_with_learning():
    env = license_auction(2, 0.9, depth=3, priors=[(1, 1), (2, 2)])
    means = np.stack([env.agents[i].valuation[env.profile_types()[:, i], i] for i in range(2)], axis=1)
    myopic = np.argmax(means, axis=1)
    assert np.count_nonzero(myopic != env.actions_by_profile()) > 0  # exploration: index != current mean
    static = Environment(env.agents, env.actions, env.discount, "infinite", "efficient_myopic", meta=env.meta)
    with pytest.raises(ValueError, match="not dynamically efficient"):
        dynamic_pivot(static)
    # "efficient" with learning is the dynamic policy
    default = Environment(env.agents, env.actions, env.discount, "infinite", "efficient", meta=env.meta)
    assert np.array_equal(default.allocation, env.allocation)
    # finite horizon: the last period is myopic, earlier periods explore -> one allocation table per period
    fin = Environment(env.agents, env.actions, env.discount, 3, "efficient_myopic", meta=env.meta)
    per_period = efficient_environment(fin)
    assert per_period.period_dependent and per_period.n_allocation_periods == 3
    assert np.array_equal(np.argmax(per_period.allocation_at(3), axis=1), myopic)
    assert np.count_nonzero(np.argmax(per_period.allocation_at(1), axis=1) != myopic) > 0
    last = efficient_environment(fin, period=3)
    assert np.array_equal(last.actions_by_profile(), myopic)


# ---------------------------------------------------------------------------------------------- scheduling
def test_scheduling_prices_are_bv_eq4_and_verified():
    delta = 0.9
    env = bv_scheduling(VALUES, delta)
    res = dynamic_pivot(env)
    closed = bv_scheduling_prices(VALUES, delta)
    measured = np.array([res.transfers[i, _path_profile(env, i)] for i in range(4)])
    assert np.max(np.abs(measured - closed)) < 1e-12
    # (1 - delta) sum_{t >= i} delta^(t-i) v_{t+1}, written out for the 4-task instance
    assert closed == pytest.approx([0.561, 0.29, 0.1, 0.0], abs=1e-12)
    for i in range(4):  # tasks that are not served pay nothing along the path
        others = np.delete(res.transfers[:, _path_profile(env, i)], i)
        assert np.all(np.abs(others) < 1e-12)
    assert res.verification.ok and res.verification_bayesian.ok
    assert res.surplus[0] == pytest.approx(np.sum(delta ** np.arange(4) * closed), abs=1e-12)


def test_scheduling_with_value_reports_is_ex_post_ic():
    env = bv_scheduling((3.0, 2.0, 1.0), 0.8, grid=(1.0, 2.0, 3.0))
    res = dynamic_pivot(env)
    assert res.verification.ok and res.verification_bayesian.ok
    assert res.verification.n_rows["ic"] > 1000
    # the sign matters: paying -z instead of z breaks incentive compatibility
    flipped = Mechanism(res.space, -res.mechanism.transfers)
    assert verify(flipped, ic="ex_post", ir="ex_post", budget="none").max_violation["ic"] > 0.1


# ---------------------------------------------------------------------------------------------- learning
def test_learning_auction_two_bidders_winner_pays_loser_mean():
    env = license_auction(2, 0.9, depth=3, priors=[(1, 1), (2, 3)])
    res = dynamic_pivot(env)
    assert res.verification.ok and res.verification_bayesian.ok
    types = env.profile_types()
    win = env.actions_by_profile()
    k = np.arange(env.n_profiles)
    loser = 1 - win
    means = np.stack([env.agents[j].valuation[types[:, j], j] for j in range(2)], axis=1)
    loser_mean = means[np.arange(env.n_profiles), loser]
    assert np.max(np.abs(res.transfers[win, k] - loser_mean)) < 1e-12
    assert np.max(np.abs(res.transfers[loser, k])) < 1e-12
    assert res.surplus[0] > 0  # auctions run a surplus


def test_learning_auction_three_bidders_option_value():
    delta = 0.9
    env = license_auction(3, delta, depth=2, priors=[(1, 1), (2, 2), (1, 2)])
    res = dynamic_pivot(env)
    assert res.verification.ok and res.verification_bayesian.ok
    types = env.profile_types()
    k = np.arange(env.n_profiles)
    win = env.actions_by_profile()
    price = res.transfers[win, k]
    # B-V Theorem 3: the winner pays (1 - delta) W_{-i}, the others nothing
    assert np.max(np.abs(price - (1 - delta) * res.W_minus[win, k])) < 1e-12
    others = res.transfers.copy()
    others[win, k] = 0.0
    assert np.max(np.abs(others)) < 1e-12
    means = np.stack([env.agents[j].valuation[types[:, j], j] for j in range(3)], axis=1)
    means[k, win] = -np.inf
    gap = price - means.max(axis=1)
    assert gap.min() > -1e-12  # never below the best remaining expected value
    # the instance: at the start every posterior is the prior; the price exceeds the best remaining mean 0.5
    assert price[0] == pytest.approx(0.513659, abs=1e-6)
    assert gap[0] > 0.01 and gap.max() > 0.06


# ---------------------------------------------------------------------------------------------- identities
@pytest.mark.parametrize(
    "make",
    [
        lambda: dynamic_pivot(lamba_usstp(0.7, 0.95)),
        lambda: dynamic_pivot(bv_scheduling(VALUES, 0.9)),
        lambda: dynamic_pivot(yoon_binary(0.6, 0.9, horizon=3)),
    ],
    ids=["usstp", "scheduling", "binary-T3"],
)
def test_utilities_are_marginal_contributions(make):
    res = make()
    env, sp_ = res.env, res.space
    u = res.mechanism.utilities()
    m = res.values.marginal  # (P, n, K)
    period = np.zeros(sp_.n_nodes, dtype=int) if m.shape[0] == 1 else sp_.hist_period[sp_.node_hist] - 1
    assert np.max(np.abs(u - m[period, :, sp_.node_profile].T)) < 1e-10  # U_i = M_i = W - W_-i
    assert np.all(m >= -1e-12)
    # Lamba eq. (4): Pi(root) = E[W] - sum_i E[M_i]
    prior = env.prior_profile()
    assert res.surplus[0] == pytest.approx(prior @ (res.values.W[0] - m[0].sum(axis=0)), abs=1e-10)


def test_pivot_on_bilateral_trade_is_yoon_transfers():
    env = yoon_binary(0.7, 0.9)
    res = dynamic_pivot(env)
    types = env.profile_types()
    v = env.agents[0].values[types[:, 0]]
    c = env.agents[1].values[types[:, 1]]
    trade = env.allocation[:, 1]
    assert np.allclose(res.transfers[0], c * trade)  # buyer pays the seller's cost on trade
    assert np.allclose(res.transfers[1], -v * trade)  # the seller receives the buyer's value
    assert res.surplus[0] == pytest.approx(-1 / (4 * (1 - 0.9)), abs=1e-12)  # Yoon 2021: deficit 1/(4(1-delta))
    tree = dynamic_pivot(env, HistoryTree(env, 3))
    assert tree.verification.ok and "truncated" in tree.notes[0]
    assert isinstance(dynamic_pivot(env).space, MarkovSpace)


def test_policy_evaluation_without_storing_the_kernel(monkeypatch):
    """The Krylov fallback (joint kernel too large to store) gives the same values as the sparse LU solve."""
    import mechlp.model.policy as dp

    env = license_auction(2, 0.9, depth=3, priors=[(1, 1), (2, 2)])
    direct = efficient_values(env)
    monkeypatch.setattr(dp, "_DIRECT_NNZ_LIMIT", 0)
    krylov = efficient_values(env)
    assert np.max(np.abs(direct.values - krylov.values)) < 1e-10
    assert np.array_equal(direct.policy, krylov.policy) and krylov.residual < 1e-10


def test_participation_is_checked_against_the_outside_values():
    """Bergemann-Valimaki's IR is U_i >= O_i, the value of opting out while the planner runs the others' efficient
    policy. Agent 3 dislikes the project (valuations -0.5, -0.2): its marginal contribution is negative, so IR
    against 0 fails, while M_i >= O_i holds; O_i is recomputed here from its definition."""
    env = public_project(values=((0.6, 1.2), (0.5, 1.1), (0.0, 0.3)), cost=1.5, persistence=0.0, discount=0.8)
    res = dynamic_pivot(env)
    assert res.ok and res.verification.options["outside_values"] == "per node"
    assert res.values.marginal[:, 2].min() < -1.0  # negative marginal contribution
    against_zero = verify(res.mechanism, ic="ex_post", ir="ex_post", budget="none")
    assert against_zero.max_violation["ir"] > 1.0
    # O_i by definition: the others' static efficient rule (actions do not move types), agent i's valuation of it
    k, types = env.n_profiles, env.profile_types()
    p = np.ones((k, k))
    for j, ag in enumerate(env.agents):
        kern = ag.kernel(env.n_actions)[0]
        p = p * kern[types[:, j]][:, types[:, j]]
    for i in range(3):
        others = [j for j in range(3) if j != i]
        build = sum(env.agents[j].valuation[types[:, j], 1] for j in others) > 0
        reward = env.agents[i].valuation[types[:, i], build.astype(int)]
        o_ref = np.linalg.solve(np.eye(k) - env.discount * p, reward)
        np.testing.assert_allclose(res.values.outside[0, i], o_ref, atol=1e-12)
    assert (res.values.marginal - res.values.outside).min() > -1e-12  # M_i >= O_i


def test_outside_values_validation():
    env = public_project(discount=0.8)
    mech = dynamic_pivot(env).mechanism
    with pytest.raises(ValueError, match="outside_values has shape"):
        verify(mech, outside_values=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="outside_values must be finite"):
        verify(mech, outside_values=np.full((3, mech.space.n_nodes), np.nan))
    with pytest.raises(ValueError, match="give outside_option or outside_values, not both"):
        verify(mech, outside_option=0.1, outside_values=np.zeros((3, mech.space.n_nodes)))

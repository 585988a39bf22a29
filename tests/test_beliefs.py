"""mechlp.model.beliefs: mixed kernels, beliefs at every history, expectations and continuation values.

Closed forms: in Lamba's USSTP (renewal kernels with persistence alpha) the belief after a history is a product of
kernel rows, ``alpha`` for a type that stayed and ``1 - alpha`` for one that moved, and the period-t marginal is
the prior times the t-1 step kernel, whose diagonal is ``(1 + (2 alpha - 1)^n) / 2``. Constant flows have the
geometric continuation value. Exact and float arithmetic give the same numbers.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.model.beliefs import (
    continuation_adjoint,
    continuation_values,
    expectation,
    expected_continuation,
    independent_product,
    interim_expectation,
    joint_beliefs,
    joint_transition,
    marginal_beliefs,
    mixed_kernels,
    next_marginals,
    others_beliefs,
    reach_probabilities,
)
from mechlp.model.environment import Agent, Environment, bilateral_trade, renewal_matrix
from mechlp.model.exact import Numbers, Rational
from mechlp.model.spaces import HistoryTree, MarkovSpace, StateSpace, TreeWithTail

ALPHA = 0.7


def _path(k: int, h: int) -> list[int]:
    """Profiles leading to tree history ``h``, oldest first (history g + 1 follows node g)."""
    out = []
    while h > 0:
        out.append((h - 1) % k)
        h = (h - 1) // k
    return out[::-1]


def random_env(seed: int, counts=(2, 3, 2), action_dependent: int | None = 2) -> Environment:
    """Random kernels, priors and valuations; agent ``action_dependent`` has one kernel per action (2 actions)."""
    rng = np.random.default_rng(seed)

    def dist(*shape):
        m = rng.uniform(0.05, 1.0, size=shape)
        return m / m.sum(axis=-1, keepdims=True)

    agents = [
        Agent(
            f"a{j}",
            [f"t{t}" for t in range(c)],
            dist(c),
            dist(2, c, c) if j == action_dependent else dist(c, c),
            rng.normal(size=(c, 2)),
        )
        for j, c in enumerate(counts)
    ]
    return Environment(agents, ["x", "y"], 0.9, "infinite")


# ---------------------------------------------------------------------------------------------- closed forms
def test_usstp_beliefs_are_products_of_renewal_rows():
    env = lamba_usstp(ALPHA, 0.95, horizon=4)
    tree = HistoryTree(env)
    k = env.n_profiles
    types = env.profile_types()
    bel = joint_beliefs(tree)
    assert bel.shape == (tree.n_hist, k)
    np.testing.assert_array_equal(bel[0], np.full(k, 0.25))
    for h in range(1, tree.n_hist):
        prev = types[_path(k, h)[-1]]
        stay = types == prev[None, :]  # (K, 2): which agents keep last period's type
        expected = np.where(stay, ALPHA, 1 - ALPHA).prod(axis=1)
        np.testing.assert_allclose(bel[h], expected, rtol=0, atol=1e-15)
    margs = marginal_beliefs(tree)
    for j in range(2):
        np.testing.assert_allclose(margs[j], bel.reshape(tree.n_hist, 2, 2).sum(axis=2 - j), atol=1e-15)
    # the Markov space holds the same beliefs: state 1 + s is "last profile s"
    markov = joint_beliefs(MarkovSpace(lamba_usstp(ALPHA, 0.95)))
    np.testing.assert_allclose(markov[1:], bel[1 : 1 + k], atol=0)


def test_usstp_reach_probabilities_and_period_marginals():
    env = bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.2, 0.8], [0.6, 0.4], *[renewal_matrix(2, ALPHA)] * 2, 0.95, 4)
    tree = HistoryTree(env)
    k = env.n_profiles
    types = env.profile_types()
    prior = np.array([[0.2, 0.8], [0.6, 0.4]])
    reach = reach_probabilities(tree)
    for h in range(tree.n_hist):  # the probability of a path: prior of its first profile, then stays and moves
        path = _path(k, h)
        p = 1.0
        for t, s in enumerate(path):
            if t == 0:
                p *= prior[0, types[s, 0]] * prior[1, types[s, 1]]
            else:
                stay = types[s] == types[path[t - 1]]
                p *= np.where(stay, ALPHA, 1 - ALPHA).prod()
        assert reach[h] == pytest.approx(p, abs=1e-15)
    margs = marginal_beliefs(tree)
    for t, (a, b) in enumerate(tree.levels()):  # period t + 1 marginal = prior F^t, F^t diagonal (1 + (2a-1)^t)/2
        stay = (1 + (2 * ALPHA - 1) ** t) / 2
        ft = np.array([[stay, 1 - stay], [1 - stay, stay]])
        for j in range(2):
            np.testing.assert_allclose(reach[a:b] @ margs[j][a:b], prior[j] @ ft, atol=1e-14)
    # a tail state gets the probability of its profile in the tree's last period
    tail_env = lamba_usstp(ALPHA, 0.95)
    tail = TreeWithTail(tail_env, 3)
    r = reach_probabilities(tail)
    a, b = tail.levels()[-1]
    last = r[a:b, None] * joint_beliefs(tail, hists=np.arange(a, b))
    np.testing.assert_allclose(r[tail.tail_hists], last.sum(axis=0), atol=1e-15)
    assert r[tail.tail_hists].sum() == pytest.approx(1.0, abs=1e-14)


def test_usstp_exact_beliefs_are_the_decimals_as_written():
    env = lamba_usstp(ALPHA, 0.95, horizon=3)
    tree = HistoryTree(env)
    nums = Numbers(env, exact=True)
    bel = joint_beliefs(tree, nums)
    assert bel.dtype == object and all(isinstance(v, Rational) for v in bel.reshape(-1))
    assert set(bel[1:].reshape(-1)) == {Fraction(49, 100), Fraction(21, 100), Fraction(9, 100)}
    assert all(sum(row) == 1 for row in bel)
    np.testing.assert_allclose(bel.astype(float), joint_beliefs(tree), atol=1e-15)
    reach = reach_probabilities(tree, nums)
    assert sum(reach[a:b].sum() for a, b in tree.levels()[2:]) == 1  # exactly one history of period 3 occurs


# ---------------------------------------------------------------------------------------------- random models
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_three_agent_beliefs_sum_to_one_and_others_are_marginals(seed):
    env = random_env(seed)
    assert env.action_dependent
    for space in (HistoryTree(env, 3), MarkovSpace(env), TreeWithTail(env, 2)):
        joint = joint_beliefs(space)
        np.testing.assert_allclose(joint.sum(axis=1), 1.0, rtol=0, atol=1e-14)
        full = joint.reshape(space.n_hist, *env.type_counts)
        for i in range(env.n_agents):
            m = marginal_beliefs(space)[i]
            np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-14)
            others = [j for j in range(env.n_agents) if j != i]
            np.testing.assert_allclose(m, full.sum(axis=tuple(1 + j for j in others)), atol=1e-14)
            ob = others_beliefs(space, i)
            assert ob.shape == (space.n_hist, env.others_count(i))
            np.testing.assert_allclose(ob, full.sum(axis=1 + i).reshape(space.n_hist, -1), atol=1e-14)
            per = others_beliefs(space, i, per_profile=True)  # column s: P(others' part of s | h)
            prof = env.profile_index(i, np.arange(env.agents[i].n_types)[:, None], np.arange(ob.shape[1])[None, :])
            for t in range(env.agents[i].n_types):
                np.testing.assert_array_equal(per[:, prof[t]], ob)
        hists = np.array([0, space.n_hist - 1, 1])
        np.testing.assert_array_equal(joint_beliefs(space, hists=hists), joint[hists])


def test_random_model_exact_and_float_agree():
    env = random_env(4)
    tree = HistoryTree(env, 2)
    nums = Numbers(env, exact=True)
    bel = joint_beliefs(tree, nums)
    assert all(sum(row) == 1 for row in bel)  # exact distributions (Numbers makes the inputs sum to 1)
    np.testing.assert_allclose(bel.astype(float), joint_beliefs(tree), atol=1e-12)
    for i in range(env.n_agents):
        ob = others_beliefs(tree, i, nums)
        full = bel.reshape(tree.n_hist, *env.type_counts)
        np.testing.assert_array_equal(ob, full.sum(axis=1 + i).reshape(tree.n_hist, -1))  # exactly
    flows = np.random.default_rng(0).integers(-3, 4, size=(2, tree.n_nodes))
    exact = continuation_values(tree, flows, nums)
    np.testing.assert_allclose(exact.astype(float), continuation_values(tree, flows.astype(float)), atol=1e-12)


def test_action_dependent_kernel_follows_the_allocated_action():
    # agent "l" (learning) keeps its type after action "stay" and switches after "move"; the allocation picks
    # "move" exactly when agent "o" reports its high type
    stay, move = np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])
    learner = Agent("l", ["l0", "l1"], [0.5, 0.5], np.stack([stay, move]), np.zeros((2, 2)))
    other = Agent("o", ["o0", "o1"], [0.9, 0.1], [[0.6, 0.4], [0.3, 0.7]], [[1.0, 0.0], [0.0, 1.0]])
    env = Environment([learner, other], ["stay", "move"], 0.5, "infinite")
    np.testing.assert_array_equal(env.actions_by_profile(), [0, 1, 0, 1])  # profile (l, o): o1 -> move
    g = mixed_kernels(env)
    for s in range(4):
        np.testing.assert_array_equal(g[0][s], move if s % 2 else stay)
        np.testing.assert_array_equal(g[1][s], other.transition)  # action-free: F itself
    nxt = next_marginals(env)
    np.testing.assert_array_equal(nxt[0], [[1, 0], [0, 1], [0, 1], [1, 0]])  # l's next type is known
    q = joint_transition(env)
    np.testing.assert_allclose(q[1], [0, 0, 0.3, 0.7])  # from (l0, o1): move -> l1, o from o1
    bel = joint_beliefs(MarkovSpace(env))
    np.testing.assert_array_equal(bel[0], [0.45, 0.05, 0.45, 0.05])
    np.testing.assert_array_equal(bel[1:], q)
    # deviation: true type l1 reported l0 at (l0, o1): the learner moves on from l1 under "move", to l0
    dev = joint_transition(env, deviator=0, true_type=1)
    np.testing.assert_allclose(dev[1], [0.3, 0.7, 0, 0])
    np.testing.assert_array_equal(dev[3], q[3])  # at the true report nothing changes


def test_randomised_allocation_mixes_action_free_kernels_exactly():
    rng = np.random.default_rng(5)
    f = rng.uniform(0.1, 1, size=(2, 3, 3))
    f /= f.sum(axis=-1, keepdims=True)
    agents = [Agent("a", ["1", "2", "3"], [0.2, 0.3, 0.5], f[0], rng.normal(size=(3, 2)))]
    agents.append(Agent("b", ["1", "2", "3"], [0.4, 0.4, 0.2], f[1], rng.normal(size=(3, 2))))
    alloc = rng.uniform(size=(9, 2))
    env = Environment(agents, ["x", "y"], 0.8, "infinite", allocation=alloc / alloc.sum(axis=1, keepdims=True))
    q = joint_transition(env)
    types = env.profile_types()
    np.testing.assert_array_equal(q, np.einsum("sx,sy->sxy", f[0][types[:, 0]], f[1][types[:, 1]]).reshape(9, 9))


def test_randomised_allocation_with_action_dependent_kernels_is_refused():
    env = random_env(0, counts=(2, 2), action_dependent=1)
    object.__setattr__(env, "allocations", np.full((1, 4, 2), 0.5))  # bypass the constructor's own check
    with pytest.raises(NotImplementedError, match="agent 'a1' has an action-dependent kernel while the allocation"):
        mixed_kernels(env)


def test_independent_product_orders_profiles_like_the_environment():
    env = random_env(1)
    margs = [ag.prior[None, :] for ag in env.agents]
    np.testing.assert_allclose(independent_product(margs, 1)[0], env.prior_profile(), atol=0)
    np.testing.assert_array_equal(independent_product([], 3), np.ones((3, 1)))


# ---------------------------------------------------------------------------------------------- expectations
def test_interim_expectation_and_expectation_on_the_usstp():
    env = lamba_usstp(ALPHA, 0.95)
    space = MarkovSpace(env)
    values = np.tile(np.arange(4.0), space.n_hist)  # X(h, profile) = profile index = 2 * buyer + seller
    # after (v_L, c_L): P(c_L) = alpha, so the buyer's interim value of type v is 2 v + (1 - alpha)
    ub = interim_expectation(space, 0, values)
    np.testing.assert_allclose(ub[1], [1 - ALPHA, 2 + 1 - ALPHA], atol=1e-15)
    np.testing.assert_allclose(ub[0], [0.5, 2.5], atol=1e-15)
    us = interim_expectation(space, 1, values)
    np.testing.assert_allclose(us[1], [2 * (1 - ALPHA), 2 * (1 - ALPHA) + 1], atol=1e-15)
    ex = expectation(space, values)
    np.testing.assert_allclose(ex[1], 3 * (1 - ALPHA), atol=1e-15)
    np.testing.assert_allclose(expectation(space, np.stack([values, -values])), np.stack([ex, -ex]), atol=0)


def test_expected_continuation_is_zero_where_the_game_ends():
    env = lamba_usstp(ALPHA, 0.95, horizon=2)
    tree = HistoryTree(env)
    values = np.ones(tree.n_nodes)
    cont = expected_continuation(tree, values)
    np.testing.assert_allclose(cont[:4], 1.0, atol=1e-15)  # root nodes: children exist, beliefs sum to 1
    np.testing.assert_array_equal(cont[4:], 0.0)
    nodes = np.array([5, 0])
    np.testing.assert_array_equal(expected_continuation(tree, np.stack([values, 2 * values]), nodes=nodes)[1], [0, 2])


# ---------------------------------------------------------------------------------------------- continuation
@pytest.mark.parametrize("horizon", [1, 3])
def test_constant_flow_has_the_geometric_value(horizon):
    delta = 0.95
    env = lamba_usstp(ALPHA, delta, horizon=horizon)
    tree = HistoryTree(env)
    v = continuation_values(tree, np.ones(tree.n_nodes))[0]
    period = tree.hist_period[tree.node_hist]
    np.testing.assert_allclose(v, (1 - delta ** (horizon - period + 1)) / (1 - delta), atol=1e-13)
    inf = lamba_usstp(ALPHA, delta)
    for space in (MarkovSpace(inf), TreeWithTail(inf, horizon)):
        np.testing.assert_allclose(continuation_values(space, np.ones(space.n_nodes))[0], 20.0, atol=1e-12)
        exact = continuation_values(space, np.ones((1, space.n_nodes), dtype=int), Numbers(inf, exact=True))
        assert set(exact.reshape(-1)) == {Fraction(20)}  # 1 / (1 - 19/20) exactly


def test_continuation_recursion_holds_node_by_node():
    env = random_env(3)
    for space in (HistoryTree(env, 3), MarkovSpace(env), TreeWithTail(env, 2)):
        flows = np.random.default_rng(1).normal(size=(2, space.n_nodes))
        v = continuation_values(space, flows)
        np.testing.assert_allclose(v, flows + env.discount * expected_continuation(space, v), atol=1e-12)


class _GenericSpace(StateSpace):
    """A Markov space seen through the base class only (exercises the generic sparse solve)."""

    kind = "generic"

    def __init__(self, markov: MarkovSpace):
        self.env = markov.env
        self.n_hist = markov.n_hist
        self.hist_prev_profile = markov.hist_prev_profile
        self.child_hist = markov.child_hist
        self.hist_period = markov.hist_period


def test_generic_space_uses_a_sparse_solve_and_exact_mode_refuses_it():
    env = random_env(2)
    markov = MarkovSpace(env)
    generic = _GenericSpace(markov)
    flows = np.random.default_rng(2).normal(size=(3, markov.n_nodes))
    np.testing.assert_allclose(continuation_values(generic, flows), continuation_values(markov, flows), atol=1e-12)
    with pytest.raises(TypeError, match="exact continuation values need a HistoryTree, MarkovSpace or TreeWithTail"):
        continuation_values(generic, flows, Numbers(env, exact=True))


def test_reach_probabilities_refuse_a_markov_space():
    with pytest.raises(TypeError, match="reach probabilities need a HistoryTree or a TreeWithTail, got MarkovSpace"):
        reach_probabilities(MarkovSpace(lamba_usstp()))


# ---------------------------------------------------------------------------------------------- adjoint
def _adjoint_gap(space, nums, rng, m=2):
    """``w . V(f) - c(w) . f`` for random integer flows and weights (zero when the adjoint is the transpose)."""
    f = rng.integers(-5, 6, size=(m, space.n_nodes))
    w = rng.integers(-5, 6, size=(m, space.n_nodes))
    if nums.exact:
        f, w = f.astype(object) * Fraction(1), w.astype(object) * Fraction(1)
    else:
        f, w = f.astype(float), w.astype(float)
    lhs = (w * continuation_values(space, f, nums)).sum(axis=1)
    rhs = (continuation_adjoint(space, w, nums) * f).sum(axis=1)
    return lhs - rhs, np.abs(lhs).max()


@pytest.mark.parametrize("kind", ["tree", "markov", "tail"])
def test_continuation_adjoint_is_the_transpose_exactly(kind):
    # sum_g w(g) V(g) = sum_g c(g) f(g) for every flow: exactly in rationals (decimal model numbers)
    env = lamba_usstp(0.9, 0.3)
    rng = np.random.default_rng(5)
    space = {"tree": HistoryTree(env, 3), "markov": MarkovSpace(env), "tail": TreeWithTail(env, 2)}[kind]
    gap, _ = _adjoint_gap(space, Numbers(env, exact=True), rng)
    assert all(g == 0 for g in gap)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["tree", "markov", "tail", "generic"])
def test_continuation_adjoint_on_random_models_with_action_dependent_kernels(seed, kind):
    env = random_env(seed)
    space = {
        "tree": lambda: HistoryTree(env, 3),
        "markov": lambda: MarkovSpace(env),
        "tail": lambda: TreeWithTail(env, 1),
        "generic": lambda: _GenericSpace(MarkovSpace(env)),
    }[kind]()
    gap, scale = _adjoint_gap(space, Numbers(env, exact=False), np.random.default_rng(seed))
    assert np.abs(gap).max() <= 1e-10 * scale


def test_continuation_adjoint_of_a_single_weight_is_the_discounted_reach_below_it():
    # weight 1 on the root's node 0: the coefficient of a node at depth d below it is delta^d times the
    # probability of the path from node 0 to it (renewal rows: alpha or 1 - alpha per agent per step)
    env = lamba_usstp(ALPHA, 0.5)
    tree = HistoryTree(env, 3)
    w = np.zeros(tree.n_nodes)
    w[0] = 1.0
    c = continuation_adjoint(tree, w)
    assert c[0] == 1.0 and np.count_nonzero(c[1:4]) == 0  # other root nodes are not reached from node 0
    # node 0 is profile (v_L, c_L); its child history is 1, whose node 4 + 0 is (v_L, c_L) again: both stay
    assert c[4] == pytest.approx(0.5 * ALPHA * ALPHA)
    assert c[4 + 3] == pytest.approx(0.5 * (1 - ALPHA) * (1 - ALPHA))
    assert c[(1 * 4 + 1) * 4] == pytest.approx(0.25 * ALPHA**4)  # two more steps of staying
    assert c.sum() == pytest.approx(1 + 0.5 + 0.25)

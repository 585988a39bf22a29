"""Validation and basic behaviour of mechlp.model.environment (Agent, Environment, bilateral_trade)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechlp.catalog.examples import lamba_usstp
from mechlp.model.beliefs import joint_beliefs
from mechlp.model.environment import INFINITE, Agent, Environment, bilateral_trade, renewal_matrix
from mechlp.model.spaces import MarkovSpace

EYE2 = [[1.0, 0.0], [0.0, 1.0]]
VAL2 = [[0.0, 0.0], [0.0, 1.0]]  # two types x two actions
HALF = [0.5, 0.5]


def agent(name: str = "buyer", **kw) -> Agent:
    args = dict(types=["a", "b"], prior=HALF, transition=EYE2, valuation=VAL2, values=None, role=None)
    args.update(kw)
    return Agent(name, **args)


def env(agents=None, **kw) -> Environment:
    args = dict(actions=("no_trade", "trade"), discount=0.9, horizon="infinite")
    args.update(kw)
    if agents is None:
        agents = [agent("buyer"), agent("seller")]
    return Environment(agents, **args)


def trade(**kw) -> Environment:
    args = dict(
        buyer_values=[0.05, 1.0],
        seller_costs=[0.0, 0.95],
        buyer_prior=HALF,
        seller_prior=HALF,
        buyer_transition=EYE2,
        seller_transition=EYE2,
        discount=0.9,
    )
    args.update(kw)
    return bilateral_trade(**args)


# ---------------------------------------------------------------------------------------------- Agent
def test_agent_name_must_be_nonempty_string():
    with pytest.raises(TypeError, match="agent name must be a non-empty string, got ''"):
        agent("")


def test_agent_types_must_be_a_sequence_not_a_string():
    with pytest.raises(TypeError, match="types of agent 'buyer' must be a sequence of labels, got str"):
        agent(types="ab")


def test_agent_empty_types():
    with pytest.raises(ValueError, match="types of agent 'buyer' is empty; an agent needs at least one type"):
        agent(types=[], prior=[], transition=np.zeros((0, 0)), valuation=np.zeros((0, 2)))


def test_agent_duplicate_labels():
    with pytest.raises(ValueError, match="types of agent 'buyer': label 'a' at index 1 duplicates index 0"):
        agent(types=["a", "a"])


def test_agent_prior_wrong_length():
    with pytest.raises(ValueError, match=r"prior of agent 'buyer' has shape \(3,\); expected \(2,\)"):
        agent(prior=[0.2, 0.3, 0.5])


def test_agent_prior_not_summing_to_one():
    with pytest.raises(ValueError, match="prior of agent 'buyer' sums to 0.9, not 1"):
        agent(prior=[0.5, 0.4])


def test_agent_prior_string_is_type_error():
    with pytest.raises(TypeError, match="prior of agent 'buyer' must be numeric, got the string"):
        agent(prior="0.5 0.5")


def test_agent_prior_non_numeric_is_type_error():
    with pytest.raises(TypeError, match="prior of agent 'buyer' must be numeric"):
        agent(prior=[0.5, object()])


def test_agent_prior_infinite_entry():
    with pytest.raises(ValueError, match="prior of agent 'buyer' has a non-finite entry at index 1"):
        agent(prior=[0.5, math.inf])


def test_agent_non_square_transition():
    with pytest.raises(ValueError, match=r"transition of agent 'buyer' has shape \(2, 3\); expected \(2, 2\)"):
        agent(transition=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_agent_transition_row_not_summing_to_one():
    with pytest.raises(ValueError, match="transition row 1 of agent 'buyer' sums to 0.97, not 1"):
        agent(transition=[[0.5, 0.5], [0.5, 0.47]])


def test_agent_transition_negative_probability():
    with pytest.raises(
        ValueError, match="transition row 0 of agent 'buyer' has a negative probability -0.1 at index 0"
    ):
        agent(transition=[[-0.1, 1.1], [0.5, 0.5]])


def test_agent_transition_nan_probability():
    with pytest.raises(ValueError, match="transition row 1 of agent 'buyer' has NaN at index 1"):
        agent(transition=[[0.5, 0.5], [0.5, math.nan]])


def test_agent_transition_stack_wrong_shape():
    with pytest.raises(
        ValueError, match=r"transition of agent 'buyer' has shape \(2, 3, 3\); expected \(n_actions, 2, 2\)"
    ):
        agent(transition=np.ones((2, 3, 3)) / 3)


def test_agent_transition_stack_row_not_summing_to_one():
    kern = np.array([EYE2, [[0.5, 0.5], [0.6, 0.6]]])
    with pytest.raises(ValueError, match="transition row 1 for action 1 of agent 'buyer' sums to 1.2, not 1"):
        agent(transition=kern)


def test_agent_transition_wrong_number_of_dimensions():
    with pytest.raises(ValueError, match="transition of agent 'buyer' has 1 dimensions; expected a"):
        agent(transition=[0.5, 0.5])


def test_agent_valuation_wrong_shape():
    with pytest.raises(ValueError, match=r"valuation of agent 'buyer' has shape \(3, 2\); expected \(2, n_actions\)"):
        agent(valuation=np.zeros((3, 2)))


def test_agent_valuation_not_finite():
    with pytest.raises(ValueError, match=r"valuation of agent 'buyer' is not finite at \(type, action\) \("):
        agent(valuation=[[0.0, 0.0], [math.nan, 1.0]])


def test_agent_valuation_not_finite_names_plain_index():
    with pytest.raises(ValueError, match=r"valuation of agent 'buyer' is not finite at \(type, action\) \(1, 0\)"):
        agent(valuation=[[0.0, 0.0], [math.nan, 1.0]])


def test_agent_values_wrong_shape():
    with pytest.raises(ValueError, match=r"values of agent 'buyer' has shape \(3,\); expected \(2,\)"):
        agent(values=[1.0, 2.0, 3.0])


def test_agent_values_not_finite():
    with pytest.raises(ValueError, match="values of agent 'buyer' is not finite at index 1"):
        agent(values=[1.0, math.inf])


def test_agent_unsorted_values():
    with pytest.raises(
        ValueError,
        match=r"values of agent 'buyer' must be strictly increasing: values\[1\] = 0.5 < values\[0\] = 1",
    ):
        agent(values=[1.0, 0.5])


def test_agent_duplicate_values():
    with pytest.raises(
        ValueError,
        match=r"values of agent 'buyer' must be strictly increasing: values\[1\] = 1 duplicates values\[0\]",
    ):
        agent(values=[1.0, 1.0])


def test_agent_arrays_are_read_only():
    ag = agent(values=[0.0, 1.0])
    for arr in (ag.prior, ag.transition, ag.valuation, ag.values):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 7.0


def test_agent_does_not_alias_caller_arrays():
    base = np.array([[0.7, 0.3], [0.3, 0.7]])
    prior = np.array([0.5, 0.5])
    ag = agent(prior=prior, transition=base[:])
    assert prior.flags.writeable  # the caller's array is not frozen
    base[0] = [2.0, -1.0]  # mutating the caller's array must not change the validated kernel
    np.testing.assert_array_equal(ag.transition, [[0.7, 0.3], [0.3, 0.7]])


@pytest.mark.parametrize("n_types", [2, 3, 4])
@pytest.mark.parametrize("persistence", [0.5, 0.7, 0.9, 1.0])
def test_is_fosd_true_for_renewal_kernels_with_persistence_at_least_half(n_types, persistence):
    ag = agent(
        types=[f"t{j}" for j in range(n_types)],
        prior=np.full(n_types, 1.0 / n_types),
        transition=renewal_matrix(n_types, persistence),
        valuation=np.zeros((n_types, 2)),
    )
    assert ag.is_fosd()


def test_is_fosd_false_for_anti_persistent_two_type_kernel():
    assert not agent(transition=renewal_matrix(2, 0.2)).is_fosd()


def test_is_fosd_checks_every_action_layer():
    kern = np.stack([renewal_matrix(2, 0.8), renewal_matrix(2, 0.2)])
    assert not agent(transition=kern).is_fosd()
    assert agent(transition=kern[:1].repeat(2, axis=0)).is_fosd()


# ---------------------------------------------------------------------------------------------- Environment
def test_environment_empty_agents():
    with pytest.raises(ValueError, match="agents is empty; an environment needs at least one agent"):
        env(agents=[])


def test_environment_agent_of_wrong_type():
    with pytest.raises(TypeError, match=r"agents\[1\] must be an Agent, got str"):
        env(agents=[agent("buyer"), "seller"])


def test_environment_duplicate_agent_names():
    with pytest.raises(ValueError, match=r"agents\[1\] has the name 'x' of agents\[0\]; names must differ"):
        env(agents=[agent("x"), agent("x")])


def test_environment_actions_must_be_a_sequence():
    with pytest.raises(TypeError, match="actions must be a sequence of labels, got str"):
        env(actions="ab")


def test_environment_empty_actions():
    with pytest.raises(ValueError, match="actions is empty; an environment needs at least one action"):
        env(actions=())


def test_environment_duplicate_actions():
    with pytest.raises(ValueError, match=r"actions\[1\] = 'go' duplicates an earlier action"):
        env(actions=("go", "go"))


def test_environment_valuation_columns_must_match_actions():
    with pytest.raises(ValueError, match=r"valuation of agent 'buyer' has 2 columns; expected 3, one per action"):
        env(actions=("a", "b", "c"))


def test_environment_action_layer_count_mismatch():
    three_layers = np.stack([np.eye(2)] * 3)
    with pytest.raises(ValueError, match="transition of agent 'buyer' has 3 action layers; expected 2, one per action"):
        env(agents=[agent("buyer", transition=three_layers), agent("seller")])


@pytest.mark.parametrize("discount", [1.0, 1.5])
def test_environment_discount_outside_unit_interval_for_infinite_horizon(discount):
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\) for an infinite horizon, got "):
        env(discount=discount)


def test_environment_discount_one_accepted_for_finite_horizon():
    e = env(discount=1.0, horizon=3)
    assert e.discount == 1.0
    assert e.horizon == 3 and not e.infinite


def test_environment_negative_discount():
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\] for a finite horizon, got -0.1"):
        env(discount=-0.1, horizon=2)
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\) for an infinite horizon, got -0.1"):
        env(discount=-0.1)


def test_environment_discount_above_one_for_finite_horizon():
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\] for a finite horizon, got 1.01"):
        env(discount=1.01, horizon=2)


def test_environment_discount_nan():
    with pytest.raises(ValueError, match="discount must be finite, got nan"):
        env(discount=math.nan)


@pytest.mark.parametrize("discount", ["0.9", True, None])
def test_environment_discount_not_a_number(discount):
    with pytest.raises(TypeError, match="discount must be a number, got "):
        env(discount=discount)


def test_environment_horizon_zero():
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        env(horizon=0)


def test_environment_horizon_forever():
    with pytest.raises(ValueError, match="horizon must be a positive integer or 'infinite', got 'forever'"):
        env(horizon="forever")


def test_environment_horizon_non_integer_float():
    with pytest.raises(ValueError, match="horizon must be a positive integer or 'infinite', got 2.5"):
        env(horizon=2.5)


def test_environment_horizon_bool():
    with pytest.raises(TypeError, match="horizon must be a positive integer or 'infinite', got a bool"):
        env(horizon=True)


def test_environment_horizon_other_type():
    with pytest.raises(TypeError, match="horizon must be a positive integer or 'infinite', got list"):
        env(horizon=[3])


@pytest.mark.parametrize(
    ("horizon", "expected"),
    [("infinite", INFINITE), ("Inf", INFINITE), (math.inf, INFINITE), (4, 4), (4.0, 4), (np.int64(2), 2)],
)
def test_environment_horizon_accepted_forms(horizon, expected):
    e = env(horizon=horizon)
    assert e.horizon == expected


def test_environment_unknown_allocation_rule():
    rules = r"'efficient' \(or 'efficient_dynamic', 'efficient_myopic'\)"
    with pytest.raises(ValueError, match=rf"allocation must be {rules} or a probability table, got 'fair'"):
        env(allocation="fair")


def test_environment_allocation_wrong_shape():
    with pytest.raises(ValueError, match=r"allocation has shape \(4, 3\); expected \(4, 2\)"):
        env(allocation=np.full((4, 3), 1.0 / 3))


def test_environment_allocation_row_not_summing_to_one():
    alloc = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.4], [1.0, 0.0]])
    with pytest.raises(
        ValueError,
        match=r"allocation row 2 \(profile \{'buyer': 'b', 'seller': 'a'\}\) sums to 0.9, not 1",
    ):
        env(allocation=alloc)


def test_environment_randomised_allocation_with_action_dependent_kernel():
    kern = np.stack([np.eye(2), renewal_matrix(2, 0.6)])
    alloc = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(
        ValueError,
        match=r"allocation row 1 \(profile \{'buyer': 'a', 'seller': 'b'\}\) randomises while a kernel "
        "depends on the action",
    ):
        env(agents=[agent("buyer", transition=kern), agent("seller")], allocation=alloc)


def test_environment_randomised_allocation_allowed_with_action_free_kernels():
    alloc = np.full((4, 2), 0.5)
    e = env(allocation=alloc)
    np.testing.assert_array_equal(e.allocation, alloc)


def test_environment_agent_index():
    e = env()
    assert e.agent_index("seller") == 1
    assert e.agent_index(0) == 0
    with pytest.raises(ValueError, match=r"no agent named 'bob'; agents are \['buyer', 'seller'\]"):
        e.agent_index("bob")
    with pytest.raises(ValueError, match="agent index 2 out of range 0..1"):
        e.agent_index(2)


def test_prior_profile_sums_to_one_and_is_a_product():
    three = dict(types=["x", "y", "z"], transition=np.eye(3), valuation=np.zeros((3, 2)))
    b = agent("buyer", prior=[0.2, 0.3, 0.5], **three)
    s = agent("seller", prior=[0.9, 0.1])
    e = env(agents=[b, s])
    joint = e.prior_profile()
    assert joint.shape == (6,)
    assert joint.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(joint.reshape(3, 2), np.outer(b.prior, s.prior), rtol=0, atol=1e-15)


def test_profile_indexing_is_c_order_over_agents():
    e = lamba_usstp()
    assert e.profile_labels(1) == {"buyer": "v_L", "seller": "c_H"}
    assert e.profile_labels(2) == {"buyer": "v_H", "seller": "c_L"}
    np.testing.assert_array_equal(e.profile_types(), [[0, 0], [0, 1], [1, 0], [1, 1]])


# ------------------------------------------------------------------------------------------ bilateral_trade
def test_bilateral_trade_values_must_be_one_dimensional():
    with pytest.raises(ValueError, match=r"buyer_values must be one-dimensional, got shape \(1, 2\)"):
        trade(buyer_values=[[0.05, 1.0]])
    with pytest.raises(ValueError, match=r"seller_costs must be one-dimensional, got shape \(\)"):
        trade(seller_costs=0.5)


def test_bilateral_trade_unsorted_values_name_the_agent():
    with pytest.raises(ValueError, match="values of agent 'seller' must be strictly increasing"):
        trade(seller_costs=[0.95, 0.0])


def test_usstp_efficient_allocation_trades_iff_value_exceeds_cost():
    e = lamba_usstp(0.7, 0.95)
    assert e.actions == ("no_trade", "trade")
    types = e.profile_types()
    v = e.agents[0].values[types[:, 0]]
    c = e.agents[1].values[types[:, 1]]
    expected = (v > c).astype(float)
    np.testing.assert_array_equal(e.allocation[:, 1], expected)
    np.testing.assert_array_equal(e.allocation[:, 0], 1.0 - expected)
    np.testing.assert_array_equal(expected, [1.0, 0.0, 1.0, 1.0])  # only (v_L, c_H) does not trade
    assert e.meta == {"kind": "bilateral_trade", "disjoint_supports": True}
    np.testing.assert_allclose(e.welfare(), [0.05, 0.0, 1.0, 0.05])


def test_tie_value_equals_cost_is_allowed_and_gives_no_trade():
    e = trade(buyer_values=[0.5, 1.0], seller_costs=[0.0, 0.5])
    tie = 1  # profile (v=0.5, c=0.5)
    assert e.profile_labels(tie) == {"buyer": "v1", "seller": "c2"}
    np.testing.assert_array_equal(e.allocation[tie], [1.0, 0.0])
    np.testing.assert_array_equal(e.allocation[:, 1], [1.0, 0.0, 1.0, 1.0])
    assert e.meta["disjoint_supports"] is False


def test_bilateral_trade_defaults_match_docstring():
    e = trade()
    buyer, seller = e.agents
    assert buyer.types == ("v1", "v2") and seller.types == ("c1", "c2")
    assert (buyer.name, seller.name) == ("buyer", "seller")
    assert (buyer.role, seller.role) == ("buyer", "seller")
    assert e.horizon == INFINITE and e.infinite
    assert e.name == "bilateral_trade"
    assert e.actions == ("no_trade", "trade")
    np.testing.assert_array_equal(buyer.valuation, [[0.0, 0.05], [0.0, 1.0]])
    np.testing.assert_array_equal(seller.valuation, [[0.0, 0.0], [0.0, -0.95]])
    np.testing.assert_array_equal(buyer.values, [0.05, 1.0])
    np.testing.assert_array_equal(seller.values, [0.0, 0.95])


def test_bilateral_trade_three_types_default_labels():
    e = trade(buyer_values=[1.0, 2.0, 3.0], buyer_prior=[0.2, 0.3, 0.5], buyer_transition=np.eye(3), horizon=2)
    assert e.agents[0].types == ("v1", "v2", "v3")
    assert e.horizon == 2


def test_repr_mentions_name_agents_and_horizon():
    text = repr(lamba_usstp())
    assert "lamba_usstp" in text and "buyer[2]" in text and "T=infinite" in text


# ---------------------------------------------------------------------------------------------- property
@st.composite
def kernels(draw):
    k = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    conc = draw(st.sampled_from([0.1, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, conc), size=k), rng.dirichlet(np.full(k, conc))


@settings(max_examples=60, deadline=None)
@given(kernels(), kernels())
def test_random_dirichlet_kernels_build_and_beliefs_are_distributions(buyer_kernel, seller_kernel):
    (fb, pb), (fs, ps) = buyer_kernel, seller_kernel
    e = bilateral_trade(
        np.arange(fb.shape[0], dtype=float),
        np.arange(fs.shape[0], dtype=float) + 0.5,
        pb,
        ps,
        fb,
        fs,
        0.9,
    )
    beliefs = joint_beliefs(MarkovSpace(e))
    assert beliefs.shape == (1 + e.n_profiles, e.n_profiles)
    assert np.all(beliefs >= 0)
    np.testing.assert_allclose(beliefs.sum(axis=1), 1.0, rtol=0, atol=1e-12)

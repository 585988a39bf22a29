"""Markov spaces on the structure routes: the verifier's continuation terms computed once per profile, the ex post
witness built from the min-max mechanism (Lamba 2022, Cor. 5 and Prop. 1), and certificates over the interim rows.

The Bayesian IC slacks are compared with a reference written here with loops over states, types and profiles
(the definition of the deviation payoff, Lamba 2022, Definition 1), on random mechanisms of a non-FOSD model.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mechlp.audit.verifier import _evaluate, verify
from mechlp.model.environment import Agent, Environment
from mechlp.model.exact import Numbers
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import outside_options
from mechlp.model.spaces import MarkovSpace, distinct_continuations
from mechlp.model.transfers import balanced_transfers
from mechlp.solve import questions
from mechlp.solve.critical import interleaved_trade


def non_fosd() -> Environment:
    """Buyer with 3 types and a non-FOSD kernel, seller with 2; efficient trade."""
    values, costs = [0.2, 0.6, 1.0], [0.1, 0.7]
    buyer = Agent(
        "b",
        ["l", "m", "h"],
        [0.3, 0.3, 0.4],
        [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
        [[0.0, v] for v in values],
    )
    seller = Agent("s", ["lo", "hi"], [0.5, 0.5], [[0.3, 0.7], [0.8, 0.2]], [[0.0, -c] for c in costs])
    alloc = np.array([[0.0, 1.0] if v > c else [1.0, 0.0] for v, c in itertools.product(values, costs)])
    return Environment([buyer, seller], ["no", "yes"], 0.7, "infinite", alloc)


def reference_ic(space: MarkovSpace, x: np.ndarray, i: int, t: int, r: int) -> np.ndarray:
    """sum_m P(m|h) [U_i(h,(t,m)) - (flow_t(r,m) - x_i(h,(r,m)) + delta E_t[U_i(child(h,(r,m)))])], by loops."""
    env = space.env
    mech = Mechanism(space, x)
    u = mech.utilities()[i].reshape(space.n_hist, env.n_profiles)
    types = env.profile_types()
    kern = [ag.kernel(env.n_actions)[0] for ag in env.agents]  # action-free kernels
    val = env.agents[i].valuation
    out = np.zeros(space.n_hist)
    for h in range(space.n_hist):
        prev = space.hist_prev_profile[h]
        belief = [ag.prior if prev < 0 else kern[j][types[prev, j]] for j, ag in enumerate(env.agents)]
        for s in range(env.n_profiles):
            if types[s, i] != t:
                continue
            p_m = np.prod([belief[j][types[s, j]] for j in range(env.n_agents) if j != i])
            rep = [types[s, j] if j != i else r for j in range(env.n_agents)]
            s_r = int(np.ravel_multi_index(rep, env.type_counts))
            child = space.child_hist[h * env.n_profiles + s_r]
            cont = 0.0
            for s2 in range(env.n_profiles):
                nxt = types[s2]
                prob = kern[i][t, nxt[i]] * np.prod(
                    [kern[j][types[s, j], nxt[j]] for j in range(env.n_agents) if j != i]
                )
                cont += prob * u[child, s2]
            dev = env.allocation[s_r] @ val[t] - x[i, h * env.n_profiles + s_r] + env.discount * cont
            out[h] += p_m * (u[h, s] - dev)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_markov_ic_slacks_match_the_definition(seed):
    env = non_fosd()
    space = MarkovSpace(env)
    x = np.random.default_rng(seed).normal(size=(2, space.n_nodes))
    outside = outside_options(0.0, env)
    blocks = _evaluate(space, Numbers(env, exact=False), x, "bayesian", "interim", "none", outside)["ic"]
    assert len(blocks) == 3 * 2 + 2 * 1
    for blk in blocks:
        i, t, r = blk.key
        np.testing.assert_allclose(blk.slack, reference_ic(space, x, i, t, r), rtol=0, atol=1e-12)


def test_distinct_continuations():
    env = non_fosd()
    space = MarkovSpace(env)
    nodes = np.arange(space.n_nodes)
    keys, inverse = distinct_continuations(space, nodes)
    assert keys.size == env.n_profiles  # a Markov state's child is the state of its profile
    assert np.array_equal(keys[inverse], space.child_hist * env.n_profiles + nodes % env.n_profiles)
    with pytest.raises(ValueError, match="every node must have a continuation"):
        distinct_continuations(questions.minmax(interleaved_trade(2, horizon=2)).space, np.arange(12))


def test_balanced_transfers_keep_ic_and_balance_every_node():
    env = interleaved_trade(3, discount=0.9, persistence=0.5)
    mm = questions.minmax(env)
    assert mm.surplus.min() > 0
    mech = mm.mechanism
    x = balanced_transfers(mm.space, mech.interim_utilities(), mech.surplus())
    assert np.abs(x.sum(axis=0)).max() < 1e-12  # sum_i x_i = 0 at every node
    witness = Mechanism(mm.space, x)
    assert np.abs(witness.surplus()).max() < 1e-12  # Pi(h) = 0: the surplus was handed out
    assert verify(witness, budget="ex_post").ok
    with pytest.raises(ValueError, match="surplus has shape"):
        balanced_transfers(mm.space, mech.interim_utilities(), mech.surplus()[:3])


def test_ex_post_feasibility_from_the_structure_agrees_with_the_lp():
    env = interleaved_trade(3, discount=0.9, persistence=0.5)
    auto = questions.feasibility(env, "ex_post")
    lp = questions.feasibility(env, "ex_post", route="lp")
    assert auto.status == lp.status == "optimal"
    assert auto.diagnosis["route"].startswith("structure: the min-max mechanism with Pi* shared equally")
    assert auto.verification.ok and auto.verification.options["budget"] == "ex_post"


@pytest.mark.parametrize("budget", ["interim", "ex_post"])
def test_markov_infeasible_from_the_structure_agrees_with_the_lp(budget):
    env = interleaved_trade(3, discount=0.3, persistence=0.5)
    auto = questions.feasibility(env, budget)
    lp = questions.feasibility(env, budget, route="lp")
    assert auto.status == lp.status == "infeasible"
    assert auto.diagnosis["route"].startswith("structure: a Farkas certificate built from the recursion's binding")
    assert auto.certificate.ok and auto.certificate.options["method"] == "structure"
    assert "solve" not in auto.timings  # no transfer LP was solved

"""Exact verification by merged subtrees: histories with identical subtrees are evaluated once.

Merging is exact (equal floats are equal rationals; beliefs depend on the last profile only), so the verdict,
every count, the worst row and the listed binding rows must be those of the unmerged evaluation, for every
question; a one-ulp change deep in the tree must split its classes and be reported where it is.
"""

from __future__ import annotations

import numpy as np
import pytest

import mechlp.audit.verifier as verifier
from mechlp.catalog.examples import lamba_usstp
from mechlp.model.environment import Agent, Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import HistoryTree, MarkovSpace, merge_identical_subtrees
from mechlp.solve import questions


def three_agents_non_fosd() -> Environment:
    """Three agents, a non-FOSD kernel, decimal numbers (exact in rationals)."""
    agents = [
        Agent("a", ["lo", "hi"], [0.3, 0.7], [[0.6, 0.4], [0.8, 0.2]], [[0.0, 0.5], [0.0, 1.0]]),
        Agent("b", ["x", "y"], [0.5, 0.5], [[0.1, 0.9], [0.7, 0.3]], [[0.0, -0.2], [0.0, -0.6]]),
        Agent("c", ["p", "q"], [0.4, 0.6], [[0.5, 0.5], [0.2, 0.8]], [[0.0, 0.1], [0.0, 0.3]]),
    ]
    alloc = np.zeros((8, 2))
    alloc[:, 1] = [1, 1, 0, 1, 1, 1, 1, 1]  # efficient: trade unless the values sum to 0 or less (lo, y, p)
    alloc[:, 0] = 1 - alloc[:, 1]
    return Environment(agents, ["no", "yes"], 0.8, 4, alloc)


def unmerged(mech: Mechanism, **question) -> verifier.Verification:
    old = verifier.MERGE_SHARE
    verifier.MERGE_SHARE = -1.0  # never merge
    try:
        return verifier.verify(mech, exact=True, **question)
    finally:
        verifier.MERGE_SHARE = old


def same_report(a: verifier.Verification, b: verifier.Verification) -> None:
    da, db = a.to_dict(), b.to_dict()
    da["options"].pop("distinct_histories", None)
    assert "distinct_histories" not in db["options"]
    assert da == db


@pytest.fixture(scope="module")
def usstp_minmax():
    return questions.minmax(lamba_usstp(0.9, 0.3), horizon=5, method="recursion")


QUESTIONS = [
    {"budget": "interim"},
    {"budget": "ex_post", "ic": "ex_post", "ir": "ex_post"},
    {"budget": "ex_ante", "ic": "local", "ir": "ex_ante"},
    {"budget": "none", "outside_option": [0.0, -0.01]},
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_merged_verdict_equals_unmerged(usstp_minmax, question):
    mech = usstp_minmax.mechanism
    merged = verifier.verify(mech, exact=True, **question)
    assert merged.options["distinct_histories"] == 1 + 4 * 4  # root + (period, last profile) per later period
    same_report(merged, unmerged(mech, **question))


def test_one_ulp_deep_splits_and_is_reported(usstp_minmax):
    mech = usstp_minmax.mechanism
    space = mech.space
    x = mech.transfers.copy()
    node = space.n_nodes - 7  # a node of the last period
    x[0, node] = np.nextafter(x[0, node], np.inf)  # the buyer pays one ulp more there
    bumped = Mechanism(space, x)
    merged = verifier.verify(bumped, exact=True, budget="none")
    # the history and its ancestors in periods 3 and 4 split off their classes (period 2 has one history each)
    assert merged.options["distinct_histories"] == 1 + 4 * 4 + 3
    same_report(merged, unmerged(bumped, budget="none"))
    x[0, node] += 1e-9  # now a violation far above the rounding of the min-max mechanism elsewhere
    worse = verifier.verify(Mechanism(space, x), exact=True, budget="none")
    same_report(worse, unmerged(Mechanism(space, x), budget="none"))
    assert worse.worst["ir"].history == node // 4  # named at its own history, not at a class representative
    assert worse.worst["ir"].where == space.describe_history(node // 4)


def test_three_agents_non_fosd_merged_equals_unmerged():
    env = three_agents_non_fosd()
    mm = questions.minmax(env, method="lp")
    for question in ({"budget": "interim"}, {"budget": "ex_post", "ic": "ex_post"}):
        merged = verifier.verify(mm.mechanism, exact=True, **question)
        assert merged.options["distinct_histories"] < mm.space.n_hist
        same_report(merged, unmerged(mm.mechanism, **question))


def test_classes_carry_identical_subtrees(usstp_minmax):
    space = usstp_minmax.space
    k = space.env.n_profiles
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 2, size=(space.n_nodes, 1))  # random 0/1 data: some subtrees coincide
    merged = merge_identical_subtrees(space, keys)
    cls = merged.classes
    # same class => same period, same last profile, same node keys, children in the same classes
    for c in range(merged.n_hist):
        members = np.flatnonzero(cls == c)
        assert np.unique(space.hist_period[members]).size == 1
        assert np.unique(space.hist_prev_profile[members]).size == 1
        nodes = members[:, None] * k + np.arange(k)
        assert (keys[nodes, 0] == keys[nodes[:1], 0]).all()
        kids = space.child_hist[nodes]
        if (kids >= 0).all():
            assert (cls[kids] == cls[kids[:1]]).all()
    # and different classes in one period differ somewhere (the merge is the coarsest)
    rep = merged.representative
    assert (cls[rep] == np.arange(merged.n_hist)).all()


def test_random_transfers_are_not_merged():
    env = lamba_usstp(0.9, 0.3)
    space = HistoryTree(env, 4)
    x = np.random.default_rng(0).normal(size=(2, space.n_nodes))
    v = verifier.verify(Mechanism(space, x), exact=True, budget="interim")
    assert "distinct_histories" not in v.options  # nothing merged: every history evaluated


def test_merge_validation():
    env = lamba_usstp(0.9, 0.3)
    space = HistoryTree(env, 3)
    with pytest.raises(TypeError, match="tree must be a HistoryTree"):
        merge_identical_subtrees(MarkovSpace(lamba_usstp(0.9, 0.3)), np.zeros((20, 1), int))
    with pytest.raises(ValueError, match="node_keys must be an integer array of shape"):
        merge_identical_subtrees(space, np.zeros((space.n_nodes, 1)))
    with pytest.raises(ValueError, match="node_keys must be an integer array of shape"):
        merge_identical_subtrees(space, np.zeros((3, 1), int))


def test_verify_restricted_to_histories_partitions_the_rows(usstp_minmax):
    mech = usstp_minmax.mechanism
    n = mech.space.n_hist
    full = verifier.verify(mech, budget="interim")
    top = verifier.verify(mech, budget="interim", histories=np.arange(5))
    rest = verifier.verify(mech, budget="interim", histories=np.arange(5, n))
    for fam in full.n_rows:
        assert top.n_rows[fam] + rest.n_rows[fam] == full.n_rows[fam]
        assert max(top.max_violation[fam], rest.max_violation[fam]) == full.max_violation[fam]
        assert top.n_binding[fam] + rest.n_binding[fam] == full.n_binding[fam]
    assert all(v.history < 5 for rows in top.binding.values() for v in rows)
    assert top.worst["ic"].history < 5 <= rest.worst["ic"].history
    with pytest.raises(ValueError, match="histories must be in 0..340"):
        verifier.verify(mech, histories=[n])
    with pytest.raises(TypeError, match="histories must be integer history indices"):
        verifier.verify(mech, histories=[1.5])

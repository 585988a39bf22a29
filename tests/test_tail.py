"""Tree with a Markov tail (docs/design.md section 5.2, form 3): indexing, recursion, LP, verification, certificates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mechlp.audit.certfile import certificate_payload, check_certificate
from mechlp.audit.verifier import verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.model.beliefs import continuation_values, joint_transition, reach_probabilities
from mechlp.model.exact import Numbers, to_fractions
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import MarkovSpace, TreeWithTail, estimate_tail_size, make_space
from mechlp.solve import questions as design

ENV = lamba_usstp(0.7, 0.95)


@pytest.fixture(scope="module")
def markov():
    return design.minmax(ENV)


def test_indexing_and_descriptions():
    space = TreeWithTail(ENV, 2)
    k = 4
    assert (space.n_tree, space.n_hist, space.kind) == (5, 9, "tail")
    np.testing.assert_array_equal(space.tail_hists, [5, 6, 7, 8])
    # root's nodes lead to the period-2 histories, every later node to the tail state of its own profile
    np.testing.assert_array_equal(space.child_hist[:k], [1, 2, 3, 4])
    np.testing.assert_array_equal(space.child_hist[k:], 5 + np.tile(np.arange(k), space.n_hist - 1))
    np.testing.assert_array_equal(space.hist_prev_profile, [-1, 0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_array_equal(space.hist_period, [1, 2, 2, 2, 2, 3, 3, 3, 3])
    assert space.describe_history(0) == "period 1 (root)"
    assert space.describe_history(3) == "period 2: (v_H, c_L)"
    assert space.describe_history(7) == "after (v_H, c_L), period >= 3"
    assert TreeWithTail(ENV, 3).describe_history(6) == "period 3: (v_L, c_L) -> (v_L, c_H)"
    reach = reach_probabilities(space)
    assert reach[0] == 1 and np.isclose(reach[1:5].sum(), 1) and np.isclose(reach[5:].sum(), 1)
    assert space.size() == estimate_tail_size(ENV, 2)
    assert make_space(ENV, 2, tail=True).n_hist == 9


def test_errors():
    with pytest.raises(ValueError, match="TreeWithTail needs an infinite horizon"):
        TreeWithTail(lamba_usstp(horizon=3), 2)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        TreeWithTail(ENV, 0)
    with pytest.raises(ValueError, match="tail=True needs horizon"):
        make_space(ENV, tail=True)
    with pytest.raises(ValueError, match="tail=True conflicts with the given markov space"):
        design.minmax(ENV, space=MarkovSpace(ENV), tail=True)
    with pytest.raises(MemoryError, match="tree with a Markov tail after 12 periods is too large"):
        TreeWithTail(ENV, 12, memory_limit=2**20)


@pytest.mark.parametrize("horizon", [1, 3])
def test_continuation_matches_a_generic_sparse_solve_and_exact(horizon):
    space = TreeWithTail(ENV, horizon)
    rng = np.random.default_rng(horizon)
    flow = rng.normal(size=(2, space.n_nodes))
    k, n = 4, space.n_nodes
    rows = np.repeat(np.arange(n), k)
    cols = (space.child_hist[:, None] * k + np.arange(k)).reshape(-1)
    m = sp.csr_matrix((joint_transition(ENV)[space.node_profile].reshape(-1), (rows, cols)), shape=(n, n))
    system = (sp.identity(n) - ENV.discount * m).tocsc()
    ref = np.stack([spla.spsolve(system, f) for f in flow])
    np.testing.assert_allclose(continuation_values(space, flow), ref, atol=1e-10)
    ints = rng.integers(-4, 5, size=(1, n)).astype(float)
    exact = continuation_values(space, to_fractions(ints), Numbers(ENV, exact=True))
    np.testing.assert_allclose(exact.astype(float), continuation_values(space, ints), atol=1e-10)


@pytest.mark.parametrize("horizon", [2, 3])
def test_minmax_with_a_tail_equals_the_markov_answer(markov, horizon):
    res = design.minmax(ENV, horizon=horizon, tail=True)
    assert res.status == "optimal" and res.certificate.ok
    assert "history dependent for" in res.message
    space = res.space
    prev = space.hist_prev_profile
    expected = np.where(prev < 0, markov.surplus[0], markov.surplus[1 + np.maximum(prev, 0)])
    # root, every tree history (Pi* of its last profile) and every tail state
    np.testing.assert_allclose(res.surplus, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.surplus[space.tail_hists], markov.surplus[1:], rtol=0, atol=1e-8)
    # the interim utilities agree as well (the min-max mechanism is Markov)
    for u_tail, u_markov in zip(res.interim_utilities, markov.interim_utilities, strict=True):
        np.testing.assert_allclose(u_tail, u_markov[np.where(prev < 0, 0, 1 + prev)], atol=1e-8)


def test_the_finite_tree_converges_to_the_tail_answer(markov):
    gaps = []
    for horizon in (1, 2, 3, 4):
        tree = design.minmax(ENV, horizon=horizon)
        gaps.append(markov.surplus[0] - tree.surplus[0])
    assert np.all(np.diff(gaps) < 0) and gaps[-1] > 0
    # the gap shrinks like delta^T (Markov continuation cut off after T periods)
    ratio = np.array(gaps) / ENV.discount ** np.arange(1, 5)
    assert np.all(np.abs(np.diff(ratio)) < 0.2)


def test_feasibility_verification_and_certificate_files_on_a_tail():
    env = lamba_usstp(0.9, 0.8)  # interim infeasible (Lamba 2022, Figure 2)
    res = design.feasibility(env, "interim", horizon=2, tail=True)
    assert res.status == "infeasible" and res.certificate.ok and "exact" in res.certificate.checks
    assert "after (v_H, c_L), period >= 3" in res.message
    doc = json.loads(json.dumps(certificate_payload(res)))
    assert (doc["space"], doc["horizon"]) == ("tail", 2)
    assert check_certificate(env, doc, exact=True)[0]
    ok = design.feasibility(ENV, "ex_post", horizon=1, tail=True)
    assert ok.status == "optimal" and ok.certificate.ok
    doc = json.loads(json.dumps(certificate_payload(ok)))
    assert sum(bool(e.get("tail")) for e in doc["transfers"]) == 16
    assert check_certificate(ENV, doc)[0]
    # the verifier reads the tail like any other space: a wrong payment in the tail is caught
    x = ok.mechanism.transfers.copy()
    x[0, -1] += 0.5
    bad = verify(Mechanism(ok.space, x), budget="ex_post")
    assert not bad.ok and "period >= 2" in bad.worst["budget"].where

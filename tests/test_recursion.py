"""The backward recursion for the min-max surplus (mechlp.solve.recursion) against the LP, the verifier, the paper."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mechlp.audit.verifier import interim_utilities
from mechlp.catalog.examples import lamba_usstp, license_auction, public_project, yoon_k_type
from mechlp.catalog.io import load_model
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.model.environment import Environment, bilateral_trade, renewal_matrix
from mechlp.model.spaces import HistoryTree, MarkovSpace
from mechlp.solve import questions as design
from mechlp.solve import recursion

AGREE = 1e-9  # recursion vs LP, wherever both run


def three_by_three(delta: float = 0.9, horizon="infinite"):
    kern = renewal_matrix(3, 0.7)
    priors = ([0.3, 0.3, 0.4], [0.5, 0.25, 0.25])
    return bilateral_trade([0.2, 0.6, 1.0], [0.0, 0.4, 0.8], *priors, kern, kern, delta, horizon)


CASES = {
    "usstp markov": (lambda: lamba_usstp(0.7, 0.95), {}),
    "usstp iid static": (lambda: lamba_usstp(0.5, 0.0), {}),
    "usstp tree T=4": (lambda: lamba_usstp(0.7, 0.95), {"horizon": 4}),
    "usstp tail T=2": (lambda: lamba_usstp(0.9, 0.8), {"horizon": 2, "tail": True}),
    "usstp local IC tree": (lambda: lamba_usstp(0.7, 0.95), {"horizon": 3, "ic": "local"}),
    "usstp outside options": (lambda: lamba_usstp(0.7, 0.95), {"outside_option": [0.1, [0.3, 0.2]]}),
    "3x3 markov": (three_by_three, {}),
    "3x3 tree T=3": (three_by_three, {"horizon": 3}),
    "3x3 local IC markov": (lambda: yoon_k_type((0.0, 0.5, 1.0), 0.8, 0.9), {"ic": "local"}),
    "3 agents markov": (public_project, {}),
    "3 agents tree T=2": (public_project, {"horizon": 2}),
    "action-dependent kernels markov": (lambda: license_auction(2, 0.9, depth=2), {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recursion_agrees_with_lp_and_is_verified(name):
    make, kw = CASES[name]
    env = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tiny LP coefficients (license auction)
        lp = design.minmax(env, **kw)
    rec = design.minmax(env, method="recursion", **kw)
    assert lp.status == "optimal" and rec.status == "optimal", rec.message
    assert rec.space.kind == lp.space.kind
    assert rec.certificate.ok, rec.certificate.summary()  # the independent verifier, all misreports
    assert rec.certificate.options["ic"] == "bayesian"
    assert np.max(np.abs(rec.surplus - lp.surplus)) <= AGREE
    # the transfers implement exactly the recursion's interim utilities, and the verifier's surplus matches
    for mine, theirs in zip(rec.interim_utilities, interim_utilities(rec.mechanism), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-10)
    assert rec.diagnosis["recursion"]["surplus_gap"] <= 1e-10
    assert rec.solver.backend == "recursion" and "backward recursion" in rec.message
    assert rec.options["method"] == "recursion"


def test_markov_fees_reproduce_table1_as_the_lp():
    env = lamba_usstp(0.7, 0.95)
    rec = design.minmax(env, method="recursion")
    lp = design.minmax(env)
    for agent in ("buyer", "seller"):
        assert rec.fees[agent]["first"] == pytest.approx(lp.fees[agent]["first"], abs=AGREE)
        for lab, z in lp.fees[agent]["by_state"].items():
            assert rec.fees[agent]["by_state"][lab] == pytest.approx(z, abs=AGREE)
    assert rec.diagnosis["recursion"]["pointwise_optimal"] is True
    assert rec.diagnosis["recursion"]["exact_step"] == {"buyer": True, "seller": True}


@pytest.mark.parametrize("alpha", [0.6, 0.9])
def test_markov_equals_lamba_closed_form(alpha):
    env = lamba_usstp(alpha, 0.9)
    sol = recursion.solve(env)
    np.testing.assert_allclose(sol.surplus, minmax_closed_form(env).pi_markov, atol=AGREE)
    assert sol.residual <= 1e-12 and sol.pointwise_optimal


def test_tree_surplus_depends_on_depth_and_last_profile_only():
    # Markov types and a Markov allocation: every subtree from a history is determined by its depth and the
    # last report profile, so Pi* must be too (a check of the level-by-level indexing).
    env = three_by_three(0.9)
    sol = recursion.solve(env, horizon=5)
    sp = sol.space
    for a, b in sp.levels()[1:]:
        prev = sp.hist_prev_profile[a:b]
        for s in range(env.n_profiles):
            vals = sol.surplus[a:b][prev == s]
            assert np.ptp(vals) <= 1e-12
    # and the truncated trees approach the Markov answer from below in the number of periods
    markov = recursion.solve(env).surplus[0]
    gaps = [abs(recursion.solve(env, horizon=t).surplus[0] - markov) for t in (2, 4, 6)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_exact_step_paths_agree_with_plain_iteration(monkeypatch):
    # Stein step (USSTP), dense step (action-dependent kernels), and plain iteration (steps disabled)
    envs = [lamba_usstp(0.8, 0.9), license_auction(2, 0.8, depth=2)]
    with_steps = [recursion.solve(e) for e in envs]
    assert all(all(s.exact_step.values()) for s in with_steps)
    monkeypatch.setattr(recursion, "EXACT_STEP_MAX_UNKNOWNS", 0)
    monkeypatch.setattr(recursion, "_stein_step", lambda *a, **k: (_ for _ in ()).throw(recursion._NotStein()))
    plain = [recursion.solve(e) for e in envs]
    for a, b in zip(with_steps, plain, strict=True):
        assert not any(b.exact_step.values()) and max(b.iterations.values()) > max(a.iterations.values())
        np.testing.assert_allclose(a.surplus, b.surplus, atol=AGREE)


def test_not_certified_when_types_are_negatively_correlated():
    # alpha < 1/2 breaks FOSD: the sufficient check fails and says so; the mechanism is still IC + IR and
    # (here) still the LP optimum, so the LP's total surplus is never below the recursion's.
    env = lamba_usstp(0.3, 0.95)
    rec = design.minmax(env, method="recursion", horizon=3)
    assert rec.status == "optimal" and rec.certificate.ok
    assert rec.diagnosis["recursion"]["pointwise_optimal"] is False
    assert "NOT certified" in rec.message and "method='lp'" in rec.message
    lp = design.minmax(env, horizon=3)
    assert lp.surplus.sum() >= rec.surplus.sum() - AGREE


# ---------------------------------------------------------------------------------------------- infeasible IC
def nonmonotone(kernel, horizon="infinite"):
    """Bilateral trade that trades only when both report low: the buyer's trade probability falls in v."""
    base = bilateral_trade([0.05, 1.0], [0.0, 0.95], [0.5, 0.5], [0.5, 0.5], kernel, kernel, 0.9, horizon)
    alloc = np.array([[0, 1], [1, 0], [1, 0], [1, 0]], dtype=float)
    return Environment(base.agents, base.actions, 0.9, horizon, alloc, name="nonmonotone")


def test_positive_cycle_in_the_last_period_is_conclusive():
    env = nonmonotone(renewal_matrix(2, 0.7), horizon=2)
    rec = design.minmax(env, method="recursion")
    assert rec.status == "infeasible" and rec.surplus is None
    cycles = rec.diagnosis["recursion"]["cycles"]
    assert cycles and all(c["agent"] == "buyer" and c["conclusive"] for c in cycles)
    assert set(cycles[0]["types"]) == {"v1", "v2"} and cycles[0]["weight"] > 0
    assert cycles[0]["weight"] == pytest.approx(cycles[0]["static_weight"])
    assert "IC cannot hold" in rec.message and "positive IC cycle" in rec.message
    assert design.minmax(env).status == "infeasible"  # the LP agrees


def test_positive_cycle_iid_markov_is_conclusive_persistent_is_not():
    iid = recursion.solve(nonmonotone(np.full((2, 2), 0.5)))
    assert iid.status == "infeasible" and iid.cycles[0].conclusive
    persistent = recursion.solve(nonmonotone(renewal_matrix(2, 0.7)))
    assert persistent.status == "error" and not persistent.cycles[0].conclusive
    assert "design.minmax(method='lp') decides" in persistent.message


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ic": "ex_post"}, "ic must be one of .* for the recursion"),
        ({"ir": "ex_ante"}, "needs ir='interim'"),
        ({"limits": {"buyer": (-1, 1)}}, "does not handle transfer limits"),
        ({"presolve": "on"}, r"takes no solver options; got \['presolve'\]"),
        ({"max_iter": 0}, "max_iter must be a positive integer"),
    ],
)
def test_recursion_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        design.minmax(lamba_usstp(), method="recursion", **kwargs)


def test_other_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        design.minmax(lamba_usstp(), method="simplex")
    with pytest.raises(TypeError, match="model must be an Environment, a HistoryTree"):
        recursion.solve("lamba_usstp")
    with pytest.raises(ValueError, match="different environment"):
        design.minmax(lamba_usstp(), method="recursion", space=MarkovSpace(lamba_usstp()))
    with pytest.raises(MemoryError, match="recursion plus verification need about"):
        design.minmax(lamba_usstp(), method="recursion", horizon=12, memory_limit=2**28)
    with pytest.raises(MemoryError, match="the recursion needs about"):
        recursion.solve(lamba_usstp(), horizon=14, memory_limit=2**28)
    with pytest.raises(ValueError, match="no interim utilities"):
        recursion.solve(nonmonotone(np.full((2, 2), 0.5))).transfers()


def test_solve_accepts_spaces_and_reports_timings():
    env = lamba_usstp(0.7, 0.9)
    tree = HistoryTree(env, 3)
    sol = recursion.solve(tree)
    assert sol.space is tree and set(sol.seconds) >= {"solve", "surplus"}
    assert sol.parents[0].shape == (tree.n_hist, 2) and sol.iterations == {}
    assert "Pi*(root)" in sol.summary()
    only = recursion.solve(tree, surplus=False, check=False)
    assert only.surplus is None and only.pointwise_optimal is None
    np.testing.assert_allclose(only.interim_utilities[0], sol.interim_utilities[0])


# ---------------------------------------------------------------------------------------------- property
def fosd_kernel(draw, k: int) -> np.ndarray:
    """A random FOSD kernel: row ``t``'s upper tail ``P(t' >= j | t)`` is non-decreasing in ``t``."""
    cols = []
    for _ in range(k - 1):  # one upper-tail probability per threshold j = 1..K-1, non-decreasing in t
        cols.append(np.sort(np.array(draw(st.lists(st.integers(0, 20), min_size=k, max_size=k)), float) / 20))
    upper = np.column_stack([np.ones(k), *cols[::-1]]) if cols else np.ones((k, 1))
    upper = np.minimum.accumulate(upper, axis=1)  # tails fall in j
    rows = upper - np.column_stack([upper[:, 1:], np.zeros(k)])
    return rows


@st.composite
def fosd_bilateral(draw):
    kb = draw(st.integers(2, 3))
    ks = draw(st.integers(2, 3))
    grid = np.array(sorted(draw(st.sets(st.integers(0, 40), min_size=kb + ks, max_size=kb + ks)))) / 40
    perm = draw(st.permutations(range(kb + ks)))
    vals, costs = np.sort(grid[list(perm[:kb])]), np.sort(grid[list(perm[kb:])])
    pb = np.array(draw(st.lists(st.integers(1, 5), min_size=kb, max_size=kb)), float)
    ps = np.array(draw(st.lists(st.integers(1, 5), min_size=ks, max_size=ks)), float)
    delta = draw(st.sampled_from([0.0, 0.3, 0.6, 0.9]))
    fb, fs = fosd_kernel(draw, kb), fosd_kernel(draw, ks)
    return bilateral_trade(vals, costs, pb / pb.sum(), ps / ps.sum(), fb, fs, delta)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fosd_bilateral())
def test_property_fosd_bilateral_recursion_equals_lp(env):
    assert all(ag.is_fosd() for ag in env.agents)
    for kw in ({}, {"horizon": 2}):
        sol = recursion.solve(env, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lp = design.minmax(env, **kw)
        assert sol.status == "optimal" and lp.status == "optimal"
        assert np.max(np.abs(sol.surplus - lp.surplus)) <= AGREE
        assert sol.pointwise_optimal, (sol.min_coefficient, sol.radius_bound)  # Lamba's FOSD setting: certified


def test_three_agent_markov_welfare_is_one_solve_also_near_discount_one():
    """The Markov welfare of more than two agents used a fixed point that iterates ~log(tol)/log(delta) times
    (tens of millions at delta = 0.999999, minutes); it is now one dense solve, equal to the LP's values."""
    for d in (0.9, 0.999999):
        env = load_model(Path(__file__).resolve().parents[1] / "models" / "public_project.toml", {"discount": d})
        rec = design.minmax(env, method="recursion")
        lp = design.minmax(env, method="lp")
        assert rec.status == lp.status == "optimal"
        np.testing.assert_allclose(rec.surplus, lp.surplus, rtol=1e-8)

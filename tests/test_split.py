"""The split recursion (mechlp.workflows.split): subtrees solved and verified apart, the top joined after, must give
the unsplit recursion's Pi* at every history; the verification of the pieces must catch a wrong piece."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mechlp.catalog.examples import bv_scheduling, lamba_usstp, public_project
from mechlp.model.beliefs import marginal_beliefs
from mechlp.model.spaces import HistoryTree, MarkovSpace, estimate_memory
from mechlp.solve.recursion import Boundary, solve
from mechlp.workflows import split
from mechlp.workflows.split import choose_cut, split_minmax, subtree_environment, subtree_histories

T = 6
ENV = lamba_usstp(horizon=T)
FULL = solve(ENV)
ALL = np.arange(FULL.surplus.size)


@pytest.mark.parametrize("cut", [1, 3, 5])
@pytest.mark.parametrize("distinct", [True, False])
def test_split_equals_unsplit_at_every_history(cut, distinct):
    res = split_minmax(ENV, cut_depth=cut, distinct=distinct)
    assert res.status == "optimal" and res.verified
    assert len(res.subtrees) == (ENV.n_profiles if distinct else ENV.n_profiles**cut)
    np.testing.assert_allclose(res.surplus_at(ALL), FULL.surplus, rtol=0, atol=1e-12)
    assert res.min_surplus == pytest.approx(FULL.surplus.min(), abs=1e-12)
    assert FULL.surplus[res.argmin] == pytest.approx(FULL.surplus.min(), abs=1e-12)
    assert res.pointwise_optimal is FULL.pointwise_optimal is True
    assert res.top_verification["n_rows"]["ic"] == 4 * (4**cut - 1) // 3  # 2 agents x 2 pairs at each top history


@pytest.mark.parametrize(
    ("env", "horizon", "options"),
    [
        (bv_scheduling(), 4, {}),  # action-dependent kernels, 16 profiles
        (public_project(), 3, {}),  # three agents
        (lamba_usstp(horizon=5), 5, {"ic": "local", "outside_option": [0.1, [0.0, 0.2]]}),
    ],
)
def test_split_other_models_and_options(env, horizon, options):
    full = solve(env, horizon=horizon, **options)
    res = split_minmax(env, horizon, cut_depth=2, **options)
    assert res.status == "optimal" and res.verified
    np.testing.assert_allclose(res.surplus_at(np.arange(full.surplus.size)), full.surplus, rtol=0, atol=1e-12)


def test_files_stream_every_history(tmp_path):
    res = split_minmax(ENV, cut_depth=2, directory=tmp_path, expand=True)
    np.testing.assert_allclose(np.load(tmp_path / "surplus.npy"), FULL.surplus, rtol=0, atol=1e-12)
    files = sorted(p.name for p in tmp_path.glob("subtree-*.npy"))
    assert files == [f"subtree-{s}.npy" for s in range(4)]
    sub = np.load(tmp_path / "subtree-0.npy")
    assert sub.shape == (HistoryTree(ENV, T - 2).n_hist,)
    manifest = json.loads((tmp_path / "split.json").read_text())
    assert manifest["cut_depth"] == 2 and manifest["verified"] is True
    assert manifest["min_surplus"] == pytest.approx(FULL.surplus.min(), abs=1e-12)
    # read back from the files (no arrays held in the result)
    assert all(rec.surplus_array is None for rec in res.subtrees)
    np.testing.assert_allclose(res.surplus_at(ALL[::7]), FULL.surplus[::7], rtol=0, atol=1e-12)


def test_subtree_environment_is_the_model_after_a_profile():
    tree = HistoryTree(ENV)
    a, b = tree.levels()[2]
    h = a + 6  # a depth-2 history; its last profile is (h - 1) % 4
    s = (h - 1) % 4
    sub = subtree_environment(ENV, s, T - 2)
    expected = [m[0] for m in marginal_beliefs(tree, hists=[h])]
    for ag, row in zip(sub.agents, expected, strict=True):
        np.testing.assert_array_equal(ag.prior, row)
    depth, root, local = subtree_histories(4, T, 2, tree.descendants([h]))
    assert set(root) == {6} and np.array_equal(np.sort(local), np.arange(HistoryTree(sub).n_hist))
    np.testing.assert_allclose(solve(sub).surplus[local], FULL.surplus[tree.descendants([h])], rtol=0, atol=1e-12)


def test_boundary_hook_reproduces_the_top_levels():
    d = 3
    top = HistoryTree(ENV, d + 1)
    a, b = top.levels()[-1]
    given = Boundary([u[a:b] for u in FULL.interim_utilities], [p[a:b] for p in FULL.parents], FULL.welfare[a:b].copy())
    sol = solve(top, boundary=given)
    np.testing.assert_allclose(sol.surplus, FULL.surplus[: top.n_hist], rtol=0, atol=1e-12)
    assert solve(top).surplus[0] != pytest.approx(FULL.surplus[0])  # without it: a 4-period game


def test_boundary_is_checked():
    top = HistoryTree(ENV, 3)
    ok = Boundary([np.zeros((16, 2))] * 2, [np.zeros((16, 2), dtype=int)] * 2, np.zeros(16))
    with pytest.raises(ValueError, match=r"boundary.interim_utilities\[0\] has shape \(15, 2\); expected \(16, 2\)"):
        solve(top, boundary=dataclasses.replace(ok, interim_utilities=[np.zeros((15, 2))] * 2))
    with pytest.raises(ValueError, match=r"boundary.parents has 1 arrays; expected 2"):
        solve(top, boundary=dataclasses.replace(ok, parents=ok.parents[:1]))
    with pytest.raises(ValueError, match=r"boundary.welfare has shape \(3,\); expected \(16,\)"):
        solve(top, boundary=dataclasses.replace(ok, welfare=np.zeros(3)))
    with pytest.raises(ValueError, match="boundary needs a HistoryTree, got a markov space"):
        solve(MarkovSpace(lamba_usstp()), boundary=ok)


def _tampered(monkeypatch, field_name, shift):
    original = split._solve_subtree

    def wrong(task):
        rec = original(task)
        setattr(rec, field_name, getattr(rec, field_name) + shift)
        return rec

    monkeypatch.setattr(split, "_solve_subtree", wrong)
    return split_minmax(ENV, cut_depth=3)


def test_top_verification_catches_wrong_subtree_utilities(monkeypatch):
    res = _tampered(monkeypatch, "root_utilities", -1.0)  # the subtrees' mechanisms pay everyone 1 less at the roots
    assert res.status == "verification_failed" and not res.verified
    assert all(rec.verified for rec in res.subtrees)  # each subtree alone is fine ...
    assert res.top_verification["max_violation"]["ir"] > 0.5  # ... but IR above the cut fails
    assert "the top levels" in res.message


def test_top_verification_catches_wrong_subtree_surplus(monkeypatch):
    res = _tampered(monkeypatch, "root_designer", 1.0)
    assert res.status == "verification_failed"
    assert res.top_verification["surplus_gap"] > 0.5


def test_subtree_verification_failure_is_reported(monkeypatch):
    original = split._solve_subtree

    def wrong(task):
        rec = original(task)
        if rec.key == 2:
            rec.verification = {**rec.verification, "ok": False}
        return rec

    monkeypatch.setattr(split, "_solve_subtree", wrong)
    res = split_minmax(ENV, cut_depth=2)
    assert res.status == "verification_failed" and "subtree 2" in res.message


def test_executor_pool_matches_serial():
    serial = split_minmax(ENV, cut_depth=3)
    with ThreadPoolExecutor(2) as pool:
        pooled = split_minmax(ENV, cut_depth=3, executor=pool)
    np.testing.assert_array_equal(pooled.surplus_at(ALL), serial.surplus_at(ALL))


def test_dask_local_cluster_matches_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    serial = split_minmax(ENV, cut_depth=3)
    with (
        distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        res = split_minmax(ENV, cut_depth=3, executor=client, directory=tmp_path)
    assert res.verified
    np.testing.assert_array_equal(res.surplus_at(ALL), serial.surplus_at(ALL))
    np.testing.assert_allclose(res.surplus_at(ALL), FULL.surplus, rtol=0, atol=1e-12)


def test_cut_depth_is_chosen_by_memory():
    env = lamba_usstp(horizon=13)
    need = {t: estimate_memory(env, "minmax", horizon=t, method="recursion").bytes for t in range(1, 14)}
    assert need[12] > 2 * 2**30 >= need[11]  # a 12-period subtree does not fit 2 GiB, an 11-period one does
    assert choose_cut(env, 13, 2 * 2**30) == 2
    assert choose_cut(env, 13, need[12]) == 1
    with pytest.raises(MemoryError, match="no cut depth of the 13-period tree fits the memory limit of 0.00 GiB"):
        choose_cut(env, 13, 1000)
    with pytest.raises(MemoryError, match="cut_depth 1: the subtree of 12 periods needs about 3.56 GiB"):
        split_minmax(env, cut_depth=1, memory_limit=2 * 2**30)
    with pytest.raises(MemoryError, match="cut_depth 12: the top of 13 periods needs"):
        split_minmax(env, cut_depth=12, memory_limit=2 * 2**30)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="horizon must be an integer >= 2 to split the tree, got 1"):
        split_minmax(ENV, 1)
    with pytest.raises(ValueError, match=r"cut_depth must be an integer in 1..5 \(horizon 6\), got 6"):
        split_minmax(ENV, cut_depth=6)
    with pytest.raises(ValueError, match=r"cut_depth must be an integer in 1..5 \(horizon 6\), got 0"):
        split_minmax(ENV, cut_depth=0)
    with pytest.raises(ValueError, match="executor must be 'serial', a distributed.Client or an Executor, got 'dask'"):
        split_minmax(ENV, cut_depth=2, executor="dask")
    with pytest.raises(TypeError, match="executor must be 'serial', a distributed.Client or an Executor, got int"):
        split_minmax(ENV, cut_depth=2, executor=3)
    with pytest.raises(ValueError, match="expand=True writes surplus.npy: give directory"):
        split_minmax(ENV, cut_depth=2, expand=True)
    with pytest.raises(ValueError, match="horizon is required when the environment's horizon is infinite"):
        split_minmax(lamba_usstp())
    with pytest.raises(ValueError, match="ic must be 'bayesian' or 'local' for the recursion, got 'ex_post'"):
        split_minmax(ENV, cut_depth=2, ic="ex_post")
    with pytest.raises(TypeError, match="env must be an Environment, got str"):
        split_minmax("usstp")
    with pytest.raises(ValueError, match=r"profile must be an integer in 0..3, got 4"):
        subtree_environment(ENV, 4, 3)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        subtree_environment(ENV, 1, 0)
    with pytest.raises(ValueError, match=r"hists must be in 0..1364"):
        subtree_histories(4, T, 2, [1365])

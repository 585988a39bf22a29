"""Transfer ranges, efficient exit, the batched backend and the dynamic Groves family (issue #14, item 5).

Expected values come from the papers' arguments written out here for the finite model (Bergemann and Välimäki
2010, Lemma 1 and the proof of Theorem 2 with the grid in place of every x >= 0), from scipy's linprog, and from
the pivot and team constructions.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

import mechlp as ml
from mechlp.backends import solve_objectives
from mechlp.catalog.examples import bv_diverse
from mechlp.cli.main import main
from mechlp.constraints.formulation import build_lp
from mechlp.constructions.groves import groves, groves_terms
from mechlp.constructions.pivot import exit_nodes, pivot_outside_on_space, pivot_values
from mechlp.constructions.team import team_transfers
from mechlp.lp.program import LinearProgram
from mechlp.model.answer import read_result
from mechlp.model.environment import Environment
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree, MarkovSpace, estimate_memory
from mechlp.solve.ranges import transfer_ranges

DELTA = 0.9
RHO = 0.7  # bv_diverse's persistence of "P"
C = {"L": 0.3, "H": 0.8}  # the other agent's value of "b": the externality of serving "a"
F = {"L": {"L": 0.7, "H": 0.3}, "H": {"L": 0.4, "H": 0.6}}  # the other agent's kernel


def _below(c: float, steps: int) -> float:
    """Largest grid value below ``c`` (0: the zero type), Lemma 1's lower end on the grid."""
    grid = np.arange(1, steps + 1) / steps
    return float(max([0.0, *grid[grid < c]]))


def _above(c: float, steps: int) -> float:
    """Smallest grid value above ``c``, Lemma 1's upper end on the grid."""
    grid = np.arange(1, steps + 1) / steps
    return float(grid[grid > c].min())


def _gaps(steps: int, horizon: int) -> dict[int, dict[str, float]]:
    """``d_t(o)``: the grid gap carried by the persistent type from period ``t`` on (finite horizon):
    ``d_t(o) = g(o) + delta rho sum_o' F(o'|o) d_{t+1}(o')``, ``d_{T+1} = 0``."""
    d = {horizon + 1: {"L": 0.0, "H": 0.0}}
    for t in range(horizon, 0, -1):
        d[t] = {
            o: _above(C[o], steps) - _below(C[o], steps) + DELTA * RHO * sum(F[o][p] * d[t + 1][p] for p in "LH")
            for o in "LH"
        }
    return d


def _frame(res):
    df = res.ranges_frame()
    df["other"] = df.profile.str.extract(r", (\w)\)$")[0]
    df["period"] = np.asarray(res.space.hist_period)[df.history]
    return df


# ---------------------------------------------------------------------------------------------- backend
def test_solve_objectives_matches_linprog_objective_by_objective():
    rng = np.random.default_rng(3)
    a = sp.csc_matrix(rng.normal(size=(6, 5)))
    z0 = rng.normal(size=5)
    rl, ru = a @ z0 - 1.0, a @ z0 + 1.0
    cl, cu = np.full(5, -3.0), np.full(5, 3.0)
    costs = rng.normal(size=(7, 5))
    lp = LinearProgram(None, a, rl, ru, cl, cu, np.zeros(5), None)
    out = solve_objectives(lp, costs, keep=[2])
    for k in range(7):
        ref = so.linprog(
            costs[k],
            A_ub=np.vstack([a.toarray(), -a.toarray()]),
            b_ub=np.concatenate([ru, -rl]),
            bounds=list(zip(cl, cu, strict=True)),
            method="highs",
        )
        assert out.status[k] == "optimal"
        assert out.objective[k] == pytest.approx(ref.fun, abs=1e-8)
    assert costs[2] @ out.x[2] == pytest.approx(out.objective[2], abs=1e-9)
    assert set(out.x) == {2}


def test_solve_objectives_reports_unbounded_and_stops_on_an_empty_set():
    a = sp.csc_matrix(np.array([[1.0, 1.0]]))
    lp = LinearProgram(None, a, np.array([0.0]), np.array([np.inf]), np.zeros(2), np.full(2, np.inf), np.zeros(2), None)
    out = solve_objectives(lp, np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert list(out.status) == ["optimal", "unbounded"]
    empty = LinearProgram(None, a, np.array([1.0]), np.array([1.0]), np.zeros(2), np.zeros(2), np.zeros(2), None)
    out = solve_objectives(empty, np.eye(2))
    assert list(out.status) == ["infeasible", "skipped"]


# ---------------------------------------------------------------------------------------------- exit
def test_exit_nodes_follow_definition_1_on_the_diverse_model():
    steps = 4
    env = bv_diverse(steps, DELTA)
    space = MarkovSpace(env)
    pv = pivot_values(env)
    ex = exit_nodes(space, pv)
    types = env.profile_types()[space.node_profile]
    d_lab = np.asarray(env.agents[0].types)[types[:, 0]]
    o_lab = np.asarray(env.agents[1].types)[types[:, 1]]
    c = np.array([C[o] for o in o_lab])
    value_a = np.array([float(t[2:]) if t.startswith("a:") else np.nan for t in d_lab])
    # the diverse agent changes the decision only as P or as a:x with x > c (then exits: zero is absorbing)
    relevant_d = (d_lab == "P") | (value_a > c)
    # the other agent changes it only against a:x with x < c (b instead of a); never again afterwards
    relevant_o = value_a < c
    np.testing.assert_array_equal(ex[0], ~relevant_d)
    np.testing.assert_array_equal(ex[1], ~relevant_o)
    # the pivot has efficient exit (Bergemann and Valimaki 2010: the hypothesis of their Theorem 2 holds for it)
    piv = ml.dynamic_pivot(env, space)
    assert np.all(piv.mechanism.transfers[ex] == 0.0)


def test_exit_nodes_count_unavailable_actions_as_relevant():
    env = ml.lamba_usstp(alpha=0.7, delta=0.95, horizon=2)
    space = HistoryTree(env, 2)
    ex = exit_nodes(space, pivot_values(env, horizon=2))
    trade = space.node_allocation()[:, 1] > 0
    assert not ex[:, trade].any()  # no trade without the buyer or the seller: both matter wherever they trade
    assert np.all(ml.dynamic_pivot(env, space).mechanism.transfers[ex] == 0.0)


# ---------------------------------------------------------------------------------------------- IR rows
def test_build_lp_outside_values_raise_the_ex_post_ir_floors():
    env = bv_diverse(2, DELTA)
    space = MarkovSpace(env)
    o = pivot_outside_on_space(space, pivot_values(env))
    q = Question.parse(env, ic="ex_post", ir="ex_post", budget="none")
    lp = build_lp(space, q, outside_values=o)
    ir = lp.labels.family_rows("ir")
    agent, node = lp.labels.agent[ir], lp.labels.node[ir]
    np.testing.assert_array_equal(lp.row_lower[ir], o[agent, node])
    assert np.any(o > 0)  # the single-action types enjoy b when the planner runs the other's choice


def test_build_lp_refuses_outside_values_of_the_wrong_shape():
    env = bv_diverse(1, DELTA)
    with pytest.raises(ValueError, match=r"outside_values has shape \(2, 3\)"):
        build_lp(MarkovSpace(env), Question.parse(env), outside_values=np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------- B-V Theorem 2
@pytest.mark.parametrize(("steps", "horizon"), [(1, 3), (2, 2)])
def test_ranges_on_the_diverse_tree_are_the_grid_version_of_theorem_2(steps, horizon):
    env = bv_diverse(steps, DELTA, horizon=horizon)
    res = transfer_ranges(env, outside_values="pivot", efficient_exit=True, agents=["diverse"])
    assert res.status == "optimal" and res.verification.ok
    assert res.unique is False  # a finite grid leaves a gap; the theorem needs every x >= 0
    df = _frame(res)
    df = df[(df.agent == "diverse") & ~df.exit]
    d = _gaps(steps, horizon)
    for _, row in df.iterrows():  # the expected range of every ranged payment, at every history
        o, t = row.other, int(row.period)
        lo, hi = _below(C[o], steps), _above(C[o], steps)
        if row.type.startswith("a:"):  # Lemma 1: types that value only a pay one price in [x_below, x_above]
            assert float(row.type[2:]) > C[o]
            assert (row.lower, row.upper) == pytest.approx((lo, hi), abs=1e-7)
        else:  # P: Lemma 1 from below; above, the gap of every later period (the proof of Theorem 2)
            assert row.type == "P"
            extra = DELTA * RHO * sum(F[o][p] * d[t + 1][p] for p in "LH")
            assert (row.lower, row.upper) == pytest.approx((lo, hi + extra), abs=1e-7)
        assert row.lower - 1e-7 <= row.reference <= row.upper + 1e-7  # the pivot's payment is C[o]
        assert row.lower_bound <= row.lower + 1e-7 and row.upper <= row.upper_bound + 1e-7  # dual bounds
        assert (row.lower_bound, row.upper_bound) == pytest.approx((row.lower, row.upper), abs=1e-6)
        assert row.reference == pytest.approx(C[o], abs=1e-12)
    # the two witnesses are verified, differ where the range is widest and keep efficient exit
    wc = res.witness_coordinate
    assert wc["agent"] == "diverse" and all(v.ok for v in res.witness_verifications)
    assert wc["witness_values"] == pytest.approx([wc["lower"], wc["upper"]], abs=1e-7)
    for w in res.witnesses:
        assert np.all(w.transfers[res.exit] == 0.0)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_ranges_shrink_with_the_grid_on_the_markov_space(steps):
    env = bv_diverse(steps, DELTA)
    res = transfer_ranges(env, outside_values="pivot", efficient_exit=True, agents=["diverse"])
    df = _frame(res)
    df = df[(df.agent == "diverse") & ~df.exit]
    single = df[df.type.str.startswith("a:")]
    pers = df[df.type == "P"]
    gap = 1.0 / steps
    assert single.width.max() == pytest.approx(gap, abs=1e-7)
    # infinite horizon: the persistent type carries the gap of every later period, gap / (1 - delta rho)
    assert pers.width.max() == pytest.approx(gap / (1 - DELTA * RHO), abs=1e-6)
    assert ((df.lower <= df.reference + 1e-7) & (df.reference <= df.upper + 1e-7)).all()


def test_without_diverse_preferences_payments_are_not_unique_and_two_witnesses_prove_it():
    env = bv_diverse(diverse=False, horizon=3)  # zero and P only: Assumption 1(ii) fails
    res = transfer_ranges(env, outside_values="pivot", efficient_exit=True)
    assert res.status == "optimal" and res.unique is False
    w0, w1 = res.witnesses
    i = [ag.name for ag in env.agents].index(res.witness_coordinate["agent"])
    g = res.witness_coordinate["node"]
    assert w1.transfers[i, g] - w0.transfers[i, g] > 1.0
    o = pivot_outside_on_space(res.space, pivot_values(env, horizon=3))
    for w in res.witnesses:  # re-verified here, with the verifier's own rows
        ver = ml.verify(w, ic="ex_post", ir="ex_post", budget="none", outside_values=o)
        assert ver.ok
        assert np.all(w.transfers[res.exit] == 0.0)
    assert "NOT unique" in res.message and "both verified" in res.message


def test_unique_payments_are_reported_unique():
    base = bv_diverse(1, DELTA, horizon=2)
    fixed = np.zeros((base.n_profiles, 2))
    fixed[:, 0] = 1.0  # always "a": no report changes anything, so zero payments are IC and IR
    env = Environment(list(base.agents), list(base.actions), DELTA, 2, fixed, name="constant")
    res = transfer_ranges(env, limits={"diverse": (0, 0), "other": (0, 0)})
    assert res.status == "optimal" and res.unique is True and res.witnesses is None
    assert np.all(res.lower == 0) and np.all(res.upper == 0)
    assert np.abs(res.lower_bound).max() <= 1e-9 and np.abs(res.upper_bound).max() <= 1e-9  # duals enclose 0
    assert res.node_unique().all()
    assert "every payment is unique" in res.message


def test_an_empty_set_of_mechanisms_is_unverified():
    env = bv_diverse(1, DELTA, horizon=1)
    res = transfer_ranges(env, limits={"diverse": (5, 5)})  # paying 5 breaks ex post IR
    assert res.status == "unverified" and "no impossibility certificate" in res.message


def test_range_result_json_round_trip():
    env = bv_diverse(1, DELTA, horizon=2)
    res = transfer_ranges(env, outside_values="pivot", efficient_exit=True)
    rec = read_result(res.to_json())
    assert rec.kind == "RangeResult" and rec.status == res.status
    assert rec.data["unique"] is False and len(rec.data["ranges"]) == len(res.ranges_frame())
    assert rec.data["options"]["efficient_exit"] is True


def test_estimate_memory_knows_the_ranges_question():
    env = bv_diverse(2, DELTA)
    est = estimate_memory(env, "ranges", ic="ex_post", ir="ex_post", budget="none")
    assert est.nodes == MarkovSpace(env).n_nodes and est.bytes > 0


# ---------------------------------------------------------------------------------------------- refusals
def test_too_many_lps_are_refused_before_building():
    env = bv_diverse(8, DELTA)
    with pytest.raises(ValueError, match=r"5,328 LPs .* exceed max_lps=1,000"):
        transfer_ranges(env, max_lps=1000)


def test_unknown_agent_is_refused():
    with pytest.raises(ValueError, match="unknown agent 'nobody'"):
        transfer_ranges(bv_diverse(1, DELTA), agents=["nobody"])


def test_history_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"histories: index 99 is outside 0..8"):
        transfer_ranges(bv_diverse(1, DELTA), histories=[0, 99])


def test_unknown_outside_values_name_is_refused():
    with pytest.raises(ValueError, match="outside_values must be 'pivot'"):
        transfer_ranges(bv_diverse(1, DELTA), outside_values="clarke")


def test_outside_values_with_an_outside_option_are_refused():
    with pytest.raises(ValueError, match="give outside_option or outside_values, not both"):
        transfer_ranges(bv_diverse(1, DELTA), outside_values="pivot", outside_option=0.5)


def test_efficient_exit_needs_an_efficient_allocation():
    base = bv_diverse(1, DELTA)
    fixed = np.zeros((base.n_profiles, 2))
    fixed[:, 1] = 1.0  # always "b", although P values a more than anyone values b
    env = Environment(list(base.agents), list(base.actions), DELTA, "infinite", fixed, name="always b")
    with pytest.raises(ValueError, match="efficient_exit and outside_values='pivot' need the dynamic pivot"):
        transfer_ranges(env, efficient_exit=True)


def test_max_lps_must_be_an_integer():
    with pytest.raises(ValueError, match="max_lps must be an integer >= 2"):
        transfer_ranges(bv_diverse(1, DELTA), max_lps=1.5)


# ---------------------------------------------------------------------------------------------- Groves
@pytest.mark.parametrize("horizon", ["infinite", 3])
def test_clarke_term_gives_the_dynamic_pivot_and_zero_the_team_mechanism(horizon):
    env = bv_diverse(2, DELTA, horizon=horizon)
    piv = ml.dynamic_pivot(env)
    g = groves(env, piv.space, h="clarke")
    assert g.status == "verified"
    np.testing.assert_allclose(g.mechanism.transfers, piv.mechanism.transfers, atol=1e-12)
    t = groves(env, piv.space, h="zero")
    assert t.status == "verified"
    np.testing.assert_array_equal(t.mechanism.transfers, team_transfers(piv.space))


def test_groves_with_action_dependent_kernels_is_the_pivot():
    env = ml.bv_scheduling((3.0, 2.0, 1.0), 0.8)  # serving a task moves it to "done"
    piv = ml.dynamic_pivot(env)
    g = groves(env, piv.space, h="clarke")
    np.testing.assert_allclose(g.mechanism.transfers, piv.mechanism.transfers, atol=1e-12)


def test_any_history_dependent_term_is_ex_post_ic_yoon_theorem_3():
    env = ml.lamba_usstp(alpha=0.7, delta=0.95)
    tree = HistoryTree(env, 3)
    rng = np.random.default_rng(0)
    h = [rng.normal(size=(tree.n_hist, env.others_count(i))) for i in range(env.n_agents)]
    g = groves(env, tree, h=h)
    assert g.status == "verified" and g.verification.max_violation["ic"] <= 1e-9
    # the same terms per node are the same mechanism
    per_node = groves_terms(tree, h)
    np.testing.assert_allclose(groves(env, tree, h=per_node).mechanism.transfers, g.mechanism.transfers)
    # and agent i's utility is W - h_i at every node (the family's defining identity)
    welfare = ml.Mechanism(tree, np.zeros((env.n_agents, tree.n_nodes))).utilities().sum(axis=0)  # W at every node
    np.testing.assert_allclose(g.mechanism.utilities(), welfare[None, :] - per_node, atol=1e-9)


def test_groves_term_depending_on_the_own_type_is_refused():
    env = ml.lamba_usstp(alpha=0.7, delta=0.95)
    space = MarkovSpace(env)
    bad = np.zeros((2, space.n_nodes))
    bad[0, 0] = 1.0
    with pytest.raises(ValueError, match="varies with the agent's own type at history 0"):
        groves(env, space, h=bad)


def test_groves_unknown_term_name_is_refused():
    env = ml.lamba_usstp(alpha=0.7, delta=0.95)
    with pytest.raises(ValueError, match=r"h must be one of \('zero', 'clarke'\)"):
        groves(env, h="vcg")


def test_groves_term_of_the_wrong_shape_is_refused():
    env = ml.lamba_usstp(alpha=0.7, delta=0.95)
    with pytest.raises(ValueError, match=r"h\[0\] has shape \(3,\)"):
        groves(env, h=[np.zeros(3), np.zeros(3)])


# ---------------------------------------------------------------------------------------------- command line
def test_cli_transfer_ranges_writes_the_table_and_the_answer(tmp_path, capsys):
    csv, js = tmp_path / "r.csv", tmp_path / "r.json"
    argv = ["transfer-ranges", "bv_diverse", "--param", "steps=1", "--param", "horizon=2", "--outside-values", "pivot"]
    rc = main([*argv, "--efficient-exit", "--agents", "diverse", "--csv", str(csv), "--json", str(js)])
    assert rc == 0
    assert "NOT unique" in capsys.readouterr().out
    rec = read_result(js)
    assert rec.kind == "RangeResult" and csv.read_text().startswith("agent,node,history")


def test_cli_transfer_ranges_refuses_too_many_lps_in_one_line(capsys):
    assert main(["transfer-ranges", "bv_diverse", "--param", "steps=8", "--max-lps", "100"]) == 2
    err = capsys.readouterr().err
    assert "exceed max_lps=100" in err and err.count("\n") == 1


def test_cli_groves_clarke_is_verified(capsys):
    assert main(["groves", "bv_diverse", "--h", "clarke"]) == 0
    assert "ex post IC verified" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- Yoon Theorem 4
def _welfare(env) -> np.ndarray:
    """``W(theta)`` by value iteration, written here: the myopic efficient action (no kernel depends on it)."""
    types = env.profile_types()
    vals = sum(ag.valuation[types[:, i]] for i, ag in enumerate(env.agents))  # (K, A): total flow value
    flow = vals.max(axis=1)
    kernel = np.ones((env.n_profiles, env.n_profiles))
    for i, ag in enumerate(env.agents):
        kernel *= ag.transition[types[:, i]][:, types[:, i]]
    w = np.zeros(env.n_profiles)
    for _ in range(2000):  # value iteration to machine precision (delta = 0.9)
        w = flow + env.discount * kernel @ w
    return w


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_property_a_defect_shrinks_with_the_grid_yoon_theorem_4(steps):
    """Yoon (2021), Theorem 4 with Lemma 1: on an unrestricted domain every periodic ex post IC mechanism with the
    efficient policy is a Groves mechanism, i.e. has Property A, ``U_i(theta) - U_i(tb, theta_-i) = W(theta) -
    W(tb, theta_-i)``. On the finite grid the defect of Property A ranges over an interval that contains 0 and
    has the width of the grid's gap (a single-action type against the zero type), or the gap carried by the
    persistent type, gap / (1 - delta rho): it vanishes as the grid refines."""
    env = bv_diverse(steps, DELTA)
    space = MarkovSpace(env)
    q = Question.parse(env, ic="ex_post", ir="ex_ante", budget="none", outside_option=-1e3)  # IR inert
    lp = build_lp(space, q)
    w = _welfare(env)
    labels = env.agents[0].types
    rows, pairs = [], []
    for t in ("a:1", "P"):
        for o in (0, 1):
            g, gb = env.profile_index(0, labels.index(t), o), env.profile_index(0, labels.index("zero"), o)
            c = np.zeros(lp.n_cols)
            c[lp.variables.U(0, g)], c[lp.variables.U(0, gb)] = 1.0, -1.0  # at the root: nodes g, gb
            rows += [c, -c]
            pairs.append((t, w[g] - w[gb]))
    out = solve_objectives(lp, sp.csr_matrix(np.array(rows)))
    assert all(s == "optimal" for s in out.status)
    gap = 1.0 / steps
    for j, (t, dw) in enumerate(pairs):
        lo, hi = out.objective[2 * j] - dw, -out.objective[2 * j + 1] - dw
        assert lo <= 1e-9 and hi >= -1e-9  # Groves (defect 0) is in the range
        assert hi - lo == pytest.approx(gap if t == "a:1" else gap / (1 - DELTA * RHO), abs=1e-7)


@pytest.mark.parametrize("h", ["zero", "clarke", "random"])
def test_groves_members_have_no_property_a_defect(h):
    env = bv_diverse(2, DELTA)
    space = MarkovSpace(env)
    if h == "random":
        rng = np.random.default_rng(1)
        h = [rng.normal(size=(space.n_hist, env.others_count(i))) for i in range(env.n_agents)]
    g = groves(env, space, h=h)
    assert g.status == "verified"
    u = g.mechanism.utilities()
    w = _welfare(env)[space.node_profile]
    for i in range(env.n_agents):  # U_i - W does not depend on agent i's own type: Property A
        per = (u[i] - w).reshape(space.n_hist, env.n_profiles)
        idx = env.profile_index(i, np.arange(env.type_counts[i])[:, None], np.arange(env.others_count(i))[None])
        np.testing.assert_allclose(per[:, idx], per[:, idx[:1]].repeat(env.type_counts[i], axis=1), atol=1e-9)


def test_a_witness_pushed_past_its_range_fails_the_verifier():
    """The ends of a range are tight: the maximiser paying a little more there (or the minimiser a little less),
    every other payment unchanged, is no longer a mechanism that satisfies the rows (the independent check)."""
    env = bv_diverse(2, DELTA, horizon=2)
    res = transfer_ranges(env, outside_values="pivot", efficient_exit=True, agents=["diverse"])
    wc = res.witness_coordinate
    i, g = [ag.name for ag in env.agents].index(wc["agent"]), wc["node"]
    o = pivot_outside_on_space(res.space, pivot_values(env, horizon=2))
    for w, step in zip(res.witnesses, (-1e-3, 1e-3), strict=True):
        x = w.transfers.copy()
        x[i, g] += step
        ver = ml.verify(ml.Mechanism(res.space, x), ic="ex_post", ir="ex_post", budget="none", outside_values=o)
        assert not ver.ok

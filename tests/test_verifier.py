"""Tests of the independent verifier ``mechlp.audit.verifier``.

Known facts (derived by hand in the comments) about Lamba's discrete VCG mechanism in the USSTP, planted
violations of a derived size, and a brute-force loop implementation of every constraint on a 3-agent
environment with unequal type counts and an action-dependent kernel.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from mechlp.audit import verifier as certificates
from mechlp.audit.verifier import (
    Verification,
    interim_utilities,
    surplus,
    verify,
)
from mechlp.catalog.examples import lamba_usstp
from mechlp.model.beliefs import continuation_values, joint_beliefs, marginal_beliefs
from mechlp.model.environment import Agent, Environment
from mechlp.model.exact import Numbers
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import HistoryTree, MarkovSpace

B, S = 0, 1  # buyer, seller
# profile index = C order over (buyer, seller): 0 (v_L,c_L), 1 (v_L,c_H), 2 (v_H,c_L), 3 (v_H,c_H)
LL, LH, HL, HH = 0, 1, 2, 3


def vcg_transfers(env: Environment) -> np.ndarray:
    """Discrete static VCG adjusted for gaps (Lamba section 5), shape (2, K): on trade (v > c) the buyer pays
    min{v' in V: v' > c} and the seller receives max{c' in C: v > c'}; zero otherwise."""
    values, costs = env.agents[B].values, env.agents[S].values
    x = np.zeros((2, env.n_profiles))
    for k in range(env.n_profiles):
        b, s = np.unravel_index(k, env.type_counts)
        v, c = values[b], costs[s]
        if v > c:
            x[B, k] = values[values > c].min()
            x[S, k] = -costs[costs < v].max()
    return x


def vcg(space) -> Mechanism:
    return Mechanism(space, np.tile(vcg_transfers(space.env), (1, space.n_hist)))


@pytest.fixture(scope="module")
def markov():
    return MarkovSpace(lamba_usstp(0.7, 0.95))


@pytest.fixture(scope="module")
def tree3():
    return HistoryTree(lamba_usstp(0.7, 0.95, 3))


@pytest.fixture(scope="module")
def static():
    return HistoryTree(lamba_usstp(0.5, 0.0, 1))


def row_keys(rows):
    return {(v.agent, v.type, v.misreport, v.others) for v in rows}


# -------------------------------------------------------------------------------------- 1. VCG is IC and IR
def test_vcg_static_values_match_hand_derivation(static):
    x = vcg_transfers(static.env)
    # buyer pays / seller receives: (v_L,c_L) 0.05 / 0; (v_H,c_L) 0.05 / 0.95; (v_H,c_H) 1 / 0.95;
    # (v_L,c_H) no trade.
    np.testing.assert_allclose(x[B], [0.05, 0.0, 0.05, 1.0])
    np.testing.assert_allclose(x[S], [0.0, 0.0, -0.95, -0.95])


@pytest.mark.parametrize("which", ["markov", "tree3", "static"])
@pytest.mark.parametrize("ic", ["bayesian", "ex_post", "local"])
def test_vcg_is_ic_and_ir(which, ic, request):
    space = request.getfixturevalue(which)
    for ir in ("interim", "ex_post", "ex_ante"):
        ver = verify(vcg(space), ic=ic, ir=ir, budget="none")
        assert ver.ok, ver.summary()
        assert ver.max_violation["ic"] <= 1e-9 and ver.max_violation["ir"] <= 1e-9
        assert "budget" not in ver.max_violation


def test_vcg_static_binding_rows(static):
    # Static iid USSTP (alpha = 0.5, delta = 0, T = 1), ex post utilities (buyer, seller):
    #   (v_L,c_L): (0, 0)   (v_L,c_H): (0, 0)   (v_H,c_L): (0.95, 0.95)   (v_H,c_H): (0, 0).
    # Buyer v_H reporting v_L: against c_L both trade at price 0.05; against c_H truth gives 1 - 1 = 0 and the
    # lie gives no trade, 0 -> slack 0 pointwise, binding. Buyer v_L reporting v_H: 0 against c_L, but
    # 0.05 - 1 = -0.95 against c_H -> Bayesian slack 0.475. Symmetrically for the seller (c_L -> c_H binds).
    ver = verify(vcg(static), ic="bayesian", ir="interim", budget="none")
    assert ver.n_rows == {"ic": 4, "ir": 4}
    assert row_keys(ver.binding["ic"]) == {("buyer", "v_H", "v_L", None), ("seller", "c_L", "c_H", None)}
    assert ver.n_binding["ic"] == 2
    # IR: Ubar_B(v_L) = 0 and Ubar_S(c_H) = 0 bind; v_H and c_L get 0.5 * 0.95 = 0.475.
    assert row_keys(ver.binding["ir"]) == {("buyer", "v_L", None, None), ("seller", "c_H", None, None)}
    # Pointwise: 8 rows, all binding except the two lies that trade at a loss (slack 0.95).
    ep = verify(vcg(static), ic="ex_post", budget="none")
    assert ep.n_rows["ic"] == 8 and ep.n_binding["ic"] == 6
    every = {("buyer", t, r, f"({o})") for t, r in (("v_L", "v_H"), ("v_H", "v_L")) for o in ("c_L", "c_H")} | {
        ("seller", t, r, f"({o})") for t, r in (("c_L", "c_H"), ("c_H", "c_L")) for o in ("v_L", "v_H")
    }
    assert every - row_keys(ep.binding["ic"]) == {
        ("buyer", "v_L", "v_H", "(c_H)"),
        ("seller", "c_H", "c_L", "(v_L)"),
    }
    # An outside option per agent per type shifts the IR rows exactly: buyer v_H needs 0.5 but has 0.475.
    out = verify(vcg(static), budget="none", outside_option=[[0.0, 0.5], 0.0])
    assert out.max_violation["ir"] == pytest.approx(0.025, abs=1e-12)
    assert (out.worst["ir"].agent, out.worst["ir"].type) == ("buyer", "v_H")
    assert verify(vcg(static), budget="none", outside_option=0.1).max_violation["ir"] == pytest.approx(0.1)
    by_name = verify(vcg(static), budget="none", outside_option={"seller": 0.2})
    assert by_name.max_violation["ir"] == pytest.approx(0.2) and by_name.worst["ir"].agent == "seller"


@pytest.mark.parametrize("which", ["markov", "tree3"])
def test_vcg_local_downward_ic_binds_at_every_history(which, request):
    # The VCG mechanism is history independent, so the continuation terms of D cancel against those of Ubar
    # and every dynamic IC slack equals the static ex post slack averaged over the others' types: v_H -> v_L
    # (buyer) and c_L -> c_H (seller) bind at every history, the other two pairs never bind (persistence < 1).
    space = request.getfixturevalue(which)
    ver = verify(vcg(space), budget="none")
    assert ver.n_binding["ic"] == 2 * space.n_hist
    kinds = {(v.agent, v.type, v.misreport) for v in ver.binding["ic"]}
    assert kinds == {("buyer", "v_H", "v_L"), ("seller", "c_L", "c_H")}
    assert len(ver.binding["ic"]) == min(50, 2 * space.n_hist)
    hist = [v.history for v in ver.binding["ic"]]
    assert hist == sorted(hist)


# ---------------------------------------------------------------------------------------- 2. budget deficit
def test_vcg_static_deficit_is_minus_0_2(static):
    # Pi(root) = 0.25 * (0.05 + (0.05 - 0.95) + (1 - 0.95) + 0) = -0.2
    for budget in ("ex_ante", "interim"):
        ver = verify(vcg(static), budget=budget)
        assert not ver.ok
        assert ver.max_violation["budget"] == pytest.approx(0.2, abs=1e-12)
        assert ver.n_rows["budget"] == 1
        w = ver.worst["budget"]
        assert (w.family, w.agent, w.history, w.where) == ("budget", None, 0, "root (period 1)")
        assert w.slack == pytest.approx(-0.2, abs=1e-12)
    np.testing.assert_allclose(surplus(vcg(static)), [-0.2])


def test_vcg_markov_deficit(markov):
    # Uniform priors are stationary for the symmetric renewal kernel, so each period loses 0.2 in expectation:
    # Pi(root) = -0.2 / (1 - 0.95) = -4.
    ver = verify(vcg(markov), budget="ex_ante")
    assert ver.max_violation["budget"] == pytest.approx(4.0, abs=1e-9)
    assert ver.worst["budget"].history == 0
    assert verify(vcg(markov), budget="interim").n_rows["budget"] == markov.n_hist


# ------------------------------------------------------------------------------------- 3. planted violation
def test_planted_payment_breaks_ir_and_ic_by_derived_amounts(tree3):
    # Node 0 = (root, (v_L,c_L)) leads to history 1; node 4 = (history 1, (v_L,c_L)) leads to history 5, a
    # last-period history after (v_L,c_L) -> (v_L,c_L); its node (v_L,c_L) is 5*4 + 0 = 20.
    h, g = 5, 20
    assert tree3.describe_history(h) == "(v_L, c_L) -> (v_L, c_L)"
    x = np.tile(vcg_transfers(tree3.env), (1, tree3.n_hist))
    x[B, g] += 0.5
    mech = Mechanism(tree3, x)
    # Last period, so U = static VCG utility: Ubar_B(v_L|h) was 0 and falls by 0.5 * P(c_L|h) = 0.5 * 0.7.
    ver = verify(mech, budget="none")
    assert not ver.ok
    assert ver.max_violation["ir"] == pytest.approx(0.35, abs=1e-12)
    w = ver.worst["ir"]
    assert (w.agent, w.history, w.type, w.misreport) == ("buyer", h, "v_L", None)
    # v_L's IC against reporting v_H had slack P(c_H|h) * 0.95 = 0.285 (loses 0.95 against c_H); the report
    # v_H is unaffected, so the slack becomes 0.285 - 0.35 = -0.065. Ancestors lose less (discounted).
    assert ver.max_violation["ic"] == pytest.approx(0.065, abs=1e-12)
    w = ver.worst["ic"]
    assert (w.agent, w.history, w.type, w.misreport) == ("buyer", h, "v_L", "v_H")
    # Pointwise IR names the node itself: U_B(g) = 0 - 0.5.
    ep = verify(mech, ir="ex_post", budget="none")
    assert ep.max_violation["ir"] == pytest.approx(0.5, abs=1e-12)
    w = ep.worst["ir"]
    assert (w.agent, w.history, w.type, w.others) == ("buyer", h, "v_L", "(c_L)")
    assert w.where.endswith("profile (v_L, c_L)")
    # A rebate of 0.5 instead keeps IR but breaks the binding downward IC: v_H reporting v_L now collects
    # 0.5 * P(c_L|h) = 0.35 more than before, when the slack was exactly 0.
    x[B, g] -= 1.0
    rebate = verify(Mechanism(tree3, x), budget="none")
    assert rebate.max_violation["ir"] == 0.0
    assert rebate.max_violation["ic"] == pytest.approx(0.35, abs=1e-12)
    w = rebate.worst["ic"]
    assert (w.agent, w.history, w.type, w.misreport) == ("buyer", h, "v_H", "v_L")


# ---------------------------------------------------------------------------------------- 4. ex post budget
def test_ex_post_budget_balance(tree3):
    rng = np.random.default_rng(1)
    xb = rng.normal(size=tree3.n_nodes)
    x = np.stack([xb, -xb])
    ver = verify(Mechanism(tree3, x), budget="ex_post")
    assert ver.max_violation["budget"] <= 1e-12
    assert ver.n_rows["budget"] == tree3.n_nodes
    assert ver.n_binding["budget"] == tree3.n_nodes and len(ver.binding["budget"]) == 50
    g = 37  # history 9, profile 1 = (v_L, c_H)
    x[S, g] += 0.01
    ver = verify(Mechanism(tree3, x), budget="ex_post")
    assert ver.max_violation["budget"] == pytest.approx(0.01, rel=1e-9)
    w = ver.worst["budget"]
    assert w.history == g // 4 and w.where == f"{tree3.describe_history(g // 4)}, profile (v_L, c_H)"
    assert ver.n_binding["budget"] == tree3.n_nodes - 1
    assert not ver.ok


# ----------------------------------------------------------------------------------------------- 5. options
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ic": "dominant"}, ValueError, r"ic must be one of 'bayesian', 'ex_post', 'local'; got 'dominant'"),
        ({"ic": None}, ValueError, r"ic must be one of"),
        ({"ir": "periodic"}, ValueError, r"ir must be one of 'interim', 'ex_post', 'ex_ante'"),
        ({"budget": "strong"}, ValueError, r"budget must be one of 'ex_ante', 'interim', 'ex_post', 'none'"),
        ({"outside_option": [0.0, 0.0, 0.0]}, ValueError, r"outside_option has 3 entries; expected 2"),
        ({"outside_option": [[0.0, 1.0, 2.0], 0.0]}, ValueError, r"outside_option\[0\] .*shape \(3,\)"),
        ({"outside_option": [0.0, math.nan]}, ValueError, r"outside_option\[1\] .*not finite"),
        ({"outside_option": {"broker": 1.0}}, ValueError, r"unknown agent 'broker'"),
        ({"outside_option": "zero"}, TypeError, r"outside_option must be numeric"),
        ({"tol": -1.0}, ValueError, r"tol must be a finite number >= 0"),
    ],
)
def test_bad_options(static, kwargs, error, match):
    with pytest.raises(error, match=match):
        verify(vcg(static), **kwargs)


def test_not_a_mechanism(static):
    with pytest.raises(TypeError, match="mechanism must be a Mechanism"):
        verify(static)


# --------------------------------------------------------------------------------------- local vs global IC
def single_agent_static() -> Environment:
    # One agent, types t0 < t1 < t2, one action per type; v(t, a) = 1 if a == t, except v(t1, a2) = -1.
    val = np.eye(3)
    val[1, 2] = -1.0
    ag = Agent("agent", ["t0", "t1", "t2"], np.ones(3) / 3, np.eye(3), val)
    return Environment([ag], ["a0", "a1", "a2"], 0.0, 1)


def test_local_checks_adjacent_pairs_only():
    # Efficient allocation gives a = t. Paying 1.5 to reports of t2: t0 reporting t2 gets 0 + 1.5 > 1
    # (violation 0.5), while every adjacent lie loses: t1 -> t2 gets -1 + 1.5 = 0.5 < 1, t0 -> t1 and
    # t1 -> t0 get 0, t2 -> t1 gets 0 < 2.5.
    space = HistoryTree(single_agent_static())
    mech = Mechanism(space, np.array([[0.0, 0.0, -1.5]]))
    loc = verify(mech, ic="local", budget="none")
    assert loc.ok and loc.n_rows["ic"] == 4
    glob = verify(mech, ic="bayesian", budget="none")
    assert glob.n_rows["ic"] == 6
    assert glob.max_violation["ic"] == pytest.approx(0.5)
    assert (glob.worst["ic"].type, glob.worst["ic"].misreport) == ("t0", "t2")


# ----------------------------------------------------------------------------------------------- 6. beliefs
def three_agent_env() -> Environment:
    """Agents with 2, 3 and 2 types; agent 'c' has an action-dependent kernel (deterministic allocation)."""
    rng = np.random.default_rng(7)

    def kern(k, layers=None):
        shape = (k, k) if layers is None else (layers, k, k)
        m = rng.uniform(0.1, 1.0, size=shape)
        return m / m.sum(axis=-1, keepdims=True)

    agents = [
        Agent("a", ["a1", "a2"], [0.4, 0.6], kern(2), rng.normal(size=(2, 2))),
        Agent("b", ["b1", "b2", "b3"], [0.2, 0.3, 0.5], kern(3), rng.normal(size=(3, 2))),
        Agent("c", ["c1", "c2"], [0.7, 0.3], kern(2, layers=2), rng.normal(size=(2, 2))),
    ]
    return Environment(agents, ["x", "y"], 0.9, "infinite")


@pytest.fixture(scope="module")
def three_spaces():
    env = three_agent_env()
    assert env.action_dependent and len(set(np.argmax(env.allocation, axis=1))) == 2
    return [HistoryTree(env, 2), MarkovSpace(env)]


def _kernel_product_beliefs(space):
    """``(n_hist, K)``: the prior product at the root, else the product of the kernels of the previous profile's
    action (an independent restatement of the beliefs, formerly ``StateSpace.beliefs``)."""
    env = space.env
    types, act = env.profile_types(), env.actions_by_profile()
    q = np.ones((env.n_profiles, 1))
    for j, ag in enumerate(env.agents):
        rows = ag.kernel(env.n_actions)[act, types[:, j]]
        q = (q[:, :, None] * rows[:, None, :]).reshape(env.n_profiles, -1)
    prev = space.hist_prev_profile
    return np.where((prev < 0)[:, None], env.prior_profile()[None, :], q[np.maximum(prev, 0)])


def test_beliefs_agree_with_space(markov, tree3, three_spaces):
    for space in [markov, tree3, *three_spaces]:
        ours = joint_beliefs(space)
        np.testing.assert_allclose(ours, _kernel_product_beliefs(space), atol=1e-15)
        np.testing.assert_allclose(ours.sum(axis=1), 1.0)
        for j, m in enumerate(marginal_beliefs(space)):
            assert m.shape == (space.n_hist, space.env.agents[j].n_types)
    # persistence 0.7 after (v_L, c_H): P(v_L, c_L) = 0.7 * 0.3
    assert joint_beliefs(markov)[1 + LH, LL] == pytest.approx(0.21)


# ------------------------------------------------------------------------------------ brute-force reference
def reference(mech: Mechanism, outside: float = 0.0):
    """Every constraint by explicit loops over histories, type pairs and profiles (no vectorization)."""
    space, env = mech.space, mech.env
    k_all, n, delta = env.n_profiles, env.n_agents, env.discount
    counts = env.type_counts
    prof = [tuple(int(t) for t in np.unravel_index(k, counts)) for k in range(k_all)]
    act = [int(np.argmax(env.allocation[k])) for k in range(k_all)]
    assert np.all(env.allocation.max(axis=1) == 1.0)
    ker = [ag.kernel(env.n_actions) for ag in env.agents]
    u = mech.utilities()
    b = mech.designer_values()

    def joint(s, a, kp):
        return math.prod(ker[j][a, prof[s][j], prof[kp][j]] for j in range(n))

    bel = np.zeros((space.n_hist, k_all))
    for h in range(space.n_hist):
        s = int(space.hist_prev_profile[h])
        for kp in range(k_all):
            if s < 0:
                bel[h, kp] = math.prod(env.agents[j].prior[prof[kp][j]] for j in range(n))
            else:
                bel[h, kp] = joint(s, act[s], kp)

    def ravel(own_agent, own, others):
        full = list(others[:own_agent]) + [own] + list(others[own_agent:])
        return int(np.ravel_multi_index(full, counts))

    ic_ep, ic_bayes, ir_interim = {}, {}, {}
    for i, ag in enumerate(env.agents):
        other_counts = counts[:i] + counts[i + 1 :]
        others = list(itertools.product(*[range(c) for c in other_counts]))
        p_oth = np.array(
            [[sum(bel[h, ravel(i, t, o)] for t in range(ag.n_types)) for o in others] for h in range(space.n_hist)]
        )
        ir_interim[i] = (
            np.array(
                [
                    [
                        sum(p_oth[h, m] * u[i, h * k_all + ravel(i, t, o)] for m, o in enumerate(others))
                        for t in range(ag.n_types)
                    ]
                    for h in range(space.n_hist)
                ]
            )
            - outside
        )
        for t, r in itertools.permutations(range(ag.n_types), 2):
            ep = np.zeros((space.n_hist, len(others)))
            for h in range(space.n_hist):
                for m, o in enumerate(others):
                    kt, kr = ravel(i, t, o), ravel(i, r, o)
                    a = act[kr]
                    bracket = u[i, h * k_all + kr] + ag.valuation[t, a] - ag.valuation[r, a]
                    c = space.child_hist[h * k_all + kr]
                    if c >= 0:
                        for kp in range(k_all):
                            own_diff = ker[i][a, t, prof[kp][i]] - ker[i][a, r, prof[kp][i]]
                            rest = math.prod(ker[j][a, prof[kr][j], prof[kp][j]] for j in range(n) if j != i)
                            bracket += delta * own_diff * rest * u[i, c * k_all + kp]
                    ep[h, m] = u[i, h * k_all + kt] - bracket
            ic_ep[i, t, r] = ep
            ic_bayes[i, t, r] = (p_oth * ep).sum(axis=1)
    pi = (bel * b.reshape(-1, k_all)).sum(axis=1)
    return bel, ic_ep, ic_bayes, ir_interim, pi


def test_every_row_matches_brute_force(three_spaces):
    for space in three_spaces:
        rng = np.random.default_rng(3)
        mech = Mechanism(space, rng.normal(size=(3, space.n_nodes)))
        bel, ic_ep, ic_bayes, ir_interim, pi = reference(mech, outside=0.25)
        np.testing.assert_allclose(joint_beliefs(space), bel, atol=1e-14)
        u = mech.utilities()
        for mode, ref in (("ex_post", ic_ep), ("bayesian", ic_bayes)):
            blocks = certificates._ic_blocks(space, Numbers(space.env, exact=False), u, mode)
            assert len(blocks) == len(ref)
            for blk, key in zip(blocks, ref, strict=True):  # agents in order, then pairs (t, r) t != r
                np.testing.assert_allclose(blk.slack, ref[key], atol=1e-12, err_msg=f"{mode} {key}")
        for i, ub in enumerate(interim_utilities(mech)):
            np.testing.assert_allclose(ub - 0.25, ir_interim[i], atol=1e-12)
        np.testing.assert_allclose(surplus(mech), pi, atol=1e-12)
        # verify() reports the minimum of the same rows, at the same place
        ver = verify(mech, ic="ex_post", outside_option=0.25)
        lowest = min(float(v.min()) for v in ic_ep.values())
        assert ver.max_violation["ic"] == pytest.approx(max(0.0, -lowest), abs=1e-12)
        (i, t, r), arr = min(ic_ep.items(), key=lambda kv: kv[1].min())
        h, m = np.unravel_index(int(np.argmin(arr)), arr.shape)
        w = ver.worst["ic"]
        ag = space.env.agents[i]
        assert (w.agent, w.type, w.misreport, w.history) == (ag.name, ag.types[t], ag.types[r], int(h))
        assert ver.max_violation["ir"] == pytest.approx(max(0.0, -min(float(v.min()) for v in ir_interim.values())))
        assert ver.max_violation["budget"] == pytest.approx(max(0.0, -float(pi.min())))
        assert ver.n_rows == {
            "ic": space.n_hist * (2 * 1 * 6 + 3 * 2 * 4 + 2 * 1 * 6),
            "ir": space.n_hist * 7,
            "budget": space.n_hist,
        }


# ----------------------------------------------------------------------------------------- 7. Lamba eq. (4)
def test_surplus_identity_eq4(tree3):
    # Pi(h) = E[sum_tau delta^tau welfare | h] - sum_i E[Ubar_i(theta_i|h) | h] at every history.
    space = tree3
    env = space.env
    rng = np.random.default_rng(5)
    mech = Mechanism(space, np.tile(vcg_transfers(env), (1, space.n_hist)) + rng.normal(size=(2, space.n_nodes)))
    w = continuation_values(space, env.welfare()[space.node_profile][None])[0].reshape(space.n_hist, -1)
    bel = joint_beliefs(space)
    margs = marginal_beliefs(space)
    expected_ubar = sum((m * ub).sum(axis=1) for m, ub in zip(margs, interim_utilities(mech), strict=True))
    lhs = surplus(mech)
    np.testing.assert_allclose(lhs, (bel * w).sum(axis=1) - expected_ubar, atol=1e-12)
    assert np.ptp(lhs) > 0.1  # the random transfers make the identity non-trivial


# ------------------------------------------------------------------------------------------------ reporting
def test_summary_and_json(tree3):
    x = np.tile(vcg_transfers(tree3.env), (1, tree3.n_hist))
    x[B, 20] += 0.5
    ver = verify(Mechanism(tree3, x))
    assert isinstance(ver, Verification)
    text = ver.summary()
    assert "FAILED" in text and "buyer of type v_L, history (v_L, c_L) -> (v_L, c_L)" in text
    for fam in ("ic", "ir", "budget"):
        assert f"{fam}:" in text
    back = json.loads(json.dumps(ver.to_dict()))
    assert back["ok"] is False
    assert back["worst"]["ir"]["history"] == 5
    assert back["options"] == {
        "ic": "bayesian",
        "ir": "interim",
        "budget": "interim",
        "exact": False,
        "max_denominator": None,
        "outside_option": [[0.0, 0.0], [0.0, 0.0]],
    }
    assert back["n_binding"]["ic"] == ver.n_binding["ic"]


def test_interim_utility_defined_for_zero_probability_types():
    # alpha = 1: after (v_L, c_L) the buyer is v_L for sure, yet IC still needs Ubar_B(v_H|h) (what v_L would
    # have to match by lying). With P(c_L|h) = 1 it is the utility at node (h, (v_H, c_L)) itself.
    space = HistoryTree(lamba_usstp(1.0, 0.95, 2))
    mech = Mechanism(space, np.random.default_rng(0).normal(size=(2, space.n_nodes)))
    u = mech.utilities()
    h = 1  # follows node 0 = (root, (v_L, c_L))
    assert joint_beliefs(space)[h, HL] == 0.0
    np.testing.assert_allclose(interim_utilities(mech)[B][h], [u[B, 4 * h + LL], u[B, 4 * h + HL]])

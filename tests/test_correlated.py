"""Correlated (non-product) type transitions (issue #13 item 3): a joint kernel over type profiles.

* the product special case given as a joint kernel reproduces today's answers to 1e-12 (min-max Pi*, feasibility
  statuses, verification, certificates) on a tree and a Markov space, for bilateral trade (also with kernels that
  depend on the action) and a 3-agent public project;
* the bundled correlated model: min-max, feasibility with a Farkas certificate (float and exact), an exactly
  verified mechanism, ``mechlp solve`` / ``mechlp check``;
* one Bayesian IC slack computed by hand from the definition (not via the library's belief functions);
* validation errors and the refusals of every independence-only computation.
"""

from __future__ import annotations

import copy
import tomllib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mechlp.audit.verifier import ImpossibilityCertificate, _evaluate, check_impossibility, verify
from mechlp.catalog.examples import correlated_usstp, coupled_kernel, public_project
from mechlp.catalog.io import dump_model_toml, load_model, model_from_dict
from mechlp.cli import main
from mechlp.constructions.fees import fee_condition
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.constructions.team import balanced_team, team_transfers
from mechlp.constructions.vcg import discrete_vcg
from mechlp.model.beliefs import (
    conditional_beliefs,
    joint_beliefs,
    marginal_beliefs,
    mixed_kernels,
    others_beliefs,
)
from mechlp.model.environment import Agent, Environment, bilateral_trade
from mechlp.model.exact import Numbers
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question
from mechlp.model.serialize import model_to_dict
from mechlp.model.spaces import HistoryTree, MarkovSpace
from mechlp.model.transfers import rebalance
from mechlp.proofs.margins import exact_feasible_mechanism
from mechlp.proofs.structured import structured_multipliers
from mechlp.solve import recursion
from mechlp.solve.intermediate import intermediate_minmax
from mechlp.solve.questions import feasibility, minmax
from mechlp.solve.second_best import optimal_mechanism, second_best
from mechlp.workflows.sharing import ex_post_balance, share_surplus
from mechlp.workflows.split import subtree_environment

MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "bilateral_correlated.toml"
F = np.array([[0.7, 0.3], [0.2, 0.8]])
G = np.array([[0.6, 0.4], [0.3, 0.7]])


def as_joint(env: Environment, keep_agents: bool = True) -> Environment:
    """The same environment with its product kernel given as a joint kernel (np.kron, per action if needed)."""
    if env.action_dependent:
        joint = np.stack(
            [
                _kron([ag.kernel(env.n_actions)[a] for ag in env.agents])
                for a in range(env.n_actions)  # one product matrix per action
            ]
        )
    else:
        joint = _kron([ag.transition for ag in env.agents])
    agents = env.agents
    if not keep_agents:
        agents = [Agent(a.name, a.types, a.prior, None, a.valuation, a.values, a.role) for a in env.agents]
    return Environment(
        agents, env.actions, env.discount, env.horizon, env.allocation, env.name, dict(env.meta), joint_transition=joint
    )


def _kron(mats) -> np.ndarray:
    out = np.ones((1, 1))
    for m in mats:
        out = np.kron(out, m)
    return out


def bilateral(horizon) -> Environment:
    return bilateral_trade([0.2, 1.0], [0.1, 0.7], [0.5, 0.5], [0.4, 0.6], F, G, 0.9, horizon=horizon)


def learning(horizon) -> Environment:
    """Bilateral trade whose buyer's kernel depends on the action (deterministic allocation: the myopic efficient
    rule, one table; the dynamic rule changes with the period on a tree, which correlated models do not take yet)."""
    base = bilateral(horizon)
    b, s = base.agents
    fb = np.stack([F, np.array([[0.9, 0.1], [0.4, 0.6]])])
    buyer = Agent(b.name, b.types, b.prior, fb, b.valuation, b.values, b.role)
    return Environment([buyer, s], base.actions, base.discount, horizon, "efficient_myopic", "learn", dict(base.meta))


def absorbing(horizon) -> Environment:
    """Bilateral trade where the low buyer type is absorbing: own types of probability zero at some histories
    (their beliefs about the others fall back to the others' marginal, as in the product formula)."""
    fb = np.array([[1.0, 0.0], [0.3, 0.7]])
    return bilateral_trade([0.2, 1.0], [0.1, 0.7], [0.5, 0.5], [0.4, 0.6], fb, G, 0.9, horizon=horizon)


def project(horizon) -> Environment:
    return public_project(values=((0.2, 1.0), (0.3, 0.8), (0.1, 1.2)), horizon=horizon, discount=0.8)


CASES = {
    "absorbing": absorbing,
    "bilateral": bilateral,
    "learning": learning,
    "project": project,
}


def spaces(env_p: Environment, env_c: Environment, kind: str):
    if kind == "tree":
        return HistoryTree(env_p, 3), HistoryTree(env_c, 3)
    return MarkovSpace(env_p), MarkovSpace(env_c)


# ---------------------------------------------------------------------------------------------- product case
@pytest.mark.parametrize("kind", ["tree", "markov"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_product_kernel_given_as_joint_reproduces_todays_answers(name, kind):
    env_p = CASES[name](3 if kind == "tree" else "infinite")
    env_c = as_joint(env_p)
    assert env_c.correlated and not env_p.correlated
    sp_p, sp_c = spaces(env_p, env_c, kind)
    # beliefs
    np.testing.assert_allclose(joint_beliefs(sp_c), joint_beliefs(sp_p), rtol=0, atol=1e-12)
    for i in range(env_p.n_agents):
        np.testing.assert_allclose(
            conditional_beliefs(sp_c, i), conditional_beliefs(sp_p, i), rtol=0, atol=1e-12, err_msg=f"agent {i}"
        )
    # min-max Pi* at every history: today's answer (default method) and the correlated LP
    r_p = minmax(env_p, space=sp_p)
    r_c = minmax(env_c, space=sp_c)
    assert r_p.status == r_c.status == "optimal"
    assert r_c.diagnosis["method"] == "lp" and "correlated" in r_c.diagnosis["method_reason"]
    r_lp = minmax(env_p, space=sp_p, method="lp")
    np.testing.assert_allclose(r_c.surplus, r_lp.surplus, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r_c.surplus, r_p.surplus, rtol=0, atol=1e-9)  # the recursion, to its own accuracy
    # verification of one mechanism under both environments: identical verdicts and violations
    mech_p = r_lp.mechanism
    mech_c = Mechanism(sp_c, mech_p.transfers)
    for budget in ("interim", "ex_ante", "ex_post"):
        for ic in ("bayesian", "ex_post"):
            v_p = verify(mech_p, ic=ic, budget=budget)
            v_c = verify(mech_c, ic=ic, budget=budget)
            assert v_p.ok == v_c.ok
            for fam in v_p.max_violation:
                assert abs(v_p.max_violation[fam] - v_c.max_violation[fam]) <= 1e-12, (budget, ic, fam)
    # feasibility statuses
    for budget in ("interim", "ex_ante", "ex_post"):
        f_p = feasibility(env_p, budget, space=sp_p)
        f_c = feasibility(env_c, budget, space=sp_c)
        assert f_p.status == f_c.status, budget
        assert f_c.diagnosis["route"] == "lp" and "correlated" in f_c.diagnosis["route_reason"]


def test_agents_may_omit_their_transition_and_the_answers_do_not_change():
    env_p = bilateral(3)
    env_c = as_joint(env_p, keep_agents=False)
    assert all(ag.transition is None for ag in env_c.agents)
    np.testing.assert_allclose(minmax(env_c).surplus, minmax(env_p, method="lp").surplus, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(env_c.profile_kernel()[0], np.kron(F, G))


def test_product_certificate_holds_in_the_correlated_code():
    """A Farkas certificate of the product model, re-read on the same space of the joint-kernel model, passes the
    correlated adjoint and forward evaluation (float and exact)."""
    env_p = bilateral(3)
    env_c = as_joint(env_p)
    res = feasibility(env_p, "interim")
    assert res.status == "infeasible" and res.certificate.ok
    cert_c = ImpossibilityCertificate.from_dict(res.certificate.to_dict(), HistoryTree(env_c, 3))
    assert check_impossibility(cert_c)["ok"]
    assert check_impossibility(cert_c, exact=True)["ok"]
    res_c = feasibility(env_c, "interim")
    assert res_c.status == "infeasible" and res_c.certificate.ok


# ---------------------------------------------------------------------------------------------- the bundled model
def test_bundled_model_reads_and_round_trips():
    env = load_model(MODEL_FILE)
    assert env.correlated and env.joint_transition.shape == (2, 4, 4)
    ref = correlated_usstp(0.5, after_trade_only=True)
    np.testing.assert_allclose(env.joint_transition, ref.joint_transition, rtol=0, atol=1e-15)
    text = dump_model_toml(env)
    assert tomllib.loads(text) == model_to_dict(env)
    again = model_from_dict(tomllib.loads(text), "again")
    np.testing.assert_array_equal(again.joint_transition, env.joint_transition)
    assert model_to_dict(again) == model_to_dict(env)


def test_bundled_model_questions():
    env = load_model(MODEL_FILE)
    mm = minmax(env)
    assert mm.status == "optimal" and mm.diagnosis["method"] == "lp"
    assert "Lemma 6" in mm.diagnosis["method_reason"]
    feas = feasibility(env, "interim", exact=True)
    assert feas.status == "optimal" and feas.certificate.ok
    assert feas.exact_check is not None and feas.exact_check.ok
    assert verify(feas.exact_mechanism, exact=True).ok
    # three periods: infeasible (histories after a no-trade profile are static, independent, and lose money)
    inf = feasibility(env, "interim", horizon=3)
    assert inf.status == "infeasible"
    assert check_impossibility(inf.certificate)["ok"]
    exact = check_impossibility(inf.certificate, exact=True)
    assert exact["ok"] and exact["nonzero"] == 0 and exact["L0"] < 0
    assert any(np.any(np.asarray(y, dtype=float) > 0) for y in inf.certificate.ic.values())  # IC rows are used


def test_bundled_model_cli(tmp_path, capsys):
    cert = tmp_path / "c.json"
    assert main(["solve", str(MODEL_FILE), "--certificate", str(cert)]) == 0
    assert main(["check", str(MODEL_FILE), str(cert), "--exact"]) == 0
    cert3 = tmp_path / "c3.json"
    assert main(["solve", str(MODEL_FILE), "--horizon", "3", "--certificate", str(cert3)]) == 0
    assert main(["check", str(MODEL_FILE), str(cert3), "--horizon", "3", "--exact"]) == 0
    out = capsys.readouterr().out
    assert "certificate HOLDS" in out and "INFEASIBLE" in out
    # the certificate is about the correlated model: the product model (same marginals) is another model
    assert main(["check", str(Path(MODEL_FILE).parent / "lamba_usstp.toml"), str(cert)]) != 0


def test_correlation_sweep_full_extraction():
    """Cremer-McLean style: with any positive correlation the designer extracts the whole surplus (agents' rents
    vanish), while the product model leaves rents; numbers in docs/design.md section 4.6."""
    rents = {}
    for rho in (0.0, 0.1, 0.5):
        res = minmax(correlated_usstp(rho), method="lp")
        sp = res.space
        margs = marginal_beliefs(sp)
        ubar = res.mechanism.interim_utilities()
        rents[rho] = sum((u * m).sum(axis=1) for u, m in zip(ubar, margs, strict=True))
    assert rents[0.0][0] > 0.7  # Lamba's USSTP: the agents keep 0.766 at the root
    assert np.abs(rents[0.1]).max() < 1e-9 and np.abs(rents[0.5]).max() < 1e-9


# ---------------------------------------------------------------------------------------------- by hand
def test_bayesian_ic_slack_by_hand():
    """Buyer's IC at the root and at a period-2 history of a 2-period correlated tree, from the definition.

    The joint kernel depends on the action (independent after no trade, coupled after trade), so the deviation's
    law -- the row of the profile (true type, others) under the action of the *reported* profile -- is tested.
    """
    joint = np.stack([np.kron(F, G), coupled_kernel(F, G, 0.6)])  # [action, profile, next profile]
    env = bilateral_trade([0.2, 1.0], [0.1, 0.7], [0.5, 0.5], [0.4, 0.6], F, G, 0.9, 2, joint_transition=joint)
    tree = HistoryTree(env, 2)
    res = minmax(env, space=tree)
    x = res.mechanism.transfers  # (2, n_nodes)
    k, delta = 4, 0.9
    values, costs = [0.2, 1.0], [0.1, 0.7]
    val_b = np.array([[0.0, v] for v in values])  # buyer v(type, action)
    act = np.array([1 if values[v] > costs[c] else 0 for v in range(2) for c in range(2)])  # efficient rule
    flow_b = np.array([val_b[p // 2, act[p]] for p in range(k)])
    child = np.asarray(tree.child_hist)
    # U_buyer by backward recursion with the joint kernel of the realised action (leaves: no continuation)
    u = np.zeros(tree.n_nodes)
    for g in range(tree.n_nodes - 1, -1, -1):  # a handful of nodes: a plain loop is the point here
        p = g % k
        cont = 0.0
        if child[g] >= 0:
            cont = sum(joint[act[p], p, q] * u[child[g] * k + q] for q in range(k))
        u[g] = flow_b[p] - x[0, g] + delta * cont
    prior = np.kron([0.5, 0.5], [0.4, 0.6])
    t, r = 1, 0  # v_H reports v_L

    def slack(h: int, belief: np.ndarray) -> float:
        cond = belief.reshape(2, 2)[t] / belief.reshape(2, 2)[t].sum()  # P(c | v_H, h)
        total = 0.0
        for c in range(2):
            truth, lie = t * 2 + c, r * 2 + c
            a = act[lie]  # the allocation follows the report
            dev = u[h * k + lie] + (val_b[t, a] - val_b[r, a])
            if child[h * k + lie] >= 0:  # the buyer's type moves on from the TRUE type: row (t, c), action a
                dev += delta * sum(
                    (joint[a, truth, q] - joint[a, lie, q]) * u[child[h * k + lie] * k + q] for q in range(k)
                )
            total += cond[c] * (u[h * k + truth] - dev)
        return total

    h2 = int(child[0 * k + 2])  # after the profile (v_H, c_L), a trade: belief = row 2 of the trade kernel
    by_hand = {0: slack(0, prior), h2: slack(h2, joint[1, 2])}
    fams = _evaluate(tree, Numbers(env, exact=False), x, "bayesian", "interim", "none", [np.zeros(2), np.zeros(2)])
    block = next(b for b in fams["ic"] if b.key == (0, t, r))
    for h, value in by_hand.items():
        assert value >= -1e-9
        assert abs(block.slack[h] - value) <= 1e-10, h
    # the conditioning matters: with the unconditional belief about the seller the slack is different
    marg = joint[1, 2].reshape(2, 2).sum(axis=0)
    wrong = sum(
        marg[c] * (u[h2 * k + t * 2 + c] - u[h2 * k + r * 2 + c] - (val_b[t, act[c]] - val_b[r, act[c]]))
        for c in range(2)
    )
    assert abs(wrong - by_hand[h2]) > 1e-6


# ---------------------------------------------------------------------------------------------- validation
def _agents():
    return list(bilateral(3).agents)


def _env(joint, agents=None, allocation="efficient"):
    return Environment(agents or _agents(), ("no_trade", "trade"), 0.9, 3, allocation, joint_transition=joint)


def test_joint_transition_shape_is_checked():
    with pytest.raises(ValueError, match=r"joint_transition has shape \(3, 3\); expected \(4, 4\)"):
        _env(np.full((3, 3), 1 / 3))


def test_joint_transition_stack_shape_is_checked():
    with pytest.raises(ValueError, match=r"joint_transition has shape \(3, 4, 4\); expected \(2, 4, 4\)"):
        _env(np.full((3, 4, 4), 0.25))


def test_joint_transition_dimensions_are_checked():
    with pytest.raises(ValueError, match="joint_transition has 1 dimensions"):
        _env(np.full(4, 0.25))


def test_joint_transition_rows_sum_to_one():
    joint = np.kron(F, G)
    joint[1, 0] += 0.1
    with pytest.raises(ValueError, match=r"joint_transition row 1 \(profile .*\) sums to 1.1"):
        _env(joint, [Agent(a.name, a.types, a.prior, None, a.valuation, a.values, a.role) for a in _agents()])


def test_joint_transition_entries_are_probabilities():
    joint = np.kron(F, G)
    joint[2, 0], joint[2, 1] = -0.1, joint[2, 1] + joint[2, 0] + 0.1
    with pytest.raises(ValueError, match=r"joint_transition row 2 .* negative probability -0.1 at index 0"):
        _env(joint)


def test_joint_transition_nan_is_named():
    joint = np.kron(F, G)
    joint[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"joint_transition row 3 .* has NaN at index 2"):
        _env(joint)


def test_joint_transition_per_action_rows_name_the_action():
    joint = np.stack([np.kron(F, G), np.kron(F, G)])
    joint[1, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"joint_transition row 0 \(profile .*\) for action 1 sums to"):
        _env(joint)


def test_joint_transition_must_be_numeric():
    with pytest.raises(TypeError, match="joint_transition must be numeric"):
        _env("uniform")


def test_agent_transition_must_be_the_marginal():
    joint = coupled_kernel(F, G, 0.5)
    joint = joint[:, [0, 2, 1, 3]]  # swap the columns of (v1, c2) and (v2, c1): the marginals change
    with pytest.raises(ValueError, match=r"transition of agent 'buyer' is not the marginal of joint_transition"):
        _env(joint)


def test_agent_without_transition_needs_a_joint_kernel():
    agents = _agents()
    agents[1] = Agent("seller", agents[1].types, agents[1].prior, None, agents[1].valuation)
    with pytest.raises(ValueError, match=r"transition of agent 'seller' \(agents\[1\]\) is None"):
        Environment(agents, ("no_trade", "trade"), 0.9, 3)


def test_agent_without_transition_has_no_kernel():
    ag = Agent("b", ["l", "h"], [0.5, 0.5], None, [[0, 1], [0, 2]])
    assert not ag.is_fosd() and not ag.action_dependent
    with pytest.raises(ValueError, match="agent 'b' has no transition of its own"):
        ag.kernel(2)


def test_per_action_joint_kernel_needs_a_deterministic_allocation():
    joint = np.stack([np.kron(F, G), coupled_kernel(F, G, 0.5)])
    with pytest.raises(ValueError, match="randomises while a kernel depends on the action"):
        _env(joint, allocation=np.full((4, 2), 0.5))


# ---------------------------------------------------------------------------------------------- TOML errors
def _doc() -> dict:
    with open(MODEL_FILE, "rb") as fh:
        return tomllib.load(fh)


def test_toml_profiles_order_is_checked():
    doc = _doc()
    doc["joint_transition"]["profiles"][1], doc["joint_transition"]["profiles"][2] = "v_H, c_L", "v_L, c_H"
    with pytest.raises(ValueError, match=r"m.toml: \[joint_transition\]: key 'profiles': entry 1 is 'v_H, c_L'"):
        model_from_dict(doc, "m.toml")


def test_toml_profiles_count_is_checked():
    doc = _doc()
    doc["joint_transition"]["profiles"] = doc["joint_transition"]["profiles"][:3]
    with pytest.raises(ValueError, match="key 'profiles' has 3 entries; expected 4"):
        model_from_dict(doc, "m.toml")


def test_toml_joint_needs_profiles():
    doc = _doc()
    del doc["joint_transition"]["profiles"]
    with pytest.raises(ValueError, match=r"\[joint_transition\]: missing key 'profiles'"):
        model_from_dict(doc, "m.toml")


def test_toml_joint_unknown_key():
    doc = _doc()
    doc["joint_transition"]["order"] = "C"
    with pytest.raises(ValueError, match=r"\[joint_transition\].*'order'"):
        model_from_dict(doc, "m.toml")


def test_toml_joint_must_be_a_table():
    doc = _doc()
    doc["joint_transition"] = [[0.25] * 4] * 4
    with pytest.raises(ValueError, match="'joint_transition' must be a table"):
        model_from_dict(doc, "m.toml")


def test_toml_joint_matrix_actions():
    doc = _doc()
    doc["joint_transition"]["matrix"]["build"] = doc["joint_transition"]["matrix"].pop("trade")
    with pytest.raises(ValueError, match=r"\[joint_transition\].*build"):
        model_from_dict(doc, "m.toml")


def test_toml_agents_may_omit_transition_with_a_joint_kernel():
    doc = _doc()
    for ag in doc["agents"]:
        del ag["transition"]
    env = model_from_dict(doc, "m.toml")
    assert env.correlated and all(ag.transition is None for ag in env.agents)
    again = model_from_dict(tomllib.loads(dump_model_toml(env)), "again")
    assert model_to_dict(again) == model_to_dict(env)
    no_joint = copy.deepcopy(doc)
    del no_joint["joint_transition"]
    with pytest.raises(ValueError, match="missing key 'transition'"):
        model_from_dict(no_joint, "m.toml")


def test_toml_general_schema_joint_kernel():
    env = as_joint(project("infinite"))
    text = dump_model_toml(env)
    back = model_from_dict(tomllib.loads(text), "p.toml")
    assert back.correlated and back.n_agents == 3
    np.testing.assert_array_equal(back.joint_transition, env.joint_transition)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def corr() -> Environment:
    return correlated_usstp(0.5)


def test_recursion_is_refused(corr):
    with pytest.raises(ValueError, match="method='recursion' needs types independent across agents"):
        minmax(corr, method="recursion")


def test_recursion_solver_is_refused(corr):
    with pytest.raises(ValueError, match="Lemma 6 recursion"):
        recursion.solve(MarkovSpace(corr))


def test_others_beliefs_is_refused(corr):
    with pytest.raises(ValueError, match=r"others_beliefs .* assumes types independent"):
        others_beliefs(MarkovSpace(corr), 0)


def test_mixed_kernels_is_refused(corr):
    with pytest.raises(ValueError, match=r"mixed_kernels .* assumes types independent"):
        mixed_kernels(corr)


def test_lamba_closed_form_is_refused(corr):
    with pytest.raises(ValueError, match="minmax_closed_form assumes types independent"):
        minmax_closed_form(corr)


def test_pivot_is_refused(corr):
    with pytest.raises(ValueError, match="dynamic pivot .* assumes types independent"):
        dynamic_pivot(corr)


def test_balanced_team_is_refused(corr):
    with pytest.raises(ValueError, match="balanced team mechanism .* assumes types independent"):
        balanced_team(corr)


def test_fees_are_refused(corr):
    with pytest.raises(ValueError, match="lump-sum fee condition assumes types independent"):
        fee_condition(corr)


def test_rebalancing_is_refused(corr):
    sp = MarkovSpace(corr)
    with pytest.raises(ValueError, match=r"rebalance \(Lamba 2022, Proposition 1\) keeps interim payments only"):
        rebalance(sp, np.zeros((2, sp.n_nodes)), marginal_beliefs(sp))


def test_subtree_environment_is_refused(corr):
    with pytest.raises(ValueError, match="subtree_environment .* assumes types independent"):
        subtree_environment(corr, 0, 2)


def test_structured_certificate_does_not_apply(corr):
    sp = HistoryTree(correlated_usstp(0.5, horizon=2, after_trade_only=True), 2)
    q = Question.parse(sp.env, budget="interim")
    assert structured_multipliers(sp, q, -np.ones(sp.n_hist), interim_utilities=[np.zeros((sp.n_hist, 2))] * 2) is None


def test_exact_ex_post_margins_are_refused(corr):
    mech, why = exact_feasible_mechanism(MarkovSpace(corr), budget="ex_post")
    assert mech is None and "independent types" in why


def test_static_vcg_and_team_transfers_stay_correct(corr):
    """History-independent transfers of the current reports: ex post IC whatever the correlation (the verifier,
    with beliefs conditioned on the own type, agrees)."""
    sp = MarkovSpace(corr)
    assert verify(discrete_vcg(sp), ic="ex_post", ir="ex_post", budget="none").ok
    assert verify(Mechanism(sp, team_transfers(sp)), ic="ex_post", ir="ex_post", budget="none").ok


def test_second_best_is_refused(corr):
    with pytest.raises(ValueError, match=r"second_best \(the interim allocation program\) assumes types independent"):
        second_best(corr)


def test_optimal_mechanism_is_refused(corr):
    with pytest.raises(ValueError, match="second_best .* assumes types independent"):
        optimal_mechanism(corr)


def test_intermediate_mechanism_is_refused(corr):
    with pytest.raises(ValueError, match="intermediate mechanism .* assumes types independent"):
        intermediate_minmax(correlated_usstp(0.5, horizon=2))


def test_sharing_is_refused(corr):
    with pytest.raises(ValueError, match="share_surplus .* assumes types independent"):
        share_surplus(corr)


def test_ex_post_balance_is_refused(corr):
    mech = minmax(corr).mechanism
    with pytest.raises(ValueError, match=r"ex_post_balance \(Lamba 2022, Proposition 1\) assumes"):
        ex_post_balance(mech)


def test_exact_numbers_hold_the_joint_kernel():
    env = load_model(MODEL_FILE)
    nums = Numbers(env, exact=True)
    assert nums.joint.shape == (2, 4, 4)
    assert all(sum(row) == 1 for row in nums.joint.reshape(-1, 4))
    assert nums.joint[1, 0, 0] == Fraction(119, 200)  # 0.595 read as written
    assert nums.largest_denominator() >= 200
    assert Numbers(env, exact=False).joint.dtype == float


def test_coupled_kernel_correlation_is_checked():
    with pytest.raises(ValueError, match=r"correlation must lie in \[0, 1\], got 1.5"):
        coupled_kernel(F, G, 1.5)


def test_coupled_kernel_keeps_the_marginals():
    joint = coupled_kernel(F, G, 0.7).reshape(2, 2, 2, 2)  # [x, y, x', y']
    np.testing.assert_allclose(joint.sum(axis=3), np.broadcast_to(F[:, None, :], (2, 2, 2)), atol=1e-15)
    np.testing.assert_allclose(joint.sum(axis=2), np.broadcast_to(G[None, :, :], (2, 2, 2)), atol=1e-15)
    np.testing.assert_allclose(coupled_kernel(F, G, 0.0), np.kron(F, G), atol=1e-15)
    # full coupling from (x1, y1): both stay low with probability min(0.7, 0.6)
    assert abs(coupled_kernel(F, G, 1.0)[0, 0] - 0.6) < 1e-15


def test_feasibility_message_names_the_lp_route(corr):
    res = feasibility(corr, "interim")
    assert "correlated types" in res.message and res.diagnosis["route"] == "lp"

"""Second best and optimal mechanisms for learning models (kernels per action) on the realised-action tree
(issue #13, item 2): the occupation-measure LP of mechlp.solve.learning, checked against an independent row
evaluation written here (loops over histories: unscaled rows at every reached history)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from mechlp.backends import solve_arrays
from mechlp.cli import main
from mechlp.cli.second_best import second_best_payload
from mechlp.model.beliefs import action_reach
from mechlp.model.environment import bilateral_trade
from mechlp.model.mechanism import ActionMechanism
from mechlp.model.spaces import ActionTree
from mechlp.solve import learning
from mechlp.solve.learning import LearningResult, build_learning_lp, second_best_learning
from mechlp.solve.second_best import optimal_mechanism, second_best

F_BUYER = np.array([[0.8, 0.2], [0.3, 0.7]])
F_SELLER = np.array([[0.6, 0.4], [0.1, 0.9]])
#: Yoon (2021, section 2) style: the buyer learns its value only through trade (after no trade its next value is
#: a fresh draw from the prior; after trade it persists).
LEARN_BUYER = np.stack([[[0.5, 0.5], [0.5, 0.5]], [[0.95, 0.05], [0.05, 0.95]]])


def _trade(buyer_kernel, seller_kernel, horizon):
    return bilateral_trade([1.0, 3.0], [0.5, 2.0], [0.5, 0.5], [0.4, 0.6], buyer_kernel, seller_kernel, 0.9, horizon)


# ---------------------------------------------------------------------------------------------- independent rows
def _kernel(agent, a):
    kern = agent.transition
    return kern[a] if kern.ndim == 3 else kern


def realised_slacks(mech: ActionMechanism, ir="interim", budget="interim", outside=0.0) -> dict[str, float]:
    """The smallest slack of each row family of the *unscaled* problem at every reached history (pi(h) > 1e-9),
    by explicit loops: Bayesian IC (one-shot lies), IR, budget. Written without the LP builder."""
    space, env = mech.space, mech.env
    k, na, delta = env.n_profiles, env.n_actions, env.discount
    u, b = mech.utilities(), mech.designer_values()
    p, x = mech.allocation, mech.transfers
    reach = action_reach(space, p)
    types = env.profile_types()
    counts = env.type_counts

    def belief(h, j):  # P_j(. | h)
        if h == 0:
            return env.agents[j].prior
        g, a = divmod(h - 1, na)
        return _kernel(env.agents[j], a)[types[g % k, j]]

    def joint(h):
        out = np.ones(k)
        for s in range(k):
            for j in range(env.n_agents):
                out[s] *= belief(h, j)[types[s, j]]
        return out

    worst = {"ic": np.inf, "ir": np.inf, "budget": np.inf}
    for h in range(space.n_hist):
        if reach[h] <= 1e-9:
            continue
        pj = joint(h)
        if budget == "interim" or (budget == "ex_ante" and h == 0):
            worst["budget"] = min(worst["budget"], float(pj @ b[h * k : h * k + k]))
        if budget == "ex_post":  # balance at every node
            worst["budget"] = min(worst["budget"], -float(np.abs(x[:, h * k : h * k + k].sum(axis=0)).max()))
        for i, ag in enumerate(env.agents):
            for t in range(ag.n_types):
                own = [s for s in range(k) if types[s, i] == t]
                w_own = np.array(  # the others' belief P(m|h), independent of the own type
                    [np.prod([belief(h, j)[types[s, j]] for j in range(env.n_agents) if j != i]) for s in own]
                )
                truthful = float(w_own @ u[i, [h * k + s for s in own]])
                if ir == "interim" or (ir == "ex_ante" and h == 0):  # ex ante: the interim rows at the root
                    worst["ir"] = min(worst["ir"], truthful - outside)
                if ir == "ex_post":
                    worst["ir"] = min(worst["ir"], float(u[i, [h * k + s for s in own]].min()) - outside)
                for r in range(ag.n_types):
                    if r == t:
                        continue
                    lie = 0.0
                    for w, s in zip(w_own, own, strict=True):
                        prof = list(types[s])
                        prof[i] = r
                        g_r = h * k + int(np.ravel_multi_index(tuple(prof), counts))
                        val = -x[i, g_r]
                        for a in range(na):
                            cont = 0.0
                            kid = space.child_hist[g_r, a]
                            if kid >= 0:
                                for s2 in range(k):
                                    pr = _kernel(ag, a)[t, types[s2, i]]
                                    for j in range(env.n_agents):
                                        if j != i:
                                            pr *= _kernel(env.agents[j], a)[types[s, j], types[s2, j]]
                                    cont += pr * u[i, kid * k + s2]
                            val += p[g_r, a] * (ag.valuation[t, a] + delta * cont)
                        lie += w * val
                    worst["ic"] = min(worst["ic"], truthful - lie)
    return worst


def _best_deterministic(env, rules, **question) -> float:
    """The best value over deterministic allocations ``rules`` (each ``(n_nodes, A)``), transfers by the LP with
    the allocation fixed (its columns q = pi p pinned)."""
    space = ActionTree(env)
    prog = build_learning_lp(space, **question)
    best = -np.inf
    na = space.n_actions
    for alloc in rules:
        q = np.repeat(action_reach(space, alloc), env.n_profiles)[:, None] * alloc
        lo, hi = prog.col_lower.copy(), prog.col_upper.copy()
        lo[: q.size] = hi[: q.size] = q.reshape(-1)
        out = solve_arrays(prog.A, prog.row_lower, prog.row_upper, lo, hi, prog.cost)
        if out.status == "optimal":
            best = max(best, -float(out.objective))
    assert space.n_nodes * na == q.size
    return best


def _period_rules(env, horizon, stationary):
    """Deterministic allocations that depend on the period and the current profile (or the profile only)."""
    space = ActionTree(env)
    k = env.n_profiles
    period = np.repeat(space.hist_period, k) - 1
    prof = np.tile(np.arange(k), space.n_hist)
    per = 1 if stationary else horizon
    for acts in itertools.product(range(env.n_actions), repeat=k * per):
        table = np.array(acts).reshape(per, k)
        alloc = np.zeros((space.n_nodes, env.n_actions))
        alloc[np.arange(space.n_nodes), table[0 if stationary else period, prof]] = 1.0
        yield alloc


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("horizon", [2, 3])
@pytest.mark.parametrize(
    ("objective", "budget", "ir"),
    [
        ("welfare", "interim", "interim"),
        ("revenue", "none", "interim"),
        ("gains_from_trade", "ex_post", "ex_post"),
        ("welfare", "ex_ante", "ex_ante"),
    ],
)
def test_action_free_copies_match_history_tree(horizon, objective, budget, ir):
    """Kernels that ignore the action, given per action as identical copies: the realised-action LP (reached
    through second_best's dispatch) has the value of today's second best on the history tree."""
    plain = second_best(_trade(F_BUYER, F_SELLER, horizon), objective=objective, budget=budget, ir=ir)
    copies = _trade(np.stack([F_BUYER, F_BUYER]), np.stack([F_SELLER, F_SELLER]), horizon)
    res = second_best(copies, objective=objective, budget=budget, ir=ir)
    assert isinstance(res, LearningResult) and res.status == "not_proved", res.message
    assert abs(res.value - plain.value) < 1e-8
    assert abs(res.lp_value - plain.value) < 1e-8
    assert min(realised_slacks(res.mechanism, ir=ir, budget=budget).values()) >= -1e-7


@pytest.mark.parametrize("horizon", [2, 3])
def test_learning_second_best_between_deterministic_and_first_best(horizon):
    env = _trade(LEARN_BUYER, F_SELLER, horizon)
    res = second_best(env, objective="welfare", budget="interim")
    assert isinstance(res, LearningResult) and res.status == "not_proved", res.message
    det = _best_deterministic(env, _period_rules(env, horizon, stationary=horizon > 2))
    assert det > -np.inf
    assert det - 1e-8 <= res.value <= res.first_best + 1e-8
    slack = realised_slacks(res.mechanism, ir="interim", budget="interim")
    assert min(slack.values()) >= -1e-7, slack
    # the scaled rows at the mechanism's own point hold too, and the value is recomputed, not read off the solver
    assert min(res.method["min_slack"].values()) >= -1e-7
    assert abs(res.value - res.lp_value) < 1e-7
    # first best: the dynamic programme beats every deterministic rule without incentives
    assert res.first_best >= _best_deterministic(env, _period_rules(env, horizon, True), budget="none", ir="ex_ante")


def test_learning_first_best_is_dynamic():
    """With learning, trading early has an option value: the first best is the dynamic programme, at least the
    welfare of every stationary deterministic rule evaluated by the mechanism's own recursion."""
    env = _trade(LEARN_BUYER, F_SELLER, 3)
    space = ActionTree(env)
    fb, alloc = learning.first_best_learning(space)
    zero = np.zeros((env.n_agents, space.n_nodes))
    assert abs(learning.welfare_learning(ActionMechanism(space, alloc, zero)) - fb) < 1e-12
    for rule in _period_rules(env, 3, stationary=True):
        assert learning.welfare_learning(ActionMechanism(space, rule, zero)) <= fb + 1e-12


@pytest.mark.parametrize("horizon", [2, 3])
def test_learning_revenue_ex_ante(horizon):
    """Revenue-optimal mechanism with ex ante participation (the interim rows at the root only) on a learning
    model: at least the best deterministic rule's revenue, at most the first-best welfare and the answer's own
    welfare, at least the revenue with interim participation (fewer rows), rows verified independently; on
    action-free copies it equals today's optimal mechanism on the history tree."""
    env = _trade(LEARN_BUYER, F_SELLER, horizon)
    res = optimal_mechanism(env, ir="ex_ante")
    assert isinstance(res, LearningResult) and res.status == "not_proved", res.message
    det = _best_deterministic(
        env, _period_rules(env, horizon, stationary=horizon > 2), objective="revenue", budget="none", ir="ex_ante"
    )
    assert det - 1e-8 <= res.value <= min(res.first_best, res.welfare) + 1e-8
    assert min(realised_slacks(res.mechanism, ir="ex_ante", budget="none").values()) >= -1e-7
    interim = optimal_mechanism(env)
    assert interim.status == "not_proved" and interim.value <= res.value + 1e-9
    assert min(realised_slacks(interim.mechanism, ir="interim", budget="none").values()) >= -1e-7
    plain = optimal_mechanism(_trade(F_BUYER, F_SELLER, horizon), ir="ex_ante")
    copies = optimal_mechanism(_trade(np.stack([F_BUYER] * 2), np.stack([F_SELLER] * 2), horizon), ir="ex_ante")
    assert abs(copies.value - plain.value) < 1e-8


def test_verify_realised_accepts_the_answers():
    env = _trade(LEARN_BUYER, F_SELLER, 2)
    res = second_best_learning(env)
    assert res.method["verifier"] == "verify_realised" and res.certificate.ok


def test_refusals_and_validation():
    env = _trade(LEARN_BUYER, F_SELLER, "infinite")
    with pytest.raises(ValueError, match="infinite horizon is refused; give horizon"):
        second_best(env)
    with pytest.raises(ValueError, match="infinite horizon is refused"):
        optimal_mechanism(env)
    assert second_best(env, horizon=2).status == "not_proved"
    finite = _trade(LEARN_BUYER, F_SELLER, 2)
    with pytest.raises(ValueError, match="ic='bayesian' and no limits"):
        second_best(finite, ic="ex_post")
    with pytest.raises(ValueError, match="give horizon, not space"):
        second_best(finite, space=ActionTree(finite))
    with pytest.raises(ValueError, match="budget must be one of"):
        second_best_learning(finite, budget="savings")
    with pytest.raises(ValueError, match="ir must be one of"):
        second_best_learning(finite, ir="never")
    with pytest.raises(ValueError, match="transfer_bound must be a finite number >= 0"):
        second_best_learning(finite, transfer_bound=-1.0)
    with pytest.raises(TypeError, match="space must be an ActionTree"):
        build_learning_lp(object())


def test_transfer_bound_rows():
    """|x| <= M in scaled form: a huge bound leaves the value, a zero bound forbids transfers (then IR and the
    budget hold with the allocation alone)."""
    env = _trade(LEARN_BUYER, F_SELLER, 2)
    free = second_best_learning(env)
    big = second_best_learning(env, transfer_bound=1e3)
    assert abs(big.value - free.value) < 1e-7 and big.status == "not_proved"
    none = second_best_learning(env, transfer_bound=0.0)
    assert none.status == "not_proved" and np.abs(none.mechanism.transfers).max() < 1e-9
    assert none.value <= free.value + 1e-9


def test_unattained_relaxation_is_resolved_with_a_transfer_bound():
    """Welfare with ex ante budget and participation: the unbounded LP places transfers at histories it never
    reaches (its scaled rows fail at the recovered mechanism); the answer is the re-solve with |x| <= M, verified,
    with the relaxation's value, hence optimal among all mechanisms (and equal to the history tree's)."""
    copies = _trade(np.stack([F_BUYER, F_BUYER]), np.stack([F_SELLER, F_SELLER]), 2)
    res = second_best_learning(copies, budget="ex_ante", ir="ex_ante")
    assert res.status == "not_proved" and "relaxation_value" in res.method and res.method["unbounded_optimal"]
    assert abs(res.value - res.method["relaxation_value"]) < 1e-8
    assert np.abs(res.mechanism.transfers).max() <= learning.RETRY_TRANSFER_BOUND * (1 + 3.0 * 2) + 1e-9
    assert min(realised_slacks(res.mechanism, ir="ex_ante", budget="ex_ante").values()) >= -1e-7


def test_cli_payload_of_a_learning_answer():
    """The ``second-best`` command's JSON payload reads a learning answer: the allocation table lists the reached
    histories (with their reach), the verification is verify_realised's."""
    res = second_best(_trade(LEARN_BUYER, F_SELLER, 2))
    payload = second_best_payload(res, "welfare", "interim")
    assert payload["status"] == "not_proved" and payload["dual_bound"] is None
    assert payload["verification"]["ok"] is True
    reached = int((res.reach > 1e-9).sum())
    assert len(payload["allocation"]) == reached * 4
    assert all(abs(sum(row["p"].values()) - 1) < 1e-12 and row["reach"] > 0 for row in payload["allocation"])


def test_bundled_learning_model_from_the_command_line(tmp_path, capsys):
    """models/learning_trade.toml (the buyer learns by trading, T = 3): second best and the revenue-optimal
    mechanism answered on the realised-action tree and verified by verify_realised, from the model file."""
    model = str(Path(__file__).resolve().parents[1] / "models" / "learning_trade.toml")
    for objective in ("welfare", "revenue"):
        out = tmp_path / f"{objective}.json"
        assert main(["second-best", model, "--objective", objective, "--json", str(out)]) == 3  # verified, not proved
        payload = json.loads(out.read_text())
        assert payload["status"] == "not_proved" and payload["verification"]["ok"]
        assert payload["value"] <= payload["first_best"] + 1e-9
    capsys.readouterr()

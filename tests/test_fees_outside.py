r"""Yoon's lump-sum fees with Bergemann-Valimaki's outside values :math:`O_i` (issue #13, item 5).

The pivot gives agent :math:`i` the utility :math:`M_i = W - W_{-i}` at every node and satisfies B-V's periodic
participation constraint :math:`M_i \ge O_i`, where :math:`O_i` is what agent :math:`i` gets if it opts out and
the planner runs the others' efficient policy. A lump-sum fee paid at the root lowers agent :math:`i`'s root
utility only, so the largest fee it accepts is the smallest interim participation slack at the root,

.. math:: L_i = \min_{\theta_i} \sum_{\theta_{-i}} \prod_{j \ne i} f_j^0(\theta_j)\,
          [M_i(\theta_i, \theta_{-i}) - O_i(\theta_i, \theta_{-i})],

and ex ante balance is reachable iff :math:`\sum_i L_i \ge -\Pi^{piv}(\text{root})` (Yoon 2015's (*) with the
participation constraint against :math:`O_i`; with :math:`O_i = 0`, as in Yoon's bilateral trade where nothing
trades without the buyer or the seller, it is Yoon's (*) verbatim). The expected values below are computed from
:class:`~mechlp.constructions.pivot.PivotValues` by that definition (loops over profiles), or from closed forms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_outside_options import NEGATIVE_PROJECT

from mechlp.audit.verifier import verify
from mechlp.catalog.examples import lamba_usstp, yoon_binary
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.constructions.fees import critical_discount, fee_condition, lump_sum_fees
from mechlp.constructions.pivot import pivot_outside_on_space, pivot_values
from mechlp.model.environment import Agent, Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import HistoryTree

MODELS = Path(__file__).resolve().parents[1] / "models"


def root_interim(env: Environment, per_profile: np.ndarray, agent: int) -> np.ndarray:
    """:math:`\\sum_{\\theta_{-i}} \\prod_{j \\ne i} f_j^0(\\theta_j) X(\\theta)` per own type (loop over profiles)."""
    types = env.profile_types()
    out = np.zeros(env.agents[agent].n_types)
    for k in range(env.n_profiles):
        weight = np.prod([ag.prior[types[k, j]] for j, ag in enumerate(env.agents) if j != agent])
        out[types[k, agent]] += weight * per_profile[k]
    return out


def fee_by_definition(env: Environment, *, outside: bool = True) -> tuple[np.ndarray, float]:
    """``(L, deficit)``: the largest root fees against :math:`O_i` (or against 0) and the pivot's root deficit."""
    pv = pivot_values(env)
    m, o = pv.marginal[0], pv.outside[0]
    fees = np.array(
        [
            (root_interim(env, m[i], i) - (root_interim(env, o[i], i) if outside else 0.0)).min()
            for i in range(env.n_agents)
        ]
    )
    deficit = -float(env.prior_profile() @ (pv.W[0] - m.sum(axis=0)))
    return fees, deficit


def with_root_fees(res, fees: np.ndarray) -> Mechanism:
    """The pivot of ``res`` with ``fees`` charged at the root nodes."""
    sp_ = res.pivot.space
    x = res.pivot.mechanism.transfers.copy()
    x[:, np.flatnonzero(sp_.node_hist == 0)] += fees[:, None]
    return Mechanism(sp_, x)


# ---------------------------------------------------------------------------------------------- (1) O_i != 0
def test_fees_on_a_disliked_project_are_bounded_by_the_slack_against_the_outside_values(tmp_path, capsys):
    path = tmp_path / "project.toml"
    path.write_text(NEGATIVE_PROJECT)
    env = load_model(str(path))
    expected, deficit = fee_by_definition(env)
    res = lump_sum_fees(env)
    assert res.status == "feasible", res.message
    assert res.verification.ok and res.verification_ex_post.ok
    assert res.verification.options["outside_values"] == "per node"
    np.testing.assert_allclose(res.fees, expected, atol=1e-12)
    np.testing.assert_allclose(res.condition.worst_payoff, expected, atol=1e-12)
    assert res.condition.slack == pytest.approx(expected.sum() - deficit, abs=1e-12)
    assert res.surplus[0] == pytest.approx(res.pivot.surplus[0] + expected.sum(), abs=1e-10)
    assert res.condition.has_outside and "outside value O_i" in res.condition.message
    # a3 dislikes the project: its pivot payoff is negative for both types, yet it is better off inside than out
    # and pays a positive fee
    assert res.condition.root_payoffs[2].max() < 0 < res.fees[2]
    # every agent's worst type is exactly indifferent between participating and opting out at the root
    outside = pivot_outside_on_space(res.space, res.pivot.values)
    assert res.verification.n_binding["ir"] >= env.n_agents
    # the fees sized by the payoffs alone (Yoon's (*) read against 0) break B-V participation, by the largest
    # excess of such a fee over the slack
    old, _ = fee_by_definition(env, outside=False)
    ver = verify(with_root_fees(res, old), ic="bayesian", ir="interim", budget="ex_ante", outside_values=outside)
    assert ver.max_violation["ir"] == pytest.approx(float(np.max(old - expected)), abs=1e-10) and not ver.ok

    # interim fees: at the root they add up to the same bound; verified against O_i at every history
    inter = lump_sum_fees(env, "interim")
    assert inter.status == "feasible" and inter.verification.ok and inter.verification_ex_post.ok
    np.testing.assert_allclose(inter.fee_values[:, 0], expected, atol=1e-10)

    # the command: exit 0 in both modes, and the JSON carries the fees
    out = tmp_path / "fees.json"
    assert main(["fees", str(path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "VERIFICATION FAILED" not in text and "FEASIBLE" in text
    payload = json.loads(out.read_text())
    assert payload["fees"] == pytest.approx({ag.name: float(f) for ag, f in zip(env.agents, expected, strict=True)})
    assert main(["fees", str(path), "--mode", "interim"]) == 0


# ---------------------------------------------------------------------------------------------- (2) O_i == 0
def yoon_slack(alpha: float, delta: float) -> float:
    """Yoon (2021), section 3.3.2, binary trade: worst-off payoffs minus the deficit 1/(4(1-delta))."""
    worst = 0.25 * (1 / (1 - delta) - 1 / (1 - delta * (2 * alpha - 1)))
    return 2 * worst - 1 / (4 * (1 - delta))


BUNDLED = sorted(f.name for f in MODELS.glob("*.toml"))
NONZERO_OUTSIDE = {"public_project.toml"}  # its agents' low types dislike the project: O_i != 0


@pytest.mark.parametrize("fname", BUNDLED)
def test_fees_are_unchanged_where_the_outside_values_are_zero(fname):
    env = load_model(MODELS / fname)
    if env.correlated:  # the pivot's W_-i needs independent types: refused by name
        with pytest.raises(ValueError, match=r"independent"):
            pivot_values(env)
        return
    pv = pivot_values(env)
    if fname in NONZERO_OUTSIDE:
        assert np.abs(pv.outside).max() > 0.1 and fee_condition(env).has_outside
        return
    assert np.all(pv.outside == 0.0)
    fees, deficit = fee_by_definition(env, outside=False)  # Yoon's (*): the worst-off payoffs
    cond = fee_condition(env, interim=True)
    assert not cond.has_outside and "worst-off payoffs" in cond.message
    np.testing.assert_allclose(cond.worst_payoff, fees, atol=1e-12)
    assert cond.deficit == pytest.approx(deficit, abs=1e-12)
    assert cond.slack == pytest.approx(fees.sum() - deficit, abs=1e-12)
    res = lump_sum_fees(env)
    np.testing.assert_allclose(res.fees, fees, atol=1e-12)
    # the verification against O_i = 0 per node is the verification against 0
    plain = verify(res.mechanism, ic="bayesian", ir="interim", budget="ex_ante")
    assert res.verification.max_violation == plain.max_violation
    assert res.verification.n_binding == plain.n_binding and res.verification.ok == plain.ok


@pytest.mark.parametrize("alpha", [0.55, 0.7, 0.9])
def test_yoon_binary_numbers_are_yoon_s(alpha):
    for d in (0.3, 0.6, 0.95):
        assert fee_condition(yoon_binary(alpha, d)).slack == pytest.approx(yoon_slack(alpha, d), abs=1e-10)
    cd = critical_discount(lambda d: yoon_binary(alpha, d), 0.05, 0.99, 1e-8)
    assert len(cd.critical) == 1 and abs(cd.critical[0] - 1 / (3 - 2 * alpha)) < 1e-6


@pytest.mark.parametrize("env", [lamba_usstp(0.7, 0.95), yoon_binary(0.5, 0.9, horizon=3)])
def test_interim_fees_are_the_worst_off_continuation_payoffs_where_the_outside_values_are_zero(env):
    res = lump_sum_fees(env, "interim")
    lows = np.stack([u.min(axis=1) for u in res.pivot.mechanism.interim_utilities()])
    np.testing.assert_allclose(res.fee_values, lows, atol=1e-12)
    np.testing.assert_allclose(res.surplus, res.pivot.surplus + lows.sum(axis=0), atol=1e-10)


# ---------------------------------------------------------------------------------------------- (3) fails by O_i
def trade_with_neighbour(alpha: float, delta: float, e: float) -> Environment:
    """Yoon's binary trade plus a neighbour (one type) who gains ``e`` whenever the good changes hands.

    Without the buyer or the seller nothing trades (their :math:`O = 0`); without the neighbour the two still trade
    at (cost 0, value 1), so the neighbour enjoys ``e`` there for free: with uniform marginals in every period its
    root outside value is :math:`\\bar O_3 = e/(4(1-\\delta))`.
    """
    base = yoon_binary(alpha, delta)
    nb = Agent("neighbour", ["n"], np.array([1.0]), np.array([[1.0]]), np.array([[0.0, e]]))
    assert list(base.actions) == ["no_trade", "trade"]
    meta = {"feasible_without": {"buyer": ["no_trade"], "seller": ["no_trade"]}}
    return Environment([*base.agents, nb], base.actions, delta, "infinite", "efficient", name="neighbour", meta=meta)


def test_condition_fails_only_because_of_the_neighbours_outside_value():
    alpha, delta, e = 0.7, 0.5, 0.2
    env = trade_with_neighbour(alpha, delta, e)
    o3 = e / (4 * (1 - delta))  # 0.1
    against_zero, deficit = fee_by_definition(env, outside=False)
    assert against_zero.sum() - deficit > 0.04  # Yoon's (*) read against 0 holds ...
    cond = fee_condition(env)
    assert cond.root_outside[2] == pytest.approx([o3], abs=1e-12)
    assert cond.root_outside[0] == pytest.approx([0, 0]) and cond.root_outside[1] == pytest.approx([0, 0])
    assert cond.slack == pytest.approx(against_zero.sum() - deficit - o3, abs=1e-12)
    assert cond.slack < -0.04 and not cond.feasible  # ... against O_i it fails
    res = lump_sum_fees(env)
    assert res.status == "infeasible"
    assert res.verification.max_violation["ir"] < 1e-9 and res.verification.max_violation["ic"] < 1e-9
    assert res.verification.max_violation["budget"] == pytest.approx(-cond.slack, abs=1e-10)
    # the fees that would balance the budget against 0 ask the neighbour for o3 more than it accepts
    outside = pivot_outside_on_space(res.space, res.pivot.values)
    ver = verify(
        with_root_fees(res, against_zero), ic="bayesian", ir="interim", budget="ex_ante", outside_values=outside
    )
    assert ver.max_violation["ir"] == pytest.approx(o3, abs=1e-10) and ver.worst["ir"].agent == "neighbour"


@pytest.mark.parametrize("which", ["disliked_project", "neighbour"])
def test_interim_condition_with_outside_values_matches_the_fee_mechanism_on_a_tree(which, tmp_path):
    """Finite horizon (the game truncated at 3 periods, O_i per period): the DP-only interim condition (root, then
    period x previous profile) equals the smallest surplus of the verified fee mechanism on the history tree."""
    if which == "neighbour":
        env = trade_with_neighbour(0.7, 0.5, 0.2)
    else:
        path = tmp_path / "project.toml"
        path.write_text(NEGATIVE_PROJECT)
        env = load_model(str(path))
    res = lump_sum_fees(env, "interim", space=HistoryTree(env, 3))
    assert res.verification.max_violation["ir"] < 1e-12 and res.verification.max_violation["ic"] < 1e-12
    assert res.verification_ex_post.max_violation["ic"] < 1e-12
    assert res.condition.interim_slack.min() == pytest.approx(res.surplus.min(), abs=1e-12)
    assert res.status == ("feasible" if which == "disliked_project" else "infeasible")

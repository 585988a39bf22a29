r"""Outside options :math:`O_i` in every question and command (issue #13, item 5).

The expected values come from one argument, not from the code's output at the same outside option.

*Translation.* In mechlp the outside option is a floor on continuation utilities: IR reads
:math:`\bar U_i(t|h) \ge o_i` (interim), :math:`U_i(h, \theta) \ge o_i` (ex post) or :math:`E[U_i(\text{root})]
\ge o_i` (ex ante). With a constant :math:`o_i` per agent, map a mechanism to the one with
:math:`U'_i = U_i + o_i` at every node (transfers :math:`x'_i = x_i - o_i(1 - \delta)` where the game continues
and :math:`x'_i = x_i - o_i` in the last period, so the recursion
:math:`U_i = \text{flow}_i - x_i + \delta E[U_i(\text{child})]` holds for :math:`U'`). The allocation is
unchanged; every IC row is a difference of utilities of the same agent at the same history plus
:math:`\delta \sum_{t'} (F(t'|t) - F(t'|r)) \bar U(t')`, where the constant cancels because kernel rows sum to
one; every IR row moves by exactly :math:`o_i`. So the mechanisms feasible at :math:`o` are those feasible at 0
translated by :math:`o`, on every space (Markov, tree, tree with tail) and for every IR notion, and the designer's
surplus :math:`\Pi(h) = E[\text{welfare}|h] - \sum_i E[U_i|h]` falls by :math:`\sum_i o_i` at every history:

.. math::  \Pi^*_o(h) = \Pi^*_0(h) - \sum_i o_i, \qquad \text{revenue}_o = \text{revenue}_0 - \sum_i o_i.

(Not :math:`\sum_i o_i (1 + \delta + \dots)`: the option is a utility level, not a per-period flow.) Hence
interim feasibility holds iff :math:`\min_h \Pi^*_0(h) \ge \sum_i o_i`, ex ante iff
:math:`\Pi^*_0(\text{root}) \ge \sum_i o_i`, and the critical discount factor with outside options is the root
of Lamba's closed form :math:`\Pi^*(\delta) = \sum_i o_i`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from test_optimal import DELTA, battaglini_env, closed_form, infinite_closed_form

from mechlp.audit.verifier import check_impossibility, verify
from mechlp.catalog.examples import lamba_usstp
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.constructions.team import balanced_team
from mechlp.model.environment import Environment
from mechlp.solve.critical import critical_delta
from mechlp.solve.intermediate import intermediate_minmax
from mechlp.solve.questions import feasibility, minmax
from mechlp.solve.second_best import optimal_mechanism
from mechlp.workflows.sharing import share_surplus
from mechlp.workflows.sweep import sweep

MODELS = Path(__file__).resolve().parents[1] / "models"
OUTSIDE = {"buyer": 0.03, "seller": 0.02}  # sum 0.05
O_SUM = 0.05


def usstp(horizon="infinite"):
    return lamba_usstp(0.7, 0.9, horizon=horizon)


# ---------------------------------------------------------------------------------------------- min-max
@pytest.mark.parametrize(
    ("space", "method", "ir"),
    [
        ({}, "lp", "interim"),
        ({}, "recursion", "interim"),
        ({}, "lp", "ex_post"),
        ({"horizon": 2}, "lp", "interim"),
        ({"horizon": 2}, "recursion", "interim"),
        ({"horizon": 1, "tail": True}, "lp", "interim"),
    ],
)
def test_minmax_surplus_falls_by_the_sum_of_the_outside_options(space, method, ir):
    env = usstp()
    base = minmax(env, method=method, ir=ir, **space)
    res = minmax(env, method=method, ir=ir, outside_option=OUTSIDE, **space)
    assert base.status == res.status == "optimal" and res.certificate.ok
    np.testing.assert_allclose(res.surplus, base.surplus - O_SUM, atol=1e-9)
    assert res.question_spec.outside_option == {"buyer": [0.03, 0.03], "seller": [0.02, 0.02]}


def test_minmax_ex_ante_ir_root_falls_by_the_sum():
    env = usstp()
    base, res = minmax(env, ir="ex_ante", method="lp"), minmax(env, ir="ex_ante", method="lp", outside_option=0.025)
    assert res.surplus[0] == pytest.approx(base.surplus[0] - O_SUM, abs=1e-9)


def test_intermediate_minmax_falls_by_the_sum():
    env = usstp()
    base, res = intermediate_minmax(env, horizon=2), intermediate_minmax(env, horizon=2, outside_option=OUTSIDE)
    assert res.status == "optimal"
    assert res.surplus[0] == pytest.approx(base.surplus[0] - O_SUM, abs=1e-9)


# ---------------------------------------------------------------------------------------------- feasibility
@pytest.mark.parametrize("route", ["auto", "lp"])
def test_feasibility_flips_at_the_sum_with_certificates_against_the_outside_options(route):
    """Interim feasibility holds iff min_h Pi*_0(h) >= sum_i o_i: just below it a verified mechanism, just above it
    an impossibility certificate that holds in floats and exactly, and that fails once its outside options are
    set back to 0 (there the question is feasible, so no valid certificate can exist)."""
    env = usstp()
    m = float(minmax(env).surplus.min())
    below = feasibility(env, "interim", outside_option=m / 2 - 0.01, route=route)
    assert below.status == "optimal" and below.certificate.ok
    above = feasibility(env, "interim", outside_option={"buyer": m / 2 + 0.01, "seller": m / 2}, route=route)
    assert above.status == "infeasible", above.message
    cert = above.certificate
    assert cert.ok and check_impossibility(cert)["ok"] and check_impossibility(cert, exact=True)["ok"]
    assert any(np.asarray(o).any() for o in cert.options["outside_option"])
    cert.options["outside_option"] = 0.0
    assert not check_impossibility(cert)["ok"] and not check_impossibility(cert, exact=True)["ok"]


def test_per_type_outside_option_infeasible_with_an_exact_certificate():
    env = usstp(horizon=2)
    res = feasibility(env, "ex_ante", outside_option={"buyer": [0.0, 2.0], "seller": [1.5, 0.0]})
    assert res.status == "infeasible" and res.certificate.ok
    assert check_impossibility(res.certificate, exact=True)["ok"]


def test_cli_solve_and_check_carry_the_outside_option(tmp_path, capsys):
    """`mechlp solve --outside-option` writes an impossibility certificate for the question with O; `mechlp check`
    re-checks it with the same O (exit 0) and refuses it for O = 0 (another question)."""
    model = str(MODELS / "lamba_usstp.toml")
    m = float(minmax(lamba_usstp(0.7, 0.95)).surplus.min())  # the bundled model: persistence 0.7, discount 0.95
    oo = f"{m / 2 + 0.01!r}"
    cert = tmp_path / "c.json"
    code = main(["solve", model, "--outside-option", oo, "--certificate", str(cert)])
    assert code == 0 and "INFEASIBLE" in capsys.readouterr().out
    assert main(["check", model, str(cert), "--outside-option", oo, "--exact"]) == 0
    assert "certificate HOLDS" in capsys.readouterr().out
    assert main(["check", model, str(cert)]) != 0
    assert "answers another question" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- critical delta
@pytest.mark.parametrize("budget", ["ex_ante", "interim"])
def test_critical_delta_with_outside_options_is_the_root_of_the_closed_form(budget):
    alpha = 0.9

    def gap(d: float) -> float:
        cf = minmax_closed_form(lamba_usstp(alpha, d))
        pi = cf.pi_root if budget == "ex_ante" else min(cf.pi_root, float(np.min(cf.pi_by_state)))
        return pi - 2 * 0.05

    expected = brentq(gap, 0.6, 0.98, xtol=1e-12)
    crit = critical_delta(lambda d: lamba_usstp(alpha, d), budget, outside_option=0.05)
    assert len(crit.critical) == 1 and crit.critical[0] == pytest.approx(expected, abs=1e-6)
    assert crit.critical[0] > critical_delta(lambda d: lamba_usstp(alpha, d), budget).critical[0]


# ---------------------------------------------------------------------------------------------- optimal mechanisms
@pytest.mark.parametrize("o", [0.5, -0.25])
def test_optimal_revenue_falls_by_the_outside_option(o):
    """Battaglini's closed forms (tests/test_optimal.py) minus o: finite horizon, and the infinite horizon's
    default (history dependent) answer."""
    res = optimal_mechanism(battaglini_env(), ir="ex_ante", outside_option=o)
    assert res.status == "optimal" and res.certificate.ok
    assert res.value == pytest.approx(closed_form()[0] - o, abs=1e-8)
    inf = Environment([battaglini_env().agents[0]], ("no", "sell"), DELTA, "infinite")
    res = optimal_mechanism(inf, ir="ex_ante", outside_option=o)
    assert res.value == pytest.approx(infinite_closed_form() - o, abs=1e-8)
    assert res.method["tail_search"]["depth"] == 3


def test_cli_second_best_revenue_with_outside_option(tmp_path, capsys):
    out = tmp_path / "a.json"
    code = main(
        ["second-best", str(MODELS / "battaglini.toml"), "--objective", "revenue", "--outside-option", "buyer=0.5"]
        + ["--json", str(out)]
    )
    capsys.readouterr()
    payload = json.loads(out.read_text())
    assert code == 0 and payload["value"] == pytest.approx(infinite_closed_form() - 0.5, abs=1e-8)
    assert payload["verification"]["options"]["outside_option"] == [[0.5, 0.5]]


# ---------------------------------------------------------------------------------------------- sharing
def test_share_surplus_with_outside_options():
    """Equal sharing of Pi*_o = Pi*_0 - sum o: agent i's interim utility is Ubar*_0 + o_i + (Pi*_0 - sum o) / 2,
    i.e. o_i - sum o / 2 above the sharing at o = 0 (buyer +0.005, seller -0.005)."""
    env = usstp()
    base, res = share_surplus(env, "equal"), share_surplus(env, "equal", outside_option=OUTSIDE)
    assert res.success and res.certificate.options["outside_option"] == [[0.03, 0.03], [0.02, 0.02]]
    np.testing.assert_allclose(res.pi_star, base.pi_star - O_SUM, atol=1e-9)
    u0, u1 = base.mechanism.interim_utilities(), res.mechanism.interim_utilities()
    np.testing.assert_allclose(u1[0] - u0[0], 0.005, atol=1e-9)
    np.testing.assert_allclose(u1[1] - u0[1], -0.005, atol=1e-9)


def test_cli_share_takes_the_outside_option(tmp_path, capsys):
    model = str(MODELS / "lamba_usstp.toml")
    out0, out1 = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["share", model, "--json", str(out0)]) == 0
    assert main(["share", model, "--outside-option", "buyer=0.03,seller=0.02", "--json", str(out1)]) == 0
    capsys.readouterr()
    p0, p1 = json.loads(out0.read_text()), json.loads(out1.read_text())
    pi0 = np.array([r["pi_star"] for r in p0["shares"]])
    pi1 = np.array([r["pi_star"] for r in p1["shares"]])
    np.testing.assert_allclose(pi1, pi0 - O_SUM, atol=1e-9)
    ver = p1["verification"]
    assert ver["ok"] and ver["options"]["outside_option"] == [[0.03, 0.03], [0.02, 0.02]]
    assert p1["options"]["outside_option"] == {"buyer": [0.03, 0.03], "seller": [0.02, 0.02]}


# ---------------------------------------------------------------------------------------------- sweep, team
def _usstp_at(persistence: float):
    return lamba_usstp(persistence, 0.9)


def test_sweep_passes_the_outside_option_and_fees_refuse_it():
    base = sweep(_usstp_at, {"persistence": [0.7]}, question="minmax", progress=False, executor="serial")
    df = sweep(
        _usstp_at,
        {"persistence": [0.7]},
        question="minmax",
        options={"outside_option": OUTSIDE},
        progress=False,
        executor="serial",
    )
    assert df["pi_min"].iloc[0] == pytest.approx(base["pi_min"].iloc[0] - O_SUM, abs=1e-9)
    with pytest.raises(ValueError, match="'outside_option' does not apply to question 'fees'"):
        sweep(_usstp_at, {"persistence": [0.7]}, question="fees", options={"outside_option": 0.1}, progress=False)
    with pytest.raises(ValueError, match="'colour' is not an option of question 'fees'"):
        sweep(_usstp_at, {"persistence": [0.7]}, question="fees", options={"colour": 1}, progress=False)


def test_team_participation_is_reported_against_the_outside_option():
    """The team mechanism does not depend on o; every IR slack falls by o, so the IR violation is
    max(0, v_0 + o) when the rows at o = 0 are violated by v_0 > 0."""
    env = usstp(horizon=2)
    v0 = balanced_team(env).verification.max_violation["ir"]
    assert v0 > 0
    assert balanced_team(env, outside_option=0.1).verification.max_violation["ir"] == pytest.approx(v0 + 0.1, abs=1e-9)
    assert balanced_team(env, outside_option=-(v0 + 0.1)).verification.max_violation["ir"] == 0.0


# ---------------------------------------------------------------------------------------------- pivot (B-V's O_i)
NEGATIVE_PROJECT = """
[model]
name = "disliked_project"
kind = "general"
discount = 0.8
horizon = "infinite"
actions = ["reject", "build"]

[[agents]]
name = "a1"
role = "participant"
types = ["L", "H"]
values = [0.6, 1.2]
prior = [0.5, 0.5]
transition = [[0.5, 0.5], [0.5, 0.5]]
valuation = { reject = [0.0, 0.0], build = [0.1, 0.7] }

[[agents]]
name = "a2"
role = "participant"
types = ["L", "H"]
values = [0.5, 1.1]
prior = [0.5, 0.5]
transition = [[0.5, 0.5], [0.5, 0.5]]
valuation = { reject = [0.0, 0.0], build = [0.0, 0.6] }

[[agents]]
name = "a3"
role = "participant"
types = ["L", "H"]
values = [0.0, 0.3]
prior = [0.5, 0.5]
transition = [[0.5, 0.5], [0.5, 0.5]]
valuation = { reject = [0.0, 0.0], build = [-0.5, -0.2] }

[allocation]
rule = "efficient"
"""


def test_cli_pivot_with_a_negative_valuation_verifies_against_bv_outside_values(tmp_path, capsys):
    """Agent a3 dislikes the project (valuations -0.5, -0.2): its pivot utility is negative, so IR against 0
    fails, but Bergemann-Valimaki's IR is against O_i (the value of opting out while the others' efficient policy
    runs), which holds: exit 0 and the JSON says IR was checked against per-node outside values."""
    path = tmp_path / "project.toml"
    path.write_text(NEGATIVE_PROJECT)
    out = tmp_path / "p.json"
    code = main(["pivot", str(path), "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "VERIFICATION FAILED" not in text
    payload = json.loads(out.read_text())
    pivot = dynamic_pivot(load_model(str(path)))  # the same mechanism checked against 0 fails
    assert verify(pivot.mechanism, ic="ex_post", ir="ex_post", budget="none").max_violation["ir"] > 0.1
    for family in ("ex_post", "bayesian"):
        ver = payload["verification"][family]
        assert ver["ok"] and ver["options"]["outside_values"] == "per node", family


def test_cli_sweep_reads_per_agent_outside_options(tmp_path, capsys):
    model = str(MODELS / "lamba_usstp.toml")
    common = ["sweep", model, "--grid", "persistence=0.7", "--executor", "serial", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "a.csv")]) == 0
    oo = "outside_option={buyer=0.03, seller=0.02}"
    assert main([*common, "--option", oo, "--out", str(tmp_path / "b.csv")]) == 0
    a, b = (pd.read_csv(tmp_path / f) for f in ("a.csv", "b.csv"))
    assert b["pi_min"].iloc[0] == pytest.approx(a["pi_min"].iloc[0] - O_SUM, abs=1e-9)
    assert main([*common, "--question", "fees", "--option", "outside_option=0.1"]) == 2
    assert "'outside_option' does not apply to question 'fees'" in capsys.readouterr().err

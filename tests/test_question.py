"""The question spec (mechlp.model.question): one parse of IC / IR / budget, outside options and limits."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mechlp.audit.certfile import certificate_payload, check_certificate
from mechlp.audit.verifier import verify
from mechlp.backends import solve_lp
from mechlp.catalog.examples import lamba_usstp, public_project
from mechlp.constraints.formulation import build_lp
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import (
    NOTIONS,
    Question,
    agent_limits,
    notion_names,
    outside_options,
    parse_notion,
)
from mechlp.model.spaces import HistoryTree
from mechlp.solve import questions as design
from mechlp.workflows.sweep import sweep


@pytest.fixture(scope="module")
def env():
    return lamba_usstp(0.7, 0.95)


@pytest.fixture(scope="module")
def tree2():
    return HistoryTree(lamba_usstp(0.7, 0.95, horizon=2))


# ---------------------------------------------------------------------------------------------- notions
@pytest.mark.parametrize("family", ["ic", "ir", "budget"])
def test_every_notion_reads_both_spellings_and_writes_underscores(family):
    for name in notion_names(family):
        assert parse_notion(family, name) == name
        assert parse_notion(family, name.replace("_", "-")) == name
        assert "-" not in name


def test_notion_vocabulary():
    assert notion_names("ic") == ("bayesian", "ex_post", "local")
    assert notion_names("ir") == ("interim", "ex_post", "ex_ante")
    assert notion_names("budget") == ("ex_ante", "interim", "ex_post", "none", "savings")
    assert NOTIONS["budget"]["ex_post"].spellings == ("ex_post", "ex-post")
    assert NOTIONS["ic"]["bayesian"].spellings == ("bayesian",)


@pytest.mark.parametrize(
    ("family", "value", "allowed", "match"),
    [
        ("budget", "weekly", None, r"budget must be one of 'ex_ante', 'interim', 'ex_post', 'none', 'savings'; got"),
        ("ic", None, None, r"ic must be one of 'bayesian', 'ex_post', 'local'; got None"),
        ("ir", 1, None, r"ir must be one of .*; got 1"),
        ("budget", "ex_ante", ("interim", "ex_post"), r"must be one of 'interim', 'ex_post' here; 'ex_ante' is not"),
        ("budget", "interim", ("interim", "weekly"), r"'weekly' is not a budget notion"),
        ("prize", "interim", None, r"family must be one of"),
    ],
)
def test_parse_notion_errors(family, value, allowed, match):
    with pytest.raises(ValueError, match=match):
        parse_notion(family, value, allowed=allowed)


def test_parse_notion_names_the_argument():
    with pytest.raises(ValueError, match=r"^mode must be one of"):
        parse_notion("budget", "x", argument="mode")


# ---------------------------------------------------------------------------------------------- outside options
def test_outside_option_forms(env):
    same = [np.array([0.2, 0.2]), np.array([0.2, 0.2])]
    for value in (0.2, [0.2, 0.2], {"buyer": 0.2, "seller": 0.2}, [[0.2, 0.2], [0.2, 0.2]], np.float64(0.2)):
        got = outside_options(value, env)
        assert all(np.array_equal(a, b) for a, b in zip(got, same, strict=True))
    got = outside_options({"buyer": [0.1, 0.3]}, env)
    np.testing.assert_array_equal(got[0], [0.1, 0.3])
    np.testing.assert_array_equal(got[1], [0.0, 0.0])


@pytest.mark.parametrize(
    ("value", "exc", "match"),
    [
        (True, TypeError, "got a bool"),
        ("0.1", TypeError, "must be numeric"),
        (None, TypeError, "must be numeric"),
        ([0.1], ValueError, r"has 1 entries; expected 2, one per agent \['buyer', 'seller'\]"),
        ({"broker": 0.1}, ValueError, "names unknown agent 'broker'"),
        ([0.1, [1, 2, 3]], ValueError, r"outside_option\[1\] \(agent 'seller'\) has shape \(3,\)"),
        ([0.1, float("nan")], ValueError, r"outside_option\[1\] \(agent 'seller'\) is not finite at index 0"),
        ([0.1, True], TypeError, r"outside_option\[1\] \(agent 'seller'\) must be numeric"),
    ],
)
def test_outside_option_errors(env, value, exc, match):
    with pytest.raises(exc, match=match):
        outside_options(value, env)


@pytest.mark.parametrize(
    ("limits", "exc", "match"),
    [
        ([(0, 1)], TypeError, r"limits must be a dict"),
        ({"buyer": 3}, ValueError, r"limits\['buyer'\] must be a pair"),
        ({"buyer": (2, 1)}, ValueError, r"is not an interval lo <= hi"),
        ({"buyer": (True, 1)}, TypeError, r"must hold numbers or None"),
        ({"broker": (0, 1)}, ValueError, r"broker"),
    ],
)
def test_limit_errors(env, limits, exc, match):
    with pytest.raises(exc, match=match):
        agent_limits(limits, env)


# ---------------------------------------------------------------------------------------------- the two defects
def test_minmax_takes_the_outside_option_mapping_that_verify_documents(env):
    """Was: 'could not convert string to float: buyer'. Raising the buyer's outside option by o lowers Pi* by
    exactly o at every history (utilities shift by a constant, paid for by the designer)."""
    base = design.minmax(env)
    res = design.minmax(env, outside_option={"buyer": 0.1, "seller": 0})
    assert res.status == "optimal" and res.certificate.ok
    np.testing.assert_allclose(res.surplus, base.surplus - 0.1, atol=1e-9)
    assert res.options["outside_option"] == {"buyer": [0.1, 0.1], "seller": [0.0, 0.0]}
    # the verifier reads the same mapping: the buyer's IR binds at 0.1, so a higher option fails
    assert verify(res.mechanism, outside_option={"buyer": 0.1}).ok
    assert not verify(res.mechanism, outside_option={"buyer": 0.2}).ok


@pytest.mark.parametrize("call", ["minmax", "feasibility", "verify"])
def test_a_bool_outside_option_is_refused_everywhere(env, call):
    """Was: True solved as 1.0, then verify raised TypeError."""
    with pytest.raises(TypeError, match="outside_option must be numeric, got a bool"):
        if call == "verify":
            verify(design.minmax(env).mechanism, outside_option=True)
        else:
            getattr(design, call)(env, outside_option=True)


# ------------------------------------------------------------------------------- one spec, builder and verifier
def _lp_mechanism(space, q):
    weights = None
    if q.ir == "ex_ante":  # only Pi(root) is bounded when participation binds at the start only (as minmax does)
        weights = np.zeros(space.n_hist)
        weights[0] = 1.0
    lp = build_lp(space, q, weights=weights)
    out = solve_lp(lp, "highs")
    return out.status, (Mechanism(space, lp.variables.split(out.x)["x"]) if out.status == "optimal" else None)


@pytest.mark.parametrize(
    ("ic", "ir", "budget"),
    list(itertools.product(notion_names("ic"), notion_names("ir"), notion_names("budget"))),
)
def test_builder_and_verifier_read_the_same_question(tree2, ic, ir, budget):
    """For every combination of notions (with an outside option per agent and type), the LP built from a
    Question and the verifier reading the same Question agree: an optimal LP answer passes (local IC checked
    against all misreports), and shifting one payment by 1 fails the family it should."""
    env = tree2.env
    q = Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option={"buyer": [0.0, 0.05], "seller": 0.02})
    status, mech = _lp_mechanism(tree2, q)
    assert status in ("optimal", "infeasible")
    if status == "infeasible":
        # two periods (the last one static): only budget rows make it infeasible, never IC + IR alone
        assert budget != "none"
        return
    checked = q.replace(ic="bayesian") if ic == "local" else q
    ver = verify(mech, question=checked)
    assert ver.ok, ver.summary()
    assert ver.options["ic"] == checked.ic and ver.options["budget"] == budget
    # the seller of the first report profile is paid 1 less at the root: IR or budget rows must notice
    bad = mech.transfers.copy()
    bad[0, 0] += 1.0
    worse = verify(Mechanism(tree2, bad), question=checked)
    assert not worse.ok


def test_limits_are_built_and_verified(tree2):
    env = tree2.env
    q = Question.parse(env, budget="none", limits={"buyer": (-0.5, 0.5), "seller": (-1.0, None)})
    status, mech = _lp_mechanism(tree2, q)
    assert status == "optimal"
    ver = verify(mech, question=q)
    assert ver.ok and "limits" in ver.max_violation
    bad = mech.transfers.copy()
    bad[0, 3] = 0.75  # above the buyer's upper limit 0.5
    worse = verify(Mechanism(tree2, bad), question=q)
    assert worse.max_violation["limits"] == pytest.approx(0.25)
    assert worse.worst["limits"].agent == "buyer"


def test_results_carry_their_question(env):
    res = design.feasibility(env, "ex-post", outside_option=0.1)
    assert res.question_spec is not None and res.question_spec.budget == "ex_post"
    assert res.options["budget"] == "ex_post" and res.options["outside_option"] == 0.1


# ---------------------------------------------------------------------------------------------- files
def test_question_round_trip_and_strict_reading(env):
    q = Question.parse(env, ic="ex-post", ir="ex_ante", budget="savings", outside_option={"buyer": [0, 1]})
    doc = json.loads(json.dumps(q.to_dict()))
    assert doc == {
        "ic": "ex_post",
        "ir": "ex_ante",
        "budget": "savings",
        "outside_option": {"buyer": [0.0, 1.0], "seller": [0.0, 0.0]},
        "limits": None,
    }
    back = Question.from_dict(env, doc)
    assert back.to_dict() == doc
    assert Question.from_dict(env, {"budget": "ex-ante"}).budget == "ex_ante"
    with pytest.raises(ValueError, match=r"certificate: question: unknown key 'question_budget'"):
        Question.from_dict(env, {"question_budget": "ex_ante"}, where="certificate: question")
    with pytest.raises(ValueError, match=r"question: budget must be one of .*got 'foo'"):
        Question.from_dict(env, {"budget": "foo"})
    with pytest.raises(ValueError, match=r"question: ic must be one of .*got None"):
        Question.from_dict(env, {"ic": None})
    with pytest.raises(ValueError, match=r"question must be an object"):
        Question.from_dict(env, ["interim"])


def test_certifying_relaxations(env):
    def rel(**kw):
        r = Question.parse(env, **kw).certifying()
        return None if r is None else (r.ic, r.ir, r.budget)

    assert rel(budget="ex_post") == ("bayesian", "interim", "interim")
    assert rel(budget="savings") == ("bayesian", "interim", "ex_ante")
    assert rel(ic="local", ir="ex_ante", budget="ex_ante") == ("local", "ex_ante", "ex_ante")
    assert rel(ic="ex_post") == ("ex_post", "interim", "interim")  # pointwise rows are their own relaxation
    assert rel(ir="ex_post") == ("bayesian", "ex_post", "interim")
    assert rel(budget="none") == ("bayesian", "interim", "none")  # IC and IR rows alone
    q = Question.parse(env, limits={"buyer": (0, None)}).certifying()
    assert (q.ic, q.ir, q.budget, q.limits) == ("bayesian", "interim", "interim", {"buyer": (0.0, None)})
    # with a pointwise row, ex post balance is certified by its own rows (interim rows are no longer equivalent)
    assert rel(ir="ex_post", budget="ex_post") == ("bayesian", "ex_post", "ex_post")
    assert rel(ic="ex_post", budget="ex_post") == ("ex_post", "interim", "ex_post")
    assert Question.parse(env, budget="ex_post", limits={"buyer": (0, None)}).certifying().budget == "ex_post"
    assert rel(ic="ex_post", ir="ex_post", budget="savings") == ("ex_post", "ex_post", "ex_ante")


def test_correlated_ex_post_balance_is_certified_by_its_own_rows():
    """With correlated types rebalancing node by node does not keep interim utilities: interim budget rows are
    not equivalent to ex post ones, so the ex post rows are used."""
    from mechlp.catalog.examples import correlated_usstp

    env = correlated_usstp()
    assert Question.parse(env, budget="ex_post").certifying().budget == "ex_post"
    assert Question.parse(env, budget="interim").certifying().budget == "interim"
    assert Question.parse(env, ic="ex_post").certifying().ic == "ex_post"


def test_certificate_files_write_one_spelling_and_read_both(tmp_path):
    env = lamba_usstp(0.9, 0.8)
    res = design.feasibility(env, "ex-post")
    assert res.status == "infeasible"
    doc = json.loads(json.dumps(certificate_payload(res)))
    assert doc["question"]["budget"] == "ex_post"
    feas = design.feasibility(env, "ex_ante", outside_option={"seller": 0.01})
    doc = json.loads(json.dumps(certificate_payload(feas)))
    assert doc["question"] == {
        "ic": "bayesian",
        "ir": "interim",
        "budget": "ex_ante",
        "outside_option": {"buyer": [0.0, 0.0], "seller": [0.01, 0.01]},
        "limits": None,
    }
    ok, report = check_certificate(env, doc)
    assert ok and "outside option buyer: [0.0, 0.0], seller: [0.01, 0.01]" in report
    doc["question"]["budget"] = "ex-ante"
    assert check_certificate(env, doc)[0]
    doc["question"]["budget"] = "foo"
    with pytest.raises(ValueError, match=r"certificate: question: budget must be one of"):
        check_certificate(env, doc)


def test_three_agents_and_mapping_outside_options():
    env = public_project(horizon=2)
    res = design.minmax(env, outside_option={"agent2": 0.05})
    assert res.status == "optimal" and res.certificate.ok
    base = design.minmax(env)
    np.testing.assert_allclose(res.surplus, base.surplus - 0.05, atol=1e-9)


def test_sweeps_read_both_spellings_and_write_one(tmp_path):
    out = tmp_path / "s.csv"
    df = sweep(
        "lamba_usstp",
        {"alpha": [0.9]},
        "feasible",
        budget=["ex-ante", "ex_post"],
        options={"certify": False},
        out=out,
        executor="serial",
        progress=False,
    )
    assert {"feasible_ex_ante", "feasible_ex_post"} <= set(df.columns)
    header = out.read_text().splitlines()[0]
    assert "feasible_ex_ante" in header and "ex-ante" not in header

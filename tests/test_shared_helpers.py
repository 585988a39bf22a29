"""One home each (issue #10, duplicated code): the helpers that several layers used to write out themselves.

Every caller that now goes through a shared helper is exercised here with the message it must keep (or, where
two copies worded the same check differently, the one wording they now share).
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import mechlp.solve.questions as questions_module
import mechlp.solve.second_best as second_best_module
from mechlp.backends.base import SolverOutput, check_backend
from mechlp.catalog.examples import lamba_usstp
from mechlp.catalog.io import model_from_dict, toml_value
from mechlp.cli import constructions as cli_constructions
from mechlp.cli import sweep as cli_sweep
from mechlp.cli.options import parse_assignments, save_json
from mechlp.constructions.fees import lump_sum_fees
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.constructions.team import balanced_team
from mechlp.model.answer import CertifiedOnSpace, VerifiedOnSpace, space_size
from mechlp.model.environment import Agent, Environment
from mechlp.model.exact import Numbers, Rational
from mechlp.model.mechanism import Mechanism, agent_array
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail, check_memory, space_for
from mechlp.solve import questions as design
from mechlp.solve import recursion
from mechlp.solve.critical import critical_delta
from mechlp.solve.intermediate import intermediate_minmax
from mechlp.solve.second_best import second_best
from mechlp.workflows.sharing import share_surplus, shift_mechanism


# ---------------------------------------------------------------------------------------------- spaces
def test_space_for_builds_the_natural_space_or_checks_the_given_one():
    env = lamba_usstp(0.7, 0.9)
    assert isinstance(space_for(env), MarkovSpace)
    tree = space_for(env, horizon=3)
    assert isinstance(tree, HistoryTree) and tree.horizon == 3
    tail = space_for(env, horizon=2, tail=True)
    assert isinstance(tail, TreeWithTail) and tail.horizon == 2
    assert space_for(env, tail) is tail
    assert space_for(env, tail, tail=True) is tail
    with pytest.raises(TypeError, match="env must be an Environment, got str"):
        space_for("lamba_usstp")
    with pytest.raises(ValueError, match="space was built for a different environment than env"):
        space_for(env, MarkovSpace(lamba_usstp(0.7, 0.9)))
    with pytest.raises(ValueError, match="tail=True conflicts with the given markov space"):
        space_for(env, MarkovSpace(env), tail=True)


@pytest.mark.parametrize(
    "call",
    [
        lambda env, sp: design.minmax(env, space=sp),
        lambda env, sp: design.feasibility(env, space=sp),
        lambda env, sp: second_best(env, space=sp),
        lambda env, sp: dynamic_pivot(env, space=sp),
        lambda env, sp: balanced_team(env, space=sp),
    ],
    ids=["minmax", "feasibility", "second_best", "dynamic_pivot", "balanced_team"],
)
def test_every_question_refuses_a_space_of_another_environment_with_one_message(call):
    with pytest.raises(ValueError, match="^space was built for a different environment than env$"):
        call(lamba_usstp(0.7, 0.9), MarkovSpace(lamba_usstp(0.7, 0.9)))


def test_second_best_refuses_a_tail_request_on_a_markov_space_like_minmax():
    env = lamba_usstp(0.7, 0.9)
    with pytest.raises(ValueError, match="tail=True conflicts with the given markov space"):
        second_best(env, space=MarkovSpace(env), tail=True)
    with pytest.raises(ValueError, match="tail=True conflicts with the given markov space"):
        design.minmax(env, space=MarkovSpace(env), tail=True)


def test_second_best_checks_the_backend_before_building():
    with pytest.raises(ValueError, match=r"backend must be one of \('highs', 'cvxpy'\), got 'gurobi'"):
        second_best(lamba_usstp(0.7, 0.9), backend="gurobi")
    with pytest.raises(ValueError, match=r"backend must be one of \('highs', 'cvxpy'\), got 'glpk'"):
        check_backend("glpk")
    check_backend("cvxpy")


# ---------------------------------------------------------------------------------------------- memory
def test_check_memory_message_and_threshold():
    check_memory(2**30, 2**30, "a thing of 1 GiB")  # at the limit: accepted
    with pytest.raises(MemoryError, match=r"^a thing, over the memory limit of 0\.50 GiB \(advice\)$"):
        check_memory(2**30, 2**29, "a thing", " (advice)")


def test_recursion_spaces_share_one_memory_rule():
    env = lamba_usstp(0.7, 0.9)
    assert isinstance(recursion.recursion_space(env, None, 1, verify=True), MarkovSpace)  # no tree to estimate
    small = recursion.recursion_space(env, 3, 2**30, verify=False)
    assert isinstance(small, HistoryTree) and small.horizon == 3
    need = recursion.estimate_bytes(env, 14, verify=False)
    with pytest.raises(
        MemoryError,
        match=rf"^history tree with horizon 14: the recursion needs about {need / 2**30:.2f} GiB, over the memory "
        r"limit of 0\.25 GiB$",
    ):
        recursion.solve(env, horizon=14, memory_limit=2**28)
    with pytest.raises(MemoryError, match=r"^history tree with horizon 14: about [0-9.]+ GiB, over the memory limit"):
        critical_delta(env, horizon=14, memory_limit=2**28)
    with pytest.raises(
        MemoryError,
        match=r"horizon 12: recursion plus verification need about [0-9.]+ GiB, over the memory limit of 0\.25 GiB "
        r"\(raise memory_limit, or use mechlp\.solve\.recursion\.solve",
    ):
        design.minmax(env, method="recursion", horizon=12, memory_limit=2**28)
    with pytest.raises(MemoryError, match=r"^Markov space with 4 profiles: verifying the mechanism needs about"):
        design.minmax(env, method="recursion", memory_limit=16)


# ---------------------------------------------------------------------------------------------- LP answers
def test_lp_questions_report_size_timings_and_verification_the_same_way():
    """solve.result.lp_result / attach_verified: min-max and second best describe their LP alike."""
    env = lamba_usstp(0.7, 0.9)
    for res in (design.minmax(env, horizon=2, method="lp"), second_best(env, horizon=2)):
        sp = res.space
        assert list(res.size) == ["histories", "nodes", "rows", "columns", "nonzeros"]
        assert (res.size["histories"], res.size["nodes"]) == (sp.n_hist, sp.n_nodes) == (5, 20)
        assert res.size["rows"] > 0 and res.size["columns"] > 0 and res.size["nonzeros"] > 0
        assert {"build", "solve", "verify"} <= set(res.timings)
        assert res.certificate.ok and res.verification is res.certificate
        # the surplus and interim utilities are those of the verified mechanism itself
        np.testing.assert_array_equal(res.surplus, res.mechanism.surplus())
        for got, want in zip(res.interim_utilities, res.mechanism.interim_utilities(), strict=True):
            np.testing.assert_array_equal(got, want)


def test_local_ic_answers_are_verified_over_all_misreports():
    res = design.minmax(lamba_usstp(0.7, 0.9), horizon=2, ic="local", method="lp")
    assert res.question_spec.ic == "local"
    assert res.certificate.options["ic"] == "bayesian"


@pytest.mark.parametrize("module", [questions_module, second_best_module], ids=["questions", "second_best"])
def test_a_solver_failure_is_reported_with_the_backend_status(module, monkeypatch):
    def stopped(lp, backend, **kw):
        return SolverOutput("time_limit", "kTimeLimit", "time limit reached", None, None, None, 0.01, backend)

    monkeypatch.setattr(module, "solve_lp", stopped)
    call = design.minmax if module is questions_module else second_best
    res = call(lamba_usstp(0.7, 0.9), horizon=2, **({"method": "lp"} if module is questions_module else {}))
    assert res.status == "time_limit"
    assert res.message == "highs returned time_limit: time limit reached"
    assert res.mechanism is None and res.certificate is None and "verify" not in res.timings
    assert res.timings["solve"] == 0.01 and res.size["histories"] == 5


# ---------------------------------------------------------------------------------------------- answers
def test_answers_without_an_lp_share_size_and_proof_aliases():
    """model.answer.VerifiedOnSpace (constructions) and CertifiedOnSpace (sharing, intermediate mechanisms)."""
    env = lamba_usstp(0.7, 0.95, horizon=2)
    tree = HistoryTree(env, 2)
    pivot = dynamic_pivot(env, space=tree)
    team = balanced_team(env, space=tree)
    fees = lump_sum_fees(env, space=tree, pivot=pivot)
    for res in (pivot, team, fees):
        assert isinstance(res, VerifiedOnSpace)
        assert res.certificate is res.verification is not None
        assert res.size == {"histories": 5, "nodes": 20}
    markov = lamba_usstp(0.7, 0.95)
    shared = share_surplus(design.minmax(markov), "equal")  # Pi* >= 0 on the Markov space
    inter = intermediate_minmax(markov, horizon=2, histories=[0])
    for res in (shared, inter):
        assert isinstance(res, CertifiedOnSpace)
        assert res.verification is res.certificate is not None
    assert shared.size == {"histories": 5, "nodes": 20}
    assert inter.size == {"histories": 5, "nodes": 20, "information": list(inter.space.n_info)}
    assert recursion.solve(tree).size == {"histories": 5, "nodes": 20}
    assert space_size(MarkovSpace(markov)) == {"histories": 5, "nodes": 20}  # root + one state per profile


# ---------------------------------------------------------------------------------------------- model checks
def _agent(transition, name="a"):
    return Agent(name, ["lo", "hi"], [0.5, 0.5], transition, [[0.0, 1.0], [0.0, 2.0]])


def test_stochastic_matrices_of_the_environment_are_checked_by_one_rule():
    """model.environment._check_stochastic / _check_rows: transitions (one or per action) and the allocation."""
    with pytest.raises(
        ValueError,
        match=r"^transition of agent 'a' has shape \(2, 3\); expected \(2, 2\) \(square, one row and one column "
        r"per type\)$",
    ):
        _agent(np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"^transition row 1 of agent 'a' sums to 0\.9, not 1"):
        _agent([[0.5, 0.5], [0.5, 0.4]])
    with pytest.raises(ValueError, match=r"^transition row 0 for action 1 of agent 'a' has a negative probability"):
        _agent([np.eye(2), [[-0.5, 1.5], [0.0, 1.0]]])
    agents = [_agent(np.eye(2), "a"), _agent(np.eye(2), "b")]
    with pytest.raises(
        ValueError,
        match=r"^allocation has shape \(4, 1\); expected \(4, 2\) \(one row per type profile, one column per action\)$",
    ):
        Environment(agents, ["x", "y"], 0.9, 2, np.ones((4, 1)))
    alloc = np.tile([0.5, 0.5], (4, 1))
    alloc[2] = [0.5, np.nan]
    with pytest.raises(ValueError, match=r"^allocation row 2 \(profile \{'a': 'hi', 'b': 'lo'\}\) has NaN at index 1$"):
        Environment(agents, ["x", "y"], 0.9, 2, alloc)


def test_per_agent_arrays_are_checked_by_one_rule():
    """model.mechanism.agent_array: transfers (per node), Lemma 1 shifts and sharing rules (per history)."""
    env = lamba_usstp(0.7, 0.95)
    sp = MarkovSpace(env)
    with pytest.raises(ValueError, match=r"^transfers has shape \(2, 5\); expected \(2, 20\) \(agents x nodes\)$"):
        Mechanism(sp, np.zeros((2, 5)))
    x = np.zeros((2, sp.n_nodes))
    x[1, 7] = np.inf
    with pytest.raises(ValueError, match=r"^transfers is not finite for agent 'seller' at node 7$"):
        Mechanism(sp, x)
    mech = Mechanism(sp, np.zeros((2, sp.n_nodes)))
    with pytest.raises(ValueError, match=r"^shift has shape \(2, 20\); expected \(2, 5\) \(agents x histories\)$"):
        shift_mechanism(mech, np.zeros((2, 20)))
    shift = np.zeros((2, 5))
    shift[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"^shift is not finite for agent 'buyer' at history 3$"):
        shift_mechanism(mech, shift)
    beta = np.full((2, 5), 0.25)
    beta[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^beta is not finite for agent 'seller' at history 2$"):
        share_surplus(design.minmax(env), beta)
    np.testing.assert_array_equal(agent_array(sp, [[1, 2, 3, 4, 5]] * 2, "a", per="history"), [[1, 2, 3, 4, 5]] * 2)


# ---------------------------------------------------------------------------------------------- command line
def test_toml_value_reads_one_value_or_keeps_the_text():
    assert toml_value(" 0.9 ") == 0.9
    assert toml_value("[3, 2, 1]") == [3, 2, 1]
    assert toml_value("false") is False
    assert toml_value('"quoted"') == "quoted"
    assert toml_value(" infinite ") == "infinite"  # not TOML: the bare word
    assert toml_value("1\nw = 2") == "1\nw = 2"  # more than one value: the text, not its first value


def test_key_value_arguments_are_read_by_one_rule():
    """cli.options.parse_assignments: --param (pivot, fees), --option and --where (sweep, plot)."""
    assert parse_assignments(["alpha=0.9", " values = [3,2,1]", "rule=maxmin"], "--param") == {
        "alpha": 0.9,
        "values": [3, 2, 1],
        "rule": "maxmin",
    }
    assert parse_assignments(None, "--param") == {}
    with pytest.raises(ValueError, match=r"^--param #2 must have the form key=value, got 'alpha'$"):
        parse_assignments(["delta=0.9", "alpha"], "--param")
    with pytest.raises(ValueError, match=r"^--option #1: 'agents\.buyer' is not a parameter name$"):
        cli_sweep.parse_options(["agents.buyer=1"])
    with pytest.raises(ValueError, match=r"^--where #1 must have the form key=value, got 'budget'$"):
        cli_sweep.parse_options(["budget"], "--where")
    with pytest.raises(ValueError, match=r"^--param #1: '1x' is not a parameter name$"):
        cli_constructions.resolve_model("yoon_binary", [], ["1x=2"])


def test_save_json_writes_and_says_so_only_with_a_path(tmp_path, capsys):
    save_json(None, {"a": 1})
    assert capsys.readouterr().out == "" and not list(tmp_path.iterdir())
    path = tmp_path / "answer.json"
    save_json(str(path), {"a": np.array([1.0, 2.0])})
    assert capsys.readouterr().out == f"\nwrote {path}\n"
    assert json.loads(path.read_text()) == {"a": [1.0, 2.0]}


def test_model_files_name_their_source_in_every_model_error():
    """catalog.io._located: both schemas prepend the source and keep the error's type."""
    base = {
        "model": {"name": "m", "discount": 0.9, "horizon": "infinite"},
        "agents": [
            {"role": "buyer", "types": ["lo", "hi"], "values": [1.0, 2.0], "prior": [0.5, 0.5], "persistence": 0.7},
            {"role": "seller", "types": ["lo", "hi"], "values": [0.0, 1.5], "prior": [0.5, 0.6], "persistence": 0.7},
        ],
    }
    with pytest.raises(ValueError, match=r"^m\.toml: prior of agent 'seller' sums to 1\.1, not 1"):
        model_from_dict(base, "m.toml")
    general = {
        "model": {"name": "g", "kind": "general", "discount": 0.9, "horizon": 2, "actions": ["x", "y"]},
        "agents": [
            {
                "name": "a",
                "types": ["lo"],
                "prior": [1.0],
                "transition": [[1.0]],
                "valuation": {"x": [0.0], "y": [1.0]},
            },
        ],
        "allocation": {"table": [[0.5, 0.6]]},
    }
    with pytest.raises(ValueError, match=r"^g\.toml: allocation row 0 \(profile \{'a': 'lo'\}\) sums to 1\.1, not 1"):
        model_from_dict(general, "g.toml")
    general["allocation"] = {"table": [[0.5, 0.5]]}
    env = model_from_dict(general, "g.toml")
    assert env.meta["source"] == "g.toml"
    base["agents"][1]["prior"] = [0.5, 0.5]
    assert model_from_dict(base, "m.toml").meta["source"] == "m.toml"


def test_numbers_fill_arrays_in_their_arithmetic():
    env = lamba_usstp(0.7, 0.9)
    exact, floats = Numbers(env, exact=True), Numbers(env, exact=False)
    z, o = exact.zeros((2, 3)), exact.ones((4,))
    assert z.dtype == object and all(v == 0 and isinstance(v, Rational) for v in z.reshape(-1))
    assert all(v == 1 and isinstance(v, Rational) for v in o)
    assert exact.full((1,), -2)[0] == Fraction(-2)
    np.testing.assert_array_equal(floats.zeros((2, 3)), np.zeros((2, 3)))
    assert floats.ones((4,)).dtype == np.float64 and floats.ones((4,)).sum() == 4.0

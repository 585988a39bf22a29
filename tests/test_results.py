"""The result contract (mechlp.model.answer): every result class, its JSON round trip, its labelled frames, and the
one JSON writer used by the exports, the certificate files and the command line."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mechlp.audit.verifier import ImpossibilityCertificate, Verification
from mechlp.catalog.examples import lamba_usstp, yoon_binary
from mechlp.cli import main
from mechlp.constructions.fees import critical_discount, lump_sum_fees
from mechlp.constructions.pivot import PivotResult, dynamic_pivot
from mechlp.constructions.team import balanced_team
from mechlp.model import answer
from mechlp.model.answer import (
    SCHEMA_VERSION,
    STATUSES,
    SUCCESS_STATUSES,
    Answer,
    ResultRecord,
    jsonable,
    read_result,
    write_json,
)
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail
from mechlp.solve import questions as design
from mechlp.solve import recursion
from mechlp.solve.critical import critical_delta
from mechlp.solve.intermediate import expand_transfers, intermediate_minmax
from mechlp.solve.result import Result
from mechlp.solve.second_best import second_best
from mechlp.workflows.export import result_to_dict, to_json
from mechlp.workflows.sharing import share_surplus

MODELS = Path(__file__).resolve().parents[1] / "models"
USSTP = lamba_usstp(0.7, 0.95)


# ---------------------------------------------------------------------------------------------- one of each
def _minmax():
    return design.minmax(USSTP)


def _infeasible():
    return design.feasibility(lamba_usstp(0.9, 0.8), "interim")


#: name -> (factory, expected status); the statuses are those the existing tests establish for these models
CASES = {
    "minmax": (_minmax, "optimal"),
    "minmax_tree": (lambda: design.minmax(lamba_usstp(0.7, 0.95, horizon=3)), "optimal"),
    "infeasible": (_infeasible, "infeasible"),
    "minmax_recursion": (lambda: design.minmax(USSTP, method="recursion"), "optimal"),
    "second_best": (lambda: second_best(lamba_usstp(0.9, 0.3), objective="gains_from_trade"), "optimal"),
    "recursion_solution": (lambda: recursion.solve(USSTP), "optimal"),
    "intermediate": (lambda: intermediate_minmax(USSTP, horizon=2, histories=[0]), "optimal"),
    "pivot": (lambda: dynamic_pivot(USSTP), "verified"),
    "pivot_unchecked": (lambda: dynamic_pivot(USSTP, check=False), "not_verified"),
    "fees_ex_ante": (lambda: lump_sum_fees(yoon_binary(0.7, 0.9)), "feasible"),
    "fees_too_low": (lambda: lump_sum_fees(yoon_binary(0.7, 0.6)), "infeasible"),
    "fees_interim": (lambda: lump_sum_fees(USSTP, "interim"), "feasible"),
    "critical_discount": (lambda: critical_discount(lambda d: yoon_binary(0.7, d), 0.5, 0.95, grid=5), "bracketed"),
    "critical_delta": (lambda: critical_delta(lamba_usstp(0.7, 0.5), "ex_ante", lo=0.4, hi=0.9, grid=6), "bracketed"),
    "team": (lambda: balanced_team(lamba_usstp(0.7, 0.95, horizon=2)), "verified"),
    "team_unchecked": (lambda: balanced_team(lamba_usstp(0.7, 0.95, horizon=2), check=False), "not_verified"),
    "sharing": (lambda: share_surplus(design.minmax(USSTP), "equal", budget="ex_post"), "optimal"),
}
_CACHE: dict = {}


def get(name):
    if name not in _CACHE:
        _CACHE[name] = CASES[name][0]()
    return _CACHE[name]


def expected_space(res):
    """The space the contract's arrays are indexed by, read off each class's own public attributes."""
    if type(res).__name__ == "IntermediateResult":
        return res.space.tree
    if type(res).__name__ in ("CriticalDelta", "CriticalDiscount"):
        return None
    return res.mechanism.space if type(res).__name__ == "FeeResult" else res.space


def expected_transfers(res):
    name = type(res).__name__
    if name == "RecursionSolution":
        return res.transfers()
    if name == "IntermediateResult":
        return expand_transfers(res.space, res.transfers)
    if name in ("CriticalDelta", "CriticalDiscount") or res.mechanism is None:
        return None
    return res.mechanism.transfers


def expected_surplus(res):
    name = type(res).__name__
    if name in ("CriticalDelta", "CriticalDiscount"):
        return None
    if name == "TeamResult":
        return res.mechanism.surplus()
    return res.surplus


# ---------------------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_result_class_exposes_the_contract(name):
    res = get(name)
    assert isinstance(res, Answer)
    assert res.status == CASES[name][1] and res.status in STATUSES
    assert res.success is (res.status in ("optimal", "feasible", "verified", "bracketed"))
    assert isinstance(res.message, str) and res.message
    assert isinstance(res.timings, dict) and isinstance(res.size, dict)
    assert all(isinstance(v, float) and v >= 0 for v in res.timings.values())
    ver, cert = res.verification, res.certificate
    assert ver is None or isinstance(ver, Verification)
    assert cert is None or isinstance(cert, Verification | ImpossibilityCertificate)
    if ver is not None:
        assert cert is ver  # a mechanism's proof is its verification
    if res.status in ("optimal", "verified", "verification_failed") and expected_transfers(res) is not None:
        if type(res).__name__ != "RecursionSolution":  # the recursion leaves verification to minmax()
            assert ver is not None


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_round_trip(name, tmp_path):
    res = get(name)
    text = res.to_json()
    doc = json.loads(text)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == type(res).__name__
    assert doc["status"] == res.status and doc["success"] is res.success
    rec = type(res).from_json(doc)
    assert isinstance(rec, ResultRecord) and rec.kind == type(res).__name__
    assert (rec.status, rec.message, rec.success) == (res.status, res.message, res.success)
    pi, x = expected_surplus(res), expected_transfers(res)
    if pi is None:
        assert rec.surplus is None and doc["surplus"] == []
    else:
        np.testing.assert_array_equal(rec.surplus, pi)  # JSON floats are exact (shortest repr)
    if x is None:
        assert rec.transfers is None and doc["transfers"] is None
    else:
        np.testing.assert_array_equal(rec.transfers, x)
    assert rec.timings == pytest.approx(res.timings) and rec.size == json.loads(json.dumps(res.size))
    ver = res.verification
    assert (rec.verification is None) == (ver is None)
    if ver is not None:
        assert rec.verification["ok"] == ver.ok and rec.certificate is rec.verification
    # the record writes the same document again, and reads from a file as well
    assert json.loads(rec.to_json()) == doc
    path = tmp_path / "answer.json"
    assert res.to_json(path) == text and path.read_text(encoding="utf-8") == text + "\n"
    assert read_result(path).status == res.status and read_result(text).message == res.message


def test_minmax_result_round_trip_and_old_names():
    res = get("minmax")
    assert res.certificate is res.verification and res.verification.ok and res.success
    rec = Result.from_json(res.to_json())
    sp = res.space
    assert rec.where == [sp.describe_history(h) for h in range(sp.n_hist)]
    assert rec.agents == ["buyer", "seller"]
    assert rec.profiles == ["(v_L, c_L)", "(v_L, c_H)", "(v_H, c_L)", "(v_H, c_H)"]
    assert rec.space == {"kind": "markov", "horizon": "infinite", "histories": 5, "nodes": 20, "profiles": rec.profiles}
    assert rec.data["question"] == "minmax" and rec.data["fees"]["buyer"]["other"] == "seller"
    assert rec.data["interim_utilities"][0] == res.interim_utilities[0].tolist()
    assert rec.certificate == res.verification.to_dict()
    pd.testing.assert_frame_equal(rec.surplus_frame(), res.surplus_frame(), check_like=True)
    pd.testing.assert_frame_equal(rec.transfers_frame(), res.transfers_frame())
    pd.testing.assert_frame_equal(rec.fees_frame(), res.fees_frame())
    # a subclass reads only its own documents
    with pytest.raises(ValueError, match="holds a 'Result', not a 'PivotResult'"):
        PivotResult.from_json(res.to_json())


def test_infeasible_result_keeps_its_farkas_certificate():
    res = get("infeasible")
    assert res.verification is None and isinstance(res.certificate, ImpossibilityCertificate)
    assert not res.success and res.mechanism is None
    doc = res.to_dict()
    assert doc["verification"] is None and doc["certificate"]["kind"] == "impossibility"
    assert doc["certificate"]["checks"]["float"]["ok"] is True
    assert doc["diagnosis"]["negative"][0]["where"] == "after (v_H, c_L)" and "minmax_surplus" not in doc["diagnosis"]
    rec = read_result(res.to_json())
    assert rec.certificate["kind"] == "impossibility" and rec.certificate["gamma"] == str(res.certificate.gamma)
    # the export keeps its summary of the certificate under "verification"
    legacy = result_to_dict(res)
    assert legacy["verification"] == {"ok": True, "checks": jsonable(res.certificate.checks)}
    assert {k: v for k, v in legacy.items() if k != "verification"} == {
        k: v for k, v in doc.items() if k != "verification"
    }


def test_pivot_result_round_trip():
    res = get("pivot")
    assert res.status == "verified" and res.ok and res.certificate is res.verification
    rec = PivotResult.from_json(res.to_json())
    assert rec.data["transfers_by_profile"] == res.transfer_table()
    assert rec.data["verification_bayesian"] == res.verification_bayesian.to_dict()
    assert rec.data["ex_ante_surplus"] == float(res.surplus[0])
    assert rec.verification["options"]["ic"] == "ex_post"
    assert set(res.timings) == {"values", "verify"}
    assert get("pivot_unchecked").verification is None and not get("pivot_unchecked").success


def test_scans_have_no_space_but_the_contract():
    cd = get("critical_delta")
    d = cd.to_dict()
    assert d["critical"] == cd.critical and d["budget"] == "ex_ante" and d["status"] == "bracketed"
    assert "space" not in d and d["transfers"] is None and cd.surplus_frame().empty
    assert cd.size == {"grid": 6, "evaluations": cd.evaluations} and cd.timings == {"scan": cd.seconds}
    disc = get("critical_discount")
    assert disc.to_dict()["critical"] == disc.critical and 0.6 < disc.critical[0] < 0.9
    infeasible = critical_discount(lambda d: yoon_binary(0.7, d), 0.1, 0.3, grid=3)
    assert infeasible.status == "infeasible" and not infeasible.success
    feasible = critical_discount(lambda d: yoon_binary(0.7, d), 0.9, 0.95, grid=3)
    assert feasible.status == "feasible" and feasible.success


# ---------------------------------------------------------------------------------------------- frames
@pytest.mark.parametrize("name", ["minmax", "minmax_tree", "pivot", "team", "sharing", "intermediate"])
def test_labelled_frames_match_the_arrays(name):
    res = get(name)
    sp = expected_space(res)
    env = sp.env
    k = env.n_profiles
    pi = res.surplus_frame()
    assert pi.index.name == "history" and list(pi.index) == list(range(sp.n_hist))
    assert list(pi.columns) == ["where", "surplus"]
    assert list(pi["where"]) == [sp.describe_history(h) for h in range(sp.n_hist)]
    np.testing.assert_array_equal(pi["surplus"].to_numpy(), expected_surplus(res))
    assert pi.attrs == {"kind": type(res).__name__, "status": res.status}
    x = res.transfers_frame()
    names = [ag.name for ag in env.agents]
    assert x.index.name == "node" and list(x.index) == list(range(sp.n_nodes))
    assert list(x.columns) == ["history", "where", "profile", *names]
    np.testing.assert_array_equal(x["history"].to_numpy(), np.arange(sp.n_nodes) // k)
    for g in (0, k - 1, sp.n_nodes - 1):
        assert x.loc[g, "profile"] == "(" + ", ".join(env.profile_labels(g % k).values()) + ")"
        assert x.loc[g, "where"] == sp.describe_history(g // k)
    for i, nm in enumerate(names):
        np.testing.assert_array_equal(x[nm].to_numpy(), expected_transfers(res)[i])


def test_fees_frames():
    mm = get("minmax")
    fr = mm.fees_frame()
    assert fr.index.names == ["agent", "when"] and list(fr.columns) == ["fee"]
    f = mm.fees["buyer"]
    assert fr.loc[("buyer", "first period"), "fee"] == f["first"]
    assert fr.loc[("buyer", "after seller=c_H"), "fee"] == f["by_state"]["c_H"]
    assert len(fr) == sum(1 + len(v["by_state"]) for v in mm.fees.values())
    ante = get("fees_ex_ante")
    fa = ante.fees_frame()
    assert list(fa.index) == [("buyer", "first period"), ("seller", "first period")]
    np.testing.assert_array_equal(fa["fee"].to_numpy(), ante.fees)
    inter = get("fees_interim")
    fi = inter.fees_frame()
    assert list(fi.columns) == ["fee", "expected_fees"] and len(fi) == 2 * inter.space.n_hist
    assert fi.loc[("seller", "after (v_H, c_L)"), "fee"] == inter.fees[1, 3]
    assert fi.loc[("buyer", "period 1"), "expected_fees"] == inter.fee_values[0, 0]
    pd.testing.assert_frame_equal(read_result(inter.to_json()).fees_frame(), fi)
    assert get("pivot").fees_frame().empty and list(get("pivot").fees_frame().index.names) == ["agent", "when"]


@pytest.mark.parametrize(
    "space",
    [
        HistoryTree(lamba_usstp(0.7, 0.95, horizon=3)),
        HistoryTree(lamba_usstp(0.7, 0.95, horizon=1)),
        MarkovSpace(USSTP),
        TreeWithTail(USSTP, 2),
        TreeWithTail(USSTP, 1),
    ],
    ids=["tree3", "tree1", "markov", "tail2", "tail1"],
)
def test_describe_histories_is_describe_history_for_every_history(space):
    assert list(space.describe_histories()) == [space.describe_history(h) for h in range(space.n_hist)]


# ---------------------------------------------------------------------------------------------- reading errors
def _doc():
    return get("minmax").to_dict()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("kind"), "no 'kind'"),
        (lambda d: d.pop("status"), "no 'status'"),
        (lambda d: d.update(status="solved"), "status 'solved' is not one of"),
        (
            lambda d: d.update(schema_version=SCHEMA_VERSION + 1),
            f"schema_version must be an integer in 1..{SCHEMA_VERSION}",
        ),
        (lambda d: d.pop("schema_version"), "schema_version must be an integer"),
        (lambda d: d.update(transfers=[["a", "b"]]), "'transfers' must be a list of numbers"),
    ],
)
def test_read_result_rejects_bad_documents(edit, match):
    doc = _doc()
    edit(doc)
    with pytest.raises(ValueError, match=match):
        read_result(doc)


def test_read_result_needs_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        read_result(path)


# ---------------------------------------------------------------------------------------------- the writer
def test_jsonable_and_the_writer(tmp_path):
    data = {"f": Fraction(-19, 20), "nan": np.float64("nan"), "inf": -math.inf, "i": np.int64(3), "b": np.bool_(1)}
    assert jsonable(data) == {"f": "-19/20", "nan": None, "inf": None, "i": 3, "b": True}
    assert jsonable({"v": get("minmax").verification})["v"] == get("minmax").verification.to_dict()
    text = write_json(tmp_path / "x.json", {"a": np.array([1.0, np.nan])})
    assert (tmp_path / "x.json").read_text() == text + "\n" and json.loads(text) == {"a": [1.0, None]}
    # the export's to_json is the same writer
    assert to_json(get("pivot")) == get("pivot").to_json()
    assert json.loads(to_json(get("minmax"))) == result_to_dict(get("minmax"))


def test_statuses_are_documented():
    doc = answer.__doc__
    assert all(f'``"{s}"``' in doc for s in STATUSES)
    assert set(SUCCESS_STATUSES) < set(STATUSES)


# ---------------------------------------------------------------------------------------------- command line
@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["solve", str(MODELS / "lamba_usstp.toml")], "ex_ante_surplus"),
        (["solve", str(MODELS / "lamba_usstp.toml"), "--critical-delta", "--budget", "ex-ante", "--grid", "4"], None),
        (["pivot", "lamba_usstp"], "transfers"),
        (["fees", "yoon_binary", "--param", "alpha=0.7", "--param", "delta=0.9"], "condition"),
        (["team", str(MODELS / "lamba_usstp.toml"), "--horizon", "2"], "gamma"),
        (["share", str(MODELS / "lamba_usstp.toml")], "shares"),
        (["second-best", str(MODELS / "lamba_usstp.toml"), "--horizon", "2"], "allocation"),
    ],
    ids=["solve", "critical-delta", "pivot", "fees", "team", "share", "second-best"],
)
def test_every_cli_json_has_a_schema_version(argv, key, tmp_path, capsys):
    out = tmp_path / "answer.json"
    code = main([*argv, "--json", str(out)])
    capsys.readouterr()
    text = out.read_text(encoding="utf-8")
    payload = json.loads(text)
    assert code == 0 and payload["schema_version"] == SCHEMA_VERSION
    assert "NaN" not in text and "Infinity" not in text  # strict JSON from the one writer
    assert key is None or key in payload
    if key is None:
        assert payload["critical_delta"]["status"] == "bracketed"


def test_transfers_frame_refuses_agent_names_that_clash_with_its_columns():
    rec = ResultRecord("Result", "optimal", "m", transfers=np.zeros((1, 2)), agents=["where"], profiles=["(a)", "(b)"])
    with pytest.raises(ValueError, match=r"agent name\(s\) \['where'\] clash with the columns"):
        rec.transfers_frame()

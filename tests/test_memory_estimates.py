"""The memory estimator (mechlp.model.spaces.estimate_memory): closed forms against built spaces and LPs,
monotonicity, and refusals before anything is built (issue #11, item 6). Measured peaks are in
benchmarks/memory.py, not here (they depend on the machine)."""

from __future__ import annotations

import numpy as np
import pytest

import mechlp.audit.certfile as certfile
import mechlp.model.spaces as spaces
import mechlp.solve.questions as questions
import mechlp.solve.recursion as recursion
from mechlp.audit.certfile import certificate_payload, check_certificate
from mechlp.catalog.examples import lamba_usstp, yoon_k_type
from mechlp.cli.main import main as cli_main
from mechlp.constraints.formulation import build_lp
from mechlp.model.question import Question
from mechlp.model.spaces import (
    HistoryTree,
    MarkovSpace,
    TreeWithTail,
    estimate_memory,
    lp_counts,
    question_space,
    space_counts,
)
from mechlp.solve.critical import interleaved_trade

LAMBA = lamba_usstp(0.7, 0.95)
QUESTIONS = [
    ("recursion", {}),
    ("minmax", {"method": "recursion"}),
    ("minmax", {}),
    ("feasibility", {"budget": "ex_ante"}),
    ("feasibility", {"budget": "interim", "exact": True}),
    ("feasibility", {"budget": "ex_post"}),
    ("check", {"exact": True}),
]


def _built_counts(space):
    return space.n_hist, space.n_nodes, int(np.count_nonzero(space.child_hist >= 0))


@pytest.mark.parametrize("horizon", [1, 2, 3, 5])
def test_space_counts_equal_the_built_spaces(horizon):
    for env in (LAMBA, yoon_k_type()):
        assert space_counts(env, "tree", horizon) == _built_counts(HistoryTree(env, horizon))
        assert space_counts(env, "tail", horizon) == _built_counts(TreeWithTail(env, horizon))
    for k in (1, 2, 4):
        env = interleaved_trade(k, 0.9, 0.7)
        assert space_counts(env, "markov") == _built_counts(MarkovSpace(env))


@pytest.mark.parametrize(
    "ic, ir, budget",
    [
        ("bayesian", "interim", "interim"),
        ("bayesian", "interim", "ex_ante"),
        ("bayesian", "interim", "ex_post"),
        ("bayesian", "interim", "none"),
        ("bayesian", "interim", "savings"),
        ("local", "ex_ante", "interim"),
        ("ex_post", "ex_post", "ex_post"),
        ("bayesian", "ex_post", "none"),
    ],
)
def test_lp_counts_match_the_built_lp(ic, ir, budget):
    """Rows and columns exactly; nonzeros an upper bound, exact on a tree when no belief, kernel difference or
    transition probability vanishes (Lamba's USSTP: full-support kernels, distinct rows). On Markov states an IC
    row's child entries can fall on its own current nodes and are summed."""
    spaces_ = [
        HistoryTree(LAMBA, 3),
        TreeWithTail(LAMBA, 2),
        MarkovSpace(LAMBA),
        HistoryTree(yoon_k_type(), 2),
        MarkovSpace(interleaved_trade(3, 0.9, 0.7)),
    ]
    for sp in spaces_:
        q = Question.parse(sp.env, ic=ic, ir=ir, budget=budget)
        lp = build_lp(sp, q)
        cols, rows, nnz = lp_counts(sp.env, *_built_counts(sp), ic=ic, ir=ir, budget=budget)
        assert (lp.n_cols, lp.n_rows) == (cols, rows)
        assert lp.nnz <= nnz
        if sp.env is LAMBA and sp.kind == "tree":
            assert lp.nnz == nnz
        else:
            assert lp.nnz >= 0.75 * nnz, (sp.kind, lp.nnz, nnz)
        est = estimate_memory(sp.env, "feasibility", space=sp, ic=ic, ir=ir, budget=budget)
        assert (est.columns, est.rows, est.nonzeros) == (cols, rows, nnz)


@pytest.mark.parametrize("question, options", QUESTIONS)
def test_estimate_grows_with_horizon_and_types(question, options):
    by_t = [estimate_memory(LAMBA, question, horizon=t, **options).bytes for t in range(1, 10)]
    assert all(a < b for a, b in zip(by_t, by_t[1:], strict=False))
    by_k = [estimate_memory(interleaved_trade(k, 0.9, 0.7), question, **options).bytes for k in range(1, 8)]
    assert all(a < b for a, b in zip(by_k, by_k[1:], strict=False))
    # a built space gives the same estimate as its closed form
    assert estimate_memory(LAMBA, question, space=HistoryTree(LAMBA, 4), **options) == estimate_memory(
        LAMBA, question, horizon=4, **options
    )


def test_estimator_arguments():
    questions = r"\('recursion', 'minmax', 'feasibility', 'check', 'verify', 'ranges'\)"
    with pytest.raises(ValueError, match=rf"question must be one of {questions}"):
        estimate_memory(LAMBA, "welfare", horizon=3)
    with pytest.raises(ValueError, match="kind must be 'tree', 'markov' or 'tail', got 'ring'"):
        space_counts(LAMBA, "ring", 3)
    with pytest.raises(ValueError, match="a tree space needs horizon"):
        space_counts(LAMBA, "tree")
    with pytest.raises(ValueError, match="budget"):
        lp_counts(LAMBA, 1, 4, 4, budget="sometimes")
    with pytest.raises(TypeError, match="horizon must be an integer, got str"):
        question_space(LAMBA, "minmax", 2**30, horizon="3")
    with pytest.raises(MemoryError, match="more than 2\\*\\*62 histories"):
        estimate_memory(LAMBA, "minmax", horizon=40)


# ---------------------------------------------------------------------------------------------- refusals
def _fail(*args, **kwargs):
    raise AssertionError("built although the estimate is over the limit")


def _forbid(monkeypatch, module, *names):
    """Make the builders ``module.<name>`` fail if called; classes keep their type (``__init__`` fails)."""
    for name in names:
        obj = getattr(module, name)
        if isinstance(obj, type):
            monkeypatch.setattr(obj, "__init__", _fail)
        else:
            monkeypatch.setattr(module, name, _fail)


def test_lp_questions_refuse_before_building(monkeypatch):
    _forbid(monkeypatch, questions, "build_lp")
    _forbid(monkeypatch, spaces, "HistoryTree", "MarkovSpace", "TreeWithTail")
    with pytest.raises(
        MemoryError, match=r"^history tree with horizon 7 is too large: 5,461 histories, 21,844 nodes, 109,220 columns"
    ):
        questions.feasibility(LAMBA, "ex_post", horizon=7, memory_limit=2**20, route="lp")
    with pytest.raises(MemoryError, match=r"GiB for minmax, over the memory limit of 0\.00 GiB \(raise memory_limit"):
        questions.minmax(LAMBA, horizon=7, memory_limit=2**20, method="lp")
    with pytest.raises(MemoryError, match=r"^Markov space with 25 profiles is too large: .* GiB for feasibility, over"):
        questions.feasibility(interleaved_trade(5, 0.9, 0.7), "interim", memory_limit=2**20, route="lp")
    with pytest.raises(MemoryError, match=r"^tree with a Markov tail after 5 periods is too large: .* for feasibility"):
        questions.feasibility(LAMBA, "ex_ante", horizon=5, tail=True, exact=True, memory_limit=2**20, route="lp")


def test_the_structure_routes_refuse_before_building_too(monkeypatch):
    # minmax / feasibility "auto" try the recursion first; over the limit for it and for the LP, the LP's own
    # estimate is what the user reads (the LP needs more than the recursion)
    _forbid(monkeypatch, questions, "build_lp")
    _forbid(monkeypatch, spaces, "HistoryTree", "MarkovSpace", "TreeWithTail")
    with pytest.raises(MemoryError, match=r"^history tree with horizon 7 is too large: .* for feasibility"):
        questions.feasibility(LAMBA, "interim", horizon=7, memory_limit=2**20)
    with pytest.raises(MemoryError, match=r"^history tree with horizon 7 is too large: .* for minmax"):
        questions.minmax(LAMBA, horizon=7, memory_limit=2**20)


def test_exact_stage_is_in_the_feasibility_estimate():
    plain = estimate_memory(LAMBA, "feasibility", horizon=3, budget="ex_ante", certify=False)
    exact = estimate_memory(LAMBA, "feasibility", horizon=3, budget="ex_ante", certify=False, exact=True)
    assert exact.bytes > plain.bytes
    with pytest.raises(MemoryError, match="for feasibility, over the memory limit"):
        questions.feasibility(LAMBA, "ex_ante", horizon=3, certify=False, exact=True, memory_limit=exact.bytes - 1)
    assert (
        questions.feasibility(LAMBA, "ex_ante", horizon=3, certify=False, exact=True, memory_limit=exact.bytes).status
        == "optimal"
    )


def test_recursion_refuses_before_building(monkeypatch):
    _forbid(monkeypatch, recursion, "HistoryTree", "_solve_tree", "_solve_markov")
    with pytest.raises(MemoryError, match=r"^history tree with horizon 9: recursion plus verification need about"):
        questions.minmax(LAMBA, method="recursion", horizon=9, memory_limit=2**20)
    with pytest.raises(MemoryError, match=r"^history tree with horizon 9: the recursion needs about"):
        recursion.solve(LAMBA, horizon=9, memory_limit=2**20)
    markov = interleaved_trade(6, 0.9, 0.7)
    with pytest.raises(MemoryError, match=r"^Markov space with 36 profiles: the recursion needs about"):
        recursion.solve(markov, memory_limit=2**20)
    with pytest.raises(MemoryError, match=r"^Markov space with 36 profiles: verifying the mechanism needs about"):
        questions.minmax(markov, method="recursion", memory_limit=2**20)


def test_certificate_check_refuses_before_building(tmp_path, monkeypatch):
    env = lamba_usstp(0.7, 0.95, horizon=3)
    res = questions.feasibility(env, "ex_ante", exact=True)
    doc = certificate_payload(res, exact=True)
    need = estimate_memory(env, "check", horizon=3, exact=True).bytes
    assert check_certificate(env, doc, exact=True, memory_limit=need)[0]
    _forbid(monkeypatch, certfile, "read_mechanism", "HistoryTree", "verify")
    with pytest.raises(
        MemoryError, match=r"^checking the certificate's tree space of horizon 3 exactly is too large: 21 histories"
    ):
        check_certificate(env, doc, exact=True, memory_limit=need - 1)
    path = tmp_path / "cert.json"
    certfile.write_json(path, doc)
    model = tmp_path / "m.toml"
    model.write_text(
        "[model]\nname='m'\ndiscount=0.95\nhorizon=3\n"
        "[[agents]]\nname='buyer'\nrole='buyer'\ntypes=['v_L','v_H']\nvalues=[0.05,1.0]\nprior=[0.5,0.5]\n"
        "transition=[[0.7,0.3],[0.3,0.7]]\n"
        "[[agents]]\nname='seller'\nrole='seller'\ntypes=['c_L','c_H']\nvalues=[0.0,0.95]\nprior=[0.5,0.5]\n"
        "transition=[[0.7,0.3],[0.3,0.7]]\n[allocation]\nrule='efficient'\n"
    )
    assert cli_main(["check", str(model), str(path), "--exact", "--budget", "ex_ante", "--memory-limit", "1000"]) != 0

"""Impossibility certificates found on a subtree: closed rows, the same proof, at the cost of the subtree.

On a history tree the rows at a history involve only its nodes and its children's, so the rows of a subtree are
closed and Farkas multipliers over them prove impossibility for the whole tree. The certificate is searched
first on the subtree of the history with the lowest min-max surplus (Lamba 2022, Lemma 6), and on all rows when
that subproblem has none.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mechlp.audit.verifier import ImpossibilityCertificate, check_impossibility
from mechlp.catalog.examples import lamba_usstp
from mechlp.constraints.interim import interim_rows
from mechlp.model.exact import Numbers
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree
from mechlp.proofs import farkas
from mechlp.solve import questions


def test_descendants_are_the_histories_whose_path_starts_with_the_root_path():
    tree = HistoryTree(lamba_usstp(0.9, 0.3), 4)
    h = 2  # a period-2 history (period 2 is histories 1..4)
    sub = tree.descendants([h])
    # 1 + 4 + 16 histories in periods 2, 3 and 4
    assert sub.size == 21 and sub[0] == h
    prefix = tree.describe_history(h)
    texts = tree.describe_histories()
    assert all(str(t).startswith(prefix) for t in texts[sub])
    others = np.setdiff1d(np.arange(tree.n_hist), sub)
    assert not any(str(t).startswith(prefix + " ->") or str(t) == prefix for t in texts[others])
    with pytest.raises(ValueError, match="histories must be in 0..84"):
        tree.descendants([85])


@pytest.mark.parametrize("exact", [False, True])
def test_rows_built_on_a_subtree_are_the_full_rows_at_its_histories(exact):
    env = lamba_usstp(0.9, 0.3)
    tree = HistoryTree(env, 4)
    nums = Numbers(env, exact=exact)
    full = interim_rows(tree, nums)
    hs = tree.descendants([5])
    sub = interim_rows(tree, nums, hists=hs)

    def table(r, keep):
        out = {}
        for j in np.flatnonzero(keep):
            m = r.rows == j
            key = (str(r.family[j]), int(r.agent[j]), int(r.hist[j]), int(r.type[j]), int(r.misreport[j]))
            out[key] = (dict(zip(r.cols[m].tolist(), [float(v) for v in r.vals[m]], strict=True)), r.b[j])
        return out

    a, b = table(full, np.isin(full.hist, hs)), table(sub, np.ones(sub.n_rows, dtype=bool))
    assert a.keys() == b.keys() and len(a) == sub.n_rows
    for key in a:
        assert a[key][0] == b[key][0]
        assert a[key][1] == b[key][1] if exact else abs(a[key][1] - b[key][1]) < 1e-12


@pytest.fixture(scope="module")
def tree5():
    env = lamba_usstp(0.9, 0.3)
    res = questions.feasibility(env, "interim", horizon=5)
    assert res.status == "infeasible"
    return res


def test_the_certificate_lives_on_the_subtree_of_the_lowest_surplus_and_is_exact(tree5):
    cert = tree5.certificate
    space = tree5.space
    pi = tree5.diagnosis["minmax_surplus"]
    focus = int(np.argmin(pi))
    assert cert.options["focus"] == space.describe_history(focus)
    sub = set(space.descendants([focus]).tolist())
    support = set(cert.weight_by_history())
    assert support and support <= sub
    assert cert.checks["exact"]["ok"] and cert.gamma == 1
    assert cert.checks["exact"]["coordinates"] == 2 * space.n_nodes
    assert f"found on the subtree of {space.describe_history(focus)}" in cert.summary()


def test_a_subtree_without_a_certificate_falls_back_to_all_rows(tree5, monkeypatch):
    # every subtree of this model holds an infeasible last period, so the subproblem's LP is made to find nothing
    space = tree5.space
    calls = []
    original = farkas._farkas_float

    def first_fails(rows, backend="highs", time_limit=None):
        calls.append(rows.n_rows)
        return None if len(calls) == 1 else original(rows, backend, time_limit)

    monkeypatch.setattr(farkas, "_farkas_float", first_fails)
    q = Question.parse(space.env, budget="interim")
    cert = farkas.impossibility_certificate(space, question=q, minmax_surplus=tree5.diagnosis["minmax_surplus"])
    assert len(calls) == 2 and calls[0] < calls[1]  # the subtree's rows first, then all rows
    assert cert is not None and "focus" not in cert.options
    assert check_impossibility(cert, exact=True)["ok"]


def test_ex_ante_rows_are_not_restricted_to_a_subtree():
    env = lamba_usstp(0.9, 0.3)
    res = questions.feasibility(env, "ex_ante", horizon=3)
    assert res.status == "infeasible"
    assert "focus" not in res.certificate.options and res.certificate.checks["exact"]["ok"]


@pytest.mark.slow
def test_tree_of_eight_periods_certificate_is_exact_and_a_1e12_change_is_caught():
    # issue #11: a 2x2 tree of 8 periods (87,380 nodes); the check runs in ~5 s, measured in the note
    res = questions.feasibility(lamba_usstp(0.9, 0.3), "interim", horizon=8)
    cert = res.certificate
    assert res.status == "infeasible" and cert.checks["exact"]["ok"]
    assert cert.checks["exact"]["coordinates"] == 174_760 and cert.checks["exact"]["nonzero"] == 0
    ic = {key: arr.copy() for key, arr in cert.ic.items()}
    key = next(k for k, a in ic.items() if np.any(a != 0))
    h = int(np.flatnonzero(ic[key] != 0)[0])
    ic[key][h] += Fraction(1, 10**12)
    moved = ImpossibilityCertificate(cert.space, cert.options, cert.gamma, ic, cert.ir, cert.budget)
    out = check_impossibility(moved, exact=True)
    assert not out["ok"] and out["nonzero"] > 0 and out["worst"]["history"] in (h, *cert.space.descendants([h]))

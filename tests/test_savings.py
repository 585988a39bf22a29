"""Savings budget balance: an intermediary whose account carries past surplus forward (Lamba 2022, section 8)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mechlp.audit.verifier import verify
from mechlp.catalog.examples import lamba_usstp, public_project
from mechlp.constraints.formulation import build_lp
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import HistoryTree, MarkovSpace
from mechlp.solve import questions as design


def statuses(env, **kw) -> dict[str, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            b: design.feasibility(env, b, certify=False, **kw).status == "optimal"
            for b in ("interim", "savings", "ex_ante")
        }


def test_lamba_case_where_interim_fails_but_savings_holds():
    env = lamba_usstp(0.9, 0.8)
    assert statuses(env) == {"interim": False, "savings": True, "ex_ante": True}
    res = design.feasibility(env, "savings")
    assert res.status == "optimal" and res.certificate.ok
    assert res.certificate.n_rows["budget"] == 1  # Markov space: the worst path, one row
    assert "worst path:" in res.certificate.worst["budget"].where


@pytest.mark.parametrize(
    ("env", "kw"),
    [
        (lamba_usstp(0.6, 0.6), {}),
        (lamba_usstp(0.75, 0.6), {}),
        (lamba_usstp(0.95, 0.5), {}),
        (lamba_usstp(0.6, 0.8), {"horizon": 3}),
        (lamba_usstp(0.9, 0.95), {"horizon": 1, "tail": True}),
        (public_project(discount=0.5), {}),
        (public_project(discount=0.9, horizon=2), {}),
    ],
    ids=["usstp-.6-.6", "usstp-.75-.6", "usstp-.95-.5", "tree3", "tail1", "project-.5", "project-tree2"],
)
def test_interim_implies_savings_implies_ex_ante(env, kw):
    st = statuses(env, **kw)
    assert (not st["interim"]) or st["savings"]
    assert (not st["savings"]) or st["ex_ante"]
    # with Bayesian IC and interim IR payments can be re-arranged within a history: savings equals ex ante
    assert st["savings"] == st["ex_ante"]


def test_with_ex_post_ic_interim_does_not_imply_savings():
    # past deficits count against the account, and ex post IC pins payments down pointwise
    st = statuses(lamba_usstp(0.6, 0.6), ic="ex_post")
    assert st == {"interim": True, "savings": False, "ex_ante": True}


def test_infeasible_savings_has_a_verified_ex_ante_farkas_certificate():
    res = design.feasibility(lamba_usstp(0.95, 0.5), "savings")
    assert res.status == "infeasible"
    cert = res.certificate
    assert cert.ok and cert.options["budget"] == "ex_ante" and cert.options["question_budget"] == "savings"
    assert "savings balance implies it" in cert.summary()


def test_rows_are_sparse():
    space = HistoryTree(lamba_usstp(0.7, 0.95), 3)
    lp = build_lp(space, budget="savings")
    rows = lp.labels.family_rows("budget")
    per_row = np.diff(lp.A.tocsr()[rows].indptr)
    assert per_row.max() <= space.env.n_profiles + 1  # Q(h) - Pi(h): K + 1; path rows: n + 2 = 4
    assert rows.size == space.n_hist + int((space.child_hist >= 0).sum()) + 1
    assert lp.n_cols == lp.variables.extra("Q", 0) + space.n_hist


def brute_force_account(space: HistoryTree, x: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """R(h) = A(h) + Pi(h) walking every path with Python loops (an independent reference)."""
    k, delta = space.env.n_profiles, space.env.discount
    out = np.empty(space.n_hist)
    for h in range(space.n_hist):
        path, g = [], h
        while g > 0:
            path.append(g - 1)
            g = (g - 1) // k
        account = 0.0
        for node in reversed(path):
            account = (account + x[:, node].sum()) / delta
        out[h] = account + pi[h]
    return out


def test_tree_rows_equal_account_plus_continuation_and_detect_violations():
    env = lamba_usstp(0.6, 0.8)
    res = design.feasibility(env, "savings", horizon=3)
    mech = res.mechanism
    ver = verify(mech, budget="savings")
    assert ver.ok and ver.n_rows["budget"] == mech.space.n_hist
    rng = np.random.default_rng(1)
    x = mech.transfers + rng.normal(scale=0.3, size=mech.transfers.shape)
    noisy = Mechanism(mech.space, x)
    ref = brute_force_account(mech.space, x, noisy.surplus())
    bad = verify(noisy, budget="savings")
    assert bad.max_violation["budget"] == pytest.approx(max(0.0, -ref.min()), abs=1e-12)
    exact = verify(mech, budget="savings", exact=True, max_denominator=10**9)
    assert exact.n_rows["budget"] == mech.space.n_hist


def test_markov_worst_path_matches_a_reference_value_iteration():
    env = lamba_usstp(0.9, 0.8)
    res = design.feasibility(env, "savings")
    space: MarkovSpace = res.space
    rng = np.random.default_rng(0)
    mech = Mechanism(space, res.mechanism.transfers + rng.normal(scale=0.2, size=res.mechanism.transfers.shape))
    pi, collected, k = mech.surplus(), mech.transfers.sum(axis=0), env.n_profiles
    w = pi.copy()
    for _ in range(400):  # reference: W(h) = min(Pi(h), min_theta X(h, theta) + delta W(state theta))
        w = np.array(
            [min(pi[h], min(collected[h * k + t] + env.discount * w[1 + t] for t in range(k))) for h in range(5)]
        )
    ver = verify(mech, budget="savings")
    assert ver.worst["budget"].slack == pytest.approx(w[0], abs=1e-9)
    assert ver.ok == (w[0] >= -1e-7)
    exact = verify(res.mechanism, budget="savings", exact=True)
    assert exact.max_violation["budget"] < 1e-12  # policy iteration in rationals agrees with the float answer


def test_savings_on_a_tree_with_a_tail_floats_and_exact():
    res = design.feasibility(lamba_usstp(0.9, 0.8), "savings", horizon=2, tail=True)
    assert res.status == "optimal" and res.certificate.ok
    exact = verify(res.mechanism, budget="savings", exact=True)
    assert exact.worst["budget"].slack == pytest.approx(res.certificate.worst["budget"].slack, abs=1e-12)

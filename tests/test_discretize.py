"""Continuous types by discretisation (issue #13, item 4): interval priors and AR(1) processes at K points, the
convergence report of ``refine``, and the two limits from the papers.

Expected values are closed forms, never the code's output:

* Yoon (2021), section 3.3.1 (A): with values and costs iid uniform on [0, 1] the pivot's deficit is 1/6 per period
  and the lump-sum fee 1/6 per player. On the K-point midpoint grid, with i, j uniform on 0..K-1,
  E[(Y - X)^+] = E|i - j| / (2K) = (K^2 - 1)/(6K^2), so the error is exactly -1/(6K^2): observed order 2 and a
  Richardson limit equal to 1/6 up to rounding (tolerance 1e-12).
* Athey and Miller (2007) / Lamba (2022, footnote 24): the critical discount factor of the iid continuous model is
  1/2. The discrete values on the interleaved grids rise toward it at order about 1 (measured: 0.3125, 0.4167,
  0.4605 at K = 5, 10, 20, 0.4808 at K = 40); the tests ask that the extrapolated limit be within its own error
  estimate of 1/2 and much closer than the finest value (measured 0.0044 vs 0.0395).
* Rouwenhorst's chain matches the AR(1) moments exactly (stationary Binomial(K-1, 1/2) on an even grid of
  half-width sqrt(K-1) s, s^2 = sigma^2/(1 - rho^2); conditional mean m + rho (x - m)).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import mechlp as ml
from mechlp.catalog import discretize
from mechlp.catalog.discretize import (
    TypeGrid,
    ar1_types,
    beta_types,
    stationary_distribution,
    trade_from_types,
    uniform_types,
    yoon_continuous,
)
from mechlp.constructions.fees import fee_condition, lump_sum_fees
from mechlp.solve.critical import interleaved_trade
from mechlp.workflows.refine import Refinement, refine, richardson

SIXTH = 1.0 / 6.0


def midpoint_gain(k: int) -> float:
    """E[(Y - X)^+] for X, Y iid on the K midpoints of [0, 1]: (K^2 - 1)/(6K^2) (module docstring)."""
    return (k * k - 1) / (6.0 * k * k)


def deficit_per_period(env) -> float:
    return fee_condition(env).deficit / 2.0  # two periods, delta = 1


def seller_fee(env) -> float:
    return float(fee_condition(env).worst_payoff[env.agent_index("seller")])


def critical(env) -> float:
    """The critical delta under interim balance (Lamba 2022, Theorem 1), by the recursion; one sign change."""
    res = ml.critical_delta(env, method="recursion", grid=9, tol=1e-8)
    assert len(res.critical) == 1, res.message
    return res.critical[0]


# ---------------------------------------------------------------------------------------------- interval priors
@pytest.mark.parametrize("method", ["bins", "quantile"])
def test_uniform_grid_is_the_midpoints_with_equal_weights(method):
    g = uniform_types(4, 1.0, 3.0, method=method)
    np.testing.assert_allclose(g.values, [1.25, 1.75, 2.25, 2.75], atol=1e-14)
    np.testing.assert_allclose(g.prior, 0.25, atol=1e-14)
    assert g.kernel is None
    np.testing.assert_allclose(g.transition(), np.full((4, 4), 0.25))


@pytest.mark.parametrize("method", ["bins", "quantile"])
def test_beta_one_one_is_uniform(method):
    b, u = beta_types(7, 1.0, 1.0, method=method), uniform_types(7, method=method)
    np.testing.assert_allclose(b.values, u.values, atol=1e-12)
    np.testing.assert_allclose(b.prior, u.prior, atol=1e-12)


def test_beta_bins_are_the_bin_masses():
    g = beta_types(2, 2.0, 1.0)  # density 2x on [0, 1]: F(x) = x^2, masses 1/4 and 3/4 at 1/4 and 3/4
    np.testing.assert_allclose(g.values, [0.25, 0.75])
    np.testing.assert_allclose(g.prior, [0.25, 0.75], atol=1e-14)
    q = beta_types(2, 2.0, 1.0, method="quantile")  # F^{-1}(u) = sqrt(u) at u = 1/4, 3/4
    np.testing.assert_allclose(q.values, [0.5, math.sqrt(0.75)], atol=1e-12)


@pytest.mark.parametrize("method", ["bins", "quantile"])
def test_beta_moments_converge_to_the_closed_forms(method):
    a, b = 2.0, 3.0  # mean a/(a+b) = 0.4, variance ab/((a+b)^2 (a+b+1)) = 0.04
    mean = refine(lambda k: beta_types(k, a, b, method=method).mean(), ks=(5, 10, 20, 40), exact=0.4)
    var = refine(lambda k: beta_types(k, a, b, method=method).variance(), ks=(5, 10, 20, 40), exact=0.04)
    # measured: the finest values are off by <= 3.6e-4, the limits by <= 7.7e-6, each within its estimate
    for r in (mean, var):
        assert r.limit_error <= max(r.error, 1e-15)
        assert r.limit_error < 0.1 * abs(r.values[-1] - r.exact) or r.limit_error < 1e-12


@pytest.mark.parametrize(("method", "least_order"), [("bins", 3.5), ("quantile", 1.4)])
def test_beta_trade_deficit_tends_to_one_quarter(method, least_order):
    """Buyer values Beta(2, 2), seller costs Beta(2, 5): E[(v - c)^+] = int_0^1 int_0^v (v - c) 6v(1-v) 30c(1-c)^4
    dc dv = 1/4 (computed symbolically). Measured orders: 4.02 (bins: both densities vanish at the ends)
    and 1.60 (quantile: F^{-1} has root singularities at the ends)."""

    def build(k):
        return trade_from_types(beta_types(k, 2, 2, method=method), beta_types(k, 2, 5, method=method), 1.0, 2)

    r = refine(build, deficit_per_period, exact=0.25)
    assert r.order > least_order
    assert r.limit_error <= r.error  # measured 1.2e-9 <= 6.9e-8 (bins), 1.8e-5 <= 3.0e-5 (quantile)
    assert r.limit_error < 0.2 * abs(r.values[-1] - 0.25)


# ---------------------------------------------------------------------------------------------- AR(1)
@pytest.mark.parametrize("k", [2, 5, 12])
def test_rouwenhorst_matches_the_ar1_moments_exactly(k):
    rho, sigma, m = 0.6, 0.2, 1.5
    s = sigma / math.sqrt(1 - rho**2)
    g = ar1_types(k, rho, sigma, m)
    assert g.method == "rouwenhorst"
    np.testing.assert_allclose(g.values, np.linspace(m - math.sqrt(k - 1) * s, m + math.sqrt(k - 1) * s, k))
    binom = np.array([math.comb(k - 1, j) for j in range(k)]) / 2.0 ** (k - 1)
    np.testing.assert_allclose(g.prior, binom, atol=1e-12)
    assert g.mean() == pytest.approx(m, abs=1e-12)
    assert g.variance() == pytest.approx(s * s, rel=1e-10)
    np.testing.assert_allclose(g.kernel @ g.values, m + rho * (g.values - m), atol=1e-12)
    autocov = g.prior @ ((g.values - m) * (g.kernel @ (g.values - m)))
    assert autocov / g.variance() == pytest.approx(rho, abs=1e-12)


def test_tauchen_grid_spans_n_std_and_its_moments_are_close():
    rho, sigma, m = 0.5, 0.1, 1.0
    s = sigma / math.sqrt(1 - rho**2)
    narrow = ar1_types(21, rho, sigma, m, method="tauchen", n_std=2.5)
    np.testing.assert_allclose(narrow.values[[0, -1]], [m - 2.5 * s, m + 2.5 * s])
    g = ar1_types(21, rho, sigma, m, method="tauchen")  # n_std = 3
    np.testing.assert_allclose(g.values[[0, -1]], [m - 3 * s, m + 3 * s])
    np.testing.assert_allclose(g.prior @ g.kernel, g.prior, atol=1e-12)  # stationary prior
    assert g.mean() == pytest.approx(m, abs=1e-12)  # symmetric grid and kernel
    # Tauchen approximates: measured 0.4% off at 3 sds (2.1% at 2.5 sds, where the cut tails weigh more)
    assert g.variance() == pytest.approx(s * s, rel=0.01)


def test_stationary_distribution_of_a_two_state_chain():
    p = np.array([[0.9, 0.1], [0.3, 0.7]])  # pi = (0.3, 0.1)/0.4
    np.testing.assert_allclose(stationary_distribution(p), [0.75, 0.25], atol=1e-12)


def test_ar1_types_say_what_to_install_without_quantecon(monkeypatch):
    monkeypatch.setattr(discretize, "qe_markov", None)
    with pytest.raises(ImportError, match=r"mechlp\[discretize\]"):
        ar1_types(5, 0.5, 0.1)
    assert uniform_types(3).n_points == 3  # the interval priors do not need it


def test_ar1_types_take_a_prior_and_hide_quantecons_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # QuantEcon's rouwenhorst warns about its 2019 API change at every call
        g = ar1_types(4, 0.3, 1.0, prior=[0.25, 0.25, 0.25, 0.25])
    np.testing.assert_allclose(g.prior, 0.25)


# ---------------------------------------------------------------------------------------------- the trade model
def test_trade_from_types_builds_the_efficient_bilateral_trade():
    buyer, seller = beta_types(3, 2.0, 2.0), uniform_types(3, kernel=np.eye(3))
    env = trade_from_types(buyer, seller, 0.8, 3)
    b, s = env.agents[env.agent_index("buyer")], env.agents[env.agent_index("seller")]
    np.testing.assert_allclose(b.values, buyer.values)
    np.testing.assert_allclose(s.values, seller.values)
    np.testing.assert_allclose(b.prior, buyer.prior)
    np.testing.assert_allclose(b.kernel(2)[0], np.tile(buyer.prior, (3, 1)))
    np.testing.assert_allclose(s.kernel(2)[0], np.eye(3))
    assert env.meta["discretised"]["buyer"] == {"method": "bins", "params": buyer.params, "points": 3}
    assert env.discount == 0.8 and env.horizon == 3


@pytest.mark.parametrize("k", [1, 3, 8])
def test_yoon_grid_values_are_the_closed_form(k):
    env = yoon_continuous(k)
    assert deficit_per_period(env) == pytest.approx(midpoint_gain(k), abs=1e-13)
    cond = fee_condition(env)
    np.testing.assert_allclose(cond.worst_payoff, midpoint_gain(k), atol=1e-13)
    assert cond.slack == pytest.approx(0.0, abs=1e-13)  # the fees exactly cover both periods (Yoon: 1/6 + 1/6)


def test_yoon_fee_mechanism_is_verified_on_the_tree():
    res = lump_sum_fees(yoon_continuous(4))
    assert res.status == "feasible", res.message
    np.testing.assert_allclose(res.fees, midpoint_gain(4), atol=1e-12)


# ---------------------------------------------------------------------------------------------- the limits
def test_yoon_deficit_and_fee_tend_to_one_sixth():
    deficit = refine(yoon_continuous, deficit_per_period, exact=SIXTH, name="deficit")
    fee = refine(yoon_continuous, seller_fee, exact=SIXTH, name="fee")
    for r in (deficit, fee):
        np.testing.assert_allclose(r.values, [midpoint_gain(k) for k in (5, 10, 20, 40)], atol=1e-13)
        np.testing.assert_allclose(r.orders, 2.0, atol=1e-9)  # the error is exactly -1/(6K^2)
        assert r.limit == pytest.approx(SIXTH, abs=1e-12)
        assert r.error < 1e-12
        assert abs(r.values[-1] - SIXTH) > 1e-4  # the finest value alone is off by 1/9600


def test_yoon_persistent_case_charges_no_fee():
    """Case (2): theta^0 = theta^1; the deficit is 1/3 over the two periods and no fee can be charged."""
    deficit = refine(lambda k: yoon_continuous(k, persistent=True), lambda e: fee_condition(e).deficit, exact=1 / 3)
    assert deficit.limit == pytest.approx(1 / 3, abs=1e-12)
    for k in (5, 10):
        cond = fee_condition(yoon_continuous(k, persistent=True))
        np.testing.assert_allclose(cond.worst_payoff, 0.0, atol=1e-14)
        assert not cond.feasible


def test_athey_miller_critical_delta_tends_to_one_half():
    r = refine(interleaved_trade, critical, ks=(5, 10, 20), order=1, exact=0.5, name="critical delta")
    assert np.all(np.diff(r.values) > 0) and np.all(r.values < 0.5)
    assert r.limit_error <= r.error  # the estimate covers the true error (measured 0.0044 <= 0.0164)
    assert r.limit_error < 0.25 * abs(r.values[-1] - 0.5)  # and extrapolation helps (measured 9x)


@pytest.mark.slow
def test_athey_miller_critical_delta_at_forty_points():
    r = refine(interleaved_trade, critical, ks=(5, 10, 20, 40), order=1, terms=2, exact=0.5)
    assert r.limit_error <= r.error  # measured 1.1e-4 <= 9.8e-4
    assert r.limit_error < 1e-3


# ---------------------------------------------------------------------------------------------- refine
def test_richardson_removes_the_error_terms_it_is_told_about():
    ks = np.array([4.0, 8.0, 16.0, 32.0])
    q = 1.0 + 2.0 / ks + 3.0 / ks**2
    assert richardson(ks, q, order=1, terms=2) == pytest.approx(1.0, abs=1e-12)
    assert abs(richardson(ks, q, order=1, terms=1) - 1.0) > 1e-3  # one term leaves 3/K^2
    q = 2.0 - 5.0 * ks**-1.5
    assert richardson(ks, q) == pytest.approx(2.0, abs=1e-12)  # observed order 1.5
    ks = np.array([4.0, 6.0, 10.0])  # no constant ratio: fine with a given order and one term
    assert richardson(ks, 1.0 + 1.0 / ks**2, order=2) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"same length >= 3 \(terms=1, order=None\); got 2 and 2"):
        richardson([5, 10], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"got 3 and 2"):
        richardson([5, 10, 20], [0.1, 0.2], order=1)


def test_refine_reports_the_sequence_and_its_table():
    r = refine(lambda k: 1.0 + 1.0 / k**2, ks=(5, 10, 20), exact=1.0, name="q")
    assert isinstance(r, Refinement)
    np.testing.assert_allclose(r.differences, [1 / 100 - 1 / 25, 1 / 400 - 1 / 100])
    np.testing.assert_allclose(r.ratios, [4.0])
    table = r.table()
    assert list(table.columns) == ["K", "q", "difference", "ratio", "order", "error", "seconds"]
    assert table["K"].tolist() == [5, 10, 20]
    assert math.isnan(r.error)  # three values: one limit, nothing to compare it with
    assert r.to_dict()["error"] != r.to_dict()["error"]  # NaN in the dict ...
    assert '"error": null' in r.to_json()  # ... null in the JSON
    assert "Richardson limit 1" in str(r)


def test_refine_stops_at_a_converged_sequence():
    r = refine(lambda k: 0.25, ks=(5, 10, 20, 40))
    assert r.limit == 0.25 and r.error == 0.0
    assert np.all(np.isnan(r.orders))
    assert "converged" in r.message


def test_refine_says_when_there_is_no_limit():
    r = refine({5: 1.0, 10: 2.0, 20: 1.5, 40: 1.7}.get, ks=(5, 10, 20, 40))  # the differences change sign
    assert math.isnan(r.limit)
    assert "no limit" in r.message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ks": (5, 5, 10)}, r"ks must be strictly increasing; ks\[1\] = 5 follows 5"),
        ({"ks": (5, 2.5, 10)}, r"ks\[1\] must be a positive integer"),
        ({"ks": (0, 5, 10)}, r"ks\[0\] must be a positive integer"),
        ({"ks": (5, 10)}, r"ks has 2 values; order=None with terms=1 needs at least 3"),
        ({"ks": (5, 10, 20), "order": 1, "terms": 3}, r"needs at least 4"),
        ({"ks": (5, 10, 15)}, r"no constant ratio"),
        ({"ks": (5, 10, 15), "order": 1, "terms": 2}, r"no constant ratio"),
        ({"order": 0}, r"order must be a positive number"),
        ({"order": float("nan")}, r"order must be a positive number"),
        ({"terms": 0}, r"terms must be an integer >= 1"),
    ],
)
def test_refine_validates_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        refine(lambda k: 1.0 / k, **kwargs)


def test_refine_validates_the_callables_and_the_answers():
    with pytest.raises(TypeError, match="build must be a callable"):
        refine(3)
    with pytest.raises(TypeError, match="solve must be a callable"):
        refine(lambda k: k, "x")
    with pytest.raises(TypeError, match="ks must be a sequence"):
        refine(lambda k: k, ks="5, 10")
    with pytest.raises(ValueError, match="at K=10 it returned nan"):
        refine(lambda k: 1.0 if k < 10 else math.nan)
    with pytest.raises(ValueError, match="at K=5 it returned str"):
        refine(lambda k: "0.5")


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: uniform_types(0), r"k must be an integer >= 1, got 0"),
        (lambda: uniform_types(True), r"k must be an integer >= 1"),
        (lambda: uniform_types(3, 1.0, 1.0), r"need low < high, got low=1.0, high=1.0"),
        (lambda: uniform_types(3, float("inf")), r"low must be a finite number"),
        (lambda: uniform_types(3, method="gauss"), r"method must be one of \('bins', 'quantile'\)"),
        (lambda: beta_types(3, 0.0, 1.0), r"a must be positive"),
        (lambda: beta_types(3, 1.0, -2.0), r"b must be positive"),
        (lambda: ar1_types(1, 0.5, 0.1), r"k must be an integer >= 2"),
        (lambda: ar1_types(5, 1.0, 0.1), r"rho must satisfy -1 < rho < 1"),
        (lambda: ar1_types(5, 0.5, 0.0), r"sigma must be positive"),
        (lambda: ar1_types(5, 0.5, 0.1, method="tauchen", n_std=0), r"n_std must be positive"),
        (lambda: ar1_types(5, 0.5, 0.1, method="hussey"), r"method must be one of \('rouwenhorst', 'tauchen'\)"),
        (lambda: ar1_types(3, 0.5, 0.1, prior=[0.5, 0.5]), r"prior has shape \(2,\); expected \(3,\)"),
        (lambda: TypeGrid([0.0, 0.5, 0.5], [0.2, 0.3, 0.5]), r"values\[2\] = 0.5 follows 0.5"),
        (lambda: TypeGrid([0.0, np.nan], [0.5, 0.5]), r"values must be finite; index 1"),
        (lambda: TypeGrid([0.0, 1.0], [0.7, 0.7]), r"prior sums to 1.4"),
        (lambda: TypeGrid([0.0, 1.0], [1.5, -0.5]), r"prior has a negative or non-finite entry -0.5 at index 1"),
        (lambda: TypeGrid([0.0, 1.0], [0.5, 0.5], np.eye(3)), r"kernel has shape \(3, 3\); expected \(2, 2\)"),
        (lambda: TypeGrid([0.0, 1.0], [0.5, 0.5], [[1, 0], [0.5, 0.6]]), r"kernel row 1 sums to 1.1"),
        (lambda: yoon_continuous(-1), r"k must be an integer >= 1"),
    ],
)
def test_discretisers_validate_their_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_trade_from_types_wants_grids():
    with pytest.raises(TypeError, match="seller must be a TypeGrid"):
        trade_from_types(uniform_types(2), [0.0, 1.0], 0.9)


def test_import_mechlp_does_not_load_quantecon():
    root = Path(ml.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    code = "import sys, mechlp; print('quantecon' in sys.modules, 'numba' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"

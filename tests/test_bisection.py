"""The grid scan + bisection shared by every critical value (mechlp.model.bisection, issue #10): functions with
known roots, a non-monotone one among them, and the one named monotonicity tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mechlp.catalog.examples import yoon_binary
from mechlp.constructions.fees import critical_discount, fee_condition
from mechlp.model import tolerances
from mechlp.model.bisection import check_grid, monotone_violations, scan_and_bisect


# ---------------------------------------------------------------------------------------------- bisection
def test_bisection_finds_every_root_of_a_non_monotone_function():
    roots = [1 / 6, 1 / 2, 5 / 6]  # cos(3 pi d) on (0.05, 0.95): three sign changes, positive at 0.05

    def f(d):
        return math.cos(3 * math.pi * d)

    scan = scan_and_bisect(f, 0.05, 0.95, tol=1e-11, grid=19, threshold=0.0)
    assert scan.directions == ["becomes infeasible", "becomes feasible", "becomes infeasible"]
    for (a, b), c, r in zip(scan.brackets, scan.critical, roots, strict=True):
        assert b - a <= 1e-11 and a <= r + 1e-12 and r - 1e-12 <= b and abs(c - r) < 1e-11
    assert not scan.monotone
    assert all(d1 < d2 and v1 > v2 for d1, v1, d2, v2 in scan.violations)


def test_bisection_of_a_monotone_function_with_a_threshold():
    scan = scan_and_bisect(lambda d: d**3, 0.0, 1.0, tol=1e-12, grid=7, threshold=0.125)
    assert scan.monotone and scan.violations == [] and scan.directions == ["becomes feasible"]
    assert scan.critical[0] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_array_equal(scan.grid, np.linspace(0.0, 1.0, 7))


def test_monotonicity_uses_the_named_tolerance():
    tol = tolerances.MONOTONE
    assert monotone_violations([(0.0, 1.0), (0.5, 1.0 - 0.5 * tol), (1.0, 2.0)]) == []
    assert monotone_violations([(0.0, 1.0), (0.5, 1.0 - 2 * tol), (1.0, 2.0)]) == [(0.0, 1.0, 0.5, 1.0 - 2 * tol)]
    big = 1e6  # relative: the allowance scales with max(1, |v1|, |v2|)
    assert monotone_violations([(0.0, big), (1.0, big * (1 - 0.5 * tol))]) == []
    assert monotone_violations([(0.0, -math.inf), (1.0, -math.inf)]) == []
    assert monotone_violations([(0.0, 1.0), (1.0, -math.inf)]) == [(0.0, 1.0, 1.0, -math.inf)]


def test_grid_validation():
    np.testing.assert_array_equal(check_grid(0.0, 1.0, [0.1, 0.4]), [0.1, 0.4])
    with pytest.raises(TypeError, match="got a bool"):
        check_grid(0.0, 1.0, True)
    with pytest.raises(ValueError, match="at least 2 points"):
        check_grid(0.0, 1.0, 1)
    with pytest.raises(ValueError, match="non-finite"):
        check_grid(0.0, 1.0, [0.1, math.nan])
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        check_grid(0.0, 1.0, [[0.1, 0.2], [0.3, 0.4]])


def test_fee_critical_discount_is_the_shared_scan_of_yoon_slack():
    """Both critical-value routines share one scan and one monotonicity test (tolerances.MONOTONE)."""
    alpha = 0.9  # the slack dips before it rises (see tests/test_fees.py)
    cd = critical_discount(lambda d: yoon_binary(alpha, d), 0.05, 0.99, 1e-8, grid=21)
    scan = scan_and_bisect(lambda d: fee_condition(yoon_binary(alpha, d)).slack, 0.05, 0.99, 1e-8, 21)
    assert cd.brackets == scan.brackets and cd.directions == scan.directions
    assert cd.monotone == scan.monotone is False
    assert abs(cd.critical[0] - 1 / (3 - 2 * alpha)) < 1e-6  # Yoon (2021), section 3.3.2
    with pytest.raises(ValueError, match="need lo < hi"):
        critical_discount(lambda d: yoon_binary(alpha, d), 0.5, 0.5)
    with pytest.raises(ValueError, match="tol must be a positive number"):
        critical_discount(lambda d: yoon_binary(alpha, d), 0.1, 0.5, 0.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        critical_discount(lambda d: yoon_binary(alpha, d), 0.1, 0.5, grid=1)

"""One entry point for every LP (:func:`mechlp.backends.solve_arrays`), with HiGHS and cvxpy answering alike."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import mechlp.backends as backends
from mechlp.backends import cvxpy as cvxpy_backend
from mechlp.backends import highs as highs_backend
from mechlp.backends import solve_arrays, solve_lp
from mechlp.catalog.examples import lamba_usstp
from mechlp.constraints.formulation import build_lp
from mechlp.model.spaces import MarkovSpace
from mechlp.proofs import farkas
from mechlp.proofs.farkas import impossibility_certificate
from mechlp.solve.intermediate import intermediate_feasibility, intermediate_minmax
from mechlp.solve.questions import feasibility, minmax
from mechlp.workflows.sharing import share_surplus

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mechlp"
BOTH = ("highs", "cvxpy")

#: modules that only mechlp/backends may import
SOLVER_MODULES = ("highspy", "cvxpy")
#: LP solvers of scipy.optimize, which would be a second way to solve an LP
SCIPY_LP_SOLVERS = {"linprog", "milp"}


# ---------------------------------------------------------------------------------------------- small LPs
def _two_by_two():
    """``min -x - y`` s.t. ``x + 2y <= 4``, ``3x + y <= 6``, ``x, y >= 0``: vertex (8/5, 6/5), value -14/5."""
    a = sp.csc_matrix(np.array([[1.0, 2.0], [3.0, 1.0]]))
    return a, np.full(2, -np.inf), np.array([4.0, 6.0]), np.zeros(2), np.full(2, np.inf), np.array([-1.0, -1.0])


@pytest.mark.parametrize("backend", BOTH)
def test_solve_arrays_optimal(backend):
    out = solve_arrays(*_two_by_two(), backend=backend)
    assert out.status == "optimal" and out.backend == backend
    np.testing.assert_allclose(out.x, [1.6, 1.2], atol=1e-8)
    assert out.objective == pytest.approx(-2.8, abs=1e-8)


def test_highs_reports_duals_of_the_arrays():
    out = solve_arrays(*_two_by_two(), backend="highs")
    # both rows bind; c = A^T y gives y = (-2/5, -1/5) (HiGHS sign convention: cost - A^T y = reduced cost)
    np.testing.assert_allclose(out.row_dual, [-0.4, -0.2], atol=1e-9)
    np.testing.assert_allclose(out.col_dual, [0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("backend", BOTH)
def test_solve_arrays_infeasible_and_unbounded(backend):
    one = sp.csc_matrix(np.ones((1, 1)))
    # x >= 1 as a row, x <= 0 as a bound
    infeasible = solve_arrays(one, [1.0], [np.inf], [-np.inf], [0.0], [1.0], backend=backend)
    assert infeasible.status == "infeasible" and infeasible.x is None
    # min -x with x >= 0 and a row x >= 0: no bound from above
    unbounded = solve_arrays(one, [0.0], [np.inf], [0.0], [np.inf], [-1.0], backend=backend)
    assert unbounded.status == "unbounded" and unbounded.x is None


def test_cvxpy_resolves_infeasible_or_unbounded_without_presolve(monkeypatch):
    """cvxpy's HiGHS answer ``infeasible_or_unbounded`` (from presolve) is re-solved with presolve off."""
    import cvxpy as cp

    real = cp.Problem.solve
    presolve = []

    def first_undecided(self, *args, **kwargs):
        presolve.append(kwargs.get("presolve"))
        out = real(self, *args, **kwargs)
        if len(presolve) == 1:
            self._status = "infeasible_or_unbounded"  # what HiGHS's presolve may answer
        return out

    monkeypatch.setattr(cp.Problem, "solve", first_undecided)
    one = sp.csc_matrix(np.ones((1, 1)))
    out = solve_arrays(one, [0.0], [np.inf], [0.0], [np.inf], [-1.0], backend="cvxpy")
    assert presolve == [None, "off"]
    assert out.status == "unbounded"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match=r"backend must be one of \('highs', 'cvxpy'\), got 'gurobi'"):
        solve_arrays(*_two_by_two(), backend="gurobi")
    with pytest.raises(ValueError, match=r"backend must be one of \('highs', 'cvxpy'\), got 'glpk'"):
        intermediate_minmax(lamba_usstp(0.8), horizon=2, backend="glpk")


def test_solve_lp_is_solve_arrays_on_the_assembled_lp():
    lp = build_lp(MarkovSpace(lamba_usstp(0.8)))
    a = solve_lp(lp, "highs")
    b = solve_arrays(lp.A, lp.row_lower, lp.row_upper, lp.col_lower, lp.col_upper, lp.cost, "highs")
    assert a.status == b.status == "optimal"
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.row_dual, b.row_dual)


def test_highs_keeps_tiny_coefficients():
    """small_matrix_value 1e-12: a 1e-10 coefficient is kept (HiGHS's default 1e-9 would drop it)."""
    a = sp.csc_matrix(np.array([[1e-10]]))
    out = solve_arrays(a, [1e-10], [np.inf], [-np.inf], [np.inf], [1.0], backend="highs")  # min x s.t. 1e-10 x >= 1e-10
    assert out.status == "optimal" and out.x[0] == pytest.approx(1.0, rel=1e-9)


def test_cvxpy_status_map_keys_are_cvxpy_statuses():
    import cvxpy.settings as cps

    constants = {
        getattr(cps, name)
        for name in dir(cps)
        if name.isupper() and isinstance(getattr(cps, name), str) and getattr(cps, name).islower()
    }
    assert set(cvxpy_backend.STATUS_MAP) <= constants
    assert set(cvxpy_backend.STATUS_MAP.values()) <= {*backends.base.STATUSES, "infeasible_or_unbounded"}
    assert set(highs_backend.STATUS_MAP.values()) <= {*backends.base.STATUSES, "infeasible_or_unbounded"}


# ---------------------------------------------------------------------------------------------- routing
@pytest.fixture
def calls(monkeypatch):
    """Record the backend of every LP the package solves (by wrapping both backends)."""
    seen: list[tuple[str, tuple[int, int]]] = []
    for name, solver in dict(backends._SOLVERS).items():

        def record(a, *args, _name=name, _solver=solver, **kw):
            seen.append((_name, a.shape))
            return _solver(a, *args, **kw)

        monkeypatch.setitem(backends._SOLVERS, name, record)
    return seen


@pytest.mark.parametrize("backend", BOTH)
def test_farkas_certificate_with_both_backends(backend, calls, monkeypatch):
    """Interim balance fails on lamba_usstp(0.9, 0.8); the Farkas LP is solved with the question's backend."""
    # the structured certificate (no LP at all) is tried first: switch it off to exercise the Farkas LP
    monkeypatch.setattr(farkas, "structured_multipliers", lambda *args, **kwargs: None)
    res = feasibility(lamba_usstp(0.9, 0.8), "interim", backend=backend)
    assert res.status == "infeasible"
    cert = res.certificate
    assert cert is not None and cert.ok and set(cert.checks) == {"float", "exact"}
    assert cert.gamma > 0
    assert "Farkas certificate verified in floats and exactly" in res.message
    assert {name for name, _ in calls} == {backend}
    # a Markov space: the min-max is the recursion's and Pi* < 0, so only the Farkas LP over the interim rows
    # (variables: one per row) is solved -- no feasibility LP (route "auto")
    assert len(calls) == 1
    assert res.diagnosis["route"] == "structure: a Farkas certificate over the interim rows"


def test_farkas_certificates_agree_across_backends():
    space = MarkovSpace(lamba_usstp(0.9, 0.8))
    certs = {b: impossibility_certificate(space, backend=b) for b in BOTH}
    assert all(c is not None and c.ok for c in certs.values())
    assert certs["highs"].gamma == certs["cvxpy"].gamma == 1  # normalised b^T y = 1, exact
    # same rows carry weight (the support of the proof)
    for b in BOTH:
        assert np.flatnonzero(certs[b].budget).tolist() == np.flatnonzero(certs["highs"].budget).tolist()


@pytest.mark.parametrize("backend", BOTH)
def test_margin_mechanism_with_both_backends(backend, calls):
    res = feasibility(lamba_usstp(0.8), "ex_ante", backend=backend, exact=True, route="lp")
    assert res.status == "optimal"
    assert res.exact_mechanism is not None and res.exact_check.ok
    assert {name for name, _ in calls} == {backend}
    assert len(calls) == 2  # feasibility LP, margin LP (the min-max: the recursion, certified tight)
    calls.clear()
    res = feasibility(lamba_usstp(0.8), "ex_ante", backend=backend, exact=True)  # route "auto"
    assert res.status == "optimal" and res.diagnosis["route"].startswith("structure")
    assert res.exact_check.ok and len(calls) == 1  # the recursion is no LP: only the margin LP


@pytest.fixture(scope="module")
def usstp_minmax():
    return {b: minmax(lamba_usstp(0.8), backend=b, method="lp") for b in BOTH}


@pytest.mark.parametrize("rule", ["maxmin", "min-max-transfer"])
@pytest.mark.parametrize("budget", ["interim", "ex_post"])
def test_share_surplus_with_both_backends(rule, budget, usstp_minmax):
    got = {}
    for b in BOTH:
        res = share_surplus(usstp_minmax[b], rule, budget=budget)
        assert res.status == "optimal" and res.certificate.ok, res.message
        got[b] = res
    assert got["cvxpy"].objective == pytest.approx(got["highs"].objective, abs=1e-7)
    assert got["cvxpy"].max_abs_transfer == pytest.approx(got["highs"].max_abs_transfer, abs=1e-6)


def test_share_surplus_backend_reaches_the_beta_lp(usstp_minmax, calls):
    # the min-max result's backend is the default; an explicit backend overrides it
    share_surplus(usstp_minmax["cvxpy"], "maxmin", beta_method="lp")
    assert [name for name, _ in calls] == ["cvxpy", "cvxpy"]  # the beta LP and its tie-break
    calls.clear()
    share_surplus(usstp_minmax["cvxpy"], "maxmin", backend="highs", beta_method="lp")
    assert [name for name, _ in calls] == ["highs", "highs"]
    calls.clear()
    share_surplus(lamba_usstp(0.8), "min-max-transfer", backend="cvxpy", beta_method="lp")
    assert [name for name, _ in calls] == ["cvxpy"] * 2  # beta LP, tie-break (the min-max: the recursion)


def test_intermediate_lps_with_both_backends(calls):
    env = lamba_usstp(0.8)
    mm = {b: intermediate_minmax(env, horizon=2, backend=b) for b in BOTH}
    assert mm["highs"].status == mm["cvxpy"].status == "optimal"
    np.testing.assert_array_equal(mm["highs"].bounded, mm["cvxpy"].bounded)
    assert not mm["highs"].bounded.all()  # the unbounded histories are recognised by both
    np.testing.assert_allclose(mm["cvxpy"].best, mm["highs"].best, atol=1e-7)
    fe = {b: intermediate_feasibility(env, "none", horizon=2, backend=b) for b in BOTH}
    assert fe["highs"].status == fe["cvxpy"].status == "optimal"
    assert {name for name, _ in calls} == set(BOTH)


# ---------------------------------------------------------------------------------------------- one entry point
def _solver_uses(path: Path) -> list[str]:
    """Imports of highspy / cvxpy / scipy's LP solvers, and attribute uses of the latter, in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in SOLVER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            names = {a.name for a in node.names}
            if top in SOLVER_MODULES or (node.module.startswith("scipy.optimize") and names & SCIPY_LP_SOLVERS):
                found.append(f"{node.lineno}: from {node.module} import {', '.join(sorted(names))}")
            elif node.module == "scipy" and "optimize" in names:
                found.append(f"{node.lineno}: from scipy import optimize")
        elif isinstance(node, ast.Attribute) and node.attr in SCIPY_LP_SOLVERS:
            found.append(f"{node.lineno}: .{node.attr}")
    return found


def test_no_solver_outside_backends():
    offenders = [
        f"{path.relative_to(ROOT)}:{use}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "backends" not in path.relative_to(PACKAGE).parts
        for use in _solver_uses(path)
    ]
    assert not offenders, "LP solvers used outside mechlp/backends (use mechlp.backends.solve_arrays):\n" + "\n".join(
        offenders
    )


def test_the_scan_finds_a_solver(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import highspy\nfrom scipy.optimize import linprog, brentq\nimport scipy.optimize as so\n"
        "from cvxpy import Variable\nso.milp\nfrom scipy.optimize import brentq\n"
    )
    assert _solver_uses(src) == [
        "1: import highspy",
        "2: from scipy.optimize import brentq, linprog",
        "4: from cvxpy import Variable",
        "5: .milp",
    ]
    assert _solver_uses(PACKAGE / "backends" / "highs.py") == ["15: import highspy"]

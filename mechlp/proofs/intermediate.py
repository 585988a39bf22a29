r"""Impossibility certificates for the intermediate mechanism (Lamba 2022, section 7.2).

The LP of :func:`mechlp.solve.intermediate.intermediate_lp` has rows ``l <= A z <= u`` over free columns: the
equality recursions (agents' :math:`\bar U`, designer's ``B``) and the inequality rows IC, IR and budget
(``A_r z >= l_r``). A Farkas certificate of its infeasibility is ``y`` (free on the equalities, ``>= 0`` on the
inequalities) with :math:`A^\top y = 0` and :math:`l^\top y = 1`: then for every ``z`` that satisfies the
recursions, :math:`\sum_{r\ \text{ineq}} y_r (A_r z - l_r) = -1`, i.e. the multipliers on the IC, IR and budget
rows alone prove that no payment schedule satisfies them (the form that
:func:`mechlp.audit.intermediate.check_intermediate_impossibility` checks, on its own rows).

1. the float Farkas LP ``min 1^T (p + n)`` s.t. :math:`A^\top (p - n) = 0`, :math:`l^\top p - u^\top n = 1`,
   ``p >= 0`` on rows with a finite lower side, ``n >= 0`` on rows with a finite upper side (our own LP, so presolve
   cannot hide the ray);
2. exact: on the support ``S`` of the inequality multipliers, the rows' affine maps are rebuilt in rationals from
   the model's numbers (:func:`mechlp.audit.intermediate.intermediate_affine`: the coefficient ``C_S`` of every
   payment coordinate and the constant ``d_S``), and :math:`C_S^\top y_S = 0`, :math:`d_S^\top y_S = -1` is solved
   exactly (:func:`mechlp.model.exact.solve_consistent`); the vertex is kept when ``y_S >= 0``, otherwise the
   certificate stays a float one (``exact = False``).

An ex post budget question is certified with interim rows (ex post balance implies interim balance).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import scipy.sparse as sps

from mechlp.audit.intermediate import IntermediateCertificate, check_intermediate_impossibility, intermediate_affine
from mechlp.backends import solve_arrays
from mechlp.model import tolerances
from mechlp.model.exact import solve_consistent, to_fractions

__all__ = ["intermediate_certificate"]


def _rows_budget(budget: str) -> str | None:
    return {"interim": "interim", "ex_post": "interim", "ex_ante": "ex_ante"}.get(budget)


def intermediate_certificate(
    lp: Any, *, ir: str, budget: str, outside_option: Any = 0.0, exact: bool = True, backend: str = "highs"
) -> IntermediateCertificate | None:
    """A Farkas certificate that the intermediate LP ``lp`` (built with the rows of ``budget``) is infeasible.

    Parameters
    ----------
    lp : LinearProgram
        :func:`mechlp.solve.intermediate.intermediate_lp` with ``ir`` and the budget rows of ``budget``
        (``"interim"`` rows for ``"ex_post"``).
    ir, budget, outside_option
        The question (``budget`` is the notion asked about).
    exact : bool
        Recompute the multipliers exactly on their support (default True).
    backend : str

    Returns
    -------
    IntermediateCertificate or None
        ``None`` when the Farkas LP finds no certificate (or ``budget`` is ``"none"``). Its ``checks`` hold the
        float (and, for exact multipliers, exact) results of the independent check.
    """
    rows_budget = _rows_budget(budget)
    if rows_budget is None:
        return None
    if np.isfinite(lp.col_lower).any() or np.isfinite(lp.col_upper).any():
        raise ValueError("intermediate_certificate: the LP's columns must be free (bounded columns are not rows)")
    a = sps.csr_matrix(lp.A)
    lo, hi = lp.row_lower, lp.row_upper
    has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
    m = a.shape[0]
    # variables: p (m), n (m); columns of a side that is infinite are fixed at zero
    at = a.T.tocsr()
    mat = sps.vstack(
        [
            sps.hstack([at, -at]),
            sps.csr_matrix(np.concatenate([np.where(has_lo, lo, 0.0), -np.where(has_hi, hi, 0.0)])[None, :]),
        ]
    ).tocsc()
    rhs = np.zeros(mat.shape[0])
    rhs[-1] = 1.0
    col_hi = np.concatenate([np.where(has_lo, np.inf, 0.0), np.where(has_hi, np.inf, 0.0)])
    out = solve_arrays(mat, rhs, rhs, np.zeros(2 * m), col_hi, np.ones(2 * m), backend)
    if out.status != "optimal":
        return None
    y = out.x[:m] - out.x[m:]
    lab = lp.labels
    ineq = has_lo & ~has_hi
    y = np.where(ineq, np.maximum(y, 0.0), y)
    y[np.abs(y) <= tolerances.FARKAS_ZERO * np.abs(y).max()] = 0.0
    space = lp.variables.space
    env = space.env
    opts = {"ir": ir, "budget": rows_budget, "question_budget": budget, "outside_option": outside_option}
    fam = np.asarray(lab.families)[lab.family]
    ic = {
        (i, t, r): np.zeros(space.n_info[i])
        for i, ag in enumerate(env.agents)
        for t in range(ag.n_types)
        for r in range(ag.n_types)
        if t != r
    }
    n_ir = {i: space.n_info[i] if ir == "interim" else 1 for i in range(env.n_agents)}
    irm = {i: np.zeros((n_ir[i], ag.n_types)) for i, ag in enumerate(env.agents)}
    bud = np.zeros(space.tree.n_hist if rows_budget == "interim" else 1)
    for key in ic:  # agents and type pairs
        sel = (fam == "ic") & (lab.agent == key[0]) & (lab.type == key[1]) & (lab.misreport == key[2])
        ic[key][lab.hist[sel]] = y[sel]
    for i in irm:
        sel = (fam == "ir") & (lab.agent == i)
        irm[i][lab.hist[sel], lab.type[sel]] = y[sel]
    sel = fam == "budget"
    bud[lab.hist[sel]] = y[sel]
    cert = IntermediateCertificate(space, opts, Fraction(1), ic, irm, bud, exact=False)
    if exact:
        exact_cert = _exact_vertex(cert)
        if exact_cert is not None:
            cert = exact_cert
    cert.checks["float"] = check_intermediate_impossibility(cert, exact=False)
    if cert.exact:
        cert.checks["exact"] = check_intermediate_impossibility(cert, exact=True)
    if not cert.exact:  # the float multipliers' own L
        cert.gamma = Fraction(-cert.checks["float"]["L0"])
    return cert


def _exact_vertex(cert: IntermediateCertificate) -> IntermediateCertificate | None:
    """The multipliers recomputed in rationals on the float certificate's support (module docstring, step 2)."""
    opts = cert.options
    rows = intermediate_affine(cert.space, opts["ir"], opts["budget"], opts["outside_option"], exact=True)
    slack, where = [], []
    for key, s in rows["ic"].items():
        f = np.flatnonzero(cert.ic[key] > 0)
        slack.append(s[f])
        where += [("ic", key, int(j)) for j in f]
    for i, s in rows["ir"].items():
        f, t = np.nonzero(cert.ir[i] > 0)
        slack.append(s[f, t])
        where += [("ir", i, (int(a), int(b))) for a, b in zip(f, t, strict=True)]
    f = np.flatnonzero(cert.budget > 0)
    slack.append(rows["budget"][f])
    where += [("budget", None, int(j)) for j in f]
    s_all = np.concatenate(slack, axis=0)  # (|S|, 1 + n)
    if s_all.shape[0] == 0:
        return None
    const = s_all[:, 0]
    coef = s_all[:, 1:] - const[:, None]
    mat = np.concatenate([coef.T, const[None, :]], axis=0)  # (n + 1, |S|)
    rhs = np.zeros(mat.shape[0], dtype=object)
    rhs[:] = to_fractions(np.zeros(mat.shape[0]))
    rhs[-1] = to_fractions(np.array([-1.0]))[0]
    sol = solve_consistent(mat, rhs)
    if sol is None or np.any(sol < 0):
        return None
    ic = {key: np.zeros(v.size, dtype=object) for key, v in cert.ic.items()}
    irm = {i: np.zeros(v.shape, dtype=object) for i, v in cert.ir.items()}
    bud = np.zeros(cert.budget.size, dtype=object)
    for (fam, key, idx), val in zip(where, sol, strict=True):  # the support's entries
        if fam == "ic":
            ic[key][idx] = val
        elif fam == "ir":
            irm[key][idx] = val
        else:
            bud[idx] = val
    return IntermediateCertificate(cert.space, dict(opts), Fraction(1), ic, irm, bud, exact=True)

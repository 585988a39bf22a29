r"""The coefficients of the one-shot deviation (Lamba 2022, Definition 1; docs/design.md section 4.4), in one place.

Agent ``i`` of true type ``t`` reports ``r`` at history ``h`` while the others, of profile ``m``, are truthful
and everybody is truthful afterwards. With ``s = prof[r, m]`` the *reported* profile (the allocation and the
child history follow the report),

.. math::
   D_i(r; t|h) - \bar U_i(r|h) = \sum_m P(m|h) \Big[ g_i(t, r; m)
      + \delta \sum_{\theta'} \big(P_t(\theta'|s) - P(\theta'|s)\big) U_i((h, s), \theta') \Big],

where agent ``i``'s type moves on from the *true* ``t`` under :math:`P_t`. Two coefficients make every IC row of
the builders (:mod:`mechlp.constraints.ic` in ex post utilities, :mod:`mechlp.constraints.interim` in interim
utilities) and of the backward recursion (:mod:`mechlp.solve.recursion`):

* the current-period **flow gain**
  :math:`g_i(t, r; m) = \sum_a p(a|s)\,[v_i(t, a) - v_i(r, a)]` (:func:`flow_gain`);
* the **kernel gap** of agent ``i``'s own type,
  :math:`\Delta_i(t'|t, r; m) = G_i(t'|t; s) - G_i(t'|r; s)` with :math:`G_i(\cdot|x; s) = \sum_a p(a|s)
  F_i(\cdot|x, a)` (:func:`kernel_gap`). In interim utilities the others' kernels sum out and the continuation
  term is :math:`\delta \sum_m P(m|h) \sum_{t'} \Delta_i(t'|t, r; m)\, \bar U_i(t'|h s)`.

The rows exist for the type pairs of :func:`ic_pair_mask` (all ``t != r``, or adjacent types only for local IC,
Lamba 2022 appendix 9.1).

Every function works in either arithmetic: float arrays, or object arrays of :class:`fractions.Fraction`
(:class:`mechlp.model.exact.Numbers`), so exact certificates use the same coefficients. The independent verifier
(:mod:`mechlp.audit.verifier`) keeps its own arithmetic on purpose.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ic_pair_mask", "ic_pairs", "flow_gain", "kernel_gap"]


def ic_pair_mask(n_types: int, local: bool = False) -> np.ndarray:
    """``(K_i, K_i)`` bool, ``[t, r]``: there is an IC row "true type ``t`` does not report ``r``".

    Parameters
    ----------
    n_types : int
        ``K_i``.
    local : bool
        Adjacent types only (``|t - r| == 1``), Lamba (2022) appendix 9.1; otherwise every ``t != r``.
    """
    t, r = np.meshgrid(np.arange(n_types), np.arange(n_types), indexing="ij")
    mask = t != r
    if local:
        mask &= np.abs(t - r) == 1
    return mask


def ic_pairs(n_types: int, local: bool = False) -> list[tuple[int, int]]:
    """The pairs ``(t, r)`` of :func:`ic_pair_mask`, ordered by ``t`` then ``r``."""
    return [(int(t), int(r)) for t, r in np.argwhere(ic_pair_mask(n_types, local))]


def flow_gain(alloc: np.ndarray, valuation: np.ndarray, prof: np.ndarray) -> np.ndarray:
    r"""``(K_i, K_i, M)``: :math:`g_i(t, r; m) = \sum_a p(a|s)\,[v_i(t, a) - v_i(r, a)]`, ``s = prof[r, m]``.

    Parameters
    ----------
    alloc : ndarray (K, A)
        :math:`p(a|s)` per report profile (floats or fractions).
    valuation : ndarray (K_i, A)
        :math:`v_i(\cdot, a)`.
    prof : ndarray of int (K_i, M)
        Profile index of (own report, others' profile).

    Returns
    -------
    ndarray ``[t, r, m]``
    """
    diff = valuation[:, None, :] - valuation[None, :, :]  # (t, r, A)
    return np.einsum("rma,tra->trm", alloc[prof], diff)


def kernel_gap(alloc: np.ndarray, kernel: np.ndarray, prof: np.ndarray, t, r) -> np.ndarray:
    r"""``(E, M, K_i)``: :math:`\Delta_i(\cdot|t_e, r_e; m) = G_i(\cdot|t_e; s) - G_i(\cdot|r_e; s)`, at the
    reported profiles ``s = prof[r_e, m]``.

    Parameters
    ----------
    alloc : ndarray (K, A)
        :math:`p(a|s)`.
    kernel : ndarray (A, K_i, K_i) or (1, K_i, K_i)
        :math:`F_i(\cdot|x, a)`. When every action has the same matrix (or only one is given) the gap is
        :math:`F_i(\cdot|t) - F_i(\cdot|r)` for every ``m``, without mixing over actions.
    prof : ndarray of int (K_i, M)
    t, r : int or array_like of int, shape (E,)
        True types and reports of ``E`` rows.

    Returns
    -------
    ndarray (E, M, K_i)
        Read-only broadcast view when the kernel ignores the action.
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.int64))
    r = np.atleast_1d(np.asarray(r, dtype=np.int64))
    n_types, m = kernel.shape[1], prof.shape[1]
    if kernel.shape[0] == 1 or bool(np.all(kernel == kernel[:1])):
        return np.broadcast_to((kernel[0][t] - kernel[0][r])[:, None, :], (t.size, m, n_types))
    s = prof[r]  # (E, M) reported profiles
    out = None
    for a in range(kernel.shape[0]):  # loop over actions
        term = alloc[s, a][:, :, None] * (kernel[a][t] - kernel[a][r])[:, None, :]
        out = term if out is None else out + term
    return out

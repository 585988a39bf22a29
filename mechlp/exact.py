"""Exact rational arithmetic for re-checks (``exact=True``): model numbers, transfers, linear solves.

Floats are dyadic rationals, so a float can always be taken exactly. Model numbers, however, are read as the
simplest fraction within the float's own rounding (``Fraction(x).limit_denominator(MODEL_DENOMINATOR)``), which
recovers what a user wrote: 0.95 -> 19/20, 0.3333333333333333 -> 1/3, 1 - 0.7 -> 3/10. Probabilities must then
sum to exactly 1, which :class:`Numbers` checks.

Arrays of :class:`fractions.Fraction` are numpy object arrays, so the same vectorised code (``einsum``,
fancy indexing, ``@``) runs in either arithmetic; the cost is that of Python ``Fraction`` operations
(about 10-20 microseconds each).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .environment import Environment

__all__ = ["MODEL_DENOMINATOR", "EXACT_MARKOV_NODES", "Numbers", "to_fractions", "solve_exact", "fraction_str"]


#: Exact mode reads every model number as the simplest fraction within the float's own rounding
#: (``Fraction(x).limit_denominator(MODEL_DENOMINATOR)``), which recovers what a user wrote (0.95 -> 19/20,
#: 0.3333333333333333 -> 1/3, 1 - 0.7 -> 3/10); probabilities must then sum to exactly 1.
MODEL_DENOMINATOR = 10**12
#: Largest Markov space solved exactly (Gaussian elimination in rationals is cubic in the number of nodes).
EXACT_MARKOV_NODES = 1200


def _fraction(v: Any, max_den: int | None) -> Fraction:
    if isinstance(v, Fraction):
        return v
    if isinstance(v, int | np.integer):
        return Fraction(int(v))
    if isinstance(v, str):
        return Fraction(v)
    f = Fraction(float(v))
    return f if max_den is None else f.limit_denominator(max_den)


def to_fractions(values: Any, max_denominator: int | None = None) -> np.ndarray:
    """Object array of :class:`~fractions.Fraction` with the shape of ``values``.

    Floats are converted exactly (they are dyadic rationals) when ``max_denominator`` is ``None``, otherwise to
    the simplest fraction with at most that denominator within the float's distance (rational reconstruction).
    Strings such as ``"19/20"`` and ``Fraction`` objects are taken as they are.
    """
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    for j in range(flat_in.size):  # one conversion per number: the only Python loop, over input entries
        flat_out[j] = _fraction(flat_in[j], max_denominator)
    return out


class Numbers:
    """The model's numbers in one arithmetic: floats, or exact fractions (``exact=True``)."""

    def __init__(self, env: Environment, exact: bool):
        self.exact = exact
        conv = (lambda a: to_fractions(a, MODEL_DENOMINATOR)) if exact else (lambda a: np.asarray(a, dtype=float))
        self.alloc = conv(env.allocation)
        self.priors = [conv(ag.prior) for ag in env.agents]
        self.kernels = [conv(ag.kernel(env.n_actions)) for ag in env.agents]
        self.valuation = [conv(ag.valuation) for ag in env.agents]
        self.delta = _fraction(env.discount, MODEL_DENOMINATOR) if exact else float(env.discount)
        if exact:
            self._check_sums(env)

    def _check_sums(self, env: Environment) -> None:
        one = Fraction(1)
        for ag, prior, kern in zip(env.agents, self.priors, self.kernels, strict=True):
            if sum(prior) != one:
                raise ValueError(
                    f"exact mode: prior of agent {ag.name!r} read as {list(map(str, prior))} sums to "
                    f"{sum(prior)}, not 1; write the probabilities so that they sum to 1 exactly"
                )
            for a in range(kern.shape[0]):
                for r in range(kern.shape[1]):
                    if sum(kern[a, r]) != one:
                        raise ValueError(
                            f"exact mode: transition row {r} (action {a}) of agent {ag.name!r} read as "
                            f"{list(map(str, kern[a, r]))} sums to {sum(kern[a, r])}, not 1"
                        )
        for r in range(self.alloc.shape[0]):
            if sum(self.alloc[r]) != one:
                raise ValueError(f"exact mode: allocation row {r} sums to {sum(self.alloc[r])}, not 1")

    def ones(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.exact:
            out = np.empty(shape, dtype=object)
            out.fill(Fraction(1))
            return out
        return np.ones(shape)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.exact:
            out = np.empty(shape, dtype=object)
            out.fill(Fraction(0))
            return out
        return np.zeros(shape)

    def array(self, values: Any) -> np.ndarray:
        return to_fractions(values) if self.exact else np.asarray(values, dtype=float)


def solve_exact(mat: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``mat @ X.T = rhs.T`` in rationals by Gaussian elimination with row operations on whole rows."""
    a = mat.copy()
    b = rhs.T.copy()  # (n, m)
    n = a.shape[0]
    for c in range(n):  # elimination runs over pivots; each step is a whole-array operation
        piv = c + int(np.flatnonzero(a[c:, c] != 0)[0])
        if piv != c:
            a[[c, piv]] = a[[piv, c]]
            b[[c, piv]] = b[[piv, c]]
        inv = 1 / a[c, c]
        a[c] = a[c] * inv
        b[c] = b[c] * inv
        col = a[:, c].copy()
        col[c] = 0
        nz = np.flatnonzero(col != 0)
        if nz.size:
            a[nz] = a[nz] - np.outer(col[nz], a[c])
            b[nz] = b[nz] - np.outer(col[nz], b[c])
    return b.T


def fraction_str(values: Any) -> list:
    """Nested lists of ``"p/q"`` strings (JSON-safe exact numbers)."""
    return np.vectorize(lambda v: str(Fraction(v)), otypes=[object])(np.asarray(values, dtype=object)).tolist()

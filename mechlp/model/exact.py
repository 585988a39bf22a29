"""Exact rational arithmetic for re-checks (``exact=True``): model numbers, transfers, linear solves.

Floats are dyadic rationals, so a float can always be taken exactly. Model numbers, however, are read as the
simplest fraction within the float's own rounding (``Fraction(x).limit_denominator(MODEL_DENOMINATOR)``), which
recovers what a user wrote: 0.95 -> 19/20, 0.3333333333333333 -> 1/3, 1 - 0.7 -> 3/10. A distribution that then
misses 1 by a rounding error has its largest entry adjusted to sum to exactly 1 (recorded in
``Numbers.adjusted``).

Exact numbers are ``gmpy2.mpq`` (GMP rationals; about 7x faster than :class:`fractions.Fraction` in the verifier's
loops, and they mix with ``Fraction`` values, e.g. multipliers read from a certificate file, giving ``mpq``), or
``Fraction`` when gmpy2 is not installed (:data:`Rational`). Arrays of them are numpy object arrays, so the same
vectorised code (``einsum``, fancy indexing, ``@``) runs in either arithmetic. Beliefs, mixed kernels and
continuation values in either arithmetic are in
:mod:`mechlp.model.beliefs` (pass ``nums``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from mechlp.model.environment import Environment

try:  # GMP rationals: the well-kept fast exact arithmetic; Fraction is the fallback
    from gmpy2 import mpq as Rational
except ImportError:  # pragma: no cover - gmpy2 is a dependency
    Rational = Fraction

__all__ = [
    "Rational",
    "MODEL_DENOMINATOR",
    "EXACT_MARKOV_PROFILES",
    "Numbers",
    "to_fractions",
    "dyadic",
    "solve_exact",
    "fraction_str",
    "solve_consistent",
]


#: Exact mode reads every model number as the simplest fraction within the float's own rounding
#: (``Fraction(x).limit_denominator(MODEL_DENOMINATOR)``), which recovers what a user wrote (0.95 -> 19/20,
#: 0.3333333333333333 -> 1/3, 1 - 0.7 -> 3/10); distributions are then made to sum to exactly 1.
MODEL_DENOMINATOR = 10**12
#: Largest Markov space solved exactly (Gaussian elimination in rationals is cubic in the number of nodes).
EXACT_MARKOV_PROFILES = 400


def _fraction(v: Any, max_den: int | None) -> Any:
    if isinstance(v, Rational):
        return v
    if isinstance(v, Fraction):
        return Rational(v)
    if isinstance(v, int | np.integer):
        return Rational(int(v))
    if isinstance(v, str):
        return Rational(Fraction(v))
    f = Fraction(float(v))
    return Rational(f if max_den is None else f.limit_denominator(max_den))


_RATIONAL_OF_PAIR = np.frompyfunc(lambda num, den: Rational(num, den), 2, 1)


def dyadic(values: np.ndarray) -> np.ndarray:
    r"""Exact rationals of a float array, vectorised: :math:`x = m\,2^{e-53}` with the integer mantissa
    :math:`m = \mathrm{frexp}(x)_0\,2^{53}` (exact for every finite double, subnormals included).

    The mantissas and exponents are computed by numpy; only the final ``Rational(m, 2^k)`` is a per-entry call
    (about 3x faster than ``Rational(float)``, 8x faster than ``Fraction(float)``).
    """
    arr = np.asarray(values, dtype=float)
    mant, expo = np.frexp(arr)
    num = np.ldexp(mant, 53).astype(np.int64).astype(object)
    shift = 53 - expo.astype(np.int64)
    den_shift = np.maximum(shift, 0).astype(object)
    num = np.left_shift(num, np.maximum(-shift, 0).astype(object))
    den = np.left_shift(np.ones(arr.shape, dtype=object), den_shift)
    out = _RATIONAL_OF_PAIR(num, den)
    return np.asarray(out, dtype=object).reshape(arr.shape)


def to_fractions(values: Any, max_denominator: int | None = None) -> np.ndarray:
    """Object array of exact rationals (:data:`Rational`) with the shape of ``values``.

    Floats are converted exactly (they are dyadic rationals) when ``max_denominator`` is ``None``, otherwise to
    the simplest fraction with at most that denominator within the float's distance (rational reconstruction).
    Strings such as ``"19/20"`` and ``Fraction`` objects are taken as they are. A finite float array is
    converted by :func:`dyadic` (exact) or, with ``max_denominator``, once per distinct value.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and values.size and np.isfinite(values).all():
        if max_denominator is None:
            return dyadic(values)
        uniq, inverse = np.unique(values, return_inverse=True)
        conv = np.empty(uniq.size, dtype=object)
        for j in range(uniq.size):  # one conversion per distinct model number
            conv[j] = _fraction(uniq[j], max_denominator)
        return conv[inverse.reshape(values.shape)]
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
        #: ``(P * K, A)``: the allocation tables stacked, row ``table * K + profile`` (``space.node_key``)
        self.alloc = conv(env.allocations.reshape(-1, env.n_actions))
        self.priors = [conv(ag.prior) for ag in env.agents]
        # an agent of a correlated environment may have no kernel of its own (None here)
        self.kernels = [None if ag.transition is None else conv(ag.kernel(env.n_actions)) for ag in env.agents]
        #: ``(A, K, K)`` kernel over type profiles when the environment is correlated (``env.joint_transition``)
        self.joint = conv(np.array(env.profile_kernel())) if env.correlated else None
        self.valuation = [conv(ag.valuation) for ag in env.agents]
        #: ``(P * K, n_agents)``: the type of every agent in each row of the stacked period tables
        self.key_types = np.tile(env.profile_types(), (env.n_allocation_periods, 1))
        self.delta = _fraction(env.discount, MODEL_DENOMINATOR) if exact else float(env.discount)
        if exact:
            self._check_sums(env)

    def _check_sums(self, env: Environment) -> None:
        """Make every distribution sum to exactly 1.

        A distribution read from floats may miss 1 by a rounding error (e.g. random kernels); its largest
        entry is then set to one minus the others, a change far below the input tolerance
        ``tolerances.PROBABILITY`` (the inputs were validated against it). Every such change is recorded in
        ``self.adjusted`` so that reports can say so.
        """
        self.adjusted: list[str] = []

        def fix(vec: np.ndarray, what: str) -> None:
            total = sum(vec)
            if total != 1:
                j = int(np.argmax([float(v) for v in vec]))
                vec[j] = vec[j] + (1 - total)
                self.adjusted.append(f"{what}: entry {j} changed by {float(1 - total):.3g} to sum to 1 exactly")

        for ag, prior, kern in zip(env.agents, self.priors, self.kernels, strict=True):
            fix(prior, f"prior of agent {ag.name!r}")
            for a in range(0 if kern is None else kern.shape[0]):  # loops over actions and types of the inputs
                for r in range(kern.shape[1]):
                    fix(kern[a, r], f"transition row {r} (action {a}) of agent {ag.name!r}")
        for r in range(self.alloc.shape[0]):
            fix(self.alloc[r], f"allocation row {r}")
        for a in range(0 if self.joint is None else self.joint.shape[0]):  # loops over the inputs' rows
            for r in range(self.joint.shape[1]):
                fix(self.joint[a, r], f"joint_transition row {r} (action {a})")

    def flows(self) -> np.ndarray:
        r"""``(n_agents, P * K)``: :math:`\sum_a p_t(a|\theta) v_i(\theta_i, a)` for every row ``t * K + \theta`` of
        the stacked period tables (``space.node_key`` picks each node's row), in this arithmetic."""
        return np.stack(
            [np.einsum("ka,ka->k", self.alloc, val[self.key_types[:, i]]) for i, val in enumerate(self.valuation)]
        )

    def largest_denominator(self) -> int:
        """Largest denominator among the model's numbers (1 for floats): a gauge of exact-arithmetic cost."""
        if not self.exact:
            return 1
        kernels = [kern for kern in self.kernels if kern is not None] + ([] if self.joint is None else [self.joint])
        arrays = [self.alloc, *self.priors, *kernels, *self.valuation, np.array([self.delta], dtype=object)]
        return max(int(v.denominator) for a in arrays for v in a.reshape(-1))

    def full(self, shape: tuple[int, ...], value: int) -> np.ndarray:
        """An array of the integer ``value`` in this arithmetic: ``Fraction`` objects, or floats."""
        if self.exact:
            out = np.empty(shape, dtype=object)
            out.fill(Rational(value))
            return out
        return np.full(shape, float(value))

    def ones(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.full(shape, 1)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.full(shape, 0)

    def array(self, values: Any) -> np.ndarray:
        """Model numbers (outside options, ...) in this arithmetic, read as ``MODEL_DENOMINATOR`` says."""
        return to_fractions(values, MODEL_DENOMINATOR) if self.exact else np.asarray(values, dtype=float)


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


def solve_consistent(mat: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """An exact solution of ``mat @ x = rhs`` (free variables set to 0), or ``None`` when inconsistent.

    Gauss-Jordan elimination in rationals on an object array; cubic in the size, meant for systems of a few
    hundred unknowns (the support of a Farkas vertex).
    """
    a = np.concatenate([np.asarray(mat, dtype=object), np.asarray(rhs, dtype=object)[:, None]], axis=1)
    n_rows, n_cols = a.shape[0], a.shape[1] - 1
    pivots = []
    r = 0
    for c in range(n_cols):  # elimination runs over pivot columns; each step is a whole-array operation
        if r == n_rows:
            break
        nz = np.flatnonzero(a[r:, c] != 0)
        if nz.size == 0:
            continue
        p = r + int(nz[0])
        if p != r:
            a[[r, p]] = a[[p, r]]
        a[r] = a[r] * (1 / a[r, c])
        col = a[:, c].copy()
        col[r] = 0
        rows = np.flatnonzero(col != 0)
        if rows.size:
            a[rows] = a[rows] - np.outer(col[rows], a[r])
        pivots.append(c)
        r += 1
    if any(v != 0 for v in a[r:, -1]):
        return None
    x = np.empty(n_cols, dtype=object)
    x.fill(Fraction(0))
    for row, c in enumerate(pivots):
        x[c] = a[row, -1]
    return x

"""Ready-made environments from the papers, for tests, notebooks and quick starts."""

from __future__ import annotations

import numpy as np

from .environment import Environment, bilateral_trade

__all__ = ["renewal_matrix", "lamba_usstp"]


def renewal_matrix(n_types: int, persistence: float) -> np.ndarray:
    r"""Renewal kernel (Lamba 2022, footnote 25 (i)): stay with probability ``persistence``, otherwise move to
    each other type with probability ``(1 - persistence) / (n_types - 1)``."""
    if isinstance(n_types, bool) or not isinstance(n_types, int | np.integer) or n_types < 1:
        raise ValueError(f"n_types must be a positive integer, got {n_types!r}")
    if not 0.0 <= float(persistence) <= 1.0:
        raise ValueError(f"persistence must lie in [0, 1], got {persistence!r}")
    if n_types == 1:
        return np.ones((1, 1))
    off = (1.0 - persistence) / (n_types - 1)
    return np.full((n_types, n_types), off) + (persistence - off) * np.eye(n_types)


def lamba_usstp(alpha: float = 0.7, delta: float = 0.95, horizon: int | str = "infinite") -> Environment:
    r"""Lamba's uniform symmetric simple trading problem (USSTP, section 5.1).

    :math:`\mathcal V = \{0.05, 1\}`, :math:`\mathcal C = \{0, 0.95\}`, uniform priors and symmetric
    persistence :math:`f(v|v) = g(c|c) = \alpha`. Types are listed in ascending order:
    buyer ``("v_L", "v_H")``, seller ``("c_L", "c_H")``.
    """
    kern = renewal_matrix(2, alpha)
    return bilateral_trade(
        [0.05, 1.0],
        [0.0, 0.95],
        [0.5, 0.5],
        [0.5, 0.5],
        kern,
        kern,
        delta,
        horizon,
        buyer_types=("v_L", "v_H"),
        seller_types=("c_L", "c_H"),
        name="lamba_usstp",
    )

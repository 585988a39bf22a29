"""Random small models shared by the property tests (one generator, parametrised by the ranges each test wants)."""

from __future__ import annotations

import numpy as np

from mechlp.model.environment import Environment, bilateral_trade


def random_bilateral(
    seed: int,
    horizon,
    values: tuple[float, float] = (0.0, 1.5),
    costs: tuple[float, float] = (0.0, 1.5),
    delta: tuple[float, float] = (0.1, 0.95),
) -> Environment:
    """2x2, 2x3 or 3x2 bilateral trade (by ``seed % 3``); even seeds persistent FOSD kernels, odd seeds arbitrary
    (non-FOSD) ones; values, costs and the discount drawn from the given ranges (two decimals, strictly
    increasing)."""
    rng = np.random.default_rng(seed)
    kb, ks = [(2, 2), (2, 3), (3, 2)][seed % 3]

    def kernel(k):
        if seed % 2 == 0:  # persistent, FOSD
            alpha = round(float(rng.uniform(0.0, 0.95)), 2)
            return alpha * np.eye(k) + (1 - alpha) / k
        w = rng.integers(1, 10, size=(k, k)).astype(float)
        return w / w.sum(axis=1, keepdims=True)

    v = np.round(np.sort(rng.uniform(*values, size=kb)), 2) + 0.01 * np.arange(kb)
    c = np.round(np.sort(rng.uniform(*costs, size=ks)), 2) + 0.01 * np.arange(ks)
    d = round(float(rng.uniform(*delta)), 2)
    return bilateral_trade(v, c, [1 / kb] * kb, [1 / ks] * ks, kernel(kb), kernel(ks), d, horizon)

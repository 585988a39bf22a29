"""Transfer limits (limited liability / liquidity): ``lo_i <= x_i(h, theta) <= hi_i`` as column bounds."""

from __future__ import annotations

import math

import numpy as np

from mechlp.lp.program import Variables


def agent_limits(limits, env) -> tuple[np.ndarray, np.ndarray]:
    """Per-agent payment bounds ``(lo, hi)`` (arrays of length ``n_agents``) from ``{agent: (lo, hi)}``.

    ``None`` or ``inf`` leaves a side open; agents are named or indexed; ``lo > hi`` or NaN is an error.
    """
    lo = np.full(env.n_agents, -np.inf)
    hi = np.full(env.n_agents, np.inf)
    if not limits:
        return lo, hi
    if not isinstance(limits, dict):
        raise TypeError(f"limits must be a dict {{agent: (lo, hi)}}, got {type(limits).__name__}")
    for key, pair in limits.items():
        i = env.agent_index(key)
        try:
            a, b = pair
        except (TypeError, ValueError):
            raise ValueError(f"limits[{key!r}] must be a pair (lo, hi), got {pair!r}") from None
        a = -math.inf if a is None else float(a)
        b = math.inf if b is None else float(b)
        if math.isnan(a) or math.isnan(b) or a > b:
            raise ValueError(f"limits[{key!r}] = ({a}, {b}) is not an interval lo <= hi")
        lo[i], hi[i] = a, b
    return lo, hi


def transfer_bounds(variables: Variables, limits) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds for all variables with ``limits`` applied to the transfer columns.

    ``limits`` is ``None`` or a mapping ``{agent name or index: (lo, hi)}`` (see :func:`agent_limits`); payments
    are from the agent to the designer, so ``lo = 0`` forbids paying the agent.
    """
    env = variables.space.env
    lo = np.full(variables.n_cols, -np.inf)
    hi = np.full(variables.n_cols, np.inf)
    a, b = agent_limits(limits, env)
    nodes = np.arange(variables.n_nodes)
    for i in range(env.n_agents):
        cols = variables.x(i, nodes)
        lo[cols] = a[i]
        hi[cols] = b[i]
    return lo, hi

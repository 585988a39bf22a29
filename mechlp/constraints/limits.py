"""Transfer limits (limited liability / liquidity): ``lo_i <= x_i(h, theta) <= hi_i`` as column bounds."""

from __future__ import annotations

import numpy as np

from mechlp.lp.program import Variables
from mechlp.model.question import agent_limits


def transfer_bounds(variables: Variables, limits) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds for all variables with ``limits`` applied to the transfer columns.

    ``limits`` is ``None`` or a mapping ``{agent name or index: (lo, hi)}``
    (see :func:`mechlp.model.question.agent_limits`); payments
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

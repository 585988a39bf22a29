r"""Environments with more than two agents, for the balanced team mechanism (Athey and Segal 2007).

The TOML model schema (:mod:`mechlp.io`) only describes bilateral trade for now, so these environments are
built in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .environment import Agent, Environment
from .examples import renewal_matrix

__all__ = ["public_project"]

DEFAULT_VALUES: tuple[tuple[float, float], ...] = ((0.2, 1.0), (0.3, 0.8), (0.1, 1.2))


def public_project(
    values: Sequence[Sequence[float]] = DEFAULT_VALUES,
    cost: float = 1.5,
    persistence: float | Sequence[float] = (0.7, 0.8, 0.6),
    priors: Sequence[Sequence[float]] | None = None,
    discount: float = 0.9,
    horizon: int | str = "infinite",
    names: Sequence[str] | None = None,
) -> Environment:
    r"""A repeated public project (build or not, every period) with ``n`` agents and Markov values.

    Agent :math:`i` has value :math:`\theta_i \in` ``values[i]`` (ascending) for the project in the current
    period and bears the equal cost share :math:`c/n`, so

    .. math::
       v_i(\theta_i, \text{build}) = \theta_i - c/n, \qquad v_i(\theta_i, \text{reject}) = 0,

    and the efficient rule builds iff :math:`\sum_i \theta_i > c` (a tie rejects). Values follow independent
    renewal kernels (:func:`mechlp.examples.renewal_matrix`): stay with probability ``persistence[i]``,
    otherwise move uniformly to another value. Types are independent across agents and values are private, as
    Athey and Segal (2007) assume.

    Parameters
    ----------
    values : sequence of sequences of float
        Per agent, its possible values, strictly increasing. The default has three agents with two values
        each, ``((0.2, 1.0), (0.3, 0.8), (0.1, 1.2))``: with ``cost = 1.5`` the project is built at 4 of the 8
        profiles, no profile ties, and every agent is pivotal at some profile where the others' net value is
        not zero (so every agent's report moves the others' welfare).
    cost : float
        Per-period cost :math:`c` of the project, shared equally.
    persistence : float or sequence of float
        One number for everyone or one per agent, in ``[0, 1]``.
    priors : sequence of sequences of float, optional
        First-period distributions, one per agent; uniform by default.
    discount : float
        :math:`\delta`.
    horizon : int or "infinite"
    names : sequence of str, optional
        Agent names; default ``agent1``, ``agent2``, ...

    Returns
    -------
    Environment
        Actions ``("reject", "build")``; types labelled ``L``/``H`` for two values, ``t1, t2, ...`` otherwise.
        ``env.meta`` records ``kind="public_project"`` and ``cost``.

    Raises
    ------
    ValueError
        For fewer than two agents, or lengths of ``persistence``, ``priors`` or ``names`` that do not match
        ``values``.
    """
    vals = [np.asarray(v, dtype=float) for v in values]
    n = len(vals)
    if n < 2:
        raise ValueError(f"values must describe at least two agents, got {n}")
    for i, v in enumerate(vals):
        if v.ndim != 1 or v.size < 1:
            raise ValueError(f"values[{i}] must be a non-empty list of numbers, got shape {v.shape}")
    if isinstance(persistence, int | float | np.integer | np.floating):
        pers = [float(persistence)] * n
    else:
        pers = [float(p) for p in persistence]
        if len(pers) != n:
            raise ValueError(f"persistence has {len(pers)} entries; expected {n}, one per agent")
    if priors is not None and len(priors) != n:
        raise ValueError(f"priors has {len(priors)} entries; expected {n}, one per agent")
    if names is None:
        names = [f"agent{i + 1}" for i in range(n)]
    elif len(names) != n:
        raise ValueError(f"names has {len(names)} entries; expected {n}, one per agent")
    share = float(cost) / n
    agents = []
    for i, v in enumerate(vals):
        k = v.size
        labels = ("L", "H") if k == 2 else tuple(f"t{j + 1}" for j in range(k))
        prior = np.full(k, 1.0 / k) if priors is None else priors[i]
        valuation = np.stack([np.zeros(k), v - share], axis=1)
        agents.append(
            Agent(names[i], labels, prior, renewal_matrix(k, pers[i]), valuation, values=v, role="participant")
        )
    return Environment(
        agents,
        ("reject", "build"),
        discount,
        horizon,
        "efficient",
        name="public_project",
        meta={"kind": "public_project", "cost": float(cost)},
    )

"""The canonical dict form of an environment: what model files hold, certificate files embed and hash.

:func:`model_to_dict` is the inverse of :func:`mechlp.catalog.io.model_from_dict` (the validating reader of
the same schema); it lives with the model because the verifier's certificate files hash it
(:func:`mechlp.audit.certfile.model_hash`) and the verifier imports nothing above :mod:`mechlp.model`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mechlp.model.environment import Environment

__all__ = ["model_to_dict"]


def _is_bilateral(env: Environment) -> bool:
    roles = sorted(ag.role or "" for ag in env.agents)
    return env.meta.get("kind") == "bilateral_trade" and roles == ["buyer", "seller"]


def _general_to_dict(env: Environment) -> dict[str, Any]:
    agents = []
    for ag in env.agents:
        entry: dict[str, Any] = {"name": ag.name}
        if ag.role is not None:
            entry["role"] = ag.role
        entry["types"] = list(ag.types)
        if ag.values is not None:
            entry["values"] = [float(v) for v in ag.values]
        entry["prior"] = [float(v) for v in ag.prior]
        if ag.transition is not None:
            kern = np.asarray(ag.transition, dtype=float)
            entry["transition"] = (
                {a: kern[j].tolist() for j, a in enumerate(env.actions)} if ag.action_dependent else kern.tolist()
            )
        entry["valuation"] = {a: [float(v) for v in ag.valuation[:, j]] for j, a in enumerate(env.actions)}
        agents.append(entry)
    counts = env.type_counts
    total = Environment._total_valuation(env.agents, counts, env.n_actions)
    myopic = np.zeros((1, env.n_profiles, env.n_actions))
    myopic[0, np.arange(env.n_profiles), np.argmax(total, axis=1)] = 1.0
    tables = env.allocations

    def rows(table: np.ndarray) -> list:
        det = np.max(table, axis=1) == 1.0
        return [
            env.actions[int(np.argmax(row))] if d else [float(v) for v in row]
            for row, d in zip(table, det, strict=True)
        ]

    if np.array_equal(myopic, tables):
        # "efficient" reads back as the dynamic policy when kernels depend on the action: name the myopic rule then
        allocation: dict[str, Any] = {"rule": "efficient_myopic" if env.action_dependent else "efficient"}
    elif tables.shape[0] == 1:
        allocation = {"table": rows(tables[0])}
    else:
        allocation = {"periods": [rows(t) for t in tables]}
    horizon: str | int = "infinite" if env.infinite else int(env.horizon)
    return {
        "model": {
            "name": env.name,
            "kind": "general",
            "discount": float(env.discount),
            "horizon": horizon,
            "actions": list(env.actions),
        },
        "agents": agents,
        "allocation": allocation,
        **_joint_to_dict(env),
    }


def _joint_to_dict(env: Environment) -> dict[str, Any]:
    """``{"joint_transition": {"profiles": [...], "matrix": ...}}`` for a correlated environment, else ``{}``:
    the profiles in C order, each its type labels joined by ``", "``; the matrix keyed by action label when it
    has one per action (the reader, :func:`mechlp.catalog.io.model_from_dict`, checks the order)."""
    if env.joint_transition is None:
        return {}
    jt = np.asarray(env.joint_transition, dtype=float)
    profiles = [", ".join(env.profile_labels(k).values()) for k in range(env.n_profiles)]
    matrix: Any = {a: jt[j].tolist() for j, a in enumerate(env.actions)} if jt.ndim == 3 else jt.tolist()
    return {"joint_transition": {"profiles": profiles, "matrix": matrix}}


def model_to_dict(env: Environment) -> dict[str, Any]:
    """The model document of an environment (the inverse of :func:`model_from_dict`).

    Parameters
    ----------
    env : Environment
        Bilateral trade built by :func:`mechlp.model.environment.bilateral_trade` (directly, via
        :mod:`mechlp.catalog.examples`
        or from a model file) is written in the bilateral-trade schema; every other environment in the general
        schema.

    Returns
    -------
    dict
        Plain Python data (str, float, int, lists, dicts): ``{"model": ..., "agents": [...], "allocation": ...}``.
        Kernels are always written as explicit ``transition`` matrices (one per action, keyed by action label,
        when they depend on the action; none for an agent without a kernel of its own), a correlated
        environment's kernel over profiles as ``joint_transition`` (``profiles`` and ``matrix``); the
        allocation as ``rule = "efficient"`` when it equals the efficient rule, else as a ``table``.
    """
    if not _is_bilateral(env):
        return _general_to_dict(env)
    agents = []
    for ag in env.agents:
        if ag.values is None:  # pragma: no cover - bilateral_trade always sets values
            raise ValueError(f"agent {ag.name!r} has no numeric values")
        entry = {
            "name": ag.name,
            "role": ag.role,
            "types": list(ag.types),
            "values": [float(v) for v in ag.values],
            "prior": [float(v) for v in ag.prior],
        }
        if ag.transition is not None:
            entry["transition"] = np.asarray(ag.transition, dtype=float).tolist()
        agents.append(entry)
    horizon: str | int = "infinite" if env.infinite else int(env.horizon)
    return {
        "model": {"name": env.name, "discount": float(env.discount), "horizon": horizon},
        "agents": agents,
        "allocation": {"rule": "efficient"},
        **_joint_to_dict(env),
    }

r"""Recursion rows: the definitions of ``U_i`` and ``B`` at every node (Lamba 2022, eq. 3).

.. math::
   U_i(g) + x_i(g) - \delta \sum_{\theta'} P(\theta'|\theta_g) U_i(g\theta') = \sum_a p(a|\theta_g) v_i(\theta_{g,i}, a)

.. math::
   B(g) - \sum_i x_i(g) - \delta \sum_{\theta'} P(\theta'|\theta_g) B(g\theta') = 0

where ``g theta'`` is the node of profile ``theta'`` in the history following ``g`` (no term when the game ends).
"""

from __future__ import annotations

import numpy as np

from mechlp.lp.program import Block, Variables
from mechlp.model.beliefs import joint_transition


def _children(variables: Variables):
    space = variables.space
    k = space.env.n_profiles
    g = np.flatnonzero(space.child_hist >= 0)
    kids = (space.child_hist[g][:, None] * k + np.arange(k)).reshape(-1)
    probs = joint_transition(space.env)[space.node_key[g]].reshape(-1)
    return np.repeat(g, k), kids, probs


def recursion_blocks(variables: Variables) -> list[Block]:
    """One equality block for the utilities of all agents and one for the designer's surplus ``B``."""
    space = variables.space
    env = space.env
    n_nodes = space.n_nodes
    delta = env.discount
    nodes = np.arange(n_nodes, dtype=np.int64)
    par, kids, probs = _children(variables)
    keep = probs != 0
    par, kids, probs = par[keep], kids[keep], probs[keep]
    flow = space.node_flow_values()  # (n, N)

    rows, cols, vals = [], [], []
    for i in range(env.n_agents):
        base = i * n_nodes
        rows += [base + nodes, base + nodes, base + par]
        cols += [variables.U(i, nodes), variables.x(i, nodes), variables.U(i, kids)]
        vals += [np.ones(n_nodes), np.ones(n_nodes), -delta * probs]
    rhs = flow.reshape(-1)
    util = Block(
        "recursion_U",
        env.n_agents * n_nodes,
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        rhs,
        rhs.copy(),
        {
            "agent": np.repeat(np.arange(env.n_agents), n_nodes),
            "node": np.tile(nodes, env.n_agents),
            "hist": np.tile(nodes // env.n_profiles, env.n_agents),
        },
    )
    rows = [nodes, par] + [nodes] * env.n_agents
    cols = [variables.B(nodes), variables.B(kids)] + [variables.x(i, nodes) for i in range(env.n_agents)]
    vals = [np.ones(n_nodes), -delta * probs] + [-np.ones(n_nodes)] * env.n_agents
    designer = Block(
        "recursion_B",
        n_nodes,
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        np.zeros(n_nodes),
        np.zeros(n_nodes),
        {"node": nodes, "hist": nodes // env.n_profiles},
    )
    return [util, designer]

"""From a question's options to an assembled LP (constraints + objective), with a size check."""

from __future__ import annotations

import time
import warnings

import numpy as np

from mechlp.constraints import (
    AgentView,
    budget_blocks,
    ic_blocks,
    ir_blocks,
    outside_options,
    recursion_blocks,
    surplus_coefficients,
    transfer_bounds,
)
from mechlp.lp.program import LinearProgram, Variables, assemble
from mechlp.model import tolerances
from mechlp.model.spaces import StateSpace

__all__ = ["build_lp", "surplus_objective"]


def surplus_objective(variables: Variables, weights: np.ndarray | None = None) -> np.ndarray:
    r"""Cost vector of ``-sum_h w_h Pi(h)`` (HiGHS minimises), ``w_h = 1`` by default.

    With strictly positive weights the optimum maximises every :math:`\Pi(h)` at once whenever a pointwise
    maximum exists (Lamba 2022, Lemma 6), which is the min-max mechanism.
    """
    space = variables.space
    hists = np.arange(space.n_hist, dtype=np.int64)
    rows, cols, vals = surplus_coefficients(variables, hists)
    w = np.ones(space.n_hist) if weights is None else np.asarray(weights, dtype=float)
    cost = np.zeros(variables.n_cols)
    np.add.at(cost, cols, -w[rows] * vals)
    return cost


def build_lp(
    space: StateSpace,
    *,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "none",
    outside_option=0.0,
    limits=None,
    weights: np.ndarray | None = None,
) -> LinearProgram:
    """Assemble recursion + IC + IR + budget rows, transfer bounds and the surplus objective on ``space``."""
    started = time.perf_counter()
    variables = Variables(space, {"Q": space.n_hist} if budget == "savings" else None)
    env = space.env
    beliefs = space.beliefs()
    views = [AgentView(space, i, beliefs) for i in range(env.n_agents)]
    outside = outside_options(outside_option, env)
    blocks = recursion_blocks(variables)
    blocks += ic_blocks(variables, views, ic)
    blocks += ir_blocks(variables, views, outside, ir)
    blocks += budget_blocks(variables, budget)
    lo, hi = transfer_bounds(variables, limits)
    # Coefficients below HiGHS's small_matrix_value are dropped; say so instead of letting the verifier find out.
    for blk in blocks:
        tiny = (blk.vals != 0) & (np.abs(blk.vals) < tolerances.HIGHS_SMALL_MATRIX_VALUE)
        if tiny.any():
            warnings.warn(
                f"{int(tiny.sum())} coefficients of the {blk.family} rows are below "
                f"{tolerances.HIGHS_SMALL_MATRIX_VALUE:g} in magnitude (e.g. a "
                "tiny discount factor or transition probability); solvers may ignore them, so rely on the "
                "verification of the answer",
                RuntimeWarning,
                stacklevel=2,
            )
            break
    return assemble(variables, blocks, surplus_objective(variables, weights), lo, hi, started=started)

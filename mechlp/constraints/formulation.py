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
    recursion_blocks,
    surplus_coefficients,
    transfer_bounds,
)
from mechlp.lp.program import LinearProgram, Variables, assemble
from mechlp.model import tolerances
from mechlp.model.question import Question
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
    question: Question | None = None,
    *,
    weights: np.ndarray | None = None,
    outside_values: np.ndarray | None = None,
    **options,
) -> LinearProgram:
    """Assemble recursion + IC + IR + budget rows, transfer bounds and the surplus objective on ``space``.

    ``question`` is the parsed :class:`~mechlp.model.question.Question`; without it, ``options`` (``ic``,
    ``ir``, ``budget``, ``outside_option``, ``limits``, as for :meth:`Question.parse`) are parsed here, with
    ``budget="none"`` unless given. ``outside_values`` (``(n_agents, n_nodes)``) are outside options that depend
    on the node, added to the question's per-type options in the IR rows (:func:`mechlp.constraints.ir.ir_blocks`).
    """
    started = time.perf_counter()
    env = space.env
    q = question if question is not None else Question.parse(env, **{"budget": "none", **options})
    if question is not None and options:
        raise TypeError(f"build_lp takes either a question or options, not both (got {sorted(options)})")
    variables = Variables(space, {"Q": space.n_hist} if q.budget == "savings" else None)
    views = [AgentView(space, i) for i in range(env.n_agents)]
    blocks = recursion_blocks(variables)
    blocks += ic_blocks(variables, views, q.ic)
    if outside_values is not None:
        outside_values = np.asarray(outside_values, dtype=float)
        if outside_values.shape != (env.n_agents, space.n_nodes):
            raise ValueError(
                f"outside_values has shape {outside_values.shape}; expected ({env.n_agents}, {space.n_nodes}) "
                "(agents x nodes)"
            )
    blocks += ir_blocks(variables, views, list(q.outside), q.ir, outside_values)
    blocks += budget_blocks(variables, q.budget)
    lo, hi = transfer_bounds(variables, q.limits)
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

"""Transfer ranges on the diverse-preference model (Bergemann and Valimaki 2010, Theorem 2), as the grid refines.

Run: ``PYTHONPATH=. python benchmarks/ranges_bv.py [STEPS ...] [--space=markov|tree:T|tail:T]``, or
``--warm-vs-cold`` for the batched warm re-solves against one fresh LP per objective. For each grid
(``steps`` points per action) it prints, for agent ``diverse``, the widest range per kind of type (single-action
types that change the decision, the persistent type ``P``), whether the pivot's payment lies in every range, the
number of LPs and the seconds.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import scipy.sparse as sp

from mechlp.backends import solve_lp, solve_objectives
from mechlp.catalog.examples import bv_diverse
from mechlp.constraints.formulation import build_lp
from mechlp.constructions.pivot import exit_nodes, pivot_outside_on_space, pivot_values
from mechlp.model.question import Question
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail
from mechlp.solve.ranges import transfer_ranges


def run(steps: int, space_kind: str = "markov", delta: float = 0.9) -> dict:
    horizon = "infinite"
    if space_kind.startswith("tree:"):
        horizon = int(space_kind.split(":")[1])
    env = bv_diverse(steps, delta, horizon=horizon)
    if space_kind == "markov":
        space = MarkovSpace(env)
    elif space_kind.startswith("tail:"):
        space = TreeWithTail(env, int(space_kind.split(":")[1]))
    else:
        space = HistoryTree(env, horizon)
    t0 = time.perf_counter()
    r = transfer_ranges(
        env, space=space, outside_values="pivot", efficient_exit=True, agents=["diverse"], max_lps=10**6
    )
    seconds = time.perf_counter() - t0
    df = r.ranges_frame()
    df = df[(df.agent == "diverse") & ~df.exit]
    own = df["type"]
    inside = bool(((df.lower <= df.reference + 1e-7) & (df.reference <= df.upper + 1e-7)).all())
    single = df[own.str.startswith("a:")]
    pers = df[own == "P"]
    return {
        "steps": steps,
        "space": space_kind,
        "status": r.status,
        "lps": r.size["lps"],
        "seconds": round(seconds, 2),
        "width_single_max": float(single.width.max()) if len(single) else float("nan"),
        "width_P_max": float(pers.width.max()),
        "pivot_inside_every_range": inside,
        "grid_gap": 1.0 / steps,
    }


def warm_vs_cold(steps: int = 4, delta: float = 0.9, count: int = 200) -> dict:
    """Seconds for ``count`` range LPs of the diverse model: one HiGHS instance re-solved warm
    (:func:`mechlp.backends.solve_objectives`) against one fresh solve each (:func:`mechlp.backends.solve_arrays`)."""
    env = bv_diverse(steps, delta)
    space = MarkovSpace(env)
    pv = pivot_values(env)
    lp = build_lp(
        space,
        Question.parse(env, ic="ex_post", ir="ex_post", budget="none"),
        outside_values=pivot_outside_on_space(space, pv),
    )
    ex = exit_nodes(space, pv)
    lo, hi = lp.col_lower.copy(), lp.col_upper.copy()
    for i in range(env.n_agents):
        c = lp.variables.x(i, np.flatnonzero(ex[i]))
        lo[c] = hi[c] = 0.0
    lp = dataclasses.replace(lp, col_lower=lo, col_upper=hi)
    cols = lp.variables.x(0, np.flatnonzero(~ex[0]))[: count // 2]
    costs = sp.csr_matrix(
        (np.tile([1.0, -1.0], cols.size), (np.arange(2 * cols.size), np.repeat(cols, 2))),
        shape=(2 * cols.size, lp.n_cols),
    )
    t0 = time.perf_counter()
    warm = solve_objectives(lp, costs)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold = [solve_lp(dataclasses.replace(lp, cost=costs[k].toarray().ravel())) for k in range(costs.shape[0])]
    t_cold = time.perf_counter() - t0
    same = max(abs(w - c.objective) for w, c in zip(warm.objective, cold, strict=True))
    return {
        "lps": costs.shape[0],
        "warm_s": round(t_warm, 2),
        "cold_s": round(t_cold, 2),
        "ratio": round(t_cold / t_warm, 2),
        "max_objective_difference": same,
    }


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--space")]
    kind = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--space=")), "markov")
    if "--warm-vs-cold" in sys.argv:
        print(warm_vs_cold(), flush=True)
        sys.exit(0)
    for s in [int(a) for a in args if a.isdigit()] or [2, 4, 8]:
        print(run(s, kind), flush=True)

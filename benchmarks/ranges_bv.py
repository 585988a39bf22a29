"""Transfer ranges on the diverse-preference model (Bergemann and Valimaki 2010, Theorem 2), as the grid refines.

Run: ``PYTHONPATH=. python benchmarks/ranges_bv.py [STEPS ...] [--space markov|tree:T|tail:T]``. For each grid
(``steps`` points per action) it prints, for agent ``diverse``, the widest range per kind of type (single-action
types that change the decision, the persistent type ``P``), whether the pivot's payment lies in every range, the
number of LPs and the seconds.
"""

from __future__ import annotations

import sys
import time

from mechlp.catalog.examples import bv_diverse
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


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--space")]
    kind = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--space=")), "markov")
    for s in [int(a) for a in args] or [2, 4, 8]:
        print(run(s, kind), flush=True)

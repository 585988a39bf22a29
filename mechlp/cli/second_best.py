"""``mechlp second-best MODEL``: the best allocation when efficiency fails (and the revenue-optimal mechanism).

Prints the objective value against the first best, the allocation per history / state, the verification of the
mechanism and the dual bound; ``--json`` writes the same. See :mod:`mechlp.solve.second_best`.
"""

from __future__ import annotations

import argparse
from typing import Any

from mechlp.catalog.io import load_model
from mechlp.cli.options import QUESTION_OPTIONS, OptionSpec, add_command, add_options, save_json
from mechlp.constraints.allocation import ALLOCATION_IC_MODES
from mechlp.model.answer import SCHEMA_VERSION
from mechlp.solve.second_best import FORMULATIONS, OBJECTIVES, ROWS, SecondBestResult, second_best

__all__ = ["add_parsers", "second_best_payload"]

#: The Python function ``mechlp second-best`` mirrors, and the parameters it exposes.
SECOND_BEST_FUNCTIONS = (second_best,)
SECOND_BEST_OPTIONS = ("objective", *QUESTION_OPTIONS, "formulation", "rows")


def second_best_payload(res: SecondBestResult, objective: str, budget: str) -> dict[str, Any]:
    """The JSON answer of ``mechlp second-best``: ``schema_version``, ``model``, ``status``, ``message``,
    ``objective``, ``budget`` (as given on the command line), ``value``, ``first_best``, ``allocation`` (rows of
    :meth:`SecondBestResult.allocation_table`), ``verification``, ``dual_bound`` (``bound``, ``gap``, ``ok``) and
    ``method`` (:attr:`SecondBestResult.method`: formulation, rows, rounds)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": res.env.name,
        "status": res.status,
        "message": res.message,
        "objective": objective,
        "budget": budget,
        "value": res.value,
        "first_best": res.first_best,
        "allocation": res.allocation_table(),
        "verification": None if res.verification is None else res.verification.to_dict(),
        "dual_bound": None if res.dual is None else {"bound": res.dual.bound, "gap": res.dual.gap, "ok": res.dual.ok},
        "method": res.method,
    }


def _cmd(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    res = second_best(env, **{name: getattr(args, name) for name in SECOND_BEST_OPTIONS})
    print(f"model {env.name}: {env!r}")
    print(f"second best ({args.objective}, budget {args.budget}): {res.status}")
    print(f"  {res.message}")
    if res.allocation is not None:
        print("\nallocation p(action | history, report profile):")
        for row in res.allocation_table():
            probs = ", ".join(f"{a}={p:.4f}" for a, p in row["p"].items())
            prof = "(" + ", ".join(row["profile"].values()) + ")"
            print(f"  {row['where']:<34} {prof:<16} {probs}")
    if res.certificate is not None:
        print("\nindependent verification:")
        print("\n".join("  " + s for s in res.certificate.summary().splitlines()))
    if args.json:  # the allocation table is built only when asked for
        save_json(args.json, second_best_payload(res, args.objective, args.budget))
    return 0 if res.status in ("optimal", "infeasible") else 3


def add_parsers(sub) -> None:
    p = add_command(sub, "second-best", help="best allocation under IC, IR and a budget notion (allocation variables)")
    p.add_argument("model", help="TOML model file")
    add_options(
        p,
        SECOND_BEST_FUNCTIONS,
        SECOND_BEST_OPTIONS,
        specs={
            "objective": OptionSpec("what the allocation maximises", choices=OBJECTIVES),
            "formulation": OptionSpec(
                "LP in interim utilities or over ex post utilities and transfers (auto: interim when the question "
                "allows it)",
                choices=FORMULATIONS,
            ),
            "rows": OptionSpec(
                "IC rows by constraint generation from the adjacent misreports, or all at once (auto: generated "
                "with the interim formulation)",
                choices=ROWS,
            ),
        },
        allowed={"ic": ALLOCATION_IC_MODES},
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model overrides, as for solve")
    p.add_argument("--json", metavar="FILE", help="write the answer as JSON")
    p.set_defaults(func=_cmd)

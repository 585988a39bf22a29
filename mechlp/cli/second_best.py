"""``mechlp second-best MODEL``: the best allocation when efficiency fails (and the revenue-optimal mechanism).

Prints the objective value against the first best, the allocation per history / state, the verification of the
mechanism and the dual bound; ``--json`` writes the same. See :mod:`mechlp.solve.second_best`.

History dependence (``--tail``, as ``tail`` of :func:`mechlp.solve.second_best.second_best`): without ``--tail``,
``--objective revenue`` on an infinite horizon without ``--horizon`` searches the depth of history dependence
(``--tail auto``: a tree of depth ``T = 1, 2, ...`` with a Markov tail, until the value stops moving) and prints
every depth's value, the depth answered and the best Markov value beside it (JSON: ``method.tail_search``), since
revenue-optimal mechanisms are history dependent in general (Battaglini 2005); the other objectives solve on the
Markov space. ``--tail off`` asks for the best Markov mechanism; bare ``--tail`` (or ``--tail on``) with
``--horizon T`` for ``T`` history-dependent periods, then a Markov tail.

Exit codes (:mod:`mechlp.cli.exits`): 0 for ``optimal`` or ``infeasible`` (each with its proof), 2 for bad input,
3 for any other status (no answer a proof backs).
"""

from __future__ import annotations

import argparse
from typing import Any

from mechlp.audit.certfile import optimality_payload
from mechlp.audit.certfile import write_json as write_certificate
from mechlp.catalog.io import load_model
from mechlp.cli.exits import exit_code
from mechlp.cli.options import (
    QUESTION_OPTIONS,
    TAIL_WORDS,
    OptionSpec,
    add_command,
    add_options,
    parse_tail,
    recheck_command,
    save_json,
)
from mechlp.constraints.allocation import ALLOCATION_IC_MODES
from mechlp.model.answer import SCHEMA_VERSION
from mechlp.solve.second_best import FORMULATIONS, OBJECTIVES, ROWS, SecondBestResult, second_best

__all__ = ["add_parsers", "second_best_payload"]

#: The Python function ``mechlp second-best`` mirrors, and the parameters it exposes.
SECOND_BEST_FUNCTIONS = (second_best,)
SECOND_BEST_OPTIONS = ("objective", *QUESTION_OPTIONS, "formulation", "rows", "certify")


def second_best_payload(res: SecondBestResult, objective: str, budget: str) -> dict[str, Any]:
    """The JSON answer of ``mechlp second-best``: ``schema_version``, ``model``, ``status``, ``message``,
    ``objective``, ``budget`` (as given on the command line), ``value``, ``first_best``, ``allocation`` (rows of
    :meth:`SecondBestResult.allocation_table`), ``verification``, ``dual_bound`` (``bound``, ``gap``, ``ok``),
    ``optimality`` (the exact certificate's numbers: ``lower``, ``upper``, ``gap`` as fractions and floats, ``ok``,
    ``tol``) and ``method`` (:attr:`SecondBestResult.method`: formulation, rows, rounds; after a search of the
    depth of history dependence also ``tail_search``: ``depths``, ``values``, the answer's ``depth``,
    ``markov_value`` (depth 0) and why it ``stopped``)."""
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
        "optimality": None if getattr(res, "optimality", None) is None else res.optimality.to_dict(),
        "method": res.method,
    }


def tail_search_lines(search: dict[str, Any]) -> list[str]:
    """The printed report of a search of the depth of history dependence (``method["tail_search"]``): each depth's
    value, the depth answered, the best Markov value beside it and why the search stopped."""
    out = ["history dependence (tree of this many periods, then a Markov tail; depth 0 = Markov):"]
    for d, v in zip(search["depths"], search["values"], strict=True):
        mark = "  <- answer" if d == search["depth"] else ""
        out.append(f"  depth {d:>2}: {v:.10g}{'  (best Markov)' if d == 0 else ''}{mark}")
    out.append(
        f"  answer at depth {search['depth']}: {search['values'][search['depths'].index(search['depth'])]:.10g}; "
        f"best Markov value {search['markov_value']:.10g}"
    )
    out.append(f"  stopped: {search['stopped']} (a heuristic: deeper histories could still gain)")
    return out


def _cmd(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    if args.tail is True and args.horizon is None:
        raise ValueError("--tail on needs --horizon T (history-dependent for T periods, then a Markov tail)")
    res = second_best(env, **{name: getattr(args, name) for name in SECOND_BEST_OPTIONS})
    print(f"model {env.name}: {env!r}")
    print(f"second best ({args.objective}, budget {args.budget}): {res.status}")
    print(f"  {res.message}")
    search = (res.method or {}).get("tail_search")
    if search is not None:
        print()
        print("\n".join(tail_search_lines(search)))
    if res.allocation is not None:
        print("\nallocation p(action | history, report profile):")
        for row in res.allocation_table():
            probs = ", ".join(f"{a}={p:.4f}" for a, p in row["p"].items())
            prof = "(" + ", ".join(row["profile"].values()) + ")"
            print(f"  {row['where']:<34} {prof:<16} {probs}")
    if res.certificate is not None:
        print("\nindependent verification:")
        print("\n".join("  " + s for s in res.certificate.summary().splitlines()))
    if getattr(res, "optimality", None) is not None:
        print("\nexact optimality certificate:")
        print("\n".join("  " + s for s in res.optimality.summary().splitlines()))
    elif getattr(res, "optimality_note", ""):
        print(f"\noptimality not proved exactly: {res.optimality_note}")
    if args.json:  # the allocation table is built only when asked for
        save_json(args.json, second_best_payload(res, args.objective, args.budget))
    if args.certificate:
        if getattr(res, "optimality", None) is None or not res.optimality.ok:
            print(f"no certificate written: the answer is {res.status}, which no exact proof backs")
        else:
            write_certificate(args.certificate, optimality_payload(res))
            print(f"wrote certificate {args.certificate} (re-check: {recheck_command(args, res)})")
    return exit_code(res.status)  # optimal / infeasible 0, any status no proof backs (not_proved) 3


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
            "tail": OptionSpec(
                "history dependence: auto (deepen a tree with a Markov tail until the value stops moving; every "
                "depth is reported), on (bare --tail; with --horizon T: T periods, then a Markov tail) or off; "
                "None (absent): auto for --objective revenue on an infinite horizon without --horizon, else off",
                type=parse_tail,
                metavar="{" + ",".join(TAIL_WORDS) + "}",
                nargs="?",
                const=True,
            ),
            "certify": OptionSpec(
                "prove optimality exactly: an exactly verified mechanism (transfers and allocation) and exact dual "
                "multipliers whose bound is within tolerances.OPTIMALITY_GAP (status not_proved otherwise)"
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
    p.add_argument(
        "--certificate",
        metavar="FILE",
        help="write the exact optimality certificate (mechanism, allocation and dual multipliers; mechlp check "
        "re-checks it)",
    )
    p.set_defaults(func=_cmd)

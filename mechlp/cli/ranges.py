"""Command line for transfer ranges and the Groves family: ``mechlp transfer-ranges`` and ``mechlp groves``.

``mechlp transfer-ranges MODEL [--ic ...] [--ir ...] [--budget ...] [--outside-values pivot] [--efficient-exit]``
    :func:`mechlp.solve.ranges.transfer_ranges`: the smallest and largest payment of each agent at each node over
    the mechanisms satisfying the rows, the verdict (unique / not unique) and, when not unique, two verified
    witness mechanisms. ``--csv FILE`` writes the table of ranges, ``--json FILE`` the whole answer.
``mechlp groves MODEL [--h zero|clarke]``
    :func:`mechlp.constructions.groves.groves`: a member of the dynamic Groves family, verified ex post IC.

MODEL is a TOML model file (``--set key=value``) or a built-in model (``--param key=value``), as for
``mechlp pivot``. Exit codes: 0 answered, 1 the solver found no mechanism (unverified: no certificate for these
rows), 2 bad input, 3 a verification failed, the solver failed or ran out of time.
"""

from __future__ import annotations

import argparse

from mechlp.cli.constructions import TABLE_LIMIT, _model_args, resolve_model
from mechlp.cli.exits import exit_code
from mechlp.cli.options import OptionSpec, add_command, add_options, save_json
from mechlp.constructions.groves import NAMED_TERMS, groves
from mechlp.solve.ranges import transfer_ranges

__all__ = ["add_parsers"]

#: The Python functions each command mirrors and the parameters it exposes (``tests/test_cli_parity.py``).
RANGES_FUNCTIONS = (transfer_ranges,)
RANGES_OPTIONS = (
    "ic",
    "ir",
    "budget",
    "outside_option",
    "limits",
    "outside_values",
    "efficient_exit",
    "agents",
    "histories",
    "horizon",
    "tail",
    "backend",
    "memory_limit",
    "max_lps",
    "time_limit",
)
GROVES_FUNCTIONS = (groves,)
GROVES_OPTIONS = ("h", "check", "ir", "outside_option", "tol")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--histories must be history indices separated by commas, got {text!r}"
        ) from None


SPECS = {
    "outside_values": OptionSpec(
        "outside options per node: pivot (Bergemann-Valimaki's value of opting out while the planner runs the "
        "efficient policy without the agent)",
        choices=("pivot",),
    ),
    "efficient_exit": OptionSpec(
        "fix a payment to 0 wherever the agent can no longer affect the efficient decision (Bergemann-Valimaki "
        "2010, Definition 1)"
    ),
    "agents": OptionSpec("agents whose payments are ranged, NAME,NAME (default all)", type=_names, metavar="NAMES"),
    "histories": OptionSpec("histories whose nodes are ranged, H,H (default all)", type=_ints, metavar="H"),
    "max_lps": OptionSpec("refuse when 2 x agents x nodes LPs exceed this", type=int),
    "h": OptionSpec("distribution term: zero (team mechanism) or clarke (dynamic pivot)", choices=NAMED_TERMS),
}


def _ranges_report(res) -> str:
    lines = [res.message, ""]
    df = res.ranges_frame()
    if len(df):
        lines.append("payments to the designer: range over all mechanisms satisfying the rows (reference: the pivot)")
        shown = df.head(TABLE_LIMIT)
        lines.extend("  " + ln for ln in shown.drop(columns=["node"]).to_string(index=False).splitlines())
        if len(df) > TABLE_LIMIT:
            lines.append(f"  ... {len(df):,} rows in all (see --csv or --json)")
    for ver in [res.verification, *(res.witness_verifications or ())]:
        if ver is not None:
            lines.append("")
            lines.extend(ver.summary().splitlines())
    return "\n".join(lines)


def _cmd_ranges(args: argparse.Namespace) -> int:
    env, _ = resolve_model(args.model, args.set, args.param)
    res = transfer_ranges(
        env,
        horizon=args.horizon,
        tail=args.tail,
        ic=args.ic,
        ir=args.ir,
        budget=args.budget,
        outside_option=args.outside_option,
        limits=args.limits,
        outside_values=args.outside_values,
        efficient_exit=args.efficient_exit,
        agents=args.agents,
        histories=args.histories,
        backend=args.backend,
        memory_limit=args.memory_limit,
        max_lps=args.max_lps,
        time_limit=args.time_limit,
    )
    print(_ranges_report(res))
    if args.csv:
        res.ranges_frame().to_csv(args.csv, index=False)
        print(f"\nwrote {args.csv}")
    save_json(args.json, res)
    return exit_code(res.status)


def _cmd_groves(args: argparse.Namespace) -> int:
    env, _ = resolve_model(args.model, args.set, args.param)
    res = groves(env, h=args.h, check=args.check, ir=args.ir, outside_option=args.outside_option, tol=args.tol)
    print(res.message)
    if res.verification is not None:
        print()
        print(res.verification.summary())
    save_json(args.json, res)
    return exit_code(res.status)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``transfer-ranges`` and ``groves`` on ``subparsers``."""
    p = add_command(
        subparsers,
        "transfer-ranges",
        help="smallest and largest payment at every node over the mechanisms satisfying the rows; uniqueness",
    )
    _model_args(p)
    add_options(p, RANGES_FUNCTIONS, RANGES_OPTIONS, specs=SPECS)
    p.add_argument("--csv", metavar="FILE", help="write the table of ranges as CSV")
    p.set_defaults(func=_cmd_ranges)

    g = add_command(subparsers, "groves", help="a member of the dynamic Groves family (team, pivot), verified")
    _model_args(g)
    add_options(g, GROVES_FUNCTIONS, GROVES_OPTIONS, specs=SPECS, help={"tol": "verification tolerance"})
    g.set_defaults(func=_cmd_groves)

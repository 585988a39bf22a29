"""Command line: ``mechlp report MODEL [--out report.html] [--horizon T] [--budget B ...] [--no-critical]``.

One self-contained HTML page about the model (:func:`mechlp.workflows.report.report`): the model, the min-max
surplus with its verified mechanism and fees, feasibility under each budget notion with the status of its proof,
and (infinite horizon) the critical discount factors. Inline SVG figures, no script, nothing loaded from the
network. Exit codes: 0 the page was written (whatever the answers), 2 bad input.
"""

from __future__ import annotations

import argparse
import functools

from mechlp.catalog.io import load_model
from mechlp.cli.options import add_command, signature_default
from mechlp.workflows.report import report

__all__ = ["add_parsers"]


def _cmd_report(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    report(env, args.out, budgets=args.budget, horizon=args.horizon, critical=args.critical, title=args.title)
    print(f"wrote {args.out}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``report`` on ``subparsers``."""
    default = functools.partial(signature_default, (report,))
    p = add_command(
        subparsers,
        "report",
        help="one self-contained HTML page: every question's answer with its proof status, tables and figures",
    )
    p.add_argument("model", help="TOML model file")
    p.add_argument("--out", default="report.html", metavar="FILE", help="the HTML file to write")
    p.add_argument("--budget", nargs="+", default=list(default("budgets")), metavar="BUDGET", help="budget notions")
    p.add_argument("--horizon", type=int, default=default("horizon"), metavar="T", help="answer on a T-period tree")
    p.add_argument(
        "--no-critical", dest="critical", action="store_false", default=True, help="skip the critical discount factors"
    )
    p.add_argument("--title", default=default("title"), help="page title (default: the model's name)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model overrides, as for solve")
    p.set_defaults(func=_cmd_report)

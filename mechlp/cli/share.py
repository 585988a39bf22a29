"""Command line: ``mechlp share MODEL --rule equal|designer|maxmin|min-max-transfer [--budget interim|ex-post] ...``.

``share`` solves the min-max mechanism of the model's allocation, splits its surplus ``Pi*(h)`` between the
agents and the designer by a sharing rule ``beta`` (Lamba 2022, Corollaries 4 and 5), builds the transfers
(rebalanced to sum to zero at every node under ``--budget ex-post``, Lamba 2022 Proposition 1) and verifies the
result independently (:func:`mechlp.audit.verifier.verify`). It prints the shares per history / Markov state,
the transfers on the Markov space and the verification; ``--json FILE`` writes the same as JSON.

Options
-------
``--rule``         ``equal`` (default), ``designer``, ``maxmin`` or ``min-max-transfer``
                   (see :mod:`mechlp.workflows.sharing`).
``--beta B1,B2``   explicit shares, one per agent in model order (instead of ``--rule``).
``--budget``       ``interim`` (default; the designer keeps ``(1 - sum beta) Pi*``) or ``ex-post``.
``--construction`` ``interim`` (default), ``shift`` or ``own``: how transfers are built from interim utilities.
``--markov``, ``--stationary``  restrict beta on history trees (automatic on the Markov space).
``--limit NAME=LO:HI``  transfer bounds for one agent (repeatable; leave a side empty for no bound).
``--set KEY=VALUE``     model overrides, as in ``mechlp solve``; ``--horizon T`` solves on a history tree
                        (``--tail``: then a stationary Markov tail).
``--outside-option O``  reservation utilities, as in ``mechlp solve``: the min-max surplus is solved, and the
                        shared mechanism's IR verified, against them (``share_surplus(outside_option=...)``).
``--method``       min-max solver, as ``share_surplus(method=...)``: ``auto`` (default; the recursion when it is
                   certified tight), ``lp`` or ``recursion``.
``--beta-method``  how the LP rules find beta: ``auto`` (default; per history / by depth level where the rule
                   decomposes), ``structure`` or ``lp`` (the two-stage LP).
``--compare R1,R2,...``  compare these rules side by side instead of one rule
                   (:func:`mechlp.workflows.sharing.compare_sharing`, ``rules=``; also spelled ``--rules``): the
                   summary per rule (shares of ``Pi*``, largest payment, reach-weighted payment variances, who
                   bears risk), the shares per history and the payments per node, every rule side by side.
``--out FILE``     with ``--compare``: write the comparison as CSV (the summary), JSON (the whole comparison) or
                   LaTeX (the summary), by the extension ``.csv``, ``.json`` or ``.tex`` (also ``.md``).
``--plot FIG``     with ``--compare``: draw the comparison (``plot(comparison, "sharing")``; ``.png``, ``.pdf``,
                   ``.svg``).

Exit codes (:mod:`mechlp.cli.exits`): 0 for an answer: a verified sharing was built, none exists (the min-max
surplus is negative somewhere, Lamba 2022, Theorem 1), or the rule's transfers break the transfer limits (the
violation is named); 2 for bad input (raised to the caller); 3 when the solver failed, an LP for the shares
reported "infeasible" (no certificate backs it), or the mechanism did not pass the verification (with
``--compare``: for any rule).

``add_parsers(subparsers)`` registers the subcommand on an existing ``argparse`` sub-parser collection (the
``mechlp`` entry point, :func:`mechlp.cli.main.build_parser`, wires it in).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mechlp.catalog.io import load_model
from mechlp.cli.exits import NOT_ANSWERED, OK, exit_code
from mechlp.cli.options import OptionSpec, add_command, add_options, save_json
from mechlp.model.answer import SCHEMA_VERSION
from mechlp.solve.questions import minmax
from mechlp.workflows import plots
from mechlp.workflows.export import column_format, to_csv, to_json, to_latex, to_markdown, to_text
from mechlp.workflows.sharing import (
    BETA_METHODS,
    BUDGETS,
    CONSTRUCTIONS,
    RULES,
    NegativeSurplusError,
    SharingComparison,
    SharingResult,
    compare_sharing,
    share_surplus,
)

__all__ = ["add_parsers", "share_payload", "share_report", "comparison_report", "write_comparison"]

#: The Python function ``mechlp share`` mirrors, and the parameters it exposes (the min-max options
#: ``horizon`` is passed on through ``**minmax_options``).
SHARE_FUNCTIONS = (share_surplus, compare_sharing)
SHARE_OPTIONS = (
    "rule",
    "budget",
    "construction",
    "markov",
    "stationary",
    "limits",
    "backend",
    "method",
    "beta_method",
)
#: Options of the min-max problem whose surplus is shared (``share_surplus(**minmax_options)``).
MINMAX_OPTIONS = ("horizon", "tail", "outside_option")
MAX_ROWS = 40  # histories shown in the printed tables
#: ``--out`` formats of a comparison, by extension.
OUT_FORMATS = (".csv", ".json", ".tex", ".md")


def _parse_beta(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        vals = [float(t) for t in text.split(",")]
    except ValueError:
        raise ValueError(f"--beta must be comma-separated numbers, one per agent, got {text!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"--beta must be finite numbers, got {text!r}")
    return vals


def share_payload(res: SharingResult, budget_label: str) -> dict[str, Any]:
    """The JSON answer of ``mechlp share`` for a built sharing."""
    env = res.env
    sp = res.space
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": env.name,
        "status": res.status,
        "message": res.message,
        "rule": res.rule,
        "budget": budget_label,
        "construction": res.construction,
        "space": sp.kind,
        "discount": env.discount,
        "horizon": "infinite" if env.infinite else int(env.horizon),
        "options": {
            "markov": res.options.get("markov"),
            "stationary": res.options.get("stationary"),
            "method": res.options.get("method"),
            "beta_method": res.options.get("beta_method"),
            "outside_option": res.minmax.options.get("outside_option", 0.0),
        },
    }
    limits = res.options.get("limits")
    if limits:
        out["options"]["limits"] = {str(k): [v[0], v[1]] for k, v in limits.items()}
    if np.isfinite(res.beta).all():
        rows = res.beta_table()
        for row in rows:
            row["history_path"] = sp.history_path(row["history"])
        out["shares"] = rows
    else:  # no beta was found (an infeasible or failed LP rule)
        out["shares"] = None
    out["objective"] = res.objective
    out["max_abs_transfer"] = res.max_abs_transfer
    out["checks"] = res.checks
    if res.mechanism is not None and sp.kind == "markov":
        out["transfers"] = [
            {"state": sp.history_path(r["history"]), "profile": r["profile"], "transfers": r["transfers"]}
            for r in res.transfer_table()
        ]
    if res.verification is not None:
        out["verification"] = res.verification.to_dict()
    return out


def share_report(res: SharingResult, budget_label: str) -> str:
    """Readable report: shares per history, transfers (Markov space) and the verification."""
    env = res.env
    sp = res.space
    verdict = "OK" if res.success else res.status.upper()
    lines = [
        f"model {env.name}: {env!r}",
        f"{res.rule} sharing of the min-max surplus, {budget_label} budget: {verdict}",
    ]
    lines.append(f"  {res.message.splitlines()[0] if res.message else ''}")
    lines.append("")
    lines.append("shares beta_i(h) of the min-max surplus Pi*(h); the designer keeps 1 - sum_i beta_i:")
    if np.isfinite(res.beta).all():
        shares = (
            res.shares_frame()
            .drop(columns="history")
            .rename(columns={"where": "history / state", "pi_star": "Pi*", "surplus": "Pi^beta"})
        )
        lines.append(to_text(shares, max_rows=MAX_ROWS))
    if res.mechanism is not None and sp.kind == "markov":
        lines.append("")
        lines.append("transfers x_i (payments to the designer; negative = the agent is paid):")
        frame = res.transfers_frame().drop(columns="history").rename(columns={"where": "state"})
        lines.append(to_text(frame))
    if res.max_abs_transfer is not None:
        lines.append(f"largest |transfer|: {column_format([res.max_abs_transfer]).text(res.max_abs_transfer)}")
    if res.certificate is not None:
        lines.append("")
        lines.append("independent verification:")
        lines.extend("  " + s for s in res.certificate.summary().splitlines())
    return "\n".join(lines)


def comparison_report(cmp: SharingComparison) -> str:
    """Readable report of a comparison: the summary per rule, the shares per history and the payments per node."""
    env = cmp.env
    verdict = "OK" if cmp.success else cmp.status.upper()
    lines = [
        f"model {env.name}: {env!r}",
        f"sharing rules compared ({', '.join(cmp.rules)}), {cmp.budget.replace('_', '-')} budget: {verdict}",
        *(f"  {line}" for line in cmp.message.splitlines()),
        "",
        "summary: shares and values of Pi* at the start, the largest |payment|, reach-weighted payment variances",
        "(the designer's payment is its net receipt sum_i x_i) and who bears risk (the largest variance):",
        to_text(cmp.summary_frame()),
        "",
        "shares beta_i(h) per history; the designer keeps 1 - sum_i beta_i:",
        to_text(cmp.shares_frame(), max_rows=MAX_ROWS),
        "",
        "payments x_i per node (to the designer; negative = the agent is paid), every rule side by side:",
        to_text(cmp.payments_frame(), max_rows=MAX_ROWS),
    ]
    return "\n".join(lines)


def write_comparison(cmp: SharingComparison, path: str) -> None:
    """Write a comparison by the extension of ``path``: ``.csv`` (the summary table), ``.json`` (the whole
    comparison, :meth:`SharingComparison.to_dict`), ``.tex`` (the summary as a booktabs table) or ``.md``."""
    ext = Path(path).suffix.lower()
    if ext not in OUT_FORMATS:
        raise ValueError(f"--out must end in {', '.join(OUT_FORMATS)}, got {path!r}")
    if ext == ".csv":
        to_csv(cmp, path)
    elif ext == ".json":
        to_json(cmp, path)
    elif ext == ".tex":
        to_latex(cmp, path, caption=f"Sharing rules compared: {cmp.env.name}")
    else:
        to_markdown(cmp, path)


def _cmd_compare(args: argparse.Namespace, env: Any, kwargs: dict[str, Any]) -> int:
    if args.beta is not None or args.rule != "equal":
        raise ValueError("give either --compare or --rule / --beta, not both")
    if args.json:
        raise ValueError("with --compare, write the comparison with --out FILE.json (or .csv, .tex, .md)")
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if args.out is not None and Path(args.out).suffix.lower() not in OUT_FORMATS:
        raise ValueError(f"--out must end in {', '.join(OUT_FORMATS)}, got {args.out!r}")
    try:
        cmp = compare_sharing(
            env,
            rules,
            budget=args.budget,
            construction=args.construction,
            markov=args.markov,
            stationary=args.stationary,
            limits=args.limits,
            **kwargs,
        )
    except NegativeSurplusError as exc:
        print(f"model {env.name}: {env!r}\nno budget-balanced sharing exists: {exc}")
        return OK  # an answer (Lamba 2022, Theorem 1), as for one rule
    if args.plot is not None:  # first: a bad figure path fails before anything is printed or written
        plots.plot(cmp, "sharing", path=args.plot)
    print(comparison_report(cmp))
    if args.out is not None:
        write_comparison(cmp, args.out)
        print(f"comparison written to {args.out}")
    if args.plot is not None:
        print(f"figure written to {args.plot}")
    return exit_code(cmp.status)  # every rule verified: 0; an unverified or failed rule: 3


def _cmd_share(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    budget = args.budget
    beta = _parse_beta(args.beta)
    if beta is not None and args.rule != "equal":
        raise ValueError("give either --rule or --beta, not both")
    rule: Any = beta if beta is not None else args.rule
    kwargs: dict[str, Any] = {"backend": args.backend, "method": args.method, "beta_method": args.beta_method}
    if args.horizon is not None:
        kwargs["horizon"] = args.horizon
    if args.tail:
        kwargs["tail"] = True
    if args.outside_option != 0.0:  # the min-max surplus and the verification's IR rows are against it
        kwargs["outside_option"] = args.outside_option
    if args.rules is not None:
        return _cmd_compare(args, env, kwargs)
    if args.out is not None or args.plot is not None:
        raise ValueError("--out and --plot write a comparison: give --compare RULE1,RULE2,...")
    try:
        res = share_surplus(
            env,
            rule,
            budget=budget,
            construction=args.construction,
            markov=args.markov,
            stationary=args.stationary,
            limits=args.limits,
            **kwargs,
        )
    except NegativeSurplusError as exc:
        print(f"model {env.name}: {env!r}\nno budget-balanced sharing exists: {exc}")
        save_json(
            args.json,
            {
                "schema_version": SCHEMA_VERSION,
                "model": env.name,
                "status": "infeasible",
                "message": str(exc),
                "rule": "explicit" if beta is not None else args.rule,
                "budget": args.budget,
                "failing_histories": exc.negative,
            },
        )
        return OK  # an answer: no budget-balanced sharing exists (Lamba 2022, Theorem 1)
    payload = share_payload(res, args.budget)
    print(share_report(res, args.budget))
    save_json(args.json, payload)
    if res.status == "infeasible" and res.mechanism is None:  # the beta LP's own "infeasible": no certificate
        print(
            "mechlp: no answer: the LP for the shares reports infeasible, and no certificate backs it", file=sys.stderr
        )
        return NOT_ANSWERED
    return exit_code(res.status)  # optimal, or a rule whose transfers break the limits: 0; failures 3


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``share`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``); returns its parser."""
    p = add_command(
        subparsers,
        "share",
        help="split the min-max surplus between agents and designer (beta), with verified transfers",
        description=(
            "Split the min-max surplus Pi*(h) between the agents and the designer by a rule beta "
            "(Lamba 2022, Corollaries 4-5), build the transfers (balanced at every node with --budget ex-post) "
            "and verify them."
        ),
    )
    p.add_argument("model", help="TOML model file")
    add_options(
        p,
        SHARE_FUNCTIONS,
        SHARE_OPTIONS,
        specs={
            "rule": OptionSpec("sharing rule", choices=RULES),
            "construction": OptionSpec("how transfers are built from the shared utilities", choices=CONSTRUCTIONS),
            "markov": OptionSpec("beta depends on (period, last reports) only"),
            "stationary": OptionSpec("beta depends on the last reports only"),
            "beta_method": OptionSpec(
                "beta of maxmin / min-max-transfer: auto (per history or by depth level where the rule decomposes, "
                "else the LP), structure, or lp (the two-stage LP)",
                choices=BETA_METHODS,
            ),
        },
        allowed={"budget": BUDGETS},
        help={"backend": "backend of the min-max LP and the sharing LPs (None: highs)"},
    )
    p.add_argument("--beta", metavar="B1,B2,...", help="explicit shares, one per agent in model order (not --rule)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a model entry, e.g. --set discount=0.8 --set persistence=0.9",
    )
    add_options(p, (minmax,), MINMAX_OPTIONS)
    p.add_argument("--json", metavar="FILE", help="write the answer as JSON")
    p.add_argument(
        "--compare",
        "--rules",
        dest="rules",
        metavar="R1,R2,...",
        help=f"compare these sharing rules side by side (compare_sharing(rules=...); rules {', '.join(RULES)})",
    )
    p.add_argument("--out", metavar="FILE", help="with --compare: write the comparison (.csv, .json, .tex or .md)")
    p.add_argument("--plot", metavar="FIG", help="with --compare: draw the comparison (.png, .pdf or .svg)")
    p.set_defaults(func=_cmd_share)
    return p

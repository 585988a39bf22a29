r"""Command line: ``mechlp team MODEL [--horizon T] [--bond history|paper] [--set key=value ...] [--json FILE]``.

Builds the balanced team mechanism of Athey and Segal (2007), section 5, for the model's (efficient)
allocation, verifies it independently (:func:`mechlp.audit.verifier.verify`, Bayesian IC, interim IR, ex post
budget balance) and prints a report; ``--json`` writes the machine-readable answer.

With ``--horizon T`` the mechanism is built on the history tree of ``T`` periods; without it, a finite-horizon
model uses its own horizon's tree and an infinite-horizon model the stationary Markov form (Athey and Segal
2007, eq. (6.1); exact for the infinite horizon).

Exit codes (:mod:`mechlp.cli.exits`): 0 when IC and ex post budget balance verify (IR is reported but not
promised by this mechanism: an answer either way) or with ``--no-check`` (status ``not_verified``), 3 when they do
not verify, 2 for bad input (raised as ``ValueError`` etc. and mapped by :func:`mechlp.cli.main`).

With ``--bond history`` or ``--bond paper`` the command runs
:func:`mechlp.constructions.participation.bonded_team` instead (Athey and Segal 2007, section 6): the paper's
constants :math:`A_i` and threshold :math:`\delta^*`, and the balanced team mechanism plus a zero-sum bond,
verified with ``--ir`` participation. Exit 0 when verified and when the construction is refused (an answer: the
reason is printed, participation fails at this discount factor), 3 when a verification fails, 2 for bad input
(also when the model violates an assumption of the paper; the message names it).

The parser is mounted by :func:`add_parsers` on an existing ``argparse`` subparsers object.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mechlp.catalog.io import load_model
from mechlp.cli.exits import exit_code
from mechlp.cli.options import add_command, add_options, save_json
from mechlp.constructions.participation import BONDS, BondedTeamResult, bonded_team
from mechlp.constructions.team import TeamResult, balanced_team
from mechlp.model.answer import SCHEMA_VERSION

__all__ = ["add_parsers", "team_payload", "team_report", "bonded_payload", "bonded_report"]

#: The Python function ``mechlp team`` mirrors, and the parameters it exposes.
TEAM_FUNCTIONS = (balanced_team, bonded_team)
TEAM_OPTIONS = ("horizon", "check", "ir", "outside_option", "tol", "exact")

MAX_ROWS = 40  # histories listed in the text report
DESCRIPTION = (
    "Build the balanced team mechanism of Athey and Segal (2007) for the model's efficient allocation and verify "
    "it: Bayesian IC and exact ex post budget balance are promised, IR is reported. With --horizon T the "
    "mechanism lives on the T-period history tree; otherwise a finite-horizon model uses its own horizon and an "
    "infinite-horizon model the stationary Markov form."
)


def _history_label(result: TeamResult, h: int) -> Any:
    sp = result.space
    if sp.kind == "markov":
        return "first period" if h == 0 else {"after": sp.env.profile_labels(h - 1)}
    return sp.history_path(h)


def team_payload(result: TeamResult) -> dict[str, Any]:
    """The JSON answer of ``mechlp team``.

    Keys: ``schema_version``, ``model``, ``construction``, ``space``, ``horizon``, ``discount``,
    ``budget_residual`` (``0.0``), ``grid``, ``rounding``, ``first_period_transfers`` (per profile, per agent,
    payments to the designer), ``gamma`` (per agent, per history: incentive payment per own type),
    ``verification`` (``ok`` for IC and budget, ``ic_ok``, ``ir_ok``, ``max_violation`` per family, ``worst_ir``)
    and ``notes``.

    Parameters
    ----------
    result : TeamResult

    Returns
    -------
    dict
    """
    sp = result.space
    env = result.env
    k = env.n_profiles
    x = result.mechanism.transfers
    first = [
        {
            "profile": env.profile_labels(p),
            "transfers": {ag.name: float(x[i, p]) for i, ag in enumerate(env.agents)},
        }
        for p in range(k)
    ]
    gamma = {
        ag.name: [
            {
                "history": _history_label(result, h),
                "period": int(sp.hist_period[h]),
                "values": {lab: float(result.gamma[i][h, t]) for t, lab in enumerate(ag.types)},
            }
            for h in range(sp.n_hist)
        ]
        for i, ag in enumerate(env.agents)
    }
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": env.name,
        "construction": "balanced_team (Athey-Segal 2007, eqs. 5.1-5.2)",
        "space": sp.kind,
        "horizon": "infinite" if sp.kind == "markov" else int(sp.horizon),
        "discount": env.discount,
        "budget_residual": float(result.budget_residual),
        "grid": float(result.grid),
        "rounding": float(result.rounding),
        "first_period_transfers": first,
        "gamma": gamma,
        "notes": list(result.notes),
    }
    v = result.verification
    if v is not None:
        worst = v.worst.get("ir")
        out["verification"] = {
            "ok": bool(result.ok),
            "ic_ok": bool(v.max_violation["ic"] <= v.tol),
            "ir_ok": bool(v.max_violation["ir"] <= v.tol),
            "tol": float(v.tol),
            "max_violation": {f: float(m) for f, m in v.max_violation.items()},
            "worst_ir": None if worst is None else worst.describe(),
        }
    return out


def team_report(result: TeamResult) -> str:
    """Readable report: the summary, first-period transfers and the incentive payments by history."""
    sp = result.space
    env = result.env
    lines = [f"model {env.name}: {env!r}", result.summary(), ""]
    lines.append("first-period transfers (payments to the designer; each row sums to exactly 0):")
    names = [ag.name for ag in env.agents]
    lines.append("  " + f"{'profile':<28}" + "".join(f"{nm:>14}" for nm in names))
    x = result.mechanism.transfers
    for p in range(env.n_profiles):
        prof = "(" + ", ".join(env.profile_labels(p).values()) + ")"
        lines.append("  " + f"{prof:<28}" + "".join(f"{x[i, p]:>14.6f}" for i in range(env.n_agents)))
    lines.append("")
    lines.append("incentive payments gamma_i(h, own report) (Athey-Segal 2007, eq. 5.2):")
    rows = range(sp.n_hist) if sp.n_hist <= MAX_ROWS else range(MAX_ROWS)
    for h in rows:
        parts = []
        for i, ag in enumerate(env.agents):
            vals = ", ".join(f"{lab}={result.gamma[i][h, t]:.6f}" for t, lab in enumerate(ag.types))
            parts.append(f"{ag.name}: {vals}")
        lines.append(f"  {sp.describe_history(h):<40} " + "; ".join(parts))
    if sp.n_hist > MAX_ROWS:
        lines.append(f"  ... {sp.n_hist:,} histories in all (use --json for every one)")
    return "\n".join(lines)


def bonded_payload(result: BondedTeamResult) -> dict[str, Any]:
    r"""The JSON answer of ``mechlp team --bond``: :meth:`BondedTeamResult.to_dict` plus ``model`` (schema of
    :mod:`mechlp.model.answer`; ``constants`` holds :math:`A_i`, :math:`C`, :math:`K`, :math:`\delta^*`)."""
    return {"model": result.env.name, **result.to_dict()}


def bonded_report(result: BondedTeamResult) -> str:
    """Readable report: the constants, the bond schedule (credit per history or the paper's constants), the verdict."""
    sp = result.space
    env = result.env
    lines = [f"model {env.name}: {env!r}", result.summary(), ""]
    names = [ag.name for ag in env.agents]
    if result.credit is not None:
        lines.append(
            "bond credit b_i(h) (paid back at h, then delta * b_i(next history) posted; sums to 0 over agents):"
        )
        lines.append("  " + f"{'history':<40}" + "".join(f"{nm:>14}" for nm in names) + f"{'slack':>14}")
        rows = range(min(sp.n_hist, MAX_ROWS))
        for h in rows:
            vals = "".join(f"{result.credit[i, h]:>14.6f}" for i in range(env.n_agents))
            lines.append(f"  {sp.describe_history(h):<40}{vals}{result.slack[h]:>14.6f}")
        if sp.n_hist > MAX_ROWS:
            lines.append(f"  ... {sp.n_hist:,} histories in all (use --json for every one)")
    else:
        c = result.constants
        lines.append("the paper's schedule: every period agent i hands each other agent j gamma_j/(I-1) + A_i >= 0;")
        lines.append(
            "  net payment to the pool per period: "
            + ", ".join(f"{nm} {c.side_payments[i]:.6f}" for i, nm in enumerate(names))
        )
        if result.gross is not None:
            off = [result.gross[i, j].min() for i in range(env.n_agents) for j in range(env.n_agents) if i != j]
            lines.append(f"  smallest bilateral payment z_ij over all nodes: {min(off):.6f}")
    return "\n".join(lines)


def _cmd_team(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    if args.bond is not None:
        bonded = bonded_team(
            env, horizon=args.horizon, bond=args.bond, ir=args.ir, check=args.check, tol=args.tol, exact=args.exact
        )
        print(bonded_report(bonded))
        if args.json:
            save_json(args.json, bonded_payload(bonded))
        return exit_code(bonded.status)  # refused (with its reason) is an answer too: 0
    result = balanced_team(
        env,
        horizon=args.horizon,
        check=args.check,
        ir=args.ir,
        outside_option=args.outside_option,
        tol=args.tol,
        exact=args.exact,
    )
    print(team_report(result))
    if args.json:
        save_json(args.json, team_payload(result))
    code = exit_code(result.status)  # verified (IR reported, not promised) / not_verified 0, verification_failed 3
    if code:  # the report above shows IC, IR and the budget residual; say why there is no answer
        print(f"mechlp: no answer: {result.message}", file=sys.stderr)
    return code


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``team`` on ``subparsers`` (the object returned by ``ArgumentParser.add_subparsers``).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
        The ``team`` sub-parser; its default ``func`` runs the command and returns the exit code.
    """
    p = add_command(
        subparsers,
        "team",
        help="balanced team mechanism (Athey-Segal 2007): Bayesian IC, exact budget balance, IR reported",
        description=DESCRIPTION,
    )
    p.add_argument("model", help="TOML model file")
    add_options(
        p,
        TEAM_FUNCTIONS,
        TEAM_OPTIONS,
        help={
            "horizon": "build on a history tree of this many periods (default: the model's horizon, or the Markov "
            "form)",
            "tol": "tolerance of the float verification",
            "ir": "participation notion the verifier reports on (without --bond IR is reported, not promised; with "
            "--bond the bond is built for it)",
        },
    )
    p.add_argument(
        "--bond",
        choices=BONDS,
        default=None,
        help="make the mechanism individually rational by a zero-sum bond (Athey-Segal 2007, section 6): history "
        "(a bond credit per history, the weakest condition) or paper (the paper's constants A_i); default: no bond",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a model entry, e.g. --set discount=0.8 --set persistence=0.9",
    )
    p.add_argument("--json", metavar="FILE", help="write the answer as JSON")
    p.set_defaults(func=_cmd_team)
    return p

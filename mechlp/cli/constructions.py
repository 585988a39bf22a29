"""Command line for the classic constructions: ``mechlp pivot`` and ``mechlp fees``.

``mechlp pivot MODEL [--json FILE]``
    The Bergemann–Välimäki (2010) dynamic pivot mechanism of the model's (efficient) allocation: transfers per
    profile (per period for a finite horizon), the designer's expected surplus, and the independent
    verification (periodic ex post IC and IR; Bayesian IC and interim IR).
``mechlp fees MODEL [--mode ex_ante|interim] [--split tight|balanced] [--critical-delta] [--json FILE]``
    Yoon's (2015) lump-sum fees on top of the pivot: condition (*), the fees, the verified fee mechanism and,
    with ``--critical-delta``, the critical discount factor(s) by a grid scan plus bisection.

MODEL is a TOML model file (:mod:`mechlp.catalog.io`, overrides with ``--set key=value``) or the name of a built-in
factory of :mod:`mechlp.catalog.examples` (``bv_scheduling``, ``license_auction``, ``yoon_binary``,
``yoon_k_type``, ``lamba_usstp``) with keyword arguments given as ``--param key=value`` (values parsed as TOML,
e.g. ``--param alpha=0.9 --param values=[3,2,1]``). Nothing is evaluated or imported from the command line.

Exit codes (:mod:`mechlp.cli.exits`): 0 for an answer: the pivot verified (periodic ex post IC, and IR against
Bergemann and Välimäki's outside values; whether it is also IR against the outside option 0 is part of the
answer, not a failure), the fee condition holding or failing, or a construction built with ``--no-check``
(status ``not_verified``); 2 for bad input; 3 when a mechanism failed the independent verification.

Wiring: :func:`mechlp.cli.main.build_parser` calls :func:`add_parsers` with its sub-parser collection; every command
sets ``func`` to a handler ``args -> exit code``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mechlp.catalog.examples import CLASSIC_MODELS
from mechlp.catalog.io import load_model
from mechlp.cli.exits import exit_code
from mechlp.cli.options import SCAN_OPTIONS, OptionSpec, add_command, add_options, parse_assignments, save_json
from mechlp.constructions.fees import MODES, SPLITS, WORST_OVER, critical_discount, lump_sum_fees
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.model.answer import SCHEMA_VERSION
from mechlp.model.environment import Environment
from mechlp.workflows.export import column_format, to_text

__all__ = ["add_parsers", "resolve_model", "pivot_payload", "fees_payload"]

TABLE_LIMIT = 64  # profiles printed in the readable report

#: The Python functions each command mirrors, and the parameters it exposes (``tests/test_cli_parity.py``).
PIVOT_FUNCTIONS = (dynamic_pivot,)
PIVOT_OPTIONS = ("check",)
FEES_FUNCTIONS = (lump_sum_fees,)
FEES_OPTIONS = ("mode", "split", "worst_over")
FEES_SPECS = {
    "split": OptionSpec("how the tight fees are split between the agents", choices=SPLITS),
    "worst_over": OptionSpec(
        "types that count for the worst-off type of Yoon's condition (*): all, or the prior's support",
        choices=WORST_OVER,
    ),
}


# ---------------------------------------------------------------------------------------------- models
def resolve_model(
    model: str, sets: Sequence[str] | None = None, params: Sequence[str] | None = None
) -> tuple[Environment, Callable[[float], Environment]]:
    """The environment named by MODEL and a ``delta -> Environment`` factory for the same model.

    Parameters
    ----------
    model : str
        A TOML file, or a key of :data:`mechlp.catalog.examples.CLASSIC_MODELS`.
    sets : sequence of str
        ``key=value`` overrides of a model file (:func:`mechlp.catalog.io.load_model`).
    params : sequence of str
        ``key=value`` keyword arguments of a built-in factory.
    """
    path = Path(model)
    if path.suffix == ".toml" or path.exists():
        if params:
            raise ValueError("--param applies to built-in models; use --set key=value for a model file")
        overrides = list(sets or [])
        env = load_model(path, overrides)
        return env, lambda d: load_model(path, [*overrides, f"discount={float(d)!r}"])
    if model not in CLASSIC_MODELS:
        raise FileNotFoundError(
            f"model {model!r} is neither a file nor a built-in model; built-in models: {sorted(CLASSIC_MODELS)}"
        )
    if sets:
        raise ValueError("--set applies to model files; use --param key=value for a built-in model")
    factory = CLASSIC_MODELS[model]
    kwargs = parse_assignments(params, "--param")
    try:
        env = factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"built-in model {model!r}: {exc}") from exc
    base = {k: v for k, v in kwargs.items() if k != "delta"}
    return env, lambda d: factory(**base, delta=float(d))


# ---------------------------------------------------------------------------------------------- payloads
def _verification_dict(ver) -> dict | None:
    """``ok``, ``options`` (``ic``, ``ir``, ``budget``, and ``outside_values: "per node"`` when IR was checked
    against per-node outside values, as the pivot's against Bergemann-Valimaki's O_i) and ``max_violation`` of
    :meth:`Verification.to_dict`."""
    if ver is None:
        return None
    d = ver.to_dict()
    return {
        "ok": d["ok"],
        "options": {k: d["options"][k] for k in ("ic", "ir", "budget", "outside_values") if k in d["options"]},
        "max_violation": d["max_violation"],
    }


def _header(env: Environment, space) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "model": env.name,
        "space": space.kind,
        "discount": env.discount,
        "horizon": "infinite" if env.infinite else int(env.horizon),
        "agents": [ag.name for ag in env.agents],
        "actions": list(env.actions),
    }


def pivot_payload(res) -> dict:
    """JSON answer of ``mechlp pivot`` (see the module docstring)."""
    env = res.env
    out = {"command": "pivot", **_header(env, res.space)}
    out["status"] = res.status  # "verified", "not_verified" or "verification_failed"
    out["message"] = res.message
    out["ex_ante_surplus"] = float(res.surplus[0])
    out["transfers"] = res.transfer_table()
    m = res.values.marginal[0]
    prior = env.prior_profile()
    out["expected_marginal_contribution"] = {ag.name: float(prior @ m[i]) for i, ag in enumerate(env.agents)}
    out["verification"] = {
        "ex_post": _verification_dict(res.verification),
        "bayesian": _verification_dict(res.verification_bayesian),
    }
    out["notes"] = list(res.notes)
    return out


def fees_payload(res, crit=None) -> dict:
    """JSON answer of ``mechlp fees``."""
    env = res.mechanism.env
    sp_ = res.mechanism.space
    out = {"command": "fees", **_header(env, sp_), "status": res.status, "message": res.message}
    out["mode"] = res.mode
    out["split"] = res.split
    out["condition"] = res.condition.to_dict()
    out["pivot_surplus"] = float(res.pivot.surplus[0])
    out["ex_ante_surplus"] = float(res.surplus[0])
    if res.mode == "ex_ante":
        out["fees"] = {ag.name: float(res.fees[i]) for i, ag in enumerate(env.agents)}
    else:
        out["fees"] = {
            ag.name: [
                {
                    "history": sp_.describe_history(h),
                    "fee": float(res.fees[i, h]),
                    "expected_fees": float(res.fee_values[i, h]),
                }
                for h in range(sp_.n_hist)
            ]
            for i, ag in enumerate(env.agents)
        }
        out["surplus_by_history"] = [
            {"history": sp_.describe_history(h), "value": float(res.surplus[h])} for h in range(sp_.n_hist)
        ]
    out["verification"] = {
        "bayesian": _verification_dict(res.verification),
        "ex_post": _verification_dict(res.verification_ex_post),
    }
    out["pivot_verification"] = {
        "ex_post": _verification_dict(res.pivot.verification),
        "bayesian": _verification_dict(res.pivot.verification_bayesian),
    }
    if crit is not None:
        out["critical_discount"] = crit.to_dict()
    out["notes"] = list(res.notes)
    return out


# ---------------------------------------------------------------------------------------------- reports
def _pivot_report(res) -> str:
    env = res.env
    lines = [f"model {env.name}: {env!r}", res.message, *res.notes, ""]
    rows = res.transfer_table()
    lines.append("pivot transfers (payments to the designer; Bergemann-Välimäki 2010, eq. 7):")
    names = [ag.name for ag in env.agents]
    table = pd.DataFrame(
        [
            {
                **({"period": r["period"]} if r["period"] is not None else {}),
                "profile": "(" + ", ".join(r["profile"].values()) + ")",
                "action": r["action"],
                **{nm: r["transfers"][nm] for nm in names},
            }
            for r in rows[:TABLE_LIMIT]
        ]
    )
    lines.append(to_text(table))
    if len(rows) > TABLE_LIMIT:
        lines.append(f"  ... {len(rows):,} rows in all (see --json)")
    for ver in (res.verification, res.verification_bayesian):
        if ver is not None:
            lines.append("")
            lines.extend(ver.summary().splitlines())
    return "\n".join(lines)


def number(value: float) -> str:
    """One number as the tables print it (:func:`mechlp.workflows.export.column_format`)."""
    return column_format([value]).text(value)


def _fees_report(res, crit=None) -> str:
    env = res.mechanism.env
    sp_ = res.mechanism.space
    lines = [f"model {env.name}: {env!r}", f"lump-sum fees ({res.mode.replace('_', ' ')}, {res.split}): "]
    lines[-1] += res.status.upper()
    lines.extend("  " + s for s in res.message.splitlines())
    lines.extend("  note: " + s for s in res.notes)
    lines.append("")
    lines.append(f"pivot surplus at the root {number(res.pivot.surplus[0])}; with fees {number(res.surplus[0])}")
    if res.mode == "ex_ante":
        fmt = column_format(res.fees)
        lines.append(
            "first-period fees: " + ", ".join(f"{ag.name} {fmt.text(res.fees[i])}" for i, ag in enumerate(env.agents))
        )
    else:
        lines.append("per-period fees by history (type-independent) and the surplus from there on:")
        table = pd.DataFrame({"history": sp_.describe_histories()})
        for i, ag in enumerate(env.agents):
            table[f"fee {ag.name}"] = res.fees[i]
        table["surplus"] = res.surplus
        lines.append(to_text(table, max_rows=TABLE_LIMIT))
    for ver in (res.verification, res.verification_ex_post):
        lines.append("")
        lines.extend(ver.summary().splitlines())
    if crit is not None:
        lines.append("")
        lines.append(f"critical discount factor (grid of {crit.grid.size} points, then bisection): {crit.message}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- commands
def _cmd_pivot(args: argparse.Namespace) -> int:
    env, _ = resolve_model(args.model, args.set, args.param)
    res = dynamic_pivot(env, check=args.check)
    payload = pivot_payload(res)
    print(_pivot_report(res))
    save_json(args.json, payload)
    return exit_code(payload["status"])  # verified / not_verified 0, verification_failed 3


def _cmd_fees(args: argparse.Namespace) -> int:
    env, factory = resolve_model(args.model, args.set, args.param)
    mode = args.mode
    res = lump_sum_fees(env, mode, split=args.split, worst_over=args.worst_over)
    crit = None
    if args.critical_delta:
        crit = critical_discount(
            factory, args.lo, args.hi, args.tol, grid=args.grid, mode=mode, worst_over=args.worst_over
        )
    payload = fees_payload(res, crit)
    print(_fees_report(res, crit))
    save_json(args.json, payload)
    return exit_code(res.status)  # feasible / infeasible (condition (*) decides) 0, verification_failed 3


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="TOML model file, or a built-in model: " + ", ".join(sorted(CLASSIC_MODELS)))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model-file entry")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="keyword argument of a built-in model")
    p.add_argument("--json", metavar="FILE", help="write the answer as JSON")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``pivot`` and ``fees`` on ``subparsers`` (the object returned by ``add_subparsers``)."""
    p = add_command(subparsers, "pivot", help="dynamic pivot mechanism (Bergemann-Välimäki 2010), verified")
    _model_args(p)
    add_options(p, PIVOT_FUNCTIONS, PIVOT_OPTIONS, help={"check": "run the verifier (skip it for very large spaces)"})
    p.add_argument("--no-verify", dest="check", action="store_false", help="the same as --no-check")
    p.set_defaults(func=_cmd_pivot)

    f = add_command(subparsers, "fees", help="lump-sum fees on the pivot (Yoon 2015) and the critical discount")
    _model_args(f)
    add_options(f, FEES_FUNCTIONS, FEES_OPTIONS, specs=FEES_SPECS, allowed={"mode": MODES})
    f.add_argument("--critical-delta", action="store_true", help="scan and bisect the discount factor")
    add_options(f, (critical_discount,), SCAN_OPTIONS)
    f.set_defaults(func=_cmd_fees)

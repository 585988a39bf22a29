"""Command line: ``mechlp solve MODEL [--budget ex_ante|interim|ex_post|...] [--set key=value ...] [--json FILE]``.

The options that mirror a Python parameter (``--ic``, ``--ir``, ``--budget``, ``--outside-option``, ``--limit``,
``--horizon``, ``--tail``, ``--backend``, ``--memory-limit``, ``--no-certify``, ``--exact``, ...) are generated
from the signatures of :func:`mechlp.solve.questions.minmax`, :func:`~mechlp.solve.questions.feasibility` and
:func:`mechlp.solve.critical.critical_delta` by :mod:`mechlp.cli.options`; notions are read in either spelling.

``solve --method recursion`` computes the min-max surplus by the backward recursion (:mod:`mechlp.solve.recursion`);
``mechlp critical-delta MODEL [--lo --hi --grid --tol]`` (also ``solve --critical-delta``) prints the bracket(s) of
the critical discount factor for the ``--budget`` notion instead (:mod:`mechlp.solve.critical`).

``solve`` answers, for the model's allocation, the two questions of Lamba (2022): the min-max surplus
``Pi*`` at every history / Markov state (with the fees on top of the static VCG for bilateral trade), and
whether the allocation is implementable under the chosen budget notion. It prints a readable report and, with
``--json``, writes the machine-readable answer (schema in the README).

``check`` re-checks a certificate file (:mod:`mechlp.audit.certfile`) against a model without re-solving.

Exit codes (one table for every command, :data:`mechlp.cli.exits.EXIT_CODES`, shown by ``mechlp --help`` and in
``docs/exit_codes.md``): 0 for any answer, yes or no (feasible *or* infeasible, each with its verified proof; a
certificate that holds), 1 when a certificate does not hold (or answers another question), 2 for bad input (one
line, never a traceback), 3 when no answer could be produced or proved (the solver failed, a solution did not pass
the independent verification, an answer no proof backs: ``unverified``, ``ill_conditioned``), 4 for an internal
error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

from mechlp.audit.certfile import certificate_payload, check_certificate
from mechlp.audit.certfile import write_json as write_certificate
from mechlp.backends import set_solver_log
from mechlp.catalog.io import load_model
from mechlp.cli import constructions as cli_constructions
from mechlp.cli import ranges as cli_ranges
from mechlp.cli import report as cli_report
from mechlp.cli import second_best as cli_second_best
from mechlp.cli import share as cli_share
from mechlp.cli import sweep as cli_sweep
from mechlp.cli import team as cli_team
from mechlp.cli.exits import BAD_INPUT, CERTIFICATE_FAILS, INTERNAL, INTERRUPTED, OK, SolverFailure, epilog, exit_code
from mechlp.cli.options import (
    QUESTION_OPTIONS,
    SCAN_OPTIONS,
    OptionSpec,
    add_command,
    add_options,
    recheck_command,
    save_json,
)
from mechlp.model.answer import SCHEMA_VERSION
from mechlp.model.question import Question
from mechlp.solve import questions as design
from mechlp.solve.critical import BUDGETS as CRITICAL_BUDGETS
from mechlp.solve.critical import DISCOUNT_NAMES, critical_delta
from mechlp.solve.critical import METHODS as CRITICAL_METHODS
from mechlp.solve.result import Result
from mechlp.workflows.export import to_text

_SUBCOMMAND_MODULES = [cli_constructions, cli_share, cli_team, cli_sweep, cli_second_best, cli_ranges, cli_report]

#: ``mechlp solve`` mirrors these Python questions (options generated from their signatures).
SOLVE_FUNCTIONS = (design.minmax, design.feasibility)
SOLVE_OPTIONS = (*QUESTION_OPTIONS, "method", "certify", "exact", "route", "time_limit", "progress")
#: ``mechlp critical-delta`` (and ``solve --critical-delta``) mirror :func:`mechlp.solve.critical.critical_delta`.
CRITICAL_OPTIONS = (
    "budget",
    "lo",
    "hi",
    "tol",
    "method",
    "grid",
    "horizon",
    "tail",
    "ic",
    "outside_option",
    "backend",
    "memory_limit",
    "lp_scan",
    "parameter",
    "ir",
)


def _state_dict(env, profile: int) -> dict[str, str]:
    return env.profile_labels(profile)


def solve_payload(budget: str, feas: Result, mm: Result) -> dict:
    """The JSON answer of ``mechlp solve`` (documented in the README), with ``schema_version``
    (:data:`mechlp.model.answer.SCHEMA_VERSION`)."""
    env = mm.env
    sp = mm.space
    # feasible / infeasible only with their verified proof; otherwise the result's own status
    # (unverified, ill_conditioned, verification_failed, time_limit, error)
    status = {"optimal": "feasible", "infeasible": "infeasible"}.get(feas.status, feas.status)
    out: dict = {
        "schema_version": SCHEMA_VERSION,
        "model": env.name,
        "status": status,
        "message": feas.message,
        "budget": budget,
        "space": sp.kind,
        "discount": env.discount,
        "horizon": "infinite" if env.infinite else int(env.horizon),
    }
    if mm.surplus is not None:
        pi = mm.surplus
        out["ex_ante_surplus"] = float(pi[0])
        if sp.kind == "markov":
            out["surplus_by_state"] = [
                {"state": _state_dict(env, h - 1), "value": float(pi[h])} for h in range(1, sp.n_hist)
            ]
        else:
            out["surplus_by_history"] = [
                {"history": sp.history_path(h), "period": int(sp.hist_period[h]), "value": float(pi[h])}
                for h in range(sp.n_hist)
            ]
        out["min_surplus"] = {"value": float(pi.min()), "where": sp.describe_history(int(np.argmin(pi)))}
    if mm.fees is not None:
        out["fees"] = {
            name: {
                "first": f["first"],
                "by_state": [{"state": {f["other"]: lab}, "value": v} for lab, v in f["by_state"].items()],
                "spread": f["spread"],
            }
            for name, f in mm.fees.items()
        }
    shown = feas if feas.status == "optimal" else mm
    if shown.verification is not None:
        ver = shown.verification.to_dict()
        out["verification"] = {"mechanism": shown.question, "ok": ver["ok"], "max_violation": ver["max_violation"]}
    if feas.exact_check is not None:
        out["exact_verification"] = feas.exact_verification
    if feas.status == "infeasible" and feas.certificate is not None:
        cert = feas.certificate
        out["impossibility_certificate"] = {"ok": cert.ok, "checks": cert.checks, "summary": cert.summary()}
    if feas.diagnosis and feas.status == "infeasible":
        out["failing_histories"] = feas.diagnosis.get("negative", [])
    out["solver"] = {
        "backend": feas.options.get("backend"),
        "native_status": feas.solver.native_status if feas.solver else None,
        "seconds": {
            k: round(float(v), 4)
            for k, v in {**mm.timings, **{"feasibility_" + k: v for k, v in feas.timings.items()}}.items()
        },
    }
    return out


def _allocation_words(env) -> str:
    """How the report names the model's allocation: its rule when it has one, else efficient or not."""
    rule = env.meta.get("allocation_rule")
    if rule:
        return f"allocation ({rule})"
    if not env.action_dependent and np.array_equal(env.allocations, env.with_allocation("efficient").allocations):
        return "efficient allocation"
    return "the model's allocation"


def _report(payload: dict, feas: Result, mm: Result) -> str:
    env = mm.env
    lines = [f"model {env.name}: {env!r}"]
    verdict = payload["status"].upper()
    lines.append(f"{_allocation_words(env)} under {payload['budget']} budget balance: {verdict}")
    lines.append(f"  {feas.message}")
    if mm.surplus is not None:
        lines.append("")
        tight = (mm.diagnosis or {}).get("tightness", {})
        if tight.get("tight") is True:
            lines.append("min-max surplus Pi* (designer's largest expected surplus under IC + IR):")
        else:  # Pi* maximises sum_h Pi(h); the largest at every history only when certified (minmax's message)
            lines.append("min-max surplus Pi* (the IC + IR mechanism maximising the sum of Pi(h) over histories):")
            if tight.get("tight") is False:
                lines.append(
                    f"  NOT the largest at every history: at {tight['where']} another IC + IR mechanism reaches "
                    f"Pi = {tight['best']:.6g} ({tight['by']}); the budget answer above rests on its own LP and proof"
                )
            else:
                lines.append(f"  not certified to be the largest at every history: {tight.get('by', 'no diagnosis')}")
        sp = mm.space
        rows = range(sp.n_hist) if sp.n_hist <= 40 else list(range(21)) + [int(np.argmin(mm.surplus))]
        table = mm.surplus_frame().iloc[list(rows)].rename(columns={"where": "history / state", "surplus": "Pi*"})
        lines.append(to_text(table))
        if sp.n_hist > 40:
            lines.append(f"  ... {sp.n_hist} histories in all (the last row is the smallest)")
    if mm.fees:
        lines.append("")
        lines.append("fees on top of the static discrete VCG (Lamba 2022, section 6.1), paid each period:")
        lines.append(to_text(mm.fees_frame().reset_index()))
    shown = feas if feas.status == "optimal" else mm
    if shown.certificate is not None:
        lines.append("")
        lines.append(f"independent verification of the {shown.question} mechanism:")
        lines.extend("  " + s for s in shown.certificate.summary().splitlines())
    if feas.exact_check is not None:
        lines.append("")
        lines.append("exact re-check of a mechanism built with margin (every row holds in rationals):")
        text = feas.exact_check if isinstance(feas.exact_check, str) else feas.exact_check.summary()
        lines.extend("  " + s for s in text.splitlines())
    if feas.status == "infeasible" and feas.certificate is not None:
        lines.append("")
        lines.append("impossibility certificate (Farkas multipliers):")
        lines.extend("  " + s for s in feas.certificate.summary().splitlines())
    return "\n".join(lines)


def _critical(args: argparse.Namespace, env, method: str) -> int:
    """Scan and bisect the discount factor (:func:`mechlp.solve.critical.critical_delta`)."""
    if args.budget not in CRITICAL_BUDGETS:
        raise ValueError(f"--budget must be one of {', '.join(CRITICAL_BUDGETS)} for the critical discount factor")
    if method not in CRITICAL_METHODS:
        raise ValueError(
            f"--method {method} does not apply to the critical discount factor; "
            f"use one of {', '.join(CRITICAL_METHODS)}"
        )
    parameter = getattr(args, "parameter", "delta")
    model = env
    if parameter not in DISCOUNT_NAMES:
        sets = list(args.set or [])

        def model(value: float):
            return load_model(args.model, [*sets, f"{parameter}={value!r}"])

    crit = critical_delta(
        model,
        args.budget,
        args.lo,
        args.hi,
        args.tol,
        method,
        args.grid,
        horizon=args.horizon,
        tail=args.tail,
        ic=args.ic,
        outside_option=args.outside_option,
        backend=args.backend,
        memory_limit=args.memory_limit,
        lp_scan=getattr(args, "lp_scan", "confirm"),
        parameter=parameter,
        ir=args.ir,
    )
    print(f"model {env.name}: {env!r}")
    print(crit.report())
    if args.json:
        save_json(args.json, {"schema_version": SCHEMA_VERSION, "model": env.name, "critical_delta": crit.to_dict()})
    return 1 if crit.status == "refused" else 0


def _cmd_critical_delta(args: argparse.Namespace) -> int:
    return _critical(args, load_model(args.model, args.set or []), args.method)


def _cmd_solve(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    budget = args.budget
    if args.critical_delta and args.critical is not None:
        raise ValueError("give --critical-delta or --critical KEY, not both (--critical delta is --critical-delta)")
    if args.critical is not None:  # `mechlp critical-delta --parameter KEY`
        args.parameter = args.critical
    if args.critical_delta or args.critical is not None:  # as `mechlp critical-delta` (default solver: recursion)
        return _critical(args, env, args.method or "recursion")
    if args.tail and args.horizon is None:
        raise ValueError("--tail needs --horizon T (history-dependent for T periods, then a Markov tail)")
    question = {
        "ic": args.ic,
        "ir": args.ir,
        "outside_option": args.outside_option,
        "limits": args.limits,
        "backend": args.backend,
        "memory_limit": args.memory_limit,
        "horizon": args.horizon,
        "tail": args.tail,
    }
    started = time.perf_counter()
    mm = design.minmax(
        env, method=args.method or "auto", time_limit=args.time_limit, progress=args.progress, **question
    )
    question.pop("horizon")
    question.pop("tail")
    left = None if args.time_limit is None else max(1e-3, args.time_limit - (time.perf_counter() - started))
    # a certificate file carries a mechanism that passes an exact re-check (built with margin), when one exists
    exact = args.exact or bool(args.certificate)
    feas = design.feasibility(
        env,
        budget,
        space=mm.space,
        minmax_result=mm,
        certify=args.certify,
        exact=exact,
        route=args.route,
        time_limit=left,
        progress=args.progress,
        **question,
    )
    payload = solve_payload(args.budget, feas, mm)
    print(_report(payload, feas, mm))
    save_json(args.json, payload)
    if args.certificate and payload["status"] not in ("feasible", "infeasible"):
        print(f"no certificate written: the answer is {payload['status']}, which no proof backs")
    elif args.certificate:
        doc = certificate_payload(feas, exact=True)
        write_certificate(args.certificate, doc)
        if doc["kind"] == "mechanism" and not doc["exact"]:
            print(f"the certificate is float-only (no exactly feasible mechanism: {feas.exact_check})")
        print(f"wrote certificate {args.certificate} (re-check: {recheck_command(args, feas)})")
    return exit_code(payload["status"])  # feasible / infeasible (each proved) 0; any other status 3


#: ``mechlp check`` pins the question it checks, with ``solve``'s defaults (a file answering another is refused).
CHECK_QUESTION = ("budget", "ic", "ir", "outside_option", "limits")


def _cmd_check(args: argparse.Namespace) -> int:
    env = load_model(args.model, args.set or [])
    asked = Question.parse(env, **{name: getattr(args, name) for name in CHECK_QUESTION})
    ok, report = check_certificate(
        env, args.certificate, exact=args.exact, question=asked, horizon=args.horizon, memory_limit=args.memory_limit
    )
    print(report)
    print("certificate HOLDS" if ok else "certificate does NOT hold")
    return OK if ok else CERTIFICATE_FAILS


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="TOML model file")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a model entry, e.g. --set discount=0.8 --set persistence=0.9",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mechlp",
        description="Dynamic mechanism design with linear programming.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--verbose", action="store_true", default=False, help="show the LP solvers' own logs (HiGHS, cvxpy) on stdout"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "solve", help="min-max surplus, fees and feasibility of the model's allocation")
    _model_arguments(p)
    add_options(p, SOLVE_FUNCTIONS, [n for n in SOLVE_OPTIONS if n != "method"])
    p.add_argument(
        "--method",
        choices=list(design.METHODS),
        default=None,
        help="min-max solver: auto (default for solve, as mechlp.minmax: the recursion when certified tight, else "
        "the LP), lp, or recursion (default for --critical-delta, as mechlp.critical_delta, which takes recursion "
        "or lp)",
    )
    p.add_argument("--json", metavar="FILE", help="write the answer as JSON")
    p.add_argument("--certificate", metavar="FILE", help="write a certificate file (mechanism or Farkas multipliers)")
    p.add_argument(
        "--critical-delta",
        action="store_true",
        help="instead: scan and bisect the discount factor where the --budget notion becomes (in)feasible "
        "(the same as `mechlp critical-delta`)",
    )
    p.add_argument(
        "--critical",
        metavar="KEY",
        help="instead: scan and bisect any --set key of the model (e.g. persistence) where the --budget notion "
        "becomes (in)feasible (the same as `mechlp critical-delta --parameter KEY`)",
    )
    add_options(p, (critical_delta,), SCAN_OPTIONS)
    p.set_defaults(func=_cmd_solve)
    cd = add_command(
        sub,
        "critical-delta",
        help="the discount factors where a budget notion becomes (in)feasible: grid scan, then bisection",
    )
    _model_arguments(cd)
    add_options(
        cd,
        (critical_delta,),
        CRITICAL_OPTIONS,
        allowed={"budget": CRITICAL_BUDGETS},
        specs={
            "method": OptionSpec(
                "how the criterion is evaluated: recursion (Lamba 2022, Lemma 6), lp (verified min-max LPs), or team "
                "(the participation slack of Athey and Segal's bonded balanced team mechanism, a sufficient condition)",
                choices=("auto", *CRITICAL_METHODS),  # auto: refused with the reason by _critical
            ),
            "parameter": OptionSpec(
                "what is varied: delta (the discount factor), or any --set key of the model file, e.g. persistence "
                "(Lamba 2022, Corollary 3); the model is rebuilt at every value"
            ),
        },
    )
    cd.add_argument("--json", metavar="FILE", help="write the answer as JSON")
    cd.set_defaults(func=_cmd_critical_delta)
    c = add_command(sub, "check", help="re-check a certificate file against a model, without re-solving")
    c.add_argument("model", help="TOML model file")
    c.add_argument("certificate", help="certificate JSON (from `mechlp solve --certificate`, or written by hand)")
    add_options(
        c,
        (check_certificate,),
        ("exact", "horizon", "memory_limit"),
        help={
            "exact": "re-check in exact rational arithmetic as well",
            "horizon": "check a certificate about the T-period history tree, a truncation of a longer or infinite "
            "model (as written by solve --horizon T); without it the certificate must be about the model's own game",
        },
    )
    add_options(
        c,
        SOLVE_FUNCTIONS,
        CHECK_QUESTION,
        help={"budget": "the budget notion the certificate must answer (default as for solve)"},
    )
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="model overrides, as for solve")
    c.set_defaults(func=_cmd_check)
    for module in _SUBCOMMAND_MODULES:  # commands that live in their own modules
        module.add_parsers(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (an OSError names its file)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings reach the user as one line each, ``mechlp: warning: ...`` (not Python's two-line form with the
    library's source file)."""
    print(f"mechlp: warning: {_one_line(message)}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_solver_log(bool(getattr(args, "verbose", False)))
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the command; every exception becomes one line on stderr and an exit code (module docstring)."""
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stderr.close()
        return OK
    except KeyboardInterrupt:
        print("mechlp: interrupted", file=sys.stderr)
        return INTERRUPTED
    except SolverFailure as exc:  # the input was fine; no answer (exit 3)
        print(f"mechlp: no answer: {_one_line(exc)}", file=sys.stderr)
        return exit_code("error")
    except (ValueError, TypeError, OSError, MemoryError, OverflowError) as exc:
        print(f"mechlp: error: {_one_line(exc)}", file=sys.stderr)
        return BAD_INPUT
    except RecursionError:
        print("mechlp: error: the input is nested too deeply", file=sys.stderr)
        return BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the CLI prints one line for any input, never a traceback
        print(f"mechlp: internal error ({type(exc).__name__}): {_one_line(exc)} -- please report it", file=sys.stderr)
        return INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

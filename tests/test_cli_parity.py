"""CLI parity by introspection: every option of a Python question is on its command, same name and default."""

from __future__ import annotations

import argparse
import inspect

import pytest

from mechlp.audit.certfile import check_certificate
from mechlp.cli.main import build_parser
from mechlp.constructions.fees import critical_discount, lump_sum_fees
from mechlp.constructions.groves import groves
from mechlp.constructions.participation import bonded_team
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.constructions.team import balanced_team
from mechlp.solve.critical import critical_delta
from mechlp.solve.questions import feasibility, minmax
from mechlp.solve.ranges import transfer_ranges
from mechlp.solve.second_best import second_best
from mechlp.workflows.sharing import compare_sharing, share_surplus
from mechlp.workflows.sweep import sweep

#: Parameters that cannot be command-line options, each with its reason.
NOT_ON_THE_CLI = {
    "env": "the positional MODEL (a TOML file or a built-in model)",
    "model": "the positional MODEL",
    "source": "the positional MODEL (share solves the min-max problem itself)",
    "env_factory": "the positional MODEL with --set/--param: the discount factor is varied by the scan",
    "space": "a Python object; the CLI builds it from --horizon and --tail",
    "minmax_result": "a Python object (solve reuses its own min-max result)",
    "base": "a Python object (a mechanism to share from)",
    "pivot": "a Python object (fees builds the pivot itself)",
    "feasible": "a per-agent array of feasible actions; built-in models carry it in their metadata",
    "doc": "the positional CERTIFICATE file",
}

#: command -> (the Python functions it mirrors, parameters of theirs it does not expose: reason).
COMMANDS = {
    "solve": (
        (minmax, feasibility),
        {"method": "default depends on --critical-delta: auto (as minmax) or recursion (as critical_delta)"},
    ),
    "critical-delta": ((critical_delta,), {}),
    "check": (
        (check_certificate,),
        {"question": "a Question object: check builds it from --budget --ic --ir --outside-option --limit"},
    ),
    "second-best": ((second_best,), {}),
    "share": (
        (share_surplus, compare_sharing),
        {"rules": "--compare R1,R2 (also --rules): absent means one rule (--rule), given it lists the rules compared"},
    ),
    "pivot": ((dynamic_pivot,), {}),
    "fees": ((lump_sum_fees, critical_discount), {}),
    "team": (
        (balanced_team, bonded_team),
        {"bond": "default None (no bond: balanced_team); --bond history|paper runs bonded_team with that bond"},
    ),
    "sweep": ((sweep,), {}),
    "transfer-ranges": ((transfer_ranges,), {}),
    "groves": ((groves,), {"h": "only the named terms zero and clarke; an array term is a Python object"}),
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    out: dict[str, argparse.Action] = {}
    for a in parser._actions:
        if a.option_strings and a.dest not in out:
            out[a.dest] = a
    return out


def _python_options(functions) -> dict[str, object]:
    found: dict[str, object] = {}
    for fn in functions:
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name in NOT_ON_THE_CLI:
                continue
            found.setdefault(name, p.default)
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_python_option_is_on_the_command_with_the_same_default(command):
    functions, exceptions = COMMANDS[command]
    cli = _options(_subparsers()[command])
    missing, wrong = [], []
    for name, default in _python_options(functions).items():
        if name in exceptions:
            continue
        action = cli.get(name)
        if action is None:
            missing.append(name)
        elif default is not inspect.Parameter.empty and action.default != default:
            wrong.append(f"{name}: python {default!r}, cli {action.default!r}")
    assert not missing, f"mechlp {command} lacks options {missing}"
    assert not wrong, f"mechlp {command} defaults differ: {wrong}"


def test_flags_are_the_parameter_names():
    for command, (functions, _) in COMMANDS.items():
        cli = _options(_subparsers()[command])
        for name in _python_options(functions):
            action = cli.get(name)
            if action is None:
                continue
            flags = {s.lstrip("-") for s in action.option_strings}
            spelled = name.replace("_", "-")
            assert flags & {spelled, "no-" + spelled, name.rstrip("s").replace("_", "-")}, (command, name, flags)


def test_help_shows_defaults():
    text = _subparsers()["solve"].format_help()
    assert "(default: bayesian)" in text and "(default: interim)" in text and "(default: highs)" in text
    assert "(default: 8589934592)" in text
    assert "(default: 41)" in _subparsers()["critical-delta"].format_help()


def test_both_spellings_are_read_and_the_written_one_is_stored():
    sub = _subparsers()
    for spelling in ("ex-post", "ex_post"):
        args = sub["solve"].parse_args(["m.toml", "--budget", spelling, "--ir", "ex-ante"])
        assert (args.budget, args.ir) == ("ex_post", "ex_ante")
    args = sub["share"].parse_args(["m.toml", "--budget", "ex-post", "--limit", "buyer=-1:", "--limit", "seller=:2"])
    assert args.budget == "ex_post" and args.limits == {"buyer": (-1.0, None), "seller": (None, 2.0)}
    args = sub["solve"].parse_args(["m.toml", "--outside-option", "buyer=0.1:0.2,seller=0", "--memory-limit", "2GiB"])
    assert args.outside_option == {"buyer": [0.1, 0.2], "seller": 0.0} and args.memory_limit == 2 * 2**30


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["solve", "m.toml", "--budget", "weekly"], "--budget must be one of"),
        (["share", "m.toml", "--budget", "ex_ante"], "--budget must be one of 'interim', 'ex_post' here"),
        (["solve", "m.toml", "--outside-option", "buyer=x"], "values must be numbers"),
        (["solve", "m.toml", "--limit", "buyer"], "--limit must look like NAME=LO:HI"),
        (["solve", "m.toml", "--memory-limit", "8 parsecs"], "--memory-limit must be bytes"),
        (["second-best", "m.toml", "--ic", "local"], "--ic must be one of 'bayesian', 'ex_post' here"),
    ],
)
def test_bad_option_values_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

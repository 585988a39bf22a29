"""Command-line options generated from the Python questions' signatures and the question spec.

Every option that mirrors a Python parameter is added by :func:`add_options`: the flag is the parameter's name
with ``-`` for ``_`` (``outside_option`` -> ``--outside-option``), the destination is the parameter's name, and
the default is read from the function's signature, so ``mechlp solve --help`` and ``help(mechlp.minmax)`` cannot
disagree (``tests/test_cli_parity.py`` checks every command by introspection). Notions are parsed by
:func:`mechlp.model.question.parse_notion`, so ``--budget ex-post`` and ``--budget ex_post`` both work; outputs
use the written spelling ``ex_post``.

Value syntax on the command line
--------------------------------
``--outside-option``
    ``0.1`` (everyone), ``buyer=0.1,seller=0`` (per agent) or ``buyer=0.1:0.2`` (per agent and type, in the
    model's type order).
``--limit``
    ``NAME=LO:HI``, repeatable; a side may be empty (``seller=:0.5``).
``--memory-limit``
    Bytes, or a number with ``KiB``, ``MiB``, ``GiB`` (``8GiB``).
``--tail`` (``mechlp second-best``)
    Bare ``--tail`` or ``--tail on`` (with ``--horizon T``: history dependent for ``T`` periods, then a Markov
    tail, as ``tail=True``), ``--tail auto`` (search the depth, ``tail="auto"``), ``--tail off``
    (``tail=False``); absent: Python's default ``tail=None``. On the other commands ``--tail`` is an on/off flag.
"""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mechlp.backends.base import BACKENDS
from mechlp.catalog.io import toml_value
from mechlp.model.answer import write_json
from mechlp.model.question import DEFAULTS as NOTION_DEFAULTS
from mechlp.model.question import NOTIONS, Question, notion_names, parse_notion
from mechlp.solve.critical import LP_SCANS

__all__ = [
    "QUESTION_OPTIONS",
    "SCAN_OPTIONS",
    "Formatter",
    "OptionSpec",
    "add_command",
    "add_options",
    "parse_outside_option",
    "parse_limit",
    "parse_bytes",
    "parse_tail",
    "signature_default",
    "parse_assignments",
    "save_json",
]

#: The parameters every LP question exposes on the command line (``mechlp solve`` for
#: :func:`mechlp.solve.questions.minmax` / ``feasibility``, ``mechlp second-best``), in ``--help`` order.
QUESTION_OPTIONS = (
    "budget",
    "horizon",
    "tail",
    "ic",
    "ir",
    "outside_option",
    "limits",
    "backend",
    "memory_limit",
)
#: The discount-factor scan of ``mechlp critical-delta`` and ``mechlp fees --critical-delta``.
SCAN_OPTIONS = ("lo", "hi", "tol", "grid")


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, except for on/off flags (their default is the flag's absence)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0:  # store_true / store_false
            return action.help
        return super()._get_help_string(action)


def add_command(subparsers: argparse._SubParsersAction, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` shows defaults (:class:`Formatter`)."""
    return subparsers.add_parser(name, formatter_class=Formatter, **kwargs)


# ---------------------------------------------------------------------------------------------- value parsers
def parse_outside_option(text: str) -> float | dict[str, float | list[float]]:
    """``"0.1"`` -> 0.1; ``"buyer=0.1,seller=0"`` -> a mapping; ``"buyer=0.1:0.2"`` -> per type."""
    text = text.strip()
    if "=" not in text:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--outside-option must be a number, NAME=VALUE,... or NAME=V1:V2:...; got {text!r}"
            ) from None
    out: dict[str, float | list[float]] = {}
    for part in text.split(","):
        name, _, raw = part.partition("=")
        name = name.strip()
        if not name or not raw.strip():
            raise argparse.ArgumentTypeError(f"--outside-option entry {part!r} must look like NAME=VALUE")
        try:
            vals = [float(v) for v in raw.split(":")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"--outside-option entry {part!r}: values must be numbers") from None
        if name in out:
            raise argparse.ArgumentTypeError(f"--outside-option names agent {name!r} twice")
        out[name] = vals[0] if len(vals) == 1 else vals
    return out


def parse_limit(text: str) -> tuple[str, tuple[float | None, float | None]]:
    """``"buyer=-1:2"`` -> ``("buyer", (-1.0, 2.0))``; an empty side is open (``None``)."""
    name, sep, rng = text.partition("=")
    lo_txt, colon, hi_txt = rng.partition(":")
    if not sep or not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"--limit must look like NAME=LO:HI (a side may be empty), got {text!r}")
    try:
        lo = float(lo_txt) if lo_txt.strip() else None
        hi = float(hi_txt) if hi_txt.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"--limit {text!r}: bounds must be numbers") from None
    return name.strip(), (lo, hi)


_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """``"8GiB"`` -> 8589934592; plain integers are bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]iB|B)?\s*", text, flags=re.IGNORECASE)
    if m is None or (m.group(2) or "").lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"--memory-limit must be bytes or a number with KiB/MiB/GiB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


#: ``--tail`` words of ``mechlp second-best`` and the Python values they stand for.
TAIL_WORDS = {"auto": "auto", "on": True, "off": False}


def parse_tail(text: str) -> bool | str:
    """``"auto"`` -> ``"auto"``, ``"on"`` -> True, ``"off"`` -> False (the ``tail`` of
    :func:`mechlp.solve.second_best.second_best`)."""
    word = text.strip().lower()
    if word not in TAIL_WORDS:
        words = ", ".join(TAIL_WORDS)
        raise argparse.ArgumentTypeError(f"--tail must be one of {words} (or bare --tail), got {text!r}")
    return TAIL_WORDS[word]


def parse_assignments(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["alpha=0.9", "rule=maxmin"]`` -> ``{"alpha": 0.9, "rule": "maxmin"}``: repeated ``flag KEY=VALUE``
    arguments, each value read by :func:`mechlp.catalog.io.toml_value` (TOML, or the bare text).

    Raises
    ------
    ValueError
        For an item without ``=`` or a key that is not a parameter name (the message names ``flag`` and the item's
        position, from 1).
    """
    out: dict[str, Any] = {}
    for j, item in enumerate(items or []):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{flag} #{j + 1} must have the form key=value, got {item!r}")
        if not key.isidentifier():
            raise ValueError(f"{flag} #{j + 1}: {key!r} is not a parameter name")
        out[key] = toml_value(raw)
    return out


def save_json(path: str | None, payload: Any) -> None:
    """Write a command's JSON answer to ``path`` (:func:`mechlp.model.answer.write_json`) and say so; no path, no
    file."""
    if path:
        write_json(path, payload)
        print(f"\nwrote {path}")


class _Limits(argparse.Action):
    """Collect repeated ``--limit NAME=LO:HI`` into ``{name: (lo, hi)}``."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: D102
        name, pair = values
        current = dict(getattr(namespace, self.dest) or {})
        if name in current:
            parser.error(f"--limit names agent {name!r} twice")
        current[name] = pair
        setattr(namespace, self.dest, current)


def _notion(family: str, allowed: Sequence[str] | None, flag: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        try:
            return parse_notion(family, text, allowed=allowed, argument=flag)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = family  # argparse names the type in its messages
    return convert


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class OptionSpec:
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    metavar: str | None = None
    flag: str | None = None  # default: --name-with-dashes
    notion: str | None = None  # family of a notion option
    nargs: str | None = None  # "?": the value may be left out, then ``const`` is stored
    const: Any = None


def _notion_help(family: str, names: Sequence[str] | None = None) -> str:
    """``name: meaning`` of each notion of ``family`` (those in ``names`` when given)."""
    return "; ".join(f"{n.name}: {n.meaning}" for n in NOTIONS[family].values() if names is None or n.name in names)


#: The heading of a notion option's help; the notions it accepts are listed after it (only the allowed ones).
_NOTION_HEADINGS = {"ic": "incentive compatibility", "ir": "participation", "budget": "budget balance"}

SPECS: dict[str, OptionSpec] = {
    "ic": OptionSpec(_NOTION_HEADINGS["ic"], notion="ic"),
    "ir": OptionSpec(_NOTION_HEADINGS["ir"], notion="ir"),
    "budget": OptionSpec(_NOTION_HEADINGS["budget"], notion="budget"),
    "mode": OptionSpec("budget notion of the fees: ex_ante (one fee per agent) or interim (per type)", notion="budget"),
    "outside_option": OptionSpec(
        "reservation utilities: a number, NAME=VALUE,... per agent, or NAME=V1:V2:... per type",
        type=parse_outside_option,
        metavar="O",
    ),
    "limits": OptionSpec(
        "bounds on an agent's payments NAME=LO:HI (repeat per agent; a side may be empty)",
        type=parse_limit,
        metavar="NAME=LO:HI",
        flag="--limit",
    ),
    "horizon": OptionSpec("solve on a history tree of this many periods", type=int, metavar="T"),
    "tail": OptionSpec("with --horizon T: history dependent for T periods, then a stationary Markov tail"),
    "backend": OptionSpec("LP backend", choices=BACKENDS),
    "memory_limit": OptionSpec("refuse problems predicted to need more memory (bytes, or e.g. 8GiB)", type=parse_bytes),
    "method": OptionSpec(
        "min-max solver: auto (the recursion when certified tight, else the LP), one LP, or the backward recursion "
        "(Lamba 2022, Lemma 6)",
        choices=("auto", "lp", "recursion"),
    ),
    "lp_scan": OptionSpec(
        "with --method lp: confirm (the recursion scans, verified LPs confirm both ends of every bracket) or full "
        "(an LP at every point)",
        choices=LP_SCANS,
    ),
    "certify": OptionSpec("compute and verify a Farkas certificate for an infeasible answer"),
    "time_limit": OptionSpec(
        "seconds for the whole answer: every LP gets the time left; running out gives the status time_limit "
        "(exit code 3, no proof either way)",
        type=float,
        metavar="SECONDS",
    ),
    "progress": OptionSpec("report each phase (min-max, certificate, LP, verification) on stderr as it starts"),
    "route": OptionSpec(
        "feasibility: auto (from the min-max structure where it applies, else the LP) or lp (always the LP)",
        choices=("auto", "lp"),
    ),
    "exact": OptionSpec("also build and re-check an exactly feasible mechanism (rational arithmetic)"),
    "check": OptionSpec("run the independent verifier"),
    "lo": OptionSpec("lower end of the discount-factor scan", type=float),
    "hi": OptionSpec("upper end of the discount-factor scan", type=float),
    "tol": OptionSpec("bracket width of the bisection", type=float),
    "grid": OptionSpec("grid points of the scan before bisection", type=int),
}


def signature_default(functions: Sequence[Callable], name: str) -> Any:
    """The default of parameter ``name`` in the first of ``functions`` that has it (``inspect.Parameter.empty``
    when it is required)."""
    for fn in functions:
        params = inspect.signature(fn).parameters
        if name in params:
            return params[name].default
    raise ValueError(f"none of {[f.__name__ for f in functions]} has a parameter {name!r}")


def add_options(
    parser: argparse.ArgumentParser,
    functions: Sequence[Callable],
    names: Sequence[str],
    *,
    specs: Mapping[str, OptionSpec] | None = None,
    allowed: Mapping[str, Sequence[str]] | None = None,
    help: Mapping[str, str] | None = None,
) -> None:
    """Add one option per Python parameter in ``names``, its default read from ``functions``' signatures.

    Booleans become flags: ``--name`` when the default is False, ``--no-name`` when it is True. ``specs``
    extends the built-in table (help, converter, choices); ``allowed`` restricts a notion option to the notions
    the function supports; ``help`` replaces help texts.
    """
    table = {**SPECS, **(specs or {})}
    allowed = allowed or {}
    for name in names:
        spec = table.get(name)
        if spec is None:
            raise ValueError(f"no command-line spec for parameter {name!r}")
        default = signature_default(functions, name)
        required = default is inspect.Parameter.empty
        flag = spec.flag or "--" + name.replace("_", "-")
        text = (help or {}).get(name, spec.help)
        if isinstance(default, bool):
            if default:
                parser.add_argument(
                    "--no-" + flag[2:], dest=name, action="store_false", default=True, help="do not: " + text
                )
            else:
                parser.add_argument(flag, dest=name, action="store_true", default=False, help=text)
            continue
        kwargs: dict[str, Any] = {"dest": name, "help": text}
        if not required:
            kwargs["default"] = default
        else:
            kwargs["required"] = True
        if spec.notion is not None:
            choices = tuple(allowed.get(name) or notion_names(spec.notion))
            kwargs["type"] = _notion(spec.notion, choices, flag)
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
            if name in _NOTION_HEADINGS and name not in (help or {}):
                kwargs["help"] = f"{text}: {_notion_help(spec.notion, choices)}"
        else:
            if spec.type is not None:
                kwargs["type"] = spec.type
            if spec.choices is not None:
                kwargs["choices"] = tuple(allowed.get(name) or spec.choices)
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
            if spec.nargs is not None:
                kwargs["nargs"] = spec.nargs
                kwargs["const"] = spec.const
        if name == "limits":
            kwargs["action"] = _Limits
        parser.add_argument(flag, **kwargs)


def question_flags(q: Question | None) -> list[str]:
    """The ``mechlp check`` arguments that pin question ``q`` (those that differ from solve's defaults)."""
    if q is None:
        return []
    out = []
    for f in ("budget", "ic", "ir"):
        if getattr(q, f) != NOTION_DEFAULTS[f]:
            out += [f"--{f}", getattr(q, f)]
    oo = q.outside_option
    if oo != 0.0:
        text = f"{oo!r}" if isinstance(oo, float) else ",".join(f"{k}=" + ":".join(map(repr, v)) for k, v in oo.items())
        out.append(f"--outside-option={text}")
    for name, (lo, hi) in (q.limits or {}).items():
        out.append(f"--limit={name}={'' if lo is None else repr(lo)}:{'' if hi is None else repr(hi)}")
    return out


def recheck_command(args: argparse.Namespace, feas: Any) -> str:
    """The ``mechlp check`` command that re-checks the certificate ``solve`` or ``second-best`` wrote (``feas``: the
    result, read by its ``question_spec``, ``space`` and ``env``), quoted for a POSIX shell."""
    argv = ["mechlp", "check", args.model, args.certificate]
    argv += [f"--set={kv}" for kv in args.set or []]
    argv += question_flags(feas.question_spec)
    sp, env = feas.space, feas.env
    if sp.kind == "tree" and (env.infinite or sp.horizon != env.horizon):  # a truncation: pin it
        argv += ["--horizon", str(sp.horizon)]
    return shlex.join(argv)

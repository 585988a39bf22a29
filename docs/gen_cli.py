"""Write docs/cli.md from the live ``--help`` output of every ``mechlp`` command.

    python docs/gen_cli.py          # rewrite docs/cli.md
    python docs/gen_cli.py --check  # exit 1 when docs/cli.md is out of date

``tests/test_sweep.py`` compares docs/cli.md with :func:`render`, so the reference cannot drift from the code.
Help text is rendered at a fixed width of 100 columns.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mechlp.cli.main import build_parser

WIDTH = "100"
HERE = Path(__file__).resolve().parent

INTRO = """# mechlp command-line reference

Generated from the live `--help` output by `python docs/gen_cli.py` (a test checks that this file is up to
date). The user guide (`docs/user_guide.md`) explains the questions, model files and sweeps with examples.

Every command reads a TOML model file (schema in `docs/user_guide.md` and `mechlp/catalog/io.py`); `pivot` and
`fees` also take a built-in model name, `sweep` too. Options that mirror a Python parameter are generated from
its signature (`mechlp/cli/options.py`): same name with `-` for `_`, same default (shown below); notions are read
as `ex_post` or `ex-post` and written `ex_post`. Exit codes: 0 answered (feasible or infeasible), 1 a certificate
or sharing does not hold (`check`, `share`), 2 bad input, 3 solver failure or failed verification.
"""


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help().rstrip() + "\n"
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def render() -> str:
    """The Markdown text of docs/cli.md."""
    parser = build_parser()
    parts = [INTRO, "## mechlp\n", "```\n" + _help(parser) + "```\n"]
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        parts += [f"## mechlp {name}\n", "```\n" + _help(sub) + "```\n"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description="write docs/cli.md").parse_known_args(argv)[1]
    target = HERE / "cli.md"
    text = render()
    if "--check" in args:
        ok = target.exists() and target.read_text(encoding="utf-8") == text
        print("docs/cli.md is up to date" if ok else "docs/cli.md is out of date: run python docs/gen_cli.py")
        return 0 if ok else 1
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

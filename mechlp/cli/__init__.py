"""The ``mechlp`` command line: one module per group of subcommands, wired by :mod:`mechlp.cli.main`."""

from mechlp.cli.main import main

__all__ = ["main"]

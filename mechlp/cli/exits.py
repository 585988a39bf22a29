"""Exit codes of every ``mechlp`` command: one table (:data:`EXIT_CODES`), shown in ``mechlp --help``'s epilog
and in ``docs/exit_codes.md``, and tested for every subcommand by ``tests/test_exit_codes.py``.

The rule: **0 for any answer**, yes or no. "The allocation is infeasible under ex post budget balance" (with its
verified Farkas certificate), "the fee condition fails", "no budget-balanced sharing exists", "the pivot is not
IR against the outside option 0" are economic answers and exit 0; the JSON ``status`` says which answer it is.
Non-zero codes are for what is not an answer: bad input (2), a certificate file that does not hold (1), and an
answer that could not be produced or proved (3: the solver failed or hit its time limit, a mechanism failed the
independent verification, or a status that no verified proof backs).

:func:`exit_code` maps a result's ``status`` (:data:`mechlp.model.answer.STATUSES`) to its code, so every
command reads the same table; :class:`~mechlp.model.answer.SolverFailure`, raised by a computation whose solver
gave no answer, exits 3 (not 2: the input was fine).
"""

from __future__ import annotations

import textwrap

from mechlp.model.answer import STATUSES, SolverFailure

__all__ = [
    "OK",
    "CERTIFICATE_FAILS",
    "BAD_INPUT",
    "NOT_ANSWERED",
    "INTERNAL",
    "INTERRUPTED",
    "EXIT_CODES",
    "STATUS_EXIT",
    "SolverFailure",
    "STATUSES",
    "exit_code",
    "epilog",
]

OK = 0
CERTIFICATE_FAILS = 1
BAD_INPUT = 2
NOT_ANSWERED = 3
INTERNAL = 4
INTERRUPTED = 130

#: ``(code, meaning)`` for every exit code of every command.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (
        OK,
        "an answer, yes or no: feasible or infeasible (each with its verified proof), a verified construction "
        "(whether or not it is IR against the outside option), a fee condition that holds or fails, a sharing "
        "rule that exists or not, a scan, a sweep whose every point was answered, a certificate that holds, a "
        "file written",
    ),
    (CERTIFICATE_FAILS, "mechlp check: the certificate file does not hold, or answers another question"),
    (BAD_INPUT, "bad input: a model, option or file that cannot be used (one line on stderr, never a traceback)"),
    (
        NOT_ANSWERED,
        "no answer: the solver failed or hit its time limit, a mechanism failed the independent verification, a "
        "status no verified proof backs (unverified, ill_conditioned), or a sweep point without an answer",
    ),
    (INTERNAL, "internal error (a bug: please report it)"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)

#: The exit code of every answer status (module :mod:`mechlp.model.answer`).
STATUS_EXIT: dict[str, int] = {
    "optimal": OK,
    "feasible": OK,
    "verified": OK,
    "bracketed": OK,
    "infeasible": OK,
    "not_verified": OK,  # the verifier was skipped on request (--no-check); the status says so
    "refused": OK,  # a construction's own condition fails, with the reason (e.g. the bonded team below its threshold)
    "unbounded": NOT_ANSWERED,
    "time_limit": NOT_ANSWERED,
    "unverified": NOT_ANSWERED,
    "not_proved": NOT_ANSWERED,  # a verified mechanism whose optimality has no exact proof
    "ill_conditioned": NOT_ANSWERED,
    "verification_failed": NOT_ANSWERED,
    "error": NOT_ANSWERED,
}


def exit_code(status: str) -> int:
    """The exit code of an answer with this ``status`` (:data:`STATUS_EXIT`).

    Raises
    ------
    ValueError
        For a string that is not an answer status.
    """
    if status not in STATUS_EXIT:
        raise ValueError(f"status must be one of {', '.join(STATUS_EXIT)}, got {status!r}")
    return STATUS_EXIT[status]


def epilog(width: int = 76) -> str:
    """The exit-code table as ``mechlp --help`` shows it (lines of at most ``width`` characters)."""
    lines = ["exit codes (every command; docs/exit_codes.md):"]
    for code, text in EXIT_CODES:
        lines += textwrap.wrap(text, width, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
    return "\n".join(lines)

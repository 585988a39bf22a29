"""Helpers shared by the fuzzers: a time budget (fail instead of hanging), the paths into a document, and the
clean-stderr rule of the command line."""

from __future__ import annotations

import contextlib
import signal


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in the code under test eats it."""


@contextlib.contextmanager
def time_budget(seconds: float, what: str):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def alarm(signum, frame):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Hang:
        raise AssertionError(f"{what}: no answer within {seconds} s (a hang)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def paths(node, prefix=()):
    """Every path (a tuple of keys and indices) into a nested dict / list document, the root's ``()`` first."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for j, v in enumerate(node):
            yield from paths(v, (*prefix, j))


def assert_clean_stderr(err: str, code: int) -> None:
    """No traceback; warnings one line each (``mechlp: warning: ...``); an error is exactly one line, last."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("mechlp: warning: ")]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("mechlp: error: "), err
    else:
        assert lines == [], err

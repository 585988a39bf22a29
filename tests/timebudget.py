"""A time budget for a block of test code: fail instead of hanging (used by the fuzzers)."""

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

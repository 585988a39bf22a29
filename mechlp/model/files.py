"""Reading user files safely: regular files only, bounded size, UTF-8 text, and bounded numbers.

Every file mechlp reads (model files, certificate files) and every exact number it parses from one goes through
here, so a FIFO, a device such as ``/dev/zero``, a directory, a huge file or a number string such as
``"1e999999999"`` is refused with one line naming the file instead of hanging or exhausting memory.
"""

from __future__ import annotations

import os
import re
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = ["MAX_FILE_BYTES", "MAX_NUMBER_CHARS", "MAX_EXPONENT", "read_text", "exact_number"]

#: Largest file read (bytes): a certificate of a 1.4 M-node tree is a few hundred MiB.
MAX_FILE_BYTES = 1 << 30
#: Longest number string accepted in a file (characters).
MAX_NUMBER_CHARS = 400
#: Largest decimal exponent accepted in a number string (``1e400`` is far beyond any float).
MAX_EXPONENT = 400

_EXPONENT = re.compile(r"[eE]([+-]?\d+)")


def read_text(path: str | os.PathLike, what: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``; ``what`` names it in errors (``"model file"``).

    Raises
    ------
    FileNotFoundError
        When nothing is at ``path``.
    ValueError
        For a directory, FIFO, device or other non-regular file, a file larger than ``max_bytes``, or text that
        is not UTF-8.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a pipe, device or socket"
        raise ValueError(f"{path}: not a file ({kind}), so not a {what}")
    if st.st_size > max_bytes:
        raise ValueError(f"{path}: the {what} has {st.st_size:,} bytes, more than the {max_bytes:,} read")
    with open(p, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: the {what} grew beyond {max_bytes:,} bytes while being read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text, so not a {what}: {exc}") from None


def exact_number(value: Any, where: str) -> Fraction:
    """A number written in a file (``"-19/20"``, ``"0.05"``, ``"1e-3"``, an int or a float) as an exact fraction.

    Raises
    ------
    ValueError
        For anything else, a string longer than ``MAX_NUMBER_CHARS`` or an exponent beyond ``MAX_EXPONENT``
        (which would build numbers of millions of digits), a boolean, NaN or infinity.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where}: not a number: {value!r}")
    text = str(value).strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"{where}: a number of {len(text)} characters (at most {MAX_NUMBER_CHARS} are read)")
    m = _EXPONENT.search(text)
    if m and abs(int(m.group(1))) > MAX_EXPONENT:
        raise ValueError(f"{where}: exponent {m.group(1)} is beyond +-{MAX_EXPONENT}: {text[:40]!r}")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ValueError(f"{where}: not a number: {text[:60]!r}") from None

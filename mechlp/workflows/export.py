"""Export tables and results: LaTeX and CSV tables (pandas), JSON results.

``to_latex`` is a small writer of its own (``booktabs`` rules, LaTeX special characters escaped), so it needs
neither jinja2 (which :meth:`pandas.DataFrame.to_latex` requires) nor any other template engine.
``result_to_dict`` / ``to_json`` turn a :class:`~mechlp.solve.result.Result` (or any answer of the result contract,
:mod:`mechlp.model.answer`), a sweep DataFrame, or any mapping with numpy values into plain JSON data; the JSON
itself is formatted by the one writer, :func:`mechlp.model.answer.dumps` / :func:`~mechlp.model.answer.write_json`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechlp.model.answer import Answer, dumps, jsonable, write_json
from mechlp.solve.result import Result

__all__ = ["to_latex", "to_csv", "to_json", "result_to_dict", "jsonable", "latex_escape"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _fmt_cell(value: Any, float_format: str | Callable[[float], str]) -> str:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(float(value))):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return float_format(float(value)) if callable(float_format) else format(float(value), float_format)
    return latex_escape(str(value))


def to_latex(
    df: pd.DataFrame,
    path: str | os.PathLike | None = None,
    *,
    columns: Sequence[str] | None = None,
    header: Mapping[str, str] | None = None,
    float_format: str | Callable[[float], str] = ".3f",
    caption: str | None = None,
    label: str | None = None,
    index: bool = False,
) -> str:
    r"""A LaTeX ``tabular`` (in a ``table`` float when ``caption`` or ``label`` is given), booktabs style.

    Parameters
    ----------
    df : DataFrame
    path : str or path, optional
        Also write the text here.
    columns : sequence of str, optional
        Columns to include, in order (default: all).
    header : mapping, optional
        Column name -> header text, inserted as LaTeX (not escaped, so ``$\Pi^*$`` works).
    float_format : str or callable
        Format spec (``".3f"``) or a function for float cells.
    caption, label : str, optional
    index : bool
        Include the index as the first column.

    Returns
    -------
    str
        The LaTeX text. Numbers are right-aligned, text left-aligned; booleans print as yes / no and missing
        values as empty cells. Needs ``\usepackage{booktabs}``.
    """
    cols = list(columns) if columns is not None else list(df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"to_latex: no column(s) {missing}; columns are {list(df.columns)}")
    heads = [header[c] if header and c in header else latex_escape(c) for c in cols]
    align = [
        "r" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) else "l" for c in cols
    ]
    if index:
        heads.insert(0, latex_escape(df.index.name or ""))
        align.insert(0, "l")
    lines = [f"\\begin{{tabular}}{{{''.join(align)}}}", "\\toprule", " & ".join(heads) + r" \\", "\\midrule"]
    for idx, row in zip(df.index, df[cols].to_dict("records"), strict=True):  # keeps each column's type
        cells = [_fmt_cell(row[c], float_format) for c in cols]
        if index:
            cells.insert(0, _fmt_cell(idx, float_format))
        lines.append(" & ".join(cells) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption or label:
        inner = ["\\begin{table}[htbp]", "\\centering", *lines]
        if caption:
            inner.append(f"\\caption{{{latex_escape(caption)}}}")
        if label:
            inner.append(f"\\label{{{label}}}")
        lines = [*inner, "\\end{table}"]
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def to_csv(df: pd.DataFrame, path: str | os.PathLike, *, columns: Sequence[str] | None = None) -> None:
    """Write ``df`` (or some of its columns) as CSV without the index; floats keep full precision.

    Parameters
    ----------
    df : pandas.DataFrame
        A table, e.g. a sweep (:func:`mechlp.workflows.sweep.sweep`).
    path : str or os.PathLike
        The file to write.
    columns : sequence of str, optional
        Write only these columns, in this order.

    Returns
    -------
    None
    """
    df.to_csv(path, columns=list(columns) if columns is not None else None, index=False)


def result_to_dict(result: Result) -> dict[str, Any]:
    """The answer of a :class:`~mechlp.solve.result.Result` as JSON data: :meth:`Result.to_dict` with the
    export's summary of the certificate under ``verification``.

    Keys: ``question``, ``status``, ``message``, ``options`` (limits and outside options as given), ``space``
    (``kind``, ``histories``, ...), ``surplus`` (``[{"history", "where", "value"}]``), ``fees``, ``diagnosis``,
    ``verification`` (``ok`` and the largest violation per family, or the certificate's checks), ``timings`` and
    ``size``; and every other key of the result contract (``schema_version``, ``kind``, ``transfers``,
    ``certificate``, ...; :mod:`mechlp.model.answer`).
    """
    if not isinstance(result, Result):
        raise TypeError(f"result_to_dict needs a mechlp Result, got {type(result).__name__}")
    out = result.to_dict()
    out.pop("verification")
    cert = result.certificate
    if cert is not None:
        ver: dict[str, Any] = {"ok": bool(cert.ok)}
        if hasattr(cert, "max_violation"):
            ver["max_violation"] = jsonable(cert.max_violation)
        if hasattr(cert, "checks"):
            ver["checks"] = jsonable(cert.checks)
        out["verification"] = ver
    return out


def to_json(obj: Any, path: str | os.PathLike | None = None, *, indent: int = 2) -> str:
    """JSON text of a Result (:func:`result_to_dict`), another answer (its ``to_dict``), a DataFrame (records,
    with ``attrs``) or plain data.

    Parameters
    ----------
    obj : Result, another answer, pandas.DataFrame or JSON-like data
        A result becomes its document (:meth:`mechlp.model.answer.Answer.to_dict`); a DataFrame becomes
        ``{"attrs": ..., "rows": [...]}``; numpy values become plain numbers and lists (NaN becomes ``null``).
    path : str or os.PathLike, optional
        Also write the text (plus a newline) to this file.
    indent : int
        Indentation of the JSON text. Default 2.

    Returns
    -------
    str
        The JSON text.
    """
    if isinstance(obj, Result):
        data: Any = result_to_dict(obj)
    elif isinstance(obj, pd.DataFrame):
        data = {"attrs": dict(obj.attrs), "rows": obj}
    elif isinstance(obj, Answer):
        data = obj.to_dict()
    else:
        data = obj
    return dumps(data, indent=indent) if path is None else write_json(path, data, indent=indent)

r"""Export tables and results: LaTeX, Markdown and CSV tables, JSON results.

Every answer (a :class:`~mechlp.solve.result.Result`, a critical-value scan, a sharing result or comparison, a fee
result, ...) and every sweep or boundary DataFrame becomes a table through :func:`table_frame`, which picks the
answer's labelled frame (``what=``: ``"surplus"`` for :math:`\Pi^*` per history, ``"transfers"``, ``"fees"``,
``"shares"``, ``"summary"``, ``"critical"``, ...; :data:`TABLES`). The numbers of every table are those of the
answer's JSON document (:meth:`mechlp.model.answer.Answer.to_dict`, :func:`to_json`): the frames are built from
the same arrays.

Printed numbers (:func:`to_latex`, :func:`to_markdown`) are rounded once, by one rule (:func:`column_format`):
:data:`SIGNIFICANT_DIGITS` significant digits relative to the largest magnitude of the column, so a column shares
its decimals, numerical noise far below the column's scale prints as zero, and no cell shows a negative zero;
trailing zeros common to the whole column are dropped. A column whose largest magnitude is below
``10**SCIENTIFIC_BELOW`` or at least ``10**SCIENTIFIC_FROM`` is printed in scientific notation, each value with
:data:`SIGNIFICANT_DIGITS` significant digits. :func:`to_csv` keeps full precision (the JSON's numbers).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechlp.constructions.fees import CriticalDiscount, FeeResult
from mechlp.model.answer import Answer, dumps, jsonable, write_json
from mechlp.solve.critical import CriticalDelta
from mechlp.solve.ranges import RangeResult
from mechlp.solve.result import Result
from mechlp.workflows.sharing import SharingComparison, SharingResult

__all__ = [
    "SIGNIFICANT_DIGITS",
    "SCIENTIFIC_BELOW",
    "SCIENTIFIC_FROM",
    "TABLES",
    "NumberFormat",
    "column_format",
    "table_frame",
    "to_latex",
    "to_markdown",
    "to_text",
    "to_csv",
    "to_json",
    "result_to_dict",
    "jsonable",
    "latex_escape",
]

#: Significant digits of every printed table (LaTeX, Markdown, the command line's tables, the HTML report):
#: chosen once, here (:func:`column_format`).
SIGNIFICANT_DIGITS = 6
#: Columns whose largest magnitude is below ``10**SCIENTIFIC_BELOW`` are printed in scientific notation.
SCIENTIFIC_BELOW = -3
#: Columns whose largest magnitude is at least ``10**SCIENTIFIC_FROM`` are printed in scientific notation.
SCIENTIFIC_FROM = 6

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


# ---------------------------------------------------------------------------------------------- numbers
@dataclass(frozen=True)
class NumberFormat:
    """How one column's numbers are printed (:func:`column_format`).

    Attributes
    ----------
    decimals : int or None
        Fixed decimals for every value of the column, or ``None`` for scientific notation.
    digits : int
        Significant digits (of the column's largest magnitude; of each value in scientific notation).
    """

    decimals: int | None
    digits: int

    def round(self, value: float) -> float:
        """``value`` rounded as it is printed (never a negative zero)."""
        v = float(value)
        if not math.isfinite(v):
            return v
        if self.decimals is None:
            return float(f"{v:.{self.digits - 1}e}") + 0.0
        return round(v, self.decimals) + 0.0  # + 0.0 turns -0.0 into 0.0

    def text(self, value: float, style: str = "text") -> str:
        """``value`` as printed: fixed decimals, or ``m e x`` (``$m \\times 10^{x}$`` in LaTeX)."""
        v = self.round(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            sign = "-" if v < 0 else ""
            return f"${sign}\\infty$" if style == "latex" else f"{sign}inf"
        if self.decimals is not None:
            return f"{v:.{self.decimals}f}"
        if v == 0.0:
            return "0"
        mant, exp = f"{v:.{self.digits - 1}e}".split("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        return f"${mant} \\times 10^{{{int(exp)}}}$" if style == "latex" else f"{mant}e{int(exp)}"


def _numbers(value: Any) -> list[float]:
    """The finite floats in a cell (a number, or a list / tuple / array of them, nested), booleans excluded."""
    if isinstance(value, bool | np.bool_) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        return [v] if math.isfinite(v) else []
    if isinstance(value, list | tuple | np.ndarray):
        return [v for item in value for v in _numbers(item)]
    return []


def column_format(values: Any, digits: int = SIGNIFICANT_DIGITS) -> NumberFormat:
    r"""The one rounding rule of printed tables, for one column.

    With :math:`m` the largest finite magnitude in the column (list cells included) and
    :math:`e = \lfloor \log_{10} m \rfloor`, every value is rounded to :math:`\max(d - 1 - e, 0)` decimals
    (``d = digits`` significant digits of the largest value), then the decimals are reduced while no value of the
    column changes (trailing zeros common to the column are dropped). When :math:`e <` ``SCIENTIFIC_BELOW`` or
    :math:`e \ge` ``SCIENTIFIC_FROM`` each value is printed in scientific notation with ``d`` significant digits.
    A column of zeros prints ``0``.

    Parameters
    ----------
    values : iterable
        The column's cells.
    digits : int
        Significant digits (default :data:`SIGNIFICANT_DIGITS`).

    Returns
    -------
    NumberFormat
    """
    if not isinstance(digits, int | np.integer) or isinstance(digits, bool) or digits < 1:
        raise ValueError(f"digits must be a positive integer, got {digits!r}")
    nums = [v for cell in values for v in _numbers(cell)]
    m = max((abs(v) for v in nums), default=0.0)
    if m == 0.0:
        return NumberFormat(0, int(digits))
    e = math.floor(math.log10(m))
    if e < SCIENTIFIC_BELOW or e >= SCIENTIFIC_FROM:
        return NumberFormat(None, int(digits))
    dec = max(int(digits) - 1 - e, 0)
    arr = np.asarray(nums, dtype=float)
    while dec > 0 and np.array_equal(np.round(arr, dec - 1), np.round(arr, dec)):
        dec -= 1
    return NumberFormat(dec, int(digits))


def _cell(value: Any, fmt: NumberFormat, style: str) -> str:
    """One cell as text: numbers by ``fmt``, booleans yes / no, missing values and empty lists empty, lists
    comma-separated (nested lists bracketed)."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return fmt.text(float(value), style)
    if isinstance(value, list | tuple | np.ndarray):
        if len(value) == 0:
            return ""
        inner = ", ".join(_cell(v, fmt, style) for v in value)
        return f"[{inner}]" if any(isinstance(v, list | tuple | np.ndarray) for v in value) else inner
    if isinstance(value, Mapping):
        return "; ".join(f"{_escape(str(k), style)}: {_cell(v, fmt, style)}" for k, v in value.items())
    return _escape(str(value), style)


def _escape(text: str, style: str) -> str:
    if style == "latex":
        return latex_escape(text)
    if style == "markdown":
        return text.replace("|", "\\|")
    return text


def _numeric_cell(value: Any) -> bool:
    """A number (not a boolean), or a list / tuple / array whose leaves are all numbers."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    if isinstance(value, list | tuple | np.ndarray):
        return all(_numeric_cell(v) for v in value)
    return False


def _is_number_column(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_numeric_dtype(col):
        return True
    cells = [c for c in col if c is not None and not (isinstance(c, float) and math.isnan(c))]
    return bool(cells) and all(_numeric_cell(c) for c in cells)


# ---------------------------------------------------------------------------------------------- tables
def _reset(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with a named index as its first column(s)."""
    names = [n for n in df.index.names if n is not None]
    return df.reset_index() if names else df


def _critical_frame(obj: Any) -> pd.DataFrame:
    scan = getattr(obj, "scan", obj)
    brackets = list(scan.brackets)
    return pd.DataFrame(
        {
            "direction": pd.Series(list(scan.directions), dtype=object),
            "critical": pd.Series([float(c) for c in scan.critical], dtype=float),
            "lower": pd.Series([float(a) for a, _ in brackets], dtype=float),
            "upper": pd.Series([float(b) for _, b in brackets], dtype=float),
        }
    )


def _scan_frame(obj: Any) -> pd.DataFrame:
    if isinstance(obj, CriticalDiscount):
        return pd.DataFrame({"delta": np.asarray(obj.grid, dtype=float), "slack": np.asarray(obj.slack, dtype=float)})
    return pd.DataFrame({obj.parameter: np.asarray(obj.scan.grid, dtype=float), "criterion": obj.scan.values})


def _answer_tables(obj: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    """The tables of an answer by name, the default first (:data:`TABLES`)."""
    if isinstance(obj, SharingComparison):
        return {"summary": obj.summary_frame, "shares": obj.shares_frame, "transfers": obj.payments_frame}
    if isinstance(obj, SharingResult):
        return {
            "shares": obj.shares_frame,
            "transfers": lambda: _reset(obj.transfers_frame()),
            "surplus": lambda: _reset(obj.surplus_frame()),
        }
    if isinstance(obj, CriticalDelta | CriticalDiscount):
        return {"critical": lambda: _critical_frame(obj), "scan": lambda: _scan_frame(obj)}
    if isinstance(obj, FeeResult):
        return {
            "fees": lambda: _reset(obj.fees_frame()),
            "surplus": lambda: _reset(obj.surplus_frame()),
            "transfers": lambda: _reset(obj.transfers_frame()),
        }
    if isinstance(obj, RangeResult):
        return {"ranges": obj.ranges_frame, "transfers": lambda: _reset(obj.transfers_frame())}
    if isinstance(obj, Answer):
        return {
            "surplus": lambda: _reset(obj.surplus_frame()),
            "transfers": lambda: _reset(obj.transfers_frame()),
            "fees": lambda: _reset(obj.fees_frame()),
        }
    raise TypeError(
        f"no table for a {type(obj).__name__}: pass a DataFrame (a sweep, a boundary) or an answer "
        "(Result, CriticalDelta, SharingResult, SharingComparison, FeeResult, ...)"
    )


#: The tables of each answer type (:func:`table_frame`'s ``what``), the default first; any other answer of the
#: result contract has ``surplus``, ``transfers`` and ``fees``; a DataFrame is its own table.
TABLES: dict[str, tuple[str, ...]] = {
    "SharingComparison": ("summary", "shares", "transfers"),
    "SharingResult": ("shares", "transfers", "surplus"),
    "CriticalDelta": ("critical", "scan"),
    "CriticalDiscount": ("critical", "scan"),
    "FeeResult": ("fees", "surplus", "transfers"),
    "RangeResult": ("ranges", "transfers"),
    "Result": ("surplus", "transfers", "fees"),
}


def table_frame(obj: Any, what: str | None = None) -> pd.DataFrame:
    r"""The table of an answer or a frame, as a DataFrame whose numbers are those of the answer's JSON.

    Parameters
    ----------
    obj : DataFrame or answer
        A sweep (:func:`mechlp.workflows.sweep.sweep`) or boundary
        (:func:`mechlp.workflows.boundary.feasibility_boundary`) frame is returned as it is. An answer gives one
        of its tables (:data:`TABLES`): a :class:`~mechlp.solve.result.Result` ``"surplus"`` (:math:`\Pi(h)`,
        :math:`\Pi^*` for ``minmax``, per history), ``"transfers"`` (per node) or ``"fees"``; a critical-value
        scan ``"critical"`` (direction, critical value, bracket) or ``"scan"`` (grid and criterion); a sharing
        result ``"shares"`` (:math:`\beta_i(h)`, the designer's share and :math:`\Pi^\beta(h)` per history); a
        sharing comparison ``"summary"`` (one row per rule), ``"shares"`` or ``"transfers"`` (every rule side by
        side); a fee result ``"fees"``.
    what : str, optional
        Which table (default: the first of the answer's tables).

    Returns
    -------
    DataFrame
    """
    if isinstance(obj, pd.DataFrame):
        if what is not None:
            raise ValueError(f"what={what!r} is for answers; a DataFrame is its own table")
        return obj
    tables = _answer_tables(obj)
    if what is None:
        what = next(iter(tables))
    if what not in tables:
        raise ValueError(f"what={what!r}: a {type(obj).__name__} has the tables {list(tables)}")
    return tables[what]()


def _render_cells(
    df: pd.DataFrame, cols: list[str], digits: int, style: str, float_format: Any = None, index: bool = False
) -> tuple[list[bool], list[list[str]]]:
    """Per column whether it is numeric, and the rows of cell texts."""
    numeric = [_is_number_column(df[c]) for c in cols]
    fmts = [column_format(df[c].tolist(), digits) for c in cols]
    rows = []
    index_fmt = column_format(list(df.index), digits)
    for idx, row in zip(df.index, df[cols].to_dict("records"), strict=True):  # keeps each column's type
        cells = []
        for c, fmt in zip(cols, fmts, strict=True):
            v = row[c]
            if float_format is not None and isinstance(v, float | np.floating) and math.isfinite(float(v)):
                v = float(v) + 0.0
                cells.append(float_format(v) if callable(float_format) else format(v, float_format))
            else:
                cells.append(_cell(v, fmt, style))
        if index:
            cells.insert(0, _cell(idx, index_fmt, style))
        rows.append(cells)
    return numeric, rows


def _prepare(obj: Any, what: str | None, columns: Sequence[str] | None, caller: str) -> tuple[pd.DataFrame, list]:
    df = table_frame(obj, what)
    cols = list(columns) if columns is not None else list(df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{caller}: no column(s) {missing}; columns are {list(df.columns)}")
    return df, cols


def to_latex(
    obj: Any,
    path: str | os.PathLike | None = None,
    *,
    what: str | None = None,
    columns: Sequence[str] | None = None,
    header: Mapping[str, str] | None = None,
    digits: int = SIGNIFICANT_DIGITS,
    float_format: str | Callable[[float], str] | None = None,
    caption: str | None = None,
    label: str | None = None,
    index: bool = False,
) -> str:
    r"""A LaTeX ``tabular`` (in a ``table`` float when ``caption`` or ``label`` is given), booktabs style.

    Parameters
    ----------
    obj : DataFrame or answer
        A sweep or boundary frame, or an answer (:func:`table_frame`).
    path : str or path, optional
        Also write the text here.
    what : str, optional
        Which table of an answer (:data:`TABLES`).
    columns : sequence of str, optional
        Columns to include, in order (default: all).
    header : mapping, optional
        Column name -> header text, inserted as LaTeX (not escaped, so ``$\Pi^*$`` works).
    digits : int
        Significant digits of each column's largest value (:func:`column_format`; default
        :data:`SIGNIFICANT_DIGITS`).
    float_format : str or callable, optional
        A format spec (``".3f"``) or function for float cells instead of :func:`column_format` (negative zeros
        are still printed as zeros).
    caption, label : str, optional
    index : bool
        Include the index as the first column.

    Returns
    -------
    str
        The LaTeX text. Numbers are right-aligned, text left-aligned; booleans print as yes / no and missing
        values as empty cells. Needs ``\usepackage{booktabs}``.
    """
    df, cols = _prepare(obj, what, columns, "to_latex")
    heads = [header[c] if header and c in header else latex_escape(c) for c in cols]
    numeric, rows = _render_cells(df, cols, digits, "latex", float_format, index)
    align = ["r" if n else "l" for n in numeric]
    if index:
        heads.insert(0, latex_escape(df.index.name or ""))
        align.insert(0, "l")
    lines = [f"\\begin{{tabular}}{{{''.join(align)}}}", "\\toprule", " & ".join(heads) + r" \\", "\\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in rows]
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


def to_markdown(
    obj: Any,
    path: str | os.PathLike | None = None,
    *,
    what: str | None = None,
    columns: Sequence[str] | None = None,
    header: Mapping[str, str] | None = None,
    digits: int = SIGNIFICANT_DIGITS,
    index: bool = False,
) -> str:
    """A Markdown (GitHub pipe) table of a frame or an answer, numbers rounded as in :func:`to_latex`.

    Parameters
    ----------
    obj : DataFrame or answer
        As for :func:`to_latex` (:func:`table_frame`).
    path : str or path, optional
        Also write the text here.
    what, columns, header, digits, index
        As for :func:`to_latex` (``header`` texts are inserted as they are).

    Returns
    -------
    str
        The table: a header row, an alignment row (numbers right-aligned) and one row per table row.
    """
    df, cols = _prepare(obj, what, columns, "to_markdown")
    heads = [header[c] if header and c in header else _escape(str(c), "markdown") for c in cols]
    numeric, rows = _render_cells(df, cols, digits, "markdown", None, index)
    if index:
        heads.insert(0, str(df.index.name or ""))
        numeric.insert(0, False)
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def to_text(
    obj: Any,
    *,
    what: str | None = None,
    columns: Sequence[str] | None = None,
    digits: int = SIGNIFICANT_DIGITS,
    max_rows: int | None = None,
    indent: str = "  ",
) -> str:
    """A plain aligned table for a terminal (the command line's tables), numbers rounded as in :func:`to_latex`.

    Parameters
    ----------
    obj : DataFrame or answer
        As for :func:`to_latex`.
    what, columns, digits
        As for :func:`to_latex`.
    max_rows : int, optional
        Print at most this many rows (their numbers rounded by the rule over the rows printed), then a line
        with the total.
    indent : str
        Prefix of every line.

    Returns
    -------
    str
    """
    df, cols = _prepare(obj, what, columns, "to_text")
    total = len(df)
    numeric, shown = _render_cells(df if max_rows is None else df.iloc[:max_rows], cols, digits, "text")
    heads = [str(c) for c in cols]
    width = [max([len(h)] + [len(r[j]) for r in shown]) for j, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, width, numeric, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(heads), *(line(r) for r in shown)]
    if len(shown) < total:
        out.append(f"{indent}... {total} rows in all")
    return "\n".join(out)


def to_csv(obj: Any, path: str | os.PathLike, *, what: str | None = None, columns: Sequence[str] | None = None) -> None:
    """Write a frame or an answer's table (:func:`table_frame`) as CSV without the index; floats keep full
    precision (the JSON's numbers; negative zeros are written as zeros).

    Parameters
    ----------
    obj : pandas.DataFrame or answer
        A table, e.g. a sweep (:func:`mechlp.workflows.sweep.sweep`), or an answer.
    path : str or os.PathLike
        The file to write.
    what : str, optional
        Which table of an answer (:data:`TABLES`).
    columns : sequence of str, optional
        Write only these columns, in this order.

    Returns
    -------
    None
    """
    df, cols = _prepare(obj, what, columns, "to_csv")
    out = df[cols].copy()
    for c in cols:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c] + 0.0
    out.to_csv(path, index=False)


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

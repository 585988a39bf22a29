r"""One self-contained HTML page about one model: every question's answer with the status of its proof.

:func:`report` answers, for the model as given (its own space: Markov for an infinite horizon, the full tree for a
finite one, or a tree of ``horizon`` periods):

* the min-max surplus :math:`\Pi^*` per history (Lamba 2022, Lemma 6) with its verified mechanism, and the
  min-max fees where the model has them (Lamba 2022, section 6.1);
* feasibility under each budget notion (ex ante, interim, ex post; Bayesian IC, periodic interim IR): the
  answer and what proves it, a verified mechanism (the independent verifier of :mod:`mechlp.audit.verifier`)
  or a verified impossibility certificate (Farkas multipliers, checked in floats and, where exact, in
  rationals); an answer without such a proof is shown as unproven, never as yes or no;
* on an infinite horizon, the critical discount factors of the ex ante and interim notions
  (:func:`mechlp.solve.critical.critical_delta`, Lamba 2022, Theorem 1 and Corollary 1).

The page has no script and loads nothing: figures are inline SVG (:func:`mechlp.workflows.plots.plot`), tables
plain HTML, the style sheet inline. Every number shown is the number of the answer's JSON
(:meth:`mechlp.model.answer.Answer.to_dict`), formatted with ``DIGITS`` significant digits.
"""

from __future__ import annotations

import html
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechlp.catalog.io import load_model
from mechlp.model.answer import SolverFailure
from mechlp.model.environment import Environment
from mechlp.model.question import parse_notion
from mechlp.model.spaces import MarkovSpace
from mechlp.solve import questions as design
from mechlp.solve.critical import BUDGETS as CRITICAL_BUDGETS
from mechlp.solve.critical import critical_delta
from mechlp.solve.result import Result
from mechlp.workflows import plots
from mechlp.workflows.export import SIGNIFICANT_DIGITS

__all__ = ["DIGITS", "report", "proof_status"]

#: Significant digits of every number on the page: the tables' one setting
#: (:data:`mechlp.workflows.export.SIGNIFICANT_DIGITS`).
DIGITS = SIGNIFICANT_DIGITS

_CSS = """
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { padding: 0.25em 0.8em; text-align: right; border-bottom: 1px solid #e4e4e4; }
th { border-bottom: 2px solid #444; } td.text, th.text { text-align: left; }
.yes { color: #1b7a2f; font-weight: bold; } .no { color: #a11d1d; font-weight: bold; }
.unproven { color: #9a6400; font-weight: bold; } .note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
"""


def _num(v: Any) -> str:
    """A number with ``DIGITS`` significant digits and no negative zero; anything else as text."""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | float | np.integer | np.floating):
        x = float(v)
        if not np.isfinite(x):
            return str(x)
        text = f"{x:.{DIGITS}g}"
        return text[1:] if text.startswith("-") and float(text) == 0.0 else text
    return str(v)


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    df = frame.reset_index() if index else frame
    head = "".join(
        f'<th class="{"text" if df[c].dtype == object else "num"}">{html.escape(str(c))}</th>' for c in df.columns
    )
    body = []
    for _, row in df.iterrows():
        cells = "".join(
            f'<td class="{"text" if df[c].dtype == object else "num"}">{html.escape(_num(row[c]))}</td>'
            for c in df.columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    return text if start < 0 or end < 0 else text[:start] + text[end + len("</metadata>") :]


def proof_status(result: Any) -> tuple[str, str]:
    """``(verdict, proof)`` of an answer in words: the verdict ``"yes"``, ``"no"`` or ``"unproven"`` and what
    proves it. ``"yes"`` needs a verified mechanism, ``"no"`` a verified impossibility certificate (no status
    without its proof); anything else is ``"unproven"`` with the answer's own status.

    Parameters
    ----------
    result : Result
        An answer of :func:`mechlp.solve.questions.feasibility` or :func:`~mechlp.solve.questions.minmax`.

    Returns
    -------
    (str, str)
    """
    ver, cert = getattr(result, "verification", None), getattr(result, "certificate", None)
    if result.status in ("optimal", "feasible") and ver is not None and ver.ok:
        worst = ver.max_violation
        worst = max(worst.values(), default=0.0) if isinstance(worst, dict) else worst
        return "yes", f"verified mechanism (independent verifier, largest violation {_num(worst)})"
    if result.status == "infeasible" and cert is not None and getattr(cert, "ok", False):
        exact = cert.checks.get("exact")
        how = "floats and exact rationals" if exact is not None and exact.get("ok") else "floats only"
        method = cert.options.get("method", "lp")
        return "no", f"verified impossibility certificate (Farkas multipliers by {method}, checked in {how})"
    return "unproven", f"status {result.status}: {result.message}"


def _model_section(env: Environment) -> str:
    rows = []
    for ag in env.agents:
        rows.append(
            {
                "agent": ag.name,
                "types": ", ".join(ag.types),
                "prior": ", ".join(_num(p) for p in np.asarray(ag.prior, dtype=float)),
            }
        )
    agents = pd.DataFrame(rows).astype(object)
    horizon = "infinite" if env.infinite else f"{int(env.horizon)} periods"
    parts = [
        "<h2>Model</h2>",
        f"<p>{html.escape(repr(env))}</p>",
        f"<p>Discount factor &delta; = {_num(env.discount)}; horizon {horizon}; actions "
        f"{html.escape(', '.join(env.actions))}.</p>",
        _table(agents, index=False),
    ]
    for ag in env.agents:
        values = np.asarray(ag.valuation, dtype=float)
        if values.ndim == 2 and values.shape == (len(ag.types), len(env.actions)):
            frame = pd.DataFrame(values, index=list(ag.types), columns=list(env.actions))
            frame.index.name = f"{ag.name}: flow value of"
            parts.append(_table(frame))
        kernel = np.asarray(ag.transition, dtype=float)
        if kernel.ndim == 2:
            frame = pd.DataFrame(kernel, index=list(ag.types), columns=list(ag.types))
            frame.index.name = f"{ag.name}: from \\ to"
            parts.append(_table(frame))
    return "\n".join(parts)


def _verdict(verdict: str) -> str:
    return f'<span class="{verdict}">{verdict}</span>'


def report(
    model: Environment | str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    budgets: Sequence[str] = ("ex_ante", "interim", "ex_post"),
    horizon: int | None = None,
    critical: bool = True,
    title: str | None = None,
) -> str:
    r"""Answer every question about ``model`` and write one self-contained HTML page (module docstring).

    Parameters
    ----------
    model : Environment or path
        An environment, or a TOML model file (read by :func:`mechlp.catalog.io.load_model`).
    out : str or path, optional
        Write the page here.
    budgets : sequence of str
        Budget notions asked (default ex ante, interim, ex post).
    horizon : int, optional
        Answer on a history tree of ``horizon`` periods instead of the model's own space.
    critical : bool
        On an infinite horizon (and without ``horizon``), add the critical discount factors.
    title : str, optional
        Page title (default: the model's name).

    Returns
    -------
    str
        The HTML text.

    Raises
    ------
    ValueError
        For an unknown budget notion, or a model that cannot be read.
    """
    if isinstance(model, Environment):
        env = model
    elif isinstance(model, str | os.PathLike):
        from_file = Path(model)
        if not from_file.is_file():
            raise ValueError(f"model file not found: {model}")
        env = load_model(from_file)
    else:
        raise TypeError(f"model must be an Environment or a TOML path, got {type(model).__name__}")
    budgets = [parse_notion("budget", b) for b in budgets]
    t0 = time.perf_counter()
    opts = {} if horizon is None else {"horizon": horizon}
    title = title or f"mechlp report: {env.name}"
    parts = [f"<h1>{html.escape(title)}</h1>", _model_section(env)]

    mm = design.minmax(env, **opts)
    verdict, proof = proof_status(mm)
    parts.append("<h2>Min-max surplus &Pi;*</h2>")
    parts.append(
        "<p>The designer's largest expected surplus at each history over Bayesian IC mechanisms with periodic "
        f"interim IR (Lamba 2022, Lemma 6). Mechanism: {_verdict(verdict)}, {html.escape(proof)}.</p>"
    )
    if isinstance(mm, Result) and mm.surplus is not None:
        frame = mm.surplus_frame()
        parts.append(_table(frame.head(64)))
        if len(frame) > 64:
            parts.append(f'<p class="note">first 64 of {len(frame)} histories</p>')
        kind = "states" if isinstance(mm.space, MarkovSpace) else "tree"
        try:
            fig = plots.plot(mm, kind, title="Π* per history")
            parts.append(f"<figure>{_svg(fig)}<figcaption class='note'>Π* per history</figcaption></figure>")
        except ValueError as exc:  # a tree too large to draw
            parts.append(f'<p class="note">no figure: {html.escape(str(exc))}</p>')
        fees = mm.fees_frame()
        if len(fees):
            parts.append("<h3>Min-max fees (Lamba 2022, section 6.1)</h3>")
            parts.append(_table(fees))

    parts.append("<h2>Is the allocation implementable?</h2>")
    parts.append(
        "<p>Bayesian IC and periodic interim IR with each budget notion. <b>yes</b> is shown only with a verified "
        "mechanism, <b>no</b> only with a verified impossibility certificate.</p>"
    )
    rows = []
    for b in budgets:
        res = design.feasibility(env, b, minmax_result=mm, **opts)
        verdict, proof = proof_status(res)
        rows.append(
            f"<tr><td class='text'>{html.escape(b)}</td><td class='text'>{_verdict(verdict)}</td>"
            f"<td class='text'>{html.escape(proof)}</td></tr>"
        )
    parts.append(
        "<table><thead><tr><th class='text'>budget</th><th class='text'>answer</th><th class='text'>proof</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )

    if critical and horizon is None and env.infinite:
        parts.append("<h2>Critical discount factors</h2>")
        crit_rows = []
        for b in [b for b in budgets if b in CRITICAL_BUDGETS]:
            try:
                cd = critical_delta(env, b)
            except (ValueError, SolverFailure) as exc:
                crit_rows.append({"budget": b, "critical": "", "answer": f"not computed: {exc}"})
                continue
            values = ", ".join(_num(c) for c in cd.critical) or "none on the grid"
            crit_rows.append({"budget": b, "critical": values, "answer": cd.message})
        if crit_rows:
            parts.append(_table(pd.DataFrame(crit_rows).astype(object), index=False))

    seconds = time.perf_counter() - t0
    parts.append(f'<p class="note">Computed by mechlp in {seconds:.1f} s.</p>')
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    if out is not None:
        Path(out).write_text(page, encoding="utf-8")
    return page

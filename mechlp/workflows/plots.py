r"""Figures of sweeps and results (matplotlib, Agg canvas; no pyplot, no display needed).

:func:`plot` (alias :func:`plot_result`) draws one of these kinds and returns the
:class:`matplotlib.figure.Figure` (saved to ``path`` when given, PNG or PDF by the file's extension):

``"surplus"``
    A ``"minmax"`` sweep: :math:`\Pi^*` and every :math:`\Pi^*(\text{state})` (the ``pi_root`` and ``pi(...)``
    columns) against a grid key, one panel per value of a second key -- Lamba (2022), Figures 2 and 3 plot
    these against persistence with one panel per discount factor.
``"feasibility"``
    A ``"feasible"`` or ``"fees"`` sweep over two grid keys: the region where each ``feasible_*`` column is true
    (e.g. ex ante and interim budget balance, or Yoon's lump-sum fees), cell by cell -- a staircase as coarse as
    the grid; ``"boundary"`` draws the same regions with exact edges (critical values) -- with an optional
    overlay curve:
    ``overlay="yoon"`` draws Yoon's (2021, section 3.3.2) frontier :math:`\delta = 1/(3 - 2\alpha)` of binary
    bilateral trade (x = persistence, y = discount factor).
``"boundary"``
    The frame of :func:`mechlp.workflows.boundary.feasibility_boundary`: the regions between the critical-value
    curves (exact boundaries), one hatch per budget so nested regions stay visible, the infeasible area grey
    with its own legend entry.
``"fees"``
    Fee columns (``fee_*``) against a grid key, every agent's by default: the min-max fees of Lamba (2022,
    section 6.1) from a ``"minmax"`` sweep, or Yoon's lump-sum fees from a ``"fees"`` sweep; one panel per value
    of a second key.
``"tree"``
    A :class:`~mechlp.solve.result.Result` (or :class:`~mechlp.model.mechanism.Mechanism`) on a small history tree:
    every
    history as a box with its surplus :math:`\Pi(h)` and the transfers at each report profile, linked to the
    histories that follow.
``"states"``
    A :class:`~mechlp.solve.result.Result` on the Markov space: :math:`\Pi(h)` per state as points on an axis
    spanning the values.

``"sharing"``
    A :class:`~mechlp.workflows.sharing.SharingComparison` (:func:`~mechlp.workflows.sharing.compare_sharing`):
    every rule side by side -- the split of :math:`\Pi^*` at the start, the largest payment, the reach-weighted
    payment variances and the payments per node.

Style (:mod:`mechlp.solve.style`): ``size="column"|"page"|"slide"``, mathtext labels from the symbol table
(``persistence`` -> :math:`\alpha`, ``pi(v_H,c_L)`` -> :math:`\Pi^*(v_H, c_L)`), panels in a near-square grid
(``ncols``), one legend for the figure (in a free cell of the grid, else under the panels), ``sharey=True`` for
one y-scale; every series has its own colour, dash pattern and staggered markers, so coinciding lines stay
visible, and a series equal to an earlier one says so in the legend.

``data`` may be a DataFrame from :func:`mechlp.workflows.sweep.sweep`, the path of a sweep CSV, or a result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mechlp.model import tolerances
from mechlp.model.mechanism import Mechanism
from mechlp.solve.figures import MAX_TREE_HISTORIES, draw
from mechlp.solve.result import Result
from mechlp.solve.style import (
    COLORS,
    INFEASIBLE_COLOR,
    REGION_COLORS,
    REGION_HATCHES,
    SIZES,
    Style,
    column_label,
    figure_legend,
    get_style,
    grid_shape,
    label_panels,
    new_figure,
    panel_grid,
    panel_title,
    save_figure,
    series_style,
    style_context,
    symbol,
)
from mechlp.workflows.boundary import HEADER as BOUNDARY_HEADER
from mechlp.workflows.boundary import load_boundary
from mechlp.workflows.sharing import SharingComparison
from mechlp.workflows.sweep import grid_keys, load_sweep

__all__ = ["KINDS", "SIZES", "plot", "plot_result", "yoon_frontier"]

KINDS = ("surplus", "feasibility", "boundary", "fees", "tree", "states", "sharing")


def yoon_frontier(alpha: Any) -> np.ndarray:
    r"""Yoon's (2021, section 3.3.2) critical discount factor :math:`1/(3 - 2\alpha)` of binary bilateral trade."""
    a = np.asarray(alpha, dtype=float)
    return 1.0 / (3.0 - 2.0 * a)


# ---------------------------------------------------------------------------------------------- helpers
def _frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, str | os.PathLike):
        if os.path.isfile(data):
            with open(data) as fh:
                if fh.readline().startswith(BOUNDARY_HEADER):
                    return load_boundary(data)
        return load_sweep(data)
    raise TypeError(f"expected a sweep DataFrame or the path of a sweep CSV, got {type(data).__name__}")


def _filter(df: pd.DataFrame, where: Mapping[str, Any] | None) -> pd.DataFrame:
    if not where:
        return df
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        if k not in df:
            raise ValueError(f"where: no column {k!r}; columns are {list(df.columns)}")
        col = df[k]
        mask &= (
            np.isclose(col.astype(float), float(v), rtol=tolerances.MATCH_RTOL, atol=tolerances.MATCH_ATOL)
            if pd.api.types.is_numeric_dtype(col)
            else (col == v)
        )
    out = df[mask]
    if out.empty:
        raise ValueError(f"where={dict(where)} selects no rows")
    return out


def _axes_keys(df: pd.DataFrame, x: str | None, panel: str | None) -> tuple[str, str | None]:
    keys = grid_keys(df)
    if x is None:  # the key with the most values (the first on ties); the next one gives the panels
        rest = [k for k in keys if k != panel]
        if not rest:
            raise ValueError("no grid key left for the x axis")
        x = max(rest, key=lambda k: (df[k].nunique(), -rest.index(k)))
    if x not in df:
        raise ValueError(f"x={x!r} is not a column; grid keys are {keys}")
    if panel is None:
        others = [k for k in keys if k != x and df[k].nunique() > 1]
        panel = others[0] if others else None
    elif panel not in df:
        raise ValueError(f"panel={panel!r} is not a column; grid keys are {keys}")
    extra = [k for k in keys if k not in (x, panel) and df[k].nunique() > 1]
    if extra:
        raise ValueError(f"grid keys {extra} vary too: fix them with where={{key: value}}")
    return x, panel


def _panels(df: pd.DataFrame, panel: str | None) -> list[tuple[Any, pd.DataFrame]]:
    if panel is None:
        return [(None, df)]
    return [(v, df[df[panel] == v]) for v in sorted(df[panel].unique())]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Two series coincide (to the display's resolution: numbers typed with a few digits match)."""
    scale = max(float(np.nanmax(np.abs(a))) if a.size else 0.0, 1.0)
    return bool(np.allclose(a, b, rtol=tolerances.MATCH_RTOL, atol=tolerances.MATCH_RTOL * scale, equal_nan=True))


def _line_panels(
    df: pd.DataFrame,
    columns: Sequence[str],
    x: str,
    panel: str | None,
    ylabel: str,
    title: str | None,
    st: Style,
    ncols: int | None,
    sharey: bool,
    labels: Mapping[str, str] | None,
    zero_line: bool = True,
) -> Figure:
    groups = _panels(df, panel)
    rows, cols = grid_shape(len(groups), ncols)
    fig = new_figure(st, rows, cols)
    axes, spare = panel_grid(fig, len(groups), cols, sharey=sharey)
    names = [column_label(c, labels) for c in columns]
    # a series equal to an earlier one in every panel says so (its line and markers are drawn apart anyway)
    data = df.sort_values([k for k in (panel, x) if k is not None])
    for j, col in enumerate(columns):
        for i in range(j):
            if _same(data[col].to_numpy(float), data[columns[i]].to_numpy(float)):
                names[j] = f"{names[j]} (= {column_label(columns[i], labels)})"
                break
    handles = []
    for ax, (val, sub) in zip(axes, groups, strict=True):
        sub = sub.sort_values(x)
        for j, col in enumerate(columns):
            (line,) = ax.plot(sub[x], sub[col], label=names[j], **series_style(j, len(sub), len(columns), st))
            if ax is axes[0]:
                handles.append(line)
        values = sub[list(columns)].to_numpy(float)
        lo, hi = np.nanmin(values), np.nanmax(values)
        if zero_line and lo < 0 < hi:
            ax.axhline(0.0, color="0.4", lw=st.line * 0.6, ls=":", zorder=1)
        if val is not None:
            ax.set_title(panel_title(panel, val, labels))
    label_panels(axes, cols, symbol(x, labels), ylabel)
    figure_legend(fig, handles, spare=spare)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------- kinds
def _plot_surplus(df: pd.DataFrame, x, panel, columns, title, st, ncols, sharey, labels) -> Figure:
    x, panel = _axes_keys(df, x, panel)
    cols = list(columns) if columns else [c for c in df.columns if c == "pi_root" or c.startswith("pi(")]
    if not cols:
        raise ValueError("no surplus columns (pi_root, pi(...)): plot a 'minmax' sweep, or pass columns=[...]")
    ylabel = r"min-max surplus $\Pi^*$"
    return _line_panels(df, cols, x, panel, ylabel, title, st, ncols, sharey, labels)


def _plot_fees(df: pd.DataFrame, x, panel, columns, title, agent, st, ncols, sharey, labels) -> Figure:
    x, panel = _axes_keys(df, x, panel)
    if columns:
        cols = list(columns)
    else:  # every agent's fees (or one agent's): per period, not the present values
        cols = [c for c in df.columns if c.startswith("fee_") and not c.endswith("_pv")]
        if agent is not None:
            cols = [c for c in cols if c == f"fee_{agent}" or c.startswith((f"fee_{agent}_", f"fee_{agent}("))]
    if not cols:
        raise ValueError("no fee columns (fee_*): plot a 'minmax' or 'fees' sweep, or pass columns=[...]")
    return _line_panels(df, cols, x, panel, "fee (payment per period)", title, st, ncols, sharey, labels, False)


def _infeasible_handle() -> Patch:
    return Patch(facecolor=INFEASIBLE_COLOR, edgecolor="0.6", label="infeasible")


def _region_style(j: int, name: str) -> tuple[str, str]:
    return REGION_COLORS.get(name, COLORS[(j + 1) % len(COLORS)]), REGION_HATCHES[j % len(REGION_HATCHES)]


def _plot_feasibility(df: pd.DataFrame, x, y, columns, overlay, title, st, labels) -> Figure:
    """Cell-by-cell regions of a grid sweep (a staircase as coarse as the grid); the ``"boundary"`` kind draws
    the same regions with exact edges from :func:`mechlp.workflows.boundary.feasibility_boundary`."""
    keys = grid_keys(df)
    if x is None or y is None:
        free = [k for k in keys if k not in (x, y)]
        if x is None:
            x = free.pop(0) if free else None
        if y is None:
            y = free.pop(0) if free else None
    if x is None or y is None or x not in df or y not in df:
        raise ValueError(f"a feasibility plot needs two grid keys (x and y); grid keys are {keys}")
    extra = [k for k in keys if k not in (x, y) and df[k].nunique() > 1]
    if extra:
        raise ValueError(f"grid keys {extra} vary too: fix them with where={{key: value}}")
    flags = list(columns) if columns else [c for c in df.columns if c.startswith("feasible_")]
    if not flags:
        raise ValueError("no feasible_* columns: plot a 'feasible' or 'fees' sweep, or pass columns=[...]")
    xs = np.sort(df[x].unique().astype(float))
    ys = np.sort(df[y].unique().astype(float))
    fig = new_figure(st, height=st.width * st.aspect + 0.9 * st.font / 9.0)
    ax = fig.subplots()
    ax.set_facecolor(INFEASIBLE_COLOR)
    ax.grid(False)
    handles = []
    for j, flag in enumerate(flags):
        table = df.pivot_table(index=y, columns=x, values=flag, aggfunc="first")
        table = table.reindex(index=ys, columns=xs)
        z = table.to_numpy(dtype=float)
        z = np.ma.masked_where(~(z > 0.5), z)  # show the cells where the flag holds
        name = flag[len("feasible_") :] if flag.startswith("feasible_") else flag
        color, hatch = _region_style(j, name)
        mesh = ax.pcolormesh(xs, ys, z, shading="nearest", cmap=ListedColormap([color]), vmin=0, vmax=1, alpha=0.6)
        mesh.set_hatch(hatch)
        mesh.set_edgecolor("0.25")
        mesh.set_linewidth(0)
        handles.append(Patch(facecolor=color, alpha=0.6, hatch=hatch, edgecolor="0.25", label=_feasible_label(name)))
    handles.append(_infeasible_handle())
    if "status" in df and (df["status"] != "ok").any():
        bad = df[df["status"] != "ok"]
        (marks,) = ax.plot(bad[x], bad[y], "x", color="k", ms=st.marker, ls="none", label="error / failed")
        handles.append(marks)
    if overlay is not None:
        handles.append(_overlay(ax, overlay, xs, st))
    ax.set_xlim(xs.min() - _half(xs), xs.max() + _half(xs))
    ax.set_ylim(ys.min() - _half(ys), ys.max() + _half(ys))
    ax.set_xlabel(symbol(x, labels))
    ax.set_ylabel(symbol(y, labels))
    figure_legend(fig, handles)
    if title:
        ax.set_title(title)
    return fig


def _feasible_label(name: str) -> str:
    return f"feasible: {name.replace('_', ' ')}"


def _overlay(ax, overlay, xs: np.ndarray, st: Style):
    xx = np.linspace(xs.min(), xs.max(), 200)
    if overlay == "yoon":
        yy, lab = yoon_frontier(xx), r"Yoon (2021): $\delta = 1/(3 - 2\alpha)$"
    elif callable(overlay):
        yy, lab = np.asarray(overlay(xx), dtype=float), getattr(overlay, "__name__", "overlay")
    else:
        raise ValueError(f"overlay must be 'yoon', a callable x -> y or None, got {overlay!r}")
    (line,) = ax.plot(xx, yy, color=COLORS[2], lw=st.line * 1.2, ls=(0, (4.0, 2.0)), label=lab, zorder=4)
    return line


def _plot_boundary(df: pd.DataFrame, overlay, title, st, labels) -> Figure:
    """Regions between the critical-value curves of :func:`mechlp.workflows.boundary.feasibility_boundary`: on
    each line ``x = const`` the feasible intervals of ``y``, filled between neighbouring lines, one colour and
    hatch per budget (nested regions: the hatches cross), the infeasible area grey with its own legend entry;
    the computed critical values are marked."""
    x, y = df.attrs.get("x"), df.attrs.get("y")
    if x is None or y is None or x not in df or "intervals" not in df:
        raise ValueError("a boundary plot needs the frame of mechlp.feasibility_boundary (or its CSV file)")
    fig = new_figure(st, height=st.width * st.aspect + 0.9 * st.font / 9.0)
    ax = fig.subplots()
    ax.set_facecolor(INFEASIBLE_COLOR)
    ax.grid(False)
    handles = []
    xs_all = np.sort(df[x].unique().astype(float))
    for j, budget in enumerate(dict.fromkeys(df["budget"])):
        part = df[df["budget"] == budget].sort_values(x)
        xs = part[x].to_numpy(dtype=float)
        ivs = list(part["intervals"])
        color, hatch = _region_style(j, budget)
        for k in range(max((len(iv) for iv in ivs), default=0)):
            low = np.array([iv[k][0] if len(iv) > k else np.nan for iv in ivs])
            high = np.array([iv[k][1] if len(iv) > k else np.nan for iv in ivs])
            ax.fill_between(
                xs, low, high, where=np.isfinite(low), facecolor=color, alpha=0.6, hatch=hatch, edgecolor="0.25", lw=0
            )
        crit = list(part["critical"])
        for k in range(max((len(c) for c in crit), default=0)):
            ck = np.array([c[k] if len(c) > k else np.nan for c in crit])
            ax.plot(xs, ck, color=color, lw=st.line, marker="o", ms=st.marker * 0.7, zorder=3)
        handles.append(Patch(facecolor=color, alpha=0.6, hatch=hatch, edgecolor="0.25", label=_feasible_label(budget)))
    handles.append(_infeasible_handle())
    handles.append(
        Line2D([], [], color="0.3", marker="o", ms=st.marker * 0.7, lw=st.line, label=f"critical {symbol(y, labels)}")
    )
    if overlay is not None:
        handles.append(_overlay(ax, overlay, xs_all, st))
    if xs_all.size > 1:
        ax.set_xlim(xs_all.min(), xs_all.max())
    ax.set_ylim(df.attrs.get("lo", 0.0), df.attrs.get("hi", 1.0))
    ax.set_xlabel(symbol(x, labels))
    ax.set_ylabel(symbol(y, labels))
    figure_legend(fig, handles)
    if title:
        ax.set_title(title)
    return fig


def _half(v: np.ndarray) -> float:
    return float(np.min(np.diff(v))) / 2 if v.size > 1 else 0.05


def _plot_sharing(cmp: Any, title: str | None, size: str | Style = "page") -> Figure:
    """Sharing rules side by side: shares of Pi* at the start, largest payment, payment variances, payments."""
    if not isinstance(cmp, SharingComparison):
        raise ValueError(f"kind 'sharing' needs a SharingComparison (mechlp.compare_sharing), got {type(cmp).__name__}")
    summary = cmp.summary_frame()
    parties = [*(ag.name for ag in cmp.env.agents), "designer"]
    rules = list(summary["rule"])
    pos = np.arange(len(rules))
    fig = new_figure(size, 2, 2)
    (ax_share, ax_max), (ax_var, ax_pay) = fig.subplots(2, 2)
    bottom = np.zeros(len(rules))
    for j, p in enumerate(parties):  # stacked: the split of Pi*(start) between the parties
        vals = summary[f"share_{p}"].to_numpy(dtype=float)
        ax_share.bar(pos, vals, bottom=bottom, color=COLORS[j % len(COLORS)], label=p)
        bottom += vals
    ax_share.set_ylabel("share of Π* at the start")
    ax_max.bar(pos, summary["max_abs_transfer"].to_numpy(dtype=float), color=COLORS[len(parties) % len(COLORS)])
    ax_max.set_ylabel("largest |payment|")
    width = 0.8 / len(parties)
    for j, p in enumerate(parties):
        ax_var.bar(
            pos + (j - (len(parties) - 1) / 2) * width, summary[f"var_{p}"], width, color=COLORS[j % len(COLORS)]
        )
    ax_var.set_ylabel("payment variance (reach-weighted)")
    for ax in (ax_share, ax_max, ax_var):
        ax.set_xticks(pos, rules, rotation=20, ha="right")
    pay = cmp.payments_frame()
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    for r, rule in enumerate(rules):
        for j, ag in enumerate(parties[:-1]):
            ax_pay.plot(
                pay["node"],
                pay[f"{rule}: {ag}"],
                linestyle="none",
                marker=markers[r % len(markers)],
                markersize=4,
                color=COLORS[j % len(COLORS)],
                alpha=0.8,
            )
    ax_pay.axhline(0.0, color="0.5", linewidth=0.8)
    ax_pay.set_xlabel("node")
    ax_pay.set_ylabel("payment to the designer")
    handles = [Patch(color=COLORS[j % len(COLORS)], label=p) for j, p in enumerate(parties)]
    handles += [
        Line2D([], [], linestyle="none", marker=markers[r % len(markers)], color="0.3", label=rule)
        for r, rule in enumerate(rules)
    ]
    fig.legend(handles=handles, loc="outside right center")
    fig.suptitle(title or f"sharing rules compared: {cmp.env.name}")
    return fig


# ---------------------------------------------------------------------------------------------- entry
def plot(
    data: Any,
    kind: str | None = None,
    *,
    path: str | os.PathLike | None = None,
    x: str | None = None,
    y: str | None = None,
    panel: str | None = None,
    columns: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    overlay: str | Callable[[np.ndarray], np.ndarray] | None = None,
    agent: str | None = None,
    title: str | None = None,
    max_histories: int = MAX_TREE_HISTORIES,
    size: str = "page",
    ncols: int | None = None,
    sharey: bool = False,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Draw a sweep or a result (kinds in the module docstring) and optionally save it.

    Parameters
    ----------
    data : DataFrame, path of a sweep CSV, Result or Mechanism
    kind : {"surplus", "feasibility", "boundary", "fees", "tree", "states"}, optional
        Default: ``"tree"`` / ``"states"`` for a result; for a sweep, from its question (``minmax`` ->
        ``"surplus"``, ``feasible`` and ``fees`` -> ``"feasibility"``); ``"boundary"`` for the frame of
        :func:`mechlp.workflows.boundary.feasibility_boundary`.
    path : str or path, optional
        Save the figure here (``.png``, ``.pdf`` or ``.svg``, by the extension).
    x, y, panel : str, optional
        Grid keys for the x axis, the y axis (feasibility) and the panels (one per value). Defaults: the grid
        keys in order.
    columns : sequence of str, optional
        Columns to draw instead of the default ones of ``kind``.
    where : mapping, optional
        Keep the rows with these values (for grids with more than two keys).
    overlay : "yoon" or callable, optional
        Feasibility and boundary: a frontier ``y = f(x)`` drawn over the regions.
    agent : str, optional
        Fees only: draw only this agent's fee columns (default: every agent's).
    title : str, optional
    max_histories : int
        Tree only: refuse larger trees.
    size : {"column", "page", "slide"}
        Width, fonts and line widths for a journal column (3.4 in), a full page width (6.9 in) or a slide
        (10 x 5.6 in); :mod:`mechlp.solve.style`.
    ncols : int, optional
        Panels per row (default: near-square, ``ceil(sqrt(panels))``).
    sharey : bool
        One y-scale for every panel.
    labels : mapping, optional
        Labels (mathtext allowed) for keys or columns, over the symbol table :data:`mechlp.solve.style.SYMBOLS`
        (e.g. ``{"agents.seller.persistence": r"$\\alpha_S$"}``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; kinds are {KINDS}")
    st = get_style(size)
    if ncols is not None:
        grid_shape(1, ncols)  # validates ncols
    if isinstance(data, Result | Mechanism):
        return draw(data, kind, path=path, title=title, max_histories=max_histories, size=st.name)
    if isinstance(data, SharingComparison) or kind == "sharing":
        return save_figure(_plot_sharing(data, title, st), path)
    df = _filter(_frame(data), where)
    if kind is None and "intervals" in df:
        kind = "boundary"
    if kind is None:
        question = df.attrs.get("question") or (str(df["question"].iloc[0]) if "question" in df and len(df) else "")
        kind = {"minmax": "surplus", "feasible": "feasibility", "fees": "feasibility"}.get(question)
        if kind is None:
            raise ValueError(f"cannot choose a plot kind for question {question!r}: pass kind=...")
    if kind in ("tree", "states"):
        raise ValueError(f"kind {kind!r} needs a Result (e.g. mechlp.minmax(env, horizon=2)), not a sweep")
    if "status" in df and kind not in ("feasibility", "boundary"):
        df = df[df["status"] == "ok"]
        if df.empty:
            raise ValueError("no point of the sweep has status 'ok'")
    with style_context(st):
        if kind == "surplus":
            fig = _plot_surplus(df, x, panel, columns, title, st, ncols, sharey, labels)
        elif kind == "fees":
            fig = _plot_fees(df, x, panel, columns, title, agent, st, ncols, sharey, labels)
        elif kind == "boundary":
            fig = _plot_boundary(df, overlay, title, st, labels)
        else:
            fig = _plot_feasibility(df, x, y, columns, overlay, title, st, labels)
        return save_figure(fig, path)


plot_result = plot

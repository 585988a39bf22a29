r"""Figures of sweeps and results (matplotlib, Agg canvas; no pyplot, no display needed).

:func:`plot` (alias :func:`plot_result`) draws one of these kinds and returns the
:class:`matplotlib.figure.Figure` (saved to ``path`` when given, PNG or PDF by the file's extension):

``"surplus"``
    A ``"minmax"`` sweep: :math:`\Pi^*` and every :math:`\Pi^*(\text{state})` (the ``pi_root`` and ``pi(...)``
    columns) against a grid key, one panel per value of a second key -- Lamba (2022), Figures 2 and 3 plot
    these against persistence with one panel per discount factor.
``"feasibility"``
    A ``"feasible"`` or ``"fees"`` sweep over two grid keys: the region where each ``feasible_*`` column is true
    (e.g. ex ante and interim budget balance, or Yoon's lump-sum fees), with an optional overlay curve:
    ``overlay="yoon"`` draws Yoon's (2021, section 3.3.2) frontier :math:`\delta = 1/(3 - 2\alpha)` of binary
    bilateral trade (x = persistence, y = discount factor).
``"fees"``
    Fee columns (``fee_*``) against a grid key: the min-max fees of Lamba (2022, section 6.1) from a
    ``"minmax"`` sweep, or Yoon's lump-sum fees from a ``"fees"`` sweep; one panel per value of a second key.
``"tree"``
    A :class:`~mechlp.solve.result.Result` (or :class:`~mechlp.model.mechanism.Mechanism`) on a small history tree:
    every
    history as a box with its surplus :math:`\Pi(h)` and the transfers at each report profile, linked to the
    histories that follow.
``"states"``
    A :class:`~mechlp.solve.result.Result` on the Markov space: :math:`\Pi(h)` per state as bars.
``"sharing"``
    A :class:`~mechlp.workflows.sharing.SharingComparison` (:func:`~mechlp.workflows.sharing.compare_sharing`):
    every rule side by side -- the split of :math:`\Pi^*` at the start, the largest payment, the reach-weighted
    payment variances and the payments per node.

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
from mechlp.solve.figures import MAX_TREE_HISTORIES, draw, new_figure, save_figure
from mechlp.solve.result import Result
from mechlp.workflows.boundary import HEADER as BOUNDARY_HEADER
from mechlp.workflows.boundary import load_boundary
from mechlp.workflows.sharing import SharingComparison
from mechlp.workflows.sweep import grid_keys, load_sweep

__all__ = ["KINDS", "plot", "plot_result", "yoon_frontier"]

KINDS = ("surplus", "feasibility", "boundary", "fees", "tree", "states", "sharing")
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_REGION_COLORS = {"ex_ante": "#9ecae1", "interim": "#3182bd", "ex_post": "#08519c", "lump_sum": "#fdae6b"}


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


def _label(col: str) -> str:
    if col == "pi_root":
        return "Π* (period 1)"
    if col.startswith("pi(") and col.endswith(")"):
        return f"Π*{col[2:]}"
    return col


def _panels(df: pd.DataFrame, panel: str | None) -> list[tuple[Any, pd.DataFrame]]:
    if panel is None:
        return [(None, df)]
    return [(v, df[df[panel] == v]) for v in sorted(df[panel].unique())]


def _line_panels(
    df: pd.DataFrame,
    columns: Sequence[str],
    x: str,
    panel: str | None,
    ylabel: str,
    title: str | None,
    zero_line: bool = True,
) -> Figure:
    groups = _panels(df, panel)
    fig = new_figure(4.6 * len(groups), 3.8)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (val, sub) in zip(axes, groups, strict=True):
        sub = sub.sort_values(x)
        for j, col in enumerate(columns):
            style = "-" if j == 0 else ("--" if j % 2 else "-.")
            ax.plot(
                sub[x],
                sub[col],
                style,
                color=_COLORS[j % len(_COLORS)],
                lw=2.2 if j == 0 else 1.5,
                marker="o" if len(sub) <= 12 else None,
                ms=3,
                label=_label(col),
            )
        lo, hi = np.nanmin(sub[list(columns)].to_numpy(float)), np.nanmax(sub[list(columns)].to_numpy(float))
        if zero_line and lo < 0 < hi:
            ax.axhline(0.0, color="0.4", lw=0.8, ls=":")
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
        if val is not None:
            ax.set_title(f"{panel} = {val:g}" if isinstance(val, int | float) else f"{panel} = {val}")
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------- kinds
def _plot_surplus(df: pd.DataFrame, x, panel, columns, title) -> Figure:
    x, panel = _axes_keys(df, x, panel)
    cols = list(columns) if columns else [c for c in df.columns if c == "pi_root" or c.startswith("pi(")]
    if not cols:
        raise ValueError("no surplus columns (pi_root, pi(...)): plot a 'minmax' sweep, or pass columns=[...]")
    return _line_panels(df, cols, x, panel, "min-max surplus Π*", title)


def _plot_fees(df: pd.DataFrame, x, panel, columns, title, agent) -> Figure:
    x, panel = _axes_keys(df, x, panel)
    if columns:
        cols = list(columns)
    else:
        cols = [c for c in df.columns if c.startswith("fee_") and not c.endswith("_pv")]
        if agent is not None:
            cols = [c for c in cols if c.startswith(f"fee_{agent}")]
        elif any("(" in c for c in cols):  # min-max fees: the first agent's, as in Lamba's Table 1
            first = cols[0][len("fee_") :].split("_")[0].split("(")[0]
            cols = [c for c in cols if c.startswith(f"fee_{first}")]
    if not cols:
        raise ValueError("no fee columns (fee_*): plot a 'minmax' or 'fees' sweep, or pass columns=[...]")
    return _line_panels(df, cols, x, panel, "fee (payment per period)", title, zero_line=False)


def _plot_feasibility(df: pd.DataFrame, x, y, columns, overlay, title) -> Figure:
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
    fig = new_figure(5.6, 4.6)
    ax = fig.subplots()
    handles = []
    for j, flag in enumerate(flags):
        table = df.pivot_table(index=y, columns=x, values=flag, aggfunc="first")
        table = table.reindex(index=ys, columns=xs)
        z = table.to_numpy(dtype=float)
        z = np.ma.masked_where(~(z > 0.5), z)  # show the cells where the flag holds
        name = flag[len("feasible_") :] if flag.startswith("feasible_") else flag
        color = _REGION_COLORS.get(name, _COLORS[j % len(_COLORS)])
        ax.pcolormesh(xs, ys, z, shading="nearest", cmap=_single(color), vmin=0, vmax=1, alpha=0.75)
        handles.append(Patch(facecolor=color, alpha=0.75, label=f"feasible: {name.replace('_', ' ')}"))
    if "status" in df and (df["status"] != "ok").any():
        bad = df[df["status"] != "ok"]
        (marks,) = ax.plot(bad[x], bad[y], "x", color="k", ms=4, label="error / failed")
        handles.append(marks)
    if overlay is not None:
        handles.append(_overlay(ax, overlay, xs))
    ax.set_xlim(xs.min() - _half(xs), xs.max() + _half(xs))
    ax.set_ylim(ys.min() - _half(ys), ys.max() + _half(ys))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def _overlay(ax, overlay, xs: np.ndarray):
    xx = np.linspace(xs.min(), xs.max(), 200)
    if overlay == "yoon":
        yy, lab = yoon_frontier(xx), "Yoon (2021): δ = 1/(3 − 2α)"
    elif callable(overlay):
        yy, lab = np.asarray(overlay(xx), dtype=float), getattr(overlay, "__name__", "overlay")
    else:
        raise ValueError(f"overlay must be 'yoon', a callable x -> y or None, got {overlay!r}")
    (line,) = ax.plot(xx, yy, color="k", lw=1.2, ls="--", label=lab)
    return line


_HATCHES = ("", "///", "\\\\", "xx")


def _plot_boundary(df: pd.DataFrame, overlay, title) -> Figure:
    """Regions between the critical-value curves of :func:`mechlp.workflows.boundary.feasibility_boundary`: on
    each line ``x = const`` the feasible intervals of ``y``, filled between neighbouring lines, one colour (and
    hatch, so nested regions stay visible) per budget; the computed critical values are marked."""
    x, y = df.attrs.get("x"), df.attrs.get("y")
    if x is None or y is None or x not in df or "intervals" not in df:
        raise ValueError("a boundary plot needs the frame of mechlp.feasibility_boundary (or its CSV file)")
    fig = new_figure(5.6, 4.6)
    ax = fig.subplots()
    handles = []
    xs_all = np.sort(df[x].unique().astype(float))
    for j, budget in enumerate(dict.fromkeys(df["budget"])):
        part = df[df["budget"] == budget].sort_values(x)
        xs = part[x].to_numpy(dtype=float)
        ivs = list(part["intervals"])
        color = _REGION_COLORS.get(budget, _COLORS[j % len(_COLORS)])
        hatch = _HATCHES[j % len(_HATCHES)]
        for k in range(max((len(iv) for iv in ivs), default=0)):
            low = np.array([iv[k][0] if len(iv) > k else np.nan for iv in ivs])
            high = np.array([iv[k][1] if len(iv) > k else np.nan for iv in ivs])
            ax.fill_between(
                xs,
                low,
                high,
                where=np.isfinite(low),
                facecolor=color,
                alpha=0.55,
                hatch=hatch,
                edgecolor="white" if not hatch else color,
                lw=0,
            )
        crit = list(part["critical"])
        for k in range(max((len(c) for c in crit), default=0)):
            ck = np.array([c[k] if len(c) > k else np.nan for c in crit])
            ax.plot(xs, ck, color=color, lw=1.4, marker="o", ms=2.5)
        handles.append(Patch(facecolor=color, alpha=0.55, hatch=hatch, label=f"feasible: {budget.replace('_', ' ')}"))
    handles.append(Patch(facecolor="white", edgecolor="0.5", label="infeasible"))
    handles.append(Line2D([], [], color="0.3", marker="o", ms=2.5, lw=1.4, label=f"critical {y} (bisection)"))
    if overlay is not None:
        handles.append(_overlay(ax, overlay, xs_all))
    ax.set_xlim(xs_all.min(), xs_all.max()) if xs_all.size > 1 else None
    ax.set_ylim(df.attrs.get("lo", 0.0), df.attrs.get("hi", 1.0))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(handles=handles, fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    return fig


def _half(v: np.ndarray) -> float:
    return float(np.min(np.diff(v))) / 2 if v.size > 1 else 0.05


def _single(color: str) -> ListedColormap:
    return ListedColormap([color])


def _plot_sharing(cmp: Any, title: str | None) -> Figure:
    """Sharing rules side by side: shares of Pi* at the start, largest payment, payment variances, payments."""
    if not isinstance(cmp, SharingComparison):
        raise ValueError(f"kind 'sharing' needs a SharingComparison (mechlp.compare_sharing), got {type(cmp).__name__}")
    summary = cmp.summary_frame()
    parties = [*(ag.name for ag in cmp.env.agents), "designer"]
    rules = list(summary["rule"])
    pos = np.arange(len(rules))
    fig = new_figure(10.0, 7.0)
    (ax_share, ax_max), (ax_var, ax_pay) = fig.subplots(2, 2)
    bottom = np.zeros(len(rules))
    for j, p in enumerate(parties):  # stacked: the split of Pi*(start) between the parties
        vals = summary[f"share_{p}"].to_numpy(dtype=float)
        ax_share.bar(pos, vals, bottom=bottom, color=_COLORS[j % len(_COLORS)], label=p)
        bottom += vals
    ax_share.set_ylabel("share of Π* at the start")
    ax_max.bar(pos, summary["max_abs_transfer"].to_numpy(dtype=float), color=_COLORS[len(parties) % len(_COLORS)])
    ax_max.set_ylabel("largest |payment|")
    width = 0.8 / len(parties)
    for j, p in enumerate(parties):
        ax_var.bar(
            pos + (j - (len(parties) - 1) / 2) * width, summary[f"var_{p}"], width, color=_COLORS[j % len(_COLORS)]
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
                color=_COLORS[j % len(_COLORS)],
                alpha=0.8,
            )
    ax_pay.axhline(0.0, color="0.5", linewidth=0.8)
    ax_pay.set_xlabel("node")
    ax_pay.set_ylabel("payment to the designer")
    handles = [Patch(color=_COLORS[j % len(_COLORS)], label=p) for j, p in enumerate(parties)]
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
) -> Figure:
    """Draw a sweep or a result (kinds in the module docstring) and optionally save it.

    Parameters
    ----------
    data : DataFrame, path of a sweep CSV, Result or Mechanism
    kind : {"surplus", "feasibility", "fees", "tree", "states"}, optional
        Default: ``"tree"`` / ``"states"`` for a result; for a sweep, from its question (``minmax`` ->
        ``"surplus"``, ``feasible`` and ``fees`` -> ``"feasibility"``).
    path : str or path, optional
        Save the figure here (``.png``, ``.pdf`` or ``.svg``).
    x, y, panel : str, optional
        Grid keys for the x axis, the y axis (feasibility) and the panels (one per value). Defaults: the grid
        keys in order.
    columns : sequence of str, optional
        Columns to draw instead of the default ones of ``kind``.
    where : mapping, optional
        Keep the rows with these values (for grids with more than two keys).
    overlay : "yoon" or callable, optional
        Feasibility only: a frontier ``y = f(x)`` drawn over the regions.
    agent : str, optional
        Fees only: draw this agent's fee columns.
    title : str, optional
    max_histories : int
        Tree only: refuse larger trees.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; kinds are {KINDS}")
    if isinstance(data, Result | Mechanism):
        return draw(data, kind, path=path, title=title, max_histories=max_histories)
    if isinstance(data, SharingComparison) or kind == "sharing":
        return save_figure(_plot_sharing(data, title), path)
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
    if kind == "surplus":
        fig = _plot_surplus(df, x, panel, columns, title)
    elif kind == "fees":
        fig = _plot_fees(df, x, panel, columns, title, agent)
    elif kind == "boundary":
        fig = _plot_boundary(df, overlay, title)
    else:
        fig = _plot_feasibility(df, x, y, columns, overlay, title)
    return save_figure(fig, path)


plot_result = plot

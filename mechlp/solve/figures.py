"""Figures of one result: the history tree with surplus and transfers, or the Markov states' surplus.

:func:`draw` is what :meth:`mechlp.solve.result.Result.plot` calls and what :func:`mechlp.workflows.plots.plot`
uses for a result or a :class:`~mechlp.model.mechanism.Mechanism`. Matplotlib (Agg canvas, no pyplot) is
imported only when a figure is drawn.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from mechlp.model.mechanism import Mechanism
from mechlp.solve.style import COLORS, Style, get_style, new_figure, save_figure, style_context, symbol

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw", "history_labels", "MAX_TREE_HISTORIES"]

MAX_TREE_HISTORIES = 40


def _num(v: float, fmt: str) -> str:
    """Format without a negative zero."""
    v = float(v)
    return format(0.0 if abs(v) < 5e-5 else v, fmt)


def _tree_parts(data: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    if not isinstance(data, Mechanism):
        if getattr(data, "mechanism", None) is None:
            raise ValueError(f"the result has no mechanism to draw (status {data.status!r})")
        mech = data.mechanism
    else:
        mech = data
    return mech.space, mech.surplus(), mech.transfers


def history_labels(space: Any) -> list[str]:
    """The history each box of a tree plot follows, in words: ``"period 1, no reports yet"``, ``"period 3,
    after (v_H, c_L), then (v_L, c_L)"`` (the report profiles of the earlier periods, oldest first)."""
    desc = space.describe_histories()
    period = np.asarray(space.hist_period)
    out = []
    for h in range(space.n_hist):  # only drawn trees (at most MAX_TREE_HISTORIES boxes)
        if h == 0:
            out.append("period 1, no reports yet")
        else:
            out.append(f"period {int(period[h])}, after " + str(desc[h]).replace(" -> ", ", then "))
    return out


def _plot_tree(data: Any, title: str | None, max_histories: int, st: Style) -> Figure:
    space, pi, x = _tree_parts(data)
    if space.kind != "tree":
        raise ValueError(
            "a tree plot needs a history-tree result (a finite horizon, or horizon=T); "
            "use kind='states' on the Markov space"
        )
    if space.n_hist > max_histories:
        raise ValueError(
            f"the tree has {space.n_hist} histories; tree plots are for small horizons (at most {max_histories} "
            "histories, e.g. 2x2 types and 3 periods)"
        )
    env = space.env
    k = env.n_profiles
    names = [ag.name for ag in env.agents]
    period = np.asarray(space.hist_period)
    children: dict[int, list[tuple[int, int]]] = {h: [] for h in range(space.n_hist)}
    for g, c in enumerate(np.asarray(space.child_hist)):
        if c >= 0:
            children[g // k].append((g % k, int(c)))
    ypos: dict[int, float] = {}
    leaf = [0.0]

    def place(h: int) -> float:
        kids = children[h]
        if not kids:
            ypos[h] = leaf[0]
            leaf[0] += 1.0
        else:
            ypos[h] = float(np.mean([place(c) for _, c in kids]))
        return ypos[h]

    place(0)
    n_leaves = max(leaf[0], 1.0)
    depth = int(period.max())
    box_font = st.font * 0.78
    scale = box_font / 7.0  # the layout below was measured at 7 pt
    fig = new_figure(
        st,
        width=(2.6 * depth + 0.4) * scale,
        height=max(2.6, (1.05 * n_leaves * (k / 4) ** 0.5 + 1.0) * scale),
    )
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_xlim(-0.05, depth - 0.35)
    ax.set_ylim(n_leaves - 0.45, -0.75)
    heads = history_labels(space)
    boxes = {}
    for h in range(space.n_hist):
        lines = [heads[h], f"Π = {_num(pi[h], '.4f')}"]
        for p in range(k):
            prof = ",".join(env.profile_labels(p).values())
            pays = " ".join(_num(x[i, h * k + p], "+.3f") for i in range(len(names)))
            lines.append(f"({prof}) {pays}")
        boxes[h] = ax.text(
            period[h] - 1.0,
            ypos[h],
            "\n".join(lines),
            va="center",
            ha="left",
            family="monospace",
            fontsize=box_font,
            bbox={"boxstyle": "round,pad=0.3", "fc": "#f7f7f7", "ec": "0.5", "lw": 0.6},
        )
    head = (
        f"each box: the history it follows (earlier reports of {', '.join(names)}) and its surplus Π(h),\n"
        f"then per report profile the payments of {', '.join(names)} to the designer"
    )
    ax.set_title((title + "\n" if title else "") + head, fontsize=st.font * 0.9)
    fig.draw_without_rendering()  # the layout first, so the boxes' extents are final
    renderer = fig.canvas.get_renderer()
    inv = ax.transData.inverted()
    for h in range(space.n_hist):
        if not children[h]:
            continue
        right = inv.transform(boxes[h].get_window_extent(renderer).get_points())[1, 0]
        for _p, c in children[h]:
            ax.annotate(
                "",
                xy=(period[c] - 1.0 - 0.02, ypos[c]),
                xytext=(right + 0.02, ypos[h]),
                arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 0.6},
            )
    return fig


def _plot_states(data: Any, title: str | None, st: Style) -> Figure:
    """A dot plot of :math:`\\Pi(h)` per Markov state: one point per state on an axis spanning the values (not
    bars from 0, which flatten the differences), the value printed next to it, zero marked when in range."""
    space, pi, _ = _tree_parts(data)
    if space.kind != "markov":
        raise ValueError("kind='states' needs a Markov-space result; use kind='tree' on a history tree")
    labels = [str(s) for s in space.describe_histories()]
    n = len(labels)
    fig = new_figure(st, height=min(st.max_height, 0.9 + 0.28 * n * st.font / 9.0))
    ax = fig.subplots()
    pos = np.arange(n)[::-1]  # the first state on top
    neg = pi < 0
    for mask, color, lab in ((~neg, COLORS[1], "Π(h) ≥ 0"), (neg, COLORS[2], "Π(h) < 0")):
        if mask.any():
            ax.plot(pi[mask], pos[mask], "o", color=color, ms=st.marker * 1.6, ls="none", label=lab, zorder=3)
    lo, hi = float(pi.min()), float(pi.max())
    pad = 0.18 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
    ax.set_xlim(lo - pad, hi + pad)
    for v, y in zip(pi, pos, strict=True):
        ax.annotate(
            _num(v, ".4f"),
            (v, y),
            xytext=(0, 0.7 * st.font),
            textcoords="offset points",
            ha="center",
            fontsize=st.font * 0.8,
        )
    if lo < 0 < hi:
        ax.axvline(0.0, color="0.3", lw=st.line * 0.6, ls=":")
    ax.set_yticks(pos, labels)
    ax.set_ylim(-0.7, n - 0.3)
    ax.grid(axis="y", alpha=0.0)
    ax.set_xlabel(symbol("surplus") + ", the min-max surplus at each state")
    if title:
        ax.set_title(title)
    return fig


def draw(
    data: Any,
    kind: str | None = None,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    max_histories: int = MAX_TREE_HISTORIES,
    size: str = "page",
) -> Figure:
    """Draw a result or a mechanism: ``"tree"`` (history trees, the default there) or ``"states"`` (Markov).

    ``data`` is a :class:`~mechlp.model.mechanism.Mechanism` or anything with a ``mechanism`` attribute (a
    result); ``path`` saves the figure (``.png``, ``.pdf`` or ``.svg``); trees with more than
    ``max_histories`` histories are refused; ``size`` is one of :data:`mechlp.solve.style.SIZES`.
    """
    st = get_style(size)
    space = data.space
    kind = kind or ("tree" if space.kind == "tree" else "states")
    if kind not in ("tree", "states"):
        raise ValueError(f"kind {kind!r} needs a sweep DataFrame, not a result; use 'tree' or 'states'")
    with style_context(st):
        fig = _plot_tree(data, title, max_histories, st) if kind == "tree" else _plot_states(data, title, st)
        return save_figure(fig, path)

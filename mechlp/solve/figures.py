"""Figures of one result: the history tree with surplus and transfers, or the Markov states' surplus.

:func:`draw` is what :meth:`mechlp.solve.result.Result.plot` calls and what :func:`mechlp.workflows.plots.plot`
uses for a result or a :class:`~mechlp.model.mechanism.Mechanism`. Matplotlib (Agg canvas, no pyplot) is
imported only when a figure is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mechlp.model.mechanism import Mechanism

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw", "MAX_TREE_HISTORIES"]

MAX_TREE_HISTORIES = 40


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib loads only when a figure is drawn
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        p = Path(path)
        if p.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise ValueError(f"figure path must end in .png, .pdf or .svg, got {str(path)!r}")
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=150)
    return fig


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


def _plot_tree(data: Any, title: str | None, max_histories: int) -> Figure:
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
    fig = new_figure(3.2 * depth + 0.3, max(2.6, 0.95 * n_leaves * (k / 4) ** 0.5 + 0.9))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_xlim(-0.05, depth - 0.1)
    ax.set_ylim(n_leaves - 0.45, -0.75)
    boxes = {}
    for h in range(space.n_hist):
        lines = [f"Π = {_num(pi[h], '.4f')}"]
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
            fontsize=7,
            bbox={"boxstyle": "round,pad=0.3", "fc": "#f7f7f7", "ec": "0.5", "lw": 0.6},
        )
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
    head = f"history boxes: surplus Π(h), then per report profile the payments of {', '.join(names)} to the designer"
    ax.set_title((title + "\n" if title else "") + head, fontsize=9)
    return fig


def _plot_states(data: Any, title: str | None) -> Figure:
    space, pi, _ = _tree_parts(data)
    if space.kind != "markov":
        raise ValueError("kind='states' needs a Markov-space result; use kind='tree' on a history tree")
    labels = [space.describe_history(h) for h in range(space.n_hist)]
    fig = new_figure(1.1 * len(labels) + 2, 3.6)
    ax = fig.subplots()
    colors = ["#d62728" if v < 0 else "#1f77b4" for v in pi]
    ax.bar(range(len(pi)), pi, color=colors)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xticks(range(len(pi)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Π(h)")
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
) -> Figure:
    """Draw a result or a mechanism: ``"tree"`` (history trees, the default there) or ``"states"`` (Markov).

    ``data`` is a :class:`~mechlp.model.mechanism.Mechanism` or anything with a ``mechanism`` attribute (a
    result); ``path`` saves the figure (``.png``, ``.pdf`` or ``.svg``); trees with more than
    ``max_histories`` histories are refused.
    """
    space = data.space
    kind = kind or ("tree" if space.kind == "tree" else "states")
    if kind == "tree":
        return save_figure(_plot_tree(data, title, max_histories), path)
    if kind == "states":
        return save_figure(_plot_states(data, title), path)
    raise ValueError(f"kind {kind!r} needs a sweep DataFrame, not a result; use 'tree' or 'states'")

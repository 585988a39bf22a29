r"""The one figure style of mechlp: sizes, fonts, line styles, the symbol table and the panel grid.

Every figure (:mod:`mechlp.solve.figures` for one result, :mod:`mechlp.workflows.plots` for sweeps and regions)
is drawn through this module, so a figure for a journal column, a full page or a slide differs only in
``size``:

``"column"``
    3.4 in wide (a journal's single column), 7.5 pt text.
``"page"``
    6.9 in wide (a full text width), 9 pt text; the default.
``"slide"``
    10 in wide and at most 5.6 in high (16:9), 14 pt text and thick lines.

Labels are mathtext, read from :data:`SYMBOLS` (parameter keys, e.g. ``persistence`` -> :math:`\alpha`,
``discount`` -> :math:`\delta`) and from the column names of a sweep (:func:`column_label`: ``pi_root`` ->
:math:`\Pi^*`, ``pi(v_H,c_L)`` -> :math:`\Pi^*(v_H, c_L)`, ``fee_buyer(c_L)`` -> "buyer after :math:`c_L`").
Series get distinct colours (Okabe-Ito, readable by colour-blind readers and in grey), dash patterns and
markers (:func:`series_style`); markers of series ``j`` sit at every ``step``-th point starting at an offset
that depends on ``j``, so lines that coincide (Lamba 2022, Figure 2: :math:`\Pi^*(v_L, c_L) =
\Pi^*(v_H, c_H)` by symmetry) stay visible.

Matplotlib is imported only when a figure is drawn (Agg canvas, no pyplot); the label functions are plain
string work.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "SIZES",
    "STYLES",
    "SYMBOLS",
    "COLORS",
    "REGION_COLORS",
    "REGION_HATCHES",
    "INFEASIBLE_COLOR",
    "FORMATS",
    "Style",
    "get_style",
    "symbol",
    "column_label",
    "panel_title",
    "grid_shape",
    "series_style",
    "style_context",
    "new_figure",
    "panel_grid",
    "label_panels",
    "figure_legend",
    "save_figure",
]


@dataclass(frozen=True)
class Style:
    """One size of figure: width and largest height (inches), font size (pt), line width and marker size (pt),
    the panel's height over its width, and the PNG resolution."""

    name: str
    width: float
    max_height: float
    font: float
    line: float
    marker: float
    aspect: float
    dpi: int

    def rc(self) -> dict[str, Any]:
        """The matplotlib ``rcParams`` of this size (used in :func:`new_figure` and :func:`save_figure`)."""
        return {
            "font.size": self.font,
            "axes.titlesize": self.font,
            "axes.labelsize": self.font,
            "xtick.labelsize": self.font * 0.9,
            "ytick.labelsize": self.font * 0.9,
            "legend.fontsize": self.font * 0.9,
            "figure.titlesize": self.font * 1.1,
            "lines.linewidth": self.line,
            "lines.markersize": self.marker,
            "axes.linewidth": self.line * 0.6,
            "hatch.linewidth": self.line * 0.5,
            "mathtext.fontset": "dejavusans",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": self.line * 0.4,
            "legend.frameon": False,
            "savefig.dpi": self.dpi,
            "pdf.fonttype": 42,  # TrueType in PDF: editable text, accepted by journals' checks
            "svg.fonttype": "none",  # text stays text in SVG
        }


#: The sizes (module docstring).
STYLES: dict[str, Style] = {
    "column": Style("column", 3.4, 4.6, 7.5, 1.0, 3.0, 0.78, 300),
    "page": Style("page", 6.9, 8.5, 9.0, 1.3, 3.5, 0.72, 200),
    "slide": Style("slide", 10.0, 5.6, 14.0, 2.2, 6.0, 0.66, 150),
}
SIZES: tuple[str, ...] = tuple(STYLES)
#: Output formats, chosen by the file's extension.
FORMATS: tuple[str, ...] = (".png", ".pdf", ".svg")

#: Okabe and Ito's colour-blind safe palette (black first: the main series).
COLORS: tuple[str, ...] = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
#: Dash patterns (on, off, ... in line widths), the first solid; two series never share one below 8 series.
_DASHES: tuple[tuple[float, ...] | None, ...] = (
    None,
    (5.0, 2.0),
    (1.0, 1.5),
    (6.0, 1.5, 1.5, 1.5),
    (3.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    (8.0, 2.5),
    (2.0, 2.0),
    (4.0, 1.5, 1.0, 1.5, 1.0, 1.5),
)
_MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "X", "<")
#: Fill colours and hatches of feasibility regions per budget notion (nested regions: the hatches cross).
REGION_COLORS: dict[str, str] = {
    "ex_ante": "#9ecae1",
    "interim": "#2171b5",
    "ex_post": "#08306b",
    "lump_sum": "#fdae6b",
}
REGION_HATCHES: tuple[str, ...] = ("\\\\\\", "///", "---", "|||")
#: The infeasible part of a region plot (a legend entry of its own).
INFEASIBLE_COLOR = "#e6e6e6"

#: Mathtext symbols of parameter keys (model-file keys and the factories' keyword names).
SYMBOLS: dict[str, str] = {
    "persistence": r"$\alpha$",
    "alpha": r"$\alpha$",
    "discount": r"$\delta$",
    "delta": r"$\delta$",
    "horizon": r"$T$",
    "pi_root": r"$\Pi^*$",
    "pi_min": r"$\min_h\, \Pi^*(h)$",
    "surplus": r"$\Pi(h)$",
    "outside_option": r"outside option $\underline{u}$",
}
_AGENT_KEY = re.compile(r"^agents\.([^.]+)\.(.+)$")
_SUBSCRIPTED = re.compile(r"^([A-Za-z]+)_\{?([A-Za-z0-9]+)\}?$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9 ]*$")
_FEE = re.compile(r"^fee_([^()]+?)(?:_(first|pv|max))?(?:\((.*)\))?$")


def get_style(size: str | Style = "page") -> Style:
    """The :class:`Style` of ``size`` (one of :data:`SIZES`, or a :class:`Style`)."""
    if isinstance(size, Style):
        return size
    if size not in STYLES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return STYLES[size]


def _text(s: str) -> str:
    """Plain text safe outside mathtext (a ``$`` would open math)."""
    return s.replace("$", r"\$")


def _math_label(label: str) -> str:
    """One type or action label inside mathtext: ``v_H`` -> ``v_{H}``, a word -> upright, else escaped."""
    m = _SUBSCRIPTED.match(label)
    if m:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if _WORD.match(label):
        return r"\mathrm{" + label.replace(" ", r"\ ") + "}"
    return r"\mathrm{" + re.sub(r"([\\{}_^$%#&~ ])", r"\\\1", label) + "}"


def symbol(key: str, symbols: Mapping[str, str] | None = None) -> str:
    r"""The axis label of a parameter key: mathtext from :data:`SYMBOLS` (or ``symbols``, which wins).

    ``persistence`` and ``alpha`` give :math:`\alpha`, ``discount`` and ``delta`` give :math:`\delta`;
    ``agents.<name>.<key>`` gives the symbol of ``key`` with the agent as subscript
    (``agents.seller.persistence`` -> :math:`\alpha_{\mathrm{seller}}`); other keys are returned as they are
    (a ``$`` escaped).
    """
    table = {**SYMBOLS, **(symbols or {})}
    if key in table:
        return table[key]
    m = _AGENT_KEY.match(key)
    if m and _is_math(table.get(m.group(2), "")):
        inner = table[m.group(2)][1:-1]
        return f"${inner}_{{{_math_label(m.group(1))}}}$"
    if m:
        return _text(f"{m.group(1)}: {m.group(2).replace('_', ' ')}")
    return _text(key)


def column_label(col: str, symbols: Mapping[str, str] | None = None) -> str:
    r"""The legend label of a sweep column.

    ``pi_root`` -> :math:`\Pi^*`; ``pi(v_H,c_L)`` -> :math:`\Pi^*(v_H, c_L)`; fee columns of
    :func:`mechlp.workflows.sweep.sweep` per agent: ``fee_buyer_first`` -> "buyer, period 1",
    ``fee_buyer(c_L)`` -> "buyer after :math:`c_L`" (the fee after the other agent's report, Lamba 2022,
    section 6.1), ``fee_buyer_pv`` -> "buyer, present value", ``fee_buyer`` -> "buyer" (Yoon's lump-sum fee),
    ``fee_buyer_max`` -> "buyer, largest"; parameter keys as :func:`symbol`.
    """
    table = {**SYMBOLS, **(symbols or {})}
    if col in table:
        return table[col]
    if col.startswith("pi(") and col.endswith(")"):
        labels = [s.strip() for s in col[3:-1].split(",")]
        return r"$\Pi^*(" + ", ".join(_math_label(s) for s in labels) + ")$"
    m = _FEE.match(col)
    if m:
        agent, part, other = m.groups()
        text = _text(agent)
        if other is not None:
            others = ", ".join(_math_label(s.strip()) for s in other.split(","))
            return f"{text} after ${others}$"
        return text + {None: "", "first": ", period 1", "pv": ", present value", "max": ", largest"}[part]
    return symbol(col, symbols)


def panel_title(key: str, value: Any, symbols: Mapping[str, str] | None = None) -> str:
    r"""A panel's title ``key = value`` with the key's symbol, e.g. :math:`\delta = 0.95`."""
    sym = symbol(key, symbols)
    val = f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else _text(str(value))
    if _is_math(sym) and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{sym[:-1]} = {val}$"
    return f"{sym} = {val}"


def _is_math(s: str) -> bool:
    """``s`` is one mathtext expression ``$...$``."""
    return len(s) > 1 and s.startswith("$") and s.endswith("$") and s.count("$") == 2


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """``(rows, columns)`` of a grid of ``n`` panels: ``ncols`` columns, by default the near-square
    ``ceil(sqrt(n))`` (12 panels: 3 x 4)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of panels must be a positive integer, got {n!r}")
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    elif isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


def series_style(j: int, n_points: int, n_series: int, style: Style) -> dict[str, Any]:
    """Keyword arguments of ``Axes.plot`` for series ``j``: colour, dash pattern, marker and the points that
    carry it (``markevery``: every ``step``-th point from an offset that differs between series, so markers of
    coinciding lines do not sit on each other), the first series a little thicker."""
    kw: dict[str, Any] = {
        "color": COLORS[j % len(COLORS)],
        "lw": style.line * (1.5 if j == 0 else 1.0),
        "marker": _MARKERS[j % len(_MARKERS)],
        "ms": style.marker,
        "mfc": "white" if j % 2 else COLORS[j % len(COLORS)],
        "mew": style.line * 0.7,
        "zorder": 2 + j * 0.01,
    }
    dashes = _DASHES[j % len(_DASHES)]
    if dashes is None:
        kw["ls"] = "-"
    else:
        kw["ls"] = (0, dashes)
    if n_points > 1:
        step = max(1, min(n_points // 2, max(n_series, n_points // 8)))
        kw["markevery"] = (int(round(j * step / max(n_series, 1))) % step, step)
    return kw


def style_context(size: str | Style = "page") -> Any:
    """A context in which matplotlib draws with the ``rcParams`` of ``size`` (fonts, line widths, mathtext):
    :func:`mechlp.solve.figures.draw` and :func:`mechlp.workflows.plots.plot` draw inside one."""
    from matplotlib import rc_context

    return rc_context(get_style(size).rc())


def new_figure(
    size: str | Style = "page",
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float | None = None,
    height: float | None = None,
) -> Figure:
    """An empty figure of ``size`` for a grid of ``nrows x ncols`` panels (Agg canvas, constrained layout):
    the size's width (or ``width`` inches), panels of the size's aspect, at most its largest height (or
    ``height`` inches)."""
    from matplotlib import rc_context  # matplotlib loads only when a figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    st = get_style(size)
    width = st.width if width is None else width
    if height is None:
        extra = 0.9 * st.font / 9.0  # title and legend
        height = min(st.max_height, nrows * width / ncols * st.aspect + extra)
    with rc_context(st.rc()):
        fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    fig._mechlp_style = st  # read by panel_grid, figure_legend and save_figure
    return fig


def _style_of(fig: Figure) -> Style:
    return getattr(fig, "_mechlp_style", STYLES["page"])


def panel_grid(fig: Figure, n: int, ncols: int | None = None, *, sharey: bool = False) -> tuple[list[Axes], Any]:
    """``n`` panels in a grid on ``fig`` (:func:`grid_shape`); returns the panels in reading order and the free
    cell of the last row (an axis without frame for the legend) or ``None``. ``sharey`` gives every panel the
    same y-scale (tick labels on the first column only)."""
    from matplotlib import rc_context

    rows, cols = grid_shape(n, ncols)
    with rc_context(_style_of(fig).rc()):
        grid = fig.subplots(rows, cols, squeeze=False, sharey=sharey)
    flat = [ax for row in grid for ax in row]
    panels, free = flat[:n], flat[n:]
    for ax in free[1:]:
        fig.delaxes(ax)
    spare = None
    if free:
        spare = free[0]
        spare.set_axis_off()
    if sharey:
        for ax in panels:
            if ax.get_subplotspec().colspan.start != 0:
                ax.tick_params(labelleft=False)
    return panels, spare


def label_panels(panels: list[Axes], ncols: int, xlabel: str, ylabel: str) -> None:
    """The x label under the lowest panel of each column, the y label left of the first column."""
    n = len(panels)
    for i, ax in enumerate(panels):
        if i + ncols >= n:
            ax.set_xlabel(xlabel)
        if i % ncols == 0:
            ax.set_ylabel(ylabel)


def figure_legend(fig: Figure, handles: list, labels: list[str] | None = None, spare: Any = None) -> Any:
    """The one legend of a figure: in the free cell ``spare`` when there is one, else under the panels."""
    from matplotlib import rc_context

    labels = labels if labels is not None else [h.get_label() for h in handles]
    with rc_context(_style_of(fig).rc()):
        if spare is not None:
            return spare.legend(handles, labels, loc="center", frameon=False)
        st = _style_of(fig)
        longest = max((len(re.sub(r"\\[A-Za-z]+|[${}^_]", "x", lab)) for lab in labels), default=1)
        entry = (longest * 0.55 + 4.0) * st.font * 0.9 / 72.0  # inches: text of ~0.55 em per character + handle
        ncol = min(len(handles), max(1, int(fig.get_figwidth() / entry)))
        return fig.legend(handles, labels, loc="outside lower center", ncols=ncol, frameon=False)


def save_figure(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Write ``fig`` to ``path`` (PNG, PDF or SVG by the extension; PNG at the size's resolution) and return it;
    ``None`` writes nothing."""
    if path is not None:
        from matplotlib import rc_context

        p = Path(path)
        if p.suffix.lower() not in FORMATS:
            raise ValueError(f"figure path must end in .png, .pdf or .svg, got {str(path)!r}")
        p.parent.mkdir(parents=True, exist_ok=True)
        st = _style_of(fig)
        with rc_context(st.rc()):
            fig.savefig(p, dpi=st.dpi)
    return fig

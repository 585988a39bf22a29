"""Figures (mechlp.workflows.plots) and exports (mechlp.workflows.export)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest

from mechlp.catalog.examples import lamba_usstp, yoon_binary
from mechlp.cli.main import main
from mechlp.solve import questions as design
from mechlp.solve.style import column_label, get_style, save_figure, symbol
from mechlp.workflows.export import latex_escape, result_to_dict, to_json, to_latex
from mechlp.workflows.plots import plot, yoon_frontier
from mechlp.workflows.sweep import sweep


@pytest.fixture(scope="module")
def minmax_df():
    return sweep(lamba_usstp, {"delta": [0.8, 0.95], "alpha": [0.5, 0.7, 0.9]}, executor="serial", progress=False)


@pytest.fixture(scope="module")
def feasible_df():
    return sweep(
        lamba_usstp,
        {"alpha": [0.5, 0.7, 0.9], "delta": [0.5, 0.8, 0.95]},
        "feasible",
        executor="serial",
        progress=False,
    )


def test_surplus_panels_and_lines(minmax_df, tmp_path):
    path = tmp_path / "s.png"
    fig = plot(minmax_df, path=path)  # kind from the question: surplus
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == [r"$\delta = 0.8$", r"$\delta = 0.95$"]
    labels = [line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels[:4] == [r"$\Pi^*$", r"$\Pi^*(v_{L}, c_{L})$", r"$\Pi^*(v_{L}, c_{H})$", r"$\Pi^*(v_{H}, c_{L})$"]
    # the USSTP is symmetric: Pi*(v_H, c_H) = Pi*(v_L, c_L), and the legend says so
    assert labels[4] == r"$\Pi^*(v_{H}, c_{H})$ (= $\Pi^*(v_{L}, c_{L})$)"
    assert axes[0].get_xlabel() == r"$\alpha$"
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), minmax_df[minmax_df.delta == 0.95]["pi_root"])
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_fees_plot_and_pdf(minmax_df, tmp_path):
    fig = plot(minmax_df, "fees", path=tmp_path / "f.pdf")
    labels = [line.get_label() for line in fig.get_axes()[0].get_lines()]
    # every agent's fees, labelled in words (the seller's equal the buyer's by the USSTP's symmetry)
    assert labels[:3] == ["buyer, period 1", "buyer after $c_{L}$", "buyer after $c_{H}$"]
    assert [lab.split(" (=")[0] for lab in labels[3:]] == [
        "seller, period 1",
        "seller after $v_{L}$",
        "seller after $v_{H}$",
    ]
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    fig = plot(minmax_df, "fees", agent="seller")
    assert [line.get_label() for line in fig.get_axes()[0].get_lines()][1] == "seller after $v_{L}$"


def test_feasibility_regions_and_overlay(feasible_df):
    fig = plot(feasible_df, overlay="yoon", title="USSTP")
    ax = fig.get_axes()[0]
    assert len(ax.collections) == 2  # ex ante and interim regions
    assert ax.get_legend() is None  # the figure's one legend
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["feasible: ex ante", "feasible: interim", "infeasible", r"Yoon (2021): $\delta = 1/(3 - 2\alpha)$"]
    assert [c.get_hatch() for c in ax.collections] == ["\\\\\\", "///"]  # nested regions: the hatches cross
    line = ax.get_lines()[-1]
    np.testing.assert_allclose(line.get_ydata(), yoon_frontier(line.get_xdata()))
    assert ax.get_xlabel() == r"$\alpha$" and ax.get_ylabel() == r"$\delta$"


def test_tree_and_states():
    tree = design.minmax(lamba_usstp(0.7, 0.95, horizon=2))
    fig = plot(tree)
    texts = [t.get_text() for t in fig.get_axes()[0].texts if t.get_text()]
    assert len(texts) == 5 and texts[0].startswith(f"period 1, no reports yet\nΠ = {tree.surplus[0]:.4f}")
    # every box says which history it follows: the reports of period 1, in words
    assert [t.splitlines()[0] for t in texts[1:]] == [
        "period 2, after (v_L, c_L)",
        "period 2, after (v_L, c_H)",
        "period 2, after (v_H, c_L)",
        "period 2, after (v_H, c_H)",
    ]
    three = design.minmax(lamba_usstp(0.7, 0.95, horizon=3))
    heads = [t.get_text().splitlines()[0] for t in plot(three).get_axes()[0].texts if t.get_text()]
    assert "period 3, after (v_H, c_L), then (v_L, c_H)" in heads
    markov = design.minmax(lamba_usstp(0.7, 0.95))
    ax = plot(markov).get_axes()[0]
    assert not ax.patches  # no bars from 0
    xs = np.concatenate([line.get_xdata() for line in ax.get_lines() if line.get_marker() == "o"])
    np.testing.assert_allclose(np.sort(xs), np.sort(markov.surplus))  # one point per Markov state
    lo, hi = ax.get_xlim()  # the axis spans the values, not [0, max]: the differences are visible
    assert lo > 0.8 * markov.surplus.min() and hi - lo < 2 * (markov.surplus.max() - markov.surplus.min())
    with pytest.raises(ValueError, match="tree plots are for small horizons"):
        plot(design.minmax(lamba_usstp(0.7, 0.95, horizon=4)), "tree")


def test_plot_errors(minmax_df, feasible_df, tmp_path):
    with pytest.raises(ValueError, match="unknown plot kind 'pie'"):
        plot(minmax_df, "pie")
    with pytest.raises(ValueError, match="no feasible_\\* columns"):
        plot(minmax_df, "feasibility")
    with pytest.raises(ValueError, match="no surplus columns"):
        plot(feasible_df.drop(columns=["pi_root"]), "surplus")
    with pytest.raises(ValueError, match="must end in .png, .pdf or .svg"):
        plot(minmax_df, path=tmp_path / "fig.jpg")
    with pytest.raises(ValueError, match="needs a Result"):
        plot(minmax_df, "tree")
    three = sweep(
        lamba_usstp,
        {"alpha": [0.6, 0.7], "delta": [0.9, 0.95], "horizon": ["infinite"]},
        executor="serial",
        progress=False,
    )
    plot(three, where={"delta": 0.9})  # constant keys need no filter
    with pytest.raises(ValueError, match="selects no rows"):
        plot(three, where={"delta": 0.5})


def test_latex_and_json_exports(minmax_df, tmp_path):
    table = minmax_df[["alpha", "delta", "pi_root", "argmin", "interim_ok"]].head(2)
    tex = to_latex(table, tmp_path / "t.tex", header={"pi_root": r"$\Pi^*$"}, caption="min-max 50% & more", label="t")
    lines = tex.splitlines()
    assert lines[:4] == ["\\begin{table}[htbp]", "\\centering", "\\begin{tabular}{rrrll}", "\\toprule"]
    assert lines[4] == r"alpha & delta & $\Pi^*$ & argmin & interim\_ok \\"
    # alpha = 0.5 is iid: every Pi* entry ties, so the argmin label is whichever float noise picks; check the
    # exporter's formatting of the frame's own value (escaped), not the tie-break
    # six significant digits of each column's largest value, trailing zeros common to the column dropped
    assert lines[6] == "0.5 & 0.8 & 0.900000 & " + latex_escape(str(table["argmin"].iloc[0])) + r" & yes \\"
    assert r"\caption{min-max 50\% \& more}" in tex and (tmp_path / "t.tex").read_text() == tex
    assert latex_escape("a_b#c") == r"a\_b\#c"
    res = design.feasibility(lamba_usstp(0.9, 0.8), "interim")
    data = result_to_dict(res)
    assert data["status"] == "infeasible" and data["verification"]["ok"]
    assert data["surplus"] == [] and data["diagnosis"]["negative"][0]["where"] == "after (v_H, c_L)"
    text = to_json(minmax_df, tmp_path / "s.json")
    loaded = json.loads(text)
    assert loaded["attrs"]["grid"] == ["delta", "alpha"] and len(loaded["rows"]) == len(minmax_df)
    assert json.loads(to_json(design.minmax(lamba_usstp(0.7, 0.95))))["fees"]["buyer"]["other"] == "seller"
    assert json.loads(to_json({"x": np.array([1.0, np.nan])})) == {"x": [1.0, None]}


def test_result_plot_method(tmp_path):
    """`Result.plot()` draws the same figure as `mechlp.workflows.plots.plot(result)` and saves it."""
    res = design.minmax(lamba_usstp(0.7, 0.95, horizon=2))
    fig = res.plot(path=tmp_path / "tree.png")
    assert (tmp_path / "tree.png").stat().st_size > 1000
    assert len(fig.axes) >= 1


# ---------------------------------------------------------------------------------------------- style (issue 15)
def test_symbol_table_labels():
    """Axis and legend labels are mathtext from the symbol table (mechlp.solve.style)."""
    assert [symbol(k) for k in ("persistence", "alpha", "discount", "delta")] == [r"$\alpha$"] * 2 + [r"$\delta$"] * 2
    assert symbol("agents.seller.persistence") == r"$\alpha_{\mathrm{seller}}$"
    assert column_label("pi_root") == r"$\Pi^*$"
    assert column_label("pi(v_H,c_L)") == r"$\Pi^*(v_{H}, c_{L})$"
    assert column_label("fee_buyer_first") == "buyer, period 1"
    assert column_label("fee_seller(v_H)") == "seller after $v_{H}$"
    assert column_label("fee_buyer") == "buyer" and column_label("fee_buyer_max") == "buyer, largest"
    assert column_label("price$") == r"price\$"  # a dollar sign does not open mathtext
    assert symbol("persistence", {"persistence": "rho"}) == "rho"
    with pytest.raises(ValueError, match="size must be one of"):
        get_style("poster")


def _panel_frame(n: int) -> pd.DataFrame:
    """A synthetic minmax-like sweep with ``n`` panel values (columns named as the sweep names them)."""
    alphas = np.linspace(0.5, 0.95, 10)
    rows = [
        {"delta": d, "alpha": a, "status": "ok", "pi_root": d - a, "pi(v_L,c_L)": d * a, "pi(v_H,c_H)": d * a}
        for d in np.linspace(0.5, 0.95, n)
        for a in alphas
    ]
    df = pd.DataFrame(rows)
    df.attrs.update({"grid": ["delta", "alpha"], "question": "minmax"})
    return df


def _pixels(fig, tmp_path) -> tuple[int, int]:
    """Width and height in pixels of the PNG the figure is saved as (read from the file's IHDR header)."""
    path = tmp_path / "size.png"
    save_figure(fig, path)
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_twelve_panels_make_a_grid_of_sane_size(tmp_path):
    """A 12-value panel key gives a 3 x 4 grid (not an 8280 px strip), about as high as wide."""
    fig = plot(_panel_frame(12), x="alpha", panel="delta")
    panels = [ax for ax in fig.get_axes() if ax.get_visible() and ax.axison]
    assert len(panels) == 12
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    cols = {round(ax.get_position().x0, 3) for ax in panels}
    assert (len(rows), len(cols)) == (3, 4)
    w, h = _pixels(fig, tmp_path)
    assert w <= 1500 and 0.5 < h / w < 1.3, (w, h)
    w_col, _ = _pixels(plot(_panel_frame(12), x="alpha", panel="delta", size="column"), tmp_path)
    w_slide, h_slide = _pixels(plot(_panel_frame(12), x="alpha", panel="delta", size="slide"), tmp_path)
    assert w_col == round(3.4 * 300) and (w_slide, h_slide) == (1500, 840)  # 10 x 5.6 in at 150 dpi
    fig = plot(_panel_frame(12), x="alpha", panel="delta", ncols=6)
    assert len({round(ax.get_position().y0, 3) for ax in fig.get_axes() if ax.axison}) == 2
    with pytest.raises(ValueError, match="ncols must be a positive integer"):
        plot(_panel_frame(2), ncols=0)


def test_one_legend_and_shared_scales():
    """One legend for the whole figure (in the free cell of the grid or under the panels), none in a panel;
    sharey=True gives every panel the same y-limits."""
    fig = plot(_panel_frame(3), x="alpha", panel="delta")  # 2 x 2 grid: the legend fills the free cell
    legends = [ax.get_legend() for ax in fig.get_axes() if ax.get_legend() is not None] + list(fig.legends)
    assert len(legends) == 1 and not legends[0].axes.axison
    fig = plot(_panel_frame(4), x="alpha", panel="delta")  # full grid: under the panels
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.get_axes())
    panels = [ax for ax in plot(_panel_frame(4), x="alpha", panel="delta").get_axes() if ax.axison]
    assert len({ax.get_ylim() for ax in panels}) > 1
    panels = [ax for ax in plot(_panel_frame(4), x="alpha", panel="delta", sharey=True).get_axes() if ax.axison]
    assert len({ax.get_ylim() for ax in panels}) == 1


def test_coinciding_lines_stay_distinguishable(minmax_df):
    """Pi*(v_L, c_L) = Pi*(v_H, c_H) in the USSTP (Lamba 2022, Figure 2): the two lines differ in colour, dash
    pattern and marker, and their markers sit at different points."""
    ax = plot(minmax_df, x="alpha", panel="delta").get_axes()[0]
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    a, b = lines[1], lines[4]
    np.testing.assert_allclose(a.get_ydata(), b.get_ydata())  # they do coincide
    assert a.get_color() != b.get_color() and a.get_marker() != b.get_marker()
    # the dash pattern itself (get_linestyle() names every custom pattern "--"; matplotlib keeps the pattern here)
    assert a._unscaled_dash_pattern != b._unscaled_dash_pattern
    styles = {(line.get_marker(), str(line._unscaled_dash_pattern), line.get_color()) for line in lines}
    assert len(styles) == len(lines)
    big = plot(_panel_frame(2), x="alpha", panel="delta").get_axes()[0]
    one, two = [line for line in big.get_lines() if "pi" in line.get_label() or "Pi" in line.get_label()][1:3]
    assert set(np.arange(10)[one.get_markevery()[0] :: one.get_markevery()[1]]).isdisjoint(
        np.arange(10)[two.get_markevery()[0] :: two.get_markevery()[1]]
    )


def test_fees_one_series_per_agent():
    """Yoon's lump-sum fees: one series per agent, labelled by the agent."""
    df = sweep(yoon_binary, {"alpha": [0.6, 0.8], "delta": [0.8, 0.9]}, "fees", executor="serial", progress=False)
    fig = plot(df, "fees", x="alpha", panel="delta")
    lines = [line.get_label() for line in fig.get_axes()[0].get_lines() if not line.get_label().startswith("_")]
    assert [lab.split(" (=")[0] for lab in lines] == ["buyer", "seller"]


def test_pdf_svg_and_png_by_extension(minmax_df, tmp_path):
    for ext, magic in ((".pdf", b"%PDF"), (".svg", b"<?xml"), (".png", b"\x89PNG")):
        plot(minmax_df, path=tmp_path / f"fig{ext}", size="column")
        assert (tmp_path / f"fig{ext}").read_bytes()[:5].startswith(magic)
    assert "<svg" in (tmp_path / "fig.svg").read_text()


def test_cli_plot_size_ncols_sharey(minmax_df, tmp_path):
    csv = tmp_path / "s.csv"
    minmax_df.to_csv(csv, index=False)
    out = tmp_path / "s.svg"
    code = main(
        ["plot", str(csv), "--kind", "surplus", "--out", str(out), "--size", "slide", "--ncols", "1", "--sharey"]
    )
    assert code == 0 and out.read_text().count("<svg") == 1

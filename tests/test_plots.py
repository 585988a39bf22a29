"""Figures (mechlp.workflows.plots) and exports (mechlp.workflows.export)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.solve import questions as design
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
    assert [ax.get_title() for ax in axes] == ["delta = 0.8", "delta = 0.95"]
    labels = [line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["Π* (period 1)", "Π*(v_L,c_L)", "Π*(v_L,c_H)", "Π*(v_H,c_L)", "Π*(v_H,c_H)"]
    assert axes[0].get_xlabel() == "alpha"
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), minmax_df[minmax_df.delta == 0.95]["pi_root"])
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_fees_plot_and_pdf(minmax_df, tmp_path):
    fig = plot(minmax_df, "fees", path=tmp_path / "f.pdf")
    labels = [line.get_label() for line in fig.get_axes()[0].get_lines()]
    assert labels == ["fee_buyer_first", "fee_buyer(c_L)", "fee_buyer(c_H)"]
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    fig = plot(minmax_df, "fees", agent="seller")
    assert fig.get_axes()[0].get_lines()[1].get_label() == "fee_seller(v_L)"


def test_feasibility_regions_and_overlay(feasible_df):
    fig = plot(feasible_df, overlay="yoon", title="USSTP")
    ax = fig.get_axes()[0]
    assert len(ax.collections) == 2  # ex ante and interim regions
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["feasible: ex ante", "feasible: interim", "Yoon (2021): δ = 1/(3 − 2α)"]
    line = ax.get_lines()[-1]
    np.testing.assert_allclose(line.get_ydata(), yoon_frontier(line.get_xdata()))
    assert ax.get_xlabel() == "alpha" and ax.get_ylabel() == "delta"


def test_tree_and_states():
    tree = design.minmax(lamba_usstp(0.7, 0.95, horizon=2))
    fig = plot(tree)
    texts = [t.get_text() for t in fig.get_axes()[0].texts if t.get_text()]
    assert len(texts) == 5 and texts[0].startswith(f"Π = {tree.surplus[0]:.4f}")
    fig = plot(design.minmax(lamba_usstp(0.7, 0.95)))
    assert len(fig.get_axes()[0].patches) == 5  # one bar per Markov state
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

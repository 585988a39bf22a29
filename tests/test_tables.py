"""Tables (mechlp.workflows.export) and sharing comparisons (mechlp.workflows.sharing.compare_sharing).

The central property: every number a table prints is the answer's JSON value rounded by the one rule, so each
test reads the JSON (``to_dict`` / ``to_json``), rounds it with the rule re-implemented here
(:func:`rounded_column`), and compares with the printed cells parsed back to floats.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mechlp as ml
from mechlp.catalog.examples import lamba_usstp, yoon_binary
from mechlp.cli import main
from mechlp.constructions.fees import lump_sum_fees
from mechlp.model.bisection import Scan
from mechlp.solve import questions as design
from mechlp.solve.critical import CriticalDelta
from mechlp.workflows.export import (
    SCIENTIFIC_BELOW,
    SCIENTIFIC_FROM,
    SIGNIFICANT_DIGITS,
    column_format,
    latex_escape,
    table_frame,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
    to_text,
)
from mechlp.workflows.plots import plot
from mechlp.workflows.sharing import RULES, compare_sharing, payment_weights, share_surplus
from mechlp.workflows.sweep import sweep

MODEL = Path(__file__).resolve().parent.parent / "models" / "lamba_usstp.toml"
NEGATIVE_ZERO = re.compile(r"(^|[^0-9.])-0(\.0*)?($|[^0-9.])")


# ------------------------------------------------------------------------------------------ independent rounding
def rounded_column(values: list[float], digits: int = SIGNIFICANT_DIGITS) -> list[float]:
    """The documented rule, written again: ``digits`` significant digits of the column's largest magnitude
    (fixed notation), or of each value (scientific notation outside [1e-3, 1e6))."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    m = max(finite, default=0.0)
    if m == 0.0:
        return [0.0 if v is not None else None for v in values]
    e = math.floor(math.log10(m))
    if e < SCIENTIFIC_BELOW or e >= SCIENTIFIC_FROM:
        return [None if v is None else float(f"{v:.{digits - 1}e}") for v in values]
    d = max(digits - 1 - e, 0)
    return [None if v is None else round(v, d) for v in values]


def latex_rows(tex: str) -> tuple[list[str], list[list[str]]]:
    lines = tex.splitlines()
    a, b = lines.index("\\midrule"), lines.index("\\bottomrule")
    head = lines[a - 1].removesuffix(r" \\").split(" & ")
    return head, [ln.removesuffix(r" \\").split(" & ") for ln in lines[a + 1 : b]]


def markdown_rows(md: str) -> tuple[list[str], list[list[str]]]:
    lines = md.strip().splitlines()
    cells = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return cells[0], cells[2:]


def parse(cell: str) -> float | None:
    """A printed number back to a float (fixed, ``m e x`` or LaTeX ``$m \\times 10^{x}$``)."""
    if cell == "":
        return None
    m = re.fullmatch(r"\$(-?[0-9.]+) \\times 10\^\{(-?\d+)\}\$", cell)
    if m:
        return float(f"{m.group(1)}e{m.group(2)}")
    return float(cell)


def assert_column_matches(printed: list[str], json_values: list[float], what: str) -> None:
    expected = rounded_column(json_values)
    got = [parse(c) for c in printed]
    assert got == expected, f"{what}: printed {printed} vs JSON rounded {expected}"
    assert not any(NEGATIVE_ZERO.search(c) for c in printed), f"{what}: a negative zero in {printed}"


def check_table(tex: str, json_columns: dict[str, list[float]]) -> None:
    head, rows = latex_rows(tex)
    for col, values in json_columns.items():
        j = head.index(col.replace("_", r"\_"))
        assert_column_matches([r[j] for r in rows], values, col)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def usstp():
    return lamba_usstp(0.7, 0.95)


@pytest.fixture(scope="module")
def mm(usstp):
    return design.minmax(usstp)


@pytest.fixture(scope="module")
def comparison(mm):
    return compare_sharing(mm, ["equal", "designer", "maxmin", "min-max-transfer"])


@pytest.fixture(scope="module")
def sweep_df():
    return sweep(lamba_usstp, {"delta": [0.8, 0.95], "alpha": [0.5, 0.7, 0.9]}, executor="serial", progress=False)


# ------------------------------------------------------------------------------------------ the rounding rule
def test_column_format_rule_by_hand():
    fmt = column_format([1.879871234, -1e-12, 0.25])
    assert [fmt.text(v) for v in (1.879871234, -1e-12, 0.25)] == ["1.87987", "0.00000", "0.25000"]
    fmt = column_format([0.5, 0.7])
    assert [fmt.text(v) for v in (0.5, 0.7)] == ["0.5", "0.7"]  # trailing zeros common to the column dropped
    fmt = column_format([41.0, 3.0])
    assert fmt.text(41.0) == "41" and fmt.text(3.0) == "3"
    fmt = column_format([2.5e-15, -1.0e-16])
    assert fmt.text(2.5e-15) == "2.5e-15" and fmt.text(2.5e-15, "latex") == r"$2.5 \times 10^{-15}$"
    assert fmt.text(-1.0e-16) == "-1e-16"
    fmt = column_format([1234567.0])
    assert fmt.text(1234567.0) == "1.23457e6"
    assert column_format([-0.0, 0.0]).text(-0.0) == "0"
    assert column_format([float("nan"), 1.0]).text(float("nan")) == ""
    assert column_format([float("-inf"), 1.0]).text(float("-inf"), "latex") == r"$-\infty$"
    assert column_format([1.23456789], digits=3).text(1.23456789) == "1.23"


def test_no_negative_zero_in_any_renderer():
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "noise": -np.abs(rng.normal(scale=1e-13, size=6)),
            "mixed": np.r_[-rng.random(3) * 1e-9, rng.random(3) * 3.0],
            "neg_zero": np.full(6, -0.0),
            "lists": [[-1e-12, 2.0]] * 6,
        }
    )
    for text in (to_latex(df), to_markdown(df), to_text(df)):
        assert not NEGATIVE_ZERO.search(text), text


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: column_format([1.0], digits=0), "digits must be a positive integer"),
        (lambda: to_latex(pd.DataFrame({"a": [1.0]}), columns=["b"]), r"to_latex: no column\(s\) \['b'\]"),
        (lambda: to_markdown(pd.DataFrame({"a": [1.0]}), columns=["b"]), r"to_markdown: no column\(s\)"),
        (lambda: table_frame(pd.DataFrame({"a": [1.0]}), "surplus"), "what='surplus' is for answers"),
    ],
)
def test_table_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unknown_table_and_type(mm):
    with pytest.raises(ValueError, match=r"what='pie': a Result has the tables \['surplus', 'transfers', 'fees'\]"):
        to_latex(mm, what="pie")
    with pytest.raises(TypeError, match="no table for a object"):
        to_latex(object())


# ------------------------------------------------------------------------------------------ numbers equal the JSON
def test_result_tables_equal_the_json(mm, tmp_path):
    doc = json.loads(to_json(mm))
    tex = to_latex(mm, tmp_path / "pi.tex", caption="Pi* per history")  # Pi* per history (the default table)
    check_table(tex, {"surplus": [r["value"] for r in doc["surplus"]]})
    head, rows = latex_rows(tex)
    assert [r[head.index("where")] for r in rows] == [latex_escape(r["where"]) for r in doc["surplus"]]
    tex = to_latex(mm, what="transfers")
    check_table(tex, {ag: doc["transfers"][i] for i, ag in enumerate(doc["agents"])})
    tex = to_latex(mm, what="fees")  # the min-max fees of bilateral trade (Lamba 2022, section 6.1)
    check_table(tex, {"fee": [r["fee"] for r in doc["fees_table"]]})
    md_head, md = markdown_rows(to_markdown(mm))
    assert_column_matches([r[md_head.index("surplus")] for r in md], [r["value"] for r in doc["surplus"]], "md")


def test_sweep_table_equals_the_json(sweep_df):
    rows = json.loads(to_json(sweep_df))["rows"]
    cols = ["alpha", "delta", "pi_root", *[c for c in sweep_df.columns if c.startswith("pi(")]]
    tex = to_latex(sweep_df, columns=cols)
    check_table(tex, {c: [r[c] for r in rows] for c in cols})


def test_sharing_comparison_tables_equal_the_json(comparison):
    doc = comparison.to_dict()
    summary = doc["summary"]
    numeric = [c for c in summary[0] if c not in ("rule", "status", "risk_bearer")]
    check_table(to_latex(comparison), {c: [r[c] for r in summary] for c in numeric})
    shares = doc["shares"]
    check_table(
        to_latex(comparison, what="shares"), {c: [r[c] for r in shares] for c in ("pi_star", "buyer", "designer")}
    )
    pay = doc["payments"]
    check_table(to_latex(comparison, what="transfers"), {c: [r[c] for r in pay] for c in ("weight", "equal: seller")})


def test_sharing_result_and_fee_and_critical_tables_equal_the_json(mm):
    res = share_surplus(mm, "min-max-transfer")
    doc = res.to_dict()
    check_table(
        to_latex(res),
        {
            "buyer": doc["beta"][0],
            "seller": doc["beta"][1],
            "designer": doc["designer_share"],
            "pi_star": doc["pi_star"],
        },
    )
    fees = lump_sum_fees(yoon_binary(0.7, 0.9), "interim")
    fdoc = fees.to_dict()
    check_table(to_latex(fees), {"fee": [r["fee"] for r in fdoc["fees_table"]]})
    crit = ml.critical_delta(lambda d: lamba_usstp(0.7, d), budget="interim", grid=9)
    cdoc = crit.to_dict()
    check_table(
        to_latex(crit),
        {
            "critical": cdoc["critical"],
            "lower": [b[0] for b in cdoc["brackets"]],
            "upper": [b[1] for b in cdoc["brackets"]],
        },
    )


def test_boundary_frame_with_list_cells():
    frame = pd.DataFrame(
        {"alpha": [0.5, 0.7], "critical": [[0.5431234567], []], "intervals": [[[0.5431234567, 0.99]], [[0.01, 0.99]]]}
    )
    head, rows = latex_rows(to_latex(frame))
    assert rows[0][head.index("critical")] == "0.543123" and rows[1][head.index("critical")] == ""
    assert rows[0][head.index("intervals")] == "[0.543123, 0.990000]"


def test_csv_keeps_the_json_numbers(comparison, mm, tmp_path):
    to_csv(comparison, tmp_path / "c.csv")
    back = pd.read_csv(tmp_path / "c.csv")
    doc = comparison.to_dict()["summary"]
    assert back["max_abs_transfer"].tolist() == [r["max_abs_transfer"] for r in doc]
    to_csv(mm, tmp_path / "s.csv")
    assert pd.read_csv(tmp_path / "s.csv")["surplus"].tolist() == [r["value"] for r in mm.to_dict()["surplus"]]


# ------------------------------------------------------------------------------------------ compare_sharing
def test_compare_sharing_shares_and_variances_independently(comparison, usstp):
    summary = comparison.summary_frame().set_index("rule")
    pi0 = float(comparison.minmax.surplus[0])
    # equal split: half of Pi*(start) to each agent, nothing to the designer (Lamba 2022, eqs. 10-11)
    assert summary.loc["equal", "share_buyer"] == pytest.approx(0.5)
    assert summary.loc["equal", "value_seller"] == pytest.approx(pi0 / 2)
    assert summary.loc["designer", "share_designer"] == pytest.approx(1.0)
    assert summary.loc["designer", "value_designer"] == pytest.approx(pi0)
    # discounted reach weights on the Markov space, written out: period 1 at the prior, then the profile chain
    env = usstp
    prof = env.profile_types()
    q = np.ones((env.n_profiles, env.n_profiles))
    for i, ag in enumerate(env.agents):
        q *= ag.transition[np.ix_(prof[:, i], prof[:, i])]
    prior = env.prior_profile()
    occ = np.linalg.solve((np.eye(env.n_profiles) - env.discount * q).T, prior)  # sum_t delta^t pi_t
    space = comparison.space
    c = np.zeros(space.n_nodes)
    for g in range(space.n_nodes):
        h, p = divmod(g, env.n_profiles)
        prev = space.hist_prev_profile[h]
        c[g] = prior[p] if prev < 0 else env.discount * occ[prev] * q[prev, p]
    np.testing.assert_allclose(comparison.weights, c / c.sum(), atol=1e-12)
    w = c / c.sum()
    for rule, res in comparison.results.items():
        x = res.mechanism.transfers
        for name, pay in (("buyer", x[0]), ("seller", x[1]), ("designer", x.sum(axis=0))):
            var = float(np.sum(w * (pay - np.sum(w * pay)) ** 2))
            assert summary.loc[rule, f"var_{name}"] == pytest.approx(var, rel=1e-9, abs=1e-14)
        assert summary.loc[rule, "max_abs_transfer"] == pytest.approx(float(np.abs(x).max()))
    assert list(summary.index) == ["equal", "designer", "maxmin", "min-max-transfer"]
    # the min-max-transfer rule minimises the largest payment (module docstring of sharing)
    assert summary["max_abs_transfer"].min() == pytest.approx(summary.loc["min-max-transfer", "max_abs_transfer"])


def test_ex_post_comparison_designer_bears_no_risk(mm):
    cmp = compare_sharing(mm, ["equal", "min-max-transfer"], budget="ex_post")
    summary = cmp.summary_frame()
    # Lamba 2022, Proposition 1: the payments sum to zero at every node, so the designer's receipts never vary
    assert (summary["var_designer"].abs() < 1e-20).all()
    assert set(summary["risk_bearer"]) == {"buyer, seller"}  # two agents: x_seller = -x_buyer at every node
    assert cmp.success and cmp.status == "optimal"


def test_payment_weights_on_a_tree_are_discounted_reach():
    env = lamba_usstp(0.7, 0.9, horizon=2)
    space = design.minmax(env).space  # (Pi* < 0 in the last period: nothing to share, but the weights exist)
    k = env.n_profiles
    prof = env.profile_types()
    q = np.ones((k, k))
    for i, ag in enumerate(env.agents):
        q *= ag.transition[np.ix_(prof[:, i], prof[:, i])]
    prior = env.prior_profile()
    c = np.r_[prior, (env.discount * prior[:, None] * q).reshape(-1)]  # period 1, then period 2 after each profile
    np.testing.assert_allclose(payment_weights(space), c / c.sum(), atol=1e-12)


@pytest.mark.parametrize(
    ("rules", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "rules: give at least one sharing rule"),
        (["equal", "equal"], {}, ValueError, r"rules: \['equal'\] given more than once"),
        (["fair"], {}, ValueError, "rule must be one of"),
        (["designer"], {"budget": "ex_post"}, ValueError, "rule 'designer' leaves all the surplus"),
        ([np.array([0.5, 0.5])], {}, TypeError, "label explicit shares with a mapping"),
    ],
)
def test_compare_sharing_errors(mm, rules, kwargs, error, match):
    with pytest.raises(error, match=match):
        compare_sharing(mm, rules, **kwargs)


def test_compare_sharing_source_errors(mm):
    with pytest.raises(TypeError, match="source must be an Environment or a minmax Result"):
        compare_sharing("usstp")
    with pytest.raises(ValueError, match="minmax options"):
        compare_sharing(mm, method="lp")


def test_compare_sharing_explicit_and_default_rules(mm):
    cmp = compare_sharing(mm, {"70/30": [0.7, 0.3], "equal": "equal"})
    assert cmp.rules == ["70/30", "equal"]
    assert cmp.summary_frame().set_index("rule").loc["70/30", "share_buyer"] == pytest.approx(0.7)
    assert compare_sharing(mm).rules == list(RULES)


def test_sharing_figure(comparison, tmp_path):
    fig = plot(comparison, path=tmp_path / "s.png")  # the kind follows from the data
    assert len(fig.get_axes()) == 4 and (tmp_path / "s.png").stat().st_size > 1000
    heights = [p.get_height() for p in fig.get_axes()[1].patches]
    np.testing.assert_allclose(heights, comparison.summary_frame()["max_abs_transfer"])
    with pytest.raises(ValueError, match="kind 'sharing' needs a SharingComparison"):
        plot(pd.DataFrame({"a": [1]}), "sharing")


# ------------------------------------------------------------------------------------------ command line
def test_cli_share_compare_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    argv = ["share", str(MODEL), "--compare", "equal,designer,maxmin,min-max-transfer", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "summary: shares and values of Pi*" in text and "min-max-transfer" in text
    assert not NEGATIVE_ZERO.search(text)
    doc = json.loads(out.read_text())
    assert doc["kind"] == "SharingComparison" and doc["rules"] == ["equal", "designer", "maxmin", "min-max-transfer"]
    env = ml.load_model(MODEL)
    expected = compare_sharing(env, doc["rules"]).to_dict()["summary"]
    assert [r["max_abs_transfer"] for r in doc["summary"]] == pytest.approx([r["max_abs_transfer"] for r in expected])
    tex = tmp_path / "cmp.tex"
    assert (
        main(["share", str(MODEL), "--compare", "equal,maxmin", "--out", str(tex), "--plot", str(tmp_path / "f.svg")])
        == 0
    )
    capsys.readouterr()
    assert tex.read_text().startswith("\\begin{table}") and (tmp_path / "f.svg").exists()
    csv = tmp_path / "cmp.csv"
    assert main(["share", str(MODEL), "--rules", "equal", "--out", str(csv)]) == 0
    capsys.readouterr()
    assert pd.read_csv(csv)["rule"].tolist() == ["equal"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--compare", "equal", "--out", "x.xlsx"], "--out must end in .csv, .json, .tex, .md"),
        (["--compare", "equal", "--rule", "maxmin"], "give either --compare or --rule / --beta, not both"),
        (["--out", "x.csv"], "--out and --plot write a comparison: give --compare"),
        (["--compare", "equal", "--json", "x.json"], "with --compare, write the comparison with --out"),
    ],
)
def test_cli_share_compare_errors(extra, match, capsys):
    assert main(["share", str(MODEL), *extra]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and len(err.strip().splitlines()) == 1


def test_cli_share_table_has_no_negative_zero(capsys):
    assert main(["share", str(MODEL), "--rule", "designer"]) == 0
    text = capsys.readouterr().out
    assert "designer" in text and not NEGATIVE_ZERO.search(text)


# ------------------------------------------------------------------------------------------ report wording
def test_fees_message_names_root_and_smallest_surplus():
    res = lump_sum_fees(yoon_binary(0.7, 0.9), "interim")
    assert res.status == "feasible"
    root, low = float(res.surplus[0]), float(res.surplus.min())
    assert f"surplus at the root {root:.6g}, at least {low:.6g} at every history" in res.message
    assert "at every history (smallest" not in res.message


def test_critical_report_count_matches_the_list():
    evals = [(0.1 * i, (-1.0) ** i) for i in range(1, 21)]  # 19 decreases between neighbours... and rises
    violations = [(d1, v1, d2, v2) for (d1, v1), (d2, v2) in zip(evals, evals[1:], strict=False) if v1 > v2]
    scan = Scan(np.array([0.1, 2.0]), np.array([-1.0, 1.0]), [], [], [], evals, False, violations)
    crit = CriticalDelta("interim", "recursion", "min_h Pi*(h)", scan)
    text = crit.report()
    n = len(violations)
    assert f"({n} decreases; the first 5 listed)" in text
    assert sum(1 for ln in text.splitlines() if ln.startswith("    ") and " > " in ln) == 5
    few = CriticalDelta(
        "interim",
        "recursion",
        "min_h Pi*(h)",
        Scan(scan.grid, scan.values, [], [], [], evals[:4], False, violations[:2]),
    )
    assert "(2 decreases; all listed)" in few.report()


# ------------------------------------------------------------------------------------------ LaTeX compiles
def test_latex_tables_compile(mm, sweep_df, comparison, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH: the LaTeX tables are checked as text only")
    body = "\n".join(
        [
            to_latex(mm, caption="Pi* per history"),
            to_latex(sweep_df, columns=["alpha", "delta", "pi_root"], caption="a sweep"),
            to_latex(comparison, caption="sharing rules"),
            to_latex(comparison, what="transfers"),
        ]
    )
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[landscape]{geometry}\n"
    doc += "\\begin{document}\n\\tiny\n" + body + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000

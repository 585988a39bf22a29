"""Feasibility regions with exact boundaries (mechlp.workflows.boundary) and their figure."""

from __future__ import annotations

import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.cli.main import main as cli_main
from mechlp.model.bisection import feasible_intervals
from mechlp.solve import questions as design
from mechlp.workflows.boundary import feasibility_boundary, load_boundary
from mechlp.workflows.plots import plot

ALPHAS = (0.55, 0.7, 0.85)


@pytest.fixture(scope="module")
def yoon_frame():
    return feasibility_boundary("yoon_binary", "alpha", ALPHAS, "delta", question="fees", budget="ex_ante")


@pytest.fixture(scope="module")
def usstp_frame():
    return feasibility_boundary(lamba_usstp, "alpha", [0.6, 0.8], "delta", lo=0.3, hi=0.98)


def test_yoon_boundary_is_the_closed_form(yoon_frame):
    # Yoon (2021, section 3.3.2): pivot + lump-sum fees balance the budget ex ante iff delta >= 1/(3 - 2 alpha)
    assert list(yoon_frame["alpha"]) == list(ALPHAS)
    for _, row in yoon_frame.iterrows():
        exact = 1.0 / (3.0 - 2.0 * row["alpha"])
        assert len(row["critical"]) == 1 and row["directions"] == ["becomes feasible"]
        assert abs(row["critical"][0] - exact) < 1e-7
        assert row["intervals"] == [[row["critical"][0], 0.99]]


def test_usstp_boundary_is_where_the_lp_answer_flips(usstp_frame):
    # the boundary comes from the recursion's scan; the verified LP answer on either side is independent of it
    assert set(usstp_frame["budget"]) == {"ex_ante", "interim"}
    for _, row in usstp_frame.iterrows():
        (crit,) = row["critical"]
        below = design.feasibility(lamba_usstp(row["alpha"], crit - 1e-5), row["budget"], route="lp")
        above = design.feasibility(lamba_usstp(row["alpha"], crit + 1e-5), row["budget"], route="lp")
        assert below.status == "infeasible" and below.certificate.ok
        assert above.status == "optimal" and above.verification.ok
    # interim balance implies ex ante balance: its critical discount factor is never lower
    for a in (0.6, 0.8):
        rows = usstp_frame[usstp_frame["alpha"] == a].set_index("budget")["critical"]
        assert rows["interim"][0] >= rows["ex_ante"][0] - 1e-9


@pytest.mark.parametrize(
    ("critical", "directions", "everywhere", "expected"),
    [
        ([], [], True, [(0.0, 1.0)]),
        ([], [], False, []),
        ([0.3], ["becomes feasible"], False, [(0.3, 1.0)]),
        ([0.3], ["becomes infeasible"], True, [(0.0, 0.3)]),
        (
            [0.2, 0.5, 0.8],
            ["becomes infeasible", "becomes feasible", "becomes infeasible"],
            False,
            [(0.0, 0.2), (0.5, 0.8)],
        ),
        ([0.2, 0.5], ["becomes feasible", "becomes infeasible"], False, [(0.2, 0.5)]),
    ],
)
def test_feasible_intervals(critical, directions, everywhere, expected):
    assert feasible_intervals([0.0, 0.5, 1.0], critical, directions, everywhere) == expected


def test_round_trip_and_plot(usstp_frame, tmp_path):
    out = tmp_path / "b.csv"
    feasibility_boundary(lamba_usstp, "alpha", [0.6, 0.8], "delta", lo=0.3, hi=0.98, out=out)
    back = load_boundary(out)
    assert back.attrs["x"] == "alpha" and back.attrs["y"] == "delta"
    assert back["intervals"].tolist() == usstp_frame["intervals"].tolist()
    fig = plot(out, path=tmp_path / "b.png")  # the kind is read off the file
    assert (tmp_path / "b.png").stat().st_size > 1000
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1  # the figure's one legend, outside the axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "feasible: ex ante" in labels and "feasible: interim" in labels and "infeasible" in labels
    assert fig.axes[0].get_xlabel() == r"$\alpha$" and r"critical $\delta$" in labels


def test_load_boundary_refuses_other_files(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a boundary file"):
        load_boundary(bad)
    bad.write_text("# mechlp boundary {not json\n")
    with pytest.raises(ValueError, match="bad header line"):
        load_boundary(bad)
    bad.write_text('# mechlp boundary {"x": "alpha"}\nalpha,budget\n0.5,ex_ante\n')
    with pytest.raises(ValueError, match="missing column 'parameter'"):
        load_boundary(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"question": "nope"}, "question"),
        ({"method": "nope"}, "method"),
        ({"budget": []}, "at least one budget"),
        ({"budget": "savings"}, "budget"),
        ({"question": "fees", "budget": "ex_post"}, "budget"),
        ({"y": "alpha"}, "different keys"),
        ({"values": []}, "at least one value"),
        ({"values": [0.5, float("nan")]}, r"values\[1\] is not finite"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"y": "nope"}, "does not take the grid key"),
    ],
)
def test_validation(kwargs, match):
    args = {"values": [0.6], "y": "delta", **kwargs}
    values, y = args.pop("values"), args.pop("y")
    with pytest.raises(ValueError, match=match):
        feasibility_boundary(lamba_usstp, "alpha", values, y, **args)


def test_x_must_be_a_key():
    with pytest.raises(TypeError, match="x must be a non-empty key"):
        feasibility_boundary(lamba_usstp, "", [0.6])


def test_an_error_on_a_line_names_the_line():
    with pytest.raises(ValueError, match=r"line alpha = 0.6, budget interim: .*lo"):
        feasibility_boundary(lamba_usstp, "alpha", [0.6], "delta", budget="interim", lo=0.5, hi=0.4)


def test_cli(tmp_path, capsys):
    out, fig = tmp_path / "b.csv", tmp_path / "b.png"
    code = cli_main(
        [
            "boundary",
            "yoon_binary",
            "--x",
            "alpha=0.6,0.8",
            "--y",
            "delta",
            "--question",
            "fees",
            "--budget",
            "ex_ante",
            "--out",
            str(out),
            "--plot",
            str(fig),
            "--overlay",
            "yoon",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "alpha = 0.6, ex_ante: feasible delta in [0.55555555" in text  # 1/(3 - 1.2) = 5/9
    assert out.is_file() and fig.stat().st_size > 1000
    assert cli_main(["boundary", "yoon_binary", "--x", "alpha=0.6", "--y", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not take the grid key" in err[0]

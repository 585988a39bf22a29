"""Parameter sweeps (mechlp.workflows.sweep), the `sweep` / `plot` commands and the CLI reference in docs/cli.md."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.cli import main
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.workflows.sweep import evaluate_point, grid_points, load_sweep, parse_grid_spec, sweep

ROOT = Path(__file__).resolve().parent.parent
USSTP = str(ROOT / "models" / "lamba_usstp.toml")
META = ["seconds", "cpu_seconds", "pid", "finished"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(text.splitlines()))
    header = rows[0]
    return [dict(zip(header, r, strict=True)) for r in rows[1:] if len(r) == len(header)]


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("persistence", "expected KEY=START:STOP:NUM"),
        ("=0.5:0.9:3", "expected KEY=START:STOP:NUM"),
        ("persistence=0.5:0.9", "three fields"),
        ("persistence=0.5:0.9:zero", "NUM must be a positive integer"),
        ("persistence=0.5:0.9:0", "NUM must be a positive integer"),
        ("persistence=a:0.9:3", "START and STOP must be numbers"),
        ("persistence=0.5,,0.7", "empty value"),
    ],
)
def test_bad_grid_spec(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_grid_spec(spec)


def test_grid_spec_values():
    assert parse_grid_spec("persistence=0.5:0.9:5") == ("persistence", [0.5, 0.6, 0.7, 0.8, 0.9])
    assert parse_grid_spec("discount=0.8,0.95") == ("discount", [0.8, 0.95])
    assert parse_grid_spec("agents.buyer.prior=[0.4,0.6];[0.5,0.5]") == (
        "agents.buyer.prior",
        [[0.4, 0.6], [0.5, 0.5]],
    )
    assert parse_grid_spec("horizon=infinite,3") == ("horizon", ["infinite", 3])
    assert grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"grid": {}}, ValueError, "grid is empty"),
        ({"grid": {"persistence": []}}, ValueError, "has no values"),
        ({"grid": {"persistence": 0.5}}, ValueError, "must be a sequence"),
        ({"grid": {"persistence": [0.5, 0.5]}}, ValueError, "repeats the value"),
        ({"grid": {"status": [1]}}, ValueError, "clashes with a result column"),
        ({"grid": {"persistance": [0.5]}}, ValueError, "unknown override key 'persistance'"),
        ({"grid": {"agents.broker.prior": [[0.5, 0.5]]}}, ValueError, "unknown override key"),
        ({"grid": {"persistence": [0.5]}, "question": "optimal"}, ValueError, "unknown question 'optimal'"),
        ({"grid": {"persistence": [0.5]}, "question": "feasible", "budget": "weekly"}, ValueError, "budget 'weekly'"),
        ({"grid": {"persistence": [0.5]}, "budget": "interim"}, ValueError, "does not apply to question 'minmax'"),
        ({"grid": {"persistence": [0.5]}, "question": "fees", "budget": "ex_post"}, ValueError, "not one of"),
        ({"grid": {"persistence": [0.5]}, "executor": "threads"}, ValueError, "unknown executor 'threads'"),
        ({"grid": {"persistence": [0.5]}, "executor": "dask://"}, ValueError, "scheduler address"),
        ({"grid": {"persistence": [0.5]}, "workers": 0}, ValueError, "workers must be a positive integer"),
    ],
)
def test_validation_errors(kwargs, exc, match):
    kwargs = {"executor": "serial", "progress": False, **kwargs}
    grid = kwargs.pop("grid")
    with pytest.raises(exc, match=match):
        sweep(USSTP, grid, **kwargs)


def test_model_errors():
    with pytest.raises(FileNotFoundError, match="neither a model file nor a built-in model"):
        sweep("no_such_model.toml", {"discount": [0.9]}, executor="serial", progress=False)
    with pytest.raises(ValueError, match=r"does not take the grid key\(s\) \['persistence'\]"):
        sweep(lamba_usstp, {"persistence": [0.7]}, executor="serial", progress=False)
    with pytest.raises(ValueError, match="cannot be sent to worker processes"):
        sweep(lambda alpha: lamba_usstp(alpha), {"alpha": [0.7]}, progress=False)


# ---------------------------------------------------------------------------------------------- answers
def test_minmax_columns_match_closed_form():
    df = sweep(lamba_usstp, {"alpha": [0.5, 0.8], "delta": [0.9]}, executor="serial", progress=False)
    assert list(df["alpha"]) == [0.5, 0.8] and (df["status"] == "ok").all()
    for _, row in df.iterrows():
        cf = minmax_closed_form(lamba_usstp(row["alpha"], row["delta"]))
        pis = [row["pi_root"], row["pi(v_L,c_L)"], row["pi(v_L,c_H)"], row["pi(v_H,c_L)"], row["pi(v_H,c_H)"]]
        np.testing.assert_allclose(pis, cf.pi_markov, atol=1e-9)
        z_b, _ = cf.fee_by_state
        np.testing.assert_allclose([row["fee_buyer(c_L)"], row["fee_buyer(c_H)"]], z_b, atol=1e-9)
        # the upfront value of the fee stream is the lowest buyer type's VCG utility at the start
        assert row["fee_buyer_pv"] == pytest.approx(cf.vcg_interim[0][0, 0], abs=1e-9)
        assert row["verified"]
        if row["alpha"] != 0.5:  # at alpha = 0.5 (iid) all entries tie and the argmin is float noise
            assert row["argmin"] == "after (v_H, c_L)"
    assert df.attrs["grid"] == ["alpha", "delta"] and df.attrs["computed"] == 2


def test_feasible_flags_follow_minmax_surplus():
    df = sweep(
        USSTP, {"persistence": [0.6, 0.9], "discount": [0.5, 0.9]}, "feasible", executor="serial", progress=False
    )
    assert (df["status"] == "ok").all()
    for _, row in df.iterrows():
        assert row["feasible_ex_ante"] == (row["pi_root"] >= -1e-9)
        assert row["feasible_interim"] == (row["pi_min"] >= -1e-9)
        assert row["certified_ex_ante"] and row["certified_interim"]  # mechanism or Farkas certificate verified
    assert not df["feasible_interim"].all() and df["feasible_interim"].any()


def test_share_fees_and_custom_questions():
    row = evaluate_point(USSTP, {"persistence": 0.7}, "share", options={"rule": "maxmin"})
    assert row["status"] == "ok" and row["share_status"] == "optimal" and row["verified"]
    assert row["beta_buyer"] + row["beta_seller"] + row["designer_share"] == pytest.approx(1.0)
    neg = evaluate_point(USSTP, {"persistence": 0.9, "discount": 0.5}, "share")
    assert neg["share_status"] == "negative_surplus" and neg["pi_min"] < 0
    fees = sweep("yoon_binary", {"alpha": [0.7], "delta": [0.6, 0.65]}, "fees", executor="serial", progress=False)
    assert list(fees["feasible_lump_sum"]) == [False, True]  # Yoon (2021): delta >= 1/(3 - 2 alpha) = 0.625

    def spread(env, scale=1.0):
        return {"spread": scale * (env.discount - env.agents[0].transition[0, 0])}

    df = sweep(lamba_usstp, {"alpha": [0.6, 0.7]}, spread, options={"scale": 2.0}, executor="serial", progress=False)
    np.testing.assert_allclose(df["spread"], [2 * (0.95 - 0.6), 2 * (0.95 - 0.7)])
    assert (df["question"] == "spread").all()


def test_failing_point_is_recorded_and_retried(tmp_path):
    out = tmp_path / "s.csv"
    grid = {"persistence": [0.7, 1.5], "discount": [0.9]}
    df = sweep(USSTP, grid, out=out, executor="serial", progress=False)
    assert list(df["status"]) == ["ok", "error"]
    assert "persistence must lie in [0, 1]" in df["error"].iloc[1]
    assert df.attrs["errors"] == 1
    # a re-run keeps the finished point and computes the failed one again
    df2 = sweep(USSTP, grid, out=out, executor="serial", progress=False)
    assert df2.attrs["computed"] == 1 and df2.attrs["skipped"] == 1 and len(_rows(out)) == 2
    df3 = sweep(USSTP, grid, out=out, executor="serial", progress=False, retry_errors=False)
    assert df3.attrs["computed"] == 0
    # an error first and an answer later: the file's header is widened in place
    out2 = tmp_path / "s2.csv"
    df4 = sweep(USSTP, {"persistence": [1.5, 0.7]}, out=out2, executor="serial", progress=False)
    assert list(df4["status"]) == ["error", "ok"] and df4["pi_root"].notna().tolist() == [False, True]
    assert [r["status"] for r in _rows(out2)] == ["error", "ok"]


def test_resume_extends_grid_and_checks_the_file(tmp_path):
    out = tmp_path / "s.csv"
    sweep(USSTP, {"persistence": [0.6, 0.7]}, out=out, executor="serial", progress=False)
    first = {r["persistence"]: r["finished"] for r in _rows(out)}
    df = sweep(USSTP, {"persistence": [0.6, 0.65, 0.7]}, out=out, executor="serial", progress=False)
    assert df.attrs["computed"] == 1 and list(df["persistence"]) == [0.6, 0.65, 0.7]
    assert {r["persistence"]: r["finished"] for r in _rows(out) if r["persistence"] in first} == first
    with pytest.raises(ValueError, match="holds answers to question 'minmax', not 'feasible'"):
        sweep(USSTP, {"persistence": [0.6]}, "feasible", out=out, executor="serial", progress=False)
    with pytest.raises(ValueError, match="not written by a sweep over"):
        sweep(USSTP, {"discount": [0.9]}, out=out, executor="serial", progress=False)
    # a row cut short by a kill is dropped and recomputed
    text = out.read_text()
    out.write_text(text[: text.rstrip("\n").rfind("\n") + 12])
    df = sweep(USSTP, {"persistence": [0.6, 0.65, 0.7]}, out=out, executor="serial", progress=False)
    assert df.attrs["computed"] == 1 and len(_rows(out)) == 3 and (df["status"] == "ok").all()
    assert load_sweep(out).attrs["grid"] == ["persistence"]


def test_processes_match_serial(tmp_path):
    grid = {"persistence": [0.6, 0.8, 0.95], "discount": [0.6, 0.9]}
    serial = sweep(USSTP, grid, "feasible", executor="serial", progress=False)
    par = sweep(USSTP, grid, "feasible", out=tmp_path / "p.csv", workers=2, chunksize=1, progress=False)
    assert par.attrs["computed"] == 6
    cols = [c for c in serial.columns if c not in META + ["error"]]
    pd.testing.assert_frame_equal(serial[cols], par[cols], check_dtype=False)
    with ThreadPoolExecutor(2) as pool:  # any concurrent.futures executor
        threads = sweep(USSTP, grid, "feasible", executor=pool, progress=False)
    pd.testing.assert_frame_equal(serial[cols], threads[cols])


def test_kill_and_resume_does_not_recompute(tmp_path):
    """A 6 x 6 feasibility sweep killed part way finishes on a re-run without recomputing finished points."""
    out = tmp_path / "kill.csv"
    cmd = [
        sys.executable,
        "-m",
        "mechlp.cli",
        "sweep",
        USSTP,
        "--grid",
        "persistence=0.5:0.95:6",
        "--grid",
        "discount=0.3:0.95:6",
        "--question",
        "feasible",
        "--out",
        str(out),
        "--workers",
        "2",
        "--chunksize",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if out.exists() and len(_rows(out)) >= 8:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep's process group: its workers die with it
        proc.wait(timeout=30)
    before = {(r["persistence"], r["discount"]): (r["finished"], r["pid"]) for r in _rows(out)}
    assert 8 <= len(before) < 36, f"{len(before)} rows when killed"
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"computed {36 - len(before)}, already done {len(before)}" in res.stdout
    after = _rows(out)
    keys = [(r["persistence"], r["discount"]) for r in after]
    assert len(after) == 36 and len(set(keys)) == 36
    assert all(r["status"] == "ok" for r in after)
    kept = {
        (r["persistence"], r["discount"]): (r["finished"], r["pid"])
        for r in after
        if (r["persistence"], r["discount"]) in before
    }
    assert kept == before  # the finished rows were not recomputed


def test_dask_local_cluster_matches_serial():
    distributed = pytest.importorskip("distributed")
    grid = {"persistence": [0.6, 0.9], "discount": [0.5, 0.9]}
    serial = sweep(USSTP, grid, "feasible", executor="serial", progress=False)
    with (
        distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        dask = sweep(USSTP, grid, "feasible", executor=client, chunksize=1, progress=False)
        by_address = sweep(USSTP, grid, "feasible", executor="dask://" + cluster.scheduler_address, progress=False)
    cols = [c for c in serial.columns if c not in META]
    pd.testing.assert_frame_equal(serial[cols], dask[cols])
    pd.testing.assert_frame_equal(serial[cols], by_address[cols])


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_sweep_and_plot(tmp_path, capsys):
    out = tmp_path / "s.csv"
    args = ["sweep", USSTP, "--grid", "persistence=0.6:0.9:2", "--grid", "discount=0.5,0.9", "--question"]
    assert main([*args, "feasible", "--budget", "interim", "--out", str(out), "--executor", "serial"]) == 0
    text = capsys.readouterr().out
    assert "4 points (2 x 2 over persistence, discount); computed 4" in text
    df = load_sweep(out)
    assert "feasible_interim" in df and "feasible_ex_ante" not in df
    fig = tmp_path / "f.png"
    assert main(["plot", str(out), "--out", str(fig)]) == 0
    assert fig.stat().st_size > 1000
    tree = tmp_path / "tree.png"
    assert (
        main(["plot", USSTP, "--kind", "tree", "--horizon", "2", "--set", "persistence=0.8", "--out", str(tree)]) == 0
    )
    assert tree.stat().st_size > 1000
    assert main(["sweep", USSTP, "--grid", "persistence=0.5:0.9", "--executor", "serial"]) == 2
    assert "three fields" in capsys.readouterr().err
    assert main(["sweep", USSTP, "--grid", "persistence=0.7", "--question", "share", "--budget", "a", "b"]) == 2
    assert "takes one --budget" in capsys.readouterr().err


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_in_sync():
    gen = _gen_cli()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == gen.render(), "docs/cli.md is out of date: run `python docs/gen_cli.py`"

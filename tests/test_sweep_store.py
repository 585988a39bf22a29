"""The sweep output file (mechlp.workflows.sweep, "The output file"): one sweep per file, refused otherwise, rows
only appended, torn lines recovered, failed points and interrupts reported (issue #11 item 5)."""

from __future__ import annotations

import csv
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.cli import main
from mechlp.model.environment import Environment
from mechlp.workflows.sweep import SweepInterrupted, SweepMismatchError, load_sweep, sweep

ROOT = Path(__file__).resolve().parent.parent
USSTP = str(ROOT / "models" / "lamba_usstp.toml")
YOON = str(ROOT / "models" / "yoon_binary.toml")
SERIAL = {"executor": "serial", "progress": False}
HAS_PROC = Path("/proc/self/stat").exists()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def _session(sid: int) -> list[int]:
    """The processes of a session (Linux /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
                out.append(int(d))
    return out


# ---------------------------------------------------------------------------------------------- the reported case
def test_reported_scenario_python_is_refused_and_the_file_untouched(tmp_path):
    out = tmp_path / "s.csv"
    first = sweep(USSTP, {"persistence": [0.5, 0.9], "discount": [0.6, 0.95]}, "feasible", out=out, **SERIAL)
    assert first.attrs["computed"] == 4
    before = out.read_bytes()
    with pytest.raises(
        SweepMismatchError,
        match=r"not written by a sweep over \['persistence'\]: its grid is \['persistence', 'discount'\] "
        r"\(\['discount'\] not in this grid\)",
    ):
        sweep(USSTP, {"persistence": [0.5, 0.7]}, "feasible", out=out, **SERIAL)
    assert out.read_bytes() == before
    with pytest.raises(SweepMismatchError, match=r"\['horizon'\] not in the file's grid"):
        sweep(USSTP, {"persistence": [0.5], "discount": [0.6], "horizon": [3]}, "feasible", out=out, **SERIAL)
    assert out.read_bytes() == before


def test_reported_scenario_cli_is_refused_with_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tail = ["--question", "feasible", "--out", "s.csv", "--no-progress", "--workers", "2"]
    assert main(["sweep", USSTP, "--grid", "persistence=0.5,0.9", "--grid", "discount=0.6,0.95", *tail]) == 0
    assert "computed 4, already done 0" in capsys.readouterr().out
    before = (tmp_path / "s.csv").read_bytes()
    assert main(["sweep", USSTP, "--grid", "persistence=0.5,0.7", *tail]) == 2
    cap = capsys.readouterr()
    assert "already done" not in cap.out
    assert cap.err.splitlines() == [
        "mechlp: error: s.csv was not written by a sweep over ['persistence']: its grid is ['persistence', 'discount'] "
        "(['discount'] not in this grid); choose another output file or remove it"
    ]
    assert (tmp_path / "s.csv").read_bytes() == before


# ---------------------------------------------------------------------------------------------- what a sweep is
@pytest.mark.parametrize(
    ("model", "grid", "question", "kwargs", "match"),
    [
        (USSTP, None, "minmax", {}, "holds answers to question 'feasible', not 'minmax'"),
        (USSTP, None, "feasible", {"budget": "interim"}, "with budget 'ex_ante interim', not 'interim'"),
        (USSTP, None, "feasible", {"options": {"ic": "ex-post"}}, r'with options \{\}, not \{"ic": "ex_post"\}'),
        (USSTP, None, "feasible", {"options": {"certify": False}}, r'with options \{\}, not \{"certify": false\}'),
        (YOON, None, "feasible", {}, "of another model: the TOML document with sha256 [0-9a-f]{12}, not the TOML"),
        (
            "lamba_usstp",
            {"horizon": ["infinite"]},
            "feasible",
            {},
            r"another model: the TOML document .*, not mechlp\.catalog\.examples\.lamba_usstp\(\)",
        ),
    ],
)
def test_another_sweep_is_refused_naming_the_difference(tmp_path, model, grid, question, kwargs, match):
    out = tmp_path / "s.csv"
    grid = grid or {"persistence": [0.6, 0.8]}
    sweep(USSTP, grid, "feasible", out=out, **SERIAL)
    before = out.read_bytes()
    with pytest.raises(SweepMismatchError, match=match):
        sweep(model, grid, question, out=out, **SERIAL, **kwargs)
    assert out.read_bytes() == before


def test_the_same_sweep_written_differently_resumes(tmp_path):
    out = tmp_path / "s.csv"
    sweep(USSTP, {"persistence": [0.6, 0.8]}, "feasible", out=out, **SERIAL)
    moved = tmp_path / "copy.toml"
    shutil.copy(USSTP, moved)
    with open(moved, "a", encoding="utf-8") as fh:
        fh.write("\n# a comment changes nothing\n")
    same = [
        (USSTP, {"budget": ["interim", "ex_ante"]}),  # the same set of notions
        (USSTP, {"budget": ["ex-ante", "interim"]}),  # either spelling
        (USSTP, {"options": {"ic": "bayesian", "ir": "interim", "certify": True}}),  # the defaults
        (str(moved), {}),  # the same document elsewhere
    ]
    for model, kwargs in same:
        df = sweep(model, {"persistence": [0.8, 0.6]}, "feasible", out=out, **SERIAL, **kwargs)
        assert df.attrs["computed"] == 0 and df.attrs["skipped"] == 2, (model, kwargs)
    # a built-in name and its factory are the same model; a partial of it is another
    out2 = tmp_path / "b.csv"
    sweep("lamba_usstp", {"alpha": [0.6]}, out=out2, **SERIAL)
    assert sweep(lamba_usstp, {"alpha": [0.6]}, out=out2, **SERIAL).attrs["computed"] == 0
    with pytest.raises(SweepMismatchError, match=r"lamba_usstp\(\), not mechlp\.catalog\.examples\.lamba_usstp\(d"):
        sweep(functools.partial(lamba_usstp, delta=0.9), {"alpha": [0.6]}, out=out2, **SERIAL)


def test_an_edited_model_file_is_refused(tmp_path):
    model = tmp_path / "m.toml"
    shutil.copy(USSTP, model)
    out = tmp_path / "s.csv"
    sweep(str(model), {"persistence": [0.6]}, out=out, **SERIAL)
    before = out.read_bytes()
    text = model.read_text()
    assert "discount = 0.95" in text
    model.write_text(text.replace("discount = 0.95", "discount = 0.9"))
    with pytest.raises(SweepMismatchError, match="of another model: the TOML document with sha256"):
        sweep(str(model), {"persistence": [0.6]}, out=out, **SERIAL)
    assert out.read_bytes() == before


_DELTA = {"value": 0.95}


def usstp_at(alpha: float) -> Environment:
    """A factory whose models change with ``_DELTA`` (a factory edited between two runs)."""
    return lamba_usstp(alpha, _DELTA["value"])


def test_a_row_for_another_model_at_its_point_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "s.csv"
    sweep(usstp_at, {"alpha": [0.6, 0.7]}, out=out, **SERIAL)
    before = out.read_bytes()
    assert all(len(r["model_sha256"]) == 64 for r in _rows(out))
    monkeypatch.setitem(_DELTA, "value", 0.9)
    with pytest.raises(SweepMismatchError, match=r"a row computed for another model at alpha=0\.6 \(model sha256"):
        sweep(usstp_at, {"alpha": [0.6, 0.8]}, out=out, **SERIAL)
    assert out.read_bytes() == before


# ---------------------------------------------------------------------------------------------- rows kept
def test_rows_outside_the_new_grid_are_kept_untouched(tmp_path):
    out = tmp_path / "s.csv"
    sweep(USSTP, {"persistence": [0.5, 0.6, 0.7], "discount": [0.9]}, out=out, **SERIAL)
    before = out.read_bytes()
    df = sweep(USSTP, {"discount": [0.9, 0.8], "persistence": [0.6]}, out=out, **SERIAL)  # keys in another order
    assert df.attrs["computed"] == 1 and df.attrs["skipped"] == 1
    assert list(df["discount"]) == [0.9, 0.8] and list(df["persistence"]) == [0.6, 0.6]
    after = out.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 1  # appended, nothing rewritten
    assert len(load_sweep(out)) == 4


def test_retried_errors_and_a_widened_header_keep_every_other_cell(tmp_path):
    out = tmp_path / "s.csv"
    sweep(USSTP, {"persistence": [1.5, 1.6, 1.7]}, out=out, **SERIAL)  # only errors: no answer columns yet
    old = {r["persistence"]: r for r in _rows(out)}
    assert "pi_root" not in old["1.5"]
    df = sweep(USSTP, {"persistence": [1.5, 0.7]}, out=out, **SERIAL)
    assert list(df["status"]) == ["error", "ok"] and df.attrs["computed"] == 2
    new = {r["persistence"]: r for r in _rows(out)}
    assert sorted(new) == ["0.7", "1.5", "1.6", "1.7"] and new["0.7"]["pi_root"]
    for p in ("1.6", "1.7"):  # not in the new grid: every cell kept, the new columns empty
        assert {c: new[p][c] for c in old[p]} == old[p]
        assert all(new[p][c] == "" for c in new[p] if c not in old[p])
    assert new["1.5"]["finished"] != old["1.5"]["finished"]  # computed again, one row
    assert not list(tmp_path.glob(".s.csv.*"))  # no temporary file left


# ---------------------------------------------------------------------------------------------- torn lines
@pytest.mark.parametrize("keep", [1, 25, -1])
def test_a_torn_last_line_is_cut_off_and_its_point_recomputed(tmp_path, keep):
    out = tmp_path / "s.csv"
    sweep(USSTP, {"persistence": [0.6, 0.7, 0.8]}, out=out, **SERIAL)
    data = out.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # where the last line starts
    cut = start + (keep if keep > 0 else len(data) - start + keep)  # 1 byte, mid-line, all but the line break
    out.write_bytes(data[:cut])
    assert len(load_sweep(out)) == 2  # a reader never sees the partial row
    df = sweep(USSTP, {"persistence": [0.6, 0.7, 0.8]}, out=out, **SERIAL)
    assert df.attrs["computed"] == 1 and (df["status"] == "ok").all() and df.attrs["repaired"] == cut - start
    after = out.read_bytes()
    assert after.startswith(data[:start]) and after.endswith(b"\r\n")
    rows = _rows(out)
    assert [r["persistence"] for r in rows] == ["0.6", "0.7", "0.8"]


def test_a_torn_header_is_an_empty_file_and_a_foreign_file_is_refused(tmp_path):
    out = tmp_path / "s.csv"
    out.write_bytes(b"persistence,sta")  # killed while writing the first line
    assert sweep(USSTP, {"persistence": [0.6]}, out=out, **SERIAL).attrs["computed"] == 1
    assert [r["persistence"] for r in _rows(out)] == ["0.6"]
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"\r\n\n")
    assert sweep(USSTP, {"persistence": [0.6]}, out=blank, **SERIAL).attrs["computed"] == 1
    assert [r["persistence"] for r in _rows(blank)] == ["0.6"]
    notes = tmp_path / "notes.csv"
    notes.write_bytes(b"my notes, not a sweep")
    with pytest.raises(SweepMismatchError, match="was not written by a sweep over"):
        sweep(USSTP, {"persistence": [0.6]}, out=notes, **SERIAL)
    assert notes.read_bytes() == b"my notes, not a sweep"


def test_a_damaged_row_or_an_old_file_is_refused(tmp_path):
    out = tmp_path / "s.csv"
    sweep(USSTP, {"persistence": [0.6, 0.7]}, out=out, **SERIAL)
    lines = out.read_bytes().split(b"\r\n")
    damaged = b"\r\n".join([lines[0], lines[1][:20], *lines[2:]])
    out.write_bytes(damaged)
    with pytest.raises(SweepMismatchError, match=r"row 2 has \d+ cells and the header \d+: the file is damaged"):
        sweep(USSTP, {"persistence": [0.6, 0.7]}, out=out, **SERIAL)
    assert out.read_bytes() == damaged
    old = tmp_path / "old.csv"  # written before sweeps recorded what they are
    old.write_text(
        "persistence,status,error,pi_root,question,seconds,cpu_seconds,pid,finished\n0.6,ok,,1.0,minmax,,,,\n"
    )
    with pytest.raises(SweepMismatchError, match=r"has no column\(s\) \['budget', 'options', 'model'"):
        sweep(USSTP, {"persistence": [0.6]}, out=old, **SERIAL)


# ---------------------------------------------------------------------------------------------- exit codes
def test_failed_points_exit_3_saying_how_many(tmp_path, capsys):
    base = ["sweep", USSTP, "--executor", "serial", "--no-progress"]
    out = str(tmp_path / "s.csv")
    assert main([*base, "--grid", "persistence=0.6,0.7"]) == 0
    capsys.readouterr()
    assert main([*base, "--grid", "persistence=0.7,1.5,1.6", "--out", out]) == 3
    cap = capsys.readouterr()
    assert cap.err.splitlines()[-1] == "mechlp: 2 of 3 points failed (2 error)"
    assert "persistence must lie in [0, 1]" in cap.out
    assert main([*base, "--grid", "persistence=1.5,1.6"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == "mechlp: every point failed (2 of 2: 2 error)"
    # a resumed sweep counts the failed rows it keeps
    assert main([*base, "--grid", "persistence=0.7,1.5", "--out", out, "--no-retry-errors"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == "mechlp: 1 of 2 points failed (1 error)"


# ---------------------------------------------------------------------------------------------- interrupts
_CALLS = {"n": 0}


def stop_at_third(env: Environment) -> dict:
    """A question that is interrupted (Ctrl-C) at its third call."""
    _CALLS["n"] += 1
    if _CALLS["n"] == 3:
        raise KeyboardInterrupt
    return {"delta": env.discount}


def test_interrupt_in_python_keeps_the_rows_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(_CALLS, "n", 0)
    out = tmp_path / "s.csv"
    grid = {"alpha": [0.6, 0.7, 0.8, 0.9]}
    with pytest.raises(SweepInterrupted, match=r"s\.csv keeps the rows of 2 of 4 points \(2 computed in this run") as e:
        sweep(lamba_usstp, grid, stop_at_third, out=out, **SERIAL)
    assert (e.value.points, e.value.done, e.value.computed) == (4, 2, 2)
    assert isinstance(e.value, KeyboardInterrupt)
    assert [r["alpha"] for r in _rows(out)] == ["0.6", "0.7"]
    df = sweep(lamba_usstp, grid, stop_at_third, out=out, **SERIAL)
    assert df.attrs["computed"] == 2 and list(df["alpha"]) == [0.6, 0.7, 0.8, 0.9]


CMD = [
    sys.executable,
    "-m",
    "mechlp.cli",
    "sweep",
    USSTP,
    "--grid",
    "persistence=0.5:0.95:8",
    "--grid",
    "discount=0.3:0.95:8",
    "--question",
    "feasible",
    "--workers",
    "2",
    "--chunksize",
    "1",
    "--no-progress",
]


def _start(out: Path) -> subprocess.Popen:
    """The sweep in its own session (as a shell runs it); returns once it has written a few rows."""
    with open(out.with_suffix(".out"), "w") as fo, open(out.with_suffix(".err"), "w") as fe:
        proc = subprocess.Popen([*CMD, "--out", str(out)], start_new_session=True, stdout=fo, stderr=fe)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    assert len(_session(proc.pid)) >= 3  # the sweep, the forkserver and workers
    return proc


def _left_after(sid: int, seconds: float) -> list[int]:
    """Processes of the session still there after ``seconds`` (then killed, so that none is left behind)."""
    deadline = time.monotonic() + seconds
    while _session(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _session(sid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.skipif(not HAS_PROC, reason="counts processes through /proc")
def test_ctrl_c_exits_130_with_one_line_and_stops_the_workers(tmp_path):
    out = tmp_path / "s.csv"
    proc = _start(out)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole foreground group
    assert proc.wait(timeout=60) == 130
    assert _left_after(proc.pid, 10) == []
    err = out.with_suffix(".err").read_text()
    assert "Traceback" not in err
    rows = len(_rows(out))
    assert [line for line in err.splitlines() if line.startswith("mechlp")] == [
        f"mechlp: interrupted: {out} keeps the rows of {rows} of 64 points ({rows} computed in this run); "
        "run the same sweep again to finish"
    ]


@pytest.mark.skipif(not HAS_PROC, reason="counts processes through /proc")
def test_workers_end_with_a_killed_parent(tmp_path):
    out = tmp_path / "s.csv"
    proc = _start(out)
    os.kill(proc.pid, signal.SIGKILL)  # the sweep process only: its workers and forkserver must follow
    proc.wait(timeout=30)
    assert _left_after(proc.pid, 10) == []

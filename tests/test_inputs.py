"""Bounded input handling (issue #11, item 6, in part): files that are not regular, huge numbers, huge horizons
and malformed certificate structure give one-line errors, never a hang or a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mechlp.cli import main
from mechlp.model.files import MAX_EXPONENT, exact_number, read_text

MODEL = str(Path(__file__).resolve().parents[1] / "models" / "lamba_usstp.toml")


def _cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) <= 1, captured.err
    return code, captured.err


def _certificate(tmp_path, **changes):
    doc = {"kind": "mechanism", "space": "markov", "transfers": [], **changes}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: "/dev/zero", "not a file (a pipe, device or socket)"),
        (lambda tmp: str(tmp), "not a file (a directory)"),
        (lambda tmp: (os.mkfifo(tmp / "fifo"), str(tmp / "fifo"))[1], "not a file (a pipe, device or socket)"),
        (lambda tmp: str(tmp / "missing.json"), "certificate file not found"),
        (lambda tmp: (tmp / "x.json").write_text("[1, 2]") and str(tmp / "x.json"), "must hold a JSON object"),
        (lambda tmp: (tmp / "y.json").write_text("[" * 100000) and str(tmp / "y.json"), "nested too deeply"),
        (lambda tmp: _certificate(tmp, transfers={"a": 1}), "'transfers' must be a list"),
        (
            lambda tmp: _certificate(tmp, transfers=[{"history": 5, "profile": {}, "payments": {}}]),
            "'history' must be a list",
        ),
        (
            lambda tmp: _certificate(
                tmp,
                transfers=[
                    {"history": [], "profile": {"buyer": "v_L", "seller": "c_L"}, "payments": {"buyer": "1e999999999"}}
                ],
            ),
            "exponent 999999999 is beyond",
        ),
    ],
)
def test_check_refuses_bad_certificate_files_in_one_line(make, message, tmp_path, capsys):
    code, err = _cli(["check", MODEL, make(tmp_path)], capsys)
    assert code == 2 and message in err


def test_model_files_must_be_regular(tmp_path, capsys):
    code, err = _cli(["solve", "/dev/zero"], capsys)
    assert code == 2 and "not a file (a pipe, device or socket), so not a model file" in err


@pytest.mark.parametrize("command", ["solve", "team"])
def test_huge_horizons_are_refused_at_once(command, capsys):
    code, err = _cli([command, MODEL, "--horizon", "1000000000"], capsys)
    assert code == 2 and "more than 2**62 histories" in err


def test_a_directory_as_json_output_is_one_line(tmp_path, capsys):
    code, err = _cli(["solve", MODEL, "--json", str(tmp_path)], capsys)
    assert code == 2 and str(tmp_path) in err


def test_exact_numbers_are_bounded():
    assert exact_number("-19/20", "x") == exact_number(-0.95, "x")  # a float is read as its shortest repr
    assert str(exact_number("1e-3", "x")) == "1/1000"
    for bad, match in [
        (f"1e{MAX_EXPONENT + 1}", "exponent"),
        ("9" * 500, "characters"),
        (True, "not a number"),
        ("nan", "not a number"),
        ("1/0", "not a number"),
        ([1], "not a number"),
    ]:
        with pytest.raises(ValueError, match=match):
            exact_number(bad, "x")


def test_read_text_limits_size(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"a" * 2048)
    with pytest.raises(ValueError, match="has 2,048 bytes, more than the 1,024 read"):
        read_text(big, "model file", max_bytes=1024)

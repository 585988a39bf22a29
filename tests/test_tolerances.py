"""One tolerance policy, enforced: every numerical threshold is named in mechlp/model/tolerances.py only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mechlp.model import tolerances

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mechlp"
HOME = PACKAGE / "model" / "tolerances.py"

#: Float literals below this magnitude are taken to be thresholds.
SMALL = 1e-3

#: Small literals that are not tolerances: (path relative to the repository, value) -> reason.
ALLOWED: dict[tuple[str, float], str] = {
    ("mechlp/solve/figures.py", 5e-5): (
        "display only: a value printed with 4 decimals that would read -0.0000 is printed as 0.0000 "
        "(half a unit of the last printed digit); no decision depends on it"
    ),
}

#: Closeness tests whose default tolerances would be hidden thresholds, and the keywords that name them.
CLOSENESS = {"isclose": {"rtol", "atol"}, "allclose": {"rtol", "atol"}}


def _findings(path: Path) -> list[tuple[int, str, float | None]]:
    """``(line, what, value)``: small float literals, and closeness tests called with default tolerances."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and 0 < abs(node.value) < SMALL:
            out.append((node.lineno, f"literal {node.value!r}", node.value))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            needed = CLOSENESS.get(name)
            has_splat = any(k.arg is None for k in node.keywords)
            if needed and not has_splat and not needed <= {k.arg for k in node.keywords}:
                out.append((node.lineno, f"{name}() with default tolerances", None))
    return sorted(out, key=lambda f: f[0])


def _scan() -> tuple[list[str], set[tuple[str, float]]]:
    offenders, allowed_seen = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == HOME:
            continue
        rel = path.relative_to(ROOT).as_posix()
        for line, what, value in _findings(path):
            if value is not None and (rel, value) in ALLOWED:
                allowed_seen.add((rel, value))
            else:
                offenders.append(f"{rel}:{line}: {what}")
    return offenders, allowed_seen


def test_no_threshold_outside_tolerances():
    offenders, _ = _scan()
    assert not offenders, (
        "numerical thresholds outside mechlp/model/tolerances.py (name them there, with a docstring entry):\n"
        + "\n".join(offenders)
    )


def test_allow_list_is_current():
    _, seen = _scan()
    stale = set(ALLOWED) - seen
    assert not stale, f"allow-list entries no longer in the code (remove them): {sorted(stale)}"


def test_the_scan_finds_thresholds(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import numpy as np\n"
        "def f(x, tol=1e-9):\n"
        "    if x < -2.5e-7 * abs(x):\n"
        "        return np.isclose(x, 0.0)\n"
        "    return np.allclose(x, 1.0, rtol=0.1, atol=0.0), np.isclose(x, 1.0, **{'rtol': 0.1}), 0.001, 1e3\n"
    )
    assert _findings(src) == [
        (2, "literal 1e-09", 1e-9),
        (3, "literal 2.5e-07", 2.5e-7),
        (4, "isclose() with default tolerances", None),
    ]


def test_every_constant_is_documented_and_exported():
    names = [n for n in vars(tolerances) if n.isupper()]
    assert sorted(names) == sorted(tolerances.__all__)
    doc = tolerances.__doc__
    for name in names:
        value = getattr(tolerances, name)
        assert isinstance(value, float) and 0 < value < SMALL, name
        entry = re.search(rf"^``{name}``[^\n]*\(([^)]*)\)", doc, flags=re.MULTILINE) or re.search(
            rf"^``[A-Z_]*``, ``{name}``[^\n]*\(([^)]*)\)", doc, flags=re.MULTILINE
        )
        assert entry, f"tolerances.{name} has no docstring entry"
    # the values written in the docstring are the values in force
    for line in doc.splitlines():
        m = re.match(r"^``([A-Z_]+)`` \(([0-9.e-]+)", line)
        if m:
            assert getattr(tolerances, m.group(1)) == pytest.approx(float(m.group(2)), rel=0, abs=0), line

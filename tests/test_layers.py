"""The package's layers (docs/design.md section 2): import-linter contracts, no imports hidden in function bodies."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mechlp"

#: Third-party modules that are imported lazily on purpose (heavy or optional), never mechlp modules.
LAZY_THIRD_PARTY = {"cvxpy", "matplotlib", "distributed", "tqdm", "scipy"}


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (import-linter) is not installed; it is a dev dependency")
    return [exe]


def test_import_linter_contracts_hold():
    proc = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    found.append((sub.lineno, "." * sub.level + (sub.module or "")))
                elif isinstance(sub, ast.Import):
                    found += [(sub.lineno, a.name) for a in sub.names]
    return found


def test_no_mechlp_import_inside_a_function():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, module in _function_imports(path):
            top = module.split(".")[0]
            if module.startswith(".") or top == "mechlp" or top not in LAZY_THIRD_PARTY:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "imports inside functions (move them to the top of the module):\n" + "\n".join(offenders)


def test_the_scan_finds_a_hidden_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from mechlp.solve import questions\n    return questions\n")
    assert _function_imports(src) == [(2, "mechlp.solve")]


def _cycles(adj: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(adj):
        if m not in index:
            visit(m)
    return cycles


def test_no_import_cycles():
    """No module of mechlp imports itself back through others."""
    grimp = pytest.importorskip("grimp")  # import-linter's graph library
    graph = grimp.build_graph("mechlp")
    adj = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert not _cycles(adj), f"import cycles: {_cycles(adj)}"


def test_the_cycle_search_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []

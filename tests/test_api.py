"""The flat public API of ``mechlp/__init__.py``: its names, their docstrings and a light ``import mechlp``."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mechlp as ml

ROOT = Path(ml.__file__).resolve().parents[1]
NAMES = [n for n in ml.__all__ if n != "__version__"]


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter that imports this checkout of mechlp; return its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_mechlp_loads_neither_cvxpy_nor_matplotlib():
    out = _fresh_python(
        "import sys, mechlp; print(sorted(m for m in ('cvxpy', 'matplotlib') if m in sys.modules), mechlp.__file__)"
    )
    assert out.startswith("[] "), out
    assert Path(out[3:]).resolve() == Path(ml.__file__).resolve()


def test_plot_is_loaded_on_first_access():
    out = _fresh_python(
        "import sys, mechlp; before = 'matplotlib' in sys.modules; from mechlp import plot; "
        "from mechlp.workflows.plots import plot as p; print(before, 'matplotlib' in sys.modules, plot is p)"
    )
    assert out == "False True True"


def test_all_lists_each_name_once_and_every_name_exists():
    assert len(ml.__all__) == len(set(ml.__all__))
    missing = [n for n in ml.__all__ if not hasattr(ml, n)]
    assert not missing
    assert set(ml.__all__) <= set(dir(ml))


@pytest.mark.parametrize("name", NAMES)
def test_each_name_is_the_object_defined_in_its_home_module(name):
    obj = getattr(ml, name)
    home = importlib.import_module(obj.__module__)
    assert obj.__module__.startswith("mechlp.")
    assert getattr(home, obj.__name__) is obj


@pytest.mark.parametrize("name", NAMES)
def test_each_name_has_a_numpydoc_docstring(name):
    obj = getattr(ml, name)
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
    doc = inspect.getdoc(obj)
    if inspect.isclass(obj):
        assert "Parameters\n----------" in doc or "Attributes\n----------" in doc, name
        return
    if inspect.signature(obj).parameters:
        assert "Parameters\n----------" in doc, f"{name}: no Parameters section"
    assert "Returns\n-------" in doc, f"{name}: no Returns section"


def test_version_is_the_package_version():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert ml.__version__ == meta["project"]["version"]


def test_verify_is_the_checker_function_and_the_verifier_modules_still_import():
    from mechlp.audit import certfile
    from mechlp.audit import verifier as checker

    assert ml.verify is checker.verify
    assert ml.check_certificate is certfile.check_certificate
    assert importlib.import_module("mechlp.audit.verifier") is checker
    import mechlp.audit.verifier as by_path  # no name of the flat API shadows a subpackage

    assert by_path is checker


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'mechlp' has no attribute 'no_such_name'"):
        _ = ml.no_such_name


def test_the_flat_api_answers_a_question():
    env = ml.lamba_usstp(0.7, 0.95)
    assert isinstance(env, ml.Environment)
    res = ml.minmax(env)
    assert isinstance(res, ml.Result)
    assert res.status == "optimal"
    assert res.certificate.ok
    assert ml.verify(res.mechanism).ok

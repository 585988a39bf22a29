"""Every notebook in ``notebooks/`` executes top to bottom without a cell error.

Kernel: ``python3`` running *this* interpreter (so it imports the mechlp under test). In a fresh venv with
the ``dev`` extra, ipykernel installs a ``python3`` kernelspec under ``<venv>/share/jupyter/kernels`` whose
argv starts with the bare word ``python``, which jupyter_client replaces by ``sys.executable``; and even
without that file jupyter_client's ``ensure_native_kernel`` offers ``python3`` whenever ipykernel is
importable. What can still go wrong is a ``python3`` spec elsewhere on the Jupyter path (``JUPYTER_PATH``,
``~/.local/share/jupyter``) that shadows the venv's and starts another interpreter. The ``python3_kernel``
fixture checks the spec that would be used and, if it is missing or points at a different Python, writes one
for ``sys.executable`` into a temporary directory placed first on ``JUPYTER_PATH``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT = 120  # seconds per cell


def _runs_this_python(argv: list[str]) -> bool:
    if not argv:
        return False
    exe = argv[0]
    # jupyter_client swaps these bare names for sys.executable (KernelManager.format_kernel_cmd)
    if exe in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return True
    try:
        return os.path.samefile(exe, sys.executable)
    except OSError:
        return False


@pytest.fixture(scope="session")
def python3_kernel(tmp_path_factory) -> str:
    """Make sure kernel ``python3`` exists and runs ``sys.executable``; returns the kernel name."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        ok = _runs_this_python(list(spec.argv))
    except NoSuchKernel:
        ok = False
    if ok:
        yield KERNEL
        return
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / KERNEL)  # argv = [sys.executable, "-m", "ipykernel_launcher", ...]
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    try:
        assert _runs_this_python(list(KernelSpecManager().get_kernel_spec(KERNEL).argv))
        yield KERNEL
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, python3_kernel: str):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=python3_kernel,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # working directory of the kernel
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # name the notebook, keep nbclient's traceback
        pytest.fail(f"{path.name}: a cell raised\n{exc}", pytrace=False)

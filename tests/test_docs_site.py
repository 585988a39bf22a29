"""The documentation site builds with warnings as errors: ``sphinx-build -W -b html docs <out>``.

Sphinx (with numpydoc, MyST and myst-nb) renders the user guide, the design notes, the CLI reference, the exit
codes and the model schema pages, the notebooks from their committed outputs, and the API reference from the
docstrings of every name in ``mechlp.__all__``. A fresh build takes about 6 s on this project's 2-core machine, so
it runs with the default suite (CI: ``.ci/run``). Skipped with a reason when Sphinx is not installed (it is in
the ``dev`` extra).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

for _module in ("sphinx", "numpydoc", "myst_parser", "myst_nb"):
    pytest.importorskip(_module, reason=f"{_module} (dev extra) builds the documentation site")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html", "docs", str(out / "html")]
    cmd += ["-d", str(out / "doctrees")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr.strip() == "", proc.stderr  # -q: any line is a warning
    return out / "html"


def test_the_site_builds_with_warnings_as_errors(site):
    for page in ("index", "user_guide", "design", "cli", "exit_codes", "model_schema", "references", "api"):
        assert (site / f"{page}.html").is_file(), page


def test_the_api_reference_documents_every_export(site):
    import mechlp

    html = (site / "api.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="mechlp\.([A-Za-z_]\w*)"', html))
    exported = {name for name in mechlp.__all__ if not name.startswith("__")}
    assert exported - documented == set()
    assert "Parameters" in html and "Returns" in html  # numpydoc sections rendered


def test_every_notebook_is_rendered_with_its_outputs(site):
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for name in notebooks:
        html = (site / "_notebooks" / f"{name}.html").read_text(encoding="utf-8")
        assert 'class="cell_output' in html, name  # the committed outputs are shown

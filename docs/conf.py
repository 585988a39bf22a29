"""Sphinx configuration of the mechlp documentation (built by ``tests/test_docs_site.py`` with ``-W``).

Build: ``sphinx-build -W -b html docs docs/_build/html`` from the repository root (the ``dev`` extra installs
Sphinx, numpydoc, MyST and myst-nb).

- The API reference (``api.rst``) is filled at build time from ``mechlp.__all__``: every exported name gets its
  numpydoc docstring, so a new export appears without editing the docs.
- The notebooks of ``notebooks/`` are rendered by myst-nb from their committed outputs (``nb_execution_mode =
  "off"``), which keeps the build at seconds; ``tests/test_notebooks.py`` executes every notebook, and the
  lead regenerates their outputs when figures change. They are copied to ``docs/_notebooks/`` (gitignored),
  since Sphinx reads sources only under ``docs/``.
- The Markdown files keep their paths (``docs/user_guide.md``, ``docs/design.md``, ``docs/cli.md``), which the
  README and tests link to.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the mechlp of this checkout, not an installed copy

import mechlp  # noqa: E402

project = "mechlp"
author = "mechlp developers"
copyright = "2026, mechlp developers"  # noqa: A001 - Sphinx's name
release = mechlp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",  # MyST Markdown (myst-parser) and notebooks
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "gen_cli.py", "**.ipynb_checkpoints", "_notebooks/figures"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "dynamic mechanism design by linear programming", "page_width": "1100px"}

# ---------------------------------------------------------------------------------------------- autodoc, numpydoc
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False  # classes are documented by their docstring (Attributes), not stub pages
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ---------------------------------------------------------------------------------------------- MyST, myst-nb
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3  # links to "#1-models"-style anchors inside the Markdown files
nb_execution_mode = "off"  # committed outputs (see the module docstring)
nb_merge_streams = True

NOTEBOOKS = ROOT / "notebooks"
COPIED = DOCS / "_notebooks"


def _copy_notebooks() -> None:
    COPIED.mkdir(exist_ok=True)
    wanted = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    for old in COPIED.glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()
    sources = [*NOTEBOOKS.glob("*.ipynb"), *(NOTEBOOKS / "figures").glob("*")]  # figures: the notebooks' images
    for src in sorted(sources):
        target = COPIED / src.relative_to(NOTEBOOKS)
        target.parent.mkdir(exist_ok=True)
        if not target.exists() or target.read_bytes() != src.read_bytes():
            shutil.copyfile(src, target)


def api_rst() -> str:
    """The API reference: one autodoc entry per name of ``mechlp.__all__``, in its order."""
    lines = [
        "API reference",
        "=============",
        "",
        "Everything ``import mechlp as ml`` exports (``mechlp.__all__``), with its docstring.",
        "",
        ".. currentmodule:: mechlp",
        "",
    ]
    for name in mechlp.__all__:
        obj = getattr(mechlp, name)
        if name.startswith("__"):
            continue
        kind = "autoclass" if isinstance(obj, type) else "autofunction"
        lines += [f".. {kind}:: {name}", ""]
    return "\n".join(lines) + "\n"


def _source_read(app, docname: str, source: list[str]) -> None:
    if docname == "api":
        source[0] = api_rst()


def setup(app):
    _copy_notebooks()
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True}

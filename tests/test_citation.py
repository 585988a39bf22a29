"""How to cite: ``CITATION.cff`` (mechlp) and ``docs/references.bib`` (the five papers), and one year per paper
everywhere (the Athey-Segal draft mechlp reads is dated February 2007: README, CLI, docstrings and docs agree)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import mechlp

yaml = pytest.importorskip("yaml")  # PyYAML comes with the dev extra (myst-parser)

ROOT = Path(__file__).resolve().parents[1]
ENTRY = re.compile(r"^@(\w+)\{(\w+),\s*$(.*?)^\}", re.M | re.S)
FIELD = re.compile(r"^\s*(\w+)\s*=\s*\{(.*?)\},?\s*$", re.M | re.S)


def _bib() -> dict[str, dict[str, str]]:
    text = (ROOT / "docs" / "references.bib").read_text(encoding="utf-8")
    return {key: {"type": kind, **dict(FIELD.findall(body))} for kind, key, body in ENTRY.findall(text)}


def test_citation_cff_describes_this_release():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == mechlp.__version__ == project["version"]
    assert cff["license"] == project["license"]["text"]
    assert cff["title"].startswith("mechlp") and cff["authors"] and cff["message"]
    assert len(cff["references"]) == 5


def test_the_bibtex_file_has_the_five_papers():
    bib = _bib()
    assert set(bib) == {"lamba2022", "bergemann_valimaki2010", "yoon2015", "yoon2021", "athey_segal2007"}
    for key, entry in bib.items():
        assert entry["year"] == re.search(r"\d{4}", key).group(), key  # the key names the version's year
        assert entry["title"] and entry["author"], key
    assert bib["bergemann_valimaki2010"]["doi"] == "10.3982/ECTA7260"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert sorted(int(r["year"]) for r in cff["references"]) == sorted(int(e["year"]) for e in bib.values())
    page = (ROOT / "docs" / "references.md").read_text(encoding="utf-8")
    assert all(f"| `{key}` |" in page for key in bib)


CITE = re.compile(r"Athey(?: and |-|–)Segal(?:'s)? \(?(\d{4})")


def test_athey_segal_is_cited_with_one_year_everywhere():
    files = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("mechlp/**/*.py"), *ROOT.glob("notebooks/*.ipynb")]
    years = {}
    for path in files:
        for year in CITE.findall(path.read_text(encoding="utf-8")):
            years.setdefault(year, []).append(str(path.relative_to(ROOT)))
    assert set(years) == {_bib()["athey_segal2007"]["year"]}, years

"""The documentation runs: every ```python block of the README and the user guide is executed, and every
``docs/design.md section N`` pointer in the package names a section that exists.

Blocks of one file run in order in one namespace, in a temporary working directory holding a copy of ``models/``
(so the examples read ``models/lamba_usstp.toml`` as a user in the repository root would). A block that is not
meant to run is fenced as ```python notest (rare: at most ``MAX_NOTEST`` per file).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ("README.md", "docs/user_guide.md")  # files whose python blocks must exist and run
DOCS = (*RUN, "docs/design.md")
MAX_NOTEST = 2

FENCE = re.compile(r"^```([^`\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
#: a pointer to a section of the design notes: "docs/design.md section 6" or "docs/design.md section 6.4"
POINTER = re.compile(r"docs/design\.md,?\s+section\s+(\d+(?:\.\d+)?)")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)\. \S", re.M)

README_HEAD = """# mechlp

Set everything up and answer the main question on the bundled model (Lamba's repeated bilateral trade):

```bash
python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/mechlp solve models/lamba_usstp.toml
```

Set everything up and run the tests:

```bash
python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && .venv/bin/python -m pytest -q
```
"""


class CodeBlock(NamedTuple):
    line: int  # line number of the block's first code line in its file
    info: str  # the fence's info string, e.g. "python" or "python notest"
    code: str


def code_blocks(text: str) -> list[CodeBlock]:
    """Fenced code blocks of a markdown text, in order."""
    return [
        CodeBlock(text.count("\n", 0, m.start()) + 2, " ".join(m.group(1).split()), m.group(2))
        for m in FENCE.finditer(text)
    ]


def run_blocks(path: str, text: str, namespace: dict) -> int:
    """Execute the ``python`` blocks of ``text`` in ``namespace``; tracebacks name the file and its line numbers."""
    n = 0
    for block in code_blocks(text):
        if block.info != "python":
            continue
        code = "\n" * (block.line - 1) + block.code  # so line numbers in a traceback are the file's
        exec(compile(code, path, "exec"), namespace)
        n += 1
    return n


def test_code_blocks_finds_fences_info_strings_and_lines():
    text = "intro\n```python\na = 1\n```\ntext\n```python  notest\nraise SystemExit\n```\n```bash\nls\n```\n"
    blocks = code_blocks(text)
    assert [(b.line, b.info, b.code) for b in blocks] == [
        (3, "python", "a = 1\n"),
        (7, "python notest", "raise SystemExit\n"),
        (10, "bash", "ls\n"),
    ]
    ns: dict = {}
    assert run_blocks("x.md", text, ns) == 1
    assert ns["a"] == 1


def test_a_failing_block_reports_its_file_and_line():
    text = "one\ntwo\n```python\nx = 1\nraise RuntimeError('boom')\n```\n"
    with pytest.raises(RuntimeError, match="boom") as info:
        run_blocks("guide.md", text, {})
    frame = info.traceback[-1]
    assert (Path(str(frame.path)).name, frame.lineno + 1) == ("guide.md", 5)


def test_readme_starts_with_the_two_fresh_machine_commands():
    assert (ROOT / "README.md").read_text(encoding="utf-8").startswith(README_HEAD)


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_are_marked_to_run_or_not(doc):
    blocks = code_blocks((ROOT / doc).read_text(encoding="utf-8"))
    python = [b for b in blocks if b.info.split()[:1] in (["python"], ["py"], ["python3"], ["pycon"])]
    odd = [(b.line, b.info) for b in python if b.info not in ("python", "python notest")]
    assert not odd, f"{doc}: python blocks must be fenced as 'python' or 'python notest': {odd}"
    notest = [b.line for b in python if b.info == "python notest"]
    assert len(notest) <= MAX_NOTEST, f"{doc}: too many 'python notest' blocks (lines {notest})"
    if doc in RUN:
        assert any(b.info == "python" for b in python), f"{doc} has no executed python block"


@pytest.mark.parametrize("doc", RUN)
def test_python_blocks_run(doc, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "models", tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "mechlp_docs"}
    assert run_blocks(doc, (ROOT / doc).read_text(encoding="utf-8"), namespace) > 0


def design_sections() -> set[str]:
    return set(HEADING.findall((ROOT / "docs" / "design.md").read_text(encoding="utf-8")))


def test_design_sections_are_numbered_and_unique():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    numbers = HEADING.findall(text)
    assert len(numbers) == len(set(numbers)), "duplicate section numbers in docs/design.md"
    top = [int(n) for n in numbers if "." not in n]
    assert top == list(range(1, len(top) + 1)), f"top-level sections are not numbered 1..n: {top}"
    for n in numbers:
        if "." in n:
            assert n.split(".")[0] in numbers, f"subsection {n} has no section {n.split('.')[0]}"


def test_every_design_pointer_names_an_existing_section():
    sections = design_sections()
    found, broken = 0, []
    for path in sorted([*(ROOT / "mechlp").rglob("*.py"), *(ROOT / "tests").glob("*.py"), ROOT / "README.md"]):
        if path.name == "test_docs.py":
            continue
        text = path.read_text(encoding="utf-8")
        for m in POINTER.finditer(text):
            found += 1
            if m.group(1) not in sections:
                line = text.count("\n", 0, m.start()) + 1
                broken.append(f"{path.relative_to(ROOT)}:{line}: section {m.group(1)}")
    assert found > 0
    assert not broken, "pointers to sections docs/design.md does not have:\n" + "\n".join(broken)


def test_every_mention_of_design_md_in_the_package_is_a_section_pointer():
    """``design.md`` in a docstring or comment is always written ``docs/design.md section N``."""
    bare = []
    for path in sorted((ROOT / "mechlp").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"design\.md", text):
            start = max(0, m.start() - len("docs/"))
            if not POINTER.match(text, start):
                line = text.count("\n", 0, m.start()) + 1
                bare.append(f"{path.relative_to(ROOT)}:{line}")
    assert not bare, "write 'docs/design.md section N':\n" + "\n".join(bare)


@pytest.mark.parametrize("page", ["docs/exit_codes.md", "docs/model_schema.md"])
def test_the_python_blocks_of_the_reference_pages_run(page):
    """The exit-code and model-schema pages state their facts as code too (they need no model files)."""
    assert run_blocks(page, (ROOT / page).read_text(encoding="utf-8"), {}) >= 1

"""Every ```python block of the repository's Markdown files runs as written, so a
documented example cannot rot.

Each block is one test, run in a fresh namespace with a temporary working directory
(files it writes land there). A block must therefore be self-contained. Markers, as an
HTML comment on the line right above the opening fence (invisible in rendered Markdown):

* ``<!-- example: slow -->``: the test is marked ``slow`` (it still runs in CI);
* ``<!-- example: skip (reason) -->``: not run (a GPU, hours of compute, an external
  service); the reason is required and shows in the skip report.

Files searched: every ``*.md`` under the repository root, except hidden directories,
virtual environments, ``benchmarks/results`` (generated reports) and the documentation
site's build-time folders (``docs/_build``, ``docs/_generated``).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_EXCLUDE = {".venv", "venv", "node_modules", "build", "dist", "__pycache__", "_build", "_generated"}
_FENCE = re.compile(r"^```python\s*$")
_MARK = re.compile(r"^<!--\s*example:\s*(slow|skip)\b\s*(.*?)\s*-->\s*$")


def markdown_files(root: Path = ROOT) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*.md")):
        rel = p.relative_to(root)
        if any(part.startswith(".") or part in _EXCLUDE for part in rel.parts[:-1]):
            continue
        if rel.parts[:2] == ("benchmarks", "results"):
            continue
        out.append(p)
    return out


def python_blocks(text: str) -> list[tuple[int, str, str | None, str]]:
    """(line number, code, marker or None, marker text) of each ```python block."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if _FENCE.match(lines[i].strip()):
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            prev = lines[i - 1].strip() if i else ""
            m = _MARK.match(prev)
            blocks.append((start, "\n".join(lines[start:j]) + "\n", m.group(1) if m else None,
                           m.group(2) if m else ""))
            i = j + 1
        else:
            i += 1
    return blocks


def _params():
    params = []
    for path in markdown_files():
        rel = path.relative_to(ROOT).as_posix()
        for line, code, mark, why in python_blocks(path.read_text(encoding="utf-8")):
            marks = []
            if mark == "slow":
                marks.append(pytest.mark.slow)
            elif mark == "skip":
                marks.append(pytest.mark.skip(reason=f"{rel}:{line}: {why or 'marked skip'}"))
            params.append(pytest.param(rel, line, code, marks=marks, id=f"{rel}:{line}"))
    return params


@pytest.mark.parametrize("path, line, code", _params())
def test_markdown_example_runs(path, line, code, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{path}:{line}", "exec"), {"__name__": "__doc_example__"})


def test_collector_reads_fences_and_markers():
    text = "\n".join(["intro", "```python", "a = 1", "```", "<!-- example: skip (needs a GPU) -->", "```python",
                      "b = 2", "```", "<!-- example: slow -->", "```python", "c = 3", "```", "```sh", "ls", "```"])
    blocks = python_blocks(text)
    assert [(b[0], b[1], b[2]) for b in blocks] == [(2, "a = 1\n", None), (6, "b = 2\n", "skip"),
                                                     (10, "c = 3\n", "slow")]
    assert blocks[1][3] == "(needs a GPU)"
    files = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "datagen/channel/README.md"} <= files
    assert not any(f.startswith("benchmarks/results/") for f in files)

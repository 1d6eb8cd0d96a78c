"""Every import line quoted in README.md and docs/*.md imports: the docs cannot drift from
the code (a moved or renamed name fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
START = re.compile(r"^\s*((?:from|import)\s+(?:mlbench|losses)\b.*)")  # a code block's line
INLINE = re.compile(r"`((?:from|import)\s+(?:mlbench|losses)\b[^`]*)`")  # prose: `from ...`


def doc_imports(text: str) -> list[str]:
    """The ``from mlbench... import ...`` / ``import mlbench...`` statements of ``text`` (and
    the same of ``losses``), a parenthesised one joined across its lines."""
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = START.match(lines[i])
        i += 1
        if not m:
            out += [" ".join(q.split()) for q in INLINE.findall(lines[i - 1])]
            continue
        stmt = m.group(1).split("#")[0].rstrip()
        while "(" in stmt and ")" not in stmt and i < len(lines):
            stmt += " " + lines[i].split("#")[0].strip()
            i += 1
        if " import " in stmt or stmt.startswith("import "):
            out.append(" ".join(stmt.split()))
    return out


STATEMENTS = sorted({(path.name, stmt) for path in DOCS
                     for stmt in doc_imports(path.read_text(encoding="utf-8"))})


def test_the_docs_quote_imports_of_every_stage():
    quoted = " ".join(stmt for _, stmt in STATEMENTS)
    for package in ("mlbench.data", "mlbench.models", "mlbench.stats", "mlbench.train",
                    "mlbench.suite", "mlbench.driver", "mlbench.db", "mlbench.leaderboard"):
        assert f"from {package} import" in quoted, package


def test_the_extractor_finds_and_a_stale_line_fails():
    text = ("prose `from mlbench.db import ResultsDB` inline\n```python\n"
            "from mlbench.nope import (a,\n                          b)  # gone\n```\n")
    assert doc_imports(text) == ["from mlbench.db import ResultsDB",
                                 "from mlbench.nope import (a, b)"]
    with pytest.raises(ImportError):
        exec(compile(doc_imports(text)[1], "<doc>", "exec"), {})


@pytest.mark.parametrize(("doc", "statement"), STATEMENTS,
                         ids=[f"{d}:{s}" for d, s in STATEMENTS])
def test_quoted_import_works(doc, statement):
    exec(compile(statement, doc, "exec"), {})

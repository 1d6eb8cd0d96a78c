"""Helpers of the reliability catalogue: run the CLI in-process, fingerprint folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlbench.cli import main


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m mlbench ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def fingerprint(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path: equal means nothing changed."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def error_lines(err: str) -> list[str]:
    """The non-empty lines a command wrote to stderr."""
    return [line for line in err.splitlines() if line.strip()]

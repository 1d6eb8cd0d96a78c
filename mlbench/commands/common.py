"""What the commands share: their one-line errors (``main`` prints ``error: <message>``,
exit code 2; the Python API raises them as ``mlbench.MlbenchError``) and paths quoted for
the shell in the commands they print."""

from __future__ import annotations


class CommandError(Exception):
    """A command cannot go on: ``main`` prints ``error: <message>`` (one line), or
    ``details`` where given (a longer explanation), and exits with ``code`` (2: bad input;
    3: a worker died). ``mlbench.run`` / ``mlbench.results`` raise it as
    ``mlbench.MlbenchError``: ``str(exc)`` is the one-line message."""

    def __init__(self, message: str, code: int = 2, details: str | None = None):
        super().__init__(message)
        self.code = code
        self.details = details


def add_suite_argument(p, example: str = "") -> None:
    """The SUITE argument and ``--set KEY=VALUE`` of a command that reads a suite."""
    p.add_argument("suite", metavar="SUITE", help="suite YAML" + example)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite key, value parsed as YAML (repeatable), "
                   "e.g. --set train.epochs=2 --set 'seeds=[0]'")


def quote(path) -> str:
    """``path`` as a shell word for a printed hint command (``'runs/my run'``)."""
    import shlex

    return shlex.quote(str(path))


def one_line(exc: BaseException) -> str:
    """An exception as one line: an ``OSError`` as "cannot use PATH: reason"."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"cannot use {exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def results_db_problem(where, exc: BaseException, for_run: bool = False) -> str:
    """A sqlite3 error about OUT/results.db as one line that names the file and the fix."""
    from pathlib import Path

    path = Path(where)
    path = path if path.suffix == ".db" else path / "results.db"
    text = " ".join(str(exc).split())
    low = text.lower()
    if "full" in low or "disk i/o" in low:
        return (f"cannot write {path}: {text}; free space on that disk (or choose another "
                "--out DIR), then run the same command again: finished runs are kept")
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return (f"cannot write {path}: {text}; the output folder must be writable: choose "
                "another one with --out DIR")
    if str(path) in text:
        return text
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        fix = ("move it aside (or choose another --out DIR) to start a new one" if for_run
               else "restore it from a copy, or point at another results folder")
        return f"{path} is damaged or not a results database ({text}); {fix}"
    return f"{path}: {text}"


def not_a_folder(dest, option: str) -> str | None:
    """Why ``dest`` cannot be created as a file: a part of its folder path is a file."""
    from pathlib import Path

    for parent in Path(dest).parents:
        if parent.exists():
            if not parent.is_dir():
                return (f"cannot write {dest}: {parent} is a file, not a folder; choose "
                        f"another {option}")
            return None
    return None

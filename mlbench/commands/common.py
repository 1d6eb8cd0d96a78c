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


def write_problem(dest, exc: OSError, option: str) -> str:
    """A failed write of the output file ``dest`` (chosen with ``option``) as one line: the
    cause and the fix; the file was written whole or not at all, so a previous one is kept."""
    from pathlib import Path

    from mlbench.files import disk_of, is_no_space

    kept = "; the previous file is unchanged" if Path(dest).exists() else ""
    if is_no_space(exc):
        return (f"cannot write {dest}: no space left on the disk {disk_of(dest)}{kept}; free "
                f"space there or choose another {option}")
    return f"cannot write {dest}: {exc.strerror or exc}{kept}; choose another {option}"


def dangling_link(folder, what: str, option: str) -> str | None:
    """Why ``folder`` (the ``what``, chosen with ``option``) cannot be made: it or a folder
    above it is a symbolic link whose target does not exist (``mkdir`` says only "File
    exists"). None when there is none."""
    import os
    from pathlib import Path

    for p in (Path(folder), *Path(folder).parents):
        if p.is_symlink() and not p.exists():
            target = Path(p.parent, os.readlink(p))
            where = "is" if p == Path(folder) else f"lies under {p},"
            return (f"the {what} {folder} {where} a symbolic link to {target}, which does not "
                    f"exist; create it (mkdir -p {quote(target)}) or choose another {option}")
    return None

"""Every file the CLI writes is written whole or not at all (issue 24, Deliver 4): a kill or a
full disk in the middle of `report` or `leaderboard --out` leaves the previous good file,
never a truncated one under its name; the temporary of a killed writer is removed by the
next write of that file. Also: output paths that are symbolic links (a dangling link as OUT
is one line, not "File exists")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from mlbench.files import atomic_path, atomic_write
from tests.helpers import REPO, cli, full_disk_prefix, one_error, run_cli

pytestmark = pytest.mark.reliability

# (command words before the output file, the option that names it)
WRITERS = {"leaderboard": (["leaderboard", "{out}", "--format", "html"], "--out"),
           "report": (["report", "{out}"], "-o")}


def _argv(which: str, out, dest) -> list[str]:
    words, option = WRITERS[which]
    return [w.format(out=out) for w in words] + [option, str(dest)]


# The CLI in a child process with SIGXFSZ at its default action (Python ignores it): the
# kernel kills the child at the first write past RLIMIT_FSIZE, so the kill comes in the middle
# of the report's content. The report only: the limit applies to every file the process
# writes, and reading results.db makes its 32 KiB -shm file, more than a leaderboard holds.
KILLED_AT_THE_LIMIT = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "mlbench"
runpy.run_module("mlbench", run_name="__main__")
"""


@pytest.mark.slow
def test_a_kill_mid_write_leaves_the_previous_report(filled, tmp_path, capsys):
    out, _ = filled
    dest = tmp_path / "board" / "report.html"
    code, _, err = cli(capsys, *_argv("report", out, dest))
    assert code == 0, err
    good = dest.read_bytes()
    assert len(good) > 2 * 65536  # the limit below lies above the -shm file
    with open(dest, "ab") as fh:  # the new report would be the same: mark the previous one
        fh.write(b"<!-- previous -->")
    previous = dest.read_bytes()
    done = subprocess.run([sys.executable, "-c", KILLED_AT_THE_LIMIT, str(len(good) // 2),
                           *_argv("report", out, dest)],
                          cwd=REPO, capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                               "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == -signal.SIGXFSZ, done.stderr.decode()[-2000:]
    assert dest.read_bytes() == previous  # the previous report, whole
    [orphan] = dest.parent.glob(f"{dest.name}.tmp-*")  # what the killed writer left
    assert orphan.stat().st_size == len(good) // 2  # killed half-way through the content
    atomic_write(dest, good, remove_dead=True)  # the next write, as the report's
    assert dest.read_bytes() == good and not orphan.exists()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["leaderboard"])
def test_a_full_disk_mid_write_leaves_the_previous_file(filled, tmp_path, capsys, which):
    out, _ = filled
    folder, back = tmp_path / "disk", tmp_path / "back"
    dest = folder / f"{which}.html"
    code, _, err = cli(capsys, *_argv(which, out, dest))
    assert code == 0, err
    previous = dest.read_bytes()
    size = 1 << 20
    # a 1 MiB file system holding the previous file and a filler: one 4 KiB page left, less
    # than the new content needs
    used = -(-len(previous) // 4096) * 4096
    (folder / "filler").write_bytes(b"\0" * (size - used - 4096))
    assert len(previous) > 4096
    done = run_cli(*_argv(which, out, dest),
                   prefix=full_disk_prefix(folder, str(size), back))
    assert done.returncode == 2, done.stderr
    line = one_error(done.stderr)
    assert line.startswith(f"error: cannot write {dest}: no space left on the disk {folder}; "
                           "the previous "), line
    assert (back / dest.name).read_bytes() == previous  # whole, as it was
    assert not list(back.glob("*.tmp-*"))  # no temporary left behind


def test_atomic_path_removes_what_dead_writers_left_and_keeps_a_live_ones(tmp_path):
    dest = tmp_path / "lb.md"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f"lb.md.tmp-{dead}"
    live = tmp_path / f"lb.md.tmp-{os.getppid()}"  # a live process's write in progress
    other = tmp_path / f"other.md.tmp-{dead}"  # another file's: left to its own next write
    for p in (orphan, live, other):
        p.write_text("half")
    atomic_write(dest, "whole", remove_dead=True)
    assert dest.read_text() == "whole"
    assert not orphan.exists() and live.exists() and other.exists()
    with pytest.raises(RuntimeError), atomic_path(dest, remove_dead=True) as tmp:  # a failed write
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "whole" and not tmp.exists()


def test_a_symbolic_link_as_the_output_file_is_written_through(filled, tmp_path, capsys):
    out, _ = filled
    target = tmp_path / "elsewhere" / "board.md"
    link = tmp_path / "board.md"
    link.symlink_to(target)  # dangling: its folder does not exist yet
    code, _, err = cli(capsys, "leaderboard", str(out), "--format", "md", "--out", str(link))
    assert code == 0, err
    assert link.is_symlink() and target.read_text().startswith("### resnet10t / linear")


def test_a_dangling_symbolic_link_as_out_is_one_line(tmp_path, capsys):
    from tests.helpers import tiny_suite, write_suite

    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere" / "deeper")
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(None, link))
    code, _, err = cli(capsys, "run", suite, "--no-progress")
    assert code == 2
    line = one_error(err)
    assert line == (f"error: the output folder {link} is a symbolic link to "
                    f"{tmp_path / 'nowhere' / 'deeper'}, which does not exist; create it "
                    f"(mkdir -p {tmp_path / 'nowhere' / 'deeper'}) or choose another --out DIR")
    assert "File exists" not in err and not (tmp_path / "nowhere").exists()

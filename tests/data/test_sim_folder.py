"""`data sim` never destroys data, concurrent generators of one folder agree, a killed one
resumes (issue 15, 1-2)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from mlbench.data import generate_sim
from mlbench.data.sim import SimFolderError
from mlbench.layout import SIM_MARKER
from tests.helpers import cli, error_lines, fingerprint, spawn

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]

SIM = ["--images", "30", "--size", "16", "--seed", "0"]


def _sim(capsys, out, *extra):
    return cli(capsys, "data", "sim", str(out), *SIM, *extra)


def test_other_sim_parameters_are_refused_and_nothing_changes(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _sim(capsys, out)[0] == 0
    before = fingerprint(out)
    code, _, err = cli(capsys, "data", "sim", str(out), "--images", "12", "--size", "16")
    assert code == 2 and len(error_lines(err)) == 1
    assert "holds CXR14-sim made with" in err and "--force" in err
    assert fingerprint(out) == before


def test_force_replaces_a_sim_of_other_parameters_cleanly(tmp_path, capsys):
    out = tmp_path / "sim"
    assert cli(capsys, "data", "sim", str(out), "--images", "40", "--size", "16")[0] == 0
    assert _sim(capsys, out, "--force")[0] == 0
    fresh = generate_sim(tmp_path / "fresh", images=30, size=16, seed=0, progress=False)
    assert fingerprint(out) == fingerprint(fresh)  # no PNG of the old sim left beside


def test_same_parameters_again_is_a_no_op(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _sim(capsys, out)[0] == 0
    before = fingerprint(out)
    code, stdout, _ = _sim(capsys, out)
    assert code == 0 and "nothing to do" in stdout and fingerprint(out) == before


@pytest.mark.parametrize("force", [False, True])
def test_a_release_label_table_is_never_overwritten(tmp_path, capsys, force):
    real = tmp_path / "nih"
    real.mkdir()
    (real / "Data_Entry_2017_v2020.csv").write_text("Image Index,Finding Labels\nx.png,Mass\n" * 300)
    (real / "test_list.txt").write_text("x.png\n")
    before = fingerprint(real)
    code, _, err = _sim(capsys, real, *(["--force"] if force else []))
    assert code == 2 and len(error_lines(err)) == 1
    assert "never overwritten" in err and "Data_Entry_2017_v2020.csv" in err
    assert fingerprint(real) == before and not (real / SIM_MARKER).exists()


def test_a_non_empty_other_folder_needs_force(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = _sim(capsys, other)
    assert code == 2 and "not empty" in err and "notes.txt" in err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert _sim(capsys, other, "--force")[0] == 0
    assert (other / "notes.txt").read_text() == "mine"  # --force writes beside, deletes nothing


def test_a_file_as_output_is_one_line(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    code, _, err = _sim(capsys, path)
    assert code == 2 and len(error_lines(err)) == 1 and "is a file" in err


def test_refusal_is_an_error_type_for_library_callers(tmp_path):
    (tmp_path / "Data_Entry_2017.csv").write_text("a\n")
    with pytest.raises(SimFolderError, match="never overwritten"):
        generate_sim(tmp_path, images=10, size=16, force=True, progress=False)


@pytest.mark.slow
def test_concurrent_generators_of_one_folder_both_succeed_with_one_dataset(tmp_path):
    # two `data sim` processes on one fresh folder: the folder lock makes the second wait,
    # then find the dataset complete; neither sees a half-written label table
    cmd = [sys.executable, "-m", "mlbench", "data", "sim", "--images", "40", "--size", "16",
           "--seed", "3"]
    reference = fingerprint(generate_sim(tmp_path / "ref", images=40, size=16, seed=3,
                                         progress=False))
    for trial in range(1):
        target = tmp_path / f"race{trial}"
        procs = [subprocess.Popen([*cmd, str(target)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
        assert [r[2] for r in results] == [0, 0], results
        assert fingerprint(target) == reference


KILLED_SIM = ["--images", "300", "--size", "32", "--seed", "5"]


@pytest.mark.slow
def test_kill_9_during_sim_generation_resumes_bit_identical(tmp_path, capsys):
    target = tmp_path / "sim"
    proc = spawn("data", "sim", str(target), *KILLED_SIM)
    while len(list((target / "images").glob("*.png"))) < 20:
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    code, out, err = cli(capsys, "data", "sim", str(target), *KILLED_SIM)
    assert code == 0, err
    fresh = generate_sim(tmp_path / "fresh", images=300, size=32, seed=5, progress=False)
    assert fingerprint(target) == fingerprint(fresh)

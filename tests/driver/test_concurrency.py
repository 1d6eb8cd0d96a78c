"""Drivers side by side on one folder and one machine (issue 15, items 2 and 3): no error, no
run trained twice, a driver waits for the runs another one holds (and takes over those of a
dead one), cores are not oversubscribed (the prepared cache built once:
tests/data/test_cache_lock.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mlbench.driver.cores import claim_cores, cpu_cores
from tests.helpers import (
    cli,
    error_lines,
    finish,
    integrity,
    spawn,
    statuses,
    stored_results,
    tiny_suite,
    trained,
    wait_for,
    write_suite,
)

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]

# the two-driver race by hand: MLBENCH_RACE_TRIALS=20 pytest -m reliability -k race
TRIALS = int(os.environ.get("MLBENCH_RACE_TRIALS", "2"))


@pytest.mark.slow
def test_two_drivers_race_on_a_fresh_folder_without_error_or_duplicate(tmp_path, reference):
    # both generate the sim, build the cache and claim runs at once: the sim and the cache are
    # locked (the second waits, then reuses), a run is claimed once, and the first to finish
    # waits for the run the other holds instead of exiting 1 with no reason
    for trial in range(TRIALS):
        folder = tmp_path / f"race{trial}"
        folder.mkdir()
        path = write_suite(folder / "suite.yaml", tiny_suite(folder / "sim", folder / "out"))
        procs = [spawn("run", path, "--no-progress") for _ in range(2)]
        for proc in procs:
            code, out, err = finish(proc)
            assert code == 0, (trial, err)
            assert "2 finished, 0 failed of 2 runs" in out, (trial, out)
            assert "Traceback" not in err and not [
                line for line in error_lines(err) if "error" in line.lower()], (trial, err)
        assert set(trained(folder / "out").values()) == {1}, trial  # none trained twice
        assert stored_results(folder / "out") == reference, trial
        assert integrity(folder / "out") == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("rest_done_first", [False, True],
                         ids=["trains-the-rest-then-waits", "nothing-left-but-the-held-run"])
def test_a_driver_waits_for_runs_held_by_a_live_driver_and_takes_over_a_dead_ones(
        sim_root, tmp_path, capsys, reference, rest_done_first):
    path, out, hold = (write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, tmp_path / "out")),
                       tmp_path / "out", tmp_path / "hold")
    if rest_done_first:  # the msml run is finished before either driver starts
        assert cli(capsys, "run", path, "--no-progress", "--only", "loss=msml")[0] == 0
    holder = spawn("run", path, "--no-progress", hold=hold)
    held = wait_for(hold, holder).split()[1]  # the other driver holds this run, alive

    def kill_the_holder_once_the_rest_is_done():
        other = [i for i in reference if i != held]
        while not all(statuses(out).get(i) == "finished" for i in other):
            time.sleep(0.2)
        time.sleep(1.5)  # this driver is waiting for the held run now
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()  # reaped, as a shell reaps it: its pid is gone

    killer = threading.Thread(target=kill_the_holder_once_the_rest_is_done, daemon=True)
    killer.start()
    code, stdout, err = cli(capsys, "run", path, "--no-progress")
    killer.join(timeout=60)
    assert code == 0, err
    assert "waiting for 1 run(s) held by another driver" in err
    assert "2 finished, 0 failed of 2 runs" in stdout
    assert stored_results(out) == reference and set(trained(out).values()) == {1}


@pytest.mark.skipif(cpu_cores() < 2, reason="needs 2 cores")
def test_a_driver_takes_only_the_free_cores(sim_root, tmp_path, capsys, reference):
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, tmp_path / "out"))
    with claim_cores(cpu_cores() - 1):  # another driver holds all cores but one
        code, _, err = cli(capsys, "run", path, "--no-progress", "--workers", "2")
    assert code == 0, err
    assert "1 free CPU core(s) on this machine (other mlbench drivers hold the rest): using " \
           "1 worker(s), not 2" in err
    assert stored_results(tmp_path / "out") == reference


def test_a_driver_waits_while_every_core_is_taken(sim_root, tmp_path, capsys, reference):
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, tmp_path / "out"))
    other = claim_cores(cpu_cores())  # another driver holds every core
    threading.Timer(2.0, other.release).start()
    t0 = time.monotonic()
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 0, err
    assert time.monotonic() - t0 >= 2.0
    assert f"waiting for a free CPU core: other mlbench drivers (pids {os.getpid()}) hold " \
           f"{cpu_cores()} of the {cpu_cores()} cores of this machine" in err
    assert stored_results(tmp_path / "out") == reference


def test_a_core_pool_this_user_cannot_use_is_left_out(tmp_path, monkeypatch):
    # a lock file that cannot be opened (another user's, say) must not make drivers wait forever
    pool = tmp_path / "pool"
    (pool / "core-0.lock").mkdir(parents=True)
    monkeypatch.setenv("MLBENCH_CORE_DIR", str(pool))
    with claim_cores(2, cores=2) as claim:
        assert claim.cores == 2 and not claim.pooled
    monkeypatch.setenv("MLBENCH_CORE_DIR", "off")
    with claim_cores(3, cores=2) as claim:
        assert claim.cores == 2 and not claim.pooled

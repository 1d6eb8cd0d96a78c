"""Two processes preparing one cache (issue 15, item 2): the second waits for the first's
lock, then reuses the cache it built."""

from __future__ import annotations

import threading
import time

import pytest

from mlbench.cli import main
from mlbench.data.locks import folder_lock

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def test_a_second_cache_builder_waits_and_reuses_the_cache(sim_root, tmp_path, capsys):
    import shutil

    from mlbench.data import cache as cache_mod

    root = tmp_path / "sim"
    shutil.copytree(sim_root, root, ignore=shutil.ignore_patterns(".mlbench_cache"))
    folder = root / ".mlbench_cache"
    folder.mkdir()
    builds = []
    real_build = cache_mod.build_cache
    cache_mod.build_cache = lambda *a: builds.append(a) or real_build(*a)
    got = []
    try:
        with folder_lock(folder):  # another process is building it
            waiter = threading.Thread(target=lambda: got.append(
                main(["data", "prepare", str(root), "--size", "16", "--workers", "1"])))
            waiter.start()
            # until it says it waits (its first call imports the data stack: slow on a busy
            # machine, so a fixed sleep could let the lock go before it gets there)
            message = f"waiting for another process that is building the prepared cache in {folder}"
            out, end = "", time.monotonic() + 120
            while message not in out and waiter.is_alive() and time.monotonic() < end:
                time.sleep(0.2)
                out += capsys.readouterr().out
            assert waiter.is_alive()  # waits for the lock
            real_build(*cache_mod.locate_cache(root, 16, None)[:4], 16, 1, False, False)
        waiter.join(timeout=120)
    finally:
        cache_mod.build_cache = real_build
    out += capsys.readouterr().out
    assert got == [0] and builds == []  # it found the cache the other one built
    assert message in out
    assert len(list(folder.glob("s16-*"))) == 1

"""A write lock held by another program: said after a short wait, and, past the timeout,
one line with the cause and the fix rather than "database is locked" (issue 24, item 9)."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from mlbench.commands.common import results_db_problem
from mlbench.db import ResultsDB
from mlbench.db import store as store_mod

pytestmark = pytest.mark.reliability


def test_a_write_lock_held_by_another_program_names_the_cause_and_fix(tmp_path, monkeypatch,
                                                                     caplog):
    with ResultsDB(tmp_path):
        pass
    path = tmp_path / "results.db"
    other = sqlite3.connect(path, isolation_level=None)  # as a sqlite3 shell in a transaction
    other.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_mod, "LOCK_NOTICE_S", 0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="mlbench.db"), \
                pytest.raises(sqlite3.OperationalError) as info:
            ResultsDB(tmp_path, timeout=0.6)
    finally:
        other.execute("ROLLBACK")
        other.close()
    text = str(info.value)
    assert text.startswith(f"{path} is locked: another program has held its write lock for ")
    assert "close it and run the same command again" in text and f"fuser {path}" in text
    assert f"waiting for the write lock on {path}" in caplog.text  # said while waiting
    line = results_db_problem(tmp_path, info.value, for_run=True)
    assert line == text  # the command prints it as it is
    with ResultsDB(tmp_path, timeout=0.6) as db:  # released: works again
        assert db.runs() == []

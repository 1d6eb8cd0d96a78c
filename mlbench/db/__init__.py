"""The results store: ``OUT/results.db``, one SQLite file written by the driver alone.

``store`` (:class:`ResultsDB`: runs, status transitions, leases, metrics, epochs,
predictions, meta), ``sqlite`` (arrays as blobs, the read-only connection, the columns an
older file gains), ``testsets`` (each run's test image and patient ids, stored once per test
set) and ``host`` (the ``host:pid`` name of the process that holds a run, and whether it is
alive). Imports nothing of mlbench outside this package and no torch; the driver, the logs
and the leaderboard read and write results through the names below.
"""

from mlbench.db.host import same_host, worker_alive, worker_name
from mlbench.db.sqlite import check_results_db, pack_array, unpack_array
from mlbench.db.store import DB_NAME, LEASE_S, STATUSES, ResultsDB

__all__ = ["DB_NAME", "LEASE_S", "STATUSES", "ResultsDB", "check_results_db", "pack_array",
           "same_host", "unpack_array", "worker_alive", "worker_name"]

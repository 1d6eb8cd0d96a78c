"""Executors on this machine: in the driver's process, or one worker process per slot.

Worker processes are started with ``spawn`` (a fresh interpreter: no inherited CUDA state)
and each gets ``CUDA_VISIBLE_DEVICES`` set to its GPU before anything imports torch, so a
run's ``cuda`` is that worker's GPU. Torch threads per run come from the run's config
(``train.threads``), not from the number of workers, so a CPU run computes the same numbers
in any worker; the driver keeps workers x threads within the machine's cores.
"""

from __future__ import annotations

import ast
import contextlib
import os
import queue
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from mlbench.driver.executors.base import Executor, Outcome, WorkerDeath
from mlbench.execution import LocalOptions


class InlineExecutor(Executor):
    """One run at a time in the driver's process (progress bars per run); what the local
    plan picks for one CPU worker."""

    name = "inline"

    def __init__(self, fn: Callable | None = None):
        super().__init__(fn)
        self._task: dict | None = None

    def free_slots(self) -> int:
        return 0 if self._task is not None else 1

    def submit(self, task: dict) -> None:
        self._task = task

    def wait(self, timeout: float) -> list[Outcome]:
        if self._task is None:
            return []
        task = self._task
        result = self.fn(task)
        self._task = None
        return [Outcome(task["run"]["id"], "done", result)]

    def describe(self) -> str:
        return "this process"


class UnguardedScript(RuntimeError):
    """The driver was called from a script's top level without a ``__main__`` guard."""


def _guarded(tree: ast.Module, line: int) -> bool:
    """Whether ``line`` of a module lies inside an ``if __name__ == "__main__":`` block."""
    for node in tree.body:
        if isinstance(node, ast.If) and node.lineno <= line <= (node.end_lineno or line):
            test = node.test
            if isinstance(test, ast.Compare) and len(test.comparators) == 1:
                sides = [test.left, test.comparators[0]]
                names = {n.id for n in sides if isinstance(n, ast.Name)}
                texts = {n.value for n in sides if isinstance(n, ast.Constant)}
                if names == {"__name__"} and texts == {"__main__"}:
                    return True
    return False


def main_guard_problem() -> str | None:
    """Why spawned workers would hang or die: the driver called from the top level of a
    script (``__main__`` with a file) outside ``if __name__ == "__main__":``, which every
    spawned worker runs again (and so starts the suite again, waiting on its folder).
    None when the call is guarded, or ``__main__`` has no file (a notebook, ``-c``, stdin:
    nothing is run again)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not os.path.isfile(path):
        return None
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            try:
                tree = ast.parse(open(path, encoding="utf-8").read())
            except (OSError, SyntaxError, ValueError):
                return None
            if _guarded(tree, frame.f_lineno):
                return None
            return (f"{path} runs the suite from its top level (line {frame.f_lineno}) without "
                    "an `if __name__ == \"__main__\":` guard, and every worker process "
                    "(started with spawn) would run the script again: put the script's code "
                    "under that guard (or use one worker: workers=1, --workers 1)")
        frame = frame.f_back
    return None


@contextlib.contextmanager
def _no_main_file():
    """A ``__main__`` whose ``__file__`` is no file (a script read from stdin: ``<stdin>``)
    is not run again by spawned workers (they would die trying to open it)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or os.path.isfile(path):
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this worker when its parent process dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker finishes its current run
        pass


def _thread_lock_for_bars() -> None:
    """tqdm makes a multiprocessing lock (a named semaphore) in each process that shows a bar;
    a spawned worker's is its own, and a worker killed by SIGKILL (the OOM killer) would leave
    it to Python's resource tracker, which warns at the driver's exit: a second stderr line
    under the one-line error. A thread lock does the same job in a worker."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _worker_main(index: int, gpu: str | None, fn: Callable, tasks, results) -> None:
    """A worker process: run the tasks of its queue until it gets None."""
    if gpu is not None:  # before torch is imported (spawn: nothing imported it yet)
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    _die_with_parent()
    _thread_lock_for_bars()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put((task["run"]["id"], fn(task)))


@dataclass
class _Worker:
    index: int
    gpu: str | None
    proc: object
    tasks: object
    run_id: str | None = None
    dead: bool = False


class LocalExecutor(Executor):
    """``workers`` processes on this machine; with ``gpus``, worker i uses GPU
    ``gpus[i % len(gpus)]`` (its ``CUDA_VISIBLE_DEVICES``).

    Args:
        fn: the run function (default ``mlbench.driver.worker.run_task``); picklable.
        start_method: multiprocessing start method ("spawn"; "fork" for a test's local fn).
        options: ``LocalOptions`` fields: ``workers`` (number of worker processes),
            ``gpus`` (GPU ids as ``CUDA_VISIBLE_DEVICES`` takes them, or None for CPU).
    """

    name = LocalOptions.name
    options_class = LocalOptions

    def __init__(self, fn: Callable | None = None, *, start_method: str = "spawn", **options):
        super().__init__(fn, **options)
        self.gpus = list(self.options.gpus) if self.options.gpus else None
        self.n = self.options.workers
        self.start_method = start_method
        self._workers: list[_Worker] = []
        self._results = None
        self._deaths: list[WorkerDeath] = []
        self._lost: list[Outcome] = []  # runs of dead workers, until wait() hands them over

    def start(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context(self.start_method)
        if self.start_method != "fork":
            problem = main_guard_problem()
            if problem:
                raise UnguardedScript(problem)
        self._results = ctx.Queue()
        for i in range(self.n):
            gpu = self.gpus[i % len(self.gpus)] if self.gpus else None
            tasks = ctx.Queue()
            proc = ctx.Process(target=_worker_main, args=(i, gpu, self.fn, tasks, self._results),
                               daemon=False, name=f"mlbench-worker-{i}")
            saved = os.environ.get("CUDA_VISIBLE_DEVICES")
            try:  # the spawned interpreter starts with it already set
                if gpu is not None:
                    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                with _no_main_file():
                    proc.start()
            finally:
                if gpu is not None:
                    if saved is None:
                        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                    else:
                        os.environ["CUDA_VISIBLE_DEVICES"] = saved
            self._workers.append(_Worker(i, gpu, proc, tasks))

    def free_slots(self) -> int:
        self._lost += self._reap()  # kept for wait(): a run dropped here was never given back
        return sum(1 for w in self._workers if not w.dead and w.run_id is None)

    def submit(self, task: dict) -> None:
        worker = next(w for w in self._workers if not w.dead and w.run_id is None)
        worker.run_id = task["run"]["id"]
        worker.tasks.put(task)

    def wait(self, timeout: float) -> list[Outcome]:
        out, got = [], []
        try:
            got.append(self._results.get(timeout=timeout))
            while True:
                got.append(self._results.get_nowait())
        except queue.Empty:
            pass
        for run_id, result in got:
            for w in self._workers:
                if w.run_id == run_id:
                    w.run_id = None
            out.append(Outcome(run_id, "done", result))
        out += self._lost + self._reap()
        self._lost = []
        return out

    def _reap(self) -> list[Outcome]:
        """Dead workers: their runs come back as lost."""
        lost = []
        for w in self._workers:
            if w.dead or w.proc.exitcode is None:
                continue
            w.dead = True
            self._deaths.append(WorkerDeath(w.index, w.proc.pid, w.proc.exitcode, w.run_id))
            if w.run_id is not None:
                lost.append(Outcome(w.run_id, "lost", detail=f"worker {_host()}:{w.proc.pid} gone"))
                w.run_id = None
        return lost

    def close(self) -> None:
        for w in self._workers:
            if not w.dead:
                w.tasks.put(None)
        for w in self._workers:
            w.proc.join(timeout=30)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=10)
        self._reap()

    def abort(self) -> None:
        for w in self._workers:
            if w.proc.is_alive():
                w.proc.terminate()
        for w in self._workers:
            w.proc.join(timeout=10)

    def deaths(self) -> list[WorkerDeath]:
        return [d for d in self._deaths if d.exitcode != 0]

    def describe(self) -> str:
        where = f"GPUs {','.join(self.gpus)}" if self.gpus else "CPU"
        return f"{self.n} local worker process(es), {where}"


def _host() -> str:
    import socket

    return socket.gethostname()

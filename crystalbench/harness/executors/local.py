"""The `local` executor: jobs in this process (`--workers 1`, the default) or in N worker processes.

`SequentialExecutor` runs each job in the driver process with the Workspace
planning already filled, one after the other: exactly what `bench run` always did.

`ProcessExecutor` (`--workers N`, N > 1) starts N worker processes with the
``spawn`` start method (safe with torch and CUDA; nothing of the driver's state
is inherited). Each worker rebuilds the registry with the driver's RunContext
and memoises datasets in its own Workspace (`worker.py`); `ctx.jobs`
(featurization processes) is divided among the workers. A worker receives one
job at a time, so the driver claims a job only when a worker is free. Workers
ignore Ctrl-C (the driver stops them) and die with the driver (Linux
parent-death signal), so a driver killed with SIGKILL leaves no process
computing on; its claims name its own pid and are taken over by the next run.
A worker that dies (killed, out of memory) is reported as a `crashed` failure
of the job it held, naming the signal, and replaced by a fresh process.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import CrystalbenchError, DataUnavailableError
from ..job import Job
from .base import Failure, NextJob, Outcome, RunSetup, WorkerSetup, node_name

__all__ = ["SequentialExecutor", "ProcessExecutor", "describe_exit"]


class SequentialExecutor:
    """Runs jobs one at a time in this process (the `local` executor with one worker)."""

    name = "local"

    def __init__(self) -> None:
        self._setup: RunSetup | None = None
        self._running = 0

    def describe(self) -> str:
        return "local, in this process"

    @property
    def running(self) -> int:
        return self._running

    def start(self, setup: RunSetup) -> None:
        self._setup = setup

    def submit(self, next_job: NextJob) -> Iterator[Outcome]:
        from ..stages import IncompatibleError, run_job

        setup = self._setup
        if setup is None:
            raise CrystalbenchError("executor used before start()")
        while True:
            job = next_job()
            if job is None:
                return
            self._running = 1
            try:
                record = run_job(job, setup.ctx, setup.workspace, split_file=setup.split_file)
            except IncompatibleError as exc:
                outcome = Outcome(job, failure=Failure("incompatible", str(exc)))
            except DataUnavailableError as exc:
                outcome = Outcome(job, failure=Failure("data_unavailable", str(exc)))
            except CrystalbenchError as exc:
                if setup.ctx.debug:
                    raise
                outcome = Outcome(job, failure=Failure("error", str(exc)))
            else:
                outcome = Outcome(job, record=record, node=node_name())
            finally:
                self._running = 0
            yield outcome

    def close(self) -> None:
        self._setup = None


def describe_exit(pid: int, exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is None:
        return f"the worker process (pid {pid}) stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (the kernel's out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"the worker process (pid {pid}) on {node_name()} was killed by {name}{why}"
    return f"the worker process (pid {pid}) on {node_name()} exited with status {exitcode}"


def _worker_main(conn: Connection, setup: WorkerSetup) -> None:
    """A worker process: build the world, then run the jobs the driver sends until it sends None."""
    from ..featurize import _die_with_parent
    from . import worker

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    worker._quiet_worker_logging()
    try:
        worker.world(setup)
    except BaseException as exc:  # noqa: BLE001  (reported to the driver, which stops the run)
        first = (str(exc).strip().splitlines() or [""])[0]
        conn.send({"setup_failed": f"{type(exc).__name__}: {first}"})
        return
    conn.send({"ready": True})
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        conn.send(worker.execute(msg, setup))


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    job: Job | None = None
    ready: bool = False


class ProcessExecutor:
    """N worker processes on this machine (the `local` executor with `--workers N`)."""

    name = "local"

    def __init__(self, workers: int, *, start_method: str = "spawn") -> None:
        if workers < 1:
            raise CrystalbenchError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers
        self._mp = mp.get_context(start_method)
        self._setup: WorkerSetup | None = None
        self._pool: list[_Worker] = []
        self._closed = False

    def describe(self) -> str:
        return f"local, {self.workers} worker processes"

    @property
    def running(self) -> int:
        return sum(w.job is not None for w in self._pool)

    def start(self, setup: RunSetup) -> None:
        import pickle

        jobs = max(1, setup.ctx.jobs // self.workers)
        self._setup = setup.for_workers(jobs=jobs)
        try:
            pickle.dumps(self._setup)
        except Exception as exc:
            raise CrystalbenchError(
                f"--workers {self.workers}: this run cannot be sent to worker processes ({type(exc).__name__}: "
                f"{exc}); a plugin registered by hand must be an importable module, and a task built at run time "
                "needs a TaskRecipe. Run it with --workers 1"
            ) from None
        for _ in range(self.workers):
            self._pool.append(self._spawn())

    def _spawn(self) -> _Worker:
        parent, child = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(target=_worker_main, args=(child, self._setup), name="crystalbench-worker",
                                daemon=False)  # not daemonic: a worker may start featurization processes
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def submit(self, next_job: NextJob) -> Iterator[Outcome]:
        exhausted = False
        while True:
            if not exhausted:
                for w in self._pool:
                    if w.job is None:
                        job = next_job()
                        if job is None:
                            exhausted = True
                            break
                        w.job = job
                        w.conn.send(job.to_dict())
            busy = [w for w in self._pool if w.job is not None]
            if not busy:
                job = next_job()  # a retry may have been queued since
                if job is None:
                    return
                exhausted = False
                idle = self._pool[0]
                idle.job = job
                idle.conn.send(job.to_dict())
                continue
            waitables: list[Any] = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
            ready = set(wait(waitables, timeout=5.0))
            for i, w in enumerate(list(self._pool)):
                if w.job is None or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                outcome = self._collect(i, w)
                if outcome is not None:
                    exhausted = False  # a slot is free again: ask for the next job
                    yield outcome

    def _collect(self, i: int, w: _Worker) -> Outcome | None:
        """The outcome of worker `i`'s job if it has one now (an answer, or its death)."""
        job = w.job
        assert job is not None
        msg: Any = None
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if "ready" in msg:
                    w.ready = True
                    msg = None
                    continue
                break
        except (EOFError, OSError):
            msg = None
        if msg is not None and "setup_failed" in msg:
            raise CrystalbenchError(f"a worker process could not load the plugins of this run: {msg['setup_failed']}")
        if msg is not None:
            w.job = None
            return Outcome.from_wire(job, msg)
        if w.proc.is_alive():
            return None  # only the ready message came
        w.proc.join(timeout=5)
        reason = describe_exit(w.proc.pid, w.proc.exitcode)
        if not w.ready:
            reason += " while starting"
        w.conn.close()
        self._pool[i] = self._spawn()
        return Outcome(job, failure=Failure("crashed", reason), node=node_name())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self._pool:
            try:
                if w.proc.is_alive() and w.job is None:
                    w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2.0
        for w in self._pool:
            if w.job is not None and w.proc.is_alive():
                w.proc.terminate()  # interrupted mid-job: its claim is released by the runner
            w.proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            try:
                w.conn.close()
            except OSError:
                pass
        self._pool = []

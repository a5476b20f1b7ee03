"""The `local` executor: jobs in this process (`--workers 1`, the default) or in N worker processes.

`SequentialExecutor` runs the jobs one after the other with the Workspace planning
already filled: in the driver process, or (`bench run`'s default) each in a child
process forked from it, so that plugin code cannot end the grid (see its docstring).

`ProcessExecutor` (`--workers N`, N > 1) starts N fresh Python processes
(``python -m crystalbench.runtime.executors.local FD``, talking to the driver over
a `multiprocessing` pipe): like the ``spawn`` start method, safe with torch and
CUDA and inheriting nothing of the driver's state, but without re-running the
driver's ``__main__`` (a script without an ``if __name__ == "__main__"`` guard
works) and without a resource-tracker process left behind. Each worker rebuilds
the registry with the driver's RunContext and memoises datasets in its own
Workspace (`worker.py`); `ctx.jobs` (featurization processes) is divided among
the workers. A worker receives one job at a time, so the driver claims a job
only when a worker is free. Workers run in their own session (Ctrl-C reaches
the driver, which stops them) and die with the driver (Linux parent-death
signal), so a driver killed with SIGKILL leaves no process computing on; its
claims name its own pid and are taken over by the next run. A worker that dies
(killed, out of memory) is reported as a `crashed` failure of the job it held,
naming the signal, and replaced by a fresh process; one that dies before it is
ready stops the run with that reason (every worker would fail the same way).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import Any

from crystalbench.contract.errors import BadInputError, CrystalbenchError, DataUnavailableError
from crystalbench.contract.job import Job
from crystalbench.runtime.executors.base import Failure, NextJob, Outcome, RunSetup, WorkerSetup, node_name

__all__ = ["SequentialExecutor", "ProcessExecutor", "describe_exit"]


class SequentialExecutor:
    """Runs jobs one at a time (the `local` executor with one worker): in this process, or, with
    `isolate`, each in a child process forked from this one.

    Isolation gives the sequential path what `--workers N` gives: plugin code that calls
    ``os._exit``, raises `KeyboardInterrupt` or prints cannot end the grid or reach `--json`
    stdout. The driver prepares each job first (dataset, folds, descriptor values, filled in
    the shared Workspace), so the child inherits them by fork instead of recomputing them; it
    runs the job with SIGINT ignored (Ctrl-C is the driver's, which kills it and stops the
    grid), its stdout on stderr, and dies with the driver. It sends its record back as JSON
    and exits. A child that dies without answering is a `crashed` job, retried and then
    recorded like a dead worker. The cost is the fork and exit of a process that has torch
    imported: 75 ms per job measured on a toy job (100 ms isolated vs 24 ms in-process, on
    a busy 2-core machine), nothing next to a model's training. Fork is used only on Linux
    (elsewhere jobs run in this process); the driver imports torch but never initializes CUDA
    or torch's thread pools, so children can.
    `bench run` isolates unless `--debug` (tracebacks and debuggers need the job in-process);
    `run_grid` without an executor runs in-process, as library callers expect.
    """

    name = "local"

    def __init__(self, isolate: bool = False) -> None:
        self._setup: RunSetup | None = None
        self._running = 0
        self.isolate = isolate and hasattr(os, "fork") and sys.platform.startswith("linux")
        self._child: int | None = None

    def describe(self) -> str:
        return "local, one job at a time in a child process" if self.isolate else "local, in this process"

    @property
    def running(self) -> int:
        return self._running

    def start(self, setup: RunSetup) -> None:
        self._setup = setup

    def submit(self, next_job: NextJob) -> Iterator[Outcome]:
        setup = self._setup
        if setup is None:
            raise CrystalbenchError("executor used before start()")
        while True:
            job = next_job()
            if job is None:
                return
            self._running = 1
            try:
                outcome = self._forked(job, setup) if self.isolate else self._here(job, setup)
            finally:
                self._running = 0
            yield outcome

    @staticmethod
    def _here(job: Job, setup: RunSetup) -> Outcome:
        from crystalbench.runtime.stages import IncompatibleError, run_job

        try:
            record = run_job(job, setup.ctx, setup.workspace, split_file=setup.split_file)
        except IncompatibleError as exc:
            return Outcome(job, failure=Failure("incompatible", str(exc)))
        except DataUnavailableError as exc:
            return Outcome(job, failure=Failure("data_unavailable", str(exc)))
        except BadInputError as exc:
            return Outcome(job, failure=Failure("bad_input", str(exc)))
        except CrystalbenchError as exc:
            if setup.ctx.debug:
                raise
            return Outcome(job, failure=Failure("error", str(exc)))
        return Outcome(job, record=record, node=node_name())

    def _forked(self, job: Job, setup: RunSetup) -> Outcome:
        """Run `job` in a forked child; see the class docstring."""
        setup.workspace.warm(job, setup.split_file)
        read_fd, write_fd = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here may be written twice
            stream.flush()
        with warnings.catch_warnings():  # Python 3.12 warns about fork with threads (tqdm's monitor)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child_main(job, setup, write_fd)
        os.close(write_fd)
        self._child = pid
        try:
            chunks = []
            while chunk := os.read(read_fd, 1 << 20):
                chunks.append(chunk)
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(read_fd)
        self._child = None
        try:
            payload = json.loads(b"".join(chunks)) if chunks else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            why = describe_exit(pid, os.waitstatus_to_exitcode(status), "the job's child process")
            return Outcome(job, failure=Failure("crashed", why), node=node_name())
        return Outcome.from_wire(job, payload)

    def close(self) -> None:
        """Kill a child still running (the grid was interrupted): its claim is released by the runner."""
        pid, self._child = self._child, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._setup = None


def _child_main(job: Job, setup: RunSetup, fd: int) -> None:
    """The child of `SequentialExecutor._forked`: run the job, write its answer as JSON to `fd`, exit."""
    code = 0
    try:
        from crystalbench.contract.featurize import _die_with_parent
        from crystalbench.runtime.executors.worker import run_to_wire

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent()
        os.dup2(2, 1)  # what plugins print goes to stderr: stdout may be `--json` summaries
        sys.stdout = sys.stderr  # also when sys.stdout was not fd 1 (redirected, captured)
        answer = run_to_wire(job, setup.ctx, setup.workspace, setup.split_file)
        data = json.dumps(answer).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:  # noqa: BLE001  (the driver sees no answer: a crashed job)
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def describe_exit(pid: int, exitcode: int | None, what: str = "the worker process") -> str:
    """Why a worker process ended, in words."""
    if exitcode is None:
        return f"{what} (pid {pid}) stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (the kernel's out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"{what} (pid {pid}) on {node_name()} was killed by {name}{why}"
    return f"{what} (pid {pid}) on {node_name()} exited with status {exitcode}"


def worker_process_main(fd: int) -> None:
    """A worker process (`python -m crystalbench.runtime.executors.local FD`): run the jobs the driver sends.

    The driver sends its `sys.path` (so that plugins it registered by hand import here), then the
    pickled `WorkerSetup`, then one `Job.to_dict()` at a time, and None to stop. The worker answers
    ``{"ready": True}`` (or ``{"setup_failed": message}``) once, then one `worker.execute` answer per job.
    """
    from multiprocessing.connection import Connection

    from crystalbench.contract.featurize import _die_with_parent

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:  # the driver's stdout may be a stream of JSON summaries (`--json`): what a plugin prints goes to stderr
        sys.stdout.flush()
        os.dup2(2, 1)
    except OSError:
        pass
    conn = Connection(fd)
    try:
        for p in conn.recv():
            if p not in sys.path:
                sys.path.append(p)
        from crystalbench.runtime.executors import worker

        worker._quiet_worker_logging()
        setup = conn.recv()
        worker.world(setup)
    except (EOFError, OSError):
        return
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
    proc: subprocess.Popen  # type: ignore[type-arg]
    conn: Connection
    job: Job | None = None
    ready: bool = False


class ProcessExecutor:
    """N worker processes on this machine (the `local` executor with `--workers N`)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise CrystalbenchError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers
        self._setup: WorkerSetup | None = None
        self._blob = b""
        self._pool: list[_Worker] = []
        self._closed = False

    def describe(self) -> str:
        return f"local, {self.workers} worker processes"

    @property
    def running(self) -> int:
        return sum(w.job is not None for w in self._pool)

    def start(self, setup: RunSetup) -> None:
        jobs = max(1, setup.ctx.jobs // self.workers)
        self._setup = setup.for_workers(jobs=jobs)
        try:
            self._blob = pickle.dumps(self._setup)
        except Exception as exc:
            raise CrystalbenchError(
                f"--workers {self.workers}: this run cannot be sent to worker processes ({type(exc).__name__}: "
                f"{exc}); a plugin registered by hand must be an importable module, and a task built at run time "
                "needs a TaskRecipe. Run it with --workers 1"
            ) from None
        for _ in range(self.workers):
            self._pool.append(self._spawn())

    def _spawn(self) -> _Worker:
        assert self._setup is not None
        parent, child = Pipe(duplex=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(child.fileno())],
            pass_fds=[child.fileno()],
            start_new_session=True,  # Ctrl-C reaches the driver only; it stops the workers
            close_fds=True,
        )
        child.close()
        parent.send(list(self._setup.sys_path))
        parent.send_bytes(self._blob)
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
                return
            ready = set(wait([w.conn for w in busy], timeout=5.0))
            for i, w in enumerate(list(self._pool)):
                if w.job is None or w.conn not in ready:
                    continue
                outcome = self._collect(i, w)
                if outcome is not None:
                    exhausted = False  # a slot is free again (or a retry was queued): ask for the next job
                    yield outcome

    def _collect(self, i: int, w: _Worker) -> Outcome | None:
        """The outcome of worker `i`'s job if it has one now: its answer, or its death (EOF on the pipe)."""
        job = w.job
        assert job is not None
        msg: Any = None
        try:
            while msg is None:
                msg = w.conn.recv()
                if "ready" in msg:
                    w.ready = True
                    msg = None
                    if not w.conn.poll():
                        return None
        except (EOFError, OSError):
            msg = None
        if msg is not None and "setup_failed" in msg:
            raise CrystalbenchError(f"a worker process could not load the plugins of this run: {msg['setup_failed']}")
        if msg is not None:
            w.job = None
            return Outcome.from_wire(job, msg)
        try:
            code = w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            code = w.proc.wait()
        reason = describe_exit(w.proc.pid, code)
        w.conn.close()
        if not w.ready:  # it never ran a job: every worker would fail the same way
            raise CrystalbenchError(f"a worker process could not start: {reason} (see its message above; "
                                    "--workers 1 runs the jobs in this process)")
        self._pool[i] = self._spawn()
        return Outcome(job, failure=Failure("crashed", reason), node=node_name())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self._pool:
            try:
                if w.job is None:
                    w.conn.send(None)
                else:
                    w.proc.terminate()  # interrupted mid-job: its claim is released by the runner
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 3.0
        for w in self._pool:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=5)
            try:
                w.conn.close()
            except OSError:
                pass
        self._pool = []


if __name__ == "__main__":
    worker_process_main(int(sys.argv[1]))

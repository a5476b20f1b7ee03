"""`Dispatcher`: feeds a grid's pending jobs to an executor and turns what comes back into records.

The runner plans a grid and picks the jobs that have no valid record yet; the
dispatcher does the rest, as the single writer of the run's records:

    next_job   called by the executor when a slot is free: the next job, claimed just before it
               starts (a job claimed by a concurrent run is left to it; one finished meanwhile is
               skipped; the jobs of a task whose data turned out to be missing are not started)
    outcome    a record (ok, or failed because plugin code raised) is written atomically, passed to
               observers and counted; a job whose worker died is retried `retries` times, then
               recorded as failed; a user error (incompatible job, missing data, a bad split file)
               is one line, not a record
    close      the executor is closed and the claims of jobs still in flight are released, also
               after an exception or Ctrl-C, so the next run takes them

Progress shows an ETA estimated per model (`_Eta`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crystalbench.contract.context import RunContext
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.specs import TaskSpec
from crystalbench.contract.store import atomic_write
from crystalbench.runtime.executors.base import Executor, Failure, Outcome, RunSetup
from crystalbench.runtime.executors.local import SequentialExecutor
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.results import Claim, ResultStore, describe_oserror
from crystalbench.runtime.stages import Workspace, failed_record

__all__ = ["Dispatcher", "RunSummary"]

log = logging.getLogger("crystalbench.runner")


@dataclass
class RunSummary:
    """What a grid did: finished records, skipped / failed / left-to-others counts, error and warning lines."""

    finished: list[ResultRecord] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0
    elsewhere: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unsaved: list[str] = field(default_factory=list)
    planned: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors


class Dispatcher:
    """Runs the pending jobs of one grid through one executor; see the module docstring."""

    def __init__(self, reg: Registry, ctx: RunContext, workspace: Workspace, summary: RunSummary,
                 pending: list[Job], *, rerun: bool, retries: int,
                 on_record: Callable[[ResultRecord], None] | None) -> None:
        self.reg, self.ctx, self.workspace, self.summary = reg, ctx, workspace, summary
        self.rerun, self.retries, self.on_record = rerun, retries, on_record
        self.store = ResultStore(ctx.results_dir)
        self.queue = deque(pending)
        self.retry: deque[Job] = deque()
        self.claims: dict[str, Claim] = {}
        self.attempts: dict[str, int] = {}
        self.broken_tasks: set[str] = set()
        self.started: dict[str, float] = {}
        self.eta = _Eta(Counter(job.model for job in pending))
        self.executor: Executor = SequentialExecutor()
        self.progress = ctx.progress_bar(len(pending), "jobs", "job",
                                         eta=lambda: self.eta.estimate(max(1, self.executor.running)))

    def run(self, executor: Executor | None, setup: RunSetup) -> None:
        """Start `executor` (None: one job at a time in this process), run every pending job, close it."""
        if executor is not None:
            self.executor = executor
        try:
            self.executor.start(setup)
            if not isinstance(self.executor, SequentialExecutor):
                self.ctx.reporter.note(f"running {len(self.queue)} job(s) on {self.executor.describe()}")
            for outcome in self.executor.submit(self.next_job):
                self.outcome(outcome)
        finally:
            try:
                self.executor.close()
            finally:
                for held in self.claims.values():  # jobs in flight when the run stopped: let the next run take them
                    held.release()
                self.progress.close()

    # -- starting jobs
    def next_job(self) -> Job | None:
        """Called by the executor when a slot is free: the next job, claimed (None: nothing to start now)."""
        if self.retry:
            job = self.retry.popleft()  # still claimed
            self.started[job.id] = time.monotonic()
            return job
        while self.queue:
            job = self.queue.popleft()
            self.progress.update(0, postfix=f"{job.model} · {job.task}" if self.executor.running == 0 else None)
            if self._claim(job):
                self.attempts[job.id] = 1
                self.started[job.id] = time.monotonic()
                return job
        return None

    def _claim(self, job: Job) -> bool:
        """Claim `job` for this run; False (and the job counted as not run) when it is not ours to run."""
        if job.task in self.broken_tasks:
            self._not_run(job)
            return False
        claim = self.store.claim(job)
        if claim is None:
            self.summary.elsewhere += 1
            holder = self.store.holder(job) or "another process"
            self.ctx.reporter.note(f"{job.label()}: being computed by {holder}; left to it")
            self._not_run(job)
            return False
        if not self.rerun and self.store.done(job):  # finished by a concurrent run meanwhile
            self.summary.skipped += 1
            claim.release()
            self._not_run(job, status=True)
            return False
        self.claims[job.id] = claim
        return True

    def _not_run(self, job: Job, status: bool = False) -> None:
        self._ended(job, ran=False)
        self.progress.update(1, postfix=self._status() if status else None)

    # -- what comes back
    def outcome(self, outcome: Outcome) -> None:
        """One job's outcome: retried, recorded, or reported as one error line."""
        job, failure = outcome.job, outcome.failure
        if failure is not None and failure.retryable and self.attempts.get(job.id, 1) <= self.retries:
            self.attempts[job.id] = self.attempts.get(job.id, 1) + 1
            self.ctx.reporter.warning(
                f"{job.label()}: {failure.message}; retrying (attempt {self.attempts[job.id]} of {self.retries + 1})"
            )
            self.retry.append(job)
            return
        try:
            record = self._record_of(outcome)
            if record is not None:
                self._keep(record)
        finally:
            held = self.claims.pop(job.id, None)
            if held is not None:
                held.release()
            self._ended(job, ran=failure is None or failure.kind in ("error", "crashed"))
            self.progress.update(1, postfix=self._status())

    def _record_of(self, outcome: Outcome) -> ResultRecord | None:
        """The record an outcome stands for; None for a user error (reported here as one line)."""
        job, failure = outcome.job, outcome.failure
        if failure is None:
            assert outcome.record is not None
            return outcome.record
        if failure.traceback:
            log.debug(f"{job.label()} on {outcome.node or 'a worker'}:\n{failure.traceback}")
        if failure.retryable:
            return _crash_record(job, self._task_or_none(job.task), failure, self.attempts.get(job.id, 1),
                                 outcome.node)
        if failure.kind == "error":  # this job could not run: recorded
            return failed_record(job, self._task_or_none(job.task), failure.message, failure.traceback,
                                 outcome.node or None)
        # a user error: one line; the task's other jobs would fail alike
        if failure.kind == "incompatible":
            self._error(f"{job.model} on {job.task}: {failure.message}")
        elif job.task not in self.broken_tasks:
            self.broken_tasks.add(job.task)
            prefix = "data unavailable: " if failure.kind == "data_unavailable" else ""
            self._error(f"task {job.task!r}: {prefix}{failure.message}")
        return None

    def _keep(self, record: ResultRecord) -> None:
        """Write the record (this process alone writes), tell observers, count it."""
        if _write(self.store, record, self.ctx, self.summary):
            for problem in self.reg.notify_finished(record, self.ctx):
                self.ctx.reporter.warning(problem)
        if not record.ok:
            self.summary.failed += 1
        self.summary.finished.append(record)
        if self.on_record:
            self.on_record(record)

    def _error(self, msg: str) -> None:
        if msg not in self.summary.errors:
            self.summary.errors.append(msg)
            self.ctx.reporter.error(msg)

    def _ended(self, job: Job, ran: bool = True) -> None:
        t0 = self.started.pop(job.id, None)
        self.eta.finished(job.model, time.monotonic() - t0 if ran and t0 is not None else None)

    def _status(self) -> str:
        running = self.executor.running
        return f"{len(self.summary.finished)} done, {self.summary.failed} failed" + (
            f", {running} running" if running else "")

    def _task_or_none(self, name: str) -> TaskSpec | None:
        try:
            return self.workspace.task(name)
        except CrystalbenchError:
            return None


def _save_elsewhere(record: ResultRecord, ctx: RunContext) -> str | None:
    """Last resort when the results dir rejects a record: keep it where it can be written."""
    for folder in (ctx.cache_dir / "unsaved-results", Path(tempfile.gettempdir()) / "crystalbench-unsaved"):
        try:
            path = folder / f"{record.job.task}-{record.job.model}-{record.job_id}.json"
            atomic_write(path, record.to_json())
            return str(path)
        except OSError:
            continue
    return None


def _write(store: ResultStore, record: ResultRecord, ctx: RunContext, summary: RunSummary) -> bool:
    for attempt in range(2):
        try:
            store.write(record)
            return True
        except OSError as exc:
            why = describe_oserror(exc)
            if attempt == 0:
                continue
            saved = _save_elsewhere(record, ctx)
            where = f"; the record was saved to {saved}" if saved else "; the record could not be saved anywhere"
            msg = f"cannot write the result of {record.job.label()} to {store.root}: {why}{where}"
            ctx.reporter.error(msg)
            summary.errors.append(msg)
            if saved:
                summary.unsaved.append(saved)
    return False


def _crash_record(job: Job, task: TaskSpec | None, failure: Failure, attempts: int, node: str) -> ResultRecord:
    """The failed record of a job whose worker died on every attempt."""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return failed_record(job, task, f"worker died: {failure.message} ({tries}; see --retries)", node=node or None)


class _Eta:
    """Seconds left in a grid, estimated per model: the jobs of a model left x its mean job time so far.

    A grid mixes jobs that take milliseconds (dummy) with jobs that take minutes (a GNN), so a
    per-job average is wrong as soon as the slow model starts. Until a job of every model still
    pending has ended there is no honest estimate (None: no ETA shown). `parallel` jobs at once
    divide it.
    """

    def __init__(self, left: Mapping[str, int]) -> None:
        self.left = dict(left)
        self.seconds: dict[str, list[float]] = {}

    def finished(self, model: str, seconds: float | None) -> None:
        """One job of `model` is done; `seconds`: how long it ran (None: it did not run)."""
        self.left[model] = max(0, self.left.get(model, 0) - 1)
        if seconds is not None:
            self.seconds.setdefault(model, []).append(seconds)

    def estimate(self, parallel: int = 1) -> float | None:
        total = 0.0
        for model, n in self.left.items():
            if n == 0:
                continue
            times = self.seconds.get(model)
            if not times:
                return None
            total += n * sum(times) / len(times)
        return total / max(1, parallel)

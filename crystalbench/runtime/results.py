"""The results store: one JSON `ResultRecord` per job, written atomically by one writer.

Layout under the results directory::

    <task>/<model>/<protocol>-fold<k>-seed<s>-<job id>.json   the record of a job
    .attempts/<job id>-<time>.json                             failed re-runs of a job that has a good record
    .locks/<job id>.lock                                       claims of jobs being computed right now

A failed attempt never replaces a good record (`--rerun` of a job that now
fails keeps the old `ok` result and stores the failure beside it). Only regular
files are read as records: a FIFO, socket or device named ``*.json`` is skipped
with a warning (`record_files`), since opening a FIFO blocks forever.

Concurrent `bench run`s on one directory share the work: a job is computed by
whoever claims it first (`claims`). A PID alone cannot say whether a claim's
owner is alive: `bench run` as PID 1 of a container is "alive" from the next
container's view forever, and PIDs are reused. So a claim is an exclusive
`flock` held on the lock file for as long as the job runs (the kernel drops it
when the process dies, even by kill -9), plus a heartbeat (the owner touches the
file's mtime every `HEARTBEAT_S`) for owners on other machines sharing the
directory over NFS, where a lock may not be visible.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.job import Job
from crystalbench.contract.record import InvalidRecordError, ResultRecord
from crystalbench.contract.store import (
    OutputError,
    atomic_write,
    clean_stale_temps,
    describe_oserror,
    is_regular_file,
    probe_writable,
)
from crystalbench.runtime.claims import STALE_HEARTBEAT_S, STALE_LOCK_S, Claim, ClaimError, acquire, holder_of, sweep

__all__ = ["ResultStore", "Claim", "ResultsDirError", "STALE_LOCK_S", "STALE_HEARTBEAT_S", "record_files",
           "describe_oserror"]

log = logging.getLogger("crystalbench.results")


class ResultsDirError(CrystalbenchError):
    """The results directory cannot be written (missing permission, a file in the way, disk full)."""


def _warn_skipped(path: Path, kind: str) -> None:
    log.warning("skipped %s: a %s, not a regular file; it is never read as a record", path, kind)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


def record_files(root: Path, pattern: str = "*.json", *, recursive: bool = True,
                 on_skip: Callable[[Path, str], None] = _warn_skipped) -> Iterator[Path]:
    """Record files under `root` in sorted order: entries matching `pattern`, outside dot-folders.

    A FIFO, socket, device or dangling link with a record's name is passed to
    `on_skip` (default: a warning) and never opened: reading a FIFO would block the
    command forever. A directory named like a record is yielded, so that callers
    report it as an invalid record as before (reading it fails at once).
    """
    root = Path(root)
    if not root.is_dir():
        return
    found = root.rglob(pattern) if recursive else root.glob(pattern)
    for p in sorted(found):
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        try:
            mode = os.stat(p).st_mode
        except OSError:
            on_skip(p, "dangling link or unreadable entry")
            continue
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            yield p
        else:
            on_skip(p, _kind(mode))


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- locations
    def path(self, job: Job) -> Path:
        return self.root / job.relpath

    @property
    def attempts_dir(self) -> Path:
        return self.root / ".attempts"

    @property
    def locks_dir(self) -> Path:
        return self.root / ".locks"

    # -- start-up checks
    def prepare(self) -> int:
        """Check the directory is writable (before any job is computed) and clean leftovers.

        Returns the number of stale temporary files removed. Raises `ResultsDirError`
        with one line naming the problem.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ResultsDirError(f"--results-dir {self.root} is a file, not a directory")
        try:
            probe_writable(self.root, "results directory", fsync=True)
        except OutputError as exc:
            raise ResultsDirError(str(exc)) from None
        removed = clean_stale_temps(self.root)
        try:
            sweep(self.locks_dir)
        except ClaimError as exc:
            raise ResultsDirError(str(exc)) from None
        return removed

    # -- reading
    def existing(self, job: Job) -> ResultRecord | None:
        """The valid record of exactly this job, if there is one."""
        p = self.path(job)
        if not is_regular_file(p):  # missing, or a FIFO/device: never opened
            return None
        try:
            rec = ResultRecord.read(p).validate()
        except Exception:  # unreadable or invalid: the job is not done
            return None
        return rec if rec.job_id == job.id else None

    def done(self, job: Job) -> bool:
        """True when a valid successful record exists (failed jobs are retried on resume)."""
        rec = self.existing(job)
        return rec is not None and rec.ok

    def siblings(self, job: Job) -> list[ResultRecord]:
        """Valid records of the same model/task/protocol/fold/seed but another configuration or data."""
        folder = self.path(job).parent
        out = []
        for p in record_files(folder, f"{job.protocol}-fold{job.fold}-seed{job.seed}-*.json", recursive=False):
            try:
                rec = ResultRecord.read(p)
            except Exception:  # unreadable: nothing to compare with
                continue
            if rec.job_id != job.id and rec.job.protocol == job.protocol:
                out.append(rec)
        return out

    def scan(self) -> Iterator[tuple[Path, ResultRecord | InvalidRecordError]]:
        """Every record file under the root (not attempts, locks or temp files), parsed and validated."""
        for p in record_files(self.root):
            try:
                rec = ResultRecord.read(p)
                rec.validate()
            except InvalidRecordError as exc:
                yield p, exc
                continue
            except Exception as exc:  # one hostile file must never end a scan
                yield p, InvalidRecordError(f"unreadable record: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            yield p, rec

    def records(self) -> Iterator[ResultRecord]:
        for _, rec in self.scan():
            if isinstance(rec, ResultRecord):
                yield rec

    # -- writing (driver only)
    def write(self, record: ResultRecord) -> Path:
        """Write a record; a failed attempt beside an existing good record goes to `.attempts/`."""
        text = record.to_json()
        target = self.path(record.job)
        if not record.ok:
            good = self.existing(record.job)
            if good is not None and good.ok:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                target = self.attempts_dir / f"{record.job_id}-{stamp}-{os.getpid()}.json"
        return atomic_write(target, text)

    # -- claims (see `harness.claims`)
    def lock_path(self, job: Job) -> Path:
        return self.locks_dir / f"{job.id}.lock"

    def claim(self, job: Job) -> Claim | None:
        """Claim a job for this process; None when a live process (here or elsewhere) holds it.

        Raises `ResultsDirError` when the claim cannot be made at all (`.locks` is a
        file, a non-empty directory sits at the lock path, the disk is full).
        """
        try:
            return acquire(self.lock_path(job), label=job.label())
        except ClaimError as exc:
            raise ResultsDirError(str(exc)) from None

    def holder(self, job: Job) -> str | None:
        """Who holds a job's claim ("host pid N, last seen 5 s ago"), if anyone."""
        return holder_of(self.lock_path(job))

"""The results store: one JSON `ResultRecord` per job, written atomically by one writer.

Layout under the results directory::

    <task>/<model>/<protocol>-fold<k>-seed<s>-<job id>.json   the record of a job
    .attempts/<job id>-<time>.json                             failed re-runs of a job that has a good record
    .locks/<job id>.lock                                       claims of jobs being computed right now

A failed attempt never replaces a good record (`--rerun` of a job that now
fails keeps the old `ok` result and stores the failure beside it). Concurrent
`bench run`s on one directory share the work: a job is computed by whoever
claims it first (an atomic lock file holding host, pid and time); a claim whose
process is gone (same host) or older than `STALE_LOCK_S` (other hosts) is taken over.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import CrystalbenchError
from .job import Job
from .record import InvalidRecordError, ResultRecord
from .store import TEMP_PREFIX, atomic_write, clean_stale_temps

__all__ = ["ResultStore", "Claim", "ResultsDirError", "STALE_LOCK_S"]

STALE_LOCK_S = 24 * 3600.0


class ResultsDirError(CrystalbenchError):
    """The results directory cannot be written (missing permission, a file in the way, disk full)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@dataclass
class Claim:
    """A held claim on one job; `release()` when the record is written (or the job given up)."""

    path: Path

    def release(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


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
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=TEMP_PREFIX + "probe-")
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise ResultsDirError(f"results directory {self.root} is not writable: {_oserror(exc)}") from None
        removed = clean_stale_temps(self.root)
        self._clean_stale_locks()
        return removed

    # -- reading
    def existing(self, job: Job) -> ResultRecord | None:
        """The valid record of exactly this job, if there is one."""
        p = self.path(job)
        if not p.exists():
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
        if not folder.is_dir():
            return []
        out = []
        for p in sorted(folder.glob(f"{job.protocol}-fold{job.fold}-seed{job.seed}-*.json")):
            try:
                rec = ResultRecord.read(p)
            except Exception:  # unreadable: nothing to compare with
                continue
            if rec.job_id != job.id and rec.job.protocol == job.protocol:
                out.append(rec)
        return out

    def scan(self) -> Iterator[tuple[Path, ResultRecord | InvalidRecordError]]:
        """Every record file under the root (not attempts, locks or temp files), parsed and validated."""
        if not self.root.exists():
            return
        for p in sorted(self.root.rglob("*.json")):
            rel = p.relative_to(self.root)
            if any(part.startswith(".") for part in rel.parts):
                continue
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

    # -- claims
    def claim(self, job: Job) -> Claim | None:
        """Claim a job for this process; None when a live process holds it."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        path = self.locks_dir / f"{job.id}.lock"
        me = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "job": job.label()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale(path):
                    try:
                        path.unlink()
                    except OSError:
                        pass
                    continue
                return None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            return Claim(path)
        return None

    def holder(self, job: Job) -> str | None:
        """Who holds a job's claim ("host pid N"), if anyone."""
        path = self.locks_dir / f"{job.id}.lock"
        try:
            info = json.loads(path.read_text())
            return f"{info.get('host')} pid {info.get('pid')}"
        except (OSError, ValueError, AttributeError):
            return None

    def _stale(self, path: Path) -> bool:
        try:
            info = json.loads(path.read_text())
            host, pid = info["host"], int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            # unreadable: a writer killed between create and write, unless it is brand new
            try:
                return time.time() - path.stat().st_mtime > 60
            except OSError:
                return True
        if host == socket.gethostname():
            return pid != os.getpid() and not _pid_alive(pid)
        try:
            return time.time() - path.stat().st_mtime > STALE_LOCK_S
        except OSError:
            return True

    def _clean_stale_locks(self) -> None:
        if not self.locks_dir.is_dir():
            return
        for p in self.locks_dir.glob("*.lock"):
            if self._stale(p):
                try:
                    p.unlink()
                except OSError:
                    pass


def _oserror(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def describe_oserror(exc: OSError) -> str:
    """One short phrase for an OSError (disk full, permission denied...)."""
    return _oserror(exc)

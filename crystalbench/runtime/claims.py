"""Claims: "this process is computing X right now", kept in a small lock file that outlives no one.

A claim is the file ``<name>.lock`` holding who made it (host, boot id, pid, the
process's start time, time, what it is for) and, for as long as the claim is
held, an exclusive `flock` on that file plus a heartbeat (its mtime, touched
every `HEARTBEAT_S` by a daemon thread of the owner).

Why not a PID check alone: a PID names a process only within one PID namespace
and one boot. `bench run` is often PID 1 of a container; after a kill -9 and a
restart the new run is PID 1 again and would find its predecessor "alive" (it
is itself), and a reused PID looks alive just the same. So whether a claim is
stale is decided by what cannot be fooled by PID reuse:

* same kernel (equal boot id, so also other containers on this host): the
  kernel drops a `flock` when its owner dies, kill -9 included, so a claim
  whose lock can be taken is stale. Where the file system has no `flock`, the
  owner is identified by pid *and* its start time (``/proc/<pid>/stat`` field
  22), so a reused PID does not count as the owner.
* another machine (another boot id; a results directory on NFS): a lock may
  not be visible there, so a claim is stale when its heartbeat is older than
  `STALE_HEARTBEAT_S` (clocks of the hosts must agree to within a few minutes).
* claims written by crystalbench versions before heartbeats: the old rules
  (same host: pid alive; other hosts: `STALE_LOCK_S`).

A stale claim is taken over in place while holding its lock, so two processes
that both find it stale cannot both win. Oddities at a lock path are handled,
never a traceback: an empty directory, a FIFO or a link there is removed (no
one's data); a non-empty directory, or a file where the locks folder should
be, is one `ClaimError` line naming it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.store import describe_oserror

try:  # POSIX; elsewhere claims fall back to pid + start time and heartbeats
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

__all__ = ["Claim", "ClaimError", "acquire", "holder_of", "sweep", "HEARTBEAT_S", "STALE_HEARTBEAT_S",
           "STALE_LOCK_S", "FORMAT"]

log = logging.getLogger("crystalbench.claims")

FORMAT = 2
HEARTBEAT_S = 30.0  # the owner touches its claim this often
STALE_HEARTBEAT_S = 600.0  # a claim from another machine not touched for this long is stale
STALE_LOCK_S = 24 * 3600.0  # format-1 claims from other hosts (no heartbeat) are stale after this
UNREADABLE_GRACE_S = 60.0  # an empty/garbled claim younger than this may be being written right now

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class ClaimError(CrystalbenchError):
    """A claim cannot be made at all (the locks folder is a file, a directory is in the way, disk full)."""


@cache
def boot_id() -> str | None:
    """This kernel's boot id (shared by every container on the host, new after each reboot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); None if it is gone."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may contain spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def identity(label: str) -> dict[str, Any]:
    """What a claim says about its owner."""
    return {"format": FORMAT, "host": socket.gethostname(), "boot_id": boot_id(), "pid": os.getpid(),
            "start": start_time(os.getpid()), "time": time.time(), "heartbeat_s": HEARTBEAT_S, "job": label}


# -- the claims this process holds, and their heartbeat

_HELD: dict[tuple[int, int], Claim] = {}
_HELD_LOCK = threading.Lock()
_BEAT: threading.Thread | None = None
_WAKE = threading.Event()  # set to beat at once (and to pick up a changed HEARTBEAT_S)


def touch_held() -> None:
    """Refresh the heartbeat (mtime) of every claim this process holds."""
    with _HELD_LOCK:
        fds = [c.fd for c in _HELD.values() if c.fd is not None]
    for fd in fds:
        try:
            os.utime(fd)
        except OSError:  # released meanwhile, or a flaky network file system: next beat
            pass


def _beat() -> None:
    """Touch every held claim's file every `HEARTBEAT_S`, forever (a daemon thread: it ends with the process)."""
    while True:
        _WAKE.wait(HEARTBEAT_S)
        _WAKE.clear()
        touch_held()


def _hold(path: Path, fd: int) -> Claim:
    global _BEAT
    st = os.fstat(fd)
    claim = Claim(path, fd, (st.st_dev, st.st_ino))
    with _HELD_LOCK:
        _HELD[claim.key] = claim
        if _BEAT is None or not _BEAT.is_alive():
            _BEAT = threading.Thread(target=_beat, name="crystalbench-claim-heartbeat", daemon=True)
            _BEAT.start()
    return claim


class Claim:
    """A held claim; `release()` when the work is saved (or given up). Releasing twice is harmless."""

    def __init__(self, path: Path, fd: int | None, key: tuple[int, int]) -> None:
        self.path, self.fd, self.key = Path(path), fd, key

    def __repr__(self) -> str:
        return f"Claim({str(self.path)!r})"

    def release(self) -> None:
        with _HELD_LOCK:
            _HELD.pop(self.key, None)
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self.key:  # still ours: taken over claims are not deleted
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)  # unlinked first, so a waiter that gets the lock sees the name gone and retries


# -- the lock


def _flock(fd: int, *, blocking: bool) -> bool | None:
    """True: this fd holds the exclusive lock; False: someone else does; None: no flock on this file system."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP, EINVAL: locks are not supported here
    return True


def _write(fd: int, info: dict[str, Any]) -> None:
    blob = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, blob, 0)
    os.fsync(fd)


def _read(fd: int) -> dict[str, Any] | None:
    try:
        blob = os.pread(fd, 64 * 1024, 0)
        info = json.loads(blob)
    except (OSError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _is_stale(info: dict[str, Any] | None, age: float, locked: bool | None) -> bool:
    """Whether a claim's owner is gone, from what the claim says, its heartbeat age and the lock test."""
    if info is None:
        return age > UNREADABLE_GRACE_S  # a writer killed between creating and filling it, unless brand new
    try:
        host, pid = str(info["host"]), int(info["pid"])
    except (KeyError, TypeError, ValueError):
        return age > UNREADABLE_GRACE_S
    if "boot_id" not in info:  # format 1: no lock, no heartbeat
        if host == socket.gethostname():
            return pid == os.getpid() or not _pid_alive(pid)  # our own claims are never format 1
        return age > STALE_LOCK_S
    theirs, ours = info.get("boot_id"), boot_id()
    same_kernel = theirs == ours if theirs and ours else host == socket.gethostname()
    if not same_kernel:
        return age > STALE_HEARTBEAT_S
    if locked:
        return True  # nobody holds the lock: the kernel dropped it when its owner died
    if info.get("start") is not None and start_time(os.getpid()) is not None:
        return start_time(pid) != str(info["start"])  # dead, or the PID now names another process
    return not _pid_alive(pid)


def _clear(path: Path, st: os.stat_result) -> None:
    """Remove what is not a claim at a lock path (nobody's data), or say why it cannot be."""
    try:
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        what = "a non-empty directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ClaimError(f"{path} is {what}, not a claim; remove it ({describe_oserror(exc)})") from None


def _examine(path: Path, take_over: dict[str, Any] | None) -> tuple[str, int | None]:
    """("live" | "gone" | "taken", fd): whether the claim at `path` is held; a stale one is taken
    over in place when `take_over` (the new owner's identity) is given, else deleted."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "gone", None
    except OSError as exc:
        raise ClaimError(f"cannot read claim {path}: {describe_oserror(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        _clear(path, st)
        return "gone", None
    with _HELD_LOCK:
        if (st.st_dev, st.st_ino) in _HELD:
            return "live", None  # ours; also never opened again (closing any fd could drop a POSIX lock)
    writable = True
    try:
        fd = os.open(path, os.O_RDWR | _O_NOFOLLOW | _O_CLOEXEC)
    except FileNotFoundError:
        return "gone", None
    except OSError:
        writable = False
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError:
            return "live", None  # cannot even look: leave it be
    keep = False
    try:
        locked = _flock(fd, blocking=False)
        if locked is False:
            return "live", None
        if not _same_file(fd, path):
            return "gone", None  # released or replaced while we looked: try again
        age = time.time() - os.fstat(fd).st_mtime
        if not _is_stale(_read(fd), age, locked):
            return "live", None
        if take_over is not None and locked and writable:
            _write(fd, take_over)
            os.utime(fd)
            keep = True
            return "taken", fd
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ClaimError(f"cannot remove stale claim {path}: {describe_oserror(exc)}") from None
        return "gone", None
    finally:
        if not keep:
            os.close(fd)


def _create(path: Path, me: dict[str, Any]) -> int | None:
    """A new claim file, locked and filled; None when one exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
    except FileExistsError:
        return None
    except OSError as exc:
        raise ClaimError(f"cannot create claim {path}: {describe_oserror(exc)}") from None
    try:
        _flock(fd, blocking=True)  # a contender may hold it for a moment while it reads the empty file
        _write(fd, me)
    except OSError as exc:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise ClaimError(f"cannot write claim {path}: {describe_oserror(exc)}") from None
    return fd


def _ensure_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ClaimError(f"{folder} is a file, not a directory; crystalbench keeps its claims there: "
                         "move the file away")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClaimError(f"cannot create {folder}: {describe_oserror(exc)}") from None


def acquire(path: Path, *, label: str) -> Claim | None:
    """Claim `path` for this process; None when a live owner holds it (see the module docstring)."""
    path = Path(path)
    _ensure_folder(path.parent)
    me = identity(label)
    for _ in range(8):  # each retry follows a release or removal seen mid-look
        fd = _create(path, me)
        if fd is not None:
            return _hold(path, fd)
        verdict, fd = _examine(path, take_over=me)
        if verdict == "taken":
            assert fd is not None
            log.debug("took over the stale claim %s", path)
            return _hold(path, fd)
        if verdict == "live":
            return None
    return None


def holder_of(path: Path) -> str | None:
    """Who holds the claim at `path` ("host pid N", with how long ago it was last seen when not just now)."""
    path = Path(path)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = _read(fd)
    finally:
        os.close(fd)
    if info is None:
        return None
    who = f"{info.get('host')} pid {info.get('pid')}"
    age = time.time() - st.st_mtime
    return who + (f", last seen {age:.0f} s ago" if "boot_id" in info and age > 2 * HEARTBEAT_S else "")


def sweep(folder: Path) -> int:
    """Delete the stale claims in `folder` (start-up clean-up); return how many went."""
    folder = Path(folder)
    if not folder.exists():
        return 0
    _ensure_folder(folder)
    removed = 0
    for p in sorted(folder.glob("*.lock")):
        verdict, _ = _examine(p, take_over=None)
        removed += verdict == "gone"
    return removed

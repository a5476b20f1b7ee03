"""Storage: the one atomic write, the one on-disk cache store, the one in-process memo.

Everything crystalbench writes to disk goes through `atomic_write` (temp file in
the same folder, fsync, rename), so a killed process never leaves a truncated
file under a real name, and `clean_stale_temps` removes what a kill left behind.
Files get the permissions the user's umask gives a new file (``0o666 & ~umask``,
as `open()` would), not the 0600 of a bare `mkstemp`, so a shared site or results
directory stays readable by the group the user meant to share it with.

Output commands (`bench leaderboard build`, `bench export`, ...) go through
`check_output_file` / `check_output_dir` and `output_errors`: a target that is a
result record, or lies inside the results directory the command reads, is
refused before anything is computed, and an OSError while writing (permission
denied, disk full, read-only file system) becomes one `OutputError` line naming
the file, with no temp file or 0-byte file left behind.

Every cache family (descriptor rows, crystal graphs, generated chains, parsed
raw tables, loaded datasets) is a `Store(root, namespace, version)`: entries are
addressed by a key, stored as JSON or NPZ (never pickles), and an entry that
cannot be read back (truncated, corrupt, wrong shape) is deleted and reported as
a miss, so the caller rebuilds it instead of failing on every later run.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import stat
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from crystalbench.contract.errors import BadInputError, CrystalbenchError

__all__ = [
    "atomic_write",
    "atomic_write_json",
    "atomic_copy",
    "is_regular_file",
    "current_umask",
    "describe_oserror",
    "OutputError",
    "check_output_file",
    "check_output_dir",
    "output_errors",
    "probe_writable",
    "clean_stale_temps",
    "Store",
    "Memo",
    "digest",
    "file_sha256",
    "TEMP_PREFIX",
]

log = logging.getLogger("crystalbench.store")

TEMP_PREFIX = ".tmp-"
T = TypeVar("T")


def digest(obj: Any, n: int = 16) -> str:
    """Short stable sha256 of a JSON-able value (sorted keys): identities and cache keys."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


_UMASK_LOCK = threading.Lock()


def _read_umask_from_proc() -> int | None:
    """The umask from /proc/self/status (Linux >= 4.7): read without changing it, so thread-safe."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _umask_by_set_and_restore() -> int:
    """The umask where /proc cannot tell: os.umask can only be read by setting it, so set it back at
    once under a lock (done once, at import, before any writer thread exists)."""
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


_IMPORT_UMASK = _read_umask_from_proc()
if _IMPORT_UMASK is None:
    _IMPORT_UMASK = _umask_by_set_and_restore()
    _PROC_UMASK = False
else:
    _PROC_UMASK = True


def current_umask() -> int:
    """The process umask; from /proc each call where available (a later `os.umask` is seen), else the
    value read once at import (reading it any other way would briefly change it for every thread)."""
    if _PROC_UMASK:
        value = _read_umask_from_proc()
        if value is not None:
            return value
    assert _IMPORT_UMASK is not None
    return _IMPORT_UMASK


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part.

    The temp file is created in the target folder (same filesystem, so the rename
    is atomic) with the `TEMP_PREFIX` that `clean_stale_temps` recognises, and given
    the mode a new file gets under the umask (`mkstemp` alone makes it 0600). On any
    failure the temp file is removed and the exception propagates unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix or ".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 1, fsync: bool = True) -> Path:
    """`atomic_write` of `json.dumps(obj)`; NaN/inf are refused (they are not JSON)."""
    return atomic_write(path, json.dumps(obj, indent=indent, allow_nan=False), fsync=fsync)


def atomic_copy(src: Path, dest: Path, *, fsync: bool = False) -> Path:
    """Copy a regular file's bytes to `dest` atomically (`shutil.copyfile` writes in place: a full disk
    would leave a truncated or 0-byte copy under the real name)."""
    src = Path(src)
    if not is_regular_file(src):
        raise OSError(errno.EINVAL, "not a regular file", str(src))
    return atomic_write(dest, src.read_bytes(), fsync=fsync)


def is_regular_file(path: Path) -> bool:
    """True for a regular file (following links): FIFOs, sockets and devices are never opened, since
    reading a FIFO blocks until someone writes to it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


INPUT_LIMIT = 64 * 2**20  # bytes: a config, space or split file is text a person wrote or a script listed


def read_input_text(path: Path, what: str, limit: int = INPUT_LIMIT) -> str:
    """The text of a small input file the user named (`--config`, `--space`, `--split-file`).

    Refused with one `BadInputError` line, before anything is read, when it is not a regular file (a FIFO
    would block forever, /dev/zero would fill the memory) or larger than `limit`; undecodable text too.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"{what} {path}: not a regular file")
    if st.st_size > limit:
        raise BadInputError(f"{what} {path}: {st.st_size:,} bytes, more than the {limit:,} such a file may have")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
        return data[:limit].decode("utf-8")
    except OSError as exc:
        raise BadInputError(f"{what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# -- output commands: one check and one error policy for every file a command is told to write


class OutputError(CrystalbenchError):
    """An output file or directory that must not or cannot be written; the message names it."""


def describe_oserror(exc: OSError) -> str:
    """One short phrase for an OSError (disk full, permission denied...)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOTDIR:
        return "a parent is a file, not a directory"
    return exc.strerror or str(exc)


@contextmanager
def output_errors(option: str, path: Path) -> Iterator[None]:
    """Turn an OSError while writing `path` into one `OutputError` line naming the option and the file."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) and exc.filename else str(path)
        where = str(path) if Path(where).name.startswith(TEMP_PREFIX) else where
        raise OutputError(f"cannot write {option} {where}: {describe_oserror(exc)}") from None


def _inside(child: Path, parent: Path) -> bool:
    child, parent = _resolved(child), _resolved(parent)
    return child == parent or parent in child.parents


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def _looks_like_record(path: Path) -> bool:
    """Whether an existing `*.json` file looks like a result record (an object naming a `job` and a
    `schema_version`); a file too big to look at counts as one, so that doubt never costs a record."""
    if path.suffix != ".json" or not is_regular_file(path):
        return False
    try:
        if path.stat().st_size > 64 * 1024 * 1024:
            return True  # too big to look at: treat it as a record rather than risk one
        blob = path.read_bytes()
    except OSError:
        return False
    return blob.lstrip().startswith(b"{") and b'"schema_version"' in blob and b'"job"' in blob


def check_output_file(path: Path, *, option: str, reads: Iterable[Path] = ()) -> Path:
    """`path` if an output command may write it, else one `OutputError` line saying why.

    Refused: a directory, a FIFO/device/socket, an existing result record, a `*.json`
    file inside a results directory the command reads (the next scan would read it
    as a record), and a path under a parent that is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a directory; give a file name such as {path / 'out'}")
    if path.exists() and not is_regular_file(path):
        raise OutputError(f"{option} {path} is not a regular file (a FIFO, device or socket); give a file name")
    if _looks_like_record(path):
        raise OutputError(f"{option} {path} is a result record; it is never overwritten (give another file name)")
    for root in reads:
        if path.suffix == ".json" and _inside(path, root) and not _hidden_under(path, root):
            raise OutputError(f"{option} {path} is inside the results directory {root} that this command reads; "
                              "a .json file there would be read as a record (write it elsewhere)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{option} {path}: {parent} is a file, not a directory")
            break
    return path


def _hidden_under(path: Path, root: Path) -> bool:
    rel = _resolved(path).relative_to(_resolved(root))
    return any(part.startswith(".") for part in rel.parts)


def check_output_dir(path: Path, *, option: str, reads: Iterable[Path] = ()) -> Path:
    """`path` if an output command may (re)write files in this directory, else one `OutputError` line.

    Refused: a file, a directory that is, contains or lies inside a results directory
    the command reads (a rebuild would delete or shadow the very records it shows).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file; give a directory")
    for root in reads:
        if _inside(path, root) or _inside(root, path):
            raise OutputError(f"{option} {path} overlaps the results directory {root} that this command reads; "
                              "give a directory outside it (the records it reads are never replaced)")
    return path


def probe_writable(folder: Path, what: str, *, fsync: bool = False) -> Path:
    """Create `folder` if needed and write (then remove) a small probe file in it, so an unwritable or
    full directory is one `OutputError` line before any work, not a traceback after it.

    fsync: also flush the probe (a full disk may only say so then; costs a disk round trip).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder} is a file, not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX + "probe-")
        try:
            os.write(fd, b"x" * 4096)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable: {describe_oserror(exc)}") from None
    return folder


def clean_stale_temps(root: Path, *, older_than_s: float = 60.0) -> int:
    """Delete `TEMP_PREFIX` files under `root` left by killed writers; return how many.

    Only files older than `older_than_s` are removed, so a concurrent writer's
    temp file (seconds old) is never pulled from under it.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    now = time.time()
    removed = 0
    for p in root.rglob(TEMP_PREFIX + "*"):
        try:
            if p.is_file() and now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _safe(part: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(part)) or "_"


class Store:
    """One cache family: `<root>/<namespace>/v<version>/<key[:2]>/<key>.<ext>`.

    namespace: the family ("descriptors/gong29", "graphs/cgcnn-8.0-12", "datasets").
    version: bump when the stored values change meaning; old versions are never read.
    Keys are any string (hashed into a file name when not already a safe hex-like name).

    `get_*` returns None on a miss *and* on an unreadable entry, which it deletes
    (counted in `self.discarded` and logged), so a corrupt file costs one rebuild.
    """

    def __init__(self, root: Path, namespace: str, version: str | int = 1) -> None:
        self.root = Path(root)
        self.namespace = namespace
        self.version = str(version)
        self.dir = self.root.joinpath(*[_safe(p) for p in namespace.split("/")]) / f"v{_safe(self.version)}"
        self.discarded = 0

    def __repr__(self) -> str:
        return f"Store({str(self.dir)!r})"

    def path(self, key: str, ext: str) -> Path:
        name = key if (key and len(key) <= 64 and _safe(key) == key) else hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.dir / name[:2] / f"{name}.{ext}"

    def _discard(self, path: Path, why: str) -> None:
        self.discarded += 1
        log.warning("cache: discarded unreadable entry %s (%s); it will be rebuilt", path, why)
        try:
            path.unlink()
        except OSError:
            pass

    # -- JSON entries
    def get_json(self, key: str, check: Callable[[Any], bool] | None = None) -> Any | None:
        path = self.path(key, "json")
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:  # binary garbage is as corrupt as a truncated entry
            self._discard(path, f"not UTF-8 text: {exc}")
            return None
        except OSError as exc:
            log.warning("cache: cannot read %s: %s", path, exc)
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
            self._discard(path, f"invalid JSON: {exc}")
            return None
        if check is not None and not check(value):
            self._discard(path, "unexpected content")
            return None
        return value

    def put_json(self, key: str, value: Any) -> Path:
        return atomic_write_json(self.path(key, "json"), value, indent=None, fsync=False)

    # -- NPZ entries (arrays only: loaded with allow_pickle=False)
    def get_npz(self, key: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        path = self.path(key, "npz")
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            self._discard(path, f"{type(exc).__name__}: {exc}")
            return None
        missing = [k for k in required if k not in arrays]
        if missing:
            self._discard(path, f"missing arrays {missing}")
            return None
        return arrays

    def put_npz(self, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
        return atomic_write(self.path(key, "npz"), buf.getvalue(), fsync=False)

    def get_or_build_json(self, key: str, build: Callable[[], T], check: Callable[[Any], bool] | None = None) -> Any:
        hit = self.get_json(key, check)
        if hit is not None:
            return hit
        value = build()
        self.put_json(key, value)
        return value


class Memo:
    """A small in-process LRU memo (the one place repeated work is kept in memory)."""

    def __init__(self, maxsize: int = 16) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]  # type: ignore[no-any-return]
        value = build()
        self._items[key] = value
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


# one entry per (file, size, mtime): a folder of structure files holds thousands
_FILE_HASHES = Memo(1 << 16)


def file_sha256(path: Path | str) -> str:
    """sha256 (64 hex digits) of a file's bytes, memoised on (resolved path, size, mtime).

    Only a regular file is read: a FIFO (or a device such as /dev/zero) named as a data or split file
    raises OSError(EINVAL), which callers report as one error line, instead of blocking forever."""
    p = Path(path)
    st = p.stat()
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(p))
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)

    def read() -> str:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    return _FILE_HASHES.get(key, read)

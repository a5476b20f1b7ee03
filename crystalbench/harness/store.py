"""Storage: the one atomic write, the one on-disk cache store, the one in-process memo.

Everything crystalbench writes to disk goes through `atomic_write` (temp file in
the same folder, fsync, rename), so a killed process never leaves a truncated
file under a real name, and `clean_stale_temps` removes what a kill left behind.

Every cache family (descriptor rows, crystal graphs, generated chains, parsed
raw tables, loaded datasets) is a `Store(root, namespace, version)`: entries are
addressed by a key, stored as JSON or NPZ (never pickles), and an entry that
cannot be read back (truncated, corrupt, wrong shape) is deleted and reported as
a miss, so the caller rebuilds it instead of failing on every later run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_json",
    "clean_stale_temps",
    "Store",
    "Memo",
    "digest",
    "TEMP_PREFIX",
]

log = logging.getLogger("crystalbench.store")

TEMP_PREFIX = ".tmp-"
T = TypeVar("T")


def digest(obj: Any, n: int = 16) -> str:
    """Short stable sha256 of a JSON-able value (sorted keys): identities and cache keys."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part.

    The temp file is created in the target folder (same filesystem, so the rename
    is atomic) with the `TEMP_PREFIX` that `clean_stale_temps` recognises. On any
    failure the temp file is removed and the exception propagates unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix or ".tmp")
    try:
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

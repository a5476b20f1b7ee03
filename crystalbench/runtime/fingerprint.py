"""One data identity: the one file hash and the one task fingerprint.

`file_sha256` (in `contract.store`, public because tasks key their caches on it)
is the only function that hashes a file's bytes: raw data files (provenance,
cache keys), split files (`Job.split_source`) and downloads (their expected
checksum) all go through it, so one file is read once per process whatever asks
(memoised in a `Memo` on its resolved path, size and mtime: an edited file is
hashed again).

`task_fingerprint` is the only identity of a task's data. Its ``data`` string is
the job's `data` field (so it is in every job id) and its hex part is the key of
the task's entry in the dataset cache (`dataset_cache`), so the two can never
disagree: editing a data file changes both. It hashes

- every declared file's sha256 under a *portable* name (relative to the data
  directory, or to the folder holding the task's files), so the same data gives
  the same job ids on every machine and results stay comparable across them;
  a folder counts as every file in it, a missing path as missing;
- the task's name, target, type, what it provides and its `version`, and the
  name and version of the plugin providing it.

The cache key adds an 8-hex location suffix (`TaskFingerprint.cache_key`): a
loader may record where it read from (a `--data` task keeps its path in the
dataset's meta), so the same bytes in another folder are loaded once more,
not shared. The location is not data identity and stays out of the job.

A task that declares no files (``files is None``) has no fingerprint until it
is loaded: `content_fingerprint` of the loaded dataset then stands in, and the
dataset is never cached (nothing would tell the cache that its data changed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalbench.contract.store import digest, file_sha256

if TYPE_CHECKING:
    from crystalbench.contract.context import RunContext
    from crystalbench.contract.dataset import Dataset
    from crystalbench.contract.specs import TaskSpec

__all__ = ["TaskFingerprint", "task_fingerprint", "content_fingerprint", "data_part"]

@dataclass(frozen=True)
class TaskFingerprint:
    """A task's data identity; see the module docstring.

    data: the job's `data` field, ``files:<24 hex>`` (or ``content:<24 hex>``).
    files: portable name -> sha256 of every declared file that exists, and of a declared folder's
        listing of names and sha256s (``name/``): what a record's provenance shows.
    location: 8 hex digits of where the files are (the cache key only; empty for content).
    complete: every declared path exists (False: a loader may still fetch some).
    any_present: at least one declared path exists, or the task declares none.
    """

    data: str
    files: dict[str, str] = field(default_factory=dict)
    location: str = ""
    complete: bool = True
    any_present: bool = True

    @property
    def cache_key(self) -> str | None:
        """The dataset cache key: the fingerprint's data part plus the location; None for content."""
        if not self.data.startswith("files:"):
            return None
        return f"{data_part(self.data)}-{self.location}"


def data_part(data: str) -> str:
    """The hex digits of a `data` field (``files:abc...`` -> ``abc...``)."""
    return data.split(":", 1)[-1]


def _portable_names(paths: Sequence[Path], data_dir: Path | None) -> list[str]:
    """Each path relative to the data directory when inside it, else relative to the folder the
    others outside it share (a lone file: its name); never absolute, so ids move between machines."""
    root = data_dir.expanduser().resolve() if data_dir is not None else None
    outside = [p for p in paths if root is None or not p.is_relative_to(root)]
    base = Path(os.path.commonpath([str(p.parent) for p in outside])) if outside else None
    out = []
    for p in paths:
        if root is not None and p.is_relative_to(root):
            out.append(p.relative_to(root).as_posix())
        else:
            assert base is not None
            out.append(p.relative_to(base).as_posix())
    return out


def task_fingerprint(spec: TaskSpec, ctx: RunContext, *, plugin: str | None,
                     plugin_version: str | None) -> TaskFingerprint | None:
    """The fingerprint of a task's declared files now; None when it declares none (``files is None``)."""
    if spec.files is None:
        return None
    declared = [Path(p).expanduser().resolve() for p in spec.files(ctx)]
    names = _portable_names(declared, getattr(ctx, "data_dir", None))
    content: list[Any] = []
    files: dict[str, str] = {}
    present = 0
    for name, p in zip(names, declared):
        if p.is_file():
            files[name] = file_sha256(p)
            content.append([name, files[name]])
            present += 1
        elif p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file())
            listing = [[f.relative_to(p).as_posix(), file_sha256(f)] for f in inside]
            files[name + "/"] = digest(listing, 64)  # one line per folder in every record, not one per file
            content.append([name + "/", listing])
            present += 1
        else:
            content.append([name, None])
    data = digest({
        "task": spec.name, "target": spec.target, "task_type": spec.task_type, "provides": spec.provides,
        "task_version": str(spec.version), "plugin": plugin, "plugin_version": plugin_version, "files": content,
    }, 24)
    return TaskFingerprint(
        data="files:" + data, files=files, location=digest([str(p) for p in declared], 8),
        complete=present == len(declared), any_present=present > 0 or not declared,
    )


def content_fingerprint(data: Dataset) -> TaskFingerprint:
    """The identity of a task that declares no files: its loaded content (never a cache key)."""
    return TaskFingerprint(data="content:" + data.content_hash[:24])

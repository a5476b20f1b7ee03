"""The results store: one JSON file per (model, task, protocol, fold, seed, config).

Files are written atomically (temp file + rename), so a killed run never
leaves a half-written record and a re-run skips exactly the finished jobs.
The leaderboard is built from these files alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["JobId", "ResultStore", "config_hash", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(config: dict) -> str:
    """Short hash of what makes two runs of the same job different (hparams, descriptors, split source)."""
    blob = json.dumps(_jsonable(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class JobId:
    model: str
    task: str
    protocol: str
    fold: int
    seed: int
    config: str  # config_hash(...)

    @property
    def relpath(self) -> Path:
        safe = lambda s: "".join(c if c.isalnum() or c in "-_.+" else "_" for c in s)  # noqa: E731
        return Path(safe(self.task)) / safe(self.model) / f"{self.protocol}-fold{self.fold}-seed{self.seed}-{self.config}.json"

    def label(self) -> str:
        return f"{self.model} · {self.task} · {self.protocol} fold {self.fold} · seed {self.seed}"


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, job: JobId) -> Path:
        return self.root / job.relpath

    def done(self, job: JobId) -> bool:
        """True when a successful record exists (failed jobs are retried on resume)."""
        p = self.path(job)
        if not p.exists():
            return False
        try:
            return json.loads(p.read_text()).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def write(self, job: JobId, record: dict) -> Path:
        path = self.path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_jsonable(record), indent=1, sort_keys=False, allow_nan=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path

    def records(self, *, warn: bool = True) -> Iterator[dict]:
        """Every readable record under the root; unreadable files are reported, not fatal."""
        if not self.root.exists():
            return
        for p in sorted(self.root.rglob("*.json")):
            if p.name.startswith(".tmp-"):
                continue
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError) as exc:
                if warn:
                    print(f"warning: skipping unreadable result file {p}: {exc}", file=sys.stderr)
                continue
            if isinstance(rec, dict) and rec.get("schema") == SCHEMA_VERSION and "model" in rec:
                rec["_path"] = str(p)
                yield rec

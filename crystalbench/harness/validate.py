"""Validate a results directory: every file a valid record, its metrics recomputed, its split official.

Used by `bench results validate DIR` and by publishing workflows, which must
never trust a results file they did not compute: a changed prediction, a
changed metric, a swapped test set or a missing field is reported with the
file and the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .context import RunContext
from .dataset import Dataset
from .errors import CrystalbenchError
from .record import ResultRecord
from .registry import Registry
from .results import ResultStore
from .splits import make_folds

__all__ = ["ValidationReport", "OfficialSplits", "validate_results", "test_ids_hash"]


def test_ids_hash(ids: list[str]) -> str:
    """The split hash of an ordered list of test ids (as in `Fold.describe`)."""
    return hashlib.sha256(json.dumps([str(i) for i in ids]).encode()).hexdigest()


@dataclass
class ValidationReport:
    valid: int = 0
    invalid: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _split_problem(rec: ResultRecord) -> str | None:
    """The stored predictions must be exactly the recorded test split."""
    split = rec.provenance.get("split") or {}
    stored = split.get("test_ids_sha256")
    if not rec.ok or rec.predictions is None:
        return None
    if not isinstance(stored, str):
        return "provenance.split.test_ids_sha256 is missing"
    if test_ids_hash(rec.predictions["ids"]) != stored:
        return "the predictions' ids do not match the recorded test split hash"
    return None


def validate_results(
    root: Path,
    reg: Registry | None = None,
    ctx: RunContext | None = None,
    *,
    require_official: bool = False,
) -> ValidationReport:
    """Check every record under `root`; with `reg` and `ctx`, also against each task's official split.

    `require_official` is for results nobody here computed (leaderboard submissions): a record
    whose split cannot be checked (a task this installation does not know, its data missing,
    a user `--split-file`) is then invalid instead of a note, because an unverifiable split
    is exactly what a tampered submission would look like.
    """
    report = ValidationReport()
    splits = OfficialSplits(reg, ctx) if reg is not None and ctx is not None else None
    if require_official and splits is None:
        raise CrystalbenchError("checking official splits needs the task registry and a data directory")
    for path, rec in ResultStore(root).scan():
        if not isinstance(rec, ResultRecord):
            report.invalid.append((path, str(rec)))
            continue
        problem = _split_problem(rec)
        if problem is None and rec.ok and splits is not None:
            problem = splits.problem(rec, required=require_official)
        if problem:
            report.invalid.append((path, problem))
        else:
            report.valid += 1
    for name in sorted(splits.unavailable if splits is not None else ()):
        report.notes.append(f"task {name!r}: data not available here, official splits not checked "
                            f"(`bench data fetch {name}`)")
    return report


class OfficialSplits:
    """Each record's test ids compared with the official split of its task, protocol, fold (and seed).

    The split is recomputed from the task's data (loaded once per task), so a record whose
    predictions cover another test set than the one the protocol defines is caught even when
    its own split hash was rewritten to match. Used by `validate_results` and by the Matbench
    export, which must only ever publish the official folds.
    """

    def __init__(self, reg: Registry, ctx: RunContext) -> None:
        self.reg = reg
        self.ctx = ctx
        self.unavailable: set[str] = set()
        # test-id hash of every fold of (task, protocol, seed, with validation): the task's data is
        # loaded and split once, not once per record or per fold
        self._hashes: dict[tuple[str, str, int, bool], list[str]] = {}
        self._data: dict[str, Dataset] = {}

    def problem(self, rec: ResultRecord, *, required: bool = False) -> str | None:
        """Why `rec`'s test ids are not the official ones (None when they are, or cannot be checked
        and `required` is False)."""
        job = rec.job
        if job.split_source is not None:
            return "the split comes from a user --split-file, which has no official version" if required else None
        if job.task not in self.reg.tasks:
            return f"task {job.task!r} is not registered here, so its split cannot be checked" if required else None
        if job.protocol not in ("matbench", "file", "paper"):
            return f"protocol {job.protocol!r} has no official split" if required else None
        if job.task in self.unavailable:
            return self._unavailable(job.task) if required else None
        task = self.reg.tasks[job.task]
        needs_val = (rec.provenance.get("split") or {}).get("n_val", 0) > 0
        key = (job.task, job.protocol, job.seed if job.protocol != "matbench" else -1, needs_val)
        if key not in self._hashes:
            try:
                if job.task not in self._data:
                    self._data[job.task] = task.load(self.ctx)
                data = self._data[job.task]
                folds = make_folds(task, data, job.protocol, seed=job.seed, needs_validation=needs_val, ctx=self.ctx)
            except CrystalbenchError:
                self.unavailable.add(job.task)
                return self._unavailable(job.task) if required else None
            self._hashes[key] = [fold.describe(data)["test_ids_sha256"] for fold in folds]
        hashes = self._hashes[key]
        if job.fold >= len(hashes):
            return f"task {job.task!r} has no fold {job.fold} under protocol {job.protocol!r}"
        expected = hashes[job.fold]
        if (rec.provenance.get("split") or {}).get("test_ids_sha256") != expected:
            return (f"test ids differ from the official {job.protocol} split of {job.task!r} fold {job.fold} "
                    f"(predictions for another test set, or a changed fold number)")
        return None

    def _unavailable(self, task: str) -> str:
        return (f"task {task!r}: its data is not available here, so the official split cannot be checked "
                f"(run `bench data fetch {task}` or pass --data-dir)")

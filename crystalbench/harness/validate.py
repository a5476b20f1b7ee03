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
from .errors import CrystalbenchError
from .record import ResultRecord
from .registry import Registry
from .results import ResultStore
from .splits import make_folds

__all__ = ["ValidationReport", "validate_results", "test_ids_hash"]


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


def validate_results(root: Path, reg: Registry | None = None, ctx: RunContext | None = None) -> ValidationReport:
    """Check every record under `root`; with `reg` and `ctx`, also against each task's official split."""
    report = ValidationReport()
    official: dict[tuple[str, str, int, int], str | None] = {}
    unavailable: set[str] = set()
    for path, rec in ResultStore(root).scan():
        if not isinstance(rec, ResultRecord):
            report.invalid.append((path, str(rec)))
            continue
        problem = _split_problem(rec)
        if problem is None and rec.ok and reg is not None and ctx is not None:
            problem = _official_split_problem(rec, reg, ctx, official, unavailable)
        if problem:
            report.invalid.append((path, problem))
        else:
            report.valid += 1
    for name in sorted(unavailable):
        report.notes.append(f"task {name!r}: data not available here, official splits not checked")
    return report


def _official_split_problem(
    rec: ResultRecord,
    reg: Registry,
    ctx: RunContext,
    cache: dict[tuple[str, str, int, int], str | None],
    unavailable: set[str],
) -> str | None:
    job = rec.job
    if job.split_source is not None or job.task not in reg.tasks or job.task in unavailable:
        return None  # a user split file, a task this installation does not know, or no data here
    task = reg.tasks[job.task]
    if job.protocol not in ("matbench", "file", "paper"):
        return None
    needs_val = (rec.provenance.get("split") or {}).get("n_val", 0) > 0
    key = (job.task, job.protocol, job.seed if job.protocol != "matbench" else -1, job.fold)
    if key not in cache:
        try:
            data = task.load(ctx)
            folds = make_folds(task, data, job.protocol, seed=job.seed, needs_validation=needs_val, ctx=ctx)
        except CrystalbenchError:
            unavailable.add(job.task)
            return None
        cache[key] = folds[job.fold].describe(data)["test_ids_sha256"] if job.fold < len(folds) else None
    expected = cache[key]
    if expected is None:
        return f"task {job.task!r} has no fold {job.fold} under {job.protocol}"
    if (rec.provenance.get("split") or {}).get("test_ids_sha256") != expected:
        return f"test ids differ from the official {job.protocol} split of {job.task!r} fold {job.fold}"
    return None

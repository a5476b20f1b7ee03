"""Validate a results directory: what `bench results validate DIR` checks, and the only place it is decided.

Used by `bench results validate DIR` and by publishing workflows, which must
never trust a results file they did not compute: a changed prediction, a
changed metric, a forged ground truth, a swapped test set, a copied record or a
missing field is reported with the file and the reason. The checks, in order
(`CHECKS`, also printed by `--help` and listed in docs/leaderboard.md):

1. the file is a record: JSON, a known schema version, every field of its type;
2. its job id is the hash of its job's contents;
3. an ok record's metrics equal those recomputed from its stored predictions,
   and every metric is finite;
4. the ids of its predictions hash to the recorded test split;
5. it is the only file of its job: a second copy of the same job is invalid
   (it would count twice in a mean); the copy at the job's own path is kept;
6. with the task's data here: its test ids are the task's official split
   (matbench, file and paper protocols);
7. with the task's data here: every stored ``y_true`` equals the task's own
   target for that id (a record whose ground truth was set to its predictions
   has a perfect score and consistent metrics; only the task's data exposes it);
8. with the model and task installed here: a `bench run` record's ``non_default``
   (the settings that differ from the model's recipe, which decide whether a table
   heads it plain ``rf`` and compares it with the paper) is what its job's own
   parameters give, so a 5-tree forest cannot pass for the model by emptying it.

Checks 6 and 7 need the task's data, loaded once per task through the same path as
`bench run` (`stages.Workspace`, so the dataset cache is used). A record whose
data is not here (task unknown here, files missing, a `bench run --data` task
whose file was not given) is noted and counted valid, unless the caller
requires the check (`require_truth`, implied by `require_official`), as a
submission workflow must: an unverifiable record looks exactly like a forged one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crystalbench.contract.context import RunContext
from crystalbench.contract.enums import Protocol
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.record import ResultRecord, compact_value
from crystalbench.contract.specs import TaskSpec
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.results import ResultStore
from crystalbench.runtime.splits import make_folds
from crystalbench.runtime.stages import Workspace

__all__ = ["ValidationReport", "OfficialSplits", "GroundTruth", "validate_results", "test_ids_hash",
           "unique_records", "CHECKS", "UserTasks"]

CHECKS = (
    "the file is a record: JSON, a schema version this crystalbench reads, every field of its type",
    "its job id is the hash of its job's contents",
    "an ok record's metrics equal those recomputed from its stored predictions, and all are finite",
    "the ids of its predictions hash to the recorded test split",
    "it is the only file of its job (another copy of the same job id is invalid; the one at the job's own path "
    "is kept)",
    "with the task's data here: its test ids are the task's official split (matbench, file, paper protocols)",
    "with the task's data here: every stored y_true equals the task's own target for that id",
    "with the model and task installed here: a bench run record's non_default (its settings that differ from "
    "the model's recipe) is what its job's parameters give",
)

# A `bench run --data FILE` task for a record (None: its file was not given); see `GroundTruth`.
UserTasks = Callable[[ResultRecord], TaskSpec | None]
_TRUTH_RTOL, _TRUTH_ATOL = 1e-9, 1e-12


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


def _at_own_path(path: Path | None, rec: ResultRecord) -> bool:
    """Whether `path` ends in the job's own location (`<task>/<model>/<file>`), wherever the root is."""
    return path is not None and Path(path).parts[-3:] == rec.job.relpath.parts


def unique_records(
    pairs: Iterable[tuple[Path | None, ResultRecord]],
) -> tuple[list[tuple[Path | None, ResultRecord]], list[tuple[Path | None, ResultRecord, Path | None]]]:
    """One record per job id: (kept pairs in input order, [(path, record, the kept copy's path)] of the others).

    Copies of one job (a record copied into another folder, or renamed) would count
    twice in a mean. The copy at the job's own path wins; otherwise the first given.
    """
    pairs = list(pairs)
    chosen: dict[str, int] = {}
    for i, (path, rec) in enumerate(pairs):
        j = chosen.get(rec.job_id)
        if j is None or (_at_own_path(path, rec) and not _at_own_path(pairs[j][0], pairs[j][1])):
            chosen[rec.job_id] = i
    keep = set(chosen.values())
    kept = [pair for i, pair in enumerate(pairs) if i in keep]
    dupes = [(path, rec, pairs[chosen[rec.job_id]][0]) for i, (path, rec) in enumerate(pairs) if i not in keep]
    return kept, dupes


def validate_results(
    root: Path,
    reg: Registry | None = None,
    ctx: RunContext | None = None,
    *,
    require_official: bool = False,
    official: bool = True,
    truth: bool = True,
    require_truth: bool = False,
    user_tasks: UserTasks | None = None,
) -> ValidationReport:
    """Check every record under `root` (`CHECKS`); with `reg` and `ctx`, also against each task's data.

    `require_official` is for results nobody here computed (leaderboard submissions): a record
    whose split or ground truth cannot be checked (a task this installation does not know, its
    data missing, a user `--split-file`) is then invalid instead of a note, because an
    unverifiable record is exactly what a tampered submission would look like. `require_truth`
    asks the same of the ground-truth check alone. `official` / `truth` switch those checks off.
    `user_tasks` rebuilds the task of a `bench run --data FILE` record from its file.
    """
    report = ValidationReport()
    require_truth = require_truth or require_official
    checkable = reg is not None and ctx is not None
    if (require_official or require_truth) and not checkable:
        raise CrystalbenchError("checking official splits and ground truth needs the task registry and a data directory")
    workspace = Workspace(reg, ctx) if reg is not None and ctx is not None else None
    splits = OfficialSplits(reg, ctx, workspace) if reg is not None and ctx is not None and official else None
    truths = GroundTruth(workspace, user_tasks) if workspace is not None and (truth or require_truth) else None
    parsed: list[tuple[Path | None, ResultRecord]] = []
    for path, rec in ResultStore(root).scan():
        if isinstance(rec, ResultRecord):
            parsed.append((path, rec))
        else:
            report.invalid.append((path, str(rec)))
    kept, dupes = unique_records(parsed)
    for dupe, rec, first in dupes:
        report.invalid.append((dupe or Path("?"), f"a copy of job {rec.job_id}, whose record is {first}: "
                                                  "each job counts once (remove the copy)"))
    for where, rec in kept:
        problem = _split_problem(rec)
        if problem is None and rec.ok and splits is not None:
            problem = splits.problem(rec, required=require_official)
        if problem is None and rec.ok and truths is not None:
            problem = truths.problem(rec, required=require_truth)
        if problem is None and rec.ok and reg is not None:
            problem = _recipe_problem(rec, reg, user_tasks, required=require_official)
        if problem:
            report.invalid.append((where or Path("?"), problem))
        else:
            report.valid += 1
    report.invalid.sort(key=lambda item: str(item[0]))
    report.notes += _notes(splits, truths)
    return report


def _recipe_problem(rec: ResultRecord, reg: Registry, user_tasks: UserTasks | None, *, required: bool) -> str | None:
    """Why `rec`'s stored ``non_default`` is not what its job's parameters give (check 8), or None.

    Recomputed with the function `bench run` stores it with (`stages.recipe_differences`),
    so a record whose configuration was changed after the run, or whose ``non_default``
    was emptied to pass a shortened run for the model's recipe, is caught. Tuning trials and
    schema-2 records are never taken for the recipe, so there is nothing to check; a model
    or task not installed here cannot be checked. A record made by other code for the model
    (its ``job.code``) may come from a recipe that has changed since: a difference is then
    only invalid in strict mode (`required`).
    """
    from crystalbench.runtime.stages import recipe_differences

    if rec.origin != "run":
        return None
    job = rec.job
    spec = reg.models.get(job.model)
    task = reg.tasks.get(job.task) or (user_tasks(rec) if user_tasks is not None else None)
    if spec is None or task is None:
        return None
    try:
        expected = recipe_differences(job, spec, task)
    except CrystalbenchError:
        return None
    stored = json.loads(json.dumps(rec.non_default, sort_keys=True, default=str))
    if json.loads(json.dumps(expected, sort_keys=True, default=str)) == stored:
        return None
    here = reg.code_version("model", job.model)
    if here != job.code.get("model") and not required:
        return None

    def show(d: dict[str, object]) -> str:
        return ", ".join(f"{k}={compact_value(v)}" for k, v in sorted(d.items())) or "none (the recipe)"

    return (f"non_default says {show(stored)} but the job's parameters differ from {job.model}'s recipe for "
            f"{job.task} in {show(expected)} (a changed record: it would be shown as another configuration)")


def _notes(splits: OfficialSplits | None, truths: GroundTruth | None) -> list[str]:
    """One line per task whose records could not be checked against its data, and why."""
    notes = []
    missing = (splits.unavailable if splits is not None else set()) | (
        set(truths.unavailable) if truths is not None else set())
    for name in sorted(missing):
        what = " and ".join(w for w, on in (("official splits", splits is not None),
                                             ("ground truth", truths is not None)) if on)
        notes.append(f"task {name!r}: data not available here, {what} not checked (`bench data fetch {name}`)")
    for name, why in sorted((truths.unchecked if truths is not None else {}).items()):
        notes.append(f"task {name!r}: ground truth not checked: {why}")
    return notes


class OfficialSplits:
    """Each record's test ids compared with the official split of its task, protocol, fold (and seed).

    The split is recomputed from the task's data (loaded once per task), so a record whose
    predictions cover another test set than the one the protocol defines is caught even when
    its own split hash was rewritten to match. Used by `validate_results` and by the Matbench
    export, which must only ever publish the official folds.
    """

    def __init__(self, reg: Registry, ctx: RunContext, workspace: Workspace | None = None) -> None:
        self.reg = reg
        self.ctx = ctx
        self.workspace = workspace if workspace is not None else Workspace(reg, ctx)
        self.unavailable: set[str] = set()
        # test-id hash of every fold of (task, protocol, seed, with validation): the task's data is
        # loaded and split once, not once per record or per fold
        self._hashes: dict[tuple[str, str, int, bool], list[str]] = {}

    def problem(self, rec: ResultRecord, *, required: bool = False) -> str | None:
        """Why `rec`'s test ids are not the official ones (None when they are, or cannot be checked
        and `required` is False)."""
        job = rec.job
        if job.split_source is not None:
            return "the split comes from a user --split-file, which has no official version" if required else None
        if job.task not in self.reg.tasks:
            return f"task {job.task!r} is not registered here, so its split cannot be checked" if required else None
        if not Protocol.has(job.protocol):
            return f"protocol {job.protocol!r} has no official split" if required else None
        if job.task in self.unavailable:
            return self._unavailable(job.task) if required else None
        task = self.reg.tasks[job.task]
        n_val = (rec.provenance.get("split") or {}).get("n_val")
        needs_val = isinstance(n_val, int) and n_val > 0  # `ResultRecord.problems` checked its type
        key = (job.task, job.protocol, job.seed if job.protocol != "matbench" else -1, needs_val)
        if key not in self._hashes:
            try:
                data = self.workspace.load(job.task).data
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


@dataclass
class _Truth:
    """A task's own targets by id, and the fingerprint of the data they come from."""

    index: dict[str, int]
    targets: np.ndarray
    fingerprint: str
    target: str


class GroundTruth:
    """Each ok record's stored ``y_true`` compared with its task's own targets for those ids.

    The targets come from the task's data loaded here (once per task, target and task
    type; `bench run --data` tasks from the file `user_tasks` finds for them). The first
    id whose stored value differs (beyond float round-off) or that the task does not have
    is named. A record that names other data than this installation has (its data
    fingerprint) is still compared: equal targets are accepted, differing ones say so.
    """

    def __init__(self, workspace: Workspace, user_tasks: UserTasks | None = None) -> None:
        self.workspace = workspace
        self.user_tasks = user_tasks
        self.unavailable: set[str] = set()
        self.unchecked: dict[str, str] = {}
        self._tables: dict[tuple[str, str, str], _Truth | None] = {}

    def problem(self, rec: ResultRecord, *, required: bool = False) -> str | None:
        if not rec.ok or not isinstance(rec.predictions, dict):
            return None
        table, why = self._table(rec)
        if table is None:
            return why if required else None
        return self._compare(rec, table)

    def _spec(self, rec: ResultRecord) -> tuple[Workspace | None, str]:
        """Where the record's task loads from, or (None, why not)."""
        name = rec.job.task
        if name in self.workspace.reg.tasks:
            return self.workspace, ""
        spec = self.user_tasks(rec) if self.user_tasks is not None else None
        if spec is None:
            why = (f"task {name!r} is not registered here (a `bench run --data` task: pass its file with "
                   "--data FILE)")
            self.unchecked.setdefault(name, why)
            return None, why
        return Workspace(self.workspace.reg, self.workspace.ctx, extra_tasks={name: spec}), ""

    def _table(self, rec: ResultRecord) -> tuple[_Truth | None, str]:
        key = (rec.job.task, rec.job.target, rec.task_type)
        unavailable = (f"task {rec.job.task!r}: its data is not available here, so the ground truth cannot be "
                       f"checked (run `bench data fetch {rec.job.task}` or pass --data-dir)")
        if key not in self._tables:
            workspace, why = self._spec(rec)
            if workspace is None:
                return None, why
            try:
                loaded = workspace.load(rec.job.task)
            except CrystalbenchError:
                self.unavailable.add(rec.job.task)
                self._tables[key] = None
                return None, unavailable
            data = loaded.data
            self._tables[key] = _Truth({str(i): k for k, i in enumerate(data.ids)},
                                       np.asarray(data.targets, dtype=float), loaded.fingerprint, loaded.spec.target)
        table = self._tables[key]
        return table, "" if table is not None else unavailable

    def _compare(self, rec: ResultRecord, table: _Truth) -> str | None:
        task = rec.job.task
        if rec.job.target != table.target:
            return f"the record's target {rec.job.target!r} is not task {task!r}'s target {table.target!r}"
        other = "" if rec.job.data == table.fingerprint else (
            f"; the record also names other data ({rec.job.data[:40]!r}) than this installation's task "
            f"({table.fingerprint[:40]!r})")
        ids = [str(i) for i in rec.predictions["ids"]]  # type: ignore[index]
        rows = [table.index.get(i) for i in ids]
        if None in rows:
            return f"id {ids[rows.index(None)]!r} is not in task {task!r}'s data{other}"
        try:
            stored = np.asarray(rec.predictions["y_true"], dtype=float)  # type: ignore[index]
        except (TypeError, ValueError):
            return "predictions.y_true are not numbers"
        expected = table.targets[np.asarray(rows, dtype=int)]
        with np.errstate(all="ignore"):
            bad = ~np.isclose(stored, expected, rtol=_TRUTH_RTOL, atol=_TRUTH_ATOL)
        if not bad.any():
            return None
        k = int(np.argmax(bad))
        return (f"y_true of id {ids[k]!r} is {_num(stored[k])} but task {task!r} has {_num(expected[k])} "
                f"({int(bad.sum())} of {len(ids)} stored targets differ from the task's own){other}")


def _num(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else str(x)

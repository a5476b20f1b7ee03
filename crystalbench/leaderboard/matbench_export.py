"""Our Matbench-protocol records as a Matbench submission file (`MatbenchBenchmark` format, matbench 0.6).

A Matbench v0.1 submission is one JSON document (usually `results.json.gz`) that
`matbench.bench.MatbenchBenchmark.from_file`/`from_dict` reads and validates:

    {"@module": "matbench.bench", "@class": "MatbenchBenchmark", "version": "0.6",
     "benchmark_name": "matbench_v0.1", "user_metadata": {...}, "datestamp": "...",
     "tasks": {name: {"@module": "matbench.task", "@class": "MatbenchTask",
                      "benchmark_name": ..., "dataset_name": name,
                      "results": {"fold_0": {"data": {mbid: prediction}, "parameters": {...},
                                             "scores": {...}, "uncertainty": null}, ...}}},
     "hash": sha256 of the canonical JSON of everything else}

We write it from our records instead of driving matbench's own `record()`:
matbench scores a fold against the dataset it downloads through matminer, so
its API cannot run offline, and matbench 0.6 cannot be installed with its
dependencies on Python 3.11. The predictions are keyed by the Matbench ids our
matbench tasks keep (`mb-phonons-0001`...), in the order of the fold's test ids.
The per-fold `scores` are Matbench's own score set (MAE, RMSE, MAPE masked at
|y| <= 1e-5, max error; accuracy, balanced accuracy, binary F1, ROC AUC), not
our metric registry: matbench recomputes nothing on load, and readers compare
submissions by these numbers, so they must be matbench's definitions.

Only complete tasks are exported: every one of the 5 official folds, run with
`--protocol matbench`, one configuration (model, hyperparameters, seed). The
caller checks the folds against the official split (`OfficialSplits`) first.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench.contract.enums import TaskType
from crystalbench.contract.errors import BadInputError
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.store import atomic_write

__all__ = [
    "MATBENCH_BENCHMARK",
    "MATBENCH_FILE_VERSION",
    "N_FOLDS",
    "ExportTask",
    "select_tasks",
    "matbench_scores",
    "benchmark_document",
    "write_benchmark",
]

MATBENCH_BENCHMARK = "matbench_v0.1"
MATBENCH_FILE_VERSION = "0.6"  # the matbench package version whose file layout this writes
N_FOLDS = 5
_DATESTAMP_FMT = "%Y.%m.%d %H:%M.%S"  # matbench's own datestamp format


@dataclass(frozen=True)
class ExportTask:
    """The 5 records (fold 0..4) of one task, model and seed that make one Matbench task entry."""

    task: str
    model: str
    seed: int
    records: tuple[ResultRecord, ...]

    @property
    def task_type(self) -> str:
        return self.records[0].task_type


def _config(rec: ResultRecord) -> str:
    """Everything that makes two records of one task the same configuration except the fold."""
    job = rec.job.to_dict()
    job.pop("fold", None)
    return json.dumps(job, sort_keys=True, default=str)


def select_tasks(
    records: Iterable[ResultRecord],
    model: str,
    tasks: Sequence[str] = (),
    seed: int | None = None,
    *,
    matbench_tasks: Iterable[str],
) -> list[ExportTask]:
    """Pick, per Matbench task, the one complete 5-fold run of `model` to export.

    Raises BadInputError naming what is wrong: a task that is not Matbench, no
    matbench-protocol records (e.g. run with the paper protocol), missing or
    failed folds, or several candidate runs (different seeds or hyperparameters)
    without `seed` choosing one. Copies of one record (the same job id) count once.
    """
    known = set(matbench_tasks)
    for name in tasks:
        if name not in known:
            raise BadInputError(f"{name!r} is not a Matbench v0.1 task; only matbench_* tasks can be exported")
    mine: list[ResultRecord] = []
    seen: set[str] = set()  # each job once: a copied record file must not stand for two folds or runs
    for r in records:
        if r.model == model and r.job_id not in seen:
            seen.add(r.job_id)
            mine.append(r)
    if not mine:
        raise BadInputError(f"no records of model {model!r} in the results directory")
    wanted = list(tasks) or sorted({r.task for r in mine if r.task in known})
    if not wanted:
        raise BadInputError(f"model {model!r} has no records on a Matbench task (matbench_*)")
    return [_select_one(name, [r for r in mine if r.task == name], model, seed) for name in wanted]


def _select_one(task: str, recs: list[ResultRecord], model: str, seed: int | None) -> ExportTask:
    if not recs:
        raise BadInputError(f"{task}: no records of model {model!r}")
    mb = [r for r in recs if r.protocol == "matbench" and r.job.split_source is None]
    if not mb:
        protocols = ", ".join(sorted({r.protocol for r in recs}))
        raise BadInputError(f"{task}: {model} was run with --protocol {protocols}; only `--protocol matbench` "
                            f"results use the official folds and can be exported")
    if seed is not None:
        mb = [r for r in mb if r.seed == seed]
        if not mb:
            raise BadInputError(f"{task}: no matbench-protocol records of {model} with seed {seed}")
    groups: dict[str, list[ResultRecord]] = {}
    for r in mb:
        groups.setdefault(_config(r), []).append(r)
    complete = {k: g for k, g in groups.items() if _complete(g)}
    if len(complete) > 1:
        seeds = sorted({g[0].seed for g in complete.values()})
        hint = f"choose one with --seed ({', '.join(map(str, seeds))})" if len(seeds) > 1 else (
            "they differ in hyperparameters or data; export from a results directory holding one of them")
        raise BadInputError(f"{task}: {len(complete)} complete 5-fold runs of {model}; {hint}")
    if not complete:
        best = max(groups.values(), key=lambda g: len({r.fold for r in g if r.ok}))
        ok = sorted({r.fold for r in best if r.ok})
        failed = sorted({r.fold for r in best if not r.ok} - set(ok))
        missing = sorted(set(range(N_FOLDS)) - set(ok) - set(failed))
        parts = [f"folds {ok} succeeded"]
        if failed:
            parts.append(f"folds {failed} failed")
        if missing:
            parts.append(f"folds {missing} were not run")
        raise BadInputError(f"{task}: Matbench needs all {N_FOLDS} folds of one run; for {model} "
                            f"(seed {best[0].seed}) {', '.join(parts)}. Run `bench run -m {model} -t {task} "
                            f"--protocol matbench` without --folds")
    (group,) = complete.values()
    by_fold = {r.fold: r for r in group if r.ok}
    return ExportTask(task=task, model=model, seed=group[0].seed,
                      records=tuple(by_fold[k] for k in range(N_FOLDS)))


def _complete(group: list[ResultRecord]) -> bool:
    return {r.fold for r in group if r.ok} == set(range(N_FOLDS))


def _as_bool(values: Sequence[Any]) -> list[bool]:
    """Class indices (our records: 0 = "False", 1 = "True") as Matbench's booleans."""
    return [bool(round(float(v))) for v in values]


def matbench_scores(y_true: Sequence[Any], y_pred: Sequence[Any], task_type: str) -> dict[str, float]:
    """Matbench's per-fold score set (see the module docstring), as plain floats."""
    from sklearn import metrics as skm

    if task_type == TaskType.REGRESSION:
        t = np.asarray(y_true, dtype=float)
        p = np.asarray(y_pred, dtype=float)
        mask = np.abs(t) > 1e-5
        return {
            "mae": float(np.mean(np.abs(t - p))),
            "rmse": float(math.sqrt(np.mean((t - p) ** 2))),
            "mape": float(np.mean(np.abs((t[mask] - p[mask]) / t[mask]))),
            "max_error": float(np.max(np.abs(t - p))),
        }
    tb, pb = _as_bool(y_true), _as_bool(y_pred)
    return {
        "accuracy": float(skm.accuracy_score(tb, pb)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(tb, pb)),
        "f1": float(skm.f1_score(tb, pb)),
        "rocauc": float(skm.roc_auc_score(tb, pb)),
    }


def _canonical(obj: Any) -> Any:
    """Dicts with sorted keys at every depth, tuples as lists: one byte form for writing and hashing."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _hash(doc: Mapping[str, Any]) -> str:
    """The document hash Matbench checks on load: sha256 of the key-sorted JSON (default separators)."""
    return hashlib.sha256(json.dumps(_canonical(doc)).encode("utf-8")).hexdigest()


def _fold_entry(rec: ResultRecord, task_type: str) -> dict[str, Any]:
    preds = rec.predictions or {}
    ids = [str(i) for i in preds["ids"]]
    y_pred = _as_bool(preds["y_pred"]) if task_type == TaskType.CLASSIFICATION else [float(v) for v in preds["y_pred"]]
    scores = matbench_scores(preds["y_true"], preds["y_pred"], task_type)
    ours = rec.metrics.get("mae")
    if task_type == TaskType.REGRESSION and ours is not None and not math.isclose(scores["mae"], ours, rel_tol=1e-9,
                                                                          abs_tol=1e-9):
        raise BadInputError(f"{rec.task} fold {rec.fold}: MAE {scores['mae']} from the predictions differs from "
                            f"the recorded {ours}")
    return {
        "data": dict(zip(ids, y_pred)),
        "parameters": {"crystalbench_job_id": rec.job_id, "seed": rec.seed},
        "scores": scores,
        "uncertainty": None,
    }


def _task_entry(et: ExportTask) -> dict[str, Any]:
    return {
        "@module": "matbench.task",
        "@class": "MatbenchTask",
        "benchmark_name": MATBENCH_BENCHMARK,
        "dataset_name": et.task,
        "results": {f"fold_{rec.fold}": _fold_entry(rec, et.task_type) for rec in et.records},
    }


def _user_metadata(tasks: Sequence[ExportTask]) -> dict[str, Any]:
    first = tasks[0].records[0]
    return {
        "algorithm": first.model,
        "software": "crystalbench",
        "crystalbench_version": str(first.provenance.get("crystalbench_version", "")),
        "hyperparameters": {t.task: dict(t.records[0].job.params) for t in tasks},
        "seeds": {t.task: t.seed for t in tasks},
        "descriptors": {t.task: t.records[0].job.descriptors or "" for t in tasks},
    }


def benchmark_document(tasks: Sequence[ExportTask], *, now: datetime | None = None) -> dict[str, Any]:
    """The whole `MatbenchBenchmark` document (hash included) for the selected tasks."""
    if not tasks:
        raise BadInputError("nothing to export")
    doc: dict[str, Any] = {
        "@module": "matbench.bench",
        "@class": "MatbenchBenchmark",
        "version": MATBENCH_FILE_VERSION,
        "benchmark_name": MATBENCH_BENCHMARK,
        "user_metadata": _user_metadata(tasks),
        "datestamp": (now or datetime.now(UTC)).strftime(_DATESTAMP_FMT),
        "tasks": {t.task: _task_entry(t) for t in tasks},
    }
    doc = _canonical(doc)
    doc["hash"] = _hash(doc)
    return doc  # type: ignore[no-any-return]


def write_benchmark(doc: Mapping[str, Any], out: Path) -> Path:
    """Write atomically; gzip-compressed when the name ends in `.gz` (Matbench submissions: results.json.gz)."""
    payload = json.dumps(doc).encode("utf-8")
    if Path(out).name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    return atomic_write(Path(out), payload)

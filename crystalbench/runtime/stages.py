"""`run_job(job, ctx) -> ResultRecord`: the stages of one job.

    prepare           load the task's data (once per Workspace; on disk in
                      `dataset_cache` under the task's fingerprint, the same one
                      that is the job's `data` field), make the fold, attach
                      descriptor features
    check_compatible  the only home of every "needs" rule: what the model needs x
                      what the task provides x what the descriptor set needs x
                      whether the target means anything (constant, one class) x
                      inputs that leak the target
    execute           seed, threads, factory, fit, predict (plugin code, isolated)
    record            metrics from the predictions, provenance, runtime, and how the
                      job's settings differ from the model's recipe -> ResultRecord

An incompatible job raises `IncompatibleError` before any training: it is a
user error (one `error:` line), not a result. A job whose plugin code fails is
a `failed` record with the real cause. Each stage is one function (`_prepare`,
`_check`, `_execute`, `_record`). `Workspace` holds what jobs of one
process share (loaded datasets, descriptor values, folds); it is rebuilt from
the registry in a worker that has none.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import Dataset
from crystalbench.contract.enums import RecordStatus, TaskType
from crystalbench.contract.errors import BadInputError, CrystalbenchError, DataUnavailableError
from crystalbench.contract.featurize import compute_descriptors
from crystalbench.contract.job import Job
from crystalbench.contract.metrics import score
from crystalbench.contract.params import params_to_dict, resolve_params
from crystalbench.contract.record import ResultRecord, jsonable
from crystalbench.contract.seeding import apply_threads, seed_everything, torch_if_installed
from crystalbench.contract.specs import DescriptorSpec, ModelContext, ModelSpec, TaskSpec
from crystalbench.contract.telemetry import epoch_observer, observing_epochs
from crystalbench.runtime.dataset_cache import DatasetCache
from crystalbench.runtime.fingerprint import TaskFingerprint, content_fingerprint, task_fingerprint
from crystalbench.runtime.provenance import environment
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.splits import Fold, make_folds

__all__ = ["Workspace", "LoadedTask", "IncompatibleError", "run_job", "check_compatible", "leak_warnings",
           "failed_record", "interrupts_are_plugins"]

log = logging.getLogger("crystalbench.stages")


class IncompatibleError(CrystalbenchError):
    """This model cannot meaningfully run on this task (checked before training)."""


@dataclass
class LoadedTask:
    """A task's dataset plus what provenance needs about it."""

    spec: TaskSpec
    data: Dataset
    load_seconds: float
    files: dict[str, str]
    fingerprint: str
    features: dict[str, np.ndarray] = field(default_factory=dict)
    feature_seconds: dict[str, float] = field(default_factory=dict)
    folds: dict[tuple[Any, ...], list[Fold]] = field(default_factory=dict)


class Workspace:
    """What the jobs of one process share: the registry, loaded tasks, descriptor values, folds."""

    def __init__(self, reg: Registry, ctx: RunContext, extra_tasks: Mapping[str, TaskSpec] | None = None) -> None:
        self.reg = reg
        self.ctx = ctx
        self.extra_tasks = dict(extra_tasks or {})
        self._loaded: dict[str, LoadedTask] = {}
        self._fingerprints: dict[str, TaskFingerprint] = {}
        self._env: dict[str, Any] | None = None

    def task(self, name: str) -> TaskSpec:
        return self.extra_tasks[name] if name in self.extra_tasks else self.reg.task(name)

    def environment(self) -> dict[str, Any]:
        if self._env is None:
            self._env = environment()
        return self._env

    def _fingerprint_now(self, spec: TaskSpec) -> TaskFingerprint | None:
        """The task's fingerprint from its declared files as they are now (None: it declares none)."""
        return task_fingerprint(spec, self.ctx, plugin=self.reg.owner.get(("task", spec.name)),
                                plugin_version=self.reg.plugin_version("task", spec.name))

    def fingerprint(self, name: str) -> str:
        """The task's data identity, the job's `data` field (`fingerprint.task_fingerprint`).

        Computed once per task per Workspace, from the declared files without loading
        them; a task that declares no files, or none of whose files exist yet (its
        loader may fetch them), is loaded first.
        """
        if name not in self._fingerprints:
            fp = self._fingerprint_now(self.task(name))
            if fp is None or not fp.any_present:
                return self.load(name).fingerprint
            self._fingerprints[name] = fp
        return self._fingerprints[name].data

    def load(self, name: str) -> LoadedTask:
        """The task's dataset: from the dataset cache under its fingerprint, else `spec.load` (then cached)."""
        if name not in self._loaded:
            spec = self.task(name)
            t0 = time.perf_counter()
            fp = self._fingerprints.get(name) or self._fingerprint_now(spec)
            data = self._cached(name, fp)
            if data is None:
                data = spec.load(self.ctx)
                if not isinstance(data, Dataset):
                    raise CrystalbenchError(f"task {name!r}: load returned {type(data).__name__}, not a Dataset")
                if len(data) == 0:
                    raise CrystalbenchError(f"task {name!r} loaded an empty dataset")
                if fp is not None and not fp.complete:  # the loader may have fetched its files
                    fp = self._fingerprint_now(spec)
                if fp is not None and fp.cache_key is not None:
                    DatasetCache(self.ctx).put(fp.cache_key, data)
            fp = fp or content_fingerprint(data)
            self._fingerprints[name] = fp
            self._loaded[name] = LoadedTask(spec, data, time.perf_counter() - t0, fp.files, fp.data)
        return self._loaded[name]

    def _cached(self, name: str, fp: TaskFingerprint | None) -> Dataset | None:
        """The task's dataset from the dataset cache, or None (no files declared, or a miss)."""
        if fp is None or fp.cache_key is None:
            return None
        cache = DatasetCache(self.ctx)
        data = cache.get(fp.cache_key)
        if data is not None:
            log.debug("task %s: dataset read from the cache (%s)", name, cache.store.path(fp.cache_key, "json"))
            skipped = data.meta.get("skipped_count")
            if isinstance(skipped, int) and skipped > 0:  # the loader's warnings are not replayed on a hit
                self.ctx.reporter.note(f"task {name!r}: {skipped} bad row(s) were skipped when its files were "
                                       "first read (see that run's warnings; the dataset comes from the cache)")
        return data

    def features(self, loaded: LoadedTask, dspec: DescriptorSpec) -> tuple[np.ndarray, float]:
        if dspec.name not in loaded.features:
            t0 = time.perf_counter()
            loaded.features[dspec.name] = compute_descriptors(dspec, loaded.data, self.ctx)
            loaded.feature_seconds[dspec.name] = time.perf_counter() - t0
        return loaded.features[dspec.name], loaded.feature_seconds[dspec.name]

    def warm(self, job: Job, split_file: Path | None = None) -> None:
        """Fill this Workspace with what `job` needs (dataset, folds, descriptor values, environment).

        Called by an executor that forks a child per job, so the children inherit it all instead
        of recomputing it per job. Failures are left for the job itself to report (as its record).
        """
        try:
            self.environment()
            torch_if_installed()  # imported once here, not in every child (~2 s each); no thread pool starts
            loaded = self.load(job.task)
            self.folds(loaded, job, self.reg.model(job.model).needs_validation, split_file)
            if job.descriptors:
                self.features(loaded, self.reg.descriptor(job.descriptors))
        except (Exception, SystemExit) as exc:  # the child meets it again and records it
            log.debug("preparing %s in the driver failed (%s); the job reports it", job.label(), _first_line(exc))

    def folds(self, loaded: LoadedTask, job: Job, needs_validation: bool, split_file: Path | None) -> list[Fold]:
        key = (job.protocol, job.seed, needs_validation, str(split_file or ""))
        if key not in loaded.folds:
            loaded.folds[key] = make_folds(
                loaded.spec, loaded.data, job.protocol, seed=job.seed, needs_validation=needs_validation,
                ctx=self.ctx, split_file=split_file,
            )
        return loaded.folds[key]


# ----------------------------------------------------------------------------- compatibility
def static_incompatibility(model: ModelSpec, task: TaskSpec, dspec: DescriptorSpec | None) -> str | None:
    """Rules decidable from the specs alone (before any data is loaded)."""
    if task.task_type == TaskType.CLASSIFICATION and not model.classification:
        return f"model {model.name!r} does not support classification (task {task.name!r})"
    if model.needs == "structure" and task.provides == "composition":
        return f"model {model.name!r} needs crystal structures; task {task.name!r} provides compositions only"
    if dspec is not None and dspec.needs == "structure" and task.provides == "composition":
        return (
            f"descriptor set {dspec.name!r} (used by {model.name!r}) needs crystal structures; task {task.name!r} "
            "provides compositions only"
        )
    return None


def leak_warnings(model: ModelSpec, task: TaskSpec) -> list[str]:
    """Warnings when a model's declared inputs reveal the task's target."""
    shared = sorted(set(model.inputs) & set(task.leaks))
    if not shared:
        return []
    return [
        f"target leak: model {model.name!r} reads {', '.join(shared)}, which reveal(s) the target "
        f"{task.target!r} of task {task.name!r}; this score does not measure learning"
    ]


def check_compatible(
    model: ModelSpec,
    task: TaskSpec,
    data: Dataset,
    dspec: DescriptorSpec | None,
    features: np.ndarray | None,
    train_targets: np.ndarray,
) -> None:
    """Raise `IncompatibleError` when the job cannot mean anything; see the module docstring."""
    why = static_incompatibility(model, task, dspec)
    if why:
        raise IncompatibleError(why)
    if model.needs == "structure" and data.structures is None:
        raise IncompatibleError(
            f"model {model.name!r} needs crystal structures; task {task.name!r} has only compositions"
        )
    if dspec is not None and features is not None:
        if features.size == 0 or not np.isfinite(features).any():
            what = "compositions only" if data.structures is None else "no value any descriptor could compute"
            raise IncompatibleError(
                f"descriptor set {dspec.name!r} is undefined (NaN) for every sample of task {task.name!r} "
                f"({what}): model {model.name!r} would learn nothing"
            )
    y = np.asarray(train_targets)
    if task.task_type == TaskType.CLASSIFICATION:
        if len(np.unique(y)) < 2:
            raise IncompatibleError(
                f"task {task.name!r}: the training set has a single class ({_short_value(y)}): nothing to learn"
            )
    else:
        yf = y.astype(float)
        if not np.all(np.isfinite(yf)):
            raise IncompatibleError(f"task {task.name!r}: {int((~np.isfinite(yf)).sum())} targets are NaN or infinite")
        if np.ptp(yf) == 0:
            raise IncompatibleError(
                f"task {task.name!r}: target {task.target!r} is constant ({yf[0]!r}) in all {len(yf)} training "
                "samples: nothing to learn, and any MAE would be meaningless"
            )


def _short_value(y: np.ndarray) -> str:
    return repr(y.flat[0].item()) if y.size else "none"


# ----------------------------------------------------------------------------- the job
def _runtime(device: str) -> dict[str, Any]:
    torch = sys.modules.get("torch")
    out: dict[str, Any] = {"device": device, "gpu_name": None, "torch_threads": None,
                           "torch_version": None, "cuda_version": None}
    if torch is not None:
        out["torch_threads"] = int(torch.get_num_threads())
        out["torch_version"] = str(torch.__version__)
        out["cuda_version"] = getattr(torch.version, "cuda", None)
        if device.startswith("cuda"):
            try:
                out["gpu_name"] = torch.cuda.get_device_name(torch.device(device))
            except Exception:  # no CUDA: the job itself reports that
                out["gpu_name"] = None
    return out


def _first_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return first if isinstance(exc, CrystalbenchError) else f"{type(exc).__name__}: {first}".rstrip(": ")


def model_context(job: Job, spec: ModelSpec, task: TaskSpec, data: Dataset, ctx: RunContext) -> ModelContext:
    params = resolve_params(spec.name, spec.params_class, job.params, strict_layers=(0,))
    return ModelContext(
        hparams=params_to_dict(params),
        params=params,
        task_type=task.task_type,
        n_classes=len(data.classes) if data.classes else None,
        extensive=task.extensive,
        device=job.device,
        seed=job.seed,
        cache_dir=ctx.cache_dir,
        threads=ctx.threads,
        progress=ctx.progress,
        run=ctx,
    )


def recipe_differences(job: Job, spec: ModelSpec, task: TaskSpec) -> dict[str, Any]:
    """The job's settings that differ from the model's own recipe for this task (empty: the recipe).

    The recipe is what `bench run -m MODEL -t TASK` resolves with no flags or config
    (task-dependent defaults such as the pooling of an extensive target included),
    plus the model's default descriptor set. Stored in the record, so a 3-epoch test
    run is never presented as the model.
    """
    from crystalbench.runtime.grid import GridRequest, resolve_job_params  # not the runner: it imports this module

    try:
        recipe = resolve_job_params(spec, task, GridRequest(models=[spec.name], tasks=[task.name]))
    except CrystalbenchError:  # e.g. the default pooling is one this model lacks: the task has no recipe
        return {"recipe": "none for this task"}
    recipe = json.loads(json.dumps(recipe))
    given = job.params  # already JSON-canonical (tuples as lists)
    out = {k: given.get(k) for k in sorted(set(recipe) | set(given)) if recipe.get(k) != given.get(k)}
    if job.descriptors != spec.descriptors:
        out["descriptors"] = job.descriptors
    return out


def _adhoc_task_info(workspace: Workspace, task: TaskSpec) -> dict[str, Any]:
    """For a task made from `bench run --data FILE` (not in the registry): the file's name, so a listed
    command can say `--data FILE` instead of a task name that `-t` does not know."""
    if task.name not in workspace.extra_tasks or task.name in workspace.reg.tasks or not task.source:
        return {}
    return {"data_file": Path(task.source).name}  # a --data task's source is its path; only the name is kept


def run_job(job: Job, ctx: RunContext, workspace: Workspace, *, split_file: Path | None = None) -> ResultRecord:
    """Run one job through its stages and return its record; a plugin failure at any stage is a failed record.

    Preparing the job runs plugin code too (the task's loader, the descriptor set's
    featurizer): what it raises, `SystemExit` included, becomes a failed record of this
    job, so the grid goes on. Raises `IncompatibleError` (the job cannot mean anything),
    `DataUnavailableError` (the task's data is missing) and `BadInputError` (the user's
    input, e.g. a split file that does not match the data): user errors, one `error:`
    line. A `KeyboardInterrupt` is the user's and stops the grid, except in a process
    that ignores SIGINT (a job's child process, a worker), where only plugin code can
    raise it: a failed record. With `ctx.debug`, every failure re-raises.
    """
    try:
        return _run_stages(job, ctx, workspace, split_file=split_file)
    except (IncompatibleError, DataUnavailableError, BadInputError):
        raise
    except KeyboardInterrupt:
        if ctx.debug or not interrupts_are_plugins():
            raise
        return failed_record(job, _task_or_none(workspace, job.task), "plugin code raised KeyboardInterrupt "
                             "(not a Ctrl-C: this process ignores those)", traceback.format_exc(limit=20))
    except (Exception, SystemExit) as exc:
        if ctx.debug:
            raise
        what = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else _first_line(exc)
        return failed_record(job, _task_or_none(workspace, job.task), f"preparing the job failed: {what}",
                             traceback.format_exc(limit=20))


def interrupts_are_plugins() -> bool:
    """True in a process that ignores SIGINT: there a `KeyboardInterrupt` was raised by code, not by Ctrl-C."""
    import signal

    try:
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    except ValueError:  # not the main thread
        return False


def _task_or_none(workspace: Workspace, name: str) -> TaskSpec | None:
    try:
        return workspace.task(name)
    except CrystalbenchError:
        return None


def failed_record(job: Job, task: TaskSpec | None, error: str, tb: str | None = None,
                  node: str | None = None) -> ResultRecord:
    """The failed record of a job that produced none itself (its preparation raised, its process died)."""
    return ResultRecord(
        job=job,
        status=RecordStatus.FAILED,
        error=error,
        traceback=tb,
        task_info={
            "target": task.target if task else job.target, "unit": task.unit if task else "",
            "task_type": task.task_type if task else TaskType.REGRESSION, "extensive": bool(task.extensive) if task else False,
            "classes": None,
        },
        runtime={"device": job.device, **({"node": node} if node else {})},
    )


@dataclass
class _Prepared:
    """What the prepare stage hands on: the specs, the data as the model sees it, its fold."""

    task: TaskSpec
    spec: ModelSpec
    dspec: DescriptorSpec | None
    loaded: LoadedTask
    fold: Fold
    work: Dataset  # the task's data, with the descriptor columns when the job has a descriptor set
    features: np.ndarray | None  # those columns (None: no descriptor set)


def _run_stages(job: Job, ctx: RunContext, workspace: Workspace, *, split_file: Path | None = None) -> ResultRecord:
    """The stages of `run_job` (see the module docstring): a failure of the model is a failed record
    here; what preparing the job raises, and `KeyboardInterrupt`, reach `run_job`. With `ctx.debug`,
    a failing job re-raises."""
    prep, record = _prepare(job, ctx, workspace, split_file)
    _check(prep, record)
    t_start = time.perf_counter()
    test, pred, threads = _execute(job, ctx, prep, record)
    _record(job, ctx, workspace, prep, record, test, pred, threads)
    record.timings["total"] = round(time.perf_counter() - t_start, 4)
    return record


def _prepare(job: Job, ctx: RunContext, workspace: Workspace,
             split_file: Path | None) -> tuple[_Prepared, ResultRecord]:
    """Stage 1: the task's data (shared by the Workspace), the job's fold, the descriptor columns."""
    task = workspace.task(job.task)
    spec = workspace.reg.model(job.model)
    dspec = workspace.reg.descriptor(job.descriptors) if job.descriptors else None
    loaded = workspace.load(job.task)
    data = loaded.data
    folds = workspace.folds(loaded, job, spec.needs_validation, split_file)
    if job.fold >= len(folds):
        raise IncompatibleError(f"task {task.name!r} has {len(folds)} fold(s) under {job.protocol}; no fold {job.fold}")
    fold = folds[job.fold]
    record = ResultRecord(
        job=job,
        task_info={
            "target": task.target, "unit": task.unit, "task_type": task.task_type, "extensive": task.extensive,
            "classes": list(data.classes) if data.classes else None,
            **_adhoc_task_info(workspace, task),
        },
        timings={"load": round(loaded.load_seconds, 4)},
        origin="tune" if ctx.options.get("origin") == "tune" else "run",
    )
    if dspec is not None and dspec.needs == "structure" and data.structures is None:
        check_compatible(spec, task, data, dspec, None, data.targets[fold.train])  # before featurizing nothing
    work, features = data, None
    if dspec is not None:
        values, secs = workspace.features(loaded, dspec)
        keep = [j for j, n in enumerate(dspec.feature_names) if n not in task.exclude_features]
        features = values[:, keep]
        work = data.with_features([dspec.feature_names[j] for j in keep], features)
        record.timings["featurize"] = round(secs, 4)
        record.fit_info["withheld_features"] = [n for n in dspec.feature_names if n in task.exclude_features]
    return _Prepared(task, spec, dspec, loaded, fold, work, features), record


def _check(prep: _Prepared, record: ResultRecord) -> None:
    """Stage 2: `check_compatible` on the training fold (raises), then the target-leak warnings."""
    train = prep.fold.train
    check_compatible(prep.spec, prep.task, prep.loaded.data, prep.dspec,
                     None if prep.features is None else prep.features[train], prep.loaded.data.targets[train])
    record.warnings.extend(leak_warnings(prep.spec, prep.task))


def _execute(job: Job, ctx: RunContext, prep: _Prepared,
             record: ResultRecord) -> tuple[Dataset | None, np.ndarray | None, int | None]:
    """Stage 3, plugin code, isolated: threads, seed, factory, fit, predict.

    Returns the test set, the checked predictions and the thread count applied; a
    failure of the plugin (or predictions that are not one finite number per test
    sample) is the record's error instead, and the predictions are None.
    """
    spec, fold, work = prep.spec, prep.fold, prep.work
    try:
        train = work.subset(fold.train)
        val = work.subset(fold.val) if len(fold.val) else None
        test = work.subset(fold.test)
        threads = apply_threads(ctx.threads)  # before the factory: the first job of a process too
        seed_everything(job.seed)
        mctx = model_context(job, spec, prep.task, prep.loaded.data, ctx)
        model = spec.factory(mctx)
        t0 = time.perf_counter()
        with observing_epochs(epoch_observer(job.id, ctx.options)):
            model.fit(train, val, seed=job.seed, progress=ctx.progress)
        record.timings["fit"] = round(time.perf_counter() - t0, 4)
        info = getattr(model, "fit_info", None)
        if isinstance(info, Mapping):
            record.fit_info.update(jsonable(dict(info)))
        t0 = time.perf_counter()
        raw = model.predict(test)
        record.timings["predict"] = round(time.perf_counter() - t0, 4)
        return test, _checked_predictions(spec, prep.task, prep.loaded.data, raw, len(test)), threads
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:  # a plugin must not end the grid: its job fails, the rest go on
        record.error = f"model {spec.name!r} called sys.exit({exc.code!r})"
        record.traceback = traceback.format_exc(limit=20)
    except DataUnavailableError:
        raise
    except Exception as exc:
        record.error = _first_line(exc)
        record.traceback = traceback.format_exc(limit=20)
        if ctx.debug:
            raise
    return None, None, None


def _checked_predictions(spec: ModelSpec, task: TaskSpec, data: Dataset, raw: Any, n: int) -> np.ndarray:
    """The model's predictions as floats, or `CrystalbenchError`: one finite number per test sample,
    and for a classification task a class index that exists (anything else would be scored as wrong)."""
    try:
        pred = np.asarray(raw, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise CrystalbenchError(f"model {spec.name!r} returned predictions that are not numbers") from None
    if len(pred) != n:
        raise CrystalbenchError(f"model {spec.name!r} returned {len(pred)} predictions for {n} samples")
    if not np.all(np.isfinite(pred)):
        raise CrystalbenchError(
            f"model {spec.name!r} returned {int((~np.isfinite(pred)).sum())} NaN or infinite predictions"
        )
    if task.task_type == TaskType.CLASSIFICATION and data.classes:
        outside = (pred < 0) | (pred > len(data.classes) - 1)
        if outside.any():
            shown = ", ".join(f"{v:g}" for v in sorted(set(pred[outside].tolist()))[:5])
            raise CrystalbenchError(
                f"model {spec.name!r} predicted class index(es) {shown}, outside 0-{len(data.classes) - 1} "
                f"({len(data.classes)} classes)"
            )
    return pred


def _record(job: Job, ctx: RunContext, workspace: Workspace, prep: _Prepared, record: ResultRecord,
            test: Dataset | None, pred: np.ndarray | None, threads: int | None) -> None:
    """Stage 4: metrics and predictions (when the model gave some), provenance, runtime, and how the
    job's settings differ from the model's recipe. A metric that cannot be computed is the error."""
    spec, task = prep.spec, prep.task
    record.non_default = recipe_differences(job, spec, task)
    record.provenance = _provenance(job, workspace, prep)
    if test is not None and pred is not None:
        try:
            record.metrics = _score(spec, task, test, pred)
        except CrystalbenchError as exc:
            record.error = _first_line(exc)
            record.traceback = traceback.format_exc(limit=20)
            if ctx.debug:
                raise
        else:
            if task.task_type == TaskType.CLASSIFICATION:
                pred = pred.astype(int)
            record.predictions = {"ids": list(test.ids), "y_true": test.targets.tolist(), "y_pred": pred.tolist()}
            if test.structures is not None:  # for error-vs-size plots: sites in each test cell
                record.predictions["n_atoms"] = [len(st) for st in test.structures]
            record.status = RecordStatus.OK
            record.runtime = _runtime(job.device)
            if threads is not None:
                record.runtime["torch_threads_requested"] = ctx.threads
    if not record.runtime:
        record.runtime = _runtime(job.device)


def _score(spec: ModelSpec, task: TaskSpec, test: Dataset, pred: np.ndarray) -> dict[str, float | None]:
    try:
        return score(task.task_type, test.targets, pred)
    except ValueError as exc:
        raise CrystalbenchError(f"model {spec.name!r}: {exc}") from None


def _provenance(job: Job, workspace: Workspace, prep: _Prepared) -> dict[str, Any]:
    """Where the result came from: environment, plugin versions, the data's identity, the split."""
    spec, task, dspec, loaded, data = prep.spec, prep.task, prep.dspec, prep.loaded, prep.loaded.data
    reg = workspace.reg
    out: dict[str, Any] = {
        **workspace.environment(),
        "plugins": {
            "model": {"name": reg.owner.get(("model", spec.name)), "version": reg.plugin_version("model", spec.name)},
            "task": {"name": reg.owner.get(("task", task.name)), "version": reg.plugin_version("task", task.name)},
        },
        "dataset": {
            "name": task.name, "n": len(data), "content_hash": data.content_hash, "files": loaded.files,
            "fingerprint": loaded.fingerprint,
            **{k: data.meta[k] for k in ("skipped_count", "filters") if k in data.meta},
        },
        "split": prep.fold.describe(data) | {"seed": job.seed},
    }
    if dspec is not None:
        out["plugins"]["descriptors"] = {
            "name": dspec.name, "plugin": reg.owner.get(("descriptor", dspec.name)),
            "version": dspec.version, "plugin_version": reg.plugin_version("descriptor", dspec.name),
        }
    return out

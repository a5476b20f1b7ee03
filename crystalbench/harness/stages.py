"""`run_job(job, ctx) -> ResultRecord`: the stages of one job.

    prepare           load the task's data (memoised per process; on disk by
                      `dataset_cache` when the task declares its files), make the
                      fold, attach descriptor features
    check_compatible  the only home of every "needs" rule: what the model needs x
                      what the task provides x what the descriptor set needs x
                      whether the target means anything (constant, one class) x
                      inputs that leak the target
    execute           seed, threads, factory, fit, predict (plugin code, isolated)
    record            metrics from the predictions, provenance, runtime, and how the
                      job's settings differ from the model's recipe -> ResultRecord

An incompatible job raises `IncompatibleError` before any training: it is a
user error (one `error:` line), not a result. A job whose plugin code fails is
a `failed` record with the real cause. `Workspace` holds what jobs of one
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

from .context import RunContext
from .dataset import Dataset
from .dataset_cache import DatasetCache, task_key
from .errors import BadInputError, CrystalbenchError, DataUnavailableError
from .featurize import compute_descriptors
from .job import Job
from .metrics import score
from .params import params_to_dict, resolve_params
from .provenance import environment, file_sha256
from .record import ResultRecord, jsonable
from .registry import Registry
from .seeding import apply_threads, seed_everything, torch_if_installed
from .specs import DescriptorSpec, ModelContext, ModelSpec, TaskSpec
from .splits import Fold, make_folds
from .store import digest
from .telemetry import epoch_observer, observing_epochs

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
        self._fingerprints: dict[str, str] = {}
        self._env: dict[str, Any] | None = None

    def task(self, name: str) -> TaskSpec:
        return self.extra_tasks[name] if name in self.extra_tasks else self.reg.task(name)

    def environment(self) -> dict[str, Any]:
        if self._env is None:
            self._env = environment()
        return self._env

    def _files(self, spec: TaskSpec) -> dict[str, str]:
        if spec.files is None:
            return {}
        out = {}
        for f in spec.files(self.ctx):
            p = Path(f)
            if p.is_file():
                out[p.name if p.name not in out else str(p)] = file_sha256(p)
        return out

    def fingerprint(self, name: str) -> str:
        """What identifies the task's data without loading it when the task declares its files.

        Raw-file checksums + task version + plugin version + target when `files` is
        declared; otherwise the dataset is loaded and its content hash is used.
        """
        if name not in self._fingerprints:
            spec = self.task(name)
            from_files = self._files_fingerprint(spec, self._files(spec))
            self._fingerprints[name] = from_files or self.load(name).fingerprint
        return self._fingerprints[name]

    def _files_fingerprint(self, spec: TaskSpec, files: dict[str, str]) -> str | None:
        """The fingerprint of a task that declares its files (None when it declares none that exist)."""
        if not files:
            return None
        owner = {"plugin": self.reg.owner.get(("task", spec.name)), "version": self.reg.plugin_version("task", spec.name)}
        return "files:" + digest({"files": files, "task_version": spec.version, "owner": owner, "target": spec.target}, 24)

    def _cache_key(self, spec: TaskSpec) -> str | None:
        return task_key(spec, self.ctx, plugin=self.reg.owner.get(("task", spec.name)),
                        plugin_version=self.reg.plugin_version("task", spec.name))

    def load(self, name: str) -> LoadedTask:
        """The task's dataset: from the dataset cache when its files are unchanged, else `spec.load` (then cached)."""
        if name not in self._loaded:
            spec = self.task(name)
            t0 = time.perf_counter()
            cache = DatasetCache(self.ctx)
            key = self._cache_key(spec)
            data = cache.get(key) if key is not None else None
            if data is not None:
                log.debug("task %s: dataset read from the cache (%s)", name, cache.store.path(key or "", "json"))
                skipped = data.meta.get("skipped_count")
                if isinstance(skipped, int) and skipped > 0:  # the loader's warnings are not replayed on a hit
                    self.ctx.reporter.note(f"task {name!r}: {skipped} bad row(s) were skipped when its files were "
                                           "first read (see that run's warnings; the dataset comes from the cache)")
            else:
                data = spec.load(self.ctx)
                if not isinstance(data, Dataset):
                    raise CrystalbenchError(f"task {name!r}: load returned {type(data).__name__}, not a Dataset")
                if len(data) == 0:
                    raise CrystalbenchError(f"task {name!r} loaded an empty dataset")
                key = self._cache_key(spec)  # after the load: a loader may have fetched its files
                if key is not None:
                    cache.put(key, data)
            secs = time.perf_counter() - t0
            files = self._files(spec)
            fp = self._files_fingerprint(spec, files) or "content:" + data.content_hash[:24]
            self._fingerprints[name] = fp
            self._loaded[name] = LoadedTask(spec, data, secs, files, fp)
        return self._loaded[name]

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
    if task.task_type == "classification" and not model.classification:
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
    if task.task_type == "classification":
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
    from .runner import GridRequest, resolve_job_params  # the runner imports this module

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
        status="failed",
        error=error,
        traceback=tb,
        task_info={
            "target": task.target if task else job.target, "unit": task.unit if task else "",
            "task_type": task.task_type if task else "regression", "extensive": bool(task.extensive) if task else False,
            "classes": None,
        },
        runtime={"device": job.device, **({"node": node} if node else {})},
    )


def _run_stages(job: Job, ctx: RunContext, workspace: Workspace, *, split_file: Path | None = None) -> ResultRecord:
    """The stages of `run_job`: a failure of the model is a failed record here; what preparing the
    job raises, and `KeyboardInterrupt`, reach `run_job`. With `ctx.debug`, a failing job re-raises."""
    task = workspace.task(job.task)
    spec = workspace.reg.model(job.model)
    dspec = workspace.reg.descriptor(job.descriptors) if job.descriptors else None

    # -- prepare
    loaded = workspace.load(job.task)
    data = loaded.data
    fold = workspace.folds(loaded, job, spec.needs_validation, split_file)
    if job.fold >= len(fold):
        raise IncompatibleError(f"task {task.name!r} has {len(fold)} fold(s) under {job.protocol}; no fold {job.fold}")
    fold_ = fold[job.fold]
    features = None
    record = ResultRecord(
        job=job,
        task_info={
            "target": task.target, "unit": task.unit, "task_type": task.task_type, "extensive": task.extensive,
            "classes": list(data.classes) if data.classes else None,
            **_adhoc_task_info(workspace, task),
        },
        timings={"load": round(loaded.load_seconds, 4)},
        non_default=recipe_differences(job, spec, task),
        origin="tune" if ctx.options.get("origin") == "tune" else "run",
    )
    if dspec is not None and dspec.needs == "structure" and data.structures is None:
        check_compatible(spec, task, data, dspec, None, data.targets[fold_.train])
    work = data
    if dspec is not None:
        values, secs = workspace.features(loaded, dspec)
        keep = [j for j, n in enumerate(dspec.feature_names) if n not in task.exclude_features]
        features = values[:, keep]
        work = data.with_features([dspec.feature_names[j] for j in keep], features)
        record.timings["featurize"] = round(secs, 4)
        record.fit_info["withheld_features"] = [n for n in dspec.feature_names if n in task.exclude_features]

    # -- check_compatible
    check_compatible(spec, task, data, dspec, None if features is None else features[fold_.train],
                     data.targets[fold_.train])
    record.warnings.extend(leak_warnings(spec, task))

    env = workspace.environment()
    record.provenance = {
        **env,
        "plugins": {
            "model": {"name": workspace.reg.owner.get(("model", spec.name)),
                      "version": workspace.reg.plugin_version("model", spec.name)},
            "task": {"name": workspace.reg.owner.get(("task", task.name)),
                     "version": workspace.reg.plugin_version("task", task.name)},
        },
        "dataset": {
            "name": task.name, "n": len(data), "content_hash": data.content_hash, "files": loaded.files,
            "fingerprint": loaded.fingerprint,
            **{k: data.meta[k] for k in ("skipped_count", "filters") if k in data.meta},
        },
        "split": fold_.describe(data) | {"seed": job.seed},
    }
    if dspec is not None:
        record.provenance["plugins"]["descriptors"] = {
            "name": dspec.name, "plugin": workspace.reg.owner.get(("descriptor", dspec.name)),
            "version": dspec.version, "plugin_version": workspace.reg.plugin_version("descriptor", dspec.name),
        }

    # -- execute (plugin code: isolated)
    t_start = time.perf_counter()
    try:
        train = work.subset(fold_.train)
        val = work.subset(fold_.val) if len(fold_.val) else None
        test = work.subset(fold_.test)
        threads = apply_threads(ctx.threads)  # before the factory: the first job of a process too
        seed_everything(job.seed)
        mctx = model_context(job, spec, task, data, ctx)
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
        try:
            pred = np.asarray(raw, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise CrystalbenchError(f"model {spec.name!r} returned predictions that are not numbers") from None
        if len(pred) != len(test):
            raise CrystalbenchError(f"model {spec.name!r} returned {len(pred)} predictions for {len(test)} samples")
        if not np.all(np.isfinite(pred)):
            raise CrystalbenchError(
                f"model {spec.name!r} returned {int((~np.isfinite(pred)).sum())} NaN or infinite predictions"
            )
        if task.task_type == "classification" and data.classes:
            outside = (pred < 0) | (pred > len(data.classes) - 1)
            if outside.any():  # an index no class has would be scored as a wrong answer, not caught
                shown = ", ".join(f"{v:g}" for v in sorted(set(pred[outside].tolist()))[:5])
                raise CrystalbenchError(
                    f"model {spec.name!r} predicted class index(es) {shown}, outside 0-{len(data.classes) - 1} "
                    f"({len(data.classes)} classes)"
                )
        try:
            record.metrics = score(task.task_type, test.targets, pred)
        except ValueError as exc:
            raise CrystalbenchError(f"model {spec.name!r}: {exc}") from None
        if task.task_type == "classification":
            pred = pred.astype(int)
        record.predictions = {"ids": list(test.ids), "y_true": test.targets.tolist(), "y_pred": pred.tolist()}
        if test.structures is not None:  # for error-vs-size plots: sites in each test cell
            record.predictions["n_atoms"] = [len(st) for st in test.structures]
        record.status = "ok"
        record.runtime = _runtime(job.device)
        if threads is not None:
            record.runtime["torch_threads_requested"] = ctx.threads
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
    if not record.runtime:
        record.runtime = _runtime(job.device)
    record.timings["total"] = round(time.perf_counter() - t_start, 4)
    return record

"""Runs a grid of (model, task, fold, seed) jobs, resumably.

Each finished job becomes one JSON record in the results store before the
next job starts, so an interrupted grid loses nothing and a re-run skips what
is done. A failing job is recorded as failed with its error and the grid
goes on. Data is loaded once per task, descriptors once per (task, set).
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .dataset import Dataset
from .errors import CrystalbenchError, DataUnavailableError, UnknownNameError
from .featurize import compute_descriptors
from .metrics import score
from .provenance import environment, file_sha256
from .registry import Registry
from .results import SCHEMA_VERSION, JobId, ResultStore, config_hash
from .specs import ModelContext, ModelSpec, TaskSpec
from .splits import MATBENCH_FOLDS, PROTOCOLS, Fold, _read_split_file, make_folds

__all__ = ["RunOptions", "RunSummary", "run_grid", "resolve_hparams", "seed_everything"]


@dataclass
class RunOptions:
    models: list[str]
    tasks: list[str]
    results_dir: Path
    data_dir: Path
    cache_dir: Path | None = None
    protocol: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: list[int] | None = None
    epochs: int | None = None
    pooling: str | None = None
    device: str = "cpu"
    descriptors: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    split_file: Path | None = None
    rerun: bool = False
    jobs: int = 1
    threads: int = 1
    progress: bool = True


@dataclass
class RunSummary:
    finished: list[dict] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.problems


def seed_everything(seed: int) -> None:
    """Seed every RNG a model might touch; torch only if something already imported it."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def resolve_hparams(spec: ModelSpec, task: TaskSpec, opts: RunOptions) -> dict:
    """defaults < --config (top-level keys, then [model] table) < CLI flags."""
    hp = dict(spec.defaults)
    cfg = dict(opts.config or {})
    for key, value in cfg.items():
        if not isinstance(value, dict) and key in hp:
            hp[key] = value
    section = cfg.get(spec.name, {})
    if not isinstance(section, dict):
        raise CrystalbenchError(f"config: [{spec.name}] must be a table of hyperparameters")
    unknown = [k for k in section if k not in hp and k not in ("pooling",)]
    if unknown:
        raise CrystalbenchError(
            f"config [{spec.name}]: unknown hyperparameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(hp)) or 'none'}"
        )
    hp.update(section)
    if opts.epochs is not None and "epochs" in hp:
        hp["epochs"] = int(opts.epochs)
    if spec.poolings:
        pooling = (opts.pooling or section.get("pooling") or spec.default_pooling
                   or ("sum" if task.extensive else "mean"))
        if pooling not in spec.poolings:
            raise CrystalbenchError(
                f"model {spec.name!r} supports pooling {', '.join(spec.poolings)}, not {pooling!r}"
            )
        hp["pooling"] = pooling
    return hp


def _descriptor_set(spec: ModelSpec, opts: RunOptions) -> str | None:
    if opts.descriptors:
        if not (spec.accepts_features or spec.needs == "features"):
            raise CrystalbenchError(
                f"model {spec.name!r} does not accept extra features, so --descriptors cannot hybridize it"
            )
        return opts.descriptors
    if spec.needs == "features" and not spec.descriptors:
        raise CrystalbenchError(f"model {spec.name!r} needs a descriptor set: pass --descriptors NAME")
    return spec.descriptors


def _n_folds(task: TaskSpec, protocol: str, opts: RunOptions) -> int:
    if opts.split_file is not None:
        return len(_read_split_file(opts.split_file))
    if protocol == "matbench":
        return MATBENCH_FOLDS
    return 1


def _incompatible(spec: ModelSpec, task: TaskSpec) -> str | None:
    if task.task_type == "classification" and not spec.classification:
        return f"model {spec.name!r} does not support classification task {task.name!r}"
    return None


class _TaskState:
    """Per-task memo: the dataset, its file checksums, descriptors, folds."""

    def __init__(self, task: TaskSpec, opts: RunOptions, reg: Registry) -> None:
        self.task, self.opts, self.reg = task, opts, reg
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.data: Dataset = task.load(opts.data_dir)
        if len(self.data) == 0:
            raise CrystalbenchError(f"task {task.name!r} loaded an empty dataset")
        self.timings["load"] = time.perf_counter() - t0
        files = task.files(opts.data_dir) if task.files else []
        self.files = {str(Path(f).name): file_sha256(Path(f)) for f in files if Path(f).exists()}
        self._features: dict[str, tuple[np.ndarray, tuple[str, ...], float]] = {}
        self._folds: dict[tuple[int, bool, str], list[Fold]] = {}

    def features(self, name: str) -> tuple[np.ndarray, tuple[str, ...], list[str], float]:
        """Descriptor values minus the task's excluded columns, with the dropped names and time."""
        if name not in self._features:
            spec = self.reg.descriptor(name)
            t0 = time.perf_counter()
            values = compute_descriptors(
                spec, self.data, cache_dir=self.opts.cache_dir, jobs=self.opts.jobs, progress=self.opts.progress
            )
            self._features[name] = (values, tuple(spec.feature_names), time.perf_counter() - t0)
        values, names, secs = self._features[name]
        keep = [j for j, n in enumerate(names) if n not in self.task.exclude_features]
        dropped = [n for n in names if n in self.task.exclude_features]
        return values[:, keep], tuple(names[j] for j in keep), dropped, secs

    def folds(self, protocol: str, seed: int, needs_validation: bool) -> list[Fold]:
        key = (seed, needs_validation, protocol)
        if key not in self._folds:
            self._folds[key] = make_folds(
                self.task, self.data, protocol, seed=seed, needs_validation=needs_validation,
                data_dir=self.opts.data_dir, split_file=self.opts.split_file,
            )
        return self._folds[key]


def _say(msg: str, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


def run_grid(
    reg: Registry,
    opts: RunOptions,
    *,
    on_record: Callable[[dict], None] | None = None,
    extra_tasks: Mapping[str, TaskSpec] | None = None,
) -> RunSummary:
    """Run every pending job of models x tasks x folds x seeds; see module docstring."""
    from tqdm import tqdm

    summary = RunSummary()
    store = ResultStore(opts.results_dir)
    if opts.protocol is not None and opts.protocol not in PROTOCOLS:
        raise UnknownNameError(f"unknown protocol {opts.protocol!r}; choose from {', '.join(PROTOCOLS)}")
    model_specs = [reg.model(m) for m in opts.models]
    model_specs = list({s.name: s for s in model_specs}.values())
    tasks: dict[str, TaskSpec] = dict(extra_tasks or {})
    patterns = [t for t in opts.tasks if t not in tasks]
    for name in reg.match_tasks(patterns) if patterns else []:
        tasks[name] = reg.tasks[name]
    if not model_specs or not tasks:
        raise CrystalbenchError("nothing to run: give at least one --model and one --task (or --data)")

    # Enumerate every job up front (no data loaded) so resume can skip whole tasks.
    plan: list[tuple[TaskSpec, ModelSpec, str, int, int, dict, str | None, JobId]] = []
    for task in tasks.values():
        protocol = opts.protocol or task.protocol
        n_folds = _n_folds(task, protocol, opts)
        for spec in model_specs:
            why = _incompatible(spec, task)
            if why:
                summary.problems.append(f"skipped: {why}")
                continue
            hp = resolve_hparams(spec, task, opts)
            dset = _descriptor_set(spec, opts)
            cfg = config_hash({"hparams": hp, "descriptors": dset, "split_file": str(opts.split_file or "")})
            folds = [f for f in range(n_folds) if opts.folds is None or f in opts.folds]
            for seed in opts.seeds:
                for fold in folds:
                    job = JobId(spec.name, task.name, protocol, fold, seed, cfg)
                    plan.append((task, spec, protocol, fold, seed, hp, dset, job))

    pending = [p for p in plan if opts.rerun or not store.done(p[-1])]
    summary.skipped = len(plan) - len(pending)
    if summary.skipped:
        _say(f"resuming: {summary.skipped} of {len(plan)} jobs already recorded in {opts.results_dir}", opts.progress)
    env = environment()
    states: dict[str, _TaskState | None] = {}
    bar = tqdm(total=len(pending), desc="jobs", unit="job", disable=not opts.progress, file=sys.stderr)
    try:
        for task, spec, protocol, fold_idx, seed, hp, dset, job in pending:
            bar.set_postfix_str(f"{spec.name} · {task.name}", refresh=True)
            if task.name not in states:
                try:
                    states[task.name] = _TaskState(task, opts, reg)
                except DataUnavailableError as exc:
                    states[task.name] = None
                    summary.problems.append(f"task {task.name!r}: data unavailable: {exc}")
                    _say(f"error: task {task.name!r}: {exc}", opts.progress)
                except Exception as exc:  # a loader bug must not take the other tasks down
                    if os.environ.get("CRYSTALBENCH_DEBUG"):
                        raise
                    states[task.name] = None
                    msg = str(exc) if isinstance(exc, CrystalbenchError) else f"failed to load: {type(exc).__name__}: {exc}"
                    summary.problems.append(f"task {task.name!r}: {msg}")
                    _say(f"error: task {task.name!r}: {msg}", opts.progress)
            state = states[task.name]
            if state is None:
                bar.update(1)
                continue
            record = _run_job(reg, state, spec, protocol, fold_idx, seed, hp, dset, job, env, opts)
            store.write(job, record)
            for problem in reg.notify_finished(record):
                _say(f"warning: {problem}", opts.progress)
            if record["status"] != "ok":
                summary.failed += 1
            summary.finished.append(record)
            if on_record:
                on_record(record)
            bar.update(1)
    finally:
        bar.close()
    return summary


def _run_job(
    reg: Registry,
    state: _TaskState,
    spec: ModelSpec,
    protocol: str,
    fold_idx: int,
    seed: int,
    hp: dict,
    dset: str | None,
    job: JobId,
    env: dict,
    opts: RunOptions,
) -> dict:
    task, data = state.task, state.data
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "model": spec.name,
        "task": task.name,
        "protocol": protocol,
        "fold": fold_idx,
        "seed": seed,
        "config": job.config,
        "status": "failed",
        "metrics": {},
        "hparams": hp,
        "descriptors": dset,
        "task_info": {
            "target": task.target,
            "unit": task.unit,
            "task_type": task.task_type,
            "extensive": task.extensive,
            "classes": list(data.classes) if data.classes else None,
        },
        "timings": {"load": round(state.timings.get("load", 0.0), 4)},
        "error": None,
    }
    provenance = dict(env)
    provenance.update(
        {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": opts.device,
            "plugins": {
                "model": {"name": reg.owner.get(("model", spec.name)), "version": reg.plugin_version("model", spec.name)},
                "task": {"name": reg.owner.get(("task", task.name)), "version": reg.plugin_version("task", task.name)},
            },
            "dataset": {
                "name": task.name, "n": len(data), "content_hash": data.content_hash, "files": state.files,
                # what the loader filtered or skipped, so a reader knows which entries are missing and why
                **{k: data.meta[k] for k in ("skipped_count", "filters") if k in data.meta},
            },
        }
    )
    record["provenance"] = provenance
    t_start = time.perf_counter()
    try:
        if spec.needs == "structure" and data.structures is None:
            raise CrystalbenchError(f"model {spec.name!r} needs crystal structures; task {task.name!r} has only compositions")
        fold = state.folds(protocol, seed, spec.needs_validation)[fold_idx]
        provenance["split"] = fold.describe(data) | {"seed": seed}
        work = data
        if dset:
            values, names, dropped, secs = state.features(dset)
            work = data.with_features(names, values)
            record["dropped_features"] = dropped
            record["timings"]["featurize"] = round(secs, 4)
            provenance["plugins"]["descriptors"] = {
                "name": dset,
                "plugin": reg.owner.get(("descriptor", dset)),
                "version": reg.descriptor(dset).version,
                "plugin_version": reg.plugin_version("descriptor", dset),
            }
            if dropped and fold_idx == 0 and seed == opts.seeds[0]:
                _say(
                    f"note: {spec.name} on {task.name}: descriptor column(s) {', '.join(dropped)} withheld "
                    "(they are or leak the target)",
                    opts.progress,
                )
        train = work.subset(fold.train)
        val = work.subset(fold.val) if len(fold.val) else None
        test = work.subset(fold.test)
        seed_everything(seed)
        ctx = ModelContext(
            hparams=dict(hp),
            task_type=task.task_type,
            n_classes=len(data.classes) if data.classes else None,
            extensive=task.extensive,
            device=opts.device,
            seed=seed,
            cache_dir=opts.cache_dir,
        )
        model = spec.factory(ctx)
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != opts.threads:
            # Crystal graphs are small: extra intra-op threads gain little, and on a busy
            # machine oversubscribed OpenMP threads make training 10-50x slower.
            torch.set_num_threads(opts.threads)
        t0 = time.perf_counter()
        model.fit(train, val, seed=seed, progress=opts.progress)
        record["timings"]["fit"] = round(time.perf_counter() - t0, 4)
        info = getattr(model, "fit_info", None)  # optional: epochs run, best epoch, cache hits...
        if isinstance(info, dict):
            record["fit_info"] = info
        t0 = time.perf_counter()
        pred = np.asarray(model.predict(test)).reshape(-1)
        record["timings"]["predict"] = round(time.perf_counter() - t0, 4)
        if len(pred) != len(test):
            raise CrystalbenchError(f"model {spec.name!r} returned {len(pred)} predictions for {len(test)} samples")
        record["metrics"] = score(task.task_type, test.targets, pred)
        record["predictions"] = {"ids": list(test.ids), "y_true": test.targets.tolist(), "y_pred": pred.tolist()}
        record["status"] = "ok"
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        record["error"] = f"{type(exc).__name__}: {first}" if not isinstance(exc, CrystalbenchError) else first
        record["traceback"] = traceback.format_exc(limit=20)
        if os.environ.get("CRYSTALBENCH_DEBUG"):
            raise
    record["timings"]["total"] = round(time.perf_counter() - t_start, 4)
    return record

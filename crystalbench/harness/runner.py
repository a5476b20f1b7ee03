"""Plans a grid of jobs and runs the pending ones, resumably, as the single writer of its records.

`plan_grid` turns a `GridRequest` (models x tasks x folds x seeds, plus config
and flags) into `Job`s, rejecting silent no-ops (a fold that does not exist, a
config key no model has, `--pooling` on a model without pooling) and jobs that
cannot mean anything, each with one line naming the culprit. `run_grid` runs
the jobs that have no valid record yet: each is claimed (so concurrent runs on
one results directory share the work) when the executor has a free slot, run
through `stages.run_job` by the executor (in this process by default, in worker
processes or on a Ray cluster otherwise: `crystalbench.harness.executors`),
written atomically by this process alone as its record comes back, and passed
to observers. A failing job (its model, task loader or descriptor set raised, or
it could not run where it was sent) is recorded as failed and the grid goes on; a
job whose process died is retried (`retries`) and then recorded as failed; a
record that cannot be written is kept and saved elsewhere. Progress shows an ETA
estimated per model (`_Eta`).
"""

from __future__ import annotations

import difflib
import logging
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import RunContext
from .errors import BadInputError, CrystalbenchError, DataUnavailableError, UnknownNameError
from .executors.base import Executor, Failure, RunSetup, TaskRecipe
from .executors.local import SequentialExecutor
from .job import Job
from .params import params_to_dict, resolve_params
from .record import ResultRecord
from .registry import Registry
from .results import Claim, ResultStore, describe_oserror
from .specs import ModelSpec, TaskSpec
from .splits import PROTOCOLS, n_folds, split_file_digest
from .stages import Workspace, failed_record, static_incompatibility
from .store import atomic_write

__all__ = ["GridRequest", "RunSummary", "plan_grid", "run_grid", "resolve_job_params", "check_seeds", "epochs_note",
           "SEED_MAX"]

log = logging.getLogger("crystalbench.runner")


@dataclass
class GridRequest:
    """What the user asked for: the grid's axes plus the settings that become job parameters."""

    models: list[str]
    tasks: list[str]
    protocol: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: list[int] | None = None
    epochs: int | None = None
    pooling: str | None = None
    descriptors: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    split_file: Path | None = None
    rerun: bool = False
    extra_tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    # how worker processes re-create `extra_tasks` (their specs hold closures): see executors.base.TaskRecipe
    task_recipes: Mapping[str, TaskRecipe] = field(default_factory=dict)
    # say when a job replaces records of the same model and task with other inputs; off for
    # tuning trials, which differ from each other by design
    explain_changes: bool = True


@dataclass
class RunSummary:
    finished: list[ResultRecord] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0
    elsewhere: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unsaved: list[str] = field(default_factory=list)
    planned: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors


# ----------------------------------------------------------------------------- planning
def _check_config(reg: Registry, config: Mapping[str, Any], models: list[ModelSpec]) -> None:
    """Config typos are errors: a top-level key no model has, a [table] naming no model."""
    every = {f for spec in reg.models.values() for f in _fields(spec)}
    for key, value in config.items():
        if isinstance(value, Mapping):
            if key not in reg.models:
                close = difflib.get_close_matches(key, list(reg.models), n=3)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise BadInputError(f"config: [{key}] is not a model{hint} (see `bench list models`)")
            continue
        if key not in every:
            close = difflib.get_close_matches(key, sorted(every), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise BadInputError(f"config: top-level key {key!r} is not a hyperparameter of any model{hint}")
    for spec in models:
        section = config.get(spec.name)
        if isinstance(section, Mapping):
            resolve_params(spec.name, spec.params_class, section, strict_layers=(0,))


def _fields(spec: ModelSpec) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(spec.params_class)} | ({"pooling"} if spec.poolings else set())


def resolve_job_params(spec: ModelSpec, task: TaskSpec, req: GridRequest) -> dict[str, Any]:
    """defaults < config top-level keys < [model] table < CLI flags; pooling chosen here and only here."""
    top = {k: v for k, v in req.config.items() if not isinstance(v, Mapping)}
    section = dict(req.config.get(spec.name) or {})
    flags: dict[str, Any] = {}
    if req.epochs is not None and "epochs" in _fields(spec):
        flags["epochs"] = req.epochs
    if spec.poolings:
        pooling = req.pooling or section.get("pooling") or top.get("pooling") or spec.default_pooling or (
            "sum" if task.extensive else "mean"
        )
        if pooling not in spec.poolings:
            raise BadInputError(f"model {spec.name!r} supports pooling {', '.join(spec.poolings)}, not {pooling!r}")
        flags["pooling"] = pooling
    top.pop("pooling", None)
    section_params = {k: v for k, v in section.items() if k != "pooling" or "pooling" in _fields(spec)}
    params = resolve_params(spec.name, spec.params_class, top, section_params, flags, strict_layers=(1,))
    out = params_to_dict(params)
    if spec.poolings and "pooling" not in out:
        out["pooling"] = flags["pooling"]
    return out


SEED_MAX = 2**32 - 1  # numpy's seed range: a seed outside it fails only when the split is drawn


def check_seeds(seeds: Sequence[int]) -> None:
    """A seed numpy cannot take is a bad argument, refused before anything runs (not a traceback mid-grid)."""
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise BadInputError(f"--seed {seed}: a seed is an integer from 0 to {SEED_MAX}")


def epochs_note(reg: Registry, models: Sequence[str], epochs: int | None) -> str | None:
    """`--epochs` must change something: an error when no model of the grid trains for epochs, and a
    note naming the models it does not apply to in a mixed grid (`-m dummy -m rf -m cgcnn --epochs 150`
    is the usual way to shorten a grid's GNN runs, so it is allowed)."""
    if epochs is None:
        return None
    names = list(dict.fromkeys(reg.model(m).name for m in models))
    without = [m for m in names if "epochs" not in _fields(reg.model(m))]
    if not without:
        return None
    if len(without) == len(names):
        raise BadInputError(f"--epochs {epochs}: {', '.join(without)} train(s) for no epochs, so the flag would "
                            "change nothing (drop it)")
    return f"--epochs {epochs} applies to {', '.join(m for m in names if m not in without)}; " \
           f"{', '.join(without)} train(s) for no epochs"


def plan_grid(reg: Registry, ctx: RunContext, req: GridRequest, workspace: Workspace) -> tuple[list[Job], RunSummary]:
    """Expand the request into jobs; user errors raise, per-task problems go into the summary."""
    summary = RunSummary()
    check_seeds(req.seeds)
    if req.protocol is not None and req.protocol not in PROTOCOLS:
        raise UnknownNameError(f"unknown protocol {req.protocol!r}; choose from {', '.join(PROTOCOLS)}")
    specs = list({s.name: s for s in (reg.model(m) for m in req.models)}.values())
    task_names = [t for t in req.tasks if t not in req.extra_tasks]
    tasks: dict[str, TaskSpec] = dict(req.extra_tasks)
    for name in reg.match_tasks(task_names) if task_names else []:
        tasks[name] = reg.tasks[name]
    if not specs or not tasks:
        raise CrystalbenchError("nothing to run: give at least one --model and one --task (or --data)")
    _check_config(reg, req.config, specs)
    if req.pooling:
        no_pool = [s.name for s in specs if not s.poolings]
        if no_pool:
            raise BadInputError(
                f"--pooling applies to GNN readouts; {', '.join(no_pool)} has none (run it without --pooling)"
            )
    if req.descriptors:
        chosen = reg.descriptor(req.descriptors)
        cannot = [s.name for s in specs if not (s.accepts_features or s.needs == "features")]
        if cannot:
            raise BadInputError(
                f"--descriptors {chosen.name}: model {', '.join(map(repr, cannot))} does not accept extra features"
            )
    for s in specs:
        if s.needs == "features" and not (req.descriptors or s.descriptors):
            raise BadInputError(f"model {s.name!r} needs a descriptor set: pass --descriptors NAME")
    split_source = split_file_digest(req.split_file) if req.split_file is not None else None
    seeds = list(dict.fromkeys(req.seeds)) or [0]

    jobs: list[Job] = []
    for task in tasks.values():
        protocol = req.protocol or task.protocol
        if protocol == "file" and task.split_ids is None and req.split_file is None:
            summary.errors.append(f"task {task.name!r} has no id-list split; use --split-file or --protocol paper")
            continue
        count = n_folds(protocol, req.split_file)
        if req.folds is not None:
            missing = [f for f in req.folds if f >= count]
            if missing:
                raise BadInputError(
                    f"--folds {','.join(map(str, missing))}: task {task.name!r} has folds 0-{count - 1} "
                    f"under the {protocol} protocol"
                )
        folds = [f for f in range(count) if req.folds is None or f in req.folds]
        runnable = []
        for spec in specs:
            dname = req.descriptors or spec.descriptors
            dspec = reg.descriptor(dname) if dname else None
            why = static_incompatibility(spec, task, dspec)
            if why:
                if task.task_type == "classification" and not spec.classification:
                    summary.warnings.append(f"skipped: {why}")
                else:
                    summary.errors.append(f"incompatible: {why}")
                continue
            runnable.append((spec, dspec))
        if not runnable:
            continue
        try:
            data_fp = workspace.fingerprint(task.name)
        except DataUnavailableError as exc:
            summary.errors.append(f"task {task.name!r}: data unavailable: {exc}")
            continue
        except CrystalbenchError as exc:
            summary.errors.append(f"task {task.name!r}: {exc}")
            continue
        except Exception as exc:  # a loader bug must not take the other tasks down
            if ctx.debug:
                raise
            summary.errors.append(f"task {task.name!r}: failed to load: {type(exc).__name__}: {exc}")
            continue
        for spec, dspec in runnable:
            params = resolve_job_params(spec, task, req)
            code = reg.job_code(spec.name, task.name, dspec.name if dspec else None)
            for seed in seeds:
                for fold in folds:
                    jobs.append(Job(
                        model=spec.name, task=task.name, protocol=protocol, fold=fold, seed=seed, params=params,
                        device=ctx.device, descriptors=dspec.name if dspec else None,
                        descriptor_version=str(dspec.version) if dspec else None, target=task.target,
                        data=data_fp, split_source=split_source, code=code,
                    ))
    summary.planned = len(jobs)
    return jobs, summary


# ----------------------------------------------------------------------------- running
def _save_elsewhere(record: ResultRecord, ctx: RunContext) -> str | None:
    """Last resort when the results dir rejects a record: keep it where it can be written."""
    for folder in (ctx.cache_dir / "unsaved-results", Path(tempfile.gettempdir()) / "crystalbench-unsaved"):
        try:
            path = folder / f"{record.job.task}-{record.job.model}-{record.job_id}.json"
            atomic_write(path, record.to_json())
            return str(path)
        except OSError:
            continue
    return None


def _write(store: ResultStore, record: ResultRecord, ctx: RunContext, summary: RunSummary) -> bool:
    for attempt in range(2):
        try:
            store.write(record)
            return True
        except OSError as exc:
            why = describe_oserror(exc)
            if attempt == 0:
                continue
            saved = _save_elsewhere(record, ctx)
            where = f"; the record was saved to {saved}" if saved else "; the record could not be saved anywhere"
            msg = f"cannot write the result of {record.job.label()} to {store.root}: {why}{where}"
            ctx.reporter.error(msg)
            summary.errors.append(msg)
            if saved:
                summary.unsaved.append(saved)
    return False


def _crash_record(job: Job, task: TaskSpec | None, failure: Failure, attempts: int, node: str) -> ResultRecord:
    """The failed record of a job whose worker died on every attempt."""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return failed_record(job, task, f"worker died: {failure.message} ({tries}; see --retries)", node=node or None)


def run_grid(
    reg: Registry,
    ctx: RunContext,
    req: GridRequest | Sequence[GridRequest],
    *,
    on_record: Callable[[ResultRecord], None] | None = None,
    executor: Executor | None = None,
    retries: int = 1,
) -> RunSummary:
    """Run every pending job of the request; see the module docstring.

    req: one request, or several run as one grid through one executor (a tuning
        batch: the same model and task with one parameter set per trial). They must
        agree on the run-wide settings (`split_file`, `rerun`, `extra_tasks`).

    executor: what runs the jobs (`crystalbench.harness.executors`); None runs them
        one by one in this process. This function alone writes records, calls
        observers and shows progress, whatever the executor.
    retries: how many times a job whose worker died (killed, out of memory, node
        lost) is run again before it is recorded as failed; a job that raised is not
        retried (it would raise again).
    """
    if retries < 0:
        raise BadInputError(f"--retries must be 0 or more (got {retries})")
    store = ResultStore(ctx.results_dir)
    removed = store.prepare()  # before computing anything: a bad results dir fails now, not after an hour
    if removed:
        ctx.reporter.note(f"removed {removed} stale temporary file(s) left in {ctx.results_dir} by a killed run")
    reqs = [req] if isinstance(req, GridRequest) else list(req)
    if not reqs:
        raise BadInputError("run_grid: no request")
    req = reqs[0]
    for other in reqs[1:]:
        if (other.split_file, other.rerun, dict(other.extra_tasks)) != (req.split_file, req.rerun, dict(req.extra_tasks)):
            raise BadInputError("run_grid: requests run together must share split_file, rerun and extra_tasks")
    workspace = Workspace(reg, ctx, req.extra_tasks)
    jobs, summary = plan_grid(reg, ctx, req, workspace)
    for other in reqs[1:]:
        more, sub = plan_grid(reg, ctx, other, workspace)
        seen = {j.id for j in jobs}
        jobs.extend(j for j in more if j.id not in seen)
        summary.errors.extend(e for e in sub.errors if e not in summary.errors)
        summary.warnings.extend(w for w in sub.warnings if w not in summary.warnings)
        summary.planned += sub.planned
    for msg in summary.errors:
        ctx.reporter.error(msg)
    for msg in summary.warnings:
        ctx.reporter.warning(msg)

    pending: list[Job] = []
    explained: set[tuple[str, str]] = set()
    for job in jobs:
        if not req.rerun and store.done(job):
            summary.skipped += 1
            continue
        pending.append(job)
        key = (job.task, job.model)
        if req.explain_changes and key not in explained:
            older = store.siblings(job)
            if older:
                explained.add(key)
                diff = sorted({d for rec in older for d in job.differences(rec.job)})
                ctx.reporter.note(
                    f"{job.model} on {job.task}: inputs changed since the recorded result(s) ({'; '.join(diff)}); "
                    "running as new job(s), older records are kept"
                )
    if summary.skipped:
        ctx.reporter.note(f"resuming: {summary.skipped} of {len(jobs)} jobs already recorded in {ctx.results_dir}")
    if not pending:
        return summary

    if executor is None:
        executor = SequentialExecutor()
    broken_tasks: set[str] = set()
    queue = deque(pending)
    retry: deque[Job] = deque()
    claims: dict[str, Claim] = {}
    attempts: dict[str, int] = {}
    eta = _Eta(Counter(job.model for job in pending))
    started: dict[str, float] = {}
    progress = ctx.progress_bar(len(pending), "jobs", "job", eta=lambda: eta.estimate(max(1, executor.running)))

    def done(job: Job, ran: bool = True) -> None:
        t0 = started.pop(job.id, None)
        eta.finished(job.model, time.monotonic() - t0 if ran and t0 is not None else None)

    def status() -> str:
        running = executor.running
        return f"{len(summary.finished)} done, {summary.failed} failed" + (f", {running} running" if running else "")

    def next_job() -> Job | None:
        """Called by the executor when a slot is free: the next job, claimed (None: nothing to start now)."""
        if retry:
            job = retry.popleft()  # still claimed
            started[job.id] = time.monotonic()
            return job
        while queue:
            job = queue.popleft()
            progress.update(0, postfix=f"{job.model} · {job.task}" if executor.running == 0 else None)
            if job.task in broken_tasks:
                done(job, ran=False)
                progress.update(1)
                continue
            claim = store.claim(job)
            if claim is None:
                summary.elsewhere += 1
                holder = store.holder(job) or "another process"
                ctx.reporter.note(f"{job.label()}: being computed by {holder}; left to it")
                done(job, ran=False)
                progress.update(1)
                continue
            if not req.rerun and store.done(job):  # finished by a concurrent run meanwhile
                summary.skipped += 1
                claim.release()
                done(job, ran=False)
                progress.update(1, postfix=status())
                continue
            claims[job.id] = claim
            attempts[job.id] = 1
            started[job.id] = time.monotonic()
            return job
        return None

    def error(msg: str) -> None:
        if msg not in summary.errors:
            summary.errors.append(msg)
            ctx.reporter.error(msg)

    try:
        executor.start(RunSetup(reg=reg, ctx=ctx, workspace=workspace, split_file=req.split_file,
                                extra_tasks=req.extra_tasks, task_recipes=req.task_recipes))
        if not isinstance(executor, SequentialExecutor):
            ctx.reporter.note(f"running {len(pending)} job(s) on {executor.describe()}")
        for outcome in executor.submit(next_job):
            job = outcome.job
            failure = outcome.failure
            if failure is not None and failure.retryable and attempts.get(job.id, 1) <= retries:
                attempts[job.id] = attempts.get(job.id, 1) + 1
                ctx.reporter.warning(
                    f"{job.label()}: {failure.message}; retrying (attempt {attempts[job.id]} of {retries + 1})"
                )
                retry.append(job)
                continue
            try:
                record = outcome.record
                if failure is not None and failure.traceback:
                    log.debug(f"{job.label()} on {outcome.node or 'a worker'}:\n{failure.traceback}")
                if failure is not None and failure.retryable:
                    record = _crash_record(job, _task_or_none(workspace, job.task), failure,
                                           attempts.get(job.id, 1), outcome.node)
                elif failure is not None and failure.kind == "error":  # this job could not run: recorded
                    record = failed_record(job, _task_or_none(workspace, job.task), failure.message,
                                           failure.traceback, outcome.node or None)
                elif failure is not None:  # a user error: one line; the task's other jobs would fail alike
                    if failure.kind == "incompatible":
                        error(f"{job.model} on {job.task}: {failure.message}")
                    elif job.task not in broken_tasks:
                        broken_tasks.add(job.task)
                        prefix = "data unavailable: " if failure.kind == "data_unavailable" else ""
                        error(f"task {job.task!r}: {prefix}{failure.message}")
                    continue
                assert record is not None
                if _write(store, record, ctx, summary):
                    for problem in reg.notify_finished(record, ctx):
                        ctx.reporter.warning(problem)
                if not record.ok:
                    summary.failed += 1
                summary.finished.append(record)
                if on_record:
                    on_record(record)
            finally:
                held = claims.pop(job.id, None)
                if held is not None:
                    held.release()
                done(job, ran=failure is None or failure.kind in ("error", "crashed"))
                progress.update(1, postfix=status())
    finally:
        try:
            executor.close()
        finally:
            for held in claims.values():  # jobs in flight when the run stopped: let the next run take them
                held.release()
            progress.close()
    return summary


class _Eta:
    """Seconds left in a grid, estimated per model: the jobs of a model left x its mean job time so far.

    A grid mixes jobs that take milliseconds (dummy) with jobs that take minutes (a GNN), so a
    per-job average is wrong as soon as the slow model starts. Until a job of every model still
    pending has ended there is no honest estimate (None: no ETA shown). `parallel` jobs at once
    divide it.
    """

    def __init__(self, left: Mapping[str, int]) -> None:
        self.left = dict(left)
        self.seconds: dict[str, list[float]] = {}

    def finished(self, model: str, seconds: float | None) -> None:
        """One job of `model` is done; `seconds`: how long it ran (None: it did not run)."""
        self.left[model] = max(0, self.left.get(model, 0) - 1)
        if seconds is not None:
            self.seconds.setdefault(model, []).append(seconds)

    def estimate(self, parallel: int = 1) -> float | None:
        total = 0.0
        for model, n in self.left.items():
            if n == 0:
                continue
            times = self.seconds.get(model)
            if not times:
                return None
            total += n * sum(times) / len(times)
        return total / max(1, parallel)


def _task_or_none(workspace: Workspace, name: str) -> TaskSpec | None:
    try:
        return workspace.task(name)
    except CrystalbenchError:
        return None


def default_jobs() -> int:
    """Worker processes for featurization when --jobs is not given: all cores."""
    return os.cpu_count() or 1

"""Plans a grid of jobs and runs the pending ones, resumably, as the single writer of its records.

`plan_grid` turns a `GridRequest` (models x tasks x folds x seeds, plus config
and flags; `harness.grid`) into `Job`s, rejecting silent no-ops (a fold that does
not exist, a config key no model has, `--pooling` on a model without pooling) and
jobs that cannot mean anything, each with one line naming the culprit. `run_grid`
picks the jobs that have no valid record yet and hands them to a `Dispatcher`
(`harness.dispatch`): each is claimed (so concurrent runs on one results
directory share the work) when the executor has a free slot, run through
`stages.run_job` by the executor (in this process by default, in worker
processes or on a Ray cluster otherwise: `crystalbench.runtime.executors`),
written atomically by this process alone as its record comes back, and passed
to observers. A failing job (its model, task loader or descriptor set raised, or
it could not run where it was sent) is recorded as failed and the grid goes on; a
job whose process died is retried (`retries`) and then recorded as failed; a
record that cannot be written is kept and saved elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from crystalbench.contract.context import RunContext
from crystalbench.contract.enums import Protocol, TaskType
from crystalbench.contract.errors import BadInputError, CrystalbenchError, DataUnavailableError, UnknownNameError
from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.specs import TaskSpec
from crystalbench.runtime.dispatch import Dispatcher, RunSummary
from crystalbench.runtime.executors.base import Executor, RunSetup
from crystalbench.runtime.grid import SEED_MAX, GridRequest, check_config, check_seeds, epochs_note, resolve_job_params
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.results import ResultStore
from crystalbench.runtime.splits import n_folds, split_file_digest
from crystalbench.runtime.stages import Workspace, static_incompatibility

__all__ = ["GridRequest", "RunSummary", "plan_grid", "run_grid", "resolve_job_params", "check_seeds", "epochs_note",
           "SEED_MAX"]


# ----------------------------------------------------------------------------- planning
def plan_grid(reg: Registry, ctx: RunContext, req: GridRequest, workspace: Workspace) -> tuple[list[Job], RunSummary]:
    """Expand the request into jobs; user errors raise, per-task problems go into the summary."""
    summary = RunSummary()
    check_seeds(req.seeds)
    if req.protocol is not None and not Protocol.has(req.protocol):
        raise UnknownNameError(f"unknown protocol {req.protocol!r}; choose from {', '.join(Protocol)}")
    specs = list({s.name: s for s in (reg.model(m) for m in req.models)}.values())
    task_names = [t for t in req.tasks if t not in req.extra_tasks]
    tasks: dict[str, TaskSpec] = dict(req.extra_tasks)
    for name in reg.match_tasks(task_names) if task_names else []:
        tasks[name] = reg.tasks[name]
    if not specs or not tasks:
        raise CrystalbenchError("nothing to run: give at least one --model and one --task (or --data)")
    check_config(reg, req.config, specs)
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
                if task.task_type == TaskType.CLASSIFICATION and not spec.classification:
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

    executor: what runs the jobs (`crystalbench.runtime.executors`); None runs them
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
    first = _check_together(reqs)
    workspace = Workspace(reg, ctx, first.extra_tasks)
    jobs, summary = _plan_all(reg, ctx, reqs, workspace)
    for msg in summary.errors:
        ctx.reporter.error(msg)
    for msg in summary.warnings:
        ctx.reporter.warning(msg)
    pending = _pending(ctx, store, first, jobs, summary)
    if not pending:
        return summary
    dispatcher = Dispatcher(reg, ctx, workspace, summary, pending, rerun=first.rerun, retries=retries,
                            on_record=on_record)
    dispatcher.run(executor, RunSetup(reg=reg, ctx=ctx, workspace=workspace, split_file=first.split_file,
                                      extra_tasks=first.extra_tasks, task_recipes=first.task_recipes))
    return summary


def _check_together(reqs: list[GridRequest]) -> GridRequest:
    """The first request, once every other agrees with it on the run-wide settings."""
    if not reqs:
        raise BadInputError("run_grid: no request")
    req = reqs[0]
    for other in reqs[1:]:
        if (other.split_file, other.rerun, dict(other.extra_tasks)) != (req.split_file, req.rerun, dict(req.extra_tasks)):
            raise BadInputError("run_grid: requests run together must share split_file, rerun and extra_tasks")
    return req


def _plan_all(reg: Registry, ctx: RunContext, reqs: list[GridRequest],
              workspace: Workspace) -> tuple[list[Job], RunSummary]:
    """Every request's jobs, each once, and one summary of their planning errors and warnings."""
    jobs, summary = plan_grid(reg, ctx, reqs[0], workspace)
    for other in reqs[1:]:
        more, sub = plan_grid(reg, ctx, other, workspace)
        seen = {j.id for j in jobs}
        jobs.extend(j for j in more if j.id not in seen)
        summary.errors.extend(e for e in sub.errors if e not in summary.errors)
        summary.warnings.extend(w for w in sub.warnings if w not in summary.warnings)
        summary.planned += sub.planned
    return jobs, summary


def _pending(ctx: RunContext, store: ResultStore, req: GridRequest, jobs: list[Job], summary: RunSummary) -> list[Job]:
    """The jobs without a valid record (all of them with `rerun`), saying once per model and task when
    a job replaces records made with other inputs."""
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
    return pending


def default_jobs() -> int:
    """Worker processes for featurization when --jobs is not given: all cores."""
    return os.cpu_count() or 1

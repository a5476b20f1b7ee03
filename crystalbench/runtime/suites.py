"""Suites as data: a `SuiteSpec` becomes `GridRequest`s, planned like `bench run -m ... -t ...`.

A suite is a list of `SuiteEntry` blocks; each block is exactly what one
`bench run` command line would ask for, so `suite_requests` turns it into a
`GridRequest` and `run_grid` plans and runs it through the one planning path
(`runner.plan_grid`): the same jobs, the same ids, the same resume.

`suite_plan` lists a suite's jobs without loading any data (for `bench list
suites`, `bench run --dry-run` and tests): model, task, protocol, fold, seed and resolved
hyperparameters, with the same rules as the planner (a model that cannot run a
task is left out, classification tasks are skipped for models without
classification). What only the data can decide (a fingerprint, a missing file)
is left to `run_grid`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crystalbench.contract.errors import BadInputError, UnknownNameError
from crystalbench.contract.specs import SuiteEntry, SuiteSpec
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.runner import GridRequest, resolve_job_params
from crystalbench.runtime.splits import n_folds
from crystalbench.runtime.stages import static_incompatibility

__all__ = ["PlannedJob", "SuiteFilter", "suite_requests", "suite_plan", "request_plan", "plan_rows", "PLAN_COLUMNS"]


@dataclass(frozen=True)
class PlannedJob:
    """One job of a suite as known before loading data (the job id also needs the data fingerprint)."""

    model: str
    task: str
    protocol: str
    fold: int
    seed: int
    params: dict[str, Any]
    descriptors: str | None
    label: str

    def key(self) -> tuple[str, str, str, int, int, str]:
        """(model, task, protocol, fold, seed, label): how docs and tests name a suite's jobs."""
        return (self.model, self.task, self.protocol, self.fold, self.seed, self.label)


@dataclass(frozen=True)
class SuiteFilter:
    """What `bench run --suite` flags change: keep some models/tasks, override seeds, folds, epochs."""

    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    folds: tuple[int, ...] | None = None
    epochs: int | None = None


def _entry_tasks(reg: Registry, suite: SuiteSpec, entry: SuiteEntry, keep: Sequence[str]) -> list[str]:
    try:
        names = reg.match_tasks(entry.tasks)
    except UnknownNameError as exc:
        raise UnknownNameError(f"suite {suite.name!r}: {exc}") from None
    if keep:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, pat) or n == pat for pat in keep)]
    return names


def _entry_models(reg: Registry, suite: SuiteSpec, entry: SuiteEntry, keep: Sequence[str]) -> list[str]:
    try:
        names = [reg.model(m).name for m in entry.models]
    except UnknownNameError as exc:
        raise UnknownNameError(f"suite {suite.name!r}: {exc}") from None
    if keep:
        wanted = {reg.model(m).name for m in keep}
        names = [n for n in names if n in wanted]
    return names


def suite_requests(reg: Registry, suite: SuiteSpec, flt: SuiteFilter | None = None) -> list[GridRequest]:
    """One `GridRequest` per entry that still has models and tasks after the filter."""
    flt = flt or SuiteFilter()
    out: list[GridRequest] = []
    for entry in suite.entries:
        models = _entry_models(reg, suite, entry, flt.models)
        tasks = _entry_tasks(reg, suite, entry, flt.tasks)
        if not models or not tasks:
            continue
        out.append(GridRequest(
            models=models, tasks=tasks, protocol=entry.protocol,
            seeds=list(flt.seeds or entry.seeds),
            folds=list(flt.folds) if flt.folds is not None else (list(entry.folds) if entry.folds is not None else None),
            epochs=flt.epochs, pooling=entry.pooling, descriptors=entry.descriptors, config=dict(entry.config),
        ))
    if not out:
        raise BadInputError(f"suite {suite.name!r}: no job left after the -m/-t filter")
    return out


def suite_plan(reg: Registry, suite: SuiteSpec, flt: SuiteFilter | None = None) -> list[PlannedJob]:
    """Every job of the suite, in order, without loading data (see the module docstring)."""
    out: list[PlannedJob] = []
    labelled = zip(suite_requests(reg, suite, flt), _kept_entries(reg, suite, flt or SuiteFilter()), strict=True)
    for req, entry in labelled:
        out += request_plan(reg, req, entry.label)
    return out


def request_plan(reg: Registry, req: GridRequest, label: str = "") -> list[PlannedJob]:
    """The jobs of one grid request, without loading data (`bench run --dry-run` for plain -m/-t grids)."""
    out: list[PlannedJob] = []
    tasks = {**{n: reg.tasks[n] for n in reg.match_tasks([t for t in req.tasks if t not in req.extra_tasks])},
             **{n: t for n, t in req.extra_tasks.items()}}
    for tname, task in tasks.items():
        protocol = req.protocol or task.protocol
        folds = [f for f in range(n_folds(protocol, req.split_file)) if req.folds is None or f in req.folds]
        for mname in dict.fromkeys(reg.model(m).name for m in req.models):
            spec = reg.models[mname]
            dname = req.descriptors or spec.descriptors
            dspec = reg.descriptor(dname) if dname else None
            if static_incompatibility(spec, task, dspec):
                continue
            params = resolve_job_params(spec, task, req)
            for seed in dict.fromkeys(req.seeds or [0]):
                for fold in folds:
                    out.append(PlannedJob(mname, tname, protocol, fold, seed, params,
                                          dspec.name if dspec else None, label))
    return out


PLAN_COLUMNS = ["model", "task", "protocol", "fold", "seed", "pooling", "epochs", "descriptors", "label"]


def plan_rows(plan: Sequence[PlannedJob]) -> list[dict[str, Any]]:
    """One row per planned job: the settings a reader checks first (pooling, epochs), then every parameter.

    A model without a readout or epochs shows "-" there, so a pin that did not reach a
    model is visible rather than looking like a default.
    """
    return [{"model": p.model, "task": p.task, "protocol": p.protocol, "fold": p.fold, "seed": p.seed,
             "pooling": p.params.get("pooling", "-"), "epochs": p.params.get("epochs", "-"),
             "descriptors": p.descriptors or "", "label": p.label, "params": dict(p.params)} for p in plan]


def _kept_entries(reg: Registry, suite: SuiteSpec, flt: SuiteFilter) -> list[SuiteEntry]:
    """The entries `suite_requests` kept, in the same order (to carry their labels)."""
    return [e for e in suite.entries
            if _entry_models(reg, suite, e, flt.models) and _entry_tasks(reg, suite, e, flt.tasks)]

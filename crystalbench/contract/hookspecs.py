"""The crystalbench plugin contract: every hook, documented where it is declared.

A plugin is a module (or object) with functions decorated by
`crystalbench.hookimpl` and named like the hooks below. It is found through
the entry-point group ``crystalbench`` in the plugin's own pyproject.toml::

    [project.entry-points.crystalbench]
    my_model = "my_package.my_module"

Built-in plugins are declared the same way in crystalbench's pyproject.toml.
A plugin implements only the hooks it needs. A plugin that fails to import or
raises inside a hook is reported by name (`bench plugins`) and skipped; the
rest of the harness keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from crystalbench.contract.context import RunContext
    from crystalbench.contract.record import ResultRecord
    from crystalbench.contract.specs import DescriptorSpec, ExecutorSpec, ModelSpec, SuiteSpec, TaskSpec

PROJECT = "crystalbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bench_models() -> list[ModelSpec]:
    """Return a list of `ModelSpec` this plugin offers.

    Names must be unique across plugins; a clash is reported and the first
    registered plugin (built-ins load first) keeps the name. The factory is
    called once per job with a `ModelContext`; import heavy dependencies
    (torch...) inside the factory, not at module import, so that listing
    models stays fast and a missing optional dependency only breaks the jobs
    that need it.
    """


@hookspec
def bench_descriptors() -> list[DescriptorSpec]:
    """Return a list of `DescriptorSpec` this plugin offers.

    Descriptor sets feed feature-based models (`rf`) and hybrid models
    (`de-cgcnn`, or any model with `accepts_features=True` via
    `--descriptors NAME`). The harness caches their values on disk.
    """


@hookspec
def bench_tasks(ctx: RunContext) -> list[TaskSpec]:
    """Return a list of `TaskSpec` this plugin offers.

    `ctx` is the invocation's `RunContext` (data, cache and results dirs, jobs,
    threads, device): a plugin that registers tasks from files (e.g. TOML task
    files under `ctx.data_dir / "tasks"`) reads them from there. An
    implementation may omit the argument. `TaskSpec.load(ctx)` is called
    lazily, only when a task is run, so listing tasks never parses data.
    Raise `DataUnavailableError` from `load` when the data is missing, saying
    how to obtain it. Names must match `crystalbench.NAME_PATTERN`.
    """


@hookspec
def bench_data_task(path: str, options: Mapping[str, Any]) -> TaskSpec | None:
    """Return a `TaskSpec` for a user's own data file or folder, or None when this plugin does not read it.

    Called by `bench run --data PATH`, `bench featurize --data PATH` and `bench results
    validate --data PATH`, with PATH absolute and `options` the command's reading
    options: ``target`` (the column; None with ``unlabelled=True``: featurizing, no
    labels read), ``structure_column``, ``id_column``, ``task_type`` ("regression" or
    "classification") and ``strict`` (fail on the first bad row). The first plugin
    that returns a spec wins, plugins installed later first, so a plugin can read a
    format the built-in ``usertasks`` plugin does not. A worker process re-creates
    the task by calling the same implementation with the same arguments (its spec
    holds closures that cannot be pickled), so it must be a module-level function.
    """


@hookspec
def bench_executors() -> list[ExecutorSpec]:
    """Return a list of `ExecutorSpec` this plugin offers: ways to run a grid's jobs.

    An executor receives serialized `Job` values and returns `ResultRecord`s; the
    driver alone writes results. Built-ins: `local` and `ray`.
    """


@hookspec
def bench_suites() -> list[SuiteSpec]:
    """Return a list of `SuiteSpec` this plugin offers: named grids run by `bench run --suite NAME`.

    A suite is data (models x tasks x protocol x seeds x settings, in `SuiteEntry`
    blocks), expanded by the same planner as `bench run -m ... -t ...`, so it
    can name models and tasks of any plugin; an unknown name is reported when the
    suite is listed or run, not at registration. Names must match
    `crystalbench.NAME_PATTERN` and be unique across plugins (built-ins keep theirs).
    Built-ins: the paper's tables and figures and Matbench v0.1 (`bench list suites`).
    """


@hookspec
def bench_run_finished(record: ResultRecord, ctx: RunContext) -> None:
    """Called with every finished job's `ResultRecord`.

    Observers (MLflow/W&B loggers, publishers, notifiers) implement this. The
    record is already safely on disk when the hook runs; each observer gets
    its own deep copy (mutating it changes nothing), and an exception raised
    here, `SystemExit` included, is reported as a warning and ignored, so an
    observer can never lose a result or stop the grid. `record.to_dict()`
    gives the JSON form (see `crystalbench/contract/record.schema.json`).
    An implementation may omit either argument.
    """

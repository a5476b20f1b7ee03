"""The `Executor` protocol: how a grid's pending jobs are run, and what comes back.

The runner (`crystalbench.runtime.runner.run_grid`) keeps its role: it plans the
grid, skips jobs that already have a record, claims each job, and is the ONLY
writer of results (atomically, as records come back), the only caller of
observers and the owner of the one progress display. An executor only runs jobs:

    executor.start(setup)                   once, with the driver's `RunSetup`
    for outcome in executor.submit(next_job):
        ...                                 one `Outcome` per job, as each completes
    executor.close()                        always (also after an exception)

`submit(next_job)` calls `next_job()` only when it has a free slot (an idle worker
process, free CPUs/GPUs in a Ray cluster), so the runner claims a job just before
it starts and concurrent `bench run`s on one results directory keep sharing the
work. `next_job()` returns None when there is nothing to start *now*; the runner
may have more later (a job whose worker died, to retry), so an executor asks again
after every outcome it yields and finishes when `next_job()` returns None while
nothing is in flight.

Jobs travel to workers as `Job.to_dict()` and records come back as
`ResultRecord.to_dict()`: everything crossing a process or node boundary is plain
JSON-ready data, plus the `WorkerSetup` each worker rebuilds its world from
(registry, `RunContext`, the extra `--data` task; see `worker.py`).

An `Outcome` carries either the job's `ResultRecord` (ok, or failed because plugin
code raised while the job was prepared or run: `run_job` isolates plugin failures)
or a `Failure`:

    incompatible       the job cannot mean anything (`IncompatibleError`): a user error, one line
    data_unavailable   the task's data is missing where the job ran (the message names the node);
                       the task's other jobs are not started
    bad_input          the user's input is wrong in a way only the loaded data shows (a split file
                       naming unknown ids): one line, the task's other jobs are not started
    error              the job could not be run where it was sent (its plugin missing or another
                       version on that node, an unreadable answer): recorded as a failed job
    crashed            the process died while running the job (killed, out of memory, node lost,
                       `os._exit` in a plugin); the runner retries it `--retries` times, then
                       records it as failed
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord

if TYPE_CHECKING:
    from crystalbench.contract.context import RunContext
    from crystalbench.contract.specs import TaskSpec
    from crystalbench.runtime.registry import Registry
    from crystalbench.runtime.stages import Workspace

__all__ = [
    "Executor",
    "Outcome",
    "Failure",
    "FailureKind",
    "NextJob",
    "RunSetup",
    "WorkerSetup",
    "TaskRecipe",
    "node_name",
]

FailureKind = Literal["incompatible", "data_unavailable", "bad_input", "error", "crashed"]
NextJob = Callable[[], "Job | None"]


def node_name() -> str:
    """How a machine is named in messages: its host name."""
    return socket.gethostname()


@dataclass(frozen=True)
class Failure:
    """Why a job produced no record; see the module docstring for the kinds."""

    kind: FailureKind
    message: str
    traceback: str | None = None

    @property
    def retryable(self) -> bool:
        """Only a dead worker is retried: a job that raised would raise again."""
        return self.kind == "crashed"


@dataclass
class Outcome:
    """What became of one job: exactly one of `record` and `failure` is set."""

    job: Job
    record: ResultRecord | None = None
    failure: Failure | None = None
    node: str = ""

    @classmethod
    def from_wire(cls, job: Job, payload: Mapping[str, Any]) -> Outcome:
        """Decode what `worker.execute` returned for `job` (a plain dict) into an Outcome."""
        node = str(payload.get("node") or "")
        if "record" in payload:
            try:
                record = ResultRecord.from_dict(payload["record"])
            except CrystalbenchError as exc:
                return cls(job, failure=Failure("error", f"on node {node}: unreadable record: {exc}"), node=node)
            if record.job_id != job.id:
                return cls(job, failure=Failure(
                    "error", f"on node {node}: the worker answered job {record.job_id}, not {job.id}"), node=node)
            return cls(job, record=record, node=node)
        f = payload.get("failure") or {}
        kinds: tuple[FailureKind, ...] = ("incompatible", "data_unavailable", "bad_input", "error", "crashed")
        kind: FailureKind = next((k for k in kinds if k == f.get("kind")), "error")
        return cls(job, failure=Failure(kind, str(f.get("message") or "the worker sent no result"),
                                        f.get("traceback")), node=node)


@dataclass(frozen=True)
class TaskRecipe:
    """How a worker re-creates a task the driver built at run time (the `--data` task).

    Such a task's `TaskSpec` holds closures that cannot be pickled, so workers
    receive the recipe instead: `factory` is ``"package.module:function"`` and the
    worker calls ``function(*args, **kwargs)`` (e.g. `crystalbench.tasks.user:user_task`
    with the path and column options; paths must be absolute and, on a cluster,
    on the shared file system). Each worker then loads the file itself (memoised in
    its own Workspace; parsed datasets are cached in the shared cache directory).
    """

    factory: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> TaskSpec:
        module, _, name = self.factory.partition(":")
        fn = getattr(importlib.import_module(module), name)
        return fn(*self.args, **dict(self.kwargs))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker process or cluster node needs to rebuild the driver's world; plain, picklable data.

    token: identifies this run; a worker builds its registry and Workspace once per token.
    context: the `RunContext` fields (paths made absolute; `progress` off in workers,
        `jobs` possibly lowered by the executor so N workers do not each use every core).
    disabled: plugin names disabled in the driver (`--disable-plugin`, the environment).
    extra_plugins: plugins the driver registered by hand (`load_registry(extra_plugins=...)`),
        as (name, importable module name) or (name, picklable object).
    extra_tasks: (name, `TaskRecipe`) for run-time tasks (`--data`), or (name, TaskSpec) when
        the spec itself can be pickled.
    split_file: `--split-file`, absolute.
    sys_path: the driver's `sys.path`; a worker appends the existing entries it lacks.
    driver: "host pid N" of the driver, for messages.
    """

    token: str
    context: Mapping[str, Any]
    disabled: tuple[str, ...] = ()
    extra_plugins: tuple[tuple[str, Any], ...] = ()
    extra_tasks: tuple[tuple[str, Any], ...] = ()
    split_file: str | None = None
    sys_path: tuple[str, ...] = ()
    driver: str = ""

    def run_context(self) -> RunContext:
        from crystalbench.contract.context import RunContext

        return RunContext(**dict(self.context))


@dataclass
class RunSetup:
    """The driver's side of a run, handed to `Executor.start`.

    An in-process executor uses `reg`, `ctx` and `workspace` directly (the datasets
    planning loaded are reused); executors with workers call `for_workers()`.
    """

    reg: Registry
    ctx: RunContext
    workspace: Workspace
    split_file: Path | None = None
    extra_tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    task_recipes: Mapping[str, TaskRecipe] = field(default_factory=dict)

    def for_workers(self, **context_changes: Any) -> WorkerSetup:
        """The picklable `WorkerSetup` of this run; `context_changes` override RunContext fields."""
        from importlib import metadata

        from crystalbench.runtime.registry import ENTRY_POINT_GROUP

        ctx = self.ctx
        context = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name != "reporter"}
        for key in ("data_dir", "cache_dir", "results_dir"):
            context[key] = Path(context[key]).absolute()
        context["options"] = dict(context.get("options") or {})
        context["progress"] = False  # one progress display: the driver's
        context.update(context_changes)

        entry_names = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        extra_plugins: list[tuple[str, Any]] = []
        if self.reg.pm is not None:
            for name, obj in self.reg.pm.list_name_plugin():
                if name in entry_names or obj is None:
                    continue
                extra_plugins.append((name, obj.__name__ if isinstance(obj, ModuleType) else obj))
        extra_tasks: list[tuple[str, Any]] = []
        for name, spec in self.extra_tasks.items():
            extra_tasks.append((name, self.task_recipes.get(name, spec)))
        return WorkerSetup(
            token=uuid.uuid4().hex,
            context=context,
            disabled=tuple(sorted(i.name for i in self.reg.plugins if i.disabled)),
            extra_plugins=tuple(extra_plugins),
            extra_tasks=tuple(extra_tasks),
            split_file=str(Path(self.split_file).absolute()) if self.split_file is not None else None,
            sys_path=tuple(p for p in sys.path if p),
            driver=f"{node_name()} pid {os.getpid()}",
        )


@runtime_checkable
class Executor(Protocol):
    """Runs jobs for the runner; see the module docstring for the whole contract.

    name: the executor's name (`bench run --executor NAME`).
    running: jobs in flight right now (for the progress display).
    """

    name: str

    def start(self, setup: RunSetup) -> None:
        """Prepare to run jobs of this run (start worker processes, connect to a cluster).

        Raise `CrystalbenchError` with one line when that is impossible (Ray not
        installed, no cluster at the address, a GPU asked of a cluster without one).
        """

    def submit(self, next_job: NextJob) -> Iterator[Outcome]:
        """Pull jobs with `next_job()` when a slot is free; yield an `Outcome` per pulled job as it completes."""
        ...

    @property
    def running(self) -> int:
        """Jobs in flight right now."""
        ...

    def describe(self) -> str:
        """One line for the run's opening note, e.g. "local, 2 worker processes"."""
        ...

    def close(self) -> None:
        """Stop workers and release resources; called once, also after an error or Ctrl-C. Idempotent."""

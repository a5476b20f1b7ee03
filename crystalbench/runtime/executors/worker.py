"""The worker side: rebuild the driver's world from a `WorkerSetup` and run one job.

Used by the local process pool and by Ray tasks alike. A worker process builds
its registry (every installed plugin, minus those the driver disabled, plus the
ones the driver registered by hand) and its `Workspace` once per run (keyed by
`WorkerSetup.token`), so a process that runs several jobs of one task loads the
dataset once. The extra `--data` task is re-created from its `TaskRecipe` (the
user-task arguments): every worker reads the file itself from the shared path.

`execute(job_dict, setup)` never raises: it returns a plain dict, either
``{"record": ResultRecord.to_dict(), "node": host}`` or
``{"failure": {"kind", "message", "traceback"}, "node": host}``. Data that is
missing where the job runs is a `data_unavailable` failure whose message names
the node and the data directory there; a node whose plugin versions differ from
the driver's (`Job.code`) refuses the job. A plugin failing while the job is
prepared or run is a failed *record* (`stages.run_job`), not a failure.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from crystalbench.contract.errors import BadInputError, CrystalbenchError, DataUnavailableError
from crystalbench.contract.job import Job
from crystalbench.runtime.executors.base import WorkerSetup, node_name

__all__ = ["execute", "world", "run_remote", "run_to_wire"]

log = logging.getLogger("crystalbench.executors")

_WORLDS: dict[str, Any] = {}


class _World:
    def __init__(self, setup: WorkerSetup) -> None:
        from crystalbench.runtime.registry import load_registry
        from crystalbench.runtime.stages import Workspace

        for p in setup.sys_path:
            if p not in sys.path and os.path.isdir(p):
                sys.path.append(p)
        self.ctx = setup.run_context()
        extra = []
        for name, obj in setup.extra_plugins:
            extra.append((name, importlib.import_module(obj) if isinstance(obj, str) else obj))
        self.reg = load_registry(extra_plugins=extra, disable=setup.disabled, ctx=self.ctx)
        tasks = {}
        for name, spec in setup.extra_tasks:
            tasks[name] = spec.build() if hasattr(spec, "build") else spec
        self.workspace = Workspace(self.reg, self.ctx, tasks)
        self.split_file = None if setup.split_file is None else Path(setup.split_file)


def world(setup: WorkerSetup) -> _World:
    """This process's registry and Workspace for the run `setup` describes (built once per run)."""
    w = _WORLDS.get(setup.token)
    if w is None:
        _WORLDS.clear()  # one run at a time per worker process: drop the datasets of an older run
        w = _WORLDS[setup.token] = _World(setup)
    return w  # type: ignore[no-any-return]


def _failure(kind: str, message: str, tb: str | None = None) -> dict[str, Any]:
    return {"failure": {"kind": kind, "message": message, "traceback": tb}, "node": node_name()}


def _where(w: _World | None, setup: WorkerSetup) -> str:
    data_dir = w.ctx.data_dir if w is not None else setup.context.get("data_dir")
    missing = "" if data_dir is None or os.path.isdir(data_dir) else ", which does not exist there"
    return f"on node {node_name()} (data directory {data_dir}{missing})"


def execute(job_dict: dict[str, Any], setup: WorkerSetup) -> dict[str, Any]:
    """Run one job in this process; see the module docstring. Never raises (except KeyboardInterrupt)."""
    w: _World | None = None
    try:
        job = Job.from_dict(job_dict)
        w = world(setup)
        fingerprint = w.workspace.fingerprint(job.task)
        if job.data and fingerprint != job.data:
            raise DataUnavailableError(
                f"the data of task {job.task!r} differs from the driver's ({fingerprint} here, {job.data} on "
                f"{setup.driver}): every node must see the same shared data directory"
            )
        _check_code(job, w, setup)
    except KeyboardInterrupt:
        raise
    except DataUnavailableError as exc:
        return _failure("data_unavailable", f"{_where(w, setup)}: {exc}")
    except (Exception, SystemExit) as exc:  # a loader or plugin-import bug: reported, the grid goes on
        return _failure(*_classify(exc))
    return run_to_wire(job, w.ctx, w.workspace, w.split_file, where=lambda: _where(w, setup))


def run_to_wire(job: Job, ctx: Any, workspace: Any, split_file: Path | None,
                where: Any = None) -> dict[str, Any]:
    """`run_job` answered as plain data (a record, or a failure with its kind); never raises but
    KeyboardInterrupt. Shared by worker processes, Ray tasks and the sequential executor's children."""
    from crystalbench.runtime.stages import run_job

    try:
        record = run_job(job, ctx, workspace, split_file=split_file)
    except KeyboardInterrupt:
        raise
    except DataUnavailableError as exc:
        return _failure("data_unavailable", f"{where()}: {exc}" if where else str(exc))
    except (Exception, SystemExit) as exc:
        return _failure(*_classify(exc))
    return {"record": record.to_dict(), "node": node_name()}


def _classify(exc: BaseException) -> tuple[str, str, str | None]:
    """(failure kind, message, traceback) of what preparing or running a job raised."""
    from crystalbench.runtime.stages import IncompatibleError

    if isinstance(exc, IncompatibleError):
        return "incompatible", str(exc), None
    if isinstance(exc, BadInputError):
        return "bad_input", str(exc), None
    tb = traceback.format_exc(limit=20)
    if isinstance(exc, CrystalbenchError):
        return "error", f"on node {node_name()}: {exc}", tb
    first = (str(exc).strip().splitlines() or [""])[0]
    return "error", f"on node {node_name()}: {type(exc).__name__}: {first}".rstrip(": "), tb


def _check_code(job: Job, w: _World, setup: WorkerSetup) -> None:
    """A node whose plugin versions differ from the driver's would store its results under the driver's
    job identity: refused, naming both versions."""
    mine = w.reg.job_code(job.model, job.task, job.descriptors)
    theirs = job.code
    if job.task in w.workspace.extra_tasks:
        mine.pop("task", None)
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differ:
        shown = "; ".join(f"{k}: {mine.get(k) or 'none'} here, {theirs.get(k) or 'none'} on {setup.driver}"
                          for k in differ)
        raise CrystalbenchError(f"the code of this job differs from the driver's ({shown}): install the same "
                                "plugin versions on every node")


def run_remote(job_dict: dict[str, Any], setup: WorkerSetup) -> dict[str, Any]:
    """The body of a Ray task (`ray.remote(run_remote)`): `execute` in the Ray worker process."""
    _quiet_worker_logging()
    return execute(job_dict, setup)


def _quiet_worker_logging() -> None:
    """Workers print warnings and errors like the CLI does (`warning: ...`), nothing else."""
    logger = logging.getLogger("crystalbench")
    if not any(getattr(h, "_crystalbench", False) for h in logger.handlers):
        from crystalbench.contract.context import configure_logging

        configure_logging(False)
        logger.setLevel(logging.WARNING)

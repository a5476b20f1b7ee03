"""Executors: how a grid's jobs are run (`bench run --executor NAME`).

The protocol and the data that crosses process and node boundaries are in
`base.py`; `local.py` runs jobs in this process or in N worker processes;
`ray_executor.py` runs them as Ray tasks (Ray is imported only when that
executor starts). The built-in `local` and `ray` executors are registered by the
`executors` plugin (`builtin.py`, entry point ``executors``) through the
`bench_executors` hook, exactly like a third-party executor would be. That plugin
lives here, not in `crystalbench.plugins`, because it wires runtime classes: the
plugins package then imports only the public API, as a third-party one does.
"""

from crystalbench.runtime.executors.base import Executor, Failure, Outcome, RunSetup, TaskRecipe, WorkerSetup

__all__ = ["Executor", "Failure", "Outcome", "RunSetup", "TaskRecipe", "WorkerSetup"]

"""The user settings the built-in task plugins read, in one place.

Paths, jobs and caches come from the `RunContext` (flags and the harness's
documented defaults), and whether downloads are off is the harness's own rule
(`crystalbench.downloads_off`, ``CRYSTALBENCH_OFFLINE``). What remains are a few task-specific user settings; each
can be given in the context's ``options`` (key in the table below, e.g. from a
config file) and otherwise comes from its environment variable:

===========================  ==============================  ================================================
option key                   environment variable            meaning
===========================  ==============================  ================================================
``matminer_data``            ``MATMINER_DATA``               folder of matminer/Matbench dataset files
``learnability_structures``  ``CRYSTALBENCH_LEARNABILITY_    another structure collection for the desc_* tasks
                             STRUCTURES``                    (a folder of structure files or a JSON mapping)
``tasks_dirs``               ``CRYSTALBENCH_TASKS_DIR``      extra folders of TOML task files (os.pathsep-separated)
===========================  ==============================  ================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crystalbench import RunContext

__all__ = [
    "MATMINER_DATA_ENV",
    "COLLECTION_ENV",
    "TASKS_ENV",
    "matminer_data",
    "learnability_structures",
    "extra_task_dirs",
]

MATMINER_DATA_ENV = "MATMINER_DATA"
COLLECTION_ENV = "CRYSTALBENCH_LEARNABILITY_STRUCTURES"
TASKS_ENV = "CRYSTALBENCH_TASKS_DIR"



def _value(ctx: RunContext, key: str, env: str) -> str:
    """`ctx.options[key]`, else the environment variable, else "" (stripped)."""
    if key in ctx.options and ctx.options[key] is not None:
        return str(ctx.options[key]).strip()
    return os.environ.get(env, "").strip()


def _path(ctx: RunContext, key: str, env: str) -> Path | None:
    text = _value(ctx, key, env)
    return Path(text).expanduser() if text else None


def matminer_data(ctx: RunContext) -> Path | None:
    """matminer's data folder, when set."""
    return _path(ctx, "matminer_data", MATMINER_DATA_ENV)


def learnability_structures(ctx: RunContext) -> Path | None:
    """A user's structure collection for the desc_* tasks, when set."""
    return _path(ctx, "learnability_structures", COLLECTION_ENV)


def extra_task_dirs(ctx: RunContext) -> list[Path]:
    """Folders of TOML task files besides ``<data_dir>/tasks`` (the option may also be a list of folders)."""
    option = ctx.options.get("tasks_dirs")
    if isinstance(option, (list, tuple)):
        return [Path(str(d)).expanduser() for d in option if str(d).strip()]
    text = _value(ctx, "tasks_dirs", TASKS_ENV)
    return [Path(d).expanduser() for d in text.split(os.pathsep) if d.strip()]

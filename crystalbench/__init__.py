"""crystalbench: a plugin-based benchmark harness for ML on crystal structures.

What a plugin author imports::

    from crystalbench import hookimpl, ModelSpec, TaskSpec, DescriptorSpec, SuiteSpec, Dataset, RunContext
    from crystalbench import ExecutorSpec, ExecutorOption   # only for a plugin that adds a way to run jobs

The contract is `crystalbench/harness/hookspecs.py` (every hook, documented where
declared) and the types re-exported here; docs/plugins.md is the one page.
"""

from .harness.context import RunContext
from .harness.dataset import Dataset, structure_key
from .harness.errors import BadInputError, CrystalbenchError, DataUnavailableError
from .harness.hookspecs import hookimpl
from .harness.job import Job
from .harness.record import ResultRecord
from .harness.seeding import apply_threads, seed_everything
from .harness.specs import (
    NAME_PATTERN,
    DescriptorSpec,
    ExecutorOption,
    ExecutorSpec,
    Model,
    ModelContext,
    ModelSpec,
    SplitIds,
    SuiteEntry,
    SuiteSpec,
    TaskSpec,
)
from .harness.store import Store, atomic_write
from .harness.telemetry import report_epoch

__version__ = "0.2.0"

__all__ = [
    "hookimpl",
    "Dataset",
    "structure_key",
    "Model",
    "ModelContext",
    "ModelSpec",
    "TaskSpec",
    "DescriptorSpec",
    "ExecutorSpec",
    "ExecutorOption",
    "SuiteSpec",
    "SuiteEntry",
    "SplitIds",
    "report_epoch",
    "RunContext",
    "Job",
    "ResultRecord",
    "Store",
    "atomic_write",
    "seed_everything",
    "apply_threads",
    "NAME_PATTERN",
    "CrystalbenchError",
    "DataUnavailableError",
    "BadInputError",
    "__version__",
]

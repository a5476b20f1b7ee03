"""crystalbench: a plugin-based benchmark harness for ML on crystal structures.

The public API: everything a plugin author imports, and exactly what the built-in plugins and tasks
import (an import-linter contract checks that they reach nothing else but `crystalbench.gnn`)::

    from crystalbench import hookimpl, ModelSpec, TaskSpec, DescriptorSpec, SuiteSpec, Dataset, RunContext
    from crystalbench import ExecutorSpec, ExecutorOption   # only for a plugin that adds a way to run jobs

Every name is defined in the contract layer, `crystalbench/contract/` (hooks in `contract/hookspecs.py`,
documented where declared); this module only re-exports them. The runtime (`crystalbench.runtime`: registry,
runner, stages, executors, results store) is not part of it. docs/plugins.md is the one page for authors;
docs/architecture.md shows the layers.
"""

from crystalbench.contract.context import Progress, Reporter, RunContext
from crystalbench.contract.dataset import Dataset, structure_key
from crystalbench.contract.download import OFFLINE_ENV, RemoteFile, downloads_off, fetch_file
from crystalbench.contract.enums import PluginKind, Protocol, RecordStatus, TaskType
from crystalbench.contract.errors import BadInputError, CrystalbenchError, DataUnavailableError
from crystalbench.contract.features import FeatureScaler
from crystalbench.contract.featurize import compute_descriptors
from crystalbench.contract.hookspecs import hookimpl
from crystalbench.contract.job import Job
from crystalbench.contract.params import POOLING_CHOICES, Pooling, field_choices, pooling_choices, resolve_params
from crystalbench.contract.paths import cache_dir
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.seeding import apply_threads, seed_everything, torch_rng
from crystalbench.contract.specs import (
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
    valid_name,
)
from crystalbench.contract.store import Memo, Store, atomic_write, digest, file_sha256
from crystalbench.contract.telemetry import observing_epochs, report_epoch
from crystalbench.contract.version import __version__

__all__ = [
    # hooks and what they return
    "hookimpl",
    "ModelSpec",
    "TaskSpec",
    "DescriptorSpec",
    "ExecutorSpec",
    "ExecutorOption",
    "SuiteSpec",
    "SuiteEntry",
    "SplitIds",
    "NAME_PATTERN",
    "valid_name",
    # the names the contract declares once
    "Protocol",
    "TaskType",
    "PluginKind",
    "RecordStatus",
    "Pooling",
    "POOLING_CHOICES",
    "pooling_choices",
    "field_choices",
    # data, models and their hyperparameters
    "Dataset",
    "structure_key",
    "Model",
    "ModelContext",
    "resolve_params",
    "FeatureScaler",
    "compute_descriptors",
    # the run a plugin is called in
    "RunContext",
    "Progress",
    "Reporter",
    "report_epoch",
    "observing_epochs",
    "seed_everything",
    "apply_threads",
    "torch_rng",
    # results
    "Job",
    "ResultRecord",
    # files and caches
    "Store",
    "Memo",
    "atomic_write",
    "digest",
    "file_sha256",
    "cache_dir",
    # a task's downloads (`TaskSpec.fetch`)
    "RemoteFile",
    "fetch_file",
    "downloads_off",
    "OFFLINE_ENV",
    # errors
    "CrystalbenchError",
    "DataUnavailableError",
    "BadInputError",
    "__version__",
]

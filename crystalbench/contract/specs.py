"""What plugins return from their hooks: model, task and descriptor specs.

These are plain frozen dataclasses so that a plugin author can read the whole
contract on one page. The `Model` protocol is duck-typed: any object with
`fit` and `predict` works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from crystalbench.contract.dataset import Dataset
from crystalbench.contract.enums import TaskType

if TYPE_CHECKING:  # only for annotations: specs must not import the runtime modules
    from crystalbench.contract.context import RunContext
    from crystalbench.contract.download import RemoteFile

__all__ = [
    "Model",
    "ModelContext",
    "ModelSpec",
    "TaskSpec",
    "DescriptorSpec",
    "SplitIds",
    "ExecutorSpec",
    "ExecutorOption",
    "SuiteEntry",
    "SuiteSpec",
    "NAME_PATTERN",
    "valid_name",
]

# The documented character set of model, task and descriptor-set names: they become
# folder names under --results-dir, so no separators, no leading dot, no spaces.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}"


def valid_name(name: object) -> bool:
    """True when `name` matches `NAME_PATTERN` (and so is safe as a file-system path part)."""
    import re

    return isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None

Needs = Literal["structure", "composition", "features"]
# how a task's data relates to the paper's (`TaskSpec.data_relation`)
DataRelation = Literal["paper", "subset", "substitute", "generated", ""]
DATA_RELATIONS: tuple[str, ...] = ("paper", "subset", "substitute", "generated", "")


@runtime_checkable
class Model(Protocol):
    """A trainable model. Created fresh for every (task, fold, seed) job.

    `fit` receives the training set and, for models that declared
    `needs_validation=True`, a validation set (early stopping, checkpoint
    selection); `val` is None otherwise. `predict` returns a 1-D array: values
    in the task's units for regression, class indices for classification.
    `progress` asks the model to show a progress bar for long work.
    Optionally, after `fit`, a JSON-ready dict attribute `fit_info` (epochs
    run, best epoch, cache hits...) is stored in the result record.
    """

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None: ...

    def predict(self, data: Dataset) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelContext:
    """Everything a model factory may need besides the data itself.

    params: the model's typed hyperparameters (an instance of `ModelSpec.params`):
        defaults overridden by `--config` and CLI flags, validated once.
    hparams: the same values as a plain dict (recorded verbatim in results).
    task_type / n_classes / extensive: from the task being run.
    device / threads: where to train; the harness has already applied `threads`
        to torch before the factory is called.
    seed: the job's seed, for a factory that needs it before `fit`; `fit` receives the same
        value, and the harness has seeded the process's RNGs with it once, before the factory
        (`crystalbench.contract.seeding`).
    cache_dir: the cache root; use `run.cache(namespace, version)` for a `Store`.
    run: the invocation's `RunContext` (None only when a model is built by hand).
    """

    hparams: Mapping[str, Any]
    task_type: str = TaskType.REGRESSION
    n_classes: int | None = None
    extensive: bool = False
    device: str = "cpu"
    seed: int = 0
    cache_dir: Path | None = None
    params: Any = None
    threads: int = 1
    progress: bool = False
    run: RunContext | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers.

    name: what users type after `-m` (lower case, e.g. "cgcnn", "de-cgcnn"),
        matching `NAME_PATTERN`.
    factory: `factory(ctx: ModelContext) -> Model`.
    params: a frozen dataclass of typed hyperparameters (`crystalbench.contract.params`):
        unknown keys in `--config` are rejected, values type-checked, `Literal`
        choices enforced (e.g. `pooling: Literal["mean", "sum"]`).
    defaults: for simple plugins, a dict of default hyperparameters instead of
        `params` (a dataclass is made from it, typed by the values).
    inputs: what the model reads besides its `needs`, as documented tags
        (e.g. "lattice" for raw cell parameters, "volume", "natoms", "density"):
        when a task's `leaks` names one of them, the result is flagged as leaking.
    needs: "structure" (GNNs), "composition" (ROOST) or "features" (only the
        descriptor columns, e.g. a random forest).
    accepts_features: the model consumes `Dataset.features` next to its own
        input, so `--descriptors NAME` can hybridize it.
    descriptors: descriptor set attached by default (e.g. "gong29" for
        de-cgcnn and rf); `--descriptors` overrides it.
    poolings: pooling choices offered via `--pooling` (empty: not applicable).
        When the user does not choose, the harness passes "sum" for extensive
        tasks and "mean" otherwise, as `hparams["pooling"]`, unless the spec
        fixes `default_pooling` (de-* hybrids: the paper's eq. 14 concatenates
        descriptors with the *mean*-pooled embedding, and `natoms` among the
        descriptors already carries the size dependence; mean beat sum for
        de-cgcnn on phonon_cv in our measurements).
    classification: can handle classification tasks.
    needs_validation: receives a validation split; otherwise trains on the
        whole training fold.
    reference: the paper or software the model reproduces, as a citation a
        reader can look up (e.g. "Xie & Grossman, PRL 120, 145301 (2018)"). It
        is what the leaderboard site's model page prints after "Reference:"
        (escaped text, not a link) and `bench list models --json` lists; left
        empty, the page says "not given by the plugin".
    """

    name: str
    factory: Callable[[ModelContext], Model]
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    params: type | None = None
    inputs: tuple[str, ...] = ()
    needs: Needs = "structure"
    accepts_features: bool = False
    descriptors: str | None = None
    poolings: tuple[str, ...] = ()
    default_pooling: str | None = None
    classification: bool = False
    needs_validation: bool = True
    reference: str = ""

    @property
    def params_class(self) -> type:
        """`params`, or a dataclass built from `defaults` (cached per spec)."""
        if self.params is not None:
            return self.params
        cached = self.__dict__.get("_params_class")
        if cached is None:
            from crystalbench.contract.params import params_from_defaults

            cached = params_from_defaults(self.name, self.defaults)
            object.__setattr__(self, "_params_class", cached)
        return cached

    def default_params(self) -> dict[str, Any]:
        """Defaults of every hyperparameter, as a plain dict (listings, docs)."""
        import dataclasses

        from crystalbench.contract.params import params_to_dict

        return params_to_dict(self.params_class()) if dataclasses.fields(self.params_class) else {}


@dataclass(frozen=True)
class SplitIds:
    """An explicit split given as id lists (e.g. the paper authors' own split).

    `val` may be empty: the harness then carves a validation set from `train`
    for models that need one.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    val: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    """A benchmark task a plugin offers.

    name: what users type after `-t` (e.g. "phonon_cv", "desc_a", "chain1d_short"),
        matching `NAME_PATTERN`.
    load: `load(ctx: RunContext) -> Dataset`. Read raw files under `ctx.data_dir`,
        cache under `ctx.cache(...)`, use `ctx.jobs` processes. Raise
        `DataUnavailableError` with a message saying what is missing and how to
        obtain it when the data is not on this machine; never return an empty
        dataset. The harness caches the loaded dataset keyed by `files`, the
        task's `version` and its plugin's version, so a loader runs once.
    target / unit: the predicted quantity and its unit (for tables and plots).
    task_type: "regression" or "classification".
    extensive: the target scales with cell size (sets default sum pooling).
    protocol: default split protocol ("paper", "matbench" or "file").
    fractions: train/val/test fractions of the `paper` protocol.
    split_ids: `split_ids(ctx) -> SplitIds` for the `file` protocol.
    exclude_features: descriptor columns models must not see (the target's
        own descriptor in learnability tasks, and anything that leaks it).
    leaks: input tags (see `ModelSpec.inputs`) that reveal the target, e.g.
        ("lattice", "volume", "density") for chain tasks whose target is the
        cell length: a model declaring one of them is flagged in its record and
        on the leaderboard.
    provides: "structure" or "composition": what the task's samples carry.
    version: bump when the loader returns different data for the same files.
    size: number of samples when known without loading (for `bench list`).
    available: `available(ctx) -> bool`, cheap check for `bench list`.
    files: `files(ctx) -> list[Path]` of raw files: checksummed into the job
        identity (a changed file is a new job) and provenance. A task without
        `files` is loaded to compute its content hash before resuming.
    fetch: `fetch(ctx) -> list[RemoteFile | str]`, how the missing data is obtained:
        a `RemoteFile` (destination, https URL, sha256) for each file `bench data
        fetch` can download, checksum-verified, and one line of text for each step
        a person has to do. Called only when the data is not available. None: `bench
        data` points to the task's description.
    source / license / description: shown by `bench list tasks`.
    group: family name used by suites and listings ("chains", "descriptors", ...).
    source_short: a few words naming where the data comes from (the `source`
        column of `bench list tasks`; `source` is the full citation).
    data_relation: how the data relates to what the paper (Gong et al. 2023) used,
        so that `bench report paper` compares only like with like: "paper" (the
        paper's own data), "subset" (part of the same database), "substitute"
        (another source or selection standing in for it), "generated" (made by
        code following the paper's recipe), "" (no counterpart in the paper).
    paper_count: how many samples the paper used (None: not stated or no
        counterpart); shown beside `size`.
    paper_data: one line on the difference (what the paper used, what ours is).
    """

    name: str
    load: Callable[[RunContext], Dataset]
    target: str
    unit: str = ""
    task_type: str = TaskType.REGRESSION
    extensive: bool = False
    protocol: str = "paper"
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_ids: Callable[[RunContext], SplitIds] | None = None
    exclude_features: tuple[str, ...] = ()
    leaks: tuple[str, ...] = ()
    provides: Literal["structure", "composition"] = "structure"
    version: str = "1"
    size: int | None = None
    available: Callable[[RunContext], bool] | None = None
    files: Callable[[RunContext], Sequence[Path]] | None = None
    fetch: Callable[[RunContext], Sequence[RemoteFile | str]] | None = None
    source: str = ""
    license: str = ""
    description: str = ""
    group: str = ""
    source_short: str = ""
    data_relation: DataRelation = ""
    paper_count: int | None = None
    paper_data: str = ""


@dataclass(frozen=True)
class DescriptorSpec:
    """A descriptor set a plugin offers.

    featurize: `featurize(structures) -> ndarray (n, len(feature_names))`, NaN
        where a value cannot be computed. Must be a pure function of each
        structure: the harness caches rows on disk keyed by structure hash,
        set name and `version`, and may call it on any subset, in any order,
        in worker processes (so it must be a picklable module-level function).
    version: bump whenever values change, to invalidate caches.
    needs: "structure" or "composition" (featurize then receives compositions).
    categorical: feature names holding class labels encoded as numbers.
    """

    name: str
    feature_names: tuple[str, ...]
    featurize: Callable[[Sequence[Any]], np.ndarray]
    version: str = "1"
    description: str = ""
    needs: Literal["structure", "composition"] = "structure"
    categorical: tuple[str, ...] = ()


OptionType = Literal["str", "int", "float", "flag"]


@dataclass(frozen=True)
class ExecutorOption:
    """A command-line option an executor declares: `bench run` and `bench tune` show and parse it.

    name: the key of the factory's `options` mapping (a Python identifier, e.g. "cpus_per_job").
    help: what it does, shown by `--help`; say which executor it applies to and its default.
    type: "str", "int", "float" or "flag" (a switch: True when given).
    flag: the command-line spelling; default "--" + name with "_" as "-" (e.g. "--cpus-per-job").
    metavar: the value's placeholder in `--help` (e.g. "N", "ADDRESS").

    Not given, an option is None (a flag: False) in `options`, so the factory applies
    its own default. Executors may declare the same option (`workers`: local and ray):
    it is one flag, with both helps. An option given to an executor that does not
    declare it is one error line ("--gpus-per-job applies to --executor ray, not local").
    """

    name: str
    help: str = ""
    type: OptionType = "str"
    flag: str = ""
    metavar: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ExecutorSpec:
    """A way to run jobs a plugin offers (`bench run --executor NAME`).

    name: what users type after `--executor` ("local", "ray"...), matching `NAME_PATTERN`.
    factory: `factory(ctx: RunContext, options: Mapping[str, Any]) -> Executor`; `options`
        maps the name of every option the executor declares to its value (workers,
        address, cpus/gpus per job...). Import heavy dependencies (ray...) inside the factory.
    description: shown by `bench list executors` and `bench plugins`.
    options: the command-line options the executor takes (`ExecutorOption`); `bench run`
        and `bench tune` add them to their own flags, so a plugin's executor needs no CLI change.
    """

    name: str
    factory: Callable[..., Any]
    description: str = ""
    options: tuple[ExecutorOption, ...] = ()


@dataclass(frozen=True)
class SuiteEntry:
    """One block of a suite: a grid, exactly what `bench run` flags would ask for.

    models / tasks: model names and task names or globs (`'desc_*'`), as after `-m` / `-t`.
    protocol: split protocol (None: each task's own), as `--protocol`.
    seeds / folds: as `--seed` (repeatable) and `--folds` (None: every fold of the protocol).
    pooling / descriptors: as `--pooling` and `--descriptors`.
    config: hyperparameters, in the shape of a `--config` TOML (top-level keys for every
        model that has them, `{model: {...}}` tables for one), e.g. `{"cgcnn": {"n_conv": 8}}`.
    label: what this block varies (shown by `bench list suites --json`), e.g. "per-cell sum".
    """

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    protocol: str | None = None
    seeds: tuple[int, ...] = (0,)
    folds: tuple[int, ...] | None = None
    pooling: str | None = None
    descriptors: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    """A named, documented set of grids a plugin offers (`bench run --suite NAME`).

    Suites are data: a list of `SuiteEntry` blocks, each expanded by the same
    planner as `bench run -m ... -t ...`, so a suite and the equivalent flags give
    the same jobs (and the same job ids, so results are shared and resumed).
    name: what users type after `--suite`, matching `NAME_PATTERN`.
    description / reference: shown by `bench list suites` (e.g. the paper table it reproduces).
    """

    name: str
    entries: tuple[SuiteEntry, ...]
    description: str = ""
    reference: str = ""

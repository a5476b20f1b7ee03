"""One-line contract checks for plugin authors: `check_model`, `check_task`, `check_descriptors`, `check_registered`.

Each runs the plugin through the same harness code `bench run` uses (the job
stages, the descriptor cache, the split protocols, the dataset cache) on the
kit's tiny datasets and raises `AssertionError` with a message saying what to
fix; on success it returns what it measured, for further asserts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import pickle
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import Dataset, structure_key
from crystalbench.contract.enums import Protocol, TaskType
from crystalbench.contract.errors import BadInputError, CrystalbenchError, DataUnavailableError
from crystalbench.contract.job import Job
from crystalbench.contract.params import POOLING_CHOICES, params_to_dict, resolve_params
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.specs import (
    NAME_PATTERN,
    DescriptorSpec,
    Model,
    ModelContext,
    ModelSpec,
    TaskSpec,
    valid_name,
)
from crystalbench.runtime.registry import PluginInfo, Registry, load_registry

from .data import KIT_DESCRIPTORS, TOY_SIZE, chain_sample, toy_classification_task, toy_dataset, toy_task

__all__ = [
    "check_model",
    "check_task",
    "check_descriptors",
    "check_registered",
    "kit_context",
    "ModelReport",
]

MAX_MAE_OVER_MAD = 0.9  # the mean predictor scores ~1.0


class _Failed(AssertionError):
    pass


def _fail(what: str, problems: Sequence[str]) -> None:
    if problems:
        raise _Failed(f"{what}:\n" + "\n".join(f"  - {p}" for p in problems))


@contextlib.contextmanager
def kit_context(ctx: RunContext | None = None) -> Iterator[RunContext]:
    """`ctx`, or a throw-away RunContext (empty data dir, own cache and results dirs, 1 job, CPU) removed after."""
    if ctx is not None:
        yield ctx
        return
    with tempfile.TemporaryDirectory(prefix="crystalbench-kit-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        yield RunContext(data_dir=root / "data", cache_dir=root / "cache", results_dir=root / "results", jobs=1,
                         threads=1, device="cpu", progress=False)


# ----------------------------------------------------------------------------- models
@dataclasses.dataclass
class ModelReport:
    """What `check_model` measured: the records of its runs (regression, and classification when offered).

    regression: the run on the model's main input kind (composition-only data for a
        composition model). by_input: the regression run on each input kind the model
        declares, keyed "structure" (structures, compositions derived) and "composition"
        (compositions only).
    """

    regression: ResultRecord
    classification: ResultRecord | None = None
    descriptors: str | None = None
    by_input: dict[str, ResultRecord] = dataclasses.field(default_factory=dict)

    @property
    def mae_over_mad(self) -> float:
        value = self.regression.metrics.get("mae_over_mad")
        return math.nan if value is None else float(value)


class _Recorder:
    """Wraps a plugin's model to see its raw predictions (the harness reshapes and casts them)."""

    def __init__(self, model: Any, seen: list[np.ndarray]) -> None:
        self._model, self._seen = model, seen

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        self._model.fit(train, val, seed=seed, progress=progress)
        info = getattr(self._model, "fit_info", None)
        if info is not None:
            self.fit_info = info

    def predict(self, data: Dataset) -> Any:
        raw = self._model.predict(data)
        self._seen.append(raw)
        return raw


def _model_spec_problems(spec: ModelSpec, params: Mapping[str, Any]) -> list[str]:
    problems = []
    if not valid_name(spec.name):
        problems.append(f"name {spec.name!r} is not allowed: names match {NAME_PATTERN} (they become folder names)")
    if not callable(spec.factory):
        problems.append("factory must be a callable taking a ModelContext and returning the model")
    if spec.needs not in ("structure", "composition", "features"):
        problems.append(f"needs={spec.needs!r}: use 'structure', 'composition' or 'features'")
    if spec.params is not None and not (isinstance(spec.params, type) and dataclasses.is_dataclass(spec.params)):
        problems.append("params must be a dataclass class (e.g. @dataclass(frozen=True) class MyParams: ...)")
    elif not problems:
        try:
            spec.params_class()
        except TypeError as exc:
            problems.append(f"every hyperparameter needs a default value ({exc})")
        except ValueError as exc:
            problems.append(f"the default hyperparameters are rejected by their own validation: {exc}")
        try:
            resolve_params(spec.name, spec.params_class, params, strict_layers=(0,))
        except BadInputError as exc:
            problems.append(f"params given to check_model: {exc}")
    if not isinstance(spec.inputs, tuple) or not all(isinstance(t, str) and t for t in spec.inputs):
        problems.append(f"inputs must be a tuple of tags such as ('lattice', 'volume'), got {spec.inputs!r}")
    bad_pool = [p for p in spec.poolings if p not in POOLING_CHOICES]
    if bad_pool:
        problems.append(f"poolings {bad_pool} are not offered by --pooling ({', '.join(POOLING_CHOICES)})")
    if spec.default_pooling is not None and spec.default_pooling not in spec.poolings:
        problems.append(f"default_pooling {spec.default_pooling!r} is not one of poolings {spec.poolings}")
    if spec.descriptors is not None and not valid_name(spec.descriptors):
        problems.append(f"descriptors={spec.descriptors!r} is not a descriptor set name")
    return problems


def _job_params(spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params a `bench run` job would carry (defaults < `params`; pooling chosen as the runner does)."""
    resolved = params_to_dict(resolve_params(spec.name, spec.params_class, params, strict_layers=(0,)))
    if spec.poolings and "pooling" not in resolved:
        resolved["pooling"] = params.get("pooling") or spec.default_pooling or "mean"
    return resolved


def _run(spec: ModelSpec, task: TaskSpec, dspec: DescriptorSpec | None, params: dict[str, Any], seed: int,
         ctx: RunContext, raw: list[np.ndarray]) -> tuple[ResultRecord, Dataset]:
    from crystalbench.runtime.stages import IncompatibleError, Workspace, run_job

    recording = dataclasses.replace(spec, factory=lambda mctx: _Recorder(spec.factory(mctx), raw))
    reg = Registry(models={spec.name: recording}, tasks={task.name: task},
                   descriptors={dspec.name: dspec} if dspec else {})
    workspace = Workspace(reg, ctx)
    job = Job(model=spec.name, task=task.name, protocol=task.protocol, fold=0, seed=seed, params=params,
              device=ctx.device, descriptors=dspec.name if dspec else None,
              descriptor_version=str(dspec.version) if dspec else None, target=task.target)
    try:
        record = run_job(job, ctx.with_(debug=False), workspace)
    except IncompatibleError as exc:
        raise _Failed(f"model {spec.name!r} cannot run on the kit's {task.name} task: {exc}") from None
    return record, workspace.load(task.name).data


def _raise_failed(spec: ModelSpec, task: TaskSpec, record: ResultRecord) -> None:
    if record.ok:
        return
    if task.provides == "composition":
        kind = f"{TOY_SIZE} compositions, no structures"
    else:
        kind = f"{TOY_SIZE} crystal structures; data.compositions holds their compositions"
    raise _Failed(
        f"model {spec.name!r} failed on the kit's {task.name} task ({kind}): {record.error}\n"
        f"Fix the model so that fit(train, val, seed=..., progress=...) and predict(data) run on every input "
        f"kind it accepts; its traceback:\n{record.traceback or '(none)'}"
    )


def _input_kinds(spec: ModelSpec, dspec: DescriptorSpec | None) -> tuple[bool, ...]:
    """The toy tasks a model must run on, as `compositions_only` flags, its main kind first.

    `bench run` gives a model every task whose data it can use: a composition model
    (or a features model whose descriptor set needs only compositions) meets structure
    tasks as well as composition-only ones, so the kit runs it on both; testing one
    kind only let models pass the kit and then fail on every task of the other.
    """
    if spec.needs == "composition":
        return (True, False)
    if spec.needs == "features" and dspec is not None and dspec.needs == "composition":
        return (False, True)
    return (False,)


def _check_structures_unchanged(spec: ModelSpec, used: Dataset, comp_only: bool) -> None:
    """Structures are shared by every job of a process: a model must never edit them."""
    if used.structures is None:
        return
    pristine = toy_dataset(compositions_only=comp_only).structure_keys
    if tuple(structure_key(s) for s in used.structures) != pristine:
        raise _Failed(f"model {spec.name!r} changed the structures it was given (in place); the harness "
                      "shares them between jobs: edit a copy (s = s.copy()) instead")


def _check_learns(spec: ModelSpec, task: TaskSpec, record: ResultRecord, max_mae_over_mad: float) -> None:
    ratio = record.metrics.get("mae_over_mad")
    if ratio is not None and ratio < max_mae_over_mad:
        return
    shown = "undefined" if ratio is None else f"{ratio:.3f}"
    raise _Failed(
        f"model {spec.name!r} does not beat the mean predictor on the kit's {task.name} task: MAE/MAD = {shown} "
        f"(the mean predictor scores ~1.0; required < {max_mae_over_mad}). The target, a bond length, "
        "follows from the element pair and the interatomic distances: check that fit uses train.targets "
        "and that predict uses its input (more epochs via params={'epochs': ...} for a neural network)"
    )


def _check_raw(spec: ModelSpec, raw: list[np.ndarray], n: int, classification: bool) -> None:
    if not raw:
        raise _Failed(f"model {spec.name!r}: predict was never called")
    pred = raw[-1]
    if not isinstance(pred, np.ndarray):
        raise _Failed(f"model {spec.name!r}: predict must return a numpy array, got {type(pred).__name__}")
    if pred.ndim != 1 or len(pred) != n:
        raise _Failed(f"model {spec.name!r}: predict must return a 1-D array of length len(data) = {n}, "
                      f"got shape {pred.shape} (use .ravel())")
    if pred.dtype.kind not in "biuf":
        raise _Failed(f"model {spec.name!r}: predictions must be numbers, got dtype {pred.dtype}")
    if classification and not np.all(np.asarray(pred, dtype=float) == np.round(np.asarray(pred, dtype=float))):
        raise _Failed(f"model {spec.name!r}: classification predictions must be class indices (integers "
                      f"0..n_classes-1, e.g. argmax of the scores), got {pred[:5]}")


_KIND = {False: "structure", True: "composition"}


def _check_factory(spec: ModelSpec, job_params: dict[str, Any], seed: int, run: RunContext) -> None:
    """The factory's product must look like a model before anything trains."""
    resolved = resolve_params(spec.name, spec.params_class, job_params, strict_layers=(0,))
    mctx = ModelContext(hparams=params_to_dict(resolved), params=resolved, seed=seed, cache_dir=run.cache_dir,
                        device=run.device, threads=run.threads, run=run)
    try:
        probe = spec.factory(mctx)
    except Exception as exc:
        raise _Failed(f"model {spec.name!r}: factory(ModelContext) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(probe, Model):
        raise _Failed(f"model {spec.name!r}: the factory returned a {type(probe).__name__} without fit/predict "
                      "methods; return an object with fit(train, val, *, seed, progress) and predict(data)")
    try:
        inspect.signature(probe.fit).bind(None, None, seed=0, progress=False)
    except TypeError:
        raise _Failed(f"model {spec.name!r}: fit must accept (train, val, *, seed: int, progress: bool); "
                      f"it is fit{inspect.signature(probe.fit)}") from None


def _run_other_kind(spec: ModelSpec, dspec: DescriptorSpec | None, job_params: dict[str, Any], seed: int,
                    run: RunContext, comp_only: bool, learns: bool, max_mae_over_mad: float) -> ResultRecord:
    """One regression run on a further input kind: it runs, predicts sanely, learns, leaves structures alone."""
    task = toy_task(compositions_only=comp_only)
    raw: list[np.ndarray] = []
    record, used = _run(spec, task, dspec, job_params, seed, run, raw)
    _raise_failed(spec, task, record)
    _check_raw(spec, raw, record.provenance["split"]["n_test"], classification=False)
    _check_structures_unchanged(spec, used, comp_only)
    if learns:
        _check_learns(spec, task, record, max_mae_over_mad)
    return record


def check_model(
    spec: ModelSpec,
    *,
    params: Mapping[str, Any] | None = None,
    descriptors: DescriptorSpec | None = None,
    learns: bool = True,
    max_mae_over_mad: float = MAX_MAE_OVER_MAD,
    seed: int = 0,
    ctx: RunContext | None = None,
) -> ModelReport:
    """Check a model plugin in one line: ``check_model(spec)``.

    Runs the model through the harness job stages (`bench run`'s own code) on the
    kit's toy task (`crystalbench.testing.toy_dataset`) in every input kind the model
    can be given: structures for every model, and also composition-only data for
    ``needs="composition"`` models (and features models whose descriptor set needs
    only compositions). It asserts that on each kind it

    - implements the contract: a valid `ModelSpec`, a factory returning an object
      with ``fit(train, val, *, seed, progress)`` and ``predict(data)``, defaults for
      every hyperparameter;
    - returns finite predictions: a 1-D numeric array, one per test sample;
    - beats the mean predictor (``learns=True``): MAE/MAD below `max_mae_over_mad`
      on held-out samples, where the mean predictor scores about 1.0;
    - leaves the structures it is given unchanged (they are shared between jobs);

    and, on its main kind (composition-only data for a composition model), that it

    - is reproducible under a seed: two runs with the same seed predict the same;
    - handles classification if it says so (``classification=True``): integer class
      indices, and (``learns``) an accuracy above the majority class.

    params: hyperparameters overriding the defaults (e.g. ``{"epochs": 2}`` to keep a
        GNN check fast), checked like `--config` values.
    descriptors: the descriptor set attached to a model that uses features
        (``needs="features"`` or a default `descriptors`); the kit's small geometric
        set `KIT_DESCRIPTORS` when not given.
    ctx: the RunContext to run in (default: a throw-away one, CPU, one process).
    Raises AssertionError saying what to fix; returns a `ModelReport`.
    """
    if not isinstance(spec, ModelSpec):
        raise _Failed(f"check_model takes a crystalbench.ModelSpec (what bench_models returns), got {type(spec).__name__}")
    params = dict(params or {})
    _fail(f"ModelSpec {spec.name!r} breaks the contract", _model_spec_problems(spec, params))
    job_params = _job_params(spec, params)
    dspec = None
    if spec.needs == "features" or spec.descriptors is not None:
        dspec = descriptors or KIT_DESCRIPTORS
    elif descriptors is not None:
        if not spec.accepts_features:
            raise _Failed(f"model {spec.name!r} does not accept descriptor features (accepts_features=False)")
        dspec = descriptors
    comp_only, *other_kinds = _input_kinds(spec, dspec)
    task = toy_task(compositions_only=comp_only)

    with kit_context(ctx) as run:
        _check_factory(spec, job_params, seed, run)
        raw: list[np.ndarray] = []
        first, used = _run(spec, task, dspec, job_params, seed, run, raw)
        _raise_failed(spec, task, first)
        _check_raw(spec, raw, first.provenance["split"]["n_test"], classification=False)
        _check_structures_unchanged(spec, used, comp_only)

        second, _ = _run(spec, task, dspec, job_params, seed, run, [])
        _raise_failed(spec, task, second)
        a = np.asarray((first.predictions or {})["y_pred"], dtype=float)
        b = np.asarray((second.predictions or {})["y_pred"], dtype=float)
        if not np.array_equal(a, b):
            raise _Failed(
                f"model {spec.name!r} is not reproducible: two runs with seed {seed} predicted differently "
                f"(max difference {np.max(np.abs(a - b)):.3g}). Seed every random generator you use from the "
                "`seed` argument of fit (np.random.default_rng(seed), torch.manual_seed(seed), "
                "random_state=seed) and avoid nondeterministic parallel reductions"
            )
        if learns:
            _check_learns(spec, task, first, max_mae_over_mad)
        report = ModelReport(regression=first, descriptors=dspec.name if dspec else None,
                             by_input={_KIND[comp_only]: first})
        for other_only in other_kinds:
            report.by_input[_KIND[other_only]] = _run_other_kind(spec, dspec, job_params, seed, run, other_only,
                                                                 learns, max_mae_over_mad)

        if spec.classification:
            ctask = toy_classification_task(compositions_only=comp_only)
            raw_c: list[np.ndarray] = []
            rec, _ = _run(spec, ctask, dspec, job_params, seed, run, raw_c)
            _raise_failed(spec, ctask, rec)
            _check_raw(spec, raw_c, rec.provenance["split"]["n_test"], classification=True)
            y_true = np.asarray((rec.predictions or {})["y_true"], dtype=int)
            majority = float(np.max(np.bincount(y_true)) / len(y_true))
            acc = float(rec.metrics.get("accuracy") or 0.0)
            if learns and not acc > majority:
                raise _Failed(
                    f"model {spec.name!r} declares classification=True but its accuracy on the kit's toy "
                    f"classification task ({acc:.2f}) does not beat predicting the majority class ({majority:.2f}); "
                    "classification targets are class indices into Dataset.classes (ModelContext.n_classes of them)"
                )
            report.classification = rec
    return report


# ----------------------------------------------------------------------------- tasks
def _task_spec_problems(spec: TaskSpec) -> list[str]:
    problems = []
    if not valid_name(spec.name):
        problems.append(f"name {spec.name!r} is not allowed: names match {NAME_PATTERN} (they become folder names)")
    if not callable(spec.load):
        problems.append("load must be a callable load(ctx: RunContext) -> Dataset")
    if not spec.target:
        problems.append("target must name the predicted quantity (shown in tables)")
    if not TaskType.has(spec.task_type):
        problems.append(f"task_type={spec.task_type!r}: use 'regression' or 'classification'")
    if not Protocol.has(spec.protocol):
        problems.append(f"protocol={spec.protocol!r}: use one of {', '.join(Protocol)}")
    if spec.protocol == "file" and spec.split_ids is None:
        problems.append("protocol='file' needs split_ids(ctx) -> SplitIds")
    if spec.provides not in ("structure", "composition"):
        problems.append(f"provides={spec.provides!r}: use 'structure' or 'composition'")
    try:
        fr = [float(x) for x in spec.fractions]
        if len(fr) != 3 or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0 or fr[2] <= 0 or fr[1] < 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"fractions={spec.fractions!r}: (train, val, test) fractions summing to 1, train and test > 0")
    for field in ("leaks", "exclude_features"):
        value = getattr(spec, field)
        if not isinstance(value, tuple) or not all(isinstance(t, str) and t for t in value):
            problems.append(f"{field} must be a tuple of strings, got {value!r}")
    if not isinstance(spec.version, str):
        problems.append(f"version must be a string such as '1', got {spec.version!r}")
    if spec.files is not None and not callable(spec.files):
        problems.append("files must be a callable files(ctx) -> list[Path] (or None)")
    return problems


def _listed(spec: TaskSpec, ctx: RunContext) -> list[Path]:
    if spec.files is None:
        return []
    try:
        return [Path(p) for p in spec.files(ctx)]
    except Exception as exc:
        raise _Failed(f"task {spec.name!r}: files(ctx) raised {type(exc).__name__}: {exc}") from exc


def check_task(spec: TaskSpec, ctx: RunContext | None = None) -> Dataset:
    """Check a task plugin in one line: ``check_task(spec, ctx)``; returns the loaded Dataset.

    ctx: a RunContext whose `data_dir` holds the task's data (e.g. a small sample
    shipped with the plugin's tests); default: a throw-away context with an empty
    data dir, which suits only generated tasks. Asserts that

    - the spec is valid: name, task type, protocol (with `split_ids` for "file"),
      fractions, provides, tags;
    - with `ctx.data_dir` pointing at an empty folder, `load` raises
      `DataUnavailableError` (whose message says how to get the data) and
      `available` says False, unless the task needs nothing from the data dir;
    - `load(ctx)` returns a valid, non-empty `Dataset` matching the spec (structures
      when it provides them, finite regression targets that vary, class indices
      into `Dataset.classes`, `size` when declared), the same data twice;
    - the declared `files` exist, and the harness's dataset cache restores the
      dataset exactly (the task then loads once);
    - the task's protocol splits it into non-empty train and test folds.
    """
    if not isinstance(spec, TaskSpec):
        raise _Failed(f"check_task takes a crystalbench.TaskSpec (what bench_tasks returns), got {type(spec).__name__}")
    _fail(f"TaskSpec {spec.name!r} breaks the contract", _task_spec_problems(spec))
    with kit_context(ctx) as run, tempfile.TemporaryDirectory(prefix="crystalbench-kit-empty-") as tmp:
        empty = run.with_(data_dir=Path(tmp) / "data", cache_dir=Path(tmp) / "cache")
        empty.data_dir.mkdir()
        _check_missing_data(spec, empty)
        try:
            data = spec.load(run)
        except DataUnavailableError as exc:
            raise _Failed(
                f"task {spec.name!r}: load raised DataUnavailableError with ctx.data_dir={run.data_dir}: {exc}\n"
                "Pass check_task a ctx whose data_dir holds the task's data, e.g. "
                "bench_context.with_(data_dir=Path(__file__).parent / 'data')"
            ) from None
        except Exception as exc:
            raise _Failed(f"task {spec.name!r}: load(ctx) raised {type(exc).__name__}: {exc}") from exc
        _fail(f"task {spec.name!r}: the loaded dataset does not match its spec", _dataset_problems(spec, data))
        again = spec.load(run)
        if not isinstance(again, Dataset) or again.content_hash != data.content_hash:
            raise _Failed(f"task {spec.name!r}: two loads returned different data; load must be deterministic "
                          "(seed any sampling, sort file listings) since results are keyed by the data")
        problems = [f"files(ctx) lists {p}, which does not exist" for p in _listed(spec, run) if not p.exists()]
        if spec.available is not None and not spec.available(run):
            problems.append("available(ctx) returns False although load(ctx) succeeded")
        _fail(f"task {spec.name!r}", problems)
        if spec.files is not None:
            from crystalbench.runtime.dataset_cache import round_trip

            try:
                restored = round_trip(data)
            except Exception as exc:
                raise _Failed(f"task {spec.name!r}: the harness cannot cache this dataset ({type(exc).__name__}: "
                              f"{exc}); structures must be pymatgen Structures and meta JSON values") from exc
            if restored.content_hash != data.content_hash:  # pragma: no cover - decode checks it too
                raise _Failed(f"task {spec.name!r}: the dataset cache does not restore this dataset exactly")
        _check_folds(spec, data, run)
    return data


def _check_missing_data(spec: TaskSpec, empty: RunContext) -> None:
    try:
        spec.load(empty)
    except DataUnavailableError as exc:
        if not str(exc).strip():
            raise _Failed(f"task {spec.name!r}: DataUnavailableError needs a message saying which files are "
                          "missing and how to obtain them") from None
        if spec.available is not None and spec.available(empty):
            raise _Failed(f"task {spec.name!r}: available(ctx) says True when the data dir is empty, but load "
                          "raises DataUnavailableError; make available check the same files") from None
        return
    except Exception as exc:
        raise _Failed(
            f"task {spec.name!r}: with an empty data dir, load raised {type(exc).__name__}: {exc}\n"
            "When its data is missing a task must raise crystalbench.DataUnavailableError saying which files "
            "are missing, where they go (under ctx.data_dir) and how to obtain them"
        ) from exc
    missing = [p for p in _listed(spec, empty) if not p.exists()]
    if missing:
        raise _Failed(f"task {spec.name!r}: load succeeded with an empty data dir although its declared files "
                      f"{', '.join(map(str, missing[:3]))} do not exist; files(ctx) must list what load reads")


def _dataset_problems(spec: TaskSpec, data: Any) -> list[str]:
    if not isinstance(data, Dataset):
        return [f"load must return a crystalbench.Dataset, got {type(data).__name__}"]
    problems = []
    if len(data) == 0:
        problems.append("the dataset is empty; raise DataUnavailableError instead of returning no samples")
        return problems
    if spec.provides == "structure" and data.structures is None:
        problems.append("provides='structure' but the dataset has no structures (set provides='composition')")
    y = np.asarray(data.targets)
    if spec.task_type == TaskType.REGRESSION:
        if y.dtype.kind not in "biuf":
            problems.append(f"regression targets must be numbers, got dtype {y.dtype}")
        else:
            yf = y.astype(float)
            bad = int((~np.isfinite(yf)).sum())
            if bad:
                problems.append(f"{bad} targets are NaN or infinite: drop those samples in load")
            elif np.ptp(yf) == 0:
                problems.append("the target is constant: nothing to learn")
    else:
        if not data.classes or len(data.classes) < 2:
            problems.append("classification datasets need Dataset.classes with at least two labels")
        elif y.dtype.kind not in "biu" or y.min() < 0 or y.max() >= len(data.classes):
            problems.append(f"classification targets must be integer indices into classes (0..{len(data.classes) - 1})")
    if spec.size is not None and spec.size != len(data):
        problems.append(f"size={spec.size} but load returned {len(data)} samples; update size (shown by bench list tasks)")
    return problems


def _check_folds(spec: TaskSpec, data: Dataset, ctx: RunContext) -> None:
    from crystalbench.runtime.splits import make_folds

    try:
        folds = make_folds(spec, data, spec.protocol, seed=0, needs_validation=True, ctx=ctx)
    except CrystalbenchError as exc:
        raise _Failed(f"task {spec.name!r}: its protocol {spec.protocol!r} cannot split the data: {exc}") from None
    for fold in folds:
        if len(fold.train) == 0 or len(fold.test) == 0:
            raise _Failed(f"task {spec.name!r}: fold {fold.index} of protocol {spec.protocol!r} has an empty "
                          f"train or test set ({len(data)} samples; fractions {spec.fractions})")


# ----------------------------------------------------------------------------- descriptor sets
def _kit_structures() -> list[Any]:
    """Bulk crystals, supercells and 1D chains in vacuum: what a descriptor set must handle."""
    toy = toy_dataset(24)
    chains = chain_sample(8)
    return list(toy.structures or ()) + list(chains.structures or ())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))


def check_descriptors(spec: DescriptorSpec, structures: Sequence[Any] | None = None) -> np.ndarray:
    """Check a descriptor-set plugin in one line: ``check_descriptors(spec)``; returns the computed values.

    structures: the inputs (default: the kit's toy crystals, supercells and a few 1D
    chains in vacuum; their compositions for ``needs="composition"``). Asserts that

    - the spec is valid: name, unique non-empty `feature_names`, `categorical` among
      them, `needs`, a string `version`;
    - `featurize` is a module-level (picklable) function: the harness may run it in
      worker processes;
    - it returns an (n, len(feature_names)) array of floats: NaN (as a float) where a
      value is undefined, never None, strings or infinities; categorical columns hold
      whole numbers;
    - it is a pure function of each structure: the same rows in any order, for any
      subset, one at a time, and on a second call (the harness caches rows by
      structure and computes them in chunks).
    """
    if not isinstance(spec, DescriptorSpec):
        raise _Failed(f"check_descriptors takes a crystalbench.DescriptorSpec, got {type(spec).__name__}")
    problems = []
    if not valid_name(spec.name):
        problems.append(f"name {spec.name!r} is not allowed: names match {NAME_PATTERN}")
    names = spec.feature_names
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) and n for n in names):
        problems.append(f"feature_names must be a non-empty tuple of strings, got {names!r}")
    elif len(set(names)) != len(names):
        problems.append(f"feature_names has duplicates: {sorted({n for n in names if names.count(n) > 1})}")
    extra = [c for c in spec.categorical if c not in names]
    if extra:
        problems.append(f"categorical names {extra} are not in feature_names")
    if spec.needs not in ("structure", "composition"):
        problems.append(f"needs={spec.needs!r}: use 'structure' or 'composition'")
    if not isinstance(spec.version, str):
        problems.append(f"version must be a string such as '1', got {spec.version!r}")
    if not callable(spec.featurize):
        problems.append("featurize must be a function featurize(structures) -> ndarray")
    _fail(f"DescriptorSpec {spec.name!r} breaks the contract", problems)
    try:
        pickle.dumps(spec.featurize)
    except Exception:
        raise _Failed(f"descriptor set {spec.name!r}: featurize must be a module-level function (not a lambda, "
                      "closure or bound method): the harness sends it to worker processes") from None

    items = list(structures) if structures is not None else _kit_structures()
    if spec.needs == "composition":
        items = [getattr(s, "composition", s) for s in items]
    n, width = len(items), len(names)

    def run(subset: list[Any], what: str) -> np.ndarray:
        try:
            out = spec.featurize(subset)
        except Exception as exc:
            raise _Failed(f"descriptor set {spec.name!r}: featurize raised {type(exc).__name__}: {exc} ({what}); "
                          "return NaN for a value that cannot be computed instead of raising") from exc
        arr = np.asarray(out)
        if arr.dtype.kind not in "biuf":
            raise _Failed(f"descriptor set {spec.name!r}: featurize returned dtype {arr.dtype} ({what}); return "
                          "floats, with float('nan') where a value is undefined (not None or strings)")
        if arr.shape != (len(subset), width):
            raise _Failed(f"descriptor set {spec.name!r}: featurize returned shape {arr.shape} for {len(subset)} "
                          f"inputs ({what}); expected ({len(subset)}, {width}): one row per input, one column per "
                          "feature name")
        return arr.astype(float)

    values = run(items, "all inputs")
    if np.isinf(values).any():
        cols = sorted({names[j] for j in np.flatnonzero(np.isinf(values).any(axis=0))})
        raise _Failed(f"descriptor set {spec.name!r}: infinite values in {cols}; use NaN for undefined values")
    for c in spec.categorical:
        col = values[:, names.index(c)]
        fin = col[np.isfinite(col)]
        if not np.array_equal(fin, np.round(fin)):
            raise _Failed(f"descriptor set {spec.name!r}: categorical column {c!r} holds non-integer values")
    order = np.arange(n)[::-1]
    checks = [
        (order, "the same inputs in reverse order"),
        (np.arange(0, n, 3), "every third input"),
    ]
    for idx, what in checks:
        got = run([items[i] for i in idx], what)
        if not _same(got, values[idx]):
            bad = int(idx[np.flatnonzero(~np.all(np.isclose(got, values[idx], rtol=1e-9, atol=1e-12,
                                                            equal_nan=True), axis=1))[0]])
            raise _Failed(f"descriptor set {spec.name!r} is not a pure function of each structure: input {bad} "
                          f"gets another row when computed with {what}. A row may depend only on its own "
                          "structure (no batch statistics, no state kept between calls)")
    for i in range(min(n, 4)):
        if not _same(run([items[i]], "one input at a time"), values[i : i + 1]):
            raise _Failed(f"descriptor set {spec.name!r} is not a pure function of each structure: input {i} "
                          "gets another row when computed alone")
    if not _same(run(items, "a second call"), values):
        raise _Failed(f"descriptor set {spec.name!r}: a second call returned other values; featurize must not "
                      "keep state between calls")
    return values


# ----------------------------------------------------------------------------- registration
def check_registered(plugin: str, *, models: Sequence[str] = (), tasks: Sequence[str] = (),
                     descriptors: Sequence[str] = (), executors: Sequence[str] = ()) -> PluginInfo:
    """Assert that the installed plugin `plugin` (entry-point name) loads and provides the names given.

    Use it to test the packaging: ``check_registered("ridge", models=["ridge"])``
    fails while the package is not installed (``pip install -e .``) or its
    pyproject.toml lacks the ``[project.entry-points.crystalbench]`` line.
    """
    reg = load_registry()
    info = next((p for p in reg.plugins if p.name == plugin), None)
    if info is None:
        raise _Failed(
            f"no plugin {plugin!r} is installed: install the package (pip install -e .) and declare it in "
            f"pyproject.toml:\n[project.entry-points.crystalbench]\n{plugin} = \"your_package.module\"\n"
            f"installed plugins: {', '.join(p.name for p in reg.plugins)}"
        )
    mine = [p for p in reg.problems if f"plugin {plugin!r}" in p]
    if info.error or info.disabled or mine:
        why = "disabled (CRYSTALBENCH_DISABLE_PLUGINS)" if info.disabled else "; ".join(mine) or str(info.error)
        raise _Failed(f"plugin {plugin!r} did not load cleanly: {why}")
    wanted = {"models": models, "tasks": tasks, "descriptors": descriptors, "executors": executors}
    problems = [f"it does not provide {kind[:-1]} {name!r} (it provides {info.provides.get(kind, [])})"
                for kind, names in wanted.items() for name in names if name not in info.provides.get(kind, [])]
    _fail(f"plugin {plugin!r}", problems)
    return info

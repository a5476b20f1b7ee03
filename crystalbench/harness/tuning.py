"""`bench tune`: a hyperparameter search with Optuna that never sees the test set.

How a search is laid out (all under `<results>/.tune/`, a dot folder, so result
scans, validation and the leaderboard never mistake a trial for a result)::

    .tune/<task>/<model>/<study id>/study.db     the Optuna study (RDB storage, sqlite; no pickles)
                                   /split.json   the trial split: train = the fold's training part,
                                                 test = its validation part (never a test id)
                                   /trials/      every trial's ResultRecord (a ResultStore root)
                                   /best.json    the chosen parameters and the final job's id

The study id is a hash of model, task, protocol, fold, seed, data fingerprint,
base parameters, space and sampler, so the same command finds the same study and
continues it (a killed search resumes: finished trials are kept, a trial that was
running is re-asked with the same parameters and its record reused if it landed).

Each trial is an ordinary job planned and run by `runner.run_grid` with the trial
split as its `--split-file`: its evaluation set is the validation split carved
from the training data, its id differs from any real result (`split_source`).
The final run is the ordinary job of the chosen parameters on the real split
(`bench run --config` with them gives the same job id); its record's
`provenance.tuning` names the study and the chosen parameters.

Pruning: while a trial trains, the shared loop reports each epoch's validation
metric (`harness.telemetry.report_epoch`); the trial's observer (`pruning_observer`,
installed by the stage that runs the job, in whichever process or Ray task that is)
reports it to the study and stops the trial when Optuna's pruner says so. A pruned
trial's record carries ``fit_info["pruned"]`` and is told to the study as PRUNED.
Trials run through the chosen executor in batches of `parallel`: that many trials
are asked from the study at once and run as one grid (`run_grid` with one request
per trial), so `--workers N` or a Ray cluster trains N trials side by side; their
results are told to the study when the batch ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .claims import Claim, acquire, holder_of
from .context import RunContext
from .errors import BadInputError, CrystalbenchError
from .executors.base import Executor
from .job import Job
from .params import resolve_params
from .record import ResultRecord
from .registry import Registry
from .results import ResultStore
from .runner import GridRequest, plan_grid, run_grid
from .specs import ModelSpec
from .splits import make_folds
from .stages import Workspace
from .store import atomic_write_json, digest

__all__ = ["Choice", "Range", "SearchSpace", "PAPER_SPACES", "TuneRequest", "TuneSummary", "load_space", "tune",
           "study_dir"]

Sampler = Literal["grid", "tpe"]
Pruner = Literal["median", "none"]


@dataclass(frozen=True)
class Choice:
    """A categorical dimension: one of these values."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """A numeric dimension from `low` to `high` (ints when both are ints), log-uniform when `log`."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass(frozen=True)
class SearchSpace:
    """Named dimensions over a model's typed hyperparameters."""

    name: str
    dims: Mapping[str, Choice | Range]

    @property
    def digest(self) -> str:
        return digest({k: dataclasses.asdict(v) | {"kind": type(v).__name__} for k, v in sorted(self.dims.items())}, 12)

    @property
    def grid_size(self) -> int | None:
        """Points of the full grid (None when a dimension is a range)."""
        if any(isinstance(d, Range) for d in self.dims.values()):
            return None
        return math.prod([len(d.values) for d in self.dims.values() if isinstance(d, Choice)])


# Gong et al. 2023, Tables S2 (CGCNN family) and S3 (ALIGNN family), in our models' parameter names.
PAPER_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "S2": {"atom_fea_len": (32, 64), "h_fea_len": (64, 128), "n_h": (1, 2, 3), "lr": (1e-3, 1e-2)},
    "S3": {"edge_input_features": (40, 80), "hidden_features": (64, 128, 256), "triplet_input_features": (20, 40),
           "lr": (1e-3, 1e-2)},
}


def _fields(spec: ModelSpec) -> set[str]:
    return {f.name for f in dataclasses.fields(spec.params_class)}


def _check_values(spec: ModelSpec, name: str, values: list[Any]) -> None:
    """Every candidate must be a valid value of the model's typed parameter (one error line otherwise)."""
    for v in values:
        resolve_params(spec.name, spec.params_class, {name: v}, strict_layers=(0,))


def load_space(arg: str, spec: ModelSpec) -> SearchSpace:
    """`paper` (Table S2 or S3, chosen by the model's parameters) or a TOML file with a `[params]` table.

    TOML values: a list is a categorical choice (`lr = [1e-3, 1e-2]`); a table
    `{low = 1e-4, high = 1e-2, log = true}` a range. Keys must be the model's
    hyperparameters and values of their types.
    """
    have = _fields(spec)
    if arg == "paper":
        for label, paper_dims in PAPER_SPACES.items():
            if set(paper_dims) <= have:
                return SearchSpace(f"paper-{label}", {k: Choice(v) for k, v in paper_dims.items()})
        raise BadInputError(f"--space paper: model {spec.name!r} has neither the CGCNN (Table S2) nor the ALIGNN "
                            "(Table S3) hyperparameters; give a TOML space")
    path = Path(arg)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInputError(f"--space {arg}: not 'paper' and not a readable TOML file ({exc})") from None
    table = raw.get("params")
    if not isinstance(table, dict) or not table:
        raise BadInputError(f"--space {arg}: needs a non-empty [params] table")
    dims: dict[str, Choice | Range] = {}
    for key, value in table.items():
        if key not in have:
            raise BadInputError(f"--space {arg}: {key!r} is not a hyperparameter of {spec.name!r} "
                                f"(see `bench list models --json`)")
        if isinstance(value, list):
            if not value:
                raise BadInputError(f"--space {arg}: {key} has no values")
            _check_values(spec, key, value)
            dims[key] = Choice(tuple(value))
        elif isinstance(value, dict) and {"low", "high"} <= set(value) and set(value) <= {"low", "high", "log"}:
            low, high = value["low"], value["high"]
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)) or low >= high:
                raise BadInputError(f"--space {arg}: {key} needs numbers low < high")
            if value.get("log") and low <= 0:
                raise BadInputError(f"--space {arg}: {key} with log = true needs low > 0")
            _check_values(spec, key, [low, high])
            dims[key] = Range(low, high, bool(value.get("log", False)))
        else:
            raise BadInputError(f"--space {arg}: {key} must be a list of values or {{low, high, log}}")
    return SearchSpace(path.stem, dims)


@dataclass
class TuneRequest:
    """What `bench tune` asks for; `base` is the grid of the final run (one model, one task, one fold, one seed)."""

    model: str
    task: str
    space: SearchSpace
    trials: int
    sampler: Sampler = "grid"
    protocol: str | None = None
    seed: int = 0
    fold: int = 0
    epochs: int | None = None
    pooling: str | None = None
    descriptors: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    parallel: int = 1  # trials asked at once and run as one grid (the executor's slots: --workers N, Ray)
    pruner: Pruner = "median"  # stop a trial whose validation curve is worse than the median of earlier trials

    def grid(self, params: Mapping[str, Any] | None = None, split_file: Path | None = None) -> GridRequest:
        """The `GridRequest` of the final run, or of one trial with `params` on the trial split."""
        config = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.config.items()}
        if params:
            config[self.model] = {**(config.get(self.model) or {}), **params}
        return GridRequest(models=[self.model], tasks=[self.task], protocol=self.protocol, seeds=[self.seed],
                           folds=None if split_file else [self.fold], epochs=self.epochs, pooling=self.pooling,
                           descriptors=self.descriptors, config=config, split_file=split_file,
                           explain_changes=split_file is None)  # trials differ from each other by design


@dataclass
class TuneSummary:
    study_dir: Path
    study_id: str
    trials_done: int
    trials_run: int
    best_params: dict[str, Any]
    best_value: float
    metric: str
    final: ResultRecord | None
    errors: list[str] = field(default_factory=list)
    trials_pruned: int = 0
    trials_failed: int = 0


def _single_job(reg: Registry, ctx: RunContext, req: GridRequest, workspace: Workspace) -> Job:
    jobs, summary = plan_grid(reg, ctx, req, workspace)
    if summary.errors:
        raise CrystalbenchError(summary.errors[0])
    if len(jobs) != 1:
        raise CrystalbenchError(f"bench tune needs exactly one job per trial, the request plans {len(jobs)}")
    return jobs[0]


def study_dir(results_dir: Path, job: Job, study_id: str) -> Path:
    return Path(results_dir) / ".tune" / job.task / job.model / study_id


def _trial_split(workspace: Workspace, job: Job, split_path: Path) -> set[str]:
    """Write the trial split (train part -> train, validation part -> test); return the real test ids."""
    loaded = workspace.load(job.task)
    data = loaded.data
    folds = make_folds(loaded.spec, data, job.protocol, seed=job.seed, needs_validation=True, ctx=workspace.ctx)
    fold = folds[job.fold]
    ids = [str(i) for i in data.ids]
    test_ids = {ids[i] for i in fold.test}
    split = {"train": [ids[i] for i in fold.train], "test": [ids[i] for i in fold.val]}
    if test_ids & (set(split["train"]) | set(split["test"])):  # by construction impossible; a guard, not a hope
        raise CrystalbenchError(f"tuning split of {job.task!r} would contain test ids")
    if not split["test"]:
        raise CrystalbenchError(f"task {job.task!r}: the training fold has no validation part to tune on")
    if not split_path.exists() or json.loads(split_path.read_text()) != split:
        atomic_write_json(split_path, split)
    return test_ids


def _sampler(kind: Sampler, space: SearchSpace, seed: int) -> Any:
    """The study's sampler. A grid is walked by enqueueing its points (`_next_grid_point`), not by Optuna's
    GridSampler, whose end-of-grid `study.stop()` only works inside `study.optimize`."""
    import optuna

    if kind == "grid":
        if space.grid_size is None:
            raise BadInputError("--sampler grid needs every dimension as a list of values; use --sampler tpe for ranges")
        return optuna.samplers.RandomSampler(seed=seed)  # never consulted: every grid trial is enqueued
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise BadInputError(f"unknown sampler {kind!r}; choose grid or tpe")


def _pruner(kind: str) -> Any:
    """Optuna's pruner for `kind`: "median" (after 2 finished trials, from epoch 5 on) or "none"."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=5)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise BadInputError(f"unknown pruner {kind!r}; choose median or none")


def pruning_observer(job_id: str, spec: Mapping[str, Any]) -> Callable[[int, float], bool] | None:
    """The per-epoch observer of one trial job (see `harness.telemetry`): report to the study, stop if pruned.

    Runs wherever the trial trains (this process, a worker, a Ray task): the study is
    reopened from its storage address, so the pruner sees every trial's curve so far.
    """
    trial_id = (spec.get("trials") or {}).get(job_id)
    if trial_id is None:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=str(spec["study"]), storage=str(spec["storage"]),
                              pruner=_pruner(str(spec.get("pruner", "median"))))
    trial = optuna.trial.Trial(study, int(trial_id))

    def observe(epoch: int, value: float) -> bool:
        if not math.isfinite(value):
            return False
        trial.report(value, epoch)
        return bool(trial.should_prune())

    return observe


def _grid_points(space: SearchSpace, seed: int) -> list[dict[str, Any]]:
    """Every point of a finite space, in a seeded order (so a partial grid is not biased to the first values)."""
    import itertools
    import random

    names = list(space.dims)
    points = [dict(zip(names, combo, strict=True))
              for combo in itertools.product(*(space.dims[n].values for n in names))]  # type: ignore[union-attr]
    random.Random(seed).shuffle(points)
    return points


def _next_grid_point(study: Any, space: SearchSpace, seed: int) -> None:
    """Enqueue the first grid point no trial has taken (a waiting one from a killed run is reused)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        return
    taken = [t.params for t in trials]
    for point in _grid_points(space, seed):
        if point not in taken:
            study.enqueue_trial(point)
            return


def _suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    out = {}
    for name, d in space.dims.items():
        if isinstance(d, Choice):
            out[name] = trial.suggest_categorical(name, list(d.values))
        elif d.integer:
            out[name] = trial.suggest_int(name, int(d.low), int(d.high), log=d.log)
        else:
            out[name] = trial.suggest_float(name, float(d.low), float(d.high), log=d.log)
    return out


def tune(
    reg: Registry,
    ctx: RunContext,
    req: TuneRequest,
    *,
    make_executor: Callable[[], Executor | None] = lambda: None,
    on_trial: Callable[[int, dict[str, Any], ResultRecord], None] | None = None,
) -> TuneSummary:
    """Run (or continue) the search, then the final test run; see the module docstring.

    One process runs a study at a time (a claim on ``study.lock``, as jobs are
    claimed): a second `bench tune` of the same study is one error line naming the
    first, and an unreadable ``study.db`` is one line saying what to do.
    """
    held: list[Claim] = []
    try:
        return _tune(reg, ctx, req, make_executor=make_executor, on_trial=on_trial, held=held)
    except Exception as exc:
        if not _storage_error(exc):
            raise
        db = held[0].path.with_name("study.db") if held else "study.db"
        raise CrystalbenchError(
            f"study database {db} cannot be used ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "if it is damaged, move it aside and run the same command again (trials already run are reused "
            "from their records)") from None
    finally:
        for claim in held:
            claim.release()


def _storage_error(exc: BaseException) -> bool:
    """Whether `exc` comes from the study's SQL storage (a damaged or locked study.db), not from a trial."""
    try:
        import optuna
        import sqlalchemy.exc
    except ImportError:
        return False
    return isinstance(exc, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError))


def _lock_study(folder: Path, study_id: str, held: list[Claim]) -> None:
    """Claim the study for this process, or say who is running it (two writers would ask the same points)."""
    claim = acquire(folder / "study.lock", label=f"bench tune study {study_id}")
    if claim is None:
        who = holder_of(folder / "study.lock") or "another process"
        raise CrystalbenchError(f"study {study_id} ({folder}) is being run by {who}; wait for it to finish, then run "
                                "the same command to continue it")
    held.append(claim)


def _tune(
    reg: Registry,
    ctx: RunContext,
    req: TuneRequest,
    *,
    make_executor: Callable[[], Executor | None],
    on_trial: Callable[[int, dict[str, Any], ResultRecord], None] | None,
    held: list[Claim],
) -> TuneSummary:
    try:
        import optuna
    except ImportError:
        raise CrystalbenchError("bench tune needs optuna: pip install 'crystalbench[tune]'") from None
    if req.trials < 1:
        raise BadInputError(f"--trials must be at least 1 (got {req.trials})")
    reg.model(req.model)  # an unknown name: one line with a did-you-mean
    task = reg.task(req.task)
    classification = task.task_type == "classification"
    metric = "accuracy" if classification else "mae"
    direction: Literal["minimize", "maximize"] = "maximize" if classification else "minimize"
    workspace = Workspace(reg, ctx)
    base = _single_job(reg, ctx, req.grid(), workspace)
    study_id = digest({"job": {k: v for k, v in base.to_dict().items() if k != "params"},
                       "params": {k: v for k, v in base.params.items() if k not in req.space.dims},
                       "space": req.space.digest, "sampler": req.sampler}, 12)
    folder = study_dir(ctx.results_dir, base, study_id)
    folder.mkdir(parents=True, exist_ok=True)
    _lock_study(folder, study_id, held)
    split_path = folder / "split.json"
    test_ids = _trial_split(workspace, base, split_path)
    trial_ctx = ctx.with_(results_dir=folder / "trials")
    trial_store = ResultStore(trial_ctx.results_dir)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_url = f"sqlite:///{(folder / 'study.db').absolute()}"
    # waits for the pruners of trials in worker processes instead of failing at once on "database is locked"
    storage = optuna.storages.RDBStorage(storage_url, engine_kwargs={"connect_args": {"timeout": 60}})
    study = optuna.create_study(study_name=study_id, storage=storage, direction=direction, load_if_exists=True,
                                sampler=_sampler(req.sampler, req.space, req.seed), pruner=_pruner(req.pruner))
    total = req.trials if req.space.grid_size is None else min(req.trials, req.space.grid_size)
    if total < req.trials:
        ctx.reporter.note(f"the {req.space.name} grid has {total} points: running {total} trials, not {req.trials}")
    States = optuna.trial.TrialState
    finished = [t for t in study.trials
                if t.state in (States.COMPLETE, States.PRUNED) or (t.state == States.FAIL and t.params)]
    if finished:
        ctx.reporter.note(f"resuming study {study_id}: {len(finished)} of {total} trials already done ({folder})")
    ran = 0
    errors: list[str] = []

    def score(number: int, job: Job, params: dict[str, Any]) -> tuple[float | None, bool]:
        """The trial's validation value (None: failed) and whether the pruner stopped it, from its record."""
        rec = trial_store.existing(job)
        if rec is None or not rec.ok:
            return None, False
        leaked = test_ids & {str(i) for i in (rec.predictions or {}).get("ids", [])}
        if leaked:
            raise CrystalbenchError(f"trial {number} was scored on {len(leaked)} test id(s); search stopped")
        if on_trial:
            on_trial(number, params, rec)
        value = rec.metrics.get(metric)
        return (float(value) if value is not None else None), bool(rec.fit_info.get("pruned"))

    def run_batch(batch: list[tuple[Any, dict[str, Any]]]) -> None:
        """Run a batch of asked trials as one grid through the executor (in parallel where it has slots), then tell."""
        nonlocal ran
        runnable = []
        for trial, params in batch:
            if set(params) != set(req.space.dims):  # killed between ask and suggest: nothing ran
                study.tell(trial.number, state=States.FAIL)
            else:
                runnable.append((trial, params))
        if not runnable:
            return
        greqs = [req.grid(params, split_path) for _, params in runnable]
        jobs = [_single_job(reg, trial_ctx, greq, workspace) for greq in greqs]
        options = {**trial_ctx.options, "origin": "tune"}  # trial records say so (ResultRecord.origin)
        if req.pruner != "none":
            options["tuning"] = {"storage": storage_url, "study": study_id, "pruner": req.pruner,
                                 "trials": {job.id: trial._trial_id for job, (trial, _) in zip(jobs, runnable)}}
        summary = run_grid(reg, trial_ctx.with_(options=options), greqs, executor=make_executor())
        errors.extend(e for e in summary.errors if e not in errors)
        ran += len(summary.finished)
        for (trial, params), job in zip(runnable, jobs):
            value, pruned = score(trial.number, job, params)
            if value is None:
                study.tell(trial.number, state=States.FAIL)
            elif pruned:
                study.tell(trial.number, state=States.PRUNED)
            else:
                study.tell(trial.number, value)

    def done() -> int:
        """Trials that ran: finished, pruned or failed; not one a kill interrupted before it had parameters."""
        return len([t for t in study.trials
                    if t.state in (States.COMPLETE, States.PRUNED) or (t.state == States.FAIL and t.params)])

    # trials a killed run left RUNNING: same parameters again (their record is reused when it landed)
    stale = [t for t in study.trials if t.state == States.RUNNING]
    if stale:
        run_batch([(t, dict(t.params)) for t in stale])
    while done() < total:
        batch = []
        for _ in range(min(req.parallel, total - done())):
            if req.sampler == "grid":
                _next_grid_point(study, req.space, req.seed)
            trial = study.ask()
            batch.append((trial, _suggest(trial, req.space)))
        run_batch(batch)

    complete = [t for t in study.trials if t.state == States.COMPLETE]
    if not complete:
        raise CrystalbenchError(f"every trial failed ({'; '.join(errors[:2]) or 'see the trial records in ' + str(folder)})")
    best = study.best_trial
    chosen = dict(best.params)

    final_req = req.grid(chosen)
    final_job = _single_job(reg, ctx, final_req, workspace)
    summary = run_grid(reg, ctx, final_req, executor=make_executor())
    errors.extend(e for e in summary.errors if e not in errors)
    store = ResultStore(ctx.results_dir)
    final = store.existing(final_job)
    link = {"study": str(folder.relative_to(ctx.results_dir)), "study_id": study_id, "space": req.space.name,
            "space_digest": req.space.digest, "sampler": req.sampler, "trials": len(complete),
            "best_trial": best.number, "metric": metric, "best_value": best.value,
            "evaluated_on": "validation split carved from the training data (split.json); never the test set",
            "chosen_params": chosen}
    if final is not None and final.ok and final.provenance.get("tuning") != link:
        final.provenance["tuning"] = link
        store.write(final)
    atomic_write_json(folder / "best.json", {**link, "final_job_id": final_job.id})
    pruned = len([t for t in study.trials if t.state == States.PRUNED])
    failed = len([t for t in study.trials if t.state == States.FAIL and t.params])
    return TuneSummary(folder, study_id, len(complete), ran, chosen, float(best.value or 0.0), metric, final, errors,
                       trials_pruned=pruned, trials_failed=failed)

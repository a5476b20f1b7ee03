"""The study driver of `bench tune`: an Optuna search that never sees the test set, then one test run.

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
metric (`harness.telemetry.report_epoch`). The study asks the runtime to observe
its trial jobs through the generic observer option
(`harness.telemetry.with_epoch_observer` naming `tune.pruning.pruning_observer`),
so the runtime never imports this package; the observer reports to the study and
stops the trial when Optuna's pruner says so. A pruned trial's record carries
``fit_info["pruned"]`` and is told to the study as PRUNED.
Trials run through the chosen executor in batches of `parallel`: that many trials
are asked from the study at once and run as one grid (`run_grid` with one request
per trial), so `--workers N` or a Ray cluster trains N trials side by side; their
results are told to the study when the batch ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crystalbench.contract.context import RunContext
from crystalbench.contract.enums import TaskType
from crystalbench.contract.errors import BadInputError, CrystalbenchError
from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.store import atomic_write_json, digest
from crystalbench.contract.telemetry import with_epoch_observer
from crystalbench.runtime.claims import Claim, acquire, holder_of
from crystalbench.runtime.executors.base import Executor
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.results import ResultStore
from crystalbench.runtime.runner import GridRequest, plan_grid, run_grid
from crystalbench.runtime.splits import make_folds
from crystalbench.runtime.stages import Workspace

from . import pruning
from .spaces import SearchSpace, grid_points, suggest

__all__ = ["TuneRequest", "TuneSummary", "Study", "tune", "study_dir"]

Sampler = Literal["grid", "tpe"]
Pruner = Literal["median", "none"]
OnTrial = Callable[[int, dict[str, Any], ResultRecord], None]


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
    """The study's sampler. A grid is walked by enqueueing its points (`Study._next_grid_point`), not by
    Optuna's GridSampler, whose end-of-grid `study.stop()` only works inside `study.optimize`."""
    import optuna

    if kind == "grid":
        if space.grid_size is None:
            raise BadInputError("--sampler grid needs every dimension as a list of values; use --sampler tpe for ranges")
        return optuna.samplers.RandomSampler(seed=seed)  # never consulted: every grid trial is enqueued
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise BadInputError(f"unknown sampler {kind!r}; choose grid or tpe")


def tune(
    reg: Registry,
    ctx: RunContext,
    req: TuneRequest,
    *,
    make_executor: Callable[[], Executor | None] = lambda: None,
    on_trial: OnTrial | None = None,
) -> TuneSummary:
    """Run (or continue) the search, then the final test run; see the module docstring.

    One process runs a study at a time (a claim on ``study.lock``, as jobs are
    claimed): a second `bench tune` of the same study is one error line naming the
    first, and an unreadable ``study.db`` is one line saying what to do.
    """
    held: list[Claim] = []
    try:
        study = Study.open(reg, ctx, req, make_executor=make_executor, on_trial=on_trial, held=held)
        study.run_trials()
        return study.finish()
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


class Study:
    """One search, opened (created or continued) on disk: its folder, Optuna study, trial split and trials.

    `open` finds the study of a request (its id hashes everything that defines it),
    claims it and writes the trial split; `run_trials` asks and runs trials in
    batches until the study has `total` of them; `finish` runs the chosen
    parameters on the real split and links the study from that record.
    """

    def __init__(self, reg: Registry, ctx: RunContext, req: TuneRequest, *, workspace: Workspace, base: Job,
                 study_id: str, folder: Path, optuna_study: Any, storage_url: str, test_ids: set[str],
                 make_executor: Callable[[], Executor | None], on_trial: OnTrial | None) -> None:
        import optuna

        self.reg, self.ctx, self.req = reg, ctx, req
        self.workspace, self.base, self.study_id, self.folder = workspace, base, study_id, folder
        self.optuna, self.storage_url, self.test_ids = optuna_study, storage_url, test_ids
        self.make_executor, self.on_trial = make_executor, on_trial
        self.states = optuna.trial.TrialState
        classification = reg.task(req.task).task_type == TaskType.CLASSIFICATION
        self.metric = "accuracy" if classification else "mae"
        self.split_path = folder / "split.json"
        self.trial_ctx = ctx.with_(results_dir=folder / "trials")
        self.trial_store = ResultStore(self.trial_ctx.results_dir)
        self.total = req.trials if req.space.grid_size is None else min(req.trials, req.space.grid_size)
        self.ran = 0
        self.errors: list[str] = []

    @classmethod
    def open(cls, reg: Registry, ctx: RunContext, req: TuneRequest, *, make_executor: Callable[[], Executor | None],
             on_trial: OnTrial | None, held: list[Claim]) -> Study:
        """The request's study, created or continued, claimed for this process (the claim goes into `held`)."""
        try:
            import optuna
        except ImportError:
            raise CrystalbenchError("bench tune needs optuna: pip install 'crystalbench[tune]'") from None
        if req.trials < 1:
            raise BadInputError(f"--trials must be at least 1 (got {req.trials})")
        reg.model(req.model)  # an unknown name: one line with a did-you-mean
        task = reg.task(req.task)
        direction: Literal["minimize", "maximize"] = "maximize" if task.task_type == TaskType.CLASSIFICATION else "minimize"
        workspace = Workspace(reg, ctx)
        base = _single_job(reg, ctx, req.grid(), workspace)
        study_id = digest({"job": {k: v for k, v in base.to_dict().items() if k != "params"},
                           "params": {k: v for k, v in base.params.items() if k not in req.space.dims},
                           "space": req.space.digest, "sampler": req.sampler}, 12)
        folder = study_dir(ctx.results_dir, base, study_id)
        folder.mkdir(parents=True, exist_ok=True)
        _lock_study(folder, study_id, held)
        test_ids = _trial_split(workspace, base, folder / "split.json")

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage_url = f"sqlite:///{(folder / 'study.db').absolute()}"
        # waits for the pruners of trials in worker processes instead of failing at once on "database is locked"
        storage = optuna.storages.RDBStorage(storage_url, engine_kwargs={"connect_args": {"timeout": 60}})
        optuna_study = optuna.create_study(study_name=study_id, storage=storage, direction=direction,
                                           load_if_exists=True, sampler=_sampler(req.sampler, req.space, req.seed),
                                           pruner=pruning.make_pruner(req.pruner))
        return cls(reg, ctx, req, workspace=workspace, base=base, study_id=study_id, folder=folder,
                   optuna_study=optuna_study, storage_url=storage_url, test_ids=test_ids,
                   make_executor=make_executor, on_trial=on_trial)

    # -- trials
    def done(self) -> int:
        """Trials that ran: finished, pruned or failed; not one a kill interrupted before it had parameters."""
        s = self.states
        return len([t for t in self.optuna.trials
                    if t.state in (s.COMPLETE, s.PRUNED) or (t.state == s.FAIL and t.params)])

    def run_trials(self) -> None:
        """Re-run the trials a killed run left running, then ask and run batches until `total` trials ran."""
        req = self.req
        if self.total < req.trials:
            self.ctx.reporter.note(f"the {req.space.name} grid has {self.total} points: running {self.total} trials, "
                                   f"not {req.trials}")
        finished = self.done()
        if finished:
            self.ctx.reporter.note(f"resuming study {self.study_id}: {finished} of {self.total} trials already done "
                                   f"({self.folder})")
        # trials a killed run left RUNNING: same parameters again (their record is reused when it landed)
        stale = [t for t in self.optuna.trials if t.state == self.states.RUNNING]
        if stale:
            self.run_batch([(t, dict(t.params)) for t in stale])
        while self.done() < self.total:
            batch = []
            for _ in range(min(req.parallel, self.total - self.done())):
                if req.sampler == "grid":
                    self._next_grid_point()
                trial = self.optuna.ask()
                batch.append((trial, suggest(trial, req.space)))
            self.run_batch(batch)

    def _next_grid_point(self) -> None:
        """Enqueue the first grid point no trial has taken (a waiting one from a killed run is reused)."""
        trials = self.optuna.get_trials(deepcopy=False)
        if any(t.state == self.states.WAITING for t in trials):
            return
        taken = [t.params for t in trials]
        for point in grid_points(self.req.space, self.req.seed):
            if point not in taken:
                self.optuna.enqueue_trial(point)
                return

    def run_batch(self, batch: list[tuple[Any, dict[str, Any]]]) -> None:
        """Run a batch of asked trials as one grid through the executor (in parallel where it has slots), then tell."""
        runnable = []
        for trial, params in batch:
            if set(params) != set(self.req.space.dims):  # killed between ask and suggest: nothing ran
                self.optuna.tell(trial.number, state=self.states.FAIL)
            else:
                runnable.append((trial, params))
        if not runnable:
            return
        greqs = [self.req.grid(params, self.split_path) for _, params in runnable]
        jobs = [_single_job(self.reg, self.trial_ctx, greq, self.workspace) for greq in greqs]
        options: dict[str, Any] = {**self.trial_ctx.options, "origin": "tune"}  # trial records say so (origin)
        if self.req.pruner != "none":
            options = with_epoch_observer(options, pruning.OBSERVER, {
                "storage": self.storage_url, "study": self.study_id, "pruner": self.req.pruner,
                "trials": {job.id: trial._trial_id for job, (trial, _) in zip(jobs, runnable)}})
        summary = run_grid(self.reg, self.trial_ctx.with_(options=options), greqs, executor=self.make_executor())
        self.errors.extend(e for e in summary.errors if e not in self.errors)
        self.ran += len(summary.finished)
        for (trial, params), job in zip(runnable, jobs):
            value, pruned = self._score(trial.number, job, params)
            if value is None:
                self.optuna.tell(trial.number, state=self.states.FAIL)
            elif pruned:
                self.optuna.tell(trial.number, state=self.states.PRUNED)
            else:
                self.optuna.tell(trial.number, value)

    def _score(self, number: int, job: Job, params: dict[str, Any]) -> tuple[float | None, bool]:
        """The trial's validation value (None: failed) and whether the pruner stopped it, from its record."""
        rec = self.trial_store.existing(job)
        if rec is None or not rec.ok:
            return None, False
        leaked = self.test_ids & {str(i) for i in (rec.predictions or {}).get("ids", [])}
        if leaked:
            raise CrystalbenchError(f"trial {number} was scored on {len(leaked)} test id(s); search stopped")
        if self.on_trial:
            self.on_trial(number, params, rec)
        value = rec.metrics.get(self.metric)
        return (float(value) if value is not None else None), bool(rec.fit_info.get("pruned"))

    # -- the final run
    def finish(self) -> TuneSummary:
        """Run the best trial's parameters on the real split; link the study from its record and best.json."""
        s = self.states
        complete = [t for t in self.optuna.trials if t.state == s.COMPLETE]
        if not complete:
            raise CrystalbenchError(f"every trial failed ({'; '.join(self.errors[:2]) or 'see the trial records in ' + str(self.folder)})")
        best = self.optuna.best_trial
        chosen = dict(best.params)
        final_req = self.req.grid(chosen)
        final_job = _single_job(self.reg, self.ctx, final_req, self.workspace)
        summary = run_grid(self.reg, self.ctx, final_req, executor=self.make_executor())
        self.errors.extend(e for e in summary.errors if e not in self.errors)
        store = ResultStore(self.ctx.results_dir)
        final = store.existing(final_job)
        link = {"study": str(self.folder.relative_to(self.ctx.results_dir)), "study_id": self.study_id,
                "space": self.req.space.name, "space_digest": self.req.space.digest, "sampler": self.req.sampler,
                "trials": len(complete), "best_trial": best.number, "metric": self.metric,
                "best_value": best.value,
                "evaluated_on": "validation split carved from the training data (split.json); never the test set",
                "chosen_params": chosen}
        if final is not None and final.ok and final.provenance.get("tuning") != link:
            final.provenance["tuning"] = link
            store.write(final)
        atomic_write_json(self.folder / "best.json", {**link, "final_job_id": final_job.id})
        pruned = len([t for t in self.optuna.trials if t.state == s.PRUNED])
        failed = len([t for t in self.optuna.trials if t.state == s.FAIL and t.params])
        return TuneSummary(self.folder, self.study_id, len(complete), self.ran, chosen, float(best.value or 0.0),
                           self.metric, final, self.errors, trials_pruned=pruned, trials_failed=failed)

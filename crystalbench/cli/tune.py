"""`bench tune`: hyperparameter search on the validation split, then one ordinary test run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crystalbench.contract.enums import Protocol
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.params import POOLING_CHOICES
from crystalbench.contract.paths import DEFAULT_RESULTS_DIR
from crystalbench.contract.record import ResultRecord

from .executors import ExecutorOptionsCommand, executor_options, make_executor
from .main import CONTEXT, cli, make_context, registry, threads_default
from .run import _load_config, metric_line


@cli.command(cls=ExecutorOptionsCommand, context_settings=CONTEXT)
@click.option("-m", "--model", required=True, metavar="NAME", help="Model to tune.")
@click.option("-t", "--task", required=True, metavar="NAME", help="Task to tune on.")
@click.option("--space", default="paper", show_default=True, metavar="paper|FILE.toml",
              help="paper: Table S2 (CGCNN family) or S3 (ALIGNN family); or a TOML [params] table.")
@click.option("--trials", type=int, default=24, show_default=True, help="Trials in the study (a grid caps it).")
@click.option("--sampler", type=click.Choice(["grid", "tpe"]), default="grid", show_default=True)
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True,
              help="Stop trials whose per-epoch validation curve is worse than the median of earlier trials.")
@click.option("--protocol", type=click.Choice([p.value for p in Protocol]), help="Split protocol (default: the task's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, the models and the sampler.")
@click.option("--fold", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fold to tune on and to test the chosen parameters on.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the epochs of every trial and of the final run.")
@click.option("--pooling", type=click.Choice(list(POOLING_CHOICES)), help="GNN readout, as in bench run.")
@click.option("--descriptors", metavar="NAME", help="Attach this descriptor set, as in bench run.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML of fixed hyperparameters (the searched ones come from --space).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--cache-dir", type=click.Path(path_type=Path))
@click.option("--jobs", type=int, help="Worker processes for featurization (default: all cores).")
@click.option("--threads", type=int, default=threads_default,
              show_default="1 or $CRYSTALBENCH_THREADS")
@click.option("--executor", "executor_name", default="local", show_default=True, metavar="NAME",
              help="How trials run, as in bench run (each trial is one job); the options after this one are the "
                   "executors' own.")
@click.option("--parallel", type=click.IntRange(min=1), metavar="N",
              help="Trials run side by side per batch (default: --workers, else 1; set it for Ray).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per trial and one for the result.")
@click.option("--no-progress", is_flag=True)
@click.pass_context
def tune(ctx: click.Context, model: str, task: str, space: str, trials: int, sampler: str, pruner: str,
         protocol: str | None,
         seed: int, fold: int, epochs: int | None, pooling: str | None, descriptors: str | None,
         config_path: Path | None, device: str, results_dir: Path, data_dir: Path | None, cache_dir: Path | None,
         jobs: int | None, threads: int, executor_name: str, parallel: int | None, as_json: bool,
         no_progress: bool, **executor_flags: Any) -> None:
    """Search hyperparameters with Optuna on the validation split, then test the best once.

    Trials are scored on the validation part of the training fold; the test set
    is used only by the final run, an ordinary result whose provenance names the
    study. The study lives in RESULTS/.tune/TASK/MODEL/STUDY-ID/; the same
    command resumes it.

    \b
    Examples:
      bench tune -m de-cgcnn -t phonon_cv --space paper --trials 24
      bench tune -m cgcnn -t chain1d_short --space my_space.toml --sampler tpe --trials 10 --epochs 50
    """
    from ..tune import TuneRequest, load_space
    from ..tune import tune as run_tune

    chosen = executor_options(executor_flags)
    run_ctx = make_context(data_dir=data_dir, cache_dir=cache_dir, results_dir=results_dir, jobs=jobs,
                           threads=threads, device=device, progress=not no_progress and not as_json)
    reg = registry(ctx, run_ctx)
    spec = reg.model(model)
    req = TuneRequest(model=spec.name, task=reg.task(task).name, space=load_space(space, spec), trials=trials,
                      sampler=sampler,  # type: ignore[arg-type]
                      protocol=protocol, seed=seed, fold=fold, epochs=epochs, pooling=pooling, descriptors=descriptors,
                      config=_load_config(config_path), parallel=parallel or chosen.get("workers") or 1,
                      pruner=pruner)  # type: ignore[arg-type]

    def executor() -> Any:
        return make_executor(reg, run_ctx, executor_name, chosen)

    def on_trial(number: int, params: dict[str, Any], rec: ResultRecord) -> None:
        if as_json:
            click.echo(json.dumps({"trial": number, "params": params, "job_id": rec.job_id,
                                   "status": rec.status, "metrics": rec.metrics}))
        else:
            run_ctx.reporter.info(f"trial {number} {params}: validation {metric_line(rec)}")

    summary = run_tune(reg, run_ctx, req, make_executor=executor, on_trial=on_trial)
    final = summary.final
    if as_json:
        click.echo(json.dumps({"study": str(summary.study_dir), "study_id": summary.study_id,
                               "trials": summary.trials_done, "trials_pruned": summary.trials_pruned,
                               "trials_failed": summary.trials_failed, "best_params": summary.best_params,
                               "best_value": summary.best_value, "metric": summary.metric,
                               "final": None if final is None else {"job_id": final.job_id, "status": final.status,
                                                                    "metrics": final.metrics}}))
    else:
        stopped = [f"{n} {what}" for n, what in ((summary.trials_pruned, "pruned"), (summary.trials_failed, "failed")) if n]
        click.echo(f"best of {summary.trials_done} completed trial(s){' (' + ', '.join(stopped) + ')' if stopped else ''}: "
                   f"{summary.best_params} "
                   f"(validation {summary.metric} {summary.best_value:.4g}); study in {summary.study_dir}", err=True)
        if final is not None:
            click.echo(f"test: {metric_line(final)}", err=True)
    if final is None or not final.ok:
        why = "; ".join(summary.errors) or (final.error if final is not None else None) or "no record"
        raise CrystalbenchError(f"the final test run failed: {why}")

"""`bench run`: run a grid of jobs."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from crystalbench.contract.enums import Protocol, TaskType
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.metrics import metrics_for
from crystalbench.contract.params import POOLING_CHOICES
from crystalbench.contract.paths import DEFAULT_RESULTS_DIR
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.store import read_input_text

from .executors import ExecutorOptionsCommand, executor_options, make_executor
from .main import CONTEXT, cli, make_context, print_rows, registry, threads_default

_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:[0-9]+)?")


def _parse_folds(text: str | None) -> list[int] | None:
    if not text or text == "all":
        return None
    try:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not all(p.isascii() and p.isdigit() for p in parts):  # int() would take "０" or "1_0"
            raise ValueError(text)
        folds = sorted({int(p) for p in parts})
    except ValueError:
        raise CrystalbenchError(f"--folds takes comma-separated fold indices like 0,2 (got {text!r})") from None
    if not folds or any(f < 0 for f in folds):
        raise CrystalbenchError(f"--folds takes fold indices >= 0 like 0,2 (got {text!r})")
    return folds


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    text = read_input_text(Path(path), "config file")
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise CrystalbenchError(f"config file {path}: {str(exc)[:200]}") from None


def metric_line(rec: ResultRecord) -> str:
    """One line of a record's headline metrics, from the metric registry."""
    if not rec.ok:
        return f"FAILED: {rec.error}"
    parts = []
    unit = rec.task_info.get("unit") or ""
    for m in metrics_for(rec.task_type):
        if m.key in ("rmse", "mad", "spearman"):
            continue
        v = rec.metrics.get(m.key)
        if v is None:
            continue
        parts.append(f"{m.label} {v:.4g}{' ' + unit if m.in_units and unit else ''}" if m.in_units else f"{m.label} {v:.3f}")
    text = "  ".join(parts)
    if rec.warnings:
        text += "  [" + "; ".join(w.split(":")[0] for w in rec.warnings) + "]"
    return text


def _merge(summary: Any, more: Any) -> None:
    """Add one suite entry's `RunSummary` to the running total."""
    summary.finished.extend(more.finished)
    for name in ("skipped", "failed", "elsewhere", "planned"):
        setattr(summary, name, getattr(summary, name) + getattr(more, name))
    for name in ("errors", "warnings", "unsaved"):
        getattr(summary, name).extend(more_item for more_item in getattr(more, name)
                                      if more_item not in getattr(summary, name))


@cli.command(cls=ExecutorOptionsCommand, context_settings=CONTEXT)
@click.option("-m", "--model", "models", multiple=True, metavar="NAME", help="Model to run (repeatable).")
@click.option("--suite", metavar="NAME",
              help="Run a named suite (`bench list suites`); -m/-t then keep only those models/tasks of it.")
@click.option("-t", "--task", "tasks", multiple=True, metavar="NAME|GLOB",
              help="Task to run (repeatable; globs like 'desc_*' allowed).")
@click.option("--data", "data_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Benchmark your own file/directory instead of a registered task (needs --target).")
@click.option("--target", metavar="COLUMN", help="Target column of --data (not needed for an id_prop.csv directory).")
@click.option("--structure-column", metavar="COLUMN", help="Structure column of --data (auto-detected by default).")
@click.option("--id-column", metavar="COLUMN", help="Id column of --data (auto-detected by default).")
@click.option("--classification", is_flag=True, help="Treat --target of --data as class labels.")
@click.option("--strict", is_flag=True, help="Fail on the first bad row of --data instead of skipping it.")
@click.option("--protocol", type=click.Choice([p.value for p in Protocol]),
              help="Split protocol (default: the task's own). paper: seeded random split; "
                   "matbench: official 5-fold KFold; file: the task's id lists.")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSON {"train": [ids], "val": [ids], "test": [ids]} (or a list of those, one per fold).')
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed (repeatable; default 0). Sets split and init.")
@click.option("--folds", metavar="0,2", help="Only these fold indices (default: all folds of the protocol).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the number of training epochs of every model that has one.")
@click.option("--pooling", type=click.Choice(list(POOLING_CHOICES)),
              help="GNN readout; atom-sum: output network per atom, then summed (paper eq. 13) "
              "(default: sum for extensive targets, mean otherwise; de-* hybrids: mean).")
@click.option("--descriptors", metavar="NAME",
              help="Attach this descriptor set as extra features (hybridizes models that accept them).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for GNNs, e.g. cuda (part of a job's identity).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML of hyperparameters: top-level keys apply to every model that has them, [model] tables to one.")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (default $CRYSTALBENCH_DATA_DIR).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache directory (default $CRYSTALBENCH_CACHE_DIR).")
@click.option("--jobs", type=int, help="Worker processes for featurization and structure loading (default: all cores).")
@click.option("--threads", type=int, default=threads_default,
              show_default="1 or $CRYSTALBENCH_THREADS",
              help="Torch intra-op threads per job, applied before every job (raise for large models on an idle machine).")
@click.option("--executor", "executor_name", default="local", show_default=True, metavar="NAME",
              help="How jobs run: local (this machine) or ray (a local Ray instance or a cluster), or a plugin's; "
                   "the options after this one are the executors' own.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Run a job again this many times when its worker dies (killed, out of memory, node lost).")
@click.option("--rerun", is_flag=True, help="Run jobs again even if their results exist (a new failure never replaces a good result).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record summary per finished job on stdout.")
@click.option("--no-progress", is_flag=True, help="Hide progress (bars on a terminal, periodic lines elsewhere).")
@click.option("--debug", is_flag=True, help="Stop at the first failing job and print its traceback.")
@click.option("--dry-run", is_flag=True,
              help="Only list the jobs with their settings (pooling, epochs, every parameter with --json); "
                   "loads no data, runs and writes nothing.")
@click.pass_context
def run(ctx: click.Context, models: tuple[str, ...], suite: str | None, tasks: tuple[str, ...], data_path: Path | None,
        target: str | None, structure_column: str | None, id_column: str | None, classification: bool,
        strict: bool, protocol: str | None, split_file: Path | None, seeds: tuple[int, ...], folds: str | None,
        epochs: int | None, pooling: str | None, descriptors: str | None, device: str, config_path: Path | None,
        results_dir: Path, data_dir: Path | None, cache_dir: Path | None, jobs: int | None, threads: int,
        executor_name: str, retries: int, rerun: bool, as_json: bool, no_progress: bool,
        debug: bool, dry_run: bool, **executor_flags: Any) -> None:
    """Run models on tasks; every finished job is saved, re-runs resume.

    A job is identified by everything that determines its result: model and
    hyperparameters, task, target and a checksum of its data, descriptor set
    and version, protocol, fold, seed and device. Change any and it is a new
    job; the same inputs are never computed twice.

    \b
    Examples:
      bench run -m de-cgcnn -t phonon_cv
      bench run --suite paper-table1 -m rf
      bench run -m cgcnn -m roost -m rf -t 'desc_*' --epochs 50
      bench run -m dummy -t matbench_phonons --protocol matbench
      bench run -m rf --data my.csv --target band_gap
      bench run -m cgcnn -t 'desc_*' --seed 0 --seed 1 --workers 4
      bench run -m cgcnn -t 'desc_*' --device cuda --executor ray --ray-address auto --gpus-per-job 0.25

    Only this process writes results, whatever the executor: a killed run loses
    no finished job and the same command resumes it.
    """
    from crystalbench.runtime.runner import GridRequest, epochs_note, run_grid

    run_ctx = make_context(data_dir=data_dir, cache_dir=cache_dir, results_dir=results_dir, jobs=jobs,
                           threads=threads, device=device, progress=not no_progress and not as_json, debug=debug)
    reg = registry(ctx, run_ctx)
    _check_flags(reg, models=models, suite=suite, tasks=tasks, seeds=seeds, device=device, descriptors=descriptors,
                 settings=(("--data", data_path), ("--protocol", protocol), ("--split-file", split_file),
                           ("--pooling", pooling), ("--descriptors", descriptors), ("--config", config_path)))
    config = _load_config(config_path)
    chosen = executor_options(executor_flags)
    executor = make_executor(reg, run_ctx, executor_name, chosen)
    extra, recipes = _data_task(reg, data_path, dict(
        target=target, structure_column=structure_column, id_column=id_column,
        task_type=TaskType.CLASSIFICATION if classification else TaskType.REGRESSION, strict=strict))
    reqs: list[GridRequest] = []
    if suite:
        from crystalbench.runtime.suites import SuiteFilter, suite_requests

        chosen_folds = _parse_folds(folds)
        flt = SuiteFilter(
            models=models, tasks=tasks, seeds=seeds, folds=tuple(chosen_folds) if chosen_folds is not None else None,
            epochs=epochs)
        reqs = suite_requests(reg, reg.suite(suite), flt)
        for r in reqs:
            r.rerun = rerun
    req = GridRequest(
        models=list(models), tasks=list(tasks), protocol=protocol, seeds=list(seeds) or [0],
        folds=_parse_folds(folds), epochs=epochs, pooling=pooling, descriptors=descriptors, config=config,
        split_file=split_file, rerun=rerun, extra_tasks=extra, task_recipes=recipes,
    )
    note = epochs_note(reg, [m for r in reqs or [req] for m in r.models], epochs)
    if note:
        run_ctx.reporter.note(note)
    if dry_run:  # the plan only, from the same planner rules: nothing is loaded, run or written
        from crystalbench.runtime.suites import PLAN_COLUMNS, plan_rows, request_plan, suite_plan

        print_rows(plan_rows(suite_plan(reg, reg.suite(suite), flt) if suite else request_plan(reg, req)),
                   as_json, PLAN_COLUMNS)
        return

    emit = _emitter(run_ctx, as_json)
    try:
        # with --json, stdout holds only the summaries: what plugins and workers print (Ray forwards their
        # output and its own messages to this process's stdout) goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            if not suite:
                summary = run_grid(reg, run_ctx, req, on_record=emit, executor=executor, retries=retries)
            else:  # one grid per suite entry, each planned like -m/-t, each with a fresh executor
                summary = run_grid(reg, run_ctx, reqs[0], on_record=emit, executor=executor, retries=retries)
                for r in reqs[1:]:
                    more = run_grid(reg, run_ctx, r, on_record=emit, retries=retries,
                                    executor=make_executor(reg, run_ctx, executor_name, chosen))
                    _merge(summary, more)
    except Exception:
        if not debug:
            raise
        import traceback

        traceback.print_exc()
        click.echo("error: the job above failed (--debug stops at the first failure)", err=True)
        sys.exit(1)
    _finish(summary, as_json, results_dir)


def _check_flags(reg: Any, *, models: tuple[str, ...], suite: str | None, tasks: tuple[str, ...],
                 seeds: tuple[int, ...], device: str, descriptors: str | None,
                 settings: tuple[tuple[str, Any], ...]) -> None:
    """Refuse, with one line, flags that cannot make a grid, before anything is loaded or run."""
    from crystalbench.runtime.runner import check_seeds

    if suite:
        given = [flag for flag, value in settings if value]
        if given:
            raise CrystalbenchError(f"--suite fixes the protocol and settings of its jobs; drop {', '.join(given)} "
                                    "(see `bench list suites --json`)")
    elif not models:
        raise CrystalbenchError("no model given: use -m NAME (see `bench list models`)")
    data_given = dict(settings).get("--data") is not None
    if not tasks and not data_given and not suite:
        raise CrystalbenchError("no task given: use -t NAME or --data PATH (see `bench list tasks`)")
    for m in models:
        reg.model(m)
    check_seeds(seeds)
    if not _DEVICE.fullmatch(device):  # else every job fails the same way, or a CPU model records it silently
        raise CrystalbenchError(f"--device {device!r}: use cpu, cuda or cuda:N (or mps, xpu)")
    if descriptors:
        reg.descriptor(descriptors)


def _data_task(reg: Any, data_path: Path | None, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `--data` task (name -> spec), asked of the registry (`bench_data_task`), and how worker processes
    re-create it (its spec holds closures): the same implementation called with the same arguments."""
    if data_path is None:
        return {}, {}
    from crystalbench.runtime.executors.base import TaskRecipe

    path = str(Path(data_path).absolute())
    spec, factory = reg.data_task(path, options)
    return {spec.name: spec}, {spec.name: TaskRecipe(factory, (path, options))}


def _emitter(run_ctx: Any, as_json: bool) -> Any:
    """What `bench run` shows of each finished job: a JSON line on stdout (--json) or a line on stderr."""
    json_out = sys.stdout  # the real stdout: --json redirects everything else to stderr while jobs run

    def emit(rec: ResultRecord) -> None:
        if as_json:
            d = rec.to_dict()
            keep = {k: d[k] for k in ("job_id", "status", "metrics", "error", "timings", "warnings")}
            keep.update({k: d["job"][k] for k in ("model", "task", "protocol", "fold", "seed")})
            click.echo(json.dumps(keep), file=json_out)
            json_out.flush()
        else:
            mark = "✓" if rec.ok else "✗"
            run_ctx.reporter.info(f"{mark} {rec.model} · {rec.task} · fold {rec.fold} · seed {rec.seed}: {metric_line(rec)}")

    return emit


def _finish(summary: Any, as_json: bool, results_dir: Path) -> None:
    """The closing line, and the exit status: 1 when a job failed, 2 when the grid had errors."""
    if not as_json:
        n_ok = sum(r.ok for r in summary.finished)
        extra_note = f", {summary.elsewhere} left to a concurrent run" if summary.elsewhere else ""
        click.echo(
            f"{n_ok} job(s) finished, {summary.failed} failed, {summary.skipped} already done{extra_note}; "
            f"results in {results_dir}. Next: bench leaderboard build --results-dir {results_dir}",
            err=True,
        )
    if summary.failed:
        sys.exit(1)
    if summary.errors:
        sys.exit(2)

"""`bench export matbench`: results as the file a Matbench v0.1 submission consists of."""

from __future__ import annotations

from pathlib import Path

import click

from crystalbench.contract.enums import Protocol
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.paths import DEFAULT_RESULTS_DIR
from crystalbench.contract.store import check_output_file, output_errors

from .main import CONTEXT, cli, make_context, registry


@cli.group(context_settings=CONTEXT)
def export() -> None:
    """Write results in other projects' formats."""


@export.command("matbench")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("-m", "--model", required=True, metavar="NAME", help="The model whose results are exported.")
@click.option("-t", "--task", "tasks", multiple=True, metavar="NAME",
              help="Matbench task(s) to export (repeatable); default: every matbench_* task the model has results for.")
@click.option("--seed", type=int, help="Which seed's run to export when several were run.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="File to write, e.g. results.json.gz (gzip-compressed when the name ends in .gz).")
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Data directory (the tasks' data is read to check the folds are the official ones).")
@click.pass_context
def export_matbench(ctx: click.Context, results_dir: Path, model: str, tasks: tuple[str, ...], seed: int | None,
                    out: Path, data_dir: Path | None) -> None:
    """Write a `MatbenchBenchmark` file (matbench 0.6 format) from `--protocol matbench` results.

    Each task needs all 5 official folds of one run. Records are validated first
    (metrics recomputed) and each fold's test ids are checked against the official
    Matbench split, so only what Matbench would accept is written.
    """
    from crystalbench.runtime.results import ResultStore
    from crystalbench.runtime.validate import OfficialSplits

    from ..leaderboard.matbench_export import benchmark_document, select_tasks, write_benchmark

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist")
    if Path(out).is_dir():
        raise CrystalbenchError(f"--out {out} is a directory; give a file name such as {Path(out) / 'results.json.gz'}")
    check_output_file(out, option="--out", reads=[results_dir])  # before the (slow) checks, never onto a record
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run)
    store = ResultStore(Path(results_dir))
    records = []
    for path, rec in store.scan():
        if isinstance(rec, Exception):
            click.echo(f"warning: skipped invalid result file {path}: {rec}", err=True)
        else:
            records.append(rec)
    # the Matbench tasks are those registered with the matbench protocol as their own (the matbench plugin's)
    matbench = [name for name, spec in reg.tasks.items() if spec.protocol == Protocol.MATBENCH]
    selected = select_tasks(records, model, tasks, seed, matbench_tasks=matbench)
    splits = OfficialSplits(reg, run)
    for et in selected:
        for rec in et.records:
            problem = splits.problem(rec, required=True)
            if problem:
                raise CrystalbenchError(f"{et.task} fold {rec.fold}: {problem}")
    doc = benchmark_document(selected)
    with output_errors("--out", out):
        path = write_benchmark(doc, out)
    summary = ", ".join(f"{et.task} (seed {et.seed})" for et in selected)
    click.echo(f"wrote {path}: {model} on {summary}, 5 folds each", err=True)

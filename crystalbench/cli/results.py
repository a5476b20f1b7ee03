"""`bench results validate`: check every results file before it is trusted."""

from __future__ import annotations

from pathlib import Path

import click

from ..harness.errors import CrystalbenchError
from .main import CONTEXT, cli, make_context, registry


@cli.group(context_settings=CONTEXT)
def results() -> None:
    """Inspect and check results files."""


@results.command("validate")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--official-splits/--no-official-splits", default=True, show_default=True,
              help="Check each record's test-id hash against the task's official split where one exists "
                   "(loads those tasks' data; needs --data-dir).")
@click.option("--require-official-splits", is_flag=True,
              help="Strict mode for results computed elsewhere (leaderboard submissions): a record whose split "
                   "cannot be checked (unknown task, data missing, a user --split-file) is invalid, and a "
                   "directory without any record is an error.")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, results_dir: Path, official_splits: bool, require_official_splits: bool,
             data_dir: Path | None) -> None:
    """Validate every record under RESULTS_DIR: schema, job id, metrics recomputed from the stored
    predictions, and (for matbench/file/paper protocols) the split's test ids.

    Exit 0 when all are valid, 1 otherwise; one line per invalid file.
    """
    from ..harness.validate import validate_results

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist")
    if require_official_splits and not official_splits:
        raise CrystalbenchError("--require-official-splits contradicts --no-official-splits")
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run) if official_splits else None
    report = validate_results(Path(results_dir), reg, run if official_splits else None,
                              require_official=require_official_splits)
    for path, problem in report.invalid:
        click.echo(f"invalid: {path}: {problem}", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{report.valid} valid, {len(report.invalid)} invalid record(s) in {results_dir}", err=True)
    if require_official_splits and report.valid + len(report.invalid) == 0:
        click.echo(f"invalid: {results_dir}: no record files (*.json) found", err=True)
        raise SystemExit(1)
    if report.invalid:
        raise SystemExit(1)

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
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, results_dir: Path, official_splits: bool, data_dir: Path | None) -> None:
    """Validate every record under RESULTS_DIR: schema, job id, metrics recomputed from the stored
    predictions, and (for matbench/file protocols) the split's test ids.

    Exit 0 when all are valid, 1 otherwise; one line per invalid file.
    """
    from ..harness.validate import validate_results

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist")
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run) if official_splits else None
    report = validate_results(Path(results_dir), reg, run if official_splits else None)
    for path, problem in report.invalid:
        click.echo(f"invalid: {path}: {problem}", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{report.valid} valid, {len(report.invalid)} invalid record(s) in {results_dir}", err=True)
    if report.invalid:
        raise SystemExit(1)

"""`bench results validate`: check every results file before it is trusted (the checks: `harness.validate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.runtime.validate import CHECKS, UserTasks

from .main import CONTEXT, cli, make_context, registry

_CHECK_LINES = "\n".join(f"  {i}. {text}" for i, text in enumerate(CHECKS, 1))


@cli.group(context_settings=CONTEXT)
def results() -> None:
    """Inspect and check results files."""


def _user_tasks(reg: Any, paths: tuple[Path, ...], structure_column: str | None,
                id_column: str | None) -> UserTasks | None:
    """Rebuild the task of a `bench run --data FILE` record from FILE (matched by the task name it gets),
    asked of the registry as `bench run` asks it (`bench_data_task`)."""
    if not paths:
        return None
    by_name: dict[str, str] = {}
    for p in paths:
        if not Path(p).exists():
            raise CrystalbenchError(f"--data {p} does not exist")
        path = str(Path(p).absolute())
        by_name[reg.data_task(path, {"target": "target"})[0].name] = path

    def make(rec: Any) -> Any:
        path = by_name.get(rec.job.task)
        if path is None:
            return None
        return reg.data_task(path, {"target": rec.job.target, "task_type": rec.task_type,
                                    "structure_column": structure_column, "id_column": id_column})[0]

    return make


@results.command("validate", help=f"""Validate every record under RESULTS_DIR.

\b
Each record file is checked:
{_CHECK_LINES}

Checks 6 and 7 load each task's data once (from --data-dir, as `bench run` does). A record whose
data is not here (an unknown task, missing files, a `bench run --data` task whose file is not
given with --data) gets a note and counts as valid, unless --require-official-splits or
--require-truth makes it invalid. Exit 0 when every record is valid, 1 otherwise; one line per
invalid file, naming the reason (for a forged ground truth: the first differing id).
""")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--official-splits/--no-official-splits", default=True, show_default=True,
              help="Check each record's test-id hash against the task's official split where one exists "
                   "(loads those tasks' data; needs --data-dir).")
@click.option("--truth/--no-truth", default=True, show_default=True,
              help="Compare every stored y_true with the task's own target for that id (loads the tasks' data).")
@click.option("--require-official-splits", is_flag=True,
              help="Strict mode for results computed elsewhere (leaderboard submissions): a record whose split "
                   "or ground truth cannot be checked (unknown task, data missing, a user --split-file) is "
                   "invalid, and a directory without any record is an error. Implies --require-truth.")
@click.option("--require-truth", is_flag=True,
              help="A record whose ground truth cannot be checked (unknown task, data missing, a --data task "
                   "without --data FILE) is invalid.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="The file (or directory) a `bench run --data PATH` record was computed from, so its ground "
                   "truth can be checked (repeatable; matched by the task name `user-<file stem>`).")
@click.option("--structure-column", metavar="COLUMN", help="As given to `bench run --data` (default: auto-detected).")
@click.option("--id-column", metavar="COLUMN", help="As given to `bench run --data` (default: auto-detected).")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, results_dir: Path, official_splits: bool, truth: bool, require_official_splits: bool,
             require_truth: bool, data_paths: tuple[Path, ...], structure_column: str | None, id_column: str | None,
             data_dir: Path | None) -> None:
    from crystalbench.runtime.validate import validate_results

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist")
    if require_official_splits and not official_splits:
        raise CrystalbenchError("--require-official-splits contradicts --no-official-splits")
    if (require_truth or require_official_splits) and not truth:
        raise CrystalbenchError("--require-truth (implied by --require-official-splits) contradicts --no-truth")
    run = make_context(data_dir=data_dir)
    needs_data = official_splits or truth
    reg = registry(ctx, run) if needs_data else None
    report = validate_results(Path(results_dir), reg, run if needs_data else None,
                              require_official=require_official_splits, official=official_splits, truth=truth,
                              require_truth=require_truth,
                              user_tasks=_user_tasks(reg or registry(ctx, run), data_paths, structure_column,
                                                     id_column) if data_paths else None)
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

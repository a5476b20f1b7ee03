"""`bench data ...` and `bench featurize`: where data lives, descriptor tables."""

from __future__ import annotations

from pathlib import Path

import click

from ..harness import paths
from ..harness.errors import CrystalbenchError
from .listing import available
from .main import CONTEXT, cli, make_context, registry


@cli.group(context_settings=CONTEXT)
def data() -> None:
    """Where data lives and which tasks can run offline."""


@data.command("path")
@click.option("--data-dir", type=click.Path(path_type=Path))
def data_path_cmd(data_dir: Path | None) -> None:
    """Print the data directory in use."""
    click.echo(str(paths.data_dir(data_dir)))


@data.command("status")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def data_status(ctx: click.Context, data_dir: Path | None) -> None:
    """Which tasks have their data in the data directory."""
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run)
    ddir = run.data_dir
    click.echo(f"data directory: {ddir}{'' if ddir.is_dir() else ' (does not exist)'}")
    rows = []
    for name, t in reg.tasks.items():
        rows.append([name, t.group, t.size if t.size is not None else "", "yes" if available(t, run) else "MISSING"])
    from tabulate import tabulate

    click.echo(tabulate(rows, headers=["task", "group", "size", "data"], tablefmt="simple"))


@cli.command(context_settings=CONTEXT)
@click.option("--descriptors", required=True, metavar="NAME", help="Descriptor set (see `bench list descriptors`).")
@click.option("-t", "--task", metavar="NAME", help="Featurize a registered task's structures.")
@click.option("--data", "data_path", type=click.Path(exists=True, path_type=Path), help="...or your own file.")
@click.option("--structure-column", metavar="COLUMN")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write (id column + features).")
@click.option("--jobs", type=int, help="Worker processes (default: all cores).")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--cache-dir", type=click.Path(path_type=Path))
@click.pass_context
def featurize(ctx: click.Context, descriptors: str, task: str | None, data_path: Path | None,
              structure_column: str | None, out: Path, jobs: int | None, data_dir: Path | None,
              cache_dir: Path | None) -> None:
    """Export a descriptor table (cached, parallel) as CSV."""
    from ..harness.featurize import export_table

    if Path(out).is_dir():
        raise CrystalbenchError(f"--out {out} is a directory; give a file name such as {Path(out) / 'features.csv'}")
    run = make_context(data_dir=data_dir, cache_dir=cache_dir, jobs=jobs, progress=True)
    reg = registry(ctx, run)
    spec = reg.descriptor(descriptors)
    if bool(task) == bool(data_path):
        raise CrystalbenchError("give exactly one of --task NAME or --data PATH")
    if task:
        dataset = reg.task(task).load(run)
    else:
        from ..tasks.user import load_user_dataset

        assert data_path is not None
        dataset = load_user_dataset(data_path, run, target=None, structure_column=structure_column)
    try:
        path = export_table(spec, dataset, out, run)
    except OSError as exc:
        raise CrystalbenchError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path} ({len(dataset)} rows x {len(spec.feature_names)} descriptors)", err=True)

"""`bench leaderboard build`: render the leaderboard from results files only."""

from __future__ import annotations

from pathlib import Path

import click

from ..harness.errors import CrystalbenchError
from ..harness.paths import DEFAULT_RESULTS_DIR
from .main import CONTEXT, cli, registry


@cli.group(context_settings=CONTEXT)
def leaderboard() -> None:
    """Render leaderboards from results files."""


@leaderboard.command("build")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("leaderboard/LEADERBOARD.md"), show_default=True)
@click.option("--title", default="crystalbench leaderboard", show_default=True)
@click.pass_context
def leaderboard_build(ctx: click.Context, results_dir: Path, out: Path, title: str) -> None:
    """Markdown table (tasks x models, mean ± std, best in bold) from RESULTS_DIR only.

    Every record is validated first; invalid ones are skipped and named.
    """
    from ..leaderboard.markdown import build_leaderboard

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist; run `bench run` first")
    if Path(out).is_dir():
        raise CrystalbenchError(f"--out {out} is a directory; give a file name such as {Path(out) / 'LEADERBOARD.md'}")
    # units come from the installed task specs, never from a (possibly crafted) results file
    units = {name: spec.unit for name, spec in registry(ctx).tasks.items()}
    path, skipped = build_leaderboard(results_dir, out, title=title, units=units)
    for p, why in skipped:
        why = why.replace(f"{p}: ", "")
        click.echo(f"warning: skipped invalid result file {p}: {why}", err=True)
    click.echo(f"wrote {path}", err=True)

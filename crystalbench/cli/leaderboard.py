"""`bench leaderboard build`: render the leaderboard (markdown and/or a static HTML site) from results files only."""

from __future__ import annotations

from pathlib import Path

import click

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.paths import DEFAULT_RESULTS_DIR
from crystalbench.contract.store import check_output_dir, check_output_file, output_errors

from .main import CONTEXT, cli, registry

DEFAULT_OUT = Path("leaderboard/LEADERBOARD.md")


@cli.group(context_settings=CONTEXT)
def leaderboard() -> None:
    """Render leaderboards from results files."""


@leaderboard.command("build")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help=f"Markdown file to write [default: {DEFAULT_OUT}, unless only --html is given]. Text after "
                   "'<!-- hand-written: kept by bench leaderboard build -->' in an existing file is kept.")
@click.option("--html", "html_dir", type=click.Path(path_type=Path), default=None,
              help="Also (or only) write a self-contained static site into this directory (opens from file://).")
@click.option("--no-plots", is_flag=True, help="Build the HTML site without pymatviz plots (faster).")
@click.option("--title", default="crystalbench leaderboard", show_default=True)
@click.pass_context
def leaderboard_build(ctx: click.Context, results_dir: Path, out: Path | None, html_dir: Path | None,
                      no_plots: bool, title: str) -> None:
    """Leaderboard (tasks x model configurations, mean ± std, best in bold) from RESULTS_DIR only.

    Writes markdown to --out (default leaderboard/LEADERBOARD.md); with --html DIR, writes the site
    (index, a page per task and per model, paper figures, a copy of every result JSON) and writes
    markdown only when --out is given too. Every record is validated first; invalid ones are skipped
    and named.
    """
    from ..leaderboard.collect import collect
    from ..leaderboard.markdown import build_leaderboard

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist; run `bench run` first")
    if out is None and html_dir is None:
        out = DEFAULT_OUT
    if out is not None and Path(out).is_dir():
        raise CrystalbenchError(f"--out {out} is a directory; give a file name such as {Path(out) / 'LEADERBOARD.md'}")
    if out is not None:  # never onto a record, never a .json into the records it reads
        check_output_file(out, option="--out", reads=[results_dir])
    if html_dir is not None:
        from ..leaderboard.html import check_site_dir

        check_output_dir(html_dir, option="--html", reads=[results_dir])  # a rebuild must not replace its input
        check_site_dir(html_dir)
    # units and model references come from the installed plugins, never from a (possibly crafted) results file
    reg = registry(ctx)
    units = {name: spec.unit for name, spec in reg.tasks.items()}
    summary = collect(results_dir, units=units)
    for p, why in summary.skipped:
        why = why.replace(f"{p}: ", "")
        click.echo(f"warning: skipped invalid result file {p}: {why}", err=True)
    if out is not None:
        with output_errors("--out", out):
            path, _ = build_leaderboard(results_dir, out, title=title, summary=summary)
        click.echo(f"wrote {path}", err=True)
    if html_dir is not None:
        from ..leaderboard.html import build_site
        from ..leaderboard.plots import unavailable

        models = {name: {"description": spec.description, "reference": getattr(spec, "reference", "")}
                  for name, spec in reg.models.items()}
        if not no_plots and (reason := unavailable()):
            click.echo(f"warning: the site has no plots: {reason}", err=True)
        with output_errors("--html", html_dir):
            index = build_site(summary, html_dir, title=title, models=models, with_plots=not no_plots)
        click.echo(f"wrote {index} (open it in a browser; the directory is self-contained)", err=True)

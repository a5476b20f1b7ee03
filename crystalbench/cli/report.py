"""`bench report paper`: our validated numbers next to the paper's, with the ratio."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..harness.paths import DEFAULT_RESULTS_DIR
from ..harness.store import atomic_write
from .main import CONTEXT, cli


@cli.group("report", context_settings=CONTEXT)
def report() -> None:
    """Reports built from results."""


@report.command("paper")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the markdown here (default: stdout).")
@click.option("--all", "include_missing", is_flag=True, help="Also list the paper entries whose value is still missing.")
@click.option("--json", "as_json", is_flag=True, help="JSON rows instead of markdown.")
def report_paper(results_dir: Path, out: Path | None, include_missing: bool, as_json: bool) -> None:
    """Ours vs the paper (Gong et al. 2023 tables, Matbench v0.1), from validated records only.

    \b
    Example:
      bench run --suite paper-table1 -t phonon_cv && bench report paper
    """
    from ..paper import as_rows, compare, render_markdown

    rows = compare(results_dir)
    text = json.dumps(as_rows(rows), indent=1) + "\n" if as_json else render_markdown(rows, include_missing=include_missing)
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write(out, text)
        click.echo(f"wrote {out}", err=True)

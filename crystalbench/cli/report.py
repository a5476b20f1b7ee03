"""`bench report paper`: our validated numbers next to the paper's, with intervals, ratios and paired tests."""

from __future__ import annotations

import json
from pathlib import Path

import click

from crystalbench.contract.errors import BadInputError
from crystalbench.contract.paths import DEFAULT_RESULTS_DIR
from crystalbench.contract.store import atomic_write

from .main import CONTEXT, cli


@cli.group("report", context_settings=CONTEXT)
def report() -> None:
    """Reports built from results."""


def _check_out(out: Path, results_dir: Path, force: bool) -> None:
    """Never replace a file without --force, and never a record, whatever the flags (one error line)."""
    if out.is_dir():
        raise BadInputError(f"--out {out} is a directory; name a file")
    try:
        inside = out.resolve().is_relative_to(results_dir.resolve())
    except OSError:
        inside = False
    if inside and out.suffix == ".json":
        raise BadInputError(f"--out {out} is inside the results directory {results_dir}: it could replace a record; "
                            "write the report elsewhere")
    if out.exists() and not force:
        raise BadInputError(f"--out {out} exists; pass --force to replace it")


@report.command("paper")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write the report here (default: stdout).")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@click.option("--all", "include_missing", is_flag=True,
              help="List every cell of the paper, each missing one with the bench run command that fills it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (rows, paired tests, importances) instead of markdown.")
def report_paper(results_dir: Path, out: Path | None, force: bool, include_missing: bool, as_json: bool) -> None:
    """Ours vs the paper (Gong et al. 2023 Tables 1-2, Figs. 2-3, S2/S3 searches; Matbench v0.1).

    Only validated records whose settings equal a cell's configuration count for it
    (no shortened runs, no tuning trials); each cell shows mean ± std, the 95%
    interval over seeds/folds and n, and the paired tests compare GNN vs de-GNN and
    mean vs sum pooling on the same splits (docs/report.md).

    \b
    Example:
      bench run --suite paper-table1 -t phonon_cv && bench report paper
      bench report paper --all --out PAPER.md     # every cell, with its fill command
    """
    from ..paper import as_json as report_json
    from ..paper import build_report, render_markdown

    if out is not None:
        _check_out(out, results_dir, force)
    rep = build_report(results_dir)
    text = (json.dumps(report_json(rep), indent=1) + "\n" if as_json
            else render_markdown(rep, include_missing=include_missing))
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write(out, text)
        click.echo(f"wrote {out}", err=True)

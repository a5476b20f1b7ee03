"""`bench docs`: the parts of the docs that come from code or from the committed result records.

`bench docs params`: the hyperparameter tables of docs/models.md, generated from
the models' params classes, between markers.

`bench docs results`: the published reference results. From the records under
leaderboard/results it writes leaderboard/LEADERBOARD.md (`bench leaderboard
build`), docs/paper-results.md (`bench report paper --all`, byte for byte: every
cell, the unmeasured ones with the command that fills each) and the
README's paper table (the report's Table 1 summary, between markers). Text after
each file's hand-written marker is kept, so the discussion of the numbers lives
beside them without being overwritten.

`--check` fails (exit 1) when a file is out of date, so a test keeps the docs
from drifting and the published numbers from disagreeing with their records.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.params import params_table
from crystalbench.contract.store import atomic_write, check_output_file
from crystalbench.runtime.registry import Registry

from .main import CONTEXT, cli, registry

BEGIN = "<!-- BEGIN GENERATED: params (bench docs params) -->"
END = "<!-- END GENERATED: params -->"
RESULTS_BEGIN = "<!-- BEGIN GENERATED: paper results (bench docs results) -->"
RESULTS_END = "<!-- END GENERATED: paper results -->"
REPORT_MARKER = "<!-- hand-written: kept by bench docs results -->"
BUILTIN_DIST = "crystalbench"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def params_markdown(reg: Registry, only_builtin: bool = True) -> str:
    """One table per model: name, type, default, description."""
    out = [BEGIN, "", "Generated from each model's typed hyperparameters; unknown keys in `--config` are errors.", ""]
    for name, spec in sorted(reg.models.items()):
        owner = reg.owner.get(("model", name))
        dist = next((p.distribution for p in reg.plugins if p.name == owner), None)
        if only_builtin and dist != BUILTIN_DIST:
            continue
        rows = params_table(spec.params_class)
        out.append(f"#### `{name}`")
        out.append("")
        if not rows:
            out += ["No hyperparameters.", ""]
            continue
        out += ["| hyperparameter | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| `{r[0]}` | {_cell(r[1])} | `{_cell(r[2])}` | {_cell(r[3])} |" for r in rows]
        if spec.poolings and not any(r[0] == "pooling" for r in rows):
            default = spec.default_pooling or "mean; sum for extensive targets"
            choices = " \\| ".join(map(repr, spec.poolings))
            out.append(f"| `pooling` | {choices} | {default} | readout (`--pooling`) |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def render_into(text: str, block: str, begin: str = BEGIN, end: str = END,
                heading: str = "## Hyperparameters of every built-in model") -> str:
    """`text` with the part between `begin` and `end` replaced by `block` (appended under `heading` if absent)."""
    if begin in text and end in text:
        head = text[: text.index(begin)]
        tail = text[text.index(end) + len(end):]
        return head + block + tail
    return text.rstrip("\n") + f"\n\n{heading}\n\n" + block + "\n"


def _check_or_write(files: dict[Path, tuple[str, str]], check: bool, fix: str) -> None:
    """Compare (`check`: exit 1 naming each stale file) or write each path's new text; values are (old, new)."""
    stale = [p for p, (old, new) in files.items() if old != new]
    if check:
        for p in stale:
            old, new = files[p]
            diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(p), "generated", n=1))
            click.echo(diff[:4000], err=True)
            click.echo(f"{p} is out of date: run `{fix}`", err=True)
        if stale:
            raise SystemExit(1)
        for p in files:
            click.echo(f"{p} is up to date", err=True)
        return
    for p in stale:
        atomic_write(p, files[p][1])
    for p in files:
        click.echo(f"wrote {p}" if p in stale else f"{p} is up to date", err=True)


@cli.group(context_settings=CONTEXT)
def docs() -> None:
    """Generate the parts of the docs that come from code."""


@docs.command("params")
@click.option("--file", "path", type=click.Path(path_type=Path), default=Path("docs/models.md"), show_default=True)
@click.option("--check", is_flag=True, help="Exit 1 if the file is out of date instead of writing it.")
@click.pass_context
def docs_params(ctx: click.Context, path: Path, check: bool) -> None:
    """Write (or --check) the generated hyperparameter tables in docs/models.md."""
    if not path.is_file():
        raise CrystalbenchError(f"{path} does not exist (run from the repository root or pass --file)")
    if not check:  # never onto a result record (a mistyped --file once replaced one)
        check_output_file(path, option="--file")
    ctx.ensure_object(dict)["quiet_problems"] = True
    old = path.read_text()
    _check_or_write({path: (old, render_into(old, params_markdown(registry(ctx))))}, check, "bench docs params")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


@docs.command("results")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("leaderboard/results"), show_default=True,
              help="The committed reference records.")
@click.option("--leaderboard", "board", type=click.Path(path_type=Path), default=Path("leaderboard/LEADERBOARD.md"),
              show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=Path("docs/paper-results.md"),
              show_default=True)
@click.option("--readme", type=click.Path(path_type=Path), default=Path("README.md"), show_default=True,
              help="Its paper table (between the generated markers) is the report's Table 1 summary.")
@click.option("--check", is_flag=True, help="Exit 1 if any file is out of date instead of writing it.")
@click.pass_context
def docs_results(ctx: click.Context, results_dir: Path, board: Path, report_path: Path, readme: Path,
                 check: bool) -> None:
    """Write (or --check) the published results: LEADERBOARD.md, docs/paper-results.md, the README's table.

    Everything comes from the validated records under --results-dir; an invalid
    record is an error here (a published page never silently drops one).

    \b
    After a reference grid finished:
      bench results validate leaderboard/results --require-official-splits
      bench docs results && git add leaderboard docs/paper-results.md README.md
    """
    from ..leaderboard.collect import collect
    from ..leaderboard.markdown import keep_hand_written, render_summary
    from ..paper import build_report, render_markdown, summary_markdown

    if not results_dir.is_dir():
        raise CrystalbenchError(f"--results-dir {results_dir} is not a directory (run from the repository root)")
    if not readme.is_file():
        raise CrystalbenchError(f"--readme {readme} does not exist (run from the repository root or pass --readme)")
    if not check:
        for path, option in ((board, "--leaderboard"), (report_path, "--report"), (readme, "--readme")):
            check_output_file(path, option=option, reads=(results_dir,))
    ctx.ensure_object(dict)["quiet_problems"] = True
    summary = collect(results_dir)
    if summary.skipped:
        path, why = summary.skipped[0]
        raise CrystalbenchError(f"{path}: {why} ({len(summary.skipped)} invalid record(s) under {results_dir}; "
                                "`bench results validate` names them all)")
    report = build_report(results_dir, registry=registry(ctx))
    block = "\n".join([RESULTS_BEGIN, "", summary_markdown(report).rstrip("\n"), "", RESULTS_END])
    files = {
        board: (_read(board), keep_hand_written(render_summary(summary), board)),
        report_path: (_read(report_path), keep_hand_written(render_markdown(report, include_missing=True), report_path,
                                                            REPORT_MARKER)),
        readme: (_read(readme), render_into(_read(readme), block, RESULTS_BEGIN, RESULTS_END,
                                            "## Reference results")),
    }
    _check_or_write(files, check, "bench docs results")

"""`bench data ...` and `bench featurize`: where data lives, getting it, descriptor tables."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import click

from crystalbench.contract import paths
from crystalbench.contract.context import RunContext
from crystalbench.contract.download import OFFLINE_ENV, RemoteFile, downloads_off, fetch_file
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.specs import TaskSpec
from crystalbench.contract.store import check_output_file, output_errors, probe_writable

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


@dataclass
class FetchPlan:
    """What `bench data fetch` would do for one task: nothing, downloads, and/or manual steps."""

    task: str
    present: bool
    downloads: list[RemoteFile] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)

    @property
    def next_step(self) -> str:
        """A short next step for `bench data status` (the manual steps are listed below the table)."""
        if self.present:
            return ""
        fetch = f"bench data fetch {self.task}" if self.downloads else ""
        manual = f"by hand: {len(self.manual)} item(s), see below" if self.manual else ""
        return " + ".join(x for x in (fetch, manual) if x)


def plan_fetch(spec: TaskSpec, run: RunContext) -> FetchPlan:
    """Which of a task's missing raw files can be downloaded (with their checksums) and which cannot.

    The task says so itself (`TaskSpec.fetch`: a `RemoteFile` per download, a line per manual
    step), built-in or plugin alike; a task without `fetch` (or whose `fetch` fails without its
    data) gets its own description of what it needs.
    """
    plan = FetchPlan(spec.name, present=available(spec, run))
    if plan.present:
        return plan
    try:
        steps = list(spec.fetch(run)) if spec.fetch is not None else []
    except Exception as exc:  # a plugin's fetch() must not hide the other tasks' plans
        steps = [f"{spec.name}'s fetch() failed ({type(exc).__name__}: {str(exc)[:150]})"]
    for step in steps:
        if isinstance(step, RemoteFile):
            plan.downloads.append(step)
        else:
            plan.manual.append(str(step))
    if not plan.downloads and not plan.manual:
        what = spec.description or spec.source or "no description"
        plan.manual.append(f"no download known for {spec.name}: {what} (`bench run -t {spec.name}` names what is "
                           f"missing; see docs/data.md)")
    return plan


@data.command("status")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def data_status(ctx: click.Context, data_dir: Path | None) -> None:
    """Which tasks have their data in the data directory, and the next step for each missing one."""
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run)
    ddir = run.data_dir
    click.echo(f"data directory: {ddir}{'' if ddir.is_dir() else ' (does not exist)'}")
    rows = []
    by_hand: dict[str, list[str]] = {}
    for name, t in reg.tasks.items():
        plan = plan_fetch(t, run)
        rows.append([name, t.group, t.size if t.size is not None else "", "yes" if plan.present else "MISSING",
                     plan.next_step])
        for step in plan.manual:
            by_hand.setdefault(step, []).append(name)
    from tabulate import tabulate

    click.echo(tabulate(rows, headers=["task", "group", "size", "data", "next step"], tablefmt="simple"))
    if by_hand:
        click.echo("\nby hand (cannot be downloaded by `bench data fetch`):")
        for step, names in by_hand.items():
            shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
            click.echo(f"  - {step}  [{shown}]")


@data.command("fetch")
@click.argument("tasks", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def data_fetch(ctx: click.Context, tasks: tuple[str, ...], data_dir: Path | None) -> None:
    """Download what TASKS need into the data directory (checksum-verified, atomic).

    TASKS are names or glob patterns (`'matbench_*'`). Files that cannot be downloaded
    are named with where to get them. Exit 0 when every task's data is present afterwards,
    1 when some still are not (manual steps or failed downloads), 2 on bad input.
    """
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run)
    names = _expand(tasks, list(reg.tasks))
    offline = downloads_off(run)
    incomplete: list[str] = []
    plans = {name: plan_fetch(reg.tasks[name], run) for name in names}
    dests = {rf.dest.parent for plan in plans.values() for rf in plan.downloads}
    if dests:  # before any download: a read-only data directory is one line, not a traceback after it
        probe_writable(run.data_dir, "data directory")
        for folder in sorted(d for d in dests if d.is_dir() and d != run.data_dir):  # never creates folders
            probe_writable(folder, "data directory")
    for name in names:
        plan = plans[name]
        if plan.present:
            click.echo(f"{name}: present")
            continue
        failed = False
        for rf in plan.downloads:
            if offline:
                click.echo(f"{name}: would download {rf.url} -> {rf.dest}, but downloads are off "
                           f"({OFFLINE_ENV}=1)", err=True)
                failed = True
                continue
            try:
                with output_errors("into the data directory:", rf.dest):
                    fetched = fetch_file(rf)
            except CrystalbenchError as exc:
                click.echo(f"{name}: {exc}", err=True)
                failed = True
                continue
            verb = "downloaded" if fetched else "already present"
            note = f" ({rf.note})" if rf.note else ""
            click.echo(f"{name}: {verb} {rf.dest} (sha256 verified){note}")
        for step in plan.manual:
            click.echo(f"{name}: cannot download {step}", err=True)
        if failed or plan.manual or not available(reg.tasks[name], run):
            if not failed and not plan.manual:
                click.echo(f"{name}: files fetched but the task still reports its data missing; "
                           f"`bench run -t {name}` names what it needs", err=True)
            incomplete.append(name)
    if incomplete:
        click.echo(f"data still missing for: {', '.join(incomplete)}", err=True)
        raise SystemExit(1)


def _expand(patterns: tuple[str, ...], known: list[str]) -> list[str]:
    """Task names from names or glob patterns; an unknown name or an empty pattern is bad input."""
    import fnmatch

    out: list[str] = []
    for pat in patterns:
        hits = [n for n in known if fnmatch.fnmatchcase(n, pat)] if any(c in pat for c in "*?[") else (
            [pat] if pat in known else [])
        if not hits:
            close = difflib.get_close_matches(pat, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else " (see `bench list tasks`)"
            raise CrystalbenchError(f"unknown task {pat!r}{hint}")
        out.extend(h for h in hits if h not in out)
    return out


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
    from crystalbench.contract.featurize import export_table

    if Path(out).is_dir():
        raise CrystalbenchError(f"--out {out} is a directory; give a file name such as {Path(out) / 'features.csv'}")
    check_output_file(out, option="--out")
    run = make_context(data_dir=data_dir, cache_dir=cache_dir, jobs=jobs, progress=True)
    reg = registry(ctx, run)
    spec = reg.descriptor(descriptors)
    if bool(task) == bool(data_path):
        raise CrystalbenchError("give exactly one of --task NAME or --data PATH")
    if task:
        dataset = reg.task(task).load(run)
    else:
        assert data_path is not None
        options = {"target": None, "unlabelled": True, "structure_column": structure_column}
        dataset = reg.data_task(str(Path(data_path).absolute()), options)[0].load(run)
    with output_errors("--out", out):
        path = export_table(spec, dataset, out, run)
    click.echo(f"wrote {path} ({len(dataset)} rows x {len(spec.feature_names)} descriptors)", err=True)

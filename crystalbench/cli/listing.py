"""`bench list ...` and `bench plugins`: what can be run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crystalbench.contract.context import RunContext
from crystalbench.contract.enums import PluginKind
from crystalbench.contract.specs import TaskSpec

from .main import CONTEXT, cli, make_context, print_rows, registry


@cli.group("list", context_settings=CONTEXT)
def list_() -> None:
    """List models, tasks or descriptor sets."""


def available(task: TaskSpec, run: RunContext) -> bool:
    """A task's cheap data check; a plugin bug there only marks the task unavailable."""
    try:
        return bool(task.available(run)) if task.available else True
    except Exception:
        return False


@list_.command("models")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """Models with what they need and their defaults."""
    reg = registry(ctx)
    rows = []
    for name, s in reg.models.items():
        rows.append({
            "name": name, "plugin": reg.owner[("model", name)], "needs": s.needs,
            "descriptors": s.descriptors or "", "pooling": "/".join(s.poolings),
            "classification": s.classification, "hybridizable": s.accepts_features,
            "inputs": list(s.inputs), "description": s.description, "reference": s.reference,
            "defaults": s.default_params(),
        })
    print_rows(rows, as_json, ["name", "plugin", "needs", "descriptors", "pooling", "description"])


@list_.command("tasks")
@click.option("--json", "as_json", is_flag=True)
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def list_tasks(ctx: click.Context, as_json: bool, data_dir: Path | None) -> None:
    """Tasks with size, target, unit, type, whether their data is here and their licence."""
    run = make_context(data_dir=data_dir)
    reg = registry(ctx, run)
    rows: list[dict[str, Any]] = []
    for name, t in reg.tasks.items():
        rows.append({
            "name": name, "group": t.group, "size": t.size, "target": t.target, "unit": t.unit,
            "type": t.task_type, "extensive": t.extensive, "protocol": t.protocol, "available": available(t, run),
            "provides": t.provides, "leaks": list(t.leaks),
            "source": t.source, "license": t.license, "description": t.description,
            "source_short": t.source_short, "data_relation": t.data_relation, "paper_count": t.paper_count,
            "paper_data": t.paper_data,
        })
    # the table shows the short source and the paper's sample count beside ours (--json: both sources, the note)
    table = rows if as_json else [{**r, "source": r["source_short"] or r["source"]} for r in rows]
    print_rows(table, as_json, ["name", "group", "size", "paper_count", "data_relation", "source", "target", "unit",
                                "type", "protocol", "available", "license"])


@list_.command("descriptors")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_descriptors(ctx: click.Context, as_json: bool) -> None:
    """Descriptor sets and their feature names."""
    reg = registry(ctx)
    rows = [{
        "name": n, "plugin": reg.owner[("descriptor", n)], "n_features": len(d.feature_names),
        "version": d.version, "features": list(d.feature_names), "description": d.description,
    } for n, d in reg.descriptors.items()]
    print_rows(rows, as_json, ["name", "plugin", "n_features", "version", "description"])


@list_.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Full rows: every entry of each suite and its job list.")
@click.pass_context
def list_suites(ctx: click.Context, as_json: bool) -> None:
    """Suites (`bench run --suite NAME`): name, description and number of jobs.

    The number of jobs is counted without loading data; a suite naming a model
    or task that no installed plugin provides shows the problem instead.
    """
    from dataclasses import asdict

    from crystalbench.contract.errors import CrystalbenchError as _Error
    from crystalbench.runtime.suites import suite_plan

    reg = registry(ctx)
    rows: list[dict[str, Any]] = []
    for name, s in reg.suites.items():
        row: dict[str, Any] = {"name": name, "plugin": reg.owner[("suite", name)], "description": s.description,
                               "reference": s.reference}
        try:
            plan = suite_plan(reg, s)
            row["jobs"] = len(plan)
            row["problem"] = ""
        except _Error as exc:
            plan, row["jobs"], row["problem"] = [], None, str(exc)
        if as_json:
            row["entries"] = [asdict(e) for e in s.entries]
            row["job_list"] = [{"model": p.model, "task": p.task, "protocol": p.protocol, "fold": p.fold,
                                "seed": p.seed, "label": p.label} for p in plan]
        rows.append(row)
    print_rows(rows, as_json, ["name", "jobs", "description", "problem"] if any(r["problem"] for r in rows)
               else ["name", "jobs", "description"])


PROVIDED = tuple(kind.plural for kind in PluginKind)
_SHOWN = 3  # names per cell in the table; --json lists them all


def _cell(names: list[str]) -> str:
    """A table cell of names, shortened to the first few and a count (`bench list ...` shows them all)."""
    if len(names) <= _SHOWN:
        return ", ".join(names)
    return ", ".join(names[: _SHOWN - 1]) + f", ... (+{len(names) - _SHOWN + 1} more)"


@cli.command("plugins", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Full rows: every name each plugin provides, its hooks.")
@click.pass_context
def plugins_cmd(ctx: click.Context, as_json: bool) -> None:
    """Installed plugins (built-in and third-party): version, what each provides, problems.

    \b
    One column per kind of thing a plugin provides (models, tasks, descriptor
    sets, executors; long lists shortened, all in --json) and one for observers
    (plugins implementing bench_run_finished). A plugin that failed to import or
    raised in a hook is shown as BROKEN with the reason; the others work.
    """
    ctx.ensure_object(dict)["quiet_problems"] = True
    reg = registry(ctx)
    rows = []
    for p in reg.plugins:
        status = "disabled" if p.disabled else ("BROKEN: " + p.error if p.error else "ok")
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.provides.items())
        row: dict[str, Any] = {"name": p.name, "version": p.version or "", "distribution": p.distribution or "",
                               "hooks": ", ".join(p.hooks), "provides": provides, "status": status}
        for kind in PROVIDED:
            row[kind] = list(p.provides.get(kind, []))
        row["observer"] = "bench_run_finished" in p.hooks
        rows.append(row)
    if as_json:
        print_rows(rows, True, [])
    else:
        kinds = [k for k in PROVIDED if any(r[k] for r in rows)]
        table = [{**r, **{k: _cell(r[k]) for k in kinds}, "observes": "run_finished" if r["observer"] else ""}
                 for r in rows]
        headers = ["name", "distribution", "version", *kinds]
        if any(r["observer"] for r in rows):
            headers.append("observes")
        print_rows(table, False, [*headers, "status"])
        for problem in reg.problems:
            click.echo(f"warning: {problem}", err=True)

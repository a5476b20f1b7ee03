"""`bench`: the command line.

Every user-facing problem (unknown name, missing data, bad input) is printed
as one `error:` line and exit code 2; a failed job makes exit code 1 after
the rest of the grid has run.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

import click

from .errors import CrystalbenchError
from . import paths
from .paths import DEFAULT_RESULTS_DIR
from .registry import Registry, load_registry, warn_problems

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _registry(ctx: click.Context, data_dir: Path | None = None) -> Registry:
    if data_dir is not None:  # plugins (e.g. TOML user tasks in <data_dir>/tasks) read it at load time
        os.environ[paths.DATA_ENV] = str(Path(data_dir).expanduser())
    obj = ctx.ensure_object(dict)
    if "registry" not in obj:
        obj["registry"] = load_registry(disable=obj.get("disable", ()))
        if not obj.get("quiet_problems"):
            warn_problems(obj["registry"])
    return obj["registry"]


class _Group(click.Group):
    """Turns CrystalbenchError into a one-line message instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CrystalbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished jobs are saved; run the same command again to resume.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("--disable-plugin", "disable", multiple=True, metavar="NAME",
              help="Skip a plugin by entry-point name (repeatable; also $CRYSTALBENCH_DISABLE_PLUGINS=a,b).")
@click.version_option(package_name="crystalbench")
@click.pass_context
def cli(ctx: click.Context, disable: tuple[str, ...]) -> None:
    """Benchmark ML models on crystal structures.

    \b
    Quick start:
      bench list tasks                          what can be run (and whether its data is here)
      bench run -m dummy -m rf -t chain1d_short one grid, results in ./results, resumable
      bench leaderboard build --out LEADERBOARD.md
    \b
    Models, tasks and descriptor sets come from plugins (`bench plugins`);
    built-ins are registered exactly like third-party ones.
    """
    ctx.ensure_object(dict)["disable"] = disable


# ----------------------------------------------------------------------------- run
def _jobs(jobs: int | None) -> int:
    """--jobs, exported as $CRYSTALBENCH_JOBS for task loaders that featurize while loading."""
    if jobs is not None and jobs < 1:
        raise CrystalbenchError("--jobs must be at least 1")
    if jobs is None:
        jobs = int(os.environ.get("CRYSTALBENCH_JOBS") or os.cpu_count() or 1)
    os.environ["CRYSTALBENCH_JOBS"] = str(jobs)
    return jobs


def _parse_folds(text: str | None) -> list[int] | None:
    if not text or text == "all":
        return None
    try:
        return sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise CrystalbenchError(f"--folds takes comma-separated fold indices like 0,2 (got {text!r})") from None


def _load_config(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CrystalbenchError(f"config file {path}: {exc}") from None


def _metric_line(rec: dict) -> str:
    m = rec.get("metrics") or {}
    if rec["status"] != "ok":
        return f"FAILED: {rec.get('error')}"
    if "accuracy" in m:
        return f"accuracy {m['accuracy']:.3f}  F1 {m['f1_macro']:.3f}"
    parts = [f"MAE {m['mae']:.4g}"]
    if m.get("mae_over_mad") is not None:
        parts.append(f"MAE/MAD {m['mae_over_mad']:.3f}")
    if m.get("r2") is not None:
        parts.append(f"R² {m['r2']:.3f}")
    return "  ".join(parts)


@cli.command(context_settings=CONTEXT)
@click.option("-m", "--model", "models", multiple=True, metavar="NAME", help="Model to run (repeatable).")
@click.option("-t", "--task", "tasks", multiple=True, metavar="NAME|GLOB",
              help="Task to run (repeatable; globs like 'desc_*' allowed).")
@click.option("--data", "data_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Benchmark your own file/directory instead of a registered task (needs --target).")
@click.option("--target", metavar="COLUMN", help="Target column of --data (not needed for an id_prop.csv directory).")
@click.option("--structure-column", metavar="COLUMN", help="Structure column of --data (auto-detected by default).")
@click.option("--id-column", metavar="COLUMN", help="Id column of --data (auto-detected by default).")
@click.option("--classification", is_flag=True, help="Treat --target of --data as class labels.")
@click.option("--strict", is_flag=True, help="Fail on the first bad row of --data instead of skipping it.")
@click.option("--protocol", type=click.Choice(["paper", "matbench", "file"]),
              help="Split protocol (default: the task's own). paper: seeded random split; "
                   "matbench: official 5-fold KFold; file: the task's id lists.")
@click.option("--split-file", type=click.Path(exists=True, path_type=Path),
              help='JSON {"train": [ids], "val": [ids], "test": [ids]} (or a list of those, one per fold).')
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed (repeatable; default 0). Sets split and init.")
@click.option("--folds", metavar="0,2", help="Only these fold indices (default: all folds of the protocol).")
@click.option("--epochs", type=int, help="Override the number of training epochs of every model that has one.")
@click.option("--pooling", type=click.Choice(["mean", "sum"]),
              help="GNN readout (default: sum for extensive targets, mean otherwise).")
@click.option("--descriptors", metavar="NAME",
              help="Attach this descriptor set as extra features (hybridizes models that accept them).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for GNNs, e.g. cuda.")
@click.option("--config", "config_path", type=click.Path(exists=True, path_type=Path),
              help="TOML of hyperparameters: top-level keys apply to every model, [model] tables to one.")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (default $CRYSTALBENCH_DATA_DIR).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache directory (default $CRYSTALBENCH_CACHE_DIR).")
@click.option("--jobs", type=int, help="Worker processes for featurization and structure loading (default: all cores).")
@click.option("--threads", type=int, default=lambda: int(os.environ.get("CRYSTALBENCH_THREADS", "1")),
              show_default="1 or $CRYSTALBENCH_THREADS",
              help="Torch intra-op threads per job (raise for large models on an idle machine).")
@click.option("--rerun", is_flag=True, help="Run jobs again even if their results exist.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per finished job on stdout.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.pass_context
def run(ctx, models, tasks, data_path, target, structure_column, id_column, classification, strict, protocol,
        split_file, seeds, folds, epochs, pooling, descriptors, device, config_path, results_dir, data_dir,
        cache_dir, jobs, threads, rerun, as_json, no_progress):
    """Run models on tasks; every finished job is saved, re-runs resume.

    \b
    Examples:
      bench run -m de-cgcnn -t phonon_cv
      bench run -m cgcnn -m roost -m rf -t 'desc_*' --epochs 50
      bench run -m dummy -t matbench_phonons --protocol matbench
      bench run -m rf --data my.csv --target band_gap
    """
    from .runner import RunOptions, run_grid

    jobs = _jobs(jobs)
    reg = _registry(ctx, data_dir)
    extra = {}
    if data_path is not None:
        from ..tasks.user import user_task

        spec = user_task(data_path, target=target, structure_column=structure_column, id_column=id_column,
                         task_type="classification" if classification else "regression", strict=strict)
        extra[spec.name] = spec
    if not models:
        raise CrystalbenchError("no model given: use -m NAME (see `bench list models`)")
    if not tasks and not extra:
        raise CrystalbenchError("no task given: use -t NAME or --data PATH (see `bench list tasks`)")
    if descriptors:
        reg.descriptor(descriptors)
    opts = RunOptions(
        models=list(models),
        tasks=list(tasks),
        results_dir=results_dir,
        data_dir=paths.data_dir(data_dir),
        cache_dir=paths.cache_dir(cache_dir),
        protocol=protocol,
        seeds=list(seeds) or [0],
        folds=_parse_folds(folds),
        epochs=epochs,
        pooling=pooling,
        device=device,
        descriptors=descriptors,
        config=_load_config(config_path),
        split_file=split_file,
        rerun=rerun,
        jobs=jobs,
        threads=max(1, threads),
        progress=not no_progress and not as_json,
    )

    def emit(rec: dict) -> None:
        if as_json:
            keep = ("model", "task", "protocol", "fold", "seed", "status", "metrics", "error", "timings", "config")
            click.echo(json.dumps({k: rec.get(k) for k in keep}), nl=True)
            sys.stdout.flush()
        else:
            from tqdm import tqdm

            label = f"{rec['model']} · {rec['task']} · fold {rec['fold']} · seed {rec['seed']}"
            tqdm.write(f"{'✓' if rec['status'] == 'ok' else '✗'} {label}: {_metric_line(rec)}", file=sys.stderr)

    summary = run_grid(reg, opts, on_record=emit, extra_tasks=extra)
    for p in summary.problems:  # task-level errors were already printed as they happened
        if p.startswith("skipped"):
            click.echo(f"warning: {p}", err=True)
    if not as_json:
        n_ok = sum(r["status"] == "ok" for r in summary.finished)
        click.echo(
            f"{n_ok} job(s) finished, {summary.failed} failed, {summary.skipped} already done; "
            f"results in {results_dir}. Next: bench leaderboard build --results-dir {results_dir}",
            err=True,
        )
    if summary.failed:
        sys.exit(1)
    if any(not p.startswith("skipped") for p in summary.problems):
        sys.exit(2)


# ----------------------------------------------------------------------------- list
@cli.group("list", context_settings=CONTEXT)
def list_() -> None:
    """List models, tasks or descriptor sets."""


def _available(task, ddir: Path) -> bool:
    """A task's cheap data check; a plugin bug there only marks the task unavailable."""
    try:
        return bool(task.available(ddir)) if task.available else True
    except Exception:
        return False


def _print_rows(rows: list[dict], as_json: bool, headers: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from tabulate import tabulate

    click.echo(tabulate([[r.get(h, "") for h in headers] for r in rows], headers=headers, tablefmt="simple"))


@list_.command("models")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_models(ctx, as_json):
    """Models with what they need and their defaults."""
    reg = _registry(ctx)
    rows = []
    for name, s in reg.models.items():
        rows.append({
            "name": name, "plugin": reg.owner[("model", name)], "needs": s.needs,
            "descriptors": s.descriptors or "", "pooling": "/".join(s.poolings),
            "classification": s.classification, "hybridizable": s.accepts_features,
            "description": s.description, "defaults": dict(s.defaults),
        })
    _print_rows(rows, as_json, ["name", "plugin", "needs", "descriptors", "pooling", "description"])


@list_.command("tasks")
@click.option("--json", "as_json", is_flag=True)
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def list_tasks(ctx, as_json, data_dir):
    """Tasks with size, target, unit, type and whether their data is here."""
    reg = _registry(ctx, data_dir)
    ddir = paths.data_dir(data_dir)
    rows = []
    for name, t in reg.tasks.items():
        avail = _available(t, ddir)
        rows.append({
            "name": name, "group": t.group, "size": t.size, "target": t.target, "unit": t.unit,
            "type": t.task_type, "extensive": t.extensive, "protocol": t.protocol, "available": bool(avail),
            "source": t.source, "license": t.license, "description": t.description,
        })
    _print_rows(rows, as_json, ["name", "group", "size", "target", "unit", "type", "protocol", "available"])


@list_.command("descriptors")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_descriptors(ctx, as_json):
    """Descriptor sets and their feature names."""
    reg = _registry(ctx)
    rows = [{
        "name": n, "plugin": reg.owner[("descriptor", n)], "n_features": len(d.feature_names),
        "version": d.version, "features": list(d.feature_names), "description": d.description,
    } for n, d in reg.descriptors.items()]
    _print_rows(rows, as_json, ["name", "plugin", "n_features", "version", "description"])


@cli.command("plugins", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_cmd(ctx, as_json):
    """Installed plugins (built-in and third-party), their versions, hooks and problems."""
    ctx.obj["quiet_problems"] = True
    reg = _registry(ctx)
    rows = []
    for p in reg.plugins:
        status = "disabled" if p.disabled else ("BROKEN: " + p.error if p.error else "ok")
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.provides.items())
        rows.append({"name": p.name, "version": p.version or "", "distribution": p.distribution or "",
                     "hooks": ", ".join(p.hooks), "provides": provides, "status": status})
    _print_rows(rows, as_json, ["name", "distribution", "version", "hooks", "status"])
    if not as_json:
        for p in reg.problems:
            click.echo(f"warning: {p}", err=True)


# ----------------------------------------------------------------------------- leaderboard
@cli.group(context_settings=CONTEXT)
def leaderboard() -> None:
    """Render leaderboards from results files."""


@leaderboard.command("build")
@click.option("--results-dir", type=click.Path(path_type=Path), default=DEFAULT_RESULTS_DIR, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("leaderboard/LEADERBOARD.md"), show_default=True)
@click.option("--title", default="crystalbench leaderboard", show_default=True)
def leaderboard_build(results_dir, out, title):
    """Markdown table (tasks x models, mean ± std, best in bold) from RESULTS_DIR only."""
    from ..leaderboard.markdown import build_leaderboard

    if not Path(results_dir).is_dir():
        raise CrystalbenchError(f"results directory {results_dir} does not exist; run `bench run` first")
    path = build_leaderboard(results_dir, out, title=title)
    click.echo(f"wrote {path}", err=True)


# ----------------------------------------------------------------------------- featurize
@cli.command(context_settings=CONTEXT)
@click.option("--descriptors", required=True, metavar="NAME", help="Descriptor set (see `bench list descriptors`).")
@click.option("-t", "--task", metavar="NAME", help="Featurize a registered task's structures.")
@click.option("--data", "data_path", type=click.Path(exists=True, path_type=Path), help="...or your own file.")
@click.option("--structure-column", metavar="COLUMN")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV to write (id column + features).")
@click.option("--jobs", type=int, help="Worker processes (default: all cores).")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--cache-dir", type=click.Path(path_type=Path))
@click.pass_context
def featurize(ctx, descriptors, task, data_path, structure_column, out, jobs, data_dir, cache_dir):
    """Export a descriptor table (cached, parallel) as CSV."""
    from .featurize import export_table

    jobs = _jobs(jobs)
    reg = _registry(ctx, data_dir)
    spec = reg.descriptor(descriptors)
    if bool(task) == bool(data_path):
        raise CrystalbenchError("give exactly one of --task NAME or --data PATH")
    if task:
        data = reg.task(task).load(paths.data_dir(data_dir))
    else:
        from ..tasks.user import load_user_dataset

        data = load_user_dataset(data_path, target=None, structure_column=structure_column)
    path = export_table(spec, data, out, jobs=jobs, cache_dir=paths.cache_dir(cache_dir), progress=True)
    click.echo(f"wrote {path} ({len(data)} rows x {len(spec.feature_names)} descriptors)", err=True)


# ----------------------------------------------------------------------------- data
@cli.group(context_settings=CONTEXT)
def data() -> None:
    """Where data lives and which tasks can run offline."""


@data.command("path")
@click.option("--data-dir", type=click.Path(path_type=Path))
def data_path_cmd(data_dir):
    """Print the data directory in use."""
    click.echo(str(paths.data_dir(data_dir)))


@data.command("status")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.pass_context
def data_status(ctx, data_dir):
    """Which tasks have their data in the data directory."""
    reg = _registry(ctx, data_dir)
    ddir = paths.data_dir(data_dir)
    click.echo(f"data directory: {ddir}{'' if ddir.is_dir() else ' (does not exist)'}")
    rows = []
    for name, t in reg.tasks.items():
        avail = _available(t, ddir)
        rows.append([name, t.group, t.size if t.size is not None else "", "yes" if avail else "MISSING"])
    from tabulate import tabulate

    click.echo(tabulate(rows, headers=["task", "group", "size", "data"], tablefmt="simple"))


def main() -> None:
    cli(prog_name="bench")


if __name__ == "__main__":
    main()

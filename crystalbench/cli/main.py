"""The `bench` group, shared helpers, and the error/exit-code policy."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from crystalbench.contract import paths
from crystalbench.contract.context import RunContext, configure_logging
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.store import describe_oserror, probe_writable
from crystalbench.runtime.registry import Registry, load_registry, warn_problems

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def make_context(
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    results_dir: Path | None = None,
    jobs: int | None = None,
    threads: int = 1,
    device: str = "cpu",
    progress: bool = False,
    debug: bool = False,
) -> RunContext:
    """The one place flags (and their documented environment defaults) become a RunContext."""
    if jobs is not None and jobs < 1:
        raise CrystalbenchError(f"--jobs must be at least 1 (got {jobs})")
    if threads < 1:
        raise CrystalbenchError(f"--threads must be at least 1 (got {threads})")
    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise CrystalbenchError(f"--cache-dir {cache_dir} is a file, not a directory")
    try:
        cdir = paths.cache_dir(cache_dir)
    except OSError as exc:
        raise CrystalbenchError(f"cache directory {cache_dir or '(default)'}: {describe_oserror(exc)}") from None
    probe_writable(cdir, "--cache-dir" if cache_dir is not None else "cache directory")  # read-only: one line now
    return RunContext(
        data_dir=paths.data_dir(data_dir),
        cache_dir=cdir,
        results_dir=Path(results_dir) if results_dir is not None else paths.DEFAULT_RESULTS_DIR,
        jobs=jobs if jobs is not None else (os.cpu_count() or 1),
        threads=threads,
        device=device,
        progress=progress,
        debug=debug,
    )


def registry(ctx: click.Context, run: RunContext | None = None) -> Registry:
    """The plugin registry, loaded once per command with the command's RunContext."""
    obj = ctx.ensure_object(dict)
    if "registry" not in obj:
        obj["registry"] = load_registry(disable=obj.get("disable", ()), ctx=run or make_context())
        if not obj.get("quiet_problems"):
            warn_problems(obj["registry"])
    return obj["registry"]  # type: ignore[no-any-return]


def print_rows(rows: list[dict[str, Any]], as_json: bool, headers: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    from tabulate import tabulate

    click.echo(tabulate([[r.get(h, "") for h in headers] for r in rows], headers=headers, tablefmt="simple"))


def threads_default() -> int:
    """`--threads` when not given: $CRYSTALBENCH_THREADS, else 1; a value that is no positive integer is one
    error line naming the variable (raised while the command's options are parsed, inside `Group.invoke`)."""
    raw = os.environ.get("CRYSTALBENCH_THREADS", "1").strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise CrystalbenchError(f"$CRYSTALBENCH_THREADS must be a positive integer, got {raw[:40]!r}")
    return int(raw)


class Group(click.Group):
    """Turns CrystalbenchError (and an unforeseen OSError: disk full, read-only file system) into a one-line
    message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrystalbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # a file system refusal no check foresaw: still one line naming the file
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{describe_oserror(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished jobs are saved; run the same command again to resume.", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings=CONTEXT)
@click.option("--disable-plugin", "disable", multiple=True, metavar="NAME",
              help="Skip a plugin by entry-point name (repeatable; also $CRYSTALBENCH_DISABLE_PLUGINS=a,b).")
@click.option("-v", "--verbose", is_flag=True, help="Show debug messages.")
@click.version_option(package_name="crystalbench")
@click.pass_context
def cli(ctx: click.Context, disable: tuple[str, ...], verbose: bool) -> None:
    """Benchmark ML models on crystal structures.

    \b
    Quick start:
      bench list tasks                          what can be run (and whether its data is here)
      bench run -m dummy -m rf -t chain1d_short one grid, results in ./results, resumable
      bench results validate results            check every result file
      bench leaderboard build --out LEADERBOARD.md
    \b
    Models, tasks and descriptor sets come from plugins (`bench plugins`);
    built-ins are registered exactly like third-party ones.
    """
    configure_logging(verbose)
    ctx.ensure_object(dict)["disable"] = disable


def main() -> None:
    """The `bench` console script. Every command is attached by then: importing this module imports the
    package `crystalbench.cli` first, whose `__init__` imports each command module."""
    cli(prog_name="bench")

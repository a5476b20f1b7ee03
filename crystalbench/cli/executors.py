"""Executor options on the command line: `bench run` and `bench tune` take what their executors declare.

An executor plugin declares its flags in its spec (`ExecutorSpec.options`, a tuple of
`ExecutorOption`); `ExecutorOptionsCommand` adds them to a command's own flags, right
after `--executor`, from the registered executors, so `--help` shows a third-party
executor's flags and no command hard-codes Ray's. `make_executor` hands the chosen
executor the values of the options it declares, and refuses (one line) an option
given to an executor that does not declare it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import click

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.specs import ExecutorOption, ExecutorSpec

__all__ = ["ExecutorOptionsCommand", "executor_options", "make_executor"]

_PREFIX = "executor_option__"  # click parameter names of declared options: never clash with a command's own
class _FiniteFloat(click.ParamType):
    """A float that is a number: `nan` and `inf` (which Python's float() accepts) are refused."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        out = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(out):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return float(out)


_TYPES: dict[str, Any] = {"str": click.STRING, "int": click.INT, "float": _FiniteFloat()}


def _executor_specs(ctx: click.Context) -> list[ExecutorSpec]:
    """The registered executors: the command's registry when one was given, else a registry loaded for this
    (not cached: the command loads its own with its RunContext, which plugins' tasks may depend on)."""
    from .main import load_registry  # looked up per call: the CLI's registry loader

    obj = ctx.find_object(dict) or {}
    reg = obj.get("registry")
    if reg is None:
        reg = load_registry(disable=obj.get("disable", ()))
    return list(reg.executors.values())


def _problem(opt: object) -> str | None:
    if not isinstance(opt, ExecutorOption):
        return f"{type(opt).__name__} is not an ExecutorOption"
    if not opt.name.isidentifier():
        return f"option name {opt.name!r} is not an identifier"
    if opt.type not in (*_TYPES, "flag"):
        return f"option {opt.name!r}: type {opt.type!r} is not one of str, int, float, flag"
    if not opt.cli_flag.startswith("--") or " " in opt.cli_flag:
        return f"option {opt.name!r}: flag {opt.cli_flag!r} does not look like --name"
    return None


def declared_options(ctx: click.Context, taken: set[str]) -> list[click.Option]:
    """One click option per flag the registered executors declare (helps joined when several declare it);
    a declaration that is malformed, clashes with a flag in `taken` or disagrees with an earlier one on
    the option's name or type is skipped with a warning."""
    merged: dict[str, tuple[ExecutorOption, list[str]]] = {}
    for spec in _executor_specs(ctx):
        for opt in spec.options:
            why = _problem(opt)
            if why is None and opt.cli_flag in taken:
                why = f"{opt.cli_flag} is already a flag of this command"
            first = merged.get(opt.cli_flag) if why is None else None
            if first is not None and (first[0].name, first[0].type) != (opt.name, opt.type):
                why = f"{opt.cli_flag} is declared by another executor as {first[0].name!r} ({first[0].type})"
            if why is not None:
                click.echo(f"warning: executor {spec.name!r}: {why}; ignored", err=True)
                continue
            if first is None:
                merged[opt.cli_flag] = (opt, [opt.help] if opt.help else [])
            elif opt.help and opt.help not in first[1]:
                first[1].append(opt.help)
    options = []
    for flag, (opt, helps) in merged.items():
        kind: dict[str, Any] = {"is_flag": True} if opt.type == "flag" else {"type": _TYPES[opt.type]}
        options.append(click.Option([flag, _PREFIX + opt.name], metavar=opt.metavar, help=" ".join(helps),
                                    **kind))
    return options


class ExecutorOptionsCommand(click.Command):
    """A command that also takes the options of the registered executors, listed after its `--executor`."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        key = f"crystalbench.executor_options.{self.name}"
        if key not in ctx.meta:
            taken = {o for p in params for o in (*p.opts, *p.secondary_opts)}
            ctx.meta[key] = declared_options(ctx, taken)
        at = next((i + 1 for i, p in enumerate(params) if p.name == "executor_name"), len(params))
        return [*params[:at], *ctx.meta[key], *params[at:]]


def executor_options(flags: dict[str, Any]) -> dict[str, Any]:
    """Take the declared executor options out of a command's keyword arguments: {option name: value}."""
    return {k[len(_PREFIX):]: flags.pop(k) for k in [k for k in flags if k.startswith(_PREFIX)]}


def _flag_of(reg: Any, name: str) -> tuple[str, list[str]]:
    """The command-line flag of option `name` and the executors that declare it."""
    owners = [s for s in reg.executors.values() if any(o.name == name for o in s.options)]
    flag = next((o.cli_flag for s in owners for o in s.options if o.name == name), "--" + name.replace("_", "-"))
    return flag, [s.name for s in owners]


def make_executor(reg: Any, run_ctx: Any, name: str, options: Mapping[str, Any]) -> Any:
    """The executor `--executor NAME` names, built by its plugin's factory from the options it declares."""
    spec = reg.executor(name)  # an unknown name: one line with a did-you-mean
    if run_ctx.debug and (spec.name != "local" or (options.get("workers") or 1) > 1):
        run_ctx.reporter.warning(f"--debug runs the jobs in this process, one at a time (not with {spec.name}"
                                 f"{' --workers ' + str(options['workers']) if options.get('workers') else ''})")
        spec = reg.executor("local")
        options = {}
    declared = {o.name for o in spec.options}
    stray = [k for k, v in options.items() if k not in declared and v not in (None, False)]
    if stray:
        flags = [_flag_of(reg, k) for k in stray]
        owners = sorted({o for _, names in flags for o in names})
        raise CrystalbenchError(f"{', '.join(f for f, _ in flags)} applies to --executor {'/'.join(owners) or '?'}, "
                                f"not {spec.name}")
    from crystalbench.runtime.executors.base import Executor

    plugin = reg.owner.get(("executor", spec.name), "?")
    try:
        executor = spec.factory(run_ctx, {o.name: options.get(o.name) for o in spec.options})
    except CrystalbenchError:
        raise
    except Exception as exc:
        raise CrystalbenchError(f"executor {spec.name!r} (plugin {plugin!r}) could not be created: "
                                f"{type(exc).__name__}: {exc}") from None
    if not isinstance(executor, Executor):
        raise CrystalbenchError(f"executor {spec.name!r} (plugin {plugin!r}): its factory returned "
                                f"{type(executor).__name__}, which is not an Executor (start, submit, running, "
                                "describe, close)")
    return executor

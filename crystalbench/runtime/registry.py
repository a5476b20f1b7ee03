"""Plugin discovery: entry points -> pluggy -> a registry of named specs.

Every plugin, built-in or third-party, is loaded from the ``crystalbench``
entry-point group one at a time, so one that fails to import or raises in a
hook is recorded in `Registry.problems` (one line naming it) and skipped.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from crystalbench.contract import hookspecs
from crystalbench.contract.enums import PluginKind, Protocol, TaskType
from crystalbench.contract.errors import BadInputError, UnknownNameError
from crystalbench.contract.specs import (
    NAME_PATTERN,
    DescriptorSpec,
    ExecutorSpec,
    ModelSpec,
    SuiteSpec,
    TaskSpec,
    valid_name,
)
from crystalbench.runtime.splits import SPLIT_RULES

if TYPE_CHECKING:
    from crystalbench.contract.context import RunContext
    from crystalbench.contract.record import ResultRecord

__all__ = ["Registry", "PluginInfo", "load_registry", "disabled_plugins"]

ENTRY_POINT_GROUP = "crystalbench"
DISABLE_ENV = "CRYSTALBENCH_DISABLE_PLUGINS"
# the spec class each kind's hook returns; the hooks' names follow from the kinds (`PluginKind.hook`)
_KINDS: dict[PluginKind, type] = {
    PluginKind.MODEL: ModelSpec,
    PluginKind.DESCRIPTOR: DescriptorSpec,
    PluginKind.TASK: TaskSpec,
    PluginKind.EXECUTOR: ExecutorSpec,
    PluginKind.SUITE: SuiteSpec,
}
HOOKS = (*(kind.hook for kind in _KINDS), "bench_data_task", "bench_run_finished")


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    disabled: bool = False


@dataclass
class Registry:
    """The models, tasks and descriptor sets all loaded plugins offer."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    descriptors: dict[str, DescriptorSpec] = field(default_factory=dict)
    executors: dict[str, ExecutorSpec] = field(default_factory=dict)
    suites: dict[str, SuiteSpec] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)
    pm: pluggy.PluginManager | None = None

    def model(self, name: str) -> ModelSpec:
        return self.models[_resolve(name, self.models, "model")]

    def task(self, name: str) -> TaskSpec:
        return self.tasks[_resolve(name, self.tasks, "task")]

    def data_task(self, path: str, options: Mapping[str, Any]) -> tuple[TaskSpec, str]:
        """The task of a user's data file (`bench_data_task`) and the implementation that made it, as
        ``"module:function"``: how a worker process makes the same task again (`TaskRecipe`)."""
        if self.pm is not None:
            for impl in reversed(self.pm.hook.bench_data_task.get_hookimpls()):  # pluggy's call order
                spec = impl.function(path, dict(options))
                if spec is None:
                    continue
                if not isinstance(spec, TaskSpec):
                    raise BadInputError(f"--data {path}: plugin {impl.plugin_name!r} returned a "
                                        f"{type(spec).__name__}, not a TaskSpec")
                fn = impl.function
                return spec, f"{fn.__module__}:{fn.__qualname__}"
        raise BadInputError(f"--data {path}: no installed plugin reads this file (the built-in `usertasks` "
                            "plugin reads CSV/TSV, JSON, extended XYZ and id_prop.csv folders; see `bench plugins`)")

    def descriptor(self, name: str) -> DescriptorSpec:
        return self.descriptors[_resolve(name, self.descriptors, "descriptor set")]

    def executor(self, name: str) -> ExecutorSpec:
        return self.executors[_resolve(name, self.executors, "executor")]

    def suite(self, name: str) -> SuiteSpec:
        return self.suites[_resolve(name, self.suites, "suite")]

    def match_tasks(self, patterns: Iterable[str]) -> list[str]:
        """Task names matching names or globs (`'desc_*'`), in registry order, no repeats."""
        out: list[str] = []
        for pat in patterns:
            if any(ch in pat for ch in "*?["):
                hits = [t for t in self.tasks if fnmatch.fnmatchcase(t, pat)]
                if not hits:
                    raise UnknownNameError(f"no task matches {pat!r}; see `bench list tasks`")
            else:
                hits = [_resolve(pat, self.tasks, "task")]
            out.extend(h for h in hits if h not in out)
        return out

    def plugin_version(self, kind: str, name: str) -> str | None:
        """Version of the distribution that provides a model/task/descriptor set."""
        plugin = self.owner.get((kind, name))
        for info in self.plugins:
            if info.name == plugin:
                return info.version
        return None

    def code_version(self, kind: str, name: str) -> str | None:
        """What identifies the code of a model/task/descriptor set in a job (`Job.code`); see job.py.

        A third-party plugin: ``"<distribution> <version>"`` (``"<module> src:<hash>"`` when it was
        registered by hand, without a distribution). A built-in model: ``"crystalbench src:<hash>"`` of
        its source. A built-in task or descriptor set: None (its version and data already identify it).
        """
        plugin = self.owner.get((kind, name))
        info = next((i for i in self.plugins if i.name == plugin), None)
        if info is None:
            return None
        if info.distribution and info.distribution != "crystalbench":
            return f"{info.distribution} {info.version}"
        if info.distribution == "crystalbench" and kind != "model":
            return None
        module = info.module.split(":")[0]
        digest_ = source_digest(module)
        owner = info.distribution or module
        return f"{owner} src:{digest_}" if digest_ else None

    def job_code(self, model: str, task: str, descriptors: str | None) -> dict[str, str]:
        """`Job.code` of a job: the code version of each role that has one."""
        roles = {"model": ("model", model), "task": ("task", task)}
        if descriptors:
            roles["descriptors"] = ("descriptor", descriptors)
        out = {role: self.code_version(kind, name) for role, (kind, name) in roles.items()}
        out["splits"] = f"crystalbench rules {SPLIT_RULES}"  # the harness's own result-changing rule
        return {role: v for role, v in out.items() if v}

    def notify_finished(self, record: ResultRecord, ctx: RunContext) -> list[str]:
        """Call every `bench_run_finished` observer with its own copy; return problems, never raise.

        `SystemExit` from an observer is caught like any exception (an observer
        cannot end the grid); `KeyboardInterrupt` still stops the run.
        """
        problems: list[str] = []
        if self.pm is None:
            return problems
        for impl in self.pm.hook.bench_run_finished.get_hookimpls():
            args = {"record": record.copy(), "ctx": ctx}
            try:
                impl.function(*[args[a] for a in impl.argnames if a in args])
            except KeyboardInterrupt:
                raise
            except (Exception, SystemExit) as exc:  # an observer must never lose a result
                problems.append(f"plugin {impl.plugin_name!r}: bench_run_finished raised {_short(exc)}")
        return problems


# modules whose edits do not change what a model computes from its inputs: the contract and the runtime are the
# benchmark's own code (covered by the crystalbench version in every record's provenance), and
# `crystalbench/__init__.py` only re-exports the public API
_NOT_MODEL_CODE = ("crystalbench.contract", "crystalbench.runtime", "crystalbench.cli", "crystalbench.leaderboard", "crystalbench.testing")
_API_ONLY = ("crystalbench",)


@cache
def source_digest(module: str) -> str | None:
    """12 hex digits of sha256 over the source of `module` and the modules of its top-level package it
    imports, transitively (read with `ast`, nothing executed); None when the source cannot be found.

    Cheap (a few dozen files, read once per process) and deterministic (sorted module names and file
    bytes only), so every process of a run, and every node, computes the same job ids.
    """
    root = module.split(".")[0]
    seen: dict[str, bytes] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(_NOT_MODEL_CODE) or (name in _API_ONLY and name != module):
            continue
        path, is_package = _source_path(name)
        if path is None:
            if name == module:
                return None
            continue
        data = path.read_bytes()
        seen[name] = data
        todo.extend(m for m in _imports(data, name, is_package) if m.split(".")[0] == root)
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + hashlib.sha256(seen[name]).digest())
    return h.hexdigest()[:12]


def _source_path(name: str) -> tuple[Any, bool]:
    """(path of the module's .py source, whether it is a package), or (None, False).

    Found from the top-level package's folder, without importing anything (a `find_spec` of a
    submodule imports its parents: torch, for a GNN)."""
    from pathlib import Path

    root, _, rest = name.partition(".")
    try:
        spec = importlib.util.find_spec(root)
    except (ImportError, ValueError):
        return None, False
    if spec is None or not spec.origin:
        return None, False
    if not rest:
        return (Path(spec.origin), spec.submodule_search_locations is not None) if spec.origin.endswith(".py") \
            else (None, False)
    for folder in spec.submodule_search_locations or ():
        base = Path(folder).joinpath(*rest.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
    return None, False


def _imports(source: bytes, name: str, is_package: bool) -> list[str]:
    """Absolute names of the modules `source` imports (relative imports resolved against `name`)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    package = name if is_package else name.rpartition(".")[0]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1]) if node.level <= len(parts) else ""
                base = f"{parent}.{base}" if base else parent
            if base:
                out.append(base)
                out.extend(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return out


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def _resolve(name: str, pool: dict, kind: str) -> str:
    if name in pool:
        return name
    lowered = {k.lower(): k for k in pool}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
    plural = "descriptors" if kind == "descriptor set" else kind + "s"
    raise UnknownNameError(f"unknown {kind} {name!r}{hint} (see `bench list {plural}`)")


def disabled_plugins(extra: Iterable[str] = ()) -> set[str]:
    env = os.environ.get(DISABLE_ENV, "")
    names = {n.strip() for n in env.replace(";", ",").split(",") if n.strip()}
    return names | {n for n in extra if n}


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen, out = set(), []
    for ep in eps:  # the same dist can be visible twice (editable + path): keep one
        if ep.name in seen:
            continue
        seen.add(ep.name)
        out.append(ep)
    # built-ins first so they keep their names on a clash
    return sorted(out, key=lambda ep: (not ep.value.startswith("crystalbench."), ep.name))


def _spec_problem(kind: str, spec: Any) -> str | None:
    """Why a spec cannot be registered (its name becomes a results path part, so it is checked here)."""
    if not valid_name(spec.name):
        return f"{kind} name {spec.name!r} is not allowed (names match {NAME_PATTERN})"
    if isinstance(spec, TaskSpec):
        if not Protocol.has(spec.protocol):
            return f"task {spec.name!r}: protocol {spec.protocol!r} is not one of {', '.join(Protocol)}"
        if not TaskType.has(spec.task_type):
            return f"task {spec.name!r}: task_type {spec.task_type!r} is not regression or classification"
    if isinstance(spec, SuiteSpec):
        return _suite_problem(spec)
    if isinstance(spec, ModelSpec) and spec.params is not None:
        import dataclasses

        if not dataclasses.is_dataclass(spec.params):
            return f"model {spec.name!r}: params must be a dataclass"
    return None


def _suite_problem(spec: SuiteSpec) -> str | None:
    """Shape checks of a suite (names of models and tasks are checked when it is expanded)."""
    from crystalbench.contract.specs import SuiteEntry
    if not spec.entries:
        return f"suite {spec.name!r} has no entries"
    for k, entry in enumerate(spec.entries):
        where = f"suite {spec.name!r} entry {k}"
        if not isinstance(entry, SuiteEntry):
            return f"{where} is a {type(entry).__name__}, not a SuiteEntry"
        if not entry.models or not entry.tasks:
            return f"{where} needs at least one model and one task"
        if entry.protocol is not None and not Protocol.has(entry.protocol):
            return f"{where}: protocol {entry.protocol!r} is not one of {', '.join(Protocol)}"
        if not entry.seeds:
            return f"{where} has no seeds"
    return None


def load_registry(
    extra_plugins: Iterable[tuple[str, Any]] = (),
    disable: Iterable[str] = (),
    ctx: RunContext | None = None,
) -> Registry:
    """Discover plugins and collect their specs.

    extra_plugins: (name, module-or-object) pairs registered after the entry
        points (tests and embedding applications use this).
    disable: plugin names to skip, on top of CRYSTALBENCH_DISABLE_PLUGINS.
    ctx: the RunContext handed to hooks that take one (`bench_tasks(ctx)`);
        a default context when None.
    """
    if ctx is None:
        from crystalbench.contract.context import RunContext

        ctx = RunContext()
    hook_args: dict[str, Any] = {"ctx": ctx}
    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    reg.pm = pm
    off = disabled_plugins(disable)

    candidates: list[tuple[PluginInfo, Any]] = []
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        reg.plugins.append(info)
        if ep.name in off:
            info.disabled = True
            continue
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:
            info.error = f"failed to import {ep.value}: {_short(exc)}"
            reg.problems.append(f"plugin {ep.name!r} skipped: {info.error}")
            continue
        candidates.append((info, obj))
    for name, obj in extra_plugins:
        info = PluginInfo(name=name, module=getattr(obj, "__name__", repr(obj)), distribution=None, version=None)
        reg.plugins.append(info)
        if name in off:
            info.disabled = True
            continue
        candidates.append((info, obj))

    for info, obj in candidates:
        try:
            pm.register(obj, name=info.name)
        except Exception as exc:
            info.error = f"could not be registered: {_short(exc)}"
            reg.problems.append(f"plugin {info.name!r} skipped: {info.error}")
            continue
        info.hooks = [h for h in HOOKS if any(i.plugin_name == info.name for i in getattr(pm.hook, h).get_hookimpls())]
        for kind, kind_cls in _KINDS.items():
            hook = kind.hook
            if hook not in info.hooks:
                continue
            impl = next(i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin_name == info.name)
            try:
                specs = list(impl.function(*[hook_args[a] for a in impl.argnames if a in hook_args]) or [])
                bad = [s for s in specs if not isinstance(s, kind_cls)]
                if bad:
                    raise TypeError(f"returned {type(bad[0]).__name__}, expected {kind_cls.__name__}")
            except (Exception, SystemExit) as exc:  # a plugin cannot end the CLI from a hook
                info.error = f"{hook} raised {_short(exc)}"
                reg.problems.append(f"plugin {info.name!r}: {info.error}; its {kind.plural} are skipped")
                continue
            pool: dict[str, Any] = {PluginKind.MODEL: reg.models, PluginKind.TASK: reg.tasks,  # type: ignore[assignment]
                                    PluginKind.DESCRIPTOR: reg.descriptors, PluginKind.EXECUTOR: reg.executors,
                                    PluginKind.SUITE: reg.suites}[kind]
            for spec in specs:
                bad_spec = _spec_problem(kind, spec)
                if bad_spec:
                    reg.problems.append(f"plugin {info.name!r}: {bad_spec}; ignored")
                    continue
                if spec.name in pool:
                    reg.problems.append(
                        f"plugin {info.name!r}: {kind} {spec.name!r} already provided by "
                        f"{reg.owner[(kind, spec.name)]!r}; ignored"
                    )
                    continue
                pool[spec.name] = spec
                reg.owner[(kind, spec.name)] = info.name
                info.provides.setdefault(kind.plural, []).append(spec.name)
    return reg


def warn_problems(reg: Registry, stream=None) -> None:
    for p in reg.problems:
        print(f"warning: {p}", file=stream or sys.stderr)

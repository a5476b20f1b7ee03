"""Results files -> one `Summary`: the single path every leaderboard view (markdown, HTML, figures) reads.

Rules that keep a leaderboard honest against odd or hostile result files:

* every file is parsed and validated first (`scan`); invalid ones are returned with
  their reason and never reach a table, and no record content can crash a view;
* a task's target, unit and type come from the registry (``units``) or the majority of
  its records (ties: the oldest), and any disagreement is kept as a `Conflict`;
* a cell whose records carry a ``target leak:`` warning is flagged (``leak``);
* each job counts once: further copies of a record (same job id) are left out and
  listed in ``duplicates`` (`harness.validate.unique_records` picks the copy kept);
* a column is headed by what the records say they are (`ResultRecord.display_model`):
  the model's own recipe is headed by its name alone; any other configuration names
  the settings that differ from the recipe (``de-cgcnn (epochs=3)``), and a tuning
  trial says so, so a test run is never presented as the model;
* a model run with several configurations (params, descriptors, device) on one row
  gets one column per configuration, labelled by the settings that differ, so no
  configuration is ever silently dropped or merged;
* ``±`` is the sample standard deviation (ddof=1) over folds × seeds, except in rows of
  the matbench protocol, which show Matbench's own convention (numpy's std, ddof=0), so
  they compare with matbench.materialsproject.org (`std_key`).

Strings here are raw (only made one-line by `oneline`); each view escapes for its own format.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench.contract.enums import TaskType
from crystalbench.contract.metrics import METRICS, Metric, aggregate
from crystalbench.contract.record import InvalidRecordError, ResultRecord, compact_value
from crystalbench.contract.store import digest
from crystalbench.runtime.results import ResultStore, record_files
from crystalbench.runtime.splits import n_folds
from crystalbench.runtime.validate import unique_records

__all__ = [
    "oneline", "scan", "scan_paths", "summarize", "collect", "fmt_stat", "fmt_num", "run_commands", "run_facts",
    "run_fact_texts", "std_key", "STD_NOTE",
    "Summary", "Cell", "TaskLabel", "Conflict", "Entry", "LEAK_PREFIX",
]

LEAK_PREFIX = "target leak:"
_MAX_VALUE = 24
STD_NOTE = ("± is the sample standard deviation (ddof=1) over folds × seeds; in matbench-protocol rows it is "
            "Matbench's population standard deviation (numpy's default, ddof=0), as matbench.materialsproject.org "
            "reports it")


def std_key(protocol: str) -> str:
    """Which aggregated std a row shows: Matbench's convention (ddof=0) for its protocol, else the sample std."""
    return "std_ddof0" if protocol == "matbench" else "std"


def oneline(text: object, limit: int | None = None) -> str:
    """`text` on one line: non-printable characters become visible escapes (``\\n``, ``\\x1b``)."""
    s = text if isinstance(text, str) else repr(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


@dataclass(frozen=True)
class Entry:
    """The parts of one ok record the views use, as plain checked values (plus the record and its file)."""

    task: str
    protocol: str
    model: str
    config: str
    settings: dict[str, str]
    task_type: str
    target: str
    unit: str
    created: str
    fold: int
    seed: int
    metrics: dict[str, float | None]
    leak: bool
    warnings: tuple[str, ...]
    record: ResultRecord = field(compare=False, repr=False)
    path: Path | None = field(default=None, compare=False)
    display: str = ""  # the record's display_model: the model, plus how it differs from its recipe
    recipe: bool = True  # the model's own recipe, from a `bench run`
    origin: str = "run"


@dataclass(frozen=True)
class Conflict:
    """Records of one task disagree on `attr`; `shown` is what the tables use (`registry`: it came from the registry)."""

    task: str
    attr: str
    shown: str
    counts: dict[str, int]
    registry: bool = False


@dataclass
class TaskLabel:
    """What a task's rows show: the agreed target, unit and type, and any disagreement."""

    target: str
    unit: str
    task_type: str
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass
class Cell:
    """One (task, protocol, model configuration): aggregated metrics over folds and seeds."""

    task: str
    protocol: str
    model: str
    column: str
    config: str
    settings: dict[str, str]
    metrics: dict[str, dict[str, float | int | None]]
    n: int
    leak: bool
    warnings: list[str]
    folds: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()
    entries: list[Entry] = field(default_factory=list, repr=False)
    recipe: bool = True  # the model's own recipe (see `ResultRecord.is_recipe`)
    origin: str = "run"  # "tune": tuning trials, never shown as a row's best

    @property
    def runs(self) -> str:
        """``folds×seeds`` behind the cell, e.g. ``5×3``; ``7 of 5×3`` when the grid is incomplete."""
        grid = f"{len(self.folds)}×{len(self.seeds)}"
        return grid if self.n == len(self.folds) * len(self.seeds) else f"{self.n} of {grid}"


@dataclass
class Summary:
    """Everything a leaderboard shows; cells are keyed by (task, protocol, column label)."""

    cells: dict[tuple[str, str, str], Cell]
    columns: list[str]
    tasks: dict[str, TaskLabel]
    n_ok: int = 0
    n_failed: int = 0
    n_invalid: int = 0
    entries: list[Entry] = field(default_factory=list, repr=False)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    # (file, job id, the file of the copy that counts): further copies of one job, counted once
    duplicates: list[tuple[Path | None, str, Path | None]] = field(default_factory=list)
    # older records of a (fold, seed) already counted in its cell, made from other data or code: left out
    superseded: int = 0

    def rows(self, task_type: str | None = None) -> list[tuple[str, str]]:
        """The sorted (task, protocol) rows, optionally of one task type."""
        return sorted({(c.task, c.protocol) for c in self.cells.values()
                       if task_type is None or self.tasks[c.task].task_type == task_type})


def _value(v: Any) -> str:
    try:
        s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        s = "?"
    return s if len(s) <= _MAX_VALUE else s[:_MAX_VALUE] + "…"


def _entry(rec: ResultRecord, path: Path | None) -> Entry:
    """Extract a checked `Entry`; raises on anything unexpected (the caller skips the record)."""
    job, info = rec.job, rec.task_info
    settings = {str(k): _value(v) for k, v in dict(job.params).items()}
    for key in ("descriptors", "descriptor_version", "device"):
        value = getattr(job, key)
        if value is not None and key not in settings:
            settings[key] = _value(value)
    config = digest({"params": job.params, "descriptors": [job.descriptors, job.descriptor_version],
                     "device": job.device, "non_default": rec.non_default, "origin": rec.origin}, 12)
    metrics = {
        key: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
        for key in METRICS
        for v in [rec.metrics.get(key)]
    }
    return Entry(
        task=str(job.task), protocol=str(job.protocol), model=str(job.model), config=config, settings=settings,
        task_type=str(info.get("task_type")), target=oneline(info.get("target") or ""),
        unit=oneline(info.get("unit") or ""), created=str(rec.created), fold=int(job.fold), seed=int(job.seed),
        metrics=metrics, leak=any(isinstance(w, str) and w.startswith(LEAK_PREFIX) for w in rec.warnings),
        warnings=tuple(oneline(w, 300) for w in rec.warnings), record=rec, path=path,
        display=oneline(rec.display_model, 200), recipe=rec.is_recipe, origin=str(rec.origin),
    )


def _vote(entries: list[Entry], attr: str) -> tuple[str, Counter[str]]:
    """The value of `attr` most entries hold (ties: the one seen in the oldest record), and all counts."""
    counts: Counter[str] = Counter(getattr(e, attr) for e in entries)
    oldest: dict[str, str] = {}
    for e in entries:
        v = getattr(e, attr)
        oldest[v] = min(oldest.get(v, e.created), e.created)
    best = min(counts, key=lambda v: (-counts[v], oldest[v], v))
    return best, counts


def _label_tasks(entries: list[Entry], units: Mapping[str, str] | None) -> dict[str, TaskLabel]:
    by_task: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_task[e.task].append(e)
    labels = {}
    for task, group in by_task.items():
        votes = {attr: _vote(group, attr) for attr in ("target", "unit", "task_type")}
        label = TaskLabel(votes["target"][0], votes["unit"][0], votes["task_type"][0])
        registry = units.get(task) if units is not None else None
        if isinstance(registry, str):
            label.unit = oneline(registry)
        for attr, (shown, counts) in votes.items():
            if attr == "unit" and isinstance(registry, str):
                if set(counts) != {label.unit}:
                    label.conflicts.append(Conflict(task, attr, label.unit, dict(counts), registry=True))
            elif len(counts) > 1:
                label.conflicts.append(Conflict(task, attr, shown, dict(counts)))
        labels[task] = label
    return labels


def _columns(cells: dict[tuple[str, str, str, str], list[Entry]]) -> dict[tuple[str, str, str, str], str]:
    """Column label per (task, protocol, model, config): the records' `display` (the model, plus how it differs
    from its recipe), plus the settings that differ between configurations which would otherwise share it."""
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for (task, protocol, _, _), group in cells.items():
        groups[(task, protocol, group[0].display)].append(group[0].settings)
    varying: dict[str, set[str]] = defaultdict(set)
    for (_, _, display), configs in groups.items():
        for name in set().union(*configs):
            if len({c.get(name) for c in configs}) > 1:
                varying[display].add(name)
    out: dict[tuple[str, str, str, str], str] = {}
    for key, group in cells.items():
        display, settings = group[0].display, group[0].settings
        shown = [f"{k}={settings[k]}" for k in sorted(varying[display]) if k in settings]
        out[key] = _with_settings(display, shown)
    seen: dict[tuple[str, str, str], list[tuple[str, str, str, str]]] = defaultdict(list)
    for cfg, label in out.items():
        seen[(cfg[0], cfg[1], label)].append(cfg)
    for clash in (cfgs for cfgs in seen.values() if len(cfgs) > 1):  # truncation or odd values made labels equal
        for cfg in clash:
            out[cfg] = _with_settings(out[cfg], [f"config {cfg[3][:6]}"])
    return out


def _with_settings(label: str, shown: list[str]) -> str:
    """``model (a=1)`` + [b=2] -> ``model (a=1, b=2)``; ``model`` + [b=2] -> ``model (b=2)``."""
    if not shown:
        return label
    if label.endswith(")") and " (" in label:
        return f"{label[:-1]}, {', '.join(shown)})"
    return f"{label} ({', '.join(shown)})"


def _checked(pairs: Iterable[tuple[Path | None, ResultRecord]], check: bool) -> Iterator[tuple[bool, Entry | None]]:
    """(valid, entry) per record; entry is None for a failed job (or an invalid record)."""
    for path, rec in pairs:
        try:
            with np.errstate(all="ignore"):
                bad = not isinstance(rec, ResultRecord) or (check and bool(rec.problems()))
            if bad:
                yield False, None
            else:
                yield True, _entry(rec, path) if rec.ok else None
        except Exception:  # noqa: BLE001 - no record content may crash a leaderboard
            yield False, None


def _column_order(label: str) -> tuple[Any, ...]:
    """Sort columns by model, then by setting values (numbers numerically)."""
    model, _, rest = label.partition(" (")
    values = []
    for part in rest.rstrip(")").split(", "):
        raw = part.partition("=")[2]
        try:
            values.append((0, float(raw), ""))
        except ValueError:
            values.append((1, 0.0, raw))
    return (model, bool(rest), values, label)


def _summarize(pairs: Iterable[tuple[Path | None, ResultRecord]], units: Mapping[str, str] | None,
               check: bool) -> Summary:
    entries: list[Entry] = []
    summary = Summary(cells={}, columns=[], tasks={})
    pairs = list(pairs)
    checked = list(_checked(pairs, check))
    _, dupes = unique_records(pair for pair, (valid, _) in zip(pairs, checked) if valid)
    copies = {id(rec) for _, rec, _ in dupes}  # valid further copies of a job already counted
    summary.duplicates = [(path, rec.job_id, first) for path, rec, first in dupes]
    for (_, rec), (valid, entry) in zip(pairs, checked):
        if not valid:
            summary.n_invalid += 1
        elif id(rec) in copies:
            continue
        elif entry is None:
            summary.n_failed += 1
        else:
            entries.append(entry)
    summary.n_ok, summary.entries = len(entries), entries
    summary.tasks = _label_tasks(entries, units)
    groups: dict[tuple[str, str, str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.task_type == summary.tasks[e.task].task_type:
            groups[(e.task, e.protocol, e.model, e.config)].append(e)
    labels = _columns(groups)
    for key, group in groups.items():
        before = len(group)
        group[:] = _newest_per_run(group)
        summary.superseded += before - len(group)
        group.sort(key=lambda e: (e.fold, e.seed, e.created))
        with np.errstate(all="ignore"):
            stats = aggregate(e.metrics for e in group)
        summary.cells[(key[0], key[1], labels[key])] = Cell(
            task=key[0], protocol=key[1], model=key[2], column=labels[key], config=key[3],
            settings=group[0].settings, metrics=stats, n=len(group), leak=any(e.leak for e in group),
            warnings=sorted({w for e in group for w in e.warnings}),
            folds=tuple(sorted({e.fold for e in group})), seeds=tuple(sorted({e.seed for e in group})), entries=group,
            recipe=group[0].recipe, origin=group[0].origin,
        )
    summary.columns = sorted({c.column for c in summary.cells.values()}, key=_column_order)
    return summary


def _newest_per_run(group: list[Entry]) -> list[Entry]:
    """One entry per (fold, seed): the newest. A cell's configuration leaves out the data and code
    fingerprints, so after a data update or a new model version the old and the new record of one
    seed would otherwise both count (n=2 for one run); the newer one stands for that run."""
    newest: dict[tuple[int, int], Entry] = {}
    for e in group:
        key = (e.fold, e.seed)
        if key not in newest or e.created > newest[key].created:
            newest[key] = e
    return list(newest.values())


def summarize(records: Iterable[ResultRecord], *, units: Mapping[str, str] | None = None, check: bool = True) -> Summary:
    """Aggregate ok records per (task, protocol, model configuration).

    units: task -> unit from the registry; wins over what records say. check: validate each
    record (`ResultRecord.problems`) and leave out invalid ones (counted in `n_invalid`).
    """
    return _summarize(((None, r) for r in records), units, check)


def scan_paths(results_dir: Path) -> tuple[list[tuple[Path, ResultRecord]], list[tuple[Path, str]]]:
    """(path, valid record) under `results_dir`, and (path, reason) for every file that is not one.

    Uses `ResultStore.scan`; should it fail on a file's content with anything other than
    `InvalidRecordError`, the remaining files are read one by one, each guarded.
    """
    root = Path(results_dir)
    records: list[tuple[Path, ResultRecord]] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def take(path: Path, rec: ResultRecord | InvalidRecordError) -> None:
        seen.add(path)
        if isinstance(rec, ResultRecord):
            records.append((path, rec))
        else:
            skipped.append((path, oneline(str(rec), 300)))

    with np.errstate(all="ignore"):  # validating absurd values must not spew numpy warnings
        try:
            for path, rec in ResultStore(root).scan():
                take(path, rec)
            return records, skipped
        except Exception:  # noqa: BLE001 - fall back to file by file below
            pass
        for path in record_files(root):
            if path in seen or any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            try:
                take(path, ResultRecord.read(path).validate())
            except InvalidRecordError as exc:
                take(path, exc)
            except Exception as exc:  # noqa: BLE001 - a crafted file must not crash the leaderboard
                take(path, InvalidRecordError(f"unreadable record ({type(exc).__name__}: {exc})"))
    return records, skipped


def scan(results_dir: Path) -> tuple[list[ResultRecord], list[tuple[Path, str]]]:
    """Valid records under `results_dir`, and (path, reason) for every file that is not one."""
    pairs, skipped = scan_paths(results_dir)
    return [rec for _, rec in pairs], skipped


def collect(results_dir: Path, *, units: Mapping[str, str] | None = None) -> Summary:
    """Scan, validate and summarise `results_dir`; each entry knows its file, `skipped` names the invalid ones."""
    pairs, skipped = scan_paths(results_dir)
    summary = _summarize(pairs, units, check=False)  # scan_paths validated every record already
    summary.skipped = skipped
    summary.n_invalid += len(skipped)
    return summary


# -- number formatting: one place, so every view shows the same digits


def fmt_num(x: float, metric: Metric | None = None) -> str:
    """Ratios (MAE/MAD, R², accuracy): 3 decimals; values in the task's units: 4 significant digits."""
    if not math.isfinite(x):
        return "–"
    if metric is not None and metric.in_units:
        if x != 0 and not 1e-3 <= abs(x) < 1e6:
            return f"{x:.3e}"
        return f"{x:.{max(0, 3 - math.floor(math.log10(abs(x))))}f}" if x else "0"
    return f"{x:.3f}" if abs(x) < 1e5 else f"{x:.3e}"


def fmt_stat(stat: Mapping[str, Any] | None, metric: Metric, std: str = "std") -> tuple[str, str] | None:
    """(mean, std) of an aggregated metric, the std with the mean's decimals; None when there is no value.

    std: which standard deviation, "std" (ddof=1) or "std_ddof0" (Matbench's; see `std_key`).
    """
    stat = stat or {}
    mean, spread = stat.get("mean"), stat.get(std, stat.get("std"))
    if not isinstance(mean, (int, float)) or not math.isfinite(mean):
        return None
    m = fmt_num(float(mean), metric)
    sd = float(spread) if isinstance(spread, (int, float)) and math.isfinite(spread) else 0.0
    if "e" in m or "." not in m:
        s = fmt_num(sd, metric) if "e" in m else f"{sd:.0f}"
    else:
        s = f"{sd:.{len(m.partition('.')[2])}f}"
    return m, s


# -- what was run: commands, versions and devices, from the records only


_SAFE_ARG = re.compile(r"[A-Za-z0-9_.+:,-]{1,80}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,80}")
_FLAG_PARAMS = ("epochs", "pooling")  # hyperparameters `bench run` takes as flags
_HEREDOC = "EOF"  # no line of the TOML written below can equal it: each is `[table]` or `key = value`


def _arg(value: object) -> str:
    """A command-line argument taken from a record: as is when a plain word, shell-quoted when printable text
    up to 80 characters, else ``'?'`` (never shell syntax, never a line break)."""
    s = str(value)
    if _SAFE_ARG.fullmatch(s):
        return s
    return shlex.quote(s) if s and len(s) <= 80 and s.isprintable() else "'?'"


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_value(value: Any) -> str | None:
    """`value` as a one-line TOML value (None: TOML has no form for it, e.g. null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return json.dumps(value).replace("\x7f", "\\u007f")  # JSON escapes are TOML escapes; DEL must be too
    if isinstance(value, list):
        items = [_toml_value(v) for v in value]
        return None if None in items else "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
    if isinstance(value, dict):
        pairs = [(_toml_key(str(k)), _toml_value(v)) for k, v in value.items()]
        return None if any(v is None for _, v in pairs) else "{" + ", ".join(f"{k} = {v}" for k, v in pairs) + "}"
    return None


def _config_params(rec: ResultRecord) -> dict[str, Any]:
    """The hyperparameters a command must set through `--config`: those differing from the model's recipe
    (all of them for a record that never compared itself with the recipe), except the ones with flags."""
    params = dict(rec.job.params)
    chosen = params if rec.origin == "unknown" else {k: params[k] for k in rec.non_default if k in params}
    return {k: v for k, v in sorted(chosen.items()) if k not in _FLAG_PARAMS}


def _config_lines(model: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The TOML `[model]` table of `params`, one line each (a value TOML cannot hold becomes a comment)."""
    if not params:
        return ()
    lines = [f"[{_toml_key(model)}]"]
    for key, value in params.items():
        text = _toml_value(value)
        lines.append(f"{_toml_key(key)} = {text}" if text is not None else
                     f"# {oneline(key, 80)} = {oneline(compact_value(value), 80)}: not expressible in TOML")
    return tuple(lines)


def _task_args(e: Entry) -> tuple[tuple[str, ...], str | None]:
    """How a command names the entry's data: ``-t TASK`` (grouped with other tasks), or, for a `bench run
    --data FILE` task, the `--data` flags that rebuild it (a line of its own: the task key is returned)."""
    info = e.record.task_info
    data_file = info.get("data_file")
    if not isinstance(data_file, str) or not data_file:
        return (), None
    args = ["--data", _arg(data_file), "--target", _arg(e.record.job.target)]
    if e.task_type == TaskType.CLASSIFICATION:
        args.append("--classification")
    return tuple(args), e.task


def _flags(e: Entry) -> tuple[str, ...]:
    job = e.record.job
    flags: list[str] = ["--protocol", _arg(e.protocol)] if e.protocol else []
    for name in _FLAG_PARAMS:
        value = job.params.get(name)
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            flags += [f"--{name}", _arg(value)]
    if job.descriptors:
        flags += ["--descriptors", _arg(job.descriptors)]
    if job.device and job.device != "cpu":
        flags += ["--device", _arg(job.device)]
    if job.split_source:
        flags += ["--split-file", _arg(f"split-{job.split_source[:12]}.json")]
    return tuple(flags)


def _flag(flags: tuple[str, ...], name: str) -> str | None:
    return flags[flags.index(name) + 1] if name in flags[:-1] else None


def run_commands(summary: Summary, limit: int = 40) -> list[str]:
    """Shell lines that recreate the shown records: one `bench run` per model, data, flag set and configuration.

    Pasted into a shell (where the data is), each command reproduces its column: the same job ids.
    Hyperparameters that differ from the model's recipe and have no flag (a tuned run's `lr`...)
    follow as TOML on standard input (``--config /dev/stdin <<'EOF'``), so the command needs no
    file; a `bench run --data` task is named by its file and target, not by its generated task
    name (which `-t` does not know); a run on a user `--split-file` names the file by its checksum.
    Every value from a record is quoted or replaced by ``'?'`` (`_arg`), never run as shell syntax.
    """
    groups: dict[tuple[Any, ...], dict[str, set[Any]]] = defaultdict(
        lambda: {"tasks": set(), "seeds": set(), "folds": set()})
    for e in summary.entries:
        data_args, own_task = _task_args(e)
        config = _config_lines(e.model, _config_params(e.record))
        g = groups[(e.model, own_task or "", data_args, _flags(e), config)]
        g["tasks"].add(e.task)
        g["seeds"].add(e.seed)
        g["folds"].add(e.fold)
    blocks = []
    for key, g in sorted(groups.items()):
        model, _, data_args, flags, config = key
        tasks = data_args or tuple(x for t in sorted(g["tasks"]) for x in ("-t", _arg(t)))
        parts = ["bench run", "-m", _arg(model), *tasks, *flags]
        parts += [x for s in sorted(g["seeds"]) for x in ("--seed", str(s))]
        if "--split-file" in flags or g["folds"] != set(range(n_folds(_flag(flags, "--protocol") or ""))):
            parts += ["--folds", ",".join(str(f) for f in sorted(g["folds"]))]  # not every fold of the protocol
        if config:
            parts += ["--config", "/dev/stdin", f"<<'{_HEREDOC}'"]
        blocks.append([oneline(" ".join(parts)), *(oneline(line) for line in config), *([_HEREDOC] if config else [])])
    lines = [line for block in blocks[:limit] for line in block]
    return lines + ([f"# … and {len(blocks) - limit} more"] if len(blocks) > limit else [])


def run_facts(summary: Summary) -> dict[str, dict[str, int]]:
    """How many records were made with each crystalbench version, git commit, torch version and device."""
    facts: dict[str, Counter[str]] = {k: Counter() for k in ("crystalbench", "git commit", "torch", "device", "date")}
    for e in summary.entries:
        prov, rt = e.record.provenance, e.record.runtime
        facts["crystalbench"][oneline(prov.get("crystalbench_version") or "?", 40)] += 1
        facts["git commit"][oneline(prov.get("git_commit") or "?", 60)] += 1
        facts["torch"][oneline(rt.get("torch_version") or "not used", 40)] += 1
        gpu = rt.get("gpu_name")
        device = str(rt.get("device") or e.record.job.device)
        facts["device"][oneline(f"{device} ({gpu})" if gpu else device, 80)] += 1
        facts["date"][oneline(e.created[:10], 10)] += 1
    return {k: dict(sorted(v.items())) for k, v in facts.items()}


def run_fact_texts(summary: Summary) -> dict[str, str]:
    """`run_facts` as one line of text per fact ("2.13.0+cpu (12), ..."; dates as a range), for every renderer."""
    out = {}
    for key, counts in run_facts(summary).items():
        if key == "date":
            days = sorted(counts)
            out[key] = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
        else:
            out[key] = ", ".join(f"{v} ({n})" for v, n in counts.items())
    return out

"""Markdown leaderboard built only from validated `ResultRecord`s.

One table per headline metric of the registry (MAE/MAD and R² for regression,
accuracy for classification): (task, protocol) rows, model columns, cells
``mean ± std (n=k)`` over folds and seeds, the best per row in **bold**.

Rules that keep a leaderboard honest against odd or hostile result files:

* every file is parsed and validated first; invalid ones are returned by
  `build_leaderboard` with their reason and never reach a table, and no record
  content can crash rendering;
* every string from a record is escaped for markdown tables and kept on one line
  (control characters are shown as ``\\n``-style escapes), so a name cannot inject rows;
* a task's target, unit and type come from the registry (``units``) or the majority of
  its records (ties: the oldest), and any disagreement is named in a footnote (‡);
* a cell whose records carry a ``target leak:`` warning is marked † and never bold;
* a model run with several configurations (params, descriptors, device) on one row
  gets one column per configuration, labelled by the settings that differ.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..harness.metrics import METRICS, Metric, aggregate, primary_metric
from ..harness.record import InvalidRecordError, ResultRecord
from ..harness.results import ResultStore
from ..harness.store import atomic_write, digest

__all__ = ["escape", "summarize", "render_markdown", "build_leaderboard", "scan", "Summary", "Cell", "TaskLabel"]

# What changes meaning inside a table cell (CommonMark lets any ASCII punctuation be backslash-escaped).
_SPECIAL = frozenset("\\`*_{}[]<>|~&$")
LEAK_PREFIX = "target leak:"
LEAK_MARK, NOTE_MARK = "†", "‡"
LEAK_NOTE = (
    f"{LEAK_MARK} the model reads inputs that reveal this task's target (declared by the task); "
    "not a measure of learning. Never shown as the best."
)
# The tables: the registry's primary metric per task type, plus R² for regression.
TABLE_METRICS: tuple[Metric, ...] = (primary_metric("regression"), METRICS["r2"], primary_metric("classification"))
_MAX_CELL, _MAX_VALUE, _MAX_WARNINGS = 80, 24, 50


def _oneline(text: object, limit: int | None = None) -> str:
    """`text` on one line: non-printable characters become visible escapes (``\\n``, ``\\x1b``)."""
    s = text if isinstance(text, str) else repr(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def escape(text: object, limit: int | None = _MAX_CELL) -> str:
    """`text` safe inside a markdown table cell: one line, markdown specials and `|` backslash-escaped."""
    return "".join("\\" + c if c in _SPECIAL else c for c in _oneline(text, limit))


@dataclass(frozen=True)
class _Entry:
    """The parts of one ok record the leaderboard uses, as plain checked values."""

    task: str
    protocol: str
    model: str
    config: str
    settings: dict[str, str]
    task_type: str
    target: str
    unit: str
    created: str
    metrics: dict[str, float | None]
    leak: bool
    warnings: tuple[str, ...]


@dataclass
class TaskLabel:
    """What a task's rows show: the agreed target, unit and type, and notes on any disagreement."""

    target: str
    unit: str
    task_type: str
    notes: list[str] = field(default_factory=list)


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


@dataclass
class Summary:
    """Everything a leaderboard shows; cells are keyed by (task, protocol, column label)."""

    cells: dict[tuple[str, str, str], Cell]
    columns: list[str]
    tasks: dict[str, TaskLabel]
    n_ok: int = 0
    n_failed: int = 0
    n_invalid: int = 0


def _value(v: Any) -> str:
    try:
        s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        s = "?"
    return s if len(s) <= _MAX_VALUE else s[:_MAX_VALUE] + "…"


def _entry(rec: ResultRecord) -> _Entry:
    """Extract a checked `_Entry`; raises on anything unexpected (the caller skips the record)."""
    job, info = rec.job, rec.task_info
    settings = {str(k): _value(v) for k, v in dict(job.params).items()}
    for key in ("descriptors", "descriptor_version", "device"):
        value = getattr(job, key)
        if value is not None and key not in settings:
            settings[key] = _value(value)
    config = digest({"params": job.params, "descriptors": [job.descriptors, job.descriptor_version],
                     "device": job.device}, 12)
    metrics = {
        m.key: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
        for m in TABLE_METRICS
        for v in [rec.metrics.get(m.key)]
    }
    warnings = tuple(_oneline(w, 300) for w in rec.warnings)
    return _Entry(
        task=str(job.task), protocol=str(job.protocol), model=str(job.model), config=config, settings=settings,
        task_type=str(info.get("task_type")), target=_oneline(info.get("target") or ""), unit=_oneline(info.get("unit") or ""),
        created=str(rec.created), metrics=metrics,
        leak=any(isinstance(w, str) and w.startswith(LEAK_PREFIX) for w in rec.warnings), warnings=warnings,
    )


def _vote(entries: list[_Entry], attr: str) -> tuple[str, Counter[str]]:
    """The value of `attr` most entries hold (ties: the one seen in the oldest record), and all counts."""
    counts: Counter[str] = Counter(getattr(e, attr) for e in entries)
    oldest: dict[str, str] = {}
    for e in entries:
        v = getattr(e, attr)
        oldest[v] = min(oldest.get(v, e.created), e.created)
    best = min(counts, key=lambda v: (-counts[v], oldest[v], v))
    return best, counts


def _disagreement(task: str, attr: str, shown: str, counts: Mapping[str, int], registry: str | None = None) -> str:
    parts = [f"“{escape(v, 40)}” ({n} record{'s' if n != 1 else ''}{', shown' if v == shown else ''})"
             for v, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    text = f"{NOTE_MARK} {escape(task)}: records disagree on {attr}: " + ", ".join(parts)
    if registry is not None:
        text = f"{NOTE_MARK} {escape(task)}: the registry's {attr} “{escape(registry, 40)}” is shown; records say " + ", ".join(parts)
    return text


def _label_tasks(entries: list[_Entry], units: Mapping[str, str] | None) -> dict[str, TaskLabel]:
    by_task: dict[str, list[_Entry]] = defaultdict(list)
    for e in entries:
        by_task[e.task].append(e)
    labels = {}
    for task, group in by_task.items():
        votes = {attr: _vote(group, attr) for attr in ("target", "unit", "task_type")}
        label = TaskLabel(votes["target"][0], votes["unit"][0], votes["task_type"][0])
        registry = units.get(task) if units is not None else None
        if isinstance(registry, str):
            label.unit = _oneline(registry)
        for attr, (shown, counts) in votes.items():
            if attr == "unit" and isinstance(registry, str):
                if set(counts) != {label.unit}:
                    label.notes.append(_disagreement(task, attr, label.unit, counts, registry=label.unit))
            elif len(counts) > 1:
                note = _disagreement(task, attr, shown, counts)
                label.notes.append(note + ("; records of the other type are left out" if attr == "task_type" else ""))
        labels[task] = label
    return labels


def _columns(cells: dict[tuple[str, str, str, str], list[_Entry]]) -> dict[tuple[str, str, str, str], str]:
    """Column label per (task, protocol, model, config): the model name, plus the settings that differ."""
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for (task, protocol, model, _), group in cells.items():
        groups[(task, protocol, model)].append(group[0].settings)
    varying: dict[str, set[str]] = defaultdict(set)
    for (_, _, model), configs in groups.items():
        for name in set().union(*configs):
            if len({c.get(name) for c in configs}) > 1:
                varying[model].add(name)
    out: dict[tuple[str, str, str, str], str] = {}
    for key, group in cells.items():
        model, settings = key[2], group[0].settings
        shown = [f"{k}={settings[k]}" for k in sorted(varying[model]) if k in settings]
        out[key] = f"{model} ({', '.join(shown)})" if shown else model
    seen: dict[tuple[str, str, str], list[tuple[str, str, str, str]]] = defaultdict(list)
    for cfg, label in out.items():
        seen[(cfg[0], cfg[1], label)].append(cfg)
    for clash in (cfgs for cfgs in seen.values() if len(cfgs) > 1):  # truncation or odd values made labels equal
        for cfg in clash:
            out[cfg] = f"{out[cfg].removesuffix(')')}{', ' if out[cfg].endswith(')') else ' ('}config {cfg[3][:6]})"
    return out


def _checked(records: Iterable[ResultRecord], check: bool) -> Iterator[tuple[ResultRecord | None, _Entry | None]]:
    """(record, entry) per record; (None, None) for one that is invalid or cannot be read."""
    for rec in records:
        try:
            with np.errstate(all="ignore"):
                bad = not isinstance(rec, ResultRecord) or (check and bool(rec.problems()))
            if bad:
                yield None, None
            else:
                yield rec, _entry(rec) if rec.ok else None
        except Exception:  # noqa: BLE001 - no record content may crash a leaderboard
            yield None, None


def summarize(records: Iterable[ResultRecord], *, units: Mapping[str, str] | None = None, check: bool = True) -> Summary:
    """Aggregate ok records per (task, protocol, model configuration).

    units: task -> unit from the registry; wins over what records say. check: validate each
    record (`ResultRecord.problems`) and leave out invalid ones (counted in `n_invalid`).
    """
    entries: list[_Entry] = []
    summary = Summary(cells={}, columns=[], tasks={})
    for rec, entry in _checked(records, check):
        if rec is None:
            summary.n_invalid += 1
        elif entry is None:
            summary.n_failed += 1
        else:
            entries.append(entry)
    summary.n_ok = len(entries)
    summary.tasks = _label_tasks(entries, units)
    groups: dict[tuple[str, str, str, str], list[_Entry]] = defaultdict(list)
    for e in entries:
        if e.task_type == summary.tasks[e.task].task_type:
            groups[(e.task, e.protocol, e.model, e.config)].append(e)
    labels = _columns(groups)
    for key, group in groups.items():
        with np.errstate(all="ignore"):
            stats = aggregate(e.metrics for e in group)
        summary.cells[(key[0], key[1], labels[key])] = Cell(
            task=key[0], protocol=key[1], model=key[2], column=labels[key], config=key[3],
            settings=group[0].settings, metrics=stats, n=len(group), leak=any(e.leak for e in group),
            warnings=sorted({w for e in group for w in e.warnings}),
        )
    summary.columns = sorted({c.column for c in summary.cells.values()}, key=_column_order)
    return summary


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


def _num(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1e5 else f"{x:.3g}"


def _cell_text(cell: Cell, metric: str, bold: bool) -> str:
    stat = cell.metrics.get(metric) or {}
    mean, std, n = stat.get("mean"), stat.get("std"), int(stat.get("n") or 0)
    if mean is None:
        text = "–"
    else:
        text = _num(mean) + (f" ± {_num(std or 0.0)} (n={n})" if n > 1 else "")
        text = f"**{text}**" if bold else text
    return text + (f" {LEAK_MARK}" if cell.leak else "")


def _table(summary: Summary, metric: Metric) -> list[str]:
    rows = sorted({(c.task, c.protocol) for c in summary.cells.values()
                   if summary.tasks[c.task].task_type == metric.task_type})
    if not rows:
        return []
    columns = [col for col in summary.columns if any((t, p, col) in summary.cells for t, p in rows)]
    lines = ["| " + " | ".join(["task", "protocol", "target"] + [escape(c, 200) for c in columns]) + " |",
             "|" + "---|" * (3 + len(columns))]
    leak, notes = False, []
    for task, protocol in rows:
        label = summary.tasks[task]
        cells = {col: summary.cells.get((task, protocol, col)) for col in columns}
        means = {col: (c.metrics.get(metric.key) or {}).get("mean") for col, c in cells.items() if c and not c.leak}
        fair = {col: float(v) for col, v in means.items() if v is not None and math.isfinite(v)}
        best = (max if metric.higher_is_better else min)(fair.values()) if len(fair) > 1 else None
        target = escape(label.target) + (f" ({escape(label.unit)})" if label.unit else "")
        if label.notes:
            target += f" {NOTE_MARK}"
            notes += [n for n in label.notes if n not in notes]
        row = [escape(task), escape(protocol), target]
        for col, c in cells.items():
            row.append(_cell_text(c, metric.key, best is not None and fair.get(col) == best) if c else "")
            leak = leak or bool(c and c.leak)
        lines.append("| " + " | ".join(row) + " |")
    footnotes = ([LEAK_NOTE] if leak else []) + notes
    for note in footnotes:
        lines += ["", note]
    return lines


def _warnings(summary: Summary) -> list[str]:
    items = sorted({(c.task, c.protocol, c.column, w) for c in summary.cells.values() for w in c.warnings})
    if not items:
        return []
    lines = ["", "## Warnings", ""]
    lines += [f"- {escape(t)} · {escape(p)} · {escape(col, 200)}: {escape(w, 300)}" for t, p, col, w in items[:_MAX_WARNINGS]]
    if len(items) > _MAX_WARNINGS:
        lines.append(f"- … and {len(items) - _MAX_WARNINGS} more")
    return lines


def render_markdown(
    records: Iterable[ResultRecord],
    title: str = "crystalbench leaderboard",
    *,
    units: Mapping[str, str] | None = None,
    check: bool = True,
    skipped: int = 0,
) -> str:
    """The leaderboard page. `skipped`: invalid files already left out by the caller (named in the header)."""
    summary = summarize(records, units=units, check=check)
    invalid = summary.n_invalid + skipped
    lines = [f"# {escape(title, 200)}", ""]
    left_out = ([f"{summary.n_failed} failed job(s) not shown"] if summary.n_failed else []) + (
        [f"{invalid} invalid result file(s) skipped"] if invalid else [])
    if not summary.cells:
        lines.append("_No successful results yet._" + (f" ({'; '.join(left_out)}.)" if left_out else ""))
        return "\n".join(lines) + "\n"
    lines.append(
        f"Built {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {summary.n_ok} successful "
        f"result(s){' (' + '; '.join(left_out) + ')' if left_out else ''}. Cells: mean ± std over folds and seeds "
        f"(n runs); best per row in **bold**; {LEAK_MARK} target leak; {NOTE_MARK} records disagree (see notes)."
    )
    for metric in TABLE_METRICS:
        table = _table(summary, metric)
        if table:
            direction = "higher" if metric.higher_is_better else "lower"
            lines += ["", f"## {metric.label} ({direction} is better)", "", *table]
    lines += _warnings(summary)
    lines.append("")
    return "\n".join(lines)


def scan(results_dir: Path) -> tuple[list[ResultRecord], list[tuple[Path, str]]]:
    """Valid records under `results_dir`, and (path, reason) for every file that is not one.

    Uses `ResultStore.scan`; should it fail on a file's content with anything other than
    `InvalidRecordError`, the remaining files are read one by one, each guarded.
    """
    root = Path(results_dir)
    records: list[ResultRecord] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def take(path: Path, rec: ResultRecord | InvalidRecordError) -> None:
        seen.add(path)
        if isinstance(rec, ResultRecord):
            records.append(rec)
        else:
            skipped.append((path, _oneline(str(rec), 300)))

    with np.errstate(all="ignore"):  # validating absurd values must not spew numpy warnings
        try:
            for path, rec in ResultStore(root).scan():
                take(path, rec)
            return records, skipped
        except Exception:  # noqa: BLE001 - fall back to file by file below
            pass
        for path in sorted(root.rglob("*.json")):
            if path in seen or any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            try:
                take(path, ResultRecord.read(path).validate())
            except InvalidRecordError as exc:
                take(path, exc)
            except Exception as exc:  # noqa: BLE001 - a crafted file must not crash the leaderboard
                take(path, InvalidRecordError(f"unreadable record ({type(exc).__name__}: {exc})"))
    return records, skipped


def build_leaderboard(
    results_dir: Path,
    out: Path,
    title: str = "crystalbench leaderboard",
    *,
    units: Mapping[str, str] | None = None,
) -> tuple[Path, list[tuple[Path, str]]]:
    """Render every valid record under `results_dir` to `out` (atomically); return it and the skipped files."""
    records, skipped = scan(results_dir)
    text = render_markdown(records, title=title, units=units, check=False, skipped=len(skipped))
    return atomic_write(Path(out), text), skipped

"""Markdown leaderboard built only from validated `ResultRecord`s (via `collect`, shared with the HTML site).

Tables: MAE/MAD, MAE in the task's units, R² (regression) and accuracy (classification):
(task, protocol) rows, one column per (model, configuration), cells
``mean ± std (n=F×S)`` over F folds × S seeds, the best per row in **bold**. A column
headed by a model's name alone is its own recipe; any other configuration is headed by
the settings that differ from it (``de-cgcnn (epochs=3)``), and a tuning trial, scored
on a validation split, is labelled so and never bold. Which standard deviation ``±`` is
(`STD_NOTE`) is stated on the page. Then
warnings, every configuration's settings, and a footer generated from the records:
the `bench run` commands that recreate them, crystalbench/torch versions and devices.

Every string from a record is escaped for markdown tables and kept on one line
(`escape`), so a name cannot inject rows; a leak-flagged cell is marked † and never bold;
disagreements between records are named in ‡ notes.

The generated file is self-contained. When the output file already exists, any text after
`HAND_WRITTEN_MARKER` is kept (a hand-written footer survives a rebuild).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from crystalbench.contract.enums import TaskType
from crystalbench.contract.metrics import METRICS, Metric, primary_metric
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.store import atomic_write

from .collect import (
    STD_NOTE,
    Cell,
    Conflict,
    Summary,
    collect,
    fmt_stat,
    oneline,
    run_commands,
    run_fact_texts,
    scan,
    std_key,
    summarize,
)

__all__ = [
    "escape", "summarize", "render_markdown", "render_summary", "build_leaderboard", "scan", "Summary", "Cell",
    "TABLE_METRICS", "HAND_WRITTEN_MARKER", "conflict_note", "best_columns", "RECIPE_NOTE",
]

# What changes meaning inside a table cell (CommonMark lets any ASCII punctuation be backslash-escaped).
_SPECIAL = frozenset("\\`*_{}[]<>|~&$")
LEAK_MARK, NOTE_MARK = "†", "‡"
LEAK_NOTE = (
    f"{LEAK_MARK} the model reads inputs that reveal this task's target (declared by the task); "
    "not a measure of learning. Never shown as the best."
)
HAND_WRITTEN_MARKER = "<!-- hand-written: kept by bench leaderboard build -->"
RECIPE_NOTE = ("A column headed by a model's name alone is that model's own recipe (its default settings for the "
               "task); any other configuration names the settings that differ from it, and a tuning trial "
               "(scored on a validation split) says so and is never bold.")
# The tables: the registry's primary metric per task type, MAE in the task's units and R² for regression.
TABLE_METRICS: tuple[Metric, ...] = (
    primary_metric(TaskType.REGRESSION), METRICS["mae"], METRICS["r2"], primary_metric(TaskType.CLASSIFICATION),
)
_MAX_CELL, _MAX_WARNINGS, _MAX_CONFIGS = 80, 50, 60


def escape(text: object, limit: int | None = _MAX_CELL) -> str:
    """`text` safe inside a markdown table cell: one line, markdown specials and `|` backslash-escaped."""
    return "".join("\\" + c if c in _SPECIAL else c for c in oneline(text, limit))


def metric_heading(metric: Metric) -> str:
    """A table's heading: the metric, its units and which direction is better."""
    direction = "higher" if metric.higher_is_better else "lower"
    units = " in the task's units" if metric.in_units else ""
    return f"{metric.label}{units} ({direction} is better)"


def conflict_note(c: Conflict) -> str:
    """The ‡ note for one disagreement, as plain text (each view escapes it)."""
    parts = [f"“{oneline(v, 40)}” ({n} record{'s' if n != 1 else ''}{', shown' if v == c.shown and not c.registry else ''})"
             for v, n in sorted(c.counts.items(), key=lambda kv: -kv[1])]
    if c.registry:
        return f"{c.task}: the registry's {c.attr} “{oneline(c.shown, 40)}” is shown; records say " + ", ".join(parts)
    tail = "; records of the other type are left out" if c.attr == "task_type" else ""
    return f"{c.task}: records disagree on {c.attr}: " + ", ".join(parts) + tail


def _md_note(c: Conflict) -> str:
    return f"{NOTE_MARK} {escape(conflict_note(c), None)}"


def best_columns(summary: Summary, task: str, protocol: str, metric: Metric) -> set[str]:
    """Columns holding the best mean of a row (none when fewer than two compete).

    Leak-flagged cells and tuning trials never count: one does not measure learning, the other
    was scored on a validation split, not the test set.
    """
    fair = {}
    for col in summary.columns:
        c = summary.cells.get((task, protocol, col))
        mean = (c.metrics.get(metric.key) or {}).get("mean") if c and not c.leak and c.origin != "tune" else None
        if isinstance(mean, (int, float)) and math.isfinite(mean):
            fair[col] = float(mean)
    if len(fair) < 2:
        return set()
    best = (max if metric.higher_is_better else min)(fair.values())
    return {col for col, v in fair.items() if v == best}


def _cell_text(cell: Cell, metric: Metric, bold: bool) -> str:
    stat = fmt_stat(cell.metrics.get(metric.key), metric, std_key(cell.protocol))
    if stat is None:
        text = "–"
    else:
        mean, std = stat
        text = f"{mean} ± {std} (n={cell.runs})" if cell.n > 1 else mean  # no n: a single run
        text = f"**{text}**" if bold else text
    return text + (f" {LEAK_MARK}" if cell.leak else "")


def _table(summary: Summary, metric: Metric) -> list[str]:
    rows = summary.rows(metric.task_type)
    if not rows:
        return []
    columns = [col for col in summary.columns if any((t, p, col) in summary.cells for t, p in rows)]
    lines = ["| " + " | ".join(["task", "protocol", "target"] + [escape(c, 200) for c in columns]) + " |",
             "|" + "---|" * (3 + len(columns))]
    leak, notes = False, []
    for task, protocol in rows:
        label = summary.tasks[task]
        best = best_columns(summary, task, protocol, metric)
        target = escape(label.target) + (f" ({escape(label.unit)})" if label.unit else "")
        if label.conflicts:
            target += f" {NOTE_MARK}"
            notes += [n for n in map(_md_note, label.conflicts) if n not in notes]
        row = [escape(task), escape(protocol), target]
        for col in columns:
            c = summary.cells.get((task, protocol, col))
            row.append(_cell_text(c, metric, col in best) if c else "")
            leak = leak or bool(c and c.leak)
        lines.append("| " + " | ".join(row) + " |")
    for note in ([LEAK_NOTE] if leak else []) + notes:
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


def _configurations(summary: Summary) -> list[str]:
    """Every column's full settings (hyperparameters, descriptors, device), with the tasks it ran on."""
    configs: dict[tuple[str, tuple[tuple[str, str], ...]], set[str]] = defaultdict(set)
    for c in summary.cells.values():
        configs[(c.column, tuple(sorted(c.settings.items())))].add(c.task)
    lines = ["", "## Configurations", "",
             "Each column's settings as recorded (a column may hold task-dependent defaults, e.g. pooling)."]
    lines.append("")
    items = sorted(configs.items())
    for (column, settings), tasks in items[:_MAX_CONFIGS]:
        shown = ", ".join(f"{k}={v}" for k, v in settings) or "no hyperparameters"
        lines.append(f"- **{escape(column, 200)}** on {escape(', '.join(sorted(tasks)), 300)}: {escape(shown, 1000)}")
    if len(items) > _MAX_CONFIGS:
        lines.append(f"- … and {len(items) - _MAX_CONFIGS} more")
    return lines


def _footer(summary: Summary) -> list[str]:
    """How the shown records were made: commands, versions, devices (all from the records)."""
    lines = ["", "## How these results were made", "",
             "Generated by `bench leaderboard build` from the result files alone. Each command below, pasted into "
             "a shell where the data is, recomputes its column (the same job ids); hyperparameters that differ "
             "from the model's recipe follow as TOML on standard input:", "", "```bash"]
    lines += run_commands(summary)
    lines += ["```", ""]
    for key, text in run_fact_texts(summary).items():
        lines.append(f"- {escape(key)}: {escape(text, 600)}")
    lines += ["", "Each record file holds the full provenance (package and plugin versions, data checksums, split); "
              "`bench results validate DIR` re-checks them."]
    return lines


def _left_out(summary: Summary) -> list[str]:
    """What the tables do not show, for the page's first line."""
    return (([f"{summary.n_failed} failed job(s) not shown"] if summary.n_failed else [])
            + ([f"{summary.n_invalid} invalid result file(s) skipped"] if summary.n_invalid else [])
            + ([f"{len(summary.duplicates)} further cop{'y' if len(summary.duplicates) == 1 else 'ies'} of "
                "already counted jobs left out (each job counts once)"] if summary.duplicates else [])
            + ([f"{summary.superseded} older record(s) of a counted run left out (made from other data or "
                "code; the newest counts)"] if summary.superseded else []))


def _made(summary: Summary) -> str:
    """When the counted records were made (their own timestamps, not the build's: a rebuild of the same
    records gives the same page, so a committed LEADERBOARD.md can be checked against a regeneration)."""
    days = sorted({e.created[:10] for e in summary.entries if e.created})
    if not days:
        return ""
    return f", made {days[0]}" if len(days) == 1 else f", made {days[0]} to {days[-1]}"


def render_summary(summary: Summary, title: str = "crystalbench leaderboard") -> str:
    """The leaderboard page for an already collected `Summary`."""
    lines = [f"# {escape(title, 200)}", ""]
    left_out = _left_out(summary)
    if not summary.cells:
        lines.append("_No successful results yet._" + (f" ({'; '.join(left_out)}.)" if left_out else ""))
        return "\n".join(lines) + "\n"
    lines.append(
        f"Built from {summary.n_ok} successful "
        f"result(s){' (' + '; '.join(left_out) + ')' if left_out else ''}{_made(summary)}. Cells: mean ± std over folds and seeds "
        f"(n=F×S: F folds × S seeds; no n: a single run); {STD_NOTE}. Best per row in **bold**; {LEAK_MARK} "
        f"target leak; {NOTE_MARK} records disagree (see notes). {RECIPE_NOTE}"
    )
    for metric in TABLE_METRICS:
        table = _table(summary, metric)
        if table:
            lines += ["", f"## {metric_heading(metric)}", "", *table]
    lines += _warnings(summary)
    lines += _configurations(summary)
    lines += _footer(summary)
    lines.append("")
    return "\n".join(lines)


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
    summary.n_invalid += skipped
    return render_summary(summary, title)


def keep_hand_written(text: str, out: Path, marker_text: str = HAND_WRITTEN_MARKER) -> str:
    """`text` plus the hand-written part (from `marker_text` on) of the existing `out`, if any."""
    try:
        old = Path(out).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return text
    _, marker, kept = old.partition(marker_text)
    return text.rstrip("\n") + "\n\n" + marker + kept if marker else text


def build_leaderboard(
    results_dir: Path,
    out: Path,
    title: str = "crystalbench leaderboard",
    *,
    units: Mapping[str, str] | None = None,
    summary: Summary | None = None,
) -> tuple[Path, list[tuple[Path, str]]]:
    """Render every valid record under `results_dir` to `out` (atomically); return it and the skipped files.

    summary: an already collected one (the CLI collects once for markdown and HTML).
    """
    summary = summary if summary is not None else collect(results_dir, units=units)
    text = keep_hand_written(render_summary(summary, title), Path(out))
    return atomic_write(Path(out), text), summary.skipped

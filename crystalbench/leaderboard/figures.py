"""The paper's figures as data, from results only (Gong et al. 2023, Sci. Adv. 9, eadi3245).

* `learnability`: R² per descriptor task (``desc_*``, regression) per model configuration,
  the data of the paper's Fig. 2 (CGCNN/ALIGNN vs the composition-only ROOST floor; any
  model that has results shows up).
* `pooling`: the paper's Table 2: U, Cv and the magnetization M predicted per cell with mean
  pooling, per atom with mean pooling (the ``*_per_atom`` tasks) and per cell with sum pooling,
  MAE/MAD per model. Which pooling a record used comes from its resolved hyperparameters.

Nothing here draws or escapes: `html` renders these with `plots`, `pooling_markdown` as markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from crystalbench.contract.enums import TaskType
from crystalbench.contract.metrics import METRICS, Metric

from .collect import Cell, Summary, fmt_stat

__all__ = ["learnability", "Learnability", "pooling", "PoolingRow", "POOLING_PROPERTIES", "POOLING_VARIANTS",
           "pooling_markdown"]

DESCRIPTOR_PREFIX = "desc_"
# Table 2's properties: label -> (per-cell task, per-atom task).
POOLING_PROPERTIES: dict[str, tuple[str, str]] = {
    "U": ("phonon_u", "phonon_u_per_atom"),
    "Cv": ("phonon_cv", "phonon_cv_per_atom"),
    "M": ("magnetization", "magnetization_per_atom"),
}
# Table 2's columns: label -> (which task of the pair, pooling).
POOLING_VARIANTS: dict[str, tuple[int, str]] = {
    "per-cell, mean": (0, "mean"),
    "per-atom, mean": (1, "mean"),
    "per-cell, sum": (0, "sum"),
}
POOLING_METRIC: Metric = METRICS["mae_over_mad"]


@dataclass
class Learnability:
    """R² (mean, std, runs) per descriptor task (rows) and model configuration (series)."""

    tasks: list[str]
    series: dict[str, list[tuple[float | None, float | None]]]
    runs: dict[tuple[str, str], str] = field(default_factory=dict)


def _stat(cell: Cell | None, key: str) -> tuple[float | None, float | None]:
    stat = (cell.metrics.get(key) or {}) if cell is not None else {}
    mean, std = stat.get("mean"), stat.get("std")
    ok = isinstance(mean, (int, float)) and math.isfinite(mean)
    return (float(mean) if ok else None, float(std) if ok and isinstance(std, (int, float)) else None)  # type: ignore[arg-type]


def learnability(summary: Summary, protocol: str = "paper") -> Learnability:
    """R² of every model configuration on every ``desc_*`` regression task with results (leak-flagged cells left out)."""
    cells = [c for c in summary.cells.values()
             if c.task.startswith(DESCRIPTOR_PREFIX) and c.protocol == protocol and not c.leak
             and summary.tasks[c.task].task_type == TaskType.REGRESSION]
    tasks = sorted({c.task for c in cells})
    columns = [col for col in summary.columns if any(c.column == col for c in cells)]
    out = Learnability(tasks=tasks, series={})
    for col in columns:
        out.series[col] = [_stat(summary.cells.get((t, protocol, col)), "r2") for t in tasks]
        for t in tasks:
            if (cell := summary.cells.get((t, protocol, col))) is not None:
                out.runs[(t, col)] = cell.runs
    return out


@dataclass
class PoolingRow:
    """One (property, model) row of Table 2: per variant the cell used, plus how many other candidates exist."""

    prop: str
    model: str
    cells: dict[str, Cell | None]
    others: dict[str, int]


def _pooling_of(cell: Cell) -> str | None:
    value = cell.settings.get("pooling")
    return value.strip('"') if isinstance(value, str) else None


def pooling(summary: Summary, protocol: str = "paper") -> list[PoolingRow]:
    """Table 2 rows for every model with a pooling setting and results on at least one variant.

    When several configurations match a variant (e.g. two epoch budgets), the one with the most runs
    is shown and the others are counted in `others` (the views say so: never silently dropped).
    """
    rows: list[PoolingRow] = []
    for prop, pair in POOLING_PROPERTIES.items():
        candidates: dict[tuple[str, str], list[Cell]] = {}
        for variant, (which, pool) in POOLING_VARIANTS.items():
            for c in summary.cells.values():
                if c.task == pair[which] and c.protocol == protocol and _pooling_of(c) == pool:
                    candidates.setdefault((c.model, variant), []).append(c)
        for model in sorted({m for m, _ in candidates}):
            row = PoolingRow(prop=prop, model=model, cells={}, others={})
            for variant in POOLING_VARIANTS:
                found = sorted(candidates.get((model, variant), []), key=lambda c: (-c.n, c.column))
                row.cells[variant] = found[0] if found else None
                row.others[variant] = max(0, len(found) - 1)
            rows.append(row)
    return rows


def pooling_cell_text(cell: Cell | None, others: int = 0) -> str:
    """``mean ± std (n=F×S)`` of MAE/MAD for one Table 2 cell, plain text ('' when missing)."""
    if cell is None:
        return ""
    stat = fmt_stat(cell.metrics.get(POOLING_METRIC.key), POOLING_METRIC)
    text = "–" if stat is None else f"{stat[0]} ± {stat[1]} (n={cell.runs})"
    return text + (f" [+{others} other config(s)]" if others else "") + (" †" if cell.leak else "")


def pooling_markdown(summary: Summary, protocol: str = "paper") -> str:
    """Table 2 as a markdown table (MAE/MAD, lower is better); '' when no record matches."""
    from .markdown import escape

    rows = pooling(summary, protocol)
    if not rows:
        return ""
    lines = ["| property | model | " + " | ".join(POOLING_VARIANTS) + " |", "|" + "---|" * (2 + len(POOLING_VARIANTS))]
    for row in rows:
        cells = [escape(pooling_cell_text(row.cells[v], row.others[v]), 200) for v in POOLING_VARIANTS]
        lines.append(f"| {escape(row.prop)} | {escape(row.model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

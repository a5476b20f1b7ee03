"""Our numbers next to the paper's: `bench report paper`.

The published values are data (`values.json`, with the table and row each comes
from); only values someone has checked against the source are filled, the rest
are explicit `null` entries to fill. Our side comes from validated records only
(`ResultStore.records()` validates schema, job id and recomputed metrics; the
`.tune` trial folders are never read), never from a search's trials.

When a (task, model, protocol) has records of several configurations, the one
with the most records is shown (ties: the most recent) and the number of
configurations is reported, so a re-run with other settings is visible and never
silently mixed into one mean.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..harness.errors import CrystalbenchError
from ..harness.record import ResultRecord
from ..harness.results import ResultStore
from ..harness.store import digest

__all__ = ["PaperValue", "Comparison", "paper_values", "compare", "render_markdown", "VALUES_FILE"]

VALUES_FILE = Path(__file__).with_name("values.json")


@dataclass(frozen=True)
class PaperValue:
    """One published number (or claim: `relation` ">" / "<") and where it comes from."""

    table: str
    row: str
    task: str
    model: str
    protocol: str
    metric: str
    relation: str
    value: float | None
    unit: str = ""


@dataclass(frozen=True)
class Comparison:
    paper: PaperValue
    ours: float | None
    n_records: int
    n_configs: int

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.paper.value in (None, 0) or self.paper.relation != "=":
            return None
        return self.ours / self.paper.value  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        if self.paper.value is None:
            return "paper value missing"
        if self.ours is None:
            return "not run"
        if self.paper.relation == ">":
            return "holds" if self.ours > self.paper.value else "does not hold"
        if self.paper.relation == "<":
            return "holds" if self.ours < self.paper.value else "does not hold"
        return ""


def paper_values(path: Path = VALUES_FILE) -> list[PaperValue]:
    """The published values, checked for shape (a malformed file is one error line)."""
    try:
        raw = json.loads(Path(path).read_text())
        out = []
        for e in raw["entries"]:
            value = e.get("value")
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"value {value!r} of {e.get('table')} {e.get('row')} is not a number")
            if e.get("relation", "=") not in ("=", ">", "<"):
                raise ValueError(f"relation {e.get('relation')!r} is not =, > or <")
            out.append(PaperValue(table=str(e["table"]), row=str(e["row"]), task=str(e["task"]), model=str(e["model"]),
                                  protocol=str(e["protocol"]), metric=str(e["metric"]), relation=e.get("relation", "="),
                                  value=None if value is None else float(value), unit=str(e.get("unit", ""))))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CrystalbenchError(f"paper values {path}: {exc}") from None


def _ours(records: list[ResultRecord], metric: str) -> tuple[float | None, int, int]:
    """Mean of `metric` over the records of the most represented configuration; (mean, n records, n configs)."""
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for rec in records:
        groups[digest({"params": rec.job.params, "descriptors": rec.job.descriptors, "data": rec.job.data}, 12)].append(rec)
    if not groups:
        return None, 0, 0
    chosen = max(groups.values(), key=lambda g: (len(g), max(r.created for r in g)))
    values = [float(v) for r in chosen if (v := r.metrics.get(metric)) is not None]
    return (sum(values) / len(values) if values else None), len(values), len(groups)


def compare(results_dir: Path, values: list[PaperValue] | None = None) -> list[Comparison]:
    """Each published value with ours from the validated, successful records under `results_dir`."""
    values = paper_values() if values is None else values
    by_key: dict[tuple[str, str, str], list[ResultRecord]] = defaultdict(list)
    for rec in ResultStore(Path(results_dir)).records():
        if rec.ok and rec.job.split_source is None:  # a user's split file is not the paper's protocol
            by_key[(rec.job.task, rec.job.model, rec.job.protocol)].append(rec)
    out = []
    for v in values:
        ours, n, configs = _ours(by_key.get((v.task, v.model, v.protocol), []), v.metric)
        out.append(Comparison(v, ours, n, configs))
    return out


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


def render_markdown(rows: list[Comparison], *, include_missing: bool = False) -> str:
    """A markdown table: table, row, model, metric, paper, ours, ours/paper, records, verdict (cells escaped)."""
    from ..leaderboard.markdown import escape

    lines = ["| table | row | model | metric | paper | ours | ours/paper | records | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        if c.paper.value is None and not include_missing:
            continue
        p = c.paper
        paper = ("" if p.relation == "=" else p.relation + " ") + _num(p.value) + (f" {p.unit}" if p.unit else "")
        note = c.verdict
        if c.n_configs > 1:
            note = (note + "; " if note else "") + f"{c.n_configs} configurations, the most recorded shown"
        ratio = _num(c.ratio)
        cells = [p.table, p.row, p.model, p.metric, paper, _num(c.ours), ratio, str(c.n_records), note]
        lines.append("| " + " | ".join(escape(x) for x in cells) + " |")
    filled = sum(c.paper.value is not None for c in rows)
    lines.append("")
    lines.append(f"{filled} of {len(rows)} paper entries have a published value here; the others are still to be "
                 "copied from the paper (crystalbench/paper/values.json). Ratio below 1: our error is lower.")
    return "\n".join(lines) + "\n"


def as_rows(rows: list[Comparison]) -> list[dict[str, Any]]:
    """JSON-ready rows (for `--json`)."""
    return [{"table": c.paper.table, "row": c.paper.row, "task": c.paper.task, "model": c.paper.model,
             "protocol": c.paper.protocol, "metric": c.paper.metric, "relation": c.paper.relation,
             "paper": c.paper.value, "ours": c.ours, "ratio": c.ratio, "records": c.n_records,
             "configs": c.n_configs, "verdict": c.verdict} for c in rows]

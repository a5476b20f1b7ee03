"""Our records against the paper's cells: which records count, their interval, paired tests, rf importances.

Which records count for a cell (and why):

* validated, successful records only (`ResultStore.records()` checks schema, job id
  and recomputed metrics; the `.tune` trial folders are never read), each job id
  once (a copied file is not a second run), no user `--split-file`;
* `origin == "run"` and `non_default` exactly the cell's pins: a 3-epoch run or a
  tuning trial never stands for the model. A tuned final run (provenance.tuning
  from `bench tune --space paper`) counts only for the Tables S2/S3 cell, where
  the chosen search parameters are set aside before comparing pins;
* the model's own descriptor set (a `cgcnn --descriptors gong29` run is not cgcnn);
* of several data versions (a task's data changed), the newest: older records
  are counted as stale and shown, never averaged in.

Records of the same model and task with other settings are listed beside the
cell (`others`, by their display name) so nothing computed is hidden.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystalbench.contract.record import ResultRecord
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.results import ResultStore

from ..leaderboard.stats import Interval, PairedTest, interval, paired
from .cells import (
    PaperCell,
    build_cells,
    defaults,
    fill_command,
    more_seeds_command,
    pins_key,
    pins_of,
    runs_wanted,
)
from .deviations import THRESHOLD, is_off, reasons
from .values import PaperValue, paper_values

__all__ = ["Comparison", "PairedComparison", "Importance", "Deviation", "PaperReport", "compare", "build_report",
           "read_records", "paired_comparisons", "importances", "deviations"]

_TOP_FEATURES = 5


@dataclass
class Comparison:
    """One cell with our side: the records that count, their interval, and what to run next."""

    cell: PaperCell
    records: list[ResultRecord] = field(default_factory=list)
    interval: Interval | None = None
    others: dict[str, int] = field(default_factory=dict)
    stale: int = 0
    command: str = ""
    more: str | None = None
    wanted: int = 1
    data_note: str = ""
    configuration: str = ""
    data_detail: str = ""
    resolved: dict[str, Any] = field(default_factory=dict)

    @property
    def paper(self) -> PaperValue | None:
        return self.cell.paper

    @property
    def ours(self) -> float | None:
        return None if self.interval is None else self.interval.mean

    @property
    def n_records(self) -> int:
        return 0 if self.interval is None else self.interval.n

    @property
    def ratio(self) -> float | None:
        p = self.paper
        if self.ours is None or p is None or p.value in (None, 0) or p.relation != "=" or not p.compare:
            return None
        return self.ours / p.value  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        """Holds / does not hold for a claim; whether the paper's number lies in our 95% interval."""
        p, iv = self.paper, self.interval
        if p is None:
            return "figure only: no printed value"
        if p.value is None:
            return "paper value missing"
        if not p.compare:
            return "not compared (see the data note)"
        if iv is None:
            return "not run"
        inside = iv.low is not None and iv.high is not None and iv.low <= p.value <= iv.high
        if p.relation in (">", "<"):
            holds = iv.mean > p.value if p.relation == ">" else iv.mean < p.value
            return ("holds" if holds else "does not hold") + ("; the 95% CI includes the threshold" if inside else "")
        if iv.low is None:
            return ""
        return "paper within our 95% CI" if inside else "paper outside our 95% CI"


@dataclass
class PairedComparison:
    """Two cells of one table on the same splits: `b` (de-GNN, sum pooling, variant) against `a`."""

    section: str
    task: str
    protocol: str
    metric: str
    what: str
    a: Comparison
    b: Comparison
    test: PairedTest


@dataclass
class Importance:
    """rf feature importances of one task, averaged over its recipe records (empty when unmeasured)."""

    task: str
    n: int
    top: list[tuple[str, float]]
    command: str


@dataclass(frozen=True)
class Deviation:
    """One cell more than `deviations.THRESHOLD` off the paper, with the ways our run of it differs."""

    comparison: Comparison
    reasons: tuple[str, ...]

    @property
    def off(self) -> float:
        """ours/paper - 1 (positive: our value is higher)."""
        ratio = self.comparison.ratio
        return 0.0 if ratio is None else ratio - 1.0


@dataclass
class PaperReport:
    rows: list[Comparison]
    paired: list[PairedComparison]
    importances: list[Importance]
    importance_available: bool
    deviations: list[Deviation] = field(default_factory=list)
    records: list[ResultRecord] = field(default_factory=list)  # every record read (the cells' and the others)


# -- records ------------------------------------------------------------------------------------------------


def read_records(results_dir: Path) -> list[ResultRecord]:
    """Validated ok records, each job id once (the newest copy), without user split files."""
    by_id: dict[str, ResultRecord] = {}
    for rec in ResultStore(Path(results_dir)).records():
        if not rec.ok or rec.job.split_source is not None:
            continue
        old = by_id.get(rec.job_id)
        if old is None or rec.created > old.created:
            by_id[rec.job_id] = rec
    return list(by_id.values())


def _tuning(rec: ResultRecord) -> Mapping[str, Any] | None:
    t = rec.provenance.get("tuning")
    return t if isinstance(t, Mapping) else None


def _record_pins(rec: ResultRecord, reg: Registry) -> dict[str, Any] | None:
    """The record's settings that differ from the recipe; None for a tuning trial (never a model's number).

    A record written before records stored `non_default` (origin "unknown") gets the
    same comparison done here from its resolved parameters; tuning trials of that
    time lived under `.tune` with a split file, and neither is read.
    """
    if rec.origin == "run":
        return dict(rec.non_default)
    if rec.origin == "unknown":
        return pins_of(reg, rec.job.model, rec.job.task, rec.job.params)
    return None


def _counts(rec: ResultRecord, cell: PaperCell, reg: Registry) -> bool:
    pins = _record_pins(rec, reg)
    if pins is None:
        return False
    spec = reg.models.get(cell.model)
    if spec is not None and rec.job.descriptors != spec.descriptors:
        return False
    if cell.tuned:
        tuning = _tuning(rec)
        if tuning is None or not str(tuning.get("space", "")).startswith("paper"):
            return False
        chosen = tuning.get("chosen_params") or {}
        pins = {k: v for k, v in pins.items() if k not in chosen}
    return pins_key(pins) == pins_key(cell.pins)


def _newest_data(records: list[ResultRecord]) -> tuple[list[ResultRecord], int]:
    """The records of the newest data fingerprint, and how many older ones were set aside."""
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for r in records:
        groups[r.job.data].append(r)
    if len(groups) <= 1:
        return records, 0
    newest = max(groups.values(), key=lambda g: max(r.created for r in g))
    return newest, len(records) - len(newest)


def _value(rec: ResultRecord, metric: str) -> float | None:
    v = rec.metrics.get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _data_note(cell: PaperCell, reg: Registry) -> str:
    """How our data relates to the paper's for this cell (values.json note first, then the task's metadata)."""
    tspec = reg.tasks.get(cell.task)
    parts = []
    relation = (cell.paper.data_relation if cell.paper else "") or (tspec.data_relation if tspec else "")
    if relation:
        parts.append(relation)
    if tspec is not None and tspec.paper_count:
        ours = f"{tspec.size:,}" if tspec.size else "?"
        parts.append(f"{ours} vs paper {tspec.paper_count:,} samples")
    if cell.paper and cell.paper.note:
        parts.append(cell.paper.note)
    return "; ".join(parts)


_SPLITS = {"paper": "random split", "file": "authors' split", "matbench": "Matbench 5 folds"}


def _resolved(cell: PaperCell, reg: Registry) -> dict[str, Any]:
    """The cell's full settings: the model's defaults for the task with the cell's pins on top."""
    spec, tspec = reg.models.get(cell.model), reg.tasks.get(cell.task)
    return {**(defaults(spec, tspec) if spec is not None and tspec is not None else {}), **cell.pins}


def _configuration(cell: PaperCell, params: Mapping[str, Any]) -> str:
    """What the cell runs: pooling, epochs, other pins, split, search."""
    parts = []
    if "pooling" in params:
        parts.append(f"{params['pooling']} pooling")
    if "epochs" in params:
        parts.append(f"{params['epochs']} epochs")
    parts += [f"{k}={v}" for k, v in sorted(cell.pins.items()) if k not in ("pooling", "epochs")]
    parts.append(_SPLITS.get(cell.protocol, cell.protocol))
    if cell.tuned:
        parts.append("after bench tune --space paper")
    return ", ".join(parts)


def _fill(cell: PaperCell, candidates: list[ResultRecord], reg: Registry) -> Comparison:
    mine = [r for r in candidates if _counts(r, cell, reg)]
    mine, stale = _newest_data(mine)
    values = [v for r in mine if (v := _value(r, cell.metric)) is not None]
    others: dict[str, int] = defaultdict(int)
    for r in candidates:
        if not _counts(r, cell, reg):
            others[r.display_model] += 1
    params = _resolved(cell, reg)
    tspec = reg.tasks.get(cell.task)
    return Comparison(cell, mine, interval(values), dict(others), stale, fill_command(cell, reg),
                      None if not mine else more_seeds_command(cell, reg, {r.seed for r in mine}),
                      runs_wanted(cell), _data_note(cell, reg), _configuration(cell, params),
                      tspec.paper_data if tspec is not None else "", params)


def compare(results_dir: Path, values: list[PaperValue] | None = None, *, registry: Registry | None = None,
            records: list[ResultRecord] | None = None) -> list[Comparison]:
    """Every cell with our side. With explicit `values`, only those cells; by default the full paper set."""
    reg = registry if registry is not None else _registry()
    cells = build_cells(reg, paper_values(), suites=True) if values is None else build_cells(reg, values, suites=False)
    records = read_records(results_dir) if records is None else records
    by_key: dict[tuple[str, str, str], list[ResultRecord]] = defaultdict(list)
    for rec in records:
        by_key[(rec.job.task, rec.job.model, rec.job.protocol)].append(rec)
    return [_fill(c, by_key.get((c.task, c.model, c.protocol), []), reg) for c in cells]


def _registry() -> Registry:
    from crystalbench.runtime.registry import load_registry

    return load_registry()


# -- paired comparisons -------------------------------------------------------------------------------------


def _pair_values(c: Comparison) -> dict[tuple[Any, ...], float]:
    """metric by split: (fold, seed, test ids hash); a record without the hash cannot be paired."""
    out = {}
    for r in c.records:
        digest = (r.provenance.get("split") or {}).get("test_ids_sha256")
        v = _value(r, c.cell.metric)
        if digest and v is not None:
            out[(r.fold, r.seed, digest)] = v
    return out


def _differing(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """Settings both cells have whose values differ (a de-model's extra settings are not a difference)."""
    return {k for k in a.keys() & b.keys() if pins_key({k: a[k]}) != pins_key({k: b[k]})}


def _pair_order(a: Comparison, b: Comparison) -> tuple[Comparison, Comparison, str] | None:
    """(baseline, other, label) for two cells of one (section, task, protocol), or None when they are no pair.

    Pairs: a GNN and its de-GNN with the same settings; one model with mean vs sum
    pooling (mean first); one model's variant vs its recipe cell (recipe first).
    """
    ca, cb = a.cell, b.cell
    diff = _differing(a.resolved, b.resolved)
    if ca.model != cb.model:
        if diff:
            return None
        if cb.model == f"de-{ca.model}":
            return a, b, f"{ca.model} → {cb.model}"
        if ca.model == f"de-{cb.model}":
            return b, a, f"{cb.model} → {ca.model}"
        return None
    if diff == {"pooling"}:
        first, second = (a, b) if a.resolved.get("pooling") == "mean" else (b, a)
        return first, second, f"{ca.model}: {first.resolved['pooling']} → {second.resolved['pooling']} pooling"
    if diff and (not ca.pins or not cb.pins):
        base, variant = (a, b) if not ca.pins else (b, a)
        return base, variant, f"{ca.model}: recipe → {', '.join(f'{k}={variant.resolved[k]}' for k in sorted(diff))}"
    return None


def paired_comparisons(rows: Iterable[Comparison]) -> list[PairedComparison]:
    """GNN vs de-GNN (same pins), mean vs sum pooling, and variant vs recipe, within each table and task."""
    groups: dict[tuple[str, str, str, str, bool], list[Comparison]] = defaultdict(list)
    for c in rows:
        groups[(c.cell.section, c.cell.task, c.cell.protocol, c.cell.metric, c.cell.tuned)].append(c)
    out = []
    for (section, task, protocol, metric, _), members in groups.items():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                order = _pair_order(a, b)
                if order is None:
                    continue
                base, other, what = order
                out.append(PairedComparison(section, task, protocol, metric, what, base, other,
                                            paired(_pair_values(base), _pair_values(other))))
    return out


# -- rf feature importance (Fig. 4 / S6) ----------------------------------------------------------------------


def _importances(rec: ResultRecord) -> dict[str, float] | None:
    """`fit_info.feature_importances` as {feature: importance} (a mapping, or a list beside `feature_names`)."""
    raw = rec.fit_info.get("feature_importances")
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, list) and isinstance(rec.fit_info.get("feature_names"), list):
        items = list(zip(rec.fit_info["feature_names"], raw, strict=False))
    else:
        return None
    return {str(k): float(v) for k, v in items if isinstance(v, (int, float)) and math.isfinite(v)}


def importances(rows: Iterable[Comparison], reg: Registry) -> tuple[list[Importance], bool]:
    """Top rf features per Table 1 task from its recipe records; the flag says whether any record has them."""
    out, available = [], False
    for c in rows:
        if c.cell.section != "Table 1" or c.cell.model != "rf" or c.cell.protocol != "paper":
            continue
        found = [imp for r in c.records if (imp := _importances(r))]
        available = available or bool(found)
        totals: dict[str, float] = defaultdict(float)
        for imp in found:
            for k, v in imp.items():
                totals[k] += v / len(found)
        top = sorted(totals.items(), key=lambda kv: -kv[1])[:_TOP_FEATURES]
        out.append(Importance(c.cell.task, len(found), top, c.command))
    return out, available


# -- cells off the paper ---------------------------------------------------------------------------------------


def deviation_reasons(c: Comparison, reg: Registry) -> tuple[str, ...]:
    """`deviations.reasons` for one cell, with its model and task as registered."""
    return reasons(model=c.cell.model, section=c.cell.section, tuned=c.cell.tuned, spec=reg.models.get(c.cell.model),
                   tspec=reg.tasks.get(c.cell.task), data_relation=c.paper.data_relation if c.paper else "",
                   paper_value=c.paper.value if c.paper else None, iv=c.interval,
                   paper_note=c.paper.note if c.paper else "")


def deviations(rows: Iterable[Comparison], reg: Registry, threshold: float = THRESHOLD) -> list[Deviation]:
    """Every measured cell with a comparable printed value more than `threshold` off, with its reasons."""
    return [Deviation(c, deviation_reasons(c, reg)) for c in rows if is_off(c.ratio, threshold)]


def build_report(results_dir: Path, values: list[PaperValue] | None = None, *, registry: Registry | None = None,
                 records: list[ResultRecord] | None = None) -> PaperReport:
    """The whole report: cells, paired tests, rf importances (`records` instead of reading `results_dir`)."""
    reg = registry if registry is not None else _registry()
    records = read_records(results_dir) if records is None else records
    rows = compare(results_dir, values, registry=reg, records=records)
    imps, available = importances(rows, reg)
    return PaperReport(rows, paired_comparisons(rows), imps, available, deviations(rows, reg), records)

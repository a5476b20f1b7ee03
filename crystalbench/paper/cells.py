"""The paper's cells: every (table, row, model, configuration) the report lists, and the command that fills it.

A cell is what one number of the paper was measured on: task, model, protocol,
metric and the *pinned* configuration, i.e. the hyperparameters that must differ
from the model's own recipe for that task (Table 2's sum pooling; mean pooling on
an extensive target in Table 1, whose GNNs all average). Pins are stored in the
same form as a record's `non_default`, so a record counts for a cell exactly when
its `non_default` equals the cell's pins: a shortened or otherwise changed run
never stands in for a paper cell.

Where the cells come from, so that no table can silently go missing:

* every entry of `values.json` (with or without a published value);
* every job of the paper suites (`paper-table1`, `paper-table2`, `paper-fig2`,
  `paper-fig3`, any other `paper-*` suite, `matbench-phonons`) that no entry
  covers: the paper shows it only in a figure, so the cell has no number but is
  still listed with its fill command;
* for Table 1/2 tasks that carry the authors' own split (`--protocol file`), the
  same cell on that split (where the README's headline numbers come from);
* for Table 1/2 GNN cells, the cell after the paper's hyperparameter search
  (`bench tune --space paper`, Tables S2/S3), since the paper's property numbers
  were measured after that search.

An entry without its own `configuration` takes the pins of the paper suite's job
for the same table, task and model when the suite has exactly one.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crystalbench.contract.enums import TaskType
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.specs import ModelSpec, TaskSpec
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.runner import GridRequest, resolve_job_params
from crystalbench.runtime.splits import n_folds

from .values import PaperValue

__all__ = [
    "PaperCell", "build_cells", "cells_from_values", "defaults", "fill_command", "more_seeds_command", "pins_of",
    "pins_key", "runs_wanted",
    "SECTION_SUITES", "TUNED_SECTION", "FILE_NOTE",
]

# The paper's tables and figures and the suite that runs each (docs/paper.md).
SECTION_SUITES = {
    "Table 1": "paper-table1",
    "Table 2": "paper-table2",
    "Fig. 2": "paper-fig2",
    "Fig. 3": "paper-fig3",
    "Fig. 3g/h, S4 (MP structures)": "paper-fig3-mp",
    "Fig. S2": "paper-figs2",
    "Matbench v0.1 leaderboard": "matbench-phonons",
}
TUNED_SECTION = "Tables S2/S3 (after the paper's search)"
FILE_NOTE = "authors' split"
_PROPERTY_SECTIONS = ("Table 1", "Table 2")
# Parameter names of the paper's search spaces (tune.spaces.PAPER_SPACES): a model with all of one
# family's names can be searched with `bench tune --space paper`.
_SEARCH_FAMILIES = ({"atom_fea_len", "h_fea_len", "n_h", "lr"},
                    {"edge_input_features", "hidden_features", "triplet_input_features", "lr"})
# Pins a `bench run` flag can express; anything else needs the suite or a --config file.
_FLAGS = {"pooling": "--pooling", "epochs": "--epochs"}


def pins_key(pins: Mapping[str, Any]) -> str:
    """A canonical string of a configuration (hashable, order-free, 12 == 12.0)."""
    return json.dumps({k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                       for k, v in sorted(pins.items())}, sort_keys=True, default=str)


@dataclass
class PaperCell:
    """One cell of the report: what the paper measured, how we measure it, and the paper's number if any."""

    section: str
    row: str
    task: str
    model: str
    protocol: str
    metric: str
    pins: dict[str, Any] = field(default_factory=dict)
    paper: PaperValue | None = None
    label: str = ""
    suite: str | None = None
    tuned: bool = False
    seeds: tuple[int, ...] = (0,)

    @property
    def key(self) -> tuple[str, str, str, str, str, bool]:
        return (self.section, self.task, self.model, self.protocol, pins_key(self.pins), self.tuned)

    @property
    def display_model(self) -> str:
        """``cgcnn`` or ``cgcnn (pooling=mean)``: the model and the settings the cell pins."""
        if not self.pins:
            return self.model
        return f"{self.model} ({', '.join(f'{k}={_compact(v)}' for k, v in sorted(self.pins.items()))})"


def _compact(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)


# -- pins ---------------------------------------------------------------------------------------------------


_DEFAULTS: dict[tuple[int, int], tuple[ModelSpec, TaskSpec, dict[str, Any]]] = {}


def defaults(spec: ModelSpec, task: TaskSpec) -> dict[str, Any]:
    """What `spec` resolves for `task` with no overrides: the recipe a record's `non_default` is measured from.

    Memoised per (spec, task) object (resolving is ~1 ms and a report asks ~1,000 times);
    the specs are kept in the memo so an id is never reused for another object.
    """
    hit = _DEFAULTS.get((id(spec), id(task)))
    if hit is None or hit[0] is not spec or hit[1] is not task:
        hit = (spec, task, resolve_job_params(spec, task, GridRequest(models=[spec.name], tasks=[task.name])))
        _DEFAULTS[(id(spec), id(task))] = hit
    return dict(hit[2])


def pins_of(reg: Registry, model: str, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved `params` that differ from what `model` resolves for `task` with no overrides."""
    spec, tspec = reg.models.get(model), reg.tasks.get(task)
    if spec is None or tspec is None:
        return dict(params)
    default = defaults(spec, tspec)
    return {k: v for k, v in params.items() if k not in default or pins_key({k: default[k]}) != pins_key({k: v})}


def _resolve_configuration(reg: Registry, model: str, task: str, conf: Mapping[str, Any]) -> dict[str, Any]:
    """A values.json `configuration` as pins: resolved like `bench run` flags, defaults dropped."""
    spec, tspec = reg.models.get(model), reg.tasks.get(task)
    if spec is None or tspec is None:
        return dict(conf)
    rest = {k: v for k, v in conf.items() if k not in ("pooling", "epochs")}
    req = GridRequest(models=[model], tasks=[task], pooling=conf.get("pooling") if spec.poolings else None,
                      epochs=conf.get("epochs"), config={model: rest} if rest else {})
    try:
        params = resolve_job_params(spec, tspec, req)
    except CrystalbenchError:
        return dict(conf)
    return pins_of(reg, model, task, params)


# -- cells --------------------------------------------------------------------------------------------------


def _default_metric(reg: Registry, section: str, task: str, protocol: str) -> str:
    tspec = reg.tasks.get(task)
    if tspec is not None and tspec.task_type == TaskType.CLASSIFICATION:
        return "accuracy"
    if protocol == "matbench":
        return "mae"
    if section.startswith("Fig. 2") or section.startswith("Fig. 3") or (tspec is not None and tspec.group in ("descriptors", "chains")):
        return "r2"
    return "mae_over_mad"


def _paper_suites(reg: Registry) -> dict[str, str]:
    """section -> suite name, for the paper suites this registry has (any other `paper-*` suite is its own section)."""
    out = {sec: name for sec, name in SECTION_SUITES.items() if name in reg.suites}
    known = set(out.values())
    out.update({name: name for name in reg.suites if name.startswith("paper-") and name not in known})
    return out


def _suite_cells(reg: Registry) -> list[PaperCell]:
    """One cell per distinct (task, model, protocol, pins) of each paper suite's plan (no data is loaded)."""
    from crystalbench.runtime.suites import suite_plan

    cells: dict[tuple[Any, ...], PaperCell] = {}
    for section, name in _paper_suites(reg).items():
        for job in suite_plan(reg, reg.suites[name]):
            pins = pins_of(reg, job.model, job.task, job.params)
            cell = PaperCell(section, job.task, job.task, job.model, job.protocol,
                             _default_metric(reg, section, job.task, job.protocol), pins, None, job.label, name)
            old = cells.setdefault(cell.key, cell)
            if job.seed not in old.seeds:
                old.seeds = (*old.seeds, job.seed)
    return list(cells.values())


def cells_from_values(reg: Registry, values: Iterable[PaperValue], suite_cells: Iterable[PaperCell] = ()) -> list[PaperCell]:
    """One cell per values.json entry; an entry without a configuration takes the suite's unique pins."""
    by_job: dict[tuple[str, str, str, str], list[PaperCell]] = {}
    for c in suite_cells:
        by_job.setdefault((c.section, c.task, c.model, c.protocol), []).append(c)
    out = []
    for v in values:
        matches = by_job.get((v.table, v.task, v.model, v.protocol), [])
        if v.configuration:
            pins = _resolve_configuration(reg, v.model, v.task, v.configuration)
            twin = next((c for c in matches if pins_key(c.pins) == pins_key(pins)), None)
        else:
            twin = matches[0] if len({pins_key(c.pins) for c in matches}) == 1 else None
            pins = dict(twin.pins) if twin else {}
        out.append(PaperCell(v.table, v.row, v.task, v.model, v.protocol, v.metric, pins, v,
                             twin.label if twin else "", twin.suite if twin else SECTION_SUITES.get(v.table),
                             seeds=twin.seeds if twin else (0,)))
    return out


def _file_twins(reg: Registry, cells: Iterable[PaperCell]) -> list[PaperCell]:
    """Table 1/2 cells again on the authors' split, for tasks that carry one."""
    out = []
    for c in cells:
        tspec = reg.tasks.get(c.task)
        if c.section in _PROPERTY_SECTIONS and c.protocol == "paper" and tspec is not None and tspec.split_ids:
            label = f"{c.label}; {FILE_NOTE}" if c.label else FILE_NOTE
            out.append(dataclasses.replace(c, protocol="file", label=label, seeds=(0,)))
    return out


def _searchable(spec: ModelSpec | None) -> bool:
    if spec is None:
        return False
    names = {f.name for f in dataclasses.fields(spec.params_class)}
    return any(family <= names for family in _SEARCH_FAMILIES)


def _tuned_twins(reg: Registry, cells: Iterable[PaperCell]) -> list[PaperCell]:
    """Table 1/2 GNN cells after `bench tune --space paper` (Tables S2/S3)."""
    return [dataclasses.replace(c, section=TUNED_SECTION, row=f"{c.section}: {c.row}", tuned=True, seeds=(0,))
            for c in cells if c.section in _PROPERTY_SECTIONS and _searchable(reg.models.get(c.model))]


def build_cells(reg: Registry, values: Iterable[PaperValue], *, suites: bool = True) -> list[PaperCell]:
    """Every cell of the report, in order: values.json entries, uncovered suite jobs, authors' split, tuned."""
    suite_cells = _suite_cells(reg) if suites else []
    cells = cells_from_values(reg, values, suite_cells)
    seen = {c.key for c in cells}
    cells += [c for c in suite_cells if c.key not in seen]
    cells += [c for c in _file_twins(reg, cells) if c.key not in seen]
    cells += _tuned_twins(reg, cells)
    order: dict[str, int] = {}
    for name in [*SECTION_SUITES, *(c.section for c in cells if c.section != TUNED_SECTION), TUNED_SECTION]:
        order.setdefault(name, len(order))
    return sorted(cells, key=lambda c: order[c.section])  # stable: keeps the values.json / suite order inside


# -- commands -----------------------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (str, bool, int, float)) else json.dumps(str(v))


def _base(cell: PaperCell, reg: Registry) -> tuple[list[str], str]:
    """The command's words and any shell prefix (a --config file written by printf when flags cannot say it)."""
    words = ["bench", "tune" if cell.tuned else "run", "-m", cell.model, "-t", cell.task]
    if cell.tuned:
        words += ["--space", "paper"]
    tspec = reg.tasks.get(cell.task)
    other = {k: v for k, v in cell.pins.items() if k not in _FLAGS}
    if other and cell.suite and not cell.tuned and cell.protocol == (tspec.protocol if tspec else cell.protocol):
        suite_words = ["bench", "run", "--suite", cell.suite, "-m", cell.model, "-t", cell.task]
        return suite_words, ""
    for k, flag in _FLAGS.items():
        if k in cell.pins:
            words += [flag, str(cell.pins[k])]
    if tspec is None or cell.protocol != tspec.protocol:
        words += ["--protocol", cell.protocol]
    prefix = ""
    if other:
        fname = f"{cell.model}-{cell.task}.toml"
        body = f"[{cell.model}]\\n" + "".join(f"{k} = {_toml_value(v)}\\n" for k, v in sorted(other.items()))
        prefix = f"printf {shlex.quote(body)} > {shlex.quote(fname)} && "
        words += ["--config", fname]
    return words, prefix


def fill_command(cell: PaperCell, reg: Registry) -> str:
    """The exact `bench run` (or `bench tune`) line that produces this cell's records."""
    words, prefix = _base(cell, reg)
    if cell.tuned:
        return prefix + shlex.join(words)
    if cell.seeds != (0,):  # seed 0 is bench run's default
        for s in cell.seeds:
            words += ["--seed", str(s)]
    return prefix + shlex.join(words)


def more_seeds_command(cell: PaperCell, reg: Registry, have: Iterable[int], total: int = 3) -> str | None:
    """The `bench run` line that adds seeds until the cell has `total` (None when it has them or is tuned)."""
    have = set(have)
    if cell.tuned or len(have) >= total:
        return None
    words, prefix = _base(cell, reg)
    new = [s for s in range(total + len(have)) if s not in have][: total - len(have)]
    for s in new:
        words += ["--seed", str(s)]
    return prefix + shlex.join(words)


def runs_wanted(cell: PaperCell) -> int:
    """How many records a complete cell has: its seeds times its protocol's folds."""
    return len(cell.seeds) * n_folds(cell.protocol)

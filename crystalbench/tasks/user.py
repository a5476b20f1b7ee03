"""Users' own data as benchmark tasks, without writing code.

`bench run -m MODEL --data PATH --target COLUMN`, `bench featurize --data PATH`
and `bench results validate --data PATH` ask the registry for the file's task
(the `bench_data_task` hook, implemented here by `user_task`). Supported inputs
(gzip-compressed variants too), all read by `readers.read_table`, the reader
the built-in sources use:

* CSV/TSV with a structure column holding CIF text, POSCAR text or pymatgen
  Structure dicts (JSON or Python repr, read with `ast.literal_eval`), or a
  composition column (composition-only models);
* pymatgen/pandas JSON: a list of records, pandas "split" orientation
  (matminer/Matbench files) or "columns" orientation;
* a directory of CIF/POSCAR files plus `id_prop.csv` (CGCNN/ALIGNN convention:
  no header, `id,target` per line, structure file `<id>` or `<id>.cif`...);
* extended XYZ read with ASE (target from the frame info or its energy).

Structure dicts are untrusted input: only pymatgen Structure/IStructure dicts
are decoded (`readers.parse_structure` checks ``@module``/``@class`` before
pymatgen sees them), so a row cannot make the loader import anything.

Bad rows (malformed CIF, missing/NaN/inf target, disordered sites, no atoms,
duplicate ids, foreign objects...) are skipped with one warning each and a
count, or raise `BadInputError` in strict mode. An input with no usable row is
an error, and so is a target that cannot be learned: a constant regression
target, a classification target with one class, or a continuous column given
as a classification target.

Parsed inputs are cached in the ``user`` `Store` of the run's cache directory,
keyed by the files' sha256 and the loading options, and memoised per process,
so a task's `split_ids` never parses the file again. The loading options
(task type, columns, split) are also part of a user task's `version`, so the
same file benchmarked another way is a new job, not a resumed one.

TOML task files register reusable tasks: the `usertasks` plugin reads `*.toml`
from `$CRYSTALBENCH_TASKS_DIR` (os.pathsep-separated, see `settings`) and
`<data_dir>/tasks/`. The format is documented in docs/data.md and in
`tasks_from_toml`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crystalbench import (
    BadInputError,
    CrystalbenchError,
    Dataset,
    Protocol,
    Reporter,
    RunContext,
    SplitIds,
    TaskSpec,
    TaskType,
    digest,
    hookimpl,
    valid_name,
)

from . import settings
from .readers import (
    LOADER_VERSION,
    BadRow,
    RawTable,
    RowError,
    RowLog,
    cache_write,
    files_digest,
    input_files,
    iter_csv,
    no_gc,
    parse_composition,
    parse_float,
    parse_literal,
    parse_structure,
    process_memo,
    read_table,
    structure_from_record,
    structure_problem,
    structure_to_record,
    table_format,
)

__all__ = [
    "load_user_dataset", "user_task", "tasks_from_toml", "task_dirs", "bench_tasks", "bench_data_task", "TASKS_ENV",
]

TASKS_ENV = settings.TASKS_ENV
TASK_VERSION = "1"
Provides = Literal["structure", "composition"]

STRUCTURE_COLUMNS = (
    "structure", "structures", "cif", "atoms", "poscar", "initial_structure", "final_structure", "crystal", "struct",
)
COMPOSITION_COLUMNS = ("composition", "formula", "pretty_formula", "reduced_formula", "compound")
ID_COLUMNS = ("id", "material_id", "mpid", "mp_id", "task_id", "jid", "cif_id", "name", "identifier", "uid")
_MAX_SKIPPED_IN_META = 1000
_MIN_DISTINCT_FOR_CONTINUOUS = 10  # fewer distinct integer labels than this are always accepted as classes

_SPLIT_NAMES = {
    "train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
    "testing": "test",
}

_PAYLOADS = process_memo(8)
_DATASETS = process_memo(8)


@dataclasses.dataclass(frozen=True)
class _Options:
    """How a user's file is read: part of the cache key of its parsed payload."""

    target: str | None
    structure_column: str | None
    id_column: str | None
    task_type: TaskType
    split_column: str | None

    def key(self, files: Sequence[Path], fmt: str) -> str:
        return files_digest(files, fmt, self.target, self.structure_column, self.id_column, self.task_type,
                            self.split_column)


# --------------------------------------------------------------------------------------------
# choosing columns
# --------------------------------------------------------------------------------------------


def _column_value(fields: dict[str, Any], col: str) -> Any:
    """fields[col], or a dotted path into a dict-valued column ("meta.structure")."""
    if col in fields:
        return fields[col]
    head, _, rest = col.partition(".")
    if rest and head in fields:
        inner = fields[head]
        if isinstance(inner, str) and inner.strip().startswith("{"):
            inner = parse_literal(inner)
        if isinstance(inner, dict):
            return _column_value(inner, rest)
        raise RowError(f"column {head!r} does not hold a dict with key {rest!r}", kind="missing structure")
    raise RowError(f"no {col!r} value", kind="missing structure")


def _resolve_column(raw: RawTable, col: str, what: str, path: Path) -> str:
    if col in raw.columns:
        return col
    lowered = {c.lower(): c for c in raw.columns}
    if col.lower() in lowered:
        return lowered[col.lower()]
    head = col.partition(".")[0]
    if "." in col and head in raw.columns:
        return col  # dotted path, checked per row
    close = difflib.get_close_matches(col, raw.columns, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in raw.columns[:20]) + (", ..." if len(raw.columns) > 20 else "")
    raise BadInputError(f"{path}: no {what} column {col!r}{hint} (columns: {shown})")


def _sample_values(raw: RawTable, col: str, n: int = 3) -> list[Any]:
    out = []
    for _, _, rec in raw.rows:
        if isinstance(rec, dict):
            v = rec.get(col)
            if v not in (None, "") and not (isinstance(v, float) and math.isnan(v)):
                out.append(v)
                if len(out) >= n:
                    break
    return out


def _looks_like_structure(v: Any) -> bool:
    if isinstance(v, dict):
        return ("lattice" in v and "sites" in v) or isinstance(v.get("structure"), dict)
    if isinstance(v, str):
        t = v.lstrip()
        return ("_cell_length_a" in v) or (t.startswith("{") and "lattice" in t[:2000] and "sites" in t)
    return type(v).__name__ in ("Structure", "IStructure")


def _pick_structure_column(raw: RawTable, requested: str | None, path: Path) -> tuple[str, Provides]:
    """(column, "structure" | "composition")."""
    if requested:
        col = _resolve_column(raw, requested, "structure", path)
        return col, "composition" if col.lower() in COMPOSITION_COLUMNS else "structure"
    lowered = {c.lower(): c for c in raw.columns}
    for name in STRUCTURE_COLUMNS:
        if name in lowered:
            return lowered[name], "structure"
    for col in raw.columns:
        vals = _sample_values(raw, col)
        if vals and all(_looks_like_structure(v) for v in vals):
            return col, "structure"
    for name in COMPOSITION_COLUMNS:
        if name in lowered:
            return lowered[name], "composition"
    shown = ", ".join(repr(c) for c in raw.columns[:20])
    raise BadInputError(
        f"{path}: no structure column found (columns: {shown}); pass --structure-column "
        "(a column of CIF/POSCAR text or structure dicts, or 'formula' for composition-only data)"
    )


def _pick_id_column(raw: RawTable, requested: str | None, path: Path, exclude: Iterable[str]) -> str | None:
    if requested:
        return _resolve_column(raw, requested, "id", path)
    skip = {c.lower() for c in exclude if c}
    lowered = {c.lower(): c for c in raw.columns if c.lower() not in skip}
    return next((lowered[name] for name in ID_COLUMNS if name in lowered), None)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def _label(value: Any) -> str:
    """A classification label as text ("1.0" and 1 are the same class "1")."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip()):
        raise RowError("missing target", kind="missing/invalid target")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
        if math.isinf(x):
            raise RowError("target is infinite", kind="missing/invalid target")
        return str(int(x)) if x.is_integer() else repr(x)
    text = str(value).strip()
    if _is_number(text):
        return _label(float(text))
    return text


def _sort_classes(labels: Iterable[str]) -> tuple[str, ...]:
    uniq = set(labels)
    if all(_is_number(u) for u in uniq):
        return tuple(sorted(uniq, key=float))
    return tuple(sorted(uniq))


# --------------------------------------------------------------------------------------------
# rows -> payload (the cached, JSON-ready parse of one input)
# --------------------------------------------------------------------------------------------


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise BadInputError(f"{path}: no such file or directory")
    if not path.is_file() and not path.is_dir():  # a FIFO blocks forever, /dev/zero never ends: never read
        raise BadInputError(f"{path}: not a regular file or directory (a FIFO, socket or device is never read)")
    if path.is_file():
        if path.stat().st_size == 0:
            raise BadInputError(f"{path}: file is empty")
        if not os.access(path, os.R_OK):
            raise BadInputError(f"{path}: file is not readable (permissions)")
    return path


def _task_type(text: str) -> TaskType:
    if TaskType.has(text):
        return TaskType(text)
    raise BadInputError(f"task type {text!r} is not 'regression' or 'classification'")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")


@dataclasses.dataclass
class _Columns:
    """The columns chosen for one input."""

    structure: str
    kind: Provides
    target: str | None
    ident: str | None
    split: str | None


def _choose_columns(raw: RawTable, opts: _Options, path: Path, reporter: Reporter) -> _Columns:
    skind: Provides = "structure"
    if raw.structure_key is not None:
        scol = raw.structure_key
        if opts.structure_column and raw.fmt != "dir":
            reporter.note(f"{path}: --structure-column is ignored for {raw.fmt} input (each frame is a structure)")
    else:
        scol, skind = _pick_structure_column(raw, opts.structure_column, path)
    tcol = None
    if opts.target is not None:
        tcol = "target" if raw.fmt == "dir" else _resolve_column(raw, opts.target, "target", path)
    if raw.fmt == "dir":
        icol = "id" if raw.columns else None
    else:
        icol = _pick_id_column(raw, opts.id_column, path, exclude=(scol, tcol or ""))
    split = _resolve_column(raw, opts.split_column, "split", path) if opts.split_column else None
    return _Columns(scol, skind, tcol, icol, split)


class _Parsed:
    """Accumulates the usable rows of one input."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.targets: list[Any] = []
        self.structures: list[dict[str, Any]] = []
        self.compositions: list[dict[str, float]] = []
        self.splits: list[str] = []
        self.first_seen: dict[str, str] = {}


def _row_id(rec: dict[str, Any], cols: _Columns, default_id: Any, fallback: str) -> str:
    if cols.ident is not None:
        v = _column_value(rec, cols.ident)
        if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
            raise RowError("empty id", kind="missing id")
        return str(v).strip()
    return str(default_id) if default_id is not None else fallback


def _parse_row(out: _Parsed, where: str, rec: dict[str, Any], ident: str, cols: _Columns, opts: _Options) -> None:
    """Append one row to `out`, or raise RowError (then nothing is appended)."""
    if ident in out.first_seen:
        raise RowError(f"duplicate id (first seen at {out.first_seen[ident]})", kind="duplicate id")
    out.first_seen[ident] = where
    y: Any = None
    if cols.target is not None:
        value = _column_value(rec, cols.target)
        y = _label(value) if opts.task_type == TaskType.CLASSIFICATION else parse_float(value, "target")
    split = None
    if cols.split is not None:
        lab = str(_column_value(rec, cols.split) or "").strip().lower()
        if lab not in _SPLIT_NAMES:
            raise RowError(f"split value {lab!r} is not train/val/test", kind="bad split label")
        split = _SPLIT_NAMES[lab]
    value = rec.get(cols.structure) if cols.structure in rec else _column_value(rec, cols.structure)
    if isinstance(value, RowError):
        raise value
    if cols.kind == "composition":
        comp = parse_composition(value)
        out.compositions.append({str(el): float(amt) for el, amt in comp.items()})
    else:
        s = parse_structure(value)
        problem = structure_problem(s)
        if problem is not None:
            raise problem
        out.structures.append(structure_to_record(s))
    out.ids.append(ident)
    out.targets.append(y)
    if split is not None:
        out.splits.append(split)


def _parse(path: Path, opts: _Options, log: RowLog, reporter: Reporter) -> dict[str, Any]:
    """Read and parse one input into a JSON-ready payload (bad rows go to `log`)."""
    raw = read_table(path, reporter)
    cols = _choose_columns(raw, opts, path, reporter)
    out = _Parsed()
    stem = _slug(path.name.split(".")[0]) or "row"
    for n, (where, default_id, rec) in enumerate(raw.rows):
        if isinstance(rec, str):
            log.bad(where, None, rec, kind="malformed row")
            continue
        ident = None
        try:
            ident = _row_id(rec, cols, default_id, f"{stem}-{n + 1}")
            _parse_row(out, where, rec, ident, cols, opts)
        except RowError as exc:
            log.bad(where, ident, str(exc), exc.kind)
    return {
        "ids": out.ids,
        "targets": None if cols.target is None else out.targets,
        "structures": out.structures if cols.kind == "structure" else None,
        "compositions": out.compositions if cols.kind == "composition" else None,
        "splits": out.splits if cols.split else None,
        "task_type": opts.task_type,
        "bad": [b.to_json() for b in log.rows],
        "total": len(raw.rows),
        "meta": {
            "format": raw.fmt,
            "structure_column": None if raw.structure_key else cols.structure,
            "input": cols.kind,
            "id_column": cols.ident,
            "target_column": cols.target,
        },
    }


def _is_payload(d: Any) -> bool:
    """A cache entry that can be a payload (anything else is discarded and re-parsed)."""
    keys = ("ids", "targets", "structures", "compositions", "splits", "task_type", "bad", "total", "meta")
    if not isinstance(d, dict) or not all(k in d for k in keys) or not isinstance(d["ids"], list):
        return False
    n = len(d["ids"])
    sized = [d[k] for k in ("targets", "structures", "compositions", "splits") if d[k] is not None]
    return all(isinstance(v, list) and len(v) == n for v in sized) and (d["structures"] is None) != (
        d["compositions"] is None
    )


def _payload(ctx: RunContext, path: Path, fmt: str, files: list[Path], opts: _Options, strict: bool) -> Any:
    """The parsed input: memo, else the cache Store, else parsed (and stored when usable)."""
    key = opts.key(files, fmt)

    def stored() -> dict[str, Any]:
        store = ctx.cache("user", LOADER_VERSION)
        hit = store.get_json(key, check=_is_payload)
        if hit is not None:
            return dict(hit)
        with no_gc():
            payload = _parse(path, opts, RowLog(str(path), strict=strict), ctx.reporter)
        if payload["ids"]:
            cache_write(lambda: store.put_json(key, payload), store.dir, ctx.reporter)
        return payload

    return _PAYLOADS.get(key, stored)


# --------------------------------------------------------------------------------------------
# payload -> Dataset
# --------------------------------------------------------------------------------------------


def _check_learnable(payload: dict[str, Any], path: Path) -> None:
    """BadInputError when the target column cannot be learned (constant, one class, continuous classes)."""
    targets = payload["targets"]
    if targets is None:
        return
    col = payload["meta"]["target_column"]
    n = len(targets)
    if payload["task_type"] == TaskType.REGRESSION:
        values = np.asarray(targets, dtype=float)
        if n and np.all(values == values[0]):
            raise BadInputError(f"{path}: target {col!r} is constant ({float(values[0])!r}) in all {n} rows: "
                                "nothing to learn")
        return
    classes = _sort_classes(targets)
    if len(classes) < 2:
        raise BadInputError(f"{path}: classification target {col!r} has a single class ({classes[0]!r}) in all "
                            f"{n} rows: nothing to learn")
    if not all(_is_number(c) for c in classes):
        return
    fractional = [c for c in classes if not float(c).is_integer()]
    if fractional or len(classes) > max(_MIN_DISTINCT_FOR_CONTINUOUS, n / 2):
        example = f", e.g. {fractional[0]}" if fractional else ""
        raise BadInputError(
            f"{path}: classification target {col!r} looks continuous ({len(classes)} distinct values in {n} rows"
            f"{example}): use regression, or give class labels"
        )


def _dataset_from_payload(payload: dict[str, Any], name: str, path: Path, files: Sequence[Path]) -> Dataset:
    n = len(payload["ids"])
    classes = None
    if payload["targets"] is None:
        targets = np.full(n, np.nan)
    elif payload["task_type"] == TaskType.CLASSIFICATION:
        classes = _sort_classes(payload["targets"])
        index = {c: i for i, c in enumerate(classes)}
        targets = np.array([index[t] for t in payload["targets"]], dtype=int)
    else:
        targets = np.asarray(payload["targets"], dtype=float)
    structures = None
    compositions = None
    if payload["structures"] is not None:
        with no_gc():
            structures = tuple(structure_from_record(r) for r in payload["structures"])
    else:
        from pymatgen.core import Composition

        compositions = tuple(Composition(c) for c in payload["compositions"])
    meta = dict(payload["meta"])
    meta.update(
        path=str(path),
        files=[str(f) for f in files[:50]],
        rows=payload["total"],
        skipped_count=len(payload["bad"]),
        skipped=payload["bad"][:_MAX_SKIPPED_IN_META],
    )
    if payload.get("splits") is not None:
        meta["split"] = payload["splits"]
    return Dataset(
        ids=tuple(payload["ids"]), targets=targets, structures=structures, compositions=compositions,
        classes=classes, name=name, meta=meta,
    )


def _report(payload: dict[str, Any], source: str, reporter: Reporter, *, strict: bool, quiet: bool) -> None:
    """Replay the input's bad rows: warnings (unless quiet), or the first one as an error in strict mode."""
    log = RowLog(source, strict=strict)
    log.extend([BadRow.from_json(b) for b in payload["bad"]])
    if not quiet:
        log.report(payload["total"], reporter)


def load_user_dataset(
    path: str | os.PathLike[str],
    ctx: RunContext,
    *,
    target: str | None = None,
    structure_column: str | None = None,
    id_column: str | None = None,
    strict: bool = False,
    task_type: str = "regression",
    split_column: str | None = None,
    name: str | None = None,
    quiet: bool = False,
) -> Dataset:
    """Read a user's data file or directory into a Dataset, skipping and reporting bad rows.

    ctx: the run's context (cache directory, reporter for the bad-row warnings).
    target: the target column (None -> NaN targets, for featurizing only).
    structure_column / id_column: override auto-detection; dotted names reach into
        dict-valued columns (e.g. "meta.structure").
    strict: raise BadInputError at the first bad row instead of skipping it.
    task_type: "classification" turns target values into class indices.
    split_column: a column of train/val/test labels kept in `meta["split"]`
        (used by tasks with protocol "file").
    quiet: do not report the bad rows (they are still in `meta["skipped"]`).
    Parsed results are cached by file checksum and options, and memoised in
    the process, so a second load neither re-reads nor re-parses the file.
    """
    p = _check_path(Path(path).expanduser())
    opts = _Options(target, structure_column, id_column, _task_type(task_type), split_column)
    fmt = table_format(p)
    files = input_files(p)
    if not files:
        raise BadInputError(f"{p}: no data files found")
    payload = _payload(ctx, p, fmt, files, opts, strict)
    _report(payload, str(p), ctx.reporter, strict=strict, quiet=quiet)
    if not payload["ids"]:
        first = f"; first: {BadRow.from_json(payload['bad'][0]).describe(str(p))}" if payload["bad"] else ""
        raise BadInputError(f"{p}: no usable rows ({len(payload['bad'])} of {payload['total']} bad){first}")
    _check_learnable(payload, p)
    ds_name = name or _slug(p.name)
    key = (opts.key(files, fmt), ds_name, str(p))
    return _DATASETS.get(key, lambda: _dataset_from_payload(payload, ds_name, p, files))


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------


def _read_id_list(path: Path) -> list[str]:
    """One id per line (first CSV field); blank and '#' lines ignored."""
    if not path.is_file():
        raise BadInputError(f"split file {path} does not exist")
    out = []
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            t = line.strip()
            if t and not t.startswith("#"):
                out.append(t.split(",")[0].strip())
    return out


def _split_groups(data: Dataset, split_files: dict[str, Path], task_name: str, reporter: Reporter
                  ) -> dict[str, tuple[str, ...]]:
    present = set(data.ids)
    groups: dict[str, tuple[str, ...]] = {}
    for k in ("train", "val", "test"):
        if k not in split_files:
            groups[k] = ()
            continue
        listed = _read_id_list(split_files[k])
        missing = [i for i in listed if i not in present]
        if missing:
            reporter.note(f"task {task_name}: {len(missing)} {k} ids of {split_files[k]} are not in the data "
                          f"(e.g. {missing[0]!r}); ignored")
        groups[k] = tuple(i for i in listed if i in present)
    return groups


def _split_ids_factory(
    load: Callable[[RunContext], Dataset], split_column: str | None, split_files: dict[str, Path], task_name: str
) -> Callable[[RunContext], SplitIds]:
    def split_ids(ctx: RunContext) -> SplitIds:
        data = load(ctx)  # memoised: the file is not read again
        if split_column:
            labels = data.meta.get("split") or []
            groups = {k: tuple(i for i, s in zip(data.ids, labels) if s == k) for k in ("train", "val", "test")}
        else:
            groups = _split_groups(data, split_files, task_name, ctx.reporter)
        if not groups["train"] or not groups["test"]:
            raise BadInputError(f"task {task_name}: the file split needs non-empty train and test id lists")
        return SplitIds(train=groups["train"], test=groups["test"], val=groups["val"])

    return split_ids


def _peek_provides(path: Path, structure_column: str | None) -> Provides:
    """What a user task's samples carry, decided without parsing: the named column, else a CSV's first rows.

    Other inputs (JSON, extxyz, folders) are taken to hold structures unless a
    composition column is named explicitly.
    """
    if structure_column:
        return "composition" if structure_column.lower() in COMPOSITION_COLUMNS else "structure"
    try:
        if not path.is_file() or table_format(path) != "csv":
            return "structure"
        rows: list[tuple[str, Any, dict[str, Any] | str]] = []
        header: list[str] = []
        for line, hdr, rec in iter_csv(path):
            header = hdr or header
            if rec != {}:
                rows.append((f"line {line}", None, rec))
            if len(rows) >= 3:
                break
        return _pick_structure_column(RawTable("csv", header, rows), None, path)[1]
    except (CrystalbenchError, OSError):
        return "structure"  # the load reports what is wrong with the file


def user_task(
    path: str | os.PathLike[str],
    *,
    target: str | None,
    structure_column: str | None = None,
    id_column: str | None = None,
    task_type: str = "regression",
    strict: bool = False,
    name: str | None = None,
    unit: str = "",
    extensive: bool = False,
    protocol: str = "paper",
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    split_column: str | None = None,
    split_files: dict[str, str | os.PathLike[str]] | None = None,
    description: str = "",
    source: str = "",
    license: str = "",
    unlabelled: bool = False,
) -> TaskSpec:
    """A TaskSpec benchmarking a user's file (what `bench run --data PATH --target COL` runs).

    Loading is lazy (TaskSpec.load), so bad paths surface as BadInputError when
    the job runs. For an id_prop.csv directory `target` only names the values
    (None uses "target"); for tables it is the target column and is required,
    unless `unlabelled` (featurizing: no target is read, every target is NaN).
    """
    p = Path(path).expanduser()
    col = target
    if target is None:
        if p.is_dir():
            target = col = "target"
        elif unlabelled:
            target = "none"
        else:
            raise BadInputError(f"{p}: pass --target COLUMN to benchmark this file")
    ttype = _task_type(task_type)
    if split_column and split_files:
        raise BadInputError(f"task for {p}: give a split column or split files, not both")
    if (split_column or split_files) and protocol == "paper":
        protocol = "file"
    task_name = name or f"user-{(_slug(p.name.split('.')[0]) or 'data')[:70]}"
    if not valid_name(task_name):
        raise BadInputError(f"task name {task_name!r} may only use letters, digits and _ . + - (80 at most)")
    sfiles = {k: Path(v).expanduser() for k, v in (split_files or {}).items()}
    bad_keys = set(sfiles) - {"train", "val", "test"}
    if bad_keys:
        raise BadInputError(f"task {task_name}: split files must be train/val/test, not {sorted(bad_keys)}")

    def load_as(ctx: RunContext, quiet: bool) -> Dataset:
        return load_user_dataset(p, ctx, target=col, structure_column=structure_column, id_column=id_column,
                                 strict=strict, task_type=ttype, split_column=split_column, name=task_name,
                                 quiet=quiet)

    def load(ctx: RunContext) -> Dataset:
        return load_as(ctx, quiet=False)

    def load_quietly(ctx: RunContext) -> Dataset:  # split ids: the load already reported the bad rows
        return load_as(ctx, quiet=True)

    split_ids = _split_ids_factory(load_quietly, split_column, sfiles, task_name) if (split_column or sfiles) else None
    # the same file read with other options is other data: part of the task version, so of the job identity
    reading = {"task_type": ttype, "structure_column": structure_column, "id_column": id_column, "strict": strict,
               "split_column": split_column, "split_files": sorted((k, str(v)) for k, v in sfiles.items())}
    if protocol == "file" and split_ids is None:
        raise BadInputError(f"task {task_name}: protocol 'file' needs a split column or split files")
    return TaskSpec(
        name=task_name,
        load=load,
        target=target,
        unit=unit,
        task_type=ttype,
        extensive=extensive,
        protocol=protocol,
        fractions=(float(fractions[0]), float(fractions[1]), float(fractions[2])),
        split_ids=split_ids,
        provides=_peek_provides(p, structure_column),
        version=f"{TASK_VERSION}-{digest(reading, 8)}",
        available=lambda ctx: p.exists(),
        files=lambda ctx: input_files(p) if p.exists() else [p],
        source=source or str(p),
        license=license,
        description=description or f"user data {p.name}, target {target!r}",
        group="user",
    )


_TOML_KEYS = {
    "name", "path", "target", "unit", "type", "extensive", "protocol", "fractions", "structure_column",
    "id_column", "strict", "description", "source", "license", "split",
}


def tasks_from_toml(toml_path: str | os.PathLike[str], ctx: RunContext) -> list[TaskSpec]:
    """Tasks declared in a TOML file: top-level keys for one task, or `[[task]]` tables.

    Keys: name, path (relative to the TOML file; "{data_dir}/..." is resolved
    against the data directory of the context a task is loaded with), target,
    unit, type ("regression"|"classification"), extensive, protocol
    ("paper"|"matbench"|"file"), fractions, structure_column, id_column,
    strict, description, source, license, and `[split]` with either
    `column = "split"` or `train`/`val`/`test` id-list files.
    """
    tp = Path(toml_path)
    try:
        with open(tp, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise BadInputError(f"{tp}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{tp}: invalid TOML ({exc})") from None
    entries = doc.get("task") if "task" in doc else [doc]
    if not isinstance(entries, list) or not entries:
        raise BadInputError(f"{tp}: expected task keys at top level or [[task]] tables")
    return [_task_from_entry(tp, e, i, ctx) for i, e in enumerate(entries)]


def _validate_entry(where: str, e: Any) -> dict[str, Any]:
    """The entry's keys checked one by one (BadInputError naming the first problem)."""
    if not isinstance(e, dict):
        raise BadInputError(f"{where}: a task must be a table of keys")
    unknown = sorted(set(e) - _TOML_KEYS)
    if unknown:
        hint = difflib.get_close_matches(unknown[0], sorted(_TOML_KEYS), n=1)
        raise BadInputError(f"{where}: unknown key {unknown[0]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    for req in ("name", "path"):
        if not isinstance(e.get(req), str) or not e[req].strip():
            raise BadInputError(f"{where}: missing required key {req!r}")
    if not valid_name(e["name"].strip()):
        raise BadInputError(f"{where}: task name {e['name'].strip()!r} may only use letters, digits and _ . + - "
                            "(80 at most, starting with a letter or digit)")
    if not TaskType.has(e.get("type", "regression")):
        raise BadInputError(f"{where}: type {e['type']!r} is not 'regression' or 'classification'")
    if e.get("protocol") is not None and not Protocol.has(e["protocol"]):
        raise BadInputError(f"{where}: protocol {e['protocol']!r} is not 'paper', 'matbench' or 'file'")
    fractions = e.get("fractions", [0.6, 0.2, 0.2])
    if (
        not isinstance(fractions, list) or len(fractions) != 3
        or not all(isinstance(f, (int, float)) and f >= 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise BadInputError(f"{where}: fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    for flag in ("extensive", "strict"):
        if flag in e and not isinstance(e[flag], bool):
            raise BadInputError(f"{where}: {flag} must be true or false")
    split = e.get("split") or {}
    if not isinstance(split, dict) or set(split) - {"column", "train", "val", "test"}:
        raise BadInputError(f"{where}: [split] takes 'column' or 'train'/'val'/'test' id-list files")
    if split.get("column") and set(split) - {"column"}:
        raise BadInputError(f"{where}: [split] takes a column or id-list files, not both")
    return e


def _task_from_entry(tp: Path, entry: Any, i: int, ctx: RunContext) -> TaskSpec:
    where = f"{tp}" + (f" [[task]] #{i + 1}" if i else "")
    e = _validate_entry(where, entry)
    split = e.get("split") or {}
    raw_path = e["path"]
    split_files = {k: v for k, v in split.items() if k != "column"}

    def resolve(p: str, data_dir: Path) -> Path:
        q = Path(p.replace("{data_dir}", str(data_dir))).expanduser()
        return q if q.is_absolute() else (tp.parent / q)

    target = e.get("target")
    if target is None and not resolve(raw_path, ctx.data_dir).is_dir():
        raise BadInputError(f"{where}: missing required key 'target'")
    fractions = e.get("fractions", [0.6, 0.2, 0.2])

    def spec_for(data_dir: Path) -> TaskSpec:
        return user_task(
            resolve(raw_path, data_dir),
            split_files={k: resolve(v, data_dir) for k, v in split_files.items()} or None,
            target=target, structure_column=e.get("structure_column"), id_column=e.get("id_column"),
            task_type=e.get("type", "regression"), strict=bool(e.get("strict", False)), name=e["name"].strip(),
            unit=str(e.get("unit", "")), extensive=bool(e.get("extensive", False)),
            protocol=e.get("protocol") or "paper", fractions=(float(fractions[0]), float(fractions[1]), float(fractions[2])),
            split_column=split.get("column"), description=str(e.get("description", "")),
            source=str(e.get("source", "")) or f"task file {tp.name}", license=str(e.get("license", "")),
        )

    template = spec_for(ctx.data_dir)
    if "{data_dir}" not in raw_path and not any("{data_dir}" in v for v in split_files.values()):
        return template
    # paths with {data_dir} follow the data directory of the context each call receives
    split_ids = template.split_ids
    return dataclasses.replace(
        template,
        load=lambda c: spec_for(c.data_dir).load(c),
        split_ids=None if split_ids is None else _follow_data_dir(spec_for),
        available=lambda c: _call(spec_for(c.data_dir).available, c),
        files=lambda c: _call(spec_for(c.data_dir).files, c),
    )


def _follow_data_dir(spec_for: Callable[[Path], TaskSpec]) -> Callable[[RunContext], SplitIds]:
    def split_ids(ctx: RunContext) -> SplitIds:
        fn = spec_for(ctx.data_dir).split_ids
        if fn is None:  # pragma: no cover - the template had one, and only paths change
            raise BadInputError("task lost its split")
        return fn(ctx)

    return split_ids


def _call(fn: Callable[[RunContext], Any] | None, ctx: RunContext) -> Any:
    if fn is None:  # pragma: no cover - user_task always sets available and files
        raise BadInputError("user task without the callable")
    return fn(ctx)


def task_dirs(ctx: RunContext) -> list[Path]:
    """Folders scanned for *.toml task files: $CRYSTALBENCH_TASKS_DIR entries, then <data_dir>/tasks."""
    out: list[Path] = []
    for d in [*settings.extra_task_dirs(ctx), ctx.data_dir / "tasks"]:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


_DATA_OPTIONS = ("target", "structure_column", "id_column", "task_type", "strict", "unlabelled")


@hookimpl
def bench_data_task(path: str, options: dict[str, Any]) -> TaskSpec:
    """`--data PATH` of `bench run`, `bench featurize` and `bench results validate`: `user_task` with
    the command's reading options (this plugin reads every format it supports, so it never returns None)."""
    unknown = sorted(set(options) - set(_DATA_OPTIONS))
    if unknown:
        raise BadInputError(f"--data {path}: unknown reading option(s) {', '.join(unknown)}")
    return user_task(path, **{"target": None, **options})


@hookimpl
def bench_tasks(ctx: RunContext) -> list[TaskSpec]:
    """Tasks from TOML files; a broken file is reported as a warning and skipped, never fatal."""
    specs: list[TaskSpec] = []
    names: dict[str, Path] = {}
    for d in task_dirs(ctx):
        for tp in sorted(d.glob("*.toml")):
            try:
                found = tasks_from_toml(tp, ctx)
            except CrystalbenchError as exc:
                ctx.reporter.warning(f"task file skipped: {exc}")
                continue
            for spec in found:
                if spec.name in names:
                    ctx.reporter.warning(f"{tp}: task {spec.name!r} already defined in {names[spec.name]}; ignored")
                    continue
                names[spec.name] = tp
                specs.append(spec)
    return specs

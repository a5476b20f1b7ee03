"""Users' own data as benchmark tasks, without writing code.

`bench run -m MODEL --data PATH --target COLUMN` calls `user_task`, and
`bench featurize --data PATH` calls `load_user_dataset`. Supported inputs
(gzip-compressed variants too):

* CSV/TSV with a structure column holding CIF text, POSCAR text or pymatgen
  Structure dicts (JSON or Python repr, read with `ast.literal_eval`), or a
  composition column (composition-only models);
* pymatgen/pandas JSON: a list of records, pandas "split" orientation
  (matminer/Matbench files) or "columns" orientation;
* a directory of CIF/POSCAR files plus `id_prop.csv` (CGCNN/ALIGNN convention:
  no header, `id,target` per line, structure file `<id>` or `<id>.cif`...);
* extended XYZ read with ASE (target from the frame info or its energy).

Bad rows (malformed CIF, missing/NaN/inf target, disordered sites, no atoms,
duplicate ids...) are skipped with one warning line each and a count, or raise
`BadInputError` in strict mode. An input with no usable row is an error.

TOML task files register reusable tasks: the `usertasks` plugin reads `*.toml`
from `$CRYSTALBENCH_TASKS_DIR` (os.pathsep-separated) and `<data_dir>/tasks/`.
The format is documented in docs/data.md and in `tasks_from_toml`.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import math
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..harness.dataset import Dataset
from ..harness.errors import BadInputError, CrystalbenchError
from ..harness.hookspecs import hookimpl
from ..harness.paths import data_dir as default_data_dir
from ..harness.specs import SplitIds, TaskSpec
from .readers import (
    BadRow,
    RowError,
    RowLog,
    files_digest,
    iter_csv,
    no_gc,
    open_text,
    parse_composition,
    parse_float,
    parse_literal,
    parse_structure,
    read_cache,
    read_json_table,
    structure_from_record,
    structure_problem,
    structure_to_record,
    write_cache,
)

__all__ = ["load_user_dataset", "user_task", "tasks_from_toml", "task_dirs", "bench_tasks", "TASKS_ENV"]

TASKS_ENV = "CRYSTALBENCH_TASKS_DIR"

STRUCTURE_COLUMNS = (
    "structure", "structures", "cif", "atoms", "poscar", "initial_structure", "final_structure", "crystal", "struct",
)
COMPOSITION_COLUMNS = ("composition", "formula", "pretty_formula", "reduced_formula", "compound")
ID_COLUMNS = ("id", "material_id", "mpid", "mp_id", "task_id", "jid", "cif_id", "name", "identifier", "uid")
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".json", ".cif.gz", ".vasp.gz", ".json.gz")
_MAX_SKIPPED_IN_META = 1000

_SPLIT_NAMES = {
    "train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
    "testing": "test",
}


# --------------------------------------------------------------------------------------------
# reading any supported input into generic rows
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Raw:
    """A user file read into rows: (where, default id, fields dict | error string).

    structure_key: the fixed field holding each row's structure (extxyz frames,
    id_prop files); None for tables, whose structure column is chosen later.
    """

    fmt: str
    columns: list[str]
    rows: list[tuple[str, Any, Any]]
    structure_key: str | None = None


def _kind(path: Path) -> str:
    if path.is_dir():
        return "dir"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".tab", ".txt")):
        return "csv"
    if name.endswith(".json"):
        return "json"
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    raise BadInputError(
        f"{path}: unsupported data format {path.suffix!r} (use a CSV, pymatgen/pandas JSON, extxyz file, "
        "or a directory of CIF/POSCAR files with id_prop.csv)"
    )


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise BadInputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.stat().st_size == 0:
            raise BadInputError(f"{path}: file is empty")
        if not os.access(path, os.R_OK):
            raise BadInputError(f"{path}: file is not readable (permissions)")
    return path


def _structure_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        low = p.name.lower()
        if low.endswith(STRUCTURE_SUFFIXES) or re.match(r"^(poscar|contcar)", low):
            out.append(p)
    return out


def _input_files(path: Path) -> list[Path]:
    """The raw files an input consists of (cache key, provenance checksums)."""
    if path.is_dir():
        files = _structure_files(path)
        idp = path / "id_prop.csv"
        return ([idp] if idp.is_file() else []) + files
    return [path]


def _read_raw(path: Path, fmt: str) -> _Raw:
    if fmt == "csv":
        rows: list[tuple[str, Any, Any]] = []
        header: list[str] = []
        for line, hdr, rec in iter_csv(path):
            if rec == {} and not header:
                header = hdr or []
                continue
            rows.append((f"line {line}", None, rec))
        if not header:
            raise BadInputError(f"{path}: no header line found (empty CSV?)")
        return _Raw("csv", header, rows)
    if fmt == "json":
        layout, jrows = read_json_table(path)
        cols: list[str] = []
        for _, _, rec in jrows:
            for k in rec:
                if k not in cols and k != "__bad__":
                    cols.append(k)
        rows = [(w, idx, rec if "__bad__" not in rec else f"malformed record ({rec['__bad__']})") for w, idx, rec in jrows]
        return _Raw(f"json-{layout}", cols, rows)
    if fmt == "extxyz":
        return _read_extxyz(path)
    return _read_dir(path)


def _read_extxyz(path: Path) -> _Raw:
    try:
        from ase.io import iread
    except ImportError:  # pragma: no cover - ase is an optional dependency
        raise BadInputError(f"{path}: reading extxyz needs ASE (pip install 'crystalbench[io]')") from None
    rows: list[tuple[str, Any, Any]] = []
    cols: list[str] = []
    it = iread(str(path), index=":", format="extxyz")
    i = 0
    while True:
        try:
            atoms = next(it)
        except StopIteration:
            break
        except Exception as exc:  # ASE raises many types on broken frames; nothing after can be trusted
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            rows.append((f"frame {i + 1}", None, f"unreadable extxyz frame ({msg[:120]}); the rest of the file is ignored"))
            break
        fields: dict[str, Any] = dict(atoms.info)
        if atoms.calc is not None:
            for k, v in getattr(atoms.calc, "results", {}).items():
                fields.setdefault(k, v)
        fields["__atoms__"] = atoms
        for k in fields:
            if k not in cols and k != "__atoms__":
                cols.append(k)
        rows.append((f"frame {i + 1}", None, fields))
        i += 1
    if not rows:
        raise BadInputError(f"{path}: no extxyz frames found")
    return _Raw("extxyz", cols, rows, structure_key="__atoms__")


def _read_dir(path: Path) -> _Raw:
    idp = path / "id_prop.csv"
    files = _structure_files(path)
    by_name = {p.name: p for p in files}
    if not idp.is_file():
        if not files:
            raise BadInputError(f"{path}: no id_prop.csv and no CIF/POSCAR files in this directory")
        rows = [(f"file {p.name}", _file_id(p), {"__file__": p}) for p in files]
        return _Raw("dir", [], rows, structure_key="__file__")
    rows = []
    first = True
    for line, _hdr, rec in _iter_id_prop(idp):
        ident, value = rec
        if first:
            first = False
            if value is not None and not _is_number(value) and _find_file(path, by_name, ident) is None:
                print(f"note: {idp} line {line} ({ident},{value}) looks like a header; skipped", file=sys.stderr)
                continue
        if ident is None:
            rows.append((f"id_prop.csv line {line}", None, "expected 'id,target'"))
            continue
        f = _find_file(path, by_name, ident)
        fields = {"id": ident, "target": value, "__file__": f}
        if f is None:
            fields["__file__"] = RowError(
                f"no structure file for id (looked for {ident}, {ident}.cif, {ident}.vasp, POSCAR-{ident}...)",
                kind="missing structure",
            )
        rows.append((f"id_prop.csv line {line}", ident, fields))
    if not rows:
        raise BadInputError(f"{idp}: file is empty")
    return _Raw("dir", ["id", "target"], rows, structure_key="__file__")


def _iter_id_prop(idp: Path):
    """id_prop.csv rows as (line, None, (id, target)) with no header handling."""
    with open_text(idp) as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            fields = next(csv.reader([raw]))
            fields = [f.strip() for f in fields]
            if len(fields) < 2 or not fields[0]:
                yield n, None, (None, None)
                continue
            yield n, None, (fields[0], fields[1])


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def _file_id(p: Path) -> str:
    name = p.name
    for suf in sorted(STRUCTURE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _find_file(folder: Path, by_name: dict[str, Path], ident: str) -> Path | None:
    for suffix in ("", ".cif", ".vasp", ".poscar", ".json", ".cif.gz"):
        cand = ident + suffix
        if cand in by_name:
            return by_name[cand]
    for cand in (f"POSCAR-{ident}", f"POSCAR_{ident}"):
        if cand in by_name:
            return by_name[cand]
    p = folder / ident  # ids with sub-folders ("a/b.cif")
    if p.is_file() and p.resolve().is_relative_to(folder.resolve()):
        return p
    return None


# --------------------------------------------------------------------------------------------
# choosing columns
# --------------------------------------------------------------------------------------------


def _column_value(fields: dict, col: str) -> Any:
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


def _resolve_column(raw: _Raw, col: str, what: str, path: Path) -> str:
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


def _sample_values(raw: _Raw, col: str, n: int = 3) -> list[Any]:
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
        return "lattice" in v and "sites" in v or isinstance(v.get("structure"), dict)
    if isinstance(v, str):
        t = v.lstrip()
        return ("_cell_length_a" in v) or (t.startswith("{") and "lattice" in t[:2000] and "sites" in t)
    return type(v).__name__ in ("Structure", "IStructure")


def _pick_structure_column(raw: _Raw, requested: str | None, path: Path) -> tuple[str, str]:
    """(column, "structure" | "composition")."""
    if requested:
        col = _resolve_column(raw, requested, "structure", path)
        kind = "composition" if col.lower() in COMPOSITION_COLUMNS else "structure"
        return col, kind
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


def _pick_id_column(raw: _Raw, requested: str | None, path: Path, exclude: Iterable[str]) -> str | None:
    if requested:
        return _resolve_column(raw, requested, "id", path)
    skip = {c.lower() for c in exclude if c}
    lowered = {c.lower(): c for c in raw.columns if c.lower() not in skip}
    for name in ID_COLUMNS:
        if name in lowered:
            return lowered[name]
    return None


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
# the loader
# --------------------------------------------------------------------------------------------


def load_user_dataset(
    path: str | os.PathLike,
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

    target: the target column (None -> NaN targets, for featurizing only).
    structure_column / id_column: override auto-detection; dotted names reach into
        dict-valued columns (e.g. "meta.structure").
    strict: raise BadInputError at the first bad row instead of skipping it.
    task_type: "classification" turns target values into class indices.
    split_column: a column of train/val/test labels kept in `meta["split"]`
        (used by tasks with protocol "file").
    quiet: do not print the bad-row report (it is still in `meta["skipped"]`).
    Parsed results are cached by file checksum, so a second load is fast.
    """
    path = _check_path(Path(path).expanduser())
    if task_type not in ("regression", "classification"):
        raise BadInputError(f"task type {task_type!r} is not 'regression' or 'classification'")
    fmt = _kind(path)
    files = _input_files(path)
    if not files:
        raise BadInputError(f"{path}: no data files found")
    ds_name = name or _slug(path.name)
    key = files_digest(files, fmt, target, structure_column, id_column, task_type, split_column)
    source = str(path)
    log = RowLog(source, strict=strict)
    payload = read_cache("user", ds_name, key)
    if payload is None:
        with no_gc():
            payload = _parse(
                path, fmt, target, structure_column, id_column, task_type, split_column, RowLog(source, strict=strict)
            )
        if not payload["ids"]:
            _report(log, payload, quiet=quiet)
            first = f"; first: {BadRow.from_json(payload['bad'][0]).describe(source)}" if payload["bad"] else ""
            raise BadInputError(f"{path}: no usable rows ({len(payload['bad'])} of {payload['total']} bad){first}")
        write_cache("user", ds_name, key, payload)
    _report(log, payload, quiet=quiet)  # replays cached bad rows too (strict raises here on a warm load)
    return _dataset_from_payload(payload, ds_name, path, files)


def _report(log: RowLog, payload: dict, *, quiet: bool) -> None:
    log.extend([BadRow.from_json(b) for b in payload["bad"]])
    if not quiet:
        log.report(payload["total"])


def _parse(
    path: Path,
    fmt: str,
    target: str | None,
    structure_column: str | None,
    id_column: str | None,
    task_type: str,
    split_column: str | None,
    log: RowLog,
) -> dict:
    raw = _read_raw(path, fmt)
    if raw.structure_key is not None:
        scol, skind = raw.structure_key, "structure"
        if structure_column and fmt != "dir":
            print(f"note: {path}: --structure-column is ignored for {fmt} input (each frame is a structure)",
                  file=sys.stderr)
    else:
        scol, skind = _pick_structure_column(raw, structure_column, path)
    tcol = None
    if target is not None:
        tcol = "target" if fmt == "dir" else _resolve_column(raw, target, "target", path)
    if fmt == "dir":
        icol = "id" if raw.columns else None
    else:
        icol = _pick_id_column(raw, id_column, path, exclude=(scol, tcol or ""))
    scol_split = _resolve_column(raw, split_column, "split", path) if split_column else None

    ids: list[str] = []
    targets: list[Any] = []
    structures: list[dict] = []
    compositions: list[dict] = []
    splits: list[str] = []
    first_seen: dict[str, str] = {}
    stem = _slug(path.name.split(".")[0]) or "row"
    for n, (where, default_id, rec) in enumerate(raw.rows):
        ident = None
        if isinstance(rec, str):
            log.bad(where, None, rec, kind="malformed row")
            continue
        try:
            if icol is not None:
                v = _column_value(rec, icol)
                if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
                    raise RowError("empty id", kind="missing id")
                ident = str(v).strip()
            elif default_id is not None:
                ident = str(default_id)
            else:
                ident = f"{stem}-{n + 1}"
            if ident in first_seen:
                raise RowError(f"duplicate id (first seen at {first_seen[ident]})", kind="duplicate id")
            first_seen[ident] = where
            if tcol is None:
                y: Any = None
            elif task_type == "classification":
                y = _label(_column_value(rec, tcol))
            else:
                y = parse_float(_column_value(rec, tcol), "target")
            split = None
            if scol_split is not None:
                lab = str(_column_value(rec, scol_split) or "").strip().lower()
                if lab not in _SPLIT_NAMES:
                    raise RowError(f"split value {lab!r} is not train/val/test", kind="bad split label")
                split = _SPLIT_NAMES[lab]
            value = rec.get(scol) if scol in rec else _column_value(rec, scol)
            if isinstance(value, RowError):
                raise value
            if skind == "composition":
                comp = parse_composition(value)
                compositions.append({str(el): float(amt) for el, amt in comp.items()})
            else:
                s = parse_structure(value)
                problem = structure_problem(s)
                if problem is not None:
                    raise problem
                structures.append(structure_to_record(s))
        except RowError as exc:
            log.bad(where, ident, str(exc), exc.kind)
            continue
        ids.append(ident)
        targets.append(y)
        if split is not None:
            splits.append(split)
    return {
        "ids": ids,
        "targets": None if tcol is None else targets,
        "structures": structures if skind == "structure" else None,
        "compositions": compositions if skind == "composition" else None,
        "splits": splits if scol_split else None,
        "task_type": task_type,
        "bad": [b.to_json() for b in log.rows],
        "total": len(raw.rows),
        "meta": {
            "format": raw.fmt,
            "structure_column": None if raw.structure_key else scol,
            "input": skind,
            "id_column": icol,
            "target_column": tcol,
        },
    }


def _dataset_from_payload(payload: dict, name: str, path: Path, files: Sequence[Path]) -> Dataset:
    n = len(payload["ids"])
    classes = None
    if payload["targets"] is None:
        targets = np.full(n, np.nan)
    elif payload["task_type"] == "classification":
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
        ids=payload["ids"], targets=targets, structures=structures, compositions=compositions, classes=classes,
        name=name, meta=meta,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")


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


def _split_ids_factory(
    loader, split_column: str | None, split_files: dict[str, Path] | None, task_name: str
):
    def split_ids(data_dir: Path) -> SplitIds:
        data = loader(data_dir)
        present = set(data.ids)
        if split_column:
            labels = data.meta.get("split") or []
            groups = {k: tuple(i for i, s in zip(data.ids, labels) if s == k) for k in ("train", "val", "test")}
        else:
            assert split_files is not None
            groups = {}
            for k in ("train", "val", "test"):
                if k in split_files:
                    listed = _read_id_list(split_files[k])
                    missing = [i for i in listed if i not in present]
                    if missing:
                        print(f"note: task {task_name}: {len(missing)} {k} ids of {split_files[k]} are not in the data "
                              f"(e.g. {missing[0]!r}); ignored", file=sys.stderr)
                    groups[k] = tuple(i for i in listed if i in present)
                else:
                    groups[k] = ()
        if not groups["train"] or not groups["test"]:
            raise BadInputError(f"task {task_name}: the file split needs non-empty train and test id lists")
        return SplitIds(train=groups["train"], test=groups["test"], val=groups["val"])

    return split_ids


def user_task(
    path: str | os.PathLike,
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
    split_files: dict[str, str | os.PathLike] | None = None,
    description: str = "",
    source: str = "",
    license: str = "",
) -> TaskSpec:
    """A TaskSpec benchmarking a user's file (what `bench run --data PATH --target COL` runs).

    Loading is lazy (TaskSpec.load), so bad paths surface as BadInputError when
    the job runs. For an id_prop.csv directory `target` only names the values
    (None uses "target"); for tables it is the target column and is required.
    """
    p = Path(path).expanduser()
    if target is None:
        if p.is_dir():
            target = "target"
        else:
            raise BadInputError(f"{p}: pass --target COLUMN to benchmark this file")
    if task_type not in ("regression", "classification"):
        raise BadInputError(f"task type {task_type!r} is not 'regression' or 'classification'")
    if split_column and split_files:
        raise BadInputError(f"task for {p}: give a split column or split files, not both")
    if (split_column or split_files) and protocol == "paper":
        protocol = "file"
    task_name = name or f"user-{_slug(p.name.split('.')[0]) or 'data'}"
    sfiles = {k: Path(v).expanduser() for k, v in (split_files or {}).items()}
    bad_keys = set(sfiles) - {"train", "val", "test"}
    if bad_keys:
        raise BadInputError(f"task {task_name}: split files must be train/val/test, not {sorted(bad_keys)}")

    def load(data_dir: Path) -> Dataset:
        return load_user_dataset(
            p, target=target, structure_column=structure_column,
            id_column=id_column, strict=strict, task_type=task_type, split_column=split_column, name=task_name,
        )

    split_ids = _split_ids_factory(load, split_column, sfiles or None, task_name) if (split_column or sfiles) else None
    if protocol == "file" and split_ids is None:
        raise BadInputError(f"task {task_name}: protocol 'file' needs a split column or split files")
    return TaskSpec(
        name=task_name,
        load=load,
        target=target,
        unit=unit,
        task_type=task_type,  # type: ignore[arg-type]
        extensive=extensive,
        protocol=protocol,
        fractions=tuple(float(f) for f in fractions),  # type: ignore[arg-type]
        split_ids=split_ids,
        available=lambda data_dir: p.exists(),
        files=lambda data_dir: _input_files(p) if p.exists() else [p],
        source=source or str(p),
        license=license,
        description=description or f"user data {p.name}, target {target!r}",
        group="user",
    )


_TOML_KEYS = {
    "name", "path", "target", "unit", "type", "extensive", "protocol", "fractions", "structure_column",
    "id_column", "strict", "description", "source", "license", "split",
}


def tasks_from_toml(toml_path: str | os.PathLike) -> list[TaskSpec]:
    """Tasks declared in a TOML file: top-level keys for one task, or `[[task]]` tables.

    Keys: name, path (relative to the TOML file; "{data_dir}/..." is resolved at
    load time), target, unit, type ("regression"|"classification"), extensive,
    protocol ("paper"|"matbench"|"file"), fractions, structure_column, id_column,
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
    return [_task_from_entry(tp, e, i) for i, e in enumerate(entries)]


def _task_from_entry(tp: Path, e: Any, i: int) -> TaskSpec:
    where = f"{tp}" + (f" [[task]] #{i + 1}" if i else "")
    if not isinstance(e, dict):
        raise BadInputError(f"{where}: a task must be a table of keys")
    unknown = sorted(set(e) - _TOML_KEYS)
    if unknown:
        hint = difflib.get_close_matches(unknown[0], sorted(_TOML_KEYS), n=1)
        raise BadInputError(f"{where}: unknown key {unknown[0]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    for req in ("name", "path"):
        if not isinstance(e.get(req), str) or not e[req].strip():
            raise BadInputError(f"{where}: missing required key {req!r}")
    name = e["name"].strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise BadInputError(f"{where}: task name {name!r} may only use letters, digits and _ . + -")
    ttype = e.get("type", "regression")
    if ttype not in ("regression", "classification"):
        raise BadInputError(f"{where}: type {ttype!r} is not 'regression' or 'classification'")
    protocol = e.get("protocol")
    if protocol is not None and protocol not in ("paper", "matbench", "file"):
        raise BadInputError(f"{where}: protocol {protocol!r} is not 'paper', 'matbench' or 'file'")
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
    raw_path = e["path"]
    split_files = {k: v for k, v in split.items() if k != "column"}

    def resolve(p: str, data_dir: Path | None) -> Path:
        if "{data_dir}" in p:
            p = p.replace("{data_dir}", str(data_dir or default_data_dir()))
        q = Path(p).expanduser()
        return q if q.is_absolute() else (tp.parent / q)

    target = e.get("target")
    base = dict(
        target=target, structure_column=e.get("structure_column"), id_column=e.get("id_column"), task_type=ttype,
        strict=bool(e.get("strict", False)), name=name, unit=str(e.get("unit", "")),
        extensive=bool(e.get("extensive", False)), fractions=tuple(float(f) for f in fractions),
        split_column=split.get("column"), description=str(e.get("description", "")),
        source=str(e.get("source", "")) or f"task file {tp.name}", license=str(e.get("license", "")),
    )
    if protocol:
        base["protocol"] = protocol
    if target is None and not resolve(raw_path, None).is_dir():
        raise BadInputError(f"{where}: missing required key 'target'")
    if split.get("column") and split_files:
        raise BadInputError(f"{where}: [split] takes a column or id-list files, not both")

    def spec_for(data_dir: Path | None) -> TaskSpec:
        return user_task(
            resolve(raw_path, data_dir),
            split_files={k: resolve(v, data_dir) for k, v in split_files.items()} or None,
            **base,
        )

    template = spec_for(None)
    # paths with {data_dir} are re-resolved against the data directory the runner passes in
    return dataclasses.replace(
        template,
        load=lambda data_dir: spec_for(data_dir).load(data_dir),
        split_ids=(lambda data_dir: spec_for(data_dir).split_ids(data_dir)) if template.split_ids else None,
        available=lambda data_dir: spec_for(data_dir).available(data_dir),
        files=lambda data_dir: spec_for(data_dir).files(data_dir),
    )


def task_dirs() -> list[Path]:
    """Folders scanned for *.toml task files: $CRYSTALBENCH_TASKS_DIR entries, then <data_dir>/tasks."""
    dirs = [Path(d).expanduser() for d in os.environ.get(TASKS_ENV, "").split(os.pathsep) if d.strip()]
    dirs.append(default_data_dir() / "tasks")
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    """Tasks from TOML files; a broken file is reported on stderr and skipped, never fatal."""
    specs: list[TaskSpec] = []
    names: dict[str, Path] = {}
    for d in task_dirs():
        for tp in sorted(d.glob("*.toml")):
            try:
                found = tasks_from_toml(tp)
            except CrystalbenchError as exc:
                print(f"warning: task file skipped: {exc}", file=sys.stderr)
                continue
            for spec in found:
                if spec.name in names:
                    print(f"warning: {tp}: task {spec.name!r} already defined in {names[spec.name]}; ignored",
                          file=sys.stderr)
                    continue
                names[spec.name] = tp
                specs.append(spec)
    return specs

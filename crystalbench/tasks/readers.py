"""Parsing crystal structures and tables from the formats users and public datasets ship.

Everything here is shared by the built-in task loaders (properties, Matbench)
and by users' own data (`crystalbench.tasks.user`):

* `parse_structure` turns a CIF/POSCAR text, a pymatgen Structure dict (JSON or
  Python-repr, parsed with `ast.literal_eval`, never `eval`), an ASE Atoms or a
  file path into a pymatgen Structure, raising `RowError` with a one-line reason.
* `structure_problem` says why a structure cannot be benchmarked (no atoms,
  partial occupancy, degenerate cell, atoms on top of each other).
* `RowLog` collects bad rows, prints one warning line per row (capped) plus a
  count, or raises `BadInputError` at the first one in strict mode.
* `read_cache`/`write_cache` keep parsed tables as JSON keyed by the raw files'
  sha256 and `LOADER_VERSION`: parsing thousands of CIFs once is enough.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gc
import gzip
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

import numpy as np

from ..harness.errors import BadInputError
from ..harness.paths import cache_dir

__all__ = [
    "LOADER_VERSION",
    "RowError",
    "BadRow",
    "RowLog",
    "parse_literal",
    "parse_structure",
    "parse_structure_file",
    "parse_composition",
    "parse_float",
    "structure_problem",
    "structure_to_record",
    "structure_from_record",
    "open_text",
    "iter_csv",
    "read_json_table",
    "file_digest",
    "files_digest",
    "read_cache",
    "write_cache",
    "no_gc",
]

# Bump whenever parsing or filtering changes what a loader returns: it is part of every cache key.
LOADER_VERSION = "1"

MAX_SHOWN = 20  # bad-row warning lines printed per file before summarising
MIN_DISTANCE = 0.5  # A; closer atoms are a broken structure (shortest real bond, H2, is 0.74 A)
_DISTANCE_CHECK_MAX_SITES = 400  # the O(n^2) overlap check is skipped above this size

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # CIF strings in CSV cells are large


class RowError(ValueError):
    """One row (record, frame, file) cannot be used; `kind` groups reasons in the summary."""

    def __init__(self, reason: str, kind: str = "malformed structure") -> None:
        super().__init__(reason)
        self.kind = kind


# --------------------------------------------------------------------------------------------
# bad-row bookkeeping
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    """A skipped row: where it is (line/record/frame), its id if known, why."""

    where: str
    id: str | None
    kind: str
    reason: str

    def describe(self, source: str) -> str:
        ident = f" (id {self.id!r})" if self.id not in (None, "") else ""
        return f"{source} {self.where}{ident}: {self.reason}"

    def to_json(self) -> dict:
        return {"where": self.where, "id": self.id, "kind": self.kind, "reason": self.reason}

    @classmethod
    def from_json(cls, d: dict) -> "BadRow":
        return cls(where=d["where"], id=d.get("id"), kind=d["kind"], reason=d["reason"])


class RowLog:
    """Collects the bad rows of one input; strict mode turns the first into a BadInputError."""

    def __init__(self, source: str, *, strict: bool = False) -> None:
        self.source = source
        self.strict = strict
        self.rows: list[BadRow] = []

    def bad(self, where: str, ident: str | None, reason: str, kind: str = "malformed structure") -> None:
        row = BadRow(where=where, id=ident, kind=kind, reason=reason)
        if self.strict:
            raise BadInputError(f"{row.describe(self.source)} (strict mode stops at the first bad row)")
        self.rows.append(row)

    def extend(self, rows: Sequence[BadRow]) -> None:
        """Replay rows (e.g. from a cache), honouring strict mode."""
        for r in rows:
            self.bad(r.where, r.id, r.reason, r.kind)

    def summary(self, total: int) -> str:
        kinds = Counter(r.kind for r in self.rows)
        detail = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        return f"{self.source}: skipped {len(self.rows)} of {total} rows ({detail})"

    def report(self, total: int, stream: TextIO | None = None, *, hint: str = "strict mode makes this an error"):
        """One warning line per bad row (first MAX_SHOWN), then the count."""
        if not self.rows:
            return
        out = stream or sys.stderr
        for r in self.rows[:MAX_SHOWN]:
            print(f"warning: {r.describe(self.source)}", file=out)
        if len(self.rows) > MAX_SHOWN:
            print(f"warning: {self.source}: {len(self.rows) - MAX_SHOWN} more bad rows not shown", file=out)
        print(f"warning: {self.summary(total)}; {hint}", file=out)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    Creating thousands of pymatgen Sites triggers collection passes over every
    live object; pausing them makes bulk structure building 2-3x faster. The
    objects created have no reference cycles worth collecting meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------

_PY_TOKENS = re.compile(r"(?<=[\s\[:,(])(None|True|False|nan|-inf|inf)(?=\s*[,\]})])")
_PY_TO_JSON = {"None": "null", "True": "true", "False": "false", "nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def parse_literal(text: str) -> Any:
    """Parse JSON or a Python-repr literal (dict/list); never `eval`.

    Python-repr structure dicts are common in matminer CSVs; `ast.literal_eval`
    is slow on them (~1 ms each), so a repr free of double quotes is first
    turned into JSON (quotes and None/True/False/nan tokens) and only falls back
    to `ast.literal_eval` when that is not valid JSON.
    """
    s = text.strip()
    if '"' in s:
        try:
            return json.loads(s)
        except ValueError:
            pass
    else:
        try:
            return json.loads(_PY_TOKENS.sub(lambda m: _PY_TO_JSON[m.group(1)], s.replace("'", '"')))
        except ValueError:
            pass
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise RowError(f"not a JSON or Python literal ({_first_line(exc) or type(exc).__name__})") from None


def parse_float(value: Any, what: str = "target") -> float:
    """A finite float, or RowError naming what is wrong (missing, NaN, inf, not a number)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(f"missing {what}", kind=f"missing/invalid {what}")
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (list, tuple, dict, np.ndarray)) and np.size(value) != 1:
        raise RowError(f"{what} holds {np.size(value)} values, not one number", kind=f"missing/invalid {what}")
    if isinstance(value, (list, tuple, np.ndarray)):
        value = np.asarray(value).ravel()[0]
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        text = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        raise RowError(f"{what} {text} is not a number", kind=f"missing/invalid {what}") from None
    if math.isnan(x):
        raise RowError(f"{what} is NaN", kind=f"missing/invalid {what}")
    if math.isinf(x):
        raise RowError(f"{what} is infinite", kind=f"missing/invalid {what}")
    return x


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    msg = lines[0] if lines else ""
    return msg if len(msg) <= 160 else msg[:157] + "..."


# --------------------------------------------------------------------------------------------
# structures
# --------------------------------------------------------------------------------------------


def _looks_like_cif(text: str) -> bool:
    return "_cell_length_a" in text or text.lstrip().lower().startswith("data_") or "\ndata_" in text


def _structure_from_cif(text: str):
    from pymatgen.io.cif import CifParser

    structures, error = [], ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text, occupancy_tolerance=1.0)
            structures = parser.parse_structures(primitive=False, on_error="warn")
        except Exception as exc:  # pymatgen raises many types on broken CIFs
            error = _first_line(exc) or type(exc).__name__
    if structures:
        return structures[0]
    low = text.lower()
    if "_atom_site_fract_x" not in low and "_atom_site_cartn_x" not in low:
        raise RowError("structure has no atoms (CIF without atom coordinates)", kind="no atoms")
    why = ""
    for w in caught:  # pymatgen puts the real cause after "No structure parsed for section N"
        msg = str(w.message)
        if msg.startswith("No structure parsed") and "\n" in msg:
            why = msg.split("\n", 1)[1].strip().splitlines()[0]
            break
    if re.fullmatch(r"'[^']+'", why):  # a KeyError repr: the missing CIF tag
        why = f"missing {why}"
    why = why or error or "no structure could be read"
    raise RowError(f"malformed CIF: {why if len(why) <= 160 else why[:157] + '...'}")


def _structure_from_poscar(text: str):
    from pymatgen.io.vasp import Poscar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Poscar.from_str(text, read_velocities=False).structure
        except Exception as exc:
            raise RowError(f"malformed POSCAR: {_first_line(exc) or type(exc).__name__}") from None


def _structure_from_dict(d: dict):
    from pymatgen.core import Structure

    if "structure" in d and isinstance(d["structure"], (dict, str)) and "sites" not in d:
        return parse_structure(d["structure"])  # e.g. a ComputedStructureEntry
    cls = d.get("@class")
    if cls not in (None, "Structure", "IStructure"):
        raise RowError(f"a {cls} dict is not a periodic crystal structure")
    if "lattice" not in d or "sites" not in d:
        raise RowError("structure dict needs 'lattice' and 'sites' keys")
    if not d["sites"]:
        raise RowError("structure has no atoms", kind="no atoms")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_dict(d)
    except Exception as exc:
        raise RowError(f"invalid structure dict: {_first_line(exc) or type(exc).__name__}") from None


def _structure_from_atoms(atoms):
    from pymatgen.core import Lattice, Structure

    if not np.all(atoms.pbc) or atoms.cell.rank < 3:
        raise RowError("no periodic 3-D cell (a crystal needs a Lattice and pbc=T T T)")
    props = {}
    if "initial_magmoms" in atoms.arrays:
        props["magmom"] = atoms.arrays["initial_magmoms"].tolist()
    try:
        return Structure(
            Lattice(np.asarray(atoms.cell[:], dtype=float)),
            atoms.get_chemical_symbols(),
            np.asarray(atoms.positions, dtype=float),
            coords_are_cartesian=True,
            site_properties=props or None,
        )
    except Exception as exc:
        raise RowError(f"invalid frame: {_first_line(exc) or type(exc).__name__}") from None


def parse_structure(value: Any):
    """Any supported structure representation -> pymatgen Structure, or RowError.

    Accepts Structure objects, structure dicts (also ComputedStructureEntry dicts),
    JSON or Python-repr dict strings, CIF text, POSCAR text, ASE Atoms and file paths.
    """
    from pymatgen.core import Structure

    if isinstance(value, Structure):
        return value
    if isinstance(value, Path):
        return parse_structure_file(value)
    if isinstance(value, dict):
        return _structure_from_dict(value)
    if any(c.__module__.startswith("ase.") and c.__name__ == "Atoms" for c in type(value).__mro__):
        return _structure_from_atoms(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise RowError("missing structure", kind="missing structure")
    if not isinstance(value, str):
        raise RowError(f"cannot read a structure from a {type(value).__name__}")
    text = value.strip()
    if not text:
        raise RowError("missing structure", kind="missing structure")
    if "\n" not in text and "\\n" in text:  # CIF/POSCAR exported with escaped newlines
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    if text.startswith("{"):
        obj = parse_literal(text)
        if not isinstance(obj, dict):
            raise RowError("structure text is not a dict")
        return _structure_from_dict(obj)
    if _looks_like_cif(text):
        return _structure_from_cif(text)
    if "\n" in text:
        return _structure_from_poscar(text)
    raise RowError("unrecognised structure text (expected CIF, POSCAR or a structure dict)")


_POSCAR_NAMES = re.compile(r"^(POSCAR|CONTCAR)", re.IGNORECASE)


def parse_structure_file(path: Path):
    """A CIF, POSCAR/CONTCAR/.vasp or pymatgen-JSON file -> Structure, or RowError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RowError(f"cannot read {path.name}: {exc.strerror or exc}", kind="unreadable file") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise RowError(f"{path.name} is not valid gzip: {_first_line(exc)}", kind="unreadable file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise RowError(f"{path.name} is empty", kind="unreadable file")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".cif"):
        return _structure_from_cif(text)
    if name.endswith(".json"):
        obj = parse_literal(text)
        if not isinstance(obj, dict):
            raise RowError(f"{path.name} does not hold a structure dict")
        return _structure_from_dict(obj)
    if name.endswith((".vasp", ".poscar")) or _POSCAR_NAMES.match(path.name):
        return _structure_from_poscar(text)
    return parse_structure(text)


def structure_problem(s) -> RowError | None:
    """Why this structure cannot be benchmarked, or None if it is fine.

    Rejected: no atoms; disordered or partially occupied sites (graph models and
    descriptors need one element per site); dummy species (unknown elements); a
    degenerate or non-finite cell;
    atoms closer than MIN_DISTANCE (duplicated sites break graph construction).
    """
    if len(s) == 0:
        return RowError("structure has no atoms", kind="no atoms")
    for i, site in enumerate(s):
        if not site.is_ordered:
            return RowError(
                f"disordered or partially occupied site {i} ({site.species.formula}, "
                f"occupancy {sum(site.species.values()):.3g})",
                kind="disordered structure",
            )
    for i, site in enumerate(s):
        if type(site.specie).__name__ == "DummySpecies":
            return RowError(f"site {i} has no real element ({site.specie})", kind="unknown element")
    matrix = np.asarray(s.lattice.matrix, dtype=float)
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(s.frac_coords)):
        return RowError("non-finite lattice or coordinates", kind="bad lattice")
    vol = abs(float(np.linalg.det(matrix)))
    if vol < 1e-3:
        return RowError(f"degenerate lattice (volume {vol:.3g} A^3)", kind="bad lattice")
    if 1 < len(s) <= _DISTANCE_CHECK_MAX_SITES:
        d = np.asarray(s.distance_matrix, dtype=float)
        np.fill_diagonal(d, np.inf)
        if d.min() < MIN_DISTANCE:
            i, j = np.unravel_index(int(np.argmin(d)), d.shape)
            return RowError(
                f"atoms {min(i, j)} and {max(i, j)} are {d[i, j]:.3f} A apart (< {MIN_DISTANCE} A)",
                kind="overlapping atoms",
            )
    return None


def parse_composition(value: Any):
    """A formula string or {element: amount} dict (or its repr) -> Composition, or RowError."""
    from pymatgen.core import Composition

    if isinstance(value, Composition):
        comp = value
    else:
        if isinstance(value, str) and value.strip().startswith("{"):
            value = parse_literal(value)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if not str(k).startswith("@")}
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RowError("missing composition", kind="missing structure")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                comp = Composition(value.strip() if isinstance(value, str) else value)
        except Exception as exc:
            why = f"invalid composition {str(value)[:40]!r}: {_first_line(exc)}"
            raise RowError(why, kind="malformed composition") from None
    dummies = [str(el) for el in comp if type(el).__name__ == "DummySpecies"]
    if dummies:
        raise RowError(f"unknown element {dummies[0]!r} in composition {comp.formula!r}", kind="malformed composition")
    if comp.num_atoms <= 0:
        raise RowError("composition has no atoms", kind="no atoms")
    return comp


# Compact, exact structure records for caches: lattice, species, fractional coordinates and
# magnetic moments (the only site property `structure_key` looks at). Floats round-trip
# exactly through JSON, so a cached structure hashes like the freshly parsed one.


def structure_to_record(s) -> dict:
    rec = {
        "lattice": np.asarray(s.lattice.matrix, dtype=float).tolist(),
        "species": [str(sp) for sp in s.species],
        "frac": np.asarray(s.frac_coords, dtype=float).tolist(),
    }
    magmom = (s.site_properties or {}).get("magmom")
    if magmom is not None:
        try:
            rec["magmom"] = np.asarray(magmom, dtype=float).tolist()
        except (TypeError, ValueError):
            pass
    return rec


def structure_from_record(rec: dict):
    from pymatgen.core import Lattice, Structure

    props = {"magmom": rec["magmom"]} if "magmom" in rec else None
    return Structure(Lattice(rec["lattice"]), rec["species"], rec["frac"], site_properties=props)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def open_text(path: Path) -> TextIO:
    """Open a (possibly gzipped) text file; BadInputError when it cannot be read."""
    try:
        if path.name.endswith(".gz"):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def iter_csv(
    path: Path, *, delimiter: str | None = None
) -> Iterator[tuple[int, list[str] | None, dict[str, str] | str]]:
    """Yield (line, header, row) for each record of a CSV file.

    Leading `#` comment lines (matminer's "# ref:" line) are skipped. `row` is a
    dict, or a string describing why the record is malformed (wrong field count).
    `line` is the 1-based line on which the record starts.
    """
    delim = delimiter or ("\t" if path.name.lower().removesuffix(".gz").endswith((".tsv", ".tab")) else ",")
    with open_text(path) as fh:
        try:
            lines = _CountingLines(fh)
            reader = csv.reader(lines, delimiter=delim)
            header: list[str] | None = None
            prev_end = lines.count
            for fields in reader:
                start = prev_end + 1
                prev_end = lines.count
                if header is None:
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue
                    if fields[0].lstrip().startswith("#"):
                        continue
                    header = [f.strip() for f in fields]
                    yield start, header, {}
                    continue
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    yield start, header, f"expected {len(header)} fields, found {len(fields)}"
                    continue
                yield start, header, dict(zip(header, fields))
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
            raise BadInputError(f"{path}: not a readable text CSV ({_first_line(exc) or type(exc).__name__})") from None
        except csv.Error as exc:
            raise BadInputError(f"{path} line {lines.count}: malformed CSV ({exc})") from None


class _CountingLines:
    """Line iterator that counts physical lines (csv.reader consumes several for quoted newlines)."""

    def __init__(self, fh: TextIO) -> None:
        self.fh = fh
        self.count = 0

    def __iter__(self) -> "_CountingLines":
        return self

    def __next__(self) -> str:
        line = next(self.fh)
        self.count += line.count("\n") or 1
        return line


def read_json_table(path: Path) -> tuple[str, list[tuple[str, Any, dict]]]:
    """Read a JSON table in any common pandas/pymatgen layout.

    Returns (layout, rows) with rows = (where, index, record): `index` is the
    pandas index value when the layout has one (used as the default id).
    Layouts: a list of records; pandas "split" ({index, columns, data}, the
    matminer/Matbench format); pandas "columns" ({column: {index: value}}).
    """
    try:
        with open_text(path) as fh:
            obj = json.load(fh)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise BadInputError(f"{path}: not readable ({_first_line(exc) or type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if isinstance(obj, list):
        rows = []
        for i, rec in enumerate(obj):
            rows.append((f"record {i + 1}", None, rec if isinstance(rec, dict) else {"__bad__": type(rec).__name__}))
        return "records", rows
    if isinstance(obj, dict) and "columns" in obj and "data" in obj and isinstance(obj["data"], list):
        cols = [str(c) for c in obj["columns"]]
        index = obj.get("index") or [None] * len(obj["data"])
        if len(index) != len(obj["data"]):
            raise BadInputError(f"{path}: 'split' JSON has {len(index)} index values but {len(obj['data'])} rows")
        rows = []
        for i, (idx, vals) in enumerate(zip(index, obj["data"])):
            if not isinstance(vals, list) or len(vals) != len(cols):
                rows.append((f"row {i + 1}", idx, {"__bad__": f"expected {len(cols)} values"}))
            else:
                rows.append((f"row {i + 1}", idx, dict(zip(cols, vals))))
        return "split", rows
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        cols = list(obj)
        keys: list[str] = []
        seen: set[str] = set()
        for col in cols:
            for k in obj[col]:
                if k not in seen:
                    seen.add(k)
                    keys.append(k)
        rows = [(f"entry {k!r}", k, {c: obj[c].get(k) for c in cols}) for k in keys]
        return "columns", rows
    raise BadInputError(
        f"{path}: unrecognised JSON layout (expected a list of records, pandas 'split' "
        "{index, columns, data} or pandas 'columns' {column: {index: value}})"
    )


# --------------------------------------------------------------------------------------------
# checksums and caches
# --------------------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (memoised; the same digest the harness records in provenance)."""
    from crystalbench.harness.provenance import file_sha256

    return file_sha256(Path(path))


def files_digest(paths: Sequence[Path], *extra: Any) -> str:
    """One key for a set of files (content, not names) plus options and LOADER_VERSION."""
    h = hashlib.sha256()
    h.update(json.dumps([LOADER_VERSION, [str(e) for e in extra]]).encode())
    for p in paths:
        h.update(p.name.encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()[:24]


def _cache_file(kind: str, name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
    return cache_dir() / "datasets" / kind / f"{safe}-{key}.json"


def read_cache(kind: str, name: str, key: str) -> dict | None:
    """A cached payload, or None (missing or unreadable: then it is rebuilt)."""
    p = _cache_file(kind, name, key)
    try:
        with open(p, encoding="utf-8") as fh:
            payload = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("loader_version") != LOADER_VERSION:
        return None
    return payload


def write_cache(kind: str, name: str, key: str, payload: dict) -> None:
    """Atomically store a payload; older entries for the same name are removed."""
    p = _cache_file(kind, name, key)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**payload, "loader_version": LOADER_VERSION}, fh, separators=(",", ":"))
        os.replace(tmp, p)
        stem = p.name[: -len(f"-{key}.json")]
        for old in p.parent.glob(f"{stem}-*.json"):
            if old != p and re.fullmatch(re.escape(stem) + r"-[0-9a-f]{24}\.json", old.name):
                old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only cache only costs speed
        print(f"note: could not write cache {p}: {exc.strerror or exc}", file=sys.stderr)

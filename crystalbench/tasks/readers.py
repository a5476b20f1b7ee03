"""Reading raw crystal data: one reader per file format, one parser per structure representation.

Every loader goes through this module -- the built-in sources (`sources`), the
learnability collection (`collection`, built from those sources), Matbench
files (`matbench`) and users' own data (`user`) -- so they all accept the same
representations and reject the same broken structures:

* `read_table(path)` reads a CSV/TSV, a pandas/pymatgen JSON table, an extended
  XYZ file or a folder of structure files with ``id_prop.csv`` into a
  `RawTable` of rows ``(where, default id, fields)``; a row that cannot be read
  is kept as a string saying why, so callers report it by position.
* `parse_structure` turns a CIF/POSCAR text, a pymatgen Structure dict (JSON or
  Python repr, parsed with `ast.literal_eval`, never `eval`), an ASE Atoms or a
  file path into a pymatgen Structure, raising `RowError` with a one-line reason.
  Structure dicts come from untrusted files: pymatgen's decoder imports any
  module a dict names in ``@module``, so a dict is checked before decoding and
  only pymatgen Structure/IStructure dicts (with lattices, magnetic moments and
  numpy arrays nested in them) are decoded, with `Structure.from_dict`.
* `structure_problem` says why a structure cannot be benchmarked (no atoms,
  partial occupancy, degenerate cell, atoms on top of each other).
* `RowLog` collects bad rows and reports one warning per row (capped) plus a
  count through the run's `Reporter`, or raises `BadInputError` at the first
  one in strict mode.
* `files_digest` keys the on-disk caches by file content; `process_memo` makes
  the in-process memos that keep each raw file parsed once per process, and
  `clear_memos` empties them all (tests simulate a fresh process with it).
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
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from crystalbench import BadInputError, Memo, file_sha256

if TYPE_CHECKING:
    from pymatgen.core import Composition, Structure

    from crystalbench import Reporter

__all__ = [
    "LOADER_VERSION",
    "RowError",
    "BadRow",
    "RowLog",
    "RawTable",
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
    "read_table",
    "table_format",
    "input_files",
    "STRUCTURE_SUFFIXES",
    "file_digest",
    "files_digest",
    "process_memo",
    "clear_memos",
    "cache_write",
    "no_gc",
]

# Bump whenever parsing or filtering changes what a loader returns: it versions every parsed-data cache.
LOADER_VERSION = "2"

MAX_SHOWN = 20  # bad-row warning lines reported per file before summarising
MIN_DISTANCE = 0.5  # A; closer atoms are a broken structure (shortest real bond, H2, is 0.74 A)
_DISTANCE_CHECK_MAX_SITES = 400  # the O(n^2) overlap check is skipped above this size
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".json", ".cif.gz", ".vasp.gz", ".json.gz")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # CIF strings in CSV cells are large

Fields = dict[str, Any]
Row = tuple[str, Any, "Fields | str"]  # (where, default id, fields or why the row is unreadable)


class RowError(ValueError):
    """One row (record, frame, file) cannot be used; `kind` groups reasons in the summary."""

    def __init__(self, reason: str, kind: str = "malformed structure") -> None:
        super().__init__(reason)
        self.kind = kind


# --------------------------------------------------------------------------------------------
# in-process memos
# --------------------------------------------------------------------------------------------

_MEMOS: list[Memo] = []


def process_memo(maxsize: int) -> Memo:
    """A `Memo` registered with `clear_memos`, for results that are the same for the whole process."""
    memo = Memo(maxsize)
    _MEMOS.append(memo)
    return memo


def clear_memos() -> None:
    """Forget every parsed table and loaded dataset kept in memory (the next load reads the disk cache)."""
    for memo in _MEMOS:
        memo.clear()


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

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "id": self.id, "kind": self.kind, "reason": self.reason}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BadRow:
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

    def report(self, total: int, reporter: Reporter, *, hint: str = "strict mode makes this an error") -> None:
        """One warning per bad row (first MAX_SHOWN), then the count."""
        if not self.rows:
            return
        for r in self.rows[:MAX_SHOWN]:
            reporter.warning(r.describe(self.source))
        if len(self.rows) > MAX_SHOWN:
            reporter.warning(f"{self.source}: {len(self.rows) - MAX_SHOWN} more bad rows not shown")
        reporter.warning(f"{self.summary(total)}; {hint}")


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
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        size = len(value) if isinstance(value, dict) else int(np.asarray(value, dtype=object).size)
        if size != 1:
            raise RowError(f"{what} holds {size} values, not one number", kind=f"missing/invalid {what}")
        if not isinstance(value, dict):
            value = np.asarray(value, dtype=object).ravel()[0]
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


def _structure_from_cif(text: str) -> Structure:
    from pymatgen.io.cif import CifParser

    structures: list[Structure] = []
    error = ""
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


def _structure_from_poscar(text: str) -> Structure:
    from pymatgen.io.vasp import Poscar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Poscar.from_str(text, read_velocities=False).structure
        except Exception as exc:
            raise RowError(f"malformed POSCAR: {_first_line(exc) or type(exc).__name__}") from None


# The only (@module, @class) pairs a user's structure dict may name. pymatgen's decoder imports
# whatever module a dict names (and `PeriodicSite.from_dict` runs site properties through it), so
# anything else is refused before decoding: a crafted row must never choose what gets imported.
_STRUCTURE_MODULE = "pymatgen.core.structure"
_STRUCTURE_CLASSES = ("Structure", "IStructure")
_NESTED_TRUSTED = frozenset(
    {
        ("pymatgen.core.lattice", "Lattice"),
        *(("pymatgen.core.periodic_table", c) for c in ("Element", "Specie", "Species", "DummySpecie", "DummySpecies")),
        ("pymatgen.electronic_structure.core", "Magmom"),  # site property "magmom"
        ("numpy", "array"),  # inside Magmom
    }
)
_ENTRY_TRUSTED = frozenset({("pymatgen.entries.computed_entries", "ComputedStructureEntry")})
_FOREIGN = "foreign object"


def _names(d: dict[str, Any], allowed: frozenset[tuple[str, str]]) -> bool:
    """True when the dict's (@module, @class) pair is one of `allowed` (strings only: values may be anything)."""
    module, cls = d.get("@module"), d.get("@class")
    return isinstance(module, str) and isinstance(cls, str) and (module, cls) in allowed


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _untrusted_nested(d: dict[str, Any]) -> str | None:
    """The first nested object in `d` that names a module outside `_NESTED_TRUSTED`, described; else None."""
    stack: list[Any] = list(d.values())
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "@module" in value and not _names(value, _NESTED_TRUSTED):
                what = value.get("@class", value.get("@callable"))
                return f"module {_short(value.get('@module'))} ({_short(what)})"
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return None


def _check_structure_dict(d: dict[str, Any]) -> None:
    """Refuse anything but a plain pymatgen Structure dict, before pymatgen sees it (RowError)."""
    cls = d.get("@class")
    if cls is not None and cls not in _STRUCTURE_CLASSES:
        raise RowError(f"a {str(cls)[:40]} dict is not a periodic crystal structure")
    module = d.get("@module")
    if "@callable" in d or (module is not None and module != _STRUCTURE_MODULE):
        raise RowError(
            f"structure dict names module {_short(module)}: only pymatgen Structure dicts are read", kind=_FOREIGN
        )
    nested = _untrusted_nested(d)
    if nested is not None:
        raise RowError(f"structure dict contains an object of {nested}: not read", kind=_FOREIGN)


def _structure_from_dict(d: dict[str, Any]) -> Structure:
    from pymatgen.core import Structure

    if "structure" in d and isinstance(d["structure"], (dict, str)) and "sites" not in d:
        # e.g. a ComputedStructureEntry: only its structure is read (the entry itself is never decoded)
        if "@module" in d and not _names(d, _ENTRY_TRUSTED):
            raise RowError(
                f"record names module {_short(d.get('@module'))}: only pymatgen structure entries are read",
                kind=_FOREIGN,
            )
        return parse_structure(d["structure"])
    _check_structure_dict(d)
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


def _structure_from_atoms(atoms: Any) -> Structure:
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


def _is_ase_atoms(value: Any) -> bool:
    return any(c.__module__.startswith("ase.") and c.__name__ == "Atoms" for c in type(value).__mro__)


def parse_structure(value: Any) -> Structure:
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
    if _is_ase_atoms(value):
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


def _read_text_file(path: Path) -> str:
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
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_structure_file(path: Path) -> Structure:
    """A CIF, POSCAR/CONTCAR/.vasp or pymatgen-JSON file -> Structure, or RowError."""
    text = _read_text_file(path)
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


def structure_problem(s: Structure) -> RowError | None:
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
            i, j = (int(k) for k in np.unravel_index(int(np.argmin(d)), d.shape))
            return RowError(
                f"atoms {min(i, j)} and {max(i, j)} are {d[i, j]:.3f} A apart (< {MIN_DISTANCE} A)",
                kind="overlapping atoms",
            )
    return None


def parse_composition(value: Any) -> Composition:
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


def structure_to_record(s: Structure) -> dict[str, Any]:
    rec: dict[str, Any] = {
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


def structure_from_record(rec: dict[str, Any]) -> Structure:
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
        lines = _CountingLines(fh)
        try:
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

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = next(self.fh)
        self.count += line.count("\n") or 1
        return line


def read_json_table(path: Path) -> tuple[str, list[tuple[str, Any, dict[str, Any]]]]:
    """Read a JSON table in any common pandas/pymatgen layout.

    Returns (layout, rows) with rows = (where, index, record): `index` is the
    pandas index value when the layout has one (used as the default id).
    Layouts: a list of records; pandas "split" ({index, columns, data}, the
    matminer/Matbench format); pandas "columns" ({column: {index: value}}).
    A record that is not a dict (or a split row of the wrong width) is
    returned as ``{"__bad__": why}``.
    """
    try:
        with open_text(path) as fh:
            obj = json.load(fh)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise BadInputError(f"{path}: not readable ({_first_line(exc) or type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    rows: list[tuple[str, Any, dict[str, Any]]] = []
    if isinstance(obj, list):
        for i, rec in enumerate(obj):
            rows.append((f"record {i + 1}", None, rec if isinstance(rec, dict) else {"__bad__": type(rec).__name__}))
        return "records", rows
    if isinstance(obj, dict) and "columns" in obj and "data" in obj and isinstance(obj["data"], list):
        cols = [str(c) for c in obj["columns"]]
        index = obj.get("index") or [None] * len(obj["data"])
        if len(index) != len(obj["data"]):
            raise BadInputError(f"{path}: 'split' JSON has {len(index)} index values but {len(obj['data'])} rows")
        for i, (idx, vals) in enumerate(zip(index, obj["data"])):
            if not isinstance(vals, list) or len(vals) != len(cols):
                rows.append((f"row {i + 1}", idx, {"__bad__": f"expected {len(cols)} values"}))
            else:
                rows.append((f"row {i + 1}", idx, dict(zip(cols, vals))))
        return "split", rows
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        keys: dict[str, None] = {}
        for col in obj.values():
            keys.update(dict.fromkeys(col))
        rows = [(f"entry {k!r}", k, {c: obj[c].get(k) for c in obj}) for k in keys]
        return "columns", rows
    raise BadInputError(
        f"{path}: unrecognised JSON layout (expected a list of records, pandas 'split' "
        "{index, columns, data} or pandas 'columns' {column: {index: value}})"
    )


# --------------------------------------------------------------------------------------------
# raw tables: every supported input format -> rows
# --------------------------------------------------------------------------------------------


@dataclass
class RawTable:
    """A file read into rows ``(where, default id, fields | why unreadable)``.

    fmt: "csv", "json-records"/"json-split"/"json-columns", "extxyz" or "dir".
    columns: field names in first-seen order.
    structure_key: the fixed field holding each row's structure (extxyz frames:
        "__atoms__", an ASE Atoms; folders: "__file__", a Path or a RowError);
        None for tables, whose structure column is chosen by the caller.
    """

    fmt: str
    columns: list[str]
    rows: list[Row]
    structure_key: str | None = None


def table_format(path: Path) -> str:
    """"csv", "json", "extxyz" or "dir" from the path (BadInputError for anything else)."""
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


def read_table(path: Path, reporter: Reporter) -> RawTable:
    """Read any supported input into a `RawTable` (no structure is parsed yet)."""
    fmt = table_format(path)
    if fmt == "csv":
        return _read_csv(path)
    if fmt == "json":
        return _read_json(path)
    if fmt == "extxyz":
        return _read_extxyz(path)
    return _read_dir(path, reporter)


def _read_csv(path: Path) -> RawTable:
    rows: list[Row] = []
    header: list[str] = []
    for line, hdr, rec in iter_csv(path):
        if rec == {} and not header:
            header = hdr or []
            continue
        rows.append((f"line {line}", None, rec))
    if not header:
        raise BadInputError(f"{path}: no header line found (empty CSV?)")
    return RawTable("csv", header, rows)


def _read_json(path: Path) -> RawTable:
    layout, jrows = read_json_table(path)
    cols: dict[str, None] = {}
    rows: list[Row] = []
    for where, idx, rec in jrows:
        if "__bad__" in rec:
            rows.append((where, idx, f"malformed record ({rec['__bad__']})"))
            continue
        cols.update(dict.fromkeys(rec))
        rows.append((where, idx, rec))
    return RawTable(f"json-{layout}", list(cols), rows)


def _read_extxyz(path: Path) -> RawTable:
    try:
        from ase.io import iread
    except ImportError:  # pragma: no cover - ase is an optional dependency
        raise BadInputError(f"{path}: reading extxyz needs ASE (pip install 'crystalbench[io]')") from None
    rows: list[Row] = []
    cols: dict[str, None] = {}
    frames = iread(str(path), index=":", format="extxyz")
    while True:
        where = f"frame {len(rows) + 1}"
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except Exception as exc:  # ASE raises many types on broken frames; nothing after can be trusted
            msg = _first_line(exc) or type(exc).__name__
            rows.append((where, None, f"unreadable extxyz frame ({msg[:120]}); the rest of the file is ignored"))
            break
        fields: Fields = dict(atoms.info)
        if atoms.calc is not None:
            for k, v in getattr(atoms.calc, "results", {}).items():
                fields.setdefault(k, v)
        cols.update(dict.fromkeys(fields))
        fields["__atoms__"] = atoms
        rows.append((where, None, fields))
    if not rows:
        raise BadInputError(f"{path}: no extxyz frames found")
    return RawTable("extxyz", list(cols), rows, structure_key="__atoms__")


def _structure_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        low = p.name.lower()
        if low.endswith(STRUCTURE_SUFFIXES) or re.match(r"^(poscar|contcar)", low):
            out.append(p)
    return out


def input_files(path: Path) -> list[Path]:
    """The raw files an input consists of (cache keys, provenance checksums)."""
    if path.is_dir():
        idp = path / "id_prop.csv"
        return ([idp] if idp.is_file() else []) + _structure_files(path)
    return [path]


def _read_dir(path: Path, reporter: Reporter) -> RawTable:
    idp = path / "id_prop.csv"
    files = _structure_files(path)
    by_name = {p.name: p for p in files}
    if not idp.is_file():
        if not files:
            raise BadInputError(f"{path}: no id_prop.csv and no CIF/POSCAR files in this directory")
        return RawTable("dir", [], [(f"file {p.name}", _file_id(p), {"__file__": p}) for p in files], "__file__")
    rows: list[Row] = []
    first = True
    for line, ident, value in _iter_id_prop(idp):
        if first:
            first = False
            if value is not None and not _is_number(value) and _find_file(path, by_name, ident or "") is None:
                reporter.note(f"{idp} line {line} ({ident},{value}) looks like a header; skipped")
                continue
        if ident is None:
            rows.append((f"id_prop.csv line {line}", None, "expected 'id,target'"))
            continue
        found = _find_file(path, by_name, ident)
        missing = RowError(
            f"no structure file for id (looked for {ident}, {ident}.cif, {ident}.vasp, POSCAR-{ident}...)",
            kind="missing structure",
        )
        rows.append((f"id_prop.csv line {line}", ident, {"id": ident, "target": value, "__file__": found or missing}))
    if not rows:
        raise BadInputError(f"{idp}: file is empty")
    return RawTable("dir", ["id", "target"], rows, structure_key="__file__")


def _iter_id_prop(idp: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """id_prop.csv rows as (line, id, target) with no header handling; (line, None, None) when malformed."""
    with open_text(idp) as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            fields = [f.strip() for f in next(csv.reader([raw]))]
            if len(fields) < 2 or not fields[0]:
                yield n, None, None
                continue
            yield n, fields[0], fields[1]


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
        if ident + suffix in by_name:
            return by_name[ident + suffix]
    for cand in (f"POSCAR-{ident}", f"POSCAR_{ident}"):
        if cand in by_name:
            return by_name[cand]
    p = folder / ident  # ids with sub-folders ("a/b.cif")
    if ident and p.is_file() and p.resolve().is_relative_to(folder.resolve()):
        return p
    return None


# --------------------------------------------------------------------------------------------
# checksums
# --------------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (memoised; the same digest the harness records in provenance)."""
    return file_sha256(Path(path))


def files_digest(paths: Sequence[Path], *extra: Any) -> str:
    """One key for a set of files (content, not names) plus options and LOADER_VERSION."""
    h = hashlib.sha256()
    h.update(json.dumps([LOADER_VERSION, [str(e) for e in extra]]).encode())
    for p in paths:
        h.update(p.name.encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()[:24]


def cache_write(write: Callable[[], object], where: Path, reporter: Reporter) -> None:
    """Run a cache write; a read-only or full cache only costs speed, so failure is a note, not an error."""
    try:
        write()
    except OSError as exc:
        reporter.note(f"could not write cache {where}: {exc.strerror or exc}")

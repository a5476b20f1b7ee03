"""The public raw datasets behind the built-in tasks, each parsed once into a `Table` and cached.

The one ingestion path for shipped data is

    raw file --`readers.read_table`--> rows --`Source.rows`--> `SourceRow`s
    --`readers.parse_structure` + `structure_problem`--> `Table` --task selection--> `Dataset`

`Source.rows` only says which field is the id, which holds the structure and
which are labels (one small function per data set, documented in the folder's
PROVENANCE.md); parsing and the validity filters are shared, so the property
tasks (`properties`) and the learnability collection (`collection`) agree on
which structures are usable. Users' own files (`user`) go through the same
readers and parsers.

A `Table` holds ids, structures as exact JSON records, numeric label columns
and counts of what was dropped and why. Tables are cached as JSON in the
``tables`` `Store` of the run's cache directory, keyed by the raw files' sha256
(a corrupt entry is discarded and rebuilt), and kept in an in-process memo:
several tasks share one table (four tasks read the Petousis dielectric file),
so a raw file is parsed once per process and once per cache directory. Parsing
every source cold takes ~40 s on a busy 2-core machine (CIFs cost ~2.5 ms
each); a warm load of a 7.8k-structure task takes ~1.5 s.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import DataUnavailableError, RemoteFile

from .readers import (
    LOADER_VERSION,
    RowError,
    cache_write,
    files_digest,
    no_gc,
    parse_literal,
    parse_structure,
    process_memo,
    read_table,
    structure_from_record,
    structure_problem,
    structure_to_record,
)

if TYPE_CHECKING:
    from crystalbench import Reporter, RunContext, Store

__all__ = [
    "Table",
    "SourceRow",
    "Source",
    "SOURCES",
    "FILES",
    "MP_STRUCTURE_SOURCES",
    "require",
    "source_rows",
    "table",
    "table_store",
    "gong_labels",
    "mp_labels",
    "mp_structures",
    "GITHUB_FILES",
    "MANUAL",
    "USER_SUPPLIED",
    "remote_file",
    "manual_hint",
    "fetch_steps",
]

# Raw files of each source, relative to the data directory.
FILES: dict[str, tuple[str, ...]] = {
    "petretto": ("matminer_phonon_dielectric_mp/phonon_dielectric_mp.csv",),
    "gong_cv": ("gong2023_labels_only/cv_training.csv", "gong2023_labels_only/cv_test.csv"),
    "gong_u": ("gong2023_labels_only/internal_energy_training.csv", "gong2023_labels_only/internal_energy_test.csv"),
    "gong_kappa": ("gong2023_labels_only/kappa_training.csv", "gong2023_labels_only/kappa_test.csv"),
    "petousis": ("matminer_dielectric_constant/dielectric_constant.csv",),
    "piezo": ("matminer_piezoelectric_tensor/piezoelectric_tensor.csv",),
    "elastic2015": ("matminer_pypi_elastic_tensor_2015/elastic_tensor.csv.gz",),
    "trachote": ("mp_elastic_val_trachote/mp_val_clean.json",),
    "matcalc_elastic": ("matcalc_benchmark_data/mp-binary-pbe-elasticity-2025.1.json.gz",),
    "matcalc_phonon": ("matcalc_benchmark_data/alexandria-binary-pbe-phonon-2025.1.json.gz",),
    "matcalc_wbm": ("matcalc_benchmark_data/wbm-random-pbe52-equilibrium-2025.1.json.gz",),
    "flla": ("matminer_pypi_flla_2015/flla_2015.csv.gz",),
    "mp_nostruct": ("mp_nostruct_labels_only/mp_nostruct.csv",),
    "macefield": (
        "macefield_mp_dielectric_splits/dielectric-valid.xyz",
        "macefield_mp_dielectric_splits/dielectric-test.xyz",
    ),
}
# Structure sources for MP-id joins, best first: MP primitive cells before the 2015 elastic set's conventional cells.
MP_STRUCTURE_SOURCES = ("petretto", "petousis", "piezo", "flla", "trachote", "elastic2015")

_TABLES = process_memo(16)
_LABELS = process_memo(8)


@dataclass
class Table:
    """Parsed rows of one source: ids, structure records, label columns, drop counts."""

    ids: list[str]
    structures: list[dict[str, Any]]
    columns: dict[str, list[Any]]
    dropped: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "structures": self.structures,
            "columns": self.columns,
            "dropped": self.dropped,
            "total": self.total,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Table:
        return cls(ids=d["ids"], structures=d["structures"], columns=d["columns"], dropped=d["dropped"],
                   total=d["total"])

    def column(self, name: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in self.columns[name]], dtype=float)

    def structure_objects(self) -> tuple[Any, ...]:
        """pymatgen Structures of every row (built in bulk with the garbage collector paused)."""
        with no_gc():
            return tuple(structure_from_record(r) for r in self.structures)


def _is_table_json(d: Any) -> bool:
    """A cache entry that can be a `Table` (anything else is discarded and rebuilt)."""
    if not isinstance(d, dict) or not all(k in d for k in ("ids", "structures", "columns", "dropped", "total")):
        return False
    n = len(d["ids"]) if isinstance(d["ids"], list) else -1
    return (
        isinstance(d["structures"], list) and len(d["structures"]) == n
        and isinstance(d["columns"], dict) and all(isinstance(v, list) and len(v) == n for v in d["columns"].values())
        and all(isinstance(r, dict) and {"lattice", "species", "frac"} <= set(r) for r in d["structures"])
    )


@dataclass(frozen=True)
class SourceRow:
    """One entry of a raw source: its id, its structure as stored (text, dict, Atoms) and its labels."""

    ident: str
    structure: Any
    labels: dict[str, float | None]


RowsFn = Callable[[Sequence[Path], "Reporter"], Iterable["SourceRow | str"]]


@dataclass(frozen=True)
class Source:
    """A raw data set: its files, label columns and the mapping of raw rows to `SourceRow`s.

    `rows` yields a `SourceRow` per entry, or a string naming why an entry has
    no usable row (counted in `Table.dropped`).
    """

    name: str
    columns: tuple[str, ...]
    rows: RowsFn

    @property
    def files(self) -> tuple[str, ...]:
        return FILES[self.name]


def num(v: Any) -> float | None:
    """A finite float or None (empty cells, NaN, text)."""
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _records(path: Path, reporter: Reporter) -> Iterator[dict[str, Any] | str]:
    """The rows of a raw file as field dicts, or a drop reason for a malformed row."""
    for _where, _idx, rec in read_table(path, reporter).rows:
        yield rec if isinstance(rec, dict) else "malformed row"


def _min_eig(tensor: Any) -> float | None:
    try:
        c = np.asarray(parse_literal(tensor) if isinstance(tensor, str) else tensor, dtype=float)
        if c.shape != (6, 6) or not np.all(np.isfinite(c)):
            return None
        return float(np.linalg.eigvalsh((c + c.T) / 2).min())
    except (RowError, ValueError, TypeError, np.linalg.LinAlgError):
        return None


# --------------------------------------------------------------------------------------------
# sources: raw rows -> SourceRow
# --------------------------------------------------------------------------------------------


def _petretto(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """Petretto et al. 2018 DFPT phonons (1521 MP materials; 10 without structure)."""
    for r in _records(files[0], reporter):
        if isinstance(r, str):
            yield r
        elif not r["structure"].strip():
            yield "empty structure field"
        else:
            yield SourceRow(r["mpid"].strip(), r["structure"], {
                "asr_breaking": num(r["asr_breaking"]),
                "eps_electronic": num(r["eps_electronic"]),
                "eps_total": num(r["eps_total"]),
                "last_phdos_peak": num(r["last phdos peak"]),
            })


def _with_meta(files: Sequence[Path], reporter: Reporter, labels: Sequence[str]) -> Iterator[SourceRow | str]:
    """matminer sets whose `meta` column holds the mp-id and the CIF (Petousis, de Jong piezo)."""
    for r in _records(files[0], reporter):
        if isinstance(r, str):
            yield r
            continue
        try:
            meta = parse_literal(r["meta"])
        except RowError:
            meta = None
        if not isinstance(meta, dict):
            yield "unreadable meta"
            continue
        yield SourceRow(str(meta.get("material_id", "")).strip(), meta.get("structure"),
                        {c: num(r[c]) for c in labels})


def _petousis(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """Petousis et al. 2017 MP DFPT dielectric set (1056 insulators, CIFs inside `meta`)."""
    return _with_meta(files, reporter, ("band_gap", "poly_electronic", "poly_total", "n"))


def _piezo(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """de Jong et al. 2015 MP piezoelectric set (941, eij_max in C/m^2)."""
    return _with_meta(files, reporter, ("eij_max",))


def _elastic2015(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """de Jong et al. 2015 elastic tensors (1181; conventional cells for about a third)."""
    for r in _records(files[0], reporter):
        if isinstance(r, str):
            yield r
            continue
        yield SourceRow(r["material_id"].strip(), r["structure"], {
            "K_VRH": num(r["K_VRH"]),
            "G_VRH": num(r["G_VRH"]),
            "poisson_ratio": num(r["poisson_ratio"]),
            "min_eig": _min_eig(r["elastic_tensor"]),
        })


def _trachote(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """MP elastic tensors, validation split of trachote/predict_elastic_tensor (1211, unfiltered)."""
    for r in _records(files[0], reporter):
        if isinstance(r, str):
            yield r
            continue
        yield SourceRow(str(r.get("material_id", "")).strip(), r.get("cif"), {
            "poisson_ratio": num(r.get("elasticity.poisson_ratio")),
            "K_Voigt": num(r.get("elasticity.K_Voigt")),
            "G_Voigt": num(r.get("elasticity.G_Voigt")),
            "min_eig": _min_eig(r.get("elasticity.elastic_tensor")),
        })


def _matcalc(id_key: str, labels: tuple[str, ...]) -> RowsFn:
    """matcalc benchmark_data JSON lists (structure dicts, or Python-repr strings of them)."""

    def rows(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
        for r in _records(files[0], reporter):
            if isinstance(r, str):
                yield r
                continue
            yield SourceRow(str(r.get(id_key, "")).strip(), r.get("structure"), {c: num(r.get(c)) for c in labels})

    return rows


def _flla(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """Faber-Lindmaa-von Lilienfeld-Armiento 2015 MP formation energies (3938)."""
    for r in _records(files[0], reporter):
        if isinstance(r, str):
            yield r
            continue
        yield SourceRow(r["material_id"].strip(), r["structure"],
                        {"formation_energy_per_atom": num(r["formation_energy_per_atom"])})


def _macefield(files: Sequence[Path], reporter: Reporter) -> Iterator[SourceRow | str]:
    """MACE-Field MP DFPT (2025) valid+test frames: polycrystalline dielectric and piezo values.

    eps_electronic = mean diagonal of I + 4 pi alpha; eps_total adds the ionic
    tensor; n = sqrt(eps_electronic); piezo = max |e_ij| of the 3x6 tensor.
    The file has no material ids: ids are `<file stem>-<frame>`.
    """
    for path in files:
        stem = path.name.removesuffix(".xyz")
        for i, rec in enumerate(_records(path, reporter)):
            if isinstance(rec, str):
                yield rec
                continue
            try:
                alpha = np.asarray(rec["REF_polarisability"], dtype=float).reshape(3, 3)
                ionic = np.asarray(rec["REF_dielectric_ionic"], dtype=float).reshape(3, 3)
                piezo = np.asarray(rec["REF_piezoelectric"], dtype=float).reshape(3, 6)
            except (KeyError, ValueError):
                yield "missing tensors"
                continue
            eps_el = float(np.trace(np.eye(3) + 4 * np.pi * alpha) / 3)
            yield SourceRow(f"{stem}-{i + 1:04d}", rec["__atoms__"], {
                "eps_electronic": eps_el,
                "eps_total": eps_el + float(np.trace(ionic) / 3),
                "n": math.sqrt(eps_el) if eps_el > 0 else None,
                "piezo_max": float(np.abs(piezo).max()),
            })


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("petretto", ("asr_breaking", "eps_electronic", "eps_total", "last_phdos_peak"), _petretto),
        Source("petousis", ("band_gap", "poly_electronic", "poly_total", "n"), _petousis),
        Source("piezo", ("eij_max",), _piezo),
        Source("elastic2015", ("K_VRH", "G_VRH", "poisson_ratio", "min_eig"), _elastic2015),
        Source("trachote", ("poisson_ratio", "K_Voigt", "G_Voigt", "min_eig"), _trachote),
        Source("matcalc_elastic", ("bulk_modulus_vrh", "shear_modulus_vrh"),
               _matcalc("mp_id", ("bulk_modulus_vrh", "shear_modulus_vrh"))),
        Source("matcalc_phonon", ("heat_capacity",), _matcalc("mp_id", ("heat_capacity",))),
        Source("matcalc_wbm", ("energy", "formation_energy_per_atom"),
               _matcalc("material_id", ("energy", "formation_energy_per_atom"))),
        Source("flla", ("formation_energy_per_atom",), _flla),
        Source("macefield", ("eps_electronic", "eps_total", "n", "piezo_max"), _macefield),
    )
}


# --------------------------------------------------------------------------------------------
# tables: SourceRows -> parsed, filtered, cached
# --------------------------------------------------------------------------------------------


class _Builder:
    """Accumulates rows; a structure that fails `structure_problem` is dropped with its reason."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.t = Table(ids=[], structures=[], columns={c: [] for c in columns})
        self.dropped: Counter[str] = Counter()
        self.seen: set[str] = set()

    def drop(self, reason: str) -> None:
        self.t.total += 1
        self.dropped[reason] += 1

    def add(self, row: SourceRow) -> None:
        if not row.ident:
            self.drop("missing id")
            return
        if row.ident in self.seen:
            self.drop("duplicate id")
            return
        try:
            s = parse_structure(row.structure)
            problem = structure_problem(s)
            if problem is not None:
                raise problem
        except RowError as exc:
            self.drop(exc.kind)
            return
        self.t.total += 1
        self.seen.add(row.ident)
        self.t.ids.append(row.ident)
        self.t.structures.append(structure_to_record(s))
        for c in self.t.columns:
            self.t.columns[c].append(row.labels.get(c))

    def done(self) -> Table:
        self.t.dropped = dict(self.dropped)
        return self.t


def require(data_dir: Path, source: str) -> list[Path]:
    """The source's files, or DataUnavailableError naming the missing ones."""
    paths = [data_dir / f for f in FILES[source]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataUnavailableError(
            f"missing {', '.join(str(m) for m in missing)} (set --data-dir or "
            f"CRYSTALBENCH_DATA_DIR to the crystalbench data folder; see docs/data.md for where each file comes from)"
        )
    return paths


def source_rows(ctx: RunContext, name: str) -> Iterator[SourceRow | str]:
    """The unparsed rows of one source (what a table is built from; also for picking a few entries)."""
    return iter(SOURCES[name].rows(require(ctx.data_dir, name), ctx.reporter))


def table_store(ctx: RunContext) -> Store:
    """The `Store` of parsed tables in this run's cache directory."""
    return ctx.cache("tables", LOADER_VERSION)


def _cached_table(ctx: RunContext, name: str, files: Sequence[Path], build: Callable[[], Table]) -> Table:
    """The table from the process memo, else the cache Store, else built (and stored)."""
    key = files_digest(files, name)

    def load() -> Table:
        store = table_store(ctx)
        hit = store.get_json(key, check=_is_table_json)
        if hit is not None:
            return Table.from_json(hit)
        with warnings.catch_warnings(), no_gc():
            warnings.simplefilter("ignore")
            fresh = build()
        cache_write(lambda: store.put_json(key, fresh.to_json()), store.dir, ctx.reporter)
        return fresh

    return _TABLES.get((name, key), load)


def table(ctx: RunContext, name: str) -> Table:
    """The parsed `Table` of one source (see `SOURCES`)."""
    source = SOURCES[name]
    files = require(ctx.data_dir, name)

    def build() -> Table:
        b = _Builder(source.columns)
        with ctx.progress_bar(None, f"parsing {name}", "rows") as bar:
            for row in source.rows(files, ctx.reporter):
                if isinstance(row, str):
                    b.drop(row)
                else:
                    b.add(row)
                bar.update(1)
        return b.done()

    return _cached_table(ctx, name, files, build)


def gong_labels(ctx: RunContext, which: str) -> tuple[dict[str, float], dict[str, str]]:
    """The paper authors' labels and their train/test membership: ({id: value}, {id: "train"|"test"})."""
    files = require(ctx.data_dir, f"gong_{which}")

    def build() -> tuple[dict[str, float], dict[str, str]]:
        values: dict[str, float] = {}
        split: dict[str, str] = {}
        for path, part in zip(files, ("train", "test")):
            for r in _records(path, ctx.reporter):
                if isinstance(r, str):
                    continue
                ident = r["cif_id"].strip()
                v = num(r["property"])
                if ident and v is not None and ident not in values:
                    values[ident] = v
                    split[ident] = part
        return values, split

    return _LABELS.get(("gong", which, files_digest(files)), build)


def mp_labels(ctx: RunContext) -> dict[str, tuple[str, float | None, float | None]]:
    """mp_nostruct labels (no structures): {mp-id: (pretty_formula, band_gap eV, total_magnetization muB/cell)}."""
    files = require(ctx.data_dir, "mp_nostruct")

    def build() -> dict[str, tuple[str, float | None, float | None]]:
        out: dict[str, tuple[str, float | None, float | None]] = {}
        for r in _records(files[0], ctx.reporter):
            if not isinstance(r, str):
                out[r["material_id"].strip()] = (r["pretty_formula"].strip(), num(r["band_gap"]),
                                                 num(r["total_magnetization"]))
        return out

    return _LABELS.get(("mp_nostruct", files_digest(files)), build)


def mp_structures(ctx: RunContext) -> Table:
    """One structure per MP id from every local MP structure source, best source first.

    The 2015 elastic set stores conventional cells for about a third of its
    entries; those are reduced to the primitive cell (spglib, symprec 0.01) so
    per-cell MP labels (total magnetization) refer to the same cell.
    """
    files = [p for s in MP_STRUCTURE_SOURCES for p in require(ctx.data_dir, s)]

    def build() -> Table:
        out = Table(ids=[], structures=[], columns={"source": []})
        seen: set[str] = set()
        for src in MP_STRUCTURE_SOURCES:
            t = table(ctx, src)
            for ident, rec in zip(t.ids, t.structures):
                if ident in seen:
                    continue
                seen.add(ident)
                out.ids.append(ident)
                out.structures.append(_primitive(rec) if src == "elastic2015" else rec)
                out.columns["source"].append(src)
        out.total = len(out.ids)
        return out

    return _cached_table(ctx, "mp_structures", files, build)


def petretto_primitive(ctx: RunContext) -> Table:
    """The Petretto et al. structures, each in its primitive cell.

    Gong et al.'s phonon U and Cv are per mole of the *primitive* cell, the cell
    of Petretto's phonon calculations. Twelve of the Petretto file's structures
    with such a label are larger cells: conventional cells (BaO with 8 sites,
    Mg2Si, ZrO2 and AlF3 with 12, NaNbO3 with 40, SiO2 with 48, CdS with 4) and
    slightly distorted supercells of a primitive cell (NaSbF6 32 -> 8, K2NaAlF6
    40 -> 10, AgBiS2 12 -> 4, BaI2 and BaBr2 24 -> 12). For them the label was
    8-50% of the Dulong-Petit bound 3R x sites at 300 K, and it is 60-99% of
    it for the primitive cell, like every other entry; only diamond stays lower,
    as it should (docs/data.md). An extensive per-cell label must describe the
    structure the model sees, so the phonon tasks use this table: spglib's
    primitive cell at symprec 0.1 A (Materials Project's tolerance), which also
    idealizes the five distorted ones. A cell whose species counts have no
    common divisor above 1 is primitive already (a supercell multiplies every
    count): spglib runs only on the others.
    """
    files = require(ctx.data_dir, "petretto")

    def build() -> Table:
        t = table(ctx, "petretto")
        structures = [_primitive(rec, symprec=0.1) if _may_be_supercell(rec) else rec for rec in t.structures]
        return Table(ids=list(t.ids), structures=structures, columns={k: list(v) for k, v in t.columns.items()},
                     dropped=dict(t.dropped), total=t.total)

    return _cached_table(ctx, "petretto_primitive_symprec0.1", files, build)


def _may_be_supercell(rec: dict[str, Any]) -> bool:
    counts = Counter(rec["species"]).values()
    return math.gcd(*counts) > 1 if counts else False


def _primitive(rec: dict[str, Any], symprec: float = 0.01) -> dict[str, Any]:
    """The record of the primitive cell when spglib finds a smaller one, else `rec` unchanged."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    s = structure_from_record(rec)
    try:
        prim = SpacegroupAnalyzer(s, symprec=symprec).find_primitive()
    except Exception:  # spglib failure: keep the cell as given
        return rec
    return structure_to_record(prim) if prim is not None and len(prim) < len(s) else rec


# --------------------------------------------------------------------------------------------
# Getting the raw files: `bench data fetch`
# --------------------------------------------------------------------------------------------
# Files published unchanged in a public git repository are downloaded from that repository at
# the pinned commit of their PROVENANCE.md and must match the sha256 recorded there, so a moved
# branch or a corrupted transfer can never become a different dataset. Files that were
# repacked (gzip) or come from sources without a stable URL are `MANUAL`: fetch says where to
# get them instead.

_GITHUB_RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
_GONG = ("shenggong1996/examining-GNN-for-crystal-periodicity", "a9265db88c7c183b44a6dd246801ee3c4e56878c")
_NO_LICENCE = "no licence in the authors' repository: for local benchmarking only, do not redistribute"

# data-dir relative path: (repository, commit, path in the repository, sha256, note)
GITHUB_FILES: dict[str, tuple[str, str, str, str, str]] = {
    "gong2023_labels_only/cv_training.csv": (*_GONG, "datasets/property/cv_training.csv",
        "17e77feb2c7c88dc6c346f2a922ba43ec87ecc341699a90046dca4bf0ef8ee7b", _NO_LICENCE),
    "gong2023_labels_only/cv_test.csv": (*_GONG, "datasets/property/cv_test.csv",
        "caa4d19e51a020ce5191cd797fe853983c59dddcd7e086a3b98cb1b8f5bf5c68", _NO_LICENCE),
    "gong2023_labels_only/internal_energy_training.csv": (*_GONG, "datasets/property/internal_energy_training.csv",
        "d39be2668e37756e96a0e3907def4029128751d3407d67caacbe47e69e2611af", _NO_LICENCE),
    "gong2023_labels_only/internal_energy_test.csv": (*_GONG, "datasets/property/internal_energy_test.csv",
        "e574ea782f031dadc2c336ce7048732f052e202bb4306491ec564a53fd962949", _NO_LICENCE),
    "gong2023_labels_only/kappa_training.csv": (*_GONG, "datasets/property/kappa_training.csv",
        "db88b7f9d38504bde021078f75b4020942e3cecb98d9e8076e3c9006e16b0782", _NO_LICENCE),
    "gong2023_labels_only/kappa_test.csv": (*_GONG, "datasets/property/kappa_test.csv",
        "80cce65495a4ff8c4ffa12edc256e48256d61beffd95d694d3e081aebee49aa4", _NO_LICENCE),
    "matminer_phonon_dielectric_mp/phonon_dielectric_mp.csv": (
        "hackingmaterials/automatminer", "3eea185cfa80564cb7ae497e1b8c78862c03a06b",
        "matbench/data/sources/phonon_dielectric_mp.csv",
        "6f284119bed821793f892bac2e0256d9b3eff406647212423ae6b9fc35347245", ""),
    "matminer_dielectric_constant/dielectric_constant.csv": (
        "hackingmaterials/matminer", "0b6294f1b10d439b9446c95f9d30197853df920b",
        "matminer/datasets/dielectric_constant.csv",
        "bf6aaac5f41f9f8e1acb97368d19b3c11b6c758752f92b324e61e36ea87fa77e", ""),
    "matminer_piezoelectric_tensor/piezoelectric_tensor.csv": (
        "hackingmaterials/matminer", "0b6294f1b10d439b9446c95f9d30197853df920b",
        "matminer/datasets/piezoelectric_tensor.csv",
        "5387303b9e63c0fe46f4b906d45eb712934d926d6ea617a9b10ab0b1e1f59644", ""),
    "mp_elastic_val_trachote/mp_val_clean.json": (
        "trachote/predict_elastic_tensor", "2178392a6895287af3c7f95c2a31f7985b28b1e8", "data/mp_val_clean.json",
        "a341194c57462582b740e82aaa5b7e80d5c61c5a46d971a973d202d632d01044", ""),
    "mp_nostruct_labels_only/mp_nostruct.csv": (
        "hackingmaterials/automatminer", "2e5458a617bdafc19473058b97d65a5312a74994",
        "matbench/data/sources/mp_nostruct.csv",
        "1709fbda1e29ed7312f5bf0e9d25afafd15f993272145dc61ab308937d2976b2", ""),
    "macefield_mp_dielectric_splits/dielectric-test.xyz": (
        "mdi-group/2025-04-mace-field", "c26ef89c0c189cc3b18c55ffbc4609834efd7545",
        "scripts/Dielectrics/dielectric-test.xyz",
        "142b9ebed7932e04f69be990da946a8d0ff976d0151927cb7bceaa88d6297eb1", _NO_LICENCE),
    "macefield_mp_dielectric_splits/dielectric-valid.xyz": (
        "mdi-group/2025-04-mace-field", "c26ef89c0c189cc3b18c55ffbc4609834efd7545",
        "scripts/Dielectrics/dielectric-valid.xyz",
        "546d8a4a398d0d0a0d267dbfccdc97a64dc6f47aa46c6c8f7fe096351bb93045", _NO_LICENCE),
}

# data-dir relative folder: where its files come from when they cannot be downloaded as published
MANUAL: dict[str, str] = {
    "matminer_pypi_elastic_tensor_2015": (
        "`pip download matminer==0.3.5 --no-deps --no-binary :all:`, take "
        "matminer-0.3.5/matminer/datasets/elastic_tensor.csv from the sdist and store it as elastic_tensor.csv.gz "
        "(`gzip -n -9`)"),
    "matminer_pypi_flla_2015": (
        "`pip download matminer==0.3.5 --no-deps --no-binary :all:`, take "
        "matminer-0.3.5/matminer/datasets/flla_2015.csv from the sdist and store it as flla_2015.csv.gz "
        "(`gzip -n -9`)"),
    "matcalc_benchmark_data": (
        "the benchmark_data/ folder of https://github.com/materialsvirtuallab/matcalc (commit aa76b41), "
        "files unchanged"),
}


# tasks whose data is more than published files: what the user has to add by hand
USER_SUPPLIED: dict[str, str] = {
    "log_kappa": (
        "gong2023_kappa/: one <cif_id>.cif per labelled compound, from the paper authors' data "
        "(https://doi.org/10.6084/m9.figshare.19654224) or ICSD/TEDesignLab; see docs/data.md"),
}


def remote_file(data_dir: Path, relpath: str) -> RemoteFile | None:
    """The download of one raw file of `FILES`, or None when it has to be obtained by hand."""
    entry = GITHUB_FILES.get(relpath)
    if entry is None:
        return None
    repo, commit, path, sha, note = entry
    return RemoteFile(Path(data_dir) / relpath, _GITHUB_RAW.format(repo=repo, commit=commit, path=path), sha, note)


def manual_hint(relpath: str) -> str:
    """Where a raw file that `bench data fetch` cannot download comes from."""
    folder = relpath.split("/", 1)[0]
    where = MANUAL.get(folder)
    if where:
        return f"{relpath}: get it from {where}"
    return f"{relpath}: no download known; see docs/data.md and the folder's PROVENANCE.md for its origin"


def fetch_steps(ctx: RunContext, files: Sequence[Path], task: str = "") -> list[RemoteFile | str]:
    """A built-in task's `TaskSpec.fetch`: for each of `files` not present, its pinned download
    (`GITHUB_FILES`) or where to get it by hand (`MANUAL`), plus what the user adds by hand
    (`USER_SUPPLIED`, by task name)."""
    steps: list[RemoteFile | str] = []
    for f in files:
        if Path(f).is_file():
            continue
        try:
            rel = Path(f).relative_to(ctx.data_dir).as_posix()
        except ValueError:
            steps.append(f"{f}: outside the data directory; see the task's documentation")
            continue
        steps.append(remote_file(ctx.data_dir, rel) or manual_hint(rel))
    if task in USER_SUPPLIED:
        steps.append(USER_SUPPLIED[task])
    return steps

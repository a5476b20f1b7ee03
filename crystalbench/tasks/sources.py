"""The public raw datasets behind the property tasks, parsed once and cached.

Each function reads one folder of the data directory (see its PROVENANCE.md)
into a `Table`: ids, structures (as exact JSON records), numeric label columns
and counts of what was dropped and why. Tables are cached as JSON in
`cache_dir()/datasets/tables/`, keyed by the raw files' sha256 and
`readers.LOADER_VERSION`, and the last few stay in memory: several tasks share
one table (four tasks read the Petousis dielectric file), so a file is parsed
once per machine. Parsing every source cold takes ~40 s on a busy 2-core machine
(CIFs cost ~2.5 ms each); a warm load of a 7.8k-structure task takes ~1.5 s.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..harness.errors import DataUnavailableError
from .readers import (
    RowError,
    files_digest,
    iter_csv,
    no_gc,
    parse_literal,
    parse_structure,
    read_cache,
    structure_problem,
    structure_to_record,
    write_cache,
)

__all__ = [
    "Table",
    "FILES",
    "require",
    "petretto_phonons",
    "gong_labels",
    "petousis_dielectric",
    "dejong_piezo",
    "dejong_elastic",
    "trachote_elastic",
    "matcalc",
    "flla_formation",
    "mp_labels",
    "mp_structures",
    "macefield_dielectric",
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


@dataclass
class Table:
    """Parsed rows of one source: ids, structure records, label columns, drop counts."""

    ids: list[str]
    structures: list[dict]
    columns: dict[str, list[Any]]
    dropped: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def to_json(self) -> dict:
        return {"ids": self.ids, "structures": self.structures, "columns": self.columns, "dropped": self.dropped,
                "total": self.total}

    @classmethod
    def from_json(cls, d: dict) -> "Table":
        return cls(ids=d["ids"], structures=d["structures"], columns=d["columns"], dropped=d.get("dropped", {}),
                   total=d.get("total", 0))

    def column(self, name: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in self.columns[name]], dtype=float)


class _Builder:
    """Accumulates rows; a structure that fails `structure_problem` is dropped with its reason."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.t = Table(ids=[], structures=[], columns={c: [] for c in columns})
        self.dropped: Counter[str] = Counter()
        self.seen: set[str] = set()

    def drop(self, reason: str) -> None:
        self.t.total += 1
        self.dropped[reason] += 1

    def add(self, ident: str, structure_value: Any, **values: Any) -> None:
        if not ident:
            self.drop("missing id")
            return
        if ident in self.seen:
            self.drop("duplicate id")
            return
        try:
            s = parse_structure(structure_value)
            problem = structure_problem(s)
            if problem is not None:
                raise problem
        except RowError as exc:
            self.drop(exc.kind)
            return
        self.t.total += 1
        self.seen.add(ident)
        self.t.ids.append(ident)
        self.t.structures.append(structure_to_record(s))
        for c in self.t.columns:
            self.t.columns[c].append(values.get(c))

    def done(self) -> Table:
        self.t.dropped = dict(self.dropped)
        return self.t


def num(v: Any) -> float | None:
    """A finite float or None (empty cells, NaN, text)."""
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------------------------

_MEMO: "OrderedDict[tuple[str, str], Table]" = OrderedDict()
_MEMO_SIZE = 4


def require(data_dir: Path, source: str, task: str) -> list[Path]:
    """The source's files, or DataUnavailableError naming the missing ones."""
    paths = [data_dir / f for f in FILES[source]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataUnavailableError(
            f"missing {', '.join(str(m) for m in missing)} (set --data-dir or "
            f"CRYSTALBENCH_DATA_DIR to the crystalbench data folder; see docs/data.md for where each file comes from)"
        )
    return paths


def _cached(name: str, files: Sequence[Path], build: Callable[[], Table]) -> Table:
    key = files_digest(files, name)
    hit = _MEMO.get((name, key))
    if hit is not None:
        _MEMO.move_to_end((name, key))
        return hit
    payload = read_cache("tables", name, key)
    if payload is not None:
        table = Table.from_json(payload)
    else:
        with warnings.catch_warnings(), no_gc():
            warnings.simplefilter("ignore")
            table = build()
        write_cache("tables", name, key, table.to_json())
    _MEMO[(name, key)] = table
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return table


def _csv_rows(path: Path) -> Iterable[dict[str, str]]:
    for _line, _hdr, rec in iter_csv(path):
        if isinstance(rec, dict) and rec:
            yield rec


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------


def petretto_phonons(data_dir: Path, task: str = "") -> Table:
    """Petretto et al. 2018 DFPT phonons (1521 MP materials; 10 without structure)."""
    files = require(data_dir, "petretto", task)

    def build() -> Table:
        b = _Builder(["asr_breaking", "eps_electronic", "eps_total", "last_phdos_peak"])
        for r in _csv_rows(files[0]):
            if not r["structure"].strip():
                b.drop("empty structure field")
                continue
            b.add(
                r["mpid"].strip(),
                r["structure"],
                asr_breaking=num(r["asr_breaking"]),
                eps_electronic=num(r["eps_electronic"]),
                eps_total=num(r["eps_total"]),
                last_phdos_peak=num(r["last phdos peak"]),
            )
        return b.done()

    return _cached("petretto", files, build)


def gong_labels(data_dir: Path, which: str, task: str = "") -> tuple[dict[str, float], dict[str, str]]:
    """The paper authors' labels and their train/test membership: ({id: value}, {id: "train"|"test"})."""
    files = require(data_dir, f"gong_{which}", task)
    values: dict[str, float] = {}
    split: dict[str, str] = {}
    for path, part in zip(files, ("train", "test")):
        for r in _csv_rows(path):
            ident = r["cif_id"].strip()
            v = num(r["property"])
            if ident and v is not None and ident not in values:
                values[ident] = v
                split[ident] = part
    return values, split


def petousis_dielectric(data_dir: Path, task: str = "") -> Table:
    """Petousis et al. 2017 MP DFPT dielectric set (1056 insulators, CIFs inside `meta`)."""
    files = require(data_dir, "petousis", task)

    def build() -> Table:
        b = _Builder(["band_gap", "poly_electronic", "poly_total", "n"])
        for r in _csv_rows(files[0]):
            try:
                meta = parse_literal(r["meta"])
            except RowError:
                b.drop("unreadable meta")
                continue
            b.add(
                str(meta.get("material_id", "")).strip(),
                meta.get("structure"),
                band_gap=num(r["band_gap"]),
                poly_electronic=num(r["poly_electronic"]),
                poly_total=num(r["poly_total"]),
                n=num(r["n"]),
            )
        return b.done()

    return _cached("petousis", files, build)


def dejong_piezo(data_dir: Path, task: str = "") -> Table:
    """de Jong et al. 2015 MP piezoelectric set (941, eij_max in C/m^2)."""
    files = require(data_dir, "piezo", task)

    def build() -> Table:
        b = _Builder(["eij_max"])
        for r in _csv_rows(files[0]):
            try:
                meta = parse_literal(r["meta"])
            except RowError:
                b.drop("unreadable meta")
                continue
            b.add(str(meta.get("material_id", "")).strip(), meta.get("structure"), eij_max=num(r["eij_max"]))
        return b.done()

    return _cached("piezo", files, build)


def _min_eig(tensor: Any) -> float | None:
    try:
        c = np.asarray(parse_literal(tensor) if isinstance(tensor, str) else tensor, dtype=float)
        if c.shape != (6, 6) or not np.all(np.isfinite(c)):
            return None
        return float(np.linalg.eigvalsh((c + c.T) / 2).min())
    except (RowError, ValueError, TypeError, np.linalg.LinAlgError):
        return None


def dejong_elastic(data_dir: Path, task: str = "") -> Table:
    """de Jong et al. 2015 elastic tensors (1181; conventional cells for about a third)."""
    files = require(data_dir, "elastic2015", task)

    def build() -> Table:
        b = _Builder(["K_VRH", "G_VRH", "poisson_ratio", "min_eig"])
        for r in _csv_rows(files[0]):
            b.add(
                r["material_id"].strip(),
                r["structure"],
                K_VRH=num(r["K_VRH"]),
                G_VRH=num(r["G_VRH"]),
                poisson_ratio=num(r["poisson_ratio"]),
                min_eig=_min_eig(r["elastic_tensor"]),
            )
        return b.done()

    return _cached("elastic2015", files, build)


def trachote_elastic(data_dir: Path, task: str = "") -> Table:
    """MP elastic tensors, validation split of trachote/predict_elastic_tensor (1211, unfiltered)."""
    files = require(data_dir, "trachote", task)

    def build() -> Table:
        with open(files[0], encoding="utf-8") as fh:
            cols = json.load(fh)
        b = _Builder(["poisson_ratio", "K_Voigt", "G_Voigt", "min_eig"])
        for key in cols["material_id"]:
            b.add(
                str(cols["material_id"][key]),
                cols["cif"].get(key),
                poisson_ratio=num(cols["elasticity.poisson_ratio"].get(key)),
                K_Voigt=num(cols["elasticity.K_Voigt"].get(key)),
                G_Voigt=num(cols["elasticity.G_Voigt"].get(key)),
                min_eig=_min_eig(cols["elasticity.elastic_tensor"].get(key)),
            )
        return b.done()

    return _cached("trachote", files, build)


_MATCALC = {
    "matcalc_elastic": ("mp_id", ("bulk_modulus_vrh", "shear_modulus_vrh")),
    "matcalc_phonon": ("mp_id", ("heat_capacity",)),
    "matcalc_wbm": ("material_id", ("energy", "formation_energy_per_atom")),
}


def matcalc(data_dir: Path, which: str, task: str = "") -> Table:
    """matcalc benchmark_data JSON lists (structure dicts, or Python-repr strings of them)."""
    files = require(data_dir, which, task)
    id_key, cols = _MATCALC[which]

    def build() -> Table:
        with gzip.open(files[0], "rt", encoding="utf-8") as fh:
            records = json.load(fh)
        b = _Builder(cols)
        for rec in records:
            b.add(str(rec.get(id_key, "")).strip(), rec.get("structure"), **{c: num(rec.get(c)) for c in cols})
        return b.done()

    return _cached(which, files, build)


def flla_formation(data_dir: Path, task: str = "") -> Table:
    """Faber-Lindmaa-von Lilienfeld-Armiento 2015 MP formation energies (3938)."""
    files = require(data_dir, "flla", task)

    def build() -> Table:
        b = _Builder(["formation_energy_per_atom"])
        for r in _csv_rows(files[0]):
            b.add(r["material_id"].strip(), r["structure"], formation_energy_per_atom=num(r["formation_energy_per_atom"]))
        return b.done()

    return _cached("flla", files, build)


def mp_labels(data_dir: Path, task: str = "") -> dict[str, tuple[str, float | None, float | None]]:
    """mp_nostruct labels (no structures): {mp-id: (pretty_formula, band_gap eV, total_magnetization muB/cell)}."""
    files = require(data_dir, "mp_nostruct", task)
    out = {}
    for r in _csv_rows(files[0]):
        out[r["material_id"].strip()] = (r["pretty_formula"].strip(), num(r["band_gap"]), num(r["total_magnetization"]))
    return out


def mp_structures(data_dir: Path, task: str = "") -> Table:
    """One structure per MP id from every local MP structure source, best source first.

    The 2015 elastic set stores conventional cells for about a third of its
    entries; those are reduced to the primitive cell (spglib, symprec 0.01) so
    per-cell MP labels (total magnetization) refer to the same cell.
    """
    files = [p for s in MP_STRUCTURE_SOURCES for p in require(data_dir, s, task)]
    loaders: dict[str, Callable[[Path, str], Table]] = {
        "petretto": petretto_phonons,
        "petousis": petousis_dielectric,
        "piezo": dejong_piezo,
        "flla": flla_formation,
        "trachote": trachote_elastic,
        "elastic2015": dejong_elastic,
    }

    def build() -> Table:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        from .readers import structure_from_record

        b = Table(ids=[], structures=[], columns={"source": []})
        seen: set[str] = set()
        for src in MP_STRUCTURE_SOURCES:
            t = loaders[src](data_dir, task)
            for ident, rec in zip(t.ids, t.structures):
                if ident in seen:
                    continue
                seen.add(ident)
                if src == "elastic2015":
                    s = structure_from_record(rec)
                    try:
                        prim = SpacegroupAnalyzer(s, symprec=0.01).find_primitive()
                    except Exception:  # spglib failure: keep the cell as given
                        prim = None
                    if prim is not None and len(prim) < len(s):
                        rec = structure_to_record(prim)
                b.ids.append(ident)
                b.structures.append(rec)
                b.columns["source"].append(src)
        b.total = len(b.ids)
        return b

    return _cached("mp_structures", files, build)


def macefield_dielectric(data_dir: Path, task: str = "") -> Table:
    """MACE-Field MP DFPT (2025) valid+test frames: polycrystalline dielectric and piezo values.

    eps_electronic = mean diagonal of I + 4 pi alpha; eps_total adds the ionic
    tensor; n = sqrt(eps_electronic); piezo = max |e_ij| of the 3x6 tensor.
    The file has no material ids: ids are `<file stem>-<frame>`.
    """
    files = require(data_dir, "macefield", task)

    def build() -> Table:
        from ase.io import iread

        b = _Builder(["eps_electronic", "eps_total", "n", "piezo_max"])
        for path in files:
            stem = path.name.removesuffix(".xyz")
            for i, atoms in enumerate(iread(str(path), index=":", format="extxyz")):
                info = atoms.info
                try:
                    alpha = np.asarray(info["REF_polarisability"], dtype=float).reshape(3, 3)
                    ionic = np.asarray(info["REF_dielectric_ionic"], dtype=float).reshape(3, 3)
                    piezo = np.asarray(info["REF_piezoelectric"], dtype=float).reshape(3, 6)
                except (KeyError, ValueError):
                    b.drop("missing tensors")
                    continue
                eps_el = float(np.trace(np.eye(3) + 4 * np.pi * alpha) / 3)
                eps_tot = eps_el + float(np.trace(ionic) / 3)
                b.add(
                    f"{stem}-{i + 1:04d}",
                    atoms,
                    eps_electronic=eps_el,
                    eps_total=eps_tot,
                    n=math.sqrt(eps_el) if eps_el > 0 else None,
                    piezo_max=float(np.abs(piezo).max()),
                )
        return b.done()

    return _cached("macefield", files, build)

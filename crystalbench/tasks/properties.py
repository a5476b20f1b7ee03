"""The paper's 13 material properties (Gong et al. 2023, Table 1/2) as benchmark tasks.

Each task is built from the public files in the data directory (docs/data.md
lists source, units, licence and filters with counts). Where a property has
two sources the one closest to the paper keeps the plain name and the other
gets a suffix (`bulk_modulus_mp2025`, `phonon_cv_alexandria`, `e_form_flla`...).

* `phonon_u` / `phonon_cv` use the paper authors' own labels joined by mp-id
  with the Petretto et al. structures, and carry the authors' train/test split
  (`split_ids`, protocol "file") besides the default random 60/20/20 split.
* U, Cv and the magnetization also come per atom (paper Table 2).
* `log_kappa` has labels but no structures offline: it stays registered,
  `available()` is False, and loading raises DataUnavailableError saying which
  files to put where.

Sizes below are what the shipped files give after the documented filters; a
test re-derives them from the data.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..harness.dataset import Dataset
from ..harness.errors import DataUnavailableError
from ..harness.hookspecs import hookimpl
from ..harness.specs import SplitIds, TaskSpec
from . import sources as S
from .readers import (
    RowError,
    files_digest,
    no_gc,
    parse_structure_file,
    read_cache,
    structure_from_record,
    structure_problem,
    structure_to_record,
    write_cache,
)

__all__ = ["bench_tasks", "PROPERTY_TASKS", "KAPPA_DIR", "property_tasks"]

KAPPA_DIR = "gong2023_kappa"  # <data_dir>/gong2023_kappa/<cif_id>.cif: structures users add for log_kappa
KAPPA_DOI = "https://doi.org/10.6084/m9.figshare.19654224"

# licences, shortened from each folder's PROVENANCE.md
_LIC_GONG = (
    "labels: no licence file in the authors' repo (all rights reserved); "
    "structures: automatminer BSD (LBNL), Petretto et al. data CC BY 4.0"
)
_LIC_MATMINER = "matminer BSD-style (LBNL); Materials Project data CC BY 4.0"
_LIC_AUTOMATMINER = "automatminer BSD-style (LBNL); Materials Project data CC BY 4.0"
_LIC_MATCALC = "matcalc BSD-3-Clause; data CC BY 4.0 (Materials Project / Alexandria / WBM)"
_LIC_TRACHOTE = "MIT (trachote/predict_elastic_tensor); Materials Project data CC BY 4.0"
_LIC_MACE = "no licence file in the MACE-Field repo (all rights reserved); Materials Project data CC BY 4.0"

_SRC_PETRETTO = "Petretto et al., Sci. Data 5, 180065 (2018), via matminer phonon_dielectric_mp"
_SRC_GONG = "Gong et al. 2023 labels (shenggong1996/examining-GNN-for-crystal-periodicity) + " + _SRC_PETRETTO
_SRC_PETOUSIS = "Petousis et al., Sci. Data 4, 160134 (2017), matminer dielectric_constant"
_SRC_PIEZO = "de Jong et al., Sci. Data 2, 150053 (2015), matminer piezoelectric_tensor"
_SRC_ELASTIC = "de Jong et al., Sci. Data 2, 150009 (2015), matminer elastic_tensor_2015"
_SRC_MP_JOIN = (
    "Materials Project summary labels (automatminer mp_nostruct, 2018) joined by mp-id with local MP structures"
)
_SRC_MACE = "MP DFPT 2025 via MACE-Field (mdi-group/2025-04-mace-field), valid+test splits"


@dataclass
class _Rows:
    """A task's selected samples before they become a Dataset."""

    ids: list[str]
    values: list[float]
    structures: list[dict]
    filters: dict[str, int]
    total: int
    split: dict[str, str] | None = None  # id -> "train"/"test" (authors' split)


def _select(
    table: S.Table,
    values: np.ndarray,
    checks: Sequence[tuple[str, np.ndarray]] = (),
    missing: str = "label missing or not finite",
) -> _Rows:
    """Keep rows with a finite value that pass every check (mask True = drop); count each drop reason."""
    keep = np.isfinite(values)
    filters = dict(table.dropped)
    if (~keep).any():
        filters[missing] = int((~keep).sum())
    for reason, bad in checks:
        newly = keep & np.asarray(bad, dtype=bool)
        if newly.any():
            filters[reason] = filters.get(reason, 0) + int(newly.sum())
        keep &= ~newly
    idx = np.flatnonzero(keep)
    return _Rows(
        ids=[table.ids[i] for i in idx],
        values=[float(values[i]) for i in idx],
        structures=[table.structures[i] for i in idx],
        filters={k: v for k, v in filters.items() if v},
        total=table.total,
    )


def _nsites(table: S.Table) -> np.ndarray:
    return np.array([len(r["species"]) for r in table.structures], dtype=float)


# --------------------------------------------------------------------------------------------
# builders: (data_dir, task name) -> _Rows
# --------------------------------------------------------------------------------------------


def _gong_phonon(which: str, per_atom: bool) -> Callable[[Path, str], _Rows]:
    def build(dd: Path, task: str) -> _Rows:
        labels, split = S.gong_labels(dd, which, task)
        table = S.petretto_phonons(dd, task)
        where = {i: k for k, i in enumerate(table.ids)}
        rows = _Rows(ids=[], values=[], structures=[], filters={}, total=len(labels), split={})
        missing = 0
        for ident, y in labels.items():  # the authors' order: training file, then test file
            k = where.get(ident)
            if k is None:
                missing += 1
                continue
            rec = table.structures[k]
            rows.ids.append(ident)
            rows.values.append(y / len(rec["species"]) if per_atom else y)
            rows.structures.append(rec)
            rows.split[ident] = split[ident]  # type: ignore[index]
        if missing:
            rows.filters["mp-id without a structure in the Petretto file"] = missing
        return rows

    return build


def _elastic2015(column: str) -> Callable[[Path, str], _Rows]:
    def build(dd: Path, task: str) -> _Rows:
        t = S.dejong_elastic(dd, task)
        k, g, nu, eig = t.column("K_VRH"), t.column("G_VRH"), t.column("poisson_ratio"), t.column("min_eig")
        with np.errstate(invalid="ignore"):
            checks = [
                ("K_VRH <= 0", k <= 0),
                ("G_VRH <= 0", g <= 0),
                ("Poisson ratio outside (-1, 0.5)", (nu <= -1) | (nu >= 0.5) | ~np.isfinite(nu)),
                ("elastic tensor not positive definite", ~(eig > 0)),
            ]
        return _select(t, t.column(column), checks)

    return build


def _matcalc_elastic(column: str) -> Callable[[Path, str], _Rows]:
    def build(dd: Path, task: str) -> _Rows:
        t = S.matcalc(dd, "matcalc_elastic", task)
        k, g = t.column("bulk_modulus_vrh"), t.column("shear_modulus_vrh")
        with np.errstate(invalid="ignore"):
            return _select(t, t.column(column), [("K_VRH <= 0", k <= 0), ("G_VRH <= 0", g <= 0)])

    return build


def _trachote_poisson(dd: Path, task: str) -> _Rows:
    t = S.trachote_elastic(dd, task)
    k, g, nu, eig = t.column("K_Voigt"), t.column("G_Voigt"), t.column("poisson_ratio"), t.column("min_eig")
    with np.errstate(invalid="ignore"):
        checks = [
            ("K_Voigt <= 0", k <= 0),
            ("G_Voigt <= 0", g <= 0),
            ("Poisson ratio outside (-1, 0.5)", (nu <= -1) | (nu >= 0.5)),
            ("elastic tensor not positive definite", ~(eig > 0)),
        ]
    return _select(t, nu, checks)


def _column(
    source: Callable[[Path, str], S.Table], column: str, lo: float | None = None, hi: float | None = None
) -> Callable[[Path, str], _Rows]:
    def build(dd: Path, task: str) -> _Rows:
        t = source(dd, task)
        v = t.column(column)
        checks = []
        with np.errstate(invalid="ignore"):
            if lo is not None:
                checks.append((f"{column} < {lo:g}", v < lo))
            if hi is not None:
                checks.append((f"{column} > {hi:g}", v > hi))
        return _select(t, v, checks)

    return build


def _e_fin(dd: Path, task: str) -> _Rows:
    t = S.matcalc(dd, "matcalc_wbm", task)
    return _select(t, t.column("energy") / _nsites(t))


def _alexandria_cv(dd: Path, task: str) -> _Rows:
    t = S.matcalc(dd, "matcalc_phonon", task)
    return _select(t, t.column("heat_capacity"))


def _mp_join(kind: str) -> Callable[[Path, str], _Rows]:
    """band gap / |total magnetization| (per f.u. or per atom) from mp_nostruct joined with local structures."""

    def build(dd: Path, task: str) -> _Rows:
        from pymatgen.core import Composition

        labels = S.mp_labels(dd, task)
        t = S.mp_structures(dd, task)
        values = np.full(len(t.ids), np.nan)
        mismatch = np.zeros(len(t.ids), dtype=bool)
        no_label = np.zeros(len(t.ids), dtype=bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k, (ident, rec) in enumerate(zip(t.ids, t.structures)):
                lab = labels.get(ident)
                if lab is None:
                    no_label[k] = True
                    continue
                formula, gap, mag = lab
                counts: dict[str, int] = {}
                for sp in rec["species"]:
                    el = re.sub(r"[0-9.+-]+$", "", sp)
                    counts[el] = counts.get(el, 0) + 1
                comp = Composition(counts)
                try:
                    mismatch[k] = Composition(formula).reduced_formula != comp.reduced_formula
                except Exception:
                    mismatch[k] = True
                if kind == "band_gap":
                    values[k] = np.nan if gap is None else gap
                elif mag is not None:
                    m = abs(mag)
                    per = comp.get_reduced_composition_and_factor()[1] if kind == "mag_fu" else len(rec["species"])
                    values[k] = m / per
        checks = [("mp-id not in mp_nostruct", no_label), ("formula differs between structure and label", mismatch)]
        rows = _select(t, np.where(no_label, 0.0, values), checks)
        return rows

    return build


# --------------------------------------------------------------------------------------------
# specs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prop:
    name: str
    target: str
    unit: str
    extensive: bool
    sources: tuple[str, ...]  # keys of sources.FILES
    build: Callable[[Path, str], _Rows]
    size: int
    source: str
    license: str
    description: str
    paper_split: bool = False


_MP = ("mp_nostruct",) + S.MP_STRUCTURE_SOURCES
_MP2025_MATCALC = "Materials Project binaries (Jan 2025) via matcalc benchmark_data mp-binary-pbe-elasticity"
_ELASTIC_FILTERS = "Filters: K, G > 0, -1 < Poisson < 0.5, positive-definite elastic tensor."


def _p(name: str, target: str, unit: str, sources: tuple[str, ...], build: Callable[[Path, str], _Rows], size: int,
       source: str, license: str, description: str, *, extensive: bool = False, paper_split: bool = False) -> _Prop:
    return _Prop(name, target, unit, extensive, sources, build, size, source, license, description, paper_split)


PROPERTY_TASKS: tuple[_Prop, ...] = (
    # 2. final energy per atom, and a formation-energy alternative
    _p("e_fin", "final total energy per atom", "eV/atom", ("matcalc_wbm",), _e_fin, 972,
       "WBM (Wang et al. 2021) via matcalc benchmark_data wbm-random-pbe52-equilibrium-2025.1", _LIC_MATCALC,
       "Paper property 2: DFT total energy of the cell / number of sites."),
    _p("e_form_flla", "formation energy per atom", "eV/atom", ("flla",),
       _column(S.flla_formation, "formation_energy_per_atom"), 3938,
       "Faber et al., Int. J. Quantum Chem. 115, 1094 (2015), matminer flla_2015 (MP ~2015)", _LIC_MATMINER,
       "Alternative to e_fin: MP formation energy per atom."),
    # 3/4. phonon internal energy and heat capacity at 300 K: the authors' labels and split
    _p("phonon_u", "phonon internal energy at 300 K (per cell)", "J/mol (per mole of cells)", ("gong_u", "petretto"),
       _gong_phonon("u", per_atom=False), 1503, _SRC_GONG, _LIC_GONG,
       "Paper property 3 with the authors' labels; split_ids gives their train/test split (protocol 'file').",
       extensive=True, paper_split=True),
    _p("phonon_u_per_atom", "phonon internal energy at 300 K per atom", "J/mol (per mole of atoms)",
       ("gong_u", "petretto"), _gong_phonon("u", per_atom=True), 1503, _SRC_GONG, _LIC_GONG,
       "phonon_u divided by the number of sites (paper Table 2).", paper_split=True),
    _p("phonon_cv", "phonon heat capacity Cv at 300 K (per cell)", "J/(K mol) (per mole of cells)",
       ("gong_cv", "petretto"), _gong_phonon("cv", per_atom=False), 1503, _SRC_GONG, _LIC_GONG,
       "Paper property 4 with the authors' labels; split_ids gives their train/test split (protocol 'file').",
       extensive=True, paper_split=True),
    _p("phonon_cv_per_atom", "phonon heat capacity Cv at 300 K per atom", "J/(K mol) (per mole of atoms)",
       ("gong_cv", "petretto"), _gong_phonon("cv", per_atom=True), 1503, _SRC_GONG, _LIC_GONG,
       "phonon_cv divided by the number of sites (paper Table 2).", paper_split=True),
    _p("phonon_cv_alexandria", "phonon heat capacity Cv at 300 K (per cell)", "J/(K mol) (per mole of cells)",
       ("matcalc_phonon",), _alexandria_cv, 1170,
       "Alexandria PBE phonons of binaries via matcalc benchmark_data (2025)", _LIC_MATCALC,
       "Alternative Cv source (binaries). Per cell: every value is below the Dulong-Petit limit 3R x sites.",
       extensive=True),
    # 5/6/7. elasticity
    _p("bulk_modulus", "bulk modulus K_VRH", "GPa", ("elastic2015",), _elastic2015("K_VRH"), 1181,
       _SRC_ELASTIC, _LIC_MATMINER, "Paper property 5. " + _ELASTIC_FILTERS),
    _p("shear_modulus", "shear modulus G_VRH", "GPa", ("elastic2015",), _elastic2015("G_VRH"), 1181,
       _SRC_ELASTIC, _LIC_MATMINER, "Paper property 6. " + _ELASTIC_FILTERS),
    _p("poisson_ratio", "Poisson ratio", "dimensionless", ("elastic2015",), _elastic2015("poisson_ratio"), 1181,
       _SRC_ELASTIC, _LIC_MATMINER, "Paper property 7. " + _ELASTIC_FILTERS),
    _p("bulk_modulus_mp2025", "bulk modulus K_VRH", "GPa", ("matcalc_elastic",),
       _matcalc_elastic("bulk_modulus_vrh"), 3953, _MP2025_MATCALC, _LIC_MATCALC,
       "Alternative K source (binaries; K > 500 and G > 500 GPa removed upstream)."),
    _p("shear_modulus_mp2025", "shear modulus G_VRH", "GPa", ("matcalc_elastic",),
       _matcalc_elastic("shear_modulus_vrh"), 3953, _MP2025_MATCALC, _LIC_MATCALC,
       "Alternative G source (binaries; K > 500 and G > 500 GPa removed upstream)."),
    _p("poisson_ratio_trachote", "Poisson ratio", "dimensionless", ("trachote",), _trachote_poisson, 1130,
       "Materials Project elasticity, validation split of trachote/predict_elastic_tensor (2023)", _LIC_TRACHOTE,
       "Alternative Poisson-ratio source; unstable entries removed (K, G > 0, -1 < nu < 0.5, "
       "positive-definite tensor)."),
    # 8. band gap
    _p("band_gap", "PBE band gap", "eV", _MP, _mp_join("band_gap"), 7773, _SRC_MP_JOIN, _LIC_AUTOMATMINER,
       "Paper property 8: MP band gaps (metals included) for every mp-id with a local structure."),
    _p("band_gap_dielectric", "PBE band gap", "eV", ("petousis",), _column(S.petousis_dielectric, "band_gap"), 1056,
       _SRC_PETOUSIS, _LIC_MATMINER, "Alternative band-gap source: the DFPT dielectric set (insulators only)."),
    # 9. piezoelectric modulus
    _p("piezo_modulus", "maximum piezoelectric modulus max|e_ij|", "C/m^2", ("piezo",),
       _column(S.dejong_piezo, "eij_max"), 941, _SRC_PIEZO, _LIC_MATMINER,
       "Paper property 9: MP eij_max (direction-maximised longitudinal modulus)."),
    _p("piezo_modulus_mp2025", "max |e_ij| of the piezoelectric tensor", "C/m^2", ("macefield",),
       _column(S.macefield_dielectric, "piezo_max"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative piezo source: max |e_ij| of the 3x6 tensor (not direction-maximised); no material ids."),
    # 10/11/12. dielectric constants and refractive index
    _p("eps_electronic", "polycrystalline electronic dielectric constant", "dimensionless", ("petousis",),
       _column(S.petousis_dielectric, "poly_electronic"), 1056, _SRC_PETOUSIS, _LIC_MATMINER, "Paper property 10."),
    _p("eps_total", "polycrystalline total dielectric constant", "dimensionless", ("petousis",),
       _column(S.petousis_dielectric, "poly_total"), 1056, _SRC_PETOUSIS, _LIC_MATMINER, "Paper property 11."),
    _p("refractive_index", "refractive index n", "dimensionless", ("petousis",),
       _column(S.petousis_dielectric, "n"), 1056, _SRC_PETOUSIS, _LIC_MATMINER,
       "Paper property 12: n = sqrt(poly_electronic)."),
    _p("eps_electronic_petretto", "electronic dielectric constant (ABINIT DFPT)", "dimensionless", ("petretto",),
       _column(S.petretto_phonons, "eps_electronic", lo=1.0, hi=1000.0), 1510, _SRC_PETRETTO, _LIC_AUTOMATMINER,
       "Alternative eps_electronic source; values outside [1, 1000] (broken entries) removed."),
    _p("eps_total_petretto", "total dielectric constant (ABINIT DFPT)", "dimensionless", ("petretto",),
       _column(S.petretto_phonons, "eps_total", lo=1.0, hi=1000.0), 1374, _SRC_PETRETTO, _LIC_AUTOMATMINER,
       "Alternative eps_total source; empty values and values outside [1, 1000] removed."),
    _p("eps_electronic_mp2025", "polycrystalline electronic dielectric constant", "dimensionless", ("macefield",),
       _column(S.macefield_dielectric, "eps_electronic"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative source: mean diagonal of I + 4 pi alpha; no material ids."),
    _p("eps_total_mp2025", "polycrystalline total dielectric constant", "dimensionless", ("macefield",),
       _column(S.macefield_dielectric, "eps_total"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative source: eps_electronic_mp2025 + mean diagonal of the ionic tensor; no material ids."),
    _p("refractive_index_mp2025", "refractive index n", "dimensionless", ("macefield",),
       _column(S.macefield_dielectric, "n"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative source: sqrt(eps_electronic_mp2025)."),
    # 13. magnetization
    _p("magnetization", "|total magnetization| per formula unit", "muB/f.u.", _MP, _mp_join("mag_fu"), 7773,
       _SRC_MP_JOIN, _LIC_AUTOMATMINER,
       "Paper property 13: MP total magnetization (per cell) / formula units of the cell, absolute value.",
       extensive=True),
    _p("magnetization_per_atom", "|total magnetization| per atom", "muB/atom", _MP, _mp_join("mag_atom"), 7773,
       _SRC_MP_JOIN, _LIC_AUTOMATMINER, "magnetization per site instead of per formula unit (paper Table 2)."),
)

_DS_MEMO: "OrderedDict[tuple[str, str, str], tuple[Dataset, dict | None]]" = OrderedDict()
_DS_MEMO_SIZE = 6


def _files(prop: _Prop, dd: Path) -> list[Path]:
    return [dd / f for s in prop.sources for f in S.FILES[s]]


def _load_rows(prop: _Prop, dd: Path) -> tuple[Dataset, dict | None]:
    files = [S.require(dd, s, prop.name) for s in prop.sources]
    key = files_digest([p for group in files for p in group], prop.name)
    memo = _DS_MEMO.get((prop.name, str(dd), key))
    if memo is not None:
        _DS_MEMO.move_to_end((prop.name, str(dd), key))
        return memo
    cached = read_cache("tasks", prop.name, key)
    with warnings.catch_warnings(), no_gc():
        warnings.simplefilter("ignore")
        if cached is not None:
            rows = _Rows(**{k: cached[k] for k in _Rows.__dataclass_fields__})
        else:
            rows = prop.build(dd, prop.name)
            if rows.ids:
                write_cache("tasks", prop.name, key, dataclasses.asdict(rows))
        if not rows.ids:
            where = ", ".join(str(p) for g in files for p in g)
            raise DataUnavailableError(f"no usable entries for {prop.name} in {where}")
        structures = tuple(structure_from_record(r) for r in rows.structures)
    meta = {
        "source": prop.source,
        "unit": prop.unit,
        "license": prop.license,
        "entries_in_source": rows.total,
        "filters": rows.filters,
    }
    data = Dataset(
        ids=rows.ids, targets=np.asarray(rows.values, dtype=float), structures=structures, name=prop.name, meta=meta
    )
    out = (data, rows.split)
    _DS_MEMO[(prop.name, str(dd), key)] = out
    while len(_DS_MEMO) > _DS_MEMO_SIZE:
        _DS_MEMO.popitem(last=False)
    return out


def _spec(prop: _Prop) -> TaskSpec:
    def load(data_dir: Path) -> Dataset:
        return _load_rows(prop, Path(data_dir))[0]

    def split_ids(data_dir: Path) -> SplitIds:
        data, split = _load_rows(prop, Path(data_dir))
        assert split is not None
        return SplitIds(
            train=tuple(i for i in data.ids if split[i] == "train"),
            test=tuple(i for i in data.ids if split[i] == "test"),
        )

    return TaskSpec(
        name=prop.name,
        load=load,
        target=prop.target,
        unit=prop.unit,
        task_type="regression",
        extensive=prop.extensive,
        protocol="paper",
        fractions=(0.6, 0.2, 0.2),
        split_ids=split_ids if prop.paper_split else None,
        size=prop.size,
        available=lambda data_dir: all(p.is_file() for p in _files(prop, Path(data_dir))),
        files=lambda data_dir: _files(prop, Path(data_dir)),
        source=prop.source,
        license=prop.license,
        description=prop.description,
        group="properties",
    )


# --------------------------------------------------------------------------------------------
# log_kappa: labels offline, structures must be supplied by the user
# --------------------------------------------------------------------------------------------

_KAPPA_SUFFIXES = (".cif", ".vasp", ".poscar", ".json", "")


def _build_structures(records: list[dict]) -> tuple:
    with no_gc():
        return tuple(structure_from_record(r) for r in records)


def _kappa_structure_files(dd: Path) -> list[Path]:
    folder = dd / KAPPA_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != "README.md")


def _kappa_missing_message(dd: Path, n_labels: int | None, detail: str) -> str:
    label_files = f"{dd / 'gong2023_labels_only'}/kappa_{{training,test}}.csv"
    labels = f"the {n_labels} log_kappa labels are in {label_files}" if n_labels else f"{label_files} are missing too"
    return (
        f"{detail}: {labels}, but their crystal structures are not distributed with them "
        f"(cif_id is an ICSD/TEDesignLab collection code, not an MP id). To run log_kappa, put one CIF per compound "
        f"named <cif_id>.cif (e.g. 23465.cif) into {dd / KAPPA_DIR}/ - from the paper authors' data "
        f"({KAPPA_DOI}, property/kappa structures) or from ICSD/TEDesignLab - then run again"
    )


def _load_kappa(dd: Path) -> tuple[Dataset, dict[str, str]]:
    dd = Path(dd)
    label_files = [dd / f for f in S.FILES["gong_kappa"]]
    have_labels = all(p.is_file() for p in label_files)
    files = _kappa_structure_files(dd)
    if not have_labels:
        raise DataUnavailableError(_kappa_missing_message(dd, None, "label files not found"))
    labels, split = S.gong_labels(dd, "kappa", "log_kappa")
    if not files:
        raise DataUnavailableError(_kappa_missing_message(dd, len(labels), f"no structure files in {dd / KAPPA_DIR}"))
    by_name = {p.name: p for p in files}
    key = files_digest(label_files + files, "log_kappa")
    payload = read_cache("tables", "log_kappa", key)
    if payload is None:
        ids, values, recs = [], [], []
        filters: dict[str, int] = {}
        for ident, y in labels.items():
            path = next((by_name[ident + suf] for suf in _KAPPA_SUFFIXES if ident + suf in by_name), None)
            if path is None:
                filters["no structure file"] = filters.get("no structure file", 0) + 1
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = parse_structure_file(path)
                problem = structure_problem(s)
                if problem is not None:
                    raise problem
            except RowError as exc:
                filters[exc.kind] = filters.get(exc.kind, 0) + 1
                print(f"warning: log_kappa: {path.name}: {exc}", file=sys.stderr)
                continue
            ids.append(ident)
            values.append(y)
            recs.append(structure_to_record(s))
        payload = {"ids": ids, "values": values, "structures": recs, "filters": filters}
        write_cache("tables", "log_kappa", key, payload)
    if not payload["ids"]:
        why = f"none of the files in {dd / KAPPA_DIR} matches a label id"
        raise DataUnavailableError(_kappa_missing_message(dd, len(labels), why))
    if payload["filters"]:
        print(f"note: log_kappa: {len(payload['ids'])} of {len(labels)} labelled compounds have a usable structure "
              f"({', '.join(f'{n} {k}' for k, n in payload['filters'].items())})", file=sys.stderr)
    data = Dataset(
        ids=payload["ids"],
        targets=np.asarray(payload["values"], dtype=float),
        structures=_build_structures(payload["structures"]),
        name="log_kappa",
        meta={"source": "Gong et al. 2023 labels (TEDesignLab) + user-supplied structures", "unit": "log10(W/(m K))",
              "entries_in_source": len(labels), "filters": payload["filters"]},
    )
    return data, split


def _kappa_spec() -> TaskSpec:
    def split_ids(dd: Path) -> SplitIds:
        data, split = _load_kappa(dd)
        return SplitIds(
            train=tuple(i for i in data.ids if split[i] == "train"), test=tuple(i for i in data.ids if split[i] == "test")
        )

    return TaskSpec(
        name="log_kappa",
        load=lambda dd: _load_kappa(dd)[0],
        target="log10 of the lattice thermal conductivity",
        unit="log10(W/(m K))",
        extensive=False,
        protocol="paper",
        fractions=(0.6, 0.2, 0.2),
        split_ids=split_ids,
        size=2668,
        available=lambda dd: (
            all((Path(dd) / f).is_file() for f in S.FILES["gong_kappa"]) and bool(_kappa_structure_files(Path(dd)))
        ),
        files=lambda dd: [Path(dd) / f for f in S.FILES["gong_kappa"]] + _kappa_structure_files(Path(dd)),
        source="Gong et al. 2023 labels (TEDesignLab); structures not included - see docs/data.md",
        license="labels: no licence file in the authors' repo (all rights reserved); structures: ICSD/TEDesignLab",
        description=f"Paper property 1. Labels only offline: add <cif_id>.cif structures under <data_dir>/{KAPPA_DIR}/.",
        group="properties",
    )


def property_tasks() -> list[TaskSpec]:
    """All property TaskSpecs, log_kappa first (paper order), then the offline ones."""
    return [_kappa_spec()] + [_spec(p) for p in PROPERTY_TASKS]


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    return property_tasks()

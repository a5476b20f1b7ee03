"""The paper's 13 material properties (Gong et al. 2023, Table 1/2) as benchmark tasks.

Each task is built from the public files in the data directory (docs/data.md
lists source, units, licence and filters with counts). Where a property has
two sources the one closest to the paper keeps the plain name and the other
gets a suffix (`bulk_modulus_mp2025`, `phonon_cv_alexandria`, `e_form_flla`...).

A task is a selection from the parsed source tables of `sources` (parsed once,
cached in the run's cache directory): which rows, which label column, which
physical filters. The selection is cheap and memoised per process, so
`split_ids` never re-reads anything the load already read.

* `phonon_u` / `phonon_cv` use the paper authors' own labels joined by mp-id
  with the Petretto et al. structures in their primitive cells (the cell the
  per-cell labels refer to; version 2), and carry the authors' train/test split
  (`split_ids`, protocol "file") besides the default random 60/20/20 split.
* U, Cv and the magnetization also come per atom (paper Table 2).
* `log_kappa` has labels but no structures offline: it stays registered,
  `available()` is False, and loading raises DataUnavailableError saying which
  files to put where.

No property target is a function of the raw cell alone, so these tasks declare
no `leaks`.

Sizes below are what the shipped files give after the documented filters; a
test re-derives them from the data.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench import Dataset, DataUnavailableError, RunContext, SplitIds, TaskSpec, TaskType, hookimpl

from . import sources as S
from .readers import (
    RowError,
    cache_write,
    files_digest,
    no_gc,
    parse_structure_file,
    process_memo,
    structure_from_record,
    structure_problem,
    structure_to_record,
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
    structures: list[dict[str, Any]]
    filters: dict[str, int]
    total: int
    split: dict[str, str] | None = None  # id -> "train"/"test" (authors' split)


Builder = Callable[[RunContext], _Rows]


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
# builders: RunContext -> _Rows
# --------------------------------------------------------------------------------------------


def _gong_phonon(which: str, per_atom: bool) -> Builder:
    def build(ctx: RunContext) -> _Rows:
        labels, split = S.gong_labels(ctx, which)
        table = S.petretto_primitive(ctx)  # the labels are per primitive cell
        where = {i: k for k, i in enumerate(table.ids)}
        membership: dict[str, str] = {}
        rows = _Rows(ids=[], values=[], structures=[], filters={}, total=len(labels), split=membership)
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
            membership[ident] = split[ident]
        if missing:
            rows.filters["mp-id without a structure in the Petretto file"] = missing
        return rows

    return build


def _elastic2015(column: str) -> Builder:
    def build(ctx: RunContext) -> _Rows:
        t = S.table(ctx, "elastic2015")
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


def _matcalc_elastic(column: str) -> Builder:
    def build(ctx: RunContext) -> _Rows:
        t = S.table(ctx, "matcalc_elastic")
        k, g = t.column("bulk_modulus_vrh"), t.column("shear_modulus_vrh")
        with np.errstate(invalid="ignore"):
            return _select(t, t.column(column), [("K_VRH <= 0", k <= 0), ("G_VRH <= 0", g <= 0)])

    return build


def _trachote_poisson(ctx: RunContext) -> _Rows:
    t = S.table(ctx, "trachote")
    k, g, nu, eig = t.column("K_Voigt"), t.column("G_Voigt"), t.column("poisson_ratio"), t.column("min_eig")
    with np.errstate(invalid="ignore"):
        checks = [
            ("K_Voigt <= 0", k <= 0),
            ("G_Voigt <= 0", g <= 0),
            ("Poisson ratio outside (-1, 0.5)", (nu <= -1) | (nu >= 0.5)),
            ("elastic tensor not positive definite", ~(eig > 0)),
        ]
    return _select(t, nu, checks)


def _column(source: str, column: str, lo: float | None = None, hi: float | None = None) -> Builder:
    def build(ctx: RunContext) -> _Rows:
        t = S.table(ctx, source)
        v = t.column(column)
        checks = []
        with np.errstate(invalid="ignore"):
            if lo is not None:
                checks.append((f"{column} < {lo:g}", v < lo))
            if hi is not None:
                checks.append((f"{column} > {hi:g}", v > hi))
        return _select(t, v, checks)

    return build


def _e_fin(ctx: RunContext) -> _Rows:
    t = S.table(ctx, "matcalc_wbm")
    return _select(t, t.column("energy") / _nsites(t))


def _alexandria_cv(ctx: RunContext) -> _Rows:
    t = S.table(ctx, "matcalc_phonon")
    return _select(t, t.column("heat_capacity"))


def _element_counts(species: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sp in species:
        el = re.sub(r"[0-9.+-]+$", "", sp)
        counts[el] = counts.get(el, 0) + 1
    return counts


def _mag_divisor(kind: str, comp: Any, rec: dict[str, Any]) -> float:
    """MP's total magnetization is per (primitive) cell: divide by formula units, sites, or nothing."""
    if kind == "mag_fu":
        return float(comp.get_reduced_composition_and_factor()[1])
    return float(len(rec["species"])) if kind == "mag_atom" else 1.0


def _mp_join(kind: str) -> Builder:
    """band gap / |total magnetization| (per f.u., per atom or per cell) from mp_nostruct joined with local structures."""

    def build(ctx: RunContext) -> _Rows:
        from pymatgen.core import Composition

        labels = S.mp_labels(ctx)
        t = S.mp_structures(ctx)
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
                comp = Composition(_element_counts(rec["species"]))
                try:
                    mismatch[k] = Composition(formula).reduced_formula != comp.reduced_formula
                except Exception:
                    mismatch[k] = True
                if kind == "band_gap":
                    values[k] = np.nan if gap is None else gap
                elif mag is not None:
                    values[k] = abs(mag) / _mag_divisor(kind, comp, rec)
        checks = [("mp-id not in mp_nostruct", no_label), ("formula differs between structure and label", mismatch)]
        return _select(t, np.where(no_label, 0.0, values), checks)

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
    build: Builder
    size: int
    source: str
    license: str
    description: str
    paper_split: bool = False
    version: str = "1"  # TaskSpec.version: bump when the same files give other data


_MP = ("mp_nostruct",) + S.MP_STRUCTURE_SOURCES
_MP2025_MATCALC = "Materials Project binaries (Jan 2025) via matcalc benchmark_data mp-binary-pbe-elasticity"
_ELASTIC_FILTERS = "Filters: K, G > 0, -1 < Poisson < 0.5, positive-definite elastic tensor."


def _p(name: str, target: str, unit: str, sources: tuple[str, ...], build: Builder, size: int,
       source: str, license: str, description: str, *, extensive: bool = False, paper_split: bool = False,
       version: str = "1") -> _Prop:
    return _Prop(name, target, unit, extensive, sources, build, size, source, license, description, paper_split,
                 version)


PROPERTY_TASKS: tuple[_Prop, ...] = (
    # 2. final energy per atom, and a formation-energy alternative
    _p("e_fin", "final total energy per atom", "eV/atom", ("matcalc_wbm",), _e_fin, 972,
       "WBM (Wang et al. 2021) via matcalc benchmark_data wbm-random-pbe52-equilibrium-2025.1", _LIC_MATCALC,
       "Paper property 2: DFT total energy of the cell / number of sites."),
    _p("e_form_flla", "formation energy per atom", "eV/atom", ("flla",),
       _column("flla", "formation_energy_per_atom"), 3938,
       "Faber et al., Int. J. Quantum Chem. 115, 1094 (2015), matminer flla_2015 (MP ~2015)", _LIC_MATMINER,
       "Alternative to e_fin: MP formation energy per atom."),
    # 3/4. phonon internal energy and heat capacity at 300 K: the authors' labels and split
    _p("phonon_u", "phonon internal energy at 300 K (per cell)", "J/mol (per mole of cells)", ("gong_u", "petretto"),
       _gong_phonon("u", per_atom=False), 1503, _SRC_GONG, _LIC_GONG,
       "Paper property 3 with the authors' labels; split_ids gives their train/test split (protocol 'file').",
       extensive=True, paper_split=True, version="2"),
    _p("phonon_u_per_atom", "phonon internal energy at 300 K per atom", "J/mol (per mole of atoms)",
       ("gong_u", "petretto"), _gong_phonon("u", per_atom=True), 1503, _SRC_GONG, _LIC_GONG,
       "phonon_u divided by the number of sites (paper Table 2).", paper_split=True, version="2"),
    _p("phonon_cv", "phonon heat capacity Cv at 300 K (per cell)", "J/(K mol) (per mole of cells)",
       ("gong_cv", "petretto"), _gong_phonon("cv", per_atom=False), 1503, _SRC_GONG, _LIC_GONG,
       "Paper property 4 with the authors' labels; split_ids gives their train/test split (protocol 'file').",
       extensive=True, paper_split=True, version="2"),
    _p("phonon_cv_per_atom", "phonon heat capacity Cv at 300 K per atom", "J/(K mol) (per mole of atoms)",
       ("gong_cv", "petretto"), _gong_phonon("cv", per_atom=True), 1503, _SRC_GONG, _LIC_GONG,
       "phonon_cv divided by the number of sites (paper Table 2).", paper_split=True, version="2"),
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
    _p("band_gap_dielectric", "PBE band gap", "eV", ("petousis",), _column("petousis", "band_gap"), 1056,
       _SRC_PETOUSIS, _LIC_MATMINER, "Alternative band-gap source: the DFPT dielectric set (insulators only)."),
    # 9. piezoelectric modulus
    _p("piezo_modulus", "maximum piezoelectric modulus max|e_ij|", "C/m^2", ("piezo",),
       _column("piezo", "eij_max"), 941, _SRC_PIEZO, _LIC_MATMINER,
       "Paper property 9: MP eij_max (direction-maximised longitudinal modulus)."),
    _p("piezo_modulus_mp2025", "max |e_ij| of the piezoelectric tensor", "C/m^2", ("macefield",),
       _column("macefield", "piezo_max"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative piezo source: max |e_ij| of the 3x6 tensor (not direction-maximised); no material ids."),
    # 10/11/12. dielectric constants and refractive index
    _p("eps_electronic", "polycrystalline electronic dielectric constant", "dimensionless", ("petousis",),
       _column("petousis", "poly_electronic"), 1056, _SRC_PETOUSIS, _LIC_MATMINER, "Paper property 10."),
    _p("eps_total", "polycrystalline total dielectric constant", "dimensionless", ("petousis",),
       _column("petousis", "poly_total"), 1056, _SRC_PETOUSIS, _LIC_MATMINER, "Paper property 11."),
    _p("refractive_index", "refractive index n", "dimensionless", ("petousis",),
       _column("petousis", "n"), 1056, _SRC_PETOUSIS, _LIC_MATMINER,
       "Paper property 12: n = sqrt(poly_electronic)."),
    _p("eps_electronic_petretto", "electronic dielectric constant (ABINIT DFPT)", "dimensionless", ("petretto",),
       _column("petretto", "eps_electronic", lo=1.0, hi=1000.0), 1510, _SRC_PETRETTO, _LIC_AUTOMATMINER,
       "Alternative eps_electronic source; values outside [1, 1000] (broken entries) removed."),
    _p("eps_total_petretto", "total dielectric constant (ABINIT DFPT)", "dimensionless", ("petretto",),
       _column("petretto", "eps_total", lo=1.0, hi=1000.0), 1374, _SRC_PETRETTO, _LIC_AUTOMATMINER,
       "Alternative eps_total source; empty values and values outside [1, 1000] removed."),
    _p("eps_electronic_mp2025", "polycrystalline electronic dielectric constant", "dimensionless", ("macefield",),
       _column("macefield", "eps_electronic"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative source: mean diagonal of I + 4 pi alpha; no material ids."),
    _p("eps_total_mp2025", "polycrystalline total dielectric constant", "dimensionless", ("macefield",),
       _column("macefield", "eps_total"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative source: eps_electronic_mp2025 + mean diagonal of the ionic tensor; no material ids."),
    _p("refractive_index_mp2025", "refractive index n", "dimensionless", ("macefield",),
       _column("macefield", "n"), 1177, _SRC_MACE, _LIC_MACE,
       "Alternative source: sqrt(eps_electronic_mp2025)."),
    # 13. magnetization
    _p("magnetization", "|total magnetization| per formula unit", "muB/f.u.", _MP, _mp_join("mag_fu"), 7773,
       _SRC_MP_JOIN, _LIC_AUTOMATMINER,
       "Paper property 13: MP total magnetization (per cell) / formula units of the cell, absolute value.",
       extensive=True),
    _p("magnetization_per_atom", "|total magnetization| per atom", "muB/atom", _MP, _mp_join("mag_atom"), 7773,
       _SRC_MP_JOIN, _LIC_AUTOMATMINER, "magnetization per site instead of per formula unit (paper Table 2)."),
    _p("magnetization_per_cell", "|total magnetization| per cell", "muB/cell", _MP, _mp_join("mag_cell"), 7773,
       _SRC_MP_JOIN, _LIC_AUTOMATMINER,
       "MP total magnetization of the primitive cell, absolute value, not normalised (paper Table 2, sum pooling).",
       extensive=True),
)

# How each task's data relates to the paper's (TaskSpec.source_short, data_relation, paper_count,
# paper_data; docs/paper.md). The paper gives each property's coverage as a share of the ~140k
# materials of Materials Project V2021.03.22 (Table S1); its counts here are that share x 140,000,
# except where the authors' own files give the number (U, Cv: 1,512; log kappa: 2,668).
_MP_PAPER = "paper: MP V2021.03.22"
_SHARE = {"all": 140_000, "elastic": 13_300, "piezo": 3_360, "dielectric": 7_280, "phonon": 1_512}
_MP2018 = ("MP 2018 labels + structures", "subset", _SHARE["all"],
           f"{_MP_PAPER}, all ~140,000 materials; ours: the 7,773 mp-ids with a local structure (6%)")
_MAG_NOTE = "; ours take |M| (MP reports signed values, 114 below -0.01 muB)"
_GONG_PHONON = ("Gong 2023 labels + Petretto", "paper", _SHARE["phonon"],
                "the authors' labels and train/test split; 9 of their 1,512 mp-ids lack a Petretto structure")
_ELASTIC = ("MP elasticity 2015", "subset", _SHARE["elastic"],
            f"{_MP_PAPER}, ~13,300 elastic entries; ours: the 1,181 stable ones of the 2015 release (9%)")
_DIELECTRIC = ("MP DFPT 2017 (Petousis)", "subset", _SHARE["dielectric"],
               f"{_MP_PAPER}, ~7,280 dielectric entries; ours: the 1,056 of the 2017 release (15%)")
_MACE_EPS = ("MP DFPT 2025 (MACE-Field)", "substitute", _SHARE["dielectric"],
             "a 2025 MP DFPT set without material ids, standing in for the paper's ~7,280 entries")
_PETRETTO_EPS = ("Petretto ABINIT DFPT", "substitute", _SHARE["dielectric"],
                 "another code (ABINIT) and selection standing in for the paper's ~7,280 MP entries")
_MP2025_ELASTIC = ("MP 2025 binaries (matcalc)", "substitute", _SHARE["elastic"],
                   "MP binaries of 2025 standing in for the paper's ~13,300 elastic entries")
_PAPER: dict[str, tuple[str, str, int | None, str]] = {
    "log_kappa": ("Gong 2023 labels (TEDesignLab)", "paper", 2_668,
                  "the authors' 2,668 labels (Table S1: 0.020 x 140k); structures supplied by the user"),
    "e_fin": ("WBM (matcalc)", "substitute", _SHARE["all"],
              f"{_MP_PAPER}, final energy of all ~140,000 materials; ours: 972 WBM structures (another database)"),
    "e_form_flla": ("MP 2015 (flla)", "substitute", _SHARE["all"],
                    "formation energy of 3,938 MP structures of 2015, not the paper's final energy"),
    "phonon_u": _GONG_PHONON, "phonon_u_per_atom": _GONG_PHONON,
    "phonon_cv": _GONG_PHONON, "phonon_cv_per_atom": _GONG_PHONON,
    "phonon_cv_alexandria": ("Alexandria (matcalc)", "substitute", _SHARE["phonon"],
                             "Alexandria PBE phonons of binaries standing in for the paper's 1,512 MP phonon entries"),
    "bulk_modulus": _ELASTIC, "shear_modulus": _ELASTIC, "poisson_ratio": _ELASTIC,
    "bulk_modulus_mp2025": _MP2025_ELASTIC, "shear_modulus_mp2025": _MP2025_ELASTIC,
    "poisson_ratio_trachote": ("MP elasticity (trachote)", "subset", _SHARE["elastic"],
                               "1,130 MP elastic entries of a 2023 validation split (8% of the paper's ~13,300)"),
    "band_gap": _MP2018,
    "band_gap_dielectric": ("MP DFPT 2017 (Petousis)", "subset", _SHARE["all"],
                            "band gaps of the 1,056 insulators of the DFPT set, not all ~140,000 MP materials"),
    "piezo_modulus": ("MP piezo 2015", "subset", _SHARE["piezo"],
                      f"{_MP_PAPER}, ~3,360 piezoelectric entries; ours: the 941 of the 2015 release (28%)"),
    "piezo_modulus_mp2025": ("MP DFPT 2025 (MACE-Field)", "substitute", _SHARE["piezo"],
                             "max |e_ij| of a 2025 MP DFPT set standing in for the paper's ~3,360 entries"),
    "eps_electronic": _DIELECTRIC, "eps_total": _DIELECTRIC, "refractive_index": _DIELECTRIC,
    "eps_electronic_petretto": _PETRETTO_EPS, "eps_total_petretto": _PETRETTO_EPS,
    "eps_electronic_mp2025": _MACE_EPS, "eps_total_mp2025": _MACE_EPS, "refractive_index_mp2025": _MACE_EPS,
    "magnetization": (*_MP2018[:3], _MP2018[3] + _MAG_NOTE),
    "magnetization_per_atom": (*_MP2018[:3], _MP2018[3] + _MAG_NOTE),
    "magnetization_per_cell": (*_MP2018[:3], _MP2018[3] + _MAG_NOTE),
}


def _paper_fields(name: str) -> dict[str, Any]:
    """The TaskSpec fields saying how a task's data relates to the paper's (`_PAPER`)."""
    short, relation, count, note = _PAPER[name]
    return {"source_short": short, "data_relation": relation, "paper_count": count, "paper_data": note}


_ROWS = process_memo(8)


def _files(prop: _Prop, dd: Path) -> list[Path]:
    return [dd / f for s in prop.sources for f in S.FILES[s]]


def _build_dataset(prop: _Prop, ctx: RunContext) -> tuple[Dataset, dict[str, str] | None]:
    with warnings.catch_warnings(), no_gc():
        warnings.simplefilter("ignore")
        rows = prop.build(ctx)
        if not rows.ids:
            where = ", ".join(str(p) for p in _files(prop, ctx.data_dir))
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
        ids=tuple(rows.ids), targets=np.asarray(rows.values, dtype=float), structures=structures, name=prop.name,
        meta=meta,
    )
    return data, rows.split


def _load_rows(prop: _Prop, ctx: RunContext) -> tuple[Dataset, dict[str, str] | None]:
    """The task's Dataset and the authors' split, memoised per process by the raw files' content."""
    files = [p for s in prop.sources for p in S.require(ctx.data_dir, s)]
    key = (prop.name, files_digest(files, prop.name))
    return _ROWS.get(key, lambda: _build_dataset(prop, ctx))


def _spec(prop: _Prop) -> TaskSpec:
    def load(ctx: RunContext) -> Dataset:
        return _load_rows(prop, ctx)[0]

    def split_ids(ctx: RunContext) -> SplitIds:
        data, split = _load_rows(prop, ctx)
        if split is None:  # pragma: no cover - only paper_split tasks register split_ids
            raise DataUnavailableError(f"task {prop.name} has no published split")
        return SplitIds(
            train=tuple(i for i in data.ids if split[i] == "train"),
            test=tuple(i for i in data.ids if split[i] == "test"),
        )

    return TaskSpec(
        name=prop.name,
        load=load,
        target=prop.target,
        unit=prop.unit,
        task_type=TaskType.REGRESSION,
        extensive=prop.extensive,
        protocol="paper",
        fractions=(0.6, 0.2, 0.2),
        split_ids=split_ids if prop.paper_split else None,
        version=prop.version,
        size=prop.size,
        available=lambda ctx: all(p.is_file() for p in _files(prop, ctx.data_dir)),
        files=lambda ctx: _files(prop, ctx.data_dir),
        fetch=lambda ctx: S.fetch_steps(ctx, _files(prop, ctx.data_dir), prop.name),
        source=prop.source,
        license=prop.license,
        description=prop.description,
        group="properties",
        **_paper_fields(prop.name),
    )


# --------------------------------------------------------------------------------------------
# log_kappa: labels offline, structures must be supplied by the user
# --------------------------------------------------------------------------------------------

_KAPPA_SUFFIXES = (".cif", ".vasp", ".poscar", ".json", "")
_KAPPA = process_memo(2)


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


def _is_kappa_payload(d: Any) -> bool:
    if not isinstance(d, dict) or not all(k in d for k in ("ids", "values", "structures", "filters")):
        return False
    return isinstance(d["ids"], list) and len(d["values"]) == len(d["structures"]) == len(d["ids"])


def _parse_kappa(ctx: RunContext, labels: dict[str, float], files: list[Path]) -> dict[str, Any]:
    """Parse the user-supplied structure files of the labelled compounds (bad ones are warned about, skipped)."""
    by_name = {p.name: p for p in files}
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
            ctx.reporter.warning(f"log_kappa: {path.name}: {exc}")
            continue
        ids.append(ident)
        values.append(y)
        recs.append(structure_to_record(s))
    return {"ids": ids, "values": values, "structures": recs, "filters": filters}


def _kappa_payload(ctx: RunContext, labels: dict[str, float], label_files: list[Path], files: list[Path]) -> Any:
    """The parsed structures, from the tables Store of the run's cache, else parsed and stored."""
    store = S.table_store(ctx)
    key = files_digest(label_files + files, "log_kappa")
    hit = store.get_json(key, check=_is_kappa_payload)
    if hit is not None:
        return hit
    payload = _parse_kappa(ctx, labels, files)
    cache_write(lambda: store.put_json(key, payload), store.dir, ctx.reporter)
    return payload


def _load_kappa(ctx: RunContext) -> tuple[Dataset, dict[str, str]]:
    dd = ctx.data_dir
    label_files = [dd / f for f in S.FILES["gong_kappa"]]
    if not all(p.is_file() for p in label_files):
        raise DataUnavailableError(_kappa_missing_message(dd, None, "label files not found"))
    labels, split = S.gong_labels(ctx, "kappa")
    files = _kappa_structure_files(dd)
    if not files:
        raise DataUnavailableError(_kappa_missing_message(dd, len(labels), f"no structure files in {dd / KAPPA_DIR}"))

    def build() -> tuple[Dataset, dict[str, str]]:
        payload = _kappa_payload(ctx, labels, label_files, files)
        if not payload["ids"]:
            why = f"none of the files in {dd / KAPPA_DIR} matches a label id"
            raise DataUnavailableError(_kappa_missing_message(dd, len(labels), why))
        if payload["filters"]:
            ctx.reporter.note(
                f"log_kappa: {len(payload['ids'])} of {len(labels)} labelled compounds have a usable structure "
                f"({', '.join(f'{n} {k}' for k, n in payload['filters'].items())})"
            )
        with no_gc():
            structures = tuple(structure_from_record(r) for r in payload["structures"])
        data = Dataset(
            ids=tuple(payload["ids"]),
            targets=np.asarray(payload["values"], dtype=float),
            structures=structures,
            name="log_kappa",
            meta={"source": "Gong et al. 2023 labels (TEDesignLab) + user-supplied structures",
                  "unit": "log10(W/(m K))", "entries_in_source": len(labels), "filters": payload["filters"]},
        )
        return data, split

    return _KAPPA.get(("log_kappa", files_digest(label_files + files)), build)


def _kappa_files(ctx: RunContext) -> list[Path]:
    return [ctx.data_dir / f for f in S.FILES["gong_kappa"]] + _kappa_structure_files(ctx.data_dir)


def _kappa_available(ctx: RunContext) -> bool:
    labels = all((ctx.data_dir / f).is_file() for f in S.FILES["gong_kappa"])
    return labels and bool(_kappa_structure_files(ctx.data_dir))


def _kappa_split_ids(ctx: RunContext) -> SplitIds:
    data, split = _load_kappa(ctx)
    return SplitIds(
        train=tuple(i for i in data.ids if split[i] == "train"), test=tuple(i for i in data.ids if split[i] == "test")
    )


def _kappa_spec() -> TaskSpec:
    return TaskSpec(
        name="log_kappa",
        load=lambda ctx: _load_kappa(ctx)[0],
        target="log10 of the lattice thermal conductivity",
        unit="log10(W/(m K))",
        extensive=False,
        protocol="paper",
        fractions=(0.6, 0.2, 0.2),
        split_ids=_kappa_split_ids,
        size=2668,
        available=_kappa_available,
        files=_kappa_files,
        fetch=lambda ctx: S.fetch_steps(ctx, _kappa_files(ctx), "log_kappa"),
        source="Gong et al. 2023 labels (TEDesignLab); structures not included - see docs/data.md",
        license="labels: no licence file in the authors' repo (all rights reserved); structures: ICSD/TEDesignLab",
        description=f"Paper property 1. Labels only offline: add <cif_id>.cif structures under <data_dir>/{KAPPA_DIR}/.",
        group="properties",
        **_paper_fields("log_kappa"),
    )


def property_tasks() -> list[TaskSpec]:
    """All property TaskSpecs, log_kappa first (paper order), then the offline ones."""
    return [_kappa_spec()] + [_spec(p) for p in PROPERTY_TASKS]


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    """Listing needs no data: every TaskSpec reads `ctx.data_dir` only when called."""
    return property_tasks()

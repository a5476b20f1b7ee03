"""Descriptor learnability (Gong et al. 2023): can a model predict a human-designed descriptor from the structure?

One task per Table 3 descriptor, named ``desc_`` + its abbreviation in lower
case (``desc_a``, ``desc_vpa``, ``desc_mean_cn_voronoi``, ``desc_crys_sys``,
``desc_space_group_num``...). The structures are every unique mp-id structure
in the data directory (`crystalbench.tasks.collection`, selected from the same
parsed tables as the property tasks; 10,673 with the shared data), or any
collection named by ``CRYSTALBENCH_LEARNABILITY_STRUCTURES`` (`settings`).
Targets are computed with the cached `gong29` / `spacegroup` engine, so the
first load of any desc_* task featurizes the whole collection once (about
3 min on a busy 2-core machine, in ``ctx.jobs`` processes (``--jobs``), with
progress shown when the run asks for it; resumable) and every later load of
any desc_* task reads the cache (2 s in a fresh process). Structures whose
target is undefined (NaN) are dropped and counted in ``meta``.

Cells (task version 3): the paper's natoms, a, b, c, alpha, beta, gamma and
struct_comp_cell describe the *primitive* cell (Niggli-reduced), but some
stored structures are conventional cells or supercells (most from the 2015
elastic set, which stores conventional cells). Every structure is therefore
reduced by the rule the phonon tasks use (`sources.petretto_primitive`):
spglib's primitive cell at symprec 0.1 A, tried only where the species counts
share a divisor above 1. Models see that cell, and the labels are its
descriptors. With the shared data 222 of the 10,673 structures change
(`primitive_cells`; docs/data.md); the reduction is cached next to the
collection (~30 s once).

``desc_crys_sys`` (7 classes, `CRYS_SYS_LABELS`) and ``desc_space_group_num``
(230 classes "1".."230"; targets = number - 1) are classification; the rest
regression. Protocol ``paper``: random 80/10/10.

Leakage: a descriptor model (``rf``) must not see its own target, nor columns
from which the target follows by an exact identity. `EXCLUDE` lists them:

- struct_comp_cell = struct_comp_atom * natoms, so each of the three targets
  drops the partner that closes the identity;
- the cell volume V is a function of (a, b, c, alpha, beta, gamma) (symmetric
  in the angles, so sorting them does not hide it) and vpa = V / natoms, so
  natoms drops vpa, vpa drops natoms (and struct_comp_cell, which gives natoms
  back), and each lattice parameter drops vpa (else it follows from V and the
  other five);
- range_neighb_dist_var = max - min, so max and min drop range, range drops both;
- crys_sys is a function of space_group_num, so desc_space_group_num drops it;
- the Niggli lattice (a, b, c, alpha, beta, gamma) is the cell's metric,
  whose symmetry is the lattice system, and that fixes the crystal system but
  for trigonal/hexagonal: desc_crys_sys drops all six, as the chain tasks drop
  their lattice columns (space_group_num is not in gong29; were it attached,
  it would give crys_sys outright, and it is dropped too).

Leakage through model inputs (`TaskSpec.leaks`, the tags of `ModelSpec.inputs`):
a model that reads one of these besides the structure is handed the target or
a one-step function of it, and its result is flagged:

- a, b, c, alpha, beta, gamma: "lattice" (the raw cell parameters give the
  Niggli-reduced ones);
- vpa, density, packing_frac: "lattice", "volume", "density" (the volume
  follows from the cell; with the composition every structure carries, volume
  and density give one another, and vpa and packing_frac are the volume over
  the atom count or the atoms' own volume);
- natoms: "natoms";
- crys_sys: "lattice" (the cell's metric symmetry is the lattice system, which
  fixes the crystal system but for trigonal/hexagonal);
- the rest (local geometry, complexity, space group) follow from no tag alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import Dataset, DataUnavailableError, RunContext, TaskSpec, TaskType, compute_descriptors, hookimpl
from crystalbench.descriptors.gong29 import CRYS_SYS_LABELS, FEATURES, GONG29, SPACE_GROUP, SPACEGROUP

from . import settings
from .collection import collection_available, collection_fetch, collection_files, load_collection
from .readers import cache_write, files_digest, process_memo

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = [
    "TARGETS", "EXCLUDE", "LEAKS", "UNITS", "COLLECTION_SIZE", "task_name", "load_learnability", "bench_tasks",
    "primitive_cells",
]

# 2: the collection comes from the shared source tables (CIF where it was POSCAR);
# 3: structures reduced to their primitive cells (the labels' cell); desc_crys_sys withholds the Niggli lattice
TASK_VERSION = "3"
PRIMITIVE_SYMPREC = 0.1  # A, as the phonon tasks (Materials Project's tolerance)
PRIMITIVE_CACHE_VERSION = "1"
_PRIMITIVE_ARRAYS = ("index", "ids", "natoms", "lattice", "frac", "species")
TARGETS: tuple[str, ...] = FEATURES + (SPACE_GROUP,)
COLLECTION_SIZE = 10673  # unique mp-ids in the shared data (measured; see collection.SOURCES)
UNDEFINED = {"packing_frac": 11}  # structures without that target in the shared data (Ne, Ar, Kr, Xe: no atomic radius)
SPACE_GROUP_LABELS = tuple(str(i) for i in range(1, 231))
CLASSES: dict[str, tuple[str, ...]] = {"crys_sys": CRYS_SYS_LABELS, SPACE_GROUP: SPACE_GROUP_LABELS}
EXTENSIVE = {"natoms", "struct_comp_cell"}

_LATTICE = ("a", "b", "c", "alpha", "beta", "gamma")
EXCLUDE: dict[str, tuple[str, ...]] = {
    "natoms": ("struct_comp_cell", "vpa"),
    "struct_comp_cell": ("struct_comp_atom",),
    "struct_comp_atom": ("struct_comp_cell",),
    "vpa": ("natoms", "struct_comp_cell"),
    **{p: ("vpa",) for p in _LATTICE},
    "max_neighb_dist_var": ("range_neighb_dist_var",),
    "min_neighb_dist_var": ("range_neighb_dist_var",),
    "range_neighb_dist_var": ("max_neighb_dist_var", "min_neighb_dist_var"),
    SPACE_GROUP: ("crys_sys",),
    "crys_sys": (*_LATTICE, SPACE_GROUP),
}
_VOLUMETRIC = ("lattice", "volume", "density")
LEAKS: dict[str, tuple[str, ...]] = {
    **{p: ("lattice",) for p in _LATTICE},
    "vpa": _VOLUMETRIC,
    "density": _VOLUMETRIC,
    "packing_frac": _VOLUMETRIC,
    "natoms": ("natoms",),
    "crys_sys": ("lattice",),
}

UNITS: dict[str, str] = {
    "mean_avg_bond_len": "A",
    "std_avg_bond_len": "A",
    "mean_avg_bond_ang": "rad",
    "std_avg_bond_ang": "rad",
    "density": "g/cm^3",
    "vpa": "A^3/atom",
    "struct_comp_atom": "bits/atom",
    "struct_comp_cell": "bits/cell",
    "natoms": "atoms",
    **{p: "A" for p in ("a", "b", "c")},
    **{p: "deg" for p in ("alpha", "beta", "gamma")},
}

_MEANING: dict[str, str] = {
    "MAD_in_rela_bond_len": "mean absolute deviation of the sites' relative mean bond lengths",
    "max_rela_bond_len": "largest relative mean bond length of a site",
    "min_rela_bond_len": "smallest relative mean bond length of a site",
    "max_neighb_dist_var": "largest neighbour-distance variation of a site",
    "min_neighb_dist_var": "smallest neighbour-distance variation of a site",
    "range_neighb_dist_var": "range of the sites' neighbour-distance variation",
    "mean_neighb_dist_var": "mean neighbour-distance variation",
    "dev_neighb_dist_var": "mean absolute deviation of the neighbour-distance variation",
    "MAD_in_rela_atom_vol": "mean absolute deviation of relative Voronoi cell volumes",
    "mean_avg_bond_len": "mean over sites of the average Voronoi bond length",
    "std_avg_bond_len": "std over sites of the average Voronoi bond length",
    "mean_avg_bond_ang": "mean over sites of the average bond angle",
    "std_avg_bond_ang": "std over sites of the average bond angle",
    "mean_CN_Voronoi": "mean Voronoi coordination number",
    "std_CN_Voronoi": "std of the Voronoi coordination number",
    "density": "mass density",
    "vpa": "volume per atom",
    "packing_frac": "atomic packing fraction",
    "struct_comp_atom": "structural complexity per atom",
    "struct_comp_cell": "structural complexity per cell",
    "natoms": "number of atoms in the cell",
    "a": "longest Niggli cell length",
    "b": "middle Niggli cell length",
    "c": "shortest Niggli cell length",
    "alpha": "largest Niggli cell angle",
    "beta": "middle Niggli cell angle",
    "gamma": "smallest Niggli cell angle",
    "crys_sys": "crystal system (7 classes)",
    SPACE_GROUP: "space group (230 classes)",
}


def task_name(descriptor: str) -> str:
    """``desc_`` + the Table 3 abbreviation in lower case."""
    return "desc_" + descriptor.lower()


_TARGET_TABLES = process_memo(2)


def _compute_targets(ctx: RunContext, limit: int | None) -> tuple[Dataset, np.ndarray]:
    coll = load_collection(ctx, limit=limit)
    structures = primitive_cells(ctx, coll.ids, coll.structures, limit)
    n_reduced = sum(1 for old, new in zip(coll.structures, structures) if new is not old)
    base = Dataset(ids=coll.ids, targets=np.zeros(len(coll.ids)), structures=structures, name="learnability",
                   meta={"reduced_to_primitive": n_reduced})
    table = np.hstack([compute_descriptors(GONG29, base, ctx), compute_descriptors(SPACEGROUP, base, ctx)])
    return base, table


def _may_be_supercell(structure: Structure) -> bool:
    """A cell whose species counts share no divisor above 1 is primitive already (a supercell multiplies every count)."""
    counts = Counter(site.species_string for site in structure).values()
    return math.gcd(*counts) > 1 if counts else False


def _primitive(structure: Structure) -> Structure | None:
    """spglib's primitive cell at `PRIMITIVE_SYMPREC` when it is smaller, else None."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        prim = SpacegroupAnalyzer(structure, symprec=PRIMITIVE_SYMPREC).find_primitive()
    except Exception:  # spglib failure: keep the cell as given
        return None
    return prim if prim is not None and len(prim) < len(structure) else None


def primitive_cells(ctx: RunContext, ids: Sequence[str], structures: Sequence[Structure], limit: int | None) -> tuple:
    """`structures` with every reducible cell replaced by its primitive cell (the phonon tasks' rule).

    Only the reduced cells are cached (NPZ, no pickle), keyed like the target
    table; the others are the collection's own objects.
    """
    store = ctx.cache("learnability_primitive", PRIMITIVE_CACHE_VERSION)
    key = files_digest(collection_files(ctx), "primitive", PRIMITIVE_SYMPREC, limit, settings.learnability_structures(ctx))
    cached = store.get_npz(key, required=_PRIMITIVE_ARRAYS)
    reduced = _reduced_from_arrays(cached, ids) if cached is not None else None
    if reduced is None:
        candidates = [k for k, s in enumerate(structures) if _may_be_supercell(s)]
        found = ((k, _primitive(structures[k])) for k in ctx.iter_progress(candidates, "primitive cells", "struct"))
        reduced = {k: prim for k, prim in found if prim is not None}
        cache_write(lambda: store.put_npz(key, _reduced_to_arrays(reduced, ids)), store.dir, ctx.reporter)
    return tuple(reduced.get(k, s) for k, s in enumerate(structures))


def _reduced_to_arrays(reduced: dict[int, Structure], ids: Sequence[str]) -> dict[str, np.ndarray]:
    order = sorted(reduced)
    cells = [reduced[k] for k in order]
    return {
        "index": np.array(order, dtype=np.int64),
        "ids": np.array([ids[k] for k in order], dtype=str),
        "natoms": np.array([len(s) for s in cells], dtype=np.int64),
        "lattice": np.array([s.lattice.matrix for s in cells], dtype=float).reshape(-1, 3, 3),
        "frac": np.concatenate([s.frac_coords for s in cells]).reshape(-1, 3) if cells else np.zeros((0, 3)),
        "species": np.array([site.species_string for s in cells for site in s], dtype=str),
    }


def _reduced_from_arrays(z: dict[str, np.ndarray], ids: Sequence[str]) -> dict[int, Structure] | None:
    """The cached reduced cells, or None when the arrays do not fit together or name other ids (rebuilt then)."""
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as _Structure

    index, natoms = z["index"].astype(int), z["natoms"].astype(int)
    if len(index) != len(natoms) or len(z["lattice"]) != len(index) or len(z["ids"]) != len(index):
        return None
    if len(z["frac"]) != natoms.sum() or len(z["species"]) != natoms.sum():
        return None
    if any(k < 0 or k >= len(ids) or ids[k] != i for k, i in zip(index.tolist(), z["ids"].tolist())):
        return None
    out, start = {}, 0
    for k, n, lat in zip(index.tolist(), natoms.tolist(), z["lattice"]):
        sl = slice(start, start + n)
        start += n
        out[k] = _Structure(Lattice(lat), z["species"][sl].tolist(), z["frac"][sl])
    return out


def _targets(ctx: RunContext, limit: int | None) -> tuple[Dataset, np.ndarray]:
    """The structure collection and its (n, 29) target table, computed once per process."""
    key = files_digest(collection_files(ctx), "targets", TASK_VERSION, limit, settings.learnability_structures(ctx))
    return _TARGET_TABLES.get(key, lambda: _compute_targets(ctx, limit))


def load_learnability(name: str, ctx: RunContext, *, limit: int | None = None) -> Dataset:
    """The Dataset of one desc_* task; `limit` keeps only the first structures of the collection (quick checks)."""
    by_name = {task_name(t): t for t in TARGETS}
    if name not in by_name:
        raise KeyError(f"unknown learnability task {name!r}")
    target = by_name[name]
    base, table = _targets(ctx, limit)
    y = table[:, TARGETS.index(target)]
    keep = np.flatnonzero(np.isfinite(y))
    if len(keep) == 0:
        raise DataUnavailableError(f"task {name!r}: the target is undefined for every structure")
    data = base.subset(keep)
    classes = CLASSES.get(target)
    targets = y[keep]
    if target == SPACE_GROUP:
        targets = targets - 1  # class index of space group number
    return replace(
        data,
        targets=targets.astype(int) if classes else targets,
        classes=classes,
        name=name,
        meta={"descriptor": target, "dropped_undefined": int(len(y) - len(keep)), "limit": limit,
              "reduced_to_primitive": base.meta.get("reduced_to_primitive", 0)},
    )


def _spec(target: str) -> TaskSpec:
    name = task_name(target)
    excluded = (target, *EXCLUDE.get(target, ()))
    classes = CLASSES.get(target)

    def load(ctx: RunContext) -> Dataset:
        return load_learnability(name, ctx)

    return TaskSpec(
        name=name,
        load=load,
        target=target,
        unit=UNITS.get(target, ""),
        task_type=TaskType.CLASSIFICATION if classes else TaskType.REGRESSION,
        extensive=target in EXTENSIVE,
        protocol="paper",
        fractions=(0.8, 0.1, 0.1),
        exclude_features=tuple(excluded),
        leaks=LEAKS.get(target, ()),
        version=TASK_VERSION,
        size=COLLECTION_SIZE - UNDEFINED.get(target, 0),
        available=collection_available,
        files=collection_files,
        fetch=collection_fetch,
        source="Materials Project structures in the shared data (matminer, matcalc, trachote datasets); "
        "target = gong29/spacegroup descriptor",
        license="CC BY 4.0 (Materials Project data)",
        description=f"Learn {target}: {_MEANING[target]}; descriptor models do not see {', '.join(excluded)}",
        group="descriptors",
        **_paper_fields(target),
    )


def _paper_fields(target: str) -> dict[str, Any]:
    """How the collection relates to the paper's: Fig. 2a/b used 47,862 MP structures thinned towards low
    symmetry, Fig. 2c (crystal system) all of MP; ours are 10,673 MP structures, biased to high symmetry."""
    ours = f"ours: the {COLLECTION_SIZE:,} MP structures of the shared data, biased to high symmetry"
    if target == SPACE_GROUP:
        return {"source_short": "MP structures (shared data)", "data_relation": "", "paper_count": None,
                "paper_data": "not learned in the paper (Fig. 2 has 28 descriptors, space group excluded)"}
    if target == "crys_sys":
        return {"source_short": "MP structures (shared data)", "data_relation": "subset", "paper_count": 139_367,
                "paper_data": f"paper (Fig. 2c): all of MP, 139,367 in the authors' files; {ours}"}
    return {"source_short": "MP structures (shared data)", "data_relation": "substitute", "paper_count": 47_862,
            "paper_data": f"paper: 47,862 MP structures thinned towards low symmetry; {ours}"}


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    """Listing needs no data: the collection is read when a desc_* task is loaded."""
    return [_spec(t) for t in TARGETS]

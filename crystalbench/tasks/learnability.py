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
- crys_sys is a function of space_group_num, so desc_space_group_num drops it.

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

from dataclasses import replace

import numpy as np

from crystalbench.descriptors.gong29 import CRYS_SYS_LABELS, FEATURES, GONG29, SPACE_GROUP, SPACEGROUP
from crystalbench.harness.context import RunContext
from crystalbench.harness.dataset import Dataset
from crystalbench.harness.errors import DataUnavailableError
from crystalbench.harness.featurize import compute_descriptors
from crystalbench.harness.hookspecs import hookimpl
from crystalbench.harness.specs import TaskSpec

from . import settings
from .collection import collection_available, collection_files, load_collection
from .readers import files_digest, process_memo

__all__ = ["TARGETS", "EXCLUDE", "LEAKS", "UNITS", "COLLECTION_SIZE", "task_name", "load_learnability", "bench_tasks"]

TASK_VERSION = "2"  # 2: the collection comes from the shared source tables (CIF where it was POSCAR)
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
    base = Dataset(ids=coll.ids, targets=np.zeros(len(coll.ids)), structures=coll.structures, name="learnability")
    table = np.hstack([compute_descriptors(GONG29, base, ctx), compute_descriptors(SPACEGROUP, base, ctx)])
    return base, table


def _targets(ctx: RunContext, limit: int | None) -> tuple[Dataset, np.ndarray]:
    """The structure collection and its (n, 29) target table, computed once per process."""
    key = files_digest(collection_files(ctx), "targets", limit, settings.learnability_structures(ctx))
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
        meta={"descriptor": target, "dropped_undefined": int(len(y) - len(keep)), "limit": limit},
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
        task_type="classification" if classes else "regression",
        extensive=target in EXTENSIVE,
        protocol="paper",
        fractions=(0.8, 0.1, 0.1),
        exclude_features=tuple(excluded),
        leaks=LEAKS.get(target, ()),
        version=TASK_VERSION,
        size=COLLECTION_SIZE - UNDEFINED.get(target, 0),
        available=collection_available,
        files=collection_files,
        source="Materials Project structures in the shared data (matminer, matcalc, trachote datasets); "
        "target = gong29/spacegroup descriptor",
        license="CC BY 4.0 (Materials Project data)",
        description=f"Learn {target}: {_MEANING[target]}; descriptor models do not see {', '.join(excluded)}",
        group="descriptors",
    )


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    """Listing needs no data: the collection is read when a desc_* task is loaded."""
    return [_spec(t) for t in TARGETS]

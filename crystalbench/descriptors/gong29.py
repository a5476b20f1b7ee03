"""The paper's descriptor set (Gong et al. 2023, Table 3), computed fast with matminer's exact definitions.

Two descriptor sets:

- ``gong29``: every Table 3 descriptor except ``space_group_num`` -- the set the
  paper hybridizes with GNNs and feeds the random forest (a 230-way label makes
  a poor numeric input). 28 columns, see `FEATURES` and docs/descriptors.md.
- ``spacegroup``: ``space_group_num`` alone (spglib, symprec 0.01, as matminer's
  GlobalSymmetryFeatures), so learnability tasks can use it as a target and
  users can add it explicitly with a second descriptor set.

Why not call matminer directly: stock matminer re-runs a Voronoi tessellation
for every site of every site featurizer (AverageBondLength, AverageBondAngle,
CoordinationNumber) plus one for StructuralHeterogeneity, ~0.7 s for a 4-atom
cell. Here one tessellation of the periodic cell (all sites at once, the same
construction as pymatgen's ``VoronoiNN.get_all_voronoi_polyhedra``: every
image within 13 A) is shared by all Voronoi-based descriptors, and the face
geometry (solid angle, area, volume) is computed vectorised with pymatgen's
formulas. Values equal stock matminer (tests/test_gong29.py, relative 1e-6).

Definitions (matminer 0.10 defaults; "neighbours" = Voronoi faces with a
positive weight, as VoronoiNN(tol=0)):

- StructuralHeterogeneity (face-area weights): MAD_in_rela_bond_len,
  max_rela_bond_len, min_rela_bond_len, {max,min,range,mean,dev}_neighb_dist_var,
  MAD_in_rela_atom_vol.
- SiteStatsFingerprint(mean, std_dev) of AverageBondLength(VoronoiNN()) (solid-
  angle weights): mean/std_avg_bond_len (std over atoms of each atom's weighted
  mean bond length, population std); of AverageBondAngle(VoronoiNN()):
  mean/std_avg_bond_ang; of CoordinationNumber(VoronoiNN()): mean/std_CN_Voronoi.
- DensityFeatures: density (g/cm^3), vpa (A^3/atom), packing_frac.
- StructuralComplexity (symprec 0.1): struct_comp_atom, struct_comp_cell (bits).
- natoms and the Niggli-reduced cell with lengths sorted a >= b >= c and angles
  sorted alpha >= beta >= gamma (degrees).
- crys_sys from GlobalSymmetryFeatures (symprec 0.01), encoded as matminer's
  ``crystal_system_int - 1`` -- the encoding of the paper authors' own code --
  i.e. an index into `CRYS_SYS_LABELS` (0 cubic ... 6 triclinic, decreasing
  symmetry). The learnability task uses the same integer as its class index.

Where stock StructuralHeterogeneity gives up (a Voronoi cell still open within
13 A, e.g. slabs or chains with vacuum), the cutoff is doubled up to the cell
diagonal as pymatgen's per-site VoronoiNN does, so all Voronoi descriptors are
defined from the same closed cells. A group of descriptors that still cannot
be computed is NaN; the harness reports which structures.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import DescriptorSpec, hookimpl

if TYPE_CHECKING:
    from pymatgen.core import Structure
    from scipy.spatial import Voronoi

__all__ = [
    "FEATURES",
    "CRYS_SYS_LABELS",
    "SPACE_GROUP",
    "VERSION",
    "describe",
    "featurize",
    "featurize_spacegroup",
    "voronoi_faces",
    "bench_descriptors",
]

VERSION = "1"
VORONOI_CUTOFF = 13.0  # A, pymatgen VoronoiNN default
SPACE_GROUP = "space_group_num"
CRYS_SYS_LABELS = ("cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")

_HETEROGENEITY = (
    "MAD_in_rela_bond_len",
    "max_rela_bond_len",
    "min_rela_bond_len",
    "max_neighb_dist_var",
    "min_neighb_dist_var",
    "range_neighb_dist_var",
    "mean_neighb_dist_var",
    "dev_neighb_dist_var",
    "MAD_in_rela_atom_vol",
)
_SITE_STATS = (
    "mean_avg_bond_len",
    "std_avg_bond_len",
    "mean_avg_bond_ang",
    "std_avg_bond_ang",
    "mean_CN_Voronoi",
    "std_CN_Voronoi",
)
_DENSITY = ("density", "vpa", "packing_frac")
_COMPLEXITY = ("struct_comp_atom", "struct_comp_cell")
_CELL = ("natoms", "a", "b", "c", "alpha", "beta", "gamma")
FEATURES: tuple[str, ...] = _HETEROGENEITY + _SITE_STATS + _DENSITY + _COMPLEXITY + _CELL + ("crys_sys",)


class VoronoiFaces:
    """Faces of one site's Voronoi cell: neighbour vectors and face geometry (pymatgen's formulas)."""

    __slots__ = ("vectors", "solid_angle", "area", "volume")

    def __init__(self, vectors: np.ndarray, solid_angle: np.ndarray, area: np.ndarray, volume: np.ndarray) -> None:
        self.vectors = vectors  # (k, 3) from the site to each neighbour image, A
        self.solid_angle = solid_angle
        self.area = area
        self.volume = volume


_SYSTEM_LIMITS = ((3, "triclinic"), (16, "monoclinic"), (75, "orthorhombic"), (143, "tetragonal"), (168, "trigonal"))


def _crystal_system(number: int) -> str:
    """pymatgen's SpacegroupAnalyzer.get_crystal_system from the space group number."""
    for limit, name in _SYSTEM_LIMITS + ((195, "hexagonal"),):
        if number < limit:
            return name
    return "cubic"


def voronoi_faces(structure: Structure, cutoff: float = VORONOI_CUTOFF) -> list[VoronoiFaces]:
    """Voronoi faces of every site from one tessellation of the sites and their periodic images.

    Gives the cells of pymatgen's ``VoronoiNN(cutoff=13)`` with far fewer
    points: the tessellation starts from a small radius r around the sites
    and grows it until every cell is provably exact (all its vertices within
    r/2 of its site, so no farther image can cut it) or r reaches `cutoff`,
    which is where VoronoiNN stops too. A cell still open at `cutoff` doubles
    the radius up to the cell diagonal, like ``VoronoiNN.get_voronoi_polyhedra``.
    Face geometry uses pymatgen's solid-angle/volume/area formulas, vectorised.
    Raises RuntimeError when a cell stays open up to the cell diagonal.
    """
    from pymatgen.optimization.neighbors import find_points_in_spheres
    from scipy.spatial import Voronoi

    lattice = np.ascontiguousarray(structure.lattice.matrix, dtype=float)
    frac = np.mod(np.asarray(structure.frac_coords, dtype=float), 1.0)
    roots = np.ascontiguousarray(frac @ lattice)
    n = len(roots)
    corners = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=float) @ lattice
    max_cutoff = float(np.linalg.norm(corners, axis=1).max()) + 0.01
    wigner_seitz = (3 * abs(np.linalg.det(lattice)) / (4 * math.pi * n)) ** (1 / 3)
    radius = min(float(cutoff), 4.0 * wigner_seitz)
    while True:
        _, idx, images, _ = find_points_in_spheres(
            roots, roots, r=radius, pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice, tol=1e-8
        )
        keys = np.unique(np.c_[idx, images].astype(np.int64), axis=0)
        outer = keys[np.abs(keys[:, 1:]).max(axis=1) > 0]
        points = np.concatenate([roots, roots[outer[:, 0]] + outer[:, 1:] @ lattice])
        try:
            cells, reach = _faces_of_roots(Voronoi(points), points, n)
        except RuntimeError:  # an open cell
            if radius < cutoff:
                radius = min(float(cutoff), radius * 1.5)
                continue
            if radius >= max_cutoff:
                raise RuntimeError("Voronoi cell stays open up to the cell diagonal") from None
            radius = min(radius * 2, max_cutoff + 0.001)
            continue
        if radius < cutoff and 2 * reach > radius:
            radius = min(float(cutoff), 2 * reach * 1.05)
            continue
        return cells


def _faces_of_roots(vor: Voronoi, points: np.ndarray, n: int) -> tuple[list[VoronoiFaces], float]:
    """Faces of the first `n` points' cells and the largest vertex distance from its site."""
    ridge_points = vor.ridge_points
    verts = vor.vertices
    face_site: list[int] = []
    face_other: list[int] = []
    tri_face: list[int] = []
    tri: list[tuple[int, int, int]] = []
    reach = 0.0
    for r in np.flatnonzero((ridge_points < n).any(axis=1)):
        vind = vor.ridge_vertices[r]
        p, q = int(ridge_points[r, 0]), int(ridge_points[r, 1])
        for site, other in ((p, q), (q, p)):
            if site >= n:
                continue
            if -1 in vind:
                raise RuntimeError("open Voronoi cell")
            f = len(face_site)
            face_site.append(site)
            face_other.append(other)
            for i in range(1, len(vind) - 1):
                tri_face.append(f)
                tri.append((vind[0], vind[i], vind[i + 1]))
            reach = max(reach, float(np.linalg.norm(verts[vind] - points[site], axis=1).max()))
    face_site_a = np.asarray(face_site, dtype=np.int64)
    face_other_a = np.asarray(face_other, dtype=np.int64)
    nf = len(face_site_a)
    solid: np.ndarray = np.zeros(nf)
    volume: np.ndarray = np.zeros(nf)
    if tri:
        tri_a = np.asarray(tri, dtype=np.int64)
        tf = np.asarray(tri_face, dtype=np.int64)
        center = points[face_site_a[tf]]
        v0, v1, v2 = verts[tri_a[:, 0]], verts[tri_a[:, 1]], verts[tri_a[:, 2]]
        # solid angle of each fan triangle (pymatgen.core.local_env.solid_angle, incl. its quirks)
        d0, d1, d2 = v0 - center, v1 - center, v2 - center
        r0, r1, r2 = (np.linalg.norm(d, axis=1) for d in (d0, d1, d2))
        tp = np.abs(np.einsum("ij,ij->i", d0, np.cross(d1, d2)))
        dot = lambda x, y: np.einsum("ij,ij->i", x, y)  # noqa: E731
        de = r0 * r1 * r2 + r2 * dot(d0, d1) + r1 * dot(d0, d2) + r0 * dot(d1, d2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ang = np.where(de == 0, np.where(tp > 0, 0.5 * math.pi, -0.5 * math.pi), np.arctan(tp / de))
        ang = np.where(ang > 0, ang, ang + math.pi) * 2
        # volume of the tetrahedron (centre, fan triangle) (pymatgen vol_tetra)
        tet = np.abs(np.einsum("ij,ij->i", center - v2, np.cross(v0 - v2, v1 - v2))) / 6
        solid = np.bincount(tf, weights=ang, minlength=nf)
        volume = np.bincount(tf, weights=tet, minlength=nf)
    vectors = points[face_other_a] - points[face_site_a]
    face_dist = np.linalg.norm(vectors, axis=1) / 2
    area = 3 * volume / face_dist
    order = np.argsort(face_site_a, kind="stable")
    bounds = np.searchsorted(face_site_a[order], np.arange(n + 1))
    out = []
    for s in range(n):
        sel = order[bounds[s] : bounds[s + 1]]
        if len(sel) == 0:
            raise ValueError("no Voronoi neighbours found for a site")
        out.append(VoronoiFaces(vectors[sel], solid[sel], area[sel], volume[sel]))
    return out, reach


def _avg_dev(x: np.ndarray, w: np.ndarray | None = None) -> float:
    mean = np.average(x, weights=w)
    return float(np.average(np.abs(x - mean), weights=w))


def _heterogeneity(cells: list[VoronoiFaces]) -> list[float]:
    """matminer StructuralHeterogeneity (VoronoiNN weight='area')."""
    mean_len, var = np.empty(len(cells)), np.empty(len(cells))
    volumes = np.empty(len(cells))
    for i, c in enumerate(cells):
        keep = c.area > 0
        w = c.area[keep] / c.area.max()
        lengths = np.linalg.norm(c.vectors[keep], axis=1)  # = 2 * face_dist
        mean_len[i] = np.average(lengths, weights=w)
        var[i] = _avg_dev(lengths, w) / mean_len[i]
        volumes[i] = c.volume[keep].sum()
    rel = mean_len / mean_len.mean()
    return [
        _avg_dev(rel),
        float(rel.max()),
        float(rel.min()),
        float(var.max()),
        float(var.min()),
        float(var.max() - var.min()),
        float(var.mean()),
        _avg_dev(var),
        _avg_dev(volumes) / float(np.mean(volumes)),
    ]


def _site_stats(cells: list[VoronoiFaces]) -> list[float]:
    """SiteStatsFingerprint(mean, std_dev) of AverageBondLength, AverageBondAngle, CoordinationNumber (VoronoiNN())."""
    n = len(cells)
    bond_len, bond_ang, cn = np.empty(n), np.empty(n), np.empty(n)
    for i, c in enumerate(cells):
        keep = c.solid_angle > 0
        vec = c.vectors[keep]
        w = c.solid_angle[keep] / c.solid_angle.max()
        dist = np.linalg.norm(vec, axis=1)
        bond_len[i] = np.average(dist, weights=w)
        cn[i] = len(vec)
        cos = (vec @ vec.T) / np.outer(dist, dist)
        with np.errstate(invalid="ignore"):
            ang = np.arccos(cos)
            ang = np.where(np.isnan(ang), np.arccos(np.round(cos, 5)), ang)
        np.fill_diagonal(ang, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a lone neighbour has no angle: NaN, as matminer
            bond_ang[i] = np.mean(np.nanmin(ang, axis=1))

    def std(x: np.ndarray) -> float:  # matminer PropertyStats.std_dev: 0 for a single value
        return 0.0 if len(x) == 1 else float(np.std(x))

    return [
        float(bond_len.mean()),
        std(bond_len),
        float(bond_ang.mean()),
        std(bond_ang),
        float(cn.mean()),
        std(cn),
    ]


def _density(structure: Structure) -> list[float]:
    """matminer DensityFeatures; packing_frac is NaN when a site is disordered or an element has no
    atomic radius (noble gases), where matminer raises for all three."""
    volume = structure.volume
    try:
        if not structure.is_ordered:
            raise ValueError("disordered structure")
        r3 = 0.0
        for site in structure:
            radius = site.specie.atomic_radius
            if radius is None:
                raise ValueError(f"no atomic radius for {site.specie}")
            r3 += float(radius) ** 3
        packing = 4 * math.pi * r3 / (3 * volume)
    except (TypeError, ValueError):
        packing = math.nan
    return [float(structure.density), volume / len(structure), packing]


def _symmetry(structure: Structure) -> tuple[list[float], int]:
    """StructuralComplexity (symprec 0.1) and crys_sys/space group (symprec 0.01), via pymatgen's spglib wrapper."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    loose = SpacegroupAnalyzer(structure, symprec=0.1).get_symmetry_dataset()
    _, counts = np.unique(np.asarray(loose.equivalent_atoms), return_counts=True)
    p = counts / len(structure)
    per_atom = float(-(p * np.log2(p)).sum())
    number = int(SpacegroupAnalyzer(structure).get_space_group_number())
    return [per_atom, per_atom * len(structure)], number


def _cell(structure: Structure) -> list[float]:
    lat = structure.lattice.get_niggli_reduced_lattice()
    return [float(len(structure)), *sorted(lat.abc, reverse=True), *sorted(lat.angles, reverse=True)]


def describe(structure: Structure) -> dict[str, float]:
    """All Table 3 descriptors of one structure (`FEATURES` + space_group_num), NaN where undefined."""
    out: dict[str, float] = dict.fromkeys(FEATURES + (SPACE_GROUP,), math.nan)
    groups: list[tuple[tuple[str, ...], Any]] = [
        (_DENSITY, lambda: _density(structure)),
        (_CELL, lambda: _cell(structure)),
    ]
    try:
        cells = voronoi_faces(structure)
    except Exception:  # no closed Voronoi cells: the Voronoi groups stay NaN
        pass
    else:
        groups += [(_HETEROGENEITY, lambda: _heterogeneity(cells)), (_SITE_STATS, lambda: _site_stats(cells))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spglib/pymatgen chatter; failures become NaN and are reported by id
        for names, fn in groups:
            try:
                out.update(zip(names, fn()))
            except Exception:
                pass
        try:
            complexity, number = _symmetry(structure)
            out.update(zip(_COMPLEXITY, complexity))
            out[SPACE_GROUP] = float(number)
            out["crys_sys"] = float(CRYS_SYS_LABELS.index(_crystal_system(number)))
        except Exception:
            pass
    return out


def featurize(structures: Sequence[Any]) -> np.ndarray:
    """`gong29` rows, shape (n, 28), NaN where undefined."""
    rows = [describe(s) for s in structures]
    return np.array([[r[k] for k in FEATURES] for r in rows], dtype=float).reshape(len(rows), len(FEATURES))


def featurize_spacegroup(structures: Sequence[Any]) -> np.ndarray:
    """Space group numbers (spglib, symprec 0.01, matminer GlobalSymmetryFeatures), shape (n, 1)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    out = np.full((len(structures), 1), np.nan)
    for i, s in enumerate(structures):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[i, 0] = SpacegroupAnalyzer(s).get_space_group_number()
        except Exception:
            pass
    return out


GONG29 = DescriptorSpec(
    name="gong29",
    feature_names=FEATURES,
    featurize=featurize,
    version=VERSION,
    description=(
        "Gong et al. 2023 Table 3 descriptors without space_group_num (the hybridization set): Voronoi "
        "bond/volume statistics, density, complexity, Niggli cell, crystal system; matminer definitions, one "
        "shared tessellation per structure"
    ),
    categorical=("crys_sys",),
)

SPACEGROUP = DescriptorSpec(
    name="spacegroup",
    feature_names=(SPACE_GROUP,),
    featurize=featurize_spacegroup,
    version=VERSION,
    description="International space group number (spglib, symprec 0.01), as matminer GlobalSymmetryFeatures",
    categorical=(SPACE_GROUP,),
)


@hookimpl
def bench_descriptors() -> list[DescriptorSpec]:
    return [GONG29, SPACEGROUP]

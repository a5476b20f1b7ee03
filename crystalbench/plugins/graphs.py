"""Crystal graphs for CGCNN-style models, built once and cached on disk.

A graph joins every atom to its (at most) `max_neighbors` nearest atoms within
`radius`, periodic images included (an atom can neighbour its own image), as in
Xie & Grossman 2018 with the paper's defaults (8 A, 12 neighbours). Edges are
directed centre -> neighbour and stored as plain arrays; node features
(the CGCNN 92-dim atom embedding) and the Gaussian distance expansion are
applied by the model, so the cache holds only atomic numbers and distances
and one cache serves every featurization.

Atoms with fewer than `max_neighbors` atoms within `radius` (1D chains in a
100 A vacuum box, molecules, surfaces) simply get fewer edges. The original
CGCNN code instead pads such atoms with fake neighbours (atom 0 at radius +
1 A); for chains that would inject ~10 spurious edges per atom, so we do not.

Cache: one NPZ per structure under ``<cache>/graphs/<params tag>/``, keyed by
`structure_key`; written atomically so concurrent workers never see half a
file. A small in-process memo avoids re-reading files across folds and seeds.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from ..harness.dataset import structure_key
from ..harness.errors import BadInputError, CrystalbenchError
from ..harness.paths import cache_dir as default_cache_dir

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "GRAPH_VERSION",
    "GraphParams",
    "CrystalGraph",
    "GraphBatch",
    "structure_graph",
    "build_graphs",
    "cgcnn_atom_features",
    "check_elements",
    "gaussian_centers",
    "collate_graphs",
]

GRAPH_VERSION = "1"
_MEMO_MAX_EDGES = 5_000_000  # ~50 MB of memoized graphs per process


@dataclass(frozen=True)
class GraphParams:
    """Graph construction settings; part of the cache key."""

    radius: float = 8.0
    max_neighbors: int = 12

    def tag(self) -> str:
        return f"r{self.radius:g}_n{self.max_neighbors}_v{GRAPH_VERSION}"


@dataclass(frozen=True, eq=False)
class CrystalGraph:
    """One crystal: atomic numbers and directed edges centre -> neighbour with distances (A).

    Edges are grouped by centre and sorted by distance within a centre.
    """

    numbers: np.ndarray  # (n_atoms,) int16
    centers: np.ndarray  # (n_edges,) int32
    neighbors: np.ndarray  # (n_edges,) int32
    distances: np.ndarray  # (n_edges,) float32

    @property
    def n_atoms(self) -> int:
        return int(len(self.numbers))

    @property
    def n_edges(self) -> int:
        return int(len(self.centers))

    def neighbor_counts(self) -> np.ndarray:
        return np.bincount(self.centers, minlength=self.n_atoms)


def structure_graph(structure: Any, params: GraphParams = GraphParams()) -> CrystalGraph:
    """Build the graph of one pymatgen Structure (vectorized neighbour search, no per-site loop).

    Ties in distance are broken by neighbour index and image offset, so the
    kept 12 neighbours are deterministic in symmetric crystals whose 12th and
    13th neighbours are equidistant.
    """
    if not structure.is_ordered:
        raise BadInputError(
            f"structure {structure.composition.reduced_formula} has partial occupancies; "
            "crystal graphs need ordered structures (one element per site)"
        )
    numbers = np.asarray(structure.atomic_numbers, dtype=np.int16)
    n = len(numbers)
    center, nbr, images, dist = structure.get_neighbor_list(params.radius, exclude_self=True)
    center = np.asarray(center, dtype=np.int64)
    nbr = np.asarray(nbr, dtype=np.int64)
    dist = np.asarray(dist, dtype=float)
    images = np.asarray(images, dtype=np.int64).reshape(-1, 3)
    keep = dist <= params.radius  # pymatgen admits radius + numerical_tol
    center, nbr, dist, images = center[keep], nbr[keep], dist[keep], images[keep]
    # primary key centre, then distance (rounded so float noise does not reorder ties)
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], nbr, np.round(dist, 6), center))
    center, nbr, dist = center[order], nbr[order], dist[order]
    counts = np.bincount(center, minlength=n)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(center)) - starts[center]
    keep = rank < params.max_neighbors
    return CrystalGraph(
        numbers=numbers,
        centers=center[keep].astype(np.int32),
        neighbors=nbr[keep].astype(np.int32),
        distances=dist[keep].astype(np.float32),
    )


_MEMO: dict[tuple[str, str], CrystalGraph] = {}
_MEMO_EDGES = 0


def _memo_put(key: tuple[str, str], g: CrystalGraph) -> None:
    global _MEMO_EDGES
    if _MEMO_EDGES + g.n_edges > _MEMO_MAX_EDGES:
        _MEMO.clear()
        _MEMO_EDGES = 0
    _MEMO[key] = g
    _MEMO_EDGES += g.n_edges


def _cache_file(root: Path, params: GraphParams, key: str) -> Path:
    return root / "graphs" / params.tag() / key[:2] / f"{key}.npz"


def _load(path: Path) -> CrystalGraph | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return CrystalGraph(
                numbers=z["numbers"], centers=z["centers"], neighbors=z["neighbors"], distances=z["distances"]
            )
    except (OSError, KeyError, ValueError):  # missing or corrupt: rebuild
        return None


def _save(path: Path, g: CrystalGraph) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, numbers=g.numbers, centers=g.centers, neighbors=g.neighbors, distances=g.distances)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build_graphs(
    structures: Sequence[Any],
    *,
    params: GraphParams = GraphParams(),
    keys: Sequence[str] | None = None,
    cache_dir: Path | str | None = None,
    progress: bool = False,
    desc: str = "crystal graphs",
) -> list[CrystalGraph]:
    """Graphs for `structures` (in order), from the memo, the disk cache or built fresh.

    keys: precomputed `structure_key`s (e.g. `Dataset.structure_keys`); computed when None.
    cache_dir: cache root, default `crystalbench.harness.paths.cache_dir()`.
    Graph building shows a tqdm bar over the structures not yet cached.
    """
    if keys is None:
        keys = [structure_key(s) for s in structures]
    if len(keys) != len(structures):
        raise BadInputError(f"{len(structures)} structures but {len(keys)} keys")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tag = params.tag()
    out: list[CrystalGraph | None] = [None] * len(structures)
    todo: list[int] = []
    for i, key in enumerate(keys):
        g = _MEMO.get((tag, key))
        if g is None:
            g = _load(_cache_file(root, params, key))
            if g is not None:
                _memo_put((tag, key), g)
        if g is None:
            todo.append(i)
        out[i] = g
    if todo:
        from tqdm.auto import tqdm

        built: dict[str, CrystalGraph] = {}
        for i in tqdm(todo, desc=desc, disable=not progress, leave=False, unit="structure"):
            key = keys[i]
            if key not in built:
                g = structure_graph(structures[i], params)
                _save(_cache_file(root, params, key), g)
                _memo_put((tag, key), g)
                built[key] = g
            out[i] = built[key]
    return out  # type: ignore[return-value]


@lru_cache(maxsize=1)
def cgcnn_atom_features() -> np.ndarray:
    """The CGCNN 92-dim atom embedding as a (101, 92) float32 table indexed by Z (row 0 unused).

    Read at runtime from the installed aviary-models package (its
    ``embeddings/element/cgcnn92.json``), which ships Xie & Grossman's atom_init
    vectors keyed by element symbol (Z = 1..100). Rows of elements missing from
    the file are NaN so that using them fails loudly (see `check_elements`).
    """
    try:
        from importlib import resources

        text = (resources.files("aviary") / "embeddings" / "element" / "cgcnn92.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise CrystalbenchError(
            "the CGCNN 92-dim atom features come from the aviary-models package "
            f"(embeddings/element/cgcnn92.json) and could not be read ({type(exc).__name__}: {exc}); "
            "install it with `pip install 'crystalbench[roost]'` or `pip install aviary-models`"
        ) from None
    from pymatgen.core.periodic_table import Element

    table = json.loads(text)
    feats = np.full((101, 92), np.nan, dtype=np.float32)
    feats[0] = 0.0
    for sym, vec in table.items():
        z = Element(sym).Z
        if z <= 100:
            feats[z] = np.asarray(vec, dtype=np.float32)
    return feats


def check_elements(graphs: Sequence[CrystalGraph]) -> None:
    """Raise a clear error if any atom has no CGCNN embedding (Z > 100 or missing)."""
    table = cgcnn_atom_features()
    zs = np.unique(np.concatenate([g.numbers for g in graphs])) if graphs else np.zeros(0, int)
    bad = [int(z) for z in zs if z < 1 or z > 100 or not np.all(np.isfinite(table[z]))]
    if bad:
        from pymatgen.core.periodic_table import Element

        names = [Element.from_Z(z).symbol if 1 <= z <= 118 else str(z) for z in bad]
        raise BadInputError(f"no CGCNN atom features for element(s) {', '.join(names)} (the embedding covers Z = 1..100)")


def gaussian_centers(radius: float = 8.0, step: float = 0.2) -> np.ndarray:
    """Centres 0, step, ..., radius of the Gaussian distance expansion (41 for 8 A / 0.2 A)."""
    return np.linspace(0.0, radius, int(round(radius / step)) + 1)


class GraphBatch(NamedTuple):
    """A mini-batch of graphs as flat tensors (atoms and edges of all crystals concatenated)."""

    numbers: "torch.Tensor"  # (N,) long, atomic numbers
    centers: "torch.Tensor"  # (E,) long, global atom index
    neighbors: "torch.Tensor"  # (E,) long, global atom index
    distances: "torch.Tensor"  # (E,) float32
    crystal: "torch.Tensor"  # (N,) long, which crystal each atom belongs to
    n_crystals: int
    features: "torch.Tensor | None"  # (B, d) float32 extra features, or None


def collate_graphs(items: Sequence[CrystalGraph | tuple[CrystalGraph, np.ndarray | None]]) -> GraphBatch:
    """Concatenate graphs (optionally paired with an extra-feature row) into one `GraphBatch`."""
    import torch

    graphs: list[CrystalGraph] = []
    feats: list[np.ndarray] = []
    for it in items:
        if isinstance(it, tuple):
            graphs.append(it[0])
            if it[1] is not None:
                feats.append(it[1])
        else:
            graphs.append(it)
    if feats and len(feats) != len(graphs):
        raise BadInputError("collate_graphs: some items have extra features and some do not")
    n_atoms = np.array([g.n_atoms for g in graphs], dtype=np.int64)
    offsets = np.cumsum(n_atoms) - n_atoms
    n_edges = np.array([g.n_edges for g in graphs], dtype=np.int64)
    shift = np.repeat(offsets, n_edges)
    return GraphBatch(
        numbers=torch.from_numpy(np.concatenate([g.numbers for g in graphs]).astype(np.int64)),
        centers=torch.from_numpy(np.concatenate([g.centers for g in graphs]).astype(np.int64) + shift),
        neighbors=torch.from_numpy(np.concatenate([g.neighbors for g in graphs]).astype(np.int64) + shift),
        distances=torch.from_numpy(np.concatenate([g.distances for g in graphs]).astype(np.float32)),
        crystal=torch.from_numpy(np.repeat(np.arange(len(graphs), dtype=np.int64), n_atoms)),
        n_crystals=len(graphs),
        features=torch.from_numpy(np.stack(feats).astype(np.float32)) if feats else None,
    )

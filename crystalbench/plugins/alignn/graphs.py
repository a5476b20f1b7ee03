"""ALIGNN atom graphs and their line graphs, built from pymatgen Structures (numpy only).

Graph semantics. The atom graph is the k-nearest-neighbour graph of the
original ALIGNN (8 A cutoff, 12 neighbours, the whole shell of the 12th
neighbour kept so that symmetric crystals give symmetric graphs, edges made
undirected). Unlike the alignn package's `nearest_neighbor_edges`, atoms with
fewer than 12 neighbours inside the cutoff simply keep fewer edges by default:
the package's fallback grows the cutoff to the longest lattice vector, i.e.
100 A for a 1D chain in a vacuum box, which would make the graph see through
the vacuum (set `extend_cutoff=True` for the package's behaviour). The line
graph connects every directed bond (u->v) to every bond (v->w) leaving its end
atom, as DGL's `line_graph` does for ALIGNN; bond-angle cosines are computed
from the bond vectors inside the model.

Graphs are cached through the shared `crystalbench.gnn.GraphStore` (keyed by
`Dataset.structure_keys`, corrupt entries rebuilt), in the cache family
``graphs/alignn-<cutoff>_<k>[_ext]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from crystalbench import BadInputError, Dataset
from crystalbench.gnn.graphs import GraphKind, GraphStats, GraphStore
from crystalbench.harness.store import Store

__all__ = [
    "GRAPH_FORMAT_VERSION",
    "AlignnGraphParams",
    "AlignnGraph",
    "build_graph",
    "alignn_graph_kind",
    "load_or_build_graphs",
]

GRAPH_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class AlignnGraphParams:
    """The hyperparameters that change the graph; they name its cache family."""

    cutoff: float = 8.0
    max_neighbors: int = 12
    extend_cutoff: bool = False

    def __post_init__(self) -> None:
        if not self.cutoff > 0 or self.max_neighbors < 1:
            raise ValueError(f"bad graph parameters: cutoff={self.cutoff}, max_neighbors={self.max_neighbors}")

    @property
    def tag(self) -> str:
        return f"r{self.cutoff:g}_k{self.max_neighbors}{'_ext' if self.extend_cutoff else ''}"

    @property
    def namespace(self) -> str:
        return f"graphs/alignn-{self.tag}"


class AlignnGraph:
    """One crystal's atom graph and line graph as plain arrays.

    z: (N,) atomic numbers. src/dst: (E,) directed bonds. r: (E, 3) bond
    vectors pos[dst] + image - pos[src] in A. lg_src/lg_dst: (T,) line-graph
    edges, indices into the bonds (bond u->v feeds bond v->w).
    """

    __slots__ = ("z", "src", "dst", "r", "lg_src", "lg_dst")
    KEYS: tuple[str, ...] = ("z", "src", "dst", "r", "lg_src", "lg_dst")

    def __init__(self, z: Any, src: Any, dst: Any, r: Any, lg_src: Any, lg_dst: Any) -> None:
        self.z = np.asarray(z, dtype=np.int64)
        self.src = np.asarray(src, dtype=np.int64)
        self.dst = np.asarray(dst, dtype=np.int64)
        self.r = np.asarray(r, dtype=np.float32).reshape(-1, 3)
        self.lg_src = np.asarray(lg_src, dtype=np.int64)
        self.lg_dst = np.asarray(lg_dst, dtype=np.int64)

    @property
    def num_nodes(self) -> int:
        return int(len(self.z))

    @property
    def num_edges(self) -> int:
        return int(len(self.src))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Compact dtypes for the cache."""
        return {
            "z": self.z.astype(np.int16),
            "src": self.src.astype(np.int32),
            "dst": self.dst.astype(np.int32),
            "r": self.r,
            "lg_src": self.lg_src.astype(np.int32),
            "lg_dst": self.lg_dst.astype(np.int32),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> AlignnGraph:
        g = cls(*(arrays[k] for k in cls.KEYS))
        n, e = g.num_nodes, g.num_edges
        if len(g.dst) != e or len(g.r) != e or len(g.lg_src) != len(g.lg_dst):
            raise ValueError("inconsistent ALIGNN graph arrays")
        for idx, bound in ((g.src, n), (g.dst, n), (g.lg_src, e), (g.lg_dst, e)):
            if len(idx) and (idx.min() < 0 or idx.max() >= bound):
                raise ValueError("ALIGNN graph index out of range")
        return g

    def nbytes(self) -> int:
        return int(sum(getattr(self, k).nbytes for k in self.KEYS))


def _knn_edges(structure: Any, params: AlignnGraphParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected k-NN bonds (src, dst, image) within the cutoff; see module docstring."""
    n = len(structure)
    cutoff = params.cutoff
    longest = float(max(structure.lattice.abc))
    for _ in range(3):
        center, point, image, dist = structure.get_neighbor_list(cutoff)
        counts = np.bincount(center, minlength=n)
        if not params.extend_cutoff or counts.min() >= params.max_neighbors:
            break
        cutoff = longest if cutoff < longest else 2 * cutoff  # the alignn package's rule
    # keep, per centre atom, every neighbour up to the k-th distance (whole shell)
    order = np.lexsort((dist, center))
    center, point, image, dist = center[order], point[order], image[order], dist[order]
    starts = np.searchsorted(center, np.arange(n))
    kth = np.full(n, np.inf)
    has_k = counts >= params.max_neighbors
    kth[has_k] = dist[starts[has_k] + params.max_neighbors - 1]
    keep = dist <= kth[center] + 1e-4
    src, dst, img = center[keep], point[keep], np.rint(image[keep]).astype(np.int64)
    # undirected: add each bond's reverse, then drop duplicates
    src_all = np.concatenate([src, dst])
    dst_all = np.concatenate([dst, src])
    img_all = np.concatenate([img, -img])
    rows = np.unique(np.column_stack([src_all, dst_all, img_all]), axis=0)
    return rows[:, 0], rows[:, 1], rows[:, 2:5]


def _line_graph(src: np.ndarray, dst: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (bond a = u->v, bond b = v->w): a feeds b, as DGL's line_graph."""
    order = np.argsort(src, kind="stable")
    sorted_src = src[order]
    start = np.searchsorted(sorted_src, np.arange(n_nodes), side="left")
    end = np.searchsorted(sorted_src, np.arange(n_nodes), side="right")
    counts = (end - start)[dst]  # bonds leaving each bond's end atom
    lg_src = np.repeat(np.arange(len(src)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    lg_dst = order[np.repeat(start[dst], counts) + offsets]
    return lg_src.astype(np.int64), lg_dst.astype(np.int64)


def build_graph(structure: Any, params: AlignnGraphParams | None = None) -> AlignnGraph:
    """ALIGNN atom graph + line graph of one pymatgen Structure."""
    params = params or AlignnGraphParams()
    if len(structure) == 0:
        raise BadInputError("empty structure: an ALIGNN graph needs at least one atom")
    if not structure.is_ordered:
        raise BadInputError(
            f"disordered structure {structure.composition.reduced_formula}: ALIGNN graphs need one element per site"
        )
    src, dst, img = _knn_edges(structure, params)
    cart = np.asarray(structure.cart_coords, dtype=float)
    r = cart[dst] + img @ np.asarray(structure.lattice.matrix, dtype=float) - cart[src]
    lg_src, lg_dst = _line_graph(src, dst, len(structure))
    z = np.array([site.specie.Z for site in structure], dtype=np.int64)
    return AlignnGraph(z, src, dst, r, lg_src, lg_dst)


def alignn_graph_kind(params: AlignnGraphParams) -> GraphKind[AlignnGraph]:
    """The `GraphKind` (build + storage) of ALIGNN graphs with these parameters."""
    return GraphKind(
        namespace=params.namespace,
        version=GRAPH_FORMAT_VERSION,
        build=lambda s: build_graph(s, params),
        to_arrays=AlignnGraph.to_arrays,
        from_arrays=AlignnGraph.from_arrays,
        arrays=AlignnGraph.KEYS,
        nbytes=AlignnGraph.nbytes,
    )


def load_or_build_graphs(
    data: Dataset,
    params: AlignnGraphParams,
    store: Store | None = None,
    *,
    cache_dir: Any = None,
    progress: bool = False,
    stats: GraphStats | None = None,
) -> list[AlignnGraph]:
    """Graphs for every structure of `data`, from the memo or the on-disk cache where possible.

    Cached per structure (keyed by `Dataset.structure_keys` and the graph
    parameters), so every split, fold and task sharing a structure reuses one
    entry. `store`: the cache `Store` (`crystalbench.gnn.graph_store`); default
    one under `cache_dir`. `stats` accumulates hit/build counts.
    """
    from crystalbench.gnn.graphs import graph_store

    if data.structures is None:
        raise BadInputError(f"dataset {data.name!r} has no structures; ALIGNN needs crystal structures")
    kind = alignn_graph_kind(params)
    if store is None:
        store = graph_store(kind.namespace, kind.version, cache_dir=cache_dir)
    gs = GraphStore(kind, store, stats if stats is not None else GraphStats())
    return gs.get(data.structures, data.structure_keys, progress=progress, desc="alignn graphs")

"""Crystal graphs and the graph store every GNN shares.

Two things live here, both numpy-only (importing this module never imports torch):

* The CGCNN-style crystal graph (`CrystalGraph`, `structure_graph`): every atom
  joined to its (at most) `max_neighbors` nearest atoms within `radius`,
  periodic images included (an atom can neighbour its own image), as in Xie &
  Grossman 2018 with the paper's defaults (8 A, 12 neighbours). Edges are
  directed centre -> neighbour and stored as plain arrays; node features and the
  distance expansion are applied by the model, so one cached graph serves every
  featurization. Atoms with fewer than `max_neighbors` atoms within `radius`
  (1D chains in a 100 A vacuum box, molecules, surfaces) simply get fewer edges:
  the original CGCNN code pads them with fake neighbours (atom 0 at radius +
  1 A), which for chains would inject ~10 spurious edges per atom.

* `GraphStore`: graphs of one kind (`GraphKind`: how to build one graph and how
  to turn it into arrays and back) keyed by `Dataset.structure_keys`, looked up
  in a process-wide memo, then in an on-disk cache `Store`, then built. The
  `Store` writes atomically and treats an unreadable entry (truncated by a
  killed process, corrupt) as a miss: it is deleted, rebuilt and rewritten,
  so a bad file costs one rebuild instead of failing every later run.
  Identical structures within one request are built once.

Use `graph_store(...)` to get the on-disk `Store` of a graph family: from the
run's `RunContext.cache(namespace, version)` when the model runs in the harness,
else under `cache_dir` (a model built by hand in a test or script).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import numpy as np

from crystalbench.harness.context import Progress
from crystalbench.harness.dataset import structure_key
from crystalbench.harness.errors import BadInputError
from crystalbench.harness.store import Store

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from crystalbench.harness.context import RunContext
    from crystalbench.harness.specs import ModelContext

__all__ = [
    "GRAPH_VERSION",
    "GraphParams",
    "CrystalGraph",
    "CRYSTAL_GRAPH",
    "GraphBatch",
    "GraphKind",
    "GraphStore",
    "GraphStats",
    "graph_store",
    "model_graph_store",
    "crystal_graph_kind",
    "structure_graph",
    "build_graphs",
    "collate_graphs",
    "clear_graph_memo",
]

GRAPH_VERSION = "1"
G = TypeVar("G")
log = logging.getLogger("crystalbench.gnn")


# ---------------------------------------------------------------------------
# The CGCNN-style crystal graph
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphParams:
    """Crystal-graph construction settings; they name the cache family."""

    radius: float = 8.0
    max_neighbors: int = 12

    def __post_init__(self) -> None:
        if not self.radius > 0 or self.max_neighbors < 1:
            raise ValueError(f"bad graph parameters: radius={self.radius}, max_neighbors={self.max_neighbors}")

    def tag(self) -> str:
        return f"r{self.radius:g}_n{self.max_neighbors}"

    @property
    def namespace(self) -> str:
        """The cache `Store` namespace of these graphs (its version is `GRAPH_VERSION`)."""
        return f"graphs/crystal-{self.tag()}"


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

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"numbers": self.numbers, "centers": self.centers, "neighbors": self.neighbors, "distances": self.distances}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> CrystalGraph:
        g = cls(
            numbers=np.asarray(arrays["numbers"], dtype=np.int16),
            centers=np.asarray(arrays["centers"], dtype=np.int32),
            neighbors=np.asarray(arrays["neighbors"], dtype=np.int32),
            distances=np.asarray(arrays["distances"], dtype=np.float32),
        )
        n, e = g.n_atoms, g.n_edges
        if g.numbers.ndim != 1 or len(g.neighbors) != e or len(g.distances) != e:
            raise ValueError("inconsistent crystal-graph arrays")
        if e and (g.centers.min() < 0 or g.centers.max() >= n or g.neighbors.min() < 0 or g.neighbors.max() >= n):
            raise ValueError("crystal-graph edge index out of range")
        return g

    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.to_arrays().values()))


def structure_graph(structure: Any, params: GraphParams = GraphParams()) -> CrystalGraph:
    """Build the graph of one pymatgen Structure (vectorized neighbour search, no per-site loop).

    Ties in distance are broken by neighbour index and image offset, so the
    kept neighbours are deterministic in symmetric crystals whose 12th and
    13th neighbours are equidistant.
    """
    if not structure.is_ordered:
        raise BadInputError(
            f"structure {structure.composition.reduced_formula} has partial occupancies; "
            "crystal graphs need ordered structures (one element per site)"
        )
    numbers = np.asarray(structure.atomic_numbers, dtype=np.int16)
    n = len(numbers)
    if n == 0:
        raise BadInputError("empty structure: a crystal graph needs at least one atom")
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


class GraphBatch(NamedTuple):
    """A mini-batch of crystal graphs as flat tensors (atoms and edges of all crystals concatenated)."""

    numbers: torch.Tensor  # (N,) long, atomic numbers
    centers: torch.Tensor  # (E,) long, global atom index
    neighbors: torch.Tensor  # (E,) long, global atom index
    distances: torch.Tensor  # (E,) float32
    crystal: torch.Tensor  # (N,) long, which crystal each atom belongs to
    n_crystals: int
    features: torch.Tensor | None  # (B, d) float32 extra features, or None


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


# ---------------------------------------------------------------------------
# The graph store: memo -> disk cache -> build
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphKind(Generic[G]):
    """One family of graphs: how to build one and how to store it as named arrays.

    namespace / version: the cache `Store` family; bump `version` when `build`
        changes what it returns. Everything that changes a graph (radius,
        neighbour count...) belongs in `namespace`.
    build: structure -> graph; raise `BadInputError` for structures it cannot handle.
    to_arrays / from_arrays: graph <-> named numpy arrays (no pickles); `from_arrays`
        raises ValueError/KeyError on inconsistent arrays (the entry is then rebuilt).
    nbytes: memory held by a graph (budget of the in-process memo).
    """

    namespace: str
    version: str
    build: Callable[[Any], G]
    to_arrays: Callable[[G], Mapping[str, np.ndarray]]
    from_arrays: Callable[[Mapping[str, np.ndarray]], G]
    arrays: tuple[str, ...]
    nbytes: Callable[[G], int]


@dataclass
class GraphStats:
    """Where the graphs of one or more requests came from (recorded in a model's `fit_info`)."""

    memo: int = 0
    disk: int = 0
    built: int = 0
    discarded: int = 0

    @property
    def hits(self) -> int:
        return self.memo + self.disk

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "built": self.built, "memo": self.memo, "disk": self.disk, "discarded": self.discarded}


class _ByteMemo:
    """Process-wide LRU of graphs with a memory budget (graphs are reused across folds, seeds and models)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self._items: OrderedDict[tuple[str, str, str], tuple[Any, int]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> Any | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        self._items.move_to_end(key)
        return hit[0]

    def put(self, key: tuple[str, str, str], graph: Any, size: int) -> None:
        if size > self.budget:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._items[key] = (graph, size)
        self.used += size
        while self.used > self.budget and self._items:
            _, (_, s) = self._items.popitem(last=False)
            self.used -= s

    def clear(self) -> None:
        self._items.clear()
        self.used = 0


_MEMO = _ByteMemo(256 * 2**20)


def clear_graph_memo() -> None:
    """Forget every in-process graph (tests; the disk cache is untouched)."""
    _MEMO.clear()


def graph_store(
    namespace: str,
    version: str,
    *,
    run: RunContext | None = None,
    cache_dir: Path | str | None = None,
) -> Store:
    """The on-disk `Store` of a graph family: `run.cache(...)` when given, else one under `cache_dir`.

    With neither, the default cache root (`$CRYSTALBENCH_CACHE_DIR` or ~/.cache/crystalbench).
    """
    if run is not None:
        return run.cache(namespace, version)
    if cache_dir is None:
        from crystalbench.harness.paths import cache_dir as default_cache_dir

        cache_dir = default_cache_dir()
    return Store(Path(cache_dir), namespace, version)


def model_graph_store(ctx: ModelContext, namespace: str, version: str) -> Store:
    """`graph_store` for a model: the job's run context when it has one, else `ctx.cache_dir`."""
    return graph_store(namespace, version, run=ctx.run, cache_dir=ctx.cache_dir)


@dataclass
class GraphStore(Generic[G]):
    """Graphs of one `GraphKind`, cached on disk in `store` and in a process-wide memo.

    `stats` accumulates over every `get` call (memo/disk hits, builds, corrupt
    entries discarded and rebuilt).
    """

    kind: GraphKind[G]
    store: Store
    stats: GraphStats = field(default_factory=GraphStats)

    def get(
        self,
        structures: Sequence[Any],
        keys: Sequence[str] | None = None,
        *,
        progress: bool = False,
        desc: str = "graphs",
    ) -> list[G]:
        """Graphs for `structures`, in order. `keys`: their `structure_key`s (`Dataset.structure_keys`)."""
        if keys is None:
            keys = [structure_key(s) for s in structures]
        if len(keys) != len(structures):
            raise BadInputError(f"{len(structures)} structures but {len(keys)} keys")
        kind = self.kind
        out: list[G | None] = [None] * len(structures)
        todo: dict[str, list[int]] = {}
        discarded_before = self.store.discarded
        for i, key in enumerate(keys):
            mkey = (kind.namespace, kind.version, key)
            g = _MEMO.get(mkey)
            if g is not None:
                self.stats.memo += 1
                out[i] = g
                continue
            if key in todo:
                todo[key].append(i)
                continue
            g = self._read(key)
            if g is not None:
                self.stats.disk += 1
                _MEMO.put(mkey, g, kind.nbytes(g))
                out[i] = g
            else:
                todo[key] = [i]
        self.stats.discarded += self.store.discarded - discarded_before
        if todo:
            with Progress(len(todo), desc, enabled=progress, unit="structure") as bar:
                for key, idx in todo.items():
                    g = kind.build(structures[idx[0]])
                    self.store.put_npz(key, {k: np.asarray(v) for k, v in kind.to_arrays(g).items()})
                    _MEMO.put((kind.namespace, kind.version, key), g, kind.nbytes(g))
                    self.stats.built += 1
                    for i in idx:
                        out[i] = g
                    bar.update(1)
        return [g for g in out if g is not None]

    def _read(self, key: str) -> G | None:
        arrays = self.store.get_npz(key, required=self.kind.arrays)
        if arrays is None:
            return None
        try:
            return self.kind.from_arrays(arrays)
        except (KeyError, ValueError, TypeError) as exc:
            path = self.store.path(key, "npz")
            log.warning("cache: discarded inconsistent graph %s (%s); it will be rebuilt", path, exc)
            path.unlink(missing_ok=True)
            self.stats.discarded += 1
            return None


def crystal_graph_kind(params: GraphParams = GraphParams()) -> GraphKind[CrystalGraph]:
    """The `GraphKind` of `structure_graph` with these parameters."""
    return GraphKind(
        namespace=params.namespace,
        version=GRAPH_VERSION,
        build=lambda s: structure_graph(s, params),
        to_arrays=CrystalGraph.to_arrays,
        from_arrays=CrystalGraph.from_arrays,
        arrays=("numbers", "centers", "neighbors", "distances"),
        nbytes=CrystalGraph.nbytes,
    )


CRYSTAL_GRAPH = crystal_graph_kind()


def build_graphs(
    structures: Sequence[Any],
    *,
    params: GraphParams = GraphParams(),
    keys: Sequence[str] | None = None,
    store: Store | None = None,
    cache_dir: Path | str | None = None,
    progress: bool = False,
    stats: GraphStats | None = None,
    desc: str = "crystal graphs",
) -> list[CrystalGraph]:
    """Crystal graphs for `structures` (in order), from the memo, the disk cache or built fresh.

    keys: precomputed `structure_key`s (e.g. `Dataset.structure_keys`); computed when None.
    store: the cache `Store` (see `graph_store`); default: one under `cache_dir`.
    stats: a `GraphStats` that receives the counts of this call.
    """
    kind = crystal_graph_kind(params)
    if store is None:
        store = graph_store(kind.namespace, kind.version, cache_dir=cache_dir)
    gs = GraphStore(kind, store, stats if stats is not None else GraphStats())
    return gs.get(structures, keys, progress=progress, desc=desc)

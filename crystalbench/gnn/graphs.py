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
  in a process-wide memo, then in an on-disk cache `Store`, then built. The disk
  cache holds one NPZ per requested set of structures (a training, validation or
  test set), not one file per structure: we measured that a per-structure file
  cost 3-7x the build to write and was no faster to read than rebuilding, while
  one file per set is written and read in milliseconds (docs/speed.md). The
  `Store` writes atomically and treats an unreadable entry (truncated by a
  killed process, corrupt) as a miss: it is deleted, rebuilt and rewritten,
  so a bad file costs one rebuild instead of failing every later run.
  Identical structures within one request are built once.

* `FlatGraphs` (via ``collate_graphs.index``): a data set collated once, with
  mini-batches cut out of it by index (the shared loop's fast path).

Use `graph_store(...)` to get the on-disk `Store` of a graph family: from the
run's `RunContext.cache(namespace, version)` when the model runs in the harness,
else under `cache_dir` (a model built by hand in a test or script).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import numpy as np

from crystalbench import BadInputError, Progress, Store, structure_key

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from crystalbench import ModelContext, RunContext

__all__ = [
    "GRAPH_VERSION",
    "GraphParams",
    "CrystalGraph",
    "CRYSTAL_GRAPH",
    "GraphBatch",
    "GraphCollate",
    "FlatGraphs",
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
    # weight-free per-edge inputs a model precomputed once per data set (`FlatGraphs.prepare`), or None:
    # (E, k), one row per edge, or, with `edge_fea_index`, one row per distinct edge length
    edge_fea: torch.Tensor | None = None
    # (E,) long: the row of `edge_fea` for each edge (symmetric neighbours share a length), or None
    edge_fea_index: torch.Tensor | None = None


def _split_items(items: Sequence[CrystalGraph | tuple[CrystalGraph, np.ndarray | None]]) -> tuple[list[CrystalGraph], np.ndarray | None]:
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
    return graphs, (np.stack(feats).astype(np.float32) if feats else None)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + c)`` for every (s, c), vectorized."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - counts - starts, counts)


class GraphCollate:
    """`collate_graphs`: items -> one `GraphBatch`; `index(items)` -> `FlatGraphs` for index-based batching.

    A callable object rather than a function so that the shared training loop can
    find its index-based path (`crystalbench.gnn.trainer.IndexedCollate`); calling
    it is exactly the old function.
    """

    def __call__(self, items: Sequence[CrystalGraph | tuple[CrystalGraph, np.ndarray | None]]) -> GraphBatch:
        """Concatenate graphs (optionally paired with an extra-feature row) into one `GraphBatch`."""
        return self.index(items).batch(np.arange(len(items)))

    def index(self, items: Sequence[CrystalGraph | tuple[CrystalGraph, np.ndarray | None]]) -> FlatGraphs:
        """All items concatenated once; batches are then cut out by crystal index (`FlatGraphs.batches`)."""
        graphs, feats = _split_items(items)
        return FlatGraphs.from_graphs(graphs, feats)


collate_graphs = GraphCollate()


class FlatGraphs:
    """A whole data set of crystal graphs collated once; mini-batches are index selections of it.

    Integer structure (atom numbers, per-crystal local edge indices) stays in numpy:
    a whole epoch's batch indices are computed on the host in one vectorized pass
    and moved to the device in one copy, so a GPU epoch has no per-batch collation
    and no per-batch host synchronisation. Per-edge floats (distances, a model's
    precomputed `GraphBatch.edge_fea`) and extra features live on `device` once.
    Batches equal `collate_graphs` of the same items exactly (same order, values).
    """

    def __init__(
        self,
        numbers: np.ndarray,
        local_centers: np.ndarray,
        local_neighbors: np.ndarray,
        n_atoms: np.ndarray,
        n_edges: np.ndarray,
        distances: torch.Tensor,
        features: torch.Tensor | None,
        edge_fea: torch.Tensor | None = None,
    ) -> None:
        self.numbers, self.local_centers, self.local_neighbors = numbers, local_centers, local_neighbors
        self.n_atoms, self.n_edges = n_atoms, n_edges
        self.atom_start = np.cumsum(n_atoms) - n_atoms
        self.edge_start = np.cumsum(n_edges) - n_edges
        self.distances, self.features, self.edge_fea = distances, features, edge_fea
        # with `distance_features`: (E,) row of each edge in the per-distinct-length `edge_fea`
        self.distance_id: np.ndarray | None = None

    @classmethod
    def from_graphs(cls, graphs: Sequence[CrystalGraph], features: np.ndarray | None = None) -> FlatGraphs:
        import torch

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return cls(
            numbers=cat([g.numbers for g in graphs], np.int64),
            local_centers=cat([g.centers for g in graphs], np.int64),
            local_neighbors=cat([g.neighbors for g in graphs], np.int64),
            n_atoms=np.array([g.n_atoms for g in graphs], dtype=np.int64),
            n_edges=np.array([g.n_edges for g in graphs], dtype=np.int64),
            distances=torch.from_numpy(cat([g.distances for g in graphs], np.float32)),
            features=None if features is None else torch.from_numpy(np.asarray(features, dtype=np.float32)),
        )

    def __len__(self) -> int:
        return len(self.n_atoms)

    @property
    def device(self) -> torch.device:
        return self.distances.device

    def _replace(self, **kw: Any) -> FlatGraphs:
        new = FlatGraphs.__new__(FlatGraphs)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(kw)
        return new

    def to(self, device: torch.device | str) -> FlatGraphs:
        """The per-edge and per-crystal tensors on `device` (integer structure stays on the host)."""
        return self._replace(
            distances=self.distances.to(device),
            features=None if self.features is None else self.features.to(device),
            edge_fea=None if self.edge_fea is None else self.edge_fea.to(device),
        )

    def prepare(self, module: Any) -> FlatGraphs:
        """Let a model precompute weight-free per-edge inputs once.

        Two opt-in hooks, looked up on the module:

        * ``module.distance_features(lengths) -> Tensor | None``: features that are a
          function of the edge length alone (CGCNN's Gaussian expansion). They are
          computed once per *distinct* length: symmetric neighbours share lengths, and
          1000 matbench_phonons structures have 71,532 edges but 10,260 distinct
          lengths. Batches then carry one row per distinct length in the batch
          (`GraphBatch.edge_fea`) and each edge's row (`GraphBatch.edge_fea_index`),
          so a model multiplies ~7x fewer rows by its edge weights. None: not worth
          it (e.g. over a memory budget); the model computes features per batch.
        * ``module.prepare(GraphBatch) -> GraphBatch`` (any per-edge features): called
          on the whole data set; only ``edge_fea`` (one row per edge) is kept.

        Modules with neither get `self` back.
        """
        import torch

        if self.edge_fea is not None:
            return self
        by_length = getattr(module, "distance_features", None)
        if by_length is not None:
            lengths, distance_id = np.unique(self.distances.cpu().numpy(), return_inverse=True)
            fea = by_length(torch.from_numpy(lengths).to(self.device))
            if fea is None:
                return self
            new = self._replace(edge_fea=fea)
            new.distance_id = distance_id.reshape(-1).astype(np.int64)
            return new
        fn = getattr(module, "prepare", None)
        if fn is None:
            return self
        whole = self.batch(np.arange(len(self)))
        return self._replace(edge_fea=fn(whole).edge_fea)

    def batch(self, idx: np.ndarray) -> GraphBatch:
        """The `GraphBatch` of crystals `idx` (in that order)."""
        return self.batches([np.asarray(idx, dtype=np.int64)])[0]

    def batches(self, groups: Sequence[np.ndarray]) -> list[GraphBatch]:
        """One `GraphBatch` per index group, all cut from one host pass and one transfer per call."""
        import torch

        groups = [np.asarray(g, dtype=np.int64) for g in groups]
        sel = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        sizes = np.array([len(g) for g in groups], dtype=np.int64)
        na, ne = self.n_atoms[sel], self.n_edges[sel]
        atom_idx = _ranges(self.atom_start[sel], na)
        edge_idx = _ranges(self.edge_start[sel], ne)
        # each crystal's first atom within its batch, and its position within its batch
        group_of = np.repeat(np.arange(len(groups)), sizes)
        first_crystal = np.cumsum(sizes) - sizes
        atoms_before = np.concatenate([[0], np.cumsum(na)])  # within the whole selection (+ the total)
        batch_atom_start = atoms_before[first_crystal]
        crystal_start_in_batch = atoms_before[:-1] - batch_atom_start[group_of]
        shift = np.repeat(crystal_start_in_batch, ne)
        centers = self.local_centers[edge_idx] + shift
        neighbors = self.local_neighbors[edge_idx] + shift
        crystal = np.repeat(np.arange(len(sel)) - first_crystal[group_of], na)
        # every integer index of the call travels in one host->device copy
        parts = [self.numbers[atom_idx], crystal, centers, neighbors, edge_idx, sel]
        if self.distance_id is not None:
            # per batch, its distinct lengths (rows of the data set's table) and each edge's row among them
            n_lengths = np.int64(max(1, int(self.distance_id.max(initial=0)) + 1))
            edge_group = np.repeat(group_of, ne)
            keys, row_of_edge = np.unique(edge_group * n_lengths + self.distance_id[edge_idx], return_inverse=True)
            key_group = keys // n_lengths
            rows_before = np.searchsorted(key_group, np.arange(len(groups) + 1))  # per group, its first key
            parts += [keys % n_lengths, row_of_edge.reshape(-1) - rows_before[edge_group]]
        ints = torch.from_numpy(np.concatenate(parts))
        dev = self.device
        if dev.type != "cpu":
            ints = ints.pin_memory().to(dev, non_blocking=True)
        numbers_t, crystal_t, centers_t, neighbors_t, edge_t, sel_t, *by_length = torch.split(
            ints, [len(p) for p in parts]
        )
        dist = self.distances.index_select(0, edge_t)
        efea, fea_index = None, None
        if self.edge_fea is not None and by_length:
            efea, fea_index = self.edge_fea.index_select(0, by_length[0]), by_length[1]
        elif self.edge_fea is not None:
            efea = self.edge_fea.index_select(0, edge_t)
        feats = None if self.features is None else self.features.index_select(0, sel_t)
        out: list[GraphBatch] = []
        a_ends = np.cumsum(np.bincount(group_of, weights=na, minlength=len(groups))).astype(np.int64)
        e_ends = np.cumsum(np.bincount(group_of, weights=ne, minlength=len(groups))).astype(np.int64)
        a0 = e0 = 0
        for g, size in enumerate(sizes):
            a1, e1, k0 = int(a_ends[g]), int(e_ends[g]), int(first_crystal[g])
            r0, r1 = (int(rows_before[g]), int(rows_before[g + 1])) if fea_index is not None else (e0, e1)
            out.append(
                GraphBatch(
                    numbers=numbers_t[a0:a1],
                    centers=centers_t[e0:e1],
                    neighbors=neighbors_t[e0:e1],
                    distances=dist[e0:e1],
                    crystal=crystal_t[a0:a1],
                    n_crystals=int(size),
                    features=None if feats is None else feats[k0 : k0 + int(size)],
                    edge_fea=None if efea is None else efea[r0:r1],
                    edge_fea_index=None if fea_index is None else fea_index[e0:e1],
                )
            )
            a0, e0 = a1, e1
        return out


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
        from crystalbench import cache_dir as default_cache_dir

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
        for i, key in enumerate(keys):
            g = _MEMO.get((kind.namespace, kind.version, key))
            if g is not None:
                self.stats.memo += 1
                out[i] = g
            else:
                todo.setdefault(key, []).append(i)
        if not todo:
            return [g for g in out if g is not None]
        unique = list(dict.fromkeys(keys))
        file_key = self._file_key(unique)
        stored = self._read(file_key, unique)
        if stored is not None:
            for key, idx in todo.items():
                g = stored[key]
                _MEMO.put((kind.namespace, kind.version, key), g, kind.nbytes(g))
                self.stats.disk += len(idx)
                for i in idx:
                    out[i] = g
            return [g for g in out if g is not None]
        with Progress(len(todo), desc, enabled=progress, unit="structure") as bar:
            for key, idx in todo.items():
                g = kind.build(structures[idx[0]])
                _MEMO.put((kind.namespace, kind.version, key), g, kind.nbytes(g))
                self.stats.built += 1
                for i in idx:
                    out[i] = g
                bar.update(1)
        graphs = [g for g in out if g is not None]
        first: dict[str, G] = dict(zip(keys, graphs))
        self._write(file_key, [first[k] for k in unique])
        return graphs

    def _file_key(self, unique_keys: Sequence[str]) -> str:
        """The cache entry of one requested set of structures (in order, duplicates collapsed)."""
        h = hashlib.sha256(f"{self.kind.namespace}\0{self.kind.version}".encode())
        for key in unique_keys:
            h.update(b"\0" + key.encode())
        return "set-" + h.hexdigest()[:40]

    def _write(self, file_key: str, graphs: Sequence[G]) -> None:
        """Graphs in one NPZ: each named array concatenated along axis 0, plus per-graph lengths (``<name>.len``)."""
        parts = [self.kind.to_arrays(g) for g in graphs]
        arrays: dict[str, np.ndarray] = {}
        for name in self.kind.arrays:
            cols = [np.asarray(p[name]) for p in parts]
            arrays[name] = np.concatenate(cols)
            arrays[f"{name}.len"] = np.array([len(c) for c in cols], dtype=np.int64)
        self.store.put_npz(file_key, arrays)

    def _read(self, file_key: str, unique_keys: Sequence[str]) -> dict[str, G] | None:
        """The graphs of a request's entry by structure key, or None (absent, unreadable or inconsistent)."""
        required = tuple(n for name in self.kind.arrays for n in (name, f"{name}.len"))
        discarded_before = self.store.discarded
        arrays = self.store.get_npz(file_key, required=required)
        self.stats.discarded += self.store.discarded - discarded_before
        if arrays is None:
            return None
        try:
            ends = {name: np.cumsum(arrays[f"{name}.len"]) for name in self.kind.arrays}
            if any(len(e) != len(unique_keys) or int(e[-1]) != len(arrays[n]) for n, e in ends.items()):
                raise ValueError("per-graph lengths do not match the arrays or the structures")
            graphs = []
            for j in range(len(unique_keys)):
                graphs.append(self.kind.from_arrays(
                    {n: arrays[n][(int(e[j - 1]) if j else 0) : int(e[j])] for n, e in ends.items()}
                ))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            path = self.store.path(file_key, "npz")
            log.warning("cache: discarded inconsistent graph file %s (%s); it will be rebuilt", path, exc)
            path.unlink(missing_ok=True)
            self.stats.discarded += 1
            return None
        return dict(zip(unique_keys, graphs))


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

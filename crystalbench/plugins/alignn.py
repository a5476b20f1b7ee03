"""ALIGNN (Choudhary & DeCost 2021) and its descriptor hybrid de-ALIGNN (Gong et al. 2023, eq. 14).

The message-passing network is the `alignn` package's DGL-free
`ALIGNNAtomWisePure` (4 ALIGNN + 4 edge-gated GCN layers, RBF expansions of
bond lengths and bond-angle cosines). It is used as an encoder only: its output
layer is replaced by an identity so its forward returns the mean-pooled node
embedding, and this module adds what the benchmark needs around it:

* the pooling choice of paper eq. 13 (sum = mean x number of atoms, exactly);
* optional extra per-sample features (descriptors) concatenated with the
  pooled embedding before the output layer (paper eq. 14), trained end to end;
* an n-class classification head (the package's head is binary only);
* graph construction from pymatgen Structures with an on-disk cache.

Graph semantics. The atom graph is the k-nearest-neighbour graph of the
original ALIGNN (8 A cutoff, 12 neighbours, the whole shell of the 12th
neighbour kept so that symmetric crystals give symmetric graphs, edges made
undirected). Unlike the package's `nearest_neighbor_edges`, atoms with fewer
than 12 neighbours inside the cutoff simply keep fewer edges by default: the
package's fallback grows the cutoff to the longest lattice vector, i.e. 100 A
for a 1D chain in a vacuum box, which would make the graph see through the
vacuum (set `extend_cutoff=True` for the package's behaviour). The line graph
connects every directed bond (u->v) to every bond (v->w) leaving its end atom,
as DGL's `line_graph` does for ALIGNN; bond-angle cosines are computed from
the bond vectors inside the model.

A property of the architecture, not of this wrapper: ALIGNN's edge-gated
convolution averages neighbour messages with normalized gates
(sum sigma*Bh / sum sigma) and the readout pools atoms only, so when every
atom starts from the same features (monatomic crystals, the carbon chains of
the 1D tasks) the atom features stay identical whatever the geometry and the
prediction is a constant. Geometry reaches the output only through differences
between atom species. tests/test_alignn.py pins this down.

Nothing here imports torch or alignn at module import time: `bench list` must
stay fast and a missing optional dependency must only break ALIGNN jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from crystalbench.harness.dataset import Dataset, structure_key
from crystalbench.harness.hookspecs import hookimpl
from crystalbench.harness.specs import ModelContext, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ALIGNN_DEFAULTS",
    "DE_ALIGNN_DEFAULTS",
    "GraphParams",
    "AlignnGraph",
    "build_graph",
    "load_or_build_graphs",
    "bench_models",
]

GRAPH_FORMAT_VERSION = "1"

# Defaults follow the ALIGNN paper (Choudhary & DeCost, npj Comput. Mater. 7,
# 185 (2021)) as used by Gong et al. 2023: 8 A / 12 neighbours, 4 ALIGNN +
# 4 GCN layers, 80 RBF bins on bond lengths (0-8 A) and 40 on bond-angle
# cosines, 64-d RBF embedding, 256-d hidden features, CGCNN 92-d atom
# features, AdamW (lr 1e-3, weight decay 1e-5), batch size 64, 300 epochs.
ALIGNN_DEFAULTS: dict[str, Any] = {
    "cutoff": 8.0,  # A, neighbour search radius
    "max_neighbors": 12,  # k of the k-NN graph (ties at the k-th shell kept)
    "extend_cutoff": False,  # True: the alignn package's cutoff growth for sparse sites
    "alignn_layers": 4,
    "gcn_layers": 4,
    "edge_input_features": 80,  # RBF bins on bond length
    "triplet_input_features": 40,  # RBF bins on bond-angle cosine
    "embedding_features": 64,
    "hidden_features": 256,
    "fc_layers": 0,  # hidden layers in the output head (ALIGNN: a single linear layer)
    "pooling": "mean",  # paper eq. 13; the harness picks sum for extensive targets
    "epochs": 300,  # the paper's GNN budget; early stopping usually ends sooner
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "patience": 50,  # epochs without validation improvement before stopping
}

# de-ALIGNN: the standardized descriptor vector joins the pooled embedding
# (paper eq. 14). One hidden layer in the head lets descriptors interact
# non-linearly with the graph embedding instead of only shifting the output.
DE_ALIGNN_DEFAULTS: dict[str, Any] = {**ALIGNN_DEFAULTS, "fc_layers": 1}


# ---------------------------------------------------------------------------
# Graph construction and cache (numpy only)
# ---------------------------------------------------------------------------


class GraphParams:
    """The hyperparameters that change the graph; they name its cache folder."""

    def __init__(self, cutoff: float = 8.0, max_neighbors: int = 12, extend_cutoff: bool = False) -> None:
        if cutoff <= 0 or max_neighbors < 1:
            raise ValueError(f"bad graph parameters: cutoff={cutoff}, max_neighbors={max_neighbors}")
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.extend_cutoff = bool(extend_cutoff)

    @classmethod
    def from_hparams(cls, hp: Mapping[str, Any]) -> "GraphParams":
        return cls(
            cutoff=hp.get("cutoff", 8.0),
            max_neighbors=hp.get("max_neighbors", 12),
            extend_cutoff=hp.get("extend_cutoff", False),
        )

    @property
    def tag(self) -> str:
        spec = json.dumps(
            {
                "v": GRAPH_FORMAT_VERSION,
                "cutoff": self.cutoff,
                "k": self.max_neighbors,
                "extend": self.extend_cutoff,
            },
            sort_keys=True,
        )
        return f"r{self.cutoff:g}_k{self.max_neighbors}{'_ext' if self.extend_cutoff else ''}_" + hashlib.sha256(
            spec.encode()
        ).hexdigest()[:8]


class AlignnGraph:
    """One crystal's atom graph and line graph as plain arrays.

    z: (N,) atomic numbers. src/dst: (E,) directed bonds. r: (E, 3) bond
    vectors pos[dst] + image - pos[src] in A. lg_src/lg_dst: (T,) line-graph
    edges, indices into the bonds (bond u->v feeds bond v->w).
    """

    __slots__ = ("z", "src", "dst", "r", "lg_src", "lg_dst")
    KEYS = __slots__

    def __init__(self, z, src, dst, r, lg_src, lg_dst) -> None:
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

    def save(self, path: Path) -> None:
        """Atomic NPZ write (compact dtypes), so a killed job never leaves half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                z=self.z.astype(np.int16),
                src=self.src.astype(np.int32),
                dst=self.dst.astype(np.int32),
                r=self.r,
                lg_src=self.lg_src.astype(np.int32),
                lg_dst=self.lg_dst.astype(np.int32),
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "AlignnGraph":
        with np.load(path, allow_pickle=False) as npz:
            return cls(*(npz[k] for k in cls.KEYS))


def _knn_edges(structure, params: GraphParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def build_graph(structure, params: GraphParams | None = None) -> AlignnGraph:
    """ALIGNN atom graph + line graph of one pymatgen Structure."""
    params = params or GraphParams()
    src, dst, img = _knn_edges(structure, params)
    cart = np.asarray(structure.cart_coords, dtype=float)
    r = cart[dst] + img @ np.asarray(structure.lattice.matrix, dtype=float) - cart[src]
    lg_src, lg_dst = _line_graph(src, dst, len(structure))
    z = np.array([site.specie.Z for site in structure], dtype=np.int64)
    return AlignnGraph(z, src, dst, r, lg_src, lg_dst)


def graph_cache_dir(cache_dir: Path | None, params: GraphParams) -> Path:
    if cache_dir is None:
        from crystalbench.harness.paths import cache_dir as default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / "alignn_graphs" / params.tag


def load_or_build_graphs(
    data: Dataset,
    params: GraphParams,
    cache_dir: Path | None = None,
    progress: bool = False,
    stats: dict[str, int] | None = None,
) -> list[AlignnGraph]:
    """Graphs for every structure of `data`, from the on-disk cache where possible.

    Cached per structure (keyed by `structure_key` + graph parameters), so
    every split, fold and task sharing a structure reuses one file. `stats`,
    when given, receives `hits` and `built` counts.
    """
    if data.structures is None:
        from crystalbench.harness.errors import BadInputError

        raise BadInputError(f"dataset {data.name!r} has no structures; ALIGNN needs crystal structures")
    from tqdm.auto import tqdm

    root = graph_cache_dir(cache_dir, params)
    graphs: list[AlignnGraph] = []
    hits = built = 0
    for s in tqdm(data.structures, desc="alignn graphs", unit="struct", disable=not progress, leave=False):
        if len(s) == 0:
            from crystalbench.harness.errors import BadInputError

            raise BadInputError(f"dataset {data.name!r}: empty structure")
        if not s.is_ordered:
            from crystalbench.harness.errors import BadInputError

            raise BadInputError(f"dataset {data.name!r}: disordered structure {s.composition.reduced_formula}")
        key = structure_key(s)
        path = root / key[:2] / f"{key}.npz"
        g = None
        if path.is_file():
            try:
                g = AlignnGraph.load(path)
                hits += 1
            except Exception:  # any unreadable cache file (truncated zip...) is rebuilt
                g = None
        if g is None:
            g = build_graph(s, params)
            g.save(path)
            built += 1
        graphs.append(g)
    if stats is not None:
        stats["hits"] = stats.get("hits", 0) + hits
        stats["built"] = stats.get("built", 0) + built
    return graphs


@lru_cache(maxsize=4)
def atom_feature_table(kind: str = "cgcnn", max_z: int = 103) -> np.ndarray:
    """(max_z + 1, F) table of jarvis atom features indexed by atomic number (row 0 unused)."""
    from jarvis.core.specie import get_node_attributes
    from pymatgen.core.periodic_table import Element

    rows = []
    with contextlib.redirect_stdout(io.StringIO()):  # jarvis prints a note for Z > 100
        for z in range(1, max_z + 1):
            rows.append(np.asarray(get_node_attributes(Element.from_Z(z).symbol, atom_features=kind), dtype=np.float32))
    table = np.zeros((max_z + 1, len(rows[0])), dtype=np.float32)
    table[1:] = np.stack(rows)
    return table


# ---------------------------------------------------------------------------
# Network (torch; built lazily so importing this module stays torch-free)
# ---------------------------------------------------------------------------


class GraphBatch:
    """A collated batch: the package's `TorchGraph` pair plus atom counts and extra features."""

    def __init__(self, g, lg, n_atoms: "torch.Tensor", extra: "torch.Tensor | None") -> None:
        self.g, self.lg, self.n_atoms, self.extra = g, lg, n_atoms, extra

    def to(self, device) -> "GraphBatch":
        return GraphBatch(
            self.g.to(device),
            self.lg.to(device),
            self.n_atoms.to(device),
            None if self.extra is None else self.extra.to(device),
        )


def make_collate(atom_features: np.ndarray):
    """collate(list of (AlignnGraph, features row | None)) -> GraphBatch, with per-graph index offsets."""
    import torch
    from alignn.torch_graph_builder import TorchGraph

    table = torch.as_tensor(atom_features, dtype=torch.float32)

    def collate(items: Sequence[tuple[AlignnGraph, np.ndarray | None]]) -> GraphBatch:
        graphs = [it[0] for it in items]
        n_nodes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        n_edges = np.array([g.num_edges for g in graphs], dtype=np.int64)
        node_off = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        edge_off = np.concatenate([[0], np.cumsum(n_edges)[:-1]])
        z = np.concatenate([g.z for g in graphs])
        if z.max(initial=0) >= len(table):
            from crystalbench.harness.errors import BadInputError

            raise BadInputError(f"ALIGNN atom features cover Z <= {len(table) - 1}; got Z = {int(z.max())}")
        cat = lambda parts: torch.from_numpy(np.concatenate(parts))  # noqa: E731
        g = TorchGraph(
            num_nodes=int(n_nodes.sum()),
            src=cat([gr.src + o for gr, o in zip(graphs, node_off)]),
            dst=cat([gr.dst + o for gr, o in zip(graphs, node_off)]),
            ndata={"atom_features": table[torch.from_numpy(z)]},
            edata={"r": cat([gr.r for gr in graphs])},
            batch_num_nodes=torch.from_numpy(n_nodes),
            batch_num_edges=torch.from_numpy(n_edges),
        )
        lg = TorchGraph(
            num_nodes=int(n_edges.sum()),
            src=cat([gr.lg_src + o for gr, o in zip(graphs, edge_off)]),
            dst=cat([gr.lg_dst + o for gr, o in zip(graphs, edge_off)]),
        )
        extra = None
        if items and items[0][1] is not None:
            extra = torch.from_numpy(np.stack([it[1] for it in items]).astype(np.float32))
        return GraphBatch(g, lg, torch.from_numpy(n_nodes), extra)

    return collate


@lru_cache(maxsize=1)
def _net_class():
    """The torch module class, defined on first use (torch/alignn imported only then)."""
    import torch
    from torch import nn

    from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig

    from crystalbench.plugins.training import MLPHead

    class AlignnNet(nn.Module):
        """`ALIGNNAtomWisePure` as encoder + pooling (eq. 13) + head on [embedding; features] (eq. 14)."""

        def __init__(self, hp: Mapping[str, Any], atom_input_features: int, out_dim: int, extra_dim: int) -> None:
            super().__init__()
            hidden = int(hp["hidden_features"])
            config = ALIGNNAtomWisePureConfig(
                name="alignn_atomwise_pure",
                alignn_layers=int(hp["alignn_layers"]),
                gcn_layers=int(hp["gcn_layers"]),
                atom_input_features=atom_input_features,
                edge_input_features=int(hp["edge_input_features"]),
                triplet_input_features=int(hp["triplet_input_features"]),
                embedding_features=int(hp["embedding_features"]),
                hidden_features=hidden,
                # the package's forward then returns the mean-pooled embedding
                # untouched: no force/energy machinery, no penalty, no ZBL
                output_features=hidden,
                gradwise_weight=0.0,
                calculate_gradient=False,
                energy_mult_natoms=False,
                use_penalty=False,
                use_zbl=False,
                lg_on_fly=True,
            )
            self.encoder = ALIGNNAtomWisePure(config)
            self.encoder.fc = nn.Identity()
            self.pooling = str(hp["pooling"])
            self.head = MLPHead(
                hidden,
                hidden,
                out_dim,
                extra_dim=extra_dim,
                n_hidden=int(hp["fc_layers"]),
                activation=nn.SiLU,
            )

        def embed(self, batch: GraphBatch) -> torch.Tensor:
            """Pooled crystal embedding (B, hidden): mean over atoms, or their sum (= mean x n_atoms)."""
            h = self.encoder((batch.g, batch.lg, None))["out"]
            if self.pooling == "sum":
                h = h * batch.n_atoms.to(h.dtype).unsqueeze(-1)
            return h

        def forward(self, batch: GraphBatch) -> torch.Tensor:
            return self.head(self.embed(batch), batch.extra)

    return AlignnNet


# ---------------------------------------------------------------------------
# The benchmark model
# ---------------------------------------------------------------------------


class AlignnModel:
    """crystalbench `Model` for alignn / de-alignn (and `--descriptors` hybrids of alignn).

    Extra per-sample features are used whenever the training set carries them
    (`Dataset.features`); they are imputed and standardized on the training
    set (shared `FeatureInput`), then concatenated with the pooled embedding.
    After `fit`, `fit_info` holds the best epoch, epochs run and graph-cache
    statistics.
    """

    def __init__(
        self, ctx: ModelContext, defaults: Mapping[str, Any] = ALIGNN_DEFAULTS, *, name: str = "alignn", require_features: bool = False
    ) -> None:
        from crystalbench.harness.errors import BadInputError

        self.ctx = ctx
        self.name = name
        self.require_features = require_features
        self.hp: dict[str, Any] = {**defaults, **dict(ctx.hparams)}
        if self.hp["pooling"] not in ("mean", "sum"):
            raise BadInputError(f"alignn pooling must be 'mean' or 'sum', not {self.hp['pooling']!r}")
        self.graph_params = GraphParams.from_hparams(self.hp)
        self.fit_info: dict[str, Any] = {}
        self._result = None
        self._features = None
        self._collate = None

    def _items(self, data: Dataset, progress: bool, stats: dict[str, int]) -> list:
        graphs = load_or_build_graphs(data, self.graph_params, self.ctx.cache_dir, progress=progress, stats=stats)
        feats = self._features.transform(data)
        return [(g, None if feats is None else feats[i]) for i, g in enumerate(graphs)]

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from crystalbench.plugins.training import FeatureInput, TrainConfig, fit_torch

        classification = self.ctx.task_type == "classification"
        out_dim = 1
        if classification:
            out_dim = int(self.ctx.n_classes or (len(train.classes) if train.classes else int(np.max(train.targets)) + 1))
        if self.require_features and (train.features is None or train.features.shape[1] == 0):
            from crystalbench.harness.errors import BadInputError

            raise BadInputError(f"{self.name} needs descriptor features (default gong29) but none were attached")
        self._features = FeatureInput().fit(train)
        stats: dict[str, int] = {}
        train_items = self._items(train, progress, stats)
        val_items = self._items(val, progress, stats) if val is not None and len(val) else None
        table = atom_feature_table("cgcnn")
        self._collate = make_collate(table)
        cfg = TrainConfig.from_hparams(self.hp, task_type=self.ctx.task_type, device=self.ctx.device)
        net_cls = _net_class()
        extra_dim = self._features.dim
        self._result = fit_torch(
            lambda: net_cls(self.hp, table.shape[1], out_dim, extra_dim),
            train_items,
            train.targets,
            self._collate,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc=self.name,
        )
        self.fit_info = {**self._result.summary(), "n_extra_features": extra_dim, "graph_cache": stats}

    def predict(self, data: Dataset) -> np.ndarray:
        from crystalbench.plugins.training import predict_torch

        if self._result is None:
            raise RuntimeError("predict called before fit")
        items = self._items(data, False, {})
        return predict_torch(self._result, items, self._collate)


def _alignn(ctx: ModelContext) -> AlignnModel:
    return AlignnModel(ctx, ALIGNN_DEFAULTS, name="alignn")


def _de_alignn(ctx: ModelContext) -> AlignnModel:
    return AlignnModel(ctx, DE_ALIGNN_DEFAULTS, name="de-alignn", require_features=True)


_REFERENCE = "Choudhary & DeCost, npj Comput. Mater. 7, 185 (2021); alignn package (pure-torch ALIGNNAtomWisePure)"


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="alignn",
            factory=_alignn,
            description="ALIGNN: message passing on the atom graph and its bond-angle line graph (4 ALIGNN + 4 GCN layers).",
            defaults=ALIGNN_DEFAULTS,
            needs="structure",
            accepts_features=True,
            poolings=("mean", "sum"),
            classification=True,
            reference=_REFERENCE,
        ),
        ModelSpec(
            name="de-alignn",
            factory=_de_alignn,
            description="ALIGNN + gong29 descriptors concatenated with the pooled embedding (Gong et al. 2023, eq. 14).",
            defaults=DE_ALIGNN_DEFAULTS,
            needs="structure",
            accepts_features=True,
            descriptors="gong29",
            poolings=("mean", "sum"),
            default_pooling="mean",  # eq. 14: descriptors + mean-pooled embedding (see ModelSpec)
            classification=True,
            reference="Gong et al. 2023 (hybrid, eq. 14); " + _REFERENCE,
        ),
    ]

"""The ALIGNN / de-ALIGNN `Model`: typed hyperparameters, graph items, training through the shared loop.

Torch-free at import time (the network and the training loop are imported in `fit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.gnn.params import check_positive, check_training, param, params_of
from crystalbench.harness.seeding import apply_threads

from .graphs import AlignnGraph, AlignnGraphParams

if TYPE_CHECKING:  # pragma: no cover
    from crystalbench.gnn.graphs import GraphStats
    from crystalbench.gnn.heads import FeatureInput
    from crystalbench.gnn.trainer import FitResult

__all__ = ["AlignnParams", "DeAlignnParams", "AlignnModel", "make_alignn", "make_de_alignn"]


# Defaults: the alignn package's recipe (usnistgov/alignn, the version behind
# the paper and its Matbench v0.1 submission, alignn==2021.12.27) -- see
# docs/recipes.md. Architecture: `ALIGNNConfig` (alignn/models/alignn.py): 4
# ALIGNN + 4 GCN layers, 80 RBF bins on bond lengths (0-8 A), 40 on bond-angle
# cosines, 64-d RBF embedding, 256-d hidden features, CGCNN 92-d atom features.
# Training: `TrainingConfig` (alignn/config.py): AdamW, one-cycle schedule, 300
# epochs, batch 64, MSE, `n_early_stopping = None`; learning rate 1e-3 and weight
# decay 1e-5 from the package's example config (alignn/examples/sample_data/
# config_example.json, the paper's Methods; TrainingConfig's bare defaults are
# 1e-2 and 0). Graph: `neighbor_strategy = "k-nearest"`, cutoff 8, 12 neighbours,
# `use_canonize = True` (see graphs.py).
@dataclass(frozen=True)
class AlignnParams:
    """Hyperparameters of alignn: the alignn package's recipe (docs/recipes.md)."""

    # graph
    cutoff: float = param(8.0, "neighbour search radius (A); alignn config.py TrainingConfig.cutoff")
    max_neighbors: int = param(12, "k of the k-NN graph (alignn's k-nearest rule, graphs.py); TrainingConfig.max_neighbors")
    extend_cutoff: bool = param(
        True, "grow the cutoff until every atom has max_neighbors, as alignn's nearest_neighbor_edges does"
    )
    # architecture (alignn/models/alignn.py ALIGNNConfig, as in the paper)
    alignn_layers: int = param(4, "ALIGNN layers (atom graph + line graph); ALIGNNConfig.alignn_layers")
    gcn_layers: int = param(4, "edge-gated graph convolutions on the atom graph; ALIGNNConfig.gcn_layers")
    edge_input_features: int = param(80, "RBF bins on bond length; ALIGNNConfig.edge_input_features")
    triplet_input_features: int = param(40, "RBF bins on bond-angle cosine; ALIGNNConfig.triplet_input_features")
    embedding_features: int = param(64, "size of the RBF embeddings; ALIGNNConfig.embedding_features")
    hidden_features: int = param(256, "hidden size of atom/bond features; ALIGNNConfig.hidden_features")
    fc_layers: int = param(0, "hidden layers of the output head (ALIGNN: a single linear layer)")
    pooling: Literal["mean", "sum", "atom-sum"] = param(
        "mean",
        "readout: mean of atoms (intensive targets), sum of atoms, or atom-sum: output head per atom, "
        "then summed (extensive, paper eq. 13)",
    )
    # training: the alignn package's recipe (the shared loop's TrainConfig)
    epochs: int = param(300, "training epochs; alignn TrainingConfig.epochs (Matbench submission: 500)")
    batch_size: int = param(64, "crystals per optimisation step; TrainingConfig.batch_size (Matbench submission: 32)")
    optimizer: Literal["adam", "adamw", "sgd"] = param("adamw", "alignn TrainingConfig.optimizer")
    scheduler: Literal["none", "onecycle", "multistep"] = param(
        "onecycle", "alignn TrainingConfig.scheduler: OneCycleLR per batch, peak lr, pct_start 0.3 (alignn train.py)"
    )
    lr: float = param(1e-3, "peak learning rate; alignn examples config_example.json learning_rate")
    weight_decay: float = param(1e-5, "AdamW decoupled weight decay; alignn examples config_example.json")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only; alignn train.py uses 0.9)")
    lr_milestone: int = param(100, "epoch of the x0.1 step (scheduler = multistep only)")
    patience: int | None = param(
        None, "early stopping after this many epochs without validation improvement; None: off (TrainingConfig.n_early_stopping)"
    )

    def __post_init__(self) -> None:
        check_training(self)
        check_positive(
            self, "cutoff", "max_neighbors", "edge_input_features", "triplet_input_features",
            "embedding_features", "hidden_features",
        )
        check_positive(self, "alignn_layers", "gcn_layers", "fc_layers", allow_zero=True)

    @property
    def graph(self) -> AlignnGraphParams:
        return AlignnGraphParams(cutoff=self.cutoff, max_neighbors=self.max_neighbors, extend_cutoff=self.extend_cutoff)


@dataclass(frozen=True)
class DeAlignnParams(AlignnParams):
    """Hyperparameters of de-alignn: alignn's, with one hidden layer in the head.

    The standardized descriptor vector joins the pooled embedding (paper eq.
    14); one hidden layer lets descriptors interact non-linearly with the graph
    embedding instead of only shifting the output.
    """

    fc_layers: int = param(1, "hidden layers of the output head (1: descriptors interact with the embedding)")


class AlignnModel:
    """crystalbench `Model` for alignn / de-alignn (and `--descriptors` hybrids of alignn).

    Extra per-sample features are used whenever the training set carries them
    (`Dataset.features`); they are imputed and standardized on the training
    set (shared `FeatureInput`), then concatenated with the pooled embedding.
    After `fit`, `fit_info` holds the best epoch, epochs run, the torch thread
    count and graph-cache statistics.
    """

    def __init__(
        self,
        ctx: ModelContext,
        params_class: type[AlignnParams] = AlignnParams,
        *,
        name: str = "alignn",
        require_features: bool = False,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.require_features = require_features
        self.params: AlignnParams = params_of(ctx, name, params_class)
        self.fit_info: dict[str, Any] = {}
        self._result: FitResult | None = None
        self._features: FeatureInput | None = None
        self._collate: Callable[[Any], Any] | None = None

    def _items(self, data: Dataset, progress: bool, stats: GraphStats) -> list[tuple[AlignnGraph, np.ndarray | None]]:
        from crystalbench.gnn.atom_features import check_elements
        from crystalbench.gnn.graphs import model_graph_store

        from .graphs import alignn_graph_kind, load_or_build_graphs

        kind = alignn_graph_kind(self.params.graph)
        store = model_graph_store(self.ctx, kind.namespace, kind.version)
        graphs = load_or_build_graphs(data, self.params.graph, store, progress=progress, stats=stats)
        check_elements((g.z for g in graphs), what="atom features (ALIGNN uses the CGCNN embedding)")
        assert self._features is not None
        feats = self._features.transform(data)
        return [(g, None if feats is None else feats[i]) for i, g in enumerate(graphs)]

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from crystalbench.gnn.atom_features import atom_feature_table
        from crystalbench.gnn.graphs import GraphStats
        from crystalbench.gnn.heads import FeatureInput, atom_sum_shift
        from crystalbench.gnn.trainer import TrainConfig, fit_torch, output_dim

        from .net import AlignnNet, make_collate

        apply_threads(self.ctx.threads)
        if self.require_features and (train.features is None or train.features.shape[1] == 0):
            raise BadInputError(f"{self.name} needs descriptor features (default gong29) but none were attached")
        out_dim = output_dim(self.ctx.task_type, self.ctx.n_classes, train)
        features = FeatureInput().fit(train)
        self._features = features
        stats = GraphStats()
        train_items = self._items(train, progress, stats)
        val_items = self._items(val, progress, stats) if val is not None and len(val) else None
        table = atom_feature_table()
        collate = make_collate(table)
        self._collate = collate
        cfg = TrainConfig.from_params(self.params, task_type=self.ctx.task_type, device=self.ctx.device)
        params, extra_dim = self.params, features.dim
        shift = atom_sum_shift(train.targets, self.ctx.task_type) if params.pooling == "atom-sum" else 0.0
        self._result = fit_torch(
            lambda: AlignnNet(params, table.shape[1], out_dim, extra_dim, output_shift=shift),
            train_items,
            train.targets,
            collate,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val is None or val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc=self.name,
        )
        self.fit_info = {**self._result.summary(), "n_extra_features": extra_dim, "graph_cache": stats.as_dict()}

    def predict(self, data: Dataset) -> np.ndarray:
        from crystalbench.gnn.graphs import GraphStats
        from crystalbench.gnn.trainer import predict_torch

        if self._result is None or self._collate is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        items = self._items(data, False, GraphStats())
        return predict_torch(self._result, items, self._collate)


def make_alignn(ctx: ModelContext) -> AlignnModel:
    """Factory of `alignn`."""
    return AlignnModel(ctx, AlignnParams, name="alignn")


def make_de_alignn(ctx: ModelContext) -> AlignnModel:
    """Factory of `de-alignn` (requires descriptor features)."""
    return AlignnModel(ctx, DeAlignnParams, name="de-alignn", require_features=True)

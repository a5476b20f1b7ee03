"""The CGCNN / de-CGCNN `Model`: typed hyperparameters, graph items, training through the shared loop.

Torch-free at import time (the network and the training loop are imported in `fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.gnn.params import check_positive, check_training, param, params_of
from crystalbench.harness.seeding import apply_threads

if TYPE_CHECKING:  # pragma: no cover
    from crystalbench.gnn.graphs import CrystalGraph, GraphStats
    from crystalbench.gnn.heads import FeatureInput
    from crystalbench.gnn.trainer import FitResult

__all__ = ["CGCNNParams", "CGCNNModel", "make_cgcnn", "make_de_cgcnn"]


@dataclass(frozen=True)
class CGCNNParams:
    """Hyperparameters of cgcnn and de-cgcnn: Gong et al. 2023's recipe (Methods, Table S2); see docs/recipes.md."""

    # architecture
    atom_fea_len: int = param(64, "atom embedding size (paper search space 32/64)")
    n_conv: int = param(3, "graph convolutions")
    h_fea_len: int = param(128, "hidden size of the output network (paper search space 64/128)")
    n_h: int = param(1, "hidden layers of the output network (paper search space 1/2/3)")
    dropout: float = param(0.0, "dropout after each hidden layer of the output network")
    pooling: Literal["mean", "sum", "atom-sum"] = param(
        "mean",
        "readout: mean of atoms (intensive targets), sum of atoms, or atom-sum: output network per atom, "
        "then summed (extensive, paper eq. 13)",
    )
    # graph
    radius: float = param(8.0, "neighbour search radius (A)")
    max_neighbors: int = param(12, "neighbours kept per atom (nearest first)")
    gaussian_step: float = param(0.2, "spacing of the Gaussian distance expansion (A)")
    # training: Gong et al. 2023's recipe (docs/recipes.md; txie-93/cgcnn's is one --config away)
    epochs: int = param(300, "training epochs (Gong et al. 2023 Methods; txie-93/cgcnn main.py --epochs: 30)")
    batch_size: int = param(64, "crystals per optimisation step (txie-93/cgcnn main.py --batch-size: 256)")
    optimizer: Literal["adam", "adamw", "sgd"] = param(
        "adam", "as measured here for the paper's tasks (txie-93/cgcnn main.py --optim default: SGD)"
    )
    scheduler: Literal["none", "onecycle", "multistep"] = param(
        "none", "constant lr as measured for the paper's tasks (txie-93/cgcnn: MultiStepLR, x0.1 at epoch 100)"
    )
    lr: float = param(
        1e-2, "learning rate: the paper's Table S2 search space 1e-3/1e-2; 1e-2 won on chains and phonon_cv (= txie-93 --lr)"
    )
    weight_decay: float = param(0.0, "L2 penalty (txie-93/cgcnn main.py --weight-decay: 0)")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only; txie-93/cgcnn main.py --momentum: 0.9)")
    lr_milestone: int = param(100, "epoch of the x0.1 step (scheduler = multistep only; txie-93 --lr-milestones: 100)")
    patience: int | None = param(
        None, "early stopping after this many epochs without validation improvement; None: off (txie-93 keeps the best epoch)"
    )
    precise_bn: bool = param(True, "recompute BatchNorm statistics before each validation (see TrainConfig)")
    precise_bn_batches: int = param(2, "training batches each recalibration averages over (1 was 9% worse on phonons, 4 no better)")
    precise_bn_tolerance: float | None = param(
        5.0, "recompute them only while the running averages drift this many std devs or more; 0: every epoch"
    )

    def __post_init__(self) -> None:
        check_training(self)
        check_positive(self, "atom_fea_len", "h_fea_len", "radius", "max_neighbors", "gaussian_step")
        check_positive(self, "n_conv", "n_h", allow_zero=True)
        if self.gaussian_step > self.radius:
            raise ValueError(f"invalid CGCNNParams: gaussian_step {self.gaussian_step} exceeds radius {self.radius}")


class CGCNNModel:
    """A CGCNN (hybrid when the data carries extra features) behind the harness `Model` protocol.

    require_features: de-cgcnn sets it, so running it without descriptors fails
        loudly instead of silently degrading to plain CGCNN.
    After `fit`, `fit_info` holds the best epoch, epochs run, the torch thread
    count used and graph-cache statistics.
    """

    def __init__(self, ctx: ModelContext, *, name: str = "cgcnn", require_features: bool = False) -> None:
        self.ctx = ctx
        self.name = name
        self.params: CGCNNParams = params_of(ctx, name, CGCNNParams)
        self.require_features = require_features
        self.fit_result: FitResult | None = None
        self._features: FeatureInput | None = None
        self._stats: GraphStats | None = None

    # -- data -> items --------------------------------------------------------
    def _graphs(self, data: Dataset, progress: bool) -> list[CrystalGraph]:
        from crystalbench.gnn.atom_features import check_elements
        from crystalbench.gnn.graphs import GraphParams, GraphStats, build_graphs, crystal_graph_kind, model_graph_store

        if data.structures is None:
            raise BadInputError(f"{self.name} needs crystal structures; dataset {data.name!r} has only compositions")
        gp = GraphParams(radius=self.params.radius, max_neighbors=self.params.max_neighbors)
        kind = crystal_graph_kind(gp)
        if self._stats is None:
            self._stats = GraphStats()
        graphs = build_graphs(
            data.structures,
            params=gp,
            keys=data.structure_keys,
            store=model_graph_store(self.ctx, kind.namespace, kind.version),
            progress=progress,
            stats=self._stats,
        )
        check_elements(g.numbers for g in graphs)
        return graphs

    def _items(self, data: Dataset, progress: bool) -> list[Any]:
        graphs = self._graphs(data, progress)
        assert self._features is not None
        feats = self._features.transform(data)
        if feats is None:
            return list(graphs)
        return [(g, f) for g, f in zip(graphs, feats)]

    # -- Model protocol -------------------------------------------------------
    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from crystalbench.gnn.graphs import collate_graphs
        from crystalbench.gnn.heads import FeatureInput, atom_sum_shift
        from crystalbench.gnn.trainer import TrainConfig, fit_torch, output_dim

        from .net import CGCNNNet

        apply_threads(self.ctx.threads)
        if self.require_features and (train.features is None or train.features.shape[1] == 0):
            raise BadInputError(
                f"{self.name} concatenates a descriptor vector with the graph embedding but the training set "
                "has no features; run it through the harness (it attaches gong29) or pass --descriptors NAME"
            )
        features = FeatureInput().fit(train)
        self._features = features
        train_items = self._items(train, progress)
        val_items = self._items(val, progress) if val is not None and len(val) else None
        p = self.params
        out_dim = output_dim(self.ctx.task_type, self.ctx.n_classes, train)
        shift = atom_sum_shift(train.targets, self.ctx.task_type) if p.pooling == "atom-sum" else 0.0

        def build() -> CGCNNNet:
            return CGCNNNet(
                atom_fea_len=p.atom_fea_len,
                n_conv=p.n_conv,
                h_fea_len=p.h_fea_len,
                n_h=p.n_h,
                radius=p.radius,
                gaussian_step=p.gaussian_step,
                pooling=p.pooling,
                out_dim=out_dim,
                extra_dim=features.dim,
                dropout=p.dropout,
                output_shift=shift,
            )

        cfg = TrainConfig.from_params(p, task_type=self.ctx.task_type, device=self.ctx.device)
        self.fit_result = fit_torch(
            build,
            train_items,
            train.targets,
            collate_graphs,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val is None or val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc=self.name,
        )

    @property
    def fit_info(self) -> dict[str, Any]:
        """Best epoch, epochs run, best validation score, threads, graph cache: for the results record."""
        if self.fit_result is None:
            return {}
        info = self.fit_result.summary()
        info["n_extra_features"] = 0 if self._features is None else self._features.dim
        if self._stats is not None:
            info["graph_cache"] = self._stats.as_dict()
        return info

    def embed(self, data: Dataset) -> np.ndarray:
        """The fitted network's pooled crystal embeddings, (n, atom_fea_len) float32, weights untouched.

        What "CGCNN + descriptors" (`cgcnn+desc`) freezes and hands to its second
        model. A plain CGCNN only: a hybrid's embedding was learned with its
        descriptors, and atom-sum has no pooled embedding.
        """
        import torch

        from crystalbench.gnn.graphs import collate_graphs
        from crystalbench.gnn.trainer import deterministic, to_device

        from .net import CGCNNNet

        if self.fit_result is None:
            raise RuntimeError(f"{self.name}: embed called before fit")
        if self._features is not None and self._features.dim:
            raise BadInputError(f"{self.name}: embeddings of a descriptor hybrid are not a frozen plain CGCNN's")
        net = self.fit_result.module
        assert isinstance(net, CGCNNNet)
        device = next(net.parameters()).device
        graphs = self._graphs(data, progress=False)
        size = self.params.batch_size
        net.eval()
        parts = []
        with deterministic(device), torch.no_grad():
            for start in range(0, len(graphs), size):
                batch = to_device(collate_graphs(graphs[start : start + size]), device)
                parts.append(net.embed(batch).float().cpu())
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.params.atom_fea_len), dtype=np.float32)

    def predict(self, data: Dataset) -> np.ndarray:
        from crystalbench.gnn.graphs import collate_graphs
        from crystalbench.gnn.trainer import predict_torch

        if self.fit_result is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return predict_torch(self.fit_result, self._items(data, progress=False), collate_graphs)


def make_cgcnn(ctx: ModelContext) -> CGCNNModel:
    """Factory of `cgcnn`."""
    return CGCNNModel(ctx, name="cgcnn")


def make_de_cgcnn(ctx: ModelContext) -> CGCNNModel:
    """Factory of `de-cgcnn` (requires descriptor features)."""
    return CGCNNModel(ctx, name="de-cgcnn", require_features=True)

"""`cgcnn` and `de-cgcnn`: Crystal Graph Convolutional Neural Networks and their descriptor hybrid.

CGCNN: Xie & Grossman, PRL 120, 145301 (2018). de-CGCNN: Gong et al., Nat.
Commun. 14, 5224 (2023), eq. 14: the `gong29` descriptor vector, standardized,
is concatenated with the pooled crystal embedding before the output network and
the whole model is trained end to end.

Hybridization is generic: whenever the dataset carries extra feature columns
(`--descriptors NAME` or a spec default), `cgcnn` consumes them the same way;
`de-cgcnn` is `cgcnn` with ``descriptors="gong29"`` and refuses to run without
features. Torch is imported only when a model is fitted.

Defaults follow the paper (Methods and Table S2): 8 A / 12 neighbours, Gaussian
step 0.2 A, atom_fea_len 64, 3 convolutions, h_fea_len 128, 1 hidden layer,
mean pooling, 300 epochs. Training uses the shared loop in `training.py`
(Adam, lr 1e-2 -- the upper value of the paper's 1e-3/1e-2 search space, better
than 1e-3 in all five comparisons we ran on chain1d_short and phonon_cv -- batch
64, early stopping on validation MAE with patience 50 and the best epoch restored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from crystalbench.harness.dataset import Dataset
from crystalbench.harness.errors import BadInputError
from crystalbench.harness.hookspecs import hookimpl
from crystalbench.harness.specs import ModelContext, ModelSpec

__all__ = ["CGCNN_DEFAULTS", "CGCNNModel", "bench_models"]

CGCNN_DEFAULTS: dict[str, Any] = {
    # architecture (paper defaults)
    "atom_fea_len": 64,  # atom embedding size (search space 32/64)
    "n_conv": 3,  # graph convolutions
    "h_fea_len": 128,  # hidden size of the output network (search space 64/128)
    "n_h": 1,  # hidden layers of the output network (search space 1/2/3)
    "dropout": 0.0,
    "pooling": "mean",  # mean | sum (sum for extensive targets, paper eq. 13)
    # graph
    "radius": 8.0,  # A
    "max_neighbors": 12,
    "gaussian_step": 0.2,  # A
    # training (training.TrainConfig)
    "epochs": 300,  # the paper's; early stopping usually ends runs sooner
    "batch_size": 64,
    "lr": 1e-2,  # search space 1e-3/1e-2; 1e-2 won on chains and phonon_cv (see docs/models.md)
    "weight_decay": 0.0,
    "patience": 50,  # epochs without validation improvement
    "precise_bn": True,  # recompute BatchNorm statistics before each validation (see TrainConfig)
    "device": "cpu",
}

REFERENCE_CGCNN = "Xie & Grossman, Phys. Rev. Lett. 120, 145301 (2018)"
REFERENCE_DE = "Gong et al., Nat. Commun. 14, 5224 (2023), eq. 14 (CGCNN + gong29 descriptors)"


class CGCNNModel:
    """A CGCNN (hybrid when the data carries extra features) behind the harness Model protocol.

    require_features: de-cgcnn sets it, so running it without descriptors fails
        loudly instead of silently degrading to plain CGCNN.
    """

    def __init__(self, ctx: ModelContext, *, name: str = "cgcnn", require_features: bool = False) -> None:
        hp = dict(CGCNN_DEFAULTS)
        hp.update(ctx.hparams)
        self.hp: Mapping[str, Any] = hp
        self.ctx = ctx
        self.name = name
        self.require_features = require_features
        self.fit_result = None  # training.FitResult after fit (best epoch, history)
        self._features = None
        if hp["pooling"] not in ("mean", "sum"):
            raise BadInputError(f"{name}: pooling must be 'mean' or 'sum', not {hp['pooling']!r}")

    # -- data -> items --------------------------------------------------------
    def _cache(self) -> Path | None:
        return Path(self.ctx.cache_dir) if self.ctx.cache_dir is not None else None

    def _items(self, data: Dataset, progress: bool) -> list:
        from .graphs import GraphParams, build_graphs, check_elements

        if data.structures is None:
            raise BadInputError(f"{self.name} needs crystal structures; dataset {data.name!r} has only compositions")
        params = GraphParams(radius=float(self.hp["radius"]), max_neighbors=int(self.hp["max_neighbors"]))
        graphs = build_graphs(
            data.structures, params=params, keys=data.structure_keys, cache_dir=self._cache(), progress=progress
        )
        check_elements(graphs)
        feats = self._features.transform(data)
        if feats is None:
            return graphs
        return [(g, f) for g, f in zip(graphs, feats)]

    def _n_out(self, train: Dataset) -> int:
        if self.ctx.task_type != "classification":
            return 1
        if self.ctx.n_classes:
            return int(self.ctx.n_classes)
        if train.classes:
            return len(train.classes)
        return int(np.max(train.targets)) + 1

    # -- Model protocol -------------------------------------------------------
    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from .cgcnn_net import CGCNNNet
        from .graphs import collate_graphs
        from .training import FeatureInput, TrainConfig, fit_torch

        if self.require_features and train.features is None:
            raise BadInputError(
                f"{self.name} concatenates a descriptor vector with the graph embedding but the training set "
                "has no features; run it through the harness (it attaches gong29) or pass --descriptors NAME"
            )
        self._features = FeatureInput().fit(train)
        train_items = self._items(train, progress)
        val_items = self._items(val, progress) if val is not None and len(val) else None
        hp = self.hp
        out_dim = self._n_out(train)

        def build() -> CGCNNNet:
            return CGCNNNet(
                atom_fea_len=int(hp["atom_fea_len"]),
                n_conv=int(hp["n_conv"]),
                h_fea_len=int(hp["h_fea_len"]),
                n_h=int(hp["n_h"]),
                radius=float(hp["radius"]),
                gaussian_step=float(hp["gaussian_step"]),
                pooling=str(hp["pooling"]),
                out_dim=out_dim,
                extra_dim=self._features.dim,
                dropout=float(hp["dropout"]),
            )

        cfg = TrainConfig.from_hparams(hp, task_type=self.ctx.task_type, device=self.ctx.device)
        self.fit_result = fit_torch(
            build,
            train_items,
            train.targets,
            collate_graphs,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc=self.name,
        )

    @property
    def fit_info(self) -> dict[str, Any]:
        """Best epoch, epochs run, best validation score: for the results record."""
        return {} if self.fit_result is None else self.fit_result.summary()

    def predict(self, data: Dataset) -> np.ndarray:
        from .graphs import collate_graphs
        from .training import predict_torch

        if self.fit_result is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return predict_torch(self.fit_result, self._items(data, progress=False), collate_graphs)


def _cgcnn(ctx: ModelContext) -> CGCNNModel:
    return CGCNNModel(ctx, name="cgcnn")


def _de_cgcnn(ctx: ModelContext) -> CGCNNModel:
    return CGCNNModel(ctx, name="de-cgcnn", require_features=True)


@hookimpl
def bench_models() -> list[ModelSpec]:
    common = dict(
        defaults=dict(CGCNN_DEFAULTS),
        needs="structure",
        accepts_features=True,
        poolings=("mean", "sum"),
        classification=True,
        needs_validation=True,
    )
    return [
        ModelSpec(
            name="cgcnn",
            factory=_cgcnn,
            description="Crystal graph CNN (8 A, 12 neighbours, 3 gated convolutions); "
            "hybridizes with --descriptors NAME",
            descriptors=None,
            reference=REFERENCE_CGCNN,
            **common,
        ),
        ModelSpec(
            name="de-cgcnn",
            factory=_de_cgcnn,
            description="CGCNN with the gong29 descriptors concatenated to the pooled embedding, end to end",
            descriptors="gong29",
            default_pooling="mean",  # eq. 14: descriptors + mean-pooled embedding (see ModelSpec)
            reference=REFERENCE_DE,
            **common,
        ),
    ]

"""The `cgcnn+desc` `Model`: train a plain CGCNN, freeze it, fit a new network on [embedding ; descriptors].

Torch-free at import time (the training loop is imported in `fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.gnn.params import param, params_of
from crystalbench.harness.seeding import apply_threads
from crystalbench.harness.telemetry import observing_epochs
from crystalbench.plugins.cgcnn.model import CGCNNModel, CGCNNParams

if TYPE_CHECKING:  # pragma: no cover
    from crystalbench.gnn.heads import FeatureInput
    from crystalbench.gnn.trainer import FitResult

__all__ = ["CGCNNDescParams", "CGCNNDescModel", "make_cgcnn_desc"]


@dataclass(frozen=True)
class CGCNNDescParams(CGCNNParams):
    """cgcnn's hyperparameters, for the frozen CGCNN and (shape and recipe) for the new network on top."""

    pooling: Literal["mean", "sum"] = param(
        "mean", "readout of the frozen CGCNN whose pooled embedding is reused (Table S1: average pooling)"
    )


class CGCNNDescModel:
    """Two stages: `cgcnn` on the target, then an MLP on its frozen embedding and the descriptors.

    After `fit`, `fit_info` is the second stage's summary (best epoch, recipe,
    time) with the frozen CGCNN's under ``"frozen_cgcnn"``.
    """

    def __init__(self, ctx: ModelContext, *, name: str = "cgcnn+desc") -> None:
        self.ctx = ctx
        self.name = name
        self.params: CGCNNDescParams = params_of(ctx, name, CGCNNDescParams)
        self.cgcnn: CGCNNModel | None = None
        self.fit_result: FitResult | None = None
        self._features: FeatureInput | None = None
        self._scale: tuple[np.ndarray, np.ndarray] | None = None

    # -- stage 1: the representation ------------------------------------------
    def _fit_cgcnn(self, train: Dataset, val: Dataset | None, seed: int, progress: bool) -> CGCNNModel:
        """A plain CGCNN trained without the descriptors (they must not shape the representation)."""
        cgcnn = CGCNNModel(replace(self.ctx, params=self.params), name=f"{self.name} (frozen cgcnn)")
        # only the final network's validation is reported to a tuner's pruner
        with observing_epochs(None):
            cgcnn.fit(_plain(train), None if val is None else _plain(val), seed=seed, progress=progress)
        return cgcnn

    def _inputs(self, data: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
        """(standardized frozen embedding, standardized descriptors) per sample."""
        assert self.cgcnn is not None and self._features is not None and self._scale is not None
        emb = self.cgcnn.embed(_plain(data))
        mean, std = self._scale
        emb = ((emb - mean) / std).astype(np.float32)
        desc = self._features.transform(data)
        assert desc is not None
        return list(zip(emb, desc))

    # -- Model protocol -------------------------------------------------------
    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from crystalbench.gnn.heads import FeatureInput
        from crystalbench.gnn.trainer import TrainConfig, fit_torch, output_dim

        from .net import SecondNetwork, stack_inputs

        apply_threads(self.ctx.threads)
        if train.features is None or train.features.shape[1] == 0:
            raise BadInputError(
                f"{self.name} feeds descriptors to its second network but the training set has no features; "
                "run it through the harness (it attaches gong29) or pass --descriptors NAME"
            )
        self.cgcnn = self._fit_cgcnn(train, val, seed, progress)
        self._features = FeatureInput().fit(train)
        emb = self.cgcnn.embed(_plain(train))
        std = emb.std(axis=0)
        self._scale = (emb.mean(axis=0), np.where(std > 1e-12, std, 1.0))
        train_items = self._inputs(train)
        val_items = self._inputs(val) if val is not None and len(val) else None
        p, n_desc, out_dim = self.params, self._features.dim, output_dim(self.ctx.task_type, self.ctx.n_classes, train)

        def build() -> SecondNetwork:
            return SecondNetwork(emb.shape[1], p.h_fea_len, out_dim, n_desc, p.n_h, p.dropout)

        cfg = TrainConfig.from_params(p, task_type=self.ctx.task_type, device=self.ctx.device)
        self.fit_result = fit_torch(
            build, train_items, train.targets, stack_inputs, cfg=cfg, val_items=val_items,
            y_val=None if val_items is None or val is None else val.targets,
            seed=seed, progress=progress, desc=self.name,
        )

    @property
    def fit_info(self) -> dict[str, Any]:
        if self.fit_result is None or self.cgcnn is None:
            return {}
        return {
            **self.fit_result.summary(),
            "n_extra_features": 0 if self._features is None else self._features.dim,
            "frozen_cgcnn": self.cgcnn.fit_info,
        }

    def predict(self, data: Dataset) -> np.ndarray:
        from crystalbench.gnn.trainer import predict_torch

        from .net import stack_inputs

        if self.fit_result is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return predict_torch(self.fit_result, self._inputs(data), stack_inputs)


def _plain(data: Dataset) -> Dataset:
    """The same samples without extra feature columns (what the frozen CGCNN sees)."""
    return replace(data, features=None, feature_names=())


def make_cgcnn_desc(ctx: ModelContext) -> CGCNNDescModel:
    """Factory of `cgcnn+desc`."""
    return CGCNNDescModel(ctx)

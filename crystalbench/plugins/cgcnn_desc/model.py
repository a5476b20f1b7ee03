"""The `cgcnn+desc` `Model`: train a plain CGCNN, freeze it, fit a new network on [embedding ; descriptors].

The first stage is `TorchModel.prepare` (a whole `cgcnn` fit); the second is the
base's training of `SecondNetwork` on (frozen embedding, descriptors) items.
Torch-free at import time (the training loop is imported in `fit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import Dataset, ModelContext, observing_epochs
from crystalbench.gnn.torch_model import TorchModel
from crystalbench.plugins.cgcnn.model import CGCNNModel

from .params import CGCNNDescParams

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["CGCNNDescParams", "CGCNNDescModel", "make_cgcnn_desc"]


class CGCNNDescModel(TorchModel):
    """Two stages: `cgcnn` on the target, then an MLP on its frozen embedding and the descriptors.

    After `fit`, `fit_info` is the second stage's summary (best epoch, recipe,
    time) with the frozen CGCNN's under ``"frozen_cgcnn"``.
    """

    params_class = CGCNNDescParams
    missing_features = (
        "feeds descriptors to its second network but the training set has no features; "
        "run it through the harness (it attaches gong29) or pass --descriptors NAME"
    )
    params: CGCNNDescParams

    def __init__(self, ctx: ModelContext, *, name: str = "cgcnn+desc") -> None:
        super().__init__(ctx, name=name, require_features=True)
        self.cgcnn: CGCNNModel | None = None
        self._scale: tuple[np.ndarray, np.ndarray] | None = None
        self._emb_dim = 0

    # -- stage 1: the representation ------------------------------------------
    def prepare(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        """A plain CGCNN trained without the descriptors (they must not shape the representation)."""
        cgcnn = CGCNNModel(replace(self.ctx, params=self.params), name=f"{self.name} (frozen cgcnn)")
        # only the final network's validation is reported to a tuner's pruner
        with observing_epochs(None):
            cgcnn.fit(_plain(train), None if val is None else _plain(val), seed=seed, progress=progress)
        self.cgcnn = cgcnn
        emb = cgcnn.embed(_plain(train))
        std = emb.std(axis=0)
        self._scale = (emb.mean(axis=0), np.where(std > 1e-12, std, 1.0))
        self._emb_dim = emb.shape[1]

    # -- stage 2: the new network on [embedding ; descriptors] ------------------
    def items(self, data: Dataset, *, progress: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """(standardized frozen embedding, standardized descriptors) per sample."""
        assert self.cgcnn is not None and self.features is not None and self._scale is not None
        emb = self.cgcnn.embed(_plain(data))
        mean, std = self._scale
        emb = ((emb - mean) / std).astype(np.float32)
        desc = self.features.transform(data)
        assert desc is not None
        return list(zip(emb, desc))

    def collate(self) -> Callable[[list[Any]], Any]:
        from .net import stack_inputs

        return stack_inputs

    def network(self, train: Dataset) -> Callable[[], nn.Module]:
        from .net import SecondNetwork

        p, emb_dim, n_desc, out_dim = self.params, self._emb_dim, self.features_dim, self.out_dim(train)
        return lambda: SecondNetwork(emb_dim, p.h_fea_len, out_dim, n_desc, p.n_h, p.dropout)

    def extra_fit_info(self) -> dict[str, Any]:
        return {**super().extra_fit_info(), "frozen_cgcnn": {} if self.cgcnn is None else self.cgcnn.fit_info}


def _plain(data: Dataset) -> Dataset:
    """The same samples without extra feature columns (what the frozen CGCNN sees)."""
    return replace(data, features=None, feature_names=())


def make_cgcnn_desc(ctx: ModelContext) -> CGCNNDescModel:
    """Factory of `cgcnn+desc`."""
    return CGCNNDescModel(ctx)

"""Readout pieces shared by the GNNs: atom pooling, the MLP head, and descriptor inputs for hybrids.

`FeatureInput` and `MLPHead` let any GNN consume ``Dataset.features``
(descriptors) the way de-CGCNN does (Gong et al. 2023, eq. 14): standardized
descriptors are concatenated with the pooled crystal embedding before the
output network, and the whole model trains end to end. This module imports
torch at import time: plugin modules import it inside their fit methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn

from crystalbench.harness.dataset import Dataset
from crystalbench.harness.errors import BadInputError
from crystalbench.harness.features import FeatureScaler

__all__ = ["FeatureInput", "MLPHead", "pool_atoms", "Pooling"]

Pooling = Literal["mean", "sum"]


def pool_atoms(x: torch.Tensor, crystal: torch.Tensor, n_crystals: int, pooling: str) -> torch.Tensor:
    """Per-crystal mean (intensive, the CGCNN default) or sum (extensive targets, Gong et al. eq. 13) of atom vectors.

    `crystal[i]` is the crystal of atom i. Uses `index_add` (its backward is a
    gather), deterministic on CPU for any thread count.
    """
    out = torch.zeros(n_crystals, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, crystal, x)
    if pooling == "sum":
        return out
    if pooling == "mean":
        counts = torch.bincount(crystal, minlength=n_crystals).clamp(min=1).to(x.dtype)
        return out / counts[:, None]
    raise ValueError(f"unknown pooling {pooling!r}; choose mean or sum")


class FeatureInput:
    """Extra per-sample features (`Dataset.features`) as model input, for hybrid models.

    Fit on the training set only: NaN/inf are imputed with training medians and
    columns standardized (the shared `FeatureScaler`, so rf and every hybrid GNN
    treat missing descriptors identically). `dim` is 0 when the training set has
    no features, and the model then behaves as a plain GNN.
    """

    def __init__(self) -> None:
        self.scaler: FeatureScaler | None = None
        self.names: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        return len(self.names) if self.scaler is not None else 0

    def fit(self, train: Dataset) -> FeatureInput:
        if train.features is None:
            self.scaler, self.names = None, ()
            return self
        self.names = tuple(train.feature_names)
        self.scaler = FeatureScaler().fit(train.features, self.names)
        return self

    def transform(self, data: Dataset) -> np.ndarray | None:
        """float32 (n, dim) scaled features, or None when the model was fit without features."""
        if self.scaler is None:
            return None
        if data.features is None:
            raise BadInputError(
                f"dataset {data.name!r} has no extra features but the model was trained with {self.dim} "
                f"({', '.join(self.names[:5])}...)"
            )
        if tuple(data.feature_names) != self.names:
            raise BadInputError(f"dataset {data.name!r}: feature columns differ from the training set's")
        return np.asarray(self.scaler.transform(data.features), dtype=np.float32)


class MLPHead(nn.Module):
    """Readout network on a pooled crystal embedding, optionally concatenated with extra features.

    ``[embedding ; features] -> (Linear -> act) x n_hidden -> Linear(out_dim)``.
    With ``extra_dim > 0`` this is the de-CGCNN hybridization (paper eq. 14): the
    standardized descriptor vector joins the embedding before the output network,
    and the whole model trains end to end.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int = 1,
        *,
        extra_dim: int = 0,
        n_hidden: int = 1,
        activation: Callable[[], nn.Module] = nn.Softplus,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.extra_dim = extra_dim
        layers: list[nn.Module] = []
        d = in_dim + extra_dim
        for _ in range(max(n_hidden, 0)):
            layers += [nn.Linear(d, hidden), activation()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = hidden
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(d, out_dim)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if self.extra_dim:
            if extra is None or extra.shape[-1] != self.extra_dim:
                raise ValueError(
                    f"MLPHead expects {self.extra_dim} extra features, got {None if extra is None else tuple(extra.shape)}"
                )
            h = torch.cat([h, extra.to(h.dtype)], dim=-1)
        out: torch.Tensor = self.out(self.hidden(h))
        return out

"""`CGCNNDescParams`: the typed hyperparameters of `cgcnn+desc` (torch-free; imported when the plugin registers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crystalbench.gnn.params import param
from crystalbench.plugins.cgcnn.params import CGCNNParams

__all__ = ["CGCNNDescParams"]


@dataclass(frozen=True)
class CGCNNDescParams(CGCNNParams):
    """cgcnn's hyperparameters, for the frozen CGCNN and (shape and recipe) for the new network on top."""

    pooling: Literal["mean", "sum"] = param(
        "mean", "readout of the frozen CGCNN whose pooled embedding is reused (Table S1: average pooling)"
    )

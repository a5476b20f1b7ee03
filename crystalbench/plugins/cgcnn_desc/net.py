"""The second stage of `cgcnn+desc`: a fully connected network on [frozen embedding ; descriptors].

Imports torch at module level: `model.py` imports this module inside `fit`, so
listing models never loads torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from crystalbench.gnn.heads import MLPHead

__all__ = ["SecondNetwork", "stack_inputs"]


def stack_inputs(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate (embedding row, descriptor row) pairs into two float32 tensors."""
    return torch.from_numpy(np.stack([e for e, _ in items])), torch.from_numpy(np.stack([d for _, d in items]))


class SecondNetwork(nn.Module):
    """`MLPHead` (CGCNN's output-network shape) on an (embedding, descriptors) batch."""

    def __init__(self, emb_dim: int, hidden: int, out_dim: int, n_desc: int, n_hidden: int, dropout: float) -> None:
        super().__init__()
        self.head = MLPHead(emb_dim, hidden, out_dim, extra_dim=n_desc, n_hidden=n_hidden, dropout=dropout)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        emb, desc = batch
        out: torch.Tensor = self.head(emb, desc)
        return out

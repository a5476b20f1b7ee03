"""The CGCNN network (Xie & Grossman 2018, PRL 120, 145301) in plain torch.

Imports torch at module level: the plugin's `model.py` imports this module
inside `fit`, so ``bench list models`` never loads torch.

One convolution (paper eq. 5) updates atom i from each neighbour j over edge k:

    z = v_i (+) v_j (+) u_ij
    v_i <- softplus(v_i + BN( sum_j sigmoid(BN(z W_f + b_f)) * softplus(BN(z W_s + b_s)) ))

with both gates computed by one linear layer and one BatchNorm, as in the
reference implementation.

Determinism: neighbour features are gathered with ``index_select`` (backward:
``index_add``) and aggregated with ``index_add`` (backward: a gather), which
accumulate in a fixed order on CPU for any number of threads. Advanced
indexing (``x[centers]``) computes the same forward values, but its backward
(``index_put_`` with accumulation) adds gradients in a thread-dependent order
on CPU with more than one intra-op thread: that made de-cgcnn runs with the
same seed differ.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crystalbench.gnn.atom_features import atom_feature_table
from crystalbench.gnn.graphs import GraphBatch
from crystalbench.gnn.heads import MLPHead, pool_atoms

__all__ = ["CGConv", "CGCNNNet", "gaussian_centers", "pool_atoms"]


def gaussian_centers(radius: float = 8.0, step: float = 0.2) -> np.ndarray:
    """Centres 0, step, ..., radius of the Gaussian distance expansion (41 for 8 A / 0.2 A)."""
    return np.linspace(0.0, radius, int(round(radius / step)) + 1)


class CGConv(nn.Module):
    """One CGCNN gated graph convolution over directed edges centre <- neighbour."""

    def __init__(self, atom_fea_len: int, edge_fea_len: int) -> None:
        super().__init__()
        self.fc_full = nn.Linear(2 * atom_fea_len + edge_fea_len, 2 * atom_fea_len)
        self.bn1 = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn2 = nn.BatchNorm1d(atom_fea_len)

    def forward(self, x: torch.Tensor, centers: torch.Tensor, neighbors: torch.Tensor, edge_fea: torch.Tensor) -> torch.Tensor:
        agg = torch.zeros_like(x)
        if centers.numel() > 1 or (not self.training and centers.numel() > 0):
            z = torch.cat([x.index_select(0, centers), x.index_select(0, neighbors), edge_fea], dim=1)
            gated = self.bn1(self.fc_full(z))
            filt, core = gated.chunk(2, dim=1)
            agg = agg.index_add(0, centers, torch.sigmoid(filt) * F.softplus(core))
        # atoms without neighbours (isolated in vacuum) get agg = 0: only their self term
        out: torch.Tensor = F.softplus(x + self.bn2(agg))
        return out


class CGCNNNet(nn.Module):
    """Embedding -> n_conv CGConv -> pooling -> softplus -> MLPHead (optionally with extra features).

    extra_dim > 0 makes it de-CGCNN (paper eq. 14): the standardized descriptor
    vector (``GraphBatch.features``) is concatenated with the pooled embedding
    before the fully connected layers.
    """

    def __init__(
        self,
        *,
        atom_fea_len: int = 64,
        n_conv: int = 3,
        h_fea_len: int = 128,
        n_h: int = 1,
        radius: float = 8.0,
        gaussian_step: float = 0.2,
        pooling: str = "mean",
        out_dim: int = 1,
        extra_dim: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "sum"):
            raise ValueError(f"unknown pooling {pooling!r}; choose mean or sum")
        self.pooling = pooling
        table = torch.nan_to_num(torch.from_numpy(atom_feature_table().copy()), nan=0.0)
        self.atom_table: torch.Tensor
        self.gauss_centers: torch.Tensor
        self.register_buffer("atom_table", table, persistent=False)
        self.register_buffer("gauss_centers", torch.from_numpy(gaussian_centers(radius, gaussian_step)).float(), persistent=False)
        self.gauss_gamma = 1.0 / gaussian_step**2
        self.embedding = nn.Linear(table.shape[1], atom_fea_len)
        edge_len = int(self.gauss_centers.numel())
        self.convs = nn.ModuleList(CGConv(atom_fea_len, edge_len) for _ in range(n_conv))
        self.head = MLPHead(atom_fea_len, h_fea_len, out_dim, extra_dim=extra_dim, n_hidden=n_h, dropout=dropout)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        x = self.embedding(self.atom_table[batch.numbers])
        edge_fea = torch.exp(-self.gauss_gamma * (batch.distances[:, None] - self.gauss_centers) ** 2)
        for conv in self.convs:
            x = conv(x, batch.centers, batch.neighbors, edge_fea)
        crys = F.softplus(pool_atoms(x, batch.crystal, batch.n_crystals, self.pooling))
        out: torch.Tensor = self.head(crys, batch.features)
        return out

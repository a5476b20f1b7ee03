"""The CGCNN network (Xie & Grossman 2018, PRL 120, 145301) in plain torch.

Kept apart from `cgcnn.py` because it imports torch at module level, while the
plugin module must stay importable without it (``bench list models``).

One convolution (paper eq. 5) updates atom i from each neighbour j over edge k:

    z = v_i (+) v_j (+) u_ij
    v_i <- softplus(v_i + BN( sum_j sigmoid(BN(z W_f + b_f)) * softplus(BN(z W_s + b_s)) ))

with both gates computed by one linear layer and one BatchNorm, as in the
reference implementation. Aggregation uses ``index_add_``, deterministic on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .graphs import GraphBatch, cgcnn_atom_features, gaussian_centers
from .training import MLPHead

__all__ = ["CGConv", "CGCNNNet", "pool_atoms"]


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
            gated = self.bn1(self.fc_full(torch.cat([x[centers], x[neighbors], edge_fea], dim=1)))
            filt, core = gated.chunk(2, dim=1)
            agg = agg.index_add(0, centers, torch.sigmoid(filt) * F.softplus(core))
        # atoms without neighbours (isolated in vacuum) get agg = 0: only their self term
        return F.softplus(x + self.bn2(agg))


def pool_atoms(x: torch.Tensor, crystal: torch.Tensor, n_crystals: int, pooling: str) -> torch.Tensor:
    """Per-crystal mean (intensive, paper default) or sum (extensive targets, paper eq. 13) of atom vectors."""
    out = torch.zeros(n_crystals, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, crystal, x)
    if pooling == "sum":
        return out
    if pooling == "mean":
        counts = torch.bincount(crystal, minlength=n_crystals).clamp(min=1).to(x.dtype)
        return out / counts[:, None]
    raise ValueError(f"unknown pooling {pooling!r}; choose mean or sum")


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
        table = torch.nan_to_num(torch.from_numpy(cgcnn_atom_features()), nan=0.0)
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
        return self.head(crys, batch.features)

"""The CGCNN network (Xie & Grossman 2018, PRL 120, 145301) in plain torch.

Imports torch at module level: the plugin's `model.py` imports this module
inside `fit`, so ``bench list models`` never loads torch.

One convolution (paper eq. 5) updates atom i from each neighbour j over edge k:

    z = v_i (+) v_j (+) u_ij
    v_i <- softplus(v_i + BN( sum_j sigmoid(BN(z W_f + b_f)) * softplus(BN(z W_s + b_s)) ))

with both gates computed by one linear layer and one BatchNorm, as in the
reference implementation.

Speed: ``z W`` is never formed on the (E, 2F + G) concatenation. The weight of
``fc_full`` is split by columns into W_self, W_nbr (F columns each) and W_edge
(G columns), so ``z W = (x W_self)[i] + (x W_nbr)[j] + u_ij W_edge``: both atom
projections are one (N, F) x (F, 4F) product per atom, gathered per edge
afterwards, and only the G-wide Gaussian features are multiplied per edge.
Same function and same parameters (old ``fc_full`` weights load unchanged);
only the float summation order differs (about 1e-6). The Gaussian expansion of
the distances does not depend on the weights: `CGCNNNet.distance_features` computes it
once per data set (the shared loop's index-based path calls it) and `forward`
reuses it from ``GraphBatch.edge_fea``.

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
from crystalbench.gnn.heads import POOLINGS, MLPHead, atom_sum_readout, pool_atoms

__all__ = ["CGConv", "CGCNNNet", "gaussian_centers", "gaussian_expand", "pool_atoms", "EDGE_FEA_BUDGET"]

# Largest precomputed (D, G) float32 table of distinct lengths `CGCNNNet.distance_features` keeps (bytes): a 10k-crystal
# data set has ~1.3M edges x 41 Gaussians = 210 MB, which would dominate the 1 GB memory target.
EDGE_FEA_BUDGET = 96 * 2**20


def gaussian_centers(radius: float = 8.0, step: float = 0.2) -> np.ndarray:
    """Centres 0, step, ..., radius of the Gaussian distance expansion (41 for 8 A / 0.2 A)."""
    return np.linspace(0.0, radius, int(round(radius / step)) + 1)


def gaussian_expand(distances: torch.Tensor, centers: torch.Tensor, gamma: float) -> torch.Tensor:
    """exp(-gamma (d - mu_k)^2): the (E, G) Gaussian distance features of CGCNN.

    Values below float32's smallest normal number (1.2e-38) are set to exactly 0:
    about 4% of the features of matbench_phonons graphs are such subnormals, and x86
    arithmetic on subnormals is slow (docs/speed.md). The change to any value is
    below 1.2e-38.
    """
    fea = torch.exp(-gamma * (distances[:, None] - centers) ** 2)
    return fea.masked_fill(fea < torch.finfo(fea.dtype).tiny, 0.0)


class CGConv(nn.Module):
    """One CGCNN gated graph convolution over directed edges centre <- neighbour.

    ``fc_full`` keeps the reference layout (in: [v_i, v_j, u_ij], out: [filter, core])
    so weights trained with the concatenated form load unchanged; `forward` applies
    it column block by column block (see the module docstring).
    """

    def __init__(self, atom_fea_len: int, edge_fea_len: int) -> None:
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.fc_full = nn.Linear(2 * atom_fea_len + edge_fea_len, 2 * atom_fea_len)
        self.bn1 = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn2 = nn.BatchNorm1d(atom_fea_len)

    def gate_inputs(
        self,
        x: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        edge_fea: torch.Tensor,
        edge_fea_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``fc_full([x_i, x_j, u_ij])`` for every edge, computed per atom then gathered (same values).

        edge_fea_index: when given, `edge_fea` has one row per distinct edge length
        and edge k uses row ``edge_fea_index[k]`` (see `GraphBatch.edge_fea_index`):
        the edge product is then computed once per distinct length and gathered.
        """
        f = self.atom_fea_len
        w = self.fc_full.weight  # (2F, 2F + G)
        # one product per atom for both roles: columns [0, 2F) self, [2F, 4F) neighbour
        node = x @ torch.cat([w[:, :f], w[:, f : 2 * f]], dim=0).t()
        own = (node[:, : 2 * f] + self.fc_full.bias).index_select(0, centers)  # the bias per atom, not per edge
        atoms = own + node[:, 2 * f :].index_select(0, neighbors)
        if edge_fea_index is not None:
            return atoms + (edge_fea @ w[:, 2 * f :].t()).index_select(0, edge_fea_index)
        # the per-edge product accumulates into the gathered atom terms (one pass over (E, 2F) saved)
        return torch.addmm(atoms, edge_fea, w[:, 2 * f :].t())

    def forward(
        self,
        x: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        edge_fea: torch.Tensor,
        edge_fea_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        agg = torch.zeros_like(x)
        if centers.numel() > 1 or (not self.training and centers.numel() > 0):
            gated = self.bn1(self.gate_inputs(x, centers, neighbors, edge_fea, edge_fea_index))
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

    pooling "atom-sum" is the paper's eq. 13 instead: softplus -> MLPHead on
    every atom (with the crystal's descriptor vector broadcast to its atoms in
    a hybrid), then the per-crystal sum of those outputs minus `output_shift`
    (`crystalbench.gnn.heads.atom_sum_shift`; 0 unless the model sets it).
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
        output_shift: float = 0.0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.output_shift = float(output_shift)
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

    def edge_features(self, distances: torch.Tensor) -> torch.Tensor:
        """The Gaussian expansion of edge lengths (weight-free: computed once per data set by `distance_features`)."""
        return gaussian_expand(distances, self.gauss_centers, self.gauss_gamma)

    def distance_features(self, lengths: torch.Tensor) -> torch.Tensor | None:
        """The Gaussian features of a data set's distinct edge lengths (`FlatGraphs.prepare`), or None.

        The shared loop's index-based path calls it once and cuts batches out of
        the result, so the expansion is not recomputed in every forward of every
        epoch, and the edge product runs once per distinct length in a batch
        (~7x fewer rows on matbench_phonons). None (features computed per batch)
        above `EDGE_FEA_BUDGET` bytes.
        """
        if lengths.numel() * self.gauss_centers.numel() * 4 > EDGE_FEA_BUDGET:
            return None
        with torch.no_grad():
            return self.edge_features(lengths)

    def atoms(self, batch: GraphBatch) -> torch.Tensor:
        """Atom vectors after the convolutions, (N_atoms, atom_fea_len)."""
        x = self.embedding(self.atom_table[batch.numbers])
        edge_fea, index = batch.edge_fea, batch.edge_fea_index
        n_edges, n_gauss = batch.distances.shape[0], self.gauss_centers.numel()
        usable = edge_fea is not None and edge_fea.ndim == 2 and edge_fea.shape[1] == n_gauss and (
            edge_fea.shape[0] == n_edges if index is None else index.shape[0] == n_edges
        )
        if edge_fea is None or not usable:
            edge_fea, index = self.edge_features(batch.distances), None
        for conv in self.convs:
            x = conv(x, batch.centers, batch.neighbors, edge_fea, index)
        return x

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        """The pooled crystal embedding the output network reads: softplus(pool(atoms)), (B, atom_fea_len).

        What a frozen CGCNN hands to a second model (`cgcnn+desc`, Gong et al.
        2023 SI eq. S5). Undefined for "atom-sum", whose network reads atoms.
        """
        if self.pooling == "atom-sum":
            raise ValueError("an atom-sum CGCNN has no pooled embedding (its output network reads every atom)")
        return F.softplus(pool_atoms(self.atoms(batch), batch.crystal, batch.n_crystals, self.pooling))

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        if self.pooling == "atom-sum":
            atoms = F.softplus(self.atoms(batch))
            return atom_sum_readout(self.head, atoms, batch.crystal, batch.n_crystals, batch.features, self.output_shift)
        out: torch.Tensor = self.head(self.embed(batch), batch.features)
        return out

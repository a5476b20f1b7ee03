"""The ALIGNN network: the alignn package's DGL-free `ALIGNNAtomWisePure` as encoder, plus our readout.

Imports torch and alignn at module level: `model.py` imports this module inside
`fit`, so listing models never loads them.

The encoder's output layer is replaced by an identity so its forward returns
the mean-pooled node embedding; around it this module adds

* the pooling choice of paper eq. 13 (sum = mean x number of atoms, exactly);
* optional extra per-sample features (descriptors) concatenated with the
  pooled embedding before the output layer (paper eq. 14), trained end to end;
* an n-class classification head (the package's head is binary only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig
from alignn.torch_graph_builder import TorchGraph
from torch import nn

from crystalbench.gnn.heads import MLPHead

from .graphs import AlignnGraph
from .model import AlignnParams

__all__ = ["GraphBatch", "make_collate", "AlignnNet"]


class GraphBatch:
    """A collated batch: the package's `TorchGraph` pair plus atom counts and extra features."""

    def __init__(self, g: Any, lg: Any, n_atoms: torch.Tensor, extra: torch.Tensor | None) -> None:
        self.g, self.lg, self.n_atoms, self.extra = g, lg, n_atoms, extra

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(
            self.g.to(device),
            self.lg.to(device),
            self.n_atoms.to(device),
            None if self.extra is None else self.extra.to(device),
        )


def make_collate(atom_features: np.ndarray) -> Callable[[Sequence[tuple[AlignnGraph, np.ndarray | None]]], GraphBatch]:
    """collate(list of (AlignnGraph, features row | None)) -> GraphBatch, with per-graph index offsets.

    `atom_features`: (max_z + 1, F) table indexed by atomic number (the shared
    `crystalbench.gnn.atom_feature_table`); check elements before collating.
    """
    table = torch.as_tensor(np.nan_to_num(np.asarray(atom_features, dtype=np.float32)), dtype=torch.float32)

    def cat(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts))

    def collate(items: Sequence[tuple[AlignnGraph, np.ndarray | None]]) -> GraphBatch:
        graphs = [it[0] for it in items]
        n_nodes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        n_edges = np.array([g.num_edges for g in graphs], dtype=np.int64)
        node_off = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        edge_off = np.concatenate([[0], np.cumsum(n_edges)[:-1]])
        z = np.concatenate([g.z for g in graphs])
        if z.max(initial=0) >= len(table) or z.min(initial=1) < 1:
            from crystalbench import BadInputError

            raise BadInputError(f"ALIGNN atom features cover Z = 1..{len(table) - 1}; got Z = {int(z.max())}")
        g = TorchGraph(
            num_nodes=int(n_nodes.sum()),
            src=cat([gr.src + o for gr, o in zip(graphs, node_off)]),
            dst=cat([gr.dst + o for gr, o in zip(graphs, node_off)]),
            ndata={"atom_features": table[torch.from_numpy(z)]},
            edata={"r": cat([gr.r for gr in graphs])},
            batch_num_nodes=torch.from_numpy(n_nodes),
            batch_num_edges=torch.from_numpy(n_edges),
        )
        lg = TorchGraph(
            num_nodes=int(n_edges.sum()),
            src=cat([gr.lg_src + o for gr, o in zip(graphs, edge_off)]),
            dst=cat([gr.lg_dst + o for gr, o in zip(graphs, edge_off)]),
        )
        extra = None
        first = items[0][1] if items else None
        if first is not None:
            extra = torch.from_numpy(np.stack([np.asarray(it[1]) for it in items]).astype(np.float32))
        return GraphBatch(g, lg, torch.from_numpy(n_nodes), extra)

    return collate


class AlignnNet(nn.Module):
    """`ALIGNNAtomWisePure` as encoder + pooling (eq. 13) + head on [embedding; features] (eq. 14)."""

    def __init__(self, params: AlignnParams, atom_input_features: int, out_dim: int, extra_dim: int) -> None:
        super().__init__()
        hidden = params.hidden_features
        config = ALIGNNAtomWisePureConfig(
            name="alignn_atomwise_pure",
            alignn_layers=params.alignn_layers,
            gcn_layers=params.gcn_layers,
            atom_input_features=atom_input_features,
            edge_input_features=params.edge_input_features,
            triplet_input_features=params.triplet_input_features,
            embedding_features=params.embedding_features,
            hidden_features=hidden,
            # the package's forward then returns the mean-pooled embedding
            # untouched: no force/energy machinery, no penalty, no ZBL
            output_features=hidden,
            gradwise_weight=0.0,
            calculate_gradient=False,
            energy_mult_natoms=False,
            use_penalty=False,
            use_zbl=False,
            lg_on_fly=True,
        )
        self.encoder = ALIGNNAtomWisePure(config)
        self.encoder.fc = nn.Identity()
        self.pooling = params.pooling
        self.head = MLPHead(hidden, hidden, out_dim, extra_dim=extra_dim, n_hidden=params.fc_layers, activation=nn.SiLU)

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        """Pooled crystal embedding (B, hidden): mean over atoms, or their sum (= mean x n_atoms)."""
        h: torch.Tensor = self.encoder((batch.g, batch.lg, None))["out"]
        if self.pooling == "sum":
            h = h * batch.n_atoms.to(h.dtype).unsqueeze(-1)
        return h

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        out: torch.Tensor = self.head(self.embed(batch), batch.extra)
        return out

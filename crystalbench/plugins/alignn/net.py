"""The ALIGNN network: the alignn package's DGL-free `ALIGNNAtomWisePure` as encoder, plus our readout.

Imports torch and alignn at module level: `model.py` imports this module inside
`fit`, so listing models never loads them.

The encoder's output layer is replaced by an identity so its forward returns
the mean-pooled node embedding; around it this module adds

* the pooling choice: "mean", "sum" (= mean x number of atoms, exactly), or
  "atom-sum" (paper eq. 13: the head on every atom, then summed; the
  package's atom-wise output is switched on as an identity, so its forward
  also returns the atom vectors);
* optional extra per-sample features (descriptors) concatenated with the
  pooled embedding before the output layer (paper eq. 14), trained end to end;
* an n-class classification head (the package's head is binary only).

Batches come from `AlignnCollate` (what `make_collate` returns). Called on a list
of items it collates them on the host, graph by graph. Its ``index(items)``
collates a whole data set once (`FlatAlignnGraphs`), and the shared training loop
then cuts every batch out of that by index. On a GPU an ALIGNN epoch is bound by
host work and launches (issue #14 measured 640 ms/epoch on an H100): re-collating
every batch on the host (Python loops over graphs) and copying each of its ~9
tensors to the device is part of it, while the indexed path does one vectorized
host pass and one integer copy per call and gathers bond vectors and features on
the device (GPU gain unmeasured: no device was available; on CPU both paths cost
the same, collation being 0.03% of an epoch). Both give exactly the same batches
(tests/test_alignn_indexed.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig
from alignn.torch_graph_builder import TorchGraph
from torch import nn

from crystalbench.gnn.graphs import _ranges
from crystalbench.gnn.heads import MLPHead, atom_sum_readout

from .graphs import AlignnGraph
from .params import AlignnParams

__all__ = ["GraphBatch", "AlignnCollate", "FlatAlignnGraphs", "make_collate", "AlignnNet"]


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


def _check_z(z: np.ndarray, n_table: int) -> None:
    """Atom features exist for Z = 1..n_table - 1 only: refuse anything else before indexing the table."""
    bad = z[(z < 1) | (z >= n_table)]
    if len(bad):
        from crystalbench import BadInputError

        raise BadInputError(f"ALIGNN atom features cover Z = 1..{n_table - 1}; got Z = {int(bad[0])}")


class AlignnCollate:
    """collate(list of (AlignnGraph, features row | None)) -> GraphBatch, with per-graph index offsets.

    A callable object rather than a function so that the shared training loop finds
    its index-based path (`crystalbench.gnn.trainer.IndexedCollate`): ``index(items)``
    collates a whole data set once (`FlatAlignnGraphs`). Calling it is the plain
    per-batch collation, and the reference the indexed batches are tested against.
    """

    def __init__(self, atom_features: np.ndarray) -> None:
        self.table = torch.as_tensor(np.nan_to_num(np.asarray(atom_features, dtype=np.float32)), dtype=torch.float32)

    def __call__(self, items: Sequence[tuple[AlignnGraph, np.ndarray | None]]) -> GraphBatch:
        table = self.table

        def cat(parts: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(parts))

        graphs = [it[0] for it in items]
        n_nodes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        n_edges = np.array([g.num_edges for g in graphs], dtype=np.int64)
        node_off = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        edge_off = np.concatenate([[0], np.cumsum(n_edges)[:-1]])
        z = np.concatenate([g.z for g in graphs])
        _check_z(z, len(table))
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

    def index(self, items: Sequence[tuple[AlignnGraph, np.ndarray | None]]) -> FlatAlignnGraphs:
        """All items concatenated once; batches are then cut out by graph index (`FlatAlignnGraphs.batches`)."""
        return FlatAlignnGraphs.from_items(items, self.table)


def make_collate(atom_features: np.ndarray) -> AlignnCollate:
    """The ALIGNN collate (`AlignnCollate`) for an atom-feature table.

    `atom_features`: (max_z + 1, F) table indexed by atomic number (the shared
    `crystalbench.gnn.atom_feature_table`); check elements before collating.
    """
    return AlignnCollate(atom_features)


def _within_group(counts: np.ndarray, first: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """Each selected graph's offset (in nodes, bonds or triplets) within its own batch."""
    before = np.concatenate([[0], np.cumsum(counts)])
    return before[:-1] - before[first][group_of]


class FlatAlignnGraphs:
    """A whole data set of ALIGNN graphs collated once; mini-batches are index selections of it.

    Integer structure (atomic numbers, per-graph local bond and line-graph indices,
    per-graph counts) stays in numpy: all batches of a call are computed in one
    vectorized host pass and moved to the device in one copy. Bond vectors, extra
    features and the atom-feature table live on the device once and are gathered
    there with `index_select`. Batches equal `AlignnCollate` of the same items
    exactly (same dtypes, values and order).
    """

    def __init__(
        self,
        z: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
        lg_src: np.ndarray,
        lg_dst: np.ndarray,
        n_nodes: np.ndarray,
        n_edges: np.ndarray,
        n_triplets: np.ndarray,
        r: torch.Tensor,
        extra: torch.Tensor | None,
        table: torch.Tensor,
    ) -> None:
        self.z, self.src, self.dst, self.lg_src, self.lg_dst = z, src, dst, lg_src, lg_dst
        self.n_nodes, self.n_edges, self.n_triplets = n_nodes, n_edges, n_triplets
        self.node_start = np.cumsum(n_nodes) - n_nodes
        self.edge_start = np.cumsum(n_edges) - n_edges
        self.triplet_start = np.cumsum(n_triplets) - n_triplets
        self.r, self.extra, self.table = r, extra, table

    @classmethod
    def from_items(
        cls, items: Sequence[tuple[AlignnGraph, np.ndarray | None]], table: torch.Tensor
    ) -> FlatAlignnGraphs:
        graphs = [it[0] for it in items]
        rows = [it[1] for it in items]
        has = [row is not None for row in rows]
        if any(has) and not all(has):
            from crystalbench import BadInputError

            raise BadInputError("ALIGNN collate: some items have extra features and some do not")

        def cat(parts: list[np.ndarray], dtype: type, shape: tuple[int, ...] = (0,)) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype=dtype)

        z = cat([g.z for g in graphs], np.int64)
        _check_z(z, len(table))
        extra = None
        if rows and all(has):
            extra = torch.from_numpy(np.stack([np.asarray(row) for row in rows]).astype(np.float32))
        return cls(
            z=z,
            src=cat([g.src for g in graphs], np.int64),
            dst=cat([g.dst for g in graphs], np.int64),
            lg_src=cat([g.lg_src for g in graphs], np.int64),
            lg_dst=cat([g.lg_dst for g in graphs], np.int64),
            n_nodes=np.array([g.num_nodes for g in graphs], dtype=np.int64),
            n_edges=np.array([g.num_edges for g in graphs], dtype=np.int64),
            n_triplets=np.array([len(g.lg_src) for g in graphs], dtype=np.int64),
            r=torch.from_numpy(cat([g.r for g in graphs], np.float32, (0, 3))),
            extra=extra,
            table=table,
        )

    def __len__(self) -> int:
        return len(self.n_nodes)

    @property
    def device(self) -> torch.device:
        return self.r.device

    def to(self, device: torch.device | str) -> FlatAlignnGraphs:
        """A copy with the float tensors on `device` (integer structure stays on the host)."""
        new = FlatAlignnGraphs.__new__(FlatAlignnGraphs)
        new.__dict__.update(self.__dict__)
        new.r = self.r.to(device)
        new.extra = None if self.extra is None else self.extra.to(device)
        new.table = self.table.to(device)
        return new

    def prepare(self, module: nn.Module) -> FlatAlignnGraphs:
        """Nothing to precompute: ALIGNN's inputs (bond vectors, angles) go through its weights or are cheap."""
        return self

    def batches(self, groups: Sequence[np.ndarray]) -> list[GraphBatch]:
        """One `GraphBatch` per index group: one host pass and one host->device copy for all of them."""
        groups = [np.asarray(gr, dtype=np.int64).reshape(-1) for gr in groups]
        if not groups:
            return []
        sizes = np.array([len(gr) for gr in groups], dtype=np.int64)
        sel = np.concatenate(groups)
        n_nod, n_bond, n_trip = self.n_nodes[sel], self.n_edges[sel], self.n_triplets[sel]
        node_idx = _ranges(self.node_start[sel], n_nod)
        edge_idx = _ranges(self.edge_start[sel], n_bond)
        trip_idx = _ranges(self.triplet_start[sel], n_trip)
        group_of = np.repeat(np.arange(len(groups)), sizes)
        first = np.cumsum(sizes) - sizes
        node_shift = np.repeat(_within_group(n_nod, first, group_of), n_bond)
        edge_shift = np.repeat(_within_group(n_bond, first, group_of), n_trip)
        # every integer tensor of every batch, written straight into one (pinned, on CUDA) host buffer
        n_n, n_e, n_t, n_g = len(node_idx), len(edge_idx), len(trip_idx), len(sel)
        lengths = [n_n, n_e, n_e, n_t, n_t, n_g, n_g, n_e, n_g]
        dev = self.device
        ints = torch.empty(sum(lengths), dtype=torch.int64, pin_memory=dev.type == "cuda")
        z_h, src_h, dst_h, lsrc_h, ldst_h, nn_h, ne_h, edge_h, sel_h = np.split(ints.numpy(), np.cumsum(lengths)[:-1])
        np.take(self.z, node_idx, out=z_h)
        for local, idx, shift, dest in (
            (self.src, edge_idx, node_shift, src_h),
            (self.dst, edge_idx, node_shift, dst_h),
            (self.lg_src, trip_idx, edge_shift, lsrc_h),
            (self.lg_dst, trip_idx, edge_shift, ldst_h),
        ):
            np.take(local, idx, out=dest)
            dest += shift
        nn_h[:], ne_h[:], edge_h[:], sel_h[:] = n_nod, n_bond, edge_idx, sel
        if dev.type == "cuda":
            ints = ints.to(dev, non_blocking=True)
        elif dev.type != "cpu":
            ints = ints.to(dev)
        z_t, src_t, dst_t, lsrc_t, ldst_t, nn_t, ne_t, edge_t, sel_t = torch.split(ints, lengths)
        atom_fea = self.table.index_select(0, z_t)
        r = self.r.index_select(0, edge_t)
        extra = None if self.extra is None else self.extra.index_select(0, sel_t)
        # batch boundaries in nodes, bonds and triplets: host counts, so no device sync
        node_end = np.concatenate([[0], np.cumsum(n_nod)])
        edge_end = np.concatenate([[0], np.cumsum(n_bond)])
        trip_end = np.concatenate([[0], np.cumsum(n_trip)])
        out: list[GraphBatch] = []
        for k0, size in zip(first.tolist(), sizes.tolist()):
            k1 = k0 + size
            n0, n1 = int(node_end[k0]), int(node_end[k1])
            e0, e1 = int(edge_end[k0]), int(edge_end[k1])
            t0, t1 = int(trip_end[k0]), int(trip_end[k1])
            n_atoms = nn_t[k0:k1]
            g = TorchGraph(
                num_nodes=n1 - n0,
                src=src_t[e0:e1],
                dst=dst_t[e0:e1],
                ndata={"atom_features": atom_fea[n0:n1]},
                edata={"r": r[e0:e1]},
                batch_num_nodes=n_atoms,
                batch_num_edges=ne_t[k0:k1],
            )
            lg = TorchGraph(num_nodes=e1 - e0, src=lsrc_t[t0:t1], dst=ldst_t[t0:t1])
            out.append(GraphBatch(g, lg, n_atoms, None if extra is None else extra[k0:k1]))
        return out


class AlignnNet(nn.Module):
    """`ALIGNNAtomWisePure` as encoder + pooling + head on [embedding; features] (eq. 14).

    With pooling "atom-sum" (eq. 13) the head reads every atom, the crystal's
    descriptor vector broadcast to its atoms, and the outputs are summed per
    crystal, minus `output_shift` (`crystalbench.gnn.heads.atom_sum_shift`).
    """

    def __init__(
        self, params: AlignnParams, atom_input_features: int, out_dim: int, extra_dim: int, *, output_shift: float = 0.0
    ) -> None:
        super().__init__()
        hidden = params.hidden_features
        per_atom = params.pooling == "atom-sum"
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
            # atom-sum: the package's per-atom output (made an identity below) returns the atom vectors
            atomwise_output_features=hidden if per_atom else 0,
            atomwise_weight=1.0 if per_atom else 0.0,
        )
        self.encoder = ALIGNNAtomWisePure(config)
        self.encoder.fc = nn.Identity()
        if per_atom:
            self.encoder.fc_atomwise = nn.Identity()
        self.pooling = params.pooling
        self.output_shift = float(output_shift)
        self.head = MLPHead(hidden, hidden, out_dim, extra_dim=extra_dim, n_hidden=params.fc_layers, activation=nn.SiLU)

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        """Pooled crystal embedding (B, hidden): mean over atoms, or their sum (= mean x n_atoms)."""
        if self.pooling == "atom-sum":
            raise ValueError("an atom-sum ALIGNN has no pooled embedding (its head reads every atom)")
        h: torch.Tensor = self.encoder((batch.g, batch.lg, None))["out"]
        if self.pooling == "sum":
            h = h * batch.n_atoms.to(h.dtype).unsqueeze(-1)
        return h

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        if self.pooling == "atom-sum":
            atoms: torch.Tensor = self.encoder((batch.g, batch.lg, None))["atomwise_pred"]
            n = batch.n_atoms
            crystal = torch.repeat_interleave(torch.arange(len(n), device=atoms.device), n.to(atoms.device))
            return atom_sum_readout(self.head, atoms, crystal, len(n), batch.extra, self.output_shift)
        out: torch.Tensor = self.head(self.embed(batch), batch.extra)
        return out

"""The CGCNN / de-CGCNN `Model`: crystal graphs as items, `CGCNNNet` as the network, the rest from `TorchModel`.

Torch-free at import time (the network and the training loop are imported in `fit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.gnn.torch_model import TorchModel

from .params import CGCNNParams

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crystalbench.gnn.graphs import CrystalGraph, GraphStats

__all__ = ["CGCNNParams", "CGCNNModel", "make_cgcnn", "make_de_cgcnn"]


class CGCNNModel(TorchModel):
    """A CGCNN (hybrid when the data carries extra features) behind the harness `Model` protocol.

    require_features: de-cgcnn sets it, so running it without descriptors fails
        loudly instead of silently degrading to plain CGCNN.
    After `fit`, `fit_info` holds the best epoch, epochs run, the torch thread
    count used and graph-cache statistics (of fit and predict alike).
    """

    params_class = CGCNNParams
    missing_features = (
        "concatenates a descriptor vector with the graph embedding but the training set "
        "has no features; run it through the harness (it attaches gong29) or pass --descriptors NAME"
    )
    params: CGCNNParams

    def __init__(self, ctx: ModelContext, *, name: str = "cgcnn", require_features: bool = False) -> None:
        super().__init__(ctx, name=name, require_features=require_features)
        self._stats: GraphStats | None = None

    # -- data -> items --------------------------------------------------------
    def _graphs(self, data: Dataset, progress: bool) -> list[CrystalGraph]:
        from crystalbench.gnn.atom_features import check_elements
        from crystalbench.gnn.graphs import GraphParams, GraphStats, build_graphs, crystal_graph_kind, model_graph_store

        if data.structures is None:
            raise BadInputError(f"{self.name} needs crystal structures; dataset {data.name!r} has only compositions")
        gp = GraphParams(radius=self.params.radius, max_neighbors=self.params.max_neighbors)
        kind = crystal_graph_kind(gp)
        if self._stats is None:
            self._stats = GraphStats()
        graphs = build_graphs(
            data.structures,
            params=gp,
            keys=data.structure_keys,
            store=model_graph_store(self.ctx, kind.namespace, kind.version),
            progress=progress,
            stats=self._stats,
        )
        check_elements(g.numbers for g in graphs)
        return graphs

    def items(self, data: Dataset, *, progress: bool) -> list[Any]:
        return self.with_features(self._graphs(data, progress), data)

    def collate(self) -> Callable[[list[Any]], Any]:
        from crystalbench.gnn.graphs import collate_graphs

        return collate_graphs

    def network(self, train: Dataset) -> Callable[[], nn.Module]:
        from .net import CGCNNNet

        p, out_dim, extra_dim, shift = self.params, self.out_dim(train), self.features_dim, self.atom_sum_shift(train)

        def build() -> CGCNNNet:
            return CGCNNNet(
                atom_fea_len=p.atom_fea_len,
                n_conv=p.n_conv,
                h_fea_len=p.h_fea_len,
                n_h=p.n_h,
                radius=p.radius,
                gaussian_step=p.gaussian_step,
                pooling=p.pooling,
                out_dim=out_dim,
                extra_dim=extra_dim,
                dropout=p.dropout,
                output_shift=shift,
            )

        return build

    def extra_fit_info(self) -> dict[str, Any]:
        info = super().extra_fit_info()
        if self._stats is not None:
            info["graph_cache"] = self._stats.as_dict()
        return info

    def embed(self, data: Dataset) -> np.ndarray:
        """The fitted network's pooled crystal embeddings, (n, atom_fea_len) float32, weights untouched.

        What "CGCNN + descriptors" (`cgcnn+desc`) freezes and hands to its second
        model. A plain CGCNN only: a hybrid's embedding was learned with its
        descriptors, and atom-sum has no pooled embedding.
        """
        import torch

        from crystalbench.gnn.graphs import collate_graphs
        from crystalbench.gnn.trainer import deterministic, to_device

        from .net import CGCNNNet

        if self.fit_result is None:
            raise RuntimeError(f"{self.name}: embed called before fit")
        if self.features_dim:
            raise BadInputError(f"{self.name}: embeddings of a descriptor hybrid are not a frozen plain CGCNN's")
        net = self.fit_result.module
        assert isinstance(net, CGCNNNet)
        device = next(net.parameters()).device
        graphs = self._graphs(data, progress=False)
        size = self.params.batch_size
        net.eval()
        parts = []
        with deterministic(device), torch.no_grad():
            for start in range(0, len(graphs), size):
                batch = to_device(collate_graphs(graphs[start : start + size]), device)
                parts.append(net.embed(batch).float().cpu())
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.params.atom_fea_len), dtype=np.float32)


def make_cgcnn(ctx: ModelContext) -> CGCNNModel:
    """Factory of `cgcnn`."""
    return CGCNNModel(ctx, name="cgcnn")


def make_de_cgcnn(ctx: ModelContext) -> CGCNNModel:
    """Factory of `de-cgcnn` (requires descriptor features)."""
    return CGCNNModel(ctx, name="de-cgcnn", require_features=True)

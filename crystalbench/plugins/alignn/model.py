"""The ALIGNN / de-ALIGNN `Model`: atom + line graphs as items, `AlignnNet` as the network, the rest from `TorchModel`.

Torch-free at import time (the network and the training loop are imported in `fit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import Dataset, ModelContext
from crystalbench.gnn.torch_model import TorchModel

from .graphs import AlignnGraph
from .params import AlignnParams, DeAlignnParams

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crystalbench.gnn.graphs import GraphStats

__all__ = ["AlignnParams", "DeAlignnParams", "AlignnModel", "make_alignn", "make_de_alignn"]


class AlignnModel(TorchModel):
    """crystalbench `Model` for alignn / de-alignn (and `--descriptors` hybrids of alignn).

    Extra per-sample features are used whenever the training set carries them
    (`Dataset.features`); they are imputed and standardized on the training
    set (shared `FeatureInput`), then concatenated with the pooled embedding.
    After `fit`, `fit_info` holds the best epoch, epochs run, the torch thread
    count and the graph-cache statistics of the fit.
    """

    params_class = AlignnParams
    missing_features = "needs descriptor features (default gong29) but none were attached"
    params: AlignnParams

    def __init__(
        self,
        ctx: ModelContext,
        params_class: type[AlignnParams] = AlignnParams,
        *,
        name: str = "alignn",
        require_features: bool = False,
    ) -> None:
        super().__init__(ctx, name=name, params_class=params_class, require_features=require_features)
        self._stats: GraphStats | None = None
        self._fit_graph_cache: dict[str, Any] = {}

    def items(self, data: Dataset, *, progress: bool) -> list[tuple[AlignnGraph, np.ndarray | None]]:
        from crystalbench.gnn.atom_features import check_elements
        from crystalbench.gnn.graphs import GraphStats, model_graph_store

        from .graphs import alignn_graph_kind, load_or_build_graphs

        if self._stats is None:
            self._stats = GraphStats()
        kind = alignn_graph_kind(self.params.graph)
        store = model_graph_store(self.ctx, kind.namespace, kind.version)
        graphs = load_or_build_graphs(data, self.params.graph, store, progress=progress, stats=self._stats)
        check_elements((g.z for g in graphs), what="atom features (ALIGNN uses the CGCNN embedding)")
        assert self.features is not None
        feats = self.features.transform(data)
        return [(g, None if feats is None else feats[i]) for i, g in enumerate(graphs)]

    def collate(self) -> Callable[[list[Any]], Any]:
        from crystalbench.gnn.atom_features import atom_feature_table

        from .net import make_collate

        return make_collate(atom_feature_table())

    def network(self, train: Dataset) -> Callable[[], nn.Module]:
        from crystalbench.gnn.atom_features import atom_feature_table

        from .net import AlignnNet

        params, n_atom_features = self.params, atom_feature_table().shape[1]
        out_dim, extra_dim, shift = self.out_dim(train), self.features_dim, self.atom_sum_shift(train)
        return lambda: AlignnNet(params, n_atom_features, out_dim, extra_dim, output_shift=shift)

    def prepare(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from crystalbench.gnn.graphs import GraphStats

        self._stats = GraphStats()  # this fit's graph-cache statistics

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        super().fit(train, val, seed=seed, progress=progress)
        assert self._stats is not None
        self._fit_graph_cache = self._stats.as_dict()  # the record reports the fit's cache use, not predict's

    def extra_fit_info(self) -> dict[str, Any]:
        return {**super().extra_fit_info(), "graph_cache": self._fit_graph_cache}


def make_alignn(ctx: ModelContext) -> AlignnModel:
    """Factory of `alignn`."""
    return AlignnModel(ctx, AlignnParams, name="alignn")


def make_de_alignn(ctx: ModelContext) -> AlignnModel:
    """Factory of `de-alignn` (requires descriptor features)."""
    return AlignnModel(ctx, DeAlignnParams, name="de-alignn", require_features=True)

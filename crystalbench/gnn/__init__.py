"""The shared GNN toolkit: crystal graphs and their cache, atom features, readout heads, the training loop.

What a GNN plugin imports::

    from crystalbench.gnn import GraphParams, build_graphs, collate_graphs      # crystal graphs (numpy)
    from crystalbench.gnn import GraphKind, GraphStore, graph_store             # cache your own graph type
    from crystalbench.gnn import atom_feature_table, check_elements             # the one atom-feature table
    from crystalbench.gnn import FeatureInput, MLPHead, pool_atoms              # readout, descriptor hybrids
    from crystalbench.gnn import POOLINGS, atom_sum_readout, atom_sum_shift     # the per-atom readout (eq. 13)
    from crystalbench.gnn import TorchModel, TrainingParams                    # the base of a torch model
    from crystalbench.gnn import TrainConfig, fit_torch, predict_torch          # the shared training loop
    from crystalbench.gnn import param, check_training                          # typed hyperparameters

Modules: `graphs` (numpy), `atom_features` (numpy), `params` (no dependencies:
`TrainingParams`, the recipe fields every torch model shares), `torch_model`
(`TorchModel`, torch-free at import), `heads` and `trainer` (torch). Names are resolved lazily, so
``import crystalbench.gnn`` and the numpy-only names never import torch;
plugin modules still import the torch-backed names inside `fit`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .atom_features import ATOM_FEATURE_DIM, MAX_Z, atom_feature_table, check_elements
    from .graphs import (
        CRYSTAL_GRAPH,
        CrystalGraph,
        GraphBatch,
        GraphKind,
        GraphParams,
        GraphStats,
        GraphStore,
        build_graphs,
        clear_graph_memo,
        collate_graphs,
        crystal_graph_kind,
        graph_store,
        model_graph_store,
        structure_graph,
    )
    from .heads import FeatureInput, MLPHead, atom_sum_readout, atom_sum_shift, pool_atoms
    from .params import (
        POOLINGS,
        BatchNormTrainingParams,
        Optimizer,
        Scheduler,
        TrainingParams,
        check_positive,
        check_training,
        param,
        params_of,
    )
    from .torch_model import TorchModel
    from .trainer import (
        FitResult,
        NonFiniteLossError,
        TargetScaler,
        TrainConfig,
        deterministic,
        fit_torch,
        output_dim,
        predict_torch,
        resolve_device,
        to_device,
    )

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("ATOM_FEATURE_DIM", "MAX_Z", "atom_feature_table", "check_elements"), "atom_features"),
    **dict.fromkeys(
        (
            "CRYSTAL_GRAPH", "CrystalGraph", "GraphBatch", "GraphKind", "GraphParams", "GraphStats", "GraphStore",
            "build_graphs", "clear_graph_memo", "collate_graphs", "crystal_graph_kind", "graph_store",
            "model_graph_store", "structure_graph",
        ),
        "graphs",
    ),
    **dict.fromkeys(("FeatureInput", "MLPHead", "atom_sum_readout", "atom_sum_shift", "pool_atoms"), "heads"),
    **dict.fromkeys(
        (
            "POOLINGS", "BatchNormTrainingParams", "Optimizer", "Scheduler", "TrainingParams", "check_positive",
            "check_training", "param", "params_of",
        ),
        "params",
    ),
    "TorchModel": "torch_model",
    **dict.fromkeys(
        (
            "FitResult", "NonFiniteLossError", "TargetScaler", "TrainConfig", "deterministic", "fit_torch",
            "output_dim", "predict_torch", "resolve_device", "to_device",
        ),
        "trainer",
    ),
}

__all__ = [
    "ATOM_FEATURE_DIM",
    "BatchNormTrainingParams",
    "CRYSTAL_GRAPH",
    "CrystalGraph",
    "FeatureInput",
    "FitResult",
    "GraphBatch",
    "GraphKind",
    "GraphParams",
    "GraphStats",
    "GraphStore",
    "MAX_Z",
    "MLPHead",
    "NonFiniteLossError",
    "Optimizer",
    "POOLINGS",
    "Scheduler",
    "TargetScaler",
    "TorchModel",
    "TrainConfig",
    "TrainingParams",
    "atom_feature_table",
    "atom_sum_readout",
    "atom_sum_shift",
    "build_graphs",
    "check_elements",
    "check_positive",
    "check_training",
    "clear_graph_memo",
    "collate_graphs",
    "crystal_graph_kind",
    "deterministic",
    "fit_torch",
    "graph_store",
    "model_graph_store",
    "output_dim",
    "param",
    "params_of",
    "pool_atoms",
    "predict_torch",
    "resolve_device",
    "structure_graph",
    "to_device",
]



def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

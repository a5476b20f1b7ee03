"""`AlignnParams` and `DeAlignnParams`: the typed hyperparameters of alignn and de-alignn (torch-free).

Graph and architecture fields are ALIGNN's own; the training recipe extends
the shared `TrainingParams` and re-declares the alignn package's defaults,
each with its source (docs/recipes.md). `net.py` reads these classes; it
imports nothing from `model.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from crystalbench import Pooling
from crystalbench.gnn.params import Optimizer, Scheduler, TrainingParams, check_positive, param

from .graphs import AlignnGraphParams

__all__ = ["AlignnParams", "DeAlignnParams"]


# Defaults: the alignn package's recipe (usnistgov/alignn, the version behind
# the paper and its Matbench v0.1 submission, alignn==2021.12.27) -- see
# docs/recipes.md. Architecture: `ALIGNNConfig` (alignn/models/alignn.py): 4
# ALIGNN + 4 GCN layers, 80 RBF bins on bond lengths (0-8 A), 40 on bond-angle
# cosines, 64-d RBF embedding, 256-d hidden features, CGCNN 92-d atom features.
# Training: `TrainingConfig` (alignn/config.py): AdamW, one-cycle schedule, 300
# epochs, batch 64, MSE, `n_early_stopping = None`; learning rate 1e-3 and weight
# decay 1e-5 from the package's example config (alignn/examples/sample_data/
# config_example.json, the paper's Methods; TrainingConfig's bare defaults are
# 1e-2 and 0). Graph: `neighbor_strategy = "k-nearest"`, cutoff 8, 12 neighbours,
# `use_canonize = True` (see graphs.py).
@dataclass(frozen=True)
class AlignnParams(TrainingParams):
    """Hyperparameters of alignn: the alignn package's recipe (docs/recipes.md)."""

    # graph
    cutoff: float = param(8.0, "neighbour search radius (A); alignn config.py TrainingConfig.cutoff")
    max_neighbors: int = param(12, "k of the k-NN graph (alignn's k-nearest rule, graphs.py); TrainingConfig.max_neighbors")
    extend_cutoff: bool = param(
        True, "grow the cutoff until every atom has max_neighbors, as alignn's nearest_neighbor_edges does"
    )
    # architecture (alignn/models/alignn.py ALIGNNConfig, as in the paper)
    alignn_layers: int = param(4, "ALIGNN layers (atom graph + line graph); ALIGNNConfig.alignn_layers")
    gcn_layers: int = param(4, "edge-gated graph convolutions on the atom graph; ALIGNNConfig.gcn_layers")
    edge_input_features: int = param(80, "RBF bins on bond length; ALIGNNConfig.edge_input_features")
    triplet_input_features: int = param(40, "RBF bins on bond-angle cosine; ALIGNNConfig.triplet_input_features")
    embedding_features: int = param(64, "size of the RBF embeddings; ALIGNNConfig.embedding_features")
    hidden_features: int = param(256, "hidden size of atom/bond features; ALIGNNConfig.hidden_features")
    fc_layers: int = param(0, "hidden layers of the output head (ALIGNN: a single linear layer)")
    pooling: Pooling = param(
        "mean",
        "readout: mean of atoms (intensive targets), sum of atoms, or atom-sum: output head per atom, "
        "then summed (extensive, paper eq. 13)",
    )
    # training: the alignn package's recipe (the shared `TrainingParams`; lr_milestone as there)
    epochs: int = param(300, "training epochs; alignn TrainingConfig.epochs (Matbench submission: 500)")
    batch_size: int = param(64, "crystals per optimisation step; TrainingConfig.batch_size (Matbench submission: 32)")
    optimizer: Optimizer = param("adamw", "alignn TrainingConfig.optimizer")
    scheduler: Scheduler = param(
        "onecycle", "alignn TrainingConfig.scheduler: OneCycleLR per batch, peak lr, pct_start 0.3 (alignn train.py)"
    )
    lr: float = param(1e-3, "peak learning rate; alignn examples config_example.json learning_rate")
    weight_decay: float = param(1e-5, "AdamW decoupled weight decay; alignn examples config_example.json")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only; alignn train.py uses 0.9)")
    patience: int | None = param(
        None, "early stopping after this many epochs without validation improvement; None: off (TrainingConfig.n_early_stopping)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            self, "cutoff", "max_neighbors", "edge_input_features", "triplet_input_features",
            "embedding_features", "hidden_features",
        )
        check_positive(self, "alignn_layers", "gcn_layers", "fc_layers", allow_zero=True)

    @property
    def graph(self) -> AlignnGraphParams:
        return AlignnGraphParams(cutoff=self.cutoff, max_neighbors=self.max_neighbors, extend_cutoff=self.extend_cutoff)


@dataclass(frozen=True)
class DeAlignnParams(AlignnParams):
    """Hyperparameters of de-alignn: alignn's, with one hidden layer in the head.

    The standardized descriptor vector joins the pooled embedding (paper eq.
    14); one hidden layer lets descriptors interact non-linearly with the graph
    embedding instead of only shifting the output.
    """

    fc_layers: int = param(1, "hidden layers of the output head (1: descriptors interact with the embedding)")

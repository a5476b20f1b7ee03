"""`CGCNNParams`: the typed hyperparameters of cgcnn and de-cgcnn (torch-free; imported when the plugin registers).

Architecture and graph fields are CGCNN's own; the training recipe extends the
shared `BatchNormTrainingParams` (CGCNN has BatchNorm: precise-BN fields
included) and re-declares only the defaults of Gong et al. 2023's recipe, each
with its source (docs/recipes.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from crystalbench import Pooling
from crystalbench.gnn.params import BatchNormTrainingParams, Optimizer, Scheduler, check_positive, param

__all__ = ["CGCNNParams"]


@dataclass(frozen=True)
class CGCNNParams(BatchNormTrainingParams):
    """Hyperparameters of cgcnn and de-cgcnn: Gong et al. 2023's recipe (Methods, Table S2); see docs/recipes.md."""

    # architecture
    atom_fea_len: int = param(64, "atom embedding size (paper search space 32/64)")
    n_conv: int = param(3, "graph convolutions")
    h_fea_len: int = param(128, "hidden size of the output network (paper search space 64/128)")
    n_h: int = param(1, "hidden layers of the output network (paper search space 1/2/3)")
    dropout: float = param(0.0, "dropout after each hidden layer of the output network")
    pooling: Pooling = param(
        "mean",
        "readout: mean of atoms (intensive targets), sum of atoms, or atom-sum: output network per atom, "
        "then summed (extensive, paper eq. 13)",
    )
    # graph
    radius: float = param(8.0, "neighbour search radius (A)")
    max_neighbors: int = param(12, "neighbours kept per atom (nearest first)")
    gaussian_step: float = param(0.2, "spacing of the Gaussian distance expansion (A)")
    # training: Gong et al. 2023's recipe (docs/recipes.md; txie-93/cgcnn's is one --config away)
    epochs: int = param(300, "training epochs (Gong et al. 2023 Methods; txie-93/cgcnn main.py --epochs: 30)")
    batch_size: int = param(64, "crystals per optimisation step (txie-93/cgcnn main.py --batch-size: 256)")
    optimizer: Optimizer = param(
        "adam", "as measured here for the paper's tasks (txie-93/cgcnn main.py --optim default: SGD)"
    )
    scheduler: Scheduler = param(
        "none", "constant lr as measured for the paper's tasks (txie-93/cgcnn: MultiStepLR, x0.1 at epoch 100)"
    )
    lr: float = param(
        1e-2, "learning rate: the paper's Table S2 search space 1e-3/1e-2; 1e-2 won on chains and phonon_cv (= txie-93 --lr)"
    )
    weight_decay: float = param(0.0, "L2 penalty (txie-93/cgcnn main.py --weight-decay: 0)")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only; txie-93/cgcnn main.py --momentum: 0.9)")
    lr_milestone: int = param(100, "epoch of the x0.1 step (scheduler = multistep only; txie-93 --lr-milestones: 100)")
    patience: int | None = param(
        None, "early stopping after this many epochs without validation improvement; None: off (txie-93 keeps the best epoch)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "atom_fea_len", "h_fea_len", "radius", "max_neighbors", "gaussian_step")
        check_positive(self, "n_conv", "n_h", allow_zero=True)
        if self.gaussian_step > self.radius:
            raise ValueError(f"invalid CGCNNParams: gaussian_step {self.gaussian_step} exceeds radius {self.radius}")

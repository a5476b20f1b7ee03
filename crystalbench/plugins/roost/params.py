"""`RoostParams`: the typed hyperparameters of roost (torch-free; imported when the plugin registers).

Architecture fields are aviary's Roost's; the training recipe extends the shared
`TrainingParams` and re-declares aviary's reference-script defaults, each with
its source (docs/recipes.md). `net.py` reads this class; it imports nothing
from `model.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from crystalbench.gnn.params import Optimizer, Scheduler, TrainingParams, check_positive, param

__all__ = ["RoostParams"]


# Architecture: aviary's Roost defaults (aviary/roost/model.py `Roost.__init__`),
# which are those of Goodall & Lee, Nat. Commun. 11, 6280 (2020): 64-d element
# features, 3 message-passing layers with 3 attention heads, 3 pooling heads,
# (256,) gate/message nets, residual output network 1024-512-256-128-64.
# Training: aviary's reference script (examples/roost-example.py argparse
# defaults): AdamW, lr 3e-4, weight decay 1e-6, batch 128, 100 epochs, no
# learning-rate decay (MultiStepLR with no milestones), no early stopping
# (patience None), targets standardized (aviary `Normalizer`). Its loss is L1;
# ours is the shared loop's MSE (docs/recipes.md).
@dataclass(frozen=True)
class RoostParams(TrainingParams):
    """Hyperparameters of roost: aviary's defaults (= Goodall & Lee 2020) and reference training script."""

    elem_embedding: str = param("matscholar200", "element embedding: matscholar200, cgcnn92, megnet16, onehot112 or a JSON path")
    freeze_embedding: bool = param(True, "keep the element embedding fixed, as the original Roost")
    elem_fea_len: int = param(64, "element feature size after the input projection")
    n_graph: int = param(3, "message-passing layers")
    elem_heads: int = param(3, "attention heads per message-passing layer")
    elem_gate: tuple[int, ...] = param((256,), "hidden layers of the element attention gate network")
    elem_msg: tuple[int, ...] = param((256,), "hidden layers of the element message network")
    cry_heads: int = param(3, "attention heads of the crystal pooling")
    cry_gate: tuple[int, ...] = param((256,), "hidden layers of the crystal pooling gate network")
    cry_msg: tuple[int, ...] = param((256,), "hidden layers of the crystal pooling message network")
    trunk_hidden: tuple[int, ...] = param((1024, 512), "hidden layers of the residual output trunk")
    out_hidden: tuple[int, ...] = param((256, 128, 64), "hidden layers of the output network")
    # training: aviary's examples/roost-example.py defaults (docs/recipes.md; lr_milestone as `TrainingParams`)
    epochs: int = param(100, "training epochs; aviary roost-example.py --epochs")
    batch_size: int = param(128, "compositions per optimisation step; aviary roost-example.py --batch-size")
    optimizer: Optimizer = param("adamw", "aviary roost-example.py --optim")
    scheduler: Scheduler = param(
        "none", "constant lr (aviary's MultiStepLR gets no milestones in roost-example.py)"
    )
    lr: float = param(3e-4, "learning rate; aviary roost-example.py --learning-rate")
    weight_decay: float = param(1e-6, "AdamW decoupled weight decay; aviary roost-example.py --weight-decay")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only); aviary roost-example.py --momentum")
    patience: int | None = param(
        None, "early stopping after this many epochs without validation improvement; None: off (aviary: patience None)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "elem_fea_len", "n_graph", "elem_heads", "cry_heads")
        for name in ("elem_gate", "elem_msg", "cry_gate", "cry_msg", "trunk_hidden", "out_hidden"):
            value = tuple(getattr(self, name))
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
                raise ValueError(f"invalid RoostParams: {name} must be a list of positive integers, got {list(value)!r}")
            object.__setattr__(self, name, value)
        if not self.elem_embedding:
            raise ValueError("invalid RoostParams: elem_embedding must name an embedding or a JSON file")

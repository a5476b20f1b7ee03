"""The ROOST `Model`: typed hyperparameters, composition encoding, training through the shared loop.

Torch-free at import time (the network and the training loop are imported in `fit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.gnn.params import check_positive, check_training, param, params_of
from crystalbench.harness.seeding import apply_threads

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from crystalbench.gnn.trainer import FitResult

__all__ = ["RoostParams", "RoostModel", "encode_composition", "collate", "make_roost"]


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
class RoostParams:
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
    # training: aviary's examples/roost-example.py defaults (docs/recipes.md)
    epochs: int = param(100, "training epochs; aviary roost-example.py --epochs")
    batch_size: int = param(128, "compositions per optimisation step; aviary roost-example.py --batch-size")
    optimizer: Literal["adam", "adamw", "sgd"] = param("adamw", "aviary roost-example.py --optim")
    scheduler: Literal["none", "onecycle", "multistep"] = param(
        "none", "constant lr (aviary's MultiStepLR gets no milestones in roost-example.py)"
    )
    lr: float = param(3e-4, "learning rate; aviary roost-example.py --learning-rate")
    weight_decay: float = param(1e-6, "AdamW decoupled weight decay; aviary roost-example.py --weight-decay")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only); aviary roost-example.py --momentum")
    lr_milestone: int = param(100, "epoch of the x0.1 step (scheduler = multistep only)")
    patience: int | None = param(
        None, "early stopping after this many epochs without validation improvement; None: off (aviary: patience None)"
    )

    def __post_init__(self) -> None:
        check_training(self)
        check_positive(self, "elem_fea_len", "n_graph", "elem_heads", "cry_heads")
        for name in ("elem_gate", "elem_msg", "cry_gate", "cry_msg", "trunk_hidden", "out_hidden"):
            value = tuple(getattr(self, name))
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
                raise ValueError(f"invalid RoostParams: {name} must be a list of positive integers, got {list(value)!r}")
            object.__setattr__(self, name, value)
        if not self.elem_embedding:
            raise ValueError("invalid RoostParams: elem_embedding must name an embedding or a JSON file")


def encode_composition(composition: Any) -> tuple[np.ndarray, np.ndarray]:
    """(atomic numbers (n,), fractional weights (n, 1)) of a pymatgen Composition.

    Oxidation states are dropped (the embedding is per element); weights sum to 1.
    """
    comp = composition.element_composition.fractional_composition
    items = [(el, amt) for el, amt in comp.items() if amt > 0]
    if not items:
        raise BadInputError(f"empty composition {composition!r}")
    z = np.array([el.Z for el, _ in items], dtype=np.int64)
    w = np.array([amt for _, amt in items], dtype=np.float64)
    return z, (w / w.sum()).astype(np.float32).reshape(-1, 1)


def collate(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, ...]:
    """Batch (z, weights) items into Roost's inputs; every element pairs with every element of its formula."""
    import torch

    zs, ws, self_idx, nbr_idx, cry_idx = [], [], [], [], []
    base = 0
    for i, (z, w) in enumerate(items):
        n = len(z)
        local = np.arange(n)
        self_idx.append(np.repeat(local, n) + base)
        nbr_idx.append(np.tile(local, n) + base)
        cry_idx.append(np.full(n, i, dtype=np.int64))
        zs.append(z)
        ws.append(w)
        base += n

    def cat(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts))

    return (cat(ws), cat(zs), cat(self_idx), cat(nbr_idx), cat(cry_idx))


class RoostModel:
    """crystalbench `Model` wrapping aviary's Roost (regression or n-class classification).

    After `fit`, `fit_info` holds the best epoch, epochs run and the torch thread count.
    """

    def __init__(self, ctx: ModelContext, *, name: str = "roost") -> None:
        self.ctx = ctx
        self.name = name
        self.params: RoostParams = params_of(ctx, name, RoostParams)
        self.fit_info: dict[str, Any] = {}
        self._result: FitResult | None = None
        self._max_z = 0

    def _items(self, data: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
        items = [encode_composition(c) for c in data.compositions or ()]
        max_z = self._max_z
        for i, (z, _) in enumerate(items):
            if z.max() > max_z:
                raise BadInputError(
                    f"{data.ids[i]}: element Z={int(z.max())} has no {self.params.elem_embedding} embedding (max Z {max_z})"
                )
        return items

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from aviary.utils import get_element_embedding

        from crystalbench.gnn.trainer import TrainConfig, fit_torch, output_dim

        from .net import RoostNet

        apply_threads(self.ctx.threads)
        self._max_z = int(get_element_embedding(self.params.elem_embedding).num_embeddings) - 1
        out_dim = output_dim(self.ctx.task_type, self.ctx.n_classes, train)
        cfg = TrainConfig.from_params(self.params, task_type=self.ctx.task_type, device=self.ctx.device)
        val_items = self._items(val) if val is not None and len(val) else None
        params, task_type = self.params, self.ctx.task_type
        self._result = fit_torch(
            lambda: RoostNet(params, out_dim, task_type),
            self._items(train),
            train.targets,
            collate,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val is None or val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc=self.name,
        )
        self.fit_info = self._result.summary()

    def predict(self, data: Dataset) -> np.ndarray:
        from crystalbench.gnn.trainer import predict_torch

        if self._result is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return predict_torch(self._result, self._items(data), collate)


def make_roost(ctx: ModelContext) -> RoostModel:
    """Factory of `roost`."""
    return RoostModel(ctx)

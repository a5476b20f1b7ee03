"""ROOST (Goodall & Lee 2020): composition-only message passing, via aviary-models.

The paper's composition-only baseline: it sees the stoichiometry and nothing
else, so a structural descriptor it cannot learn marks information that only
the geometry carries. The network is `aviary.roost.model.Roost` unchanged
(element embedding shipped with aviary, matscholar200 by default); this module
encodes `Dataset.composition_list` (works for structure and composition-only
tasks alike) and trains it with the shared loop in `training.py`.

Faithfulness notes:
* the element embedding is frozen, as in the original Roost where the
  matscholar vectors are fixed inputs and only the linear projection after
  them is learned (aviary's `nn.Embedding` would otherwise train it too);
  `freeze_embedding=False` gives aviary's behaviour;
* the loss is the shared loop's MSE on standardized targets (Roost's own
  reference training uses an L1 loss), so all benchmark models optimise the same thing.

Torch and aviary are imported only when a Roost job runs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from crystalbench.harness.dataset import Dataset
from crystalbench.harness.errors import BadInputError
from crystalbench.harness.hookspecs import hookimpl
from crystalbench.harness.specs import ModelContext, ModelSpec

__all__ = ["ROOST_DEFAULTS", "encode_composition", "RoostModel", "bench_models"]

# Architecture: aviary's Roost defaults, which are those of Goodall & Lee,
# Nat. Commun. 11, 6280 (2020): 64-d element features, 3 message-passing
# layers with 3 attention heads, 3 pooling heads, (256,) gate/message nets,
# residual output network 1024-512-256-128-64. Optimiser: Roost's lr 3e-4,
# weight decay 1e-6, batch size 128. 300 epochs with early stopping (patience
# 50), the same budget the paper gives the GNNs; Roost converges well before.
ROOST_DEFAULTS: dict[str, Any] = {
    "elem_embedding": "matscholar200",  # or cgcnn92, megnet16, onehot112, or a JSON path
    "freeze_embedding": True,
    "elem_fea_len": 64,
    "n_graph": 3,
    "elem_heads": 3,
    "elem_gate": [256],
    "elem_msg": [256],
    "cry_heads": 3,
    "cry_gate": [256],
    "cry_msg": [256],
    "trunk_hidden": [1024, 512],
    "out_hidden": [256, 128, 64],
    "epochs": 300,
    "batch_size": 128,
    "lr": 3e-4,
    "weight_decay": 1e-6,
    "patience": 50,
}


def encode_composition(composition) -> tuple[np.ndarray, np.ndarray]:
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


def collate(items: Sequence[tuple[np.ndarray, np.ndarray]]):
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
    cat = lambda parts: torch.from_numpy(np.concatenate(parts))  # noqa: E731
    return (cat(ws), cat(zs), cat(self_idx), cat(nbr_idx), cat(cry_idx))


@lru_cache(maxsize=1)
def _net_class():
    """The torch wrapper class, defined on first use (torch/aviary imported only then)."""
    import torch
    from torch import nn

    from aviary.roost.model import Roost

    class RoostNet(nn.Module):
        """aviary's Roost with a single target, called as module(batch) by the shared loop."""

        def __init__(self, hp: Mapping[str, Any], out_dim: int, task_type: str) -> None:
            super().__init__()
            self.roost = Roost(
                robust=False,
                n_targets=[out_dim],
                task_dict={"target": task_type},
                elem_embedding=str(hp["elem_embedding"]),
                elem_fea_len=int(hp["elem_fea_len"]),
                n_graph=int(hp["n_graph"]),
                elem_heads=int(hp["elem_heads"]),
                elem_gate=[int(v) for v in hp["elem_gate"]],
                elem_msg=[int(v) for v in hp["elem_msg"]],
                cry_heads=int(hp["cry_heads"]),
                cry_gate=[int(v) for v in hp["cry_gate"]],
                cry_msg=[int(v) for v in hp["cry_msg"]],
                trunk_hidden=[int(v) for v in hp["trunk_hidden"]],
                out_hidden=[int(v) for v in hp["out_hidden"]],
                device="cpu",  # the shared loop moves the module to the job's device
            )
            if hp["freeze_embedding"]:
                self.roost.elem_embedding.weight.requires_grad_(False)

        @property
        def max_z(self) -> int:
            return int(self.roost.elem_embedding.num_embeddings) - 1

        def forward(self, batch: tuple) -> torch.Tensor:
            return self.roost(*batch)[0]

    return RoostNet


class RoostModel:
    """crystalbench `Model` wrapping aviary's Roost (regression or n-class classification).

    After `fit`, `fit_info` holds the best epoch and epochs run.
    """

    def __init__(self, ctx: ModelContext) -> None:
        self.ctx = ctx
        self.hp: dict[str, Any] = {**ROOST_DEFAULTS, **dict(ctx.hparams)}
        self.fit_info: dict[str, Any] = {}
        self._result = None
        self._max_z = 0

    def _items(self, data: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
        items = [encode_composition(c) for c in data.composition_list]
        max_z = self._max_z
        for i, (z, _) in enumerate(items):
            if z.max() > max_z:
                raise BadInputError(
                    f"{data.ids[i]}: element Z={int(z.max())} has no {self.hp['elem_embedding']} embedding (max Z {max_z})"
                )
        return items

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from aviary.utils import get_element_embedding

        from crystalbench.plugins.training import TrainConfig, fit_torch

        self._max_z = int(get_element_embedding(str(self.hp["elem_embedding"])).num_embeddings) - 1
        out_dim = 1
        if self.ctx.task_type == "classification":
            out_dim = int(self.ctx.n_classes or (len(train.classes) if train.classes else int(np.max(train.targets)) + 1))
        cfg = TrainConfig.from_hparams(self.hp, task_type=self.ctx.task_type, device=self.ctx.device)
        val_items = self._items(val) if val is not None and len(val) else None
        net_cls = _net_class()
        self._result = fit_torch(
            lambda: net_cls(self.hp, out_dim, self.ctx.task_type),
            self._items(train),
            train.targets,
            collate,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc="roost",
        )
        self.fit_info = self._result.summary()

    def predict(self, data: Dataset) -> np.ndarray:
        from crystalbench.plugins.training import predict_torch

        if self._result is None:
            raise RuntimeError("predict called before fit")
        return predict_torch(self._result, self._items(data), collate)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="roost",
            factory=RoostModel,
            description="ROOST: composition-only message passing over the elements of a formula (aviary).",
            defaults=ROOST_DEFAULTS,
            needs="composition",
            accepts_features=False,
            classification=True,
            reference="Goodall & Lee, Nat. Commun. 11, 6280 (2020); aviary-models",
        )
    ]

"""The ROOST `Model`: compositions encoded as items, `RoostNet` as the network, the rest from `TorchModel`.

Torch-free at import time (the network and the training loop are imported in `fit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.gnn.torch_model import TorchModel

from .params import RoostParams

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["RoostParams", "RoostModel", "encode_composition", "collate", "make_roost"]


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


class RoostModel(TorchModel):
    """crystalbench `Model` wrapping aviary's Roost (regression or n-class classification).

    Composition only: no extra feature columns. After `fit`, `fit_info` holds
    the best epoch, epochs run and the torch thread count.
    """

    params_class = RoostParams
    uses_features = False
    params: RoostParams

    def __init__(self, ctx: ModelContext, *, name: str = "roost") -> None:
        super().__init__(ctx, name=name)
        self._max_z = 0

    def prepare(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from aviary.utils import get_element_embedding

        self._max_z = int(get_element_embedding(self.params.elem_embedding).num_embeddings) - 1

    def items(self, data: Dataset, *, progress: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        items = [encode_composition(c) for c in data.compositions or ()]
        max_z = self._max_z
        for i, (z, _) in enumerate(items):
            if z.max() > max_z:
                raise BadInputError(
                    f"{data.ids[i]}: element Z={int(z.max())} has no {self.params.elem_embedding} embedding (max Z {max_z})"
                )
        return items

    def collate(self) -> Callable[[list[Any]], Any]:
        return collate

    def network(self, train: Dataset) -> Callable[[], nn.Module]:
        from .net import RoostNet

        params, out_dim, task_type = self.params, self.out_dim(train), self.ctx.task_type
        return lambda: RoostNet(params, out_dim, task_type)


def make_roost(ctx: ModelContext) -> RoostModel:
    """Factory of `roost`."""
    return RoostModel(ctx)

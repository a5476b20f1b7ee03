"""aviary's Roost as a module the shared training loop can call as ``module(batch)``.

Imports torch and aviary at module level: `model.py` imports this module inside `fit`.
"""

from __future__ import annotations

import torch
from aviary.roost.model import Roost
from torch import nn

from .params import RoostParams

__all__ = ["RoostNet"]


class RoostNet(nn.Module):
    """aviary's Roost with a single target (regression value or class logits)."""

    def __init__(self, params: RoostParams, out_dim: int, task_type: str) -> None:
        super().__init__()
        self.roost = Roost(
            robust=False,
            n_targets=[out_dim],
            task_dict={"target": task_type},
            elem_embedding=params.elem_embedding,
            elem_fea_len=params.elem_fea_len,
            n_graph=params.n_graph,
            elem_heads=params.elem_heads,
            elem_gate=list(params.elem_gate),
            elem_msg=list(params.elem_msg),
            cry_heads=params.cry_heads,
            cry_gate=list(params.cry_gate),
            cry_msg=list(params.cry_msg),
            trunk_hidden=list(params.trunk_hidden),
            out_hidden=list(params.out_hidden),
            device="cpu",  # the shared loop moves the module to the job's device
        )
        if params.freeze_embedding:
            self.roost.elem_embedding.weight.requires_grad_(False)

    @property
    def max_z(self) -> int:
        return int(self.roost.elem_embedding.num_embeddings) - 1

    def forward(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        out: torch.Tensor = self.roost(*batch)[0]
        return out

"""Readout pieces shared by the GNNs: atom pooling, the MLP head, and descriptor inputs for hybrids.

Three readouts (`POOLINGS`):

* ``"mean"``: pool the atom vectors by their mean, then the output network
  (CGCNN's default, paper eq. 4; intensive targets);
* ``"sum"``: pool by their sum, then the output network (the harness's
  historical readout for extensive targets: size enters the pooled vector,
  but the output network is not linear in it, so a doubled cell does not
  double the prediction);
* ``"atom-sum"``: the paper's eq. 13, ``Output = sum_i FCN(a_i)``: the output
  network is applied to every atom and the per-atom outputs are summed
  (`atom_sum_readout`). The prediction is extensive by construction: a
  supercell of k copies predicts exactly k times the cell's value. For
  hybrids the per-structure descriptor vector is broadcast to every atom,
  ``sum_i FCN([a_i ; d])``, so descriptors modulate each atom's contribution
  and their share also scales with the atom count. `atom_sum_shift` keeps the
  shared loop's target standardization from breaking that extensivity.

`FeatureInput` and `MLPHead` let any GNN consume ``Dataset.features``
(descriptors) the way de-CGCNN does (Gong et al. 2023, eq. 14): standardized
descriptors are concatenated with the pooled crystal embedding before the
output network, and the whole model trains end to end. This module imports
torch at import time: plugin modules import it inside their fit methods.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from crystalbench import BadInputError, Dataset, FeatureScaler, Pooling, TaskType

from .params import POOLINGS

__all__ = [
    "FeatureInput", "MLPHead", "pool_atoms", "Pooling", "POOLINGS", "atom_sum_readout", "atom_sum_shift",
    "sum_per_crystal",
]



def sum_per_crystal(x: torch.Tensor, crystal: torch.Tensor, n_crystals: int) -> torch.Tensor:
    """(n_crystals, d) sums of the rows of `x` by crystal (`index_add`: deterministic on CPU, backward a gather)."""
    return torch.zeros(n_crystals, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, crystal, x)


def pool_atoms(x: torch.Tensor, crystal: torch.Tensor, n_crystals: int, pooling: str) -> torch.Tensor:
    """Per-crystal mean (intensive, the CGCNN default) or sum of atom vectors, before the output network.

    `crystal[i]` is the crystal of atom i. Uses `index_add` (its backward is a
    gather), deterministic on CPU for any thread count. ``"atom-sum"`` pools
    after the output network, not before: see `atom_sum_readout`.
    """
    out = sum_per_crystal(x, crystal, n_crystals)
    if pooling == "sum":
        return out
    if pooling == "mean":
        counts = torch.bincount(crystal, minlength=n_crystals).clamp(min=1).to(x.dtype)
        return out / counts[:, None]
    if pooling == "atom-sum":
        raise ValueError("atom-sum pools the outputs of the per-atom network: use atom_sum_readout")
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


def atom_sum_readout(
    head: MLPHead,
    x: torch.Tensor,
    crystal: torch.Tensor,
    n_crystals: int,
    extra: torch.Tensor | None = None,
    shift: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Paper eq. 13: ``sum_i head(a_i)`` per crystal, minus `shift`; (n_crystals, out_dim).

    extra: (n_crystals, d) descriptor vectors of a hybrid; each atom's head
        input is ``[a_i ; extra[crystal(i)]]`` (the crystal's vector broadcast
        to its atoms), so the readout stays a sum of per-atom terms.
    shift: subtracted from every crystal's sum (see `atom_sum_shift`).
    """
    per_atom_extra = None if extra is None else extra.index_select(0, crystal)
    return sum_per_crystal(head(x, per_atom_extra), crystal, n_crystals) - shift


def atom_sum_shift(y_train: np.ndarray, task_type: str) -> float:
    """The constant that makes an atom-sum model's predictions exactly extensive.

    The shared loop trains on standardized targets ``z = (y - mean) / std``
    and predicts ``y = std * z + mean``. If the network's output were
    ``sum_i f(a_i)``, the prediction ``std * sum_i f + mean`` would carry a
    size-independent `mean`, and a doubled cell would not double it. The
    network subtracts ``mean / std`` (this value, from the same training
    targets the loop standardizes) from the sum, so the loop's inverse gives
    ``std * sum_i f(a_i)``: zero atoms predict 0, k copies predict k times
    one. 0 for classification (summed per-atom logits need no shift).
    """
    if task_type != TaskType.REGRESSION:
        return 0.0
    from .trainer import TargetScaler

    scaler = TargetScaler(np.asarray(y_train, dtype=float))
    return scaler.mean / scaler.std


class FeatureInput:
    """Extra per-sample features (`Dataset.features`) as model input, for hybrid models.

    Fit on the training set only: NaN/inf are imputed with training medians and
    columns standardized (the shared `FeatureScaler`, so rf and every hybrid GNN
    treat missing descriptors identically). `dim` is 0 when the training set has
    no features, and the model then behaves as a plain GNN.
    """

    def __init__(self) -> None:
        self.scaler: FeatureScaler | None = None
        self.names: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        return len(self.names) if self.scaler is not None else 0

    def fit(self, train: Dataset) -> FeatureInput:
        if train.features is None:
            self.scaler, self.names = None, ()
            return self
        self.names = tuple(train.feature_names)
        self.scaler = FeatureScaler().fit(train.features, self.names)
        return self

    def transform(self, data: Dataset) -> np.ndarray | None:
        """float32 (n, dim) scaled features, or None when the model was fit without features."""
        if self.scaler is None:
            return None
        if data.features is None:
            raise BadInputError(
                f"dataset {data.name!r} has no extra features but the model was trained with {self.dim} "
                f"({', '.join(self.names[:5])}...)"
            )
        if tuple(data.feature_names) != self.names:
            raise BadInputError(f"dataset {data.name!r}: feature columns differ from the training set's")
        return np.asarray(self.scaler.transform(data.features), dtype=np.float32)


class MLPHead(nn.Module):
    """Readout network on a pooled crystal embedding, optionally concatenated with extra features.

    ``[embedding ; features] -> (Linear -> act) x n_hidden -> Linear(out_dim)``.
    With ``extra_dim > 0`` this is the de-CGCNN hybridization (paper eq. 14): the
    standardized descriptor vector joins the embedding before the output network,
    and the whole model trains end to end.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int = 1,
        *,
        extra_dim: int = 0,
        n_hidden: int = 1,
        activation: Callable[[], nn.Module] = nn.Softplus,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.extra_dim = extra_dim
        layers: list[nn.Module] = []
        d = in_dim + extra_dim
        for _ in range(max(n_hidden, 0)):
            layers += [nn.Linear(d, hidden), activation()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = hidden
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(d, out_dim)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if self.extra_dim:
            if extra is None or extra.shape[-1] != self.extra_dim:
                raise ValueError(
                    f"MLPHead expects {self.extra_dim} extra features, got {None if extra is None else tuple(extra.shape)}"
                )
            h = torch.cat([h, extra.to(h.dtype)], dim=-1)
        out: torch.Tensor = self.out(self.hidden(h))
        return out

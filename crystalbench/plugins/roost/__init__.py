"""ROOST (Goodall & Lee 2020): composition-only message passing, via aviary-models.

The paper's composition-only baseline: it sees the stoichiometry and nothing
else, so a structural descriptor it cannot learn marks information that only
the geometry carries. The network is `aviary.roost.model.Roost` unchanged
(element embedding shipped with aviary, matscholar200 by default); the model
encodes `Dataset.compositions` (works for structure and composition-only
tasks alike) and trains it with the shared loop of `crystalbench.gnn`.

Faithfulness notes:
* the element embedding is frozen, as in the original Roost where the
  matscholar vectors are fixed inputs and only the linear projection after
  them is learned (aviary's `nn.Embedding` would otherwise train it too);
  `freeze_embedding=False` gives aviary's behaviour;
* the loss is the shared loop's MSE on standardized targets (Roost's own
  reference training uses an L1 loss), so all benchmark models optimise the same thing.

Layout: `params.py` (`RoostParams`), `model.py` (`RoostModel`, a
`crystalbench.gnn.TorchModel`, and the composition encoding; both torch-free at
import), `net.py` (torch and aviary; reads `params.py`, imports nothing from
`model.py`). Importing this package never imports torch.
"""

from __future__ import annotations

from crystalbench import ModelSpec, hookimpl

from .model import RoostModel, collate, encode_composition, make_roost
from .params import RoostParams

__all__ = ["RoostParams", "RoostModel", "encode_composition", "collate", "make_roost", "bench_models"]


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="roost",
            factory=make_roost,
            description="ROOST: composition-only message passing over the elements of a formula (aviary).",
            params=RoostParams,
            inputs=(),
            needs="composition",
            accepts_features=False,
            classification=True,
            reference="Goodall & Lee, Nat. Commun. 11, 6280 (2020); aviary-models",
        )
    ]

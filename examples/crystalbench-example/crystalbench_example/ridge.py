"""A complete third-party model plugin: ridge regression on a few geometric features.

The features are what a graph network sees too (interatomic distances, atom
counts, element properties), never the raw cell parameters: on the 1D-chain
tasks the cell length *is* the target, and a model reading it would score
R^2 = 1 without learning anything. A model that does read such inputs must
declare them in `ModelSpec.inputs` (e.g. `inputs=("lattice",)`), and the
harness then flags its results on tasks whose target they reveal.
"""

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import Ridge

from crystalbench import Dataset, ModelContext, ModelSpec, hookimpl


@dataclass(frozen=True)
class RidgeParams:
    """Typed hyperparameters: `--config` keys are checked against these fields."""

    alpha: float = field(default=1.0, metadata={"doc": "L2 penalty of the ridge regression"})
    cutoff: float = field(default=6.0, metadata={"doc": "neighbour search radius in Å"})

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.cutoff <= 0:
            raise ValueError("alpha must be >= 0 and cutoff > 0")


def geometric_features(data: Dataset, cutoff: float) -> np.ndarray:
    """Mean and minimum nearest-neighbour distance, atoms per cell, mean atomic mass and electronegativity."""
    rows = []
    for s in data.structures:
        centers, _, _, dists = s.get_neighbor_list(r=cutoff)
        nearest = np.full(len(s), cutoff)
        np.minimum.at(nearest, centers, dists)
        comp = s.composition
        rows.append([nearest.mean(), nearest.min(), len(s), comp.weight / len(s), comp.average_electroneg])
    return np.array(rows, dtype=float)


class RidgeModel:
    def __init__(self, ctx: ModelContext):
        self.params: RidgeParams = ctx.params
        self.model = Ridge(alpha=self.params.alpha)

    def fit(self, train: Dataset, val, *, seed: int, progress: bool) -> None:
        self.model.fit(geometric_features(train, self.params.cutoff), train.targets)

    def predict(self, data: Dataset) -> np.ndarray:
        return self.model.predict(geometric_features(data, self.params.cutoff))


@hookimpl
def bench_models():
    return [
        ModelSpec(
            name="ridge",
            factory=RidgeModel,
            description="Ridge regression on nearest-neighbour distances and element properties (example plugin)",
            params=RidgeParams,
            needs="structure",
            needs_validation=False,
        )
    ]

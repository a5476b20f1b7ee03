"""A complete third-party model plugin: ridge regression on a few cell features."""

import numpy as np
from sklearn.linear_model import Ridge

from crystalbench import Dataset, ModelContext, ModelSpec, hookimpl


def cell_features(data: Dataset) -> np.ndarray:
    """Volume per atom, atoms per cell, cell lengths and mean atomic mass."""
    rows = []
    for s in data.structures:
        a, b, c = sorted(s.lattice.abc, reverse=True)
        rows.append([s.volume / len(s), len(s), a, b, c, s.composition.weight / len(s)])
    return np.array(rows)


class RidgeModel:
    def __init__(self, ctx: ModelContext):
        self.model = Ridge(alpha=ctx.hparams["alpha"])

    def fit(self, train: Dataset, val, *, seed: int, progress: bool) -> None:
        self.model.fit(cell_features(train), train.targets)

    def predict(self, data: Dataset) -> np.ndarray:
        return self.model.predict(cell_features(data))


@hookimpl
def bench_models():
    return [
        ModelSpec(
            name="ridge",
            factory=RidgeModel,
            description="Ridge regression on cell features (example plugin)",
            defaults={"alpha": 1.0},
            needs="structure",
            needs_validation=False,
        )
    ]

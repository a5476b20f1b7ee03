"""`rf`: scikit-learn random forest on a descriptor set (gong29 by default).

The paper's descriptors-only baseline. NaN descriptor values are imputed
with training medians (FeatureScaler) and counted; the harness has already
withheld the task's own target descriptor.
"""

from __future__ import annotations

import numpy as np

from crystalbench.harness.dataset import Dataset
from crystalbench.harness.features import FeatureScaler
from crystalbench.harness.hookspecs import hookimpl
from crystalbench.harness.specs import ModelContext, ModelSpec

DEFAULTS = {"n_estimators": 300, "max_features": 1.0, "min_samples_leaf": 1, "n_jobs": -1}


class RandomForest:
    def __init__(self, ctx: ModelContext) -> None:
        self.ctx = ctx
        self.scaler = FeatureScaler(standardize=False)
        self.model = None

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        if train.features is None or train.features.shape[1] == 0:
            raise ValueError("rf needs descriptor features; none were attached")
        x = self.scaler.fit(train.features, train.feature_names).transform(train.features)
        hp = dict(self.ctx.hparams)
        cls = RandomForestClassifier if self.ctx.task_type == "classification" else RandomForestRegressor
        self.model = cls(random_state=seed, **hp)
        self.model.fit(x, train.targets)

    def predict(self, data: Dataset) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("predict called before fit")
        # Parallel prediction sums trees in completion order, which changes the last bits
        # of the mean; one thread keeps metrics bit-identical across runs.
        self.model.set_params(n_jobs=1)
        return self.model.predict(self.scaler.transform(data.features))


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="rf",
            factory=RandomForest,
            description="Random forest on descriptors (default gong29): the paper's descriptors-only baseline.",
            defaults=DEFAULTS,
            needs="features",
            accepts_features=True,
            descriptors="gong29",
            classification=True,
            needs_validation=False,
            reference="Breiman 2001; Gong et al. 2023 (descriptor baseline)",
        )
    ]

"""`rf`: scikit-learn random forest on a descriptor set (gong29 by default).

The paper's descriptors-only baseline. NaN descriptor values are imputed
with training medians (FeatureScaler) and counted; the harness has already
withheld the task's own target descriptor.

After `fit`, `fit_info["feature_importances"]` holds the forest's impurity
(mean decrease in impurity) importance of every descriptor column, so each
record carries it at no extra cost: the paper's Fig. 4/S6 ranks descriptors
with a random forest's importances too (permutation importance would need
extra predictions per column; the paper found it too expensive for networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crystalbench import BadInputError, Dataset, FeatureScaler, ModelContext, ModelSpec, TaskType, hookimpl
from crystalbench.gnn.params import param, params_of

__all__ = ["RFParams", "RandomForest", "bench_models"]


@dataclass(frozen=True)
class RFParams:
    """Hyperparameters of `rf` (scikit-learn's RandomForestRegressor/Classifier)."""

    n_estimators: int = param(300, "number of trees")
    max_features: float = param(1.0, "fraction of the descriptor columns considered at each split, in (0, 1]")
    min_samples_leaf: int = param(1, "minimum samples in a leaf")
    n_jobs: int = param(-1, "worker threads while fitting (-1: all cores; results do not depend on it)")

    def __post_init__(self) -> None:
        problems = []
        if self.n_estimators < 1:
            problems.append(f"n_estimators must be >= 1, got {self.n_estimators!r}")
        if not 0.0 < self.max_features <= 1.0:
            problems.append(f"max_features must be a fraction in (0, 1], got {self.max_features!r}")
        if self.min_samples_leaf < 1:
            problems.append(f"min_samples_leaf must be >= 1, got {self.min_samples_leaf!r}")
        if self.n_jobs == 0:
            problems.append("n_jobs must be a positive count or -1 (all cores), not 0")
        if problems:
            raise ValueError("invalid RFParams: " + "; ".join(problems))


class RandomForest:
    def __init__(self, ctx: ModelContext) -> None:
        self.ctx = ctx
        self.params: RFParams = params_of(ctx, "rf", RFParams)
        self.scaler = FeatureScaler(standardize=False)
        self.model: Any = None
        self.fit_info: dict[str, Any] = {}

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        if train.features is None or train.features.shape[1] == 0:
            raise BadInputError("rf needs descriptor features; none were attached")
        x = self.scaler.fit(train.features, train.feature_names).transform(train.features)
        p = self.params
        cls = RandomForestClassifier if self.ctx.task_type == TaskType.CLASSIFICATION else RandomForestRegressor
        self.model = cls(
            random_state=seed,
            n_estimators=p.n_estimators,
            max_features=p.max_features,
            min_samples_leaf=p.min_samples_leaf,
            n_jobs=p.n_jobs,
        )
        self.model.fit(x, train.targets)
        names = train.feature_names or tuple(str(j) for j in range(x.shape[1]))
        self.fit_info = {"feature_importances": {
            str(n): round(float(v), 6) for n, v in zip(names, self.model.feature_importances_, strict=True)}}

    def predict(self, data: Dataset) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("predict called before fit")
        if data.features is None:
            raise BadInputError(f"rf: dataset {data.name!r} has no descriptor features")
        # Parallel prediction sums trees in completion order, which changes the last bits
        # of the mean; one thread keeps metrics bit-identical across runs.
        self.model.set_params(n_jobs=1)
        pred = np.asarray(self.model.predict(self.scaler.transform(data.features)))
        if self.ctx.task_type == TaskType.CLASSIFICATION:
            return pred.astype(np.int64)
        return pred.astype(float)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="rf",
            factory=RandomForest,
            description="Random forest on descriptors (default gong29): the paper's descriptors-only baseline.",
            params=RFParams,
            inputs=(),  # reads only the attached descriptor columns (the harness withholds leaking ones)
            needs="features",
            accepts_features=True,
            descriptors="gong29",
            classification=True,
            needs_validation=False,
            reference="Breiman 2001; Gong et al. 2023 (descriptor baseline)",
        )
    ]

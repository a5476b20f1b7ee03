"""`dummy`: predicts the training mean (regression) or most frequent class.

The floor every model must beat: its MAE/MAD is ~1 by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crystalbench import Dataset, ModelContext, ModelSpec, TaskType, hookimpl

__all__ = ["DummyParams", "MeanPredictor", "bench_models"]


@dataclass(frozen=True)
class DummyParams:
    """`dummy` has no hyperparameters."""


class MeanPredictor:
    def __init__(self, ctx: ModelContext) -> None:
        self.classification = ctx.task_type == TaskType.CLASSIFICATION
        self.value: float | int | None = None

    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        y = np.asarray(train.targets)
        if self.classification:
            labels, counts = np.unique(y.astype(int), return_counts=True)
            self.value = int(labels[np.argmax(counts)])
        else:
            self.value = float(np.mean(y.astype(float)))

    def predict(self, data: Dataset) -> np.ndarray:
        if self.value is None:
            raise RuntimeError("predict called before fit")
        if self.classification:
            return np.full(len(data), int(self.value), dtype=np.int64)
        return np.full(len(data), float(self.value), dtype=float)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="dummy",
            factory=MeanPredictor,
            description="Training-set mean (most frequent class for classification); the floor.",
            params=DummyParams,
            inputs=(),
            needs="composition",
            classification=True,
            needs_validation=False,
            reference="baseline",
        )
    ]

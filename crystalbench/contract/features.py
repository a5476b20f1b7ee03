"""Preparing extra feature columns for models: NaN imputation and scaling.

Descriptor sets return NaN where a value is undefined. Every model that eats
`Dataset.features` uses this one `FeatureScaler` (fit on the training set only)
so NaN handling is identical across rf and hybrid GNNs and the count of
imputed values is reported the same way.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["FeatureScaler"]


class FeatureScaler:
    """Impute NaN/inf with the training median, then standardize (optional).

    Columns that are entirely NaN in training are imputed with 0; constant
    columns get unit scale so they become exactly 0.
    """

    def __init__(self, standardize: bool = True) -> None:
        self.standardize = standardize
        self.median_: np.ndarray | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, x: np.ndarray, names: tuple[str, ...] = (), what: str = "training") -> FeatureScaler:
        x = np.asarray(x, dtype=float)
        bad = ~np.isfinite(x)
        with np.errstate(all="ignore"):
            med = np.nanmedian(np.where(bad, np.nan, x), axis=0) if len(x) else np.zeros(x.shape[1])
        self.median_ = np.where(np.isfinite(med), med, 0.0)
        filled = np.where(bad, self.median_, x)
        self.mean_ = filled.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        std = filled.std(axis=0) if len(x) else np.ones(x.shape[1])
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        if bad.any():
            cols = [names[j] if j < len(names) else str(j) for j in np.flatnonzero(bad.any(axis=0))]
            logging.getLogger("crystalbench").info(
                f"note: imputed {int(bad.sum())} missing descriptor values in {int(bad.any(axis=1).sum())} "
                f"{what} samples (columns: {', '.join(cols[:8])}{'...' if len(cols) > 8 else ''}) with training medians"
            )
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.median_ is None:
            raise RuntimeError("FeatureScaler.transform called before fit")
        x = np.asarray(x, dtype=float)
        x = np.where(np.isfinite(x), x, self.median_)
        if self.standardize:
            x = (x - self.mean_) / self.scale_
        return x

    def fit_transform(self, x: np.ndarray, names: tuple[str, ...] = ()) -> np.ndarray:
        return self.fit(x, names).transform(x)

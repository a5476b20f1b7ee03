"""crystalbench.testing: the test kit for plugin authors (and for crystalbench's own built-in plugins).

One line per plugin kind, each raising AssertionError with a message saying what to fix::

    from crystalbench.testing import check_descriptors, check_model, check_task

    check_model(spec)                 # on every input kind it can get (structures; compositions only
                                      # too for a composition model): contract, finite predictions,
                                      # seeded reproducibility, beats the mean predictor, classification
    check_task(spec, ctx)             # valid Dataset, DataUnavailableError on an empty data dir,
                                      # declared files exist, cacheable, protocol splits it
    check_descriptors(spec)           # pure per structure, declared columns, NaN only as float
    check_registered("my_plugin", models=["my-model"])   # the installed entry point loads

Tiny datasets built in memory: `toy_dataset` / `toy_classification` (learnable by
structure, composition or simple descriptors) and `chain_sample` (the first samples
of the real `chain1d_short` task). Pytest fixtures (`bench_context`, `toy_data`,
`toy_classes`, `chain_data`) come from the plugin module `crystalbench.testing.fixtures`:
add ``pytest_plugins = ["crystalbench.testing.fixtures"]`` to your conftest.py.

Importing this package never imports torch; a check imports it only when it runs a
model (the harness seeds torch when it is installed).
"""

from .checks import ModelReport, check_descriptors, check_model, check_registered, check_task, kit_context
from .data import (
    KIT_DESCRIPTORS,
    chain_sample,
    geometry_features,
    toy_classification,
    toy_classification_task,
    toy_dataset,
    toy_task,
)

__all__ = [
    "check_model",
    "check_task",
    "check_descriptors",
    "check_registered",
    "kit_context",
    "ModelReport",
    "toy_dataset",
    "toy_classification",
    "toy_task",
    "toy_classification_task",
    "chain_sample",
    "geometry_features",
    "KIT_DESCRIPTORS",
]

"""Test plugin for tests/reliability: a toy classification task, a steerable classifier, hostile names.

Environment variables (read at call time, so subprocess tests steer it):

CBTEST_CLASS_PRED   what `classy` predicts, a comma-separated list indexed by the job's seed:
                    "nan" (NaN), "frac" (0.5), "range" (class 7 of 2), anything else (or no
                    entry): the training set's most frequent class.
CBTEST_FIT_MARKER   file `classy.fit` touches (proves whether training started).
CBTEST_FEATURIZE_SLEEP  seconds each call of the `slow_cell` descriptor set sleeps (worker-kill tests).
CBTEST_BAD_NAMES    when set, the plugin also offers tasks and models whose names are not
                    allowed ("..", "a/b", a newline) and a task whose protocol is a path; the
                    registry must report and ignore every one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from crystalbench import Dataset, DescriptorSpec, ModelSpec, TaskSpec, hookimpl

from .toolkit import Sleepy, cell_descriptors, toy_dataset


def toy_classes(n: int = 60, single: bool = False) -> Dataset:
    """toy_cubic's cells labelled "small"/"large" by cell edge (or all "small" when `single`)."""
    base = toy_dataset(n)
    a = np.array([s.lattice.a for s in base.structures])
    labels = np.zeros(n, dtype=int) if single else (a > 4.5).astype(int)
    classes = ("small",) if single else ("small", "large")
    return Dataset(ids=base.ids, targets=labels, structures=base.structures, classes=classes,
                   name="toy_oneclass" if single else "toy_class")


def slow_cell_descriptors(structures):
    """toy_cell's values, slowly: a featurizer busy long enough to be killed mid-chunk."""
    import time

    time.sleep(float(os.environ.get("CBTEST_FEATURIZE_SLEEP", "0")))
    return cell_descriptors(structures)


@hookimpl
def bench_descriptors():
    return [DescriptorSpec(name="slow_cell", feature_names=("a", "vpa", "density"), featurize=slow_cell_descriptors)]


class Classy:
    def __init__(self, ctx):
        self.ctx = ctx

    def fit(self, train, val, *, seed, progress):
        marker = os.environ.get("CBTEST_FIT_MARKER")
        if marker:
            Path(marker).write_text("fit was called\n")
        values, counts = np.unique(np.asarray(train.targets, dtype=int), return_counts=True)
        self.majority = int(values[np.argmax(counts)])
        self.seed = seed

    def predict(self, data):
        modes = os.environ.get("CBTEST_CLASS_PRED", "").split(",")
        how = modes[self.seed] if self.seed < len(modes) else ""
        n = len(data)
        if how == "nan":
            return np.full(n, np.nan)
        if how == "frac":
            return np.full(n, 0.5)
        if how == "range":
            return np.full(n, 7)
        return np.full(n, self.majority)


def _never_loaded(ctx):  # the hostile tasks must never be loaded
    raise AssertionError("a task with a forbidden name or protocol was loaded")


BAD_NAMES = ("..", "a/b", "line\nbreak")


@hookimpl
def bench_tasks():
    tasks = [
        TaskSpec(name="toy_class", load=lambda ctx: toy_classes(), target="size class", task_type="classification",
                 group="test"),
        TaskSpec(name="toy_oneclass", load=lambda ctx: toy_classes(single=True), target="size class",
                 task_type="classification", group="test"),
    ]
    if os.environ.get("CBTEST_BAD_NAMES"):
        tasks += [TaskSpec(name=n, load=_never_loaded, target="x", group="test") for n in BAD_NAMES]
        tasks.append(TaskSpec(name="evil_protocol", load=_never_loaded, target="x", protocol="../../escape",
                              group="test"))
    return tasks


@hookimpl
def bench_models():
    models = [ModelSpec(name="classy", factory=Classy, needs="structure", classification=True,
                        needs_validation=False)]
    if os.environ.get("CBTEST_BAD_NAMES"):
        models += [ModelSpec(name=n, factory=Sleepy, needs="structure") for n in BAD_NAMES]
    return models

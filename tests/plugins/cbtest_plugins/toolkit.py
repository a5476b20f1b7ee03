"""Test plugin: a toy task, a cheap descriptor set, a slow model and an observer.

Behaviour is steered by environment variables so subprocess tests can use it:
CBTEST_SLEEP (seconds per fit of `sleepy`), CBTEST_FAIL_SEED (seed at which
`sleepy` raises), CBTEST_OBSERVER_LOG (file the observer appends to),
CBTEST_OBSERVER_RAISE (observer raises after logging).
"""

import json
import os
import time

import numpy as np
from pymatgen.core import Lattice, Structure

from crystalbench import Dataset, DescriptorSpec, ModelSpec, TaskSpec, hookimpl


def toy_dataset(n: int = 60, seed: int = 7) -> Dataset:
    """CsCl-type cells; the target (volume per atom) is learnable from the cell."""
    rng = np.random.default_rng(seed)
    elements = [("Cs", "Cl"), ("Na", "Cl"), ("K", "Br"), ("Rb", "I")]
    structures, targets = [], []
    for i in range(n):
        a = float(rng.uniform(3.0, 6.0))
        pair = elements[i % len(elements)]
        s = Structure(Lattice.cubic(a), list(pair), [[0, 0, 0], [0.5, 0.5, 0.5]])
        structures.append(s)
        targets.append(s.volume / len(s))
    return Dataset(ids=[f"toy-{i}" for i in range(n)], targets=np.array(targets), structures=structures, name="toy_cubic")


def cell_descriptors(structures):
    return np.array([[s.lattice.a, s.volume / len(s), s.density] for s in structures])


class Sleepy:
    def __init__(self, ctx):
        self.ctx = ctx

    def fit(self, train, val, *, seed, progress):
        if os.environ.get("CBTEST_FAIL_SEED") == str(seed):
            raise ValueError(f"sleepy was told to fail at seed {seed}")
        time.sleep(float(os.environ.get("CBTEST_SLEEP", "0")))
        self.mean = float(np.mean(train.targets))

    def predict(self, data):
        return np.full(len(data), self.mean)


@hookimpl
def bench_tasks():
    return [
        TaskSpec(
            name="toy_cubic",
            load=lambda data_dir: toy_dataset(),
            target="volume per atom",
            unit="A^3",
            fractions=(0.6, 0.2, 0.2),
            exclude_features=("vpa",),
            size=60,
            group="test",
        )
    ]


@hookimpl
def bench_descriptors():
    return [DescriptorSpec(name="toy_cell", feature_names=("a", "vpa", "density"), featurize=cell_descriptors)]


@hookimpl
def bench_models():
    return [ModelSpec(name="sleepy", factory=Sleepy, needs="structure", needs_validation=True, defaults={"epochs": 1})]


@hookimpl
def bench_run_finished(record):
    log = os.environ.get("CBTEST_OBSERVER_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"model": record["model"], "status": record["status"]}) + "\n")
    if os.environ.get("CBTEST_OBSERVER_RAISE"):
        raise RuntimeError("observer exploded")

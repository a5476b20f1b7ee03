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
        if os.environ.get("CBTEST_EXIT_SEED") == str(seed):
            import sys

            sys.exit(0)
        self.mean = float(np.mean(train.targets))
        self.fit_info = {"unserializable": object(), "array": np.arange(3), "nan": float("nan")}

    def predict(self, data):
        if os.environ.get("CBTEST_NAN_PRED"):
            return np.full(len(data), np.nan)
        return np.full(len(data), self.mean)


@hookimpl
def bench_tasks():
    return [
        TaskSpec(
            name="toy_cubic",
            load=lambda ctx: toy_dataset(int(os.environ.get("CBTEST_TOY_N", "60"))),
            target="volume per atom",
            unit="A^3",
            fractions=(0.6, 0.2, 0.2),
            exclude_features=("vpa",),
            leaks=("volume",),
            size=60,
            group="test",
        ),
        TaskSpec(name="toy_comp", load=lambda ctx: toy_compositions(), target="volume per atom", unit="A^3",
                 provides="composition", group="test"),
        TaskSpec(name="toy_constant", load=lambda ctx: toy_constant(), target="weight", group="test"),
    ]


def toy_compositions(n: int = 40) -> Dataset:
    """Composition-only samples (no structures): what descriptor sets on structures cannot use."""
    base = toy_dataset(n)
    return Dataset(ids=base.ids, targets=base.targets, compositions=[s.composition for s in base.structures],
                   name="toy_comp")


def toy_constant(n: int = 30) -> Dataset:
    base = toy_dataset(n)
    return Dataset(ids=base.ids, targets=np.zeros(n), structures=base.structures, name="toy_constant")


@hookimpl
def bench_descriptors():
    return [DescriptorSpec(name="toy_cell", feature_names=("a", "vpa", "density"), featurize=cell_descriptors)]


class ThreadCheck(Sleepy):
    """Records the torch thread count in force while it trains (torch imported only here)."""

    def fit(self, train, val, *, seed, progress):
        import torch

        super().fit(train, val, seed=seed, progress=progress)
        self.fit_info = {"threads_in_fit": torch.get_num_threads()}


@hookimpl
def bench_models():
    return [
        ModelSpec(name="sleepy", factory=Sleepy, needs="structure", needs_validation=True, defaults={"epochs": 1}),
        ModelSpec(name="threadcheck", factory=ThreadCheck, needs="structure", needs_validation=False),
        ModelSpec(name="leaky", factory=Sleepy, needs="structure", needs_validation=False, inputs=("volume",)),
    ]


@hookimpl
def bench_run_finished(record):
    log = os.environ.get("CBTEST_OBSERVER_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"model": record.model, "status": record.status}) + "\n")
    if os.environ.get("CBTEST_OBSERVER_MUTATE"):
        record.metrics.clear()
        record.job_id = "tampered"
        record.provenance.clear()
    if os.environ.get("CBTEST_OBSERVER_EXIT"):
        raise SystemExit(3)
    if os.environ.get("CBTEST_OBSERVER_RAISE"):
        raise RuntimeError("observer exploded")

"""Test plugin for tests/test_executors.py: a model that raises or kills its own process, and a shared-data task.

`crashy` is steered by its hyperparameters (they travel with the job to worker
processes and Ray tasks, whatever their environment):

raise_seed  at this seed `fit` raises ValueError (a normal failed record)
kill_seed   at this seed `fit` sends SIGKILL to its own process (a dead worker, as the OOM killer does)
marker      file each `fit` appends "<seed>\\n" to before anything else (counts attempts)
sleep       seconds each `fit` sleeps

`toy_shared` is toy_cubic read from ``<data dir>/toy_shared.txt`` (a file that must
exist on every node: the task declares it, so the driver never loads the data);
`load` raises DataUnavailableError naming the path when it is missing.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from crystalbench import DataUnavailableError, ModelSpec, TaskSpec, hookimpl

from .toolkit import toy_dataset


class Crashy:
    def __init__(self, ctx):
        self.p = ctx.hparams

    def fit(self, train, val, *, seed, progress):
        if self.p["marker"]:
            with open(self.p["marker"], "a") as fh:
                fh.write(f"{seed}\n")
        time.sleep(float(self.p["sleep"]))
        if seed == self.p["raise_seed"]:
            raise ValueError(f"crashy was told to raise at seed {seed}")
        if seed == self.p["kill_seed"]:
            os.kill(os.getpid(), signal.SIGKILL)
        self.mean = float(np.mean(train.targets))

    def predict(self, data):
        return np.full(len(data), self.mean)


def _shared_file(ctx):
    return ctx.data_dir / "toy_shared.txt"


def _load_shared(ctx):
    path = _shared_file(ctx)
    if not path.is_file():
        raise DataUnavailableError(f"{path} not found: copy toy_shared.txt into the data directory")
    return toy_dataset(int(path.read_text().strip() or "60"))


@hookimpl
def bench_models():
    return [
        ModelSpec(name="crashy", factory=Crashy, needs="structure", needs_validation=False,
                  defaults={"raise_seed": -1, "kill_seed": -1, "marker": "", "sleep": 0.0}),
    ]


@hookimpl
def bench_tasks():
    return [
        TaskSpec(name="toy_shared", load=_load_shared, target="volume per atom", unit="A^3",
                 files=lambda ctx: [_shared_file(ctx)], group="test"),
    ]

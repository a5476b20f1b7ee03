"""Seeding and thread control: the one rule every job and every training loop follows.

The seed is applied to the process once per job, by the harness: `seed_everything`
seeds Python's, NumPy's and torch's global RNGs before the model factory runs
(`crystalbench.runtime.stages`), which is what the plugin contract promises every
model (docs/plugins.md, "What the harness promises"); `fit` receives the same seed.
Why there and only there: it is the one place every model passes through, torch or
not, and a second, later reseeding of the global RNGs (the shared training loop
used to do one) made a model's result depend on which of the two ran last.

A training loop that needs its randomness to follow a seed *it* is given (the
shared loop: weight initialisation, dropout; a model may train several networks in
one job, as cgcnn+desc does) draws it from `torch_rng(seed, device)`: torch's RNG
forked, seeded for the block, and restored afterwards, so the loop is reproducible
on its own and leaves the process's RNGs as the harness set them. Its shuffling
uses ``numpy.random.default_rng(seed)``, never the global NumPy state.

`apply_threads` sets torch's intra-op thread count. Both import torch when it is
installed, so the first job of a process gets the same settings as every later one
(a job that only imported torch inside its model factory used to train with the
default thread count).
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["seed_everything", "torch_rng", "apply_threads", "torch_if_installed"]


def torch_if_installed():  # type: ignore[no-untyped-def]
    """The torch module, imported now if it is installed; None when it is not."""
    torch = sys.modules.get("torch")
    if torch is None and importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F811  (heavy: only reached when a job runs)
    return torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch, CPU and CUDA."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch = torch_if_installed()
    if torch is not None:
        torch.manual_seed(seed)


@contextlib.contextmanager
def torch_rng(seed: int, device: Any = "cpu") -> Iterator[None]:
    """Run the block with torch's RNG (CPU, and `device` when it is a GPU) seeded with `seed`, restored after.

    Inside, torch draws exactly what it drew after ``seed_everything(seed)``;
    outside, the process's RNG state is as it was before the block.
    """
    import torch

    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def apply_threads(threads: int) -> int | None:
    """Set torch's intra-op threads (when torch is installed); return the count now in force.

    Crystal graphs are small: extra intra-op threads gain little, and on a busy
    machine oversubscribed OpenMP threads made training 10-50x slower.
    """
    torch = torch_if_installed()
    if torch is None:
        return None
    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())

"""Seeding and thread control: the one rule every job and every training loop follows.

`seed_everything` seeds Python's, NumPy's and torch's global RNGs. `apply_threads`
sets torch's intra-op thread count. Both import torch when it is installed,
so the first job of a process gets the same settings as every later one (a
job that only imported torch inside its model factory used to train with the
default thread count).
"""

from __future__ import annotations

import importlib.util
import random
import sys

import numpy as np

__all__ = ["seed_everything", "apply_threads", "torch_if_installed"]


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

"""Pytest fixtures of the crystalbench test kit; enable them in a plugin's tests/conftest.py::

    pytest_plugins = ["crystalbench.testing.fixtures"]

bench_context  a RunContext in the test's temporary directory: empty ``data/``, its own
               ``cache/`` and ``results/``, one process, CPU, no progress output. Point it
               at a data sample with ``bench_context.with_(data_dir=...)``.
toy_data       the kit's learnable toy regression Dataset (`crystalbench.testing.toy_dataset`).
toy_classes    the same crystals as a two-class classification Dataset.
chain_data     the first 100 samples of the real `chain1d_short` task.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import Dataset

from .data import chain_sample, toy_classification, toy_dataset

__all__ = ["bench_context", "toy_data", "toy_classes", "chain_data"]


@pytest.fixture
def bench_context(tmp_path: Path) -> RunContext:
    """A RunContext whose data, cache and results dirs live in the test's tmp_path."""
    (tmp_path / "data").mkdir(exist_ok=True)
    return RunContext(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", results_dir=tmp_path / "results",
                      jobs=1, threads=1, device="cpu", progress=False)


@pytest.fixture(scope="session")
def toy_data() -> Dataset:
    """`crystalbench.testing.toy_dataset()` (160 CsCl-type crystals, target: nearest-neighbour distance)."""
    return toy_dataset()


@pytest.fixture(scope="session")
def toy_classes() -> Dataset:
    """`crystalbench.testing.toy_classification()` (classes "short" and "long")."""
    return toy_classification()


@pytest.fixture(scope="session")
def chain_data() -> Dataset:
    """`crystalbench.testing.chain_sample(100)`: real chain1d_short samples (target: the period a, in A)."""
    return chain_sample(100)

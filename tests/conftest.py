"""Shared test setup: real data from ../shared/data, caches in a temp dir, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests read the real datasets from ../shared/data unless the caller points elsewhere.
os.environ.setdefault("CRYSTALBENCH_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Each test session gets its own cache dir so no test depends on a warm cache."""
    if "CRYSTALBENCH_TEST_KEEP_CACHE" not in os.environ:
        os.environ["CRYSTALBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def data_dir() -> Path:
    p = Path(os.environ["CRYSTALBENCH_DATA_DIR"])
    if not p.is_dir():
        pytest.skip(f"real data not found at {p} (set CRYSTALBENCH_DATA_DIR)")
    return p


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CRYSTALBENCH_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow check; set CRYSTALBENCH_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

"""Shared test setup: real data from ../shared/data, caches in a temp dir, no network.

tests/ mirrors the package (tests/contract, tests/runtime, ...; tests/plugins_builtin for
crystalbench/plugins, because tests/plugins holds the test plugin distribution). Every
fixture that more than one module needs is defined here, once:

- `data_dir`: the real datasets (skips when absent).
- `fresh_process`: memoised task tables cleared before and after (a new process's view);
  modules that want it for every test say `pytestmark = pytest.mark.usefixtures("fresh_process")`.
- `make_ctx(**kw)` / `ctx` / `real_ctx`: RunContexts with the cache under tmp_path.
- `reg`: a registry of the built-ins plus the plugins a module names with
  `pytestmark = pytest.mark.registry(("name", module), ...)`.

Plain helpers (paths, `bench` CLI runners, pip-installing test plugins) are in tests/helpers.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
# `from helpers import ...` and `from cbtest_plugins import ...` work from every test folder.
for _p in (TESTS_DIR / "plugins", TESTS_DIR):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from helpers import REPO_ROOT  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

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


@pytest.fixture
def fresh_process():
    """Every test starts as a new process would: no task table parsed in memory (and leaves none behind)."""
    from crystalbench.tasks import readers as R

    R.clear_memos()
    yield
    R.clear_memos()


@pytest.fixture
def make_ctx(tmp_path):
    """Factory of RunContexts: data in tmp_path (unless `data_dir=` is given), cache in tmp_path/cache;
    any other keyword (results_dir, reporter, progress, ...) is passed through."""
    from crystalbench.contract.context import RunContext

    def make(**kw):
        base = {"data_dir": tmp_path, "cache_dir": tmp_path / "cache"}
        return RunContext(**(base | kw))

    return make


@pytest.fixture
def ctx(make_ctx):
    """A context on the test's own files: data_dir = tmp_path, cache in tmp_path/cache."""
    return make_ctx()


@pytest.fixture
def real_ctx(make_ctx, data_dir):
    """A context on the real datasets, with a fresh cache in tmp_path/cache."""
    return make_ctx(data_dir=data_dir)


@pytest.fixture
def reg(request):
    """A fresh registry: built-ins plus the (name, module) plugins of the closest `registry` marker."""
    from crystalbench.runtime.registry import load_registry

    marker = request.node.get_closest_marker("registry")
    plugins = list(marker.args) if marker else []
    return load_registry(extra_plugins=plugins) if plugins else load_registry()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CRYSTALBENCH_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow check; set CRYSTALBENCH_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

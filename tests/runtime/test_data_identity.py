"""One data identity (issue #20, item 3): one task fingerprint is the job's `data` field and the dataset
cache key, one file-hash function, the fingerprint computed once per task per process."""

from __future__ import annotations

import builtins
import shutil
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalbench import Dataset, TaskSpec, hookimpl
from crystalbench.contract import store
from crystalbench.contract.context import RunContext
from crystalbench.runtime import fingerprint as FP
from crystalbench.runtime import splits, stages
from crystalbench.runtime.registry import load_registry
from crystalbench.runtime.runner import GridRequest, run_grid
from crystalbench.runtime.stages import Workspace
from crystalbench.tasks import readers


class IdentPlugin:
    """A third-party task over one data file, counting its loads."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.loads = 0

    def load(self, ctx: RunContext) -> Dataset:
        assert self.path is not None
        self.loads += 1
        edges = [float(v) for v in self.path.read_text().split()]
        cells = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for a in edges]
        return Dataset(ids=[f"c{i}" for i in range(len(edges))], targets=np.array(edges) ** 3, structures=cells)

    @hookimpl
    def bench_tasks(self) -> list[TaskSpec]:
        return [TaskSpec(name="ident", load=self.load, target="volume",
                         files=lambda ctx: [ctx.data_dir / "ident" / "cells.txt"])]


@pytest.fixture(scope="module")
def plugin_and_reg():
    plugin = IdentPlugin()
    return plugin, load_registry(extra_plugins=[("cbident", plugin)])


@pytest.fixture
def setup(plugin_and_reg, tmp_path):
    plugin, reg = plugin_and_reg
    data = tmp_path / "data"
    (data / "ident").mkdir(parents=True)
    plugin.path = data / "ident" / "cells.txt"
    plugin.path.write_text(" ".join(f"{a:.3f}" for a in np.linspace(3.0, 6.0, 20)))
    plugin.loads = 0
    ctx = RunContext(results_dir=tmp_path / "results", data_dir=data, cache_dir=tmp_path / "cache", progress=False)
    return plugin, reg, ctx


def _entries(ctx: RunContext) -> set[str]:
    return {p.stem for p in (ctx.cache_dir / "datasets").rglob("*.json")}


def _run(reg, ctx: RunContext, **kw):
    summary = run_grid(reg, ctx, GridRequest(models=["dummy"], tasks=["ident"], **kw))
    assert summary.ok and summary.finished, summary.errors
    return summary.finished


def test_the_jobs_data_field_is_the_dataset_cache_keys_data_part(setup):
    plugin, reg, ctx = setup
    (rec,) = _run(reg, ctx)
    assert rec.job.data.startswith("files:") and rec.provenance["dataset"]["fingerprint"] == rec.job.data
    (key,) = _entries(ctx)
    data_hex, location = key.split("-")
    assert data_hex == FP.data_part(rec.job.data) and len(location) == 8
    assert rec.provenance["dataset"]["files"] == {"ident/cells.txt": store.file_sha256(plugin.path)}


def test_editing_a_data_file_changes_the_job_and_the_cache_key(setup):
    plugin, reg, ctx = setup
    (first,) = _run(reg, ctx)
    (again,) = _run(reg, ctx, rerun=True)  # a new grid and Workspace: the same data, from the cache
    assert again.job.id == first.job.id and plugin.loads == 1
    plugin.path.write_text(plugin.path.read_text() + " 6.5")
    (changed,) = _run(reg, ctx)
    assert changed.job.data != first.job.data and changed.job.id != first.job.id and plugin.loads == 2
    assert {k.split("-")[0] for k in _entries(ctx)} == {FP.data_part(first.job.data), FP.data_part(changed.job.data)}


def test_the_fingerprint_is_computed_once_per_task_per_process(setup, monkeypatch):
    plugin, reg, ctx = setup
    computed: list[str] = []
    real = stages.task_fingerprint
    monkeypatch.setattr(stages, "task_fingerprint", lambda spec, *a, **kw: computed.append(spec.name) or real(spec, *a, **kw))
    opened: list[str] = []
    data_file = str(plugin.path.resolve())  # `store` opens other files too (records, caches): count this one

    def counting_open(path, *a, **kw):
        if str(Path(path).resolve()) == data_file:
            opened.append(data_file)
        return builtins.open(path, *a, **kw)

    monkeypatch.setattr(store, "open", counting_open, raising=False)  # the one file hash, `store.file_sha256`
    records = _run(reg, ctx, seeds=[0, 1, 2])  # planning, loading and three jobs
    assert len(records) == 3 and computed == ["ident"]
    assert opened == [str(plugin.path.resolve())]
    _run(reg, ctx, seeds=[3])  # another grid in this process: the file is not hashed again
    assert opened == [str(plugin.path.resolve())]


def test_the_fingerprint_is_portable_but_the_cache_key_is_per_folder(setup, tmp_path):
    plugin, reg, ctx = setup
    here = Workspace(reg, ctx)
    moved = tmp_path / "elsewhere"
    shutil.copytree(ctx.data_dir, moved)
    there = Workspace(reg, ctx.with_(data_dir=moved))
    assert here.fingerprint("ident") == there.fingerprint("ident")  # the same job ids on every machine
    a, b = (w._fingerprints["ident"].cache_key for w in (here, there))
    assert a is not None and b is not None and a.split("-")[0] == b.split("-")[0] and a != b


def test_generated_and_undeclared_tasks(plugin_and_reg, tmp_path):
    _, reg = plugin_and_reg
    ws = Workspace(reg, RunContext(data_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False))
    assert ws.fingerprint("chain1d_short").startswith("files:")  # files=[]: identified by its version
    assert "chain1d_short" not in ws._loaded  # without generating it
    undeclared = TaskSpec(name="undeclared", target="y", load=lambda ctx: Dataset(
        ids=["a", "b"], targets=np.array([1.0, 2.0]), structures=[
            Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for a in (4.0, 5.0)]))
    ws = Workspace(reg, ws.ctx, extra_tasks={"undeclared": undeclared})
    assert ws.fingerprint("undeclared") == "content:" + ws.load("undeclared").data.content_hash[:24]


def test_one_file_hash_function(tmp_path):
    f = tmp_path / "split.json"
    f.write_text('{"train": ["a"], "test": ["b"]}')
    assert readers.file_digest(f) == store.file_sha256(f)
    assert splits.split_file_digest(f) == store.file_sha256(f)[:24]

"""The loaded-dataset cache (issue #12): every task that declares its files loads once, keyed by their content.

Unit checks of `crystalbench.runtime.dataset_cache` (exact round trip, corrupt
and foreign entries rebuilt), `Workspace.load` with a counting loader (a new
Workspace stands for a new process), and the acceptance path: a third-party
task loaded once across two `bench run` processes and again when its file changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from crystalbench import Dataset, TaskSpec
from crystalbench.contract.context import RunContext
from crystalbench.runtime import dataset_cache as DC
from crystalbench.runtime.registry import Registry
from crystalbench.runtime.stages import Workspace


def _structures(n: int) -> list[Structure]:
    out = []
    for i in range(n):
        s = Structure(Lattice.cubic(3.0 + 0.1 * i), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]],
                      site_properties={"magmom": np.array([2.0 + i, -1.0])})
        out.append(s)
    return out


def test_round_trip_is_exact_for_every_kind_of_dataset():
    structs = _structures(4)
    feats = np.array([[1.0, np.nan], [2.0, 3.0], [np.inf, 0.1], [4.0, 5.0]])
    cases = [
        Dataset(ids=list("abcd"), targets=np.array([0.1, 0.2, 0.3, 1 / 3]), structures=structs,
                features=feats, feature_names=("x", "y"), name="s", meta={"ok": [1, 2], "bad": object()}),
        Dataset(ids=list("abcd"), targets=np.array([0, 1, 1, 0]), structures=structs, classes=("p", "q"), name="c"),
        Dataset(ids=list("ab"), targets=np.array([1.5, 2.5]),
                compositions=[Composition("Fe2O3"), Composition({"Na": 0.5, "Cl": 0.5})], name="comp"),
    ]
    for data in cases:
        back = DC.round_trip(data)
        assert back.content_hash == data.content_hash
        assert back.ids == data.ids and back.name == data.name and back.classes == data.classes
        assert back.targets.dtype == data.targets.dtype and back.feature_names == data.feature_names
    assert DC.round_trip(cases[0]).meta == {"ok": [1, 2]}  # what is not JSON is left out, never pickled
    assert np.array_equal(DC.round_trip(cases[0]).structures[0].site_properties["magmom"], [2.0, -1.0])


class Counted:
    """A task over a data file whose loader counts its calls."""

    def __init__(self, path: Path, *, declare_files: bool = True) -> None:
        self.path, self.calls = path, 0
        self.spec = TaskSpec(name="counted", load=self.load, target="y",
                             files=(lambda ctx: [self.path]) if declare_files else None)

    def load(self, ctx: RunContext) -> Dataset:
        self.calls += 1
        ys = [float(v) for v in self.path.read_text().split()]
        return Dataset(ids=[f"m{i}" for i in range(len(ys))], targets=np.array(ys),
                       structures=_structures(len(ys)), name="counted")


def _load(task: Counted, ctx: RunContext) -> Dataset:
    """What a fresh process does: a new Workspace, then load."""
    reg = Registry(tasks={"counted": task.spec}, owner={("task", "counted"): "cbcount"})
    return Workspace(reg, ctx).load("counted").data


@pytest.fixture(autouse=True)
def _data_file(ctx) -> None:
    """Every test here reads data.txt from the data dir of the shared `ctx` fixture."""
    (ctx.data_dir / "data.txt").write_text("1 2 3 4\n")


def test_task_with_files_loads_once_and_again_when_its_file_changes(ctx):
    task = Counted(ctx.data_dir / "data.txt")
    first = _load(task, ctx)
    again = _load(task, ctx)
    assert task.calls == 1 and again.content_hash == first.content_hash
    assert len(list((ctx.cache_dir / "datasets").rglob("*.json"))) == 1  # JSON + NPZ, no pickle
    assert not list((ctx.cache_dir / "datasets").rglob("*.pkl"))
    (ctx.data_dir / "data.txt").write_text("1 2 3 5\n")
    changed = _load(task, ctx)
    assert task.calls == 2 and changed.content_hash != first.content_hash
    _load(task, ctx)
    assert task.calls == 2


def test_task_without_files_loads_every_time(ctx):
    task = Counted(ctx.data_dir / "data.txt", declare_files=False)
    _load(task, ctx)
    _load(task, ctx)
    assert task.calls == 2 and not (ctx.cache_dir / "datasets").exists()


@pytest.mark.parametrize("damage", ["truncate_json", "truncate_npz", "other_data", "foreign_module"])
def test_damaged_entry_is_rebuilt(ctx, damage, caplog):
    task = Counted(ctx.data_dir / "data.txt")
    first = _load(task, ctx)
    entry = next((ctx.cache_dir / "datasets").rglob("*.json"))
    if damage == "truncate_json":
        entry.write_text(entry.read_text()[:100])
    elif damage == "truncate_npz":
        npz = entry.with_suffix(".npz")
        npz.write_bytes(npz.read_bytes()[:50])
    else:
        doc = json.loads(entry.read_text())
        if damage == "other_data":
            doc["ids"][0] = "tampered"
        else:  # from_dict would import the module a dict names: refused before decoding
            doc["structures"][0]["lattice"]["@module"] = "os"
        entry.write_text(json.dumps(doc))
    caplog.set_level("WARNING", logger="crystalbench")
    again = _load(task, ctx)
    assert task.calls == 2 and again.content_hash == first.content_hash
    assert "discarded" in caplog.text
    _load(task, ctx)  # rebuilt: the next process hits it
    assert task.calls == 2


# -- across processes, through `bench run`, with a third-party plugin installed from a folder
PLUGIN = '''
import os
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from crystalbench import Dataset, DataUnavailableError, TaskSpec, hookimpl


def data_file(ctx):
    return ctx.data_dir / "counted" / "cells.txt"


def load(ctx):
    path = data_file(ctx)
    if not path.is_file():
        raise DataUnavailableError(f"{path} is missing")
    with open(os.environ["CBCOUNT_LOG"], "a") as fh:
        fh.write("load\\n")
    edges = [float(v) for v in path.read_text().split()]
    cells = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for a in edges]
    return Dataset(ids=[f"c{i}" for i in range(len(edges))], targets=np.array(edges) ** 3, structures=cells)


@hookimpl
def bench_tasks(ctx):
    return [TaskSpec(name="counted", load=load, target="volume", files=lambda ctx: [data_file(ctx)])]
'''


def test_plugin_task_loads_once_across_bench_run_processes(tmp_path):
    site = tmp_path / "site"
    (site / "cbcount-0.1.dist-info").mkdir(parents=True)
    (site / "cbcount.py").write_text(textwrap.dedent(PLUGIN))
    (site / "cbcount-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: cbcount\nVersion: 0.1\n")
    (site / "cbcount-0.1.dist-info" / "entry_points.txt").write_text("[crystalbench]\ncbcount = cbcount\n")
    data = tmp_path / "data" / "counted"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (data / "cells.txt").write_text(" ".join(f"{a:.4f}" for a in rng.uniform(3, 6, 30)))
    log = tmp_path / "loads.log"
    env = dict(os.environ, PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               CBCOUNT_LOG=str(log), CRYSTALBENCH_CACHE_DIR=str(tmp_path / "cache"))

    def run(results: str) -> dict:
        p = subprocess.run([sys.executable, "-m", "crystalbench.cli", "run", "-m", "dummy", "-t", "counted", "--json",
                            "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / results)],
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        (line,) = p.stdout.splitlines()
        rec = json.loads(line)
        assert rec["status"] == "ok"
        return rec

    run("r1")
    run("r2")  # another process, another results dir: the job runs, the data comes from the cache
    assert log.read_text().count("load") == 1
    (data / "cells.txt").write_text(" ".join(f"{a:.4f}" for a in rng.uniform(3, 6, 30)))
    run("r3")
    assert log.read_text().count("load") == 2

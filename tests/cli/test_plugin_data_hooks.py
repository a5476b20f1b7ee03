"""What a third-party task plugin declares about data reaches `bench data` and `--data` through the registry.

The CLI imports no task module (an import-linter contract): a plugin's `TaskSpec.fetch` is what
`bench data status/fetch` show and carry out, and a plugin's `bench_data_task` reads `--data`
files before the built-in `usertasks` plugin does.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import bench_invoke
from pymatgen.core import Composition

from crystalbench import Dataset, RemoteFile, TaskSpec, hookimpl
from crystalbench.contract import download
from crystalbench.runtime.executors.base import TaskRecipe
from crystalbench.runtime.registry import load_registry

PAYLOAD = b"id,y\na,1\nb,2\n"
URL = "https://example.org/cbfetch/labels.csv"


def _plugin() -> types.ModuleType:
    """A plugin module (importable by name, as a worker would import it) with a task and a --data reader."""
    mod = types.ModuleType("cbtest_datahooks")

    def files(ctx: Any) -> list[Path]:
        return [ctx.data_dir / "cbfetch" / "labels.csv"]

    def fetch(ctx: Any) -> list[RemoteFile | str]:
        return [RemoteFile(files(ctx)[0], URL, hashlib.sha256(PAYLOAD).hexdigest(), "test data"),
                "cbfetch/structures/: ask the authors"]

    @hookimpl
    def bench_tasks() -> list[TaskSpec]:
        return [TaskSpec(name="cbfetch", target="y", load=lambda ctx: None,  # type: ignore[arg-type,return-value]
                         files=files, fetch=fetch, available=lambda ctx: files(ctx)[0].is_file())]

    @hookimpl
    def bench_data_task(path: str, options: dict[str, Any]) -> TaskSpec | None:
        if not path.endswith(".cbx"):
            return None  # not ours: the next plugin (usertasks) reads it
        return TaskSpec(name="cbx-" + Path(path).stem, target=str(options.get("target")), load=lambda ctx: Dataset(
            ids=("a",), targets=np.array([1.0]), compositions=(Composition("NaCl"),), name="cbx"))

    mod.bench_tasks = bench_tasks  # type: ignore[attr-defined]
    mod.bench_data_task = bench_data_task  # type: ignore[attr-defined]
    bench_data_task.__module__ = bench_tasks.__module__ = mod.__name__
    bench_data_task.__qualname__ = "bench_data_task"
    return mod


@pytest.fixture
def plugin(monkeypatch) -> types.ModuleType:
    mod = _plugin()
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    cli_main = importlib.import_module("crystalbench.cli.main")  # the module; `crystalbench.cli.main` is also a function
    real = cli_main.load_registry
    monkeypatch.setattr(cli_main, "load_registry",
                        lambda **kw: real(**kw, extra_plugins=[("cbtest_datahooks", mod)]))
    monkeypatch.delenv("CRYSTALBENCH_OFFLINE", raising=False)
    return mod


def test_a_plugin_tasks_fetch_plan_is_shown_and_carried_out(plugin, monkeypatch, tmp_path):
    urls: list[str] = []
    monkeypatch.setattr(download, "http_download", lambda url: urls.append(url) or PAYLOAD)
    code, out = bench_invoke("data", "status", "--data-dir", str(tmp_path))
    line = next(x for x in out.splitlines() if x.startswith("cbfetch "))
    assert "MISSING" in line and "bench data fetch cbfetch" in line and "by hand: 1 item" in line
    assert "cbfetch/structures/: ask the authors" in out

    code, out = bench_invoke("data", "fetch", "cbfetch", "--data-dir", str(tmp_path))
    assert urls == [URL] and "sha256 verified" in out and "(test data)" in out
    assert (tmp_path / "cbfetch" / "labels.csv").read_bytes() == PAYLOAD
    assert code == 1 and "cannot download cbfetch/structures/" in out  # the manual step is still open

    monkeypatch.setenv("CRYSTALBENCH_OFFLINE", "1")
    (tmp_path / "cbfetch" / "labels.csv").unlink()
    code, out = bench_invoke("data", "fetch", "cbfetch", "--data-dir", str(tmp_path))
    assert code == 1 and "downloads are off" in out and urls == [URL]


def test_a_bad_download_writes_nothing(plugin, monkeypatch, tmp_path):
    monkeypatch.setattr(download, "http_download", lambda url: PAYLOAD + b"tampered")
    code, out = bench_invoke("data", "fetch", "cbfetch", "--data-dir", str(tmp_path))
    assert code == 1 and "is not the expected" in out
    assert not (tmp_path / "cbfetch").exists()


def test_data_files_go_to_the_first_plugin_that_reads_them(plugin, tmp_path):
    reg = load_registry(extra_plugins=[("cbtest_datahooks", plugin)])
    spec, factory = reg.data_task(str(tmp_path / "mine.cbx"), {"target": "y"})
    assert spec.name == "cbx-mine" and factory == "cbtest_datahooks:bench_data_task"
    rebuilt = TaskRecipe(factory, (str(tmp_path / "mine.cbx"), {"target": "y"})).build()  # what a worker does
    assert rebuilt.name == spec.name and len(rebuilt.load(None)) == 1  # type: ignore[arg-type]

    table = tmp_path / "data.csv"
    table.write_text("id,formula,y\na,NaCl,1\nb,KCl,2\n")
    spec, factory = reg.data_task(str(table), {"target": "y"})
    assert spec.group == "user" and factory == "crystalbench.tasks.user:bench_data_task"

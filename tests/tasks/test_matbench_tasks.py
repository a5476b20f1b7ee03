"""Matbench v0.1 tasks: official metadata, matbench_phonons offline, clear messages, never the network."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from crystalbench.contract.context import RunContext
from crystalbench.contract.errors import BadInputError, DataUnavailableError
from crystalbench.tasks import matbench as M

pytestmark = pytest.mark.usefixtures("fresh_process")


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test (matminer's fetcher and our wrapper)."""
    import matminer.datasets.utils as mu

    def boom(*args, **kwargs):
        raise AssertionError("the network must not be used in tests")

    monkeypatch.setattr(mu, "_fetch_external_dataset", boom)
    monkeypatch.setattr(M, "_download", boom)
    monkeypatch.delenv("MATMINER_DATA", raising=False)


@pytest.fixture(scope="module")
def specs():
    return {t.name: t for t in M.bench_tasks()}


def test_all_13_registered_with_official_metadata(specs, data_dir):
    meta = json.loads((data_dir / "matbench" / "matbench_v0.1_dataset_metadata.json").read_text())
    assert set(specs) == set(meta)
    for name, m in meta.items():
        t = specs[name]
        assert t.protocol == "matbench" and t.group == "matbench"
        assert (t.target, t.task_type, t.size) == (m["target"], m["task_type"], m["n_samples"])
        assert t.unit == (m["unit"] or "")
        assert M.MATBENCH[name][4] == m["input_type"]
        assert t.source and t.license
        assert t.provides == ("composition" if m["input_type"] == "composition" else "structure")


def test_ids_match_the_official_fold_file(data_dir):
    with gzip.open(data_dir / "matbench" / "matbench_v0.1_validation.json.gz", "rt") as fh:
        folds = json.load(fh)["splits"]
    for name, (_t, _u, _ty, n, *_rest) in M.MATBENCH.items():
        fold = folds[name]["fold_0"]
        assert set(M.matbench_ids(name, n)) == set(fold["train"]) | set(fold["test"]), name


def test_matbench_phonons_loads_offline_in_file_order(specs, data_dir, real_ctx, no_network, monkeypatch):
    monkeypatch.setenv(M.OFFLINE_ENV, "1")
    t = specs["matbench_phonons"]
    assert t.available(real_ctx)
    assert t.files(real_ctx) == [data_dir / "matbench" / "matbench_phonons.json.gz"]
    data = t.load(real_ctx)
    assert len(data) == 1265
    assert data.ids[:3] == ("mb-phonons-0001", "mb-phonons-0002", "mb-phonons-0003") and data.ids[-1] == "mb-phonons-1265"
    with gzip.open(data_dir / "matbench" / "matbench_phonons.json.gz", "rt") as fh:
        raw = json.load(fh)
    np.testing.assert_allclose(data.targets, [row[1] for row in raw["data"]])
    first = raw["data"][0][0]
    assert data.structures[0].lattice.matrix.tolist() == first["lattice"]["matrix"]
    assert data.structures[-1].composition.reduced_formula == data.composition_list[-1].reduced_formula
    assert data.meta["unit"] == "cm^-1"


@pytest.mark.parametrize("name", ["matbench_mp_gap", "matbench_expt_gap", "matbench_glass"])
def test_offline_without_data_gives_a_clear_message(specs, data_dir, real_ctx, no_network, monkeypatch, name):
    monkeypatch.setenv(M.OFFLINE_ENV, "1")
    t = specs[name]
    assert not t.available(real_ctx)
    with pytest.raises(DataUnavailableError) as err:
        t.load(real_ctx)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{name}: no local copy and downloads are off")
    assert str(data_dir / "matbench" / f"{name}.json.gz") in msg and f"projects/{name}.json.gz" in msg


def test_failed_download_goes_through_matminer_and_leaves_no_partial_file(specs, real_ctx, monkeypatch, tmp_path):
    """Online path: matminer.load_dataset is really called; its fetch fails like a machine without network."""
    import matminer.datasets.utils as mu

    calls = []

    def no_route(url, file_path):
        calls.append(url)
        with open(file_path, "wb") as fh:  # a partial download
            fh.write(b"\x1f\x8b")
        raise ConnectionError("Failed to establish a new connection: no route to host")

    monkeypatch.setattr(mu, "_fetch_external_dataset", no_route)
    monkeypatch.delenv(M.OFFLINE_ENV, raising=False)
    monkeypatch.setenv("MATMINER_DATA", str(tmp_path / "mm"))
    with pytest.raises(DataUnavailableError, match=r"download failed \(ConnectionError: Failed to establish"):
        specs["matbench_jdft2d"].load(real_ctx)
    assert calls == ["https://ml.materialsproject.org/projects/matbench_jdft2d.json.gz"]
    assert not (tmp_path / "mm" / "matbench_jdft2d.json.gz").exists()


def _write_split(path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        json.dump({"index": list(range(len(rows))), "columns": columns, "data": rows}, fh)


def test_composition_only_and_classification_from_local_files(specs, tmp_path, ctx, no_network, monkeypatch):
    monkeypatch.setenv(M.OFFLINE_ENV, "1")
    formulas = ["Fe0.7Cr0.2Ni0.1", "Fe0.9C0.1", "Fe0.8Mn0.2"] * 104
    _write_split(tmp_path / "matbench" / "matbench_steels.json.gz", ["composition", "yield strength"],
                 [[f, 1000.0 + i] for i, f in enumerate(formulas)])
    t = specs["matbench_steels"]
    assert t.available(ctx)
    data = t.load(ctx)
    assert data.structures is None and len(data.compositions) == 312
    assert data.ids[0] == "mb-steels-001" and data.compositions[1]["C"] == pytest.approx(0.1)
    _write_split(tmp_path / "matbench" / "matbench_expt_is_metal.json.gz", ["composition", "is_metal"],
                 [["Cu", True], ["NaCl", False]] * 2460 + [["Fe", True]])
    data = specs["matbench_expt_is_metal"].load(ctx)
    assert data.classes == ("False", "True") and data.targets[:3].tolist() == [1, 0, 1]
    assert data.ids[-1] == "mb-expt-is-metal-4921"


def test_truncated_local_file_is_rejected_not_silently_run(specs, tmp_path, ctx, no_network):
    _write_split(tmp_path / "matbench" / "matbench_steels.json.gz", ["composition", "yield strength"], [["Fe", 1.0]] * 10)
    with pytest.raises(BadInputError, match="10 rows, but Matbench matbench_steels has 312"):
        specs["matbench_steels"].load(ctx)


def test_offline_and_matminer_data_can_come_from_the_context(specs, tmp_path, no_network):
    """The documented option keys override the environment variables (one place reads them)."""
    mm = tmp_path / "mm"
    _write_split(mm / "matbench_steels.json.gz", ["composition", "yield strength"],
                 [[f, 1000.0 + i] for i, f in enumerate(["Fe0.9C0.1", "Fe0.8Mn0.2"] * 156)])
    real_ctx = RunContext(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", options={"matminer_data": str(mm)})
    assert specs["matbench_steels"].files(real_ctx) == [mm / "matbench_steels.json.gz"]
    assert len(specs["matbench_steels"].load(real_ctx)) == 312
    offline = real_ctx.with_(options={"offline": True})
    with pytest.raises(DataUnavailableError, match="downloads are off"):
        specs["matbench_steels"].load(offline)

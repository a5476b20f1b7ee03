"""Generic descriptor engine: on-disk cache, process parallelism, NaN reporting, CSV export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from crystalbench.contract.dataset import Dataset
from crystalbench.contract.featurize import compute_descriptors, descriptor_cache_dir, export_table
from crystalbench.contract.specs import DescriptorSpec
from crystalbench.descriptors.gong29 import GONG29

CALLS: list[int] = []


def _volume_features(structures):
    """Test featurizer: counts its calls; NaN for 3-atom cells, raises for 5-atom cells."""
    CALLS.append(len(structures))
    out = []
    for s in structures:
        if len(s) == 5:
            raise ValueError("five atoms are not allowed here")
        out.append([s.volume, np.nan if len(s) == 3 else float(len(s) % 2)])
    return np.array(out)


def _bad_shape(structures):
    return np.zeros((len(structures), 1))


def _atoms_per_formula(comps):
    return np.array([[c.num_atoms] for c in comps])


VOLUME = DescriptorSpec(
    name="volume-test", feature_names=("volume", "parity"), featurize=_volume_features, categorical=("parity",)
)


def _cubic(n_atoms: int, a: float) -> Structure:
    coords = [[i / n_atoms, 0.3 * (i % 2), 0.1 * i % 1] for i in range(n_atoms)]
    return Structure(Lattice.cubic(a), ["Na"] * n_atoms, coords)


def _toy(sizes: list[int]) -> Dataset:
    structures = [_cubic(n, 4.0 + 0.1 * k) for k, n in enumerate(sizes)]
    return Dataset(ids=[f"toy-{k}" for k in range(len(sizes))], targets=np.zeros(len(sizes)), structures=structures)


@pytest.fixture
def real_data(data_dir, tmp_path):
    from crystalbench.contract.context import RunContext
    from crystalbench.tasks.collection import load_collection

    coll = load_collection(RunContext(data_dir=data_dir, cache_dir=tmp_path / "coll"), limit=12)
    return Dataset(ids=coll.ids, targets=np.zeros(len(coll.ids)), structures=coll.structures)


def test_second_run_is_served_from_cache(tmp_path):
    data = _toy([2, 4, 6, 4])
    CALLS.clear()
    first = compute_descriptors(VOLUME, data, cache_dir=tmp_path)
    assert sum(CALLS) == 4
    np.testing.assert_allclose(first[:, 0], [s.volume for s in data.structures])
    root = descriptor_cache_dir(VOLUME, tmp_path)
    files = sorted(root.rglob("*.json"))
    assert len(files) == 4 and all("v" in json.loads(f.read_text()) for f in files)

    CALLS.clear()
    again = compute_descriptors(VOLUME, data, cache_dir=tmp_path)
    assert CALLS == [] and np.array_equal(first, again)

    # a new structure only computes that one; a new version invalidates everything
    bigger = _toy([2, 4, 6, 4, 8])
    compute_descriptors(VOLUME, bigger, cache_dir=tmp_path)
    assert sum(CALLS) == 1
    CALLS.clear()
    v2 = DescriptorSpec(name=VOLUME.name, feature_names=VOLUME.feature_names, featurize=_volume_features, version="2")
    compute_descriptors(v2, bigger, cache_dir=tmp_path)
    assert sum(CALLS) == 5


def test_duplicate_structures_are_computed_once(tmp_path):
    s = _cubic(2, 4.2)
    data = Dataset(ids=["x", "y"], targets=[0, 0], structures=[s, s.copy()])
    CALLS.clear()
    out = compute_descriptors(VOLUME, data, cache_dir=tmp_path)
    assert sum(CALLS) == 1 and np.array_equal(out[0], out[1])


def test_parallel_jobs_give_identical_values(tmp_path, real_data):
    serial = compute_descriptors(GONG29, real_data, cache_dir=tmp_path / "a", jobs=1)
    parallel = compute_descriptors(GONG29, real_data, cache_dir=tmp_path / "b", jobs=2)
    assert np.array_equal(serial, parallel, equal_nan=True)
    assert np.isfinite(serial).all()
    # and the parallel run filled its cache
    assert len(list(descriptor_cache_dir(GONG29, tmp_path / "b").rglob("*.json"))) == len(real_data)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_nan_and_failures_give_one_warning_naming_ids(tmp_path, caplog):
    data = _toy([2, 3, 4, 5, 3])
    with caplog.at_level("INFO", logger="crystalbench"):
        out = compute_descriptors(VOLUME, data, cache_dir=tmp_path)
    record = _warnings(caplog)
    assert len(record) == 1
    msg = record[0]
    for sid in ("toy-1", "toy-3", "toy-4"):
        assert sid in msg
    assert "toy-0" not in msg and "toy-2" not in msg
    assert "five atoms are not allowed" in msg and "volume-test" in msg
    assert np.isnan(out[3]).all() and np.isnan(out[1, 1]) and np.isfinite(out[1, 0])
    # the NaN row is cached, the raising one is retried next time
    CALLS.clear()
    caplog.clear()
    with caplog.at_level("INFO", logger="crystalbench"):
        compute_descriptors(VOLUME, data, cache_dir=tmp_path)
    assert sum(CALLS) == 1 and len(_warnings(caplog)) == 1


def test_wrong_shape_names_the_set(tmp_path):
    spec = DescriptorSpec(name="broken-set", feature_names=("a", "b"), featurize=_bad_shape)
    with pytest.raises(ValueError, match="broken-set"):
        compute_descriptors(spec, _toy([2]), cache_dir=tmp_path)


def test_composition_sets_are_keyed_by_composition(tmp_path):
    spec = DescriptorSpec(name="natoms-formula", feature_names=("n",), featurize=_atoms_per_formula, needs="composition")
    data = Dataset(ids=["a", "b"], targets=[0, 0], compositions=[Composition("Fe2O3"), Composition("NaCl")])
    out = compute_descriptors(spec, data, cache_dir=tmp_path)
    assert out[:, 0].tolist() == [5.0, 2.0]
    assert len(list(descriptor_cache_dir(spec, tmp_path).rglob("*.json"))) == 2


def test_export_table_writes_ids_and_columns(tmp_path, caplog):
    data = _toy([2, 3, 4])
    out = tmp_path / "sub" / "table.csv"
    with caplog.at_level("INFO", logger="crystalbench"):
        path = export_table(VOLUME, data, out, cache_dir=tmp_path / "cache", progress=False)
    assert len(_warnings(caplog)) == 1
    assert path == out
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "volume", "parity"]
    assert [r[0] for r in rows[1:]] == ["toy-0", "toy-1", "toy-2"]
    assert float(rows[1][1]) == pytest.approx(data.structures[0].volume)
    assert rows[1][2] == "0" and rows[2][2] == "" and rows[3][2] == "0"  # categorical as int, NaN empty
    assert [p.name for p in out.parent.iterdir()] == ["table.csv"]  # no temp file left behind

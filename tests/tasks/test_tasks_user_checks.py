"""User data: a split task parses its file once; unlearnable targets fail at load, naming the column."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from crystalbench.contract.errors import BadInputError
from crystalbench.tasks import user as U

pytestmark = pytest.mark.usefixtures("fresh_process")


def structures(n: int) -> list[Structure]:
    return [Structure(Lattice.cubic(4.0 + 0.05 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for i in range(n)]


def write(path: Path, columns: dict[str, list]) -> Path:
    n = len(next(iter(columns.values())))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", *columns])
        for i, s in enumerate(structures(n)):
            w.writerow([f"m{i}", s.to(fmt="cif"), *(col[i] for col in columns.values())])
    return path


def test_toml_task_with_a_split_column_parses_its_file_once(tmp_path, ctx, monkeypatch):
    write(tmp_path / "d.csv", {"y": [0.1 * i for i in range(8)], "split": ["train"] * 5 + ["val", "test", "test"]})
    (tmp_path / "t.toml").write_text('name = "mine"\npath = "d.csv"\ntarget = "y"\n[split]\ncolumn = "split"\n')
    reads, builds = [], []
    read_table, build = U.read_table, U._dataset_from_payload
    monkeypatch.setattr(U, "read_table", lambda *a: reads.append(a[0]) or read_table(*a))
    monkeypatch.setattr(U, "_dataset_from_payload", lambda *a: builds.append(1) or build(*a))
    [spec] = U.tasks_from_toml(tmp_path / "t.toml", ctx)
    data = spec.load(ctx)
    splits = [spec.split_ids(ctx) for _ in range(3)]  # one per seed, as the runner asks
    assert reads == [tmp_path / "d.csv"] and builds == [1]
    assert all(s == splits[0] for s in splits)
    assert splits[0].train == data.ids[:5] and splits[0].val == ("m5",) and splits[0].test == ("m6", "m7")


def test_classification_of_a_continuous_column_is_refused(tmp_path, ctx):
    p = write(tmp_path / "c.csv", {"gap": [0.37 * i + 0.01 for i in range(12)]})
    with pytest.raises(BadInputError, match=r"classification target 'gap' looks continuous \(12 distinct values"):
        U.load_user_dataset(p, ctx, target="gap", task_type="classification")
    many = write(tmp_path / "ints.csv", {"code": list(range(24))})
    with pytest.raises(BadInputError, match=r"'code' looks continuous \(24 distinct values in 24 rows\)"):
        U.load_user_dataset(many, ctx, target="code", task_type="classification")


def test_a_single_class_is_refused_and_few_integer_classes_are_fine(tmp_path, ctx):
    p = write(tmp_path / "one.csv", {"is_metal": ["True"] * 5})
    with pytest.raises(BadInputError, match=r"classification target 'is_metal' has a single class \('True'\)"):
        U.load_user_dataset(p, ctx, target="is_metal", task_type="classification")
    ok = write(tmp_path / "three.csv", {"label": [0, 1, 2, 1, 0, 2]})
    data = U.load_user_dataset(ok, ctx, target="label", task_type="classification")
    assert data.classes == ("0", "1", "2") and data.targets.tolist() == [0, 1, 2, 1, 0, 2]


def test_constant_regression_target_is_refused_at_load(tmp_path, ctx):
    from ase.io import write as write_xyz
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for i, s in enumerate(structures(4)):
        a = AseAtomsAdaptor.get_atoms(s)
        a.info = {"name": f"f{i}", "weight": 0.0, "gap": float(i)}
        frames.append(a)
    write_xyz(tmp_path / "d.extxyz", frames, format="extxyz")
    with pytest.raises(BadInputError, match=r"target 'weight' is constant \(0\.0\) in all 4 rows: nothing to learn"):
        U.load_user_dataset(tmp_path / "d.extxyz", ctx, target="weight", id_column="name")
    assert len(U.load_user_dataset(tmp_path / "d.extxyz", ctx, target="gap", id_column="name")) == 4
    # featurizing needs no target: NaN targets are not "constant"
    assert len(U.load_user_dataset(tmp_path / "d.extxyz", ctx, id_column="name")) == 4


def test_user_task_declares_composition_only_inputs(tmp_path):
    (tmp_path / "c.csv").write_text("formula,y\nFe,1\nNaCl,2\nCu,3\n")
    assert U.user_task(tmp_path / "c.csv", target="y").provides == "composition"
    write(tmp_path / "s.csv", {"y": [1, 2]})
    assert U.user_task(tmp_path / "s.csv", target="y").provides == "structure"
    assert U.user_task(tmp_path / "missing.json", target="y", structure_column="formula").provides == "composition"


def test_reading_options_are_part_of_the_task_version(tmp_path):
    """The same file read as another task type (or other columns) is other data: a new job, never a resume."""
    p = write(tmp_path / "d.csv", {"y": [0, 1, 0, 1]})
    base = U.user_task(p, target="y")
    assert U.user_task(p, target="y").version == base.version
    assert U.user_task(p, target="y", task_type="classification").version != base.version
    assert U.user_task(p, target="y", id_column="structure").version != base.version

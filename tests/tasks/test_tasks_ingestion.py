"""One ingestion path: every task reads raw files through the same tables, each file parsed once per process."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import structure_key
from crystalbench.tasks import collection as K
from crystalbench.tasks import sources as S
from crystalbench.tasks.properties import property_tasks

pytestmark = pytest.mark.usefixtures("fresh_process")


def task(name: str):
    return next(t for t in property_tasks() if t.name == name)


def fake_petretto(root: Path) -> dict[str, str]:
    """A small phonon_dielectric_mp.csv with good rows and structures every task must reject; {id: why}."""
    good = {f"mp-{i}": Structure(Lattice.cubic(4 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            for i in range(1, 6)}
    bad = {
        "mp-90": Structure(Lattice.cubic(4.2), [{"Fe": 0.5, "Co": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "mp-91": Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]]),
    }
    path = root / S.FILES["petretto"][0]
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mpid", "asr_breaking", "eps_electronic", "eps_total", "last phdos peak", "structure", "formula"])
        for ident, s in {**good, **bad}.items():
            w.writerow([ident, 0.1, 5.0 + int(ident[3:]) % 7, 9.0, 100.0, repr(s.as_dict()), s.formula])
    return {"mp-90": "disordered structure", "mp-91": "overlapping atoms"}


def test_property_tasks_and_the_learnability_collection_agree_on_valid_structures(tmp_path):
    rejected = fake_petretto(tmp_path / "data")
    ctx = RunContext(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    prop = task("eps_electronic_petretto").load(ctx)
    coll = K.load_collection(ctx)
    assert set(prop.ids) == set(coll.ids) == {f"mp-{i}" for i in range(1, 6)}
    assert not set(rejected) & (set(prop.ids) | set(coll.ids))
    assert prop.meta["filters"] == {"disordered structure": 1, "overlapping atoms": 1}
    by_id = dict(zip(coll.ids, coll.structures))
    assert [structure_key(s) for s in prop.structures] == [structure_key(by_id[i]) for i in prop.ids]


def test_each_raw_file_is_parsed_once_per_process(data_dir, tmp_path, monkeypatch):
    ctx = RunContext(data_dir=data_dir, cache_dir=tmp_path / "cache")
    reads: Counter[str] = Counter()
    read_table = S.read_table
    monkeypatch.setattr(S, "read_table", lambda path, rep: reads.update([path.name]) or read_table(path, rep))
    for name in ("phonon_cv", "phonon_cv_per_atom", "eps_electronic_petretto", "eps_total_petretto"):
        task(name).load(ctx)
    task("phonon_cv").split_ids(ctx)
    K.load_collection(ctx, limit=10)
    assert reads == {"phonon_dielectric_mp.csv": 1, "cv_training.csv": 1, "cv_test.csv": 1}
    # one parsed table, shared, plus its primitive-cell view for the per-cell phonon labels
    assert len(list((tmp_path / "cache" / "tables").rglob("*.json"))) == 2

"""Users' own data: every input format, bad rows reported exactly, strict mode, TOML task files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import recording_reporter
from pymatgen.core import Lattice, Structure

from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import structure_key
from crystalbench.contract.errors import BadInputError
from crystalbench.tasks import readers as R
from crystalbench.tasks import user as U

pytestmark = pytest.mark.usefixtures("fresh_process")




@pytest.fixture
def reported(make_ctx) -> tuple[RunContext, list[str]]:
    """A context with its cache under tmp_path, and the list its reporter writes to."""
    reporter, lines = recording_reporter()
    return make_ctx(reporter=reporter), lines


def rocksalt(a: float, a_el: str = "Na", b_el: str = "Cl") -> Structure:
    return Structure(Lattice.cubic(a), [a_el, b_el], [[0, 0, 0], [0.5, 0.5, 0.5]])


GOOD = {f"m{i}": (rocksalt(4.0 + 0.1 * i), float(i)) for i in range(5)}
BROKEN_CIF = "data_broken\n_cell_length_a 4.0\nloop_\n_atom_site_label\n_atom_site_fract_x\nNa1 nonsense extra\n"
DISORDERED = Structure(Lattice.cubic(4.2), [{"Fe": 0.5, "Co": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def write_broken_csv(path: Path) -> dict[str, str]:
    """A CSV with five good rows and four broken ones; returns {bad id: expected kind}."""
    rows = [
        ("m0", GOOD["m0"][0].to(fmt="cif"), "0.0"),
        ("bad-cif", BROKEN_CIF, "1.0"),
        ("m1", repr(GOOD["m1"][0].as_dict()), "1.0"),  # Python-repr dict in the same column
        ("nan-target", GOOD["m2"][0].to(fmt="cif"), "nan"),
        ("m2", GOOD["m2"][0].to(fmt="poscar"), "2.0"),
        ("disordered", DISORDERED.to(fmt="cif"), "3.0"),
        ("m3", GOOD["m3"][0].to(fmt="cif"), "3.0"),
        ("m1", GOOD["m4"][0].to(fmt="cif"), "9.0"),  # duplicate id
        ("m4", json.dumps(GOOD["m4"][0].as_dict()), "4.0"),
    ]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["material_id", "cif", "band_gap", "note"])
        for r in rows:
            w.writerow([*r, "x"])
    return {"bad-cif": "malformed structure", "nan-target": "missing/invalid target",
            "disordered": "disordered structure", "m1": "duplicate id"}


def start_line(path: Path, ident: str, nth: int = 1) -> int:
    """1-based line where the nth record starting with `ident,` begins."""
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line.startswith(f"{ident},")]
    return hits[nth - 1]


def test_csv_with_broken_rows_loads_and_reports_exactly_those_rows(tmp_path, reported):
    ctx, err = reported
    p = tmp_path / "mydata.csv"
    expected = write_broken_csv(p)
    data = U.load_user_dataset(p, ctx, target="band_gap")
    assert data.ids == ("m0", "m1", "m2", "m3", "m4")
    np.testing.assert_allclose(data.targets, [0, 1, 2, 3, 4])
    for ident in data.ids:
        assert data.structures[list(data.ids).index(ident)].lattice.a == pytest.approx(GOOD[ident][0].lattice.a)
    skipped = data.meta["skipped"]
    assert {b["id"]: b["kind"] for b in skipped} == expected
    assert data.meta["skipped_count"] == 4 and data.meta["rows"] == 9
    assert data.meta["structure_column"] == "cif" and data.meta["id_column"] == "material_id"

    warnings = [line for line in err if line.startswith("warning: ")]
    assert len(warnings) == 5  # one line per bad row + the count
    assert f"line {start_line(p, 'bad-cif')} (id 'bad-cif'): malformed CIF" in warnings[0]
    assert f"line {start_line(p, 'nan-target')} (id 'nan-target'): target is NaN" in warnings[1]
    assert f"line {start_line(p, 'disordered')} (id 'disordered'): disordered or partially occupied site 0" in warnings[2]
    assert f"line {start_line(p, 'm1', 2)} (id 'm1'): duplicate id (first seen at line {start_line(p, 'm1')})" in warnings[3]
    assert "skipped 4 of 9 rows" in warnings[4]
    assert "Traceback" not in "\n".join(err)


def test_strict_mode_raises_at_the_first_bad_row_also_when_cached(tmp_path, ctx):
    p = tmp_path / "mydata.csv"
    write_broken_csv(p)
    msg = rf"line {start_line(p, 'bad-cif')} \(id 'bad-cif'\): malformed CIF.*strict mode"
    with pytest.raises(BadInputError, match=msg):
        U.load_user_dataset(p, ctx, target="band_gap", strict=True)
    U.load_user_dataset(p, ctx, target="band_gap", quiet=True)  # fills the cache
    R.clear_memos()  # a new process: the strict load replays the cached bad rows
    with pytest.raises(BadInputError, match=msg):
        U.load_user_dataset(p, ctx, target="band_gap", strict=True)


def test_second_load_comes_from_the_cache_and_is_identical(tmp_path, reported, monkeypatch):
    ctx, err = reported
    p = tmp_path / "mydata.csv"
    write_broken_csv(p)
    first = U.load_user_dataset(p, ctx, target="band_gap")
    err1 = list(err)
    R.clear_memos()  # a new process: the disk cache serves the load
    monkeypatch.setattr(U, "_parse", lambda *a, **k: pytest.fail("warm load must not re-parse"))
    second = U.load_user_dataset(p, ctx, target="band_gap")
    assert err[len(err1):] == err1  # bad rows are reported again
    assert second.ids == first.ids and second.content_hash == first.content_hash
    assert [structure_key(s) for s in second.structures] == [structure_key(s) for s in first.structures]


def test_csv_auto_detects_an_unusually_named_structure_column_and_ids(tmp_path, ctx):
    p = tmp_path / "d.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["my_crystal", "y"])
        for _ident, (s, y) in GOOD.items():
            w.writerow([repr(s.as_dict()), y])
    data = U.load_user_dataset(p, ctx, target="y")
    assert data.meta["structure_column"] == "my_crystal"
    assert data.ids == ("d-1", "d-2", "d-3", "d-4", "d-5")


def test_dotted_structure_column_reaches_into_dict_columns(tmp_path, ctx):
    p = tmp_path / "meta.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["meta", "y"])
        for ident, (s, y) in GOOD.items():
            w.writerow([repr({"material_id": ident, "structure": s.to(fmt="cif")}), y])
    data = U.load_user_dataset(p, ctx, target="y", structure_column="meta.structure", id_column="meta.material_id")
    assert data.ids == tuple(GOOD)


def test_target_none_gives_nan_targets(tmp_path, ctx):
    p = tmp_path / "mydata.csv"
    write_broken_csv(p)
    data = U.load_user_dataset(p, ctx, quiet=True)
    assert np.isnan(data.targets).all()
    # without a target, the NaN-target row is fine; only structure/id problems remain
    assert {b["id"] for b in data.meta["skipped"]} == {"bad-cif", "disordered", "m1"}


def test_pymatgen_json_records_and_split_orientation(tmp_path, ctx):
    recs = [{"task_id": k, "structure": s.as_dict(), "e": y} for k, (s, y) in GOOD.items()]
    recs.append({"task_id": "empty", "structure": {"@class": "Structure", "lattice": Lattice.cubic(3).as_dict(), "sites": []}, "e": 1})
    (tmp_path / "r.json").write_text(json.dumps(recs))
    data = U.load_user_dataset(tmp_path / "r.json", ctx, target="e", quiet=True)
    assert data.ids == tuple(GOOD) and data.meta["format"] == "json-records"
    assert data.meta["skipped"] == [{"where": "record 6", "id": "empty", "kind": "no atoms", "reason": "structure has no atoms"}]

    split = {"index": list(GOOD), "columns": ["structure", "e"], "data": [[s.as_dict(), y] for s, y in GOOD.values()]}
    import gzip

    with gzip.open(tmp_path / "s.json.gz", "wt") as fh:
        json.dump(split, fh)
    data = U.load_user_dataset(tmp_path / "s.json.gz", ctx, target="e")
    assert data.ids == tuple(GOOD) and data.meta["format"] == "json-split"
    np.testing.assert_allclose(data.targets, [y for _, y in GOOD.values()])


def test_id_prop_directory(tmp_path, reported):
    ctx, err = reported
    d = tmp_path / "cifs"
    d.mkdir()
    lines = []
    for i, (k, (s, y)) in enumerate(GOOD.items()):
        if i % 2:
            (d / f"POSCAR-{k}").write_text(s.to(fmt="poscar"))
        else:
            (d / f"{k}.cif").write_text(s.to(fmt="cif"))
        lines.append(f"{k},{y}")
    lines.insert(2, "ghost,7.0")  # no structure file
    (d / "bad.cif").write_text(BROKEN_CIF)
    lines.append("bad,8.0")
    (d / "id_prop.csv").write_text("\n".join(lines) + "\n")
    data = U.load_user_dataset(d, ctx, target="kappa")
    assert data.ids == tuple(GOOD)
    np.testing.assert_allclose(data.targets, [y for _, y in GOOD.values()])
    assert {b["id"]: b["kind"] for b in data.meta["skipped"]} == {"ghost": "missing structure", "bad": "malformed structure"}
    assert any("id_prop.csv line 3 (id 'ghost'): no structure file for id" in line for line in err)
    # an ALIGNN-style header line is recognised and skipped, with a note
    (d / "id_prop.csv").write_text("\n".join(["id,target"] + lines) + "\n")
    assert U.load_user_dataset(d, ctx, target="kappa", quiet=True).ids == tuple(GOOD)
    assert any(line.startswith("note: ") and "id_prop.csv line 1 (id,target) looks like a header; skipped" in line
               for line in err)
    # without a target, the structure files are still read (featurizing)
    assert len(U.load_user_dataset(d, ctx, quiet=True)) == 5
    # user_task on a directory needs no --target
    spec = U.user_task(d, target=None)
    assert spec.target == "target" and len(spec.load(ctx)) == 5


def test_extxyz_via_ase(tmp_path, ctx):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for k, (s, y) in GOOD.items():
        a = AseAtomsAdaptor.get_atoms(s)
        a.info = {"name": k, "gap": y}
        a.calc = SinglePointCalculator(a, energy=-y)
        frames.append(a)
    frames.insert(1, Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], pbc=False))
    frames[1].info = {"name": "molecule", "gap": 1.0}
    write(tmp_path / "d.extxyz", frames, format="extxyz")
    data = U.load_user_dataset(tmp_path / "d.extxyz", ctx, target="gap", id_column="name", quiet=True)
    assert data.ids == tuple(GOOD)
    np.testing.assert_allclose(data.targets, [y for _, y in GOOD.values()])
    assert data.meta["skipped"][0]["where"] == "frame 2" and "no periodic 3-D cell" in data.meta["skipped"][0]["reason"]
    energy = U.load_user_dataset(tmp_path / "d.extxyz", ctx, target="energy", id_column="name", quiet=True)
    np.testing.assert_allclose(energy.targets, [-y for _, y in GOOD.values()])


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file or directory"),
        (b"", "file is empty"),
        (b"\xff\xfe\x00garbage\x00" * 50, "not a readable text CSV"),
        (b"material_id,cif,band_gap\n", "no usable rows"),
        (b"a,b\n1,2\n", "no structure column found"),
    ],
)
def test_unusable_inputs_are_one_line_bad_input_errors(tmp_path, ctx, content, message):
    p = tmp_path / "in.csv"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(BadInputError, match=message) as err:
        U.load_user_dataset(p, ctx, target="band_gap", quiet=True)
    assert "\n" not in str(err.value)


def test_all_rows_bad_is_an_error_not_an_empty_dataset(tmp_path, reported):
    ctx, err = reported
    p = tmp_path / "allbad.csv"
    p.write_text(f"id,cif,y\na,{GOOD['m0'][0].to(fmt='poscar').splitlines()[0]},1\nb,,2\n")
    with pytest.raises(BadInputError, match=r"no usable rows \(2 of 2 bad\)"):
        U.load_user_dataset(p, ctx, target="y")
    assert any("line 3 (id 'b'): missing structure" in line for line in err)


def test_unknown_target_column_names_close_matches(tmp_path, ctx):
    p = tmp_path / "mydata.csv"
    write_broken_csv(p)
    with pytest.raises(BadInputError, match=r"no target column 'bandgap'; did you mean 'band_gap'\?"):
        U.load_user_dataset(p, ctx, target="bandgap")


def test_unsupported_format(tmp_path, ctx):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1")
    with pytest.raises(BadInputError, match="unsupported data format"):
        U.load_user_dataset(p, ctx, target="y")


def test_classification_and_composition_only(tmp_path, ctx):
    p = tmp_path / "c.csv"
    p.write_text("formula,is_metal\nFe,True\nNaCl,False\nCu,True\nXx2,True\n")
    data = U.load_user_dataset(p, ctx, target="is_metal", task_type="classification", quiet=True)
    assert data.structures is None and [c.reduced_formula for c in data.compositions] == ["Fe", "NaCl", "Cu"]
    assert data.classes == ("False", "True") and data.targets.tolist() == [1, 0, 1]
    assert data.meta["skipped"][0]["kind"] == "malformed composition"


def test_user_task_with_split_column_uses_file_protocol(tmp_path, ctx):
    p = tmp_path / "s.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", "y", "split"])
        for i, (k, (s, y)) in enumerate(GOOD.items()):
            w.writerow([k, s.to(fmt="cif"), y, ["train", "train", "val", "test", "Train"][i]])
    spec = U.user_task(p, target="y", split_column="split", unit="eV")
    assert spec.protocol == "file" and spec.name == "user-s" and spec.unit == "eV"
    split = spec.split_ids(ctx)
    assert split.train == ("m0", "m1", "m4") and split.val == ("m2",) and split.test == ("m3",)
    assert [Path(f) for f in spec.files(ctx)] == [p]
    with pytest.raises(BadInputError, match="pass --target"):
        U.user_task(p, target=None)


TOML = """
name = "my_gap"
path = "data/mydata.csv"
target = "band_gap"
unit = "eV"
type = "regression"
extensive = false
fractions = [0.8, 0.1, 0.1]
description = "band gaps from my lab"
license = "CC BY 4.0"

[split]
train = "data/train.txt"
test = "data/test.txt"
"""


def test_toml_task_files_register_tasks(tmp_path, monkeypatch, reported):
    ctx, err = reported
    tasks = tmp_path / "tasks"
    (tasks / "data").mkdir(parents=True)
    write_broken_csv(tasks / "data" / "mydata.csv")
    (tasks / "data" / "train.txt").write_text("m0\nm1\nm2\nnot-there\n")
    (tasks / "data" / "test.txt").write_text("# held out\nm3\nm4\n")
    (tasks / "mine.toml").write_text(TOML)
    (tasks / "broken.toml").write_text('name = "x"\npath = "a.csv"\ntagret = "y"\n')
    (tasks / "multi.toml").write_text(
        '[[task]]\nname = "a1"\npath = "data/mydata.csv"\ntarget = "band_gap"\n'
        '[[task]]\nname = "a2"\npath = "{data_dir}/elsewhere.csv"\ntarget = "y"\nprotocol = "matbench"\n'
    )
    monkeypatch.setenv(U.TASKS_ENV, str(tasks))
    specs = {s.name: s for s in U.bench_tasks(ctx)}
    skipped = r"warning: task file skipped: .*broken\.toml: unknown key 'tagret' \(did you mean 'target'\?\)"
    assert any(re.search(skipped, line) for line in err)
    assert set(specs) == {"my_gap", "a1", "a2"}
    spec = specs["my_gap"]
    assert spec.protocol == "file" and spec.fractions == (0.8, 0.1, 0.1) and spec.license == "CC BY 4.0"
    assert spec.available(ctx) and len(spec.load(ctx)) == 5
    split = spec.split_ids(ctx)
    assert split.train == ("m0", "m1", "m2") and split.test == ("m3", "m4") and split.val == ()
    assert any(line.startswith("note: ") and "1 train ids" in line for line in err)
    # {data_dir} paths follow the data directory the runner passes
    assert specs["a2"].protocol == "matbench" and not specs["a2"].available(ctx)
    (tmp_path / "elsewhere.csv").write_text((tasks / "data" / "mydata.csv").read_text().replace("band_gap", "y"))
    assert specs["a2"].available(ctx) and len(specs["a2"].load(ctx)) == 5
    elsewhere = tmp_path / "other-data"
    elsewhere.mkdir()
    assert not specs["a2"].available(ctx.with_(data_dir=elsewhere))

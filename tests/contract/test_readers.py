"""Parsing primitives: structure formats, bad-structure detection, bad-row reporting, cache keys."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from helpers import recording_reporter
from pymatgen.core import Lattice, Structure

from crystalbench.contract.dataset import structure_key
from crystalbench.contract.errors import BadInputError
from crystalbench.tasks import readers as R


def nacl(a: float = 5.64) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


# --- structures in every supported representation -------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.to(fmt="cif"),
        lambda s: s.to(fmt="poscar"),
        lambda s: json.dumps(s.as_dict()),
        lambda s: repr(s.as_dict()),  # Python repr, read with ast.literal_eval / JSON fast path
        lambda s: s.as_dict(),
        lambda s: s.to(fmt="cif").replace("\n", "\\n"),  # CIF exported with escaped newlines
        lambda s: {"structure": s.as_dict(), "energy": -1.0},  # ComputedStructureEntry-like
    ],
    ids=["cif", "poscar", "json", "repr", "dict", "escaped-cif", "entry"],
)
def test_parse_structure_formats_round_trip(encode):
    s = nacl()
    got = R.parse_structure(encode(s))
    assert got.composition.reduced_formula == "NaCl"
    assert len(got) == 2
    assert got.lattice.volume == pytest.approx(s.lattice.volume, rel=1e-5)


def test_parse_structure_from_ase_atoms_and_files(tmp_path):
    from pymatgen.io.ase import AseAtomsAdaptor

    s = nacl()
    got = R.parse_structure(AseAtomsAdaptor.get_atoms(s))
    assert got.composition.reduced_formula == "NaCl"
    (tmp_path / "x.cif").write_text(s.to(fmt="cif"))
    (tmp_path / "POSCAR-x").write_text(s.to(fmt="poscar"))
    (tmp_path / "x.json").write_text(json.dumps(s.as_dict()))
    for name in ("x.cif", "POSCAR-x", "x.json"):
        assert len(R.parse_structure_file(tmp_path / name)) == 2


def test_parse_structure_non_periodic_atoms_is_a_row_error():
    from ase import Atoms

    with pytest.raises(R.RowError, match="no periodic 3-D cell"):
        R.parse_structure(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "missing structure"),
        (None, "missing structure"),
        ("data_x\n_cell_length_a 4\nloop_\n_atom_site_label\nfoo bar\n", "no atoms"),
        ("data_x\n_cell_length_a 4\nloop_\n_atom_site_label\n_atom_site_fract_x\nNa1 0 0 0\n", "malformed CIF"),
        ("{'lattice': [1, 2", "not a JSON or Python literal"),
        ("{'@class': 'Molecule', 'sites': []}", "Molecule"),
        ("hello world", "unrecognised structure text"),
        ("line1\nline2\nnot a poscar", "malformed POSCAR"),
        (3.5, "cannot read a structure from a float"),
    ],
)
def test_parse_structure_errors_are_one_line_row_errors(value, message):
    with pytest.raises(R.RowError, match=message) as err:
        R.parse_structure(value)
    assert "\n" not in str(err.value)


def test_parse_literal_never_evaluates_code():
    with pytest.raises(R.RowError):
        R.parse_literal("__import__('os').system('echo hacked')")
    with pytest.raises(R.RowError):
        R.parse_literal("{'a': open('/etc/passwd').read()}")
    # Python-2 style u'' strings and tuples still parse (literal_eval fallback)
    assert R.parse_literal("{u'a': (1, 2), 'b': None, 'c': True}") == {"a": (1, 2), "b": None, "c": True}
    # the JSON fast path keeps strings that contain token-like words intact
    assert R.parse_literal("{'label': 'None', 'x': [None, nan, -inf]}")["label"] == "None"


def test_structure_problem_flags_each_bad_kind():
    assert R.structure_problem(nacl()) is None
    empty = Structure(Lattice.cubic(4), [], [])
    assert R.structure_problem(empty).kind == "no atoms"
    disordered = Structure(Lattice.cubic(4), [{"Fe": 0.5, "Co": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert R.structure_problem(disordered).kind == "disordered structure"
    vacancy = Structure(Lattice.cubic(4), [{"Fe": 0.8}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert "partially occupied" in str(R.structure_problem(vacancy))
    dummy = Structure(Lattice.cubic(4), ["X", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert R.structure_problem(dummy).kind == "unknown element"
    overlap = Structure(Lattice.cubic(4), ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]])
    problem = R.structure_problem(overlap)
    assert problem.kind == "overlapping atoms" and "0.040 A apart" in str(problem)


def test_parse_float_rejects_missing_nan_inf_text():
    assert R.parse_float(" 1.5 ") == 1.5
    assert R.parse_float(np.array([2.0])) == 2.0
    for bad, msg in [("", "missing"), (None, "missing"), ("nan", "NaN"), ("inf", "infinite"), ("abc", "not a number"),
                     (np.zeros(9), "holds 9 values")]:
        with pytest.raises(R.RowError, match=msg):
            R.parse_float(bad)


def test_parse_composition_accepts_formula_and_dict():
    assert R.parse_composition("Fe2O3").reduced_formula == "Fe2O3"
    assert R.parse_composition("{'As': 1.0}").reduced_formula == "As"
    with pytest.raises(R.RowError):
        R.parse_composition("Xx9Qq")


# --- bad-row log -------------------------------------------------------------------------------


def test_rowlog_caps_lines_and_counts():
    log = R.RowLog("f.csv")
    for i in range(R.MAX_SHOWN + 5):
        log.bad(f"line {i + 2}", f"id{i}", "target is NaN", "missing/invalid target")
    reporter, err = recording_reporter()
    log.report(100, reporter)
    assert reporter.warnings == len(err)
    assert len(err) == R.MAX_SHOWN + 2
    assert err[0] == "warning: f.csv line 2 (id 'id0'): target is NaN"
    assert "5 more bad rows not shown" in err[-2]
    assert "skipped 25 of 100 rows (25 missing/invalid target)" in err[-1]


def test_rowlog_strict_raises_naming_the_row():
    log = R.RowLog("f.csv", strict=True)
    with pytest.raises(BadInputError, match=r"f\.csv line 7 \(id 'x'\): malformed CIF: boom \(strict"):
        log.bad("line 7", "x", "malformed CIF: boom")


# --- files -------------------------------------------------------------------------------------


def test_iter_csv_skips_comments_and_reports_start_lines(tmp_path):
    p = tmp_path / "t.csv.gz"
    text = '# ref: somebody 2017\nid,cif,y\na,"multi\nline\ncell",1\nb,x\nc,"z",3\n'
    with gzip.open(p, "wt") as fh:
        fh.write(text)
    out = list(R.iter_csv(p))
    assert out[0][2] == {} and out[0][1] == ["id", "cif", "y"]
    assert out[1][0] == 3 and out[1][2]["cif"] == "multi\nline\ncell"
    assert out[2][0] == 6 and out[2][2] == "expected 3 fields, found 2"
    assert out[3][0] == 7 and out[3][2]["y"] == "3"


def test_iter_csv_binary_file_is_bad_input(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BadInputError, match="not a readable text CSV"):
        list(R.iter_csv(p))


def test_read_json_table_layouts(tmp_path):
    recs = [{"id": "a", "y": 1}, {"id": "b", "y": 2}]
    (tmp_path / "r.json").write_text(json.dumps(recs))
    (tmp_path / "s.json").write_text(json.dumps({"index": [5, 6], "columns": ["id", "y"], "data": [["a", 1], ["b", 2]]}))
    (tmp_path / "c.json").write_text(json.dumps({"id": {"k1": "a", "k2": "b"}, "y": {"k1": 1, "k2": 2}}))
    assert R.read_json_table(tmp_path / "r.json") == ("records", [("record 1", None, recs[0]), ("record 2", None, recs[1])])
    layout, rows = R.read_json_table(tmp_path / "s.json")
    assert layout == "split" and rows[1] == ("row 2", 6, {"id": "b", "y": 2})
    layout, rows = R.read_json_table(tmp_path / "c.json")
    assert layout == "columns" and rows[0] == ("entry 'k1'", "k1", {"id": "a", "y": 1})
    (tmp_path / "bad.json").write_text('{"x": 1')
    with pytest.raises(BadInputError, match="not valid JSON"):
        R.read_json_table(tmp_path / "bad.json")
    (tmp_path / "odd.json").write_text('{"x": 1}')
    with pytest.raises(BadInputError, match="unrecognised JSON layout"):
        R.read_json_table(tmp_path / "odd.json")


# --- cache records and keys ---------------------------------------------------------------------


def test_structure_record_round_trip_keeps_hash_and_magmom():
    s = Structure(Lattice.from_parameters(3.1, 4.2, 5.3, 80, 95, 111), ["Fe", "O", "O"],
                  np.random.default_rng(0).random((3, 3)), site_properties={"magmom": [2.5, 0.0, -0.1]})
    rec = json.loads(json.dumps(R.structure_to_record(s)))
    back = R.structure_from_record(rec)
    assert structure_key(back) == structure_key(s)
    assert back.site_properties["magmom"] == [2.5, 0.0, -0.1]


def test_cache_key_depends_on_content_and_options_not_on_the_name(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    k1 = R.files_digest([f], "opt")
    assert R.files_digest([f], "opt") == k1
    assert R.files_digest([f], "other-option") != k1
    f.write_text("a,b\n1,3\n")
    assert R.files_digest([f], "opt") != k1


def test_read_table_gives_rows_with_positions_for_every_format(tmp_path):
    reporter, _ = recording_reporter()
    (tmp_path / "t.csv").write_text("id,y\na,1\nb\n")
    t = R.read_table(tmp_path / "t.csv", reporter)
    assert (t.fmt, t.columns) == ("csv", ["id", "y"])
    assert t.rows == [("line 2", None, {"id": "a", "y": "1"}), ("line 3", None, "expected 2 fields, found 1")]
    (tmp_path / "r.json").write_text(json.dumps([{"id": "a"}, 3]))
    t = R.read_table(tmp_path / "r.json", reporter)
    assert t.fmt == "json-records" and t.rows[1] == ("record 2", None, "malformed record (int)")
    with pytest.raises(BadInputError, match="unsupported data format"):
        R.read_table(tmp_path / "x.parquet", reporter)

"""Case 7 of #11: garbage predictions and targets that cannot be learned.

* NaN regression predictions are a failed record naming NaN.
* Classification predictions that are NaN, fractional or no class index are
  a failed record each (never cast to an int and scored); the grid goes on.
* A classification task whose training set has a single class is an error
  before any training (exit 2).
* `--classification` on a continuous `--target` of a `--data` file is one
  error line.
"""

from __future__ import annotations

import json

from crystalbench.contract.record import ResultRecord


def test_nan_regression_predictions_are_a_failed_record(bench, tmp_path):
    root = tmp_path / "r"
    p = bench("run", "-m", "sleepy", "-t", "toy_cubic", "--json", "--results-dir", root, CBTEST_NAN_PRED="1",
              check=1)
    [rec] = bench.records(p)
    assert rec["status"] == "failed" and "NaN" in rec["error"] and rec["metrics"] == {}
    [f] = bench.result_files(root)
    stored = ResultRecord.read(f).validate()
    assert stored.status == "failed" and "NaN" in stored.error and stored.predictions is None


def test_garbage_class_predictions_are_failed_records(bench, tmp_path):
    root = tmp_path / "r"
    p = bench("run", "-m", "classy", "-t", "toy_class", *bench.seeds(4), "--json", "--results-dir", root,
              CBTEST_CLASS_PRED="nan,frac,range,ok", check=1)
    by_seed = {r["seed"]: r for r in bench.records(p)}
    assert {s: r["status"] for s, r in by_seed.items()} == {0: "failed", 1: "failed", 2: "failed", 3: "ok"}, p.stdout
    assert "NaN" in by_seed[0]["error"] or "not class indices" in by_seed[0]["error"]
    assert "fractional" in by_seed[1]["error"] or "not class indices" in by_seed[1]["error"]
    assert "class index" in by_seed[2]["error"] and "7" in by_seed[2]["error"], by_seed[2]["error"]
    assert set(by_seed[3]["metrics"]) == {"accuracy", "f1_macro"}
    for seed in (0, 1, 2):
        assert by_seed[seed]["metrics"] == {}, by_seed[seed]  # no score from predictions that are no classes
    for f in bench.result_files(root):
        rec = ResultRecord.read(f).validate()
        assert rec.ok == (rec.seed == 3)


def test_single_class_task_is_an_error_before_training(bench, tmp_path):
    marker = tmp_path / "fit-called"
    p = bench("run", "-m", "classy", "-t", "toy_oneclass", "--json", "--results-dir", tmp_path / "r",
              CBTEST_FIT_MARKER=str(marker))
    bench.one_error(p, "toy_oneclass", "single class")
    assert not marker.exists(), "the model was trained on a single-class task"
    assert bench.records(p) == [] and bench.result_files(tmp_path / "r") == []


def _structure_dict(a: float, pair=("Cs", "Cl")) -> dict:
    """A pymatgen Structure dict of a CsCl-type cell, written by hand (no pymatgen import needed)."""
    return {
        "@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0, "properties": {},
        "lattice": {"matrix": [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], "pbc": [True, True, True]},
        "sites": [
            {"species": [{"element": pair[0], "occu": 1}], "abc": [0.0, 0.0, 0.0], "properties": {}, "label": pair[0]},
            {"species": [{"element": pair[1], "occu": 1}], "abc": [0.5, 0.5, 0.5], "properties": {}, "label": pair[1]},
        ],
    }


def write_structure_csv(path, n: int = 30, extra_rows=()) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", "y"])
        for i in range(n):
            a = 3.0 + 3.0 * i / n
            w.writerow([f"s{i}", json.dumps(_structure_dict(a)), repr(a**3 / 2 + 0.001 * i)])
        for row in extra_rows:
            w.writerow(row)


def test_classification_flag_on_a_continuous_target_is_one_error(bench, tmp_path):
    data = tmp_path / "cont.csv"
    write_structure_csv(data)
    p = bench("run", "-m", "dummy", "--data", data, "--target", "y", "--classification", "--results-dir",
              tmp_path / "r", "--json")
    bench.one_error(p, "'y'", "continuous")
    assert bench.records(p) == []

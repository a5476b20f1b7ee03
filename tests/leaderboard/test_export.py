"""`bench export matbench`: a real 5-fold Matbench run, written and read back with matbench's own loader."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from helpers import bench_invoke


@pytest.fixture(scope="module")
def mb_results(tmp_path_factory) -> Path:
    """dummy on all 5 official folds of matbench_phonons (the smallest shipped Matbench task, ~8 s)."""
    from crystalbench.cli.main import make_context
    from crystalbench.tasks.matbench import local_file

    if local_file("matbench_phonons", make_context()) is None:
        pytest.skip("matbench_phonons data not available")
    root = tmp_path_factory.mktemp("mbres")
    code, out = bench_invoke("run", "-m", "dummy", "-t", "matbench_phonons", "--protocol", "matbench",
                      "--results-dir", str(root), "--no-progress")
    assert code == 0, out
    return root


def _records(root: Path) -> dict[int, dict]:
    out = {}
    for p in root.rglob("*.json"):
        d = json.loads(p.read_text())
        out[d["job"]["fold"]] = d
    return out


def test_export_round_trips_through_matbench_loader_with_equal_scores(mb_results, tmp_path):
    matbench_bench = pytest.importorskip("matbench.bench")
    from matbench.data_ops import score_array

    out = tmp_path / "results.json"
    code, msg = bench_invoke("export", "matbench", "--results-dir", str(mb_results), "-m", "dummy", "-o", str(out))
    assert code == 0, msg
    mb = matbench_bench.MatbenchBenchmark.from_file(str(out))
    assert mb.is_valid  # every official test id in its fold, no extras, types, all folds, hash
    task = mb.tasks_map["matbench_phonons"]
    ours = _records(mb_results)
    assert sorted(ours) == [0, 1, 2, 3, 4]
    for k in range(5):
        fold = task.results[f"fold_{k}"]
        rec = ours[k]
        assert fold["scores"]["mae"] == pytest.approx(rec["metrics"]["mae"], rel=0, abs=1e-9)
        assert fold["scores"]["rmse"] == pytest.approx(rec["metrics"]["rmse"], rel=0, abs=1e-9)
        # our copy of Matbench's score set equals matbench's own scoring of the same predictions
        truth = dict(zip(rec["predictions"]["ids"], rec["predictions"]["y_true"]))
        ids = list(fold["data"])
        theirs = score_array([truth[i] for i in ids], [fold["data"][i] for i in ids], "regression")
        for key, value in theirs.items():
            assert fold["scores"][key] == pytest.approx(value, rel=1e-12, abs=1e-9), key
        # keyed by Matbench ids, in the fold's test order, and exactly the official fold
        assert ids == [str(i) for i in rec["predictions"]["ids"]]
        assert set(ids) == set(task.validation[f"fold_{k}"].test)


def test_gzip_export_loads_with_matbench_from_dict(mb_results, tmp_path):
    matbench_bench = pytest.importorskip("matbench.bench")
    out = tmp_path / "results.json.gz"
    code, msg = bench_invoke("export", "matbench", "--results-dir", str(mb_results), "-m", "dummy",
                      "-t", "matbench_phonons", "-o", str(out))
    assert code == 0, msg
    doc = json.loads(gzip.decompress(out.read_bytes()))
    assert doc["user_metadata"]["algorithm"] == "dummy"
    assert matbench_bench.MatbenchBenchmark.from_dict(doc).is_valid


def test_tampered_export_fails_matbench_hash(mb_results, tmp_path):
    matbench_bench = pytest.importorskip("matbench.bench")
    out = tmp_path / "results.json"
    assert bench_invoke("export", "matbench", "--results-dir", str(mb_results), "-m", "dummy", "-o", str(out))[0] == 0
    doc = json.loads(out.read_text())
    first = next(iter(doc["tasks"]["matbench_phonons"]["results"]["fold_0"]["data"]))
    doc["tasks"]["matbench_phonons"]["results"]["fold_0"]["data"][first] += 1.0
    with pytest.raises(ValueError, match="Hash"):
        matbench_bench.MatbenchBenchmark.from_dict(doc)


def test_incomplete_or_wrong_protocol_is_a_clear_error(mb_results, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(mb_results, partial)
    victim = next(p for p in partial.rglob("*.json") if "fold3" in p.name)
    victim.unlink()
    code, msg = bench_invoke("export", "matbench", "--results-dir", str(partial), "-m", "dummy", "-o", str(tmp_path / "x.json"))
    assert code == 2 and "error:" in msg and "folds [3] were not run" in msg, msg
    assert not (tmp_path / "x.json").exists()

    code, msg = bench_invoke("export", "matbench", "--results-dir", str(mb_results), "-m", "rf", "-o", str(tmp_path / "x.json"))
    assert code == 2 and "no records of model 'rf'" in msg, msg

    code, msg = bench_invoke("export", "matbench", "--results-dir", str(mb_results), "-m", "dummy", "-t", "phonon_cv",
                      "-o", str(tmp_path / "x.json"))
    assert code == 2 and "not a Matbench v0.1 task" in msg, msg


def test_paper_protocol_records_are_refused(tmp_path):
    from crystalbench.contract.errors import BadInputError
    from crystalbench.contract.job import Job
    from crystalbench.contract.record import ResultRecord
    from crystalbench.leaderboard.matbench_export import select_tasks

    recs = [ResultRecord(job=Job(model="dummy", task="matbench_steels", protocol="paper", fold=0, seed=0),
                         status="ok")]
    with pytest.raises(BadInputError, match="--protocol paper.*only `--protocol matbench`"):
        select_tasks(recs, "dummy", (), None, matbench_tasks=["matbench_steels"])

"""Runner: results records, resume, failures, interruption, provenance, determinism."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
from cbtest_plugins import toolkit  # noqa: E402

from crystalbench.harness.registry import load_registry  # noqa: E402
from crystalbench.harness.results import ResultStore  # noqa: E402
from crystalbench.harness.runner import RunOptions, run_grid  # noqa: E402


@pytest.fixture
def reg():
    return load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])


def _opts(tmp_path, **kw):
    base = dict(models=["dummy"], tasks=["toy_cubic"], results_dir=tmp_path / "results", data_dir=tmp_path,
                cache_dir=tmp_path / "cache", progress=False)
    base.update(kw)
    return RunOptions(**base)


def _files(root):
    return sorted(p for p in Path(root).rglob("*.json"))


def test_record_contents_and_resume(reg, tmp_path):
    opts = _opts(tmp_path, models=["dummy", "rf"], descriptors=None, seeds=[0, 1],
                 config={"rf": {"n_estimators": 50}})
    opts.models = ["dummy"]
    s1 = run_grid(reg, opts)
    assert s1.ok and len(s1.finished) == 2
    rec = json.loads(_files(opts.results_dir)[0].read_text())
    for key in ("model", "task", "protocol", "fold", "seed", "status", "metrics", "predictions", "timings",
                "hparams", "provenance"):
        assert key in rec
    prov = rec["provenance"]
    assert prov["crystalbench_version"] and prov["dataset"]["content_hash"] and prov["split"]["n_test"] == 12
    assert set(rec["metrics"]) == {"mae", "rmse", "mad", "mae_over_mad", "r2", "spearman"}
    assert len(rec["predictions"]["ids"]) == 12
    # second run: nothing new
    before = {p: p.stat().st_mtime_ns for p in _files(opts.results_dir)}
    s2 = run_grid(reg, opts)
    assert s2.finished == [] and s2.skipped == 2
    assert {p: p.stat().st_mtime_ns for p in _files(opts.results_dir)} == before
    # --rerun runs again, same files (no duplicates)
    s3 = run_grid(reg, _opts(tmp_path, seeds=[0, 1], rerun=True))
    assert len(s3.finished) == 2 and len(_files(opts.results_dir)) == 2


def test_rf_with_descriptors_beats_dummy_and_drops_target_column(reg, tmp_path):
    opts = _opts(tmp_path, models=["dummy", "rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 50}})
    opts_dummy = _opts(tmp_path, models=["dummy"])
    run_grid(reg, opts_dummy)
    summary = run_grid(reg, _opts(tmp_path, models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 50}}))
    rf = summary.finished[0]
    assert rf["status"] == "ok", rf.get("error")
    assert rf["dropped_features"] == ["vpa"]
    dummy = [r for r in ResultStore(opts.results_dir).records() if r["model"] == "dummy"][0]
    assert rf["metrics"]["mae_over_mad"] < 0.5 * dummy["metrics"]["mae_over_mad"]
    assert rf["hparams"]["n_estimators"] == 50


def test_failed_job_is_recorded_grid_goes_on_and_is_retried(reg, tmp_path, monkeypatch):
    monkeypatch.setenv("CBTEST_FAIL_SEED", "1")
    s = run_grid(reg, _opts(tmp_path, models=["sleepy"], seeds=[0, 1, 2]))
    assert s.failed == 1 and len(s.finished) == 3
    failed = [r for r in s.finished if r["status"] == "failed"][0]
    assert failed["seed"] == 1 and "told to fail at seed 1" in failed["error"]
    monkeypatch.delenv("CBTEST_FAIL_SEED")
    s2 = run_grid(reg, _opts(tmp_path, models=["sleepy"], seeds=[0, 1, 2]))
    assert [r["seed"] for r in s2.finished] == [1] and s2.ok


def test_interrupted_grid_keeps_finished_jobs(reg, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = toolkit.Sleepy.fit

    def fit(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    monkeypatch.setattr(toolkit.Sleepy, "fit", fit)
    opts = _opts(tmp_path, models=["sleepy"], seeds=[0, 1, 2, 3])
    with pytest.raises(KeyboardInterrupt):
        run_grid(reg, opts)
    assert len(_files(opts.results_dir)) == 2
    assert not list(Path(opts.results_dir).rglob(".tmp-*"))
    monkeypatch.setattr(toolkit.Sleepy, "fit", original)
    s = run_grid(reg, opts)
    assert sorted(r["seed"] for r in s.finished) == [2, 3] and s.skipped == 2
    assert len(_files(opts.results_dir)) == 4


def test_same_seed_same_metrics(reg, tmp_path):
    a = run_grid(reg, _opts(tmp_path / "a", models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 30}}))
    b = run_grid(reg, _opts(tmp_path / "b", models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 30}}))
    assert a.finished[0]["metrics"] == b.finished[0]["metrics"]


def test_hparam_changes_make_a_new_job(reg, tmp_path):
    run_grid(reg, _opts(tmp_path, models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 10}}))
    s = run_grid(reg, _opts(tmp_path, models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 20}}))
    assert len(s.finished) == 1 and len(_files(tmp_path / "results")) == 2


def test_unknown_config_key_is_a_clear_error(reg, tmp_path):
    from crystalbench.harness.errors import CrystalbenchError

    with pytest.raises(CrystalbenchError, match="unknown hyperparameter.*n_estimatorz"):
        run_grid(reg, _opts(tmp_path, models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimatorz": 1}}))


def test_observer_is_called_and_its_failure_is_contained(reg, tmp_path, monkeypatch):
    log = tmp_path / "observer.log"
    monkeypatch.setenv("CBTEST_OBSERVER_LOG", str(log))
    monkeypatch.setenv("CBTEST_OBSERVER_RAISE", "1")
    s = run_grid(reg, _opts(tmp_path, seeds=[0, 1]))
    assert s.ok and len(_files(tmp_path / "results")) == 2
    assert [json.loads(l)["model"] for l in log.read_text().splitlines()] == ["dummy", "dummy"]


def test_pooling_defaults_follow_task_and_spec(reg):
    from crystalbench.harness.specs import TaskSpec

    extensive = TaskSpec(name="ext", load=lambda d: None, target="U", extensive=True)
    intensive = TaskSpec(name="int", load=lambda d: None, target="gap")
    opts = RunOptions(models=[], tasks=[], results_dir=Path("."), data_dir=Path("."))
    from crystalbench.harness.runner import resolve_hparams

    assert resolve_hparams(reg.model("cgcnn"), extensive, opts)["pooling"] == "sum"
    assert resolve_hparams(reg.model("cgcnn"), intensive, opts)["pooling"] == "mean"
    assert resolve_hparams(reg.model("de-cgcnn"), extensive, opts)["pooling"] == "mean"
    opts.pooling = "sum"
    assert resolve_hparams(reg.model("de-cgcnn"), extensive, opts)["pooling"] == "sum"
    assert "pooling" not in resolve_hparams(reg.model("rf"), extensive, opts)


def test_subsets_reuse_structure_keys():
    d = toolkit.toy_dataset(10)
    keys = d.structure_keys
    sub = d.with_features(("x",), [[1.0]] * 10).subset([3, 1])
    assert "structure_keys" in sub.__dict__ and sub.structure_keys == (keys[3], keys[1])
    assert sub.structure_keys == type(d)(ids=sub.ids, targets=sub.targets, structures=sub.structures).structure_keys

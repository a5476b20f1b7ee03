"""Runner: records, resume, failures, interruption, provenance, determinism, job identity."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from cbtest_plugins import toolkit  # noqa: E402
from helpers import PLUGINS_DIR

from crystalbench.contract.context import RunContext  # noqa: E402
from crystalbench.contract.errors import BadInputError, CrystalbenchError  # noqa: E402
from crystalbench.contract.record import ResultRecord  # noqa: E402
from crystalbench.runtime.registry import load_registry  # noqa: E402
from crystalbench.runtime.results import ResultStore  # noqa: E402
from crystalbench.runtime.runner import GridRequest, resolve_job_params, run_grid  # noqa: E402

pytestmark = pytest.mark.registry(("cbtest_toolkit", toolkit))


def _ctx(tmp_path, **kw):
    base = dict(results_dir=tmp_path / "results", data_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    base.update(kw)
    return RunContext(**base)


def _req(**kw):
    base = dict(models=["dummy"], tasks=["toy_cubic"])
    base.update(kw)
    return GridRequest(**base)


def _files(root):
    return sorted(p for p in Path(root).rglob("*.json") if not any(x.startswith(".") for x in p.relative_to(root).parts))


def test_record_contents_and_resume(reg, tmp_path):
    ctx = _ctx(tmp_path)
    s1 = run_grid(reg, ctx, _req(seeds=[0, 1]))
    assert s1.ok and len(s1.finished) == 2
    rec = ResultRecord.read(_files(ctx.results_dir)[0]).validate()
    assert rec.model == "dummy" and rec.task == "toy_cubic" and rec.job.target == "volume per atom"
    prov = rec.provenance
    assert prov["crystalbench_version"] and prov["dataset"]["content_hash"] and prov["split"]["n_test"] == 12
    assert set(rec.metrics) == {"mae", "rmse", "mad", "mae_over_mad", "r2", "spearman"}
    assert len(rec.predictions["ids"]) == 12
    assert rec.runtime["device"] == "cpu" and "torch_threads" in rec.runtime
    assert rec.job.data.startswith("content:")  # toy task declares no files: identity from its content
    # second run: nothing new
    before = {p: p.stat().st_mtime_ns for p in _files(ctx.results_dir)}
    s2 = run_grid(reg, ctx, _req(seeds=[0, 1]))
    assert s2.finished == [] and s2.skipped == 2
    assert {p: p.stat().st_mtime_ns for p in _files(ctx.results_dir)} == before
    # --rerun runs again, same files (no duplicates)
    s3 = run_grid(reg, ctx, _req(seeds=[0, 1], rerun=True))
    assert len(s3.finished) == 2 and len(_files(ctx.results_dir)) == 2


def test_rf_with_descriptors_beats_dummy_and_drops_target_column(reg, tmp_path):
    ctx = _ctx(tmp_path)
    run_grid(reg, ctx, _req())
    summary = run_grid(reg, ctx, _req(models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 50}}))
    rf = summary.finished[0]
    assert rf.ok, rf.error
    assert rf.fit_info["withheld_features"] == ["vpa"]
    dummy = [r for r in ResultStore(ctx.results_dir).records() if r.model == "dummy"][0]
    assert rf.metrics["mae_over_mad"] < 0.5 * dummy.metrics["mae_over_mad"]
    assert rf.job.params["n_estimators"] == 50


def test_failed_job_is_recorded_grid_goes_on_and_is_retried(reg, tmp_path, monkeypatch):
    monkeypatch.setenv("CBTEST_FAIL_SEED", "1")
    ctx = _ctx(tmp_path)
    s = run_grid(reg, ctx, _req(models=["sleepy"], seeds=[0, 1, 2]))
    assert s.failed == 1 and len(s.finished) == 3
    failed = [r for r in s.finished if not r.ok][0]
    assert failed.seed == 1 and "told to fail at seed 1" in failed.error
    monkeypatch.delenv("CBTEST_FAIL_SEED")
    s2 = run_grid(reg, ctx, _req(models=["sleepy"], seeds=[0, 1, 2]))
    assert [r.seed for r in s2.finished] == [1] and s2.ok


def test_interrupted_grid_keeps_finished_jobs(reg, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = toolkit.Sleepy.fit

    def fit(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    monkeypatch.setattr(toolkit.Sleepy, "fit", fit)
    ctx = _ctx(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_grid(reg, ctx, _req(models=["sleepy"], seeds=[0, 1, 2, 3]))
    assert len(_files(ctx.results_dir)) == 2
    assert not list(Path(ctx.results_dir).rglob(".tmp-*"))
    assert not list((ctx.results_dir / ".locks").glob("*.lock"))  # the interrupted job's claim was released
    monkeypatch.setattr(toolkit.Sleepy, "fit", original)
    s = run_grid(reg, ctx, _req(models=["sleepy"], seeds=[0, 1, 2, 3]))
    assert sorted(r.seed for r in s.finished) == [2, 3] and s.skipped == 2
    assert len(_files(ctx.results_dir)) == 4


def test_same_seed_same_metrics(reg, tmp_path):
    req = dict(models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 30}})
    a = run_grid(reg, _ctx(tmp_path / "a"), _req(**req))
    b = run_grid(reg, _ctx(tmp_path / "b"), _req(**req))
    assert a.finished[0].metrics == b.finished[0].metrics
    assert a.finished[0].job_id == b.finished[0].job_id


def test_hparam_changes_make_a_new_job(reg, tmp_path):
    ctx = _ctx(tmp_path)
    run_grid(reg, ctx, _req(models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 10}}))
    s = run_grid(reg, ctx, _req(models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": 20}}))
    assert len(s.finished) == 1 and len(_files(ctx.results_dir)) == 2


def test_config_errors_are_clear(reg, tmp_path):
    ctx = _ctx(tmp_path)
    with pytest.raises(CrystalbenchError, match="unknown hyperparameter.*n_estimatorz"):
        run_grid(reg, ctx, _req(models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimatorz": 1}}))
    with pytest.raises(BadInputError, match="top-level key 'epoch'.*did you mean 'epochs'"):
        run_grid(reg, ctx, _req(config={"epoch": 5}))
    with pytest.raises(BadInputError, match=r"\[cgcn\] is not a model.*'cgcnn'"):
        run_grid(reg, ctx, _req(config={"cgcn": {"lr": 0.1}}))
    with pytest.raises(BadInputError, match="must be an integer"):
        run_grid(reg, ctx, _req(models=["rf"], descriptors="toy_cell", config={"rf": {"n_estimators": "many"}}))
    with pytest.raises(BadInputError, match="--pooling.*rf"):
        run_grid(reg, ctx, _req(models=["rf"], pooling="sum"))
    with pytest.raises(BadInputError, match="--folds 7.*folds 0-0"):
        run_grid(reg, ctx, _req(folds=[7]))
    assert _files(ctx.results_dir) == []


def test_observer_gets_a_copy_and_its_failure_is_contained(reg, tmp_path, monkeypatch):
    log = tmp_path / "observer.log"
    monkeypatch.setenv("CBTEST_OBSERVER_LOG", str(log))
    monkeypatch.setenv("CBTEST_OBSERVER_RAISE", "1")
    monkeypatch.setenv("CBTEST_OBSERVER_MUTATE", "1")
    ctx = _ctx(tmp_path)
    s = run_grid(reg, ctx, _req(seeds=[0, 1]))
    assert s.ok and len(_files(ctx.results_dir)) == 2
    assert all(r.metrics and r.job_id == r.job.id for r in s.finished)  # the mutation hit a copy only
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["dummy", "dummy"]


def test_pooling_defaults_follow_task_and_spec(reg):
    from crystalbench.contract.specs import TaskSpec

    extensive = TaskSpec(name="ext", load=lambda ctx: None, target="U", extensive=True)
    intensive = TaskSpec(name="int", load=lambda ctx: None, target="gap")
    req = GridRequest(models=[], tasks=[])
    assert resolve_job_params(reg.model("cgcnn"), extensive, req)["pooling"] == "sum"
    assert resolve_job_params(reg.model("cgcnn"), intensive, req)["pooling"] == "mean"
    assert resolve_job_params(reg.model("de-cgcnn"), extensive, req)["pooling"] == "mean"
    req.pooling = "sum"
    assert resolve_job_params(reg.model("de-cgcnn"), extensive, req)["pooling"] == "sum"
    assert "pooling" not in resolve_job_params(reg.model("rf"), extensive, GridRequest(models=[], tasks=[]))


def test_subsets_reuse_structure_keys():
    d = toolkit.toy_dataset(10)
    keys = d.structure_keys
    sub = d.with_features(("x",), [[1.0]] * 10).subset([3, 1])
    assert "structure_keys" in sub.__dict__ and sub.structure_keys == (keys[3], keys[1])
    assert sub.structure_keys == type(d)(ids=sub.ids, targets=sub.targets, structures=sub.structures).structure_keys


# ----------------------------------------------------------------------------- job identity (issue #8)
def test_changed_plugin_task_data_is_a_new_job(reg, tmp_path, monkeypatch, caplog):
    """Defect 1: a plugin task whose data changed used to print 'already done' with the old result."""
    ctx = _ctx(tmp_path)
    first = run_grid(reg, ctx, _req()).finished[0]
    monkeypatch.setenv("CBTEST_TOY_N", "50")  # the task now loads different data
    reg2 = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    with caplog.at_level("INFO", logger="crystalbench"):
        second = run_grid(reg2, ctx, _req())
    assert len(second.finished) == 1 and second.skipped == 0
    assert second.finished[0].job.data != first.job.data
    assert second.finished[0].provenance["dataset"]["n"] == 50
    assert "inputs changed" in caplog.text and "data" in caplog.text
    assert len(_files(ctx.results_dir)) == 2  # the old record is kept, not overwritten


def test_device_is_part_of_the_identity(reg, tmp_path):
    """Defect 3: a CUDA run after a CPU run was skipped as done and recorded device cpu."""
    run_grid(reg, _ctx(tmp_path), _req())
    s = run_grid(reg, _ctx(tmp_path, device="cuda"), _req())
    assert len(s.finished) == 1 and s.skipped == 0
    rec = s.finished[0]
    assert rec.job.device == "cuda" and rec.runtime["device"] == "cuda"


def test_first_job_of_a_process_gets_the_thread_cap(tmp_path):
    """Defect 2: torch was not imported yet when threads were set, so job 1 trained with the default."""
    import subprocess

    code = f"""
import sys, json
sys.path.insert(0, {str(PLUGINS_DIR)!r})
from cbtest_plugins import toolkit
from crystalbench.contract.context import RunContext
from crystalbench.runtime.registry import load_registry
from crystalbench.runtime.runner import GridRequest, run_grid
assert 'torch' not in sys.modules
reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
ctx = RunContext(results_dir={str(tmp_path / 'r')!r}, cache_dir={str(tmp_path / 'c')!r}, threads=1)
s = run_grid(reg, ctx, GridRequest(models=["threadcheck"], tasks=["toy_cubic"], seeds=[0, 1]))
print(json.dumps([r.fit_info["threads_in_fit"] for r in s.finished]))
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, 1]


def test_meaningless_runs_are_errors_before_training(reg, tmp_path):
    """Defect 6: descriptors of structures on composition-only data, and a constant target."""
    ctx = _ctx(tmp_path)
    s = run_grid(reg, ctx, _req(models=["rf"], tasks=["toy_comp"], descriptors="toy_cell"))
    assert not s.ok and s.finished == [] and any("compositions only" in e for e in s.errors)
    s = run_grid(reg, ctx, _req(models=["dummy"], tasks=["toy_constant"]))
    assert s.finished == [] and any("constant" in e and "nothing to learn" in e for e in s.errors)
    assert _files(ctx.results_dir) == []


def test_declared_leaking_inputs_are_flagged(reg, tmp_path):
    """Defect 7: a model reading inputs that reveal the target is flagged in its record."""
    s = run_grid(reg, _ctx(tmp_path), _req(models=["leaky", "dummy"]))
    by = {r.model: r for r in s.finished}
    assert any(w.startswith("target leak:") and "volume" in w for w in by["leaky"].warnings)
    assert by["dummy"].warnings == []


def test_every_record_of_a_grid_validates(reg, tmp_path):
    from crystalbench.runtime.validate import validate_results

    ctx = _ctx(tmp_path)
    run_grid(reg, ctx, _req(models=["dummy", "sleepy"], seeds=[0, 1]))
    run_grid(reg, ctx, _req(models=["rf"], descriptors="toy_cell", seeds=[0, 1], config={"rf": {"n_estimators": 10}}))
    report = validate_results(ctx.results_dir, reg, ctx)
    assert report.invalid == [] and report.valid == 6


def test_record_json_schema_matches(reg, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from crystalbench.contract.record import schema

    ctx = _ctx(tmp_path)
    monkey = run_grid(reg, ctx, _req(models=["dummy", "sleepy"]))
    for p in _files(ctx.results_dir):
        jsonschema.validate(json.loads(p.read_text()), schema())
    bad = monkey.finished[0].to_dict()
    bad["status"] = "great"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())
    assert np.isfinite(monkey.finished[0].metrics["mae"])


def _write_csv(path, rows):
    import csv

    from pymatgen.core import Lattice, Structure

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", "y1", "y2"])
        for i, (a, y1, y2) in enumerate(rows):
            s = Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            w.writerow([f"s{i}", json.dumps(s.as_dict()), y1, y2])


@pytest.mark.parametrize("change", ["edit the file", "another target", "another file of the same name"])
def test_user_data_changes_are_new_jobs(reg, tmp_path, change, caplog):
    """Defect 1: --data reruns printed 'already done' with the old result after any of these changes."""
    from crystalbench.tasks.user import user_task

    rows = [(3.0 + 0.1 * i, float(i), float(i % 3)) for i in range(20)]
    data = tmp_path / "mine.csv"
    _write_csv(data, rows)
    ctx = _ctx(tmp_path)

    def run(path, target):
        spec = user_task(path, target=target)
        return run_grid(reg, ctx, _req(tasks=[], extra_tasks={spec.name: spec}))

    first = run(data, "y1")
    assert first.ok and len(first.finished) == 1
    assert run(data, "y1").skipped == 1  # unchanged: resumed
    target = "y1"
    if change == "edit the file":
        _write_csv(data, [(a, y1 + 1.0, y2) for a, y1, y2 in rows])
    elif change == "another target":
        target = "y2"
    else:
        other = tmp_path / "elsewhere"
        other.mkdir()
        _write_csv(other / "mine.csv", [(a, 2 * y1, y2) for a, y1, y2 in rows])
        data = other / "mine.csv"
    with caplog.at_level("INFO", logger="crystalbench"):
        second = run(data, target)
    assert second.skipped == 0 and len(second.finished) == 1, change
    assert second.finished[0].job.id != first.finished[0].job.id
    assert second.finished[0].predictions["y_true"] != first.finished[0].predictions["y_true"]
    assert "inputs changed" in caplog.text

"""Cases 1 and 2 of #11: failing re-runs never replace a good record; result-write failures.

* `--rerun` of a job that now fails keeps the old `ok` record byte for byte and
  stores the failure under `.attempts/`.
* An unwritable results directory, or `--results-dir` naming a file, is one
  `error:` line (exit 2) before anything is computed.
* A write failure *after* computing (disk full) is one `error:` line naming
  the job, and the computed record is saved elsewhere and named.
* A model whose `fit_info` holds non-JSON objects still yields a valid record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crystalbench.contract.record import ResultRecord

SLEEPY = ("run", "-m", "sleepy", "-t", "toy_cubic", "--json", "--no-progress")


@pytest.fixture(scope="module")
def sleepy_results(bench, tmp_path_factory):
    """One ok sleepy record (seed 0), computed once for this module; tests work on copies."""
    root = tmp_path_factory.mktemp("sleepy") / "r"
    p = bench(*SLEEPY, "--results-dir", root, check=0)
    [rec] = bench.records(p)
    assert rec["status"] == "ok"
    return root, rec


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- case 1
def test_rerun_that_now_fails_keeps_the_ok_record_and_stores_the_attempt(bench, sleepy_results, tmp_path):
    src, first = sleepy_results
    root = _copy(src, tmp_path / "r")
    [record_file] = bench.result_files(root)
    before = record_file.read_bytes()

    p = bench(*SLEEPY, "--results-dir", root, "--rerun", CBTEST_FAIL_SEED="0", check=1)
    [rec] = bench.records(p)
    assert rec["status"] == "failed" and "sleepy was told to fail at seed 0" in rec["error"]
    assert rec["job_id"] == first["job_id"]
    assert "Traceback" not in p.stderr

    # the good record is untouched, and still the only record
    assert bench.result_files(root) == [record_file]
    assert record_file.read_bytes() == before
    assert ResultRecord.read(record_file).validate().ok

    # the failure is kept beside it, with its real cause
    [attempt] = sorted((root / ".attempts").glob("*.json"))
    failed = ResultRecord.read(attempt).validate()
    assert failed.status == "failed" and failed.job_id == first["job_id"]
    assert "told to fail at seed 0" in failed.error and "ValueError" in (failed.traceback or "")

    # the job still counts as done: a plain run computes nothing, validation sees one valid record
    again = bench(*SLEEPY, "--results-dir", root, check=0)
    assert bench.records(again) == []
    v = bench("results", "validate", root, "--no-official-splits", check=0)
    assert "1 valid, 0 invalid" in v.stderr


def test_cuda_on_cpu_only_torch_is_a_failed_record_and_the_cpu_result_stays(bench, tmp_path):
    config = tmp_path / "small.toml"
    config.write_text("[cgcnn]\natom_fea_len = 8\nn_conv = 1\nh_fea_len = 16\nbatch_size = 16\nprecise_bn = false\n")
    root = tmp_path / "r"
    args = ("run", "-m", "cgcnn", "-t", "toy_cubic", "--epochs", "1", "--config", config, "--json",
            "--results-dir", root)
    [ok] = bench.records(bench(*args, check=0))
    assert ok["status"] == "ok"
    [cpu_file] = bench.result_files(root)
    before = cpu_file.read_bytes()

    p = bench(*args, "--device", "cuda", "--rerun")
    [rec] = bench.records(p)
    if rec["status"] == "ok":
        pytest.skip("this machine has a CUDA device")
    assert p.returncode == 1, p.stderr
    assert "cuda" in rec["error"].lower() and "Traceback" not in p.stderr
    assert cpu_file.read_bytes() == before  # the CPU job is another job; its record is untouched
    records = {ResultRecord.read(f).validate().job.device: ResultRecord.read(f) for f in bench.result_files(root)}
    assert records["cpu"].ok and records["cuda"].status == "failed"


# ----------------------------------------------------------------------------- case 2
def _unwritable_results_dir(tmp_path: Path) -> tuple[Path, str]:
    """A results dir this process cannot write: chmod 0o500 when that blocks us, else (root) a path under a file."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        (locked / "probe").write_text("x")
    except OSError:
        return locked / "results", "chmod"
    (locked / "probe").unlink()
    locked.chmod(0o700)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return blocker / "results", "parent-is-file"


def test_unwritable_results_dir_is_one_error_before_computing(bench, tmp_path):
    results, how = _unwritable_results_dir(tmp_path)
    try:
        p = bench(*SLEEPY, "--results-dir", results, CBTEST_SLEEP="5")
    finally:
        (tmp_path / "locked").chmod(0o700)
    line = bench.one_error(p, str(results), "not writable")
    assert bench.records(p) == [], f"a job was computed although the results dir is unusable ({how}): {line}"


def test_results_dir_that_is_a_file_is_one_error(bench, tmp_path):
    results = tmp_path / "results.json"
    results.write_text("{}\n")
    p = bench(*SLEEPY, "--results-dir", results, CBTEST_SLEEP="5")
    bench.one_error(p, str(results), "is a file")
    assert results.read_text() == "{}\n" and bench.records(p) == []


DISK_FULL_MAIN = """
import errno, sys
import crystalbench.runtime.results as results

def disk_full(path, data, **kw):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))

results.atomic_write = disk_full  # only the results store's writes fail
from crystalbench.cli import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""


def test_disk_full_after_computing_is_one_error_and_the_record_is_saved_elsewhere(bench, tmp_path):
    root, cache = tmp_path / "r", tmp_path / "cache"
    argv = [sys.executable, "-c", DISK_FULL_MAIN, *SLEEPY, "--results-dir", str(root), "--cache-dir", str(cache)]
    p = subprocess.run(argv, env=bench.env, capture_output=True, text=True, timeout=300)
    line = bench.one_error(p, "no space left on device", "sleepy", str(root))
    assert "saved to " in line, line
    saved = Path(line.split("saved to ", 1)[1].strip())
    assert saved.is_file() and not saved.is_relative_to(root)
    rec = ResultRecord.read(saved).validate()  # the computed result, complete and valid
    [emitted] = bench.records(p)
    assert rec.ok and rec.job_id == emitted["job_id"] and rec.metrics == emitted["metrics"]
    assert bench.result_files(root) == [] and bench.temp_files(root) == []
    assert bench.locks(root) == []


def test_non_json_fit_info_still_gives_a_valid_record(sleepy_results):
    root, first = sleepy_results
    files = [p for p in root.rglob("*.json") if first["job_id"][:12] in p.name]
    [path] = files
    json.loads(path.read_text())  # strict JSON on disk
    rec = ResultRecord.read(path).validate()
    info = rec.fit_info
    assert info["array"] == [0, 1, 2] and info["nan"] is None
    assert isinstance(info["unserializable"], str) and info["unserializable"].startswith("<object object")


def test_prepare_leaves_no_probe_or_temp_file(tmp_path):
    """`ResultStore.prepare` on a usable dir leaves no probe or temp file."""
    from crystalbench.runtime.results import ResultStore

    ResultStore(tmp_path / "r").prepare()
    assert os.listdir(tmp_path / "r") == []


def _in_process_grid(tmp_path):
    from cbtest_plugins import toolkit

    from crystalbench.contract.context import RunContext
    from crystalbench.runtime.registry import load_registry
    from crystalbench.runtime.runner import GridRequest
    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    ctx = RunContext(results_dir=tmp_path / "r", data_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    return reg, ctx, GridRequest(models=["dummy"], tasks=["toy_cubic"], seeds=[0, 1])


def _failing_writes(monkeypatch, n_failures: int) -> list[Path]:
    import errno

    import crystalbench.runtime.results as results

    real, calls = results.atomic_write, []

    def flaky(path, data, **kw):
        calls.append(Path(path))
        if len(calls) <= n_failures:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, **kw)

    monkeypatch.setattr(results, "atomic_write", flaky)
    return calls


def test_disk_full_in_process_keeps_every_computed_record(monkeypatch, tmp_path):
    from crystalbench.runtime.runner import run_grid

    reg, ctx, req = _in_process_grid(tmp_path)
    _failing_writes(monkeypatch, n_failures=10**6)
    summary = run_grid(reg, ctx, req)
    assert len(summary.finished) == 2 and not summary.ok
    assert len(summary.errors) == 2 and all("no space left on device" in e for e in summary.errors)
    assert len(summary.unsaved) == 2
    saved = {ResultRecord.read(Path(p)).validate().job_id for p in summary.unsaved}
    assert saved == {r.job_id for r in summary.finished}
    assert all("\n" not in e for e in summary.errors)


def test_a_transient_write_failure_is_retried(monkeypatch, tmp_path):
    from crystalbench.runtime.runner import run_grid

    reg, ctx, req = _in_process_grid(tmp_path)
    calls = _failing_writes(monkeypatch, n_failures=1)
    summary = run_grid(reg, ctx, req)
    assert summary.ok and summary.unsaved == [] and len(calls) == 3
    from crystalbench.runtime.results import ResultStore

    assert len(list(ResultStore(ctx.results_dir).records())) == 2

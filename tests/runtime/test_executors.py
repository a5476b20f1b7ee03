"""Executors (issue #9): a local worker pool and Ray give the sequential results; failures, retries, kills.

* A grid (dummy, rf, cgcnn --epochs 2 on toy_cubic, 2 seeds) run by the
  sequential executor, by `--workers 2` and by a real local Ray (num_cpus=2)
  gives the same metrics and predictions per job id.
* A job that raises is a failed record; a worker process that is SIGKILLed
  (the `crashy` test model) is retried `--retries` times and then recorded as
  failed with the reason; the other jobs finish; `bench run` exits 1.
* The driver is SIGKILLed mid-grid: its workers die with it, nothing finished is
  lost, and a re-run computes exactly the missing jobs.
* Data missing on a worker's node names the node and the path; a `--data` task
  reaches worker processes; `--executor` typos get a did-you-mean.

The Ray cases are skipped (with the reason) only when `import ray` fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cbtest_plugins import crashy, toolkit  # noqa: E402
from click.testing import CliRunner
from helpers import PLUGINS_DIR, bench_argv, env_with_site, pip_install_plugins

from crystalbench.contract.context import RunContext  # noqa: E402
from crystalbench.contract.record import ResultRecord  # noqa: E402
from crystalbench.runtime.executors.base import RunSetup  # noqa: E402
from crystalbench.runtime.executors.local import ProcessExecutor  # noqa: E402
from crystalbench.runtime.executors.worker import execute  # noqa: E402
from crystalbench.runtime.runner import GridRequest, plan_grid, run_grid  # noqa: E402
from crystalbench.runtime.stages import Workspace  # noqa: E402

pytestmark = pytest.mark.registry(("cbtest_toolkit", toolkit), ("cbtest_crashy", crashy))

try:
    import ray

    RAY_MISSING = None
except ImportError as exc:  # pragma: no cover - CI installs the ray extra
    ray = None
    RAY_MISSING = f"Ray is not installed ({exc}); pip install 'crystalbench[ray]'"

needs_ray = pytest.mark.skipif(ray is None, reason=RAY_MISSING or "")


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray instance with 2 CPUs, shared by the Ray cases of this module (started once)."""
    if ray is None:
        pytest.skip(RAY_MISSING)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _ctx(root: Path, **kw) -> RunContext:
    base = dict(results_dir=root / "results", data_dir=Path(os.environ["CRYSTALBENCH_DATA_DIR"]),
                cache_dir=Path(os.environ["CRYSTALBENCH_CACHE_DIR"]), progress=False, jobs=2)
    base.update(kw)
    return RunContext(**base)


def _records(root: Path) -> list[ResultRecord]:
    files = [p for p in Path(root).rglob("*.json") if not any(x.startswith(".") for x in p.relative_to(root).parts)]
    return [ResultRecord.read(p).validate() for p in sorted(files)]


def _ray_executor(**kw):
    from crystalbench.runtime.executors.ray_executor import RayExecutor

    return RayExecutor(**kw)


# ----------------------------------------------------------------------------- same results
# chain1d_short costs ~85 s here (gong29 on 1,400 chains, cgcnn graphs in every worker): toy_cubic keeps the
# file fast; rf keeps its default descriptor set (gong29), with fewer trees on one thread
GRID = dict(models=["dummy", "rf", "cgcnn"], tasks=["toy_cubic"], seeds=[0, 1], epochs=2,
            config={"rf": {"n_estimators": 50, "n_jobs": 1}})


@needs_ray
def test_worker_pool_and_ray_give_the_sequential_results(reg, local_ray, tmp_path):
    runs = {}
    for name, executor in (("sequential", None), ("workers2", ProcessExecutor(2)),
                           ("ray", _ray_executor(cpus_per_job=1))):
        ctx = _ctx(tmp_path / name)
        summary = run_grid(reg, ctx, GridRequest(**GRID), executor=executor)
        assert summary.ok, (name, summary.errors, [r.error for r in summary.finished])
        assert len(summary.finished) == 6 and summary.failed == 0
        by_id = {r.job_id: r for r in _records(ctx.results_dir)}
        assert len(by_id) == 6
        runs[name] = by_id
    base = runs["sequential"]
    for name in ("workers2", "ray"):
        assert runs[name].keys() == base.keys(), name
        for job_id, rec in runs[name].items():
            assert rec.metrics == base[job_id].metrics, (name, rec.model, rec.seed)
            assert rec.predictions == base[job_id].predictions, (name, rec.model, rec.seed)
    assert {r.model for r in base.values()} == {"dummy", "rf", "cgcnn"}
    assert all(r.ok for r in runs["ray"].values())


# ----------------------------------------------------------------------------- failures and retries
def _crashy_req(marker: Path, seeds=(0, 1, 2, 3)) -> GridRequest:
    return GridRequest(models=["crashy"], tasks=["toy_cubic"], seeds=list(seeds),
                       config={"crashy": {"raise_seed": 1, "kill_seed": 2, "marker": str(marker)}})


def _check_failures(summary, marker: Path, results: Path, retries: int, death: str) -> None:
    assert summary.failed == 2 and len(summary.finished) == 4, [r.error for r in summary.finished]
    recs = {r.seed: r for r in _records(results)}
    assert sorted(recs) == [0, 1, 2, 3]
    assert recs[0].ok and recs[3].ok
    assert not recs[1].ok and "crashy was told to raise at seed 1" in recs[1].error
    assert not recs[2].ok and recs[2].error.startswith("worker died: ") and death in recs[2].error
    assert f"{retries + 1} attempt" in recs[2].error
    attempts = marker.read_text().split()
    assert attempts.count("2") == retries + 1, attempts  # the killed job ran 1 + retries times
    assert attempts.count("1") == 1 and attempts.count("0") == 1 and attempts.count("3") == 1  # others once
    assert not list((results / ".locks").glob("*.lock"))


def test_worker_pool_records_raising_and_killed_jobs_and_honours_retries(reg, tmp_path):
    marker = tmp_path / "attempts.txt"
    ctx = _ctx(tmp_path)
    summary = run_grid(reg, ctx, _crashy_req(marker), executor=ProcessExecutor(2), retries=2)
    _check_failures(summary, marker, ctx.results_dir, retries=2, death="killed by SIGKILL")


@needs_ray
def test_ray_records_raising_and_killed_jobs_and_honours_retries(reg, local_ray, tmp_path):
    marker = tmp_path / "attempts.txt"
    ctx = _ctx(tmp_path)
    summary = run_grid(reg, ctx, _crashy_req(marker), executor=_ray_executor(), retries=1)
    _check_failures(summary, marker, ctx.results_dir, retries=1, death="WorkerCrashedError")


def test_missing_data_on_a_node_names_the_node_and_the_path(reg, tmp_path):
    here, there = tmp_path / "driver-data", tmp_path / "node-data"
    here.mkdir()
    there.mkdir()
    (here / "toy_shared.txt").write_text("30\n")
    ctx = _ctx(tmp_path, data_dir=here)
    workspace = Workspace(reg, ctx)
    jobs, _ = plan_grid(reg, ctx, GridRequest(models=["dummy"], tasks=["toy_shared"]), workspace)
    setup = RunSetup(reg=reg, ctx=ctx, workspace=workspace).for_workers(data_dir=there)
    out = execute(jobs[0].to_dict(), setup)  # what a worker on a node without the file answers
    failure = out["failure"]
    assert failure["kind"] == "data_unavailable"
    assert f"on node {socket.gethostname()}" in failure["message"]
    assert str(there / "toy_shared.txt") in failure["message"] and str(there) in failure["message"]
    ok = execute(jobs[0].to_dict(), RunSetup(reg=reg, ctx=ctx, workspace=workspace).for_workers())
    assert ResultRecord.from_dict(ok["record"]).validate().ok


def test_missing_data_in_a_worker_pool_is_one_error_naming_the_node(reg, tmp_path, monkeypatch):
    here, there = tmp_path / "driver-data", tmp_path / "node-data"
    here.mkdir()
    (here / "toy_shared.txt").write_text("30\n")
    original = RunSetup.for_workers
    monkeypatch.setattr(RunSetup, "for_workers", lambda self, **kw: original(self, **kw, data_dir=there))
    ctx = _ctx(tmp_path, data_dir=here)
    summary = run_grid(reg, ctx, GridRequest(models=["dummy"], tasks=["toy_shared"], seeds=[0, 1, 2]),
                       executor=ProcessExecutor(2))
    assert summary.finished == [] and len(summary.errors) == 1, summary.errors
    msg = summary.errors[0]
    assert msg.startswith("task 'toy_shared': data unavailable: on node ") and socket.gethostname() in msg
    assert str(there / "toy_shared.txt") in msg
    assert not list((ctx.results_dir / ".locks").glob("*.lock"))


# ----------------------------------------------------------------------------- the CLI, in subprocesses
@pytest.fixture(scope="module")
def bench_env(tmp_path_factory) -> dict[str, str]:
    """Environment of `python -m crystalbench.cli` subprocesses with the test plugins pip-installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBTEST_")}
    env = env_with_site(pip_install_plugins(tmp_path_factory, PLUGINS_DIR), env)
    env["CRYSTALBENCH_DISABLE_PLUGINS"] = "cbtest_broken_import,cbtest_broken_hook"
    env["CRYSTALBENCH_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _seeds(n: int) -> list[str]:
    return [a for s in range(n) for a in ("--seed", str(s))]


def _alive(procs):
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


N_KILL = 6
EXECUTOR_ARGS = {"local": ("--workers", "2"), "ray": ("--executor", "ray", "--workers", "2")}


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=needs_ray)])
def test_driver_killed_mid_grid_loses_and_duplicates_nothing(bench_env, tmp_path, executor):
    root = tmp_path / "r"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[crashy]\nsleep = 0.6\n")
    args = bench_argv("run", "-m", "crashy", "-t", "toy_cubic", *_seeds(N_KILL), "--config", cfg, "--json", "--no-progress",
                  "--results-dir", root, *EXECUTOR_ARGS[executor])
    proc = subprocess.Popen(args, env=bench_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: proc.poll() is not None or len(_records_quiet(root)) >= 2, timeout=90)
        assert proc.poll() is None, proc.communicate()
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    if executor == "local":  # the workers die with the driver (parent-death signal)
        assert _wait_for(lambda: not _alive(children), timeout=10), _alive(children)
    else:  # the processes that ran jobs die with the local Ray instance the driver started
        workers = [p for p in children if _is_ray_worker(p)]
        assert _wait_for(lambda: not _alive(workers), timeout=30), _alive(workers)
    before = {r.job_id: r for r in _records(root)}  # every file on disk parses and validates
    assert 2 <= len(before) < N_KILL and all(r.ok for r in before.values())
    again = subprocess.run(args, env=bench_env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    rerun_ids = [json.loads(line)["job_id"] for line in again.stdout.splitlines() if line.strip()]
    assert len(rerun_ids) == len(set(rerun_ids)) == N_KILL - len(before)  # exactly the missing jobs
    assert not set(rerun_ids) & set(before)
    final = _records(root)
    assert len(final) == N_KILL and sorted(r.seed for r in final) == list(range(N_KILL))
    assert all(before[r.job_id].created == r.created for r in final if r.job_id in before)  # kept as they were
    assert not list((root / ".locks").glob("*.lock")) and not list(root.rglob(".tmp-*"))


def _records_quiet(root: Path) -> list[Path]:
    try:
        return [p for p in Path(root).rglob("*.json")
                if not any(x.startswith(".") for x in p.relative_to(root).parts)]
    except OSError:
        return []


def _is_ray_worker(p) -> bool:
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return "default_worker.py" in cmd or "crystalbench-job" in cmd or "ray::IDLE" in cmd


def _crashy_cli(bench_env, tmp_path, *extra):
    marker = tmp_path / "attempts.txt"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[crashy]\nraise_seed = 1\nkill_seed = 2\nmarker = "{marker}"\n')
    p = subprocess.run(bench_argv("run", "-m", "crashy", "-t", "toy_cubic", *_seeds(4), "--config", cfg, "--no-progress",
                              "--results-dir", tmp_path / "r", "--retries", "0", *extra),
                       env=bench_env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert marker.read_text().split().count("2") == 1  # --retries 0: one attempt
    assert len(_records(tmp_path / "r")) == 4
    return p


def test_cli_worker_pool_exit_code_and_failure_lines(bench_env, tmp_path):
    p = _crashy_cli(bench_env, tmp_path, "--workers", "2")
    assert "note: running 4 job(s) on local, 2 worker processes" in p.stderr
    assert "2 job(s) finished, 2 failed" in p.stderr
    died = [line for line in p.stderr.splitlines() if "worker died" in line]
    assert len(died) == 1 and died[0].startswith("✗ crashy") and "killed by SIGKILL" in died[0]


@needs_ray
def test_cli_ray_json_stdout_holds_only_summaries_when_a_worker_dies(bench_env, tmp_path):
    p = _crashy_cli(bench_env, tmp_path, "--executor", "ray", "--workers", "2", "--json")
    lines = [json.loads(line) for line in p.stdout.splitlines()]  # Ray's own crash report went to stderr
    assert sorted((r["seed"], r["status"]) for r in lines) == [(0, "ok"), (1, "failed"), (2, "failed"), (3, "ok")]
    assert "WorkerCrashedError" in next(r["error"] for r in lines if r["seed"] == 2)


# ----------------------------------------------------------------------------- the CLI, in process
def test_data_task_reaches_worker_processes(tmp_path):
    from pymatgen.core import Lattice, Structure

    from crystalbench.cli import main as _  # noqa: F401  (attaches every command)
    from crystalbench.cli.main import cli

    rows = ["id,cif,band_gap"]
    for i in range(24):
        s = Structure(Lattice.cubic(3.5 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        rows.append(f'm{i},"{s.to(fmt="cif")}",{0.2 * i}')
    data = tmp_path / "mine.csv"
    data.write_text("\n".join(rows) + "\n")
    out = {}
    for name, extra in (("seq", ()), ("pool", ("--workers", "2"))):
        res = CliRunner().invoke(cli, ["run", "-m", "dummy", "--data", str(data), "--target", "band_gap",
                                       "--seed", "0", "--seed", "1", "--json", "--results-dir",
                                       str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        out[name] = {json.loads(line)["job_id"]: json.loads(line)["metrics"]
                     for line in res.stdout.splitlines() if line.startswith("{")}
    assert len(out["seq"]) == 2 and out["seq"] == out["pool"]


def test_unknown_executor_and_misplaced_flags_are_one_line_errors(tmp_path):
    from crystalbench.cli import main as _  # noqa: F401
    from crystalbench.cli.main import cli

    base = ["run", "-m", "dummy", "-t", "chain1d_short", "--results-dir", str(tmp_path)]
    res = CliRunner().invoke(cli, [*base, "--executor", "rayy"])
    assert res.exit_code == 2 and "unknown executor 'rayy'; did you mean 'ray'?" in res.output
    res = CliRunner().invoke(cli, [*base, "--gpus-per-job", "0.25"])
    assert res.exit_code == 2 and "--gpus-per-job applies to --executor ray, not local" in res.output
    res = CliRunner().invoke(cli, [*base, "--workers", "0"])
    assert res.exit_code == 2 and "--workers must be at least 1" in res.output
    assert not list(tmp_path.rglob("*.json"))


def test_registry_offers_local_and_ray_from_the_executors_plugin(reg):
    assert {"local", "ray"} <= set(reg.executors)
    assert reg.owner[("executor", "local")] == reg.owner[("executor", "ray")] == "executors"


def test_ray_executor_without_ray_installed_says_how_to_install_it(reg, tmp_path, monkeypatch):
    from crystalbench.contract.errors import CrystalbenchError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(CrystalbenchError, match=r"--executor ray needs Ray.*pip install 'crystalbench\[ray\]'"):
        run_grid(reg, _ctx(tmp_path), GridRequest(models=["dummy"], tasks=["toy_cubic"]), executor=_ray_executor())
    assert not list((tmp_path / "results").rglob("*.json"))


def test_debug_runs_jobs_in_the_driver_whatever_the_executor(tmp_path):
    from crystalbench.cli import main as _  # noqa: F401
    from crystalbench.cli.main import cli

    res = CliRunner().invoke(cli, ["run", "-m", "dummy", "-t", "chain1d_short", "--results-dir", str(tmp_path),
                                   "--workers", "2", "--debug", "--json"])
    assert res.exit_code == 0, res.output
    assert "warning: --debug runs the jobs in this process, one at a time (not with local --workers 2)" in res.output
    assert "worker processes" not in res.output


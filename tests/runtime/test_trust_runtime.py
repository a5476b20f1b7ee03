"""Trust in the runtime (issue #18 items 3, 7, 8; #21.6 and part of #21.8).

* A plugin's new version is a new job (`Job.code`), and `bench run` says that the code changed.
* A bad `--seed` is one `error:` line before anything runs; a descriptor plugin that raises is a
  failed record of its jobs, and the grid goes on, sequentially and with `--workers`.
* Plugin code cannot end a sequential grid: `os._exit(0)`, `KeyboardInterrupt`, `print` into
  `--json` stdout (each job runs in a forked child); a real Ctrl-C still stops it cleanly.
* `--epochs` on models that train for no epochs is an error (a note in a mixed grid).
* Progress: the final line is printed once, and the ETA is estimated per model.

The hostile plugin is written at test time as an installed distribution (a module plus its
`.dist-info` with the entry point) on the path, so its version can be bumped between runs
exactly as `pip install` of a new release would. Grids run in this process through `run_grid`
with the sequential executor `bench run` uses (each job in a forked child); only what needs the
CLI itself (an `error:` line, Ctrl-C) starts `bench`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import bench_argv, env_with_site

from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord

PLUGIN = '''
"""Hostile test plugin: a model steered by its hyperparameters, a descriptor set that raises."""
import os
import sys

import numpy as np

from crystalbench import Dataset, DescriptorSpec, ModelSpec, TaskSpec, hookimpl


def toy(n=40):
    from pymatgen.core import Composition

    rng = np.random.default_rng(3)
    comps = [Composition({"Na": 1 + i % 3, "Cl": 1 + i % 2}) for i in range(n)]
    y = np.array([c.weight for c in comps]) + rng.normal(0, 1, n)
    return Dataset(ids=[f"h-{i}" for i in range(n)], targets=y, compositions=comps, name="hx_toy")


def explode(items):
    raise RuntimeError("hx_bad featurizer exploded")


class Hostile:
    def __init__(self, ctx):
        self.p = ctx.hparams

    def fit(self, train, val, *, seed, progress):
        if seed == self.p["at_seed"]:
            act = self.p["action"]
            if self.p["marker"]:
                with open(self.p["marker"], "w") as fh:
                    fh.write(str(os.getpid()))
            if act == "sleep":
                import time
                time.sleep(60)
            if act == "exit0":
                os._exit(0)
            if act == "kbint":
                raise KeyboardInterrupt
            if act == "print":
                print("HOSTILE-PRINT")
                sys.stdout.flush()
                os.write(1, b"HOSTILE-FD1\\n")
        self.mean = float(np.mean(train.targets))

    def predict(self, data):
        return np.full(len(data), self.mean)


@hookimpl
def bench_tasks():
    return [TaskSpec(name="hx_toy", load=lambda ctx: toy(), target="weight", provides="composition", group="test")]


@hookimpl
def bench_descriptors():
    return [DescriptorSpec(name="hx_bad", feature_names=("a", "b"), featurize=explode, needs="composition")]


@hookimpl
def bench_models():
    return [
        ModelSpec(name="hx", factory=Hostile, needs="composition", needs_validation=False,
                  defaults={"action": "", "at_seed": -1, "marker": ""}),
        ModelSpec(name="hx_feat", factory=Hostile, needs="features", descriptors="hx_bad", needs_validation=False,
                  defaults={"action": "", "at_seed": -1, "marker": ""}),
    ]
'''


def install(site: Path, version: str) -> None:
    """(Re)install the hostile plugin as distribution `cbhostile` `version` into `site`."""
    for old in site.glob("cbhostile-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    (site / "cbhostile.py").write_text(PLUGIN)
    info = site / f"cbhostile-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cbhostile\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[crystalbench]\ncbhostile = cbhostile\n")


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "0.1.0")
    return site


def bench(site: Path, tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess:
    env = env_with_site(site)
    env["CRYSTALBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    env["CRYSTALBENCH_THREADS"] = "1"
    env.pop("CRYSTALBENCH_DISABLE_PLUGINS", None)
    extra: list[str] = []
    if config is not None:
        cfg = tmp_path / "hx.toml"
        cfg.write_text(textwrap.dedent(config))
        extra = ["--config", str(cfg)]
    return subprocess.run(bench_argv("run", *args, *extra, "--results-dir", tmp_path / "r", "--no-progress"),
                          env=env, capture_output=True, text=True, timeout=120)


def records(root: Path) -> list[ResultRecord]:
    return [ResultRecord.read(p) for p in sorted(root.rglob("*.json")) if ".attempts" not in p.parts
            and ".locks" not in p.parts]


def summaries(p: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in p.stdout.splitlines()]


def report(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


@pytest.fixture
def hostile(site, monkeypatch) -> Path:
    """The hostile plugin importable in this process (its registry is loaded here, jobs run in forked children)."""
    monkeypatch.delitem(sys.modules, "cbhostile", raising=False)
    monkeypatch.syspath_prepend(str(site))
    return site


def in_process(tmp_path: Path, *, isolate: bool = True, retries: int = 0, **req):
    """Run a grid of the hostile plugin with `run_grid` (the sequential executor, isolating by default)."""
    import importlib

    from crystalbench.contract.context import RunContext
    from crystalbench.runtime.executors.local import SequentialExecutor
    from crystalbench.runtime.registry import load_registry
    from crystalbench.runtime.runner import GridRequest, run_grid

    importlib.invalidate_caches()
    reg = load_registry()
    ctx = RunContext(results_dir=tmp_path / "r", cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    req.setdefault("tasks", ["hx_toy"])
    return run_grid(reg, ctx, GridRequest(**req), executor=SequentialExecutor(isolate=isolate), retries=retries)


# ----------------------------------------------------------------------------- item 3: plugin versions
def test_a_new_plugin_version_is_a_new_job_and_the_run_says_so(hostile, tmp_path, caplog):
    assert in_process(tmp_path, models=["hx"]).ok
    with caplog.at_level(logging.INFO, logger="crystalbench"):
        again = in_process(tmp_path, models=["hx"])
    assert again.skipped == 1 and "already recorded" in caplog.text
    caplog.clear()
    install(hostile, "0.2.0")
    with caplog.at_level(logging.INFO, logger="crystalbench"):
        bumped = in_process(tmp_path, models=["hx"])
    assert bumped.skipped == 0 and len(bumped.finished) == 1
    changed = [r.getMessage() for r in caplog.records if "inputs changed" in r.getMessage()]
    assert changed and "cbhostile 0.1.0 -> cbhostile 0.2.0" in changed[0], caplog.text
    recs = records(tmp_path / "r")
    assert sorted(r.job.code["model"] for r in recs) == ["cbhostile 0.1.0", "cbhostile 0.2.0"]
    assert all(r.job.code["task"].startswith("cbhostile ") for r in recs)
    assert all(r.validate().job_id == r.job.id for r in recs)


def test_code_is_part_of_the_id_and_old_records_keep_theirs():
    base = dict(model="m", task="t", protocol="paper", fold=0, seed=0)
    old = Job(**base)
    assert "code" not in old.to_dict()  # a record written before `code` existed keeps its id
    new = Job(**base, code={"model": "pkg 0.2.0"})
    newer = Job(**base, code={"model": "pkg 0.3.0"})
    assert len({old.id, new.id, newer.id}) == 3
    assert Job.from_dict(new.to_dict()) == new and Job.from_dict(new.to_dict()).id == new.id
    assert newer.differences(new) == ["code (model: pkg 0.2.0 -> pkg 0.3.0)"]


def test_builtin_models_are_identified_by_their_own_source(monkeypatch):
    from crystalbench.runtime import registry as registry_mod
    from crystalbench.runtime.registry import load_registry

    reg = load_registry()
    code = {m: reg.code_version("model", m) for m in ("dummy", "rf", "cgcnn", "de-cgcnn")}
    assert all(v and v.startswith("crystalbench src:") for v in code.values()), code
    assert code["cgcnn"] == code["de-cgcnn"] and code["cgcnn"] != code["dummy"] != code["rf"]
    assert reg.code_version("task", "chain1d_short") is None  # versioned by its data and task version
    # editing one model's source changes its identity, not the others'
    registry_mod.source_digest.cache_clear()
    real = Path.read_bytes

    def edited(path: Path) -> bytes:
        data = real(path)
        return data + b"\n# edited" if path.name == "dummy.py" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    try:
        assert reg.code_version("model", "dummy") != code["dummy"]
        assert reg.code_version("model", "cgcnn") == code["cgcnn"]
    finally:
        registry_mod.source_digest.cache_clear()


# ----------------------------------------------------------------------------- item 7: preparing a job
def test_a_bad_seed_is_one_error_line_before_anything_runs(site, tmp_path):
    p = bench(site, tmp_path, "-m", "hx", "-t", "hx_toy", "--seed", "-1")
    assert p.returncode == 2 and "Traceback" not in p.stderr, report(p)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--seed -1" in errors[0], report(p)
    assert records(tmp_path / "r") == []


@pytest.mark.parametrize("isolate", [True, False])
def test_a_raising_descriptor_plugin_is_a_failed_record_and_the_grid_goes_on(hostile, tmp_path, isolate):
    s = in_process(tmp_path, isolate=isolate, models=["hx_feat", "hx"], seeds=[0, 1])
    by = {(r.model, r.seed): r for r in s.finished}
    assert set(by) == {("hx_feat", 0), ("hx_feat", 1), ("hx", 0), ("hx", 1)}
    assert by[("hx", 0)].ok and by[("hx", 1)].ok and s.failed == 2 and not s.errors
    for seed in (0, 1):
        assert "hx_bad" in by[("hx_feat", seed)].error and "exploded" in by[("hx_feat", seed)].error
    assert len(records(tmp_path / "r")) == 4


def test_a_worker_answers_a_raising_descriptor_plugin_with_a_failed_record(hostile, tmp_path):
    """What `--workers N` and Ray workers run (`worker.execute`): the record, not a task-wide failure."""
    import importlib

    from crystalbench.contract.context import RunContext
    from crystalbench.runtime.executors import worker
    from crystalbench.runtime.executors.base import RunSetup
    from crystalbench.runtime.registry import load_registry
    from crystalbench.runtime.runner import GridRequest, plan_grid
    from crystalbench.runtime.stages import Workspace

    importlib.invalidate_caches()
    reg = load_registry()
    ctx = RunContext(results_dir=tmp_path / "r", cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    workspace = Workspace(reg, ctx)
    jobs, _ = plan_grid(reg, ctx, GridRequest(models=["hx_feat"], tasks=["hx_toy"]), workspace)
    answer = worker.execute(jobs[0].to_dict(), RunSetup(reg=reg, ctx=ctx, workspace=workspace).for_workers())
    record = ResultRecord.from_dict(answer["record"])
    assert record.status == "failed" and "hx_bad featurizer exploded" in record.error


def test_a_job_that_cannot_run_where_it_was_sent_is_recorded_and_the_task_goes_on(hostile, tmp_path):
    """A worker's `error` (its plugin missing on that node...) used to drop the task's other jobs unrecorded."""
    from crystalbench.contract.context import RunContext
    from crystalbench.runtime.executors.base import Failure, Outcome
    from crystalbench.runtime.executors.local import SequentialExecutor
    from crystalbench.runtime.registry import load_registry
    from crystalbench.runtime.runner import GridRequest, run_grid

    class OneBadNode(SequentialExecutor):
        def submit(self, next_job):
            for outcome in super().submit(next_job):
                if outcome.job.seed == 0:
                    outcome = Outcome(outcome.job, failure=Failure("error", "on node n1: unknown model 'hx'"))
                yield outcome

    ctx = RunContext(results_dir=tmp_path / "r", cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    s = run_grid(load_registry(), ctx, GridRequest(models=["hx"], tasks=["hx_toy"], seeds=[0, 1, 2]),
                 executor=OneBadNode())
    assert sorted((r.seed, r.status) for r in s.finished) == [(0, "failed"), (1, "ok"), (2, "ok")]
    assert "unknown model" in s.finished[0].error and not s.errors and len(records(tmp_path / "r")) == 3


# ----------------------------------------------------------------------------- item 8: hostile models
@pytest.mark.parametrize("action", ["exit0", "kbint"])
def test_plugin_code_cannot_end_a_sequential_grid(hostile, tmp_path, action):
    s = in_process(tmp_path, models=["hx"], seeds=[0, 1, 2], config={"hx": {"action": action, "at_seed": 1}})
    assert {r.seed: r.status for r in s.finished} == {0: "ok", 1: "failed", 2: "ok"}
    failed = next(r for r in s.finished if not r.ok)
    assert ("exited with status 0" if action == "exit0" else "KeyboardInterrupt") in failed.error
    assert len(records(tmp_path / "r")) == 3


def test_what_a_plugin_prints_never_reaches_stdout(hostile, tmp_path, capfd):
    s = in_process(tmp_path, models=["hx"], config={"hx": {"action": "print", "at_seed": 0}})
    out, err = capfd.readouterr()
    assert s.ok and "HOSTILE" not in out
    assert "HOSTILE-PRINT" in err and "HOSTILE-FD1" in err


def test_ctrl_c_still_stops_a_sequential_grid_cleanly(site, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p),
               CRYSTALBENCH_CACHE_DIR=str(tmp_path / "cache"))
    cfg = tmp_path / "hx.toml"
    marker = tmp_path / "child.pid"
    cfg.write_text(f'[hx]\naction = "sleep"\nat_seed = 1\nmarker = "{marker}"\n')
    root = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "crystalbench.cli", "run", "-m", "hx", "-t", "hx_toy", "--seed", "0",
                             "--seed", "1", "--config", str(cfg), "--results-dir", str(root), "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(marker.read_text())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert [r.seed for r in records(root)] == [0]  # the finished job is kept
    assert not list((root / ".locks").glob("*.lock"))  # the interrupted job's claim is released
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()


# ----------------------------------------------------------------------------- #21.6: silent no-ops
def test_epochs_on_models_without_epochs_is_an_error_and_a_note_in_a_mixed_grid():
    from crystalbench.contract.errors import BadInputError
    from crystalbench.runtime.registry import load_registry
    from crystalbench.runtime.runner import epochs_note

    reg = load_registry()
    with pytest.raises(BadInputError, match="--epochs 5: dummy, rf"):
        epochs_note(reg, ["dummy", "rf"], 5)
    note = epochs_note(reg, ["dummy", "rf", "cgcnn"], 5)
    assert note and "applies to cgcnn" in note and "dummy, rf" in note
    assert epochs_note(reg, ["cgcnn"], 5) is None and epochs_note(reg, ["dummy"], None) is None


# ----------------------------------------------------------------------------- #21.8: progress
def test_the_final_progress_line_is_printed_once(caplog, monkeypatch):
    from crystalbench.contract import context

    clock = iter([0.0, 0.0, 40.0, 40.0, 40.0, 40.0])
    monkeypatch.setattr(context.time, "monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="crystalbench"):
        bar = context.Progress(3, "jobs", enabled=True, unit="job", interval=30.0)
        bar.update(3)
        bar.close()
    assert [r.getMessage() for r in caplog.records if "jobs:" in r.getMessage()] == [
        "jobs: 3/3 job (100%), 40.0 s elapsed"]


def test_the_eta_is_estimated_per_model():
    from crystalbench.runtime.dispatch import _Eta

    eta = _Eta({"dummy": 3, "cgcnn": 2})
    eta.finished("dummy", 1.0)
    eta.finished("dummy", 1.0)
    assert eta.estimate() is None  # no cgcnn job has ended: nothing honest to say about it yet
    eta.finished("cgcnn", 100.0)
    assert eta.estimate() == pytest.approx(1.0 + 100.0)  # one dummy and one cgcnn job left


def test_the_local_ray_instance_does_not_announce_its_token_on_every_run(caplog):
    """Ray >= 2.5x logs "Token authentication is enabled for this Ray cluster" at every local start."""
    from crystalbench.runtime.executors.ray_executor import _quiet_local_token_notice

    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    _quiet_local_token_notice()
    _quiet_local_token_notice()  # idempotent: one filter
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled ...")
        logger.warning("Token authentication is enabled but no token was found")  # a real problem: kept
    assert [r.getMessage()[:40] for r in caplog.records] == ["Token authentication is enabled but no t"]
    assert len(logger.filters) == 1

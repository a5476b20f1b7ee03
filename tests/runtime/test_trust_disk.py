"""Trust on disk (issue #18 items 6, 9, 10): claims that expire, outputs that never destroy, files the umask allows.

* 6: a claim names its process beyond the PID (a `flock` the kernel drops on
  death, boot id, start time, heartbeat), so a restarted PID 1, a reused PID, an
  old claim from another machine, a directory at a lock path or a file at
  `.locks` never leave a job uncomputable.
* 9: output commands refuse to overwrite a record or rebuild a site from its own
  records, turn OSErrors into one `error:` line without leftovers, never open a
  FIFO named `*.json`, and `bench tune` says so when its study.db is damaged or
  taken.
* 10: written files get the umask's mode, not mkstemp's 0600.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import PLUGINS_DIR

from crystalbench.cli import cli
from crystalbench.contract import store
from crystalbench.contract.job import Job
from crystalbench.contract.metrics import score
from crystalbench.contract.record import ResultRecord
from crystalbench.contract.store import atomic_write
from crystalbench.runtime import claims
from crystalbench.runtime.results import ResultsDirError, ResultStore

JOB = Job(model="dummy", task="toy_cubic", protocol="paper", fold=0, seed=0)


def invoke(*args: object, **env: str):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env or None)


def one_error(res, *needles: str) -> str:
    """Exit 2, exactly one `error:` line naming every needle, no traceback."""
    report = f"exit {res.exit_code}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}\nexc: {res.exc_info}"
    assert res.exit_code == 2, report
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, report
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, report
    for needle in needles:
        assert needle in errors[0], report
    return errors[0]


def leftovers(root: Path) -> list[Path]:
    """Temp files and 0-byte files under `root`."""
    return [p for p in Path(root).rglob("*") if p.is_file() and (p.name.startswith(".tmp-") or p.stat().st_size == 0)]


def record(model: str = "ridge", seed: int = 0) -> ResultRecord:
    job = Job(model=model, task="toy_task", protocol="paper", fold=0, seed=seed)
    y_true = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    y_pred = [y + 0.1 * (-1) ** i for i, y in enumerate(y_true)]
    return ResultRecord(job=job, status="ok", metrics=score("regression", np.array(y_true), np.array(y_pred)),
                        predictions={"ids": [f"m{i}" for i in range(6)], "y_true": y_true, "y_pred": y_pred},
                        task_info={"target": "e", "unit": "eV", "task_type": "regression"},
                        created="2024-01-01T00:00:00+00:00")


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    s = ResultStore(root)
    for m in ("ridge", "lasso"):
        s.write(record(m))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*.json"))}


# -- item 6: claims


def _lock_file(store_: ResultStore, info: dict, age: float = 0.0) -> Path:
    path = store_.locks_dir / f"{JOB.id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_claim_of_a_restarted_pid_1_and_of_a_reused_pid_is_taken_over(tmp_path):
    """A container restarted after kill -9: the new `bench run` has the old claim's PID (here: ours)."""
    s = ResultStore(tmp_path)
    for legacy in (False, True):
        info = claims.identity("left by a killed container")
        info["start"] = "1"  # another process that had our PID
        if legacy:  # written before claims had boot ids and locks
            info = {"host": info["host"], "pid": os.getpid(), "time": time.time(), "job": "old"}
        _lock_file(s, info)
        claim = s.claim(JOB)
        assert claim is not None, f"a claim naming our own PID blocks us forever (legacy={legacy})"
        assert json.loads(claim.path.read_text())["start"] == claims.start_time(os.getpid())
        claim.release()
        assert not claim.path.exists()

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # the PID is alive, but it is another process than the one that claimed
        info = claims.identity("x") | {"pid": sleeper.pid, "start": "1"}
        _lock_file(s, info)
        claim = s.claim(JOB)
        assert claim is not None, "a reused PID keeps a dead claim alive"
        claim.release()
    finally:
        sleeper.kill()
        sleeper.wait()


HOLDER = """
import sys, time
from crystalbench.contract.job import Job
from crystalbench.runtime.results import ResultStore
c = ResultStore(sys.argv[1]).claim(Job(model="dummy", task="toy_cubic", protocol="paper", fold=0, seed=0))
print("held" if c else "refused", flush=True)
time.sleep(60)
"""


def test_a_live_holder_is_respected_until_it_is_killed(tmp_path):
    s = ResultStore(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert s.claim(JOB) is None
        assert s.holder(JOB) == f"{claims.identity('')['host']} pid {proc.pid}"
        s.prepare()  # the start-up sweep leaves a live claim alone
        assert (s.locks_dir / f"{JOB.id}.lock").exists()
    finally:
        proc.kill()  # kill -9: no clean-up ran, the claim file stays
        proc.wait()
    assert (s.locks_dir / f"{JOB.id}.lock").exists()
    claim = s.claim(JOB)
    assert claim is not None
    claim.release()


def test_claims_from_another_machine_expire_by_heartbeat(tmp_path, monkeypatch):
    s = ResultStore(tmp_path)
    other = claims.identity("on another host") | {"host": "other.example", "boot_id": "another-boot"}
    _lock_file(s, other, age=60)
    assert s.claim(JOB) is None  # recent heartbeat: alive over there
    _lock_file(s, other, age=claims.STALE_HEARTBEAT_S + 60)
    claim = s.claim(JOB)
    assert claim is not None, "a claim from a machine that stopped beating 11 minutes ago still blocks the job"
    claim.release()

    # the owner keeps its claim fresh
    monkeypatch.setattr(claims, "HEARTBEAT_S", 0.05)
    claim = s.claim(JOB)
    assert claim is not None
    try:
        old = time.time() - 3600
        os.utime(claim.path, (old, old))
        claims._WAKE.set()
        deadline = time.time() + 5
        while time.time() < deadline and time.time() - claim.path.stat().st_mtime > 60:
            time.sleep(0.05)
        assert time.time() - claim.path.stat().st_mtime < 60, "the heartbeat did not touch the held claim"
    finally:
        claim.release()


def test_odd_things_at_lock_paths_are_taken_over_or_one_error(tmp_path):
    s = ResultStore(tmp_path)
    (s.locks_dir / f"{JOB.id}.lock").mkdir(parents=True)  # an empty directory where the claim goes
    claim = s.claim(JOB)
    assert claim is not None and claim.path.is_file()
    claim.release()

    ((s.locks_dir / f"{JOB.id}.lock") / "inside").mkdir(parents=True)
    with pytest.raises(ResultsDirError, match="non-empty directory"):
        s.claim(JOB)
    with pytest.raises(ResultsDirError, match="non-empty directory"):
        s.prepare()


def test_locks_folder_being_a_file_is_one_error_line(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / ".locks").write_text("not a folder")
    res = invoke("run", "-m", "dummy", "-t", "chain1d_short", "--results-dir", root, "--no-progress")
    one_error(res, ".locks")
    assert (root / ".locks").read_text() == "not a folder"


# -- item 9: outputs


def test_out_onto_a_record_or_a_json_in_the_results_is_refused(results, tmp_path):
    before = snapshot(results)
    target = next(iter(sorted(results.rglob("*.json"))))
    one_error(invoke("leaderboard", "build", "--results-dir", results, "--out", target), str(target), "record")
    one_error(invoke("leaderboard", "build", "--results-dir", results, "--out", results / "board.json"), "results")
    elsewhere = tmp_path / "elsewhere.json"  # a record outside the results dir is protected too
    elsewhere.write_bytes(target.read_bytes())
    one_error(invoke("leaderboard", "build", "--results-dir", results, "--out", elsewhere), "record")
    assert snapshot(results) == before
    res = invoke("leaderboard", "build", "--results-dir", results, "--out", results / "LEADERBOARD.md")
    assert res.exit_code == 0, res.stderr  # the README's own layout stays allowed


def test_a_site_is_never_rebuilt_from_its_own_records(results, tmp_path):
    site = tmp_path / "site"
    res = invoke("leaderboard", "build", "--results-dir", results, "--html", site, "--no-plots")
    assert res.exit_code == 0, res.stderr
    before = snapshot(site / "results")
    assert before
    res = invoke("leaderboard", "build", "--results-dir", site / "results", "--html", site, "--no-plots")
    one_error(res, "--html", str(site))
    assert snapshot(site / "results") == before
    one_error(invoke("leaderboard", "build", "--results-dir", results, "--html", results / "site", "--no-plots"),
              "--html")


def test_full_or_unwritable_outputs_are_one_error_line_and_leave_nothing(results, tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with monkeypatch.context() as m:
        m.setattr(store.os, "fsync", full)
        one_error(invoke("leaderboard", "build", "--results-dir", results, "--out", out_dir / "LB.md"),
                  "--out", "LB.md", "no space left")
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(out_dir)):
            raise OSError(errno.EROFS, "Read-only file system", str(kwargs["dir"]))
        return real_mkstemp(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(store.tempfile, "mkstemp", read_only)
        one_error(invoke("leaderboard", "build", "--results-dir", results, "--html", out_dir / "site", "--no-plots"),
                  "--html", "read-only file system")
    assert leftovers(out_dir) == []
    assert not (out_dir / "LB.md").exists()

    afile = tmp_path / "afile"
    afile.write_text("x")
    one_error(invoke("leaderboard", "build", "--results-dir", results, "--html", afile / "site", "--no-plots"),
              "--html")
    one_error(invoke("export", "matbench", "--results-dir", results, "-m", "ridge", "--out", afile / "x.json.gz"),
              "--out", "is a file")


def test_unwritable_cache_and_data_dirs_are_one_error_line(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()  # empty, and (below) on a read-only file system
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(cache)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(store.tempfile, "mkstemp", read_only)
    res = invoke("run", "-m", "dummy", "-t", "chain1d_short", "--cache-dir", cache,
                 "--results-dir", tmp_path / "r", "--no-progress")
    one_error(res, "--cache-dir", str(cache), "read-only")
    assert not list((tmp_path / "r").rglob("*.json"))  # refused before anything ran

    afile = tmp_path / "afile"
    afile.write_text("x")
    res = invoke("data", "fetch", "matbench_phonons", "--data-dir", afile / "data", CRYSTALBENCH_OFFLINE="1")
    one_error(res, "data directory", str(afile))


def _no_hang(fn, fifo: Path, timeout: float = 20.0):
    """Run `fn` in a thread; if it blocks on the FIFO, unblock it by writing, and fail."""
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"{}")
        os.close(fd)
        t.join(10)
        pytest.fail(f"{fn} opened the FIFO {fifo} and blocked")
    return out.get("value")


def test_a_fifo_named_json_is_skipped_with_a_warning_never_read(results, tmp_path, caplog):
    fifo = results / "toy_task" / "ridge" / "evil.json"
    os.mkfifo(fifo)
    scanned = _no_hang(lambda: list(ResultStore(results).scan()), fifo)
    assert {p.name for p, _ in scanned} == {p.name for p in results.rglob("*.json") if p.is_file()}
    assert any("evil.json" in r.getMessage() and "FIFO" in r.getMessage() for r in caplog.records)
    res = _no_hang(lambda: invoke("leaderboard", "build", "--results-dir", results, "--out", tmp_path / "LB.md"), fifo)
    assert res.exit_code == 0, res.stderr
    assert "evil.json" in res.stderr and "FIFO" in res.stderr
    res = _no_hang(lambda: invoke("results", "validate", results, "--no-official-splits"), fifo)
    assert "Traceback" not in res.stderr and "warning: skipped" in res.stderr
    assert not [line for line in res.stderr.splitlines() if line.startswith("invalid:") and "evil.json" in line]
    valid, invalid = (int(w) for w in re.findall(r"(\d+) (?:valid|invalid)", res.stderr.splitlines()[-1]))
    assert valid + invalid == 2  # the two records, not the FIFO


# -- item 9: bench tune's study storage


@pytest.fixture
def tune_setup(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("[params]\nepochs = [1, 2]\n")
    sys.path.insert(0, str(PLUGINS_DIR))
    try:
        from cbtest_plugins import toolkit
    finally:
        sys.path.remove(str(PLUGINS_DIR))
    from crystalbench.contract.context import RunContext
    from crystalbench.runtime.registry import load_registry
    from crystalbench.tune import TuneRequest, load_space

    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    ctx = RunContext(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", data_dir=tmp_path)
    req = TuneRequest(model="sleepy", task="toy_cubic", space=load_space(str(space), reg.model("sleepy")), trials=1)
    return reg, ctx, req


def test_damaged_or_busy_study_is_one_clear_error(tune_setup, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from crystalbench.contract.errors import CrystalbenchError
    from crystalbench.tune import study as tuning

    reg, ctx, req = tune_setup
    folder = ctx.results_dir / ".tune" / "study"
    monkeypatch.setattr(tuning, "study_dir", lambda *a: folder)
    folder.mkdir(parents=True)
    other = claims.acquire(folder / "study.lock", label="another bench tune")
    assert other is not None
    try:
        with pytest.raises(CrystalbenchError, match="is being run by"):
            tuning.tune(reg, ctx, req)
    finally:
        other.release()

    (folder / "study.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(CrystalbenchError, match="study.db") as err:
        tuning.tune(reg, ctx, req)
    assert "move it aside" in str(err.value) and "\n" not in str(err.value)
    assert not (folder / "study.lock").exists()  # released on the way out
    assert (folder / "study.db").read_bytes().startswith(b"this is not")  # nothing deleted


# -- item 10: permissions follow the umask


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_written_files_follow_the_umask(tmp_path, mask, results):
    old = os.umask(mask)
    try:
        written = atomic_write(tmp_path / "a.txt", "x")
        rec = ResultStore(tmp_path / "r").write(record())
        res = invoke("leaderboard", "build", "--results-dir", results, "--out", tmp_path / "LB.md",
                     "--html", tmp_path / "site", "--no-plots")
        assert res.exit_code == 0, res.stderr
    finally:
        os.umask(old)
    expected = 0o666 & ~mask
    for p in (written, rec, tmp_path / "LB.md", tmp_path / "site" / "index.html",
              *sorted((tmp_path / "site" / "results").rglob("*.json"))):
        assert stat.S_IMODE(p.stat().st_mode) == expected, f"{p}: {oct(stat.S_IMODE(p.stat().st_mode))}"

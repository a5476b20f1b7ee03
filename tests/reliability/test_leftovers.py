"""Case 3 of #11: what a killed run leaves behind.

* Temporary files (`.tmp-*`) older than 60 s in the results directory are
  removed by the next run; a fresh one (a concurrent writer's) is left alone.
* Featurization worker processes die with their parent when it is killed
  (SIGKILL, so no cleanup code runs): no orphan keeps computing.
"""

from __future__ import annotations

import os
import subprocess
import time

import psutil


def test_stale_temp_files_are_removed_by_the_next_run(bench, tmp_path):
    root = tmp_path / "r"
    folder = root / "toy_cubic" / "sleepy"
    folder.mkdir(parents=True)
    stale = [folder / ".tmp-k1ll3d.json", root / ".tmp-probe-abc", root / ".attempts" / ".tmp-x.json"]
    stale[2].parent.mkdir()
    for p in stale:
        p.write_text('{"schema_version": 2, "job_id": "trunc')
        old = time.time() - 600
        os.utime(p, (old, old))
    fresh = folder / ".tmp-concurrent-writer.json"  # seconds old: a live writer's, must not be pulled
    fresh.write_text("{")

    p = bench("run", "-m", "sleepy", "-t", "toy_cubic", "--json", "--results-dir", root, check=0)
    assert [p.exists() for p in stale] == [False, False, False]
    assert fresh.exists()
    assert "removed 3 stale temporary file(s)" in p.stderr
    assert len(bench.result_files(root)) == 1 and len(bench.records(p)) == 1


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def _kill_while_workers_run(bench, args, *, grace: float, **env) -> None:
    """Start `bench *args`, SIGKILL it once two worker processes run, and require them gone within `grace` s."""
    proc = bench.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **env)
    parent = psutil.Process(proc.pid)
    workers: list[psutil.Process] = []
    try:
        def busy_workers() -> bool:
            workers[:] = parent.children(recursive=True)
            return len(workers) >= 2

        assert bench.wait_for(busy_workers, timeout=20), "no worker processes started"
        time.sleep(0.5)  # let them work
        workers = parent.children(recursive=True)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    gone = bench.wait_for(lambda: not _alive(workers), timeout=grace)
    orphans = [w.pid for w in _alive(workers)]
    for w in _alive(workers):  # only on failure: no stray worker outlives the test
        w.kill()
    assert gone, f"orphaned worker processes {orphans} survive their killed parent"


def test_featurization_workers_die_with_a_killed_bench_run(bench, tmp_path):
    """rf on chain1d_long: 1400 structures to featurize with the real gong29 set, in 2 workers."""
    _kill_while_workers_run(bench, ("run", "-m", "rf", "-t", "chain1d_long", "--results-dir", tmp_path / "r",
                                    "--no-progress", "--jobs", "2", "--cache-dir", tmp_path / "cache"), grace=5)
    assert bench.result_files(tmp_path / "r") == []


def test_featurization_workers_die_at_once_with_a_killed_bench_featurize(bench, tmp_path):
    """Each featurizer call sleeps 30 s: workers that merely noticed the dead parent after their
    chunk would outlive the 3 s allowed here, so this checks they are killed with it."""
    out = tmp_path / "f.csv"
    _kill_while_workers_run(bench, ("featurize", "--descriptors", "slow_cell", "-t", "toy_cubic", "--out", out,
                                    "--jobs", "2", "--cache-dir", tmp_path / "cache"),
                            grace=3, CBTEST_FEATURIZE_SLEEP="30")
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))  # no half-written table

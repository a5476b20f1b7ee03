"""Case 4 of #11: concurrent runs on one results directory, and stale claims.

* Two `bench run`s started together on one results dir compute every job
  exactly once between them (the `--json` summaries of the two outputs are
  disjoint and together cover the grid).
* A claim (`.locks/<job id>.lock`) left by a process that no longer exists on
  this host is taken over, at start-up and when claiming a job; a live one is
  respected.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord
from crystalbench.runtime.results import ResultStore


def test_two_concurrent_runs_compute_each_job_exactly_once(bench, tmp_path):
    root = tmp_path / "r"
    args = ("run", "-m", "sleepy", "-t", "toy_cubic", *bench.seeds(8), "--json", "--results-dir", root)
    procs = [bench.popen(*args, CBTEST_SLEEP="0.3") for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    a, b = ({r["job_id"] for r in bench.records(out)} for out, _ in outs)
    n_a, n_b = (len(bench.records(out)) for out, _ in outs)
    assert n_a == len(a) and n_b == len(b), "a process computed a job twice"
    assert not a & b, f"jobs computed by both runs: {sorted(a & b)}"
    files = bench.result_files(root)
    assert len(a | b) == 8 == len(files)
    assert {ResultRecord.read(f).validate().job_id for f in files} == a | b
    assert bench.locks(root) == [] and bench.temp_files(root) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _lock(path, pid: int, host: str | None = None, age: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "time": time.time() - age,
                                "job": "left by a killed run"}))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def test_stale_lock_of_a_dead_process_is_recovered_end_to_end(bench, tmp_path):
    root = tmp_path / "r"
    args = ("run", "-m", "sleepy", "-t", "toy_cubic", *bench.seeds(2), "--json", "--results-dir", root)
    first = bench.records(bench(*args, check=0))
    for f in bench.result_files(root):  # as if the run had been killed while holding both claims
        f.unlink()
    dead = _dead_pid()
    for rec in first:
        _lock(root / ".locks" / f"{rec['job_id']}.lock", dead)
    p = bench(*args, check=0)
    assert sorted(r["job_id"] for r in bench.records(p)) == sorted(r["job_id"] for r in first)
    assert "being computed by" not in p.stderr
    assert len(bench.result_files(root)) == 2 and bench.locks(root) == []


def test_claims_take_over_dead_holders_and_respect_live_ones(tmp_path):
    store = ResultStore(tmp_path)
    job = Job(model="dummy", task="toy_cubic", protocol="paper", fold=0, seed=0)
    lock = tmp_path / ".locks" / f"{job.id}.lock"

    _lock(lock, _dead_pid())  # dead process on this host
    claim = store.claim(job)
    assert claim is not None and json.loads(lock.read_text())["pid"] == os.getpid()
    claim.release()
    assert not lock.exists()

    lock.write_text("")  # a writer killed between creating and filling its lock, long ago
    old = time.time() - 3600
    os.utime(lock, (old, old))
    claim = store.claim(job)
    assert claim is not None
    claim.release()

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(lock, sleeper.pid)  # a live process on this host
        assert store.claim(job) is None
        assert store.holder(job) == f"{socket.gethostname()} pid {sleeper.pid}"
        store.prepare()  # start-up cleaning must not drop a live claim either
        assert lock.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock.unlink()

    _lock(lock, 1, host="another-host.example", age=60)  # another host, recent: cannot be checked, respected
    assert store.claim(job) is None
    _lock(lock, 1, host="another-host.example", age=2 * 24 * 3600)  # another host, older than STALE_LOCK_S
    claim = store.claim(job)
    assert claim is not None
    claim.release()

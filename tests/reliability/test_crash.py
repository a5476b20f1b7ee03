"""The crash test of #11: SIGKILL a running grid at random moments, resume, and count the damage.

A 12-job grid (sleepy, CBTEST_SLEEP=0.15 s per job) is killed with SIGKILL at
>= 10 moments drawn from a seeded RNG (during start-up and loading, and inside
the job loop: fitting, writing, releasing claims); each next run resumes it
(once every job is recorded, the next runs use --rerun, so kills also land
while good records are being replaced). Between runs, time "passes": the temp
files a kill left are aged past the 60 s after which a run may delete them.

* 0 lost: a final run completes the grid, every job has its record;
* 0 duplicated: exactly one record file per job, after every kill;
* 0 corrupt: every file on disk parses and validates after every kill, and
  `bench results validate` accepts the final directory;
* 0 leftovers: every run that got as far as its jobs removed the (aged) temp
  files of the kills before it; after the final clean run there is no temp
  file and no `.locks/*.lock`;
* 0 orphans: nothing a killed run started survives it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections import Counter

import psutil

from crystalbench.contract.record import ResultRecord

N_JOBS = 12
KILLS = 10


def _check_records(bench, root) -> set[str]:
    ids = []
    for f in bench.result_files(root):
        rec = ResultRecord.read(f).validate()  # raises on a truncated or corrupt record
        assert rec.ok, f"{f}: {rec.error}"
        ids.append(rec.job_id)
    dup = [i for i, n in Counter(ids).items() if n > 1]
    assert not dup, f"jobs recorded twice: {dup}"
    return set(ids)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def _claimed_by(bench, root, pid: int) -> bool:
    """Whether process `pid` holds a claim: it is past start-up (and the results-dir clean-up) and in a job."""
    for lock in bench.locks(root):
        try:
            if json.loads(lock.read_text()).get("pid") == pid:
                return True
        except (OSError, ValueError):  # being written or removed right now
            continue
    return False


def _wrote_since(bench, root, started: float) -> bool:
    for f in bench.result_files(root):
        try:
            if f.stat().st_mtime >= started:
                return True
        except FileNotFoundError:  # replaced right now
            continue
    return False


def _age(paths, seconds: float = 120.0) -> None:
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then))


def test_sigkill_at_random_moments_loses_duplicates_and_corrupts_nothing(bench, tmp_path):
    rng = random.Random(20240611)
    root = tmp_path / "r"
    args = ("run", "-m", "sleepy", "-t", "toy_cubic", *bench.seeds(N_JOBS), "--no-progress",
            "--results-dir", root)
    kills, runs, in_job, recorded = 0, 0, 0, set()
    while kills < KILLS:
        runs += 1
        assert runs <= 3 * KILLS, f"only {kills} of {runs} runs could be killed"
        aged = bench.temp_files(root)
        _age(aged)
        rerun = ("--rerun",) if len(recorded) == N_JOBS else ()
        started = time.time()
        proc = bench.popen(*args, *rerun, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, CBTEST_SLEEP="0.15")
        parent = psutil.Process(proc.pid)
        moment = rng.random()
        if moment < 0.2:  # anywhere: start-up, loading, the first job
            delay = rng.uniform(0.2, 2.5)
        elif moment < 0.5:  # once this run claims its first job (its fit, the torch import, its write)
            bench.wait_for(lambda p=proc: p.poll() is not None or _claimed_by(bench, root, p.pid), timeout=60,
                           interval=0.01)
            delay = rng.uniform(0.0, 2.0)
        else:  # once this run has written a record: inside the job loop (fit, write, release, next claim)
            bench.wait_for(lambda p=proc, t=started: p.poll() is not None or _wrote_since(bench, root, t),
                           timeout=60, interval=0.01)
            delay = rng.uniform(0.0, 0.4)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            children = parent.children(recursive=True)
            reached_jobs = _claimed_by(bench, root, proc.pid) or _wrote_since(bench, root, started)
            proc.kill()
            proc.wait(timeout=30)
            kills += 1
            in_job += reached_jobs
            assert bench.wait_for(lambda c=children: not _alive(c), timeout=5), "orphan processes"
        else:
            assert proc.returncode == 0, f"run {runs} exited {proc.returncode}"
            reached_jobs = True
        recorded = _check_records(bench, root)
        if reached_jobs:
            left = [p for p in aged if p.exists()]
            assert not left, f"run {runs} did not remove the stale temp files of earlier kills: {left}"

    assert in_job >= KILLS // 2, f"only {in_job} of {kills} kills landed inside the job loop"

    _age(bench.temp_files(root))
    final = bench(*args, "--json", check=0)
    recorded = _check_records(bench, root)
    assert len(recorded) == N_JOBS, f"lost jobs: {N_JOBS - len(recorded)}"
    assert len(bench.result_files(root)) == N_JOBS
    assert {r["job_id"] for r in bench.records(final)} <= recorded
    assert sorted(ResultRecord.read(f).seed for f in bench.result_files(root)) == list(range(N_JOBS))
    assert bench.temp_files(root) == [], "temporary files left after a clean run"
    assert bench.locks(root) == [], "claims left after a clean run"
    attempts = root / ".attempts"
    assert not (attempts.exists() and any(attempts.iterdir())), "failed attempts from a crash-only test"
    v = bench("results", "validate", root, "--no-official-splits", check=0)
    assert f"{N_JOBS} valid, 0 invalid" in v.stderr
    assert _alive(psutil.Process().children(recursive=True)) == [], "orphan processes"

"""Cases 6 and 9 of #11: plugins cannot end a grid, alter a stored result, or write outside --results-dir.

* A model calling `sys.exit(0)` is a failed record ("called sys.exit"), the
  grid goes on, and the exit code is 1.
* An observer (`bench_run_finished`) raising SystemExit, or mutating the record
  it is given, costs a warning at most: the record on disk is intact and the
  grid goes on.
* A plugin registering a task or model named `..`, `a/b` or with a newline, or
  a task whose protocol is a path, is reported as a registry problem (one
  line each) and ignored; nothing is written outside --results-dir.
"""

from __future__ import annotations

import json

import pytest

from crystalbench.contract.errors import BadInputError
from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord


def test_model_calling_sys_exit_is_a_failed_record_and_the_grid_goes_on(bench, tmp_path):
    root = tmp_path / "r"
    p = bench("run", "-m", "sleepy", "-t", "toy_cubic", *bench.seeds(3), "--json", "--results-dir", root,
              CBTEST_EXIT_SEED="1", check=1)
    by_seed = {r["seed"]: r for r in bench.records(p)}
    assert {s: r["status"] for s, r in by_seed.items()} == {0: "ok", 1: "failed", 2: "ok"}
    assert "called sys.exit(0)" in by_seed[1]["error"]
    assert "Traceback" not in p.stderr
    stored = {ResultRecord.read(f).validate().seed: ResultRecord.read(f) for f in bench.result_files(root)}
    assert stored[1].status == "failed" and "sys.exit" in stored[1].error and stored[0].ok and stored[2].ok


@pytest.mark.parametrize("how", ["exit", "mutate"])
def test_observer_cannot_end_the_grid_or_alter_the_record(bench, tmp_path, how):
    root, log = tmp_path / "r", tmp_path / "observer.log"
    env = {"CBTEST_OBSERVER_LOG": str(log)}
    env["CBTEST_OBSERVER_EXIT" if how == "exit" else "CBTEST_OBSERVER_MUTATE"] = "1"
    p = bench("run", "-m", "sleepy", "-t", "toy_cubic", *bench.seeds(2), "--json", "--results-dir", root, check=0,
              **env)
    assert "Traceback" not in p.stderr
    emitted = bench.records(p)
    assert [r["status"] for r in emitted] == ["ok", "ok"]  # the grid went on after the first observer call
    assert len(log.read_text().splitlines()) == 2  # the observer saw both records
    warned = [line for line in p.stderr.splitlines() if "bench_run_finished raised" in line]
    if how == "exit":
        assert len(warned) == 2 and all(w.startswith("warning:") and "SystemExit" in w for w in warned), p.stderr
    for r in emitted:
        assert r["metrics"] and r["job_id"] != "tampered"
    files = bench.result_files(root)
    assert len(files) == 2
    for f in files:
        rec = ResultRecord.read(f).validate()
        assert rec.ok and rec.job_id == rec.job.id and rec.metrics and rec.provenance
        assert rec.job_id in {r["job_id"] for r in emitted}


# ----------------------------------------------------------------------------- names (case 9)
BAD = ("'..'", "'a/b'", r"'line\nbreak'")


def _tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_hostile_names_are_registry_problems_and_ignored(bench, tmp_path):
    env = {"CBTEST_BAD_NAMES": "1"}
    tasks = bench("list", "tasks", "--json", check=0, **env)
    models = bench("list", "models", "--json", check=0, **env)
    task_names = {r["name"] for r in json.loads(tasks.stdout)}
    model_names = {r["name"] for r in json.loads(models.stdout)}
    assert "toy_class" in task_names and "classy" in model_names  # the plugin's good specs are kept
    assert not {"..", "a/b", "line\nbreak", "evil_protocol"} & (task_names | model_names)
    for p, kind in ((tasks, "task"), (models, "model")):
        assert "Traceback" not in p.stderr
        assert all(line.startswith(("warning:", "error:", "note:")) for line in p.stderr.splitlines()), (
            f"a name with a newline broke a message in two:\n{p.stderr}")
        problems = [line for line in p.stderr.splitlines() if "cbtest_reliability" in line]
        for name in BAD:
            assert any(f"{kind} name {name} is not allowed" in line for line in problems), (name, p.stderr)
        assert any("protocol '../../escape'" in line for line in problems), p.stderr


def test_hostile_names_cannot_be_run_and_nothing_is_written_outside_results(bench, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {"CBTEST_BAD_NAMES": "1"}
    common = ("--results-dir", work / "results", "--cache-dir", tmp_path / "cache")
    before = _tree(tmp_path)
    p = bench("run", "-m", "dummy", "-m", "sleepy", "-t", "toy_cubic", "--json", *common, cwd=work, check=0, **env)
    assert {r["model"] for r in bench.records(p)} == {"dummy", "sleepy"}
    for model, task, needle in (("a/b", "toy_cubic", "unknown model 'a/b'"), ("..", "toy_cubic", "unknown model '..'"),
                                ("dummy", "..", "unknown task '..'"), ("dummy", "evil*", "no task matches 'evil*'")):
        bench.one_error(bench("run", "-m", model, "-t", task, *common, cwd=work, **env), needle)
    new = _tree(tmp_path) - before
    outside = sorted(n for n in new if not n.startswith(("work/results", "cache")))
    assert outside == [], f"written outside --results-dir: {outside}"
    assert all(".." not in f.relative_to(work / "results").parts for f in (work / "results").rglob("*"))


@pytest.mark.parametrize("field,value", [("model", ".."), ("task", "a/b"), ("task", "x\ny"), ("protocol", "../p"),
                                         ("model", ".hidden"), ("task", "")])
def test_a_job_with_a_path_like_name_cannot_exist(field, value):
    kw = dict(model="dummy", task="toy_cubic", protocol="paper", fold=0, seed=0)
    kw[field] = value
    with pytest.raises(BadInputError):
        Job(**kw)

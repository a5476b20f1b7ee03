"""The `bench` command end to end, with a real installed third-party plugin.

`installed` pip-installs examples/crystalbench-example (the README's plugin)
and tests/plugins (toy task, slow model, broken plugins) into a temp dir that
is put on PYTHONPATH, exactly as a user's `pip install` would register them.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import EXAMPLE_PLUGIN_DIR, PLUGINS_DIR, bench_process, env_with_site, pip_install_plugins


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    env = env_with_site(pip_install_plugins(tmp_path_factory, EXAMPLE_PLUGIN_DIR, PLUGINS_DIR))
    env.pop("CRYSTALBENCH_DISABLE_PLUGINS", None)
    return env


def test_plugins_lists_builtins_third_party_and_broken(installed):
    p = bench_process("plugins", "--json", check=0, env=installed)
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert rows["dummy"]["distribution"] == "crystalbench" and rows["dummy"]["status"] == "ok"
    assert rows["ridge"]["distribution"] == "crystalbench-example" and rows["ridge"]["version"] == "0.1.0"
    assert rows["cbtest_broken_import"]["status"].startswith("BROKEN: failed to import")
    assert "a_module_that_does_not_exist" in rows["cbtest_broken_import"]["status"]


def test_example_plugin_runs_through_bench_run_despite_broken_plugins(installed, tmp_path):
    p = bench_process("run", "-m", "ridge", "-m", "dummy", "-t", "toy_cubic", "--json",
              "--results-dir", str(tmp_path / "r"), check=0, env=installed)
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert {r["model"] for r in recs} == {"ridge", "dummy"}
    for r in recs:
        assert {"model", "task", "fold", "seed", "status", "metrics"} <= set(r)
        assert set(r["metrics"]) == {"mae", "rmse", "mad", "mae_over_mad", "r2", "spearman"}
    by = {r["model"]: r["metrics"]["mae_over_mad"] for r in recs}
    assert by["ridge"] < by["dummy"]
    # the broken plugins were reported in one line each, not as tracebacks
    assert "cbtest_broken_import" in p.stderr and "Traceback" not in p.stderr


def test_unknown_names_get_one_line_did_you_mean(installed, tmp_path):
    p = bench_process("run", "-m", "ridg", "-t", "toy_cubic", "--results-dir", str(tmp_path), check=2, env=installed)
    assert "did you mean 'ridge'" in p.stderr and "Traceback" not in p.stderr
    p = bench_process("run", "-m", "dummy", "-t", "toy_cubc", "--results-dir", str(tmp_path), check=2, env=installed)
    assert "unknown task 'toy_cubc'" in p.stderr and "toy_cubic" in p.stderr


def test_failed_job_gives_nonzero_exit_but_grid_completes(installed, tmp_path):
    env = dict(installed, CBTEST_FAIL_SEED="1")
    p = bench_process("run", "-m", "sleepy", "-t", "toy_cubic", "--seed", "0", "--seed", "1", "--seed", "2",
              "--json", "--results-dir", str(tmp_path), check=1, env=env)
    status = {json.loads(l)["seed"]: json.loads(l)["status"] for l in p.stdout.splitlines()}
    assert status == {0: "ok", 1: "failed", 2: "ok"}


def test_killed_run_resumes_without_loss_or_duplicates(installed, tmp_path):
    env = dict(installed, CBTEST_SLEEP="0.7")
    results = tmp_path / "r"
    args = [sys.executable, "-m", "crystalbench.cli", "run", "-m", "sleepy", "-t", "toy_cubic",
            *sum((["--seed", str(s)] for s in range(8)), []), "--json", "--results-dir", str(results)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done_before = []
    for line in proc.stdout:  # wait until two jobs have finished, then kill hard
        done_before.append(json.loads(line)["seed"])
        if len(done_before) == 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    files = [f for f in results.rglob("*.json") if not f.name.startswith(".tmp-")]
    assert len(files) >= 2
    # A job may finish between the second line being read and the kill landing, so what
    # counts as "done before" is what is on disk, not only what was printed.
    on_disk = {json.loads(f.read_text())["job"]["seed"] for f in files}  # every file is a complete record
    assert set(done_before) <= on_disk
    p = bench_process("run", "-m", "sleepy", "-t", "toy_cubic",
              *sum((["--seed", str(s)] for s in range(8)), []), "--json", "--results-dir", str(results), check=0, env=env | {"CBTEST_SLEEP": "0"})
    rerun = [json.loads(l)["seed"] for l in p.stdout.splitlines()]
    assert not set(rerun) & on_disk
    assert sorted(on_disk | set(rerun)) == list(range(8))
    assert len([f for f in results.rglob("*.json") if not f.name.startswith(".tmp-")]) == 8


def test_leaderboard_from_results(installed, tmp_path):
    results = tmp_path / "r"
    bench_process("run", "-m", "ridge", "-m", "dummy", "-t", "toy_cubic", "--seed", "0", "--seed", "1",
          "--results-dir", str(results), "--no-progress", check=0, env=installed)
    out = tmp_path / "LB.md"
    bench_process("leaderboard", "build", "--results-dir", str(results), "--out", str(out), check=0, env=installed)
    text = out.read_text()
    assert "toy\\_cubic" in text  # escaped
    row = next(l for l in text.splitlines() if l.startswith("| toy\\_cubic") and "MAE" not in l)
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = next(l for l in text.splitlines() if l.startswith("| task"))
    names = [c.strip() for c in header.strip("|").split("|")]
    ridge = cells[names.index("ridge")]
    assert ridge.startswith("**") and "±" in ridge  # best, with std over 2 seeds
    assert not cells[names.index("dummy")].startswith("**")


def test_list_tasks_json_and_help(installed):
    p = bench_process("list", "tasks", "--json", check=0, env=installed)
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert rows["toy_cubic"]["size"] == 60 and rows["toy_cubic"]["type"] == "regression"
    h = bench_process("run", "--help", check=0, env=installed)
    assert "--protocol" in h.stdout and "Examples" in h.stdout


def test_chain1d_short_dummy_and_rf_end_to_end(tmp_path):
    """Issue #2's acceptance path on the embedded chain task, with the real gong29 descriptors."""
    env = dict(os.environ)
    results = tmp_path / "results"
    args = ("run", "-m", "dummy", "-m", "rf", "-t", "chain1d_short", "--jobs", "2", "--json", "--results-dir", str(results))
    first = [json.loads(l) for l in bench_process(*args, check=0, env=env).stdout.splitlines()]
    assert {r["model"] for r in first} == {"dummy", "rf"} and all(r["status"] == "ok" for r in first)
    files = sorted(results.rglob("*.json"))
    again = bench_process(*args, check=0, env=env)
    assert again.stdout.strip() == "" and sorted(results.rglob("*.json")) == files
    out = tmp_path / "LB.md"
    bench_process("leaderboard", "build", "--results-dir", str(results), "--out", str(out), check=0, env=env)
    text = out.read_text()
    mae_table = text.split("## MAE/MAD")[1].split("##")[0]
    header = next(l for l in mae_table.splitlines() if l.startswith("| task"))
    row = next(l for l in mae_table.splitlines() if l.startswith("| chain1d\\_short"))
    names = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    rf, dummy = cells[names.index("rf")], cells[names.index("dummy")]
    assert rf.startswith("**") and float(rf.strip("*")) < float(dummy) < 1.5

"""Trust in records (issue #18 items 1, 2, 4, 5; #21 items 4 and 8): what a record claims is checked or labelled.

* a forged ground truth (y_true set to the predictions, metrics recomputed) is rejected, naming the id;
* copies of one record count once in the leaderboard and are named by `bench results validate`;
* a configuration that is not the model's recipe (or a tuning trial) is labelled as such;
* predictions that overflow every score make a failed record, not an `ok` one with MAE inf;
* the leaderboard's "how these results were made" commands recreate the same jobs (--data, tuned params);
* matbench-protocol rows show Matbench's standard deviation (ddof=0) and the page says which one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cbtest_plugins import toolkit  # noqa: E402
from helpers import bench_invoke

from crystalbench import ModelSpec, hookimpl  # noqa: E402
from crystalbench.contract.context import RunContext  # noqa: E402
from crystalbench.contract.job import Job  # noqa: E402
from crystalbench.contract.metrics import score  # noqa: E402
from crystalbench.contract.record import ResultRecord  # noqa: E402
from crystalbench.leaderboard.collect import collect, run_commands, summarize  # noqa: E402
from crystalbench.leaderboard.markdown import render_summary  # noqa: E402
from crystalbench.runtime.registry import load_registry  # noqa: E402
from crystalbench.runtime.results import ResultStore  # noqa: E402
from crystalbench.runtime.runner import GridRequest, plan_grid, run_grid  # noqa: E402
from crystalbench.runtime.stages import Workspace  # noqa: E402
from crystalbench.runtime.validate import validate_results  # noqa: E402


@dataclass(frozen=True)
class KnobbyParams:
    """A fast model with hyperparameters that have no command-line flag (besides epochs)."""

    epochs: int = 2
    scale: float = 1.0
    tag: str = "a"


class Knobby:
    """Predicts the training mean times `scale` (or 1e308 with `huge`)."""

    def __init__(self, ctx):
        self.scale = float(ctx.hparams.get("scale", 1.0))
        self.huge = ctx.hparams.get("huge", False)

    def fit(self, train, val, *, seed, progress):
        self.mean = float(np.mean(train.targets)) * self.scale

    def predict(self, data):
        return np.full(len(data), 1e308 if self.huge else self.mean)


@hookimpl
def _models():
    return [
        ModelSpec(name="knobby", factory=Knobby, needs="structure", needs_validation=False, params=KnobbyParams),
        ModelSpec(name="huge", factory=Knobby, needs="structure", needs_validation=False, defaults={"huge": True}),
    ]


PLUGIN = SimpleNamespace(bench_models=_models)

pytestmark = pytest.mark.registry(("cbtest_toolkit", toolkit), ("trust_plugin", PLUGIN))


def _ctx(tmp_path, **kw):
    base = dict(results_dir=tmp_path / "results", data_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    return RunContext(**(base | kw))


def _req(**kw):
    return GridRequest(**({"models": ["knobby"], "tasks": ["toy_cubic"]} | kw))


# ----------------------------------------------------------------------------- item 1: forged ground truth
@pytest.fixture(scope="module")
def matbench_record(tmp_path_factory) -> Path:
    """A real record: dummy on fold 0 of matbench_phonons under the official Matbench folds (~3 s)."""
    from crystalbench.cli.main import make_context
    from crystalbench.tasks.matbench import local_file

    if local_file("matbench_phonons", make_context()) is None:
        pytest.skip("matbench_phonons data not available")
    root = tmp_path_factory.mktemp("mb") / "alice"
    code, out = bench_invoke("run", "-m", "dummy", "-t", "matbench_phonons", "--protocol", "matbench", "--folds", "0",
                      "--results-dir", str(root), "--no-progress")
    assert code == 0, out
    return root


def _forge(d: dict) -> None:
    """y_true := y_pred and the metrics recomputed: every self-consistency check still passes."""
    p = d["predictions"]
    p["y_true"] = list(p["y_pred"])
    p["y_true"][3] += 1.0  # one differing value keeps MAD > 0, so the forged MAE/MAD is a tiny number
    d["metrics"] = score("regression", np.array(p["y_true"]), np.array(p["y_pred"]))


def test_forged_ground_truth_is_rejected_naming_the_first_differing_id(matbench_record, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(matbench_record, root)
    (path,) = root.rglob("*.json")
    d = json.loads(path.read_text())
    _forge(d)
    path.write_text(json.dumps(d))
    ResultRecord.read(path).validate()  # self-consistent: the record alone cannot tell
    first = d["predictions"]["ids"][0]
    for strict in ([], ["--require-official-splits"]):
        code, out = bench_invoke("results", "validate", str(root), *strict)
        assert code == 1, out
        assert f"invalid: {path}: y_true of id {first!r} is" in out and "but task 'matbench_phonons' has" in out, out
    code, out = bench_invoke("results", "validate", str(matbench_record), "--require-official-splits")
    assert code == 0 and "1 valid, 0 invalid" in out, out


def test_truth_that_cannot_be_checked_is_a_note_or_invalid_when_required(reg, tmp_path):
    ctx = _ctx(tmp_path)
    run_grid(reg, ctx, _req())
    other = load_registry()  # an installation without the toy task: its data cannot be loaded
    report = validate_results(ctx.results_dir, other, ctx)
    assert report.valid == 1 and any("'toy_cubic'" in n and "ground truth not checked" in n for n in report.notes)
    report = validate_results(ctx.results_dir, other, ctx, require_truth=True)
    assert report.valid == 0 and "not registered here" in report.invalid[0][1]
    assert validate_results(ctx.results_dir, reg, ctx, require_truth=True).valid == 1


def test_data_records_are_checked_against_the_given_file(tmp_path):
    data = _composition_csv(tmp_path / "tiny.csv")
    root = tmp_path / "results"
    code, out = bench_invoke("run", "-m", "dummy", "--data", str(data), "--target", "y", "--results-dir", str(root),
                      "--no-progress")
    assert code == 0, out
    (path,) = root.rglob("*.json")
    d = json.loads(path.read_text())
    _forge(d)
    path.write_text(json.dumps(d))
    code, out = bench_invoke("results", "validate", str(root), "--require-truth")
    assert code == 1 and "not registered here" in out and "--data FILE" in out, out
    code, out = bench_invoke("results", "validate", str(root), "--data", str(data))
    assert code == 1 and "y_true of id" in out, out


# ----------------------------------------------------------------------------- item 2: copies count once
def test_copies_of_a_record_count_once_and_validate_names_them(reg, tmp_path):
    ctx = _ctx(tmp_path)
    run_grid(reg, ctx, _req(seeds=[0, 1]))
    root = ctx.results_dir
    original = sorted(root.rglob("*.json"))[0]
    shutil.copy(original, root / "copy1.json")
    (root / "elsewhere").mkdir()
    shutil.copy(original, root / "elsewhere" / "copy2.json")
    summary = collect(root)
    (cell,) = summary.cells.values()
    assert cell.n == 2 and cell.runs == "1×2"
    assert len(summary.duplicates) == 2 and all(first == original for _, _, first in summary.duplicates)
    assert "2 further copies of already counted jobs left out" in render_summary(summary)
    report = validate_results(root, reg, ctx)
    assert report.valid == 2 and {p.name for p, _ in report.invalid} == {"copy1.json", "copy2.json"}
    assert all(f"whose record is {original}" in why for _, why in report.invalid)


def test_an_older_record_of_the_same_run_from_other_data_counts_once(reg, tmp_path):
    """After a data update (or a new model version) the old and new record of one seed share a cell: only
    the newest counts, and the page says an older one was left out (no n=2 for one run)."""
    ctx = _ctx(tmp_path)
    (rec,) = run_grid(reg, ctx, _req()).finished
    old = dataclasses.replace(rec.job, data=rec.job.data + "-old")
    stale = dataclasses.replace(rec, job=old, job_id=old.id, created="2000-01-01T00:00:00+00:00")
    stale.metrics = dict(stale.metrics)
    summary = summarize([rec, stale], check=False)
    (cell,) = summary.cells.values()
    assert cell.n == 1 and cell.entries[0].record is rec and summary.superseded == 1
    assert "1 older record(s) of a counted run left out" in render_summary(summary)


# ----------------------------------------------------------------------------- item 4: recipe or not
def test_records_know_whether_they_are_the_recipe(reg, tmp_path):
    ctx = _ctx(tmp_path)
    (recipe,) = run_grid(reg, ctx, _req()).finished
    (short,) = run_grid(reg, ctx, _req(epochs=3, config={"knobby": {"scale": 2.0}})).finished
    (same,) = run_grid(reg, ctx, _req(epochs=2, seeds=[1])).finished  # the default, given explicitly
    assert recipe.is_recipe and recipe.non_default == {} and recipe.display_model == "knobby"
    assert same.is_recipe
    assert short.non_default == {"epochs": 3, "scale": 2.0} and not short.is_recipe
    assert short.display_model == "knobby (epochs=3, scale=2.0)"
    again = ResultRecord.read(ResultStore(ctx.results_dir).path(short.job)).validate()
    assert again.non_default == short.non_default and again.origin == "run"


def test_non_default_runs_are_labelled_and_tuning_trials_never_bold(reg, tmp_path):
    ctx = _ctx(tmp_path)
    run_grid(reg, ctx, _req(epochs=3))
    summary = collect(ctx.results_dir)
    assert list(summary.columns) == ["knobby (epochs=3)"]  # alone in its row, still not "knobby"
    run_grid(reg, ctx.with_(options={"origin": "tune"}), _req(config={"knobby": {"scale": 1.0001}}))
    trial = [r for r in ResultStore(ctx.results_dir).records() if r.origin == "tune"]
    assert len(trial) == 1 and not trial[0].is_recipe
    assert trial[0].display_model == "knobby (scale=1.0001, tuning trial)"
    page = render_summary(collect(ctx.results_dir))
    assert "knobby (scale=1.0001, tuning trial)" in page
    assert "**" not in page.split("## MAE/MAD")[1].split("##")[0].split("\n", 3)[3]  # the trial is better, not bold


def test_schema_2_records_are_read_and_never_taken_for_the_recipe(reg, tmp_path):
    ctx = _ctx(tmp_path)
    (rec,) = run_grid(reg, ctx, _req()).finished
    d = rec.to_dict()
    d["schema_version"] = 2
    del d["non_default"], d["origin"]
    old = ResultRecord.from_dict(d).validate()
    assert old.origin == "unknown" and not old.is_recipe and old.display_model == "knobby (recipe unchecked)"


# ----------------------------------------------------------------------------- item 5: overflowing predictions
def test_predictions_that_overflow_the_scores_make_a_failed_record(reg, tmp_path):
    ctx = _ctx(tmp_path)
    (rec,) = run_grid(reg, ctx, _req(models=["huge"])).finished
    assert not rec.ok and rec.metrics == {}
    assert "mae, rmse are not finite" in rec.error and "1e+308" in rec.error
    assert ResultStore(ctx.results_dir).existing(rec.job) is not None  # a valid (failed) record


# ----------------------------------------------------------------------------- #21.4: commands that run
def _composition_csv(path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "composition", "y"])
        for i in range(n):
            w.writerow([f"c{i}", ["NaCl", "KBr", "CsI", "LiF"][i % 4], f"{rng.normal():.6f}"])
    return path


def test_listed_command_of_a_data_run_reproduces_its_job(tmp_path, monkeypatch):
    data = _composition_csv(tmp_path / "tiny.csv")
    root = tmp_path / "results"
    code, out = bench_invoke("run", "-m", "dummy", "--data", str(data), "--target", "y", "--results-dir", str(root),
                      "--no-progress")
    assert code == 0, out
    (line,) = run_commands(collect(root))
    assert "-t user-" not in line and "--data tiny.csv --target y" in line
    monkeypatch.chdir(tmp_path)  # pasted where the data is
    code, out = bench_invoke(*shlex.split(line)[1:], "--results-dir", str(root), "--no-progress")
    assert code == 0 and "0 job(s) finished, 0 failed, 1 already done" in out, out


def test_listed_command_of_a_tuned_run_carries_its_hyperparameters(reg, tmp_path):
    ctx = _ctx(tmp_path)
    (rec,) = run_grid(reg, ctx, _req(epochs=4, seeds=[3], config={"knobby": {"scale": 0.5, "tag": "x y"}})).finished
    lines = run_commands(summarize([rec]))
    assert lines[0].endswith("--config /dev/stdin <<'EOF'") and lines[-1] == "EOF", lines
    args = shlex.split(lines[0].removesuffix(" <<'EOF'"))
    config = tomllib.loads("\n".join(lines[1:-1]))
    assert config == {"knobby": {"scale": 0.5, "tag": "x y"}}
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    req = GridRequest(models=[args[args.index("-m") + 1]], tasks=[args[args.index("-t") + 1]],
                      protocol=flag["--protocol"], epochs=int(flag["--epochs"]), seeds=[int(flag["--seed"])],
                      config=config)
    jobs, _ = plan_grid(reg, ctx, req, Workspace(reg, ctx))
    assert [j.id for j in jobs] == [rec.job_id]


# ----------------------------------------------------------------------------- #21.8: which std
def test_matbench_rows_show_matbench_std_and_the_page_says_which(reg, tmp_path):
    ctx = _ctx(tmp_path)
    (base,) = run_grid(reg, ctx, _req()).finished
    records, maes = [], []
    for fold in range(5):
        job = Job.from_dict({**base.job.to_dict(), "protocol": "matbench", "fold": fold})
        y_true = np.array(base.predictions["y_true"])
        y_pred = y_true + 0.1 * (fold + 1)
        preds = {**base.predictions, "y_pred": y_pred.tolist()}
        rec = dataclasses.replace(base, job=job, job_id=job.id, predictions=preds,
                                  metrics=score("regression", y_true, y_pred))
        records.append(rec)
        maes.append(rec.metrics["mae"])
    summary = summarize(records)
    (cell,) = summary.cells.values()
    assert cell.metrics["mae"]["std_ddof0"] == pytest.approx(float(np.std(maes)))
    page = render_summary(summary)
    mean = f"{np.mean(maes):.4f}"[:5]
    assert f"± {np.std(maes):.{len(mean.partition('.')[2])}f}" in page.split("## MAE in")[1]
    assert "ddof=0" in page and "ddof=1" in page

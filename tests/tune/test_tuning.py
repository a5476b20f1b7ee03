"""`bench tune`: spaces, a tiny search end to end that never sees the test set, resume, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cbtest_plugins import toolkit  # noqa: E402
from click.testing import CliRunner
from helpers import PLUGINS_DIR

from crystalbench.cli import cli  # noqa: E402
from crystalbench.contract.context import RunContext  # noqa: E402
from crystalbench.contract.errors import BadInputError  # noqa: E402
from crystalbench.runtime.registry import load_registry  # noqa: E402
from crystalbench.runtime.results import ResultStore  # noqa: E402
from crystalbench.runtime.validate import validate_results  # noqa: E402
from crystalbench.tune import TuneRequest, load_space, tune  # noqa: E402

pytestmark = pytest.mark.registry(("cbtest_toolkit", toolkit))

optuna = pytest.importorskip("optuna")


@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text("[params]\nepochs = [1, 2, 3]\n")
    return p


def _ctx(tmp_path):
    return RunContext(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", data_dir=tmp_path)


def _trial_records(results):
    """Complete trial records: a killed write leaves a `.tmp-*` file, which is not a record."""
    return sorted(p for p in (results / ".tune").rglob("trials/**/*.json") if not p.name.startswith(".tmp-"))


def test_paper_spaces_map_to_model_parameters(reg):
    s2 = load_space("paper", reg.model("de-cgcnn"))
    assert s2.name == "paper-S2" and s2.grid_size == 24
    assert set(s2.dims) == {"atom_fea_len", "h_fea_len", "n_h", "lr"}
    s3 = load_space("paper", reg.model("alignn"))
    assert s3.name == "paper-S3" and s3.grid_size == 24
    assert s3.dims["hidden_features"].values == (64, 128, 256)
    with pytest.raises(BadInputError, match="neither the CGCNN"):
        load_space("paper", reg.model("rf"))


def test_user_space_is_validated_against_typed_params(reg, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[params]\nlearning_rate = [0.1]\n")
    with pytest.raises(BadInputError, match="'learning_rate' is not a hyperparameter of 'cgcnn'"):
        load_space(str(bad), reg.model("cgcnn"))
    bad.write_text('[params]\nn_conv = ["many"]\n')
    with pytest.raises(BadInputError):
        load_space(str(bad), reg.model("cgcnn"))
    ok = tmp_path / "ok.toml"
    ok.write_text("[params]\nlr = {low = 1e-4, high = 1e-2, log = true}\nn_h = [1, 2]\n")
    space = load_space(str(ok), reg.model("cgcnn"))
    assert space.grid_size is None and space.dims["lr"].log


def test_tiny_search_never_sees_test_ids_and_resumes(reg, tmp_path, space_file):
    ctx = _ctx(tmp_path)
    req = TuneRequest(model="sleepy", task="toy_cubic", space=load_space(str(space_file), reg.model("sleepy")),
                      trials=2)
    first = tune(reg, ctx, req)
    assert first.trials_done == 2 and first.trials_run == 2
    final = first.final
    assert final is not None and final.ok
    test_ids = set(final.predictions["ids"])
    # the trial split holds no test id, and no trial was scored on one
    split = json.loads((first.study_dir / "split.json").read_text())
    assert not test_ids & (set(split["train"]) | set(split["test"]))
    trials = _trial_records(ctx.results_dir)
    assert len(trials) == 2
    for path in trials:
        rec = json.loads(path.read_text())
        assert set(rec["predictions"]["ids"]) == set(split["test"])
        assert not test_ids & set(rec["predictions"]["ids"])
    # the final record is ordinary: valid, official split, provenance names the study and the choice
    report = validate_results(ctx.results_dir, reg, ctx)
    assert report.valid == 1 and not report.invalid  # trials live under .tune: not results
    link = final.provenance["tuning"]
    assert link["chosen_params"] == first.best_params and final.job.params["epochs"] == first.best_params["epochs"]
    assert (ctx.results_dir / link["study"] / "study.db").is_file()
    assert [r.job_id for r in ResultStore(ctx.results_dir).records()] == [final.job_id]
    # same command: same study, nothing re-run; more trials: the same study grows
    again = tune(reg, ctx, req)
    assert again.study_id == first.study_id and again.trials_run == 0 and len(_trial_records(ctx.results_dir)) == 2
    more = tune(reg, ctx, TuneRequest(**{**req.__dict__, "trials": 5}))
    assert more.study_id == first.study_id and more.trials_done == 3  # the grid has 3 points
    assert more.trials_run == 1  # one new trial; sleepy ignores epochs, so the best (and the final job) stay
    study = optuna.load_study(study_name=first.study_id, storage=f"sqlite:///{first.study_dir / 'study.db'}")
    params = [t.params["epochs"] for t in study.trials]
    assert sorted(params) == [1, 2, 3]


DRIVER = """
import sys
sys.path.insert(0, {plugins!r})
from cbtest_plugins import toolkit
from crystalbench.contract.context import RunContext
from crystalbench.runtime.registry import load_registry
from crystalbench.tune import TuneRequest, load_space, tune
reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
ctx = RunContext(results_dir={results!r}, cache_dir={cache!r}, data_dir={cache!r})
tune(reg, ctx, TuneRequest(model="sleepy", task="toy_cubic", space=load_space({space!r}, reg.model("sleepy")),
                           trials=3))
"""


def test_killed_search_resumes_without_loss_or_duplicates(tmp_path, space_file):
    results = tmp_path / "results"
    code = DRIVER.format(plugins=str(PLUGINS_DIR), results=str(results), cache=str(tmp_path / "cache"),
                         space=str(space_file))
    env = dict(os.environ, CBTEST_SLEEP="1.5")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _trial_records(results) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    landed = {p: p.read_bytes() for p in _trial_records(results)}  # what is on disk is what was done
    assert 1 <= len(landed) < 3
    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    ctx = RunContext(results_dir=results, cache_dir=tmp_path / "cache", data_dir=tmp_path)
    summary = tune(reg, ctx, TuneRequest(model="sleepy", task="toy_cubic",
                                         space=load_space(str(space_file), reg.model("sleepy")), trials=3))
    assert summary.trials_done == 3
    assert summary.trials_run == 3 - len(landed)  # only the missing trials ran
    after = _trial_records(results)
    assert len(after) == 3 and all(landed[p] == p.read_bytes() for p in landed)  # kept, not recomputed
    study = optuna.load_study(study_name=summary.study_id, storage=f"sqlite:///{summary.study_dir / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["epochs"] for t in done) == [1, 2, 3]
    assert validate_results(results, reg, ctx).valid == 1


def test_cli_tune_json(reg, tmp_path, space_file):
    out = CliRunner().invoke(cli, ["tune", "-m", "sleepy", "-t", "toy_cubic", "--space", str(space_file),
                                   "--trials", "2", "--json", "--results-dir", str(tmp_path / "r"),
                                   "--cache-dir", str(tmp_path / "c")], obj={"registry": reg})
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [line["trial"] for line in lines[:-1]] == [0, 1]
    assert lines[-1]["final"]["status"] == "ok" and lines[-1]["trials"] == 2
    assert "inputs changed" not in out.output  # trials differ from each other by design: no notice per trial
    bad = CliRunner().invoke(cli, ["tune", "-m", "sleepy", "-t", "toy_cubic", "--space", "paper"],
                             obj={"registry": reg})
    assert bad.exit_code == 2 and "neither the CGCNN" in bad.output


def test_tiny_cgcnn_paper_search(reg, tmp_path):
    """The paper's Table S2 space on a real GNN: 2 grid trials of 1 epoch, then the test run."""
    ctx = _ctx(tmp_path)
    req = TuneRequest(model="cgcnn", task="toy_cubic", space=load_space("paper", reg.model("cgcnn")), trials=2,
                      epochs=1, config={"cgcnn": {"n_conv": 1, "batch_size": 16}})
    summary = tune(reg, ctx, req)
    assert summary.trials_done == 2 and summary.final is not None and summary.final.ok
    assert set(summary.best_params) == {"atom_fea_len", "h_fea_len", "n_h", "lr"}
    assert validate_results(ctx.results_dir, reg, ctx).valid == 1


def test_parallel_trials_run_as_one_grid(reg, tmp_path, space_file, monkeypatch):
    """--parallel N asks N trials at once and runs them as one grid through the executor (N workers busy)."""
    import crystalbench.tune.study as tuning

    calls = []
    real = tuning.run_grid

    def counting(reg_, ctx_, req_, **kw):
        calls.append(len(req_) if isinstance(req_, list) else 1)
        return real(reg_, ctx_, req_, **kw)

    monkeypatch.setattr(tuning, "run_grid", counting)
    ctx = _ctx(tmp_path)
    req = TuneRequest(model="sleepy", task="toy_cubic", space=load_space(str(space_file), reg.model("sleepy")),
                      trials=3, parallel=2)
    summary = tune(reg, ctx, req)
    assert summary.trials_done == 3 and summary.trials_run == 3
    assert calls == [2, 1, 1]  # a batch of 2 trials, the last trial, then the final test run
    assert len(_trial_records(ctx.results_dir)) == 3
    study = optuna.load_study(study_name=summary.study_id, storage=f"sqlite:///{summary.study_dir / 'study.db'}")
    assert sorted(t.params["epochs"] for t in study.trials) == [1, 2, 3]  # distinct grid points in one batch


def test_fit_torch_stops_when_the_epoch_observer_says_so():
    """The shared loop reports each validation; an observer returning True (a pruned trial) stops it."""
    import numpy as np
    import torch

    from crystalbench.contract.telemetry import observing_epochs
    from crystalbench.gnn.trainer import TrainConfig, fit_torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5])
    items = [torch.from_numpy(r) for r in x]
    seen = []

    def observer(epoch, value):
        seen.append((epoch, value))
        return epoch == 3

    cfg = TrainConfig(epochs=10, batch_size=8, patience=None)
    with observing_epochs(observer):
        res = fit_torch(lambda: torch.nn.Linear(3, 1), items[:30], y[:30], torch.stack, cfg=cfg,
                        val_items=items[30:], y_val=y[30:])
    assert [e for e, _ in seen] == [1, 2, 3] and res.epochs_run == 3 and res.summary()["pruned"] is True
    free = fit_torch(lambda: torch.nn.Linear(3, 1), items[:30], y[:30], torch.stack, cfg=cfg,
                     val_items=items[30:], y_val=y[30:])  # no observer: the call is a no-op
    assert free.epochs_run == 10 and "pruned" not in free.summary()


def test_pruned_trials_stop_early_and_are_told_as_pruned(reg, tmp_path, monkeypatch):
    """A real cgcnn search where the pruner stops every trial after the first at epoch 2."""
    import crystalbench.tune.pruning as pruning

    class SecondOnwards(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number >= 1 and (trial.last_step or 0) >= 2

    monkeypatch.setattr(pruning, "make_pruner", lambda kind: SecondOnwards())
    space = tmp_path / "lr.toml"
    space.write_text("[params]\nlr = [0.01, 0.003]\n")
    ctx = _ctx(tmp_path)
    req = TuneRequest(model="cgcnn", task="toy_cubic", space=load_space(str(space), reg.model("cgcnn")), trials=2,
                      epochs=5, config={"cgcnn": {"n_conv": 1, "batch_size": 16, "atom_fea_len": 16}})
    summary = tune(reg, ctx, req)
    study = optuna.load_study(study_name=summary.study_id, storage=f"sqlite:///{summary.study_dir / 'study.db'}")
    states = {t.number: t.state for t in study.trials}
    assert states == {0: optuna.trial.TrialState.COMPLETE, 1: optuna.trial.TrialState.PRUNED}
    assert (summary.trials_done, summary.trials_pruned, summary.trials_failed) == (1, 1, 0)
    infos = {json.loads(p.read_text())["fit_info"].get("pruned", False): json.loads(p.read_text())["fit_info"]
             for p in _trial_records(ctx.results_dir)}
    assert infos[True]["epochs_run"] == 2 and infos[False]["epochs_run"] == 5
    assert study.trials[0].intermediate_values and max(study.trials[0].intermediate_values) == 5
    assert summary.final is not None and summary.final.ok

"""Regressions found by the adversarial audit of issue #18 (hostile records and inputs after the trust work).

Each test is one finding: a tampered or malformed record that `bench results validate` accepted
(or crashed on), or a bad input that ended in a traceback instead of one `error:` line.

* y_pred/y_true stored as strings or booleans were read as numbers by numpy and validated;
* ``schema_version: 3.0`` and a ``created`` that is not a time were accepted;
* a non-integer ``provenance.split.n_val`` crashed `validate` with a TypeError traceback;
* a record whose ``non_default`` was emptied (a 5-tree forest claiming to be rf's recipe) validated;
* ``n_estimators = nan`` in a ``--config`` TOML crashed `bench run` (``int(nan)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import bench_invoke

from crystalbench.contract.context import RunContext
from crystalbench.contract.errors import BadInputError
from crystalbench.contract.job import Job
from crystalbench.contract.metrics import score
from crystalbench.contract.params import resolve_params
from crystalbench.contract.record import InvalidRecordError, ResultRecord
from crystalbench.paper.cells import defaults
from crystalbench.runtime.registry import load_registry
from crystalbench.runtime.results import ResultStore
from crystalbench.runtime.validate import test_ids_hash as ids_hash
from crystalbench.runtime.validate import validate_results


def _record(model: str = "dummy", params: dict[str, Any] | None = None, descriptors: str | None = None,
            non_default: dict[str, Any] | None = None, code: dict[str, str] | None = None) -> ResultRecord:
    """A consistent ok record of `model` on chain1d_short (metrics recomputed, split hash matching)."""
    ids = [f"id{i}" for i in range(8)]
    y_true = [float(i) for i in range(8)]
    y_pred = [float(i) + 0.5 for i in range(8)]
    job = Job(model=model, task="chain1d_short", protocol="paper", fold=0, seed=0, params=params or {},
              descriptors=descriptors, target="a", data="content:x", code=code or {})
    metrics = {k: (None if v is None else float(v))
               for k, v in score("regression", np.asarray(y_true), np.asarray(y_pred)).items()}
    return ResultRecord(job=job, status="ok", metrics=metrics,
                        predictions={"ids": ids, "y_true": y_true, "y_pred": y_pred},
                        task_info={"task_type": "regression", "target": "a", "unit": "A"},
                        provenance={"split": {"test_ids_sha256": ids_hash(ids), "n_test": 8, "n_val": 0}},
                        non_default=non_default or {})


def _tampered(rec: ResultRecord, edit) -> dict[str, Any]:
    d = json.loads(rec.to_json())
    edit(d)
    return d


@pytest.mark.parametrize("key", ["y_true", "y_pred"])
@pytest.mark.parametrize("kind", ["string", "bool"])
def test_predictions_must_be_numbers(key, kind):
    """numpy reads "1.5" and true as numbers; a record storing them was valid (and scored)."""
    rec = _record()

    def edit(d):
        d["predictions"][key] = [str(v) if kind == "string" else True for v in d["predictions"][key]]

    with pytest.raises(InvalidRecordError, match=f"predictions.{key} holds"):
        ResultRecord.from_dict(_tampered(rec, edit)).validate()


@pytest.mark.parametrize("version", [3.0, "3", True])
def test_schema_version_must_be_an_integer(version):
    d = _tampered(_record(), lambda d: d.update(schema_version=version))
    with pytest.raises(InvalidRecordError, match="schema_version"):
        ResultRecord.from_dict(d)


def test_created_must_be_a_time():
    """The leaderboard keeps the newest record of a run by `created`: it must be a time."""
    d = _tampered(_record(), lambda d: d.update(created="9999-99-99"))
    with pytest.raises(InvalidRecordError, match="created"):
        ResultRecord.from_dict(d)


@pytest.mark.parametrize("n_val", ["5", [1], 1.5, -1])
def test_split_counts_of_other_types_are_invalid_not_a_crash(tmp_path, reg, n_val):
    """`validate` compared n_val > 0 and crashed on a string; now the record is invalid."""
    d = _tampered(_record(), lambda d: d["provenance"]["split"].update(n_val=n_val))
    rec_path = tmp_path / "r" / "chain1d_short" / "dummy" / "x.json"
    rec_path.parent.mkdir(parents=True)
    rec_path.write_text(json.dumps(d))
    report = validate_results(tmp_path / "r", reg, RunContext(data_dir=tmp_path / "nodata", cache_dir=tmp_path / "c"))
    assert report.valid == 0 and "n_val" in report.invalid[0][1]


def _rf_record(reg, non_default: dict[str, Any]) -> ResultRecord:
    spec, task = reg.models["rf"], reg.tasks["chain1d_short"]
    params = dict(defaults(spec, task), n_estimators=5)
    return _record("rf", params=params, descriptors=spec.descriptors, non_default=non_default,
                   code={"model": reg.code_version("model", "rf") or ""})


def test_emptied_non_default_is_invalid(tmp_path, reg):
    """A 5-tree forest whose `non_default` was emptied would be headed plain `rf` and compared with the paper."""
    store = ResultStore(tmp_path / "r")
    store.write(_rf_record(reg, {"n_estimators": 5}))
    ctx = RunContext(data_dir=tmp_path / "nodata", cache_dir=tmp_path / "c")
    honest = validate_results(store.root, reg, ctx, official=False, truth=False)
    assert honest.valid == 1 and not honest.invalid

    forged = _rf_record(reg, {})
    path = store.path(forged.job)
    path.write_text(forged.to_json())
    report = validate_results(store.root, reg, ctx, official=False, truth=False)
    assert report.valid == 0
    assert "non_default says none (the recipe)" in report.invalid[0][1] and "n_estimators=5" in report.invalid[0][1]


def test_tuning_trial_is_not_recipe_checked(tmp_path, reg):
    """A tuning trial never stands for the model, so its `non_default` is not compared (nothing to forge)."""
    rec = _rf_record(reg, {})
    rec.origin = "tune"
    ResultStore(tmp_path / "r").write(rec)
    report = validate_results(tmp_path / "r", reg, RunContext(data_dir=tmp_path / "n", cache_dir=tmp_path / "c"),
                              official=False, truth=False)
    assert report.valid == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_integer_hyperparameter_is_bad_input(value):
    """`n_estimators = nan` in a --config TOML ended `bench run` with a ValueError traceback."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class P:
        n: int = 1
        x: float = 1.0

    with pytest.raises(BadInputError, match="integer"):
        resolve_params("m", P, {"n": value})
    with pytest.raises(BadInputError, match="finite number"):
        resolve_params("m", P, {"x": value})


def test_record_files_path_is_unchanged(tmp_path):
    """Sanity: the hand-made record helper stays a valid record (so the tests above test one change each)."""
    rec = _record()
    assert ResultRecord.from_dict(json.loads(rec.to_json())).validate().ok
    assert Path(rec.job.relpath).parts[:2] == ("chain1d_short", "dummy")


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_data_that_is_not_a_file_is_refused(tmp_path, special):
    """`bench run --data FIFO` blocked forever and `--data /dev/zero` read without end: one error instead."""
    import os

    from crystalbench.tasks.user import load_user_dataset

    path = Path(special)
    if special == "fifo":
        path = tmp_path / "rows.csv"
        os.mkfifo(path)
    with pytest.raises(BadInputError, match="not a regular file or directory"):
        load_user_dataset(path, RunContext(data_dir=tmp_path, cache_dir=tmp_path / "c"), target="target")


def test_docs_params_never_overwrites_a_record(tmp_path):
    """`bench docs params --file RECORD` replaced a result record with the docs page."""
    from click.testing import CliRunner

    from crystalbench.cli import cli

    path = tmp_path / "paper-fold0-seed0-x.json"
    path.write_text(_record().to_json())
    before = path.read_bytes()
    result = CliRunner().invoke(cli, ["docs", "params", "--file", str(path)])
    assert result.exit_code == 2 and "is a result record" in result.output
    assert path.read_bytes() == before


# -- inputs named on the command line: FIFOs, devices, deep JSON, odd numbers (second audit pass)
@pytest.mark.parametrize("flag", ["--config", "--split-file"])
def test_a_fifo_or_device_given_as_an_input_file_is_refused_unread(tmp_path, flag):
    import os

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)  # reading it would block forever
    for path in (fifo, Path("/dev/zero")):  # /dev/zero would fill the memory
        code, out = bench_invoke("run", "-m", "dummy", "-t", "chain1d_short", flag, str(path),
                           "--results-dir", str(tmp_path / "r"), "--no-progress", catch_exceptions=True)
        assert code == 2 and "not a regular file" in out and "Traceback" not in out
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.json"))


def test_a_fifo_space_for_bench_tune_is_refused(tmp_path):
    import os

    from crystalbench.tune.spaces import load_space

    fifo = tmp_path / "space.toml"
    os.mkfifo(fifo)
    reg = load_registry()
    with pytest.raises(BadInputError, match="not a regular file"):
        load_space(str(fifo), reg.model("cgcnn"))


@pytest.mark.parametrize("content", ["[" * 100_000, '{"train": 5, "test": [1]}', '{"train": [[1]], "test": [1]}'])
def test_malformed_split_files_are_one_error_line(tmp_path, content):
    from crystalbench.runtime.splits import read_split_file

    p = tmp_path / "split.json"
    p.write_text(content)
    with pytest.raises(BadInputError, match="split file"):
        read_split_file(p)


def test_bad_threads_variable_and_unicode_folds_are_one_error_line(tmp_path):
    code, out = bench_invoke("run", "-m", "dummy", "-t", "chain1d_short", "--dry-run",
                       env={"CRYSTALBENCH_THREADS": "abc"}, catch_exceptions=True)
    assert code == 2 and "CRYSTALBENCH_THREADS" in out and "Traceback" not in out
    code, out = bench_invoke("run", "-m", "dummy", "-t", "chain1d_short", "--folds", "\uff10", "--dry-run", catch_exceptions=True)
    assert code == 2 and "--folds" in out


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_executor_option_is_refused(value):
    code, out = bench_invoke("run", "-m", "dummy", "-t", "chain1d_short", "--executor", "ray", "--cpus-per-job", value,
                       "--dry-run", catch_exceptions=True)
    assert code == 2 and "finite" in out

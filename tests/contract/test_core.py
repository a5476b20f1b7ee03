"""The job core's building blocks: Job identity, typed params, Store, noise capture, progress off a TTY."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest

from crystalbench.contract.context import Progress, RunContext
from crystalbench.contract.errors import BadInputError
from crystalbench.contract.job import Job
from crystalbench.contract.noise import NoiseCounter, capture_c_stderr
from crystalbench.contract.params import params_table, resolve_params
from crystalbench.contract.record import InvalidRecordError, ResultRecord, jsonable
from crystalbench.contract.store import Store, atomic_write, clean_stale_temps


def _job(**kw):
    base = dict(model="cgcnn", task="phonon_cv", protocol="paper", fold=0, seed=0, params={"epochs": 3},
                device="cpu", target="Cv", data="files:abc")
    base.update(kw)
    return Job(**base)


def test_job_id_covers_every_field_and_round_trips():
    job = _job()
    assert Job.from_dict(job.to_dict()) == job and Job.from_dict(job.to_dict()).id == job.id
    for change in (dict(model="alignn"), dict(task="phonon_u"), dict(protocol="file"), dict(fold=1), dict(seed=1),
                   dict(params={"epochs": 4}), dict(device="cuda"), dict(descriptors="gong29"),
                   dict(descriptor_version="2"), dict(target="U"), dict(data="files:abd"), dict(split_source="x")):
        assert _job(**change).id != job.id, change
    assert job.differences(_job(params={"epochs": 4}, data="files:x")) == ["data", "params (epochs)"]


@pytest.mark.parametrize("name", ["..", "a/b", "a\nb", "", ".hidden", "x" * 200])
def test_job_rejects_names_that_escape_a_results_dir(name):
    with pytest.raises(BadInputError):
        _job(task=name)


@dataclass(frozen=True)
class P:
    epochs: int = field(default=10, metadata={"doc": "training epochs"})
    lr: float = 0.01
    pooling: Literal["mean", "sum"] = "mean"
    early: bool = True


def test_params_merge_coerce_and_reject():
    p = resolve_params("m", P, {"epochs": 5.0, "nonsense": 1}, {"lr": 1}, strict_layers=(1,))
    assert p == P(epochs=5, lr=1.0) and isinstance(p.epochs, int)
    with pytest.raises(BadInputError, match="unknown hyperparameter 'epoch'.*known: early, epochs, lr, pooling"):
        resolve_params("m", P, {"epoch": 5}, strict_layers=(0,))
    with pytest.raises(BadInputError, match="'pooling' must be one of 'mean', 'sum'"):
        resolve_params("m", P, {"pooling": "max"}, strict_layers=(0,))
    with pytest.raises(BadInputError, match="integer"):
        resolve_params("m", P, {"epochs": 2.5}, strict_layers=(0,))
    with pytest.raises(BadInputError, match="true or false"):
        resolve_params("m", P, {"early": "yes"}, strict_layers=(0,))
    rows = {r[0]: r for r in params_table(P)}
    assert rows["epochs"][2] == "10" and rows["epochs"][3] == "training epochs" and rows["pooling"][1] == "'mean' | 'sum'"


def test_store_discards_corrupt_entries(tmp_path, caplog):
    store = Store(tmp_path, "graphs/test", 1)
    store.put_npz("k1", {"a": np.arange(5)})
    store.put_json("k2", {"v": [1, 2]})
    p1, p2 = store.path("k1", "npz"), store.path("k2", "json")
    p1.write_bytes(p1.read_bytes()[: len(p1.read_bytes()) // 2])
    p2.write_text('{"v": [1,')
    with caplog.at_level(logging.WARNING, logger="crystalbench"):
        assert store.get_npz("k1", required=("a",)) is None
        assert store.get_json("k2") is None
    assert not p1.exists() and not p2.exists() and store.discarded == 2
    assert "discarded unreadable entry" in caplog.text
    assert store.get_or_build_json("k2", lambda: {"v": [3]}) == {"v": [3]} and store.get_json("k2") == {"v": [3]}
    assert Store(tmp_path, "graphs/test", 2).get_json("k2") is None  # versions never mix


def test_atomic_write_leaves_nothing_on_failure_and_stale_temps_are_cleaned(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "f.json"
    atomic_write(target, "old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and not list(target.parent.glob(".tmp-*"))
    stale = target.parent / ".tmp-dead.json"
    stale.write_text("x")
    fresh = target.parent / ".tmp-live.json"
    fresh.write_text("x")
    os.utime(stale, (0, 0))
    assert clean_stale_temps(tmp_path) == 1 and not stale.exists() and fresh.exists()


def test_record_parsing_never_raises_anything_but_invalid_record():
    for junk in ([], "x", {"schema_version": 2}, {"schema_version": 2, "job": {"model": "a"}},
                 {"schema_version": 2, "job": {"model": "a\n| x", "task": "t", "protocol": "paper", "fold": 0, "seed": 0}},
                 {"schema_version": 1, "model": "x"}):
        with pytest.raises(InvalidRecordError):
            ResultRecord.from_dict(junk)
    assert jsonable({"a": np.float32(1.5), "b": {1, 2}, "c": object(), "d": float("nan")})["d"] is None


def test_spglib_noise_is_captured_and_counted(capfd):
    counter = NoiseCounter()
    with capture_c_stderr(counter):
        for _ in range(3):
            os.write(2, b"spglib: ssm_get_exact_positions failed (attempt=12).\n")
        os.write(2, b"a real message\n")
    err = capfd.readouterr().err
    assert "spglib" not in err and "a real message" in err
    assert counter.total == 3 and "3 warning(s)" in counter.summary("testing")


def test_progress_off_a_tty_logs_periodic_lines(caplog):
    with caplog.at_level(logging.INFO, logger="crystalbench"):
        with Progress(4, "train", enabled=True, unit="epochs", interval=0.0) as bar:
            for _ in range(4):
                bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert any("train: 2/4 epochs (50%)" in line and "ETA" in line for line in lines)


def test_run_context_cache_is_rooted_in_its_cache_dir(tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "c")
    assert ctx.cache("descriptors/x", 3).dir.is_relative_to(tmp_path / "c")
    assert dataclasses.replace(ctx, jobs=3).jobs == 3

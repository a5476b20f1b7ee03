"""Submission validation (`bench results validate --require-official-splits`): tampered records are rejected.

A contributor's result files are data nobody here computed; the submissions
workflow runs exactly this command on them. Each tampering below must make it
exit non-zero with a message naming the file and what is wrong.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import bench_invoke

from crystalbench.contract.job import Job


@pytest.fixture(scope="module")
def submission(tmp_path_factory) -> Path:
    """A real record: dummy on fold 0 of matbench_phonons under the official Matbench folds (~3 s)."""
    from crystalbench.cli.main import make_context
    from crystalbench.tasks.matbench import local_file

    if local_file("matbench_phonons", make_context()) is None:
        pytest.skip("matbench_phonons data not available")
    root = tmp_path_factory.mktemp("sub") / "alice-dummy"
    code, out = bench_invoke("run", "-m", "dummy", "-t", "matbench_phonons", "--protocol", "matbench", "--folds", "0",
                      "--results-dir", str(root), "--no-progress")
    assert code == 0, out
    return root


def _copy(src: Path, dst: Path) -> tuple[Path, dict]:
    shutil.copytree(src, dst)
    (path,) = dst.rglob("*.json")
    return path, json.loads(path.read_text())


def _validate(root: Path) -> tuple[int, str]:
    return bench_invoke("results", "validate", str(root), "--require-official-splits")


def _rehash(d: dict) -> None:
    """What a careful tamperer does: make job_id match the edited job again."""
    d["job_id"] = Job.from_dict(d["job"]).id


def test_untouched_submission_is_valid(submission):
    code, out = _validate(submission)
    assert code == 0, out
    assert "1 valid, 0 invalid" in out


def test_changed_prediction_is_rejected(submission, tmp_path):
    path, d = _copy(submission, tmp_path / "s")
    d["predictions"]["y_pred"][0] += 50.0
    path.write_text(json.dumps(d))
    code, out = _validate(tmp_path / "s")
    assert code == 1
    assert f"invalid: {path}" in out and "metric 'mae' is" in out and "stored predictions give" in out, out


def test_swapped_fold_is_rejected_even_with_a_consistent_job_id(submission, tmp_path):
    path, d = _copy(submission, tmp_path / "s")
    d["job"]["fold"] = 1  # fold 0's predictions presented as fold 1
    d["provenance"]["split"]["fold"] = 1
    _rehash(d)
    path.write_text(json.dumps(d))
    code, out = _validate(tmp_path / "s")
    assert code == 1
    assert "test ids differ from the official matbench split of 'matbench_phonons' fold 1" in out, out


def test_swapped_test_set_with_rewritten_split_hash_is_rejected(submission, tmp_path):
    from crystalbench.runtime.validate import test_ids_hash

    path, d = _copy(submission, tmp_path / "s")
    # predictions for an easier, hand-picked test set, with the split hash rewritten to match
    ids = [f"mb-phonons-{i:04d}" for i in range(1, len(d["predictions"]["ids"]) + 1)]
    d["predictions"]["ids"] = ids
    d["provenance"]["split"]["test_ids_sha256"] = test_ids_hash(ids)
    path.write_text(json.dumps(d))
    code, out = _validate(tmp_path / "s")
    assert code == 1 and "test ids differ from the official matbench split" in out, out


def test_missing_field_is_rejected(submission, tmp_path):
    path, d = _copy(submission, tmp_path / "s")
    del d["metrics"]
    path.write_text(json.dumps(d))
    code, out = _validate(tmp_path / "s")
    assert code == 1 and "missing field 'metrics'" in out, out


def test_unverifiable_split_is_rejected_only_in_strict_mode(submission, tmp_path):
    path, d = _copy(submission, tmp_path / "s")
    d["job"]["task"] = "matbench_nonexistent"
    _rehash(d)
    path.write_text(json.dumps(d))
    code, out = bench_invoke("results", "validate", str(tmp_path / "s"))
    assert code == 0, out
    code, out = _validate(tmp_path / "s")
    assert code == 1 and "'matbench_nonexistent' is not registered here" in out, out


def test_empty_submission_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = _validate(tmp_path / "empty")
    assert code == 1 and "no record files" in out, out

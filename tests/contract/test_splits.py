import gzip
import json

import numpy as np
import pytest
from pymatgen.core import Composition

from crystalbench.contract.dataset import Dataset
from crystalbench.contract.errors import BadInputError
from crystalbench.contract.specs import SplitIds, TaskSpec
from crystalbench.runtime.splits import make_folds


def _data(n, prefix="x"):
    return Dataset(ids=[f"{prefix}-{i}" for i in range(n)], targets=np.arange(n, dtype=float),
                   compositions=[Composition("NaCl")] * n)


def _task(**kw):
    return TaskSpec(name="t", load=lambda d: None, target="y", **kw)


def _check_partition(fold, n):
    allidx = np.concatenate([fold.train, fold.val, fold.test])
    assert len(allidx) == n and len(set(allidx.tolist())) == n


def test_paper_split_fractions_and_seed():
    data = _data(100)
    f1 = make_folds(_task(fractions=(0.8, 0.1, 0.1)), data, "paper", seed=3, needs_validation=True)[0]
    f2 = make_folds(_task(fractions=(0.8, 0.1, 0.1)), data, "paper", seed=3, needs_validation=True)[0]
    f3 = make_folds(_task(fractions=(0.8, 0.1, 0.1)), data, "paper", seed=4, needs_validation=True)[0]
    assert (len(f1.train), len(f1.val), len(f1.test)) == (80, 10, 10)
    _check_partition(f1, 100)
    assert np.array_equal(f1.test, f2.test) and not np.array_equal(f1.test, f3.test)
    g = make_folds(_task(), data, "paper", seed=3, needs_validation=False)[0]
    # 60/20/20: a model without validation trains on the same 60 rows; the 20 validation rows go unused
    assert (len(g.train), len(g.val), len(g.test)) == (60, 0, 20) and g.validation == "unused"


def test_matbench_protocol_reproduces_official_folds(data_dir):
    """KFold(5, shuffle, 18012019) on canonical order == the official matbench_phonons folds."""
    with gzip.open(data_dir / "matbench" / "matbench_v0.1_validation.json.gz", "rt") as fh:
        official = json.load(fh)["splits"]["matbench_phonons"]
    n = 1265
    data = _data(n, prefix="mb-phonons")
    data = Dataset(ids=[f"mb-phonons-{i + 1:04d}" for i in range(n)], targets=data.targets,
                   compositions=data.compositions)
    for needs_val in (False, True):
        folds = make_folds(_task(protocol="matbench"), data, None, seed=0, needs_validation=needs_val)
        assert len(folds) == 5
        for k, fold in enumerate(folds):
            ref = official[f"fold_{k}"]
            assert sorted(data.ids[i] for i in fold.test) == sorted(ref["test"])
            train_ids = sorted(data.ids[i] for i in np.concatenate([fold.train, fold.val]))
            assert train_ids == sorted(ref["train"])
            assert (len(fold.val) > 0) == needs_val


def test_file_protocol_uses_task_ids_and_carves_val():
    data = _data(10)
    task = _task(protocol="file", split_ids=lambda d: SplitIds(train=tuple(f"x-{i}" for i in range(8)),
                                                              test=("x-8", "x-9", "missing-id")))
    fold = make_folds(task, data, None, seed=0, needs_validation=True)[0]
    assert sorted(fold.test.tolist()) == [8, 9]
    assert len(fold.val) == 1 and len(fold.train) == 7


def test_split_file_overlap_is_an_error(tmp_path):
    p = tmp_path / "split.json"
    p.write_text(json.dumps({"train": ["x-0", "x-1"], "test": ["x-1"]}))
    with pytest.raises(BadInputError, match="both train and test"):
        make_folds(_task(), _data(3), None, seed=0, needs_validation=False, split_file=p)

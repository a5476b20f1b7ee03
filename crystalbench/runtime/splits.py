"""Split protocols: `paper`, `matbench` and `file`.

- paper: one seeded random train/val/test split with the task's fractions
  (60/20/20 for properties, 80/10/10 for learnability tasks, as in Gong et
  al. 2023). The run seed sets the split, so repeating over seeds measures
  split and initialisation variance together.
- matbench: Matbench v0.1, `KFold(5, shuffle=True, random_state=18012019)` on
  the dataset in its canonical order; the test folds are fixed whatever the
  seed. A validation set (10% of the training fold, chosen by the run seed) is
  carved out for models that need one.
- file: explicit id lists, from the task (e.g. the paper authors' own split)
  or from `--split-file` (JSON: {"train": [...], "val": [...], "test": [...]}
  or a list of such objects, one per fold).

Training rows are the same for every model (issue #19): a protocol's
validation rows (paper; file splits that list "val") are only ever used to
choose a model's epoch, never trained on. A model that needs no validation set
(rf, dummy) trains on the training rows alone and its validation rows are left
unused, so under `paper` it fits on the same 60% (80% for learnability tasks)
as the GNNs, not on 80% (90%). Gong et al. give their split as 60/20/20
train/validation/test and do not say which rows their random forest was fit
on. Where a protocol has no validation part (matbench; file splits without
"val"), a model that needs one carves it from its own training fold (seeded,
`VAL_FRACTION`) as Matbench allows, and the others train on the whole fold.
Each record says which case it was (`Fold.describe`: ``validation`` is
"split", "carved", "unused" or "none", next to ``n_train`` and ``n_val``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crystalbench.contract.dataset import Dataset
from crystalbench.contract.enums import Protocol
from crystalbench.contract.errors import BadInputError, UnknownNameError
from crystalbench.contract.specs import SplitIds, TaskSpec
from crystalbench.contract.store import file_sha256, read_input_text

if TYPE_CHECKING:
    from crystalbench.contract.context import RunContext

log = logging.getLogger("crystalbench.splits")

__all__ = ["Fold", "make_folds", "n_folds", "read_split_file", "split_file_digest", "MATBENCH_SEED", "MATBENCH_FOLDS"]

MATBENCH_SEED = 18012019
MATBENCH_FOLDS = 5
VAL_FRACTION = 0.1
# Which rows a model trains, validates and is tested on, given a protocol, fold and seed. Part of every
# job's identity (`Job.code["splits"]`): bump it whenever a change here moves a row from one part to
# another, so records made under the old rule are computed again instead of answering "already recorded".
# 2: under `paper`, models without early stopping (rf, dummy) train on the 60% every model trains on,
#    no longer on train+val (80%).
SPLIT_RULES = 2


@dataclass(frozen=True)
class Fold:
    """Index arrays into one dataset. `val` is empty for models that need none.

    validation: where `val` came from: "split" (the protocol's own validation
    rows), "carved" (taken out of the training fold for this model), "unused"
    (the split had validation rows; this model needs none, and they are neither
    its validation nor its training data) or "none".
    """

    protocol: str
    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    validation: str = "none"

    def describe(self, data: Dataset) -> dict:
        """What goes into a result's provenance: sizes and a hash of the test ids."""
        test_ids = [data.ids[i] for i in self.test]
        return {
            "protocol": self.protocol,
            "fold": self.index,
            "n_train": int(len(self.train)),
            "n_val": int(len(self.val)),
            "n_test": int(len(self.test)),
            "validation": self.validation,
            "test_ids_sha256": hashlib.sha256(json.dumps(test_ids).encode()).hexdigest(),
        }


def _carve_val(train: np.ndarray, seed: int, fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(train)
    n_val = max(1, int(round(fraction * len(train)))) if len(train) > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _finish(protocol: str, index: int, train, val, test, needs_validation: bool, seed: int) -> Fold:
    """The fold one model sees: the same training rows whether or not it needs validation (module docstring)."""
    train, val, test = (np.asarray(a, dtype=int) for a in (train, val, test))
    validation = "split" if len(val) else "none"
    if needs_validation and len(val) == 0:
        train, val = _carve_val(train, seed)
        validation = "carved" if len(val) else "none"
    elif not needs_validation and len(val):
        val, validation = np.array([], dtype=int), "unused"
    if len(train) == 0 or len(test) == 0:
        raise BadInputError(f"{protocol} split {index} has an empty train or test set ({len(train)}/{len(test)})")
    return Fold(protocol, index, train, val, test, validation)


def paper_folds(n: int, fractions: tuple[float, float, float], seed: int, needs_validation: bool) -> list[Fold]:
    f_train, f_val, _ = fractions
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_train = int(round(f_train * n))
    n_val = int(round(f_val * n))
    train, val, test = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    return [_finish("paper", 0, np.sort(train), np.sort(val), np.sort(test), needs_validation, seed)]


def matbench_folds(n: int, seed: int, needs_validation: bool) -> list[Fold]:
    from sklearn.model_selection import KFold

    kf = KFold(n_splits=MATBENCH_FOLDS, shuffle=True, random_state=MATBENCH_SEED)
    return [
        _finish("matbench", k, tr, [], te, needs_validation, seed + k)
        for k, (tr, te) in enumerate(kf.split(np.arange(n)))
    ]


def split_file_digest(path: Path) -> str:
    """sha256 of a split file (part of a job's identity), by the one file hash (`store.file_sha256`)."""
    try:
        return file_sha256(path)[:24]
    except OSError as exc:
        raise BadInputError(f"split file {path}: {exc.strerror or exc}") from None


def read_split_file(path: Path) -> list[SplitIds]:
    """The folds of a --split-file (one object, or a list of objects, of id lists)."""
    return _read_split_file(path)


def _read_split_file(path: Path) -> list[SplitIds]:
    try:
        raw = json.loads(read_input_text(Path(path), "split file"))
    except (ValueError, RecursionError) as exc:
        raise BadInputError(f"split file {path}: not JSON ({type(exc).__name__}: {str(exc)[:120]})") from None
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "train" not in item or "test" not in item:
            raise BadInputError(f"split file {path}: entry {k} needs 'train' and 'test' id lists")
        parts = [item["train"], item["test"], item.get("val", [])]
        if not all(isinstance(p, list) and all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in p)
                   for p in parts):
            raise BadInputError(f"split file {path}: entry {k}: 'train', 'test' and 'val' must be lists of ids "
                                "(strings or integers)")
        out.append(SplitIds(*(tuple(map(str, p)) for p in parts)))
    return out


def file_folds(data: Dataset, splits: list[SplitIds], seed: int, needs_validation: bool, origin: str) -> list[Fold]:
    pos = {i: k for k, i in enumerate(data.ids)}
    folds = []
    for k, s in enumerate(splits):
        parts = []
        for part_name, ids in (("train", s.train), ("val", s.val), ("test", s.test)):
            missing = [i for i in ids if i not in pos]
            if missing:
                # Ids dropped by the loader (e.g. no structure) are skipped, loudly.
                log.info(
                    "note: %s: %d %s ids are not in the dataset (e.g. %s); skipped",
                    origin, len(missing), part_name, ", ".join(missing[:3]),
                )
            parts.append(np.array(sorted(pos[i] for i in ids if i in pos), dtype=int))
        overlap = set(parts[0]) & set(parts[2])
        if overlap:
            raise BadInputError(f"{origin}: fold {k} has {len(overlap)} ids in both train and test")
        folds.append(_finish("file", k, parts[0], parts[1], parts[2], needs_validation, seed + k))
    return folds


def make_folds(
    task: TaskSpec,
    data: Dataset,
    protocol: str | None,
    *,
    seed: int,
    needs_validation: bool,
    ctx: RunContext | None = None,
    split_file: Path | None = None,
) -> list[Fold]:
    """All folds of `protocol` (default: the task's own) for this dataset."""
    protocol = protocol or task.protocol
    if split_file is not None:
        return file_folds(data, _read_split_file(split_file), seed, needs_validation, f"split file {split_file}")
    if protocol == "paper":
        return paper_folds(len(data), task.fractions, seed, needs_validation)
    if protocol == "matbench":
        return matbench_folds(len(data), seed, needs_validation)
    if protocol == "file":
        if task.split_ids is None:
            raise BadInputError(f"task {task.name!r} has no id-list split; use --split-file or --protocol paper")
        if ctx is None:
            from crystalbench.contract.context import RunContext

            ctx = RunContext()
        return file_folds(data, [task.split_ids(ctx)], seed, needs_validation, f"task {task.name!r} split")
    raise UnknownNameError(f"unknown protocol {protocol!r}; choose from {', '.join(Protocol)}")


def n_folds(protocol: str, split_file: Path | None = None) -> int:
    """How many folds a protocol has (known without loading data)."""
    if split_file is not None:
        return len(_read_split_file(split_file))
    return MATBENCH_FOLDS if protocol == "matbench" else 1

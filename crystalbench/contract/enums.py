"""Every closed set of names the contract uses, declared once.

They are `StrEnum`s so that a member *is* its string: ``Protocol.PAPER == "paper"``,
``json.dumps`` writes ``"paper"``, and a record written before these enums existed
(plain strings) validates and compares exactly as before. Code tests membership
with ``Protocol.has(value)`` (Python 3.11's ``"paper" in Protocol`` raises for a
plain string) and lists the choices with ``", ".join(Protocol)``, instead of
restating the tuple, so adding a protocol or a plugin kind is a one-line change here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeGuard


class _Names(StrEnum):
    """A closed set of names: membership of plain strings, as the records and the CLI hold them."""

    @classmethod
    def has(cls, value: Any) -> TypeGuard[str]:
        """Whether `value` (a member or its string) is one of the names."""
        return isinstance(value, str) and value in cls._value2member_map_

__all__ = ["Protocol", "TaskType", "PluginKind", "RecordStatus"]


class Protocol(_Names):
    """How a task's rows are split into train/validation/test (`crystalbench.runtime.splits`)."""

    PAPER = "paper"  # random 60/20/20 (properties) or 80/10/10 (learnability), Gong et al. Methods
    MATBENCH = "matbench"  # Matbench v0.1: 5-fold KFold, shuffle, random_state=18012019
    FILE = "file"  # the task's own split ids (`TaskSpec.split_ids`) or a --split-file


class TaskType(_Names):
    """What a task's target is: a number (scored by MAE, R^2, ...) or a class label (accuracy, F1)."""

    REGRESSION = "regression"
    CLASSIFICATION = "classification"


class PluginKind(_Names):
    """What a plugin provides, one per spec-returning hook: the hook of kind ``k`` is ``bench_{k}s``."""

    MODEL = "model"
    TASK = "task"
    DESCRIPTOR = "descriptor"
    EXECUTOR = "executor"
    SUITE = "suite"

    @property
    def plural(self) -> str:
        """``models``: how listings (`bench plugins`, `PluginInfo.provides`) name what a plugin provides."""
        return f"{self.value}s"

    @property
    def hook(self) -> str:
        """The hook that returns specs of this kind, e.g. ``bench_models``."""
        return f"bench_{self.plural}"


class RecordStatus(_Names):
    """A result record's outcome: scored, or failed with its error kept in the record."""

    OK = "ok"
    FAILED = "failed"

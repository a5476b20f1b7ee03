"""`ResultRecord`: the typed, versioned, validated result of one job: the product of a benchmark.

A record holds the `Job` it answers, the status, the metrics, the test
predictions they were computed from, timings, the resolved hyperparameters,
task information, provenance (code, plugin and package versions, data
checksums, split), a `runtime` block (device, GPU name, torch threads actually
used, torch/CUDA versions) and warnings (e.g. a model input that leaks the
target), and whether the job ran the model's own recipe: `non_default` holds the
hyperparameters (and descriptor set) that differ from what the model resolves for
the task without user overrides, `origin` says whether a `bench run` or a `bench tune`
trial made it, so no view presents a 3-epoch test run or a tuning trial as "the
model" (`is_recipe`, `display_model`). `validate()` checks the structure, recomputes the metrics from the
stored predictions and checks that the job id matches its contents, so a
tampered or truncated file is caught before it reaches a leaderboard.

The JSON form is described by `record.schema.json` shipped beside this module
(`schema()`); `schema_version` changes whenever the layout changes. Records of
schema 2 (before `non_default`/`origin`) are still read, so nothing computed is
lost: they come back with `origin="unknown"` (their settings were never compared
with the recipe), are labelled so, and are never taken for the recipe.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench.contract.enums import RecordStatus, TaskType
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.job import Job
from crystalbench.contract.metrics import METRICS, metrics_for, score

__all__ = ["ResultRecord", "InvalidRecordError", "SCHEMA_VERSION", "schema", "jsonable", "ORIGINS",
           "compact_value"]

SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)  # 2: before non_default/origin; upgraded on read (see the module docstring)
# run: `bench run` (or a suite); tune: a `bench tune` trial, scored on a validation split carved from the
# training data; unknown: a schema-2 record, whose settings were never compared with the model's recipe
ORIGINS = ("run", "tune", "unknown")
_COMPACT = 24
SCHEMA_FILE = Path(__file__).with_name("record.schema.json")
_REL_TOL = 1e-6
_ALL_NUMBERS = object()  # sentinel: no non-number found


class InvalidRecordError(CrystalbenchError):
    """A results file that is not a valid record; the message names the problem."""


def _recipe_fields(d: Mapping[str, Any], version: int) -> dict[str, Any]:
    """`non_default` and `origin` of a record dict: checked (schema 3) or upgraded (schema 2: origin unknown)."""
    if version == 2:
        return {"non_default": {}, "origin": "unknown"}
    for key, kind in (("non_default", dict), ("origin", str)):
        if key not in d:
            raise InvalidRecordError(f"missing field {key!r}")
        if not isinstance(d[key], kind):
            raise InvalidRecordError(f"field {key!r} has type {type(d[key]).__name__}")
    if d["origin"] not in ORIGINS:
        raise InvalidRecordError(f"field 'origin' is {str(d['origin'])[:40]!r}, not one of {', '.join(ORIGINS)}")
    return {"non_default": dict(d["non_default"]), "origin": d["origin"]}


def _is_timestamp(text: str) -> bool:
    """Whether `text` is an ISO 8601 time (the `created` of a record)."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_number(x: Any) -> bool:
    """A JSON number (an int or float, not a bool): what a stored target or prediction must be."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def schema() -> dict[str, Any]:
    """The JSON Schema of a record file."""
    return json.loads(SCHEMA_FILE.read_text())  # type: ignore[no-any-return]


def jsonable(obj: Any, *, _depth: int = 0) -> Any:
    """A JSON-ready copy: numpy to Python, non-finite floats to None, unknown objects to their repr.

    Used for everything a plugin hands the harness (fit_info, hyperparameters), so
    a plugin returning a tensor or a set can never make a finished result unwritable.
    """
    if _depth > 50:
        return repr(obj)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, _depth=_depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, _depth=_depth + 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), _depth=_depth + 1)
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), _depth=_depth + 1)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v, _depth=_depth + 1) for v in obj), key=repr)
    return repr(obj)


def compact_value(value: Any) -> str:
    """A hyperparameter value as a label shows it: strings bare, the rest as compact JSON, cut at 24 characters."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= _COMPACT else text[:_COMPACT] + "…"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ResultRecord:
    """The result of one job. Build with `ResultRecord(job=..., ...)`, read with `from_dict`."""

    job: Job
    status: str = RecordStatus.FAILED
    metrics: dict[str, float | None] = field(default_factory=dict)
    predictions: dict[str, list[Any]] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    task_info: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    fit_info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    created: str = field(default_factory=_now)
    schema_version: int = SCHEMA_VERSION
    job_id: str = ""
    non_default: dict[str, Any] = field(default_factory=dict)
    origin: str = "run"

    def __post_init__(self) -> None:
        if not self.job_id:
            self.job_id = self.job.id

    # -- convenient views of the job
    @property
    def model(self) -> str:
        return self.job.model

    @property
    def task(self) -> str:
        return self.job.task

    @property
    def protocol(self) -> str:
        return self.job.protocol

    @property
    def fold(self) -> int:
        return self.job.fold

    @property
    def seed(self) -> int:
        return self.job.seed

    @property
    def ok(self) -> bool:
        return self.status == RecordStatus.OK

    @property
    def task_type(self) -> str:
        return str(self.task_info.get("task_type") or TaskType.REGRESSION)

    @property
    def is_recipe(self) -> bool:
        """True when this is the model's own recipe: default settings for the task, from a `bench run`."""
        return not self.non_default and self.origin == "run"

    @property
    def display_model(self) -> str:
        """The model as tables head it: ``de-cgcnn``, or ``de-cgcnn (epochs=3)`` when it is not the recipe.

        Settings are sorted by name with compact values; a tuning trial and a record
        whose recipe status is unknown (schema 2) say so, since neither stands for the model.
        """
        parts = [f"{k}={compact_value(v)}" for k, v in sorted(self.non_default.items())]
        if self.origin == "tune":
            parts.append("tuning trial")
        elif self.origin != "run":
            parts.append("recipe unchecked")
        return f"{self.model} ({', '.join(parts)})" if parts else self.model

    # -- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "job_id": self.job_id,
            "job": self.job.to_dict(),
            "status": self.status,
            "metrics": jsonable(self.metrics),
            "predictions": jsonable(self.predictions),
            "timings": jsonable(self.timings),
            "task_info": jsonable(self.task_info),
            "provenance": jsonable(self.provenance),
            "runtime": jsonable(self.runtime),
            "fit_info": jsonable(self.fit_info),
            "warnings": [str(w) for w in self.warnings],
            "error": self.error,
            "traceback": self.traceback,
            "created": self.created,
            "non_default": jsonable(self.non_default),
            "origin": self.origin,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def copy(self) -> ResultRecord:
        return copy.deepcopy(self)

    @classmethod
    def from_dict(cls, d: Any) -> ResultRecord:
        """Parse a record; anything malformed raises `InvalidRecordError` naming the field (never KeyError)."""
        if not isinstance(d, Mapping):
            raise InvalidRecordError(f"not a JSON object but {type(d).__name__}")
        version = d.get("schema_version", d.get("schema"))
        if type(version) is not int or version not in READABLE_VERSIONS:  # not 3.0, "3" or True
            raise InvalidRecordError(
                f"schema_version {version!r} is not {SCHEMA_VERSION} (written by another crystalbench version; "
                "re-run the job to refresh it)"
            )
        try:
            job = Job.from_dict(d.get("job"))  # type: ignore[arg-type]
        except CrystalbenchError as exc:
            raise InvalidRecordError(str(exc)) from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidRecordError(f"job: {type(exc).__name__}: {str(exc)[:200]}") from None
        kinds: dict[str, tuple[type, ...]] = {
            "status": (str,), "metrics": (dict,), "predictions": (dict, type(None)), "timings": (dict,),
            "task_info": (dict,), "provenance": (dict,), "runtime": (dict,), "fit_info": (dict,),
            "warnings": (list,), "error": (str, type(None)), "traceback": (str, type(None)), "created": (str,),
            "job_id": (str,),
        }
        values: dict[str, Any] = {}
        for key, types in kinds.items():
            if key not in d:
                raise InvalidRecordError(f"missing field {key!r}")
            if not isinstance(d[key], types):
                raise InvalidRecordError(f"field {key!r} has type {type(d[key]).__name__}")
            values[key] = d[key]
        if not all(isinstance(w, str) for w in values["warnings"]):
            raise InvalidRecordError("field 'warnings' must be a list of strings")
        if not _is_timestamp(values["created"]):
            # the leaderboard keeps the newest record of a run by this field: it must be a time
            raise InvalidRecordError(f"field 'created' is {values['created'][:40]!r}, not an ISO 8601 time")
        values.update(_recipe_fields(d, version))
        return cls(job=job, schema_version=SCHEMA_VERSION, **values)

    @classmethod
    def from_json(cls, text: str) -> ResultRecord:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidRecordError(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
        return cls.from_dict(data)

    @classmethod
    def read(cls, path: Path) -> ResultRecord:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRecordError(f"{path}: cannot read: {exc}") from None
        return cls.from_json(text)

    # -- validation
    def problems(self) -> list[str]:
        """Everything wrong with this record (empty when valid)."""
        out: list[str] = []
        if self.job_id != self.job.id:
            out.append(f"job_id {self.job_id!r} does not match the job's contents ({self.job.id!r})")
        if not RecordStatus.has(self.status):
            out.append(f"status {self.status!r} is not one of {', '.join(RecordStatus)}")
        task_type = self.task_info.get("task_type")
        if not TaskType.has(task_type):
            out.append(f"task_info.task_type {task_type!r} is not regression or classification")
            return out
        for key in ("target", "unit"):
            if not isinstance(self.task_info.get(key, ""), str):
                out.append(f"task_info.{key} must be a string")
        split = self.provenance.get("split", {})
        if not isinstance(split, dict):
            out.append("provenance.split must be an object")
            return out
        for key in ("n_train", "n_val", "n_test"):  # counts the validator compares and branches on
            n = split.get(key)
            if n is not None and (type(n) is not int or not 0 <= n < 2**53):
                out.append(f"provenance.split.{key} must be a non-negative integer, got {str(n)[:40]!r}")
        if out:
            return out
        if self.status == RecordStatus.FAILED:
            if not self.error:
                out.append("a failed record needs an error message")
            return out
        unknown = [k for k in self.metrics if k not in METRICS]
        if unknown:
            out.append(f"unknown metric(s) {', '.join(map(repr, unknown))}")
        expected = [m.key for m in metrics_for(task_type)]
        missing = [k for k in expected if k not in self.metrics]
        if missing:
            out.append(f"missing metric(s) {', '.join(missing)}")
        for k, v in self.metrics.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                out.append(f"metric {k!r} is not a finite number: {str(v)[:40]!r}")
        if out:
            return out
        out.extend(self._prediction_problems(task_type))
        return out

    def _prediction_problems(self, task_type: str) -> list[str]:
        p = self.predictions
        if not isinstance(p, dict) or not all(isinstance(p.get(k), list) for k in ("ids", "y_true", "y_pred")):
            return ["an ok record needs predictions {ids, y_true, y_pred} as lists"]
        ids, y_true, y_pred = p["ids"], p["y_true"], p["y_pred"]
        if not (len(ids) == len(y_true) == len(y_pred)) or not ids:
            return [f"predictions have unequal or zero lengths ({len(ids)}, {len(y_true)}, {len(y_pred)})"]
        if len(set(map(str, ids))) != len(ids):
            return ["predictions.ids has duplicates"]
        for key, values in (("y_true", y_true), ("y_pred", y_pred)):
            # numpy would read "1.5" and true as numbers: a stored value must be one already
            bad = next((v for v in values if not _is_number(v)), _ALL_NUMBERS)
            if bad is not _ALL_NUMBERS:
                return [f"predictions.{key} holds {str(bad)[:40]!r}, not a number"]
        n_atoms = p.get("n_atoms")
        if n_atoms is not None and (not isinstance(n_atoms, list) or len(n_atoms) != len(ids)
                                    or not all(isinstance(n, int) and n >= 0 for n in n_atoms)):
            return ["predictions.n_atoms must be one non-negative integer per prediction"]
        n_test = (self.provenance.get("split") or {}).get("n_test")
        if n_test is not None and n_test != len(ids):
            return [f"provenance.split.n_test is {n_test} but there are {len(ids)} predictions"]
        try:
            recomputed = score(task_type, np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float))
        except (TypeError, ValueError) as exc:
            return [f"metrics cannot be recomputed from the predictions: {exc}"]
        out = []
        for k, v in recomputed.items():
            stored = self.metrics.get(k)
            if (v is None) != (stored is None) or (
                v is not None and stored is not None and not math.isclose(v, stored, rel_tol=_REL_TOL, abs_tol=1e-9)
            ):
                out.append(f"metric {k!r} is {stored!r} but the stored predictions give {v!r}")
        return out

    def validate(self) -> ResultRecord:
        try:
            problems = self.problems()
        except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:  # hostile content
            raise InvalidRecordError(f"malformed record: {type(exc).__name__}: {str(exc)[:200]}") from None
        if problems:
            raise InvalidRecordError("; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
        return self

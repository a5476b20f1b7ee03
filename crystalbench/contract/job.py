"""`Job`: one (model, task, protocol, fold, seed, configuration) as a plain, hashable value.

A job is everything that determines a result, and nothing else: the model and
its resolved hyperparameters, the task and its target, a fingerprint of the
data (raw-file checksums, or the dataset content hash when a task declares no
files), the descriptor set and its version, the split (protocol, fold, seed,
split-file checksum), the device, and the version of the code that computes it
(`code`). Its `id` is a stable hash of all of them, so changing any input makes
a new job instead of silently reusing an old result, and the same inputs always
map to the same results file.

`code` names, per role ("model", "task", "descriptors"), the code behind the
result: ``"<distribution> <version>"`` for a third-party plugin (bump the version
of your package, reinstall, and `bench run` computes new results instead of
answering "already recorded"), and for crystalbench's built-in models a hash of
the model's own source (its plugin package plus the crystalbench modules it
imports, not the harness: `Registry.code_version`). A per-model source hash
rather than the crystalbench version, so that editing one model (or releasing a
crystalbench that leaves it untouched) keeps every other model's results. Built-in
tasks and descriptor sets are covered by what already identifies them: the task's
version and data checksums, the descriptor set's version. The harness's one rule that
changes which rows a model sees, the split rule, enters as ``code["splits"]``
(`crystalbench.runtime.splits.SPLIT_RULES`). An empty `code` is left
out of the id, so records written before `code` existed keep their ids (and still
validate); the first run with it computes their jobs again, once.

Jobs are frozen and JSON-serializable (`to_dict` / `from_dict`), so executors
can ship them to worker processes or cluster nodes; `crystalbench.runtime.stages.run_job`
turns one into a `ResultRecord`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from crystalbench.contract.errors import BadInputError
from crystalbench.contract.specs import valid_name
from crystalbench.contract.store import digest

__all__ = ["Job", "JOB_FIELDS_DOC"]

JOB_FIELDS_DOC = {
    "model": "model name (`bench list models`)",
    "task": "task name (`bench list tasks`)",
    "protocol": "split protocol: paper, matbench or file",
    "fold": "fold index within the protocol",
    "seed": "seed of the split (paper protocol), the validation carve-out and the model",
    "params": "the model's resolved hyperparameters",
    "device": "torch device the model trains on",
    "descriptors": "descriptor set attached as features (None: none)",
    "descriptor_version": "version of that descriptor set (its values change with it)",
    "target": "the predicted quantity (a task's target or the --target column of --data)",
    "data": "fingerprint of the data: raw-file checksums + task version, or the dataset content hash",
    "split_source": "checksum of --split-file, when one is used",
    "code": "version of the code per role (model, task, descriptors, splits): plugin distribution and "
            "version, a hash of a built-in model's source, or the harness's split-rule version",
}


def _canonical(value: Any) -> Any:
    """JSON-canonical form: tuples become lists, mappings plain dicts (so hashes are stable)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class Job:
    """One benchmark job; see the module docstring. Field meanings: `JOB_FIELDS_DOC`."""

    model: str
    task: str
    protocol: str
    fold: int
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    descriptors: str | None = None
    descriptor_version: str | None = None
    target: str = ""
    data: str = ""
    split_source: str | None = None
    code: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model", "task"):
            if not valid_name(getattr(self, name)):
                raise BadInputError(f"job: invalid {name} name {getattr(self, name)!r}")
        if not valid_name(self.protocol):
            raise BadInputError(f"job: invalid protocol {self.protocol!r}")
        if isinstance(self.fold, bool) or not isinstance(self.fold, int) or self.fold < 0:
            raise BadInputError(f"job: fold must be a non-negative integer, got {self.fold!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise BadInputError(f"job: seed must be an integer, got {self.seed!r}")
        if not isinstance(self.params, Mapping):
            raise BadInputError(f"job: params must be a mapping, got {type(self.params).__name__}")
        object.__setattr__(self, "params", _canonical(dict(self.params)))
        try:
            json.dumps(self.params, allow_nan=False)  # parameters must be finite JSON values
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"job: params are not JSON values: {exc}") from None
        for name in ("device", "target", "data"):
            if not isinstance(getattr(self, name), str):
                raise BadInputError(f"job: {name} must be a string")
        for name in ("descriptors", "descriptor_version", "split_source"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise BadInputError(f"job: {name} must be a string or null")
        if not isinstance(self.code, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.code.items()):
            raise BadInputError("job: code must map roles to version strings")
        object.__setattr__(self, "code", dict(sorted(self.code.items())))

    def __hash__(self) -> int:
        return hash(self.id)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready; an empty `code` is left out (records written before it existed)."""
        d: dict[str, Any] = _canonical(asdict(self))
        if not d["code"]:
            del d["code"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Job:
        if not isinstance(d, Mapping):
            raise BadInputError(f"job must be an object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BadInputError(f"job: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as exc:
            raise BadInputError(f"job: {exc}") from None

    @property
    def id(self) -> str:
        """Stable 16-hex-digit hash of every field."""
        cached = self.__dict__.get("_id")
        if cached is None:
            cached = digest(self.to_dict(), 16)
            object.__setattr__(self, "_id", cached)
        return cached

    @property
    def relpath(self) -> Path:
        """Where its record lives under a results directory (names are validated, so this stays inside)."""
        return Path(self.task) / self.model / f"{self.protocol}-fold{self.fold}-seed{self.seed}-{self.id[:12]}.json"

    def label(self) -> str:
        return f"{self.model} · {self.task} · {self.protocol} fold {self.fold} · seed {self.seed}"

    def differences(self, other: Job) -> list[str]:
        """What differs from `other`, named (to explain why a job is new): fields, changed
        hyperparameters, and the code versions that changed (``code (model: a 0.1.0 -> a 0.2.0)``)."""
        a, b = asdict(self), asdict(other)
        out = [k for k in a if a[k] != b.get(k) and k not in ("params", "code")]
        if a["params"] != b.get("params"):
            pa, pb = a["params"], b.get("params") or {}
            changed = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
            out.append("params (" + ", ".join(changed) + ")")
        if a["code"] != b.get("code"):
            ca, cb = a["code"], b.get("code") or {}
            changed = [f"{k}: {cb.get(k) or 'unversioned'} -> {ca.get(k) or 'unversioned'}"
                       for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
            out.append("code (" + "; ".join(changed) + ")")
        return out

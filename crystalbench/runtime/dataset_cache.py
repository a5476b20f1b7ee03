"""The loaded-dataset cache: every task that declares its files is loaded once, built-in or plugin.

`Workspace.load` asks this cache before calling a task's `load(ctx)` and fills it
after. An entry is keyed by the task's fingerprint (`fingerprint.TaskFingerprint.
cache_key`): the same digest that is the job's `data` field, over the sha256 of
every file the task's `files(ctx)` lists (a folder: every file in it; a missing
file counts as missing), the task's name, target, type, `version` (bump it when
the loader returns other data for the same files) and the name and version of
the plugin providing it, plus where the files are. Changed data is a miss, and
a job id and its cached dataset always describe the same data. `FORMAT`, the
layout of an entry, versions the Store.

Tasks without `files` (`TaskSpec.files is None`) are loaded every time: nothing
would tell the cache that their data changed. A generated task declares
``files=lambda ctx: []`` to be cached by its version alone.

An entry is two files in the ``datasets`` `Store` of the run's cache directory,
never a pickle: ``<key>.npz`` holds the targets and feature columns, ``<key>.json``
(written last, so it marks a complete entry) holds ids, names, classes, meta,
structures as pymatgen ``Structure.as_dict()`` and compositions as formula
dicts (``{"Na": 1.0, "Cl": 1.0}``). Reading an entry rebuilds the `Dataset` and
compares its `content_hash` with the one stored: an entry that cannot be read,
does not fit together, names a non-pymatgen class, or restores other data is
deleted, reported, and rebuilt by loading the task again.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench.contract.dataset import Dataset
from crystalbench.contract.store import atomic_write

if TYPE_CHECKING:
    from crystalbench.contract.context import RunContext

__all__ = ["DatasetCache", "FORMAT", "NAMESPACE", "encode", "decode", "round_trip"]

log = logging.getLogger("crystalbench.dataset_cache")

NAMESPACE = "datasets"
FORMAT = "1"


# ----------------------------------------------------------------------------- encoding
def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return out


def _plain(value: Any) -> Any:
    """numpy values inside `as_dict()` output (site properties) as JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot store a {type(value).__name__} in the dataset cache")


def encode(data: Dataset) -> tuple[str, dict[str, np.ndarray]]:
    """A Dataset as (JSON text, arrays); raises TypeError/ValueError when it cannot be stored."""
    arrays: dict[str, np.ndarray] = {"targets": np.asarray(data.targets)}
    if arrays["targets"].dtype.kind not in "biuf":
        raise TypeError(f"targets of dtype {arrays['targets'].dtype} are not numbers")
    if data.features is not None:
        arrays["features"] = np.asarray(data.features, dtype=float)
    doc = {
        "format": FORMAT,
        "name": data.name,
        "n": len(data),
        "ids": list(data.ids),
        "classes": list(data.classes) if data.classes is not None else None,
        "feature_names": list(data.feature_names),
        "has_features": data.features is not None,
        "meta": _json_safe(dict(data.meta)),
        "structures": None if data.structures is None else [s.as_dict() for s in data.structures],
        "compositions": None if data.structures is not None or data.compositions is None else [  # else derived
            {str(k): float(v) for k, v in c.as_dict().items()} for c in data.compositions
        ],
        "content_hash": data.content_hash,
    }
    return json.dumps(doc, default=_plain, separators=(",", ":")), arrays


def _only_pymatgen(obj: Any) -> None:
    """Refuse dicts naming a class outside pymatgen: `from_dict` would import the module they name."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("@module")
            if module is not None and not (isinstance(module, str) and module.startswith("pymatgen.")):
                raise ValueError(f"entry names module {module!r}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def decode(text: str, arrays: dict[str, np.ndarray]) -> Dataset:
    """The Dataset `encode` stored; ValueError when the entry is inconsistent or restores other data."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a dataset entry of this format")
    n = doc["n"]
    structures = compositions = None
    if doc["structures"] is not None:
        from pymatgen.core import Structure

        _only_pymatgen(doc["structures"])
        structures = [Structure.from_dict(d) for d in doc["structures"]]
    if doc["compositions"] is not None:
        from pymatgen.core import Composition

        if not all(isinstance(c, dict) and all(isinstance(v, (int, float)) for v in c.values())
                   for c in doc["compositions"]):
            raise ValueError("compositions are not formula dicts")
        compositions = [Composition(c) for c in doc["compositions"]]
    if doc["has_features"] and "features" not in arrays:
        raise ValueError("features array missing")
    data = Dataset(
        ids=tuple(doc["ids"]),
        targets=arrays["targets"],
        structures=None if structures is None else tuple(structures),
        compositions=None if compositions is None else tuple(compositions),
        features=arrays["features"] if doc["has_features"] else None,
        feature_names=tuple(doc["feature_names"]),
        classes=None if doc["classes"] is None else tuple(doc["classes"]),
        name=doc["name"],
        meta=dict(doc["meta"]),
    )
    if len(data) != n or data.content_hash != doc["content_hash"]:
        raise ValueError("restored data differs from the data stored")
    return data


def round_trip(data: Dataset) -> Dataset:
    """`decode(encode(data))`: what a later process gets back from the cache (the test kit checks it)."""
    text, arrays = encode(data)
    return decode(text, {k: np.asarray(v) for k, v in arrays.items()})


# ----------------------------------------------------------------------------- the cache
class DatasetCache:
    """Loaded datasets in the ``datasets`` Store of a run's cache directory (see the module docstring)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.store = ctx.cache(NAMESPACE, FORMAT)

    def _drop(self, key: str, why: str) -> None:
        for ext in ("json", "npz"):
            try:
                self.store.path(key, ext).unlink()
            except OSError:
                pass
        log.warning("cache: discarded dataset entry %s (%s); the task is loaded again", key, why)

    def get(self, key: str) -> Dataset | None:
        """The cached dataset, or None on a miss or an unreadable entry (which is deleted)."""
        path = self.store.path(key, "json")
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._drop(key, f"{type(exc).__name__}: {exc}")
            return None
        arrays = self.store.get_npz(key, required=("targets",))
        if arrays is None:
            self._drop(key, "arrays missing or unreadable")
            return None
        try:
            return decode(text, arrays)
        except Exception as exc:  # any damage to our own entry means: load the task again
            self._drop(key, f"{type(exc).__name__}: {str(exc)[:120]}")
            return None

    def put(self, key: str, data: Dataset) -> bool:
        """Store `data`; False (and a note) when it cannot be encoded or written: caching only costs speed."""
        try:
            text, arrays = encode(data)
        except (TypeError, ValueError, AttributeError) as exc:
            self.ctx.reporter.note(f"dataset {data.name or key!r} is not cached (it loads every run): {exc}")
            return False
        try:
            self.store.put_npz(key, arrays)
            atomic_write(self.store.path(key, "json"), text, fsync=False)  # last: marks the entry complete
        except OSError as exc:
            self.ctx.reporter.note(f"could not write dataset cache {self.store.dir}: {exc.strerror or exc}")
            return False
        return True

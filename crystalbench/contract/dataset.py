"""The one data container every task produces and every model consumes.

A `Dataset` is deliberately small: ids, targets, structures (or compositions)
and optional extra per-sample feature columns (descriptors for hybrid models).
Its `content_hash` identifies the exact data in provenance and cache keys.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from crystalbench.contract.errors import BadInputError

__all__ = ["Dataset", "structure_key", "composition_key"]


def structure_key(structure) -> str:
    """Stable hash of a structure's lattice, species and fractional coordinates.

    Used as the cache key for descriptors and graphs: two structures with the
    same key featurize identically. Coordinates are wrapped into [0, 1) and
    rounded so that float noise from serialisation does not change the key.
    """
    lat = np.round(np.asarray(structure.lattice.matrix, dtype=float), 6) + 0.0
    frac = np.round(np.mod(np.asarray(structure.frac_coords, dtype=float), 1.0), 6) % 1.0 + 0.0
    species = [str(site.species) for site in structure]
    h = hashlib.sha256()
    h.update(lat.tobytes())
    h.update(frac.tobytes())
    h.update("|".join(species).encode())
    props = getattr(structure, "site_properties", None) or {}
    if "magmom" in props:  # magnetic ordering changes some targets, keep it distinct
        h.update(np.round(np.asarray(props["magmom"], dtype=float), 4).tobytes())
    return h.hexdigest()[:32]


def composition_key(comp) -> str:
    """Stable hash of a composition's elements and exact amounts: the `structure_key` of
    composition-only data (and the descriptor cache key of composition descriptors), one
    function for both so a composition is identified the same way everywhere."""
    text = "|".join(f"{sp}:{amt!r}" for sp, amt in sorted((str(k), float(v)) for k, v in comp.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples of one task.

    ids: unique sample ids (Matbench ids, mp-ids, ...), kept in results.
    targets: float array (regression) or int class indices (classification).
    structures: pymatgen Structures, or None for composition-only data.
    compositions: pymatgen Compositions, one per sample, on *every* dataset:
        give them for composition-only data; when structures are given they
        are derived from them (``s.composition``) at construction, so a
        composition model reads ``data.compositions`` whatever the task
        provides. ``structures is None`` is what marks composition-only data.
    features / feature_names: extra per-sample columns (n, d), e.g. descriptors.
    classes: class labels for classification (targets index into it).
    """

    ids: tuple[str, ...]
    targets: np.ndarray
    structures: tuple | None = None
    compositions: tuple | None = None
    features: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    classes: tuple[str, ...] | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
        object.__setattr__(self, "targets", np.asarray(self.targets))
        if self.structures is not None:
            object.__setattr__(self, "structures", tuple(self.structures))
        if self.compositions is not None:
            object.__setattr__(self, "compositions", tuple(self.compositions))
        elif self.structures is not None:
            # derived here rather than on first use: a composition model written against the docs
            # reads `data.compositions` and must not meet None on a structure task (~5 us a structure)
            object.__setattr__(self, "compositions", tuple(s.composition for s in self.structures))
        n = len(self.ids)
        if len(self.targets) != n:
            raise BadInputError(f"dataset {self.name!r}: {n} ids but {len(self.targets)} targets")
        if self.structures is None and self.compositions is None:
            raise BadInputError(f"dataset {self.name!r}: needs structures or compositions")
        for what, seq in (("structures", self.structures), ("compositions", self.compositions)):
            if seq is not None and len(seq) != n:
                raise BadInputError(f"dataset {self.name!r}: {n} ids but {len(seq)} {what}")
        if self.features is not None:
            feats = np.asarray(self.features, dtype=float)
            if feats.ndim != 2 or feats.shape[0] != n or feats.shape[1] != len(self.feature_names):
                raise BadInputError(
                    f"dataset {self.name!r}: features of shape {feats.shape} do not match "
                    f"{n} samples x {len(self.feature_names)} names"
                )
            object.__setattr__(self, "features", feats)
        if len(set(self.ids)) != n:
            seen, dups = set(), []
            for i in self.ids:
                if i in seen:
                    dups.append(i)
                seen.add(i)
            raise BadInputError(f"dataset {self.name!r}: duplicate ids {dups[:5]}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_classification(self) -> bool:
        return self.classes is not None

    @property
    def composition_list(self) -> tuple:
        """Deprecated alias of `compositions` (which is now set on every dataset); kept for older plugins."""
        warnings.warn("Dataset.composition_list is deprecated: use Dataset.compositions, set on every dataset",
                      DeprecationWarning, stacklevel=2)
        assert self.compositions is not None  # __post_init__ sets it whenever there are structures
        return self.compositions

    @cached_property
    def structure_keys(self) -> tuple[str, ...]:
        if self.structures is None:
            assert self.compositions is not None  # __post_init__ requires one of the two
            return tuple(composition_key(c) for c in self.compositions)
        return tuple(structure_key(s) for s in self.structures)

    @cached_property
    def content_hash(self) -> str:
        """sha256 over ids, structures/compositions, targets and features (provenance, cache keys)."""
        h = hashlib.sha256()
        h.update(json.dumps(list(self.ids)).encode())
        h.update("|".join(self.structure_keys).encode())
        h.update(np.ascontiguousarray(self.targets.astype(float)).tobytes())
        if self.features is not None:
            h.update(json.dumps(list(self.feature_names)).encode())
            h.update(np.ascontiguousarray(self.features).tobytes())
        return h.hexdigest()

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        idx = np.asarray(idx, dtype=int)
        out = replace(
            self,
            ids=tuple(self.ids[i] for i in idx),
            targets=self.targets[idx],
            structures=None if self.structures is None else tuple(self.structures[i] for i in idx),
            compositions=None if self.compositions is None else tuple(self.compositions[i] for i in idx),
            features=None if self.features is None else self.features[idx],
        )
        if "structure_keys" in self.__dict__:  # graph/descriptor caches key on these: hash once per task
            out.__dict__["structure_keys"] = tuple(self.structure_keys[i] for i in idx)
        return out

    def with_features(self, names: Sequence[str], values: np.ndarray) -> Dataset:
        """A copy carrying these extra feature columns (replacing any previous ones)."""
        out = replace(self, features=np.asarray(values, dtype=float), feature_names=tuple(names))
        if "structure_keys" in self.__dict__:
            out.__dict__["structure_keys"] = self.structure_keys
        return out

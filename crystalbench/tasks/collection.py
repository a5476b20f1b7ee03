"""Every unique Materials Project structure in the data directory, for descriptor learnability.

The learnability targets are descriptors of the structure itself, so any
collection of structures works; by default it is every structure with an
mp-id in the parsed source tables (`sources`), deduplicated by mp-id. When an
mp-id occurs in several sources the first source in `SOURCES` wins (exact
pymatgen dicts before CIF text, Materials Project before Alexandria
relaxations). The tables are the same ones the property tasks read, so both
agree on which structures are valid (`readers.structure_problem`) and every raw
file is parsed once.

The selected collection is cached as NPZ (lattices, species, fractional
coordinates, magnetic moments; no pickle) in the ``collections`` `Store` of the
run's cache directory, keyed by the raw files' content and the limit; a
corrupt entry is discarded and rebuilt.

Another collection: point ``CRYSTALBENCH_LEARNABILITY_STRUCTURES`` (see
`settings`) at a directory of structure files (CIF, POSCAR, pymatgen JSON;
id = file name without extension) or a JSON file mapping ids to pymatgen
Structure dicts. Those are user files: they go through the same checked
parsers as users' data, and unusable entries are reported by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import BadInputError, DataUnavailableError, RemoteFile

from . import settings
from . import sources as S
from .readers import (
    MAX_SHOWN,
    RowError,
    cache_write,
    files_digest,
    no_gc,
    parse_structure,
    parse_structure_file,
    process_memo,
    structure_from_record,
    structure_problem,
)

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalbench import RunContext

__all__ = ["SOURCES", "Collection", "load_collection", "collection_files", "collection_fetch", "collection_available"]

CACHE_VERSION = "2"
# source tables (`sources.SOURCES`) in priority order: the first source holding an mp-id provides its structure
SOURCES: tuple[str, ...] = (
    "petretto",
    "flla",
    "matcalc_elastic",
    "petousis",
    "piezo",
    "elastic2015",
    "trachote",
    "matcalc_phonon",
)
_ARRAYS = ("ids", "sources", "natoms", "lattice", "frac", "species", "magmom")
_COLLECTIONS = process_memo(4)


@dataclass(frozen=True)
class Collection:
    """Ids and pymatgen Structures, plus where each came from."""

    ids: tuple[str, ...]
    structures: tuple[Any, ...]
    sources: tuple[str, ...]
    files: tuple[Path, ...]


def collection_files(ctx: RunContext) -> list[Path]:
    """The raw files the collection reads (those present), for provenance checksums."""
    override = settings.learnability_structures(ctx)
    if override is not None:
        if override.is_dir():
            return sorted(x for x in override.iterdir() if x.is_file())
        return [override]
    return [ctx.data_dir / rel for name in SOURCES for rel in S.FILES[name] if (ctx.data_dir / rel).is_file()]


def collection_fetch(ctx: RunContext) -> list[RemoteFile | str]:
    """`TaskSpec.fetch` of the tasks on the collection: every raw file of its sources (`collection_files`
    lists only those present, so all are asked for here)."""
    return S.fetch_steps(ctx, [ctx.data_dir / rel for name in SOURCES for rel in S.FILES[name]])


def collection_available(ctx: RunContext) -> bool:
    return bool(collection_files(ctx))


def load_collection(ctx: RunContext, *, limit: int | None = None) -> Collection:
    """The structure collection (memo, else the NPZ Store, else selected from the tables); `limit`: first n ids."""
    files = collection_files(ctx)
    if not files:
        raise DataUnavailableError(
            f"no structure files for descriptor learnability under {ctx.data_dir} (expected e.g. "
            f"{S.FILES[SOURCES[0]][0]}); set --data-dir / CRYSTALBENCH_DATA_DIR or {settings.COLLECTION_ENV}"
        )
    override = settings.learnability_structures(ctx)
    key = files_digest(files, "collection", CACHE_VERSION, limit, override)
    return _COLLECTIONS.get(key, lambda: _cached(ctx, key, files, override, limit))


def _cached(ctx: RunContext, key: str, files: list[Path], override: Path | None, limit: int | None) -> Collection:
    store = ctx.cache("collections", CACHE_VERSION)
    arrays = store.get_npz(key, required=_ARRAYS)
    if arrays is not None:
        try:
            return _from_arrays(arrays, files)
        except (ValueError, IndexError):  # readable but inconsistent: rebuild and overwrite
            pass
    if override is not None:
        ids, structures, sources = _read_override(ctx, override, limit)
    else:
        ids, structures, sources = _select(ctx, limit)
    if not ids:
        raise DataUnavailableError(f"no usable structures in {', '.join(map(str, files))}")
    cache_write(lambda: store.put_npz(key, _to_arrays(ids, structures, sources)), store.dir, ctx.reporter)
    return Collection(tuple(ids), tuple(structures), tuple(sources), tuple(files))


def _select(ctx: RunContext, limit: int | None) -> tuple[list[str], list[Any], list[str]]:
    """The first structure of every mp-id over the source tables in priority order."""
    ids: list[str] = []
    records: list[dict[str, Any]] = []
    sources: list[str] = []
    seen: set[str] = set()
    for name in SOURCES:
        if limit is not None and len(ids) >= limit:
            break
        if not all((ctx.data_dir / rel).is_file() for rel in S.FILES[name]):
            continue
        t = S.table(ctx, name)
        for ident, rec in zip(t.ids, t.structures):
            if not ident.startswith("mp-") or ident in seen:
                continue
            seen.add(ident)
            ids.append(ident)
            records.append(rec)
            sources.append(name)
            if limit is not None and len(ids) >= limit:
                break
    with no_gc():
        structures = [structure_from_record(r) for r in records]
    return ids, structures, sources


def _override_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(id, raw structure) of a user's collection: files of a folder, or a JSON {id: structure dict}."""
    if path.is_dir():
        for f in sorted(x for x in path.iterdir() if x.is_file()):
            yield f.stem, f
    elif path.suffix == ".json":
        try:
            mapping = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{settings.COLLECTION_ENV}={path}: not a readable JSON file ({exc})") from None
        if not isinstance(mapping, dict):
            raise BadInputError(f"{settings.COLLECTION_ENV}={path}: expected a JSON object {{id: structure dict}}")
        for key, d in mapping.items():
            yield str(key), d
    else:
        raise BadInputError(f"{settings.COLLECTION_ENV}={path}: expected a directory of structure files or a .json file")


def _read_override(ctx: RunContext, path: Path, limit: int | None) -> tuple[list[str], list[Any], list[str]]:
    ids: list[str] = []
    structures: list[Structure] = []
    failed: list[str] = []
    for sid, raw in ctx.iter_progress(list(_override_items(path)), "parsing structures", "struct"):
        try:
            s = parse_structure_file(raw) if isinstance(raw, Path) else parse_structure(raw)
            problem = structure_problem(s)
            if problem is not None:
                raise problem
        except RowError as exc:
            failed.append(f"{sid} ({exc})")
            continue
        ids.append(sid)
        structures.append(s)
        if limit is not None and len(ids) >= limit:
            break
    if failed:
        shown = "; ".join(failed[:MAX_SHOWN]) + (f"; and {len(failed) - MAX_SHOWN} more" if len(failed) > MAX_SHOWN else "")
        ctx.reporter.warning(f"structure collection {path}: skipped {len(failed)} unusable entries: {shown}")
    return ids, structures, [str(path)] * len(ids)


def _to_arrays(ids: list[str], structures: list[Any], sources: list[str]) -> dict[str, np.ndarray]:
    def magmoms(s: Any) -> np.ndarray:
        return np.asarray(s.site_properties.get("magmom", [np.nan] * len(s)), dtype=float).reshape(len(s))

    return {
        "ids": np.array(ids, dtype=str),
        "sources": np.array(sources, dtype=str),
        "natoms": np.array([len(s) for s in structures], dtype=np.int64),
        "lattice": np.array([s.lattice.matrix for s in structures], dtype=float).reshape(-1, 3, 3),
        "frac": np.concatenate([s.frac_coords for s in structures]).reshape(-1, 3),
        "species": np.array([str(site.specie) for s in structures for site in s], dtype=str),
        "magmom": np.concatenate([magmoms(s) for s in structures]),
    }


def _from_arrays(z: dict[str, np.ndarray], files: list[Path]) -> Collection:
    """Structures back from the NPZ arrays; ValueError when the arrays do not fit together."""
    from pymatgen.core import Lattice, Structure

    ids, sources, natoms = z["ids"].tolist(), z["sources"].tolist(), z["natoms"]
    lattice, frac, species, magmom = z["lattice"], z["frac"], z["species"].tolist(), z["magmom"]
    total = int(natoms.sum())
    if not (len(ids) == len(sources) == len(natoms) == len(lattice)) or not (len(frac) == len(species) == len(magmom) == total):
        raise ValueError("collection arrays of inconsistent lengths")
    structures = []
    start = 0
    with no_gc():
        for k, n in enumerate(natoms):
            sl = slice(start, start + int(n))
            start += int(n)
            mm = magmom[sl]
            props = {"magmom": mm.tolist()} if np.isfinite(mm).all() else None
            structures.append(Structure(Lattice(lattice[k]), species[sl], frac[sl], site_properties=props))
    return Collection(tuple(ids), tuple(structures), tuple(sources), tuple(files))

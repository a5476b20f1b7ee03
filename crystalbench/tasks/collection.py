"""Every unique Materials Project structure in the shared data directory, for descriptor learnability.

The learnability targets are descriptors of the structure itself, so any
collection of structures works; by default it is every structure with an
mp-id found in the data directory, deduplicated by mp-id. When an mp-id occurs
in several sources the first source in `SOURCES` wins (exact pymatgen dicts
before POSCAR/CIF text, Materials Project before Alexandria relaxations).

Parsing ~10k CIF/POSCAR/dict strings takes a few minutes, so the parsed
collection is cached as NPZ (lattices, species, fractional coordinates,
magnetic moments; no pickle) under ``cache_dir()/collections``, keyed by the
names, sizes and modification times of the source files.

Another collection: point ``CRYSTALBENCH_LEARNABILITY_STRUCTURES`` at a
directory of structure files (CIF, POSCAR, ...; id = file name without
extension) or a JSON file mapping ids to pymatgen Structure dicts.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from crystalbench.harness.errors import BadInputError, DataUnavailableError
from crystalbench.harness.paths import cache_dir

__all__ = ["SOURCES", "COLLECTION_ENV", "Collection", "load_collection", "collection_files", "collection_available"]

COLLECTION_ENV = "CRYSTALBENCH_LEARNABILITY_STRUCTURES"
CACHE_VERSION = "1"


@dataclass(frozen=True)
class Collection:
    """Ids and pymatgen Structures, plus where each came from."""

    ids: tuple[str, ...]
    structures: tuple
    sources: tuple[str, ...]
    files: tuple[Path, ...]


def _csv_rows(path: Path) -> Iterator[dict]:
    csv.field_size_limit(sys.maxsize)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        first = fh.readline()
        lines = fh if first.startswith("#") else _prepend(first, fh)
        yield from csv.DictReader(lines)


def _prepend(first: str, rest) -> Iterator[str]:
    yield first
    yield from rest


def _from_repr_dict(text: str):
    from pymatgen.core import Structure

    return Structure.from_dict(ast.literal_eval(text))


def _from_poscar(text: str):
    from pymatgen.io.vasp import Poscar

    return Poscar.from_str(text).structure


def _from_cif(text: str):
    from pymatgen.core import Structure

    return Structure.from_str(text, fmt="cif")


def _phonon_dielectric(path: Path) -> Iterator[tuple[str, Callable]]:
    for row in _csv_rows(path):
        if row.get("structure"):
            yield row["mpid"], (lambda t=row["structure"]: _from_repr_dict(t))


def _matminer_meta(path: Path) -> Iterator[tuple[str, Callable]]:
    for row in _csv_rows(path):
        meta = ast.literal_eval(row["meta"])
        text = meta.get("poscar")
        yield meta["material_id"], (lambda t=text: _from_poscar(t)) if text else (lambda t=meta["structure"]: _from_cif(t))


def _elastic_2015(path: Path) -> Iterator[tuple[str, Callable]]:
    for row in _csv_rows(path):
        text = row.get("poscar")
        yield row["material_id"], (lambda t=text: _from_poscar(t)) if text else (lambda t=row["structure"]: _from_cif(t))


def _flla(path: Path) -> Iterator[tuple[str, Callable]]:
    for row in _csv_rows(path):
        yield row["material_id"], (lambda t=row["structure"]: _from_repr_dict(t))


def _trachote(path: Path) -> Iterator[tuple[str, Callable]]:
    table = json.loads(path.read_text())
    for key, cif in table["cif"].items():
        yield table["material_id"][key], (lambda t=cif: _from_cif(t))


def _matcalc(path: Path) -> Iterator[tuple[str, Callable]]:
    from pymatgen.core import Structure

    with gzip.open(path, "rt") as fh:
        records = json.load(fh)
    for rec in records:
        s = rec["structure"]
        yield rec["mp_id"], (lambda s=s: Structure.from_dict(s if isinstance(s, dict) else ast.literal_eval(s)))


# (name, path relative to the data directory, reader) in priority order
SOURCES: tuple[tuple[str, str, Callable[[Path], Iterator[tuple[str, Callable]]]], ...] = (
    ("matminer_phonon_dielectric_mp", "matminer_phonon_dielectric_mp/phonon_dielectric_mp.csv", _phonon_dielectric),
    ("matminer_pypi_flla_2015", "matminer_pypi_flla_2015/flla_2015.csv.gz", _flla),
    ("matcalc_mp_binary_elasticity", "matcalc_benchmark_data/mp-binary-pbe-elasticity-2025.1.json.gz", _matcalc),
    ("matminer_dielectric_constant", "matminer_dielectric_constant/dielectric_constant.csv", _matminer_meta),
    ("matminer_piezoelectric_tensor", "matminer_piezoelectric_tensor/piezoelectric_tensor.csv", _matminer_meta),
    ("matminer_pypi_elastic_tensor_2015", "matminer_pypi_elastic_tensor_2015/elastic_tensor.csv.gz", _elastic_2015),
    ("mp_elastic_val_trachote", "mp_elastic_val_trachote/mp_val_clean.json", _trachote),
    ("matcalc_alexandria_binary_phonon", "matcalc_benchmark_data/alexandria-binary-pbe-phonon-2025.1.json.gz", _matcalc),
)


def collection_files(data_dir: Path) -> list[Path]:
    """The raw files the collection reads (those present), for provenance checksums."""
    override = os.environ.get(COLLECTION_ENV)
    if override:
        p = Path(override).expanduser()
        return sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
    return [Path(data_dir) / rel for _, rel, _ in SOURCES if (Path(data_dir) / rel).is_file()]


def collection_available(data_dir: Path) -> bool:
    return bool(collection_files(data_dir))


def _cache_path(files: list[Path], limit: int | None) -> Path:
    h = hashlib.sha256(CACHE_VERSION.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(str(limit).encode())
    return cache_dir() / "collections" / f"structures-{h.hexdigest()[:16]}.npz"


def _iter_default(data_dir: Path, limit: int | None) -> Iterator[tuple[str, str, Callable]]:
    seen: set[str] = set()
    for name, rel, reader in SOURCES:
        path = Path(data_dir) / rel
        if not path.is_file():
            continue
        for mp_id, parse in reader(path):
            mp_id = str(mp_id).strip()
            if not mp_id.startswith("mp-") or mp_id in seen:
                continue
            seen.add(mp_id)
            yield mp_id, name, parse
            if limit is not None and len(seen) >= limit:
                return


def _iter_override(path: Path) -> Iterator[tuple[str, str, Callable]]:
    from pymatgen.core import Structure

    if path.is_dir():
        for f in sorted(x for x in path.iterdir() if x.is_file()):
            yield f.stem, str(path), (lambda f=f: Structure.from_file(f))
    elif path.suffix == ".json":
        for key, d in json.loads(path.read_text()).items():
            yield str(key), str(path), (lambda d=d: Structure.from_dict(d))
    else:
        raise BadInputError(f"{COLLECTION_ENV}={path}: expected a directory of structure files or a .json file")


def load_collection(data_dir: Path, *, limit: int | None = None, progress: bool = False) -> Collection:
    """Parse (or read from the NPZ cache) the structure collection; `limit` keeps the first n ids."""
    override = os.environ.get(COLLECTION_ENV)
    files = collection_files(data_dir)
    if not files:
        raise DataUnavailableError(
            f"no structure files for descriptor learnability under {data_dir} (expected e.g. "
            f"{SOURCES[0][1]}); set --data-dir / CRYSTALBENCH_DATA_DIR or {COLLECTION_ENV}"
        )
    cache = _cache_path(files, limit)
    if cache.exists():
        return _read_npz(cache, files)
    items = _iter_override(Path(override).expanduser()) if override else _iter_default(Path(data_dir), limit)
    ids, structures, sources, failed = [], [], [], []
    from tqdm.auto import tqdm

    with warnings.catch_warnings(), tqdm(desc="parsing structures", unit="struct", disable=not progress) as bar:
        warnings.simplefilter("ignore")  # CIF parser chatter
        for sid, src, parse in items:
            bar.update()
            try:
                s = parse()
            except Exception:
                failed.append(sid)
                continue
            if not s.is_ordered:
                failed.append(sid)
                continue
            ids.append(sid)
            structures.append(s)
            sources.append(src)
            if override and limit is not None and len(ids) >= limit:
                break
    if failed:
        warnings.warn(f"structure collection: skipped {len(failed)} unparsable or disordered entries: {', '.join(failed[:10])}")
    if not ids:
        raise DataUnavailableError(f"no usable structures in {', '.join(map(str, files))}")
    _write_npz(cache, ids, structures, sources)
    return Collection(tuple(ids), tuple(structures), tuple(sources), tuple(files))


def _write_npz(path: Path, ids: list[str], structures: list, sources: list[str]) -> None:
    natoms = np.array([len(s) for s in structures], dtype=np.int64)
    magmom = np.concatenate(
        [np.asarray(s.site_properties.get("magmom", [np.nan] * len(s)), dtype=float).reshape(len(s)) for s in structures]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez(
        tmp,
        ids=np.array(ids, dtype=str),
        sources=np.array(sources, dtype=str),
        natoms=natoms,
        lattice=np.array([s.lattice.matrix for s in structures], dtype=float),
        frac=np.concatenate([s.frac_coords for s in structures]),
        species=np.array([str(site.specie) for s in structures for site in s], dtype=str),
        magmom=magmom,
    )
    os.replace(tmp, path)


def _read_npz(path: Path, files: list[Path]) -> Collection:
    from pymatgen.core import Lattice, Structure

    with np.load(path, allow_pickle=False) as z:
        ids, sources, natoms = z["ids"].tolist(), z["sources"].tolist(), z["natoms"]
        lattice, frac, species, magmom = z["lattice"], z["frac"], z["species"].tolist(), z["magmom"]
    structures = []
    start = 0
    for k, n in enumerate(natoms):
        sl = slice(start, start + int(n))
        start += int(n)
        mm = magmom[sl]
        props = {"magmom": mm.tolist()} if np.isfinite(mm).all() else None
        structures.append(Structure(Lattice(lattice[k]), species[sl], frac[sl], site_properties=props))
    return Collection(tuple(ids), tuple(structures), tuple(sources), tuple(files))

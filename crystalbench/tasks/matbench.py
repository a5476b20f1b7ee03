"""The 13 Matbench v0.1 tasks (Dunn et al., npj Comput. Mater. 6, 138 (2020)).

All 13 are registered with their official metadata (target, unit, type, size)
and the "matbench" protocol (5-fold KFold, shuffle, random_state 18012019).
Samples keep Matbench ids (`mb-<task>-<row>`, zero-padded to the width of the
dataset size, e.g. `mb-phonons-0001`) and the file order: the KFold split
depends on it, and no row is ever dropped.

Where the data comes from, first match wins:
1. `<data_dir>/matbench/<name>.json.gz` (or `.json`): the matminer/Matbench file,
   pandas "split" orientation. The shipped data folder has matbench_phonons.
2. `$MATMINER_DATA/<name>.json.gz`, then `cache_dir()/matbench/<name>.json.gz`
   (earlier downloads).
3. Online: `matminer.datasets.load_dataset(name, data_home=...)` downloads the
   official file (hash-checked by matminer) into `$MATMINER_DATA` or
   `cache_dir()/matbench`. Set CRYSTALBENCH_OFFLINE=1 to never try.
Offline without a file, loading raises DataUnavailableError saying where to put it.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..harness.dataset import Dataset
from ..harness.errors import BadInputError, DataUnavailableError
from ..harness.hookspecs import hookimpl
from ..harness.paths import cache_dir
from ..harness.specs import TaskSpec
from .readers import RowError, file_digest, no_gc, parse_composition, parse_structure

__all__ = ["MATBENCH", "matbench_ids", "matbench_tasks", "local_file", "bench_tasks", "OFFLINE_ENV"]

OFFLINE_ENV = "CRYSTALBENCH_OFFLINE"
_MB_LICENSE = "Matbench: BSD-style (LBNL); "

# name: (target column, unit, task type, samples, input, extensive, source, data licence)
MATBENCH: dict[str, tuple[str, str, str, int, str, bool, str, str]] = {
    "matbench_dielectric": ("n", "unitless", "regression", 4764, "structure", False,
                            "Petousis et al., Sci. Data 4, 160134 (2017), Materials Project", "CC BY 4.0"),
    "matbench_expt_gap": ("gap expt", "eV", "regression", 4604, "composition", False,
                          "Zhuo, Mansouri Tehrani, Brgoch, J. Phys. Chem. Lett. 9, 1668 (2018)", "see source"),
    "matbench_expt_is_metal": ("is_metal", "", "classification", 4921, "composition", False,
                               "Zhuo, Mansouri Tehrani, Brgoch, J. Phys. Chem. Lett. 9, 1668 (2018)", "see source"),
    "matbench_glass": ("gfa", "", "classification", 5680, "composition", False,
                       "Landolt-Boernstein ternary glasses via Ward et al., npj Comput. Mater. 2, 16028 (2016)",
                       "see source"),
    "matbench_jdft2d": ("exfoliation_en", "meV/atom", "regression", 636, "structure", False,
                        "JARVIS-DFT 2D, Choudhary et al., Sci. Rep. 7, 5179 (2017)", "see source (JARVIS, NIST)"),
    "matbench_log_gvrh": ("log10(G_VRH)", "log10(GPa)", "regression", 10987, "structure", False,
                          "de Jong et al., Sci. Data 2, 150009 (2015), Materials Project", "CC BY 4.0"),
    "matbench_log_kvrh": ("log10(K_VRH)", "log10(GPa)", "regression", 10987, "structure", False,
                          "de Jong et al., Sci. Data 2, 150009 (2015), Materials Project", "CC BY 4.0"),
    "matbench_mp_e_form": ("e_form", "eV/atom", "regression", 132752, "structure", False,
                           "Materials Project (Jain et al., APL Mater. 1, 011002 (2013))", "CC BY 4.0"),
    "matbench_mp_gap": ("gap pbe", "eV", "regression", 106113, "structure", False,
                        "Materials Project (Jain et al., APL Mater. 1, 011002 (2013))", "CC BY 4.0"),
    "matbench_mp_is_metal": ("is_metal", "", "classification", 106113, "structure", False,
                             "Materials Project (Jain et al., APL Mater. 1, 011002 (2013))", "CC BY 4.0"),
    "matbench_perovskites": ("e_form", "eV/unit cell", "regression", 18928, "structure", True,
                             "Castelli et al., Energy Environ. Sci. 5, 9034 (2012), CMR (DTU)", "CMR terms"),
    "matbench_phonons": ("last phdos peak", "cm^-1", "regression", 1265, "structure", False,
                         "Petretto et al., Sci. Data 5, 180065 (2018)", "CC BY 4.0"),
    "matbench_steels": ("yield strength", "MPa", "regression", 312, "composition", False,
                        "Citrine Informatics steel data via Materials Data Facility", "see source"),
}

_MEMO: "OrderedDict[tuple[str, str], Dataset]" = OrderedDict()
_MEMO_SIZE = 2


def matbench_ids(name: str, n: int) -> list[str]:
    """Official Matbench ids: `mb-phonons-0001` ... (row i -> i+1, padded to len(str(n)))."""
    short = name.removeprefix("matbench_").replace("_", "-")
    width = len(str(n))
    return [f"mb-{short}-{i + 1:0{width}d}" for i in range(n)]


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _download_dir() -> Path:
    env = os.environ.get("MATMINER_DATA")
    return Path(env).expanduser() if env else cache_dir() / "matbench"


def _candidates(name: str, data_dir: Path) -> list[Path]:
    dirs = [Path(data_dir) / "matbench"]
    if os.environ.get("MATMINER_DATA"):
        dirs.append(Path(os.environ["MATMINER_DATA"]).expanduser())
    dirs.append(cache_dir() / "matbench")
    return [d / f"{name}{ext}" for d in dirs for ext in (".json.gz", ".json")]


def local_file(name: str, data_dir: Path) -> Path | None:
    """The first local copy of a Matbench dataset file, or None."""
    return next((p for p in _candidates(name, data_dir) if p.is_file()), None)


def _download(name: str, folder: Path):
    """Fetch a dataset with matminer's own loader (download + sha256 check); returns a DataFrame."""
    from matminer.datasets import load_dataset

    folder.mkdir(parents=True, exist_ok=True)
    return load_dataset(name, data_home=str(folder), download_if_missing=True)


def _unavailable(name: str, data_dir: Path, why: str) -> DataUnavailableError:
    where = Path(data_dir) / "matbench" / f"{name}.json.gz"
    return DataUnavailableError(
        f"{name}: {why}. Put the official file at {where} (from "
        f"https://ml.materialsproject.org/projects/{name}.json.gz, or run "
        f"`python -c \"from matminer.datasets import load_dataset; load_dataset('{name}')\"` "
        f"online and copy it from matminer's data folder), or run online without {OFFLINE_ENV}=1"
    )


def _read_split_json(path: Path) -> tuple[list[str], list[list[Any]]]:
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            obj = json.load(fh)
    except (OSError, EOFError, ValueError) as exc:
        raise BadInputError(f"{path}: not a readable Matbench JSON file ({exc})") from None
    if not (isinstance(obj, dict) and "columns" in obj and "data" in obj):
        raise BadInputError(f"{path}: expected pandas 'split' orientation (index, columns, data)")
    return [str(c) for c in obj["columns"]], obj["data"]


def _to_dataset(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], origin: str) -> Dataset:
    target, unit, ttype, n, kind, _ext, source, _lic = MATBENCH[name]
    if len(rows) != n:
        raise BadInputError(f"{origin}: {len(rows)} rows, but Matbench {name} has {n}; is this the official v0.1 file?")
    missing = [c for c in (target, kind) if c not in columns]
    if missing:
        raise BadInputError(f"{origin}: column {missing[0]!r} missing (columns: {', '.join(columns)})")
    ti, xi = list(columns).index(target), list(columns).index(kind)
    ids = matbench_ids(name, n)
    xs: list[Any] = []
    with warnings.catch_warnings(), no_gc():
        warnings.simplefilter("ignore")
        for ident, row in zip(ids, rows):
            try:
                xs.append(parse_composition(row[xi]) if kind == "composition" else parse_structure(row[xi]))
            except RowError as exc:  # official data: a broken row means a corrupt file, never skip (ids/folds)
                raise BadInputError(f"{origin}: row {ident}: {exc}") from None
    raw = [row[ti] for row in rows]
    classes = None
    if ttype == "classification":
        classes = ("False", "True")
        y = np.array([int(bool(v)) for v in raw], dtype=int)
    else:
        y = np.array([np.nan if v is None else float(v) for v in raw], dtype=float)
        if not np.all(np.isfinite(y)):
            raise BadInputError(f"{origin}: {int((~np.isfinite(y)).sum())} non-finite targets")
    return Dataset(
        ids=ids,
        targets=y,
        structures=tuple(xs) if kind == "structure" else None,
        compositions=tuple(xs) if kind == "composition" else None,
        classes=classes,
        name=name,
        meta={"source": source, "unit": unit, "origin": origin, "matbench_version": "v0.1"},
    )


def load_matbench(name: str, data_dir: Path) -> Dataset:
    """A Matbench v0.1 dataset from a local file, or downloaded through matminer when allowed."""
    if name not in MATBENCH:
        raise BadInputError(f"{name!r} is not a Matbench v0.1 task")
    path = local_file(name, Path(data_dir))
    if path is not None:
        key = (name, f"{path}:{file_digest(path)}")
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
        columns, rows = _read_split_json(path)
        data = _to_dataset(name, columns, rows, str(path))
        _MEMO[key] = data
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
        return data
    if _offline():
        raise _unavailable(name, Path(data_dir), f"no local copy and downloads are off ({OFFLINE_ENV}=1)")
    folder = _download_dir()
    target = folder / f"{name}.json.gz"
    existed = target.exists()
    print(f"note: downloading {name} with matminer into {folder} ...", file=sys.stderr)
    try:
        df = _download(name, folder)
    except Exception as exc:  # no network, DNS, HTTP or hash errors: all mean "not available here"
        if not existed and target.exists():
            target.unlink(missing_ok=True)  # never leave a partial download behind
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = f"no local copy and the download failed ({type(exc).__name__}: {msg[:150]})"
        raise _unavailable(name, Path(data_dir), why) from None
    return _to_dataset(name, [str(c) for c in df.columns], df.values.tolist(), f"matminer load_dataset({name!r})")


def _spec(name: str) -> TaskSpec:
    target, unit, ttype, n, kind, extensive, source, lic = MATBENCH[name]
    return TaskSpec(
        name=name,
        load=lambda data_dir: load_matbench(name, Path(data_dir)),
        target=target,
        unit=unit,
        task_type=ttype,  # type: ignore[arg-type]
        extensive=extensive,
        protocol="matbench",
        size=n,
        available=lambda data_dir: local_file(name, Path(data_dir)) is not None,
        files=lambda data_dir: [local_file(name, Path(data_dir)) or Path(data_dir) / "matbench" / f"{name}.json.gz"],
        source=f"{source}; Matbench v0.1 (Dunn et al., npj Comput. Mater. 6, 138 (2020))",
        license=_MB_LICENSE + "data: " + lic,
        description=f"Matbench v0.1 {name} ({'composition only' if kind == 'composition' else 'structures'}, {ttype}).",
        group="matbench",
    )


def matbench_tasks() -> list[TaskSpec]:
    return [_spec(name) for name in MATBENCH]


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    return matbench_tasks()

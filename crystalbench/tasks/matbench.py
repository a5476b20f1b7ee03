"""The 13 Matbench v0.1 tasks (Dunn et al., npj Comput. Mater. 6, 138 (2020)).

All 13 are registered with their official metadata (target, unit, type, size)
and the "matbench" protocol (5-fold KFold, shuffle, random_state 18012019).
Samples keep Matbench ids (`mb-<task>-<row>`, zero-padded to the width of the
dataset size, e.g. `mb-phonons-0001`) and the file order: the KFold split
depends on it, and no row is ever dropped.

Where the data comes from, first match wins:
1. `<data_dir>/matbench/<name>.json.gz` (or `.json`): the matminer/Matbench file,
   pandas "split" orientation. The shipped data folder has matbench_phonons.
2. `$MATMINER_DATA/<name>.json.gz`, then the ``matbench`` `Store` folder of
   the run's cache directory (earlier downloads).
3. Online: `matminer.datasets.load_dataset(name, data_home=...)` downloads the
   official file (hash-checked by matminer) into `$MATMINER_DATA` or that
   cache folder. Set CRYSTALBENCH_OFFLINE=1 to never try (`crystalbench.downloads_off`).
Offline without a file, loading raises DataUnavailableError saying where to put it.

The file is read with the shared JSON table reader and parsers (`readers`);
a parsed dataset is kept in memory for the rest of the process. The
composition-only tasks declare ``provides="composition"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crystalbench import (
    OFFLINE_ENV,
    BadInputError,
    Dataset,
    DataUnavailableError,
    RemoteFile,
    RunContext,
    TaskSpec,
    TaskType,
    downloads_off,
    hookimpl,
)

from . import settings
from .readers import RowError, file_digest, no_gc, parse_composition, parse_structure, process_memo, read_json_table

__all__ = [
    "MATBENCH", "matbench_ids", "matbench_tasks", "local_file", "load_matbench", "remote_file", "bench_tasks",
    "OFFLINE_ENV",
]

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

_DATASETS = process_memo(2)


def matbench_ids(name: str, n: int) -> list[str]:
    """Official Matbench ids: `mb-phonons-0001` ... (row i -> i+1, padded to len(str(n)))."""
    short = name.removeprefix("matbench_").replace("_", "-")
    width = len(str(n))
    return [f"mb-{short}-{i + 1:0{width}d}" for i in range(n)]


def _download_dir(ctx: RunContext) -> Path:
    """Where matminer downloads to: $MATMINER_DATA, else the cache's matbench folder."""
    return settings.matminer_data(ctx) or ctx.cache("matbench", "0.1").dir


def _candidates(name: str, ctx: RunContext) -> list[Path]:
    dirs = [ctx.data_dir / "matbench"]
    mm = settings.matminer_data(ctx)
    if mm is not None:
        dirs.append(mm)
    dirs.append(ctx.cache("matbench", "0.1").dir)
    return [d / f"{name}{ext}" for d in dirs for ext in (".json.gz", ".json")]


def local_file(name: str, ctx: RunContext) -> Path | None:
    """The first local copy of a Matbench dataset file, or None."""
    return next((p for p in _candidates(name, ctx) if p.is_file()), None)


def _download(name: str, folder: Path) -> Any:
    """Fetch a dataset with matminer's own loader (download + sha256 check); returns a DataFrame."""
    from matminer.datasets import load_dataset

    folder.mkdir(parents=True, exist_ok=True)
    return load_dataset(name, data_home=str(folder), download_if_missing=True)


def remote_file(name: str, ctx: RunContext) -> RemoteFile:
    """The official file of a Matbench task as `bench data fetch` downloads it into `<data_dir>/matbench/`.

    URL and sha256 come from matminer's dataset metadata, the same checksums
    matminer's own loader verifies, so a fetched file is byte-identical to what
    `load_dataset` would use.
    """
    if name not in MATBENCH:
        raise BadInputError(f"{name!r} is not a Matbench v0.1 task")
    try:
        from matminer.datasets.dataset_retrieval import get_dataset_attribute

        url, sha = str(get_dataset_attribute(name, "url")), str(get_dataset_attribute(name, "hash"))
    except ImportError:
        raise _unavailable(name, ctx.data_dir, "matminer (which knows the file's URL and checksum) is not "
                           "installed: pip install matminer") from None
    return RemoteFile(ctx.data_dir / "matbench" / f"{name}.json.gz", url, sha, "Matbench v0.1 via matminer")


def _unavailable(name: str, data_dir: Path, why: str) -> DataUnavailableError:
    where = Path(data_dir) / "matbench" / f"{name}.json.gz"
    return DataUnavailableError(
        f"{name}: {why}. Put the official file at {where} (from "
        f"https://ml.materialsproject.org/projects/{name}.json.gz, or run "
        f"`python -c \"from matminer.datasets import load_dataset; load_dataset('{name}')\"` "
        f"online and copy it from matminer's data folder), or run online without {OFFLINE_ENV}=1"
    )


def _read_split_json(path: Path) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a Matbench file (pandas "split" JSON); a malformed row means a corrupt file."""
    try:
        layout, rows = read_json_table(path)
    except BadInputError as exc:
        raise BadInputError(f"not a readable Matbench JSON file: {exc}") from None
    if layout != "split":
        raise BadInputError(f"{path}: expected pandas 'split' orientation (index, columns, data)")
    bad = next((where for where, _, rec in rows if "__bad__" in rec), None)
    if bad is not None:
        raise BadInputError(f"{path}: {bad} is malformed (not one value per column)")
    columns = list(rows[0][2]) if rows else []
    return columns, [list(rec.values()) for _, _, rec in rows]


def _to_dataset(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], origin: str) -> Dataset:
    """Every row, in file order (the KFold split depends on it); any unusable row is a BadInputError."""
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
    if ttype == TaskType.CLASSIFICATION:
        classes = ("False", "True")
        y = np.array([int(bool(v)) for v in raw], dtype=int)
    else:
        y = np.array([np.nan if v is None else float(v) for v in raw], dtype=float)
        if not np.all(np.isfinite(y)):
            raise BadInputError(f"{origin}: {int((~np.isfinite(y)).sum())} non-finite targets")
    return Dataset(
        ids=tuple(ids),
        targets=y,
        structures=tuple(xs) if kind == "structure" else None,
        compositions=tuple(xs) if kind == "composition" else None,
        classes=classes,
        name=name,
        meta={"source": source, "unit": unit, "origin": origin, "matbench_version": "v0.1"},
    )


def load_matbench(name: str, ctx: RunContext) -> Dataset:
    """A Matbench v0.1 dataset from a local file, or downloaded through matminer when allowed."""
    if name not in MATBENCH:
        raise BadInputError(f"{name!r} is not a Matbench v0.1 task")
    path = local_file(name, ctx)
    if path is not None:
        found = path

        def read() -> Dataset:
            columns, rows = _read_split_json(found)
            return _to_dataset(name, columns, rows, str(found))

        return _DATASETS.get((name, str(path), file_digest(path)), read)
    if downloads_off(ctx):
        raise _unavailable(name, ctx.data_dir, f"no local copy and downloads are off ({OFFLINE_ENV}=1)")
    return _download_dataset(name, ctx)


def _download_dataset(name: str, ctx: RunContext) -> Dataset:
    folder = _download_dir(ctx)
    target = folder / f"{name}.json.gz"
    existed = target.exists()
    ctx.reporter.note(f"downloading {name} with matminer into {folder} ...")
    try:
        df = _download(name, folder)
    except Exception as exc:  # no network, DNS, HTTP or hash errors: all mean "not available here"
        if not existed and target.exists():
            target.unlink(missing_ok=True)  # never leave a partial download behind
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = f"no local copy and the download failed ({type(exc).__name__}: {msg[:150]})"
        raise _unavailable(name, ctx.data_dir, why) from None
    return _to_dataset(name, [str(c) for c in df.columns], df.values.tolist(), f"matminer load_dataset({name!r})")


def _spec(name: str) -> TaskSpec:
    target, unit, ttype, n, kind, extensive, source, lic = MATBENCH[name]
    task_type = TaskType(ttype)
    provides: Literal["structure", "composition"] = "composition" if kind == "composition" else "structure"

    def files(ctx: RunContext) -> list[Path]:
        return [local_file(name, ctx) or ctx.data_dir / "matbench" / f"{name}.json.gz"]

    return TaskSpec(
        name=name,
        load=lambda ctx: load_matbench(name, ctx),
        target=target,
        unit=unit,
        task_type=task_type,
        extensive=extensive,
        protocol="matbench",
        provides=provides,
        size=n,
        available=lambda ctx: local_file(name, ctx) is not None,
        files=files,
        fetch=lambda ctx: [remote_file(name, ctx)],
        source=f"{source}; Matbench v0.1 (Dunn et al., npj Comput. Mater. 6, 138 (2020))",
        license=_MB_LICENSE + "data: " + lic,
        description=f"Matbench v0.1 {name} ({'composition only' if kind == 'composition' else 'structures'}, {ttype}).",
        group="matbench",
        source_short="Matbench v0.1",
        paper_data="not a task of the paper (data_relation empty)",
    )


def matbench_tasks() -> list[TaskSpec]:
    return [_spec(name) for name in MATBENCH]


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    """The 13 Matbench tasks; files are looked up only when a task is listed as available or loaded."""
    return matbench_tasks()

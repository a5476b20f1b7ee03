"""Descriptor computation for datasets: cached on disk, parallel over structures, NaN reported by id.

The runner calls `compute_descriptors` to attach a descriptor set to a dataset
before feature-based and hybrid models see it; `bench featurize` calls
`export_table`. Everything here is generic: any `DescriptorSpec` (built-in or
third-party) gets the same cache, parallelism and reporting.

Cache layout: one small JSON entry per structure (or composition) in the
`Store` ``descriptors/<set>-<hash of feature names>`` version ``<version>``
(``<cache_dir>/descriptors/<set>-<hash>/v<version>/<key[:2]>/<key>.json``)
holding that row (``null`` for NaN), where `key` is
`crystalbench.contract.dataset.structure_key`. Per-row files make the cache
shareable between datasets and tasks (a structure featurized for one task is
a hit for every other), safe under concurrent writers (atomic rename) and
resumable after an interrupted run. Rows are written as soon as they are
computed. Only rows the featurizer returned are cached; a structure whose
featurizer call raised is NaN for this run and retried next time. A corrupt
row file is discarded and recomputed. Worker processes die with the process
that started them (Linux: parent-death signal), so a killed run leaves no
orphans computing on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import Dataset, composition_key
from crystalbench.contract.noise import NoiseCounter, capture_c_stderr
from crystalbench.contract.specs import DescriptorSpec
from crystalbench.contract.store import Store, atomic_write

__all__ = ["compute_descriptors", "export_table", "descriptor_cache_dir", "DescriptorWarning"]

_MIN_PARALLEL = 8  # below this many uncached inputs, worker start-up costs more than it saves


class DescriptorWarning(UserWarning):
    """Kept for compatibility: NaN descriptor values are now reported through the RunContext's reporter."""


def descriptor_store(spec: DescriptorSpec, ctx: RunContext) -> Store:
    """The cache `Store` of one descriptor set version (keyed also by its feature names)."""
    names = hashlib.sha256("\x1f".join(spec.feature_names).encode()).hexdigest()[:8]
    return ctx.cache(f"descriptors/{spec.name}-{names}", spec.version)


def descriptor_cache_dir(spec: DescriptorSpec, cache_dir: Path | None = None) -> Path:
    """Directory holding the cached rows of one descriptor set version."""
    ctx = RunContext(cache_dir=cache_dir) if cache_dir is not None else RunContext()
    return descriptor_store(spec, ctx).dir


def _die_with_parent() -> None:
    """Worker initializer: on Linux, get SIGKILL when the parent process dies (no orphans)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() == 1:  # the parent already died before prctl took effect
                os._exit(1)
        except OSError:
            pass


def _inputs_and_keys(spec: DescriptorSpec, data: Dataset) -> tuple[Sequence[Any], Sequence[str]]:
    if spec.needs == "composition" or data.structures is None:
        comps = data.compositions
        assert comps is not None  # set on every Dataset
        return comps, [composition_key(c) for c in comps]
    return data.structures, data.structure_keys


def _read_row(store: Store, key: str, width: int) -> np.ndarray | None:
    def ok(entry: Any) -> bool:
        v = entry.get("v") if isinstance(entry, dict) else None
        return isinstance(v, list) and len(v) == width and all(x is None or isinstance(x, (int, float)) for x in v)

    entry = store.get_json(key, check=ok)
    if entry is None:
        return None
    return np.array([math.nan if v is None else v for v in entry["v"]], dtype=float)


def _write_row(store: Store, key: str, row: np.ndarray) -> None:
    store.put_json(key, {"v": [float(v) if math.isfinite(v) else None for v in row]})


def _checked(spec: DescriptorSpec, values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n, len(spec.feature_names)):
        raise ValueError(
            f"descriptor set {spec.name!r} returned shape {arr.shape} for {n} inputs, "
            f"expected {(n, len(spec.feature_names))}"
        )
    return arr


def _featurize_chunk(featurize: Callable, items: list) -> tuple[np.ndarray | None, list[tuple[np.ndarray | None, str]], Counter[str]]:
    """Worker body: featurize a chunk with C-library stderr captured; the noise counts travel back."""
    noise = NoiseCounter()
    with capture_c_stderr(noise):
        whole, each = _featurize_items(featurize, items)
    return whole, each, noise.counts


def _featurize_items(featurize: Callable, items: list) -> tuple[np.ndarray | None, list[tuple[np.ndarray | None, str]]]:
    """Featurize a chunk; if that raises, one by one so a bad input costs only its own row."""
    try:
        return np.asarray(featurize(items), dtype=float), []
    except Exception as exc:
        if len(items) == 1:
            return None, [(None, f"{type(exc).__name__}: {exc}".strip()[:200])]
    each: list[tuple[np.ndarray | None, str]] = []
    for item in items:
        try:
            each.append((np.asarray(featurize([item]), dtype=float), ""))
        except Exception as exc:
            each.append((None, f"{type(exc).__name__}: {exc}".strip()[:200]))
    return None, each


def _resolve_jobs(jobs: int) -> int:
    if jobs is None or jobs == 1:
        return 1
    if jobs <= 0:
        return os.cpu_count() or 1
    return int(jobs)


def _picklable(fn: Callable) -> bool:
    import pickle  # only to probe whether the function can be sent to worker processes

    try:
        pickle.dumps(fn)
        return True
    except Exception:
        return False


def compute_descriptors(
    spec: DescriptorSpec,
    data: Dataset,
    ctx: RunContext | None = None,
    *,
    cache_dir: Path | None = None,
    jobs: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Return an (n, len(spec.feature_names)) float array, NaN where undefined.

    Rows come from the on-disk cache (`ctx.cache_dir`) when present; the rest
    are computed (in `ctx.jobs` worker processes when there are enough of them;
    0 or negative means all cores) and cached. Identical structures within
    `data` are computed once. Reports one warning line naming the ids whose
    rows contain NaN. The keyword arguments override `ctx` (scripts and tests).
    """
    if ctx is None:
        ctx = RunContext(cache_dir=cache_dir) if cache_dir is not None else RunContext()
    elif cache_dir is not None:
        ctx = ctx.with_(cache_dir=cache_dir)
    jobs = ctx.jobs if jobs is None else jobs
    progress = ctx.progress if progress is None else progress

    width = len(spec.feature_names)
    inputs, keys = _inputs_and_keys(spec, data)
    root = descriptor_store(spec, ctx)
    values = np.full((len(data), width), np.nan)
    hits: dict[str, np.ndarray] = {}
    todo: dict[str, list[int]] = {}  # uncached key -> every index holding that structure
    for i, key in enumerate(keys):
        if key in todo:
            todo[key].append(i)
            continue
        if key not in hits:
            row = _read_row(root, key, width)
            if row is None:
                todo[key] = [i]
                continue
            hits[key] = row
        values[i] = hits[key]

    work = [(key, idx[0]) for key, idx in todo.items()]
    failures: dict[str, str] = {}
    n_jobs = _resolve_jobs(jobs)
    if n_jobs > 1 and len(work) >= _MIN_PARALLEL and not _picklable(spec.featurize):
        ctx.reporter.warning(f"descriptor set {spec.name!r}: featurize cannot be sent to worker processes; using one process")
        n_jobs = 1

    noise = NoiseCounter()

    def store(chunk: list[tuple[str, int]], whole: np.ndarray | None, each: list, counts: Counter[str]) -> None:
        noise.merge(counts)
        rows = list(_checked(spec, whole, len(chunk))) if whole is not None else [
            None if r is None else _checked(spec, r, 1)[0] for r, _ in each
        ]
        for n, ((key, first), row) in enumerate(zip(chunk, rows)):
            if row is None:
                failures[data.ids[first]] = each[n][1]
                continue
            values[todo[key]] = row
            _write_row(root, key, row)

    with ctx.with_(progress=bool(progress and work)).progress_bar(len(work), f"featurize {spec.name}", "struct") as bar:
        if n_jobs == 1 or len(work) < _MIN_PARALLEL:
            for s in range(0, len(work), 16):
                chunk = work[s : s + 16]
                store(chunk, *_featurize_chunk(spec.featurize, [inputs[i] for _, i in chunk]))
                bar.update(len(chunk))
        else:
            size = max(1, min(16, len(work) // (n_jobs * 4)))
            chunks = [work[s : s + size] for s in range(0, len(work), size)]
            # the platform's default start method: fork on Linux (works from any script, no re-import),
            # spawn on macOS/Windows (then the calling script needs the usual __main__ guard)
            pool = ProcessPoolExecutor(max_workers=min(n_jobs, len(chunks)), initializer=_die_with_parent)
            try:
                futures = {pool.submit(_featurize_chunk, spec.featurize, [inputs[i] for _, i in c]): c for c in chunks}
                for fut in as_completed(futures):
                    store(futures[fut], *fut.result())
                    bar.update(len(futures[fut]))
            finally:  # on Ctrl-C or an error, drop queued chunks instead of finishing them
                pool.shutdown(wait=True, cancel_futures=True)

    if work and len(failures) == len(work) and not hits:
        sid, err = next(iter(failures.items()))
        raise RuntimeError(f"descriptor set {spec.name!r} failed on every input (e.g. {sid}: {err})")
    summary = noise.summary(f"featurizing {spec.name}")
    if summary:
        ctx.reporter.note(summary)
    _warn_nan(spec, data, values, failures, ctx)
    return values


def _warn_nan(spec: DescriptorSpec, data: Dataset, values: np.ndarray, failures: dict[str, str], ctx: RunContext) -> None:
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    if len(bad) == 0:
        return
    ids = [data.ids[i] for i in bad]
    cols = [spec.feature_names[j] for j in np.flatnonzero(np.isnan(values[bad]).any(axis=0))]
    shown = ", ".join(ids[:20]) + (f" ... (+{len(ids) - 20} more)" if len(ids) > 20 else "")
    why = ""
    if failures:
        first = next(iter(failures.items()))
        why = f"; featurizer raised for {len(failures)} of them (e.g. {first[0]}: {first[1]})"
    ctx.reporter.warning(
        f"descriptor set {spec.name!r}: {len(ids)} of {len(data)} samples have undefined values "
        f"(NaN in {', '.join(cols[:8])}{'...' if len(cols) > 8 else ''}): {shown}{why}"
    )


def export_table(
    spec: DescriptorSpec,
    data: Dataset,
    out: Path,
    ctx: RunContext | None = None,
    *,
    jobs: int | None = None,
    cache_dir: Path | None = None,
    progress: bool | None = None,
) -> Path:
    """Write `id` + one column per feature as CSV (empty cell = NaN; categorical columns as integers).

    Written to a temporary file next to `out` and renamed, so an interrupted
    run never leaves a truncated table.
    """
    values = compute_descriptors(spec, data, ctx, cache_dir=cache_dir, jobs=jobs, progress=progress)
    out = Path(out)
    categorical = {j for j, name in enumerate(spec.feature_names) if name in set(spec.categorical)}

    def cell(j: int, v: float) -> str:
        if not math.isfinite(v):
            return ""
        if j in categorical and float(v).is_integer():
            return str(int(v))
        return repr(float(v))

    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["id", *spec.feature_names])
    for sid, row in zip(data.ids, values):
        writer.writerow([sid, *(cell(j, v) for j, v in enumerate(row))])
    return atomic_write(out, buf.getvalue())

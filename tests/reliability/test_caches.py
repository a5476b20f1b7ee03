"""Case 5 of #11: corrupt cache entries are discarded and rebuilt, end to end.

A run fills the cache; entries are then truncated (as by a full disk or a
killed writer without atomic rename) or overwritten with garbage; the same job
run again with `--rerun` must give the same metrics, no error, and leave a
readable entry in place of the corrupt one.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np


def _truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data


def _rerun_same_metrics(bench, args, cache: Path) -> None:
    p = bench(*args, "--rerun", check=0)
    assert "error:" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    return bench.records(p)


def test_truncated_descriptor_rows_are_rebuilt(bench, tmp_path):
    config = tmp_path / "rf.toml"
    config.write_text("[rf]\nn_estimators = 10\nn_jobs = 1\n")
    cache = tmp_path / "cache"
    args = ("run", "-m", "rf", "-t", "toy_cubic", "--descriptors", "toy_cell", "--config", config, "--json",
            "--results-dir", tmp_path / "r", "--cache-dir", cache, "--jobs", "1")
    [first] = bench.records(bench(*args, check=0))
    assert first["status"] == "ok"
    rows = sorted((cache / "descriptors").rglob("*.json"))
    rows = [r for r in rows if not r.name.startswith(".tmp-")]
    assert len(rows) == 60, rows[:3]
    truncated, garbage, wrong, nested = rows[:4]
    originals = {p: p.read_bytes() for p in (truncated, garbage, wrong, nested)}
    _truncate(truncated)
    garbage.write_bytes(b"\x00\xff not json")  # not even UTF-8
    wrong.write_text(json.dumps({"v": [1.0, 2.0]}))  # valid JSON, wrong width: as bad as a truncated file
    nested.write_text("[" * 200_000)  # the JSON parser's recursion limit, not a ValueError

    [again] = _rerun_same_metrics(bench, args, cache)
    assert again["status"] == "ok" and again["job_id"] == first["job_id"]
    assert again["metrics"] == first["metrics"]
    for p, data in originals.items():
        assert p.read_bytes() == data, f"{p} was not rebuilt"


def _graph_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
                  and "graph" in p.relative_to(cache).parts[0].lower())


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_truncated_graph_cache_entry_is_rebuilt(bench, tmp_path):
    config = tmp_path / "cgcnn.toml"
    config.write_text("[cgcnn]\natom_fea_len = 8\nn_conv = 1\nh_fea_len = 16\nbatch_size = 16\nprecise_bn = false\n")
    cache = tmp_path / "cache"
    args = ("run", "-m", "cgcnn", "-t", "toy_cubic", "--epochs", "1", "--config", config, "--json",
            "--results-dir", tmp_path / "r", "--cache-dir", cache)
    [first] = bench.records(bench(*args, check=0))
    assert first["status"] == "ok", first["error"]
    graphs = _graph_files(cache)
    # one NPZ file per requested set of graphs (training, validation, test: issue #14), not one per structure
    assert len(graphs) >= 2, f"no graph cache found under {cache}: {sorted(cache.rglob('*'))[:5]}"
    truncated, garbage = graphs[0], graphs[1]
    kept = {}
    for p in (truncated, garbage):
        kept[p] = _arrays(p) if p.suffix == ".npz" else p.read_bytes()
    _truncate(truncated)
    garbage.write_bytes(b"PK\x03\x04 this is no zip archive")

    [again] = _rerun_same_metrics(bench, args, cache)
    assert again["status"] == "ok", again["error"]
    assert again["job_id"] == first["job_id"] and again["metrics"] == first["metrics"]
    for p, before in kept.items():
        assert p.is_file(), f"{p} was discarded but not rebuilt"
        if p.suffix == ".npz":
            try:
                after = _arrays(p)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise AssertionError(f"{p} is still corrupt: {exc}") from None
            assert after.keys() == before.keys()
            for k in before:
                np.testing.assert_array_equal(after[k], before[k])
        else:
            assert p.read_bytes() == before

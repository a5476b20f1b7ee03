"""Task caches live in the run's cache directory, and a truncated entry is rebuilt, per cache family.

Families: generated chains (NPZ), parsed source tables (JSON, also log_kappa's
structures), the learnability collection (NPZ) and parsed user files (JSON).
`clear_memos()` stands for a new process: the next load must go to the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalbench.contract.context import RunContext
from crystalbench.tasks import chains as C
from crystalbench.tasks import collection as K
from crystalbench.tasks import properties as P
from crystalbench.tasks import readers as R
from crystalbench.tasks import sources as S
from crystalbench.tasks import user as U
from crystalbench.tasks.learnability import load_learnability

pytestmark = pytest.mark.usefixtures("fresh_process")


def truncate(path: Path) -> None:
    """What a killed writer of an older version (or a full disk) leaves behind."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def only_entry(root: Path, suffix: str) -> Path:
    found = sorted(root.rglob(f"*{suffix}"))
    assert len(found) == 1, found
    return found[0]


def write_csv(path: Path) -> None:
    rows = ["id,structure,y"]
    for i in range(4):
        s = Structure(Lattice.cubic(4 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        rows.append(f'm{i},"{s.to(fmt="cif")}",{i}')
    path.write_text("\n".join(rows) + "\n")


def test_truncated_chain_npz_is_regenerated(tmp_path):
    ctx = RunContext(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    first = C.load_chains("chain1d_short", ctx)
    entry = only_entry(tmp_path / "cache" / "chains", ".npz")
    truncate(entry)
    R.clear_memos()
    again = C.load_chains("chain1d_short", ctx)
    assert again.content_hash == first.content_hash
    with np.load(entry) as z:  # rewritten whole
        assert len(z["a"]) == C.N_STRUCTURES


def test_truncated_or_wrong_table_entry_is_reparsed(real_ctx, monkeypatch):
    first = P.property_tasks()[1].load(real_ctx)  # e_fin: the smallest source table
    assert first.name == "e_fin"
    entry = only_entry(real_ctx.cache_dir / "tables", ".json")
    truncate(entry)
    R.clear_memos()
    calls = []
    parse = S.parse_structure
    monkeypatch.setattr(S, "parse_structure", lambda v: calls.append(1) or parse(v))
    again = P.property_tasks()[1].load(real_ctx)
    assert calls and again.content_hash == first.content_hash
    entry.write_text('{"ids": 3}')  # valid JSON, not a table
    R.clear_memos()
    assert P.property_tasks()[1].load(real_ctx).content_hash == first.content_hash


def test_truncated_log_kappa_entry_is_reparsed(data_dir, tmp_path):
    (tmp_path / "gong2023_labels_only").mkdir()
    for f in ("kappa_training.csv", "kappa_test.csv"):
        (tmp_path / "gong2023_labels_only" / f).symlink_to(data_dir / "gong2023_labels_only" / f)
    (tmp_path / P.KAPPA_DIR).mkdir()
    s = Structure(Lattice.cubic(6.4), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    (tmp_path / P.KAPPA_DIR / "23465.cif").write_text(s.to(fmt="cif"))
    ctx = RunContext(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    kappa = P.property_tasks()[0]
    first = kappa.load(ctx)
    truncate(only_entry(tmp_path / "cache" / "tables", ".json"))
    R.clear_memos()
    assert kappa.load(ctx).content_hash == first.content_hash


def test_truncated_collection_npz_is_rebuilt(real_ctx):
    first = K.load_collection(real_ctx, limit=6)
    entry = only_entry(real_ctx.cache_dir / "collections", ".npz")
    truncate(entry)
    R.clear_memos()
    again = K.load_collection(real_ctx, limit=6)
    assert again.ids == first.ids and again.sources == first.sources
    assert all(a == b for a, b in zip(again.structures, first.structures))
    R.clear_memos()
    assert K.load_collection(real_ctx, limit=6).ids == first.ids  # the rebuilt entry reads back


def test_truncated_user_entry_is_reparsed(tmp_path):
    p = tmp_path / "d.csv"
    write_csv(p)
    ctx = RunContext(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    first = U.load_user_dataset(p, ctx, target="y")
    truncate(only_entry(tmp_path / "cache" / "user", ".json"))
    R.clear_memos()
    again = U.load_user_dataset(p, ctx, target="y")
    assert again.content_hash == first.content_hash


def test_loads_write_nothing_outside_the_context_cache_dir(data_dir, tmp_path, monkeypatch):
    """--cache-dir is honoured: HOME, XDG_CACHE_HOME and $CRYSTALBENCH_CACHE_DIR stay untouched."""
    elsewhere = tmp_path / "elsewhere"
    for var, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "xdg"), ("CRYSTALBENCH_CACHE_DIR", "env-cache")):
        (elsewhere / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(elsewhere / sub))
    cache = tmp_path / "cache"
    ctx = RunContext(data_dir=data_dir, cache_dir=cache, jobs=1)
    C.load_chains("chain1d_short", ctx)
    P.property_tasks()[1].load(ctx)
    load_learnability("desc_vpa", ctx, limit=4)
    p = tmp_path / "d.csv"
    write_csv(p)
    U.load_user_dataset(p, ctx, target="y")
    written = {q.relative_to(cache).parts[0] for q in cache.rglob("*") if q.is_file()}
    assert {"chains", "tables", "collections", "user"} <= written
    assert [q for q in elsewhere.rglob("*") if q.is_file()] == []
    assert not any(name.startswith(".tmp-") for _, _, files in os.walk(cache) for name in files)

"""The shared graph store and atom features (crystalbench.gnn): corrupt caches, memo, run-context stores.

Regression test for the corrupt-cache defect: a truncated graph-cache file made
every later CGCNN run fail with ``BadZipFile``. Entries now go through the
harness `Store`, which discards an unreadable entry and lets it be rebuilt.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalbench import BadInputError, Dataset
from crystalbench.contract.context import RunContext
from crystalbench.gnn import (
    CrystalGraph,
    GraphParams,
    GraphStats,
    atom_feature_table,
    build_graphs,
    check_elements,
    clear_graph_memo,
    graph_store,
)


def _structures(n: int = 5) -> list[Structure]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        a = rng.uniform(3.0, 5.0)
        out.append(Structure(Lattice.cubic(a), [["Na", "K", "Rb"][i % 3], "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    return out


def _same(a: CrystalGraph, b: CrystalGraph) -> bool:
    return all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a.to_arrays().values(), b.to_arrays().values()))


def test_truncated_cache_file_is_rebuilt(tmp_path):
    structures = _structures()
    params = GraphParams(radius=6.0, max_neighbors=8)
    first = build_graphs(structures, params=params, cache_dir=tmp_path)
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 1  # one file for the set, not one per structure
    victim = files[0]
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])  # a killed writer on an old version, a full disk...
    clear_graph_memo()  # force the disk read
    stats = GraphStats()
    again = build_graphs(structures, params=params, cache_dir=tmp_path, stats=stats)  # no BadZipFile
    assert all(_same(a, b) for a, b in zip(first, again))
    assert (stats.disk, stats.built, stats.discarded) == (0, 5, 1)
    assert victim.read_bytes() == good  # rewritten whole
    clear_graph_memo()
    stats = GraphStats()
    build_graphs(structures, params=params, cache_dir=tmp_path, stats=stats)
    assert (stats.disk, stats.built, stats.discarded) == (5, 0, 0)  # fixed for good, not rebuilt every run


@pytest.mark.parametrize("damage", ["index", "lengths", "missing"])
def test_readable_but_inconsistent_entry_is_rebuilt(tmp_path, damage):
    structures = _structures(2)
    clear_graph_memo()
    first = build_graphs(structures, cache_dir=tmp_path)
    (path,) = sorted(tmp_path.rglob("*.npz"))
    arrays = dict(np.load(path))
    assert list(arrays["numbers.len"]) == [2, 2]
    if damage == "index":
        arrays["neighbors"] = arrays["neighbors"] + 1000  # indices past the atom count
    elif damage == "lengths":
        arrays["centers.len"] = arrays["centers.len"][:1]  # fewer graphs than structures
    else:
        del arrays["distances"]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    clear_graph_memo()
    stats = GraphStats()
    again = build_graphs(structures, cache_dir=tmp_path, stats=stats)
    assert all(_same(a, b) for a, b in zip(first, again)) and (stats.built, stats.discarded) == (2, 1)
    clear_graph_memo()
    stats = GraphStats()
    build_graphs(structures, cache_dir=tmp_path, stats=stats)
    assert (stats.disk, stats.built, stats.discarded) == (2, 0, 0)


def test_each_set_is_one_entry_and_order_matters(tmp_path):
    structures = _structures(4)
    clear_graph_memo()
    build_graphs(structures, cache_dir=tmp_path)
    build_graphs(structures[:2], cache_dir=tmp_path)  # all from the memo: nothing to read or write
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    clear_graph_memo()
    build_graphs(structures[:2], cache_dir=tmp_path)  # a subset is its own entry
    assert len(list(tmp_path.rglob("*.npz"))) == 2
    clear_graph_memo()
    stats = GraphStats()
    back = build_graphs(structures[::-1], cache_dir=tmp_path, stats=stats)  # another order: another set
    assert (stats.disk, stats.built) == (0, 4) and back[0].numbers[0] == 11  # structure 3 is NaCl (i % 3 == 0)


def test_memo_duplicates_and_run_context_store(tmp_path):
    s = _structures(3)
    structures = [s[0], s[1], s[0], s[2], s[0]]  # duplicates are built once
    run = RunContext(cache_dir=tmp_path / "runcache", data_dir=tmp_path, results_dir=tmp_path / "res")
    params = GraphParams()
    store = graph_store(params.namespace, "1", run=run)
    assert str(store.dir).startswith(str(tmp_path / "runcache" / "graphs"))
    clear_graph_memo()
    stats = GraphStats()
    graphs = build_graphs(structures, params=params, store=store, stats=stats)
    assert stats.built == 3 and graphs[0] is graphs[2] is graphs[4]
    assert len(list((tmp_path / "runcache").rglob("*.npz"))) == 1
    clear_graph_memo()
    stats = GraphStats()
    again = build_graphs(structures, params=params, store=store, stats=stats)
    assert (stats.disk, stats.built) == (5, 0) and again[0] is again[2]
    stats = GraphStats()
    build_graphs(structures, params=params, store=store, stats=stats)
    assert (stats.memo, stats.built) == (5, 0)
    # a Dataset's precomputed keys are used as given
    d = Dataset(ids=list("abcde"), targets=np.zeros(5), structures=structures)
    assert build_graphs(d.structures, keys=d.structure_keys, store=store)[1] is again[1]
    with pytest.raises(BadInputError, match="keys"):
        build_graphs(structures, keys=d.structure_keys[:2], store=store)


def test_model_cache_goes_through_the_run_store_and_survives_corruption(tmp_path):
    """A CGCNN model with a RunContext caches under run.cache(); a truncated entry does not break it."""
    pytest.importorskip("torch")
    from dataclasses import replace

    from crystalbench import ModelContext
    from crystalbench.plugins.cgcnn import CGCNNParams, make_cgcnn

    structures = _structures(12)
    d = Dataset(ids=[str(i) for i in range(12)], targets=np.arange(12.0), structures=structures)
    run = RunContext(cache_dir=tmp_path / "c", data_dir=tmp_path, results_dir=tmp_path / "r")
    params = replace(CGCNNParams(), atom_fea_len=8, h_fea_len=8, n_conv=1, epochs=1, batch_size=4, patience=None)

    def fit() -> dict:
        model = make_cgcnn(ModelContext(hparams={}, params=params, run=run, cache_dir=None))
        model.fit(d.subset(range(8)), d.subset(range(8, 12)), seed=0, progress=False)
        return model.fit_info

    clear_graph_memo()
    assert fit()["graph_cache"]["built"] == 12
    files = sorted((tmp_path / "c" / "graphs").rglob("*.npz"), key=lambda f: f.stat().st_size)
    assert len(files) == 2  # the training set and the validation set
    files[0].write_bytes(files[0].read_bytes()[:40])  # the validation set's file
    clear_graph_memo()
    info = fit()["graph_cache"]
    assert (info["built"], info["disk"], info["discarded"]) == (4, 8, 1)


def test_one_atom_feature_table_for_every_gnn():
    table = atom_feature_table()
    assert table.shape == (101, 92) and table.dtype == np.float32 and not table.flags.writeable
    assert np.all(table[0] == 0) and np.all(np.isfinite(table[1:]))
    # aviary's cgcnn92.json and jarvis' atom_init.json (installed with alignn) are the same numbers
    from crystalbench.gnn import atom_features

    aviary_rows, jarvis_rows = atom_features._from_aviary(), atom_features._from_jarvis()
    assert set(aviary_rows) == set(jarvis_rows) == set(range(1, 101))
    assert all(np.array_equal(np.float32(aviary_rows[z]), np.float32(jarvis_rows[z])) for z in aviary_rows)
    check_elements([np.array([1, 8, 100])])
    with pytest.raises(BadInputError, match=r"element\(s\) Md, Og .*Z = 1..100"):
        check_elements([np.array([6]), np.array([101, 118])])


def test_toolkit_is_lazy_and_complete():
    import crystalbench.gnn as gnn

    assert sorted(gnn.__all__) == sorted(gnn._EXPORTS)
    code = (
        "import sys, crystalbench.gnn as g; g.GraphParams; g.build_graphs; g.atom_feature_table; g.param; "
        "import crystalbench.plugins.cgcnn, crystalbench.plugins.alignn, crystalbench.plugins.roost; "
        "import crystalbench.plugins.dummy, crystalbench.plugins.random_forest; "
        "print(any(m in sys.modules for m in ('torch', 'alignn', 'aviary')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(AttributeError):
        gnn.no_such_name  # noqa: B018

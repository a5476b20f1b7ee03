"""ALIGNN's index-based batches (`FlatAlignnGraphs`) are exactly its plain per-batch collate.

The shared training loop takes the indexed path whenever the collate offers
``index`` (`IndexedCollate`), so `AlignnModel` trains on these batches: every
field must equal what `AlignnCollate.__call__` builds from the same items (same
dtype, values and order), training must be bit-identical on either path, and an
atomic number outside the feature table must still be refused on both.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("alignn")

import torch  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalbench import BadInputError  # noqa: E402
from crystalbench.gnn import atom_feature_table  # noqa: E402
from crystalbench.gnn.trainer import IndexedCollate, TrainConfig, fit_torch, predict_torch  # noqa: E402
from crystalbench.plugins.alignn import graphs as ag  # noqa: E402
from crystalbench.plugins.alignn.model import AlignnParams  # noqa: E402
from crystalbench.plugins.alignn.net import AlignnNet, FlatAlignnGraphs, GraphBatch, make_collate  # noqa: E402

torch.set_num_threads(1)

TINY = AlignnParams(
    hidden_features=8,
    embedding_features=8,
    edge_input_features=8,
    triplet_input_features=8,
    alignn_layers=1,
    gcn_layers=1,
)


def _structures() -> list[Structure]:
    """Small crystals of 1 to 4 atoms: different node, bond and triplet counts per graph."""
    return [
        Structure(Lattice.cubic(3.4), ["Po"], [[0, 0, 0]]),
        Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("Im-3m", Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]]),
        Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, 0.25]]),
        Structure(Lattice.orthorhombic(4.2, 4.5, 4.9), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup(
            "P6_3mc", Lattice.hexagonal(3.25, 5.2), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.38]]
        ),
        Structure(Lattice.cubic(4.05), ["Al"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
        Structure(Lattice.tetragonal(3.9, 5.1), ["Li", "F", "K"], [[0, 0, 0], [0.5, 0.5, 0.3], [0, 0.5, 0.7]]),
    ]


@pytest.fixture(scope="module")
def graphs() -> list[ag.AlignnGraph]:
    out = [ag.build_graph(s) for s in _structures()]
    assert len({g.num_nodes for g in out}) >= 3 and len({len(g.lg_src) for g in out}) >= 6
    return out


def _item_sets(graphs: list[ag.AlignnGraph]) -> list[list[tuple[ag.AlignnGraph, np.ndarray | None]]]:
    """The same graphs without extra features and with a float64 feature row each (cast to float32 on collate)."""
    feats = np.random.default_rng(1).normal(size=(len(graphs), 3))
    return [[(g, None) for g in graphs], [(g, f) for g, f in zip(graphs, feats)]]


def _same_tensor(a: torch.Tensor | None, b: torch.Tensor | None, what: str) -> None:
    assert (a is None) == (b is None), what
    if a is not None and b is not None:
        assert a.dtype == b.dtype and a.device == b.device and a.shape == b.shape, what
        assert torch.equal(a, b), what


def _same_graph(a, b, what: str) -> None:  # two alignn TorchGraphs
    assert type(a.num_nodes) is int and a.num_nodes == b.num_nodes, what
    for name in ("src", "dst", "batch_num_nodes", "batch_num_edges"):
        _same_tensor(getattr(a, name), getattr(b, name), f"{what}.{name}")
    for name in ("ndata", "edata"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.keys() == y.keys(), f"{what}.{name}"
        for key in x:
            _same_tensor(x[key], y[key], f"{what}.{name}[{key}]")


def _same_batch(a: GraphBatch, b: GraphBatch) -> None:
    _same_graph(a.g, b.g, "g")
    _same_graph(a.lg, b.lg, "lg")
    _same_tensor(a.n_atoms, b.n_atoms, "n_atoms")
    _same_tensor(a.extra, b.extra, "extra")


def test_the_collate_offers_the_indexed_path():
    collate = make_collate(atom_feature_table())
    assert isinstance(collate, IndexedCollate)
    assert not isinstance(lambda items: collate(items), IndexedCollate)


def test_indexed_batches_equal_the_plain_collate(graphs):
    collate = make_collate(atom_feature_table())
    n = len(graphs)
    groups = [
        np.array([5, 0, 7, 2]),  # shuffled
        np.array([3]),  # a single graph
        np.arange(n),  # everything, in order
        np.array([6, 1, 4]),
        np.array([4, 4]),  # the same graph twice
        np.array([7, 6, 5, 4, 3, 2, 1, 0]),
    ]
    for items in _item_sets(graphs):
        flat = collate.index(items)
        assert isinstance(flat, FlatAlignnGraphs) and len(flat) == n
        assert flat.prepare(torch.nn.Identity()) is flat
        moved = flat.to(torch.device("cpu"))
        assert moved is not flat and moved.r.device.type == "cpu"
        batches = moved.batches(groups)
        assert len(batches) == len(groups)
        for group, batch in zip(groups, batches):
            _same_batch(batch, collate([items[i] for i in group]))
        # one group at a time gives the same batches as all groups in one call
        for group in groups[:2]:
            (alone,) = flat.batches([group])
            _same_batch(alone, collate([items[i] for i in group]))
        assert flat.batches([]) == []


def _fit(collate, graphs: list[ag.AlignnGraph]) -> tuple[list[float], np.ndarray]:
    items = _item_sets(graphs)[1]
    y = np.array([float(np.linalg.norm(g.r, axis=1).mean()) for g in graphs])
    cfg = TrainConfig(epochs=2, batch_size=3, lr=3e-3, patience=None)
    res = fit_torch(
        lambda: AlignnNet(TINY, 92, 1, 3),
        items[:5],
        y[:5],
        collate,
        cfg=cfg,
        val_items=items[5:],
        y_val=y[5:],
        seed=7,
    )
    return [h["val"] for h in res.history], predict_torch(res, items, collate)


def test_indexed_path_trains_like_the_collate_path(graphs):
    collate = make_collate(atom_feature_table())
    fast_val, fast_pred = _fit(collate, graphs)
    slow_val, slow_pred = _fit(lambda items: collate(items), graphs)  # no `index`: per-batch collation
    assert len(fast_val) == 2 and np.all(np.isfinite(fast_val)) and np.all(np.isfinite(fast_pred))
    assert fast_val == slow_val
    np.testing.assert_array_equal(fast_pred, slow_pred)


@pytest.mark.parametrize("bad_z", [0, 200])
def test_atomic_number_outside_the_table_is_refused_on_both_paths(graphs, bad_z):
    table = atom_feature_table()
    assert bad_z == 0 or bad_z >= len(table)
    collate = make_collate(table)
    g = graphs[1]
    bad = ag.AlignnGraph(np.array([g.z[0], bad_z]), g.src, g.dst, g.r, g.lg_src, g.lg_dst)
    items = [(graphs[0], None), (bad, None)]
    with pytest.raises(BadInputError, match=f"Z = {bad_z}"):
        collate(items)
    with pytest.raises(BadInputError, match=f"Z = {bad_z}"):
        collate.index(items)
    cfg = TrainConfig(epochs=1, batch_size=2, patience=None)
    for path in (collate, lambda batch: collate(batch)):
        with pytest.raises(BadInputError):
            fit_torch(lambda: AlignnNet(TINY, 92, 1, 0), items, np.zeros(2), path, cfg=cfg)


def test_mixed_extra_features_are_refused_by_index(graphs):
    collate = make_collate(atom_feature_table())
    with pytest.raises(BadInputError, match="extra features"):
        collate.index([(graphs[0], np.zeros(3)), (graphs[1], None)])

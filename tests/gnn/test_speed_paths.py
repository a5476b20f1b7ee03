"""The fast training paths (issue #14) compute what the straightforward ones compute.

- CGCNN's convolution applies ``fc_full`` per atom and per edge instead of on the
  (E, 2F + G) concatenation: same outputs, same parameters (old weights load).
- `FlatGraphs` batches (data set collated once, batches cut by index) equal
  `collate_graphs` of the same items, so the index-based path of `fit_torch` trains
  on exactly the same batches as the per-batch collate path.
- The GPU-style loop (loss summed on the device, NaN checked once per epoch) is
  exercised on CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalbench.gnn import trainer  # noqa: E402
from crystalbench.gnn.graphs import FlatGraphs, GraphBatch, collate_graphs, structure_graph  # noqa: E402
from crystalbench.gnn.trainer import IndexedCollate, NonFiniteLossError, TrainConfig, fit_torch, predict_torch  # noqa: E402
from crystalbench.plugins.cgcnn.net import CGCNNNet, CGConv  # noqa: E402


def _graphs(n: int = 12, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i == 3:  # an atom with no neighbour within 8 A: no edges at all
            out.append(structure_graph(Structure(Lattice.orthorhombic(9.0, 100, 100), ["C"], [[0, 0, 0]])))
            continue
        a = rng.uniform(3.0, 5.5)
        species = [["Na", "K", "Li"][i % 3], ["Cl", "F"][i % 2]] + (["O"] if i % 4 == 0 else [])
        coords = [[0, 0, 0], [0.5, 0.5, 0.5]] + ([[0.5, 0, 0.25]] if i % 4 == 0 else [])
        out.append(structure_graph(Structure(Lattice.cubic(a), species, coords)))
    return out


def _same_batch(a: GraphBatch, b: GraphBatch) -> None:
    for name in ("numbers", "centers", "neighbors", "distances", "crystal"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name
    assert a.n_crystals == b.n_crystals
    assert (a.features is None) == (b.features is None)
    if a.features is not None:
        assert torch.equal(a.features, b.features)


def test_split_convolution_equals_the_concatenated_linear_map():
    torch.manual_seed(0)
    conv = CGConv(16, 41)
    x = torch.randn(30, 16)
    centers = torch.randint(0, 30, (200,))
    neighbors = torch.randint(0, 30, (200,))
    edge = torch.rand(200, 41)
    z = torch.cat([x[centers], x[neighbors], edge], dim=1)
    reference = conv.fc_full(z)  # the reference implementation's (E, 2F + G) product
    fast = conv.gate_inputs(x, centers, neighbors, edge)
    assert fast.shape == reference.shape
    assert torch.allclose(fast, reference, atol=1e-5, rtol=0)
    # the gradients reach the same weight (same parameters, no new ones)
    assert [n for n, _ in conv.named_parameters()] == [
        "fc_full.weight", "fc_full.bias", "bn1.weight", "bn1.bias", "bn2.weight", "bn2.bias"]
    (g_ref,) = torch.autograd.grad(reference.square().sum(), conv.fc_full.weight)
    (g_fast,) = torch.autograd.grad(conv.gate_inputs(x, centers, neighbors, edge).square().sum(), conv.fc_full.weight)
    assert torch.allclose(g_ref, g_fast, atol=1e-3, rtol=1e-5)


def test_old_weights_load_and_give_the_reference_outputs():
    """A state dict of the concatenated form loads unchanged; a full forward matches a by-hand reference."""
    torch.manual_seed(1)
    net = CGCNNNet(atom_fea_len=8, n_conv=2, h_fea_len=8)
    net.eval()
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in saved.items()}
    assert shapes["convs.0.fc_full.weight"] == (16, 2 * 8 + 41)
    other = CGCNNNet(atom_fea_len=8, n_conv=2, h_fea_len=8)
    other.load_state_dict(saved)  # strict: same names, same shapes
    other.eval()
    batch = collate_graphs(_graphs(6))

    def reference(m: CGCNNNet) -> torch.Tensor:  # the concatenated form, written out
        x = m.embedding(m.atom_table[batch.numbers])
        e = torch.exp(-m.gauss_gamma * (batch.distances[:, None] - m.gauss_centers) ** 2)
        for conv in m.convs:
            agg = torch.zeros_like(x)
            z = torch.cat([x[batch.centers], x[batch.neighbors], e], dim=1)
            filt, core = conv.bn1(conv.fc_full(z)).chunk(2, dim=1)
            agg = agg.index_add(0, batch.centers, torch.sigmoid(filt) * F.softplus(core))
            x = F.softplus(x + conv.bn2(agg))
        pooled = torch.zeros(batch.n_crystals, x.shape[1]).index_add(0, batch.crystal, x)
        pooled = pooled / torch.bincount(batch.crystal, minlength=batch.n_crystals)[:, None]
        return m.head(F.softplus(pooled))

    with torch.no_grad():
        assert torch.allclose(other(batch), reference(net), atol=1e-5)


def test_flat_batches_equal_collate_graphs():
    graphs = _graphs(12)
    feats = np.random.default_rng(2).normal(size=(12, 3)).astype(np.float32)
    for items in (graphs, [(g, f) for g, f in zip(graphs, feats)]):
        flat = collate_graphs.index(items)
        assert isinstance(collate_graphs, IndexedCollate) and isinstance(flat, FlatGraphs) and len(flat) == 12
        groups = [np.array([5, 3, 0]), np.array([11]), np.array([2, 4, 6, 8, 10, 1]), np.array([3])]
        for group, batch in zip(groups, flat.batches(groups)):
            _same_batch(batch, collate_graphs([items[i] for i in group]))
        _same_batch(flat.batch(np.arange(12)), collate_graphs(list(items)))


def test_prepared_edge_features_are_the_gaussian_expansion_of_each_distinct_length():
    graphs = _graphs(8)
    torch.manual_seed(0)
    net = CGCNNNet(atom_fea_len=8, h_fea_len=8)
    net.eval()
    flat = collate_graphs.index(graphs).prepare(net)
    lengths = np.unique(flat.distances.numpy())
    assert len(lengths) < len(flat.distances)  # symmetric neighbours share lengths
    assert flat.edge_fea is not None and flat.edge_fea.shape == (len(lengths), 41)
    groups = [np.array([7, 2, 5]), np.array([0]), np.array([1, 3, 4, 6, 0])]
    for group, batch in zip(groups, flat.batches(groups)):
        plain = collate_graphs([graphs[i] for i in group])
        assert batch.edge_fea is not None and batch.edge_fea_index is not None
        # one row per distinct length of this batch, and every edge finds its own
        assert len(batch.edge_fea) == len(np.unique(plain.distances.numpy()))
        assert len(batch.edge_fea_index) == len(plain.distances)
        per_edge = batch.edge_fea.index_select(0, batch.edge_fea_index)
        torch.testing.assert_close(per_edge, net.edge_features(plain.distances), rtol=1e-6, atol=0.0)
        with torch.no_grad():  # precomputed or not: the same function (float summation order aside)
            torch.testing.assert_close(net(batch), net(plain), rtol=1e-5, atol=1e-6)


def _cgcnn_fit(collate, cfg: TrainConfig) -> np.ndarray:
    graphs = _graphs(40, seed=3)
    y = np.array([g.distances.mean() if g.n_edges else 0.0 for g in graphs]) * 10
    res = fit_torch(lambda: CGCNNNet(atom_fea_len=8, n_conv=2, h_fea_len=8), graphs[:30], y[:30], collate, cfg=cfg,
                    val_items=graphs[30:35], y_val=y[30:35], seed=4)
    return predict_torch(res, graphs[35:], collate)


def test_indexed_path_has_the_collate_paths_gradients():
    """The fast path multiplies each distinct edge length once and gathers: same gradients, float order aside."""
    graphs = _graphs(12)
    torch.manual_seed(0)
    net = CGCNNNet(atom_fea_len=8, n_conv=2, h_fea_len=8)
    group = np.array([3, 1, 4, 0, 5, 9, 2, 6])
    (fast,) = collate_graphs.index(graphs).prepare(net).batches([group])
    slow = collate_graphs([graphs[i] for i in group])
    assert fast.edge_fea_index is not None and slow.edge_fea is None
    grads = []
    for batch in (fast, slow):
        net.zero_grad()
        net(batch).pow(2).sum().backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-7, msg=k)


def test_indexed_path_trains_like_the_collate_path():
    # SGD: Adam divides by the gradient's own scale, so the ~1e-8 float noise on weights whose
    # gradient is exactly zero in theory (a bias followed by BatchNorm) becomes full-size steps
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, optimizer="sgd", patience=None)
    fast = _cgcnn_fit(collate_graphs, cfg)
    slow = _cgcnn_fit(lambda items: collate_graphs(items), cfg)  # a plain function: per-batch collation
    np.testing.assert_allclose(fast, slow, rtol=1e-5)
    assert not np.allclose(fast, fast.mean())  # it learned something crystal-specific


class _Exploding(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out: torch.Tensor = self.lin(x)
        return out * (float("nan") if self.calls == 3 else 1.0)


def test_device_style_loop_checks_the_loss_once_per_epoch(monkeypatch):
    """On a GPU the loss is not read back per batch: a NaN is reported at the end of its epoch."""
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    y = x.sum(axis=1)

    def collate(items: list) -> torch.Tensor:
        return torch.from_numpy(np.stack(items))

    monkeypatch.setattr(trainer, "_sync_per_batch", lambda device: False)
    model = _Exploding()
    with pytest.raises(NonFiniteLossError, match="during epoch 1"):
        fit_torch(model, list(x), y, collate, cfg=TrainConfig(epochs=2, batch_size=8, precise_bn=False))
    assert model.calls == 8  # the epoch ran to its end, no per-batch read-back
    monkeypatch.undo()
    model = _Exploding()
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 3/8"):
        fit_torch(model, list(x), y, collate, cfg=TrainConfig(epochs=2, batch_size=8, precise_bn=False))

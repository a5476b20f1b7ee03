"""ALIGNN / de-ALIGNN plugin: graphs, cache, pooling, hybridization, classification, determinism.

Synthetic data built here (CsCl-type cubic cells whose target is the lattice
constant; 1D carbon chains in a 100 A vacuum box), a tiny hidden size and few
epochs, but the real code path: graph building, cache, the alignn package's
encoder, the shared training loop.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("alignn")

import torch  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalbench import BadInputError, Dataset, ModelContext  # noqa: E402
from crystalbench.gnn import GraphStats, atom_feature_table, clear_graph_memo  # noqa: E402
from crystalbench.plugins import alignn as al  # noqa: E402
from crystalbench.plugins.alignn import graphs as ag  # noqa: E402
from crystalbench.plugins.alignn.model import AlignnParams, DeAlignnParams  # noqa: E402
from crystalbench.plugins.alignn.net import AlignnNet, make_collate  # noqa: E402

torch.set_num_threads(1)

TINY = {
    "hidden_features": 16,
    "embedding_features": 16,
    "edge_input_features": 32,
    "triplet_input_features": 16,
    "alignn_layers": 2,
    "gcn_layers": 2,
    "epochs": 25,
    "batch_size": 16,
    "lr": 3e-3,
    "patience": 25,
}
PAIRS = [("Na", "Cl"), ("K", "Br"), ("Mg", "O"), ("Li", "F"), ("Cs", "I")]


def cubic_dataset(n: int, seed: int = 0, name: str = "cubic") -> Dataset:
    """CsCl-type cells, a in [3, 5] A; target = a (a function of bond lengths only)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(3.0, 5.0, n)
    structures = [Structure(Lattice.cubic(x), list(PAIRS[i % len(PAIRS)]), [[0, 0, 0], [0.5, 0.5, 0.5]]) for i, x in enumerate(a)]
    return Dataset(ids=[f"{name}-{i}" for i in range(n)], targets=a, structures=structures, name=name)


def chain(n: int, rng: np.random.Generator) -> Structure:
    """A carbon chain as in the paper's Supplementary section 9 (b = c = 100 A vacuum)."""
    pos = [rng.random(3) * 3]
    for i in range(1, n):
        sign = 1.0 if i % 2 == 0 else -1.0
        pos.append(pos[-1] + np.array([3 * rng.random(), sign * 3 * rng.random(), sign * 3 * rng.random()]))
    pos = np.array(pos)
    return Structure(Lattice.orthorhombic(pos[-1, 0], 100.0, 100.0), ["C"] * n, pos, coords_are_cartesian=True)


def tiny(cls=AlignnParams, **hp) -> AlignnParams:
    return cls(**{**TINY, **hp})


def fit_predict(train, val, test, tmp_path, seed=0, cls=AlignnParams, **hp):
    ctx = ModelContext(hparams={}, params=tiny(cls, **hp), cache_dir=tmp_path)
    model = al.AlignnModel(ctx, cls)
    model.fit(train, val, seed=seed, progress=False)
    return model, model.predict(test)


@pytest.fixture(scope="module")
def splits():
    d = cubic_dataset(90)
    return d.subset(range(60)), d.subset(range(60, 75)), d.subset(range(75, 90))


def test_alignn_beats_mean_predictor(splits, tmp_path):
    train, val, test = splits
    clear_graph_memo()  # graph-cache counts below assume nothing is in memory yet
    model, pred = fit_predict(train, val, test, tmp_path)
    mae = np.abs(pred - test.targets).mean()
    baseline = np.abs(train.targets.mean() - test.targets).mean()
    assert pred.shape == (len(test),) and np.all(np.isfinite(pred))
    assert mae < 0.35 * baseline, (mae, baseline)
    assert model.fit_info["graph_cache"]["built"] == len(train) + len(val)
    assert model.fit_info["torch_threads"] == 1


def test_same_seed_identical_predictions(splits, tmp_path):
    train, val, test = splits
    _, p1 = fit_predict(train, val, test, tmp_path, seed=3, epochs=3)
    _, p2 = fit_predict(train, val, test, tmp_path, seed=3, epochs=3)
    _, p3 = fit_predict(train, val, test, tmp_path, seed=4, epochs=3)
    assert np.array_equal(p1, p2)
    assert not np.allclose(p1, p3)


def test_graph_cache_hit(tmp_path):
    data = cubic_dataset(6, seed=1)
    params = ag.AlignnGraphParams()
    first = GraphStats()
    g1 = ag.load_or_build_graphs(data, params, cache_dir=tmp_path, stats=first)
    clear_graph_memo()
    second = GraphStats()
    g2 = ag.load_or_build_graphs(data, params, cache_dir=tmp_path, stats=second)
    third = GraphStats()
    ag.load_or_build_graphs(data, params, cache_dir=tmp_path, stats=third)
    assert (first.hits, first.built) == (0, 6) and (second.disk, second.built) == (6, 0) and third.memo == 6
    for a, b in zip(g1, g2):
        for key in ag.AlignnGraph.KEYS:
            assert np.array_equal(getattr(a, key), getattr(b, key))
    files = list((tmp_path / "graphs" / "alignn-r8_k12").rglob("*.npz"))
    assert files  # how entries are packed into files is the shared GraphStore's business
    # different graph parameters never share cache files
    other = GraphStats()
    ag.load_or_build_graphs(data, ag.AlignnGraphParams(cutoff=6.0), cache_dir=tmp_path, stats=other)
    assert (other.hits, other.built) == (0, 6)


def test_graph_matches_geometry():
    fcc = Structure(Lattice.cubic(4.05), ["Al"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    g = ag.build_graph(fcc)
    assert np.array_equal(np.bincount(g.src), [12] * 4)  # exactly the 12 nearest neighbours
    assert np.allclose(np.linalg.norm(g.r, axis=1), 4.05 / np.sqrt(2), atol=1e-4)
    cscl = Structure(Lattice.cubic(4.0), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    g = ag.build_graph(cscl)
    # 8 at a*sqrt(3)/2, then the whole (exactly tied) shell of 6 at a: bonds to the atom's own periodic
    # images, which the alignn package counts twice in each direction: 8 + 2 * 6 bonds leave each atom
    assert np.array_equal(np.bincount(g.src), [20, 20])


def test_chain_in_vacuum_graph_is_valid(tmp_path):
    rng = np.random.default_rng(0)
    chains = [chain(n, rng) for n in (2, 3, 5, 8, 40)]
    for s in chains:
        g = ag.build_graph(s, ag.AlignnGraphParams(extend_cutoff=False))
        n = len(s)
        dist = np.linalg.norm(g.r, axis=1)
        assert g.num_edges > 0 and dist.max() <= 8.0 + 1e-4 and dist.min() > 0
        deg = np.bincount(g.src, minlength=n)
        assert deg.min() >= 1  # consecutive atoms are < 5.2 A apart
        if n == 40:  # a long chain: vacuum leaves fewer than 12 neighbours within 8 A
            assert deg.max() < 12
        assert np.array_equal(np.sort(deg), np.sort(np.bincount(g.dst, minlength=n)))  # undirected
        assert np.array_equal(g.dst[g.lg_src], g.src[g.lg_dst])  # bond u->v feeds bond v->w
        assert len(g.lg_src) == int(np.bincount(g.src, minlength=n)[g.dst].sum())
        # bond vectors are real distances: compare with pymatgen for one bond
        i, j = int(g.src[0]), int(g.dst[0])
        assert dist[0] >= s.get_distance(i, j) - 1e-4
    # by default (the package's rule) the cutoff grows until every atom has 12 neighbours
    ext = ag.build_graph(chains[1])
    assert np.bincount(ext.src).min() >= 12 and np.linalg.norm(ext.r, axis=1).max() > 8.0
    # and the network runs on a batch of chains with finite output
    data = Dataset(ids=[f"c{i}" for i in range(len(chains))], targets=[s.lattice.a for s in chains], structures=chains)
    graphs = ag.load_or_build_graphs(data, ag.AlignnGraphParams(), cache_dir=tmp_path)
    collate = make_collate(atom_feature_table())
    torch.manual_seed(0)
    net = AlignnNet(tiny(), 92, 1, 0)
    out = net(collate([(g, None) for g in graphs]))
    assert out.shape == (len(chains), 1) and torch.isfinite(out).all()


def test_sum_and_mean_pooling_differ_as_eq13():
    # The alignn package's graph is not supercell-invariant: a primitive cell's bonds to its own images
    # count twice, and a symmetric 12th shell is cut where rounding makes some members farther. So:
    # cells larger than the 12 nearest neighbours, and shells that end exactly at the 12th (8 + 2 + 2).
    s = Structure(Lattice.orthorhombic(4.2, 4.5, 4.9), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s.make_supercell([2, 2, 2])
    big = s.copy()
    big.make_supercell([2, 1, 1])
    collate = make_collate(atom_feature_table())
    batch = collate([(ag.build_graph(s), None), (ag.build_graph(big), None)])
    embeds = {}
    for pooling in ("mean", "sum"):
        torch.manual_seed(0)
        net = AlignnNet(tiny(pooling=pooling), 92, 1, 0).eval()
        with torch.no_grad():
            embeds[pooling] = net.embed(batch)
    mean, total = embeds["mean"], embeds["sum"]
    # a supercell has the same local environments: mean is size-invariant, sum scales with atoms
    assert torch.allclose(mean[0], mean[1], atol=1e-4)
    assert torch.allclose(total[1], 2 * total[0], rtol=1e-4, atol=1e-4)
    assert torch.allclose(total[0], 16 * mean[0], rtol=1e-5, atol=1e-4)


def test_monatomic_blind_spot_of_the_architecture():
    """ALIGNN's normalized edge gating cannot tell monatomic geometries apart (see module docstring).

    Identical initial atom features stay identical through every layer, so fcc Al
    at any lattice constant (and simple-cubic Al) gets the same embedding, while a
    binary crystal's embedding does follow its lattice constant. If this fails, the
    architecture changed: update the docstring and docs/models.md.
    """
    fcc = [Structure(Lattice.cubic(a), ["Al"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) for a in (3.6, 4.4)]
    sc = Structure(Lattice.cubic(2.9), ["Al"], [[0, 0, 0]])
    salt = [Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for a in (3.6, 4.4)]
    collate = make_collate(atom_feature_table())
    torch.manual_seed(0)
    net = AlignnNet(tiny(), 92, 1, 0).eval()
    with torch.no_grad():
        e = net.embed(collate([(ag.build_graph(s), None) for s in [*fcc, sc, *salt]]))
    assert torch.allclose(e[0], e[1], atol=1e-4) and torch.allclose(e[0], e[2], atol=1e-4)
    assert (e[3] - e[4]).abs().max() > 1e-2


def test_sum_pooling_model_trains_differently(splits, tmp_path):
    train, val, test = splits
    _, p_mean = fit_predict(train, val, test, tmp_path, epochs=3, pooling="mean")
    _, p_sum = fit_predict(train, val, test, tmp_path, epochs=3, pooling="sum")
    assert np.all(np.isfinite(p_sum)) and not np.allclose(p_mean, p_sum)
    with pytest.raises(BadInputError, match="pooling"):
        al.AlignnModel(ModelContext(hparams={"pooling": "max"}))
    with pytest.raises(BadInputError, match="lr must be > 0"):
        al.AlignnModel(ModelContext(hparams={"lr": 0.0}))


def test_de_alignn_consumes_features(tmp_path):
    # target = lattice constant + a per-sample quantity only the features carry
    d = cubic_dataset(90, seed=2)
    rng = np.random.default_rng(5)
    hidden = rng.normal(0.0, 1.0, len(d))
    feats = np.column_stack([hidden, rng.normal(size=len(d))])
    feats[3, 1] = np.nan  # descriptors may be undefined: imputed, never fatal
    d = Dataset(ids=d.ids, targets=d.targets + 2.0 * hidden, structures=d.structures)
    with_f = d.with_features(("f_hidden", "f_noise"), feats)
    tr, va, te = range(60), range(60, 75), range(75, 90)
    _, p_plain = fit_predict(d.subset(tr), d.subset(va), d.subset(te), tmp_path, epochs=40)
    model, p_de = fit_predict(
        with_f.subset(tr), with_f.subset(va), with_f.subset(te), tmp_path, cls=DeAlignnParams, epochs=40
    )
    y = d.subset(te).targets
    mae_plain, mae_de = np.abs(p_plain - y).mean(), np.abs(p_de - y).mean()
    assert model.fit_info["n_extra_features"] == 2
    assert mae_de < 0.5 * mae_plain, (mae_de, mae_plain)
    with pytest.raises(BadInputError):  # trained with features, asked without
        model.predict(d.subset(te))
    de = al.make_de_alignn(ModelContext(hparams=TINY, cache_dir=tmp_path))
    assert de.params.fc_layers == 1 and isinstance(de.params, DeAlignnParams)
    with pytest.raises(BadInputError, match="de-alignn needs descriptor features"):
        de.fit(d.subset(tr), d.subset(va), seed=0, progress=False)  # never silently a plain alignn


def test_classification(tmp_path):
    d = cubic_dataset(90, seed=4)
    labels = np.digitize(d.targets, [3.67, 4.33])  # three classes by lattice constant
    data = Dataset(ids=d.ids, targets=labels, structures=d.structures, classes=("small", "medium", "large"))
    tr, va, te = data.subset(range(60)), data.subset(range(60, 75)), data.subset(range(75, 90))
    ctx = ModelContext(hparams={}, params=tiny(epochs=30), task_type="classification", n_classes=3, cache_dir=tmp_path)
    model = al.AlignnModel(ctx)
    model.fit(tr, va, seed=0, progress=False)
    pred = model.predict(te)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1, 2}
    majority = np.bincount(tr.targets).argmax()
    acc, base = np.mean(pred == te.targets), np.mean(te.targets == majority)
    assert acc >= 0.8 and acc > base + 0.2, (acc, base)


def test_specs_and_lazy_imports():
    specs = {s.name: s for s in al.bench_models()}
    assert set(specs) == {"alignn", "de-alignn"}
    a, de = specs["alignn"], specs["de-alignn"]
    assert a.accepts_features and a.classification and a.poolings == ("mean", "sum", "atom-sum") and a.descriptors is None
    assert de.descriptors == "gong29" and de.accepts_features and de.poolings == ("mean", "sum", "atom-sum")
    assert a.params is AlignnParams and de.params is DeAlignnParams and a.inputs == de.inputs == ()
    d, dd = a.default_params(), de.default_params()
    assert d["cutoff"] == 8.0 and d["max_neighbors"] == 12 and d["lr"] == 1e-3 and d["weight_decay"] == 1e-5
    assert d["optimizer"] == "adamw" and d["scheduler"] == "onecycle" and d["patience"] is None
    assert d["alignn_layers"] == 4 and d["gcn_layers"] == 4 and d["pooling"] == "mean" and d["fc_layers"] == 0
    assert dd == {**d, "fc_layers": 1}
    code = "import sys, crystalbench.plugins.alignn, crystalbench.plugins.roost; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"  # listing models must not import torch


def test_non_structure_data_is_rejected(tmp_path):
    from pymatgen.core import Composition

    data = Dataset(ids=["x"], targets=[1.0], compositions=[Composition("NaCl")])
    with pytest.raises(BadInputError):
        ag.load_or_build_graphs(data, ag.AlignnGraphParams(), cache_dir=tmp_path)


def _bond_list(src, dst, length) -> list:
    """Directed bonds as sorted (src, dst, length to 0.01 A): comparable across float32 round-off."""
    return sorted(zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), np.round(length + 1e-3, 2).tolist()))


def _reference_counts(structure) -> tuple[list, int]:
    """Directed bonds (src, dst, length) and line-graph size by the alignn package's own k-nearest builder."""
    from alignn.graphs import build_undirected_edgedata, nearest_neighbor_edges
    from jarvis.core.atoms import pmg_to_atoms

    atoms = pmg_to_atoms(structure)
    edges, _ = nearest_neighbor_edges(atoms=atoms, cutoff=8.0, max_neighbors=12, use_canonize=True)
    u, v, r, _ = build_undirected_edgedata(atoms, edges)
    u, v = u.numpy(), v.numpy()
    length = np.linalg.norm(r.numpy().astype(np.float64), axis=1)
    return _bond_list(u, v, length), int(np.bincount(u, minlength=len(structure))[v].sum())


def _our_counts(structure) -> tuple[list, int]:
    g = ag.build_graph(structure)
    return _bond_list(g.src, g.dst, np.linalg.norm(g.r.astype(np.float64), axis=1)), len(g.lg_src)


def test_graph_equals_the_alignn_package_builder(data_dir):
    """Same directed bonds (atoms, length) and triplet count as alignn's k-nearest builder (no DGL) on real crystals.

    The first 40 matbench_phonons structures include symmetric 12th shells cut by
    rounding (the exact-comparison rule) and bonds to a site's own periodic image
    (counted twice each way by the package), the two places where the previous
    rule differed.
    """
    import gzip
    import json

    path = data_dir / "matbench" / "matbench_phonons.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with gzip.open(path, "rt") as fh:
        rows = json.load(fh)["data"][:40]
    structures = [Structure.from_dict(r[0]) for r in rows]
    fcc_primitive = Structure(Lattice([[0, 2, 2], [2, 0, 2], [2, 2, 0]]), ["Cu"], [[0, 0, 0]])  # all bonds self-image
    for s in [*structures, fcc_primitive]:
        assert _our_counts(s) == _reference_counts(s), s.composition.reduced_formula
    assert len(_our_counts(fcc_primitive)[0]) == 24  # 12 self-image bonds, each twice in each direction

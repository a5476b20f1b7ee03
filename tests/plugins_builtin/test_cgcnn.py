"""CGCNN / de-CGCNN and crystal graphs on small synthetic crystals (real code paths, tiny nets)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalbench import BadInputError, Dataset, ModelContext  # noqa: E402
from crystalbench.gnn import graphs  # noqa: E402
from crystalbench.gnn.graphs import (  # noqa: E402
    GraphParams,
    GraphStats,
    build_graphs,
    clear_graph_memo,
    collate_graphs,
    structure_graph,
)
from crystalbench.plugins import cgcnn  # noqa: E402
from crystalbench.plugins.cgcnn import CGCNNModel, CGCNNParams  # noqa: E402

torch.set_num_threads(1)

SMALL = dict(atom_fea_len=16, n_conv=2, h_fea_len=32, batch_size=32, lr=3e-3, epochs=40, patience=15)
CATIONS = {"Na": 0.0, "K": 1.0, "Rb": 2.0}


def _model(tmp: Path, task_type: str = "regression", n_classes: int | None = None, de: bool = False, **hp) -> CGCNNModel:
    params = replace(CGCNNParams(), **{**SMALL, **hp})
    ctx = ModelContext(hparams={}, params=params, task_type=task_type, n_classes=n_classes, cache_dir=tmp)
    return cgcnn.make_de_cgcnn(ctx) if de else cgcnn.make_cgcnn(ctx)


def _mad(y: np.ndarray) -> float:
    return float(np.mean(np.abs(y - y.mean())))


def _split(d: Dataset, n_train: int, n_val: int) -> tuple[Dataset, Dataset, Dataset]:
    n = len(d)
    return d.subset(range(n_train)), d.subset(range(n_train, n_train + n_val)), d.subset(range(n_train + n_val, n))


def _cscl_dataset(n: int, seed: int) -> Dataset:
    """CsCl-type AB cells, a in [3, 5] A; target 2a + (cation offset): needs distances and species."""
    rng = np.random.default_rng(seed)
    structs, ys = [], []
    for _ in range(n):
        a = rng.uniform(3.0, 5.0)
        cat = rng.choice(list(CATIONS))
        structs.append(Structure(Lattice.cubic(a), [cat, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
        ys.append(2 * a + CATIONS[cat])
    return Dataset(ids=[f"s{i}" for i in range(n)], targets=np.array(ys), structures=structs, name="cscl")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("graphs")


# -- graphs -------------------------------------------------------------------


def test_graph_matches_brute_force_nearest_neighbours():
    rng = np.random.default_rng(0)
    lat = Lattice.from_parameters(4.1, 5.3, 6.2, 75, 95, 110)
    s = Structure(lat, ["Na", "Cl", "O", "Mg", "Cl"], rng.random((5, 3)))
    g = structure_graph(s)
    assert g.n_atoms == 5 and list(g.numbers) == [11, 17, 8, 12, 17]
    assert np.all(g.neighbor_counts() == 12) and np.all(g.distances <= 8.0) and np.all(g.distances > 0)
    for i, site in enumerate(s):
        brute = np.sort([nb.nn_distance for nb in s.get_neighbors(site, 8.0)])[:12]
        np.testing.assert_allclose(g.distances[g.centers == i], brute, rtol=1e-5)
    # neighbour indices point at atoms of the right distance (rock-salt: 6 Cl at a/2 around Na)
    rs = Structure(Lattice.cubic(5.64), ["Na", "Cl"] * 4,
                   [[0, 0, 0], [.5, 0, 0], [.5, .5, 0], [0, .5, 0], [.5, 0, .5], [0, 0, .5], [0, .5, .5], [.5, .5, .5]])
    gr = structure_graph(rs)
    first = gr.neighbors[(gr.centers == 0)][:6]
    assert np.all(gr.numbers[first] == 17) and np.allclose(gr.distances[gr.centers == 0][:6], 2.82, atol=1e-4)


def test_chain_in_vacuum_has_only_real_neighbours():
    # 3-atom zig-zag chain, period 4.5 A along x, 100 A vacuum in y and z
    xyz = np.array([[0.5, 50.0, 50.0], [2.0, 51.2, 50.4], [3.4, 50.1, 49.5]])
    chain = Structure(Lattice.orthorhombic(4.5, 100, 100), ["C"] * 3, xyz, coords_are_cartesian=True)
    g = structure_graph(chain)
    for i in range(3):  # brute force over images along x only (y/z images are 100 A away)
        d = [np.linalg.norm(xyz[j] + [4.5 * k, 0, 0] - xyz[i]) for j in range(3) for k in range(-3, 4) if (j, k) != (i, 0)]
        d = np.sort([x for x in d if x <= 8.0])
        assert len(d) < 12  # fewer than 12 within 8 A: no padding with fake neighbours
        np.testing.assert_allclose(g.distances[g.centers == i], d, rtol=1e-5)
    assert g.distances.min() > 1.0
    # an atom whose nearest image is > 8 A away has no edges at all, and the model still runs on it
    lonely = Structure(Lattice.orthorhombic(9.0, 100, 100), ["C"], [[0, 0, 0]])
    gl = structure_graph(lonely)
    assert gl.n_edges == 0 and gl.n_atoms == 1
    from crystalbench.plugins.cgcnn.net import CGCNNNet

    net = CGCNNNet(atom_fea_len=8, h_fea_len=8)
    net.eval()
    out = net(collate_graphs([gl, g]))
    assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_graph_cache_is_hit_on_disk(tmp_path, monkeypatch):
    d = _cscl_dataset(6, seed=5)
    params = GraphParams(radius=6.0, max_neighbors=8)
    first = build_graphs(d.structures, params=params, keys=d.structure_keys, cache_dir=tmp_path)
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and "crystal-r6_n8" in str(files[0])
    clear_graph_memo()

    def boom(*a, **k):
        raise AssertionError("graph rebuilt despite cache")

    monkeypatch.setattr(graphs, "structure_graph", boom)
    stats = GraphStats()
    again = build_graphs(d.structures, params=params, keys=d.structure_keys, cache_dir=tmp_path, stats=stats)
    assert (stats.disk, stats.built) == (6, 0)
    for a, b in zip(first, again):
        assert np.array_equal(a.distances, b.distances) and np.array_equal(a.neighbors, b.neighbors)
    # other graph parameters are a different cache entry
    with pytest.raises(AssertionError, match="rebuilt"):
        build_graphs(d.structures, params=GraphParams(radius=5.0), keys=d.structure_keys, cache_dir=tmp_path)


def test_plugin_module_does_not_import_torch_and_specs():
    code = "import sys, crystalbench.plugins.cgcnn as m; m.bench_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    specs = {s.name: s for s in cgcnn.bench_models()}
    assert specs["cgcnn"].descriptors is None and specs["de-cgcnn"].descriptors == "gong29"
    assert specs["de-cgcnn"].default_pooling == "mean" and specs["cgcnn"].default_pooling is None
    for s in specs.values():
        assert s.accepts_features and s.classification and s.poolings == ("mean", "sum", "atom-sum")
        assert s.params is CGCNNParams and s.inputs == ()
        d = s.default_params()
        assert d["atom_fea_len"] == 64 and d["n_conv"] == 3 and d["radius"] == 8.0 and d["lr"] == 1e-2


# -- models -------------------------------------------------------------------


def test_cgcnn_beats_mean_predictor_on_held_out(cache):
    train, val, test = _split(_cscl_dataset(260, seed=1), 160, 40)
    m = _model(cache)
    m.fit(train, val, seed=0, progress=False)
    pred = m.predict(test)
    assert pred.shape == (len(test),)
    mae = np.mean(np.abs(pred - test.targets))
    assert mae < 0.25 * _mad(test.targets), (mae, _mad(test.targets))
    assert m.fit_result.best_epoch >= 1


def test_same_seed_identical_predictions(cache):
    train, val, test = _split(_cscl_dataset(80, seed=2), 50, 10)
    preds = []
    for seed in (7, 7, 8):
        m = _model(cache, epochs=3, patience=None)
        m.fit(train, val, seed=seed, progress=False)
        preds.append(m.predict(test))
    assert np.array_equal(preds[0], preds[1])
    assert not np.allclose(preds[0], preds[2])


def test_de_cgcnn_learns_from_informative_feature(cache):
    base = _cscl_dataset(260, seed=3)
    rng = np.random.default_rng(3)
    u = rng.normal(size=len(base))  # target unrelated to the structure, known only through the feature
    junk = rng.normal(size=len(base))
    junk[::7] = np.nan  # missing descriptor values are imputed, not fatal
    d = Dataset(ids=base.ids, targets=3.0 * u + 10.0, structures=base.structures,
                features=np.c_[u, junk], feature_names=("u", "junk"))
    train, val, test = _split(d, 160, 40)
    de = _model(cache, de=True)
    de.fit(train, val, seed=0, progress=False)
    de_ratio = np.mean(np.abs(de.predict(test) - test.targets)) / _mad(test.targets)
    plain_train, plain_val, plain_test = (Dataset(ids=x.ids, targets=x.targets, structures=x.structures) for x in (train, val, test))
    plain = _model(cache, epochs=15)
    plain.fit(plain_train, plain_val, seed=0, progress=False)
    plain_ratio = np.mean(np.abs(plain.predict(plain_test) - test.targets)) / _mad(test.targets)
    assert de_ratio < 0.3 and plain_ratio > 0.7, (de_ratio, plain_ratio)
    with pytest.raises(BadInputError, match="no features"):
        _model(cache, de=True).fit(plain_train, plain_val, seed=0, progress=False)
    with pytest.raises(BadInputError):  # trained with features, asked to predict without
        de.predict(plain_test)


def _supercell_dataset(n: int, seed: int) -> Dataset:
    """Simple-cubic elements repeated 1-4 times; target = n_atoms * e(element): extensive."""
    rng = np.random.default_rng(seed)
    energy = {"Na": 1.0, "K": 2.0, "Rb": 3.0}
    structs, ys = [], []
    for _ in range(n):
        el = rng.choice(list(energy))
        s = Structure(Lattice.cubic(rng.uniform(2.8, 3.4)), [el], [[0, 0, 0]])
        rep = int(rng.integers(1, 5))
        s.make_supercell([rep, 1, 1])
        structs.append(s)
        ys.append(len(s) * energy[el])
    return Dataset(ids=[f"c{i}" for i in range(n)], targets=np.array(ys), structures=structs)


def test_sum_pooling_fits_extensive_target_mean_cannot(cache):
    train, val, test = _split(_supercell_dataset(200, seed=4), 120, 30)
    res = {}
    for pooling in ("mean", "sum"):
        m = _model(cache, pooling=pooling, epochs=30)
        m.fit(train, val, seed=0, progress=False)
        res[pooling] = (m, m.predict(test))
    mae = {k: np.mean(np.abs(p - test.targets)) for k, (_, p) in res.items()}
    assert mae["sum"] < 0.4 * mae["mean"], mae
    assert mae["sum"] < 0.3 * _mad(test.targets), mae
    # mean pooling is blind to supercells: a crystal and its 3x supercell get the same prediction
    s = Structure(Lattice.cubic(3.0), ["K"], [[0, 0, 0]])
    big = s.copy()
    big.make_supercell([3, 1, 1])
    pair = Dataset(ids=["p", "s"], targets=np.zeros(2), structures=[s, big])
    p_mean, p_sum = res["mean"][0].predict(pair), res["sum"][0].predict(pair)
    assert abs(p_mean[0] - p_mean[1]) < 1e-4
    assert p_sum[1] - p_sum[0] > 2.0  # ~ (3 - 1) * 2 from a model that learned e(K) = 2


def _lattice_type_dataset(n: int, seed: int) -> Dataset:
    """sc / bcc / fcc of one element with random nearest-neighbour distance: classify the lattice."""
    rng = np.random.default_rng(seed)
    frac = {
        0: [[0, 0, 0]],
        1: [[0, 0, 0], [0.5, 0.5, 0.5]],
        2: [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    }
    nn_over_a = {0: 1.0, 1: np.sqrt(3) / 2, 2: np.sqrt(2) / 2}
    structs, ys = [], []
    for _ in range(n):
        k = int(rng.integers(0, 3))
        a = rng.uniform(2.4, 3.2) / nn_over_a[k]
        structs.append(Structure(Lattice.cubic(a), ["Cu"] * len(frac[k]), frac[k]))
        ys.append(k)
    return Dataset(ids=[f"l{i}" for i in range(n)], targets=np.array(ys), structures=structs, classes=("sc", "bcc", "fcc"))


def test_classification_predicts_lattice_type(cache):
    train, val, test = _split(_lattice_type_dataset(200, seed=6), 120, 30)
    m = _model(cache, task_type="classification", n_classes=3, epochs=25)
    m.fit(train, val, seed=0, progress=False)
    pred = m.predict(test)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1, 2}
    assert np.mean(pred == test.targets) > 0.9


def test_runner_end_to_end(tmp_path):
    """The harness runner drives cgcnn through the real registry entry point."""
    from crystalbench.contract.context import RunContext
    from crystalbench.contract.specs import TaskSpec
    from crystalbench.runtime.registry import load_registry
    from crystalbench.runtime.runner import GridRequest, run_grid

    reg = load_registry()
    assert "cgcnn" in reg.models, "the built-in cgcnn plugin is not registered"
    data = _cscl_dataset(60, seed=9)
    task = TaskSpec(name="toy_cscl", load=lambda _ctx: data, target="2a", unit="A", fractions=(0.6, 0.2, 0.2))
    ctx = RunContext(results_dir=tmp_path / "res", data_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False,
                     threads=1)
    req = GridRequest(models=["cgcnn"], tasks=["toy_cscl"], epochs=2, extra_tasks={"toy_cscl": task},
                      config={"cgcnn": {"atom_fea_len": 8, "h_fea_len": 8, "n_conv": 1}})
    clear_graph_memo()  # graph-cache counts below assume nothing is in memory yet
    summary = run_grid(reg, ctx, req)
    rec = summary.finished[0]
    assert rec.status == "ok", rec.traceback
    assert rec.job.params["epochs"] == 2 and rec.job.params["pooling"] == "mean" and rec.job.params["n_conv"] == 1
    assert len(rec.predictions["y_pred"]) == 12
    assert rec.fit_info["epochs_run"] == 2 and rec.fit_info["best_epoch"] in (1, 2)
    assert rec.fit_info["torch_threads"] == 1 and rec.fit_info["graph_cache"]["built"] == 48
    assert list((tmp_path / "cache" / "graphs").glob("crystal-r8_n12/v1/*/*.npz"))  # the run's cache Store


def test_cgcnn_passes_the_plugin_test_kit():
    """The kit plugin authors use (crystalbench.testing), with 2 epochs: contract, seeds, learning, classes."""
    from crystalbench.testing import check_model

    spec = {s.name: s for s in cgcnn.bench_models()}["cgcnn"]
    report = check_model(spec, params={"epochs": 2, "batch_size": 16})
    assert report.regression.job.params["epochs"] == 2 and report.classification is not None

"""Paper models and fairness (issue #19 items 4-7).

- the per-atom readout "atom-sum" (Gong et al. eq. 13: output network per atom, then summed) for
  cgcnn / de-cgcnn / alignn / de-alignn: shapes, permutation invariance, extensivity, learning;
- `cgcnn+desc`, Table S1's "CGCNN + descriptors" (frozen CGCNN embedding + descriptors -> a new FCN);
- learnability labels from the primitive cell;
- desc_crys_sys withholds the Niggli lattice; every model gets the same training rows under `paper`.

Tiny synthetic crystals and nets; the real code paths.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalbench import Dataset, ModelContext  # noqa: E402
from crystalbench.gnn.graphs import collate_graphs, structure_graph  # noqa: E402
from crystalbench.gnn.heads import MLPHead, atom_sum_readout, atom_sum_shift, pool_atoms  # noqa: E402
from crystalbench.plugins import cgcnn  # noqa: E402
from crystalbench.plugins.cgcnn import CGCNNParams  # noqa: E402
from crystalbench.plugins.cgcnn.net import CGCNNNet  # noqa: E402

torch.set_num_threads(1)

SMALL = dict(atom_fea_len=16, n_conv=2, h_fea_len=16, batch_size=16, lr=1e-2)


def _cell() -> Structure:
    """16 atoms, cell larger than the 12-neighbour shell, so a supercell has the same local environments."""
    s = Structure(Lattice.orthorhombic(4.2, 4.5, 4.9), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s.make_supercell([2, 2, 2])
    return s


def _doubled(s: Structure) -> Structure:
    big = s.copy()
    big.make_supercell([2, 1, 1])
    return big


def _permuted(s: Structure, seed: int = 0) -> Structure:
    order = np.random.default_rng(seed).permutation(len(s))
    return Structure(s.lattice, [s[i].specie for i in order], s.frac_coords[order])


def _cgcnn_batch(structures, features=None):
    items = [structure_graph(s) for s in structures]
    if features is not None:
        items = [(g, f) for g, f in zip(items, features)]
    return collate_graphs(items)


# ----------------------------------------------------------------------------- item 4: atom-sum readout
def test_atom_sum_readout_is_a_sum_of_per_atom_outputs():
    torch.manual_seed(0)
    head = MLPHead(4, 8, 2, extra_dim=3)
    x = torch.randn(5, 4)
    crystal = torch.tensor([0, 0, 1, 1, 1])
    extra = torch.randn(2, 3)
    out = atom_sum_readout(head, x, crystal, 2, extra, shift=0.5)
    assert out.shape == (2, 2)
    by_hand = torch.stack([
        head(x[:2], extra[[0, 0]]).sum(0), head(x[2:], extra[[1, 1, 1]]).sum(0)
    ]) - 0.5
    assert torch.allclose(out, by_hand, atol=1e-6)
    with pytest.raises(ValueError, match="atom_sum_readout"):
        pool_atoms(x, crystal, 2, "atom-sum")


@pytest.mark.parametrize("extra_dim", [0, 3])
def test_cgcnn_atom_sum_is_extensive_and_permutation_invariant(extra_dim):
    s = _cell()
    structures = [s, _doubled(s), _permuted(s)]
    feats = None if not extra_dim else np.tile(np.array([[0.3, -1.0, 2.0]], dtype=np.float32), (3, 1))
    batch = _cgcnn_batch(structures, feats)
    torch.manual_seed(0)
    net = CGCNNNet(atom_fea_len=16, n_conv=2, h_fea_len=16, pooling="atom-sum", extra_dim=extra_dim,
                   output_shift=0.25).eval()
    with torch.no_grad():
        out = net(batch)[:, 0] + 0.25  # the network subtracts its shift once per crystal
    assert out.shape == (3,)
    assert torch.allclose(out[1], 2 * out[0], rtol=1e-4, atol=1e-5)
    assert torch.allclose(out[2], out[0], rtol=1e-5, atol=1e-5)
    # the mean readout is size-invariant, and "sum" (pool, then the network) is not extensive
    torch.manual_seed(0)
    mean_net = CGCNNNet(atom_fea_len=16, n_conv=2, h_fea_len=16, pooling="mean", extra_dim=extra_dim).eval()
    with torch.no_grad():
        m = mean_net(batch)[:, 0]
    assert torch.allclose(m[1], m[0], atol=1e-5)
    with pytest.raises(ValueError, match="no pooled embedding"):
        net.embed(batch)


def test_alignn_atom_sum_is_extensive():
    pytest.importorskip("alignn")
    from crystalbench.gnn import atom_feature_table
    from crystalbench.plugins.alignn import graphs as ag
    from crystalbench.plugins.alignn.model import AlignnParams, DeAlignnParams
    from crystalbench.plugins.alignn.net import AlignnNet, make_collate

    tiny = dict(hidden_features=16, embedding_features=16, edge_input_features=16, triplet_input_features=8,
                alignn_layers=1, gcn_layers=1, pooling="atom-sum")
    s = _cell()
    collate = make_collate(atom_feature_table())
    f = np.array([0.5, -0.2], dtype=np.float32)
    for cls, extra in ((AlignnParams, None), (DeAlignnParams, f)):
        batch = collate([(ag.build_graph(x), extra) for x in (s, _doubled(s), _permuted(s))])
        torch.manual_seed(0)
        net = AlignnNet(cls(**tiny), 92, 1, 0 if extra is None else 2, output_shift=-1.0).eval()
        with torch.no_grad():
            out = net(batch)[:, 0] - 1.0
        assert out.shape == (3,)
        assert torch.allclose(out[1], 2 * out[0], rtol=1e-4, atol=1e-4)
        assert torch.allclose(out[2], out[0], rtol=1e-4, atol=1e-4)


def _extensive_dataset(n: int, seed: int) -> Dataset:
    """CsCl-type cells repeated 1-3 times along x; target = atoms x f(a): extensive, needs the bond length."""
    rng = np.random.default_rng(seed)
    structs, ys = [], []
    for _ in range(n):
        a = rng.uniform(3.0, 4.5)
        s = Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        s.make_supercell([int(rng.integers(1, 4)), 1, 1])
        structs.append(s)
        ys.append(len(s) * (a - 2.0))
    return Dataset(ids=[f"x{i}" for i in range(n)], targets=np.array(ys), structures=structs, name="ext")


def test_cgcnn_atom_sum_learns_an_extensive_target(tmp_path):
    data = _extensive_dataset(48, 0)
    train, val = data.subset(range(40)), data.subset(range(40, 48))
    params = replace(CGCNNParams(), **SMALL, epochs=12, pooling="atom-sum")
    model = cgcnn.make_cgcnn(ModelContext(hparams={}, params=params, cache_dir=tmp_path))
    model.fit(train, val, seed=0, progress=False)
    losses = [h["train_loss"] for h in model.fit_result.history]
    assert losses[-1] < 0.5 * losses[0]
    # predictions are extensive end to end (the shift undoes the target standardization's mean)
    one = Structure(Lattice.cubic(3.7), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    three = one.copy()
    three.make_supercell([3, 1, 1])
    pred = model.predict(Dataset(ids=["one", "three"], targets=np.zeros(2), structures=[one, three]))
    assert pred[1] == pytest.approx(3 * pred[0], rel=1e-4)
    assert atom_sum_shift(train.targets, "regression") == pytest.approx(train.targets.mean() / train.targets.std())
    assert atom_sum_shift(train.targets, "classification") == 0.0


def test_atom_sum_is_offered_by_the_paper_gnns():
    from crystalbench.contract.params import POOLING_CHOICES, resolve_params
    from crystalbench.runtime.registry import load_registry

    reg = load_registry()
    for name in ("cgcnn", "de-cgcnn", "alignn", "de-alignn"):
        spec = reg.model(name)
        assert "atom-sum" in spec.poolings
        assert resolve_params(name, spec.params_class, {"pooling": "atom-sum"}).pooling == "atom-sum"
    assert "atom-sum" in POOLING_CHOICES


# ----------------------------------------------------------------------------- item 5: cgcnn+desc (Table S1)
def _desc_dataset(n: int, seed: int) -> Dataset:
    """Target = 2a + 3f: a from the structure, f only from a descriptor column the structure does not reveal."""
    rng = np.random.default_rng(seed)
    a, f = rng.uniform(3.0, 5.0, n), rng.normal(size=n)
    structs = [Structure(Lattice.cubic(x), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for x in a]
    d = Dataset(ids=[f"d{i}" for i in range(n)], targets=2 * a + 3 * f, structures=structs, name="desc")
    return d.with_features(["f", "noise"], np.column_stack([f, rng.normal(size=n)]))


def test_cgcnn_desc_freezes_a_plain_cgcnn_and_uses_the_descriptors(tmp_path):
    from crystalbench.plugins.cgcnn_desc import CGCNNDescParams, make_cgcnn_desc
    from crystalbench.runtime.registry import load_registry

    spec = load_registry().model("cgcnn+desc")
    assert spec.descriptors == "gong29" and spec.needs_validation and spec.default_pooling == "mean"
    assert "atom-sum" not in spec.poolings
    data = _desc_dataset(60, 1)
    train, val, test = data.subset(range(40)), data.subset(range(40, 50)), data.subset(range(50, 60))
    params = replace(CGCNNDescParams(), **SMALL, epochs=15)
    model = make_cgcnn_desc(ModelContext(hparams={}, params=params, cache_dir=tmp_path))
    model.fit(train, val, seed=0, progress=False)
    info = model.fit_info
    assert info["n_extra_features"] == 2 and info["frozen_cgcnn"]["n_extra_features"] == 0  # frozen one saw none
    frozen = {k: v.clone() for k, v in model.cgcnn.fit_result.module.state_dict().items()}
    pred = model.predict(test)
    assert all(torch.equal(frozen[k], v) for k, v in model.cgcnn.fit_result.module.state_dict().items())
    mae = np.mean(np.abs(pred - test.targets))
    mad = np.mean(np.abs(test.targets - test.targets.mean()))
    assert mae < 0.5 * mad  # 3f is most of the variance and only the descriptor column carries it
    with pytest.raises(Exception, match="no features"):
        make_cgcnn_desc(ModelContext(hparams={}, params=params, cache_dir=tmp_path)).fit(
            replace(train, features=None, feature_names=()), val, seed=0, progress=False)


# ----------------------------------------------------------------------------- item 6: primitive-cell labels
def _rocksalt_conventional(a: float = 5.64) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_learnability_labels_and_inputs_are_primitive_cells(tmp_path):
    import json

    from crystalbench.contract.context import RunContext
    from crystalbench.tasks.learnability import TASK_VERSION, load_learnability

    conventional = _rocksalt_conventional()
    assert len(conventional) == 8
    cscl = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # primitive: unchanged
    path = tmp_path / "structures.json"
    path.write_text(json.dumps({"mp-conv": conventional.as_dict(), "mp-prim": cscl.as_dict()}))
    ctx = RunContext(cache_dir=tmp_path / "cache", jobs=1, options={"learnability_structures": str(path)})
    natoms = load_learnability("desc_natoms", ctx)
    assert dict(zip(natoms.ids, natoms.targets.tolist())) == {"mp-conv": 2, "mp-prim": 2}
    assert [len(s) for s in natoms.structures] == [2, 2]  # models see the cell the label describes
    assert natoms.meta["reduced_to_primitive"] == 1
    a = load_learnability("desc_a", ctx)
    assert a.targets[0] == pytest.approx(5.64 / np.sqrt(2), rel=1e-3)  # fcc primitive vector, not the cube edge
    assert int(TASK_VERSION) >= 3


def test_primitive_cells_are_cached_and_reread(tmp_path):
    from crystalbench.contract.context import RunContext
    from crystalbench.tasks import learnability as L

    ctx = RunContext(cache_dir=tmp_path, jobs=1)
    cells = (_rocksalt_conventional(), Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    first = L.primitive_cells(ctx, ("x", "y"), cells, None)
    assert len(first[0]) == 2 and first[1] is cells[1]
    again = L.primitive_cells(ctx, ("x", "y"), cells, None)  # read back from the NPZ store
    assert again[0] is not first[0] and again[0].matches(first[0]) and len(again[0]) == 2
    other_ids = L.primitive_cells(ctx, ("p", "q"), cells, None)  # stale entries for other ids are rebuilt
    assert len(other_ids[0]) == 2


# ----------------------------------------------------------------------------- item 7: leaks and training rows
def test_crystal_system_task_withholds_the_niggli_lattice():
    from crystalbench.runtime.registry import load_registry

    spec = load_registry().task("desc_crys_sys")
    assert {"crys_sys", "a", "b", "c", "alpha", "beta", "gamma", "space_group_num"} <= set(spec.exclude_features)
    assert "lattice" in spec.leaks


def test_every_model_trains_on_the_same_rows_under_the_paper_protocol():
    from crystalbench.contract.specs import TaskSpec
    from crystalbench.runtime.splits import make_folds

    data = Dataset(ids=[f"r{i}" for i in range(100)], targets=np.arange(100.0), compositions=["NaCl"] * 100)
    task = TaskSpec(name="t", load=lambda ctx: data, target="y", protocol="paper", fractions=(0.6, 0.2, 0.2))
    gnn = make_folds(task, data, None, seed=5, needs_validation=True)[0]
    rf = make_folds(task, data, None, seed=5, needs_validation=False)[0]
    assert np.array_equal(gnn.train, rf.train) and np.array_equal(gnn.test, rf.test)
    assert len(rf.train) == 60 and len(rf.val) == 0 and len(gnn.val) == 20
    assert (gnn.describe(data)["validation"], rf.describe(data)["validation"]) == ("split", "unused")
    assert rf.describe(data)["n_train"] == gnn.describe(data)["n_train"] == 60
    # matbench: no validation part, so a GNN carves its own out of the fold and says so
    mb = make_folds(replace(task, protocol="matbench"), data, None, seed=0, needs_validation=True)[0]
    assert mb.describe(data)["validation"] == "carved"
    assert make_folds(replace(task, protocol="matbench"), data, None, seed=0, needs_validation=False)[0].validation == "none"


def test_cli_offers_atom_sum_and_refuses_it_where_there_is_no_per_atom_readout():
    import json

    from click.testing import CliRunner

    from crystalbench.cli import cli

    ok = CliRunner().invoke(cli, ["run", "-m", "cgcnn", "-m", "de-alignn", "-t", "chain1d_short",
                                  "--pooling", "atom-sum", "--dry-run", "--json"])
    assert ok.exit_code == 0, ok.output
    assert {row["params"]["pooling"] for row in json.loads(ok.stdout)} == {"atom-sum"}
    bad = CliRunner().invoke(cli, ["run", "-m", "cgcnn+desc", "-t", "chain1d_short", "--pooling", "atom-sum",
                                   "--dry-run"])
    assert bad.exit_code == 2 and "supports pooling mean, sum, not 'atom-sum'" in bad.output

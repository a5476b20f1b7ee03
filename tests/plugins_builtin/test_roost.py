"""ROOST plugin: composition encoding, learning, classification, determinism, structure/composition inputs.

Synthetic binary compounds whose target is a simple function of composition
(the mole-fraction-weighted Pauling electronegativity); tiny network, few
epochs, the real aviary Roost and the shared training loop.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("aviary")

import torch  # noqa: E402
from pymatgen.core import Composition, Element, Lattice, Structure  # noqa: E402

from crystalbench import BadInputError, Dataset, ModelContext  # noqa: E402
from crystalbench.plugins import roost as ro  # noqa: E402
from crystalbench.plugins.roost import RoostParams  # noqa: E402

torch.set_num_threads(1)

TINY = {
    "elem_fea_len": 16,
    "n_graph": 2,
    "elem_heads": 2,
    "elem_gate": [32],
    "elem_msg": [32],
    "cry_heads": 2,
    "cry_gate": [32],
    "cry_msg": [32],
    "trunk_hidden": [64],
    "out_hidden": [32],
    "epochs": 40,
    "batch_size": 32,
    "lr": 2e-3,
}
CATIONS = ["Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Sr", "Ba", "Al"]
ANIONS = ["F", "Cl", "Br", "I", "O", "S", "Se", "N"]


def comp_dataset(n: int = 150, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    comps, y = [], []
    for _ in range(n):
        a, b = rng.choice(CATIONS), rng.choice(ANIONS)
        x, z = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        comps.append(Composition({a: x, b: z}))
        y.append((Element(a).X * x + Element(b).X * z) / (x + z))
    return Dataset(ids=[f"c{i}" for i in range(n)], targets=np.array(y), compositions=comps, name="comp")


def fit(train, val, seed=0, task_type="regression", n_classes=None, **hp) -> ro.RoostModel:
    params = RoostParams(**{**TINY, **hp})
    model = ro.RoostModel(ModelContext(hparams={}, params=params, task_type=task_type, n_classes=n_classes))
    model.fit(train, val, seed=seed, progress=False)
    return model


@pytest.fixture(scope="module")
def splits():
    d = comp_dataset()
    return d.subset(range(100)), d.subset(range(100, 125)), d.subset(range(125, 150))


@pytest.fixture(scope="module")
def trained(splits):
    train, val, _ = splits
    return fit(train, val)


def test_encode_composition():
    z, w = ro.encode_composition(Composition("Fe2O3"))
    assert list(z) == [26, 8] and np.allclose(w[:, 0], [0.4, 0.6]) and w.shape == (2, 1)
    z, w = ro.encode_composition(Composition({"Fe2+": 1, "O2-": 1}))  # oxidation states dropped
    assert list(z) == [26, 8] and np.isclose(w.sum(), 1.0)
    batch = ro.collate([ro.encode_composition(Composition("NaCl")), ro.encode_composition(Composition("Si"))])
    weights, elems, self_idx, nbr_idx, cry_idx = batch
    assert elems.tolist() == [11, 17, 14] and cry_idx.tolist() == [0, 0, 1]
    assert self_idx.tolist() == [0, 0, 1, 1, 2] and nbr_idx.tolist() == [0, 1, 0, 1, 2]


def test_roost_beats_mean_predictor(splits, trained):
    train, _, test = splits
    pred = trained.predict(test)
    mae = np.abs(pred - test.targets).mean()
    baseline = np.abs(train.targets.mean() - test.targets).mean()
    assert pred.shape == (len(test),) and mae < 0.4 * baseline, (mae, baseline)


def test_embedding_is_frozen_matscholar(trained):
    from aviary.utils import get_element_embedding

    ref = get_element_embedding("matscholar200").weight
    emb = trained.fit_result.module.roost.elem_embedding.weight
    assert emb.shape == ref.shape == (104, 200) and torch.equal(emb.detach().cpu(), ref.detach())


def test_structures_and_compositions_give_the_same_prediction(trained):
    structures = [
        Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ]
    as_structs = Dataset(ids=["a", "b"], targets=[0.0, 0.0], structures=structures)
    as_comps = Dataset(ids=["a", "b"], targets=[0.0, 0.0], compositions=[Composition("NaCl"), Composition("Mg2O2")])
    p1, p2 = trained.predict(as_structs), trained.predict(as_comps)
    assert np.allclose(p1, p2, atol=1e-6) and not np.isclose(p1[0], p1[1])


def test_same_seed_identical_predictions(splits):
    train, val, test = splits
    p1 = fit(train, val, seed=7, epochs=3).predict(test)
    p2 = fit(train, val, seed=7, epochs=3).predict(test)
    p3 = fit(train, val, seed=8, epochs=3).predict(test)
    assert np.array_equal(p1, p2) and not np.allclose(p1, p3)


def test_classification(splits):
    # three classes from the formula: halide, chalcogenide or nitride
    group = {"F": 0, "Cl": 0, "Br": 0, "I": 0, "O": 1, "S": 1, "Se": 1, "N": 2}

    def labelled(d: Dataset) -> Dataset:
        labels = [next(group[el.symbol] for el in c if el.symbol in group) for c in d.compositions]
        return Dataset(ids=d.ids, targets=labels, compositions=d.compositions, classes=("halide", "chalcogenide", "nitride"))

    train, val, test = (labelled(d) for d in splits)
    model = fit(train, val, task_type="classification", n_classes=3)
    pred = model.predict(test)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1, 2}
    base = np.bincount(test.targets).max() / len(test)
    assert np.mean(pred == test.targets) >= max(0.8, base + 0.2), (np.mean(pred == test.targets), base)


def test_unknown_element_is_rejected(splits):
    train, val, _ = splits
    model = fit(train.subset(range(20)), None, epochs=1)
    og = Dataset(ids=["og"], targets=[0.0], compositions=[Composition("Og")])  # Z=118, beyond matscholar200
    with pytest.raises(BadInputError):
        model.predict(og)


def test_spec():
    (spec,) = ro.bench_models()
    assert spec.name == "roost" and spec.needs == "composition" and spec.classification
    assert spec.poolings == () and not spec.accepts_features and spec.params is RoostParams and spec.inputs == ()
    d = spec.default_params()
    assert d["elem_embedding"] == "matscholar200" and d["trunk_hidden"] == [1024, 512] and d["lr"] == 3e-4
    assert d["batch_size"] == 128 and d["weight_decay"] == 1e-6


def test_params_from_plain_values_and_validation():
    from crystalbench.contract.params import params_to_dict, resolve_params

    p = resolve_params("roost", RoostParams, {"elem_gate": [32, 16], "epochs": 5.0})
    assert p.elem_gate == (32, 16) and p.epochs == 5 and params_to_dict(p)["elem_gate"] == [32, 16]
    with pytest.raises(BadInputError, match="elem_msg must be a list of positive integers"):
        resolve_params("roost", RoostParams, {"elem_msg": [0]})
    with pytest.raises(BadInputError, match="batch_size must be >= 1"):
        resolve_params("roost", RoostParams, {"batch_size": 0})

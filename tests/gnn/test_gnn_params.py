"""Typed hyperparameters of the built-in models: documented, validated, defaults unchanged, specs declared."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pymatgen.core import Composition

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.contract.params import field_choices, params_table, resolve_params
from crystalbench.plugins import alignn, cgcnn, dummy, random_forest, roost


def _specs() -> dict:
    out = {}
    for plugin in (cgcnn, alignn, roost, dummy, random_forest):
        out.update({s.name: s for s in plugin.bench_models()})
    return out


def test_every_model_has_documented_typed_params():
    specs = _specs()
    assert set(specs) == {"cgcnn", "de-cgcnn", "alignn", "de-alignn", "roost", "dummy", "rf"}
    for name, spec in specs.items():
        cls = spec.params
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
        assert spec.inputs == (), name  # structure/composition/descriptor models read nothing leak-prone
        for row_name, _typ, _default, doc in params_table(cls):
            assert doc, f"{name}: {row_name} has no doc"
        if spec.poolings:
            assert field_choices(cls, "pooling") == spec.poolings and "pooling" in spec.default_params()
    assert dataclasses.fields(specs["dummy"].params) == ()


def test_defaults_are_the_reference_recipes():
    """Every GNN's defaults: its reference recipe (docs/recipes.md names the source of each value)."""
    specs = _specs()
    assert specs["cgcnn"].default_params() == {
        "atom_fea_len": 64, "n_conv": 3, "h_fea_len": 128, "n_h": 1, "dropout": 0.0, "pooling": "mean",
        "radius": 8.0, "max_neighbors": 12, "gaussian_step": 0.2, "epochs": 300, "batch_size": 64,
        "optimizer": "adam", "scheduler": "none", "lr": 1e-2, "weight_decay": 0.0, "momentum": 0.9,
        "lr_milestone": 100, "patience": None, "precise_bn": True, "precise_bn_batches": 2,
        "precise_bn_tolerance": 5.0,
    }
    a = specs["alignn"].default_params()
    assert a == {
        "cutoff": 8.0, "max_neighbors": 12, "extend_cutoff": True, "alignn_layers": 4, "gcn_layers": 4,
        "edge_input_features": 80, "triplet_input_features": 40, "embedding_features": 64, "hidden_features": 256,
        "fc_layers": 0, "pooling": "mean", "epochs": 300, "batch_size": 64, "optimizer": "adamw",
        "scheduler": "onecycle", "lr": 1e-3, "weight_decay": 1e-5, "momentum": 0.9, "lr_milestone": 100,
        "patience": None,
    }
    assert specs["de-alignn"].default_params() == {**a, "fc_layers": 1}
    assert specs["roost"].default_params() == {
        "elem_embedding": "matscholar200", "freeze_embedding": True, "elem_fea_len": 64, "n_graph": 3,
        "elem_heads": 3, "elem_gate": [256], "elem_msg": [256], "cry_heads": 3, "cry_gate": [256], "cry_msg": [256],
        "trunk_hidden": [1024, 512], "out_hidden": [256, 128, 64], "epochs": 100, "batch_size": 128,
        "optimizer": "adamw", "scheduler": "none", "lr": 3e-4, "weight_decay": 1e-6, "momentum": 0.9,
        "lr_milestone": 100, "patience": None,
    }
    assert specs["rf"].default_params() == {"n_estimators": 300, "max_features": 1.0, "min_samples_leaf": 1, "n_jobs": -1}


@pytest.mark.parametrize(
    ("model", "values", "message"),
    [
        ("cgcnn", {"epochs": 0}, "epochs must be >= 1"),
        ("cgcnn", {"lr": -0.1}, "lr must be > 0"),
        ("cgcnn", {"batch_size": 0}, "batch_size must be >= 1"),
        ("cgcnn", {"pooling": "max"}, "must be one of 'mean', 'sum'"),
        ("cgcnn", {"radius": 0.0}, "radius must be > 0"),
        ("cgcnn", {"dropout": 1.0}, "dropout must be in"),
        ("cgcnn", {"patience": -2}, "patience must be >= 0"),
        ("cgcnn", {"momentum": 1.0}, "momentum must be in"),
        ("cgcnn", {"precise_bn_batches": 0}, "precise_bn_batches must be >= 1"),
        ("de-cgcnn", {"precise_bn_tolerance": -1.0}, "precise_bn_tolerance must be >= 0"),
        ("cgcnn", {"optimizer": "rmsprop"}, "must be one of"),
        ("alignn", {"scheduler": "cosine"}, "must be one of"),
        ("cgcnn", {"scheduler": "multistep", "epochs": 30}, "after the last of 30 epochs"),
        ("roost", {"lr_milestone": 0}, "lr_milestone must be >= 1"),
        ("cgcnn", {"atom_fea_len": 3.5}, "must be an integer"),
        ("de-alignn", {"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ("alignn", {"hidden_features": 0}, "hidden_features must be > 0"),
        ("roost", {"elem_gate": [0]}, "positive integers"),
        ("rf", {"max_features": 2.0}, "max_features must be a fraction"),
        ("rf", {"n_estimators": 0}, "n_estimators must be >= 1"),
        ("rf", {"n_jobs": 0}, "n_jobs"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(model, values, message):
    spec = _specs()[model]
    with pytest.raises(BadInputError, match=message):
        resolve_params(model, spec.params_class, values, strict_layers=(0,))


def test_patience_none_and_numbers_coerced():
    p = resolve_params("cgcnn", cgcnn.CGCNNParams, {"patience": None, "epochs": 5.0, "lr": 1})
    assert p.patience is None and p.epochs == 5 and p.lr == 1.0 and isinstance(p.lr, float)


def test_hand_built_context_resolves_hparams_like_the_harness():
    m = cgcnn.make_cgcnn(ModelContext(hparams={"epochs": 4, "pooling": "sum"}))
    assert m.params == dataclasses.replace(cgcnn.CGCNNParams(), epochs=4, pooling="sum")
    with pytest.raises(BadInputError, match="unknown hyperparameter 'epoch'"):
        cgcnn.make_cgcnn(ModelContext(hparams={"epoch": 4}))
    typed = cgcnn.CGCNNParams(epochs=9)
    assert cgcnn.make_de_cgcnn(ModelContext(hparams={}, params=typed)).params is typed


def _feature_data(n: int, classification: bool = False) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] > 0).astype(int) if classification else x @ [1.0, 2.0, 0.0]
    return Dataset(ids=[str(i) for i in range(n)], targets=y, compositions=[Composition("NaCl")] * n,
                   features=x, feature_names=("a", "b", "c"), classes=("no", "yes") if classification else None)


def test_rf_and_dummy_prediction_types():
    reg, cls = _feature_data(40), _feature_data(40, classification=True)
    rf = random_forest.RandomForest(ModelContext(hparams={"n_estimators": 5}))
    rf.fit(reg, None, seed=0, progress=False)
    assert rf.params.n_estimators == 5 and rf.predict(reg).dtype == np.float64
    rfc = random_forest.RandomForest(ModelContext(hparams={"n_estimators": 5}, task_type="classification", n_classes=2))
    rfc.fit(cls, None, seed=0, progress=False)
    assert rfc.predict(cls).dtype == np.int64
    with pytest.raises(BadInputError, match="rf needs descriptor features"):
        random_forest.RandomForest(ModelContext(hparams={})).fit(
            Dataset(ids=["x", "y"], targets=[1.0, 2.0], compositions=[Composition("NaCl")] * 2), None, seed=0,
            progress=False,
        )
    d = dummy.MeanPredictor(ModelContext(hparams={}, task_type="classification"))
    d.fit(cls, None, seed=0, progress=False)
    assert d.predict(cls).dtype == np.int64

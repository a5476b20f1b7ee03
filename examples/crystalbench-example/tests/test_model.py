"""Tests of the ridge model, with crystalbench's test kit (`crystalbench.testing`)."""

import numpy as np
from crystalbench import ModelContext
from crystalbench.testing import check_model, check_registered

from crystalbench_example.model import RidgeModel, RidgeParams, bench_models


def test_model_passes_the_crystalbench_test_kit():
    # the contract, finite predictions, one seed -> one result, beats the mean predictor, classification
    (spec,) = bench_models()
    check_model(spec)


def test_model_learns_the_chain_period(chain_data):
    # real chain1d_short samples: the period a follows from bond lengths and atom counts
    train, test = chain_data.subset(range(80)), chain_data.subset(range(80, 100))
    model = RidgeModel(ModelContext(hparams={}, params=RidgeParams()))
    model.fit(train, None, seed=0, progress=False)
    mae = np.mean(np.abs(model.predict(test) - test.targets))
    assert mae < np.mean(np.abs(test.targets - train.targets.mean()))


def test_plugin_is_installed():
    check_registered("ridge", models=["ridge"])

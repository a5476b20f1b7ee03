import math

import numpy as np
import pytest

from crystalbench.contract.metrics import aggregate, classification_metrics, regression_metrics


def test_regression_metrics_hand_computed():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 5.0])
    m = regression_metrics(y, p)
    # errors: 0.5, 0, -1, 1
    assert m["mae"] == pytest.approx(2.5 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 1) / 4))
    # mean 2.5; |dev| = 1.5, .5, .5, 1.5 -> MAD 1.0
    assert m["mad"] == pytest.approx(1.0)
    assert m["mae_over_mad"] == pytest.approx(0.625)
    # SS_res = 2.25, SS_tot = 5 -> R2 = 0.55
    assert m["r2"] == pytest.approx(1 - 2.25 / 5)
    # ranks y 1,2,3,4 ; p 2,3.5? p=[1.5,2,2,5] -> ranks 1, 2.5, 2.5, 4
    ry, rp = np.array([1, 2, 3, 4.0]), np.array([1, 2.5, 2.5, 4])
    assert m["spearman"] == pytest.approx(np.corrcoef(ry, rp)[0, 1])


def test_mean_predictor_has_mae_over_mad_one_and_r2_zero():
    y = np.array([0.0, 1.0, 5.0, 2.0])
    m = regression_metrics(y, np.full(4, y.mean()))
    assert m["mae_over_mad"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(0.0)


def test_constant_targets_give_undefined_not_crash():
    m = regression_metrics(np.ones(3), np.array([1.0, 2.0, 1.0]))
    assert m["mad"] == 0 and m["mae_over_mad"] is None and m["r2"] is None


def test_nan_predictions_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics(np.ones(3), np.array([1.0, np.nan, 1.0]))


def test_classification_metrics_hand_computed():
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0])
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn1 -> 0.5 ; class 1: tp2 fp1 fn0 -> 0.8 ; class 2: tp0 fn1 -> 0
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_aggregate_mean_std():
    agg = aggregate([{"mae": 1.0, "r2": None}, {"mae": 3.0, "r2": 0.5}])
    assert agg["mae"]["mean"] == pytest.approx(2.0)
    assert agg["mae"]["std"] == pytest.approx(math.sqrt(2.0))
    assert agg["r2"] == {"mean": 0.5, "std": 0.0, "std_ddof0": 0.0, "n": 1}

"""Scores, in the task's units, and their aggregation over folds and seeds.

MAD is the mean absolute deviation of the *test* targets around their own
mean, so MAE/MAD is 1.0 for a model that predicts the test mean and 0 for a
perfect one: the paper's (Gong et al. 2023) headline number.

MAE, RMSE and MAD must be finite: finite but absurd predictions (1e308) overflow
them to infinity, and such a score would be written as an `ok` record that no
validator accepts and no table can rank, so `regression_metrics` raises instead
and the job becomes a failed record naming the cause.

`aggregate` gives both standard deviations: ``std`` is the sample one (ddof=1,
the unbiased variance of a few folds), ``std_ddof0`` the population one that
Matbench reports (numpy's default, ddof=0, over its 5 folds); each view says which
it shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from crystalbench.contract.enums import TaskType

__all__ = [
    "Metric",
    "METRICS",
    "metrics_for",
    "primary_metric",
    "regression_metrics",
    "classification_metrics",
    "score",
    "aggregate",
    "PRIMARY",
]


@dataclass(frozen=True)
class Metric:
    """One score: its key in records, how tables label it, and which direction is better.

    in_units: the value is in the task's units (MAE, RMSE, MAD), so tables show the unit.
    """

    key: str
    label: str
    higher_is_better: bool
    task_type: str
    in_units: bool = False


# The one metric registry: records, validation, the CLI and the leaderboard read it.
METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("mae", "MAE", False, TaskType.REGRESSION, in_units=True),
        Metric("rmse", "RMSE", False, TaskType.REGRESSION, in_units=True),
        Metric("mad", "MAD", False, TaskType.REGRESSION, in_units=True),
        Metric("mae_over_mad", "MAE/MAD", False, TaskType.REGRESSION),
        Metric("r2", "R²", True, TaskType.REGRESSION),
        Metric("spearman", "Spearman ρ", True, TaskType.REGRESSION),
        Metric("accuracy", "Accuracy", True, TaskType.CLASSIFICATION),
        Metric("f1_macro", "macro-F1", True, TaskType.CLASSIFICATION),
    )
}
REGRESSION_KEYS = tuple(k for k, m in METRICS.items() if m.task_type == TaskType.REGRESSION)
CLASSIFICATION_KEYS = tuple(k for k, m in METRICS.items() if m.task_type == TaskType.CLASSIFICATION)
# Metric shown first in tables, and whether higher is better.
PRIMARY: dict[str, tuple[str, bool]] = {TaskType.REGRESSION: ("mae_over_mad", False), TaskType.CLASSIFICATION: ("accuracy", True)}


def metrics_for(task_type: str) -> tuple[Metric, ...]:
    """The metrics every record of this task type carries, in display order."""
    return tuple(m for m in METRICS.values() if m.task_type == task_type)


def primary_metric(task_type: str) -> Metric:
    return METRICS[PRIMARY.get(task_type, PRIMARY[TaskType.REGRESSION])[0]]


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE, MAD, MAE/MAD, R^2 and Spearman rho (None where undefined)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(f"need two equal-length 1-D arrays, got {y.shape} and {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are NaN or infinite")
    with np.errstate(over="ignore", invalid="ignore"):
        err = p - y
        mae = float(np.mean(np.abs(err)))
        rmse = float(np.sqrt(np.mean(err**2)))
        mad = float(np.mean(np.abs(y - y.mean())))
    _require_finite({"mae": mae, "rmse": rmse, "mad": mad}, p, y)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "mae": mae,
        "rmse": rmse,
        "mad": mad,
        "mae_over_mad": _clean(mae / mad) if mad > 0 else None,
        "r2": _clean(r2),
        "spearman": _clean(_spearman(y, p)),
    }


def _require_finite(values: Mapping[str, float], p: np.ndarray, y: np.ndarray) -> None:
    """Raise ValueError naming the scores that overflowed (see the module docstring)."""
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        what, big = ("predictions", p) if set(bad) - {"mad"} else ("targets", y)
        largest = float(np.max(np.abs(big))) if big.size else 0.0
        raise ValueError(f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not finite ({what} as large as "
                         f"{largest:.3g} overflow {'it' if len(bad) == 1 else 'them'}): no score can be computed")


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata."""
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=float)
    sorted_a = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _spearman(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 2:
        return float("nan")
    ry, rp = _rank(y), _rank(p)
    if ry.std() == 0 or rp.std() == 0:
        return float("nan")
    return float(np.corrcoef(ry, rp)[0, 1])


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """Accuracy and macro-F1 over the classes present in y_true or y_pred.

    Predictions must be finite whole numbers (class indices): NaN or 2.5 is
    an error, never silently cast to an int.
    """
    p_raw = np.asarray(y_pred, dtype=float)
    if p_raw.size and (not np.all(np.isfinite(p_raw)) or not np.all(p_raw == np.round(p_raw))):
        bad = int((~np.isfinite(p_raw) | (p_raw != np.round(p_raw))).sum())
        raise ValueError(f"{bad} class predictions are not class indices (NaN, infinite or fractional)")
    y = np.asarray(y_true).astype(int)
    p = p_raw.astype(int)
    if y.shape != p.shape or len(y) == 0:
        raise ValueError(f"need two equal-length arrays, got {y.shape} and {p.shape}")
    acc = float(np.mean(y == p))
    f1s = []
    for c in np.union1d(y, p):
        tp = np.sum((p == c) & (y == c))
        fp = np.sum((p == c) & (y != c))
        fn = np.sum((p != c) & (y == c))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": acc, "f1_macro": float(np.mean(f1s))}


def score(task_type: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    if task_type == TaskType.CLASSIFICATION:
        return classification_metrics(y_true, y_pred)
    return regression_metrics(y_true, y_pred)


def aggregate(metric_dicts: Iterable[Mapping[str, float | None]]) -> dict[str, dict[str, float | int | None]]:
    """Mean, sample std (``std``, ddof=1; 0 for a single value), Matbench's std (``std_ddof0``) and count."""
    rows = list(metric_dicts)
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    out: dict[str, dict[str, float | int | None]] = {}
    for k in keys:
        vals = np.array([r[k] for r in rows if r.get(k) is not None], dtype=float)
        if len(vals) == 0:
            out[k] = {"mean": None, "std": None, "std_ddof0": None, "n": 0}
        else:
            out[k] = {
                "mean": float(vals.mean()),
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                "std_ddof0": float(vals.std(ddof=0)),
                "n": int(len(vals)),
            }
    return out

"""Uncertainty for leaderboard cells and paper comparisons: a 95% interval and paired tests.

Why: one random split moves a score by about 10% (rf on Cv: MAE/MAD 0.090-0.119
over 5 splits), close to the 15% a reproduction is usually allowed, so a single
number cannot say whether we match the paper or whether one model beats another.

* `interval`: mean, sample standard deviation (ddof=1) and the two-sided Student t
  interval `mean ± t(0.975, n-1) · std / sqrt(n)` over the runs of one cell (seeds,
  folds). It describes the spread of *our* runs, not the paper's unknown noise;
  with n=1 there is no interval (and the text says so rather than inventing one).
* `paired`: two configurations compared on the *same* runs: each pair shares the
  task, protocol, fold, seed and the same test ids, so split noise cancels. Both
  the paired t-test (`scipy.stats.ttest_rel`) and the Wilcoxon signed-rank test
  (`scipy.stats.wilcoxon`, two-sided, exact for small n) are given with n and the
  p-value. Unpaired runs are never tested: a run without its partner is dropped
  and counted. Note that with n paired runs Wilcoxon's smallest two-sided p is
  2/2**n (0.25 for 3 seeds): "not significant" with few seeds means "not tested
  enough", which the text states.

Pure functions of numbers; the callers decide which runs pair up (`pair_key`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
from scipy import stats

__all__ = ["Interval", "PairedTest", "interval", "paired", "fmt_interval", "fmt_paired", "LEVEL"]

LEVEL = 0.95
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Interval:
    """Mean, sample std and the 95% Student t interval of `n` values (`low`/`high` None when n < 2)."""

    mean: float
    std: float | None
    n: int
    low: float | None
    high: float | None
    level: float = LEVEL


@dataclass(frozen=True)
class PairedTest:
    """`b - a` over `n` pairs: mean difference, paired t and Wilcoxon p-values (None when not computable)."""

    n: int
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    t_p: float | None
    wilcoxon_p: float | None
    unpaired: int = 0
    note: str = ""


def interval(values: Sequence[float], level: float = LEVEL) -> Interval | None:
    """The mean and Student t interval of `values` (None for no values; no interval for one)."""
    x = np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, None, 1, None, None, level)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1)) * std / math.sqrt(x.size)
    return Interval(mean, std, int(x.size), mean - half, mean + half, level)


def paired(a: Mapping[K, float], b: Mapping[K, float]) -> PairedTest:
    """Compare `b` with `a` on the keys both have (a key names one split: task, protocol, fold, seed, test ids)."""
    keys = [k for k in a if k in b]
    unpaired = len(set(a) ^ set(b))
    if len(keys) < 2:
        note = "no test (needs 2 or more paired runs)"
        if not keys:
            return PairedTest(0, None, None, None, None, None, unpaired, note)
        va, vb = float(a[keys[0]]), float(b[keys[0]])
        return PairedTest(1, va, vb, vb - va, None, None, unpaired, note)
    xa = np.asarray([a[k] for k in keys], dtype=float)
    xb = np.asarray([b[k] for k in keys], dtype=float)
    diff = xb - xa
    base = PairedTest(len(keys), float(xa.mean()), float(xb.mean()), float(diff.mean()), None, None, unpaired)
    if np.all(diff == 0):
        return replace(base, note="identical on every pair: no test")
    t_p = None if float(diff.std(ddof=1)) == 0.0 else _p(stats.ttest_rel(xb, xa).pvalue)
    note = "" if t_p is not None else "the same difference on every pair: no t-test"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            w_p = _p(stats.wilcoxon(xb, xa).pvalue)
        except ValueError:
            w_p = None
    return replace(base, t_p=t_p, wilcoxon_p=w_p, note=note)


def _p(value: object) -> float | None:
    p = float(value)  # type: ignore[arg-type]
    return p if math.isfinite(p) else None


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def fmt_interval(iv: Interval | None, digits: int = 3) -> str:
    """``0.112 ± 0.011 (95% CI 0.098–0.126, n=5)``; ``0.112 (n=1: no interval)``; ``–`` for nothing."""
    if iv is None:
        return "–"
    if iv.n < 2 or iv.low is None or iv.high is None:
        return f"{_num(iv.mean, digits)} (n=1: no interval)"
    return (f"{_num(iv.mean, digits)} ± {_num(iv.std, 2)} ({round(iv.level * 100)}% CI "
            f"{_num(iv.low, digits)}–{_num(iv.high, digits)}, n={iv.n})")


def fmt_paired(t: PairedTest) -> str:
    """``n=5, mean diff -0.012, paired t p=0.03, Wilcoxon p=0.06`` (or the reason there is no test)."""
    parts = [f"n={t.n}"]
    if t.mean_diff is not None:
        parts.append(f"mean diff {t.mean_diff:+.3g}")
    if t.t_p is not None:
        parts.append(f"paired t p={t.t_p:.2g}")
    if t.wilcoxon_p is not None:
        parts.append(f"Wilcoxon p={t.wilcoxon_p:.2g}")
    if t.note:
        parts.append(t.note)
    if t.unpaired:
        parts.append(f"{t.unpaired} unpaired run(s) left out")
    return ", ".join(parts)

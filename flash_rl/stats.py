"""Summary statistics with 95% bootstrap confidence intervals (``scipy.stats.bootstrap``, percentile method).

The percentile method is used rather than BCa because episodes-to-adapt is discrete with many ties (censored runs
all share one value), where BCa degenerates.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    return stats.trim_mean(x, 0.25, axis=axis)


def median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median along ``axis`` (default the last): a ``statistic(x, axis)`` for :func:`bootstrap_ci`."""
    return np.median(x, axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean along ``axis`` (default the last): a ``statistic(x, axis)`` for :func:`bootstrap_ci`."""
    return np.mean(x, axis=axis)


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    """``values`` as a float array, refused (ValueError) if one is NaN or infinite: scipy would give a NaN or
    meaningless interval for it, with at most a warning."""
    x = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(x)):
        bad = x[~np.isfinite(x)]
        raise ValueError(f"{what}: {len(bad)} of {x.size} values are not finite (e.g. {bad[0]}); a bootstrap CI needs "
                         "finite values (leave undefined ones out first)")
    return x


def bootstrap_ci(values: Sequence[float], statistic: Callable[..., np.ndarray], n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, CI low, CI high) of ``statistic`` over ``values`` (finite: a ValueError otherwise); the CI is
    NaN for a single value (nothing to resample) and the point itself when all values are equal."""
    x = _finite(values, "bootstrap_ci")
    point = float(statistic(x))
    if len(x) < 2:
        return point, math.nan, math.nan
    if np.all(x == x[0]):
        return point, point, point
    res = stats.bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=CONFIDENCE,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def ratio_ci(numerator: Sequence[float], denominator: Sequence[float], statistic: Callable[..., np.ndarray] = mean,
             n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``statistic(numerator) / statistic(denominator)`` with a paired bootstrap CI (pairs: the same task and seed);
    NaN for a single pair, the point itself when every pair is the same. The values must be finite."""
    a, b = _finite(numerator, "ratio_ci numerator"), _finite(denominator, "ratio_ci denominator")
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}")

    def ratio(x, y, axis=-1):
        return statistic(x, axis=axis) / statistic(y, axis=axis)

    point = float(ratio(a, b))
    if len(a) < 2:
        return point, math.nan, math.nan
    if np.all(a == a[0]) and np.all(b == b[0]):
        return point, point, point
    res = stats.bootstrap((a, b), ratio, paired=True, n_resamples=n_resamples, confidence_level=CONFIDENCE,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def clustered_ratio_of_means_ci(numerator: Sequence[float], denominator: Sequence[float], clusters: Sequence[str],
                                n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``mean(numerator) / mean(denominator)`` with a paired bootstrap CI that resamples whole clusters.

    Use it when runs come in correlated groups, e.g. several adaptation seeds on one task: resampling runs treats the
    seeds as independent evidence, while a user meets new tasks, not new seeds. Paired runs share a cluster, so the
    ratio of means is the ratio of the clusters' sums, and the bootstrap resamples the clusters' paired sums (NaN CI
    for a single cluster).
    """
    what = "clustered_ratio_of_means_ci"
    a, b = _finite(numerator, f"{what} numerator"), _finite(denominator, f"{what} denominator")
    labels = np.asarray(clusters)
    if not a.shape == b.shape == labels.shape:
        raise ValueError(f"paired samples and their clusters need equal shapes, got {a.shape}, {b.shape}, "
                         f"{labels.shape}")
    keys = np.unique(labels)
    sums_a = np.array([a[labels == k].sum() for k in keys])
    sums_b = np.array([b[labels == k].sum() for k in keys])
    return ratio_ci(sums_a, sums_b, lambda x, axis=-1: np.sum(x, axis=axis), n_resamples, seed)


def crossed_ratio_of_means_ci(numerator: Sequence[float], denominator: Sequence[float], rows: Sequence[str],
                              columns: Sequence[str], n_resamples: int = 2000, seed: int = 0
                              ) -> tuple[float, float, float]:
    """``mean(numerator) / mean(denominator)`` with a paired bootstrap CI that resamples two crossed factors at once,
    e.g. meta-training seeds (``rows``) and held-out tasks (``columns``), every task met by every seed.

    Each resample draws the row labels and, independently, the column labels with replacement, and weighs each cell
    (row, column) by how often both were drawn: Owen's pigeonhole bootstrap (Annals of Applied Statistics 1(1),
    2007), slightly conservative for crossed random effects with many levels of each factor. With few rows it
    undercovers where the rows differ much: a resample cannot reach past the most extreme rows, so with 2 to 5 rows
    the 95% interval can miss the true ratio far more often than 5% of the time; :func:`geometric_mean_ci` over the
    rows' own ratios is the wider check.
    Paired values share a cell, and every cell must hold at least one pair (a ValueError otherwise); the CI is NaN
    when either factor has a single level.
    """
    what = "crossed_ratio_of_means_ci"
    a, b = _finite(numerator, f"{what} numerator"), _finite(denominator, f"{what} denominator")
    row_labels, column_labels = np.asarray(rows), np.asarray(columns)
    if not a.shape == b.shape == row_labels.shape == column_labels.shape:
        raise ValueError(f"paired samples and their labels need equal shapes, got {a.shape}, {b.shape}, "
                         f"{row_labels.shape}, {column_labels.shape}")
    row_keys, row_index = np.unique(row_labels, return_inverse=True)
    column_keys, column_index = np.unique(column_labels, return_inverse=True)
    cells = (len(row_keys), len(column_keys))
    sums_a, sums_b, counts = np.zeros(cells), np.zeros(cells), np.zeros(cells, dtype=int)
    np.add.at(sums_a, (row_index, column_index), a)
    np.add.at(sums_b, (row_index, column_index), b)
    np.add.at(counts, (row_index, column_index), 1)
    if (empty := np.argwhere(counts == 0)).size:
        r, c = empty[0]
        raise ValueError(f"{what}: the factors must be crossed, but ({row_keys[r]}, {column_keys[c]}) has no pair")
    point = float(sums_a.sum() / sums_b.sum())
    if min(cells) < 2:
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    row_weights = rng.multinomial(cells[0], np.full(cells[0], 1 / cells[0]), size=n_resamples)
    column_weights = rng.multinomial(cells[1], np.full(cells[1], 1 / cells[1]), size=n_resamples)
    resampled_a = np.einsum("ni,ij,nj->n", row_weights, sums_a, column_weights)
    resampled_b = np.einsum("ni,ij,nj->n", row_weights, sums_b, column_weights)
    low, high = np.quantile(resampled_a / resampled_b, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return point, float(low), float(high)


def geometric_mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Geometric mean of positive ``values`` (e.g. one speedup per meta-training seed) with a 95% Student-t interval
    on their logs: a random-effects view in which each value is one draw, so the interval is as wide as their spread
    over few draws demands (NaN CI for a single value). Positive, finite values only (a ValueError otherwise)."""
    x = _finite(values, "geometric_mean_ci")
    if np.any(x <= 0):
        raise ValueError(f"geometric_mean_ci: the values must be positive, got {x[x <= 0][0]}")
    logs = np.log(x)
    point = float(np.exp(logs.mean()))
    if len(x) < 2:
        return point, math.nan, math.nan
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(x) - 1) * logs.std(ddof=1) / math.sqrt(len(x))
    return point, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))

"""Intervals and the bootstrap: every interval in the package, the benchmarks and the book.

:class:`Interval` holds an estimate with its interval and prints one way, ``"0.692 [0.524,
0.872]"``. :func:`bootstrap` gives the percentile bootstrap interval of a statistic (Efron &
Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13): draw the n units with replacement
B times; the interval is the (1 - level) / 2 and (1 + level) / 2 quantiles (linear
interpolation) of the B statistics. With ``clusters`` (e.g. patient ids) the units are the
distinct clusters, each drawn whole with all its values (the cluster bootstrap: images of one
patient are not independent). :func:`paired_bootstrap` is the interval of ``mean(a) - mean(b)``
over the same items, both sides resampled alike.

One convention everywhere: resample b draws ``numpy.random.default_rng(seed).integers(0, m,
size=(B, m))[b]`` (m units, in sorted order of the cluster names), so the resamples depend only
on the seed and m, and scores of several methods on the same items share them. A draw is
represented by ``weights[b, i]``: how many times item i is in resample b (its cluster's count);
a statistic is a function ``statistic(values, weights [B, N]) -> [B]``, NaN where a resample
leaves it undefined (such resamples are left out of the quantiles).

:class:`Direction` says whether higher or lower values of a score are better; scores declare it
where they are made (nothing parses it from a name).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Direction(str, Enum):
    """Which values of a score mean a better result (a more faithful map, a cheaper method)."""

    HIGHER = "higher"
    LOWER = "lower"

    def sort_key(self, value: float) -> float:
        """A key that sorts the best value first: ``value`` for LOWER, ``-value`` for HIGHER."""
        return value if self is Direction.LOWER else -value


HIGHER_IS_BETTER = Direction.HIGHER
LOWER_IS_BETTER = Direction.LOWER

#: The interval level of every interval the project reports (the book says it from here).
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate ``value`` with its interval ``[low, high]`` at ``level`` over ``n`` values."""

    value: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def format(self, digits: int = 3, signed: bool = False) -> str:
        """``"value [low, high]"`` with ``digits`` decimals (``signed``: with a + on positive numbers)."""
        spec = f"{'+' if signed else ''}.{digits}f"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"

    def __str__(self) -> str:
        return self.format()

    def excludes(self, x: float = 0.0) -> bool:
        """Whether ``x`` lies outside ``[low, high]``."""
        return x < self.low or x > self.high

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a point."""
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict:
        return asdict(self)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of each resample: ``sum_i w[b, i] v_i / sum_i w[b, i]`` (the default statistic)."""
    if values.ndim != 1:
        raise ValueError(f"the mean needs values of one dimension [N], got shape {list(values.shape)}")
    return weights @ values / weights.sum(1)


def resample_counts(units: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """``counts [resamples, units]``: how often each unit is drawn in each resample, the draws
    being ``numpy.random.default_rng(seed).integers(0, units, size=(resamples, units))``."""
    if units < 1:
        raise ValueError("nothing to resample: no values")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    drawn = np.random.default_rng(seed).integers(0, units, size=(resamples, units))
    offsets = np.arange(resamples)[:, None] * units
    return np.bincount((drawn + offsets).ravel(), minlength=resamples * units).reshape(resamples, units)


def _array(values) -> np.ndarray:
    """float64 numpy array of a sequence, numpy array or torch tensor (on any device)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()
    return np.asarray(values, dtype=np.float64)


def _cluster_index(clusters: Sequence | None, n: int) -> np.ndarray:
    """Each item's unit: its position without clusters, else its cluster's rank among the sorted names."""
    if clusters is None:
        return np.arange(n)
    clusters = [c.item() if hasattr(c, "item") else c for c in clusters]
    if len(clusters) != n:
        raise ValueError(f"{n} values but {len(clusters)} cluster labels")
    names = sorted(set(clusters))
    rank = {name: i for i, name in enumerate(names)}
    return np.array([rank[c] for c in clusters], dtype=np.int64)


def bootstrap(values, clusters: Sequence | None = None, level: float = LEVEL, resamples: int = 2000, seed: int = 0,
              statistic: Statistic = weighted_mean) -> Interval:
    """The statistic of ``values`` (default the mean) with its percentile bootstrap interval.

    ``values``: [N] (or [N, ...] for a statistic that reads several columns); ``clusters``: N
    labels, resampled whole (all values of a drawn cluster enter the resample, as often as it is
    drawn); ``statistic(values, weights [B, N]) -> [B]`` (see the module docstring). The point
    estimate is the statistic with every weight 1. Resamples where the statistic is NaN are left
    out; a ValueError if all are. With a single resampling unit (one value, or every value in
    one cluster) the data say nothing about the spread: the interval is ``[-inf, inf]``, so it
    excludes nothing and overlaps everything (the percentile interval would be the point)."""
    v = _array(values)
    if v.ndim == 0 or v.shape[0] == 0:
        raise ValueError(f"values must be a non-empty sequence, got shape {list(v.shape)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    unit = _cluster_index(clusters, v.shape[0])
    point = float(statistic(v, np.ones((1, v.shape[0])))[0])
    if unit.max() == 0:
        return Interval(point, -math.inf, math.inf, int(v.shape[0]), level)
    weights = resample_counts(int(unit.max()) + 1, resamples, seed)[:, unit].astype(np.float64)
    boot = np.asarray(statistic(v, weights), dtype=np.float64)
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        raise ValueError("the statistic is undefined (NaN) in every resample")
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(point, float(low), float(high), int(v.shape[0]), level)


def paired_bootstrap(a, b, clusters: Sequence | None = None, level: float = LEVEL, resamples: int = 2000,
                     seed: int = 0) -> Interval:
    """``mean(a) - mean(b)`` over the same N items (or the clusters' items), with the percentile
    bootstrap interval of the difference: each resample draws the same items for ``a`` and
    ``b``, so what the two share cancels and the interval is narrower than two separate ones."""
    a, b = _array(a), _array(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be paired values of equal length [N], got {list(a.shape)} and {list(b.shape)}")
    return bootstrap(a - b, clusters, level, resamples, seed)


__all__ = ["Direction", "HIGHER_IS_BETTER", "Interval", "LOWER_IS_BETTER", "bootstrap", "paired_bootstrap",
           "resample_counts", "weighted_mean"]

"""xai_lab.stats: the interval type, the (cluster) bootstrap and the paired bootstrap, on values
whose bootstrap distribution is known by hand."""
import math

import numpy as np
import pytest
import torch

from xai_lab.stats import Direction, Interval, bootstrap, paired_bootstrap, resample_counts, weighted_mean


def test_interval_has_one_text_format():
    i = Interval(0.6917, 0.5239, 0.8721, 10)
    assert str(i) == "0.692 [0.524, 0.872]" == i.format()
    assert i.format(2) == "0.69 [0.52, 0.87]"
    assert Interval(0.05, -0.01, 0.1, 3).format(2, signed=True) == "+0.05 [-0.01, +0.10]"
    assert i.level == 0.95 and i.as_dict() == {"value": 0.6917, "low": 0.5239, "high": 0.8721, "n": 10, "level": 0.95}


def test_interval_comparisons():
    a, b, c = Interval(0.5, 0.4, 0.6, 5), Interval(0.65, 0.6, 0.7, 5), Interval(0.8, 0.75, 0.9, 5)
    assert a.overlaps(b) and b.overlaps(a) and not a.overlaps(c)
    assert a.excludes(0) and not a.excludes(0.45) and a.excludes(0.61)


def test_direction_sorts_best_first():
    values = {"x": 0.2, "y": 0.7}
    assert min(values, key=lambda k: Direction.LOWER.sort_key(values[k])) == "x"
    assert min(values, key=lambda k: Direction.HIGHER.sort_key(values[k])) == "y"
    assert Direction("higher") is Direction.HIGHER  # read back from a results file


def test_resample_counts_are_the_seeded_draws():
    drawn = np.random.default_rng(3).integers(0, 4, size=(5, 4))
    expected = np.stack([np.bincount(row, minlength=4) for row in drawn])
    np.testing.assert_array_equal(resample_counts(4, 5, seed=3), expected)
    assert (resample_counts(7, 50).sum(1) == 7).all()


def test_constant_values_give_a_point_interval():
    i = bootstrap([2.0, 2.0, 2.0])
    assert (i.value, i.low, i.high, i.n) == (2.0, 2.0, 2.0, 3)
    one = bootstrap(torch.tensor([5.0]))  # one value says nothing about the spread
    assert (one.value, one.low, one.high, one.n) == (5.0, -math.inf, math.inf, 1)
    assert not one.excludes(0.0) and one.overlaps(Interval(9.0, 8.0, 10.0, 3))


def test_one_cluster_gives_no_interval_and_no_clear_difference():
    values, other = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]
    same_patient = ["p1", "p1", "p1"]
    i = bootstrap(values, same_patient)
    assert i.value == pytest.approx(0.2) and (i.low, i.high, i.n) == (-math.inf, math.inf, 3)
    assert not paired_bootstrap(values, other, same_patient).excludes(0.0)
    assert paired_bootstrap(values, other).excludes(0.0)  # three independent images do say something


def test_two_values_by_hand():
    """Resampling {0, 1}: the mean is 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4. At level 0.4
    the 0.3 and 0.7 quantiles both fall in the mass at 1/2; at 0.95 they are 0 and 1."""
    narrow = bootstrap([0.0, 1.0], level=0.4, resamples=20000)
    assert (narrow.value, narrow.low, narrow.high) == (0.5, 0.5, 0.5)
    wide = bootstrap([0.0, 1.0], resamples=20000)
    assert (wide.low, wide.high) == (0.0, 1.0)


def test_the_interval_is_the_quantiles_of_the_resampled_means():
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.55])
    drawn = np.random.default_rng(7).integers(0, 5, size=(300, 5))
    means = values[drawn].mean(1)
    i = bootstrap(values, resamples=300, seed=7, level=0.9)
    assert i.value == pytest.approx(values.mean())
    assert (i.low, i.high) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])), abs=1e-12)


def test_seeds_reproduce():
    values = np.random.default_rng(0).normal(size=30)
    assert bootstrap(values, seed=4) == bootstrap(values.tolist(), seed=4)
    assert bootstrap(values, seed=4) != bootstrap(values, seed=5)


def test_clusters_are_resampled_whole():
    """Cluster a has three 1s, b one 0: a resample is aa (mean 1), bb (0) or ab (3/4), each
    drawn with all its values; never e.g. two of a's values and b's."""
    values, clusters = [1.0, 1.0, 1.0, 0.0], ["a", "a", "a", "b"]
    seen = []

    def spy(v, w):
        seen.append(w)
        return weighted_mean(v, w)

    i = bootstrap(values, clusters, level=0.4, resamples=4000, statistic=spy)
    weights = seen[1]
    assert (weights[:, :3] == weights[:, :1]).all()          # a's images together
    assert set(weights.sum(1).tolist()) <= {2.0, 4.0, 6.0}   # bb: 2 images, ab: 4, aa: 6
    means = weighted_mean(np.array(values), weights)
    assert set(np.round(means, 12).tolist()) == {0.0, 0.75, 1.0}
    assert (i.value, i.low, i.high, i.n) == (0.75, 0.75, 0.75, 4)
    bootstrap(values, resamples=4000, statistic=spy)
    item_means = weighted_mean(np.array(values), seen[-1])
    assert {0.25, 0.5} <= set(np.round(item_means, 12).tolist())   # drawing images, not patients


def test_cluster_order_and_type_do_not_matter():
    values = [0.3, 0.9, 0.1, 0.5, 0.7]
    a = bootstrap(values, ["p1", "p2", "p1", "p3", "p2"], seed=1)
    b = bootstrap(values, np.array(["p1", "p2", "p1", "p3", "p2"]), seed=1)
    assert a == b


def test_undefined_resamples_are_left_out():
    def positive_mean(v, w):   # undefined when a resample holds no positive value
        inside = w * (v > 0)
        total = inside.sum(1)
        return np.where(total > 0, inside @ v / np.where(total > 0, total, 1), np.nan)

    i = bootstrap([-1.0, 2.0], statistic=positive_mean, resamples=500)
    assert (i.value, i.low, i.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="undefined"):
        bootstrap([-1.0, -2.0], statistic=positive_mean)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    b = rng.normal(size=40)
    shifted = paired_bootstrap(b + 0.3, b)
    assert (shifted.value, shifted.low, shifted.high) == pytest.approx((0.3, 0.3, 0.3))
    a = b + 0.2 + 0.1 * rng.normal(size=40)
    paired = paired_bootstrap(a, b, seed=2)
    assert paired.value == pytest.approx(a.mean() - b.mean())
    separate = bootstrap(a, seed=2), bootstrap(b, seed=2)
    assert paired.high - paired.low < min(s.high - s.low for s in separate)   # the shared part cancels
    assert paired == bootstrap(a - b, seed=2)                                  # same draws for a and b
    clustered = paired_bootstrap([1.0, 0.0, 1.0], [0.0, 0.0, 1.0], ["x", "x", "y"], resamples=100)
    assert clustered.value == pytest.approx(1 / 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap([])
    with pytest.raises(ValueError, match="level"):
        bootstrap([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap([1.0, 2.0], resamples=0)
    with pytest.raises(ValueError, match="cluster labels"):
        bootstrap([1.0, 2.0], clusters=["a"])
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    hits = 0
    for trial in range(200):
        i = bootstrap(rng.normal(1.0, 1.0, size=40), resamples=1000, seed=trial)
        hits += i.low <= 1.0 <= i.high
    assert 0.88 <= hits / 200 <= 0.99

import json

import numpy as np
import pytest
import torch

from xai_lab.metrics import deletion_auc, insertion_auc, pixel_perturbation
from xai_lab.metrics.comparison import (Protocol, ResultsFile, better, bootstrap_interval, compare, evaluate,
                                        merge_results, parse_shard, perturbation_scores, read_results, shard_slice,
                                        summarize)


def test_bootstrap_of_two_values_by_hand():
    # resampled means of [0, 1] are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4: the 2.5 % and
    # 97.5 % quantiles are 0 and 1
    mean, low, high = bootstrap_interval([0.0, 1.0], resamples=4000, seed=3)
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    assert bootstrap_interval([2.5] * 7) == (2.5, 2.5, 2.5)


def test_bootstrap_is_the_percentile_interval_of_resampled_means():
    values = np.random.default_rng(1).exponential(size=30)
    index = np.random.default_rng(7).integers(0, 30, size=(500, 30))
    expected = np.quantile(values[index].mean(1), [0.05, 0.95])
    assert bootstrap_interval(values, level=0.9, resamples=500, seed=7)[1:] == pytest.approx(expected, abs=0)


def test_bootstrap_contains_the_mean_and_is_reproducible_with_the_seed():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=40)
    mean, low, high = bootstrap_interval(values, seed=11)
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert bootstrap_interval(values, seed=11) == (mean, low, high)
    assert bootstrap_interval(values, seed=12)[1:] != (low, high)
    assert bootstrap_interval(values, level=0.5, seed=11)[2] - bootstrap_interval(values, level=0.5, seed=11)[1] < high - low


def test_bootstrap_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    hits = 0
    for trial in range(200):
        low, high = bootstrap_interval(rng.normal(1.0, 1.0, size=40), resamples=1000, seed=trial)[1:]
        hits += low <= 1.0 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1.0], level=95)


@pytest.mark.parametrize("text, message", [("3/2", "1 <= K <= N"), ("0/2", "1 <= K <= N"), ("1/0", "N >= 1"),
                                           ("2", "K/N"), ("a/b", "K/N"), ("-1/2", "K/N")])
def test_parse_shard_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


def test_shards_partition_the_items_in_order():
    items = list(range(11))
    for n in (1, 2, 3, 4, 11, 12):
        slices = [shard_slice(items, k, n) for k in range(1, n + 1)]
        assert sum(slices, []) == items
        assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert parse_shard("2/3") == (2, 3) and shard_slice(items, 2, 3) == [3, 4, 5, 6]


def _record(image, method, value, kind="eval", **extra):
    return {"kind": kind, "image": image, "method": method, "options": {}, "scores": {"lerf_mean_afoc@0.1": value},
            "seconds": 0.1, "forward_passes": 1, "backward_passes": 0, **extra}


def test_results_file_resumes_and_cuts_a_line_a_kill_left_unfinished(tmp_path):
    path = tmp_path / "records.jsonl"
    f = ResultsFile(path, {"a": 1})
    f.append(_record(0, "x", 0.5))
    f.append(_record(1, "x", 0.25))
    with pytest.raises(ValueError, match="already"):
        f.append(_record(1, "x", 0.3))
    with open(path, "a") as fh:
        fh.write('{"kind": "eval", "image": 2, "meth')       # killed in the middle of a write
    assert len(read_results(path)[1]) == 2
    g = ResultsFile(path, {"a": 1})
    assert set(g.done) == {("eval", 0, "x"), ("eval", 1, "x")}
    g.append(_record(2, "x", 0.125))
    config, records = read_results(path)
    assert config == {"a": 1} and [r["image"] for r in records] == [0, 1, 2]
    with pytest.raises(ValueError, match="other settings"):
        ResultsFile(path, {"a": 2})


def test_read_results_rejects_a_corrupt_line_in_the_middle(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"kind": "header", "config": {}}) + "\nnot json\n" + json.dumps(_record(0, "x", 1.0)) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_results(path)


def test_merge_checks_configs_and_options_and_drops_duplicates(tmp_path):
    a, b = ResultsFile(tmp_path / "a.jsonl", {"n": 2, "shard": "1/2"}), ResultsFile(tmp_path / "b.jsonl", {"n": 2, "shard": "2/2"})
    a.append(_record(1, "x", 0.5))
    b.append(_record(0, "x", 0.25))
    b.append(_record(1, "x", 0.5))
    config, records, info = merge_results([a.path, b.path])
    assert config == {"n": 2} and [r["image"] for r in records] == [0, 1] and info["duplicates_dropped"] == 1
    c = ResultsFile(tmp_path / "c.jsonl", {"n": 3, "shard": "1/2"})
    with pytest.raises(ValueError, match="n differ"):
        merge_results([a.path, c.path])
    d = ResultsFile(tmp_path / "d.jsonl", {"n": 2, "shard": "2/2"})
    d.append({**_record(0, "x", 0.25), "options": {"steps": 3}})
    with pytest.raises(ValueError, match="options"):
        merge_results([a.path, d.path])
    with pytest.raises(ValueError, match="no results"):
        merge_results([])


def test_summarize_ignores_record_order_and_uses_the_bootstrap():
    records = [_record(i, m, v) for i, (a, b) in enumerate([(0.1, 0.4), (0.2, 0.5), (0.15, 0.9), (0.3, 0.2)])
               for m, v in (("a", a), ("b", b))]
    table = summarize(records, seed=4)
    assert summarize(records[::-1], seed=4) == table and list(table) == ["a", "b"]
    cell = table["a"]["lerf_mean_afoc@0.1"]
    assert (cell["mean"], cell["low"], cell["high"]) == bootstrap_interval([0.1, 0.2, 0.15, 0.3], seed=4)
    assert cell["n"] == 4 and cell["better"] == "lower" and table["b"]["seconds"]["mean"] == pytest.approx(0.1)


def test_compare_pairs_images_and_reports_overlap():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=30)
    records = ([_record(i, "good", v) for i, v in enumerate(base)]
               + [_record(i, "close", v + 0.002) for i, v in enumerate(base)]
               + [_record(i, "bad", v + 0.5) for i, v in enumerate(base)])
    c = compare(records, "lerf_mean_afoc@0.1", "good")
    assert c["is_best"] and c["best"] == "good"
    assert c["versus"]["close"]["intervals_overlap"] and c["versus"]["close"]["difference_excludes_zero"]
    assert c["versus"]["close"]["difference"] == pytest.approx(-0.002)
    assert not c["versus"]["bad"]["intervals_overlap"]
    assert not compare(records, "lerf_mean_afoc@0.1", "bad")["is_best"]
    assert better("morf_black_kl@0.05") == "higher" and better("deletion_auc") == "lower" and better("x") is None


def test_perturbation_scores_are_the_metrics_of_the_perturbation_module(tiny, tiny_input):
    x, saliency = tiny_input[:1], torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2))
    protocol = Protocol(fractions=(0.25, 0.5), baselines=(0.0, "mean"), step=16, deletion_baseline=0.0)
    scores, curves = perturbation_scores(tiny, x[0], saliency[0], 3, protocol)
    assert len(scores) == 2 * 2 * 3 * 2 + 2
    direct = pixel_perturbation(tiny, x, saliency, target=3, order="lerf", baseline="mean", fractions=(0.25, 0.5))
    assert scores["lerf_mean_kl@0.5"] == direct["kl"][0, 1].item()
    direct = pixel_perturbation(tiny, x, saliency, target=3, order="morf", baseline=0.0, fractions=(0.25, 0.5))
    assert scores["morf_0.0_afoc@0.25"] == direct["afoc"][0, 0].item()
    assert scores["deletion_auc"] == deletion_auc(tiny, x, saliency, 3, baseline=0.0, step=16)["auc"][0].item()
    insertion = insertion_auc(tiny, x, saliency, 3, step=16)
    assert scores["insertion_auc"] == insertion["auc"][0].item() and curves["insertion"] == insertion["curve"][0].tolist()


def test_evaluate_records_cost_and_is_reproducible(tiny, tiny_input):
    protocol = Protocol(fractions=(0.5,), baselines=(0.0,), step=32, deletion_baseline=0.0)
    a = evaluate(tiny, tiny_input[0], "random", protocol, seed=5)
    b = evaluate(tiny, tiny_input[0], "random", protocol, seed=5)
    assert a["scores"] == b["scores"] and a["forward_passes"] == 1 and a["backward_passes"] == 0
    assert evaluate(tiny, tiny_input[0], "random", protocol, seed=6)["scores"] != a["scores"]
    with pytest.raises(ValueError, match="one image"):
        evaluate(tiny, tiny_input, "random", protocol)

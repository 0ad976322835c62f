
import numpy as np
import pytest
import torch

from xai_lab.metrics import deletion_auc, insertion_auc, pixel_perturbation
from xai_lab.metrics.comparison import (
    DIRECTIONS,
    Protocol,
    compare,
    directions,
    evaluate,
    perturbation_directions,
    perturbation_scores,
    recompute,
    sanity_scores,
    summarize,
)
from xai_lab.stats import Direction, bootstrap, paired_bootstrap


def _record(image, method, value, kind="eval", **extra):
    return {"kind": kind, "image": image, "method": method, "options": {}, "scores": {"lerf_mean_afoc@0.1": value},
            "better": {"lerf_mean_afoc@0.1": "lower", "seconds": "lower"},
            "seconds": 0.1, "forward_passes": 1, "backward_passes": 0, **extra}


def test_summarize_ignores_record_order_and_uses_the_bootstrap():
    records = [_record(i, m, v) for i, (a, b) in enumerate([(0.1, 0.4), (0.2, 0.5), (0.15, 0.9), (0.3, 0.2)])
               for m, v in (("a", a), ("b", b))]
    table = summarize(records, seed=4)
    assert summarize(records[::-1], seed=4) == table and list(table) == ["a", "b"]
    cell = table["a"]["lerf_mean_afoc@0.1"]
    assert cell == bootstrap([0.1, 0.2, 0.15, 0.3], seed=4) and cell.n == 4
    assert table["b"]["seconds"].value == pytest.approx(0.1)
    assert directions(records) == {"lerf_mean_afoc@0.1": Direction.LOWER, "seconds": Direction.LOWER}
    with pytest.raises(ValueError, match="disagree"):
        directions(records + [{**records[0], "better": {"seconds": "higher"}}])


def test_compare_pairs_images_and_reports_overlap():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=30)
    records = ([_record(i, "good", v) for i, v in enumerate(base)]
               + [_record(i, "close", v + 0.002) for i, v in enumerate(base)]
               + [_record(i, "bad", v + 0.5) for i, v in enumerate(base)])
    c = compare(records, "lerf_mean_afoc@0.1", "good")
    assert c["is_best"] and c["best"] == "good"
    assert c["versus"]["close"]["intervals_overlap"] and c["versus"]["close"]["difference_excludes_zero"]
    assert c["versus"]["close"]["difference"].value == pytest.approx(-0.002)
    assert c["intervals"]["good"] == bootstrap(base, seed=0)
    assert not c["versus"]["bad"]["intervals_overlap"]
    assert not compare(records, "lerf_mean_afoc@0.1", "bad")["is_best"]
    higher = [{**r, "better": {"lerf_mean_afoc@0.1": "higher"}} for r in records]   # the declared direction decides
    assert compare(higher, "lerf_mean_afoc@0.1", "bad")["is_best"]
    with pytest.raises(ValueError, match="direction"):
        compare([{**r, "better": {}} for r in records], "lerf_mean_afoc@0.1", "good")


def test_every_score_declares_its_direction(tiny, tiny_input):
    protocol = Protocol(fractions=(0.5,), baselines=(0.0,), step=32, deletion_baseline=0.0)
    record = evaluate(tiny, tiny_input[0], "random", protocol, seed=5)
    assert set(record["better"]) == set(record["scores"]) | {"seconds", "forward_passes", "backward_passes"}
    assert record["better"]["morf_0.0_kl@0.5"] == "higher" and record["better"]["lerf_0.0_afoc@0.5"] == "lower"
    assert record["better"]["insertion_auc"] == "higher" and record["better"]["deletion_auc"] == "lower"
    assert perturbation_directions(protocol)["seconds"] is DIRECTIONS["seconds"] is Direction.LOWER
    sanity = sanity_scores(tiny, tiny_input[0], "saliency", target=3, steps=1)
    assert set(sanity["better"]) == set(sanity["scores"]) and set(sanity["better"].values()) == {"lower"}


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


def test_sanity_scores_pass_the_methods_options(tiny, tiny_input):
    """``steps`` is both the cascade's and integrated gradients' option: it must reach the method."""
    record = sanity_scores(tiny, tiny_input[0], "integrated_gradients", target=3, steps=1, options={"steps": 4})
    assert record["options"] == {"steps": 4} and "sanity_spearman@1" in record["scores"]


def test_evaluate_scores_localization_against_a_mask(tiny, tiny_input):
    protocol = Protocol(fractions=(0.5,), baselines=(0.0,), step=32, deletion_baseline=0.0)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    record = evaluate(tiny, tiny_input[0], "random", protocol, seed=5, mask=mask)
    assert 0 <= record["scores"]["relevance_mass"] <= 1 and record["scores"]["pointing_game"] in (0.0, 1.0)
    assert record["better"]["relevance_mass"] == record["better"]["pointing_game"] == "higher"
    saliency = torch.zeros(8, 8)
    saliency[0, 0] = 1.0
    from xai_lab.metrics.comparison import localization_scores
    assert localization_scores(saliency, mask) == {"relevance_mass": 1.0, "pointing_game": 1.0}
    assert localization_scores(torch.ones(8, 8), mask)["pointing_game"] == 0.0


def test_summarize_resamples_clusters_whole():
    records = [_record(i, "a", v, cluster=p) for i, (v, p) in enumerate([(0.1, "p1"), (0.2, "p1"), (0.9, "p2")])]
    cell = summarize(records, seed=1)["a"]["lerf_mean_afoc@0.1"]
    assert cell == bootstrap([0.1, 0.2, 0.9], clusters=["p1", "p1", "p2"], seed=1)


def test_compare_resamples_patients_when_the_records_carry_them():
    rng = np.random.default_rng(1)
    values = rng.uniform(0.2, 0.8, size=12)
    patients = [f"p{i // 3}" for i in range(12)]  # four patients, three images each
    records = [_record(i, m, v + shift, cluster=patients[i]) for i, v in enumerate(values)
               for m, shift in (("a", 0.0), ("b", 0.1 + 0.05 * rng.standard_normal()))]
    c = compare(records, "lerf_mean_afoc@0.1", "a")
    a_values, b_values = [r["scores"]["lerf_mean_afoc@0.1"] for r in records[0::2]], \
        [r["scores"]["lerf_mean_afoc@0.1"] for r in records[1::2]]
    assert c["intervals"]["a"] == bootstrap(a_values, patients, seed=0)
    assert c["versus"]["b"]["difference"] == paired_bootstrap(a_values, b_values, patients, seed=0)
    assert c["versus"]["b"]["difference"] != paired_bootstrap(a_values, b_values, seed=0)  # not image by image
    unclustered = compare([{**r, "cluster": None} for r in records], "lerf_mean_afoc@0.1", "a")
    assert unclustered["intervals"]["a"] == bootstrap(a_values, seed=0)


def test_recompute_agrees_with_its_record_and_names_a_disagreement(tiny, tiny_input):
    protocol = Protocol(fractions=(0.5,), baselines=(0.0,), step=32, deletion_baseline=0.0)
    record = evaluate(tiny, tiny_input[0], "saliency", protocol, seed=5)
    assert recompute(tiny, tiny_input[0], record, protocol, seed=5) == 0.0
    variant = {**record, "method": "saliency@whatever", "base_method": "saliency"}  # a benchmark record
    assert recompute(tiny, tiny_input[0], variant, protocol, seed=5) == 0.0
    changed = {**record, "scores": {**record["scores"], "insertion_auc": record["scores"]["insertion_auc"] + 0.1}}
    with pytest.raises(ValueError, match="insertion_auc"):
        recompute(tiny, tiny_input[0], changed, protocol, seed=5)
    with pytest.raises(ValueError, match="target"):
        recompute(tiny, tiny_input[0], {**record, "target": record["target"] + 1}, protocol, seed=5)

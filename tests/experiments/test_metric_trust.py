"""The meta-evaluation of metrics: rank correlations with a known answer on synthetic scores
(+1, -1, the patient bootstrap recomputed by hand), Kendall's and Spearman's conventions
against scipy, the per-image scoring on a toy classifier that sees only the mark, and one small
run on the planted-shortcut model."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats as scipy_stats
from torch import nn

import xai_lab
from xai_lab import Classifier
from xai_lab.data import ImageRecord
from xai_lab.experiments import metric_trust as mt
from xai_lab.experiments import shortcut
from xai_lab.experiments.shortcut import Mark
from xai_lab.models import msld
from xai_lab.stats import Direction, resample_counts

METHODS = ("a", "b", "c", "d", "e")


def synthetic(noise: float = 0.01, seed: int = 0) -> mt.TrustScores:
    """12 images of 6 patients (two each), 5 methods whose relevance mass is 0.1 ... 0.5 plus a
    little noise; "agrees" is twice the truth (higher better), "reverses" is the truth declared
    lower-is-better, "deletion_like" is minus the truth, lower better (agrees again)."""
    rng = np.random.default_rng(seed)
    truth = np.linspace(0.1, 0.5, 5)[None] + noise * rng.standard_normal((12, 5))
    values = {"agrees": 2 * truth + noise * rng.standard_normal((12, 5)), "reverses": truth.copy(),
              "deletion_like": -truth}
    better = {"agrees": Direction.HIGHER, "reverses": Direction.LOWER, "deletion_like": Direction.LOWER}
    return mt.TrustScores(METHODS, tuple(f"img{i:02d}" for i in range(12)), tuple(f"p{i // 2}" for i in range(12)),
                          truth, values, better)


def test_a_metric_that_ranks_like_the_truth_scores_plus_one_and_a_reversed_one_minus_one():
    result = mt.trust(synthetic(), resamples=300)
    for name, expected in (("agrees", 1.0), ("deletion_like", 1.0), ("reverses", -1.0)):
        for kind in ("spearman", "kendall"):
            interval = getattr(result[name], kind)
            assert (interval.value, interval.low, interval.high) == pytest.approx((expected,) * 3), (name, kind)
            assert interval.n == 12
    assert result["agrees"].order == result["agrees"].truth_order == ("e", "d", "c", "b", "a")
    assert result["reverses"].order == ("a", "b", "c", "d", "e") and result["reverses"].better is Direction.LOWER
    assert result["agrees"].label == "agrees"


def test_the_interval_resamples_whole_patients_as_computed_by_hand():
    scores = synthetic(noise=0.3, seed=1)       # noisy: the order changes from resample to resample
    got = mt.trust(scores, resamples=400, seed=7)["agrees"].spearman
    patients = sorted(set(scores.clusters))
    unit = np.array([patients.index(c) for c in scores.clusters])
    weights = resample_counts(len(patients), 400, 7)[:, unit]
    boot = []
    for w in weights:
        t = (w @ scores.truth) / w.sum()
        g = (w @ scores.values["agrees"]) / w.sum()
        boot.append(scipy_stats.spearmanr(t, g).statistic)
    low, high = np.quantile(boot, [0.025, 0.975])
    point = scipy_stats.spearmanr(scores.truth.mean(0), scores.values["agrees"].mean(0)).statistic
    assert (got.value, got.low, got.high) == pytest.approx((point, low, high))
    assert got.low < got.high <= 1.0


def test_scores_that_are_not_finite_are_left_out_of_a_methods_mean():
    scores = synthetic()
    values = dict(scores.values)
    values["agrees"] = values["agrees"].copy()
    values["agrees"][0, 1] = np.nan
    values["agrees"][3, 2] = np.inf
    result = mt.trust(mt.TrustScores(scores.methods, scores.image_ids, scores.clusters, scores.truth, values,
                                     scores.better), resamples=100)["agrees"]
    column = scores.values["agrees"][:, 1]
    assert result.means["b"] == pytest.approx(column[1:].mean())
    assert result.means["c"] == pytest.approx(np.delete(scores.values["agrees"][:, 2], 3).mean())
    assert result.spearman.value == pytest.approx(1.0)


def test_truth_intervals_rank_the_methods_by_relevance_mass():
    intervals = mt.truth_intervals(synthetic(), resamples=200)
    assert list(intervals) == ["e", "d", "c", "b", "a"]
    assert intervals["e"].value == pytest.approx(synthetic().truth[:, 4].mean())
    assert all(i.low <= i.value <= i.high for i in intervals.values())


def test_kendall_and_spearman_follow_scipy_with_ties_and_the_constant_convention():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 7).astype(float)
        if len(set(a)) > 1 and len(set(b)) > 1:
            assert mt.kendall_tau(a, b) == pytest.approx(scipy_stats.kendalltau(a, b).statistic)
            assert mt.spearman_rho(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)
            assert mt.spearman_rho(a, b) == pytest.approx(xai_lab.metrics.spearman(torch.tensor(a), torch.tensor(b)))
    rows_a, rows_b = rng.standard_normal((50, 6)), rng.standard_normal((50, 6))
    np.testing.assert_allclose(mt.kendall_rows(rows_a, rows_b), [mt.kendall_tau(a, b) for a, b in zip(rows_a, rows_b)])
    np.testing.assert_allclose(mt.spearman_rows(rows_a, rows_b),
                               [scipy_stats.spearmanr(a, b).statistic for a, b in zip(rows_a, rows_b)])
    assert mt.kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0 == mt.spearman_rho([2, 2, 2], [3, 1, 2])
    assert mt.kendall_tau([1, np.inf, 3], [1, 3, 2]) == pytest.approx(1.0)       # inf ranks last
    with pytest.raises(ValueError, match="NaN"):
        mt.kendall_tau([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="length"):
        mt.kendall_tau([1, 2, 3], [1, 2])


def test_from_records_keeps_complete_images_and_declared_directions():
    records = [{"image": "i1", "cluster": "p1", "method": m, "scores": {"relevance_mass": r, "sparseness": s,
                                                                          "complexity": -s}}
               for m, r, s in (("x", 0.1, 0.2), ("y", 0.3, 0.4))]
    records += [{"image": "i0", "cluster": "p0", "method": "x", "scores": {"relevance_mass": 0.5, "sparseness": 0.1,
                                                                           "complexity": 0.0}}]   # y missing on i0
    scores = mt.TrustScores.from_records(records)
    assert scores.methods == ("x", "y") and scores.image_ids == ("i1",) and scores.clusters == ("p1",)
    assert scores.metrics == ("sparseness", "complexity")
    assert scores.better == {"sparseness": Direction.HIGHER, "complexity": Direction.LOWER}
    np.testing.assert_array_equal(scores.truth, [[0.1, 0.3]])
    assert scores.select(["y", "x"]).values["sparseness"].tolist() == [[0.4, 0.2]]
    with pytest.raises(ValueError, match="Unknown metric 'sparsity'"):
        mt.TrustScores.from_records(records, metrics=["sparsity"])
    with pytest.raises(ValueError, match="no image has every method"):
        mt.TrustScores.from_records(records, methods=["x", "z"])


def test_bad_shapes_and_names_are_clear_errors():
    s = synthetic()
    with pytest.raises(ValueError, match="at least two methods"):
        mt.TrustScores(("a",), s.image_ids, s.clusters, s.truth[:, :1], {}, {})
    with pytest.raises(ValueError, match=r"agrees: expected scores \[images, methods\]"):
        mt.TrustScores(s.methods, s.image_ids, s.clusters, s.truth, {"agrees": s.truth[:3]}, {"agrees": Direction.HIGHER})
    with pytest.raises(ValueError, match="direction of each metric"):
        mt.TrustScores(s.methods, s.image_ids, s.clusters, s.truth, {"agrees": s.truth}, {})
    with pytest.raises(ValueError, match="names a metric twice"):
        mt.check_metrics(["sparseness", "sparseness"])
    with pytest.raises(TypeError, match="not the string"):
        mt.check_metrics("sparseness")


def test_every_metric_declares_the_direction_its_function_declares():
    from xai_lab.metrics import complexity, faithfulness_correlation, random_logit, road, sparseness

    assert mt.METRICS["road_morf"].better is Direction.LOWER and mt.METRICS["road_lerf"].better is Direction.HIGHER
    assert road.higher_is_better == {"morf": False, "lerf": True}
    for name, fn in (("sparseness", sparseness), ("complexity", complexity), ("random_logit", random_logit),
                     ("faithfulness_correlation", faithfulness_correlation)):
        assert (mt.METRICS[name].better is Direction.HIGHER) == fn.higher_is_better
    assert mt.METRICS["deletion"].better is Direction.LOWER and mt.METRICS["insertion"].better is Direction.HIGHER
    assert set(mt.DEFAULT_METRICS) <= set(mt.METRICS) and set(mt.DEFAULT_METHODS) <= set(xai_lab.methods())


def test_the_plots_draw_one_group_per_metric():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = synthetic()
    ax = mt.plot_trust(mt.trust(scores, resamples=50))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["agrees", "deletion_like", "reverses"]
    assert ax.get_ylim() == (-1.05, 1.05)
    ax = mt.plot_ranking(scores, "agrees")
    assert len(ax.texts) == 5 and "higher is better" in ax.get_ylabel()
    plt.close("all")


# --- the pipeline on a toy classifier that sees only the mark -----------------------------------------------------

SIZE = 64
MARK = Mark(size=8, seed=3)


class MagentaDetector(nn.Module):
    """logit(Monkeypox) = 4 * mean_pixels ReLU(R + B - 2G - 1.5), logit(Others) = 0.01: only
    magenta pixels (the mark) move the output; the gradient is zero elsewhere."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.5, -1.0, 0.5]).view(1, 3, 1, 1))
            self.conv.bias.fill_(-1.5)
            self.fc.weight.copy_(torch.tensor([[4.0], [0.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 0.01]))

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.act(self.conv(x)))))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_trust")
    rng = np.random.default_rng(0)
    records = []
    for k, patient in enumerate(("P1", "P1", "P2")):
        path = folder / f"{patient}_{k}.png"
        Image.fromarray(rng.integers(80, 176, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(path=path, label="Monkeypox", patient_id=patient, image_id=path.stem))
    classifier = Classifier("magenta", MagentaDetector(), list(msld.CATEGORIES), "act", (0.5,) * 3, (0.5,) * 3)
    return classifier, records


def test_the_gradient_of_a_mark_detector_is_the_truth_and_deletion_agrees(toy):
    classifier, records = toy
    settings = mt.Settings(step=64, batch_size=8)
    scores = mt.per_image_scores(classifier, records, ["saliency", "random", "sobel"], ["deletion", "sparseness"],
                                 settings, MARK, seed=0)
    assert scores.methods == ("saliency", "random", "sobel") and scores.clusters == ("P1", "P1", "P2")
    assert scores.truth.shape == (3, 3) and scores.image_ids[0] == "0000/P1_0"
    np.testing.assert_allclose(scores.truth[:, 0], 1.0)            # |gradient| lives on the mark alone
    assert (scores.truth[:, 1] < 0.2).all()                         # a random map: about the mark's area, 1/64
    assert (scores.values["deletion"][:, 0] < scores.values["deletion"][:, 1]).all()   # the mark deleted first
    result = mt.trust(scores, resamples=50)
    assert result["deletion"].order[0] == result["deletion"].truth_order[0] == "saliency"
    # the per-image score is the metric's own value on the method's map
    x = shortcut.inputs(classifier, records[:1], shortcut.marked(MARK, msld.CATEGORIES))
    e = xai_lab.explain(classifier, x, "saliency", target=0, seed=0, progress=False)
    assert scores.values["sparseness"][0, 0] == pytest.approx(float(xai_lab.metrics.sparseness(e.saliency)[0]))
    one = mt.score_image(classifier, x[0], shortcut.mark_mask(records[0], MARK, SIZE, SIZE), "saliency",
                         metrics=["deletion"], settings=settings, target="Monkeypox")
    assert one == {"relevance_mass": pytest.approx(1.0), "deletion": pytest.approx(scores.values["deletion"][0, 0])}


def test_score_image_refuses_bad_input(toy):
    classifier, records = toy
    x = shortcut.inputs(classifier, records[:2], None)
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    with pytest.raises(ValueError, match="one image at a time"):
        mt.score_image(classifier, x, mask, "saliency", metrics=["sparseness"])
    with pytest.raises(ValueError, match="mask must be"):
        mt.score_image(classifier, x[0], mask[:4], "saliency", metrics=["sparseness"])
    with pytest.raises(ValueError, match="at least two methods"):
        mt.per_image_scores(classifier, records, ["saliency"], ["sparseness"])
    with pytest.raises(TypeError, match="not the string"):
        mt.per_image_scores(classifier, records, "saliency", ["sparseness"])


# --- the planted-shortcut model -----------------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get(xai_lab.data.DATA_ENV), reason=f"{xai_lab.data.DATA_ENV} is not set")
@pytest.mark.slow
def test_a_small_run_on_the_shortcut_model():
    """2 images, 3 methods, 2 metrics (the model is trained and cached on first use)."""
    model, _ = shortcut.train_marked(shortcut.marked(Mark(), ("Monkeypox",)), copies=2)
    records = shortcut.one_per_patient(msld.split_records()["test"], "Monkeypox", limit=2)
    scores = mt.per_image_scores(model, records, ["gradcam", "saliency", "random"], ["sparseness", "deletion"],
                                 mt.QUICK_SETTINGS)
    assert scores.truth.shape == (2, 3) and np.isfinite(scores.truth).all()
    area = Mark().size ** 2 / msld.IMAGE_SIZE ** 2
    assert scores.truth[:, 0].mean() > 2 * area          # Grad-CAM finds the mark on this model
    result = mt.trust(scores, resamples=200)
    for r in result.values():
        assert -1 <= r.spearman.low <= r.spearman.value <= r.spearman.high <= 1
        assert set(r.order) == {"gradcam", "saliency", "random"}
    assert result["sparseness"].truth_order[0] == "gradcam"


def test_a_stored_record_is_recomputed_and_a_changed_score_is_caught(toy):
    classifier, records = toy
    settings = mt.Settings(step=64, batch_size=8)
    config = {"mark": {"size": MARK.size, "color": list(MARK.color), "seed": MARK.seed}, "target": "Monkeypox",
              "seed": 3, "metric_settings": settings.as_dict()}
    x = shortcut.inputs(classifier, records[1:2], shortcut.marked(MARK, msld.CATEGORIES))
    scores = mt.score_image(classifier, x, shortcut.mark_mask(records[1], MARK, SIZE, SIZE), "random",
                            metrics=["deletion", "sparseness"], settings=settings, seed=4)
    record = {"image": "0001/" + records[1].image_id, "index": 1, "method": "random", "options": {}, "scores": scores}
    assert mt.recompute(classifier, record, config, pool=records) < 1e-6       # the seed: config's + the index
    assert mt.recompute(classifier, record, config, ["sparseness"], pool=records) < 1e-6
    changed = {**record, "scores": {**scores, "deletion": scores["deletion"] + 0.01}}
    with pytest.raises(ValueError, match="deletion is .* now"):
        mt.recompute(classifier, changed, config, pool=records)
    with pytest.raises(ValueError, match="no scores of"):
        mt.recompute(classifier, record, config, ["insertion"], pool=records)
    with pytest.raises(ValueError, match="not .*in the pool"):
        mt.recompute(classifier, {**record, "image": "0001/nowhere"}, config, pool=records)


def test_a_metric_trust_survives_its_dict():
    scores = mt.TrustScores(("a", "b", "c"), ("1", "2"), ("P1", "P2"), np.array([[0.9, 0.5, 0.1], [0.8, 0.4, 0.2]]),
                            {"sparseness": np.array([[3.0, 2.0, 1.0], [2.0, 3.0, 1.0]])},
                            {"sparseness": Direction.HIGHER})
    result = mt.trust(scores, resamples=50)["sparseness"]
    assert mt.MetricTrust.from_dict(result.as_dict()) == result

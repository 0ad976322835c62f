"""The ROAR experiment: each record's map in the transform, and the whole experiment on 16 MSLD
images (one per patient) with a short training; paired differences and the summary."""

import pytest
import torch

from xai_lab.experiments import roar as roar_module
from xai_lab.experiments.roar import (
    ROAR_METHODS,
    paired_difference,
    removal_transform,
    roar,
    saliency_maps,
    subsample_split,
    summarize,
)
from xai_lab.metrics.removal import removed_count
from xai_lab.models import msld
from xai_lab.stats import Interval

MAP3 = torch.tensor([[0.7, 0.1, 0.6],
                     [0.2, 0.9, 0.3],
                     [0.5, 0.4, 0.8]])


def image3():
    """Channel c holds c * 10 + pixel index: channel means 4, 14, 24."""
    return torch.stack([torch.arange(9.0).view(3, 3) + 10 * c for c in range(3)])


@pytest.mark.parametrize("fraction", [-0.1, 1.5, "half"])
def test_the_transform_checks_the_fraction_at_once(fraction):
    with pytest.raises(ValueError, match="fraction"):
        removal_transform({}, fraction)


def test_the_transform_finds_each_records_map():
    class Record:
        def __init__(self, path):
            self.path = path

    maps = {"a.jpg": MAP3, "b.jpg": 1 - MAP3}
    transform = removal_transform(maps, 1 / 9, tie_seed=None)
    assert transform(image3(), Record("a.jpg"))[0, 1, 1] == 4.0
    assert transform(image3(), Record("b.jpg"))[0, 0, 1] == 4.0   # b's top pixel is a's last, (0, 1)
    with pytest.raises(KeyError, match="No saliency map for c.jpg"):
        transform(image3(), Record("c.jpg"))


# ----------------------------------------------------------------------------- with the model

SETTINGS = msld.TrainSettings(copies=1, max_steps=30, patience=10, val=0.25, test=0.25)


@pytest.fixture(scope="module")
def records(msld_one_image_patients):
    return msld_one_image_patients


@pytest.fixture(scope="module")
def classifier(records):
    model, _ = msld.train(SETTINGS, records, progress=False)
    return msld.as_classifier(model)


@pytest.fixture(scope="module")
def maps(classifier, records):
    return saliency_maps(classifier, records, ["random", "gradcam"], seed=0, batch_size=8, progress=False)


def test_random_maps_are_seeded_and_reproducible(classifier, records, maps):
    again = saliency_maps(classifier, records[:8], ["random"], seed=0, batch_size=8, progress=False)
    other = saliency_maps(classifier, records[:8], ["random"], seed=1, batch_size=8, progress=False)
    key = str(records[0].path)
    assert torch.equal(maps["random"][key], again["random"][key])
    assert not torch.equal(maps["random"][key], other["random"][key])
    pixels = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    removed = [removal_transform(m["random"], 0.5)(pixels, records[0]) for m in (maps, again, other)]
    assert torch.equal(removed[0], removed[1]) and not torch.equal(removed[0], removed[2])
    assert set(maps) == {"random", "gradcam", "_seconds"} and len(maps["gradcam"]) == len(records)
    assert maps["gradcam"][key].shape == (224, 224)


def test_gradcam_maps_explain_the_true_label(classifier, records, maps):
    import xai_lab

    monkeypox, others = records[0], records[-1]
    x = torch.stack([classifier.preprocess(r.path) for r in (monkeypox, others)])
    for record, xi, label in zip((monkeypox, others), x, (0, 1)):
        e = xai_lab.explain(classifier, xi, method="gradcam", target=label)
        assert torch.allclose(maps["gradcam"][str(record.path)], e.saliency[0], atol=1e-5)


@pytest.fixture(scope="module")
def rows(classifier, records, maps):
    return roar(classifier, records, methods=["random", "gradcam"], ks=[0, 50, 90], settings=SETTINGS, maps=maps,
                n_boot=200, progress=False)


def test_roar_gives_one_row_per_method_and_k_with_intervals(rows):
    assert [(r["method"], r["k"]) for r in rows] == [(m, k) for m in ("random", "gradcam") for k in (0, 50, 90)]
    for row in rows:
        assert row["test_images"] == 4 and len(row["retrained_probability"]) == 4
        for curve in ("retrained", "not_retrained"):
            for metric in ("accuracy", "balanced_accuracy", "roc_auc"):
                value, low, high = (row[f"{curve}_{metric}{s}"] for s in ("", "_low", "_high"))
                assert 0 <= low <= value <= high <= 1, (row["method"], row["k"], curve, metric)
    assert rows[0]["removed_pixels"] == 0 and rows[1]["removed_pixels"] == removed_count(0.5, 224, 224)
    # k = 0 is trained once and shared; nothing is removed, so the original classifier is as on clean images
    assert {**rows[0], "method": "gradcam"} == rows[3]


def test_no_retraining_is_the_original_classifier_on_edited_test_images(classifier, records, maps, rows):
    test = msld.split_records(records, SETTINGS)["test"]
    clean = msld.predict(classifier, test, progress=False)
    assert torch.allclose(torch.tensor(rows[0]["not_retrained_probability"]), clean.float(), atol=1e-5)
    edited = msld.predict(classifier, test, progress=False, transform=removal_transform(maps["gradcam"], 0.9))
    assert torch.allclose(torch.tensor(rows[5]["not_retrained_probability"]), edited.float(), atol=1e-5)


def test_roar_is_deterministic(classifier, records, maps, rows):
    again = roar(classifier, records, methods=["gradcam"], ks=[50], settings=SETTINGS, maps=maps, n_boot=200,
                 progress=False)
    timing = ("train_seconds", "seconds")
    assert ({k: v for k, v in again[0].items() if k not in timing}
            == {k: v for k, v in rows[4].items() if k not in timing})


def test_paired_difference_of_a_method_with_itself_is_zero(records, rows):
    test = msld.split_records(records, SETTINGS)["test"]
    same = paired_difference(rows, test, "gradcam", "gradcam", 90, n_boot=200)
    assert (same.value, same.low, same.high, same.n) == (0, 0, 0, len(test))
    diff = paired_difference(rows, test, "gradcam", "random", 90, n_boot=200)
    accuracy = {r["method"]: r["retrained_accuracy"] for r in rows if r["k"] == 90}
    assert diff.value == pytest.approx(accuracy["gradcam"] - accuracy["random"])
    assert diff.low <= diff.value <= diff.high
    with pytest.raises(ValueError, match="No row for method 'rise' at k=90"):
        paired_difference(rows, test, "rise", "random", 90)


def test_bad_arguments_are_refused(classifier, records, maps):
    with pytest.raises(ValueError, match="Unknown method 'gradcamm'"):
        roar(classifier, records, methods=["gradcamm"], ks=[10], maps=maps)
    with pytest.raises(ValueError, match="percentage in \\[0, 100\\]"):
        roar(classifier, records, methods=["random"], ks=[0.5, 150], maps=maps)
    with pytest.raises(ValueError, match="twice"):
        roar(classifier, records, methods=["random", "random"], ks=[10], maps=maps)
    with pytest.raises(ValueError, match="maps lacks 8 image"):
        partial = {"random": dict(list(maps["random"].items())[:8])}
        roar(classifier, records, methods=["random"], ks=[10], maps=partial, settings=SETTINGS)
    assert ROAR_METHODS == ("gradcam", "fullgrad", "saliency", "rise", "random")


def test_summarize_names_the_method_whose_removal_hurts_most(records, rows):
    test = msld.split_records(records, SETTINGS)["test"]
    found = summarize(rows, test, n_boot=200)
    assert found["ks"] == [50, 90] and found["methods"] == ["random", "gradcam"]
    for curve in ("retrained", "not_retrained"):
        part = found[curve]
        mean = {m: sum(r[f"{curve}_accuracy"] for r in rows if r["method"] == m and r["k"] > 0) / 2
                for m in ("random", "gradcam")}
        assert part["mean_accuracy"] == pytest.approx(mean)
        assert part["most_harmful"] == min(mean, key=mean.get)
        other = "gradcam" if part["most_harmful"] == "random" else "random"
        versus = part["versus"][other]
        assert len(versus["differences"]) == 2
        assert set(versus["differences"][0]) == {"value", "low", "high", "n", "level"}
        assert set(versus["separated_at"]) <= {50, 90}
    with pytest.raises(ValueError, match="every method needs every k"):
        summarize(rows[:-1], test)
    text = roar_module.describe(found)
    assert text.count("\n") == 5 and text.count("removal hurts most") == 2
    versus = next(iter(found["retrained"]["versus"].values()))
    assert Interval(**versus["differences"][0]).format(3, signed=True) in text


def test_curves_and_removal_figures(records, rows, maps):
    import matplotlib.pyplot as plt

    test = msld.split_records(records, SETTINGS)["test"]
    fig = roar_module.plot_curves(rows, test)
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()][:2] == ["random", "gradcam"]
    assert list(left.get_lines()[1].get_ydata()) == [r["retrained_accuracy"] for r in sorted(
        (r for r in rows if r["method"] == "gradcam"), key=lambda r: r["k"])]
    plt.close(fig)
    pixels = [msld.load_pixels(r) for r in test[:2]]
    fig = roar_module.plot_removal(pixels, {m: [maps[m][str(r.path)] for r in test[:2]] for m in ("random", "gradcam")},
                                   (10, 90))
    assert len(fig.axes) == 2 * 2 * 2 and fig.axes[0].get_title() == "random" and "90 %" in fig.axes[2].get_ylabel()
    plt.close(fig)


def test_a_subsample_of_the_training_patients_keeps_the_test_patients(classifier, records, maps):
    split = msld.split_records(records, SETTINGS)
    sub = subsample_split(split, 0.5, seed=0)
    assert sub["test"] == split["test"] and subsample_split(split, 0.5, seed=0) == sub
    for part, per_label in (("train", 2), ("val", 1)):          # of 4 and 2 patients per label
        assert set(sub[part]) <= set(split[part])
        assert sorted(r.label for r in sub[part]) == ["Monkeypox"] * per_label + ["Others"] * per_label
    rows = roar(classifier, methods=["random"], ks=[50], settings=SETTINGS, maps=maps, n_boot=50, progress=False,
                split=sub)
    assert rows[0]["train_images"] == 4 and rows[0]["val_images"] == 2 and rows[0]["test_images"] == 4
    with pytest.raises(ValueError, match="fraction must be a number in \\(0, 1\\]"):
        subsample_split(split, 0)

"""The monkeypox studies: data summaries, the split leak on synthetic features, thresholds, the
chosen cases, the image edits and the color statistics on toy images."""
import numpy as np
import pytest
import torch
from PIL import Image

from xai_lab.data import ImageRecord
from xai_lab.experiments import monkeypox
from xai_lab.metrics import relevance_mass
from xai_lab.models import msld
from xai_lab.stats import Interval


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Twelve patients per class, the first three of each with two images; Monkeypox images dark
    and reddish, Others light: the color statistics separate the classes."""
    folder = tmp_path_factory.mktemp("toy_msld")
    rng = np.random.default_rng(0)
    out = []
    for label, prefix, level in (("Monkeypox", "M", 0.3), ("Others", "O", 0.7)):
        for p in range(12):
            for k in range(2 if p < 3 else 1):
                pixels = np.clip(level + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1)
                if label == "Monkeypox":
                    pixels[..., 0] = np.clip(pixels[..., 0] + 0.2, 0, 1)
                path = folder / f"{prefix}{p}_{k}.png"
                Image.fromarray((pixels * 255).astype(np.uint8)).save(path)
                out.append(ImageRecord(path=path, label=label, patient_id=f"{prefix}{p}", image_id=f"{prefix}{p}_{k}"))
    return out


def test_summaries_count_images_and_patients(records):
    summary = monkeypox.dataset_summary(records)
    assert summary["Monkeypox"]["images"] == 15 and summary["Monkeypox"]["patients"] == 12
    assert summary["all"]["patients with one image"] == 18 and summary["all"]["images per patient (max)"] == 2
    assert summary["all"]["images"] == len(records)
    assert sorted(monkeypox.images_per_patient(records)["Others"]) == [1] * 9 + [2] * 3
    split = {"train": records[:20], "test": records[20:]}
    table = monkeypox.split_summary(split)
    assert table["train"]["images"] == 20 and table["test"]["Others images"] == 10


def test_image_split_is_stratified_and_leaks_patients(records):
    split = monkeypox.image_split(records, seed=0)
    assert sorted(r.image_id for part in split.values() for r in part) == sorted(r.image_id for r in records)
    assert [sum(r.label == "Monkeypox" for r in split[n]) for n in ("test", "val")] == [3, 3]
    assert monkeypox.image_split(records, seed=0) == split
    assert monkeypox.patients_in_several_splits(monkeypox.split_by("by patient", records, 0)) == 0
    with pytest.raises(ValueError, match="kind"):
        monkeypox.split_by("by day", records, 0)


def test_nearest_neighbors_find_the_same_patient(records):
    """Features that encode the patient: every test image whose patient is in training finds it."""
    patients = sorted({r.patient_id for r in records})
    features = torch.stack([torch.nn.functional.one_hot(torch.tensor(patients.index(r.patient_id)), len(patients)).float()
                            + 0.01 * k for k, r in enumerate(records)])
    split = monkeypox.image_split(records, seed=1)
    near = monkeypox.nearest_neighbors(features, records, split)
    train_patients = {r.patient_id for r in split["train"]}
    assert near.n_test == len(split["test"])
    assert near.seen == sum(r.patient_id in train_patients for r in split["test"]) == near.same_patient


def test_roc_auc_and_balanced_accuracy():
    positive = [True, True, False, False]
    assert monkeypox.roc_auc(positive, [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.875)  # one tie: 1/2
    assert monkeypox.balanced_accuracy(positive, [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.75)
    assert monkeypox.balanced_accuracy(positive, [0.9, 0.4, 0.3, 0.1], threshold=0.35) == pytest.approx(1.0)
    assert monkeypox.best_threshold(positive, [0.9, 0.4, 0.3, 0.1]) == pytest.approx(0.4)


def test_split_leak_on_features_that_carry_the_label(records):
    labels = msld.label_indices(records).float()
    noise = torch.randn(len(records), 3, generator=torch.Generator().manual_seed(0))
    features = torch.cat([10 * torch.stack([labels, 1 - labels], 1), noise], 1)
    settings = msld.TrainSettings(max_steps=50, patience=10)
    leak = monkeypox.split_leak(features, records, settings, seeds=range(3))
    assert leak.seeds == (0, 1, 2) and leak.score == "test ROC AUC"
    assert all(v == pytest.approx(1.0) for kind in monkeypox.SPLITS for v in leak.scores[kind])
    assert isinstance(leak.difference, Interval) and leak.difference.value == pytest.approx(0.0)
    assert leak.mean("by patient").value == pytest.approx(1.0)
    knn = monkeypox.split_leak(features, records, settings, seeds=range(2), scorer="nearest_neighbor")
    assert knn.score == "test accuracy" and knn.scores["by image"] == (1.0, 1.0)
    with pytest.raises(ValueError, match="scorer"):
        monkeypox.split_leak(features, records, settings, scorer="svm")


def test_pick_cases():
    p = np.array([0.95, 0.6, 0.3, 0.2, 0.8, 0.05])
    is_pos = np.array([True, True, True, False, False, False])
    cases = monkeypox.pick_cases(p, is_pos)
    assert cases == {"right, Monkeypox": (0, "most confident"), "right, Others": (5, "most confident"),
                     "wrong, Monkeypox": (2, "most confident"), "wrong, Others": (4, "most confident")}
    fallback = monkeypox.pick_cases(np.array([0.95, 0.6, 0.2, 0.1]), np.array([True, True, False, False]))
    assert fallback["wrong, Monkeypox"] == (1, "no mistake: least confident")
    assert fallback["wrong, Others"] == (2, "no mistake: least confident")


def test_border_band_hide_and_brightness():
    band = monkeypox.border_band(224, 28)
    assert float(band.float().mean()) == pytest.approx(1 - (168 / 224) ** 2)
    uniform = torch.ones(1, 224, 224)
    assert float(relevance_mass(uniform, band)[0]) == pytest.approx(float(band.float().mean()), abs=1e-6)
    with pytest.raises(ValueError, match="width"):
        monkeypox.border_band(10, 5)
    pixels = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    hidden = monkeypox.hide(band)(pixels, None)
    assert torch.equal(hidden[:, ~band], pixels[:, ~band])
    assert torch.allclose(hidden[:, band], pixels.mean(dim=(1, 2))[:, None].expand(3, int(band.sum())))
    assert torch.allclose(monkeypox.scale_brightness(0.5)(pixels, None), pixels * 0.5)


def test_image_statistics_and_their_aucs(records):
    stats = monkeypox.image_statistics(records)
    assert list(stats) == list(monkeypox.STATISTICS) and all(v.shape == (len(records),) for v in stats.values())
    dark = np.array([r.label == "Monkeypox" for r in records])
    assert stats["lightness L*"][dark].max() < stats["lightness L*"][~dark].min()
    assert stats["a* (red)"][dark].mean() > stats["a* (red)"][~dark].mean()
    split = monkeypox.split_by("by patient", records, 0, val=0.25, test=0.25)
    aucs = monkeypox.statistic_aucs(stats, records, split, n_boot=200)
    assert aucs["lightness L*"].high_means == "Others" and aucs["lightness L*"].roc_auc.value == pytest.approx(1.0)
    assert aucs["all (logistic regression)"].high_means == "" and aucs["all (logistic regression)"].roc_auc.value > 0.9
    assert aucs["lightness L*"].roc_auc.n == len(split["test"])


def test_edit_effects_of_a_classifier_that_reads_the_brightness(records):
    """A toy classifier whose P(Monkeypox) falls with the mean brightness: darkening raises it."""
    edits = {"as it is": None, "darker": monkeypox.scale_brightness(0.5)}
    effects = monkeypox.edit_effects(_brightness_classifier(), records, edits, n_boot=100)
    assert effects["as it is"].mean_shift == 0 and effects["as it is"].flips == 0
    dark = effects["darker"]
    assert dark.min_shift >= 0 and dark.mean_shift > 0 and dark.flips == sum(r.label == "Others" for r in records)
    assert set(dark.row()) == {"roc_auc", "balanced_accuracy", "mean P(positive)", "mean shift", "shifts from",
                               "shifts to", "flips"}


def test_patients_by_image_count_and_sample_patients(records):
    assert monkeypox.patients_by_image_count(records) == {1: {"Monkeypox": 9, "Others": 9}, 2: {"Monkeypox": 3, "Others": 3}}
    sample = monkeypox.sample_patients(records, per_class=4, seed=0)
    assert [r.label for r in sample] == ["Monkeypox"] * 4 + ["Others"] * 4
    assert len({r.patient_id for r in sample}) == 8 and all(r.image_id.endswith("_0") for r in sample)  # first image
    assert [r.image_id for r in monkeypox.sample_patients(records, 4, seed=0)] == [r.image_id for r in sample]
    assert {r.image_id for r in monkeypox.sample_patients(records, 4, seed=1)} != {r.image_id for r in sample}


class _Brightness(torch.nn.Module):
    """P(Monkeypox) falls with the mean brightness: logits (z, -z), z = scale * (0.5 - mean pixel)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        logit = self.scale * (0.5 - x.mean(dim=(1, 2, 3)))
        return torch.stack([logit, -logit], 1)


def _brightness_classifier():
    from xai_lab import Classifier

    return Classifier("brightness", _Brightness(), list(msld.CATEGORIES), "scale", (0.0,) * 3, (1.0,) * 3)


def test_case_study_of_a_classifier_that_reads_the_brightness(records):
    """The toy classifier ranks every dark (Monkeypox) image above every light one: no mistake,
    so the "wrong" cases fall back to the least confident right answers."""
    study = monkeypox.case_study(_brightness_classifier(), records, n_boot=100)
    assert study.roc_auc.value == 1.0 and study.roc_auc.n == len(records)
    assert torch.equal(study.predicted, study.true) and study.mistakes == []
    assert study.true.tolist() == [0] * 15 + [1] * 15 and study.is_positive.sum() == 15
    assert study.cases["wrong, Monkeypox"][1] == "no mistake: least confident"
    table = study.case_table()
    assert list(table) == list(study.cases) and table["right, Others"]["predicted"] == "Others"
    assert study.inputs(study.chosen).shape == (4, 3, 224, 224)
    means = study.by_class(study.is_positive.astype(float), n_boot=100)
    assert means["Monkeypox"].value == 1 and means["Others"].value == 0 and means["Others"].n == 15
    # the input gradient of a mean is the same at every pixel: the band gets its area share
    band = monkeypox.border_band(224, 28)
    shares = study.region_shares(band, ["saliency"])
    assert set(shares) == {("saliency", "Monkeypox"), ("saliency", "Others")}
    assert all(s.value == pytest.approx(float(band.float().mean()), abs=1e-5) for s in shares.values())


def test_two_class_identities_hold_for_opposite_head_rows():
    from xai_lab import Classifier

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.classifier = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.classifier(torch.relu(self.features(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.classifier.weight[1] = -net.classifier.weight[0]
        net.classifier.bias[1] = -net.classifier.bias[0]
    classifier = Classifier("toy", net, list(msld.CATEGORIES), "features", (0.0,) * 3, (1.0,) * 3, head="classifier")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    predicted, true = torch.tensor([0, 1]), torch.tensor([1, 0])
    errors = monkeypox.two_class_identities(classifier, x, predicted, true, window=8, stride=4)
    assert max(errors.values()) < 1e-5, errors
    with torch.no_grad():
        net.classifier.weight[1] += 0.5  # rows no longer opposite: the head and saliency identities break
    head, occlusion, saliency = monkeypox.two_class_identities(classifier, x, predicted, true, window=8, stride=4).values()
    assert head > 0.1 and saliency > 1e-3
    assert occlusion < 1e-5  # p_Others = 1 - p_Monkeypox holds for any two-class softmax

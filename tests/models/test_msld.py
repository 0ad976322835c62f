"""The MSLD classifier: deterministic training on training patients only, the cache, the
patient-bootstrap figures (by hand and against scikit-learn), the benchmark's --data-dir."""
import csv
import importlib.util
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import xai_lab
from xai_lab import data, stats
from xai_lab.models import _lite0_imagenet_weights, cache, msld
from xai_lab.models.cache import CacheWarning
from xai_lab.models.msld import training

ROOT = Path(__file__).resolve().parents[2]
# Four training, two validation and two test patients per class, one image each; each training
# image as is and one augmented view: seconds to train.
TINY = msld.TrainSettings(copies=2, max_steps=30, patience=10, val=0.25, test=0.25)


@pytest.fixture(scope="module")
def records(msld_one_image_patients):
    return msld_one_image_patients


@pytest.fixture(scope="module")
def spied_training(records):
    """One tiny training, with the records every feature extraction was given."""
    seen = []
    original = training.pooled_features

    def spy(backbone, recs, *args, **kwargs):
        seen.extend(recs)
        return original(backbone, recs, *args, **kwargs)

    training.pooled_features = spy
    try:
        threads = torch.get_num_threads()
        model, info = msld.train(TINY, records, progress=False)
        assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    finally:
        training.pooled_features = original
    return model, info, seen


def test_training_reads_only_training_and_validation_patients(records, spied_training):
    _, info, seen = spied_training
    split = msld.split_records(records, TINY)
    test_patients = {r.patient_id for r in split["test"]}
    assert len(test_patients) == 4
    assert {r.patient_id for r in seen} == set(info["train_patients"]) | set(info["val_patients"])
    assert not {r.patient_id for r in seen} & test_patients
    assert info["train_images"] == 8 and info["val_images"] == 4
    assert len(seen) == 2 * 8 + 4  # training images as they are and augmented, validation images once


def test_training_is_deterministic_for_a_seed(records, spied_training):
    model, info, _ = spied_training
    again, info_again = msld.train(TINY, records, progress=False)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert info_again["step"] == info["step"]
    # the seed drives the augmented views (the training images as they are do not depend on it)
    with msld.deterministic(1):
        views = [msld.pooled_features(model, records[:1], TINY, torch.Generator().manual_seed(seed))
                 for seed in (0, 0, 1)]
    assert torch.equal(views[0], views[1]) and not torch.allclose(views[0], views[2])
    # the backbone is the ImageNet one, only the head is new
    assert model.classifier.weight.shape == (2, 1280)
    assert torch.equal(model.features.head.conv.weight, _lite0_imagenet_weights()["features.head.conv.weight"])


def test_cache_is_reused_and_keyed_by_data_settings_and_version(records, spied_training, tmp_path, monkeypatch):
    trained, train_info, _ = spied_training
    calls = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: calls.append(args) or (trained, dict(train_info)))
    first, info = msld.fit_or_load(TINY, records, cache_dir=tmp_path, progress=False)
    assert calls == [(TINY, records, False)]
    assert not info["cached"] and Path(info["path"]).parent == tmp_path

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the model is cached")

    monkeypatch.setattr(training, "train", no_training)
    second, info2 = msld.fit_or_load(TINY, records, cache_dir=tmp_path)
    assert info2["cached"] and info2["path"] == info["path"] and info2["step"] == info["step"]
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), second.model.state_dict().values()))
    assert second.categories == ["Monkeypox", "Others"] and second.head == "classifier"

    key = msld.cache_key(TINY, records)
    assert key == info["key"] == msld.cache_key(replace(TINY), list(records))
    assert msld.cache_key(replace(TINY, seed=1), records) != key
    assert msld.cache_key(replace(TINY, weight_decay=TINY.weight_decay / 2), records) != key
    assert msld.cache_key(TINY, records[1:]) != key  # a training or validation image less
    monkeypatch.setattr(xai_lab, "__version__", "0.0.0-other")
    assert msld.cache_key(TINY, records) != key


def test_a_damaged_cached_model_is_reported_and_retrained(records, spied_training, tmp_path, monkeypatch):
    """Truncated, empty and foreign files in the cache: a CacheWarning naming the file, then
    training again (never a PytorchStreamReader or EOFError traceback)."""
    trained, train_info, _ = spied_training
    calls = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: calls.append(1) or (trained, dict(train_info)))
    path = Path(msld.fit_or_load(TINY, records, cache_dir=tmp_path)[1]["path"])
    whole = path.read_bytes()
    damages = {"truncated": whole[: len(whole) // 2], "empty": b""}
    for name, content in damages.items():
        path.write_bytes(content)
        with pytest.warns(CacheWarning, match=str(path)):
            _, info = msld.fit_or_load(TINY, records, cache_dir=tmp_path)
        assert not info["cached"], name
        assert path.read_bytes() == whole                     # saved again, whole
    for checksum in (True, False):                            # with its checksum or an old file without one
        torch.save({"state_dict": {"conv.weight": torch.zeros(1)}, "info": "{}"}, path)
        (path.parent / (path.name + ".sha256")).unlink(missing_ok=True)
        if checksum:
            cache.save({"state_dict": {"conv.weight": torch.zeros(1)}, "info": "{}"}, path)
        with pytest.warns(CacheWarning, match="missing") as caught:
            _, info = msld.fit_or_load(TINY, records, cache_dir=tmp_path)
        message = str(caught[0].message)
        assert str(path) in message and "unexpected: conv.weight" in message and len(message) < 1000
        assert not info["cached"]
    assert len(calls) == 1 + len(damages) + 2
    _, info = msld.fit_or_load(TINY, records, cache_dir=tmp_path)
    assert info["cached"]


def test_scores_by_hand():
    positive = torch.tensor([True, True, False, False])
    score = torch.tensor([0.9, 0.4, 0.6, 0.2])
    res = msld.scores(positive, score, ["a", "a", "b", "c"], n_boot=500, seed=0)
    # pairs (pos, neg): 0.9>0.6, 0.9>0.2, 0.4<0.6, 0.4>0.2 -> 3/4; predictions 1,0,1,0
    assert res.roc_auc.value == pytest.approx(0.75)
    assert res.accuracy.value == pytest.approx(0.5)
    assert res.balanced_accuracy.value == pytest.approx(0.5)
    assert res.confusion == [[1, 1], [1, 1]]
    assert res.n_images == 4 and res.n_patients == 3
    for name in msld.METRICS:
        i = res.metric(name)
        assert i.low <= i.value <= i.high and i.low < i.high and i.n == 4
    # a draw without patient "a" has no positive: no AUC; P(no "a" in 3 draws) = 8/27
    assert 0.2 * 500 < res.undefined_draws < 0.4 * 500
    # the draws are those of xai_lab.stats (patients a, b, c in sorted order); the ones without
    # "a" (no positive) or with "a" alone (no negative) are left out of every metric, accuracy too
    counts = stats.resample_counts(3, 500, seed=0)
    kept = (counts[:, 0] > 0) & (counts[:, 1:].sum(1) > 0)
    assert res.undefined_draws == int((~kept).sum())
    weights = counts[kept][:, [0, 0, 1, 2]]
    accuracy = (weights * np.array([1, 0, 0, 1])).sum(1) / weights.sum(1)
    assert (res.accuracy.low, res.accuracy.high) == pytest.approx(tuple(np.quantile(accuracy, [0.025, 0.975])))
    assert msld.scores(positive, score, ["a", "a", "b", "c"], n_boot=500, seed=0) == res


def test_perfect_predictions_and_ties():
    positive = torch.tensor([True, True, True, False, False])
    res = msld.scores(positive, torch.tensor([0.9, 0.8, 0.7, 0.1, 0.3]), list("abcde"), n_boot=200)
    for name in msld.METRICS:
        assert (res.metric(name).value, res.metric(name).low, res.metric(name).high) == (1, 1, 1)
    tied = msld.scores(positive, torch.full((5,), 0.5), list("abcde"), n_boot=10)
    assert tied.roc_auc.value == 0.5 and tied.confusion == [[3, 0], [2, 0]]
    with pytest.raises(ValueError, match="both classes"):
        msld.scores(positive[:3], torch.ones(3), list("abc"))


def test_weighted_metrics_are_those_of_the_resampled_set():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    g = torch.Generator().manual_seed(3)
    positive = torch.rand(12, generator=g) < 0.5
    positive[:2] = torch.tensor([True, False])
    score = (torch.rand(12, generator=g) * 4).round() / 4  # ties included
    predicted = score >= 0.5
    weights = torch.randint(0, 3, (5, 12), generator=g)
    weights[:, :2] = 1
    got = msld.weighted_metrics(weights, positive, score, predicted)
    for b in range(5):
        idx = torch.arange(12).repeat_interleave(weights[b])
        y, s, p = positive[idx].numpy(), score[idx].numpy(), predicted[idx].numpy()
        assert float(got["roc_auc"][b]) == pytest.approx(roc_auc_score(y, s))
        assert float(got["accuracy"][b]) == pytest.approx(accuracy_score(y, p))
        assert float(got["balanced_accuracy"][b]) == pytest.approx(balanced_accuracy_score(y, p))


def test_augment_is_driven_by_the_generator():
    image = torch.rand(3, 200, 260, generator=torch.Generator().manual_seed(0))
    a = msld.augment(image, torch.Generator().manual_seed(5))
    b = msld.augment(image, torch.Generator().manual_seed(5))
    c = msld.augment(image, torch.Generator().manual_seed(6))
    assert a.shape == (3, 224, 224) and torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        top, left, h, w = msld.random_crop_box(200, 260, g)
        assert 0 <= top and top + h <= 200 and 0 <= left and left + w <= 260
        assert 0.5 * 200 * 260 * 0.95 <= h * w <= 200 * 260


def test_registered_model_with_random_weights():
    assert "msld_efficientnet_lite0" in xai_lab.model_names()
    clf = xai_lab.load_model("msld_efficientnet_lite0", weights=None)
    assert clf.categories == ["Monkeypox", "Others"]
    assert (clf.default_layer, clf.head, clf.mean, clf.std) == ("features", "classifier", (0.5,) * 3, (0.5,) * 3)
    image = (torch.rand(224, 224, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    x = clf.preprocess(image)
    assert torch.allclose(clf.to_pixels(x), torch.from_numpy(image).permute(2, 0, 1) / 255, atol=1e-6)  # no crop
    assert clf.model(x[None]).shape == (1, 2)


def _benchmark():
    spec = importlib.util.spec_from_file_location("msld_classifier", ROOT / "benchmarks" / "msld_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_data_dir_reads_the_whole_folder(records, spied_training, tmp_path):
    chosen = [r for r in records if r.label == "Monkeypox"][:2] + [r for r in records if r.label == "Others"][:2]
    with open(tmp_path / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "label", "patient_id", "sha256"])
        for r in chosen:
            (tmp_path / "images" / r.label).mkdir(parents=True, exist_ok=True)
            shutil.copy(r.path, tmp_path / "images" / r.label / f"{r.image_id}.jpg")
            writer.writerow([r.image_id, r.label, r.patient_id, data._sha256(r.path)])
    bench = _benchmark()
    args = bench.parse_args(["--data-dir", str(tmp_path), "--n-boot", "50"])
    found, description = bench.evaluation_records(args)
    assert [(r.image_id, r.label, r.patient_id) for r in found] == [(r.image_id, r.label, r.patient_id) for r in chosen]
    assert str(tmp_path) in description

    model, _, _ = spied_training
    res = msld.evaluate(msld.as_classifier(model), found, n_boot=50, progress=False)
    assert res.n_images == 4 and sum(map(sum, res.confusion)) == 4
    assert res.patient_level.n_patients == 4
    assert res.as_dict()["patient_level"]["accuracy"]["value"] == res.patient_level.accuracy.value
    assert "per images: accuracy " in msld.describe(res)

    (tmp_path / "images" / chosen[0].label / f"{chosen[0].image_id}.jpg").write_bytes(b"not the image")
    with pytest.raises(data.DataError, match="sha256"):
        msld.folder_records(tmp_path)


def test_pixel_transform_hook(records):
    """The identity transform reproduces the classifier's own preprocessing exactly, and an
    edit reaches the model: black images all get the same probability."""
    backbone = msld.imagenet_backbone()
    model = msld.imagenet_backbone()
    torch.manual_seed(0)
    model.classifier = torch.nn.Linear(model.classifier.in_features, 2)
    classifier = msld.as_classifier(model)
    chosen = records[:3]
    plain = msld.predict(classifier, chosen, progress=False)
    same = msld.predict(classifier, chosen, progress=False, transform=lambda pixels, record: pixels)
    torch.testing.assert_close(same, plain, rtol=0, atol=1e-6)
    black = msld.predict(classifier, chosen, progress=False, transform=lambda pixels, record: torch.zeros_like(pixels))
    assert float(black.max() - black.min()) == 0.0 and float((black - plain).abs().max()) > 1e-3

    settings = msld.TrainSettings()
    seen = []

    def spy(pixels, record):
        seen.append(record.image_id)
        return pixels

    with_transform = msld.pooled_features(backbone, chosen, settings, None, transform=spy)
    torch.testing.assert_close(with_transform, msld.pooled_features(backbone, chosen, settings, None))
    assert seen == [r.image_id for r in chosen]

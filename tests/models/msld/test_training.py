"""xai_lab.models.msld.training: deterministic training on training patients only, the
features hook, the registered model, and the cached model (reused, keyed, damaged files)."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import xai_lab
from xai_lab.models import cache, lite0_imagenet_weights, msld
from xai_lab.models.cache import CacheWarning
from xai_lab.models.msld import training

from .conftest import TINY


def test_training_reads_only_training_and_validation_patients(msld_one_image_patients, spied_training):
    _, info, seen = spied_training
    split = msld.split_records(msld_one_image_patients, TINY)
    test_patients = {r.patient_id for r in split["test"]}
    assert len(test_patients) == 4
    assert {r.patient_id for r in seen} == set(info["train_patients"]) | set(info["val_patients"])
    assert not {r.patient_id for r in seen} & test_patients
    assert info["train_images"] == 8 and info["val_images"] == 4
    assert len(seen) == 2 * 8 + 4  # training images as they are and augmented, validation images once


def test_training_is_deterministic_for_a_seed(msld_one_image_patients, spied_training):
    model, info, _ = spied_training
    again, info_again = msld.train(TINY, msld_one_image_patients, progress=False)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert info_again["step"] == info["step"]
    # the seed drives the augmented views (the training images as they are do not depend on it)
    with msld.deterministic(1):
        views = [msld.pooled_features(model, msld_one_image_patients[:1], TINY, torch.Generator().manual_seed(seed))
                 for seed in (0, 0, 1)]
    assert torch.equal(views[0], views[1]) and not torch.allclose(views[0], views[2])
    # the backbone is the ImageNet one, only the head is new
    assert model.classifier.weight.shape == (2, 1280)
    assert torch.equal(model.features.head.conv.weight, lite0_imagenet_weights()["features.head.conv.weight"])


def test_cache_is_reused_and_keyed_by_data_settings_and_version(msld_one_image_patients, spied_training, tmp_path, monkeypatch):
    trained, train_info, _ = spied_training
    calls = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: calls.append(args) or (trained, dict(train_info)))
    first, info = msld.fit_or_load(TINY, msld_one_image_patients, cache_dir=tmp_path, progress=False)
    assert calls == [(TINY, msld_one_image_patients, False)]
    assert not info["cached"] and Path(info["path"]).parent == tmp_path

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the model is cached")

    monkeypatch.setattr(training, "train", no_training)
    second, info2 = msld.fit_or_load(TINY, msld_one_image_patients, cache_dir=tmp_path)
    assert info2["cached"] and info2["path"] == info["path"] and info2["step"] == info["step"]
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), second.model.state_dict().values()))
    assert second.categories == ["Monkeypox", "Others"] and second.head == "classifier"

    key = msld.cache_key(TINY, msld_one_image_patients)
    assert key == info["key"] == msld.cache_key(replace(TINY), list(msld_one_image_patients))
    assert msld.cache_key(replace(TINY, seed=1), msld_one_image_patients) != key
    assert msld.cache_key(replace(TINY, weight_decay=TINY.weight_decay / 2), msld_one_image_patients) != key
    assert msld.cache_key(TINY, msld_one_image_patients[1:]) != key  # a training or validation image less
    monkeypatch.setattr(xai_lab, "__version__", "0.0.0-other")
    assert msld.cache_key(TINY, msld_one_image_patients) != key


def test_a_damaged_cached_model_is_reported_and_retrained(msld_one_image_patients, spied_training, tmp_path, monkeypatch):
    """Truncated, empty and foreign files in the cache: a CacheWarning naming the file, then
    training again (never a PytorchStreamReader or EOFError traceback)."""
    trained, train_info, _ = spied_training
    calls = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: calls.append(1) or (trained, dict(train_info)))
    path = Path(msld.fit_or_load(TINY, msld_one_image_patients, cache_dir=tmp_path)[1]["path"])
    whole = path.read_bytes()
    damages = {"truncated": whole[: len(whole) // 2], "empty": b""}
    for name, content in damages.items():
        path.write_bytes(content)
        with pytest.warns(CacheWarning, match=str(path)):
            _, info = msld.fit_or_load(TINY, msld_one_image_patients, cache_dir=tmp_path)
        assert not info["cached"], name
        assert path.read_bytes() == whole                     # saved again, whole
    for checksum in (True, False):                            # with its checksum or an old file without one
        torch.save({"state_dict": {"conv.weight": torch.zeros(1)}, "info": "{}"}, path)
        (path.parent / (path.name + ".sha256")).unlink(missing_ok=True)
        if checksum:
            cache.save({"state_dict": {"conv.weight": torch.zeros(1)}, "info": "{}"}, path)
        with pytest.warns(CacheWarning, match="missing") as caught:
            _, info = msld.fit_or_load(TINY, msld_one_image_patients, cache_dir=tmp_path)
        message = str(caught[0].message)
        assert str(path) in message and "unexpected: conv.weight" in message and len(message) < 1000
        assert not info["cached"]
    assert len(calls) == 1 + len(damages) + 2
    _, info = msld.fit_or_load(TINY, msld_one_image_patients, cache_dir=tmp_path)
    assert info["cached"]


def test_registered_model_with_random_weights():
    assert "msld_efficientnet_lite0" in xai_lab.model_names()
    clf = xai_lab.load_model("msld_efficientnet_lite0", weights=None)
    assert clf.categories == ["Monkeypox", "Others"]
    assert (clf.default_layer, clf.head, clf.mean, clf.std) == ("features", "classifier", (0.5,) * 3, (0.5,) * 3)
    image = (torch.rand(224, 224, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    x = clf.preprocess(image)
    assert torch.allclose(clf.to_pixels(x), torch.from_numpy(image).permute(2, 0, 1) / 255, atol=1e-6)  # no crop
    assert clf.model(x[None]).shape == (1, 2)


def test_pixel_transform_hook(msld_one_image_patients):
    """The identity transform reproduces the classifier's own preprocessing exactly, and an
    edit reaches the model: black images all get the same probability."""
    backbone = msld.imagenet_backbone()
    model = msld.imagenet_backbone()
    torch.manual_seed(0)
    model.classifier = torch.nn.Linear(model.classifier.in_features, 2)
    classifier = msld.as_classifier(model)
    chosen = msld_one_image_patients[:3]
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

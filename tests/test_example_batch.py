import numpy as np
import pytest
import torch

from xai_lab.data import example_batch


def tiny_preprocess(image):
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


def test_spread_over_the_classes(imagenet_records):
    x, labels = example_batch(30, preprocess=tiny_preprocess)
    assert x.shape == (30, 3, 8, 8) and x.dtype == torch.float32
    assert labels.dtype == torch.long
    assert labels.tolist() == [r.label for r in imagenet_records[::33][:30]] == list(range(0, 990, 33))
    assert torch.equal(x[1], tiny_preprocess(imagenet_records[33].load()))
    assert example_batch(100, preprocess=tiny_preprocess)[1].tolist() == list(range(0, 1000, 10))


def test_named_classes_in_order_with_the_data_sets_labels(imagenet_records, lite0):
    x, labels = example_batch(preprocess=lite0.preprocess, names=["Egyptian cat", "tabby", "espresso"])
    assert x.shape == (3, 3, 224, 224)
    assert [lite0.categories[int(label)] for label in labels] == ["Egyptian cat", "tabby", "espresso"]
    cat = next(r for r in imagenet_records if r.name == "Egyptian_cat")
    assert torch.equal(x[0], lite0.preprocess(cat.load()))
    _, same = example_batch(preprocess=tiny_preprocess, names=["Egyptian_cat"])
    assert same.tolist() == labels[:1].tolist()


def test_bad_requests_are_refused(imagenet_records):
    with pytest.raises(ValueError, match="unicorn"):
        example_batch(preprocess=tiny_preprocess, names=["unicorn"])
    with pytest.raises(ValueError, match="ambiguous"):
        example_batch(preprocess=tiny_preprocess, names=["crane"])
    for n in (0, 1001, 2.5, True):
        with pytest.raises(ValueError):
            example_batch(n, preprocess=tiny_preprocess)

import torch

from xai_lab.capture import hook_count
from xai_lab.visualize import activation_maximization, deep_dream


def test_class_activation_rises_far_above_its_start(lite0):
    vis = activation_maximization(lite0, target=130, steps=24, size=96, seed=0)  # flamingo
    assert vis.image.shape == (3, 96, 96) and 0 <= vis.image.min() and vis.image.max() <= 1
    assert max(vis.curve[-5:]) > vis.start + 10
    again = activation_maximization(lite0, target=130, steps=24, size=96, seed=0)
    assert torch.equal(vis.image, again.image)


def test_channel_activation_rises_with_pixel_parametrization(lite0):
    vis = activation_maximization(lite0, target=("features.blocks.5", 3), steps=20, size=64,
                                  parametrization="pixel", lr=0.1, blur_sigma=0.5, l2=1e-3, seed=1)
    assert vis.curve[-1] > vis.start + 1.0
    assert hook_count(lite0.model) == 0


def test_deep_dream_increases_the_layer_activation_and_keeps_pixels_valid(lite0, coffee_chelsea):
    pixels = lite0.to_pixels(coffee_chelsea[0])
    vis = deep_dream(lite0, pixels, layer="features.blocks.8", octaves=2, steps=5, lr=0.02)
    assert vis.image.shape == pixels.shape
    assert vis.image.min() >= 0 and vis.image.max() <= 1
    assert vis.curve[-1] > vis.start * 1.2
    assert hook_count(lite0.model) == 0


def test_bad_channel_and_target():
    import pytest

    import xai_lab

    clf = xai_lab.load_model()
    with pytest.raises(ValueError, match="channels"):
        activation_maximization(clf, target=("features.blocks.0", 999), steps=1, size=32)
    with pytest.raises(TypeError, match="class index"):
        activation_maximization(clf, target="cat", steps=1, size=32)

import pytest
import torch
from torch import nn

from xai_lab.models import Classifier
from xai_lab.visualize import class_probability, transform_robustness


def _toy():
    """Logits [4 * (pixel (0, 0) of channel 0 as model input), 0]: p(class 0) = sigmoid(4 x)."""
    class Corner(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(4.0))

        def forward(self, x):
            z = self.scale * x[:, 0, 0, 0]
            return torch.stack([z, torch.zeros_like(z)], 1)

    return Classifier(name="toy", model=Corner(), categories=["a", "b"], default_layer="", mean=(0.5,) * 3,
                      std=(0.5,) * 3)


def test_class_probability_applies_the_input_scaling():
    classifier, pixels = _toy(), torch.zeros(3, 8, 8)
    pixels[0, 0, 0] = 1.0  # model input 1
    assert class_probability(classifier, pixels, 0) == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())
    assert class_probability(classifier, pixels, 1) == pytest.approx(torch.sigmoid(torch.tensor(-4.0)).item())
    with pytest.raises(ValueError, match="one image"):
        class_probability(classifier, pixels[None], 0)


def test_transform_robustness_by_hand():
    classifier, pixels = _toy(), torch.full((3, 8, 8), 0.5)  # model input 0 everywhere but one pixel
    pixels[0, 0, 0] = 1.0
    p = transform_robustness(classifier, pixels, 0, shift=2, blur_sigma=1.0, size=16)
    assert list(p) == ["as optimized", "shifted 2 px", "blurred (sigma 1 px)", "at 16 x 16"]
    assert p["as optimized"] == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())
    assert p["shifted 2 px"] == pytest.approx(0.5)  # the bright pixel moved away from the corner
    assert 0.5 < p["blurred (sigma 1 px)"] < p["as optimized"]  # blur spreads it out
    assert p["at 16 x 16"] > 0.5
    flat = transform_robustness(classifier, torch.full((3, 8, 8), 0.5), 0)
    assert all(v == pytest.approx(0.5) for v in flat.values())  # a flat image survives every change

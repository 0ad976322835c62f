import numpy as np
import pytest
import torch
from torch import nn

from xai_lab.metrics.anchors import anchor_precision


class LeftTexture(nn.Module):
    """Class 0 iff the left half has texture: logits [10 * std(left half), 1]. Hiding the left
    superpixel (its mean) leaves std 0, so class 1."""

    def forward(self, x):
        return torch.stack([10 * x[..., :4].flatten(1).std(dim=1), torch.ones(len(x))], dim=1)


@pytest.fixture
def halves():
    x = torch.zeros(1, 3, 8, 8)
    x[..., :4] = torch.tensor([0.0, 1.0]).repeat(8, 2)  # 0/1 stripes in the left half, std about 0.5
    segments = torch.zeros(8, 8, dtype=torch.long)
    segments[:, 4:] = 1                                   # superpixel 0: left half, 1: right half
    return x, segments


def test_anchor_precision_by_hand(halves):
    x, segments = halves
    model = LeftTexture()
    assert int(model(x).argmax()) == 0
    assert anchor_precision(model, x, segments, [0]) == 1.0           # the left half kept: always class 0
    assert anchor_precision(model, x, segments, [0], target=1) == 0.0
    assert anchor_precision(model, x, segments, [1], p_sample=1.0) == 0.0  # the left half always hidden
    assert anchor_precision(model, x, segments, [], p_sample=0.0) == 1.0   # nothing hidden
    # no anchor: class 0 exactly when the left half happens to be kept, about half of the draws
    kept = np.random.default_rng(3).random((400, 2))[:, 0] >= 0.5
    assert anchor_precision(model, x, segments, [], samples=400, seed=3, batch_size=64) == kept.mean()
    assert 0.4 < kept.mean() < 0.6


def test_anchor_precision_checks_its_input(halves):
    x, segments = halves
    with pytest.raises(ValueError, match="anchor"):
        anchor_precision(LeftTexture(), x, segments, [2])
    with pytest.raises(ValueError, match="one image"):
        anchor_precision(LeftTexture(), x.repeat(2, 1, 1, 1), segments, [0])
    with pytest.raises(ValueError, match="p_sample"):
        anchor_precision(LeftTexture(), x, segments, [0], p_sample=1.5)

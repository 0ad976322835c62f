import pytest
import torch
from torch import nn

from xai_lab.visualize import mean_channel_activations


def test_mean_channel_activations_by_hand_and_in_batches():
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([1.0, -2.0]).view(2, 1, 1, 1)
        conv.bias[:] = torch.tensor([0.0, 1.0])
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.arange(3 * 4, dtype=torch.float32).view(3, 1, 2, 2)  # image i holds 4i .. 4i + 3
    means = mean_channel_activations(model, "1", x, batch_size=2)
    assert means.shape == (3, 2)
    assert torch.allclose(means[:, 0], torch.tensor([1.5, 5.5, 9.5]))  # the mean of 4i .. 4i + 3
    assert torch.allclose(means[:, 1], torch.tensor([0.25, 0.0, 0.0]))  # relu(1 - 2 v): only v = 0 is positive
    assert torch.equal(means, mean_channel_activations(model, "1", x, batch_size=3))
    with pytest.raises(ValueError, match="batch_size"):
        mean_channel_activations(model, "1", x, batch_size=0)

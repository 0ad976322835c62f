"""xai_lab.metrics.relevance_flow: on a bias-free ReLU network the epsilon rule conserves the
score at the input of every module and at the image; a map's leak shows; clear errors; no hook
left behind."""
import pytest
import torch
from torch import nn

from xai_lab.metrics.relevance_flow import relevance_at_inputs


def bias_free_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Conv2d(4, 5, 3, bias=False), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3, bias=False)).double().eval()


def test_a_conserving_rule_keeps_the_whole_score_at_every_input():
    net, x = bias_free_net(), torch.rand(2, 3, 10, 10, dtype=torch.float64)
    shares = relevance_at_inputs(net, x, {"second conv": "2", "head": "6"}, rule="epsilon", epsilon=1e-12)
    assert list(shares) == ["second conv", "head", "image"]
    for share in shares.values():
        assert share.shape == (2,) and torch.allclose(share, torch.ones(2, dtype=torch.float64), atol=1e-4)


def test_biases_leak_and_the_shares_say_how_much():
    net = bias_free_net()
    net[0] = nn.Conv2d(3, 4, 3).double()
    nn.init.constant_(net[0].bias, 0.5)
    x = torch.rand(1, 3, 10, 10, dtype=torch.float64)
    shares = relevance_at_inputs(net, x, {"head": net[6]}, rule="epsilon", epsilon=1e-12)
    assert torch.allclose(shares["head"], torch.ones(1, dtype=torch.float64), atol=1e-4)
    assert abs(float(shares["image"]) - 1) > 1e-3   # the first layer's bias keeps a share


def test_bad_modules_are_refused_and_no_hook_is_left():
    net, x = bias_free_net(), torch.rand(1, 3, 10, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match="same module"):
        relevance_at_inputs(net, x, {"a": "2", "b": net[2]})
    reused = nn.Sequential(net[0], net[1], net[1], *list(net)[2:]).eval()
    with pytest.raises(RuntimeError, match="more than once"):
        relevance_at_inputs(reused, x, {"relu": net[1]})
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())

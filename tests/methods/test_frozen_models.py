"""Layer methods on models whose parameters do not require gradients (the usual state of a model
being explained), on a layer that comes before every parameter, and on a module without
parameters: they work, give the same maps as on the trainable model, and leave the flags as
they were."""
import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.registry import method_spec

LAYER_METHODS = [name for name in xai_lab.methods() if method_spec(name).needs_layer and name != "cam"]
FAST = {"scorecam": {"batch_size": 64}, "ablationcam": {"batch_size": 64}, "smoothgradcampp": {"n_samples": 2}}


@pytest.fixture(scope="module")
def resnet_pair():
    torch.manual_seed(0)
    trainable = xai_lab.load_model("resnet18", weights=None)
    frozen = xai_lab.load_model("resnet18", weights=None)
    frozen.model.load_state_dict(trainable.model.state_dict())
    for p in frozen.model.parameters():
        p.requires_grad_(False)
    return trainable, frozen


@pytest.mark.parametrize("method", LAYER_METHODS + ["cam"])
def test_frozen_resnet_gives_the_trainable_maps(resnet_pair, method):
    trainable, frozen = resnet_pair
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    options = FAST.get(method, {})
    layer = "layer4" if method == "cam" else "layer3"  # CAM needs the feature map pooled into the head
    a = xai_lab.explain(trainable, x, method=method, layer=layer, target=7, seed=0, **options)
    b = xai_lab.explain(frozen, x, method=method, layer=layer, target=7, seed=0, **options)
    assert torch.allclose(a.saliency, b.saliency, rtol=1e-5, atol=1e-6 * float(a.saliency.abs().max()) + 1e-12)
    assert not any(p.requires_grad for p in frozen.model.parameters())
    assert all(p.requires_grad for p in trainable.model.parameters())


class FirstLayerIsFree(nn.Module):
    """identity [explained layer] -> conv -> ReLU -> pool -> linear: nothing before the layer has a parameter."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Identity()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.conv(self.stem(x)))


@pytest.mark.parametrize("method", LAYER_METHODS)
def test_a_layer_before_every_parameter(method):
    model = FirstLayerIsFree().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    e = xai_lab.explain(model, x, method=method, layer="stem", target=[0, 2], seed=0, **FAST.get(method, {}))
    assert e.saliency.shape == (2, 8, 8) and torch.isfinite(e.saliency).all()


def test_gradcam_before_every_parameter_by_hand():
    """A = x itself; G = dy/dx; Grad-CAM = ReLU(sum_k mean(G_k) x_k)."""
    model = FirstLayerIsFree().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg)[0, 1], xg)
    expected = (g.mean((2, 3), keepdim=True) * x).sum(1).clamp_min(0)
    e = xai_lab.explain(model, x, method="gradcam", layer="stem", target=1)
    assert torch.allclose(e.layer_map, expected, atol=1e-6)


def test_a_module_without_parameters():
    """A bare module with no parameter at all: explained on the input's device, no StopIteration."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    e = xai_lab.explain(model, x, method="saliency", target=5)
    assert e.saliency.shape == (1, 8, 8)
    assert (e.saliency > 0).sum() == 16  # the 4x4 pixels pooled into output 5 (channel 1, cell (0, 1))


def test_flags_restored_when_the_method_fails():
    model = FirstLayerIsFree().eval()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError):
        xai_lab.explain(model, x, method="smoothgradcampp", layer="conv", n_samples=0)
    with pytest.raises(ValueError):
        xai_lab.explain(model, x, method="gradcam", layer="conv", target=9)
    assert all(p.requires_grad for p in model.parameters())
    assert xai_lab.capture.hook_count(model) == 0

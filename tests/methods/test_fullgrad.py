import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xai_lab
from xai_lab.ops import normalize_per_image


def _randomize_biases(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random conv/linear biases and batch-norm statistics, so that every bias term is nonzero
    (torchvision initializes them to 0, 1 and 0, which would make the bias parts vanish)."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda t, scale, shift=0.0: t.copy_(torch.rand(t.shape, generator=g) * scale + shift)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                rand(m.running_mean, 0.2, -0.1), rand(m.running_var, 1.0, 0.5)
                rand(m.weight, 1.0, 0.5), rand(m.bias, 0.2, -0.1)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                rand(m.bias, 0.2, -0.1)
    return model


def _total(part: torch.Tensor) -> torch.Tensor:
    """Sum of a part over everything but the image: [N, h, w] or [N] -> [N]."""
    return part.reshape(part.shape[0], -1).sum(1)


class ClampNet(nn.Module):
    """flatten -> linear(12 -> 4) -> ReLU6 -> linear(4 -> 2): y = W2 relu6(W1 x + b1) + b2."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(12, 4), nn.ReLU6(), nn.Linear(4, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.randn(4, 12, generator=torch.Generator().manual_seed(0)) * 3)
            self.fc1.bias.copy_(torch.tensor([1.0, -2.0, 8.0, 0.5]))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def test_parts_by_hand_with_a_relu6_clamp():
    net = ClampNet().eval()
    x = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    z = net.fc1(x.flatten(1)).detach()
    assert (z >= 6).any() and ((z > 0) & (z < 6)).any()  # some units clamp at 6, some pass
    c = 1
    slope = ((z > 0) & (z < 6)).float()
    w2 = net.fc2.weight[c].detach()
    e = xai_lab.explain(net, x, method="fullgrad", target=c)
    parts = e.extras["bias_parts"]
    assert torch.allclose(_total(e.extras["input_part"]), ((w2 * slope) * (z - net.fc1.bias)).sum(1), atol=1e-5)
    assert torch.allclose(parts["fc1"], (w2 * slope * net.fc1.bias).sum(1).detach(), atol=1e-5)
    assert torch.allclose(parts["act"], (w2 * 6 * (z >= 6)).sum(1), atol=1e-5)  # the implicit bias of ReLU6
    assert torch.allclose(parts["fc2"], net.fc2.bias[c].detach().expand(3))
    assert torch.allclose(e.extras["completeness"], e.extras["score"], atol=1e-5)
    assert e.forward_passes == 1 and e.backward_passes == 1


def test_fullgrad_by_hand_on_tiny(tiny, tiny_input):
    """Bias parts summed over positions equal dy/db * b from autograd on the parameters, and the map
    is psi(input part) + psi(conv1 part) + psi(conv2 part), psi = channel sum of rescaled abs values."""
    target = 4
    store = {}
    hooks = [getattr(tiny, n).register_forward_hook(lambda m, i, o, n=n: store.update({n: o})) for n in ("conv1", "conv2")]
    try:
        x = tiny_input.clone().requires_grad_(True)
        y = tiny(x)[:, target]
    finally:
        for h in hooks:
            h.remove()
    gx, g1, g2 = torch.autograd.grad(y.sum(), [x, store["conv1"], store["conv2"]])
    e = xai_lab.explain(tiny, tiny_input, method="fullgrad", target=target)
    for name in ("conv1", "conv2", "fc"):
        bias = getattr(tiny, name).bias
        per_image = torch.stack([torch.autograd.grad(tiny(tiny_input[i:i + 1])[0, target], bias)[0] for i in range(2)])
        assert torch.allclose(_total(e.extras["bias_parts"][name]), (per_image * bias).sum(1), atol=1e-5)
    assert torch.allclose(e.extras["completeness"], y.detach(), atol=1e-5)

    psi = lambda t: normalize_per_image(t.abs()).sum(1)
    b1, b2 = tiny.conv1.bias.view(1, -1, 1, 1), tiny.conv2.bias.view(1, -1, 1, 1)
    expected = psi(gx * tiny_input) + psi(g1 * b1) + psi(g2 * b2)
    assert torch.allclose(e.saliency, expected.detach(), atol=1e-5)
    simple = xai_lab.explain(tiny, tiny_input, method="simple_fullgrad", target=target)
    assert torch.allclose(simple.saliency, (psi(gx * tiny_input) + psi(g1) + psi(g2)).detach(), atol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "vgg16"])
def test_completeness_in_float64(name, lite0, resnet18, coffee_chelsea):
    """sum(dy/dx * x) + sum of every bias part = y_c, to rounding (float64)."""
    if name == "efficientnet_lite0":
        model, size = copy.deepcopy(lite0.model), 96
    elif name == "resnet18":
        model, size = _randomize_biases(copy.deepcopy(resnet18.model)), 96
    else:
        torch.manual_seed(0)
        model, size = _randomize_biases(xai_lab.load_model("vgg16", weights=None).model), 64
    model = model.double().eval()
    x = F.interpolate(coffee_chelsea, size=size, mode="bilinear", antialias=True).double()
    e = xai_lab.explain(model, x, method="fullgrad", progress=False)
    score, total = e.extras["score"], e.extras["completeness"]
    assert ((total - score).abs() / score.abs()).max() <= 1e-4
    bias_total = sum(_total(p) for p in e.extras["bias_parts"].values())
    assert (bias_total.abs() > 1e-3 * score.abs()).all()  # the biases matter: the input part alone is not y
    if name == "efficientnet_lite0":
        without = xai_lab.explain(model, x, method="fullgrad", activation_offsets=False, progress=False)
        assert ((without.extras["completeness"] - score).abs() / score.abs()).max() > 1e-2


def test_fullgrad_matches_grad_cam_library(resnet18, coffee_chelsea):
    """grad-cam's FullGrad: conv and batch-norm biases, every channel rescaled to [0, 1] on its own."""
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = _randomize_biases(copy.deepcopy(resnet18.model)).eval()
    x = F.interpolate(coffee_chelsea, size=112, mode="bilinear", antialias=True)
    targets = [967, 281]
    cam = FullGrad(model, [])
    try:
        ref = cam(x, targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        cam.activations_and_grads.release()
    for normalize, bound in [("channel", 0.99), ("layer", 0.95)]:
        ours = xai_lab.explain(model, x, method="fullgrad", target=targets, normalize=normalize, progress=False)
        for i in range(2):
            r = np.corrcoef(ours.saliency[i].numpy().ravel(), ref[i].ravel())[0, 1]
            assert r >= bound, (normalize, i, r)


def test_bias_part_totals_sum_each_part_and_complete_the_score():
    from xai_lab.methods.fullgrad import bias_part_totals

    maps = {"conv": torch.arange(8.0).view(2, 2, 2), "fc": torch.tensor([1.5, -2.0])}
    totals = bias_part_totals(maps)
    assert list(totals) == ["conv", "fc"]
    assert torch.equal(totals["conv"], torch.tensor([0.0 + 1 + 2 + 3, 4.0 + 5 + 6 + 7]))
    assert torch.equal(totals["fc"], maps["fc"])
    net = ClampNet().eval()
    x = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    e = xai_lab.explain(net, x, method="fullgrad", target=1)
    total = _total(e.extras["input_part"]) + sum(bias_part_totals(e.extras["bias_parts"]).values())
    assert torch.allclose(total, e.extras["score"], atol=1e-5)


@pytest.mark.parametrize("normalize", ["layer", "channel", "none"])
def test_psi_folds_the_rescale_into_the_channel_sum(normalize):
    """psi rescales inside the channel sum (no rescaled copy); it equals rescale-then-sum, with a
    constant image and a constant channel giving zeros, not NaN."""
    from xai_lab.methods.fullgrad import _psi

    maps = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    maps[1] = 2.5  # a constant image
    maps[2, 3] = -1.0  # a constant channel
    a = maps.abs()
    if normalize == "layer":
        expected = normalize_per_image(a).sum(1)
    elif normalize == "channel":
        expected = normalize_per_image(a.flatten(0, 1)).view_as(a).sum(1)
    else:
        expected = a.sum(1)
    got = _psi(maps, normalize)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="normalize"):
        _psi(maps, "pixel")

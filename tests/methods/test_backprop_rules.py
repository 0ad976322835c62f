import warnings

import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.capture import hook_count


class OneRectifier(nn.Module):
    """logits = W act(flatten(x)): the gradient reaching the rectifier's output is the row W_c."""

    def __init__(self, act: nn.Module, weight: torch.Tensor):
        super().__init__()
        self.act = act
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(weight)

    def forward(self, x):
        return self.fc(self.act(x.flatten(1)))


def _plain_gradient(model, x, target):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)
    return g


@pytest.mark.parametrize("act, lo, hi", [(nn.ReLU6(), 0.0, 6.0), (nn.Hardtanh(-1.0, 2.0), -1.0, 2.0),
                                         (nn.ReLU(), 0.0, float("inf"))])
def test_rules_by_hand_on_one_rectifier(act, lo, hi):
    # Inputs below lo, inside (lo, hi) and above hi, each met by a positive and a negative gradient.
    values = torch.tensor([-3.0, -3.0, 1.5, 1.5, 9.0, 9.0, -0.5, 0.5, 4.0, 7.0, lo, 0.25])
    w_target = torch.tensor([2.0, -2.0, 3.0, -3.0, 1.0, -1.0, 0.5, -0.5, -4.0, 5.0, 1.0, 0.7])
    weight = torch.stack([w_target, torch.ones(12)])
    model = OneRectifier(act, weight).eval()
    x = values.view(1, 3, 2, 2)
    inside = (values > lo) & (values < hi)

    guided = xai_lab.explain(model, x, method="guided_backprop", target=0)
    expected = (w_target.clamp_min(0) * inside).view(1, 3, 2, 2)
    assert torch.equal(guided.extras["attribution"], expected)
    assert torch.equal(guided.saliency, expected.abs().amax(1))
    deconv = xai_lab.explain(model, x, method="deconvnet", target=0)
    assert torch.equal(deconv.extras["attribution"], w_target.clamp_min(0).view(1, 3, 2, 2))
    # The plain gradient keeps negative values: the rules above really changed the backward pass.
    assert torch.equal(_plain_gradient(model, x, torch.tensor([0])), (w_target * inside).view(1, 3, 2, 2))
    assert hook_count(model) == 0


@pytest.mark.parametrize("model_name", ["tiny", "resnet18"])
def test_guided_backprop_and_deconvnet_equal_captum_on_relu_networks(model_name, request, coffee_chelsea, tiny_input):
    captum = pytest.importorskip("captum.attr")
    model = request.getfixturevalue(model_name)
    model = getattr(model, "model", model)
    x = tiny_input if model_name == "tiny" else coffee_chelsea
    target = torch.tensor([3, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns that it sets backward hooks
        refs = {"guided_backprop": captum.GuidedBackprop(model).attribute(x, target=target),
                "deconvnet": captum.Deconvolution(model).attribute(x, target=target)}
    plain = _plain_gradient(model, x, target)
    for method, ref in refs.items():
        ours = xai_lab.explain(model, x, method=method, target=target).extras["attribution"]
        assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max())), method
        assert not torch.allclose(ours, plain, rtol=1e-2), method
    assert hook_count(model) == 0


def test_hooks_and_inplace_flags_restored_also_on_errors(resnet18, coffee_chelsea):
    model = resnet18.model
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    xai_lab.explain(resnet18, coffee_chelsea[:1], method="guided_backprop")
    assert hook_count(model) == 0 and all(m.inplace for m in relus)
    with pytest.raises(ValueError, match="out of range"):
        xai_lab.explain(resnet18, coffee_chelsea[:1], method="deconvnet", target=5000)
    assert hook_count(model) == 0 and all(m.inplace for m in relus)


@pytest.mark.slow
def test_guided_backprop_modifies_relu6_where_captum_does_not(lite0, coffee_chelsea):
    """Lite0 uses ReLU6 only: captum's GuidedBackprop hooks nn.ReLU, so it returns the plain gradient."""
    captum = pytest.importorskip("captum.attr")
    x, target = coffee_chelsea[:1], torch.tensor([967])
    plain = _plain_gradient(lite0.model, x, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = captum.GuidedBackprop(lite0.model).attribute(x, target=target)
    assert torch.equal(ref, plain)
    ours = xai_lab.explain(lite0, x, method="guided_backprop", target=target).extras["attribution"]
    assert (ours - plain).abs().max() > 0.1 * plain.abs().max()
    assert hook_count(lite0.model) == 0 and not any(m.inplace for m in lite0.model.modules() if isinstance(m, nn.ReLU6))


def test_guided_gradcam_is_the_product_of_its_parts(resnet18, coffee_chelsea):
    x, target = coffee_chelsea, torch.tensor([10, 20])
    e = xai_lab.explain(resnet18, x, method="guided_gradcam", target=target)
    gb = xai_lab.explain(resnet18, x, method="guided_backprop", target=target).extras["attribution"]
    gc = xai_lab.explain(resnet18, x, method="gradcam", target=target)
    product = gb * gc.saliency[:, None]
    assert torch.allclose(e.extras["attribution"], product, rtol=1e-5, atol=1e-12)
    assert torch.allclose(e.saliency, product.abs().amax(1), rtol=1e-5, atol=1e-12)
    assert torch.allclose(e.layer_map, gc.layer_map) and e.layer == "layer4"
    assert e.forward_passes == 1 and e.backward_passes == 2  # one forward pass serves both backward passes

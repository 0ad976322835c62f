import pytest
import torch
from torch import nn

import xai_lab


class Linear(nn.Module):
    """y = W x (flattened): every gradient map is known in closed form."""

    def __init__(self, shape=(3, 4, 4), classes=2):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(shape).prod()), classes, bias=True)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=torch.Generator().manual_seed(3)))

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def linear():
    return Linear().eval()


@pytest.fixture
def xs():
    return torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4))


def test_saliency_is_max_abs_weight(linear, xs):
    e = xai_lab.explain(linear, xs, method="saliency", target=1)
    w = linear.fc.weight[1].view(3, 4, 4)
    assert torch.allclose(e.saliency, w.abs().amax(0).expand(2, 4, 4))
    signed = xai_lab.explain(linear, xs, method="saliency", target=1, abs=False)
    idx = w.abs().argmax(0, keepdim=True)
    assert torch.allclose(signed.saliency[0], w.gather(0, idx)[0])


def test_input_x_gradient_and_integrated_gradients_of_a_linear_model(linear, xs):
    w = linear.fc.weight[0].view(3, 4, 4)
    ixg = xai_lab.explain(linear, xs, method="input_x_gradient", target=0)
    assert torch.allclose(ixg.saliency, (xs * w).sum(1), atol=1e-6)
    ig = xai_lab.explain(linear, xs, method="integrated_gradients", target=0, steps=8)
    assert torch.allclose(ig.saliency, (xs * w).sum(1), atol=1e-5)
    assert ig.extras["delta"].abs().max() < 1e-4
    assert ig.forward_passes == 8 + 2 and ig.backward_passes == 8


def test_smoothgrad_seeded_and_reduces_to_gradient_without_noise(linear, xs):
    a = xai_lab.explain(linear, xs, method="smoothgrad", target=0, seed=1, n_samples=5, noise=0.2)
    b = xai_lab.explain(linear, xs, method="smoothgrad", target=0, seed=1, n_samples=5, noise=0.2)
    assert torch.equal(a.saliency, b.saliency) and a.forward_passes == 5 and a.backward_passes == 5
    quiet = xai_lab.explain(linear, xs, method="smoothgrad", target=0, n_samples=3, noise=0.0)
    plain = xai_lab.explain(linear, xs, method="saliency", target=0)
    assert torch.allclose(quiet.saliency, plain.saliency, atol=1e-6)


def test_smoothgrad_averages_noisy_gradients(tiny, tiny_input):
    """Reproduce the noise draw by hand: mean over samples of the autograd gradient."""
    e = xai_lab.explain(tiny, tiny_input, method="smoothgrad", target=2, seed=7, n_samples=4, noise=0.1, batch_size=3)
    g = torch.Generator().manual_seed(7)
    x = tiny_input
    sigma = 0.1 * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(2, 1, 1, 1)
    total = torch.zeros_like(x)
    for k in (3, 1):
        noisy = (x.repeat(k, 1, 1, 1) + torch.randn((k * 2, 3, 8, 8), generator=g) * sigma.repeat(k, 1, 1, 1)).requires_grad_()
        (grad,) = torch.autograd.grad(tiny(noisy)[:, 2].sum(), noisy)
        total += grad.view(k, 2, 3, 8, 8).sum(0)
    assert torch.allclose(e.saliency, (total / 4).abs().amax(1), atol=1e-6)


@pytest.mark.parametrize("model_name", ["lite0", "resnet18"])
def test_agree_with_captum(model_name, request, coffee_chelsea):
    captum = pytest.importorskip("captum.attr")
    clf = request.getfixturevalue(model_name)
    x, target = coffee_chelsea, torch.tensor([3, 7])
    sal = captum.Saliency(clf.model).attribute(x, target=target, abs=True).amax(1)
    ours = xai_lab.explain(clf, x, method="saliency", target=target)
    assert torch.allclose(ours.saliency, sal, rtol=1e-5, atol=1e-7)
    ixg = captum.InputXGradient(clf.model).attribute(x, target=target).sum(1)
    ours = xai_lab.explain(clf, x, method="input_x_gradient", target=target)
    assert torch.allclose(ours.saliency, ixg, rtol=1e-4, atol=1e-6)
    ig = captum.IntegratedGradients(clf.model).attribute(x, target=target, n_steps=16, internal_batch_size=32).sum(1)
    # the same 32 images in one pass as captum's internal batch: a pass of other images rounds otherwise
    ours = xai_lab.explain(clf, x, method="integrated_gradients", target=target, steps=16, batch_size=16)
    assert torch.allclose(ours.saliency, ig, rtol=1e-3, atol=1e-5 * float(ig.abs().max()))

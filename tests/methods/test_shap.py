import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xai_lab
from xai_lab.methods import shap


@pytest.fixture(scope="module")
def small_pair(coffee_chelsea):
    """coffee and chelsea at 96 x 96: EfficientNet-Lite0 pads like TF "SAME", so any size works."""
    return F.interpolate(coffee_chelsea, size=96, mode="bilinear", antialias=True, align_corners=False)


def target_logits(model, x, targets):
    with torch.no_grad():
        return model(x).gather(1, targets[:, None])[:, 0]


# ---------------------------------------------------------------- gradient_shap

def test_gradient_shap_by_autograd_with_noise(tiny, tiny_input):
    """Redo the seeded draws by hand (baseline index, interpolation point, input noise, in that
    order from the explanation's generator) and average (x + e - b) * grad by autograd."""
    base = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    e = xai_lab.explain(tiny, tiny_input, method="gradient_shap", target=4, seed=5, baselines=base, n_samples=6,
                        stdevs=0.1, batch_size=6)
    g = torch.Generator().manual_seed(5)
    index = torch.randint(3, (2, 6), generator=g)
    alpha = torch.rand((2, 6), generator=g)
    ends = tiny_input + 0.1 * torch.randn((6, 2, 3, 8, 8), generator=g)
    total = torch.zeros_like(tiny_input)
    for j in range(6):
        b = base[index[:, j]]
        z = (alpha[:, j].view(2, 1, 1, 1) * ends[j] + (1 - alpha[:, j].view(2, 1, 1, 1)) * b).requires_grad_()
        (grad,) = torch.autograd.grad(tiny(z)[:, 4].sum(), z)
        total += (ends[j] - b) * grad
    attribution = total / 6
    assert torch.allclose(e.extras["attribution"], attribution, atol=1e-6)
    assert torch.allclose(e.saliency, attribution.sum(1), atol=1e-6)
    gap = target_logits(tiny, tiny_input, torch.tensor([4, 4])) - target_logits(tiny, base, torch.tensor([4, 4, 4])).mean()
    assert torch.allclose(e.extras["delta"], attribution.flatten(1).sum(1) - gap, atol=1e-5)
    # images forwarded: x (2), the 3 shared baselines once each, 6 samples of 2 images
    assert e.forward_passes == -(-(2 + 3 + 6 * 2) // 2) and e.backward_passes == 6


def captum_draws(seed, n_baselines, n_images, n_samples):
    """captum's GradientShap draws, with numpy's global generator, first the baseline of every
    sample (np.random.choice, in NoiseTunnel's baseline expansion) and then its interpolation
    point (np.random.uniform, in InputBaselineXGradient); sample j of image i is row i*n + j."""
    np.random.seed(seed)
    index = np.random.choice(n_baselines, n_images * n_samples)
    alpha = np.random.uniform(0.0, 1.0, n_images * n_samples)
    return torch.tensor(index).view(n_images, n_samples), torch.tensor(alpha).view(n_images, n_samples)


@pytest.mark.parametrize("model_name", ["lite0", "tiny"])
def test_gradient_shap_equals_captum(model_name, request, small_pair, tiny_input):
    captum = pytest.importorskip("captum.attr")
    model = request.getfixturevalue(model_name)
    x = small_pair if model_name == "lite0" else tiny_input
    net = model.model if model_name == "lite0" else model
    base = 0.3 * torch.randn((3,) + x.shape[1:], generator=torch.Generator().manual_seed(5))
    target, n = torch.tensor([3, 1]), 8
    np.random.seed(11)
    reference = captum.GradientShap(net).attribute(x, base, n_samples=n, stdevs=0.0, target=target)
    index, alpha = captum_draws(11, 3, 2, n)
    ours = xai_lab.explain(model, x, method="gradient_shap", target=target, baselines=base, n_samples=n,
                           alphas=alpha, baseline_index=index, batch_size=n)
    scale = float(reference.abs().max())
    assert torch.allclose(ours.extras["attribution"], reference, rtol=1e-5, atol=1e-5 * scale)
    # one draw layout for all images: the same points, given as [n_samples]
    same = xai_lab.explain(model, x, method="gradient_shap", target=target, baselines=base, n_samples=n,
                           alphas=alpha[0], baseline_index=index[0], batch_size=n)
    assert torch.allclose(same.extras["attribution"][0], ours.extras["attribution"][0])


def test_gradient_shap_completeness_improves_with_samples(tiny, tiny_input):
    """sum(phi) is an unbiased Monte-Carlo estimate of f(x) - f(b): the relative gap
    |delta| / |f(x) - f(b)| falls like 1/sqrt(n) (one baseline, 20 seeds: about 0.13 at n=4,
    0.067 at 16, 0.030 at 64, 0.015 at 256)."""
    base = torch.zeros(1, 3, 8, 8)
    gap = target_logits(tiny, tiny_input, torch.tensor([2, 2])) - target_logits(tiny, base, torch.tensor([2]))

    def mean_relative_gap(n):
        gaps = [xai_lab.explain(tiny, tiny_input, method="gradient_shap", target=2, seed=s, baselines=base,
                                n_samples=n).extras["delta"].abs() / gap.abs() for s in range(20)]
        return float(torch.stack(gaps).mean())

    few, many = mean_relative_gap(4), mean_relative_gap(64)
    assert many < 0.5 * few
    assert 0.01 < many < 0.06 and 0.05 < few < 0.3


def test_gradient_shap_linear_model_is_exact_when_draws_cover_the_baselines():
    """For f(x) = w.x the gradient is w everywhere: phi = w * (x - mean of the drawn b), and with
    every baseline drawn equally often sum(phi) = f(x) - mean_b f(b) exactly (delta = 0)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    x = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    base = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    e = xai_lab.explain(model, x, method="gradient_shap", target=1, baselines=base, n_samples=4,
                        baseline_index=[0, 1, 1, 0], alphas=[0.1, 0.5, 0.9, 0.3])
    w = model[1].weight[1].detach().view(1, 3, 2, 2)
    assert torch.allclose(e.extras["attribution"], w * (x - base.mean(0)), atol=1e-6)
    assert e.extras["delta"].abs().max() < 1e-5


def test_gradient_shap_seeded_and_default_baselines(tiny, tiny_input):
    a = xai_lab.explain(tiny, tiny_input, method="gradient_shap", seed=3, n_samples=5, batch_size=2)
    b = xai_lab.explain(tiny, tiny_input, method="gradient_shap", seed=3, n_samples=5, batch_size=2)
    c = xai_lab.explain(tiny, tiny_input, method="gradient_shap", seed=4, n_samples=5, batch_size=2)
    assert torch.equal(a.saliency, b.saliency) and torch.equal(a.extras["delta"], b.extras["delta"])
    assert not torch.equal(a.saliency, c.saliency)
    n_base = len(shap.BLUR_SIGMAS) + len(shap.NOISE_LEVELS)
    assert a.forward_passes == 1 + n_base + 5 and a.backward_passes == 5
    base = shap.default_baselines(tiny_input, torch.Generator().manual_seed(0))
    assert base.shape == (n_base, 2, 3, 8, 8)
    blurred = base[: len(shap.BLUR_SIGMAS)]
    assert torch.allclose(blurred.mean(dim=(3, 4)), tiny_input.mean(dim=(2, 3)).expand(3, -1, -1), atol=0.3)


def test_gradient_shap_errors(tiny, tiny_input):
    with pytest.raises(ValueError, match="baselines must have shape"):
        xai_lab.explain(tiny, tiny_input, method="gradient_shap", baselines=torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="alphas must have shape"):
        xai_lab.explain(tiny, tiny_input, method="gradient_shap", n_samples=4, alphas=[0.5, 0.5])
    with pytest.raises(ValueError, match="baseline_index must lie"):
        xai_lab.explain(tiny, tiny_input, method="gradient_shap", n_samples=2, baselines=torch.zeros(2, 3, 8, 8),
                        baseline_index=[0, 2])
    with pytest.raises(ValueError, match="n_samples"):
        xai_lab.explain(tiny, tiny_input, method="gradient_shap", n_samples=0)


# ---------------------------------------------------------------- deep_shap

class ReLU6Net(nn.Module):
    """flatten -> linear(12 -> 6) -> ReLU6 -> linear(6 -> 3): DeepLIFT's rescale rule by hand."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc1, self.act, self.fc2 = nn.Linear(12, 6), nn.ReLU6(), nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(3 * torch.randn(p.shape, generator=g))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def test_deep_shap_rescale_rule_by_hand_on_relu6():
    """phi(x, b) = (x - b) * W1^T (w2 * (relu6(z) - relu6(z_b)) / (z - z_b)), averaged over b.
    captum alone treats ReLU6 as linear (plain gradient); ours applies the rescale rule."""
    pytest.importorskip("captum")
    net = ReLU6Net().eval()
    x = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    base = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    e = xai_lab.explain(net, x, method="deep_shap", target=2, baselines=base)
    w1, b1, w2 = net.fc1.weight.detach(), net.fc1.bias.detach(), net.fc2.weight[2].detach()
    expected = torch.zeros(2, 12)
    for i in range(2):
        for b in base:
            z, zb = w1 @ x[i].flatten() + b1, w1 @ b.flatten() + b1
            m = (z.clamp(0, 6) - zb.clamp(0, 6)) / (z - zb)
            expected[i] += (x[i].flatten() - b.flatten()) * (w1.T @ (w2 * m)) / 3
    assert (z.abs() > 6).any()  # the upper kink of ReLU6 is exercised
    assert torch.allclose(e.extras["attribution"].flatten(1), expected, rtol=1e-4, atol=1e-5)
    assert e.extras["delta"].abs().max() < 1e-4 and e.extras["delta_per_baseline"].shape == (2, 3)


@pytest.mark.filterwarnings("ignore:.*Setting forward, backward hooks")
def test_deep_shap_equals_captum_on_relu_net_and_counts_passes(tiny, tiny_input):
    captum = pytest.importorskip("captum.attr")
    base = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    reference, ref_delta = captum.DeepLiftShap(tiny).attribute(tiny_input, base, target=torch.tensor([1, 3]),
                                                                return_convergence_delta=True)
    images = []
    handle = tiny.register_forward_hook(lambda m, i, o: images.append(i[0].shape[0]))
    try:
        e = xai_lab.explain(tiny, tiny_input, method="deep_shap", target=[1, 3], baselines=base)
    finally:
        handle.remove()
    assert torch.allclose(e.extras["attribution"], reference.detach(), atol=1e-6)
    assert torch.allclose(e.extras["delta_per_baseline"], ref_delta.view(2, 4), atol=1e-5)
    # per image and baseline: x and b forward together, again apart for the deltas; + the targets' pass
    assert sum(images) == e.forward_passes * 2 == 4 * 4 * 2 + 2 and e.backward_passes == 2 * 4


def completeness_gap(model, x, targets, base, attribution):
    """|sum(phi) - (f(x) - mean_b f(b))| / |f(x) - mean_b f(b)|, from forward passes made here."""
    fb = torch.stack([target_logits(model, b, targets) for b in base])
    gap = target_logits(model, x, targets) - fb.mean(0)
    return ((attribution.flatten(1).sum(1) - gap).abs() / gap.abs()), gap


def test_deep_shap_completeness_on_efficientnet_lite0(lite0, small_pair):
    """Residual adds, "SAME" padding and batch norm are linear; with the rescale rule on every
    ReLU6 the attributions sum to f(x) - mean f(b) (captum alone: gaps of tens of logits)."""
    e = xai_lab.explain(lite0, small_pair, method="deep_shap", seed=0)
    base = shap.default_baselines(small_pair, torch.Generator().manual_seed(0))
    relative, gap = completeness_gap(lite0.model, small_pair, e.target, [b for b in base], e.extras["attribution"])
    assert (gap.abs() > 1).all() and (relative < 1e-3).all()
    assert torch.allclose(e.extras["delta"], e.extras["attribution"].flatten(1).sum(1) - gap, atol=1e-3)
    assert e.saliency.shape == (2, 96, 96) and e.forward_passes == 1 + 4 * len(base)


def test_deep_shap_completeness_on_tiny_with_default_baselines(tiny, tiny_input):
    e = xai_lab.explain(tiny, tiny_input, method="deep_shap", seed=2)
    base = shap.default_baselines(tiny_input, torch.Generator().manual_seed(2))
    relative, _ = completeness_gap(tiny, tiny_input, e.target, [b for b in base], e.extras["attribution"])
    assert (relative < 1e-3).all()


def test_deep_shap_errors(tiny, tiny_input, monkeypatch):
    with pytest.raises(ValueError, match="at least 2 baselines"):
        xai_lab.explain(tiny, tiny_input, method="deep_shap", baselines=torch.zeros(1, 3, 8, 8))
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    shap._deep_lift_shap_class.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install captum"):
            xai_lab.explain(tiny, tiny_input, method="deep_shap")
    finally:
        shap._deep_lift_shap_class.cache_clear()

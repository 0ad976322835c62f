import numpy as np
import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.metrics import local_lipschitz_estimate, max_sensitivity
from xai_lab.metrics.robustness import gaussian_noise, uniform_noise
from xai_lab.targets import Contrast, Labels, Probability, Sigmoid

from .toy_cnn import NO_NORMALIZATION, ToyCNN, toy_inputs


class Linear(nn.Module):
    """Logits [w . x + 1, 0] in float64."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))

    def forward(self, x):
        score = (x * self.w).sum((1, 2, 3)) + 1
        return torch.stack([score, torch.zeros_like(score)], 1)


@pytest.fixture
def linear():
    return Linear(), torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_by_hand_on_a_linear_model(linear):
    """input x gradient of w . x is sum_c w_c x_c: a perturbation δ moves it by sum_c w_c δ_c
    (to float32 rounding: explain returns float32 maps)."""
    model, x = linear
    samples, seed = 6, 3
    sens = max_sensitivity(model, x, "input_x_gradient", target=0, radius=0.3, samples=samples, seed=seed, batch_size=4)
    lip = local_lipschitz_estimate(model, x, "input_x_gradient", target=0, std=0.2, samples=samples, seed=seed)
    w = model.w.detach()
    g = torch.Generator().manual_seed(seed)
    uniform = [uniform_noise(x, 0.3, g) for _ in range(samples)]
    g = torch.Generator().manual_seed(seed)
    normal = [gaussian_noise(x, 0.2, g) for _ in range(samples)]
    clean = (w * x).sum(1).flatten(1).norm(dim=1)
    by_hand_sens = torch.stack([(w * d).sum(1).flatten(1).norm(dim=1) / clean for d in uniform]).T
    by_hand_lip = torch.stack([(w * d).sum(1).flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1) for d in normal]).T
    torch.testing.assert_close(sens["per_sample"], by_hand_sens, rtol=1e-6, atol=0)
    torch.testing.assert_close(sens["score"], by_hand_sens.max(1).values, rtol=1e-6, atol=0)
    torch.testing.assert_close(lip["score"], by_hand_lip.max(1).values, rtol=1e-6, atol=0)
    assert all(d.abs().max() <= 0.3 for d in uniform)
    absolute = max_sensitivity(model, x, "input_x_gradient", target=0, radius=0.3, samples=samples, seed=seed,
                               relative=False)
    torch.testing.assert_close(absolute["score"], (by_hand_sens * clean[:, None]).max(1).values)


def test_a_map_that_ignores_the_input_is_perfectly_robust(linear):
    model, x = linear  # the gradient of a linear model is w everywhere
    assert torch.equal(max_sensitivity(model, x, "saliency", target=0, samples=3)["score"], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(local_lipschitz_estimate(model, x, "saliency", target=0, samples=3)["score"],
                       torch.zeros(2, dtype=torch.float64))
    assert max_sensitivity.higher_is_better is False and local_lipschitz_estimate.higher_is_better is False


def test_seeded_batch_independent_and_targets_fixed_to_the_clean_image():
    model, x = ToyCNN(), toy_inputs(3)
    a = max_sensitivity(model, x, "input_x_gradient", samples=5, seed=2, batch_size=3)
    b = max_sensitivity(model, x, "input_x_gradient", samples=5, seed=2, batch_size=100)
    torch.testing.assert_close(a["per_sample"], b["per_sample"])
    assert torch.equal(a["target"], model(x).argmax(1))
    c = max_sensitivity(model, x, "input_x_gradient", samples=5, seed=9)
    assert not torch.equal(a["per_sample"], c["per_sample"])
    d = local_lipschitz_estimate(model, x, "gradcam", samples=2, layer="conv2")
    e = local_lipschitz_estimate(model, x, "gradcam", samples=2, options={"layer": "conv2"})
    torch.testing.assert_close(d["score"], e["score"])
    with pytest.raises(TypeError, match="both"):
        local_lipschitz_estimate(model, x, "gradcam", samples=2, layer="conv2", options={"layer": "conv2"})
    with pytest.raises(ValueError, match="radius"):
        max_sensitivity(model, x, "saliency", radius=-1.0)
    with pytest.raises(ValueError, match="samples"):
        local_lipschitz_estimate(model, x, "saliency", samples=0)


# Cross-check against Quantus 0.6.0 on a toy CNN, 32x32 images.

def _explain_func(model, inputs, targets, **kwargs):
    return xai_lab.explain(model, torch.from_numpy(inputs), "input_x_gradient", target=torch.from_numpy(targets),
                           seed=0).saliency[:, None].numpy()


def _replay(deltas):
    """A Quantus perturbation function that adds our noise draws, one per call, in order."""
    pending = iter(deltas)

    def perturb(arr, indices, **kwargs):
        return arr + next(pending).flatten(1).numpy()

    return perturb


def _quantus(metric_class, x, samples, perturb_func, **settings):
    quantus = pytest.importorskip("quantus")
    model = ToyCNN()
    metric = getattr(quantus, metric_class)(nr_samples=samples, perturb_func=perturb_func, disable_warnings=True,
                                            **settings)
    y = model(x).argmax(1).numpy()
    a = _explain_func(model, x.numpy(), y)
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y, a_batch=a, explain_func=_explain_func,
                             channel_first=True, device="cpu", batch_size=len(x)), dtype=np.float64)


def test_max_sensitivity_agrees_with_quantus():
    """Quantus adding our uniform draws: the same scores to float32 rounding (rel 1e-5)."""
    x, samples, seed = toy_inputs(), 8, 5
    ours = max_sensitivity(ToyCNN(), x, "input_x_gradient", radius=0.2, samples=samples, seed=seed)
    g = torch.Generator().manual_seed(seed)
    theirs = _quantus("MaxSensitivity", x, samples, _replay([uniform_noise(x, 0.2, g) for _ in range(samples)]))
    np.testing.assert_allclose(theirs, ours["score"].numpy(), rtol=1e-5, atol=0)
    assert ours["score"].min() > 0.05  # maps that move


def test_local_lipschitz_estimate_agrees_with_quantus_without_its_normalization():
    """Quantus adding our Gaussian draws with its normalization off: the same scores to float32
    rounding (rel 1e-5); by default its normalization divides the clean maps and each batch of
    perturbed maps by their own batch maximum, and gives other values."""
    x, samples, seed = toy_inputs(), 8, 5
    ours = local_lipschitz_estimate(ToyCNN(), x, "input_x_gradient", std=0.1, samples=samples, seed=seed)

    def draws():
        g = torch.Generator().manual_seed(seed)
        return [gaussian_noise(x, 0.1, g) for _ in range(samples)]

    theirs = _quantus("LocalLipschitzEstimate", x, samples, _replay(draws()), **NO_NORMALIZATION)
    np.testing.assert_allclose(theirs, ours["score"].numpy(), rtol=1e-5, atol=0)
    deltas = draws()
    normalized = _quantus("LocalLipschitzEstimate", x, samples, _replay(deltas))
    model = ToyCNN()
    y = model(x).argmax(1)
    clean = xai_lab.explain(model, x, "input_x_gradient", target=y, seed=0).saliency
    clean = clean / clean.abs().max()
    by_hand = []
    for d in deltas:
        moved = xai_lab.explain(model, x + d, "input_x_gradient", target=y, seed=0).saliency
        by_hand.append(((moved / moved.abs().max()) - clean).flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1))
    np.testing.assert_allclose(normalized, torch.stack(by_hand).max(0).values.numpy(), rtol=1e-5)
    assert np.abs(normalized / ours["score"].numpy() - 1).max() > 0.5


# Every target kind (xai_lab.targets), bound once to the clean images.

class TwoLinear(nn.Module):
    """Logits [w0 . x, w1 . x, 0] in float64."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64))

    def forward(self, x):
        a, b = (x[:, None] * self.w).sum((2, 3, 4)).unbind(1)
        return torch.stack([a, b, torch.zeros_like(a)], 1)


def test_max_sensitivity_of_a_contrast_by_hand(linear):
    """input x gradient of (w0 - w1) . x is sum_c (w0 - w1)_c x_c: δ moves it by sum_c (w0 - w1)_c δ_c."""
    _, x = linear
    model, samples, seed = TwoLinear(), 5, 1
    out = max_sensitivity(model, x, "input_x_gradient", target=Contrast(0, 1), radius=0.3, samples=samples, seed=seed,
                          batch_size=4)
    w = (model.w[0] - model.w[1]).detach()
    g = torch.Generator().manual_seed(seed)
    deltas = [uniform_noise(x, 0.3, g) for _ in range(samples)]
    clean = (w * x).sum(1).flatten(1).norm(dim=1)
    by_hand = torch.stack([(w * d).sum(1).flatten(1).norm(dim=1) for d in deltas]).T / clean[:, None]
    torch.testing.assert_close(out["per_sample"], by_hand, rtol=1e-6, atol=0)
    assert out["target"].tolist() == [0, 0] and out["explained"].name.startswith("contrast")
    class_0 = max_sensitivity(model, x, "input_x_gradient", target=0, radius=0.3, samples=samples, seed=seed)
    assert (class_0["score"] - out["score"]).abs().min() > 1e-3  # the contrast's maps are not class 0's


def test_local_lipschitz_of_a_probability_by_hand():
    """Probability(None): the class predicted on each clean image, kept for its perturbed copies;
    the maps by autograd of softmax(z)_c."""
    model, x, samples, seed = ToyCNN(), toy_inputs(3), 4, 6
    out = local_lipschitz_estimate(model, x, "input_x_gradient", target=Probability(), std=0.3, samples=samples,
                                   seed=seed, batch_size=6)
    predicted, rows = model(x).argmax(1), torch.arange(3)

    def maps(inputs):
        inputs = inputs.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs).softmax(1)[rows, predicted].sum(), inputs)
        return (inputs * grad).sum(1).detach()

    g = torch.Generator().manual_seed(seed)
    deltas = [gaussian_noise(x, 0.3, g) for _ in range(samples)]
    moved = [(model(x + d).argmax(1) != predicted).any() for d in deltas]
    clean = maps(x)
    by_hand = torch.stack([(maps(x + d) - clean).flatten(1).double().norm(dim=1) / d.flatten(1).double().norm(dim=1)
                           for d in deltas]).T
    torch.testing.assert_close(out["per_sample"], by_hand, rtol=1e-5, atol=0)
    assert torch.equal(out["target"], predicted) and any(moved)  # some copies predicted otherwise: classes kept


def test_robustness_of_several_labels_and_a_callable():
    """Relative max-sensitivity is blind to the scale of the score: a callable 3 z_c gives class
    c's scores; Labels([a, b]) is the sum of the two logits, whose gradient is the sum."""
    model, x = ToyCNN(), toy_inputs(2)
    settings = dict(samples=3, seed=0)
    plain = max_sensitivity(model, x, "input_x_gradient", target=2, **settings)
    tripled = max_sensitivity(model, x, "input_x_gradient", target=lambda z: 3 * z[:, 2], **settings)
    torch.testing.assert_close(tripled["per_sample"], plain["per_sample"], rtol=1e-5, atol=0)
    assert tripled["target"].tolist() == [-1, -1]
    labels = local_lipschitz_estimate(model, x, "saliency", target=Labels([1, 3]), **settings)
    assert labels["score"].shape == (2,) and (labels["score"] > 0).all()


def test_robustness_bad_target_kinds():
    model, x = ToyCNN(), toy_inputs(2)
    with pytest.raises(TypeError, match="target must be"):
        max_sensitivity(model, x, "saliency", target=0.5, samples=1)
    with pytest.raises(ValueError, match="one output"):
        local_lipschitz_estimate(model, x, "saliency", target=Sigmoid(), samples=1)
    with pytest.raises(ValueError, match="itself"):
        max_sensitivity(model, x, "saliency", target=Contrast(None, model(x).argmax(1)), samples=1)
    with pytest.raises(ValueError, match="linear in the logits"):  # the method's own refusal, through explain
        max_sensitivity(model, x, "lrp", target=Probability(0), samples=1)

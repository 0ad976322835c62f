import numpy as np
import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.metrics import random_logit

from .toy_cnn import NO_NORMALIZATION, ToyCNN, toy_inputs


class Opposite(nn.Module):
    """Logits [w . x, -w . x, 0]: class 1's input x gradient map is class 0's, negated."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        score = (x * self.w).sum((1, 2, 3))
        return torch.stack([score, -score, torch.zeros_like(score)], 1)


def test_known_answers():
    model = Opposite()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    out = random_logit(model, x, "input_x_gradient", target=0, other=1, similarity="pearson")
    torch.testing.assert_close(out["similarity"], -torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(out["other_maps"], -out["maps"])
    blind = random_logit(model, x, "sobel", target=0)  # an edge map: the same for every class
    torch.testing.assert_close(blind["similarity"], torch.ones(2, dtype=torch.float64))
    assert random_logit.higher_is_better is False and out["higher_is_better"] is False


def test_random_classes_are_seeded_and_never_the_target():
    model, x = ToyCNN(), toy_inputs(6)
    a = random_logit(model, x, "input_x_gradient", seed=1)
    assert torch.equal(a["target"], model(x).argmax(1)) and (a["other"] != a["target"]).all()
    assert torch.equal(a["other"], random_logit(model, x, "input_x_gradient", seed=1)["other"])
    draws = torch.stack([random_logit(model, x, "saliency", seed=s)["other"] for s in range(30)])
    assert set(draws.flatten().tolist()) == {0, 1, 2, 3, 4} and (draws != a["target"]).all()
    with pytest.raises(ValueError, match="differ"):
        random_logit(model, x, "saliency", other=a["target"])
    with pytest.raises(ValueError, match="out of range"):
        random_logit(model, x, "saliency", other=7)
    with pytest.raises(TypeError, match="both"):
        random_logit(model, x, "gradcam", layer="conv2", options={"layer": "conv2"})


# Cross-check against Quantus 0.6.0 on a toy CNN, 32x32 images.

def _quantus(x, similarity_func=None, **settings):
    """Quantus' scores and the off classes it asked its explain function for."""
    quantus = pytest.importorskip("quantus")
    model = ToyCNN()
    asked = []

    def explain_func(model, inputs, targets, **kwargs):
        asked.append(np.asarray(targets).copy())
        return xai_lab.explain(model, torch.from_numpy(inputs), "input_x_gradient", target=torch.from_numpy(targets),
                               seed=0).saliency[:, None].numpy()

    y = model(x).argmax(1).numpy()
    a = xai_lab.explain(model, x, "input_x_gradient", target=torch.from_numpy(y), seed=0).saliency[:, None].numpy()
    if similarity_func is not None:
        settings["similarity_func"] = similarity_func
    metric = quantus.RandomLogit(num_classes=5, seed=42, disable_warnings=True, **settings)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y, a_batch=a, explain_func=explain_func, channel_first=True,
                    device="cpu", batch_size=len(x))
    return np.asarray(scores, dtype=np.float64), torch.from_numpy(asked[-1])


def test_random_logit_agrees_with_quantus_with_the_same_classes():
    """Pearson (scipy's in Quantus, ours in xai_lab.metrics.agreement) of the same two maps: equal
    to 1e-6 (float32 maps)."""
    from quantus.functions.similarity_func import correlation_pearson

    x = toy_inputs()
    theirs, other = _quantus(x, correlation_pearson, **NO_NORMALIZATION)
    ours = random_logit(ToyCNN(), x, "input_x_gradient", other=other, similarity="pearson")
    np.testing.assert_allclose(theirs, ours["similarity"].numpy(), rtol=0, atol=1e-6)
    assert ours["similarity"].std() > 0.05


def test_quantus_default_ssim_is_one_dimensional_and_unscaled():
    """Quantus' default similarity is SSIM of the maps flattened to 1-d with their joint data
    range; given a 2-d SSIM of each map min-max scaled to [0, 1] (skimage, data range 1, as
    xai_lab.metrics.ssim defines it) it agrees with ours to 1e-6; its default does not."""
    from skimage.metrics import structural_similarity

    def scaled(m):
        m = m.reshape(32, 32)
        return (m - m.min()) / (m.max() - m.min())

    def ssim_2d(a, b, batched=False, **kwargs):
        return [structural_similarity(scaled(u), scaled(v), data_range=1.0) for u, v in zip(a, b)]

    x = toy_inputs()
    theirs, other = _quantus(x, ssim_2d, **NO_NORMALIZATION)
    ours = random_logit(ToyCNN(), x, "input_x_gradient", other=other)
    np.testing.assert_allclose(theirs, ours["similarity"].numpy(), rtol=0, atol=1e-6)
    default, _ = _quantus(x)
    assert np.abs(default - ours["similarity"].numpy()).max() > 0.05

import numpy as np
import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.metrics import random_logit
from xai_lab.models import Classifier
from xai_lab.targets import ClassIndex, Contrast, Labels, Logit, Probability, Sigmoid

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


# Every target kind (xai_lab.targets): one class per image, or a clear refusal.

def _input_x_gradient(model, x, score):
    """sum over channels of x * d score / d x, by autograd; ``score(logits)`` -> [N]."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(model(x)).sum(), x)
    return (x * grad).sum(1).detach()


def _pearson(a, b):
    return torch.stack([torch.corrcoef(torch.stack([u.flatten(), v.flatten()]))[0, 1] for u, v in zip(a, b)]).double()


def test_random_logit_with_a_probability_and_a_logit_by_hand():
    """Probability(t) is compared with Probability(o) for the same random o as a class index draws;
    Logit(t) with Logit(o)."""
    model, x = ToyCNN(), toy_inputs(4)
    rows = torch.arange(4)
    predicted = model(x).argmax(1)
    other = (predicted + torch.randint(1, 5, (4,), generator=torch.Generator().manual_seed(2))) % 5
    out = random_logit(model, x, "input_x_gradient", target=Probability(), similarity="pearson", seed=2)
    assert torch.equal(out["target"], predicted) and torch.equal(out["other"], other)
    maps = _input_x_gradient(model, x, lambda z: z.softmax(1)[rows, predicted])
    other_maps = _input_x_gradient(model, x, lambda z: z.softmax(1)[rows, other])
    torch.testing.assert_close(out["maps"], maps)
    torch.testing.assert_close(out["other_maps"], other_maps)
    torch.testing.assert_close(out["similarity"], _pearson(maps, other_maps), rtol=0, atol=1e-5)
    assert type(out["other_explained"]) is Probability and type(out["explained"]) is Probability
    logit = random_logit(model, x, "input_x_gradient", target=Logit([4, 3, 2, 1]), other=0, similarity="pearson")
    maps = _input_x_gradient(model, x, lambda z: z[rows, torch.tensor([4, 3, 2, 1])])
    other_maps = _input_x_gradient(model, x, lambda z: z[:, 0])
    torch.testing.assert_close(logit["similarity"], _pearson(maps, other_maps), rtol=0, atol=1e-5)
    assert type(logit["other_explained"]) is Logit and logit["other"].tolist() == [0] * 4
    plain = random_logit(model, x, "input_x_gradient", target=[4, 3, 2, 1], other=0, similarity="pearson")
    assert torch.equal(plain["similarity"], logit["similarity"]) and type(plain["other_explained"]) is ClassIndex


def test_random_logit_class_labels_with_a_classifier():
    model, x = ToyCNN(), toy_inputs(2)
    classifier = Classifier("toy", model, ["a", "b", "c", "d", "e"], "conv2", (0.0,) * 3, (1.0,) * 3)
    by_label = random_logit(classifier, x, "input_x_gradient", target=Probability("c"), other="e")
    by_index = random_logit(model, x, "input_x_gradient", target=Probability(2), other=4)
    assert torch.equal(by_label["similarity"], by_index["similarity"]) and by_label["other"].tolist() == [4, 4]


def test_random_logit_refuses_targets_that_are_not_one_class():
    """A contrast already compares two classes; several labels, a sigmoid or a callable have no
    class to swap: each is refused naming the kinds accepted."""
    model, x = ToyCNN(), toy_inputs(2)
    for target in (Contrast(0, 1), Labels([0, 2]), lambda z: z[:, 0]):
        with pytest.raises(ValueError, match=r"class index, Logit\(c\) or Probability\(c\)"):
            random_logit(model, x, "input_x_gradient", target=target)
    with pytest.raises(ValueError, match="one output"):
        random_logit(model, x, "input_x_gradient", target=Sigmoid())
    with pytest.raises(TypeError, match="target must be"):
        random_logit(model, x, "input_x_gradient", target=2.0)
    with pytest.raises(TypeError, match="other must be class indices"):
        random_logit(model, x, "input_x_gradient", target=0, other=Logit(1))
    with pytest.raises(ValueError, match="differ"):
        random_logit(model, x, "input_x_gradient", target=Probability(1), other=1)
    with pytest.raises(ValueError, match="other 'cat' is a class label"):
        random_logit(model, x, "input_x_gradient", target=0, other="cat")

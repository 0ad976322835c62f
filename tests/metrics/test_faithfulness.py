import warnings

import numpy as np
import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.metrics import faithfulness_correlation
from xai_lab.metrics.faithfulness import random_subsets
from xai_lab.targets import Contrast, Labels, Logit, Probability, Sigmoid

from .toy_cnn import ToyCNN, toy_inputs


class Linear(nn.Module):
    """Logits [w . x + 1, 0]."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        score = (x * self.w).sum((1, 2, 3)) + 1
        return torch.stack([score, torch.zeros_like(score)], 1)


@pytest.fixture
def linear():
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(3, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    return Linear(w), x


def test_exact_attribution_of_a_linear_model_correlates_perfectly(linear):
    model, x = linear
    exact = (model.w * (x - 0.0)).sum(1).detach()  # g_i = sum_c w_ci (x_ci - baseline)
    out = faithfulness_correlation(model, x, exact, target=0, subset_size=10, runs=20, baseline=0.0)
    torch.testing.assert_close(out["correlation"], torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(out["attribution_sums"], out["score_drops"], rtol=0, atol=1e-12)  # the two sides, equal
    flipped = faithfulness_correlation(model, x, -exact, target=0, subset_size=10, runs=20, baseline=0.0)
    torch.testing.assert_close(flipped["correlation"], -torch.ones(2, dtype=torch.float64))
    noise = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert (faithfulness_correlation(model, x, noise, target=0, subset_size=10, runs=20, baseline=0.0)["correlation"]
            < 0.9).all()
    assert faithfulness_correlation.higher_is_better is True and out["higher_is_better"] is True


def test_subsets_are_seeded_distinct_and_batch_independent(linear):
    model, x = linear
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = faithfulness_correlation(model, x, maps, target=0, subset_size=5, runs=7, baseline=0.0, seed=3, batch_size=1)
    b = faithfulness_correlation(model, x, maps, target=0, subset_size=5, runs=7, baseline=0.0, seed=3, batch_size=100)
    torch.testing.assert_close(a["correlation"], b["correlation"])
    assert torch.equal(a["subsets"], random_subsets(2, 64, 5, 7, torch.Generator().manual_seed(3)))
    assert all(len(set(s.tolist())) == 5 for s in a["subsets"].flatten(0, 1))
    c = faithfulness_correlation(model, x, maps, target=0, subset_size=5, runs=7, baseline=0.0, seed=4)
    assert not torch.equal(a["subsets"], c["subsets"])


def test_constant_map_scores_zero(linear):
    model, x = linear
    out = faithfulness_correlation(model, x, torch.ones(2, 8, 8), target=0, subset_size=5, runs=10, baseline=0.0)
    assert torch.equal(out["correlation"], torch.zeros(2, dtype=torch.float64))


def test_bad_arguments(linear):
    model, x = linear
    maps = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="subset_size"):
        faithfulness_correlation(model, x, maps, subset_size=65, baseline=0.0)
    with pytest.raises(ValueError, match="runs"):
        faithfulness_correlation(model, x, maps, runs=1, baseline=0.0)
    with pytest.raises(ValueError, match="Classifier"):
        faithfulness_correlation(model, x, maps, subset_size=5)  # "black" needs the input scaling
    with pytest.raises(ValueError, match="saliency"):
        faithfulness_correlation(model, x, maps[0:1], baseline=0.0)


# Cross-check against Quantus 0.6.0 on a toy CNN, 32x32 images.

@pytest.fixture
def toy():
    model, x = ToyCNN(), toy_inputs()
    maps = xai_lab.explain(model, x, "input_x_gradient", seed=0).saliency
    return model, x, maps


def _quantus_scores(model, x, maps, subset_size, runs, **settings):
    quantus = pytest.importorskip("quantus")
    metric = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=subset_size, return_aggregate=False,
                                             disable_warnings=True, **settings)
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=model(x).argmax(1).numpy(),
                             a_batch=maps[:, None].numpy(), channel_first=True, device="cpu", batch_size=len(x),
                             softmax=False), dtype=np.float64)


def test_faithfulness_correlation_agrees_with_quantus_on_the_same_pixels(toy, monkeypatch):
    """Quantus given our subsets, each pixel named in its 3 channels (so 3 * subset_size of its
    channel-value features), a zero baseline and logits: the same correlations to 1e-6."""
    model, x, maps = toy
    size, runs, seed = 40, 30, 7
    ours = faithfulness_correlation(model, x, maps, subset_size=size, runs=runs, baseline=0.0, seed=seed)
    subsets = random_subsets(len(x), 1024, size, runs, torch.Generator().manual_seed(seed))
    replay = iter([(subsets[i, r][None] + 1024 * torch.arange(3)[:, None]).flatten().numpy()
                   for r in range(runs) for i in range(len(x))])
    monkeypatch.setattr(np.random, "choice", lambda n, k, replace=True: next(replay))
    theirs = _quantus_scores(model, x, maps, 3 * size, runs, perturb_baseline=0.0)
    np.testing.assert_allclose(theirs, ours["correlation"].numpy(), rtol=0, atol=1e-6)
    assert ours["correlation"].std() > 0.01  # correlations that differ between images


def test_quantus_removes_single_channels_and_gives_nan_for_constant_drops(toy, monkeypatch):
    """Quantus' features are the C*H*W channel values: its random subsets split pixels; and where
    no subset changes the score its correlation is NaN where ours is 0.0."""
    model, x, maps = toy
    drawn = []
    original = np.random.choice

    def record(n, k, replace=True):
        drawn.append(original(n, k, replace=replace))
        return drawn[-1]

    monkeypatch.setattr(np.random, "choice", record)
    np.random.seed(0)
    _quantus_scores(model, x, maps, 60, 2, perturb_baseline=0.0)
    pixels = drawn[0] % 1024
    assert drawn[0].max() >= 1024 and len(set(pixels.tolist())) > 60 / 3  # not whole pixels
    blank = torch.zeros_like(x)  # images at the baseline: no subset changes the score
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy: "An input array is constant"
        theirs = _quantus_scores(model, blank, maps, 60, 5, perturb_baseline=0.0)
    assert np.isnan(theirs).all()
    ours = faithfulness_correlation(model, blank, maps, subset_size=20, runs=5, baseline=0.0)["correlation"]
    assert torch.equal(ours, torch.zeros(len(x), dtype=torch.float64))


# Every target kind (xai_lab.targets).

class TwoLinear(nn.Module):
    """Logits [w0 . x, w1 . x + 1, 0]: the contrast of class 0 with class 1 is (w0 - w1) . x - 1."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64))

    def forward(self, x):
        a, b = (x[:, None] * self.w).sum((2, 3, 4)).unbind(1)
        return torch.stack([a, b + 1, torch.zeros_like(a)], 1)


def test_exact_attribution_of_a_linear_contrast_correlates_perfectly(linear):
    _, x = linear
    model = TwoLinear()
    exact = ((model.w[0] - model.w[1]) * x).sum(1).detach()  # g_i = sum_c (w0 - w1)_ci (x_ci - 0)
    out = faithfulness_correlation(model, x, exact, target=Contrast(0, 1), subset_size=10, runs=20, baseline=0.0)
    torch.testing.assert_close(out["attribution_sums"], out["score_drops"], rtol=0, atol=1e-12)
    torch.testing.assert_close(out["correlation"], torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    class_0 = faithfulness_correlation(model, x, exact, target=0, subset_size=10, runs=20, baseline=0.0)
    assert (class_0["correlation"] < 0.9).all()  # the map of the contrast is not class 0's


def _drops_by_hand(model, x, subsets, score):
    """f(x) - f(x_S) [N, runs] with the pixels of each subset set to 0 in every channel."""
    drops = []
    for i, image in enumerate(x):
        perturbed = []
        for subset in subsets[i]:
            mask = torch.zeros(x.shape[-2] * x.shape[-1], dtype=torch.bool)
            mask[subset] = True
            perturbed.append(torch.where(mask.view(x.shape[-2:]), 0.0, image))
        drops.append(score(model(image[None]), i) - score(model(torch.stack(perturbed)), i))
    return torch.stack(drops).detach().double()


def test_faithfulness_with_a_contrast_and_a_probability_by_hand(toy):
    model, x, maps = toy
    size, runs, seed = 60, 12, 4
    subsets = random_subsets(len(x), 1024, size, runs, torch.Generator().manual_seed(seed))
    sums = torch.stack([maps[i].flatten().double()[subsets[i]].sum(1) for i in range(len(x))])
    b = [1, 0, 4, 3, 1, 0]
    predicted = model(x).argmax(1)
    cases = {Contrast(2, b): lambda z, i: z[:, 2] - z[:, b[i]],
             Probability(): lambda z, i: z.softmax(1)[:, predicted[i]]}
    for target, score in cases.items():
        out = faithfulness_correlation(model, x, maps, target=target, subset_size=size, runs=runs, baseline=0.0,
                                       seed=seed)
        drops = _drops_by_hand(model, x, subsets, score)
        torch.testing.assert_close(out["score_drops"], drops, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["attribution_sums"], sums)
        by_hand = torch.stack([torch.corrcoef(torch.stack([s, d]))[0, 1] for s, d in zip(sums, drops)])
        torch.testing.assert_close(out["correlation"], by_hand, rtol=0, atol=1e-5)
        assert out["correlation"].std() > 0.01
    assert out["target"].tolist() == predicted.tolist()


def test_faithfulness_class_index_reads_the_logit_and_target_objects_their_own_score(toy):
    model, x, maps = toy
    settings = dict(subset_size=40, runs=8, baseline=0.0, seed=2)
    plain = faithfulness_correlation(model, x, maps, target=3, **settings)
    logit = faithfulness_correlation(model, x, maps, target=Logit(3), **settings)
    assert torch.equal(plain["score_drops"], logit["score_drops"])
    labels = faithfulness_correlation(model, x, maps, target=Labels([0, 3]), **settings)
    class_0 = faithfulness_correlation(model, x, maps, target=0, **settings)
    float32 = dict(rtol=1e-5, atol=1e-6)  # float32 logits
    torch.testing.assert_close(labels["score_drops"], class_0["score_drops"] + plain["score_drops"], **float32)
    halved = faithfulness_correlation(model, x, maps, target=lambda z: z[:, 3] / 2, **settings)
    torch.testing.assert_close(halved["score_drops"], plain["score_drops"] / 2, **float32)
    torch.testing.assert_close(halved["correlation"], plain["correlation"], **float32)
    assert labels["target"].tolist() == [-1] * len(x)


def test_faithfulness_bad_target_kinds(toy):
    model, x, maps = toy
    settings = dict(subset_size=5, runs=2, baseline=0.0)
    with pytest.raises(TypeError, match="target must be"):
        faithfulness_correlation(model, x, maps, target=True, **settings)
    with pytest.raises(ValueError, match="one output"):
        faithfulness_correlation(model, x, maps, target=Sigmoid(positive=False), **settings)
    with pytest.raises(ValueError, match="out of range"):
        faithfulness_correlation(model, x, maps, target=Contrast(0, 5), **settings)
    with pytest.raises(ValueError, match="Classifier"):
        faithfulness_correlation(model, x, maps, target="cat", **settings)
    with pytest.raises(TypeError, match="floating-point"):
        faithfulness_correlation(model, x, maps, target=lambda z: z.argmax(1), **settings)

import math

import numpy as np
import pytest
import torch
from torch import nn

from xai_lab.metrics import noisy_linear_imputation, road
from xai_lab.metrics.road import NEIGHBOR_WEIGHTS, linear_imputation
from xai_lab.models import Classifier
from xai_lab.targets import Contrast, Labels, Logit, Probability, Sigmoid

from ..conftest import TinyConvNet
from .toy_cnn import NO_NORMALIZATION, ToyCNN, toy_inputs, toy_maps


def _neighbor_mean(image: torch.Tensor, r: int, c: int) -> torch.Tensor:
    """The weighted mean of pixel (r, c)'s neighbors inside the image, per channel, by hand."""
    h, w = image.shape[-2:]
    total, weights = torch.zeros(image.shape[0], dtype=torch.float64), 0.0
    for (dr, dc), weight in NEIGHBOR_WEIGHTS.items():
        if 0 <= r + dr < h and 0 <= c + dc < w:
            total += weight * image[:, r + dr, c + dc].double()
            weights += weight
    return total / weights


def test_weights_are_those_of_the_paper():
    assert sum(NEIGHBOR_WEIGHTS.values()) == pytest.approx(1.0)
    assert sorted(NEIGHBOR_WEIGHTS.values()) == [1 / 12] * 4 + [1 / 6] * 4


def test_imputed_pixels_are_the_weighted_mean_of_their_neighbors():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 9, 7, generator=g, dtype=torch.float64)
    mask = torch.rand(9, 7, generator=g) < 0.6
    mask[0, 0] = mask[8, 6] = True  # corners: 3 neighbors
    out = linear_imputation(x, mask)
    assert torch.equal(out[:, ~mask], x[:, ~mask])
    for r, c in mask.nonzero().tolist():
        torch.testing.assert_close(out[:, r, c], _neighbor_mean(out, r, c), rtol=0, atol=1e-12)


def test_one_removed_pixel_by_hand():
    x = torch.arange(9.0).view(1, 3, 3)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[1, 1] = True  # the center: its 8 neighbors weigh 1 in total
    expected = (1 + 3 + 5 + 7) / 6 + (0 + 2 + 6 + 8) / 12
    assert linear_imputation(x, mask)[0, 1, 1].item() == pytest.approx(expected)


def test_noise_is_seeded_gaussian_on_the_imputed_pixels_only():
    x = torch.randn(3, 40, 40, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[5:35, 5:35] = True
    plain = linear_imputation(x, mask)
    noisy = noisy_linear_imputation(x, mask, noise=0.5, generator=torch.Generator().manual_seed(2))
    again = noisy_linear_imputation(x, mask, noise=0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(noisy, again)
    residual = (noisy - plain)[:, mask]
    assert torch.equal((noisy - plain)[:, ~mask], torch.zeros_like(x[:, ~mask]))
    assert residual.std().item() == pytest.approx(0.5, rel=0.05) and abs(residual.mean().item()) < 0.03


def test_bad_imputation_arguments():
    x = torch.zeros(3, 4, 4)
    with pytest.raises(ValueError, match="every pixel"):
        linear_imputation(x, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        linear_imputation(x, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="noise"):
        noisy_linear_imputation(x, torch.zeros(4, 4, dtype=torch.bool), noise=-1.0)


class CenterBrightness(nn.Module):
    """Logits [10 * (mean of the center 4x4 over channels - 0.5), 0]: the center decides, and
    imputing it from the dark surround removes the class."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        score = 10 * (x[:, :, 6:10, 6:10].mean((1, 2, 3)) - 0.5)
        return torch.stack([score, torch.zeros_like(score) + self.dummy], 1)


@pytest.fixture
def bright_center():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 6:10, 6:10] = 1.0
    truth = torch.zeros(1, 16, 16)
    truth[..., 6:10, 6:10] = 1.0
    truth += torch.linspace(0, 1e-3, 256).view(1, 16, 16)  # no ties
    return CenterBrightness(), x, truth


def test_morf_of_the_true_map_drops_fastest_and_its_lerf_holds(bright_center):
    model, x, truth = bright_center
    rand = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    fractions = [0.02, 0.0625, 0.2, 0.5]
    true_morf = road(model, x, truth, target=0, fractions=fractions, noise=0.0)
    rand_morf = road(model, x, rand, target=0, fractions=fractions, noise=0.0)
    assert true_morf["correct"].tolist() == [[True, False, False, False]]  # 16 center pixels = 6.25 %
    assert rand_morf["score"][0, 1] > true_morf["score"][0, 1]
    assert true_morf["score"][0, 1].item() == pytest.approx(-5.0, abs=1e-4)  # imputed from zeros: mean 0
    true_lerf = road(model, x, truth, target=0, order="lerf", fractions=fractions, noise=0.0)
    assert true_lerf["correct"].all() and true_lerf["higher_is_better"] and not true_morf["higher_is_better"]
    assert road.higher_is_better == {"morf": False, "lerf": True}


def test_road_shapes_seed_batches_and_targets():
    model = TinyConvNet().eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))
    a = road(model, x, maps, fractions=[0.1, 0.5], seed=3, batch_size=1)
    b = road(model, x, maps, fractions=[0.1, 0.5], seed=3, batch_size=64)
    assert a["correct"].shape == (3, 2) and a["accuracy"].shape == (2,)
    torch.testing.assert_close(a["score"], b["score"])
    assert torch.equal(a["target"], model(x).argmax(1))
    c = road(model, x, maps, target=[0, 1, 2], fractions=[0.0], noise=0.0)
    torch.testing.assert_close(c["score"][:, 0], model(x)[[0, 1, 2], [0, 1, 2]].detach())
    with pytest.raises(ValueError, match="fractions"):
        road(model, x, maps, fractions=[1.0])
    with pytest.raises(ValueError, match="order"):
        road(model, x, maps, order="up")
    with pytest.raises(ValueError, match="saliency"):
        road(model, x, maps[:2])
    with pytest.raises(ValueError, match="out of range"):
        road(model, x, maps, target=9)


# Cross-check against Quantus 0.6.0 on a toy CNN, 32x32 images, maps without ties.

def _pixels_in_order(indices: np.ndarray, pixels: int) -> np.ndarray:
    """The distinct pixels of channel-value indices, in order of first appearance."""
    seen = indices % pixels
    _, first = np.unique(seen, return_index=True)
    return seen[np.sort(first)]


@pytest.fixture
def toy():
    return ToyCNN(), toy_inputs(), toy_maps()


def test_quantus_road_fails_on_three_channel_images(toy):
    """Quantus ranks the map broadcast over the 3 channels (C*H*W indices) and hands those to an
    imputer that indexes H*W pixels."""
    quantus = pytest.importorskip("quantus")
    model, x, maps = toy
    metric = quantus.ROAD(percentages=[50], noise=0.0, disable_warnings=True)
    with pytest.raises(IndexError):
        metric(model=model, x_batch=x.numpy(), y_batch=model(x).argmax(1).numpy(), a_batch=maps[:, None].numpy(),
               channel_first=True, device="cpu")


def test_road_agrees_with_quantus_given_the_pixels_its_order_names(toy):
    """Quantus' imputer handed the distinct pixels of its channel-value order (k values of the
    3 copies of each pixel: ceil(k / 3) pixels), without noise: the same imputed images to float32
    rounding and the same accuracy curve as ours at the fractions ceil(k / 3) / (H * W)."""
    quantus = pytest.importorskip("quantus")
    from quantus.functions.perturb_func import noisy_linear_imputation as quantus_imputation

    model, x, maps = toy
    pixels = 32 * 32
    images = []

    def imputation(arr, indices, **kwargs):
        out = quantus_imputation(arr, _pixels_in_order(np.asarray(indices), pixels), noise=0.0)
        images.append(out)
        return out

    percentages = [10, 30, 50, 70, 90]
    y = model(x).argmax(1).numpy()
    metric = quantus.ROAD(percentages=percentages, perturb_func=imputation, disable_warnings=True,
                          **NO_NORMALIZATION)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=y, a_batch=maps[:, None].numpy(), channel_first=True,
                    device="cpu", batch_size=len(x))
    counts = [math.ceil(int(pixels * p / 100) / 3) for p in percentages]
    ours = road(model, x, maps, fractions=[c / pixels for c in counts], noise=0.0)
    np.testing.assert_array_equal(np.array([theirs[p] for p in percentages]), ours["accuracy"].numpy())
    assert 0 < ours["accuracy"].min() < 1  # a curve that could disagree
    # our imputed images, percentage by percentage as Quantus made them
    for j, count in enumerate(counts):
        for i in range(len(x)):
            mask = torch.zeros(pixels, dtype=torch.bool)
            mask[maps[i].flatten().argsort(descending=True)[:count]] = True
            mine = linear_imputation(x[i], mask.view(32, 32)).numpy()
            np.testing.assert_allclose(images[j * len(x) + i], mine, rtol=0, atol=1e-5)


# Every target kind (xai_lab.targets), by hand on the toy CNN.

def _imputed_logits(model, x, maps, fractions, noise, seed):
    """The model's logits [N, F, C] on ROAD's imputed images, made here image by image and
    fraction by fraction (the order of the noise draws) from one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    pixels = x.shape[-2] * x.shape[-1]
    out = []
    for image, saliency in zip(x, maps):
        order = saliency.flatten().argsort(descending=True)  # maps without ties
        imputed = []
        for f in fractions:
            mask = torch.zeros(pixels, dtype=torch.bool)
            mask[order[:round(f * pixels)]] = True
            imputed.append(noisy_linear_imputation(image, mask.view(x.shape[-2:]), noise, g))
        out.append(model(torch.stack(imputed)).detach())
    return torch.stack(out)


def test_road_with_a_contrast_and_a_probability_by_hand(toy):
    model, x, maps = toy
    x, maps, fractions, seed = x[:3], maps[:3], [0.1, 0.4, 0.7], 3
    z = _imputed_logits(model, x, maps, fractions, 0.05, seed)                       # [N, F, C]
    b = [1, 0, 4]
    contrast = road(model, x, maps, target=Contrast(2, b), fractions=fractions, noise=0.05, seed=seed)
    torch.testing.assert_close(contrast["score"], torch.stack([z[i, :, 2] - z[i, :, b[i]] for i in range(3)]))
    assert "correct" not in contrast and "accuracy" not in contrast  # a contrast is no single class decision
    assert contrast["target"].tolist() == [2, 2, 2] and contrast["explained"].name.startswith("contrast")
    predicted = model(x).argmax(1)
    probability = road(model, x, maps, target=Probability(), fractions=fractions, noise=0.05, seed=seed)
    by_hand = torch.stack([z[i].softmax(1)[:, predicted[i]] for i in range(3)])
    torch.testing.assert_close(probability["score"], by_hand)
    correct = torch.stack([z[i].argmax(1) == predicted[i] for i in range(3)])
    assert torch.equal(probability["correct"], correct) and torch.equal(probability["target"], predicted)
    torch.testing.assert_close(probability["accuracy"], correct.double().mean(0))
    assert 0 < correct.double().mean() < 1  # a curve that could disagree


def test_road_class_index_logit_and_callable_read_the_same_logit(toy):
    """A plain class index keeps its logit (as before targets); Logit(c) is that logit, a
    callable its own score."""
    model, x, maps = toy
    settings = dict(fractions=[0.2, 0.6], noise=0.05, seed=1)
    plain = road(model, x, maps, target=[0, 1, 2, 3, 4, 0], **settings)
    logit = road(model, x, maps, target=Logit([0, 1, 2, 3, 4, 0]), **settings)
    assert torch.equal(plain["score"], logit["score"]) and torch.equal(plain["correct"], logit["correct"])
    doubled = road(model, x, maps, target=lambda z: 2 * z[:, 0], **settings)
    torch.testing.assert_close(doubled["score"], 2 * road(model, x, maps, target=0, **settings)["score"])
    assert doubled["target"].tolist() == [-1] * 6 and "accuracy" not in doubled
    labels = road(model, x, maps, target=Labels([0, 3]), **settings)
    z = _imputed_logits(model, x, maps, [0.2, 0.6], 0.05, 1)
    torch.testing.assert_close(labels["score"], z[..., 0] + z[..., 3])


def test_road_class_labels_with_a_classifier(toy):
    model, x, maps = toy
    classifier = Classifier("toy", model, ["a", "b", "c", "d", "e"], "conv2", (0.0,) * 3, (1.0,) * 3)
    by_label = road(classifier, x, maps, target=Contrast("c", "a"), fractions=[0.3], noise=0.0)
    by_index = road(model, x, maps, target=Contrast(2, 0), fractions=[0.3], noise=0.0)
    assert torch.equal(by_label["score"], by_index["score"])


def test_road_bad_target_kinds(toy):
    model, x, maps = toy
    with pytest.raises(TypeError, match="target must be"):
        road(model, x, maps, target=1.5)
    with pytest.raises(ValueError, match="one output"):
        road(model, x, maps, target=Sigmoid())
    with pytest.raises(ValueError, match="itself"):
        road(model, x, maps, target=Contrast(None, model(x).argmax(1)))
    with pytest.raises(ValueError, match="out of range"):
        road(model, x, maps, target=Labels([1, 7]))
    with pytest.raises(ValueError, match="Classifier"):
        road(model, x, maps, target=Probability("cat"))
    with pytest.raises(ValueError, match="one score per row"):
        road(model, x, maps, target=lambda z: z)

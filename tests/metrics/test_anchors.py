import numpy as np
import pytest
import torch
from torch import nn

from xai_lab.metrics.anchors import anchor_precision


class LeftTexture(nn.Module):
    """Class 0 iff the left half has texture: logits [10 * std(left half), 1]. Hiding the left
    superpixel (its mean) leaves std 0, so class 1."""

    def forward(self, x):
        return torch.stack([10 * x[..., :4].flatten(1).std(dim=1), torch.ones(len(x))], dim=1)


@pytest.fixture
def halves():
    x = torch.zeros(1, 3, 8, 8)
    x[..., :4] = torch.tensor([0.0, 1.0]).repeat(8, 2)  # 0/1 stripes in the left half, std about 0.5
    segments = torch.zeros(8, 8, dtype=torch.long)
    segments[:, 4:] = 1                                   # superpixel 0: left half, 1: right half
    return x, segments


def test_anchor_precision_by_hand(halves):
    x, segments = halves
    model = LeftTexture()
    assert int(model(x).argmax()) == 0
    assert anchor_precision(model, x, segments, [0]) == 1.0           # the left half kept: always class 0
    assert anchor_precision(model, x, segments, [0], target=1) == 0.0
    assert anchor_precision(model, x, segments, [1], p_sample=1.0) == 0.0  # the left half always hidden
    assert anchor_precision(model, x, segments, [], p_sample=0.0) == 1.0   # nothing hidden
    # no anchor: class 0 exactly when the left half happens to be kept, about half of the draws
    kept = np.random.default_rng(3).random((400, 2))[:, 0] >= 0.5
    assert anchor_precision(model, x, segments, [], samples=400, seed=3, batch_size=64) == kept.mean()
    assert 0.4 < kept.mean() < 0.6


def test_anchor_precision_checks_its_input(halves):
    x, segments = halves
    with pytest.raises(ValueError, match="anchor"):
        anchor_precision(LeftTexture(), x, segments, [2])
    with pytest.raises(ValueError, match="one image"):
        anchor_precision(LeftTexture(), x.repeat(2, 1, 1, 1), segments, [0])
    with pytest.raises(ValueError, match="p_sample"):
        anchor_precision(LeftTexture(), x, segments, [0], p_sample=1.5)


def test_anchor_precision_under_superimposed_hiding(halves):
    """A hidden superpixel takes the same pixels of a background image: a background with the
    left half's texture keeps class 0 whatever is hidden, a gray one removes it as the mean does."""
    x, segments = halves
    model = LeftTexture()
    textured, gray = 1 - x, torch.full_like(x, 0.5)  # textured: the stripes inverted
    assert anchor_precision(model, x, segments, [], p_sample=1.0, background_images=textured) == 1.0
    assert anchor_precision(model, x, segments, [], p_sample=1.0, background_images=gray) == 0.0
    assert anchor_precision(model, x, segments, [0], p_sample=1.0, background_images=gray) == 1.0
    # flat and superimposed hiding see the same keep pattern for one seed; the background decides
    kept = np.random.default_rng(3).random((400, 2))[:, 0] >= 0.5
    flat = anchor_precision(model, x, segments, [], samples=400, seed=3)
    assert flat == kept.mean() and 0.4 < flat < 0.6
    assert anchor_precision(model, x, segments, [], samples=400, seed=3, background_images=textured) == 1.0
    # a pool of backgrounds: one drawn per sample, after the keep pattern, from the same generator
    rng = np.random.default_rng(5)
    rng.random((400, 2))
    textured_drawn = rng.integers(2, size=400) == 0
    pool = torch.cat([textured, gray])
    assert anchor_precision(model, x, segments, [], samples=400, p_sample=1.0, seed=5,
                            background_images=pool) == textured_drawn.mean()
    assert 0.4 < textured_drawn.mean() < 0.6


def test_anchor_precision_backgrounds_are_pixels_with_a_classifier(halves):
    """With a Classifier the backgrounds are pixels in [0, 1], turned into model input by
    from_pixels; the gray pixel 0.5 is model input 0 here."""
    from xai_lab.models import Classifier

    x, segments = halves
    classifier = Classifier("left", LeftTexture(), ["texture", "flat"], "", (0.5,) * 3, (0.5,) * 3)
    model_input = classifier.from_pixels(x)
    gray_pixels = torch.full_like(x, 0.5)
    assert anchor_precision(classifier, model_input, segments, [], p_sample=1.0, background_images=x) == 1.0
    assert anchor_precision(classifier, model_input, segments, [], p_sample=1.0,
                            background_images=gray_pixels) == 0.0
    with pytest.raises(ValueError, match=r"background_images must be pixels in \[0, 1\]"):
        anchor_precision(classifier, model_input, segments, [0], background_images=x + 1)
    # a bare model takes them in model-input units, any finite values
    assert anchor_precision(LeftTexture(), x, segments, [0], background_images=x + 1) == 1.0


def test_anchor_precision_checks_its_backgrounds(halves):
    x, segments = halves
    for bad, error in [(torch.rand(1, 3, 4, 4), ValueError), (torch.rand(0, 3, 8, 8), ValueError),
                       (torch.rand(3, 8, 8), ValueError), (torch.full((1, 3, 8, 8), float("nan")), ValueError),
                       (np.zeros((1, 3, 8, 8)), TypeError), (torch.zeros(1, 3, 8, 8, dtype=torch.long), TypeError)]:
        with pytest.raises(error, match="background_images"):
            anchor_precision(LeftTexture(), x, segments, [0], background_images=bad)


def test_anchors_by_hiding_finds_and_cross_checks():
    """Class 0 iff the chosen superpixel has texture. Under flat hiding the anchor is that
    superpixel; under a noise background the empty anchor suffices. Checked across: the empty
    anchor holds only under the noise background (flat hiding keeps the texture about half the
    time), the superpixel holds under both; a skipped pair is not searched."""
    pytest.importorskip("alibi")
    from tests.methods.test_surrogates import SLIC, TextureVotes
    from xai_lab.methods.surrogates import segment
    from xai_lab.metrics import anchors_by_hiding

    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    segments = torch.as_tensor(segment(x[0].permute(1, 2, 0).numpy(), "slic", SLIC))
    chosen = int(segments[12, 12])
    model = TextureVotes([segments == chosen], x)
    hidings = {"flat": None, "noise": torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))}
    kw = dict(segmentation_kwargs=SLIC, batch_size=50, seed=0, progress=False)
    found, rows = anchors_by_hiding(model, torch.cat([x, x]), hidings, skip=[(1, "noise")], samples=200, **kw)
    assert list(found) == [(0, "flat"), (0, "noise"), (1, "flat")]
    flat, noise = rows[0], rows[1]
    assert flat["found with"] == "flat" and flat["anchor"] == [chosen] and noise["anchor"] == []
    assert flat["checked, flat"] == flat["checked, noise"] == 1.0
    assert noise["checked, noise"] == 1.0 and 0.3 < noise["checked, flat"] < 0.7
    assert rows[2] == {**flat, "image": 1}  # the same image again: the same search, the same checks
    with pytest.raises(ValueError, match="skip names hidings"):
        anchors_by_hiding(model, x, hidings, skip=[(0, "gray")], **kw)

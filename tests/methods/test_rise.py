import math

import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.methods.rise import rise_masks

REGION = ((4, 12), (18, 28))


class RegionMean(nn.Module):
    """Two classes: softmax over [scale * mean of x over REGION, 4]."""

    def __init__(self, scale=8.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        (r0, r1), (c0, c1) = REGION
        score = self.scale * x[:, :, r0:r1, c0:c1].mean(dim=(1, 2, 3))
        return torch.stack([score, torch.full_like(score, 4.0)], dim=1)


def test_masks_follow_the_paper_and_are_reproducible():
    idx = torch.arange(50)
    a = rise_masks((30, 40), idx, 50, 5, 0.3, seed=7)
    assert a.shape == (50, 1, 30, 40)
    assert torch.equal(a, rise_masks((30, 40), idx, 50, 5, 0.3, seed=7))
    assert not torch.equal(a, rise_masks((30, 40), idx, 50, 5, 0.3, seed=8))
    assert torch.equal(a[10:20], rise_masks((30, 40), idx[10:20], 50, 5, 0.3, seed=7))
    assert a.min() >= 0 and a.max() <= 1
    assert abs(float(a.mean()) - 0.3) < 0.05
    # An all-kept grid gives an all-ones mask; one kept cell gives a bump of width about 2 cells.
    assert torch.allclose(rise_masks((30, 40), idx[:3], 50, 5, 1.0, seed=1), torch.ones(3, 1, 30, 40))
    cell = math.ceil(40 / 5)
    assert ((a[:, 0, 15] > 0) & (a[:, 0, 15] < 1)).sum(1).max() >= cell


def test_rise_is_the_mask_weighted_mean_probability():
    model = RegionMean()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) + 0.5
    e = xai_lab.explain(model, x, method="rise", target=0, n_masks=64, cells=4, p=0.5, batch_size=10, seed=3)
    masks = rise_masks((32, 32), torch.arange(64), 64, 4, 0.5, e.extras["mask_seed"])
    with torch.no_grad():
        probs = torch.stack([torch.softmax(model(x * m), 1)[:, 0] for m in masks])  # [64, 2]
    expected = torch.einsum("kn,khw->nhw", probs, masks[:, 0]) / (64 * 0.5)
    assert torch.allclose(e.saliency, expected, atol=1e-5)
    assert e.forward_passes == 64


def test_rise_finds_the_region_and_is_seeded():
    model = RegionMean()
    x = torch.ones(1, 3, 32, 32)
    e = xai_lab.explain(model, x, method="rise", n_masks=500, cells=6, seed=0, progress=False)
    assert e.forward_passes == 500 + 1  # target=None: one pass to find the predicted class
    assert e.target.tolist() == [0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[4:12, 18:28] = True
    s = e.saliency[0]
    r, c = divmod(int(s.argmax()), 32)
    assert inside[r, c]
    assert s[inside].mean() > s[~inside].mean() + 3 * s[~inside].std()
    again = xai_lab.explain(model, x, method="rise", n_masks=500, cells=6, seed=0, progress=False)
    assert torch.equal(e.saliency, again.saliency) and e.extras == again.extras
    other = xai_lab.explain(model, x, method="rise", n_masks=500, cells=6, seed=1, progress=False)
    assert not torch.equal(e.saliency, other.saliency)


def test_rise_on_lite0_shares_masks_across_images(lite0, coffee_chelsea):
    """Each image's map does not depend on the other images in the batch."""
    x = torch.nn.functional.interpolate(coffee_chelsea, size=48, mode="bilinear", align_corners=False)
    both = xai_lab.explain(lite0, x, method="rise", target=[967, 281], n_masks=20, seed=5, progress=False)
    assert both.saliency.shape == (2, 48, 48) and both.forward_passes == 20
    masks = rise_masks((48, 48), torch.arange(20), 20, 7, 0.5, both.extras["mask_seed"])
    probs = lite0.predict_proba(x[1:] * masks)[:, 281]
    expected = (probs[:, None, None] * masks[:, 0]).sum(0) / (20 * 0.5)
    assert torch.allclose(both.saliency[1], expected, atol=1e-5)


def test_rise_rejects_bad_settings(tiny, tiny_input):
    with pytest.raises(ValueError, match="p must"):
        xai_lab.explain(tiny, tiny_input, method="rise", p=0.0)
    with pytest.raises(ValueError, match="n_masks"):
        xai_lab.explain(tiny, tiny_input, method="rise", n_masks=0)

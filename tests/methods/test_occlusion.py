import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xai_lab
from xai_lab.ops import gaussian_blur


class RegionMean(nn.Module):
    """logits = [scale * mean of x over rows/cols ``region`` (all channels), 0]."""

    def __init__(self, region, scale=1.0):
        super().__init__()
        self.region = region
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x):
        (r0, r1), (c0, c1) = self.region
        score = self.scale * x[:, :, r0:r1, c0:c1].mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_occlusion_by_hand_on_a_region_model():
    """Zero baseline: window W lowers the logit s = mean_R x by d_W = sum_{R and W} x / |R| (over
    the 3 channels) and the probability sigmoid(s) by sigmoid(s) - sigmoid(s - d_W); each pixel
    averages the windows covering it. 10 px, window 4, stride 4: windows start at 0, 4, 8 and
    the last one is clipped to 2 px."""
    model = RegionMean(((2, 7), (5, 10)))
    x = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(0)) + 0.5
    inside = torch.zeros(10, 10)
    inside[2:7, 5:10] = 1
    s = (x[0] * inside).sum() / (3 * inside.sum())
    logit, prob, count = torch.zeros(10, 10), torch.zeros(10, 10), torch.zeros(10, 10)
    for r in (0, 4, 8):
        for c in (0, 4, 8):
            window = torch.zeros(10, 10)
            window[r:r + 4, c:c + 4] = 1
            d = (x[0] * window * inside).sum() / (3 * inside.sum())
            logit += d * window
            prob += (torch.sigmoid(s) - torch.sigmoid(s - d)) * window
            count += window
    e = xai_lab.explain(model, x, method="occlusion", target=0, window=4, stride=4, output="logit")
    assert torch.allclose(e.saliency[0], logit / count, atol=1e-6)
    assert e.forward_passes == 1 + 9
    assert e.extras["windows"] == (3, 3)
    p = xai_lab.explain(model, x, method="occlusion", target=0, window=4, stride=4)
    assert torch.allclose(p.saliency[0], prob / count, atol=1e-6)
    assert (p.saliency[0, :, :4] == 0).all() and (p.saliency[0, 2:7, 5:10] > 0).all()


@pytest.mark.parametrize("baseline", ["zero", "mean", "blur"])
def test_occlusion_equals_captum(lite0, coffee_chelsea, baseline):
    captum = pytest.importorskip("captum.attr")
    x = F.interpolate(coffee_chelsea, size=40, mode="bilinear", align_corners=False)
    target = lite0.predict_proba(x).argmax(1)  # values large enough for atol=1e-5 to matter
    reference = {"zero": 0.0, "mean": x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous(),
                 "blur": gaussian_blur(x, 4.0)}[baseline]
    forward = lambda inputs: torch.softmax(lite0.model(inputs), dim=1)
    with torch.no_grad():
        ref = captum.Occlusion(forward).attribute(x, sliding_window_shapes=(3, 16, 16), strides=8, target=target,
                                                  baselines=reference, perturbations_per_eval=16)
    ours = xai_lab.explain(lite0, x, method="occlusion", target=target, window=16, stride=8, baseline=baseline,
                           sigma=4.0, progress=False)
    assert torch.allclose(ref[:, 0], ref[:, 2])  # the window spans the channels: one value per pixel
    assert torch.allclose(ours.saliency, ref[:, 0], atol=1e-5)
    assert ours.saliency.amax((1, 2)).min() > 0.3


def test_occlusion_clipped_windows_and_logits_equal_captum(tiny):
    """Window 4, stride 3 on 11 px: ceil(7 / 3) + 1 = 4 starts (0, 3, 6, 9), the last clipped."""
    captum = pytest.importorskip("captum.attr")
    x = torch.randn(2, 3, 11, 11, generator=torch.Generator().manual_seed(2))
    ref = captum.Occlusion(tiny).attribute(x, sliding_window_shapes=(3, 4, 4), strides=3, target=1)
    ours = xai_lab.explain(tiny, x, method="occlusion", target=1, window=4, stride=3, output="logit", batch_size=5)
    assert ours.extras["windows"] == (4, 4)
    assert torch.allclose(ours.saliency, ref[:, 0].detach(), atol=1e-6)


def test_predicted_class_costs_no_extra_pass(tiny, tiny_input):
    e = xai_lab.explain(tiny, tiny_input, method="occlusion", window=4, stride=2)
    assert torch.equal(e.target, tiny(tiny_input).argmax(1))
    assert e.forward_passes == 1 + 3 * 3


def test_occlusion_rejects_bad_settings(tiny, tiny_input):
    with pytest.raises(ValueError, match="stride"):
        xai_lab.explain(tiny, tiny_input, method="occlusion", window=2, stride=3)
    with pytest.raises(ValueError, match="window"):
        xai_lab.explain(tiny, tiny_input, method="occlusion", window=9, stride=3)
    with pytest.raises(ValueError, match="baseline"):
        xai_lab.explain(tiny, tiny_input, method="occlusion", window=2, stride=2, baseline="noise")
    with pytest.raises(ValueError, match="output"):
        xai_lab.explain(tiny, tiny_input, method="occlusion", window=2, stride=2, output="log")

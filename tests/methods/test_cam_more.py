import pytest
import torch

import xai_lab
from xai_lab.capture import hook_count

from ..by_hand import layer_output as _layer


def _gradcampp_map(A, d1, d2, d3):
    alpha = d2 / (2 * d2 + A.sum((2, 3), keepdim=True) * d3)
    weights = (torch.nan_to_num(alpha) * d1.clamp_min(0)).sum((2, 3), keepdim=True)
    return (weights * A).sum(1).clamp_min(0)


def _pearson(a, b):
    a, b = a.flatten(1) - a.flatten(1).mean(1, keepdim=True), b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


# --- CAM ---------------------------------------------------------------------------------------

def test_cam_by_hand(tiny, tiny_input):
    A, _ = _layer(tiny, "act2", tiny_input)
    w = tiny.fc.weight[torch.tensor([4, 0])].view(2, 3, 1, 1)
    expected = (w * A).sum(1).detach()
    e = xai_lab.explain(tiny, tiny_input, method="cam", layer="act2", head="fc", target=[4, 0])
    assert torch.allclose(e.layer_map, expected, atol=1e-6)
    assert (expected < 0).any(), "the default map keeps negative evidence (relu=False)"
    # The score is the spatial mean of the map plus the bias.
    logits = tiny(tiny_input).detach()
    assert torch.allclose(e.layer_map.mean((1, 2)) + tiny.fc.bias[[4, 0]], logits[[0, 1], [4, 0]], atol=1e-5)
    rectified = xai_lab.explain(tiny, tiny_input, method="cam", layer="act2", head="fc", target=[4, 0], relu=True)
    assert torch.allclose(rectified.layer_map, expected.clamp_min(0), atol=1e-6)
    assert e.forward_passes == 1 and e.backward_passes == 0


def test_cam_extras_split_the_score_into_channel_contributions(tiny, tiny_input):
    A, _ = _layer(tiny, "act2", tiny_input)
    e = xai_lab.explain(tiny, tiny_input, method="cam", layer="act2", head="fc", target=[4, 0])
    w, b = tiny.fc.weight[[4, 0]].detach(), tiny.fc.bias[[4, 0]].detach()
    assert torch.equal(e.extras["weights"], w) and torch.equal(e.extras["bias"], b)
    by_hand = w * A.detach().mean((2, 3))  # w_ck * mean_ij A_kij
    assert torch.allclose(e.extras["contributions"], by_hand, atol=1e-6)
    logits = tiny(tiny_input).detach()[[0, 1], [4, 0]]
    assert torch.allclose(e.extras["contributions"].sum(1) + e.extras["bias"], logits, atol=1e-5)
    tiny.fc.bias = None  # a fresh model per test
    assert torch.equal(xai_lab.explain(tiny, tiny_input, method="cam", layer="act2", head="fc").extras["bias"], torch.zeros(2))


def test_cam_errors(tiny, tiny_input):
    with pytest.raises(ValueError, match="no such head"):
        xai_lab.explain(tiny, tiny_input, method="cam", layer="act2")
    with pytest.raises(ValueError, match="expects 3 channels"):
        xai_lab.explain(tiny, tiny_input, method="cam", layer="act1", head="fc")
    with pytest.raises(ValueError, match="not an nn.Linear"):
        xai_lab.explain(tiny, tiny_input, method="cam", layer="act2", head="pool")
    assert hook_count(tiny) == 0


@pytest.mark.slow
def test_cam_refuses_vgg16(tiny_input):
    """VGG16 ends in three linear layers after flattening, not pooling + one linear: no CAM."""
    vgg = xai_lab.load_model("vgg16", weights=None)
    with pytest.raises(ValueError, match="'vgg16' has no such head"):
        xai_lab.explain(vgg, tiny_input, method="cam")
    assert vgg.model.training is False and hook_count(vgg.model) == 0


def test_cam_is_gradcam_times_hw_on_lite0(lite0, coffee_chelsea):
    """For global average pooling + linear, dy_c/dA_kij = w_ck / (h*w): Grad-CAM weights are w_c / (h*w)."""
    x, target = coffee_chelsea[:1], 967
    c = xai_lab.explain(lite0, x, method="cam", target=target)
    g = xai_lab.explain(lite0, x, method="gradcam", target=target, relu=False)
    h, w = c.layer_map.shape[-2:]
    assert (h, w) == (7, 7)
    assert torch.allclose(c.layer_map, g.layer_map * (h * w), rtol=1e-4, atol=1e-5 * float(c.layer_map.abs().max()))


# --- Smooth Grad-CAM++ ---------------------------------------------------------------------------

def test_smoothgradcampp_by_hand(tiny, tiny_input):
    """n_samples=2 on layer act1 (the gradient there depends on the input): average e^y G^p over
    the two noisy copies, drawn as explain draws them, then Grad-CAM++ with the clean activations."""
    x, target, sigma, seed = tiny_input, torch.tensor([2, 3]), 0.5, 11
    e = xai_lab.explain(tiny, x, method="smoothgradcampp", layer="act1", target=target, seed=seed,
                        n_samples=2, sigma=sigma, batch_size=2)
    eps = torch.randn((4, 3, 8, 8), generator=torch.Generator().manual_seed(seed))
    d = [0, 0, 0]
    for m in range(2):
        A_m, logits = _layer(tiny, "act1", x + sigma * eps[2 * m:2 * m + 2])
        y = logits.gather(1, target.view(-1, 1)).squeeze(1)
        (G,) = torch.autograd.grad(y.sum(), A_m)
        for p in range(3):
            d[p] = d[p] + y.detach().exp().view(-1, 1, 1, 1) * G ** (p + 1) / 2
    A, _ = _layer(tiny, "act1", x)
    expected = _gradcampp_map(A.detach(), *d)
    assert torch.allclose(e.layer_map, expected, rtol=1e-5, atol=1e-7)
    assert e.forward_passes == 3 and e.backward_passes == 2
    one_by_one = xai_lab.explain(tiny, x, method="smoothgradcampp", layer="act1", target=target, seed=seed,
                                 n_samples=2, sigma=sigma, batch_size=1)
    assert torch.allclose(one_by_one.layer_map, e.layer_map, rtol=1e-5, atol=1e-7)
    noisy_free = xai_lab.explain(tiny, x, method="gradcampp", layer="act1", target=target)
    assert not torch.allclose(noisy_free.layer_map, e.layer_map, rtol=1e-2)


def test_smoothgradcampp_without_noise_is_gradcampp(tiny, tiny_input):
    for layer in ("act1", "act2"):
        e = xai_lab.explain(tiny, tiny_input, method="smoothgradcampp", layer=layer, target=1, n_samples=3, sigma=0.0)
        ref = xai_lab.explain(tiny, tiny_input, method="gradcampp", layer=layer, target=1)
        assert torch.allclose(e.layer_map, ref.layer_map, rtol=1e-5, atol=1e-7), layer


def test_smoothgradcampp_filters(tiny, tiny_input):
    kw = dict(method="smoothgradcampp", layer="act1", target=0, seed=2, n_samples=2, sigma=0.3)
    full = xai_lab.explain(tiny, tiny_input, relu=False, **kw)
    every = xai_lab.explain(tiny, tiny_input, relu=False, filters=[0, 1, 2, 3], **kw)
    assert torch.allclose(every.layer_map, full.layer_map, atol=1e-6)
    two = xai_lab.explain(tiny, tiny_input, relu=False, filters=[3, 1], **kw)
    assert two.saliency.shape == (2, 8, 8) and two.extras["filter_maps"].shape == (2, 2, 8, 8)
    assert torch.allclose(two.extras["filter_maps"].sum(1), two.layer_map, atol=1e-6)
    assert torch.allclose(two.extras["filter_maps"], every.extras["filter_maps"][:, [3, 1]], atol=1e-6)
    rectified = xai_lab.explain(tiny, tiny_input, filters=[3, 1], **kw)
    assert torch.allclose(rectified.layer_map, two.layer_map.clamp_min(0), atol=1e-6)
    assert torch.allclose(rectified.extras["filter_maps"], two.extras["filter_maps"].clamp_min(0), atol=1e-6)
    with pytest.raises(ValueError, match="channel indices"):
        xai_lab.explain(tiny, tiny_input, filters=[4], **kw)


@pytest.mark.parametrize("region", [True, False])
def test_smoothgradcampp_neurons_clip_the_other_activations(tiny, tiny_input, region):
    """Without noise: Grad-CAM++ of the network whose act1 output is A * mask, by hand."""
    neurons = [(1, 2), (4, 5)]
    mask = torch.zeros(8, 8)
    if region:
        mask[1:5, 2:6] = 1
    else:
        mask[1, 2] = mask[4, 5] = 1
    handle = tiny.act1.register_forward_hook(lambda m, i, o: o * mask)
    try:
        A, logits = _layer(tiny, "act1", tiny_input)
    finally:
        handle.remove()
    y = logits[:, 4]
    (G,) = torch.autograd.grad(y.sum(), A)
    e_y = y.detach().exp().view(-1, 1, 1, 1)
    expected = _gradcampp_map(A.detach(), e_y * G, e_y * G ** 2, e_y * G ** 3)
    e = xai_lab.explain(tiny, tiny_input, method="smoothgradcampp", layer="act1", target=4, n_samples=1, sigma=0.0,
                        neurons=neurons, region=region)
    assert torch.allclose(e.layer_map, expected, rtol=1e-5, atol=1e-7)
    assert (e.layer_map[:, mask == 0] == 0).all() and (e.layer_map[:, mask == 1] > 0).any()
    assert hook_count(tiny) == 0
    with pytest.raises(ValueError, match="inside the 8x8 feature map"):
        xai_lab.explain(tiny, tiny_input, method="smoothgradcampp", layer="act1", neurons=[(8, 0)])
    assert hook_count(tiny) == 0


@pytest.mark.slow
def test_smoothgradcampp_on_lite0_against_torchcam(lite0, coffee_chelsea):
    """variant="torchcam" with the same noise (torchcam draws from the global generator, one copy
    at a time: the same numbers as explain's generator with the same seed) equals torchcam's map.
    The paper's formula at a layer followed by pooling + linear is Grad-CAM++ up to a positive
    scale: dy/dA = w_c/(h*w) does not depend on the input, so the noise only rescales e^y."""
    torchcam = pytest.importorskip("torchcam.methods")
    x, target, seed = coffee_chelsea[:1], [967], 5
    torch.manual_seed(seed)
    with torchcam.SmoothGradCAMpp(lite0.model, "features", num_samples=3, std=0.3) as extractor:
        lite0.model(x)
        ref = extractor(class_idx=target, normalized=False)[0]
    ours = xai_lab.explain(lite0, x, method="smoothgradcampp", target=target, seed=seed, n_samples=3, sigma=0.3,
                           batch_size=2, variant="torchcam")
    assert torch.allclose(ours.layer_map, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    assert hook_count(lite0.model) == 0

    paper = xai_lab.explain(lite0, x, method="smoothgradcampp", target=target, seed=seed, n_samples=3, sigma=0.3)
    plain = xai_lab.explain(lite0, x, method="gradcampp", target=target)
    assert _pearson(paper.layer_map, plain.layer_map).min() > 0.9999
    assert _pearson(paper.layer_map, ref).max() < 0.99  # torchcam's last-copy activations change the map
    quiet = xai_lab.explain(lite0, x, method="smoothgradcampp", target=target, n_samples=2, sigma=0.0)
    assert torch.allclose(quiet.layer_map, plain.layer_map, rtol=1e-4, atol=1e-6 * float(plain.layer_map.abs().max()))

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xai_lab


def _activations(model, x, layer):
    store = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    return store["a"], logits


def _pearson(a, b):
    return float(np.corrcoef(np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel())[0, 1])


def _grad_cam_library(cls, model, layer, x, targets, attributes=None, **kwargs):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = cls(model, [dict(model.named_modules())[layer]], **kwargs)
    for name, value in (attributes or {}).items():
        setattr(cam, name, value)
    try:
        return cam(x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()


@pytest.fixture(scope="module")
def small_pair(coffee_chelsea):
    """coffee and chelsea at 96 x 96, to keep the per-channel forward passes cheap."""
    return F.interpolate(coffee_chelsea, size=96, mode="bilinear", antialias=True, align_corners=False)


def test_scorecam_by_hand(tiny, tiny_input):
    """The act2 map is 8 x 8 like the input: masks are the min-max scaled channels themselves."""
    A, _ = _activations(tiny, tiny_input, "act2")
    low, high = A.amin((2, 3), keepdim=True), A.amax((2, 3), keepdim=True)
    masks = torch.where(high > low, (A - low) / (high - low), torch.zeros_like(A))
    target = 3
    with torch.no_grad():
        logits = torch.stack([tiny(tiny_input * masks[:, k:k + 1]) for k in range(3)], dim=1)  # [N, K, classes]
    prob = torch.softmax(logits, dim=2)[..., target]
    prob = torch.where((high > low).view(2, 3), prob, torch.zeros_like(prob))
    expected = (prob[:, :, None, None] * A).sum(1).clamp_min(0)
    e = xai_lab.explain(tiny, tiny_input, method="scorecam", layer="act2", target=target, batch_size=4)
    assert torch.allclose(e.layer_map, expected, atol=1e-6)
    assert torch.allclose(e.extras["weights"], prob, atol=1e-7)
    assert e.forward_passes == 1 + 3

    library = torch.softmax(logits[..., target], dim=1)
    lib = xai_lab.explain(tiny, tiny_input, method="scorecam", layer="act2", target=target, score="logit")
    assert torch.allclose(lib.layer_map, (library[:, :, None, None] * A).sum(1).clamp_min(0), atol=1e-6)


def test_scorecam_matches_grad_cam_library(lite0, small_pair):
    """grad-cam's ScoreCAM (softmax over channels of the target logits, corner-aligned mask upsampling)."""
    from pytorch_grad_cam import ScoreCAM

    layer, targets = "features.blocks.0", [967, 285]  # 16 channels: 32 masked forward passes
    ours = xai_lab.explain(lite0, small_pair, method="scorecam", layer=layer, target=targets, score="logit",
                           align_corners=True, batch_size=64, progress=False)
    ref = _grad_cam_library(ScoreCAM, lite0.model, layer, small_pair, targets, attributes={"batch_size": 64})
    for i in range(2):
        assert _pearson(ours.saliency[i], ref[i]) >= 0.99


def test_ablationcam_by_hand(tiny, tiny_input):
    """Zero one channel of act2 at a time and run the head (pool + linear) by hand."""
    A, logits = _activations(tiny, tiny_input, "act2")
    target = 2
    head = lambda a: tiny.fc(tiny.flatten(tiny.pool(a)))[:, target]
    y = logits[:, target]
    y_k = torch.stack([head(A * (torch.arange(3) != k).view(1, 3, 1, 1)) for k in range(3)], dim=1).detach()
    weights = (y[:, None] - y_k) / y[:, None]
    expected = (weights[:, :, None, None] * A).sum(1).clamp_min(0)
    for tail_only in (True, False):
        e = xai_lab.explain(tiny, tiny_input, method="ablationcam", layer="act2", target=target, batch_size=2,
                            tail_only=tail_only)
        assert torch.allclose(e.extras["ablated_scores"], y_k, atol=1e-6)
        # sum_k w_k A_k cancels where the terms have opposite signs: float32 rounding is relative to
        # sum_k |w_k A_k|, not to the (small) result, and depends on the CPU's kernels
        magnitude = (weights.abs()[:, :, None, None] * A).sum(1)
        assert ((e.layer_map - expected).abs() <= 1e-5 * magnitude + 1e-6).all()
        assert e.forward_passes == 1 + 3
    assert "forward" not in vars(tiny.act2)  # the layer computes again afterwards
    assert torch.allclose(_activations(tiny, tiny_input, "act2")[0], A)


def test_ablationcam_computes_the_layer_only_in_the_clean_pass(tiny, tiny_input):
    """The layer's own forward runs for the clean pass only, not again per image or per chunk of
    channels (its recorded output is reused), and is back in place afterwards."""
    computed = []
    own = tiny.act2.forward
    tiny.act2.forward = lambda a: computed.append(len(a)) or own(a)
    counting = tiny.act2.forward
    try:
        for tail_only in (True, False):
            for target in (1, None):  # None: the predicted class, bound from the clean pass's logits
                computed.clear()
                e = xai_lab.explain(tiny, tiny_input, method="ablationcam", layer="act2", target=target,
                                    batch_size=2, tail_only=tail_only)
                assert computed == [2]  # the clean batch of 2 images
                assert e.forward_passes == 1 + 3
        assert tiny.act2.forward is counting
    finally:
        del tiny.act2.forward


def test_ablationcam_tail_only_across_a_skip_connection(resnet18):
    """layer2.0.conv1 sits inside a residual block whose shortcut comes from before it: the shortcut
    of the single image broadcasts over the ablated copies, as sending whole copies does."""
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kwargs = dict(method="ablationcam", layer="layer2.0.conv1", target=7, batch_size=128, progress=False)
    fast = xai_lab.explain(resnet18, x, tail_only=True, **kwargs)
    full = xai_lab.explain(resnet18, x, tail_only=False, **kwargs)
    assert torch.allclose(fast.extras["ablated_scores"], full.extras["ablated_scores"], rtol=1e-4, atol=1e-5)
    assert fast.forward_passes == full.forward_passes == 1 + 128


def test_ablationcam_matches_grad_cam_library(lite0, small_pair):
    """grad-cam zeroes the channel when the layer's minimum is 0 (ReLU6 output here), as the paper
    does; it replaces the layer "features" by its cached output, as ablationcam does."""
    from pytorch_grad_cam import AblationCAM

    targets = [967, 285]
    ours = xai_lab.explain(lite0, small_pair, method="ablationcam", target=targets, batch_size=16, progress=False)
    ref = _grad_cam_library(AblationCAM, lite0.model, "features", small_pair, targets, batch_size=16)
    for i in range(2):
        assert _pearson(ours.saliency[i], ref[i]) >= 0.99


def test_eigencam_by_hand_and_target_free(tiny, tiny_input):
    A, _ = _activations(tiny, tiny_input, "act2")
    expected = []
    for a in A.double().numpy():
        M = a.reshape(3, -1).T
        M = M - M.mean(0)
        v = np.linalg.svd(M, full_matrices=False)[2][0]
        p = M @ v
        p = p if np.dot(p - p.mean(), a.sum(0).ravel()) >= 0 else -p
        expected.append(np.maximum(p, 0).reshape(8, 8))
    e0 = xai_lab.explain(tiny, tiny_input, method="eigencam", layer="act2", target=0)
    e4 = xai_lab.explain(tiny, tiny_input, method="eigencam", layer="act2", target=4)
    assert np.allclose(e0.layer_map.numpy(), np.stack(expected), atol=1e-5)
    assert torch.equal(e0.saliency, e4.saliency)
    assert e0.forward_passes == 1 and e0.backward_passes == 0


def test_eigencam_matches_grad_cam_library(lite0, coffee_chelsea):
    from pytorch_grad_cam import EigenCAM

    ours = xai_lab.explain(lite0, coffee_chelsea, method="eigencam", progress=False)
    ref = _grad_cam_library(EigenCAM, lite0.model, "features", coffee_chelsea, ours.target)
    for i in range(2):
        assert _pearson(ours.saliency[i], ref[i]) >= 0.99

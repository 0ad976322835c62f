import pytest
import torch
from torch import nn

import xai_lab

from ..by_hand import activations_and_gradients


def _manual_gradcam(model, x, layer, target, to_map):
    a, g, _ = activations_and_gradients(model, x, target, layer)
    A, G = to_map(a), to_map(g)
    return (G.mean((2, 3), keepdim=True) * A).sum(1).clamp_min(0)


@pytest.mark.parametrize("name,to_map,side", [
    ("vit_b_16", lambda t: t[:, 1:].reshape(t.shape[0], 14, 14, -1).permute(0, 3, 1, 2), 14),
    ("swin_t", lambda t: t.permute(0, 3, 1, 2), 7),
])
def test_token_maps_are_reshaped_automatically(name, to_map, side):
    torch.manual_seed(0)
    clf = xai_lab.load_model(name, weights=None)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    e = xai_lab.explain(clf, x, method="gradcam", target=3)
    assert e.layer_map.shape == (1, side, side) and e.saliency.shape == (1, 224, 224)
    assert torch.isfinite(e.saliency).all()
    expected = _manual_gradcam(clf.model, x, clf.default_layer, 3, to_map)
    assert torch.allclose(e.layer_map, expected, rtol=1e-4, atol=1e-7)
    explicit = xai_lab.explain(clf, x, method="gradcam", target=3, reshape=to_map)
    assert torch.equal(explicit.layer_map, e.layer_map)


def test_a_sequence_that_is_not_a_grid_needs_reshape(tiny, tiny_input):
    class Tokens(torch.nn.Module):
        def forward(self, x):
            return x.flatten(2).transpose(1, 2)[:, :7]      # 7 tokens: not a square grid

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), Tokens(), torch.nn.Flatten(), torch.nn.Linear(21, 2))
    with pytest.raises(ValueError, match="reshape="):
        xai_lab.explain(model, tiny_input, method="gradcam", layer="1", target=0)


def _small_vit():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=5).eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero: every logit 0
    return model


def _small_swin():
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    return SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=[2, 2],
                           num_classes=5).eval()


CAMS = [name for name in xai_lab.methods() if xai_lab.registry.method_spec(name).family == "cam" and name != "cam"]


@pytest.mark.parametrize("method", CAMS)
@pytest.mark.parametrize("make,layer,side", [(_small_vit, "encoder.layers.encoder_layer_1.ln_1", 4),
                                             (_small_swin, "norm", 4)])
def test_every_cam_runs_on_token_maps(method, make, layer, side):
    """Every CAM (gradient-based or not) turns ViT's [N, 1 + h*w, C] and Swin's [N, h, w, C] into
    feature maps through the one layer_activations."""
    model = make()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    e = xai_lab.explain(model, x, method=method, layer=layer, target=[1, 2], seed=0)
    assert e.layer_map.shape == (2, side, side) and e.saliency.shape == (2, 32, 32)
    assert torch.isfinite(e.saliency).all()
    assert xai_lab.capture.hook_count(model) == 0


def test_ablationcam_on_vit_zeroes_a_channel_of_every_token():
    """Ablation-CAM's weight of channel k on a ViT: the relative drop of the target logit when
    channel k of every token (class token included) of the layer's output is set to zero."""
    model = _small_vit()
    layer = "encoder.layers.encoder_layer_1.ln_1"
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    e = xai_lab.explain(model, x, method="ablationcam", layer=layer, target=3)
    module = dict(model.named_modules())[layer]
    with torch.no_grad():
        y = model(x)[0, 3]
        for k in (0, 5, 15):
            handle = module.register_forward_hook(lambda m, i, o, k=k: o.index_fill(-1, torch.tensor([k]), 0.0))
            try:
                ablated = model(x)[0, 3]
            finally:
                handle.remove()
            assert torch.allclose(e.extras["weights"][0, k], (y - ablated) / y, rtol=1e-4, atol=1e-6)

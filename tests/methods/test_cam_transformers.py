import pytest
import torch

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

import pytest
import torch

import xai_lab
from xai_lab.capture import hook_count
from xai_lab.metrics import sanity_check
from xai_lab.metrics.sanity import parameter_layers


def test_cascading_randomization_changes_gradcam_but_not_sobel(tiny, tiny_input):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    grad = sanity_check(tiny, tiny_input, "gradcam", layer="act2", target=1)
    assert grad["layers"] == ["fc", "conv2", "conv1"]
    assert grad["spearman"].shape == (3, 2) and grad["maps"].shape == (3, 2, 8, 8)
    assert grad["spearman"][-1].abs().max() < 0.9
    edges = sanity_check(tiny, tiny_input, "sobel", target=1)
    assert torch.allclose(edges["spearman"], torch.ones(3, 2)) and torch.allclose(edges["ssim"], torch.ones(3, 2))
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())  # the model itself is untouched
    assert hook_count(tiny) == 0
    assert (grad["random_target"] != grad["original"].new_tensor([1, 1]).long()).all()


def test_grouped_steps(tiny, tiny_input):
    out = sanity_check(tiny, tiny_input, "saliency", target=0, steps=2)
    assert len(out["layers"]) == 2 and out["layers"][-1] == "conv1"
    assert parameter_layers(tiny) == ["conv1", "conv2", "fc"]


def test_method_options_as_a_dict(tiny, tiny_input):
    out = sanity_check(tiny, tiny_input, "integrated_gradients", target=0, steps=2, options={"steps": 4})
    assert len(out["layers"]) == 2  # the cascade's stages ...
    ig4 = xai_lab.explain(tiny, tiny_input, method="integrated_gradients", target=0, seed=0, steps=4)
    assert torch.allclose(out["original"], ig4.saliency)  # ... and the method's own quadrature points
    keywords = sanity_check(tiny, tiny_input, "gradcam", target=1, options={"layer": "act2"})
    by_keyword = sanity_check(tiny, tiny_input, "gradcam", layer="act2", target=1)
    assert torch.equal(keywords["spearman"], by_keyword["spearman"])
    with pytest.raises(TypeError, match="both"):
        sanity_check(tiny, tiny_input, "saliency", options={"abs": False}, abs=True)

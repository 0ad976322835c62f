import torch

from xai_lab.capture import hook_count
from xai_lab.metrics import sanity_check
from xai_lab.metrics.sanity import parameter_layers


def test_cascading_randomisation_changes_gradcam_but_not_sobel(tiny, tiny_input):
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

import gc

import pytest
import torch

import xai_lab
from xai_lab.capture import hook_count
from xai_lab.explain import Explanation
from xai_lab.ops import normalize_per_image


def test_methods_lists_the_foundation_methods():
    names = xai_lab.methods()
    assert {"saliency", "gradcam"} <= set(names) and names == sorted(names)


def test_explanation_fields(lite0, coffee_chelsea):
    e = xai_lab.explain(lite0, coffee_chelsea, method="gradcam", seed=0)
    assert isinstance(e, Explanation)
    assert e.saliency.shape == (2, 224, 224) and e.layer_map.shape == (2, 7, 7)
    assert e.method == "gradcam" and e.layer == "features"
    assert e.forward_passes == 1 and e.backward_passes == 1 and e.seconds > 0
    with torch.no_grad():
        assert e.target.tolist() == lite0.model(coffee_chelsea).argmax(1).tolist()
    assert e.target.tolist()[0] == lite0.categories.index("espresso")


def test_single_image_and_explicit_targets(lite0, coffee_chelsea):
    one = xai_lab.explain(lite0, coffee_chelsea[0], method="saliency", target=5)
    assert one.saliency.shape == (1, 224, 224) and one.target.tolist() == [5]
    two = xai_lab.explain(lite0, coffee_chelsea, method="saliency", target=[1, 2])
    assert two.target.tolist() == [1, 2]


def test_normalized_is_per_image_and_never_nan():
    maps = torch.stack([torch.arange(4.0).view(2, 2), torch.zeros(2, 2), torch.full((2, 2), 3.0)])
    out = normalize_per_image(maps)
    assert torch.equal(out[0], torch.tensor([[0, 1 / 3], [2 / 3, 1]]))
    assert torch.equal(out[1], torch.zeros(2, 2)) and torch.equal(out[2], torch.zeros(2, 2))
    e = Explanation(saliency=maps, target=torch.zeros(3, dtype=torch.long), method="x")
    assert torch.equal(e.normalized(), out)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(224, 224), "shape"),
    (torch.zeros(1, 1, 3, 224, 224), "shape"),
    (torch.zeros(1, 1, 224, 224), "3 color channels"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "float"),
    (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
])
def test_bad_input_shapes(lite0, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        xai_lab.explain(lite0, bad, method="gradcam")


def test_bad_method_layer_target_and_option(lite0, coffee_chelsea):
    with pytest.raises(ValueError, match="Did you mean gradcam"):
        xai_lab.explain(lite0, coffee_chelsea, method="gradcma")
    with pytest.raises(ValueError, match="close names: features"):
        xai_lab.explain(lite0, coffee_chelsea, method="gradcam", layer="featurs")
    with pytest.raises(ValueError, match="out of range.*1000 classes"):
        xai_lab.explain(lite0, coffee_chelsea, method="gradcam", target=1000)
    with pytest.raises(ValueError, match="one per image"):
        xai_lab.explain(lite0, coffee_chelsea, method="gradcam", target=[1, 2, 3])
    with pytest.raises(TypeError, match="no option bogus"):
        xai_lab.explain(lite0, coffee_chelsea, method="gradcam", bogus=1)
    assert hook_count(lite0.model) == 0


def test_hooks_removed_after_an_exception(lite0):
    x = torch.zeros(1, 3, 64, 64)
    for method in xai_lab.methods():
        with pytest.raises(ValueError):
            xai_lab.explain(lite0, x, method=method, target=-1)
        assert hook_count(lite0.model) == 0, method


def test_model_mode_restored(tiny, tiny_input):
    tiny.train()
    xai_lab.explain(tiny, tiny_input, method="gradcam", layer="act2")
    assert tiny.training
    with pytest.raises(ValueError, match="needs layer"):
        xai_lab.explain(tiny, tiny_input, method="gradcam")


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def test_repeated_explanations_do_not_grow_memory(lite0, coffee_chelsea):
    for method in ("gradcam", "saliency"):
        xai_lab.explain(lite0, coffee_chelsea[:1], method=method, progress=False)
        before = _live_tensors()
        for _ in range(100):
            xai_lab.explain(lite0, coffee_chelsea[:1], method=method, progress=False)
        assert _live_tensors() <= before, method
    assert hook_count(lite0.model) == 0

"""Every numeric option of every method is checked before any work, with a message that names
the option and its range; options that are True/False refuse other values."""
import pytest
import torch

import xai_lab
from xai_lab.ops import CPU_FORWARD_BATCH
from xai_lab.registry import method_spec

# (method, option, bad values): each bad value must raise ValueError or TypeError naming the option.
BAD = [
    ("smoothgrad", "n_samples", [0, -3, 2.5]), ("smoothgrad", "noise", [-0.1, "big"]),
    ("smoothgrad", "batch_size", [0]),
    ("integrated_gradients", "steps", [0, -1, 1.5]), ("integrated_gradients", "batch_size", [0, -2]),
    ("gradient_shap", "n_samples", [0]), ("gradient_shap", "stdevs", [-1.0]), ("gradient_shap", "batch_size", [0]),
    ("smoothgradcampp", "n_samples", [0]), ("smoothgradcampp", "sigma", [-0.5]),
    ("smoothgradcampp", "batch_size", [0]),
    ("scorecam", "batch_size", [0, -1, 3.0]), ("ablationcam", "batch_size", [0]),
    ("occlusion", "window", [0, -4]), ("occlusion", "stride", [0]), ("occlusion", "sigma", [0, -1]),
    ("occlusion", "batch_size", [0]),
    ("rise", "n_masks", [0]), ("rise", "cells", [0]), ("rise", "p", [0, 1.5, -0.2]), ("rise", "batch_size", [0]),
    ("lime", "num_samples", [0, -10]), ("lime", "batch_size", [0]),
    ("lrp", "epsilon", [0, -1e-3, float("nan"), "big"]), ("lrp", "gamma", [-0.5, float("inf"), "big"]),
    ("anchors", "threshold", [0, 1.2]), ("anchors", "p_sample", [0, 1]), ("anchors", "batch_size", [0]),
    ("anchors", "max_anchor_size", [0, -1, 1.5]), ("anchors", "model_batch_size", [0, 2.5]),
    ("anchors", "background_images", [torch.rand(1, 3, 4, 4), torch.rand(1, 1, 8, 8), torch.rand(3, 8, 8),
                                      torch.full((1, 3, 8, 8), float("nan")), "noise"]),
]


@pytest.mark.parametrize("method,option,value", [(m, o, v) for m, o, values in BAD for v in values])
def test_bad_numeric_option_names_itself(tiny, tiny_input, method, option, value):
    options = {"layer": "conv2"} if method_spec(method).needs_layer else {}
    if method == "occlusion":
        options.update(window=4, stride=2)  # fits the 8x8 input
    options[option] = value
    with pytest.raises((ValueError, TypeError), match=option):
        xai_lab.explain(tiny, tiny_input, method=method, target=0, **options)


def test_every_count_option_is_covered():
    """No method gains a count, size or probability option without a row in BAD."""
    counted = {(m, o) for m, o, _ in BAD}
    numeric = {(m, o) for m in xai_lab.methods() for o, d in method_spec(m).defaults().items()
               if isinstance(d, (int, float)) and not isinstance(d, bool)
               and o not in ("baseline",)}  # a baseline number is any value in model-input units
    assert numeric <= counted, numeric - counted


@pytest.mark.parametrize("method,option", [("gradcam", "relu"), ("saliency", "abs"), ("smoothgrad", "magnitude")])
def test_a_true_false_option_refuses_other_values(tiny, tiny_input, method, option):
    layer = {"layer": "conv2"} if method_spec(method).needs_layer else {}
    with pytest.raises(TypeError, match=option):
        xai_lab.explain(tiny, tiny_input, method=method, target=0, **layer, **{option: "no"})


def test_float64_input_is_converted_to_the_model_dtype(tiny, tiny_input):
    a = xai_lab.explain(tiny, tiny_input, method="saliency", target=1)
    b = xai_lab.explain(tiny, tiny_input.double(), method="saliency", target=1)
    assert torch.allclose(a.saliency, b.saliency, atol=1e-6)


def test_a_class_label_as_target(lite0, coffee_chelsea):
    by_label = xai_lab.explain(lite0, coffee_chelsea[1:], method="saliency", target="Egyptian cat")
    by_index = xai_lab.explain(lite0, coffee_chelsea[1:], method="saliency", target=285)
    assert torch.equal(by_label.saliency, by_index.saliency) and by_label.target.tolist() == [285]
    with pytest.raises(ValueError, match="tabby"):
        xai_lab.explain(lite0, coffee_chelsea[1:], method="saliency", target="tabby kat")


def test_a_label_needs_class_names(tiny, tiny_input):
    with pytest.raises(ValueError, match="class label"):
        xai_lab.explain(tiny, tiny_input, method="saliency", target="cat")


# (method, options) of the methods whose forward passes take batch_size=None as "small on a CPU"
# (the gradient methods count copies of the batch: 2 copies of the 2 images a pass).
FORWARD_BATCHED = [("occlusion", {"window": 4, "stride": 2}), ("rise", {"n_masks": 12, "cells": 2}),
                   ("scorecam", {"layer": "conv2"}), ("lime", {"num_samples": 12, "segmentation": "slic",
                             "segmentation_kwargs": {"n_segments": 4, "start_label": 0}}),
                   ("smoothgrad", {"n_samples": 6}), ("integrated_gradients", {"steps": 6}),
                   ("gradient_shap", {"n_samples": 6}), ("smoothgradcampp", {"n_samples": 6, "layer": "conv2"})]


@pytest.mark.parametrize("method,options", FORWARD_BATCHED)
def test_forward_batches_are_small_on_a_cpu_by_default_and_do_not_change_the_map(tiny, tiny_input, method, options):
    sizes = []
    hook = tiny.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    try:
        default = xai_lab.explain(tiny, tiny_input, method=method, target=0, seed=0, **options)
    finally:
        hook.remove()
    assert max(sizes) == CPU_FORWARD_BATCH
    large = xai_lab.explain(tiny, tiny_input, method=method, target=0, seed=0, batch_size=64, **options)
    assert torch.allclose(default.saliency, large.saliency, atol=1e-6)

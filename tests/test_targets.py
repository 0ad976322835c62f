"""xai_lab.targets: every kind of target, computed by hand (autograd of the hand-written score, or
the closed form) on a toy network and compared with explain() and the perturbation metrics."""
import math

import pytest
import torch
from torch import nn

import xai_lab
from tests.by_hand import layer_output
from tests.conftest import TinyConvNet
from xai_lab.methods.rise import rise_masks
from xai_lab.metrics import deletion_auc, insertion_auc, pixel_perturbation
from xai_lab.metrics.perturbation import perturbed_batch, ranking
from xai_lab.targets import (
    ClassIndex,
    Contrast,
    Custom,
    Labels,
    Logit,
    Probability,
    Sigmoid,
    as_target,
    bind_to_logits,
    perturbation_score,
)


def difference_of_2_and_4(z):
    return z[:, 2] - 2 * z[:, 4]


#: (target, its score written out by hand) for the five-class toy network.
KINDS = {
    "index": (3, lambda z: z[:, 3]),
    "logit": (Logit(3), lambda z: z[:, 3]),
    "probability": (Probability(1), lambda z: torch.softmax(z, 1)[:, 1]),
    "labels": (Labels([0, 2, 4]), lambda z: z[:, 0] + z[:, 2] + z[:, 4]),
    "labels_sigmoid": (Labels([1, 3], output="sigmoid"), lambda z: torch.sigmoid(z[:, 1]) + torch.sigmoid(z[:, 3])),
    "contrast": (Contrast(3, 1), lambda z: z[:, 3] - z[:, 1]),
    "callable": (difference_of_2_and_4, difference_of_2_and_4),
}
#: What a perturbation method reads: a plain class index is read through its probability.
PERTURBATION_KINDS = {**KINDS, "index": (3, lambda z: torch.softmax(z, 1)[:, 3])}


class OneLogit(nn.Module):
    """The toy network with a single output: a binary classifier read through a sigmoid."""

    def __init__(self):
        super().__init__()
        self.body = TinyConvNet()
        self.fc = nn.Linear(5, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.5, -1.0, 0.3, 0.8, -0.2]]))
            self.fc.bias.fill_(0.1)

    def forward(self, x):
        return self.fc(self.body(x))


def _model_and_score(kind, tiny):
    if kind == "sigmoid":
        return OneLogit().eval(), Sigmoid(), lambda z: torch.sigmoid(z[:, 0])
    if kind == "sigmoid_negative":
        return OneLogit().eval(), Sigmoid(positive=False), lambda z: 1 - torch.sigmoid(z[:, 0])
    target, score = KINDS[kind]
    return tiny, target, score


ALL = [*KINDS, "sigmoid", "sigmoid_negative"]


# --- the vocabulary itself -----------------------------------------------------------------


def test_scores_are_the_closed_forms():
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    p = torch.softmax(z, 1)
    assert torch.equal(Logit(2).scores(z), z[:, 2])
    assert torch.allclose(Probability(2).scores(z), p[:, 2])
    assert torch.allclose(Contrast(2, 0).scores(z), torch.log(p[:, 2] / p[:, 0]), atol=1e-5)
    assert torch.allclose(Labels([1, 4]).scores(z), z[:, 1] + z[:, 4])
    assert torch.allclose(Labels([1, 4], output="sigmoid").scores(z), torch.sigmoid(z[:, 1]) + torch.sigmoid(z[:, 4]))
    assert torch.allclose(Sigmoid().scores(z[:, :1]), 1 / (1 + torch.exp(-z[:, 0])))
    assert torch.allclose(Sigmoid(positive=False).scores(z[:, :1]), 1 - torch.sigmoid(z[:, 0]))
    assert torch.equal(Logit(None).scores(z), z.max(1).values)  # unbound None: each row's predicted class


def test_binding_fixes_the_predicted_class_and_lays_rows_out_as_copies():
    clean = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 1.0]])
    bound = bind_to_logits(Contrast(None, 2), clean)
    assert bound.explained_classes.tolist() == [1, 0] and bound.b.tolist() == [2, 2]
    copies = torch.arange(12.0).view(4, 3)  # rows 0, 2 belong to image 0; rows 1, 3 to image 1
    assert bound.scores(copies).tolist() == [1 - 2, 3 - 5, 7 - 8, 9 - 11]
    assert bound.scores(copies, images=1).tolist() == [0 - 2, 3 - 5, 6 - 8, 9 - 11]
    assert bind_to_logits(None, clean).explained_classes.tolist() == [1, 0]
    assert type(as_target([1, 2])) is ClassIndex and type(as_target(difference_of_2_and_4)) is Custom
    probability = Probability(1)
    assert as_target(probability) is probability and isinstance(as_target(None), Logit)


def test_perturbation_score_reads_a_class_index_through_its_probability():
    z = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    index = bind_to_logits(2, z)
    assert torch.allclose(perturbation_score(index).scores(z), torch.softmax(z, 1)[:, 2])
    assert torch.equal(perturbation_score(index, "logit").scores(z), z[:, 2])
    contrast = bind_to_logits(Contrast(2, 3), z)
    assert perturbation_score(contrast) is contrast
    with pytest.raises(ValueError, match="brings its own score"):
        perturbation_score(contrast, "probability")
    with pytest.raises(ValueError, match="brings its own score"):
        perturbation_score(bind_to_logits(Probability(2), z), "logit")


# --- explain(): maps by hand ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL)
def test_saliency_is_the_gradient_of_the_score(kind, tiny, tiny_input):
    model, target, score = _model_and_score(kind, tiny)
    x = tiny_input.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(score(model(x)).sum(), x)
    e = xai_lab.explain(model, tiny_input, method="saliency", target=target)
    assert torch.allclose(e.saliency, g.abs().amax(1), atol=1e-6)


@pytest.mark.parametrize("kind", ALL)
def test_gradcam_is_the_score_gradient_at_the_layer(kind, tiny, tiny_input):
    model, target, score = _model_and_score(kind, tiny)
    layer = "act2" if model is tiny else "body.act2"
    a, logits = layer_output(model, layer, tiny_input)
    (g,) = torch.autograd.grad(score(logits).sum(), a)
    expected = (g.mean((2, 3), keepdim=True) * a).sum(1).clamp_min(0).detach()
    e = xai_lab.explain(model, tiny_input, method="gradcam", target=target, layer=layer)
    assert torch.allclose(e.layer_map, expected, atol=1e-6)
    both = xai_lab.explain(model, tiny_input, method=["gradcam", "hirescam"], target=target, layer=layer)
    assert torch.allclose(both["gradcam"].layer_map, expected, atol=1e-6)


@pytest.mark.parametrize("kind", [*PERTURBATION_KINDS, "sigmoid"])
def test_occlusion_is_the_drop_of_the_score(kind, tiny, tiny_input):
    """Windows of 4 x 4 with stride 4 tile the 8 x 8 image: each pixel's value is its window's drop."""
    model, target, score = _model_and_score(kind, tiny)
    if kind in PERTURBATION_KINDS:
        target, score = PERTURBATION_KINDS[kind]
    with torch.no_grad():
        clean = score(model(tiny_input))
        expected = torch.zeros(2, 8, 8)
        for i in range(2):
            for j in range(2):
                occluded = tiny_input.clone()
                occluded[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4] = 0
                expected[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4] = (clean - score(model(occluded)))[:, None, None]
    e = xai_lab.explain(model, tiny_input, method="occlusion", target=target, window=4, stride=4)
    assert torch.allclose(e.saliency, expected, atol=1e-6)


def test_occlusion_output_option_names_the_score_of_a_class_index(tiny, tiny_input):
    logit = xai_lab.explain(tiny, tiny_input, method="occlusion", target=3, window=4, stride=4, output="logit")
    same = xai_lab.explain(tiny, tiny_input, method="occlusion", target=Logit(3), window=4, stride=4)
    assert torch.allclose(logit.saliency, same.saliency)
    prob = xai_lab.explain(tiny, tiny_input, method="occlusion", target=Probability(3), window=4, stride=4,
                           output="probability")
    plain = xai_lab.explain(tiny, tiny_input, method="occlusion", target=3, window=4, stride=4)
    assert torch.allclose(prob.saliency, plain.saliency)
    with pytest.raises(ValueError, match="brings its own score"):
        xai_lab.explain(tiny, tiny_input, method="occlusion", target=Contrast(3, 1), window=4, stride=4, output="logit")


def test_rise_is_the_mask_weighted_mean_contrast(tiny, tiny_input):
    target, score = KINDS["contrast"]
    e = xai_lab.explain(tiny, tiny_input, method="rise", target=target, n_masks=16, cells=2, p=0.5, seed=3)
    masks = rise_masks((8, 8), torch.arange(16), 16, 2, 0.5, e.extras["mask_seed"])
    with torch.no_grad():
        s = torch.stack([score(tiny(tiny_input * m)) for m in masks])  # [16, N]
    assert torch.allclose(e.saliency, torch.einsum("kn,khw->nhw", s, masks[:, 0]) / (16 * 0.5), atol=1e-5)


def test_scorecam_weights_are_the_contrast_of_the_masked_inputs(tiny, tiny_input):
    target, score = KINDS["contrast"]
    e = xai_lab.explain(tiny, tiny_input, method="scorecam", target=target, layer="act2")
    a, _ = layer_output(tiny, "act2", tiny_input)
    masks = xai_lab.ops.normalize_per_image(xai_lab.ops.upsample(a.detach().flatten(0, 1), (8, 8))).view(2, 3, 8, 8)
    with torch.no_grad():
        s = torch.stack([score(tiny(tiny_input * masks[:, k:k + 1])) for k in range(3)], 1)
    assert torch.allclose(e.extras["scores"], s, atol=1e-5)
    with pytest.raises(ValueError, match="brings its own score"):
        xai_lab.explain(tiny, tiny_input, method="scorecam", target=target, layer="act2", score="logit")


def test_ablationcam_reads_the_contrast(tiny, tiny_input):
    target, score = KINDS["contrast"]
    e = xai_lab.explain(tiny, tiny_input, method="ablationcam", target=target, layer="act2")
    with torch.no_grad():
        assert torch.allclose(e.extras["scores"], score(tiny(tiny_input)), atol=1e-6)
        for k in range(3):
            def zero(module, inputs, output, k=k):
                output = output.clone()
                output[:, k] = 0
                return output
            handle = tiny.act2.register_forward_hook(zero)
            try:
                ablated = score(tiny(tiny_input))
            finally:
                handle.remove()
            assert torch.allclose(e.extras["ablated_scores"][:, k], ablated, atol=1e-6)


def test_cam_of_a_contrast_is_the_difference_of_the_class_maps(tiny, tiny_input):
    a = xai_lab.explain(tiny, tiny_input, method="cam", target=3, layer="act2", head="fc")
    b = xai_lab.explain(tiny, tiny_input, method="cam", target=1, layer="act2", head="fc")
    c = xai_lab.explain(tiny, tiny_input, method="cam", target=Contrast(3, 1), layer="act2", head="fc")
    assert torch.allclose(c.layer_map, a.layer_map - b.layer_map, atol=1e-6)
    labels = xai_lab.explain(tiny, tiny_input, method="cam", target=Labels([3, 1]), layer="act2", head="fc")
    assert torch.allclose(labels.layer_map, a.layer_map + b.layer_map, atol=1e-6)
    with pytest.raises(ValueError, match="linear in the logits"):
        xai_lab.explain(tiny, tiny_input, method="cam", target=Probability(3), layer="act2", head="fc")


def test_deep_shap_of_a_contrast_is_the_difference_of_the_class_maps(tiny, tiny_input):
    pytest.importorskip("captum")
    base = torch.stack([torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.5)])
    a = xai_lab.explain(tiny, tiny_input, method="deep_shap", target=3, baselines=base)
    b = xai_lab.explain(tiny, tiny_input, method="deep_shap", target=1, baselines=base)
    c = xai_lab.explain(tiny, tiny_input, method="deep_shap", target=Contrast(3, 1), baselines=base)
    assert torch.allclose(c.saliency, a.saliency - b.saliency, atol=1e-5)
    with pytest.raises(ValueError, match="linear in the logits"):
        xai_lab.explain(tiny, tiny_input, method="deep_shap", target=Probability(3), baselines=base)


def test_lime_fits_the_contrast(tiny, tiny_input):
    pytest.importorskip("lime")
    target, score = KINDS["contrast"]
    e = xai_lab.explain(tiny, tiny_input[:1], method="lime", target=target, num_samples=20, batch_size=10, seed=0,
                        segmentation_kwargs={"kernel_size": 2, "max_dist": 6})
    with torch.no_grad():  # the first sample keeps every superpixel: the clean image
        assert e.extras["outputs"][0][0] == pytest.approx(float(score(tiny(tiny_input[:1]))[0]), abs=1e-5)


def test_integrated_gradients_completeness_holds_for_a_contrast(tiny, tiny_input):
    target, score = KINDS["contrast"]
    e = xai_lab.explain(tiny, tiny_input, method="integrated_gradients", target=target, steps=64)
    with torch.no_grad():
        gap = score(tiny(tiny_input)) - score(tiny(torch.zeros_like(tiny_input)))
    total = e.extras["attribution"].flatten(1).sum(1)
    assert torch.allclose(e.extras["delta"], total - gap, atol=1e-5) and e.extras["delta"].abs().max() < 0.02


def test_explanation_reports_the_target(tiny, tiny_input):
    predicted = tiny(tiny_input).argmax(1).tolist()
    target = Contrast(None, 4 if 4 not in predicted else next(c for c in range(5) if c not in predicted))
    e = xai_lab.explain(tiny, tiny_input, method="saliency", target=target)
    assert e.target.tolist() == predicted and e.explained.b.tolist() == [target.b] * 2
    assert e.explained.name.startswith("contrast: logit of ") and e.explained.name.endswith(f" - logit of {target.b}")
    assert "contrast" in repr(e)
    again = xai_lab.explain(tiny, tiny_input, method="saliency", target=e.explained)
    assert torch.equal(again.saliency, e.saliency)
    labels = xai_lab.explain(tiny, tiny_input, method="saliency", target=Labels([0, 1]))
    assert labels.target.tolist() == [-1, -1] and labels.explained.name == "sum of logits of [0, 1]"
    plain = xai_lab.explain(tiny, tiny_input, method="saliency", target=[1, 4])
    assert plain.target.tolist() == [1, 4] and "class" not in repr(plain).split("target=")[1].split(",")[0]


def test_anchors_need_one_class(tiny, tiny_input):
    pytest.importorskip("alibi")
    with pytest.raises(ValueError, match="anchors explains one class per image"):
        xai_lab.explain(tiny, tiny_input[:1], method="anchors", target=Contrast(3, 1))


def test_sanity_check_keeps_the_target(tiny, tiny_input):
    from xai_lab.metrics.sanity import sanity_check

    out = sanity_check(tiny, tiny_input, "saliency", target=Contrast(3, 1), steps=2)
    x = tiny_input.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(KINDS["contrast"][1](tiny(x)).sum(), x)
    assert torch.allclose(out["original"], g.abs().amax(1), atol=1e-6)
    assert out["random_target"] is None and torch.isnan(out["random_target_spearman"]).all()
    prob = sanity_check(tiny, tiny_input, "saliency", target=Probability(3), steps=1)
    assert prob["random_target"] is not None and (prob["random_target"] != 3).all()


# --- bad targets -----------------------------------------------------------------------------


def test_bad_targets_give_clear_errors(tiny, tiny_input):
    with pytest.raises(ValueError, match="with itself"):
        Contrast(2, 2)
    predicted = int(tiny(tiny_input[:1]).argmax(1))
    with pytest.raises(ValueError, match="with itself"):
        xai_lab.explain(tiny, tiny_input[:1], method="saliency", target=Contrast(None, predicted))
    for bad in (Contrast(7, 1), Probability(5), Logit(-1), Labels([1, 9])):
        with pytest.raises(ValueError, match="out of range"):
            xai_lab.explain(tiny, tiny_input, method="saliency", target=bad)
    with pytest.raises(ValueError, match=r"one score per row of the logits, shape \[2\], got shape \[2, 5\]"):
        xai_lab.explain(tiny, tiny_input, method="saliency", target=lambda z: z)
    with pytest.raises(ValueError, match="one score per row"):
        xai_lab.explain(tiny, tiny_input, method="occlusion", target=lambda z: z.sum(), window=4, stride=4)
    with pytest.raises(TypeError, match="floating-point"):
        xai_lab.explain(tiny, tiny_input, method="saliency", target=lambda z: z.argmax(1))
    with pytest.raises(ValueError, match="model with one output"):
        xai_lab.explain(tiny, tiny_input, method="saliency", target=Sigmoid())
    with pytest.raises(ValueError, match="distinct"):
        Labels([1, 1])
    with pytest.raises(ValueError, match="non-empty"):
        Labels([])
    with pytest.raises(TypeError, match="callable"):
        Custom(3)
    with pytest.raises(ValueError, match="bare model has no class names"):
        xai_lab.explain(tiny, tiny_input, method="saliency", target=Contrast("cat", 1))


# --- metrics ---------------------------------------------------------------------------------


def _hand_curve(model, x, saliency, score, fill):
    """The score of every copy with the first k pixels (saliency order) replaced, k = 0, 16, ..., 64."""
    counts = [0, 16, 32, 48, 64]
    with torch.no_grad():
        curves = []
        for i in range(x.shape[0]):
            order = ranking(saliency[i:i + 1], "morf")[0]
            start, end = (x[i], fill[i]) if fill is not None else (torch.zeros_like(x[i]), x[i])
            curves.append(score(model(perturbed_batch(start, end, order, counts))))
    return torch.stack(curves), torch.tensor(counts) / 64


@pytest.mark.parametrize("kind", ["contrast", "probability", "index"])
def test_deletion_and_insertion_auc_by_hand(kind, tiny, tiny_input):
    target, score = PERTURBATION_KINDS[kind]
    saliency = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(4))
    deleted, fractions = _hand_curve(tiny, tiny_input, saliency, score, torch.zeros_like(tiny_input))
    out = deletion_auc(tiny, tiny_input, saliency, target=target, baseline=0.0, step=16)
    assert torch.allclose(out["curve"], deleted, atol=1e-6)
    assert torch.allclose(out["auc"], torch.trapezoid(deleted, fractions, dim=1), atol=1e-6)
    inserted, _ = _hand_curve(tiny, tiny_input, saliency, score, None)
    out = insertion_auc(tiny, tiny_input, saliency, target=target, start=0.0, step=16)
    assert torch.allclose(out["curve"], inserted, atol=1e-6)


def test_pixel_perturbation_with_a_contrast_by_hand(tiny, tiny_input):
    target, score = KINDS["contrast"]
    saliency = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(5))
    out = pixel_perturbation(tiny, tiny_input, saliency, target=target, baseline=0.0, fractions=[0.0, 0.25, 0.5])
    with torch.no_grad():
        s0 = score(tiny(tiny_input))
        for i in range(2):
            batch = perturbed_batch(tiny_input[i], torch.zeros(3, 8, 8), ranking(saliency[i:i + 1])[0], [0, 16, 32])
            s = score(tiny(batch))
            assert torch.allclose(out["score"][i], s, atol=1e-6)
            assert torch.allclose(out["afoc"][i], (s - s0[i]).abs() / s0[i].abs(), atol=1e-5)
    assert "pcuo" not in out and out["target"].tolist() == [3, 3] and out["explained"].name.startswith("contrast")


def test_pixel_perturbation_with_a_probability_by_hand(tiny, tiny_input):
    saliency = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(6))
    out = pixel_perturbation(tiny, tiny_input, saliency, target=Probability(2), baseline=0.0, fractions=[0.0, 0.5],
                             runner_up=2)
    plain = pixel_perturbation(tiny, tiny_input, saliency, target=2, baseline=0.0, fractions=[0.0, 0.5], runner_up=2)
    with torch.no_grad():
        p0 = torch.softmax(tiny(tiny_input), 1)[:, 2]
        for i in range(2):
            batch = perturbed_batch(tiny_input[i], torch.zeros(3, 8, 8), ranking(saliency[i:i + 1])[0], [0, 32])
            z = tiny(batch)
            p = torch.softmax(z, 1)[:, 2]
            assert torch.allclose(out["score"][i], p, atol=1e-6) and torch.allclose(out["probability"][i], p, atol=1e-6)
            assert torch.allclose(out["afoc"][i], (p - p0[i]).abs() / p0[i], atol=1e-5)
            clean = tiny(tiny_input[i:i + 1])[0, 2]
            assert torch.allclose(out["pcuo"][i], (z[:, 2] - clean).abs() / clean.abs(), atol=1e-5)
    for key in ("afoc", "pcuo", "pcuo_runner_up", "kl"):
        assert torch.allclose(out[key], plain[key], atol=1e-6, equal_nan=True)


def test_one_logit_model_through_a_sigmoid_in_the_metrics():
    model = OneLogit().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    saliency = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(8))
    out = deletion_auc(model, x, saliency, target=Sigmoid(), baseline=0.0, step=16)
    curve, _ = _hand_curve(model, x, saliency, lambda z: torch.sigmoid(z[:, 0]), torch.zeros_like(x))
    assert torch.allclose(out["curve"], curve, atol=1e-6)
    with torch.no_grad():
        assert math.isclose(float(out["curve"][0, 0]), float(torch.sigmoid(model(x))[0, 0]), abs_tol=1e-6)


def test_class_labels_inside_target_objects(tiny, tiny_input):
    from xai_lab.models import Classifier

    names = ["tench", "goldfish", "tabby", "tiger cat", "espresso"]
    clf = Classifier("toy", tiny, names, "act2", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), head="fc")
    by_label = xai_lab.explain(clf, tiny_input, method="gradcam", target=Contrast("Tabby", "tiger cat"))
    by_index = xai_lab.explain(tiny, tiny_input, method="gradcam", target=Contrast(2, 3), layer="act2")
    assert torch.equal(by_label.saliency, by_index.saliency) and by_label.target.tolist() == [2, 2]
    assert by_label.explained.describe(names) == "contrast: logit of tabby - logit of tiger cat"
    labels = xai_lab.explain(clf, tiny_input, method="cam", target=Labels(["tench", 4]))
    assert labels.explained.classes == (0, 4)
    out = deletion_auc(clf, tiny_input, torch.rand(2, 8, 8), target=Probability("espresso"), baseline=0.0, step=32)
    assert out["target"].tolist() == [4, 4]


def test_fullgrad_is_complete_for_a_contrast(tiny, tiny_input):
    """A ReLU network and a score linear in the logits: input part + bias parts = the score."""
    target, score = KINDS["contrast"]
    e = xai_lab.explain(tiny, tiny_input, method="fullgrad", target=target)
    with torch.no_grad():
        expected = score(tiny(tiny_input))
    assert torch.allclose(e.extras["score"], expected, atol=1e-6)
    assert torch.allclose(e.extras["completeness"], expected, atol=1e-5)


def test_contrast_takes_a_tensor_of_classes_against_an_int(tiny, tiny_input):
    """Contrast(2, tensor) is checked per image when bound (no tensor truth value at construction)."""
    b = torch.tensor([1, 0, 4])[: tiny_input.shape[0]]
    bound = bind_to_logits(Contrast(2, b), tiny(tiny_input))
    assert torch.equal(bound.b, b)
    with pytest.raises(ValueError, match="with itself"):
        bind_to_logits(Contrast(2, torch.full((tiny_input.shape[0],), 2)), tiny(tiny_input))

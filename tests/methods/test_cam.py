import pytest
import torch

import xai_lab

from ..by_hand import activations_and_gradients as _acts_grads


def test_gradcam_by_hand(tiny, tiny_input):
    A, G, _ = _acts_grads(tiny, tiny_input, 3, "act2")
    expected = (G.mean((2, 3), keepdim=True) * A).sum(1).clamp_min(0)
    e = xai_lab.explain(tiny, tiny_input, method="gradcam", layer="act2", target=3)
    assert torch.allclose(e.layer_map, expected, atol=1e-6)
    # After global average pooling + linear, dy/dA_kij = w_ck / (h*w): Grad-CAM is CAM up to 1/(h*w).
    w = tiny.fc.weight[3].view(1, 3, 1, 1) / 64
    assert torch.allclose(e.layer_map, (w * A).sum(1).clamp_min(0), atol=1e-6)
    cf = xai_lab.explain(tiny, tiny_input, method="gradcam", layer="act2", target=3, counterfactual=True)
    assert torch.allclose(cf.layer_map, (-w * A).sum(1).clamp_min(0), atol=1e-6)


def test_other_gradient_cams_by_hand(tiny, tiny_input):
    A, G, y = _acts_grads(tiny, tiny_input, 1, "act2")
    hires = (G * A).sum(1).clamp_min(0)
    layer = (G.clamp_min(0) * A).sum(1).clamp_min(0)
    s = A.sum((2, 3), keepdim=True)
    xgrad = ((A * G / s).sum((2, 3), keepdim=True) * A).sum(1).clamp_min(0)
    for name, expected in [("hirescam", hires), ("layercam", layer), ("xgradcam", xgrad)]:
        e = xai_lab.explain(tiny, tiny_input, method=name, layer="act2", target=1)
        assert torch.allclose(e.layer_map, expected, atol=1e-6), name


def test_gradcampp_closed_form_alpha_equals_true_higher_derivatives(tiny, tiny_input):
    """With Y = exp(y_c) and y_c linear in A (pool + linear head), the paper's closed-form alpha
    equals alpha computed from the true 2nd and 3rd derivatives of Y, taken by autograd."""
    from torch.func import grad

    A, G, y = _acts_grads(tiny, tiny_input, 2, "act2")

    def Y(a_one):  # exp of the class score of one image, from its feature map
        return tiny.fc(tiny.flatten(tiny.pool(a_one[None])))[0, 2].exp()

    d1, d2, d3 = [], [], []
    for a in A:
        first = grad(Y)(a)
        # diagonal 2nd and 3rd derivatives d^nY/dA_kij^n, element by element
        second = torch.stack([grad(lambda t, i=i: grad(Y)(t).flatten()[i])(a).flatten()[i] for i in range(a.numel())])
        third = torch.stack([grad(lambda t, i=i: grad(lambda u: grad(Y)(u).flatten()[i])(t).flatten()[i])(a).flatten()[i]
                             for i in range(a.numel())])
        d1.append(first), d2.append(second.view_as(a)), d3.append(third.view_as(a))
    d1, d2, d3 = torch.stack(d1), torch.stack(d2), torch.stack(d3)
    alpha_true = d2 / (2 * d2 + (A * d3).sum((2, 3), keepdim=True))
    weights = (alpha_true * d1.clamp_min(0)).sum((2, 3), keepdim=True)
    expected = (weights * A).sum(1).clamp_min(0)
    e = xai_lab.explain(tiny, tiny_input, method="gradcampp", layer="act2", target=2)
    assert torch.allclose(e.layer_map, expected, rtol=1e-4, atol=1e-7)
    # The grad-cam library's variant drops the factor e^y: the same map up to a per-image scale.
    lib = xai_lab.explain(tiny, tiny_input, method="gradcampp", layer="act2", target=2, exp_score=False)
    assert torch.allclose(lib.layer_map * y.exp().view(-1, 1, 1), e.layer_map, rtol=1e-5)
    # The authors' code normalizes alpha over positions: a different map in general.
    norm = xai_lab.explain(tiny, tiny_input, method="gradcampp", layer="act2", target=2, normalize_alpha=True)
    alpha_n = alpha_true / alpha_true.sum((2, 3), keepdim=True)
    expected_n = (((alpha_n * d1.clamp_min(0)).sum((2, 3), keepdim=True)) * A).sum(1).clamp_min(0)
    assert torch.allclose(norm.layer_map, expected_n, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("model_name", ["lite0", "resnet18"])
def test_gradcam_equals_captum_layer_gradcam(model_name, request, coffee_chelsea):
    captum = pytest.importorskip("captum.attr")
    clf = request.getfixturevalue(model_name)
    layer = dict(clf.model.named_modules())[clf.default_layer]
    target = torch.tensor([967, 281])
    ref = captum.LayerGradCam(clf.model, layer).attribute(coffee_chelsea, target=target, relu_attributions=True)[:, 0].detach()
    ours = xai_lab.explain(clf, coffee_chelsea, method="gradcam", target=target)
    assert torch.allclose(ours.layer_map, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_class_discrimination(lite0, coffee_chelsea):
    """Two classes of the same image give different maps."""
    x = coffee_chelsea[1:]
    tabby, mug = lite0.categories.index("tabby"), lite0.categories.index("coffee mug")
    a = xai_lab.explain(lite0, x, method="gradcam", target=tabby).normalized()
    b = xai_lab.explain(lite0, x, method="gradcam", target=mug).normalized()
    assert (a - b).abs().mean() > 0.05


def test_layer_must_be_a_feature_map(lite0, coffee_chelsea):
    with pytest.raises(ValueError, match="feature map"):
        xai_lab.explain(lite0, coffee_chelsea, method="gradcam", layer="flatten")


GRADIENT_CAMS = ["gradcam", "gradcampp", "xgradcam", "hirescam", "layercam"]


def test_every_gradient_cam_from_one_pass_equals_its_own_call(tiny, tiny_input):
    together = xai_lab.explain(tiny, tiny_input, method=GRADIENT_CAMS, layer="act2", target=[1, 4])
    assert list(together) == GRADIENT_CAMS
    for name, e in together.items():
        alone = xai_lab.explain(tiny, tiny_input, method=name, layer="act2", target=[1, 4])
        assert torch.equal(e.saliency, alone.saliency), name
        assert e.forward_passes == 1 and e.backward_passes == 1 and e.method == name


def test_many_methods_with_options_and_mixed_kinds(tiny, tiny_input):
    out = xai_lab.explain(tiny, tiny_input, method={"gradcam": {"counterfactual": True}, "saliency": {}},
                          layer="act2", target=0)
    cf = xai_lab.explain(tiny, tiny_input, method="gradcam", layer="act2", target=0, counterfactual=True)
    assert torch.equal(out["gradcam"].saliency, cf.saliency)
    assert out["saliency"].layer is None
    with pytest.raises(TypeError, match="no option"):
        xai_lab.explain(tiny, tiny_input, method=GRADIENT_CAMS, layer="act2", counterfactual=True)

"""Gradients through rectifiers with a modified backward rule: guided backpropagation,
deconvnet and guided Grad-CAM.

Every ``nn.ReLU``, ``nn.ReLU6`` and ``nn.Hardtanh`` module of the model keeps its forward
value ``clamp(x, lo, hi)`` but passes back ``rule(grad, x, lo, hi)`` instead of
``grad * 1[lo < x < hi]``. Rectifiers written as functions (``F.relu``) are not modified.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from ..capture import LayerRecorder, forward_hooks
from ..context import Context, Result, as_feature_map
from ..ops import upsample
from ..registry import register
from .cam import gradcam_weights, weighted_sum
from .gradients import input_gradient

Rule = Callable[[torch.Tensor, torch.Tensor, float, float | None], torch.Tensor]


def guided_rule(grad: torch.Tensor, x: torch.Tensor, lo: float, hi: float | None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): ReLU(grad) * 1[lo < x < hi]."""
    inside = x > lo if hi is None else (x > lo) & (x < hi)
    return grad.clamp_min(0) * inside


def deconvnet_rule(grad: torch.Tensor, x: torch.Tensor, lo: float, hi: float | None) -> torch.Tensor:
    """Deconvnet (Zeiler & Fergus 2014): ReLU(grad), whatever the input of the rectifier."""
    return grad.clamp_min(0)


class _ClampWithRule(torch.autograd.Function):
    """Forward clamp(x, lo, hi); backward ``rule(grad, x, lo, hi)``."""

    @staticmethod
    def forward(ctx, x, lo, hi, rule):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi, ctx.rule = lo, hi, rule
        return x.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ctx.rule(grad, x, ctx.lo, ctx.hi), None, None, None


def _positive_part(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp_min(0)


def _bounds(module: nn.Module) -> tuple[float, float | None]:
    if isinstance(module, nn.Hardtanh):  # nn.ReLU6 is a Hardtanh(0, 6)
        return float(module.min_val), float(module.max_val)
    return 0.0, None


@contextmanager
def rectifier_rule(model: nn.Module, rule: Rule, active: Callable[[], bool] | None = None) -> Iterator[None]:
    """Within the block, every ReLU/ReLU6/Hardtanh module of ``model`` runs out of place and
    back-propagates with ``rule``; the hooks and ``inplace`` flags are restored on exit, also on
    exceptions. A module used several times (torchvision's ResNet blocks) is modified at each use.

    ``active`` (guided rule only): the rule applies in a backward pass only while ``active()`` is
    true, so one forward pass serves a plain and a guided backward pass."""
    modules = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.Hardtanh))]
    inplace = [m.inplace for m in modules]
    if active is not None and rule is not guided_rule:
        raise ValueError("active= is supported for the guided rule only")

    if rule is guided_rule:
        # Fast path: the rectifier's own backward already multiplies by 1[lo < x < hi], so it is
        # enough to rectify the gradient arriving at its output (no recomputed forward).
        def switched(grad: torch.Tensor) -> torch.Tensor | None:
            return grad.clamp_min(0) if active() else None

        def hook(module, inputs, output):
            if output.requires_grad:
                output.register_hook(_positive_part if active is None else switched)
            return None

        with forward_hooks(modules, hook):
            yield
        return

    def hook(module, inputs, output):
        lo, hi = _bounds(module)
        return _ClampWithRule.apply(inputs[0], lo, hi, rule)

    try:
        for m in modules:
            m.inplace = False  # the hook needs the rectifier's input intact
        with forward_hooks(modules, hook):
            yield
    finally:
        for m, flag in zip(modules, inplace):
            m.inplace = flag


def modified_gradient(ctx: Context, rule: Rule) -> torch.Tensor:
    """d y_c / d x [N, 3, H, W] with every rectifier back-propagating by ``rule``."""
    with rectifier_rule(ctx.model, rule):
        return input_gradient(ctx, ctx.x)


def _gradient_map(attribution: torch.Tensor) -> Result:
    return Result(saliency=attribution.abs().amax(dim=1), extras={"attribution": attribution})


@register("guided_backprop", family="gradient")
def guided_backprop(ctx: Context) -> Result:
    """Guided backpropagation (Springenberg et al. 2015): max over channels of |modified d y_c/d x|,
    each ReLU/ReLU6/Hardtanh passing back ReLU(grad) * 1[lo < x < hi].

    ``extras["attribution"]``: the modified gradient [N, 3, H, W] (captum's ``GuidedBackprop``
    for ReLU networks; captum leaves ReLU6 and Hardtanh unmodified, this method does not)."""
    return _gradient_map(modified_gradient(ctx, guided_rule))


@register("deconvnet", family="gradient")
def deconvnet(ctx: Context) -> Result:
    """Deconvnet (Zeiler & Fergus 2014): max over channels of |modified d y_c/d x|, each
    ReLU/ReLU6/Hardtanh passing back ReLU(grad) whatever its input.

    ``extras["attribution"]``: the modified gradient [N, 3, H, W] (captum's ``Deconvolution``)."""
    return _gradient_map(modified_gradient(ctx, deconvnet_rule))


@register("guided_gradcam", family="cam", needs_layer=True)
def guided_gradcam(ctx: Context) -> Result:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation times the Grad-CAM map
    upsampled (bilinearly) to the input, P = GB [N, 3, H, W] * up(ReLU(sum_k w_k A_k)) [N, 1, H, W].

    The paper shows P as an RGB image; the map here is max over channels of |P|, the reduction
    used for every gradient map (so it equals up(Grad-CAM) * the guided-backprop map).
    ``extras["attribution"]``: P; ``layer_map``: the Grad-CAM map before upsampling. One
    forward pass serves both backward passes: a plain one to the layer, then a guided one to the
    input."""
    guided = {"on": False}
    x = ctx.x.detach().requires_grad_(True)
    # one forward pass; a plain backward pass to the layer (Grad-CAM's gradient), then a guided one to the input
    with rectifier_rule(ctx.model, guided_rule, active=lambda: guided["on"]), \
            LayerRecorder(ctx.model, [ctx.layer]) as recorder:
        scores = ctx.scores(ctx.forward(x))
        activations = recorder[ctx.layer_name]
        if not activations.requires_grad:
            raise RuntimeError(f"The target score does not depend on layer {ctx.layer_name!r} through operations "
                               "autograd can follow; explain another layer")
        (layer_grad,) = ctx.grad(scores, activations, retain_graph=True)
        guided["on"] = True
        (guided_grad,) = ctx.grad(scores, x)
    A, G = as_feature_map(ctx, activations.detach()), as_feature_map(ctx, layer_grad)
    layer_map = weighted_sum(A, gradcam_weights(A, G))
    product = guided_grad * upsample(layer_map, ctx.x.shape[-2:])[:, None]
    result = _gradient_map(product)
    result.layer_map = layer_map
    return result

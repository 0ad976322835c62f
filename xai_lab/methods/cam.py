"""Gradient-weighted class activation maps.

Every method here is one small function of a layer's activations ``A`` [N, K, h, w] and the
gradient ``G = dy_c/dA`` of the target score: it returns channel weights, [N, K, 1, 1], or
per-position weights, [N, K, h, w]. The shared base records ``A`` and ``G`` in one forward and
one backward pass that stops at the layer, and forms ``map = ReLU(sum_k w_k * A_k)``.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..capture import LayerRecorder
from ..explain import Context, Result, register

WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def layer_activations_and_gradients(ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, dy_c/dA, y_c) for the context's layer: one forward pass, one backward pass to the layer."""
    with LayerRecorder(ctx.model, [ctx.layer]) as recorder:
        logits = ctx.forward(ctx.x)
        activations = recorder[ctx.layer_name]
        scores = ctx.scores(logits)
        (gradients,) = ctx.grad(scores, activations)
    if activations.dim() != 4:
        raise ValueError(f"Layer {ctx.layer_name!r} gives a tensor of shape {list(activations.shape)}; "
                         "CAM methods need a feature map [N, K, h, w]")
    return activations.detach(), gradients, scores.detach()


def weighted_sum(activations: torch.Tensor, weights: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """sum_k w_k * A_k over channels -> [N, h, w], rectified unless ``relu=False``."""
    cam = (weights * activations).sum(dim=1)
    return cam.clamp_min(0) if relu else cam


def gradcam_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: w_k = mean_ij G_kij (global-average-pooled gradients)."""
    return G.mean(dim=(2, 3), keepdim=True)


def gradcampp_alpha(A: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, normalize_alpha: bool = False) -> torch.Tensor:
    """Grad-CAM++ alpha_kij = g2 / (2 g2 + sum_ab A_kab g3), 0 where g2 = 0 (Chattopadhyay et al. 2018, eq. 19).

    ``normalize_alpha=True`` divides alpha by its sum over positions with a positive gradient, as
    the authors' released code does (the paper's equation does not)."""
    denominator = 2 * g2 + A.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(g2 != 0, g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator)),
                        torch.zeros_like(g2))
    if normalize_alpha:
        total = alpha.sum(dim=(2, 3), keepdim=True)
        alpha = alpha / torch.where(total != 0, total, torch.ones_like(total))
    return alpha


def gradcampp_from_derivatives(A, g1, g2, g3, normalize_alpha: bool = False) -> torch.Tensor:
    """Grad-CAM++ channel weights from the 1st, 2nd and 3rd derivatives of the score:
    w_k = sum_ij alpha_kij * ReLU(g1_kij)."""
    alpha = gradcampp_alpha(A, g2, g3, normalize_alpha)
    return (alpha * g1.clamp_min(0)).sum(dim=(2, 3), keepdim=True)


def xgradcam_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): w_k = sum_ij (A_kij / sum_ab A_kab) G_kij."""
    total = A.sum(dim=(2, 3), keepdim=True)
    return (A * G / torch.where(total != 0, total, torch.ones_like(total))).sum(dim=(2, 3), keepdim=True)


def hirescam_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """HiResCAM (Draelos & Carin 2020): the gradient itself, position by position (map = sum_k G_k * A_k)."""
    return G


def layercam_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): ReLU of the gradient, position by position."""
    return G.clamp_min(0)


def _gradient_cam(ctx: Context, weight_fn: WeightFn, relu: bool) -> Result:
    A, G, _ = layer_activations_and_gradients(ctx)
    return Result(layer_map=weighted_sum(A, weight_fn(A, G), relu))


@register("gradcam", family="cam", needs_layer=True)
def gradcam(ctx: Context, counterfactual: bool = False, relu: bool = True) -> Result:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k w_k A_k), w_k = mean_ij dy_c/dA_kij.

    ``counterfactual=True`` negates the gradients: the regions whose removal would raise the
    class score ("what argues against this class", section 5 of the paper)."""
    A, G, _ = layer_activations_and_gradients(ctx)
    if counterfactual:
        G = -G
    return Result(layer_map=weighted_sum(A, gradcam_weights(A, G), relu))


@register("gradcampp", family="cam", needs_layer=True)
def gradcampp(ctx: Context, exp_score: bool = True, normalize_alpha: bool = False, relu: bool = True) -> Result:
    """Grad-CAM++ (Chattopadhyay et al. 2018) with the paper's exponential head Y = exp(y_c).

    For a score linear in A near the point, dY/dA = e^y G, d2Y/dA2 = e^y G^2, d3Y/dA3 = e^y G^3,
    so alpha = G^2 / (2 G^2 + sum_ab A_ab G^3) and w_k = sum_ij alpha_kij ReLU(e^y G_kij).
    ``exp_score=False`` drops the per-image factor e^y, as the ``grad-cam`` library does (same
    map up to scale); ``normalize_alpha=True`` follows the authors' code (see gradcampp_alpha)."""
    A, G, scores = layer_activations_and_gradients(ctx)
    weights = gradcampp_from_derivatives(A, G, G.pow(2), G.pow(3), normalize_alpha)
    if exp_score:
        weights = weights * scores.exp().view(-1, 1, 1, 1)
    return Result(layer_map=weighted_sum(A, weights, relu))


@register("xgradcam", family="cam", needs_layer=True)
def xgradcam(ctx: Context, relu: bool = True) -> Result:
    """XGrad-CAM (Fu et al. 2020): w_k = sum_ij (A_kij / sum_ab A_kab) dy_c/dA_kij."""
    return _gradient_cam(ctx, xgradcam_weights, relu)


@register("hirescam", family="cam", needs_layer=True)
def hirescam(ctx: Context, relu: bool = True) -> Result:
    """HiResCAM (Draelos & Carin 2020): ReLU(sum_k G_k * A_k), no spatial averaging of the gradient."""
    return _gradient_cam(ctx, hirescam_weights, relu)


@register("layercam", family="cam", needs_layer=True)
def layercam(ctx: Context, relu: bool = True) -> Result:
    """LayerCAM (Jiang et al. 2021): ReLU(sum_k ReLU(G_k) * A_k)."""
    return _gradient_cam(ctx, layercam_weights, relu)

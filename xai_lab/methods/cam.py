"""Gradient-weighted class activation maps.

Every method here is one small function of a layer's activations ``A`` [N, K, h, w] and the
gradient ``G = dy_c/dA`` of the target score: it returns channel weights, [N, K, 1, 1], or
per-position weights, [N, K, h, w]. The shared base records ``A`` and ``G`` in one forward and
one backward pass that stops at the layer, and forms ``map = ReLU(sum_k w_k * A_k)``.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch

from ..capture import forward_hooks, resolve_layer
from ..context import Context, Result, layer_activations
from ..ops import check_positive, copies_per_pass, upsample
from ..registry import SharedPass, register


def activations_and_gradients(ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, dy_c/dA, y_c) for the context's layer: one forward pass, one backward pass to the layer
    (:func:`~xai_lab.context.layer_activations` with ``gradients=True``)."""
    return layer_activations(ctx, gradients=True)


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


def gradient_cam(name: str) -> Callable:
    """Register ``finish((A, G, scores), **options) -> Result`` as method ``name``: the method
    records A and G in one pass and calls ``finish``; ``explain`` with several gradient CAMs at
    once records them once for all (``SharedPass``)."""

    def decorate(finish: Callable) -> Callable:
        def method(ctx: Context, **options) -> Result:
            return finish(activations_and_gradients(ctx), **options)

        params = list(inspect.signature(finish).parameters.values())[1:]
        method.__signature__ = inspect.Signature([inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params)
        method.__doc__, method.__name__ = finish.__doc__, finish.__name__
        register(name, family="cam", needs_layer=True,
                 shared=SharedPass(activations_and_gradients, finish))(method)
        return finish

    return decorate


@gradient_cam("gradcam")
def gradcam(computed, counterfactual: bool = False, relu: bool = True) -> Result:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k w_k A_k), w_k = mean_ij dy_c/dA_kij.

    ``counterfactual=True`` negates the gradients: the regions whose removal would raise the
    class score ("what argues against this class", section 5 of the paper)."""
    A, G, _ = computed
    if counterfactual:
        G = -G
    return Result(layer_map=weighted_sum(A, gradcam_weights(A, G), relu))


@gradient_cam("gradcampp")
def gradcampp(computed, exp_score: bool = True, normalize_alpha: bool = False, relu: bool = True) -> Result:
    """Grad-CAM++ (Chattopadhyay et al. 2018) with the paper's exponential head Y = exp(y_c).

    For a score linear in A near the point, dY/dA = e^y G, d2Y/dA2 = e^y G^2, d3Y/dA3 = e^y G^3,
    so alpha = G^2 / (2 G^2 + sum_ab A_ab G^3) and w_k = sum_ij alpha_kij ReLU(e^y G_kij).
    ``exp_score=False`` drops the per-image factor e^y, as the ``grad-cam`` library does (same
    map up to scale; e^y overflows float32 for logits above 88); ``normalize_alpha=True``
    follows the authors' code (see gradcampp_alpha)."""
    A, G, scores = computed
    weights = gradcampp_from_derivatives(A, G, G.pow(2), G.pow(3), normalize_alpha)
    if exp_score:
        weights = weights * scores.exp().view(-1, 1, 1, 1)
    return Result(layer_map=weighted_sum(A, weights, relu))


@gradient_cam("xgradcam")
def xgradcam(computed, relu: bool = True) -> Result:
    """XGrad-CAM (Fu et al. 2020): w_k = sum_ij (A_kij / sum_ab A_kab) dy_c/dA_kij."""
    A, G, _ = computed
    return Result(layer_map=weighted_sum(A, xgradcam_weights(A, G), relu))


@gradient_cam("hirescam")
def hirescam(computed, relu: bool = True) -> Result:
    """HiResCAM (Draelos & Carin 2020): ReLU(sum_k G_k * A_k), no spatial averaging of the gradient."""
    A, G, _ = computed
    return Result(layer_map=weighted_sum(A, hirescam_weights(A, G), relu))


@gradient_cam("layercam")
def layercam(computed, relu: bool = True) -> Result:
    """LayerCAM (Jiang et al. 2021): ReLU(sum_k ReLU(G_k) * A_k)."""
    A, G, _ = computed
    return Result(layer_map=weighted_sum(A, layercam_weights(A, G), relu))


# --- CAM and Smooth Grad-CAM++ ------------------------------------------------------------


@register("cam", family="cam", needs_layer=True)
def cam(ctx: Context, head: str | None = None, relu: bool = False) -> Result:
    """CAM (Zhou et al. 2016) for networks ending in global average pooling + one linear layer:
    M_c = sum_k w_ck A_k, with w_c the head's weight row for the target class (bias left out, so
    y_c = mean_ij M_c + b_c). One forward pass, no gradient.

    ``head``: name of the final ``nn.Linear`` (default: the classifier's ``head``; required for a
    bare module, e.g. ``head="fc"``). The layer must be the feature map fed to the pooling, its
    channel count equal to the head's ``in_features``. ``relu=False`` by default: the paper's map
    is the signed sum; ``relu=True`` keeps only the positive evidence, as Grad-CAM does.

    A target linear in the logits, score = sum_c v_c z_c (a contrast: v = e_a - e_b; several
    labels), has the map sum_c v_c M_c: w_c and b_c below are then sum_c v_c w_c and sum_c v_c b_c.
    A probability, a sigmoid or a callable is not linear in the head: a ``ValueError``.

    ``extras``: ``"weights"`` w_c [N, K] (the head's row for each image's target), ``"bias"`` b_c
    [N] (0 without a bias) and ``"contributions"`` [N, K], each channel's part of the score,
    w_ck * mean_ij A_kij: they sum, with b_c, to y_c (the channels that add most to a class are
    the largest contributions)."""
    name = head if head is not None else (ctx.classifier.head if ctx.classifier is not None else None)
    if name is None:
        what = f"classifier {ctx.classifier.name!r}" if ctx.classifier is not None else "a bare model"
        raise ValueError(f"CAM needs a network ending in global average pooling + one Linear layer; {what} has "
                         "no such head (pass head='<name of the final nn.Linear>' if it has one)")
    name, linear = resolve_layer(ctx.model, name)
    if not isinstance(linear, torch.nn.Linear):
        raise ValueError(f"CAM head {name!r} is a {type(linear).__name__}, not an nn.Linear")
    activations, _, _ = layer_activations(ctx)  # one forward pass; fixes the target classes
    if activations.shape[1] != linear.in_features:
        raise ValueError(f"Layer {ctx.layer_name!r} gives shape {list(activations.shape)} but head {name!r} expects "
                         f"{linear.in_features} channels: CAM needs the feature map that is pooled into the head")
    coefficients = ctx.target.logit_weights(linear.out_features)
    if coefficients is None:
        raise ValueError(f"CAM reads the head's weights, so it explains scores linear in the logits (a class index, "
                         f"Logit, Contrast, Labels of logits), not {ctx.target.name!r}")
    coefficients = coefficients.to(linear.weight)
    weights = (coefficients @ linear.weight).detach()
    bias = (coefficients @ linear.bias).detach() if linear.bias is not None else torch.zeros_like(weights[:, 0])
    extras = {"weights": weights, "bias": bias, "contributions": weights * activations.mean(dim=(2, 3))}
    return Result(layer_map=weighted_sum(activations, weights[:, :, None, None], relu), extras=extras)


def neuron_mask(neurons: Sequence[tuple[int, int]], region: bool, h: int, w: int, device) -> torch.Tensor:
    """[h, w] 0/1 mask: the box spanned by the (row, column) ``neurons`` (``region=True``) or
    just those positions (``region=False``)."""
    rows, cols = zip(*[(int(i), int(j)) for i, j in neurons]) if len(neurons) else ((), ())
    if not rows or min(rows) < 0 or max(rows) >= h or min(cols) < 0 or max(cols) >= w:
        raise ValueError(f"neurons must be a non-empty list of (row, column) positions inside the {h}x{w} feature map, "
                         f"got {list(neurons)}")
    mask = torch.zeros(h, w, device=device)
    if region:
        mask[min(rows):max(rows) + 1, min(cols):max(cols) + 1] = 1
    else:
        mask[list(rows), list(cols)] = 1
    return mask


@contextmanager
def _clipped_layer(ctx: Context, neurons, region: bool) -> Iterator[None]:
    """Within the block the layer outputs A * mask (activations outside the neurons set to zero)."""
    if neurons is None:
        yield
        return

    def hook(module, inputs, output):
        return output * neuron_mask(neurons, region, output.shape[-2], output.shape[-1], output.device)

    with forward_hooks([ctx.layer], hook):
        yield


@register("smoothgradcampp", family="cam", needs_layer=True)
def smoothgradcampp(ctx: Context, n_samples: int = 16, sigma: float = 0.3, batch_size: int | None = None,
                    filters: Sequence[int] | None = None, neurons: Sequence[tuple[int, int]] | None = None,
                    region: bool = True, variant: str = "paper", relu: bool = True) -> Result:
    """Smooth Grad-CAM++ (Omeiza et al. 2019): Grad-CAM++ on derivatives averaged over ``n_samples``
    copies x + N(0, sigma^2) (``sigma`` in model-input units).

    With Y = exp(y_c) and G_m = dy_c/dA on copy m: D1 = mean_m e^y_m G_m, D2 = mean_m e^y_m G_m^2,
    D3 = mean_m e^y_m G_m^3; alpha = D2 / (2 D2 + sum_ab A_ab D3) and w_k = sum_ij alpha_kij ReLU(D1_kij)
    with A the clean input's activations; map = ReLU(sum_k w_k A_k). The numerator of alpha is D2,
    as the Grad-CAM++ derivation gives (torchcam notes that the paper prints D1 there). Sigma = 0
    gives Grad-CAM++; so does any sigma, up to a positive scale, at a layer followed only by
    pooling + linear, where G does not depend on the input.

    * ``filters=[k, ...]``: the map sums only those channels; ``extras["filter_maps"]``
      [N, len(filters), H, W] holds each channel's map w_k A_k (rectified if ``relu``) upsampled.
    * ``neurons=[(i, j), ...]``: the layer's activations outside the box spanned by the positions
      (``region=True``) or outside the positions themselves (``region=False``) are set to zero in
      every forward pass; A and G are then those of the clipped layer (the map is 0 outside).
    * ``variant="torchcam"`` reproduces torchcam 0.5's ``SmoothGradCAMpp``: no exponential,
      alpha = mean G^2 / (2 mean G^2 + sum_ab A_ab mean G^3 + 1e-8), and both ReLU(G) in w_k and
      the activations of the final sum taken from the LAST noisy copy.

    Passes: 1 clean forward + ``n_samples`` forward and backward, ``batch_size`` copies at a time
    (None: about 4 images a pass on a CPU, 8 copies elsewhere; :func:`~xai_lab.ops.copies_per_pass`)."""
    if variant not in ("paper", "torchcam"):
        raise ValueError(f"variant must be 'paper' or 'torchcam', not {variant!r}")
    check_positive("n_samples", n_samples, integer=True)
    check_positive("sigma", sigma, allow_zero=True)
    x, n = ctx.x, ctx.n
    batch_size = copies_per_pass(batch_size, n, ctx.device, accelerator=8)
    sums = [0, 0, 0]
    with _clipped_layer(ctx, neurons, region):
        A, _, _ = layer_activations(ctx)  # the clean activations; fixes the target classes
        for _, k in ctx.batches(n_samples, batch_size, desc="smooth grad-cam++"):
            noisy = x.repeat(k, 1, 1, 1) + sigma * torch.randn((k * n,) + x.shape[1:], generator=ctx.generator,
                                                               device=x.device, dtype=x.dtype)
            noisy_A, G, scores = layer_activations(ctx, gradients=True, inputs=noisy, repeats=k)
            scale = scores.exp().view(-1, 1, 1, 1) if variant == "paper" else 1.0
            for i in range(3):
                sums[i] = sums[i] + (scale * G.pow(i + 1)).view(k, *A.shape).sum(0)
    g1, g2, g3 = (s / n_samples for s in sums)
    if variant == "paper":
        weights = gradcampp_from_derivatives(A, g1, g2, g3)
    else:
        alpha = g2 / (2 * g2 + A.sum(dim=(2, 3), keepdim=True) * g3 + 1e-8)
        weights = (alpha * G[-n:].clamp_min(0)).sum(dim=(2, 3), keepdim=True)
        A = noisy_A[-n:]
    extras = {}
    if filters is not None:
        index = torch.as_tensor(list(filters), dtype=torch.long, device=A.device)
        if index.numel() == 0 or index.min() < 0 or index.max() >= A.shape[1]:
            raise ValueError(f"filters must be channel indices in [0, {A.shape[1]}), got {list(filters)}")
        weights, A = weights[:, index], A[:, index]
        per_filter = weights * A
        per_filter = per_filter.clamp_min(0) if relu else per_filter
        extras["filter_maps"] = upsample(per_filter.flatten(0, 1), x.shape[-2:]).view(n, len(index), *x.shape[-2:])
    return Result(layer_map=weighted_sum(A, weights, relu), extras=extras)

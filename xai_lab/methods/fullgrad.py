"""FullGrad (Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network
Visualization").

For a network built from affine layers and piecewise-linear activations, the output is exactly
the sum of the input part and one part per bias (the completeness identity, eq. 2 of the paper):

    y_c(x) = sum(dy_c/dx * x) + sum_layers sum(dy_c/dz * b),

where z = W h + b is a layer's output and b its bias broadcast over positions. Biases here are:
the bias of every Conv/Linear layer; the effective bias beta - mean * gamma / sqrt(var + eps) of
every batch norm in eval mode; and the "implicit bias" of a clamping activation. A piecewise-linear
activation is locally h = slope * z + offset; ReLU has offset 0, but ReLU6 (= ReLU(z) - ReLU(z - 6))
is the constant 6 where z >= 6, slope 0 and offset 6, and Hardtanh likewise at both ends. Without
that term completeness fails on EfficientNet-Lite0. Zero padding adds nothing. Activations that are
not piecewise linear (SiLU, GELU) break the identity; ``extras["completeness"]`` shows the gap.

One forward pass records the output of every biased module and clamping activation; one backward
pass gives the gradient with respect to the input and all of them at once.
"""
from __future__ import annotations

import torch
from torch import nn

from ..capture import LayerRecorder
from ..context import Context, Result
from ..ops import upsample
from ..registry import register

_CONV_OR_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def effective_bias(module: nn.Module) -> torch.Tensor | None:
    """The bias b of the affine map z = W h + b a module applies in eval mode, or None."""
    if isinstance(module, _CONV_OR_LINEAR):
        return module.bias
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
        scale = torch.rsqrt(module.running_var + module.eps)
        if module.affine:
            return module.bias - module.running_mean * module.weight * scale
        return -module.running_mean * scale
    return None


def activation_offset(module: nn.Module, output: torch.Tensor) -> torch.Tensor | None:
    """The implicit bias of a clamping activation (Hardtanh, ReLU6): where the output sits at a
    clamp value the activation is locally the constant, slope 0 and offset = that value; else 0."""
    if not isinstance(module, nn.Hardtanh):
        return None
    offset = torch.where(output >= module.max_val, output, 0.0)
    if module.min_val != 0:  # an output clamped at 0 adds nothing
        offset = torch.where(output <= module.min_val, output, offset)
    return offset


def _broadcast(bias: torch.Tensor, z: torch.Tensor, module: nn.Module) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return bias  # acts on the last dimension
    return bias.view(1, -1, *[1] * (z.dim() - 2))


def full_gradient(ctx: Context, activation_offsets: bool = True):
    """One forward and one backward pass -> (input part dy/dx * x [N, 3, H, W], list of
    (name, bias part dy/dz * b with z's shape, feature gradient dy/dz or None), target logits [N])."""
    named = [(name, m) for name, m in ctx.model.named_modules()
             if effective_bias(m) is not None or (activation_offsets and isinstance(m, nn.Hardtanh))]
    x = ctx.x.detach().requires_grad_(True)
    with LayerRecorder(ctx.model, [name for name, _ in named]) as recorder:
        scores = ctx.scores(ctx.forward(x))
        outputs = [(f"{name}#{j}" if j else name, module, z)
                   for name, module in named for j, z in enumerate(recorder.outputs[name])]
        grads = ctx.grad(scores, [x] + [z for _, _, z in outputs], allow_unused=True)
    parts = []
    for (name, module, z), g in zip(outputs, grads[1:]):
        g = torch.zeros_like(z) if g is None else g
        bias = effective_bias(module)
        if bias is not None:
            parts.append((name, g * _broadcast(bias.detach(), z, module), g))
        else:
            parts.append((name, g * activation_offset(module, z.detach()), None))
    return grads[0] * x.detach(), parts, scores.detach()


def _psi(maps: torch.Tensor, normalize: str) -> torch.Tensor:
    """abs, then min-max rescale per image ("layer", the authors' code) or per channel ("channel",
    the grad-cam library) or not at all ("none"), then the sum over channels: [N, C, h, w] -> [N, h, w].

    The rescale is folded into the channel sum, sum_c (|m_c| - lo) / span = (sum_c |m_c| - C lo) / span
    (per channel: sum_c |m_c| / span_c - sum_c lo_c / span_c), so each part is read three times
    (abs, min and max, the sum) instead of materialising its rescaled copy; a constant map or
    channel (span 0) adds zeros, never NaN."""
    if normalize not in ("layer", "channel", "none"):
        raise ValueError(f"normalize must be 'layer', 'channel' or 'none', not {normalize!r}")
    maps = maps.abs()
    if normalize == "none":
        return maps.sum(dim=1)
    per = 1 if normalize == "layer" else 2  # the range of each image [N] or of each channel [N, C]
    low, high = torch.aminmax(maps.flatten(per), dim=per)
    span = high - low
    inverse = torch.where(span > 0, 1 / span.clamp_min(torch.finfo(maps.dtype).tiny), 0.0)
    if normalize == "layer":
        return (maps.sum(dim=1) - maps.shape[1] * low[:, None, None]) * inverse[:, None, None]
    return torch.einsum("nchw,nc->nhw", maps, inverse) - (low * inverse).sum(dim=1)[:, None, None]


def _fullgrad_result(ctx: Context, use_feature_gradients: bool, normalize: str, activation_offsets: bool) -> Result:
    input_part, parts, scores = full_gradient(ctx, activation_offsets)
    size = ctx.x.shape[-2:]
    saliency = _psi(input_part, normalize)
    # bilinear upsampling is linear: the parts of one resolution are summed first and upsampled once
    by_size: dict[tuple[int, int], torch.Tensor] = {}
    for _, bias_part, feature_grad in parts:
        spatial = feature_grad if use_feature_gradients else bias_part
        if spatial is not None and spatial.dim() == 4:  # the map uses the convolutional parts
            key = tuple(spatial.shape[-2:])
            by_size[key] = by_size[key] + _psi(spatial, normalize) if key in by_size else _psi(spatial, normalize)
    for part_sum in by_size.values():
        saliency = saliency + upsample(part_sum, size)
    sums = {name: p.sum(dim=1) if p.dim() == 4 else p.flatten(1).sum(1) for name, p, _ in parts}
    input_sum = input_part.sum(dim=1)
    # the totals from the channel sums already made (a second pass over every part otherwise)
    completeness = input_sum.flatten(1).sum(1) + sum(bias_part_totals(sums).values())
    extras = {"input_part": input_sum.detach(), "bias_parts": {k: v.detach() for k, v in sums.items()},
              "completeness": completeness.detach(), "score": scores}
    return Result(saliency=saliency.detach(), extras=extras)


def bias_part_totals(bias_parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """How much each bias part adds to the score: sum_j b_{l,j} dy_c/dz_{l,j} over all positions
    (and channels) of module l, per image, [N] each, in the order given. ``bias_parts`` is
    ``extras["bias_parts"]`` of a ``fullgrad`` explanation; with the input part's total the
    totals add up to the score (completeness, eq. 2 of Srinivas & Fleuret 2019)."""
    return {name: part.reshape(len(part), -1).sum(1) for name, part in bias_parts.items()}


@register("fullgrad", family="gradient")
def fullgrad(ctx: Context, normalize: str = "layer", activation_offsets: bool = True) -> Result:
    """FullGrad (Srinivas & Fleuret 2019): psi(dy/dx * x) + sum_layers psi(dy/dz * b).

    The sum runs over the layers with conv-shaped outputs; psi = bilinear upsampling of the channel
    sum of rescale(abs(.)).

    ``normalize``: "layer" rescales each part to [0, 1] per image, as the authors' code does;
    "channel" rescales every channel separately, as the ``grad-cam`` library does. Biases include
    batch-norm effective biases and, with ``activation_offsets``, the implicit bias of ReLU6/Hardtanh
    clamps (module docstring). Linear layers count in the completeness sum, not in the map.
    ``extras``: ``input_part`` [N, H, W] and ``bias_parts`` {module: [N, h, w] or [N]}, channel sums
    of the signed parts; ``completeness`` [N], their total, equal to ``score`` [N] for piecewise-linear nets
    and a target linear in the logits (a class index, a contrast, several logits; not a probability)."""
    return _fullgrad_result(ctx, False, normalize, activation_offsets)


@register("simple_fullgrad", family="gradient")
def simple_fullgrad(ctx: Context, normalize: str = "layer") -> Result:
    """Simple FullGrad (the FullGrad authors' code): psi(dy/dx * x) + sum_layers psi(dy/dz).

    dy/dz is the gradient at the output of each conv-shaped layer with an explicit bias (conv,
    batch norm), not multiplied by the bias; same post-processing and ``extras`` as ``fullgrad``."""
    return _fullgrad_result(ctx, True, normalize, activation_offsets=True)

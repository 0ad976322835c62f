"""Control "explanations" that every comparison table includes: a method that does no better
than these has not shown that it explains anything about the model."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..context import Context, Result
from ..registry import register


@register("random", family="control")
def random_map(ctx: Context) -> Result:
    """Uniform random values in [0, 1) per pixel, from the seeded generator (no model pass)."""
    n, _, h, w = ctx.x.shape
    _ = ctx.targets  # reported in the Explanation; one forward pass for target=None
    return Result(saliency=torch.rand((n, h, w), generator=ctx.generator, device=ctx.device, dtype=ctx.x.dtype))


@register("sobel", family="control")
def sobel_edges(ctx: Context) -> Result:
    """Sobel edge magnitude of the image (channel mean): sqrt(Gx^2 + Gy^2), replicate padding.
    Independent of the model and the class: an edge detector, not an explanation."""
    gray = ctx.x.mean(dim=1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=gray.dtype, device=gray.device)
    kernels = torch.stack([kx, kx.T])[:, None]
    grads = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    _ = ctx.targets  # reported in the Explanation; one forward pass for target=None
    return Result(saliency=grads.pow(2).sum(dim=1).sqrt())

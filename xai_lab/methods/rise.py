"""RISE (Petsiuk et al. 2018): importance as the expected target probability under random
smooth masks, each pixel weighted by how much of it the mask kept."""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..context import Context, Result
from ..ops import check_fraction, check_positive, forward_batch_size
from ..registry import register
from .occlusion import masked_batches


@lru_cache(maxsize=16)
def _mask_plan(n_masks: int, cells: int, p: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary ``cells`` x ``cells`` grids (1 with probability ``p``) and the shifts in [0, 1) of a
    cell, drawn once per settings and seed on the CPU, so masks are identical on every device."""
    g = torch.Generator().manual_seed(seed)
    grids = (torch.rand(n_masks, 1, cells, cells, generator=g) < p).float()
    shifts = torch.rand(n_masks, 2, generator=g)
    return grids, shifts


def rise_masks(size: tuple[int, int], indices: torch.Tensor, n_masks: int, cells: int, p: float,
               seed: int) -> torch.Tensor:
    """Masks ``indices`` [k] of the RISE set for images of ``size`` (H, W): [k, 1, H, W] in [0, 1].

    Each grid is upsampled bilinearly to (cells + 1) * ceil(H / cells) (likewise W) and cropped
    to H x W at a random offset of less than one cell, as in the paper. Only the low-resolution
    grids are stored (and cached); the full masks are rebuilt per batch, which costs far less
    than the forward pass and keeps memory at one batch of masks."""
    h, w = size
    cell_h, cell_w = math.ceil(h / cells), math.ceil(w / cells)
    grids, shifts = _mask_plan(n_masks, cells, float(p), seed)
    idx = indices.cpu()
    up = F.interpolate(grids[idx], size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear",
                       align_corners=False)
    dy = (shifts[idx, 0] * cell_h).long()
    dx = (shifts[idx, 1] * cell_w).long()
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    masks = up[torch.arange(len(idx))[:, None, None], 0, rows, cols].clamp_(0, 1)  # float rounding
    return masks[:, None].to(indices.device)


@register("rise", family="perturbation")
def rise(ctx: Context, n_masks: int = 4000, cells: int = 7, p: float = 0.5, batch_size: int | None = None) -> Result:
    """RISE (Petsiuk et al. 2018): S = sum_i f(x * M_i) M_i / (n_masks * p), f the target's
    probability for a plain class index (the paper's), a target object's own score otherwise
    (:func:`~xai_lab.targets.perturbation_score`), with M_i
    random binary ``cells`` x ``cells`` grids (keep probability ``p``) upsampled bilinearly and
    randomly shifted (:func:`rise_masks`). ``x * M`` is taken in model-input units (masked pixels
    become 0 there). All images share the masks; one forward pass per mask (plus one to find
    the predicted class when target=None), ``batch_size`` images (at least N) per forward pass
    (None: 4 on a CPU, 100 elsewhere; :func:`~xai_lab.ops.forward_batch_size`).
    ``extras["mask_seed"]`` (drawn from the explain seed) rebuilds the masks with :func:`rise_masks`."""
    check_positive("n_masks", n_masks, integer=True)
    check_positive("cells", cells, integer=True)
    if cells > min(ctx.x.shape[-2:]):
        raise ValueError(f"cells must be at most the image side {min(ctx.x.shape[-2:])}, got {cells}")
    check_fraction("p", p, open_low=True)
    batch_size = forward_batch_size(batch_size, ctx.device, accelerator=100)
    g = ctx.generator
    seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
    size = tuple(ctx.x.shape[-2:])

    def masks(idx):
        return rise_masks(size, idx, n_masks, cells, p, seed).to(ctx.x.dtype)

    saliency = torch.zeros(ctx.n, *size, dtype=ctx.x.dtype, device=ctx.device)
    for m, probs in masked_batches(ctx, n_masks, masks, None, batch_size, None, "rise"):
        saliency += torch.einsum("kn,khw->nhw", probs, m[:, 0])
    return Result(saliency=saliency / (n_masks * p), extras={"mask_seed": seed})

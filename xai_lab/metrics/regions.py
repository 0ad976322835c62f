"""The region a map points at: its top fraction of pixels, the overlap of two such regions, and
the share of a map's mass that lies in its top fraction (how concentrated, or sharp, it is).

"The top 20 % of a map" is only well defined once ties are settled. A quantile threshold
(``map >= quantile(map, 0.8)``) takes every pixel equal to the threshold, so a Grad-CAM map
that is 0 on more than 80 % of the image would select the whole image. Here a region has
exactly ``round(fraction * H * W)`` pixels (halves rounded up), and equal values are ordered
by a fixed random permutation of the pixels, seeded by ``tie_seed`` (the same permutation
for every map of one size), or by pixel index (row-major) with ``tie_seed=None``. The seeded
order spreads the pixels taken from a tie over the image instead of taking its top rows.
"""
from __future__ import annotations

import math

import torch


def _maps(saliency) -> tuple[torch.Tensor, bool]:
    s = torch.as_tensor(saliency).detach()
    if s.dim() == 4 and s.shape[1] == 1:
        s = s[:, 0]
    single = s.dim() == 2
    if single:
        s = s[None]
    if s.dim() != 3:
        raise ValueError(f"saliency must be maps [N, H, W] or one map [H, W], got shape {list(s.shape)}")
    if s.is_complex() or s.dtype == torch.bool:
        raise TypeError(f"saliency must be real numbers, got {s.dtype}")
    s = s.float().cpu()
    if not torch.isfinite(s).all():
        raise ValueError("saliency contains NaN or infinite values")
    return s, single


def region_size(fraction: float, height: int, width: int) -> int:
    """``round(fraction * H * W)`` pixels, halves rounded up (Python's ``round`` would round 4.5
    to 4): the size of every top-fraction region and of ROAR's removal."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    return min(height * width, math.floor(fraction * height * width + 0.5))


def pixel_order(saliency, tie_seed: int | None = 0) -> torch.Tensor:
    """Pixel indices (row-major) of each map, largest value first: [N, H * W] for maps
    [N, H, W] ([H * W] for one map [H, W]). Equal values keep a fixed order: a random
    permutation drawn from ``torch.Generator().manual_seed(tie_seed)`` (the same one for every
    map of that size), or pixel index order for ``tie_seed=None``."""
    s, single = _maps(saliency)
    flat = s.flatten(1)
    if tie_seed is None:
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    else:
        permutation = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(tie_seed))
        order = permutation[torch.sort(flat[:, permutation], dim=1, descending=True, stable=True).indices]
    return order[0] if single else order


def top_fraction_mask(saliency, fraction: float, tie_seed: int | None = 0) -> torch.Tensor:
    """Bool mask of the top ``fraction`` of the pixels of each map: exactly
    :func:`region_size` = floor(fraction * H * W + 1/2) pixels per map, the largest values first
    (signed values as they are: pass ``saliency.abs()`` to rank by magnitude), ties in the order
    of :func:`pixel_order`. The result is deterministic.

    ``saliency``: [N, H, W], [N, 1, H, W] or [H, W]; the mask has the same shape without the
    channel axis."""
    s, single = _maps(saliency)
    n, h, w = s.shape
    k = region_size(fraction, h, w)
    order = pixel_order(s, tie_seed)
    mask = torch.zeros(n, h * w, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    mask = mask.view(n, h, w)
    return mask[0] if single else mask


def mask_iou(a, b) -> torch.Tensor:
    """Intersection over union of two bool masks per image, |a & b| / |a | b| ([N] for
    [N, H, W] masks, a 0-dim tensor for [H, W]); 1 where both masks are empty (they agree).
    Two independent random regions of a fraction f of the pixels share about
    f^2 / (2 f - f^2) on average (0.11 for f = 0.2)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.dtype != torch.bool or b.dtype != torch.bool:
        raise TypeError(f"masks must be bool tensors, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape or a.dim() not in (2, 3):
        raise ValueError(f"masks must have the same [N, H, W] or [H, W] shape, got {list(a.shape)} and {list(b.shape)}")
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def random_region_iou(fraction: float) -> float:
    """Expected-overlap reference for :func:`mask_iou` of two top-``fraction`` regions placed
    independently at random: f^2 / (2 f - f^2) (intersection f^2, union 2 f - f^2, in the limit
    of many pixels)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    return fraction ** 2 / (2 * fraction - fraction ** 2)


def top_mass_share(saliency, fraction: float) -> torch.Tensor:
    """The share of each map's positive mass that lies in its top ``fraction`` of pixels:

        share = sum_{p in T} max(s_p, 0) / sum_p max(s_p, 0),

    with T the k = :func:`region_size` (fraction, H, W) pixels of largest value. A map whose
    positive mass sits in few pixels (a sharp map) has a share near 1; a constant positive map
    has k / (H W), about ``fraction``. The share does not depend on the map's scale, and it needs
    no tie rule: pixels of equal value add the same amount whichever of them are taken, so the
    sum over the top k is the same for every tie order (that of :func:`top_fraction_mask`
    included). ``saliency``: [N, H, W], [N, 1, H, W] or [H, W] (real, finite); returns [N]
    float64 (a 0-dim tensor for one map), NaN for a map without positive values (no mass to
    share). ``fraction`` in [0, 1] (0 gives 0, 1 gives 1)."""
    s, single = _maps(saliency)
    n, h, w = s.shape
    k = region_size(fraction, h, w)
    positive = s.double().clamp_min(0).flatten(1)
    top = positive.topk(k, dim=1).values.sum(1)
    total = positive.sum(1)
    share = torch.where(total > 0, top / total.where(total > 0, torch.ones_like(total)),
                        torch.full_like(total, math.nan))
    return share[0] if single else share

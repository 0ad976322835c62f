"""Does a map point at a region known to matter (a planted mark, an annotated object)?

* :func:`relevance_mass` -- the share of the positive relevance inside the region;
* :func:`pointing_game` -- is the map's maximum inside it;
* :func:`bounding_box` and :func:`box_iou` -- the map as a weakly supervised localizer (Grad-CAM,
  Selvaraju et al. 2017, section 4.1): threshold it, box its largest region, and compare the box
  with the region's box by intersection over union.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.measure import label

from ..ops import check_fraction


def _pair(saliency, mask) -> tuple[torch.Tensor, torch.Tensor]:
    s, m = torch.as_tensor(saliency, dtype=torch.float32), torch.as_tensor(mask).bool()
    if s.dim() == 2:
        s, m = s[None], m[None] if m.dim() == 2 else m
    if m.dim() == 2:
        m = m.expand_as(s)
    if s.shape != m.shape:
        raise ValueError(f"saliency {list(s.shape)} and mask {list(m.shape)} must have the same [N, H, W] shape")
    if not m.flatten(1).any(1).all():
        raise ValueError("every mask must contain at least one pixel")
    return s, m


def relevance_mass(saliency, mask) -> torch.Tensor:
    """Relevance mass accuracy (Arras et al. 2022, "CLEVR-XAI"): the share of the positive
    relevance that falls inside the mask, sum_{p in mask} R+_p / sum_p R+_p, per image [N];
    0 for a map with no positive relevance. A uniform map scores |mask| / (H * W)."""
    s, m = _pair(saliency, mask)
    positive = s.clamp_min(0).flatten(1)
    total = positive.sum(1)
    inside = (positive * m.flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(total))


def pointing_game(saliency, mask, tolerance: int = 0) -> torch.Tensor:
    """Pointing game (Zhang et al. 2018): a hit when the map's maximum lies in the mask, grown by
    ``tolerance`` pixels (the paper uses 15). Ties: a hit if any maximal pixel is inside. [N] bool."""
    s, m = _pair(saliency, mask)
    if tolerance > 0:
        k = 2 * tolerance + 1
        m = torch.nn.functional.max_pool2d(m[:, None].float(), k, stride=1, padding=tolerance)[:, 0].bool()
    peak = s.flatten(1).max(1, keepdim=True).values
    at_peak = s.flatten(1) == peak
    return (at_peak & m.flatten(1)).any(1)


def bounding_box(saliency, threshold: float = 0.15) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the box around the largest 8-connected region of the
    pixels of one map [H, W] with value >= ``threshold`` x its maximum (Selvaraju et al. 2017
    threshold Grad-CAM at 15 % of the maximum and box the largest segment). Of regions with equal
    size, the one with the highest value wins. A map without a positive value has no region:
    ValueError."""
    check_fraction("threshold", threshold)
    s = torch.as_tensor(saliency, dtype=torch.float64).detach().cpu()
    if s.dim() != 2:
        raise ValueError(f"bounding_box takes one map [H, W], got shape {list(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError("the map contains NaN or infinite values")
    peak = float(s.max())
    if peak <= 0:
        raise ValueError("the map has no positive value: there is no region to box")
    values = s.numpy()
    regions = label(values >= threshold * peak, connectivity=2)
    sizes = np.bincount(regions.ravel())[1:]
    best = max(range(len(sizes)), key=lambda r: (sizes[r], values[regions == r + 1].max())) + 1
    rows, cols = np.nonzero(regions == best)
    return int(rows.min()), int(cols.min()), int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two boxes ``(top, left, height, width)`` in pixels."""
    for box in (a, b):
        if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"a box is (top, left, height, width) with positive sizes, got {box!r}")
    height = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    width = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(height, 0) * max(width, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)

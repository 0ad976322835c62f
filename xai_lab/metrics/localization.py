"""Does a map point at a region known to matter (a planted mark, an annotated object)?"""
from __future__ import annotations

import torch


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

"""Removing the most salient pixels of an image: the masking of Remove And Retrain (ROAR,
Hooker et al. 2019, "A Benchmark for Interpretability Methods in Deep Neural Networks").

:func:`remove_top_fraction` replaces exactly :func:`removed_count` pixels (``round(k * H * W)``,
halves rounded up), most salient first (:func:`removal_order`, ties in a fixed seeded random
order), by an uninformative value (by default each channel's image mean, as in Hooker et al.).
The experiment that retrains on such images is :mod:`xai_lab.experiments.roar`.
"""
from __future__ import annotations

import math

import torch


def removed_count(fraction: float, height: int, width: int) -> int:
    """``round(fraction * H * W)``, halves rounded up (Python's ``round`` would round 4.5 to 4)."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    return min(height * width, int(math.floor(fraction * height * width + 0.5)))


def removal_order(saliency: torch.Tensor, tie_seed: int | None = 0) -> torch.Tensor:
    """Pixel indices (row-major) [H * W], most salient first. Equal values keep a fixed order:
    a random permutation drawn from ``torch.Generator().manual_seed(tie_seed)`` (the same one for
    every map of that size), or pixel index order for ``tie_seed=None``. A map with many equal
    values (Grad-CAM is 0 wherever its ReLU clips) thus loses pixels spread over the image, not
    the top rows first."""
    if saliency.dim() != 2:
        raise ValueError(f"saliency must be one map [H, W], got shape {list(saliency.shape)}")
    flat = saliency.detach().flatten().float().cpu()
    if not torch.isfinite(flat).all():
        raise ValueError("saliency contains NaN or infinite values")
    if tie_seed is None:
        return torch.sort(flat, descending=True, stable=True).indices
    permutation = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(tie_seed))
    return permutation[torch.sort(flat[permutation], descending=True, stable=True).indices]


def removal_mask(saliency: torch.Tensor, fraction: float, tie_seed: int | None = 0) -> torch.Tensor:
    """Bool [H, W]: True at the ``round(fraction * H * W)`` most salient pixels (:func:`removal_order`)."""
    order = removal_order(saliency, tie_seed)
    h, w = saliency.shape
    count = removed_count(fraction, h, w)
    mask = torch.zeros(h * w, dtype=torch.bool)
    mask[order[:count]] = True
    return mask.view(h, w)


def remove_top_fraction(pixels: torch.Tensor, saliency: torch.Tensor, fraction: float, fill="mean",
                        tie_seed: int | None = 0) -> torch.Tensor:
    """A copy of ``pixels`` [C, H, W] with its ``round(fraction * H * W)`` most salient pixels
    (all channels) replaced by ``fill``: ``"mean"`` (each channel's mean over the whole original
    image; Hooker et al. 2019 fill with a per-channel mean too), a number, or one value per
    channel [C]. ``fraction = 0`` changes nothing, ``fraction = 1`` replaces every pixel. Ties:
    :func:`removal_order`."""
    if not isinstance(pixels, torch.Tensor) or pixels.dim() != 3:
        raise ValueError(f"pixels must be one image [C, H, W], got {getattr(pixels, 'shape', type(pixels).__name__)}")
    saliency = torch.as_tensor(saliency)
    if tuple(saliency.shape) != tuple(pixels.shape[1:]):
        raise ValueError(f"saliency {list(saliency.shape)} does not match the image's size {list(pixels.shape[1:])}")
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"fill must be 'mean', a number or one value per channel, got {fill!r}")
        value = pixels.mean(dim=(1, 2))
    else:
        value = torch.as_tensor(fill, dtype=pixels.dtype).flatten()
        if value.numel() == 1:
            value = value.expand(pixels.shape[0])
        if value.numel() != pixels.shape[0]:
            raise ValueError(f"fill has {value.numel()} values for {pixels.shape[0]} channels")
    mask = removal_mask(saliency, fraction, tie_seed).to(pixels.device)
    out = pixels.clone()
    out[:, mask] = value.to(out)[:, None]
    return out


__all__ = ["remove_top_fraction", "removal_mask", "removal_order", "removed_count"]

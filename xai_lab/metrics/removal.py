"""Removing the most salient pixels of an image: the masking of Remove And Retrain (ROAR,
Hooker et al. 2019, "A Benchmark for Interpretability Methods in Deep Neural Networks").

:func:`remove_top_fraction` replaces exactly :func:`removed_count` pixels (``round(k * H * W)``,
halves rounded up), most salient first (:func:`removal_order`, ties in a fixed seeded random
order), by an uninformative value (by default each channel's image mean, as in Hooker et al.).
The experiment that retrains on such images is :mod:`xai_lab.experiments.roar`.
"""
from __future__ import annotations

import torch

from .regions import pixel_order, region_size, top_fraction_mask


def _check_one_map(saliency) -> None:
    shape = torch.as_tensor(saliency).shape
    if len(shape) != 2:
        raise ValueError(f"saliency must be one map [H, W], got shape {list(shape)}")


def removed_count(fraction: float, height: int, width: int) -> int:
    """How many pixels ROAR removes: ``round(fraction * H * W)``, halves rounded up
    (:func:`~xai_lab.metrics.regions.region_size`)."""
    return region_size(fraction, height, width)


def removal_order(saliency: torch.Tensor, tie_seed: int | None = 0) -> torch.Tensor:
    """Pixel indices (row-major) [H * W] of one map, most salient first, equal values in a fixed
    seeded order (:func:`~xai_lab.metrics.regions.pixel_order`): a map with many equal values
    (Grad-CAM is 0 wherever its ReLU clips) loses pixels spread over the image, not the top rows."""
    _check_one_map(saliency)
    return pixel_order(saliency, tie_seed)


def removal_mask(saliency: torch.Tensor, fraction: float, tie_seed: int | None = 0) -> torch.Tensor:
    """Bool [H, W]: True at the ``round(fraction * H * W)`` most salient pixels of one map
    (:func:`~xai_lab.metrics.regions.top_fraction_mask`)."""
    _check_one_map(saliency)
    return top_fraction_mask(saliency, fraction, tie_seed)


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

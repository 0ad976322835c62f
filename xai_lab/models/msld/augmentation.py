"""Random views of a training image: Inception-style crop, flips, color jitter, all drawn from
one seeded ``torch.Generator``."""
from __future__ import annotations

import math

import torch

from .settings import DEFAULT_SETTINGS, IMAGE_SIZE, TrainSettings


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_crop_box(height: int, width: int, generator: torch.Generator, scale=(0.5, 1.0),
                    ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with area fraction in ``scale`` and log-uniform aspect
    ratio w/h in ``ratio`` (Szegedy et al. 2015's "Inception" crop); the whole image after 10 misses."""
    for _ in range(10):
        area = height * width * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(height - h + 1, (), generator=generator))
            left = int(torch.randint(width - w + 1, (), generator=generator))
            return top, left, h, w
    return 0, 0, height, width


def augment(pixels: torch.Tensor, generator: torch.Generator, settings: TrainSettings = DEFAULT_SETTINGS,
            size: int = IMAGE_SIZE) -> torch.Tensor:
    """One random view [3, size, size] of an image [3, H, W] in [0, 1]: resized crop, horizontal
    and vertical flips (p = 1/2 each: lesions have no up or left), then brightness, contrast and
    saturation scaled by factors uniform in [1 - jitter, 1 + jitter]. All draws use ``generator``."""
    import torchvision.transforms.functional as TF

    top, left, h, w = random_crop_box(pixels.shape[1], pixels.shape[2], generator, settings.crop_scale,
                                      settings.crop_ratio)
    x = TF.resized_crop(pixels, top, left, h, w, [size, size], antialias=True)
    if float(torch.rand((), generator=generator)) < 0.5:
        x = x.flip(-1)
    if float(torch.rand((), generator=generator)) < 0.5:
        x = x.flip(-2)
    low, high = 1 - settings.jitter, 1 + settings.jitter
    x = TF.adjust_brightness(x, _uniform(generator, low, high))
    x = TF.adjust_contrast(x, _uniform(generator, low, high))
    x = TF.adjust_saturation(x, _uniform(generator, low, high))
    return x.clamp(0, 1)


def augmented_views(pixels: torch.Tensor, n: int, settings: TrainSettings = DEFAULT_SETTINGS,
                    seed: int = 0) -> list[torch.Tensor]:
    """The image [3, H, W] as it is, then ``n`` :func:`augment` views drawn in turn from one
    generator seeded with ``seed``: views like those training adds (``copies - 1`` per image)."""
    generator = torch.Generator().manual_seed(seed)
    return [pixels] + [augment(pixels, generator, settings) for _ in range(n)]

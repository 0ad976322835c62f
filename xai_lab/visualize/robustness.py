"""Is a synthetic image evidence about the network or a trick of exact pixel values? An image
grown by unregularized gradient ascent is an adversarial example (Nguyen et al. 2015, "Deep
Neural Networks are Easily Fooled"): its class probability collapses under a shift or a blur
that a human would not notice. A regularized one (Olah et al. 2017, "Feature Visualization")
keeps it. :func:`transform_robustness` asks the model again after such small changes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import eval_mode, gaussian_blur


def class_probability(classifier, pixels: torch.Tensor, target: int) -> float:
    """The softmax probability p(``target`` | image) of one image given as pixels [3, H, W] in
    [0, 1] (the classifier's input scaling applied first)."""
    if pixels.dim() != 3:
        raise ValueError(f"pixels must be one image [3, H, W], got shape {list(pixels.shape)}")
    with torch.no_grad(), eval_mode(classifier.model):
        x = classifier.from_pixels(pixels[None].to(classifier.device))
        return float(torch.softmax(classifier.model(x), dim=1)[0, target])


def transform_robustness(classifier, pixels: torch.Tensor, target: int, shift: int = 4, blur_sigma: float = 1.0,
                         size: int = 224) -> dict[str, float]:
    """p(``target``) of one image (pixels [3, H, W] in [0, 1], e.g. an activation maximization
    image) as it is and after three changes that keep what a human sees: rolled by ``shift``
    pixels down and right (wrapping around), blurred with a Gaussian of ``blur_sigma`` pixels
    (:func:`~xai_lab.ops.gaussian_blur`), resized bilinearly to ``size`` x ``size``. Keys
    ``"as optimized"``, ``"shifted {shift} px"``, ``"blurred (sigma {blur_sigma} px)"`` and
    ``"at {size} x {size}"``, in that order."""
    changed = {"as optimized": pixels,
               f"shifted {shift} px": torch.roll(pixels, (shift, shift), dims=(1, 2)),
               f"blurred (sigma {blur_sigma:g} px)": gaussian_blur(pixels[None], blur_sigma)[0],
               f"at {size} x {size}": F.interpolate(pixels[None], size=size, mode="bilinear")[0]}
    return {name: class_probability(classifier, image, target) for name, image in changed.items()}

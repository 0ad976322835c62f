"""DeepDream (Mordvintsev, Olah & Tyka 2015): amplify whatever a layer already sees in an image
by gradient ascent on the layer's mean squared activation, octave by octave (small scale first,
details added as the image grows back to full size)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import unwrap
from ..ops import eval_mode
from .activation_maximization import Visualization
from .objective import objective


def deep_dream(classifier_or_model, image: torch.Tensor, layer, octaves: int = 3, steps: int = 10,
               lr: float = 0.02, octave_scale: float = 1.4, progress: bool = False) -> Visualization:
    """Dream on ``image`` (pixels in [0, 1], [3, H, W]) at ``layer``.

    At each octave (sizes H / octave_scale^k, smallest first) take ``steps`` normalized gradient
    steps x <- x + lr * g / mean|g| on mean(A_layer^2), then clamp to [0, 1]; the detail added at a
    small scale is carried to the next. ``curve``: the objective after each step (all octaves).
    """
    from tqdm import trange

    model, classifier = unwrap(classifier_or_model)
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be pixels [3, H, W] in [0, 1], got {list(image.shape)}")
    to_input = classifier.from_pixels if classifier is not None else (lambda p: p)
    f = objective(model, (layer, None))
    device = next(model.parameters()).device
    base = image[None].to(device).float()
    h, w = base.shape[-2:]
    sizes = [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k))) for k in range(octaves)][::-1]
    curve = []
    with eval_mode(model):
        with torch.no_grad():
            start = float(f(to_input(base))[0])
        detail = torch.zeros_like(base)
        for size in sizes:
            shrunk = F.interpolate(base, size=size, mode="bilinear", align_corners=False)
            x = (shrunk + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)).clamp(0, 1)
            for _ in trange(steps, disable=not progress, desc=f"octave {size}", leave=False):
                x = x.detach().requires_grad_(True)
                value = f(to_input(x))[0]
                (grad,) = torch.autograd.grad(value, x)
                with torch.no_grad():
                    x = (x + lr * grad / grad.abs().mean().clamp_min(1e-12)).clamp(0, 1)
                curve.append(float(value.detach()))
            detail = (x - shrunk).detach()
        result = x.detach()
    return Visualization(image=result[0].cpu(), curve=curve, start=start)

"""Activation maximization: gradient ascent from noise on the image that maximizes a class logit
or a channel's mean activation, with the usual regularizers (Olah et al. 2017, "Feature
Visualization"): random jitter, a decorrelated Fourier parametrization or periodic Gaussian
blur, and an L2 penalty on the pixels."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import unwrap
from ..ops import eval_mode, gaussian_blur
from .objective import objective


@dataclass
class Visualization:
    image: torch.Tensor          # [3, H, W] pixels in [0, 1]
    curve: list[float]           # the objective after each step
    start: float                 # the objective of the starting image


def _fourier_scale(h: int, w: int, decay: float = 1.0) -> torch.Tensor:
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return 1.0 / torch.sqrt(fx ** 2 + fy ** 2).clamp_min(1.0 / max(h, w)) ** decay


def activation_maximization(classifier_or_model, target, steps: int = 128, lr: float = 0.05, size: int = 224,
                            parametrization: str = "fourier", jitter: int = 8, blur_sigma: float = 0.0,
                            blur_every: int = 4, l2: float = 0.0, seed: int = 0, progress: bool = False) -> Visualization:
    """Maximize ``target`` (class index, or ``(layer, channel)``) over an image, from noise.

    ``parametrization``: ``"fourier"`` (pixels = sigmoid of an inverse FFT of a spectrum scaled
    by 1/frequency: decorrelated, low frequencies first) or ``"pixel"`` (pixels = sigmoid of free
    parameters). ``jitter``: random shift of up to that many pixels each step. ``blur_sigma``:
    Gaussian blur of the pixel parameters every ``blur_every`` steps (pixel parametrization).
    ``l2``: penalty l2 * mean((pixels - 0.5)^2). Set ``jitter=0, l2=0, blur_sigma=0`` and
    ``parametrization="pixel"`` for the unregularized ascent. Adam with learning rate ``lr``.
    """
    from tqdm import trange

    model, classifier = unwrap(classifier_or_model)
    if parametrization not in ("fourier", "pixel"):
        raise ValueError("parametrization must be 'fourier' or 'pixel'")
    device = next(model.parameters()).device
    g = torch.Generator(device="cpu").manual_seed(seed)
    to_input = classifier.from_pixels if classifier is not None else (lambda p: p)
    f = objective(model, target)

    if parametrization == "fourier":
        scale = _fourier_scale(size, size).to(device)
        param = (torch.randn((1, 3, size, size // 2 + 1, 2), generator=g) * 0.01).to(device)

        def pixels() -> torch.Tensor:
            spectrum = torch.view_as_complex(param) * scale
            return torch.sigmoid(torch.fft.irfft2(spectrum, s=(size, size), norm="ortho") * 4)
    else:
        param = (torch.randn((1, 3, size, size), generator=g) * 0.1).to(device)

        def pixels() -> torch.Tensor:
            return torch.sigmoid(param)

    param.requires_grad_(True)
    optimizer = torch.optim.Adam([param], lr=lr)
    curve = []
    with eval_mode(model):
        with torch.no_grad():
            start = float(f(to_input(pixels()))[0])
        for step in trange(steps, disable=not progress, desc="activation maximization", leave=False):
            img = pixels()
            if jitter:
                dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()
                img = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
            value = f(to_input(img))[0]
            loss = -value + (l2 * (img - 0.5).pow(2).mean() if l2 else 0.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if parametrization == "pixel" and blur_sigma > 0 and (step + 1) % blur_every == 0:
                with torch.no_grad():
                    param.copy_(gaussian_blur(param, blur_sigma))
            curve.append(float(value.detach()))
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        final = pixels()[0].detach().cpu()
    return Visualization(image=final, curve=curve, start=start)

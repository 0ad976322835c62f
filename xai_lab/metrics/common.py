"""What the model-calling metrics share (ROAD, faithfulness correlation, robustness, the random
logit test): the checked model, input and maps; the model's logits over many perturbed images,
``batch_size`` at a time with a progress bar; a method's options given two ways."""
from __future__ import annotations

import sys
from collections.abc import Iterable

import torch
from torch import nn

from ..models import unwrap
from ..ops import check_input, check_positive, model_device, model_dtype


def checked_model_and_input(model_or_classifier, x) -> tuple[nn.Module, object, torch.Tensor]:
    """``(model, classifier or None, x)``: ``x`` checked ([N, 3, H, W], float) and moved to the
    model's device and dtype."""
    model, classifier = unwrap(model_or_classifier)
    x = check_input(x).to(device=model_device(model), dtype=model_dtype(model))
    return model, classifier, x


def checked_maps(saliency, x: torch.Tensor) -> torch.Tensor:
    """One map per image of ``x``: ``saliency`` [N, H, W] (or [H, W] for one image), on ``x``'s
    device and dtype; a ValueError naming the shapes otherwise."""
    saliency = torch.as_tensor(saliency)
    if saliency.dim() == 2:
        saliency = saliency[None]
    if saliency.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"saliency must be [N, H, W] = {[x.shape[0], *x.shape[-2:]]}, got {list(saliency.shape)}")
    if not torch.isfinite(saliency).all():
        raise ValueError("saliency contains NaN or infinite values")
    return saliency.to(device=x.device, dtype=x.dtype)


def flat_maps(saliency) -> torch.Tensor:
    """Maps [N, H, W] (or one [H, W]) as float64 rows [N, H*W], checked finite."""
    maps = torch.as_tensor(saliency)
    if maps.dim() == 2:
        maps = maps[None]
    if maps.dim() != 3 or maps.shape[1] * maps.shape[2] < 2:
        raise ValueError(f"saliency must be maps [N, H, W] or one map [H, W] of at least 2 pixels, got {list(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError("saliency contains NaN or infinite values")
    return maps.flatten(1).double()


def show_progress(progress: bool | None) -> bool:
    """``progress`` as given, or (None) whether standard error is a terminal, as ``explain`` does."""
    return sys.stderr.isatty() if progress is None else bool(progress)


@torch.no_grad()
def logits_in_batches(model: nn.Module, images: Iterable[torch.Tensor], total: int, batch_size: int,
                      progress: bool = False, desc: str = "") -> torch.Tensor:
    """The model's logits [total, C] of ``images`` (an iterable of single images [3, H, W], made
    lazily), sent through the model ``batch_size`` at a time; a progress bar over the images."""
    from tqdm import tqdm

    check_positive("batch_size", batch_size, integer=True)
    outputs, pending = [], []
    for image in tqdm(images, total=total, desc=desc, leave=False, disable=not progress):
        pending.append(image)
        if len(pending) == batch_size:
            outputs.append(model(torch.stack(pending)))
            pending = []
    if pending:
        outputs.append(model(torch.stack(pending)))
    return torch.cat(outputs)


def merged_options(options: dict | None, method_options: dict) -> dict:
    """A method's options given as ``options={...}`` and as keywords, merged; an option given
    both ways is a TypeError."""
    both = sorted(set(options or {}) & set(method_options))
    if both:
        raise TypeError(f"Option(s) {', '.join(both)} given both in options= and as keywords")
    return {**(options or {}), **method_options}

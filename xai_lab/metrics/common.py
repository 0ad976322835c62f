"""What the model-calling metrics share (ROAD, faithfulness correlation, robustness, the random
logit test): the checked model, input and maps; the target bound to the batch and the score they
read of it; the model's logits over many perturbed images, ``batch_size`` at a time with a
progress bar; a method's options given two ways."""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable

import torch
from torch import nn

from ..models import unwrap
from ..ops import check_input, check_positive, model_device, model_dtype
from ..targets import ClassIndex, Target, TargetScore, bind_to_logits, labels_to_indices, perturbation_score


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


def bound_target(target: Target, logits: torch.Tensor, classifier=None) -> TargetScore:
    """``target`` (any kind :mod:`xai_lab.targets` accepts; class labels need ``classifier``)
    bound to the batch whose clean outputs are ``logits`` [N, C]: ``None`` classes become the
    classes predicted on the clean images, every class is checked against the outputs."""
    categories = classifier.categories if classifier is not None else None
    return bind_to_logits(labels_to_indices(target, categories), logits)


def logit_or_own_score(bound: TargetScore) -> TargetScore:
    """The score ROAD and faithfulness correlation read of a bound target: a plain class index
    -> the logit z_c of its class (Quantus' default for both metrics); a target object -> its own
    score (:func:`~xai_lab.targets.perturbation_score`), e.g. ``Probability(c)`` for softmax(z)_c."""
    return perturbation_score(bound, "logit" if type(bound) is ClassIndex else None)


def repeated_target(bound: TargetScore, copies: int) -> TargetScore:
    """The bound target for ``copies`` consecutive copies of its N images (what ``explain`` of
    perturbed copies explains): every per-image class tensor [N] repeated ``copies`` times, so the
    classes stay those fixed on the clean images. Unbound (``explain`` binds it); a target with no
    per-image classes (several labels, a sigmoid, a callable) is returned as it is."""
    if not dataclasses.is_dataclass(bound):
        return bound
    n = bound.batch_size
    changes = {f.name: getattr(bound, f.name).repeat(copies) for f in dataclasses.fields(bound)
               if isinstance(getattr(bound, f.name), torch.Tensor) and getattr(bound, f.name).shape == (n,)}
    return dataclasses.replace(bound, **changes)


def image_of_rows(n: int, copies: int, device=None) -> torch.Tensor:
    """Which image each row belongs to when the ``copies`` perturbed copies of each of ``n``
    images follow one another, image by image: [n * copies] = 0, 0, ..., 1, 1, ..."""
    return torch.arange(n, device=device).repeat_interleave(copies)


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

"""Target selection: which class score each image is explained for."""
from __future__ import annotations

from typing import Sequence

import torch

Target = int | Sequence[int] | torch.Tensor | None


def resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """``None`` -> the predicted class of each image; an int -> that class for every image; one
    int per image -> those. Returns a long tensor [N] on the logits' device; classes outside
    ``[0, C)`` raise a ``ValueError``."""
    if target is None:
        return logits.detach().argmax(dim=1)
    n, num_classes = logits.shape
    return check_targets(target, n, num_classes, logits.device)


def check_targets(target: int | Sequence[int] | torch.Tensor, n: int, num_classes: int, device) -> torch.Tensor:
    """Explicit targets (an int, or one int per image) as a long tensor [n], checked against
    ``num_classes``."""
    if isinstance(target, bool):
        raise TypeError("target must be an int, one int per image, or None")
    if isinstance(target, int):
        targets = torch.full((n,), target, dtype=torch.long)
    else:
        targets = torch.as_tensor(target).flatten()
        if targets.is_floating_point() or targets.dtype == torch.bool:
            raise TypeError(f"targets must be integers, got {targets.dtype}")
        if targets.numel() != n:
            raise ValueError(f"Got {targets.numel()} targets for {n} images; give one per image or a single int")
        targets = targets.long()
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.numel():
        raise ValueError(f"Target class {int(bad[0])} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return targets.to(device)


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The logit of each image's target class, [N]."""
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def class_index(categories: Sequence[str], label: str) -> int:
    """The index of class ``label`` in ``categories``, matched without regard to case; an
    unknown label raises a ``ValueError`` that lists the closest labels."""
    lowered = [c.lower() for c in categories]
    if label.lower() in lowered:
        return lowered.index(label.lower())
    import difflib

    close = difflib.get_close_matches(label.lower(), lowered, n=3)
    hint = f"; close labels: {', '.join(close)}" if close else ""
    raise ValueError(f"Unknown class label {label!r}{hint}")


def labels_to_indices(target, categories: Sequence[str] | None):
    """``target`` with every class label (str) replaced by its index in ``categories``; a label
    without categories (a bare model) raises a ``ValueError``."""
    if isinstance(target, str) or (isinstance(target, (list, tuple)) and any(isinstance(t, str) for t in target)):
        if categories is None:
            raise ValueError(f"target {target!r} is a class label, but a bare model has no class names: "
                             "give class indices, or explain a Classifier")
        if isinstance(target, str):
            return class_index(categories, target)
        return [class_index(categories, t) if isinstance(t, str) else t for t in target]
    return target

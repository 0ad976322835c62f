"""The random-logit test (Sixt, Granz & Landgraf 2020, "When Explanations Lie: Why Many Modified
BP Attributions Fail", ICML): a map that explains a class must change when another class is
explained. For each image, explain its target class t and a class o ≠ t drawn uniformly at
random, and measure their similarity,

    RL(x) = sim(Φ_t(x), Φ_o(x)),

SSIM in the paper (:func:`xai_lab.metrics.ssim`: each map min-max scaled to [0, 1], 2-d window),
or Spearman / Pearson correlation. Lower is better: a class-sensitive method gives dissimilar
maps; a method blind to the class (Sixt et al. show it for several modified backpropagation
rules) gives nearly the same map.

The random classes come from a ``torch.Generator`` seeded with ``seed``: o = (t + u) mod C with
u uniform in 1..C-1 (one draw [N]); ``other=`` gives them explicitly.

Against Quantus 0.6.0 (``quantus.RandomLogit``, tested in ``tests/metrics/test_random_logit.py``):
with the same classes and the same similarity the scores agree. Quantus draws the classes with
``numpy.random.seed(seed)``; its default SSIM compares the maps flattened to one dimension, with
the data range of the two maps together and no scaling of each, and by default (its normalization option,
on unless turned off) it first divides each batch of maps by that batch's largest |value|; so its default SSIM is not
this one (the test shows both).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..explain import explain
from ..ops import eval_mode
from ..targets import check_targets, resolve_targets
from .agreement import agreement_per_image
from .common import checked_model_and_input, merged_options

__all__ = ["random_logit"]


def random_logit(classifier_or_model, x: torch.Tensor, method: str, target=None, similarity: str | Callable = "ssim",
                 other=None, seed: int = 0, options: dict | None = None, **method_options) -> dict:
    """RL of ``method``'s maps (see the module docstring). ``target``: None (the predicted class),
    an int, or one int per image; ``other``: the contrasting class per image (default: drawn at
    random, never the target); ``similarity``: "ssim", "spearman", "pearson" or a function of
    two maps. ``options`` (or further keywords, e.g. ``layer=``) go to the method; both maps use
    ``seed``.

    Returns ``similarity`` [N] (float64), ``target`` and ``other`` [N], ``maps`` and
    ``other_maps`` [N, H, W], and ``higher_is_better`` (False)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    options = merged_options(options, method_options)
    model, _, x = checked_model_and_input(classifier_or_model, x)
    with torch.no_grad(), eval_mode(model):
        logits = model(x)
    targets = resolve_targets(target, logits)
    n, num_classes = logits.shape
    if num_classes < 2:
        raise ValueError("the random-logit test needs a model with at least two classes")
    if other is None:
        shift = torch.randint(1, num_classes, (n,), generator=torch.Generator().manual_seed(seed)).to(targets.device)
        others = (targets + shift) % num_classes
    else:
        others = check_targets(other, n, num_classes, targets.device)
        if (others == targets).any():
            raise ValueError("other must differ from the target class of every image")
    maps = explain(classifier_or_model, x, method, target=targets, seed=seed, progress=False, **options).saliency
    other_maps = explain(classifier_or_model, x, method, target=others, seed=seed, progress=False, **options).saliency
    return {"similarity": agreement_per_image(maps, other_maps, similarity), "target": targets.cpu(),
            "other": others.cpu(), "maps": maps, "other_maps": other_maps, "higher_is_better": False}


#: Quantus' convention: a metric declares which values are better.
random_logit.higher_is_better = False

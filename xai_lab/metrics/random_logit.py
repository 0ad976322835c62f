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

Targets (:mod:`xai_lab.targets`): the test swaps the class of a score for another class, so the
target must be one class per image, and the other map explains the same kind of score for class
o: a plain class index (or None) -> class o as the method reads a class index; ``Logit(t)`` ->
``Logit(o)``; ``Probability(t)`` -> ``Probability(o)``. A target that is not one class (a
``Contrast``, which already compares two classes, ``Labels``, ``Sigmoid()``, a callable) has no
"other class" in the paper's sense and raises a ``ValueError`` naming the kinds accepted, as the
sanity check's random target leaves them out.

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
from ..targets import Target, TargetScore, check_targets, labels_to_indices
from .agreement import agreement_per_image
from .common import bound_target, checked_model_and_input, merged_options

__all__ = ["random_logit"]


def random_logit(classifier_or_model, x: torch.Tensor, method: str, target: Target = None,
                 similarity: str | Callable = "ssim", other=None, seed: int = 0, options: dict | None = None,
                 **method_options) -> dict:
    """RL of ``method``'s maps (see the module docstring). ``target``: one class per image: None
    (the predicted class), a class index or label, one per image, ``Logit(c)`` or
    ``Probability(c)``; ``other``: the contrasting class per image (an int, one per image or a
    label; default: drawn at random, never the target), explained as the same kind of score;
    ``similarity``: "ssim", "spearman", "pearson" or a function of two maps. ``options`` (or
    further keywords, e.g. ``layer=``) go to the method; both maps use ``seed``.

    Returns ``similarity`` [N] (float64), ``target`` and ``other`` [N], ``explained`` and
    ``other_explained`` (the two bound targets), ``maps`` and ``other_maps`` [N, H, W], and
    ``higher_is_better`` (False)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    options = merged_options(options, method_options)
    model, classifier, x = checked_model_and_input(classifier_or_model, x)
    with torch.no_grad(), eval_mode(model):
        logits = model(x)
    bound = bound_target(target, logits, classifier)
    if not bound.single_class:
        raise ValueError(f"the random-logit test compares the map of one class with that of another class: give a "
                         f"class index, Logit(c) or Probability(c) as the target, not {bound.name!r}")
    targets = bound.explained_classes
    n, num_classes = logits.shape
    if num_classes < 2:
        raise ValueError("the random-logit test needs a model with at least two classes")
    others = _other_classes(other, targets, num_classes, seed, classifier)
    maps = explain(classifier_or_model, x, method, target=bound, seed=seed, progress=False, **options)
    other_maps = explain(classifier_or_model, x, method, target=type(bound)(others), seed=seed, progress=False,
                         **options)
    return {"similarity": agreement_per_image(maps.saliency, other_maps.saliency, similarity),
            "target": targets.cpu(), "other": others.cpu(), "explained": maps.explained,
            "other_explained": other_maps.explained, "maps": maps.saliency, "other_maps": other_maps.saliency,
            "higher_is_better": False}


def _other_classes(other, targets: torch.Tensor, num_classes: int, seed: int, classifier) -> torch.Tensor:
    """The contrasting class per image [N]: ``other`` checked (never the target), or drawn."""
    n = len(targets)
    if other is None:
        shift = torch.randint(1, num_classes, (n,), generator=torch.Generator().manual_seed(seed)).to(targets.device)
        return (targets + shift) % num_classes
    if isinstance(other, TargetScore) or (callable(other) and not isinstance(other, torch.Tensor)):
        raise TypeError(f"other must be class indices (an int, one per image, or a label): the kind of score is the "
                        f"target's, got {other!r}")
    labeled = isinstance(other, str) or (isinstance(other, (list, tuple)) and any(isinstance(o, str) for o in other))
    if labeled and classifier is None:
        raise ValueError(f"other {other!r} is a class label, but a bare model has no class names: give class "
                         "indices, or a Classifier")
    others = check_targets(labels_to_indices(other, classifier.categories if classifier is not None else None),
                           n, num_classes, targets.device)
    if (others == targets).any():
        raise ValueError("other must differ from the target class of every image")
    return others


#: Quantus' convention: a metric declares which values are better.
random_logit.higher_is_better = False

"""Faithfulness correlation (Bhatt, Weller & Moura 2020, "Evaluating and Aggregating
Feature-based Model Explanations", IJCAI).

A faithful map's values should add up to what its pixels do to the model: remove a random
subset S of pixels (set them to a baseline x̄) and the drop of the target score should follow
the map's total over S. Over ``runs`` random subsets of ``subset_size`` pixels,

    μ_F(f, g; x) = corr_S ( sum_{i in S} g(x)_i ,  f(x) - f(x_{[x_S = x̄_S]}) ),

the Pearson correlation across the subsets, one value per image in [-1, 1]; higher is better.
A pixel is removed in all its channels. f is the target's score (:mod:`xai_lab.targets`): a
plain class index's logit z_c (as before targets, and Quantus' default), a target object's own
score (``Probability(c)``: softmax(z)_c; ``Contrast(a, b)``: z_a - z_b; ``Logit(c)``, ``Labels``,
``Sigmoid()``, a callable). For a score linear in the input, f(x) = w·x + b, and its exact
attribution g_i = sum_c w_ci (x_ci - x̄_ci), the two sides are equal and μ_F = 1.

The correlation is :func:`xai_lab.metrics.pearson`'s: 0.0 where either side is constant
(a constant map, or a model blind to every subset), where Quantus returns NaN (and refuses a
constant map outright).

Against Quantus 0.6.0 (``quantus.FaithfulnessCorrelation``, tested in
``tests/metrics/test_faithfulness.py``): Quantus treats each of the C * H * W values of the map
broadcast over the channels as a feature, so its subsets remove single channels of a pixel;
with the same pixels named in all three channels (and a map repeated over them, which scales
the sums by 3, to which the correlation is blind) the scores agree. Its "black" baseline is the
image's minimum value; here "black" is pixel 0 under the classifier's input scaling
(:func:`xai_lab.ops.baseline_image`). Its subsets come from numpy's global generator; here from a
seeded ``torch.Generator`` (:func:`random_subsets`).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from ..ops import baseline_image, check_positive, eval_mode, forward_batch_size
from ..targets import Target
from .agreement import pearson
from .common import (
    bound_target,
    checked_maps,
    checked_model_and_input,
    image_of_rows,
    logit_or_own_score,
    logits_in_batches,
    show_progress,
)

__all__ = ["faithfulness_correlation", "random_subsets"]


def random_subsets(n: int, pixels: int, size: int, runs: int, generator: torch.Generator) -> torch.Tensor:
    """[n, runs, size] pixel indices: for each run in turn, one uniform draw [n, pixels] from
    ``generator``; the subset is the ``size`` pixels with the smallest draws (a uniformly random
    subset without repetition, in random order)."""
    draws = [torch.rand(n, pixels, generator=generator).argsort(dim=1)[:, :size] for _ in range(runs)]
    return torch.stack(draws, dim=1)


@torch.no_grad()
def faithfulness_correlation(model, x: torch.Tensor, saliency, target: Target = None, subset_size: int = 224, runs: int = 100,
                             baseline: str | float | torch.Tensor = "black", seed: int = 0, batch_size: int | None = None,
                             progress: bool | None = None) -> dict:
    """μ_F of each map (see the module docstring): ``runs`` subsets of ``subset_size`` pixels set to
    ``baseline`` (:func:`xai_lab.ops.baseline_image`), drawn by :func:`random_subsets` from a
    generator seeded with ``seed``; the N * runs perturbed images go through the model
    ``batch_size`` at a time (None: 4 on a CPU, 64 elsewhere; :func:`~xai_lab.ops.forward_batch_size`).

    ``target``: any target (:mod:`xai_lab.targets`; None: the predicted class). Returns
    ``correlation`` [N] (float64), ``attribution_sums`` and ``score_drops`` [N, runs] (the two
    sides: f(x) - f(x_S), f as in the module docstring), ``subsets`` [N, runs, subset_size],
    ``target`` [N] (the class per image, -1 for none), ``explained`` (the bound target) and
    ``higher_is_better`` (True).
    """
    model, classifier, x = checked_model_and_input(model, x)
    saliency = checked_maps(saliency, x)
    hw = x.shape[-2] * x.shape[-1]
    batch_size = forward_batch_size(batch_size, x.device, accelerator=64)
    check_positive("runs", runs, integer=True)
    check_positive("subset_size", subset_size, integer=True)
    if runs < 2:
        raise ValueError(f"runs must be at least 2 for a correlation, got {runs}")
    if subset_size > hw:
        raise ValueError(f"subset_size must be at most the {hw} pixels of an image, got {subset_size}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    base = baseline_image(x, baseline, classifier)
    subsets = random_subsets(x.shape[0], hw, subset_size, runs, torch.Generator().manual_seed(seed))

    def perturbed() -> Iterator[torch.Tensor]:
        for i in range(x.shape[0]):
            for r in range(runs):
                mask = torch.zeros(hw, dtype=torch.bool, device=x.device)
                mask[subsets[i, r].to(x.device)] = True
                yield torch.where(mask.view(x.shape[-2:]), base[i], x[i])

    with eval_mode(model):
        clean_logits = model(x)
        bound = bound_target(target, clean_logits, classifier)
        score = logit_or_own_score(bound)
        clean = score.scores(clean_logits, images=torch.arange(x.shape[0], device=x.device))
        logits = logits_in_batches(model, perturbed(), x.shape[0] * runs, batch_size, show_progress(progress),
                                   desc="faithfulness correlation")
    rows = image_of_rows(x.shape[0], runs, logits.device)
    drops = (clean[rows] - score.scores(logits, images=rows)).view(-1, runs)
    flat = saliency.flatten(1).double().cpu()
    sums = torch.stack([flat[i, subsets[i]].sum(1) for i in range(x.shape[0])])
    drops = drops.double().cpu()
    correlation = torch.tensor([pearson(a, b) for a, b in zip(sums, drops)], dtype=torch.float64)
    return {"correlation": correlation, "attribution_sums": sums, "score_drops": drops, "subsets": subsets,
            "target": bound.explained_classes.cpu(), "explained": bound, "higher_is_better": True}


#: Quantus' convention: a metric declares which values are better.
faithfulness_correlation.higher_is_better = True

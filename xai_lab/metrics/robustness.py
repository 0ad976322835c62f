"""Robustness of a map to small changes of the input: explain perturbed copies x' of x with
:func:`xai_lab.explain` (same method, options, target and seed) and take the worst change.

* :func:`max_sensitivity` (Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (In)fidelity
  and Sensitivity of Explanations", NeurIPS): over ``samples`` points x' = x + δ with δ uniform
  in the L∞ ball of radius r (each value in [-r, r]),

      SENS_max = max_{x'} ||Φ(x') - Φ(x)||_F / ||Φ(x)||_F

  (``relative=False``: without the denominator, the paper's definition; relative, the default,
  as Quantus computes it, so the score does not depend on the map's units).
* :func:`local_lipschitz_estimate` (Alvarez-Melis & Jaakkola 2018, "On the Robustness of
  Interpretability Methods", ICML workshop; "Towards Robust Interpretability with
  Self-Explaining Neural Networks", NeurIPS): over ``samples`` points x' = x + δ with δ ~ N(0, σ²),

      L̂(x) = max_{x'} ||Φ(x') - Φ(x)||_2 / ||x' - x||_2.

  The paper maximizes over an ε-ball (by Bayesian optimization); a maximum over random samples
  is a lower bound of that maximum.

Lower is better for both (a robust explanation changes little). The target is any kind
``explain`` accepts (:mod:`xai_lab.targets`: a class index, ``Logit``, ``Probability``,
``Contrast``, ``Labels``, ``Sigmoid()``, a callable), bound once to the clean images: the
perturbed copies keep the clean image's classes (None: the class predicted on the clean image,
also inside ``Probability(None)`` or ``Contrast(None, b)``). The noise is drawn on the CPU from one
``torch.Generator`` seeded with ``seed``, one draw shaped like ``x`` per sample in order
(:func:`uniform_noise`, :func:`gaussian_noise`), so a seed gives the same points on any device
and for any ``batch_size`` (how many perturbed images one ``explain`` call gets; a stochastic
method's own noise, seeded with ``seed`` in every call, may depend on how its batch is laid out).

Against Quantus 0.6.0 (``quantus.MaxSensitivity``, ``quantus.LocalLipschitzEstimate``, tested
in ``tests/metrics/test_robustness.py``): with the same perturbed points the scores agree.
Quantus draws its noise from numpy's global generator (``lower_bound=0.2`` and
``perturb_std=0.1`` are its radius and σ, also the defaults here), adds 1e-10 to the distance
between inputs, and by default (its normalization option; on for the Local Lipschitz estimate only) divides each batch of
maps by that batch's largest |value| before comparing them, so clean and perturbed maps are
scaled apart; here the maps are compared as ``explain`` returns them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..explain import explain
from ..ops import check_positive, copies_fitting, eval_mode
from ..targets import Target
from .common import bound_target, checked_model_and_input, merged_options, repeated_target, show_progress

__all__ = ["gaussian_noise", "local_lipschitz_estimate", "max_sensitivity", "uniform_noise"]


def uniform_noise(x: torch.Tensor, radius: float, generator: torch.Generator) -> torch.Tensor:
    """δ shaped like ``x``, each value uniform in [-radius, radius] (the L∞ ball), drawn on the
    CPU from ``generator`` (one ``torch.rand`` call) and moved to ``x``'s device and dtype."""
    return ((torch.rand(x.shape, generator=generator) * 2 - 1) * radius).to(x)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """δ shaped like ``x``, each value N(0, std^2), drawn on the CPU from ``generator`` (one
    ``torch.randn`` call) and moved to ``x``'s device and dtype."""
    return (torch.randn(x.shape, generator=generator) * std).to(x)


def _worst_change(classifier_or_model, x, method: str, target, noise: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                  change: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], samples: int, seed: int,
                  batch_size: int, progress: bool | None, options: dict, desc: str) -> dict:
    """Explain x, then ``samples`` noisy copies, ``batch_size`` images an ``explain`` call; per
    image the largest ``change(clean maps, perturbed maps, δ)`` [N] over the samples."""
    from tqdm import trange

    check_positive("samples", samples, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    model, classifier, x = checked_model_and_input(classifier_or_model, x)
    n = x.shape[0]
    with torch.no_grad(), eval_mode(model):
        bound = bound_target(target, model(x), classifier)
    clean = explain(classifier_or_model, x, method, target=bound, seed=seed, progress=False, **options).saliency
    generator = torch.Generator().manual_seed(seed)
    per_call = copies_fitting(batch_size, n)
    changes = []
    for start in trange(0, samples, per_call, desc=desc, leave=False, disable=not show_progress(progress)):
        k = min(per_call, samples - start)
        deltas = torch.stack([noise(x, generator) for _ in range(k)])            # [k, N, 3, H, W]
        maps = explain(classifier_or_model, (x[None] + deltas).flatten(0, 1), method, target=repeated_target(bound, k),
                       seed=seed, progress=False, **options).saliency.view(k, n, *clean.shape[1:])
        changes.append(torch.stack([change(clean, maps[j], deltas[j]) for j in range(k)]))
    worst = torch.cat(changes).double().max(dim=0).values
    return {"score": worst.cpu(), "per_sample": torch.cat(changes).double().T.cpu(),
            "target": bound.explained_classes.cpu(), "explained": bound, "higher_is_better": False}


def max_sensitivity(classifier_or_model, x: torch.Tensor, method: str, target: Target = None, radius: float = 0.2,
                    samples: int = 50, relative: bool = True, seed: int = 0, batch_size: int = 64,
                    progress: bool | None = None, options: dict | None = None, **method_options) -> dict:
    """SENS_max of ``method``'s maps (see the module docstring), δ uniform in [-``radius``,
    ``radius``] per value. ``options`` (or further keywords, e.g. ``layer=``) go to the method.
    Returns ``score`` [N] (float64), ``per_sample`` [N, samples], ``target`` [N] (the class per
    image, -1 for none), ``explained`` (the bound target) and ``higher_is_better`` (False)."""
    check_positive("radius", radius)
    options = merged_options(options, method_options)

    def change(clean: torch.Tensor, perturbed: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        distance = (perturbed - clean).flatten(1).double().norm(dim=1)
        return distance / clean.flatten(1).double().norm(dim=1) if relative else distance

    return _worst_change(classifier_or_model, x, method, target, lambda x, g: uniform_noise(x, radius, g), change,
                         samples, seed, batch_size, progress, options, "max-sensitivity")


def local_lipschitz_estimate(classifier_or_model, x: torch.Tensor, method: str, target: Target = None, std: float = 0.1,
                             samples: int = 50, seed: int = 0, batch_size: int = 64, progress: bool | None = None,
                             options: dict | None = None, **method_options) -> dict:
    """L̂ of ``method``'s maps (see the module docstring), δ ~ N(0, ``std``^2) per value.
    ``options`` (or further keywords, e.g. ``layer=``) go to the method. Returns ``score`` [N]
    (float64), ``per_sample`` [N, samples], ``target`` [N] (the class per image, -1 for none),
    ``explained`` (the bound target) and ``higher_is_better`` (False)."""
    check_positive("std", std)
    options = merged_options(options, method_options)

    def change(clean: torch.Tensor, perturbed: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return (perturbed - clean).flatten(1).double().norm(dim=1) / delta.flatten(1).double().norm(dim=1)

    return _worst_change(classifier_or_model, x, method, target, lambda x, g: gaussian_noise(x, std, g), change,
                         samples, seed, batch_size, progress, options, "local Lipschitz estimate")


#: Quantus' convention: a metric declares which values are better.
max_sensitivity.higher_is_better = False
local_lipschitz_estimate.higher_is_better = False

"""Sanity checks for saliency maps (Adebayo et al. 2018): a map that explains the model must
change when the model's weights are destroyed, and a class-discriminative map must change when
another class is explained."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..explain import explain
from ..models import unwrap
from .agreement import spearman, ssim

__all__ = ["parameter_layers", "sanity_check"]


def parameter_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, in forward-definition order."""
    return [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]


def _reinitialize(module: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                p.copy_(torch.ones_like(p) if name == "weight" else torch.zeros_like(p))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in ** 0.5)


def sanity_check(classifier_or_model, x: torch.Tensor, method: str, target=None, steps: int | None = None,
                 seed: int = 0, options: dict | None = None, **method_options) -> dict:
    """Cascading model randomization: re-initialize the parameter layers from the top (output)
    down, one group at a time, on a copy of the model, and compare each map with the original.

    ``steps``: how many cascade stages (layers grouped evenly; default every parameter layer).
    ``options``: the method's own options, e.g. ``options={"steps": 16}`` for integrated
    gradients' quadrature points, which ``steps`` above would not reach. Options given as
    further keywords (``layer="act2"``) also go to the method; an option given both ways is an
    error.
    Returns ``layers`` (the last layer randomized at each stage), ``spearman`` and ``ssim``
    [stages, N] (|map| for Spearman as in the paper's "absolute" variant), ``maps`` [stages, N, H, W],
    and the random-target test ``random_target_spearman`` [N]: the map for another (random)
    class against the map for the target (a class-discriminative method gives a low value).
    ``target``: any target of :mod:`xai_lab.targets`; every stage explains the same score. The
    random-target test swaps the class of a target that is one class per image (a class index,
    ``Logit``, ``Probability``: the same kind of score for the other class); for other targets
    (a contrast, several labels, a sigmoid, a callable) ``random_target`` is None and
    ``random_target_spearman`` NaN.
    """
    both = sorted(set(options or {}) & set(method_options))
    if both:
        raise TypeError(f"Option(s) {', '.join(both)} given both in options= and as keywords")
    options = {**(options or {}), **method_options}
    model, classifier = unwrap(classifier_or_model)
    original = explain(classifier_or_model, x, method=method, target=target, seed=seed, **options)
    explained = original.explained  # the target bound to the batch: every stage explains the same score
    layers = parameter_layers(model)[::-1]
    if steps is not None:
        cut = np.linspace(0, len(layers), steps + 1).round().astype(int)[1:]
    else:
        cut = np.arange(1, len(layers) + 1)
    copy_model = copy.deepcopy(model)
    modules = dict(copy_model.named_modules())
    subject = copy.copy(classifier) if classifier is not None else copy_model
    if classifier is not None:
        subject.model = copy_model
    g = torch.Generator().manual_seed(seed)
    done, names, rho, sim, maps = 0, [], [], [], []
    for end in cut:
        for name in layers[done:end]:
            _reinitialize(modules[name], g)
        done = end
        e = explain(subject, x, method=method, target=explained, seed=seed, **options)
        names.append(layers[end - 1])
        maps.append(e.saliency)
        rho.append([spearman(a.abs(), b.abs()) for a, b in zip(original.saliency, e.saliency)])
        sim.append([ssim(a, b) for a, b in zip(original.saliency, e.saliency)])
    other, random_spearman = _random_target(classifier_or_model, x, method, original, g, seed, options)
    return {
        "layers": names,
        "spearman": torch.tensor(rho),
        "ssim": torch.tensor(sim),
        "maps": torch.stack(maps),
        "original": original.saliency,
        "random_target": other,
        "random_target_spearman": random_spearman,
    }


def _random_target(classifier_or_model, x, method, original, g: torch.Generator, seed: int, options: dict):
    """(random other class [N], Spearman of its map with the original's [N]) for a target that is
    one class per image (the same kind of score for another class); (None, NaN [N]) otherwise."""
    explained = original.explained
    if not explained.single_class:
        return None, torch.full((len(original),), float("nan"))
    model, classifier = unwrap(classifier_or_model)
    targets = original.target
    num_classes = len(classifier.categories) if classifier is not None else None
    if num_classes is None:
        with torch.no_grad():
            num_classes = model(x[:1] if x.dim() == 4 else x[None]).shape[1]
    shift = torch.randint(1, num_classes, (len(targets),), generator=g)
    other = (targets + shift) % num_classes
    e_other = explain(classifier_or_model, x, method=method, target=type(explained)(other), seed=seed, **options)
    return other, torch.tensor([spearman(a, b) for a, b in zip(original.saliency, e_other.saliency)])

"""How concentrated a map is: its sparseness (Gini index) and its complexity (entropy).

Both read the magnitudes v = |a| of a map's n pixels (the sign of an attribution says which
way a pixel pushes, not how much of the explanation it holds).

* :func:`sparseness` (Chalasani et al. 2020, "Concise Explanations of Neural Networks using
  Adversarial Training", ICML): the Gini index of v sorted ascending, v_(1) <= ... <= v_(n),

      G(v) = sum_{k=1}^{n} (2k - n - 1) v_(k) / (n sum_k v_(k)),

  0 for a constant map, 1 - 1/n for a map with one nonzero pixel. Higher is better (a sparser,
  more concise explanation).
* :func:`complexity` (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
  Explanations", IJCAI): the entropy of the fractional contribution P(i) = v_i / sum_j v_j,

      C(v) = -sum_i P(i) ln P(i)   (0 ln 0 = 0),

  0 for a map with one nonzero pixel, ln n for a constant map. Lower is better (fewer pixels
  carry the explanation).

Both are NaN for an all-zero map (no distribution of importance to measure). Both are
invariant to scaling the map by a positive number.

Against Quantus 0.6.0 (``quantus.Sparseness``, ``quantus.Complexity``, tested in
``tests/metrics/test_complexity.py``): Quantus adds 1e-7 to every |a| before the Gini index, so
its value is G * S / (S + n 1e-7) with S = sum |a| after its normalization (each batch divided by
the batch's largest |a|), and 0 rather than NaN for an all-zero map; its entropy adds 1e-12
inside the logarithm. Otherwise the definitions are the same.
"""
from __future__ import annotations

import torch

from .common import flat_maps

__all__ = ["complexity", "sparseness"]


def sparseness(saliency) -> torch.Tensor:
    """The Gini index of each map's |values| (see the module docstring), [N] float64; NaN for
    an all-zero map. ``saliency``: [N, H, W] or one map [H, W]."""
    v = torch.sort(flat_maps(saliency).abs(), dim=1).values
    n = v.shape[1]
    k = torch.arange(1, n + 1, dtype=v.dtype)
    total = v.sum(1)
    gini = ((2 * k - n - 1) * v).sum(1) / (n * total)
    return torch.where(total > 0, gini, torch.full_like(gini, float("nan")))


def complexity(saliency) -> torch.Tensor:
    """The entropy (natural log) of each map's fractional contributions |a_i| / sum_j |a_j|
    (see the module docstring), [N] float64; NaN for an all-zero map. ``saliency``: [N, H, W] or
    one map [H, W]."""
    v = flat_maps(saliency).abs()
    p = v / v.sum(1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(1)


#: Quantus' convention: each metric declares which values are better.
sparseness.higher_is_better = True
complexity.higher_is_better = False

"""Checking an anchor independently of the search that found it.

An anchor (Ribeiro et al. 2018, "Anchors: high-precision model-agnostic explanations") is a set
A of superpixels such that, with A kept and every other superpixel hidden at random, the
decision rarely changes. Its precision is

    prec(A) = P(argmax f(x(z)) = c | z_k = 1 for every k in A),

z drawn with each other superpixel hidden with probability ``p_sample``; alibi estimates it
inside its bandit search. :func:`anchor_precision` estimates it again from fresh samples.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models import unwrap
from ..ops import check_fraction, check_input, check_positive, eval_mode, model_device
from .shapley import coalition_images


def anchor_precision(classifier_or_model, x: torch.Tensor, segments, anchor, target: int | None = None,
                     samples: int = 64, p_sample: float = 0.5, seed: int = 0, batch_size: int = 16) -> float:
    """Monte Carlo estimate of prec(A): the share of ``samples`` perturbed copies of ``x``
    [1, C, H, W] whose argmax is still ``target`` (default: the predicted class of ``x``), each
    with the superpixels in ``anchor`` kept and every other superpixel of ``segments`` [H, W]
    hidden (set to its mean, :func:`~xai_lab.metrics.shapley.coalition_images`) with
    probability ``p_sample``, drawn by ``numpy.random.default_rng(seed)``."""
    model, _ = unwrap(classifier_or_model)
    x = check_input(x).to(model_device(model))
    if x.shape[0] != 1:
        raise ValueError(f"anchor_precision explains one image [1, C, H, W], got {list(x.shape)}")
    check_positive("samples", samples, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_fraction("p_sample", p_sample)
    n_superpixels = int(np.asarray(segments).max()) + 1
    if any(not 0 <= k < n_superpixels for k in anchor):
        raise ValueError(f"anchor must list superpixels 0..{n_superpixels - 1}, got {list(anchor)}")
    keep = torch.as_tensor(np.random.default_rng(seed).random((samples, n_superpixels)) >= p_sample)
    keep[:, list(anchor)] = True
    same = []
    with torch.no_grad(), eval_mode(model):
        if target is None:
            target = int(model(x).argmax(dim=1))
        for batch in keep.split(batch_size):
            same.append(model(coalition_images(x, segments, batch)).argmax(dim=1) == target)
    return int(torch.cat(same).sum()) / samples

"""Checking an anchor independently of the search that found it.

An anchor (Ribeiro et al. 2018, "Anchors: high-precision model-agnostic explanations") is a set
A of superpixels such that, with A kept and every other superpixel hidden at random, the
decision rarely changes. Its precision is

    prec(A) = P(argmax f(x(z)) = c | z_k = 1 for every k in A),

z drawn with each other superpixel hidden with probability ``p_sample``, a hidden superpixel
taking its mean color or the same pixels of a background image (the two kinds of hiding of
:func:`xai_lab.methods.surrogates.anchors`); alibi estimates it inside its bandit search.
:func:`anchor_precision` estimates it again from fresh samples; :func:`anchors_by_hiding` finds
anchors under several kinds of hiding and checks each under all of them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..explain import explain
from ..methods.surrogates import check_background_images
from ..models import unwrap
from ..ops import check_fraction, check_input, check_positive, eval_mode, forward_batch_size, model_device
from .shapley import coalition_images


def anchor_precision(classifier_or_model, x: torch.Tensor, segments, anchor, target: int | None = None,
                     samples: int = 64, p_sample: float = 0.5, seed: int = 0, batch_size: int | None = None,
                     background_images: torch.Tensor | None = None) -> float:
    """Monte Carlo estimate of prec(A): the share of ``samples`` perturbed copies of ``x``
    [1, C, H, W] whose argmax is still ``target`` (default: the predicted class of ``x``), each
    with the superpixels in ``anchor`` kept and every other superpixel of ``segments`` [H, W]
    hidden with probability ``p_sample``.

    A hidden superpixel is set to its mean (``background_images=None``,
    :func:`~xai_lab.metrics.shapley.coalition_images`) or to the same pixels of one of
    ``background_images`` [B, C, H, W], one image per perturbed copy drawn uniformly with
    replacement (alibi's ``images_background``). The backgrounds are pixels in [0, 1] with a
    Classifier (model input = ``classifier.from_pixels`` of them), model input with a bare
    ``nn.Module``: the convention of the ``anchors`` method, so the tensor given to it checks its
    anchor here. ``numpy.random.default_rng(seed)`` draws the keep pattern [samples, K] first and
    then the background indices [samples], so one seed hides the same superpixels under both
    kinds of hiding. ``batch_size``: images per forward pass (None: 4 on a CPU, 16 elsewhere,
    :func:`~xai_lab.ops.forward_batch_size`)."""
    model, classifier = unwrap(classifier_or_model)
    x = check_input(x).to(model_device(model))
    if x.shape[0] != 1:
        raise ValueError(f"anchor_precision explains one image [1, C, H, W], got {list(x.shape)}")
    check_positive("samples", samples, integer=True)
    batch_size = forward_batch_size(batch_size, x.device, accelerator=16)
    check_fraction("p_sample", p_sample)
    if background_images is not None:
        background_images = check_background_images(background_images, x, pixels=classifier is not None)
        if classifier is not None:
            background_images = classifier.from_pixels(background_images)
    n_superpixels = int(np.asarray(segments).max()) + 1
    if any(not 0 <= k < n_superpixels for k in anchor):
        raise ValueError(f"anchor must list superpixels 0..{n_superpixels - 1}, got {list(anchor)}")
    rng = np.random.default_rng(seed)
    keep = torch.as_tensor(rng.random((samples, n_superpixels)) >= p_sample)
    keep[:, list(anchor)] = True
    drawn = None if background_images is None else torch.as_tensor(rng.integers(len(background_images), size=samples))
    same = []
    with torch.no_grad(), eval_mode(model):
        if target is None:
            target = int(model(x).argmax(dim=1))
        for start in range(0, samples, batch_size):
            rows = slice(start, start + batch_size)
            fill = None if drawn is None else background_images[drawn[rows].to(x.device)]
            same.append(model(coalition_images(x, segments, keep[rows], baseline=fill)).argmax(dim=1) == target)
    return int(torch.cat(same).sum()) / samples


def anchors_by_hiding(classifier_or_model, x: torch.Tensor, hidings: dict, skip=(), samples: int = 64,
                      check_seed: int = 1, **options) -> tuple[dict, list[dict]]:
    """Anchors of each image of ``x`` [N, C, H, W] found under each kind of hiding, each checked
    under every kind.

    ``hidings`` names the kinds: name -> ``background_images`` of the ``anchors`` method (None:
    flat hiding by the superpixel's mean; a tensor: superimposed hiding by those images). For every
    image k and name h not in ``skip`` (pairs (k, h) left out, e.g. a search too costly to run),
    the anchors method (``xai_lab.explain(..., method="anchors", background_images=hidings[h],
    **options)``) finds an anchor A_kh; :func:`anchor_precision` then estimates prec(A_kh) afresh
    under every kind of hiding g (``samples`` copies, seed ``check_seed``, the same hidden
    superpixels under each g), so the table shows whether an anchor holds only under the hiding
    it was found with. Returns (explanations keyed by (k, h), rows: ``image`` k, ``found with``
    h, ``anchor``, ``alibi's precision``, ``forward passes``, then ``checked, g`` for every g)."""
    x = check_input(x)
    unknown = [pair for pair in skip if pair[1] not in hidings]
    if unknown:
        raise ValueError(f"skip names hidings that are not in hidings {list(hidings)}: {unknown}")
    found, rows = {}, []
    for k in range(len(x)):
        for name, background in hidings.items():
            if (k, name) in skip:
                continue
            e = explain(classifier_or_model, x[k:k + 1], method="anchors", background_images=background, **options)
            found[(k, name)] = e
            segments, anchor = e.extras["segments"][0], e.extras["anchor"][0]
            rows.append({"image": k, "found with": name, "anchor": list(anchor),
                         "alibi's precision": float(e.extras["precision"][0]), "forward passes": e.forward_passes,
                         **{f"checked, {g}": anchor_precision(classifier_or_model, x[k:k + 1], segments, anchor,
                                                              samples=samples, seed=check_seed, background_images=b)
                            for g, b in hidings.items()}})
    return found, rows

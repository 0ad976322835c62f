"""Surrogate explanations over superpixels: LIME (a weighted linear model) and Anchors (a rule
of superpixels that keeps the decision), both wrapping their reference implementations.

Both work on pixels in [0, 1] (``classifier.to_pixels``), channels last, one image at a time,
and send perturbed images back through ``classifier.from_pixels``. With a bare ``nn.Module``
there is no pixel scaling: the model input itself is treated as the image (perturbations in
model-input units) and only the segmentation sees a min-max scaled copy.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from ..context import Context, Result
from ..ops import check_fraction, check_positive
from ..registry import register

SEGMENTATION_DEFAULTS = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},  # LIME's defaults
    "slic": {"n_segments": 50, "compactness": 10, "sigma": 0.5},
    "felzenszwalb": {"scale": 100, "sigma": 0.5, "min_size": 50},
}


#: The largest ``batch_size`` anchors accepts: alibi allocates batch_size x 10^4 values up front.
MAX_ANCHORS_BATCH = 10_000


def _check_segmentation(method, kwargs) -> None:
    if method not in SEGMENTATION_DEFAULTS:
        raise ValueError(f"segmentation must be one of {sorted(SEGMENTATION_DEFAULTS)}, got {method!r}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"segmentation_kwargs must be a dict of scikit-image options or None, got {type(kwargs).__name__}")


def segment(image: np.ndarray, method: str = "quickshift", kwargs: dict | None = None, seed: int = 0) -> np.ndarray:
    """Superpixels of an [H, W, 3] image in [0, 1] with scikit-image's ``method``
    (:data:`SEGMENTATION_DEFAULTS` updated by ``kwargs``), labeled 0..K-1 as LIME and alibi
    assume (scikit-image's slic starts at 1). ``seed`` seeds quickshift's tie-breaking noise."""
    from skimage import segmentation

    _check_segmentation(method, kwargs)
    options = {**SEGMENTATION_DEFAULTS[method], **(kwargs or {})}
    if method == "quickshift":
        options.setdefault("rng", seed)
    labels = getattr(segmentation, method)(image, **options)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's and Python's global generators (the libraries draw from them); restore
    their previous states on exit so callers' random streams are untouched."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _images(ctx: Context):
    """Per image: (pixels [H, W, 3] float numpy, image for segmentation, seed); and the map
    from a numpy batch [B, H, W, 3] of pixels to model input."""
    clf = ctx.classifier
    pixels = clf.to_pixels(ctx.x) if clf else ctx.x
    seeds = torch.randint(0, 2**31, (ctx.n,), generator=ctx.generator, device=ctx.generator.device).tolist()

    def to_model(batch: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(batch, dtype=ctx.x.dtype, device=ctx.device).permute(0, 3, 1, 2)
        return clf.from_pixels(t) if clf else t

    items = []
    for j in range(ctx.n):
        image = pixels[j].detach().permute(1, 2, 0).cpu().numpy()
        seg_image = image if clf else (image - image.min()) / max(float(image.max() - image.min()), 1e-12)
        items.append((image, seg_image.clip(0, 1), seeds[j]))
    return items, to_model


def _per_pixel(segments: np.ndarray, values: dict, device) -> torch.Tensor:
    table = np.zeros(segments.max() + 1)
    for k, v in values.items():
        table[k] = v
    return torch.as_tensor(table[segments], device=device)


@register("lime", family="perturbation")
def lime(ctx: Context, segmentation: str = "quickshift", segmentation_kwargs: dict | None = None,
         num_samples: int = 1000, hide_color: float | None = None, batch_size: int = 100) -> Result:
    """LIME (Ribeiro et al. 2016) via ``lime.lime_image``: fit a locally weighted ridge model
    g(z) = w . z + b to the target probability of ``num_samples`` images in which random
    superpixels are hidden (z in {0,1}^K: which superpixels are kept; weight
    sqrt(exp(-d^2 / 0.25^2)), d = cosine distance of z to all-ones).

    Hidden superpixels take their mean color (``hide_color=None``, as LIME) or ``hide_color``.
    Saliency = w of each pixel's superpixel. extras: ``segments`` [N, H, W], ``weights`` (per image
    {superpixel: w}), ``score`` (weighted R^2 of the surrogate per image), ``seeds`` (per image,
    drawn from ``ctx.generator``: LIME's random_state and quickshift's rng). LIME draws its own
    progress bar over the samples, whatever ``progress`` says."""
    check_positive("num_samples", num_samples, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    if hide_color is not None:
        check_positive("hide_color", hide_color, allow_zero=True)
    _check_segmentation(segmentation, segmentation_kwargs)
    try:
        from lime.lime_image import LimeImageExplainer
    except ImportError as e:
        raise ImportError("method 'lime' needs the lime package: pip install lime") from e
    items, to_model = _images(ctx)
    targets = ctx.targets.tolist()

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        return ctx.probabilities([to_model(batch)], total=1, desc="lime").double().cpu().numpy()

    maps, all_segments, weights, scores = [], [], [], []
    for (image, seg_image, seed), target in zip(items, targets):
        segments = segment(seg_image, segmentation, segmentation_kwargs, seed)
        with seeded(seed):
            explanation = LimeImageExplainer(random_state=seed).explain_instance(
                image, classifier_fn, labels=(target,), hide_color=hide_color, top_labels=None,
                num_samples=num_samples, batch_size=batch_size, segmentation_fn=lambda _, segments=segments: segments)
        w = {int(k): float(v) for k, v in explanation.local_exp[target]}
        maps.append(_per_pixel(segments, w, ctx.device))
        all_segments.append(torch.as_tensor(segments))
        weights.append(w)
        scores.append(float(explanation.score))
    return Result(saliency=torch.stack(maps).to(ctx.x.dtype),
                  extras={"segments": torch.stack(all_segments), "weights": weights, "score": scores,
                          "seeds": [seed for *_, seed in items]})


@register("anchors", family="perturbation")
def anchors(ctx: Context, segmentation: str = "slic", segmentation_kwargs: dict | None = None,
            threshold: float = 0.95, p_sample: float = 0.5, batch_size: int = 100,
            max_anchor_size: int | None = None) -> Result:
    """Anchors (Ribeiro et al. 2018) via ``alibi.explainers.AnchorImage``: the smallest set A of
    superpixels such that, hiding each other superpixel with probability ``p_sample`` (mean
    color), P(decision unchanged | A kept) >= ``threshold`` (KL-LUCB beam search).

    The decision is "is the argmax the target class": for the predicted class (the default
    target) this is the usual anchor of the prediction. slic defaults to alibi's 10 segments.
    Saliency = 1 on the anchor's superpixels, else 0. extras: ``segments`` [N, H, W], ``anchor``
    (superpixel ids per image), ``precision``, ``coverage``, ``seeds``. ``max_anchor_size``
    bounds the search: anchors of at most that many superpixels (None: alibi's unbounded search,
    which can take minutes on a network whose decision needs many superpixels; the best anchor
    found is returned when the bound stops it). alibi is optional (Business Source License):
    ``pip install alibi``."""
    check_fraction("threshold", threshold, open_low=True)
    check_fraction("p_sample", p_sample, open_low=True, open_high=True)
    check_positive("batch_size", batch_size, integer=True)
    if max_anchor_size is not None:
        check_positive("max_anchor_size", max_anchor_size, integer=True)
    if batch_size > MAX_ANCHORS_BATCH:
        raise ValueError(f"batch_size must be <= {MAX_ANCHORS_BATCH} for anchors (alibi allocates batch_size x 10^4 "
                         f"values up front), got {batch_size}")
    _check_segmentation(segmentation, segmentation_kwargs)
    try:
        from alibi.explainers import AnchorImage
    except ImportError as e:
        raise ImportError("method 'anchors' needs alibi, an optional dependency under the Business Source "
                          "License: pip install alibi") from e
    if segmentation == "slic":
        segmentation_kwargs = {"n_segments": 10, **(segmentation_kwargs or {})}
    items, to_model = _images(ctx)
    maps, all_segments, found, precision, coverage = [], [], [], [], []
    for (image, seg_image, seed), target in zip(items, ctx.targets.tolist()):
        segments = segment(seg_image, segmentation, segmentation_kwargs, seed)

        def predictor(batch: np.ndarray, target=target) -> np.ndarray:
            probs = ctx.probabilities([to_model(batch)], total=1, desc="anchors")
            return (probs.argmax(dim=1) == target).long().cpu().numpy()

        with seeded(seed):
            explainer = AnchorImage(predictor, image.shape, segmentation_fn=lambda _, s=segments: s, seed=seed)
            explanation = explainer.explain(image, p_sample=p_sample, threshold=threshold, batch_size=batch_size,
                                            max_anchor_size=max_anchor_size)
        anchor = [int(k) for k in explanation.data["raw"]["feature"]]
        maps.append(_per_pixel(segments, dict.fromkeys(anchor, 1.0), ctx.device))
        all_segments.append(torch.as_tensor(segments))
        found.append(anchor)
        # an empty anchor (the decision holds anyway) comes with a one-element precision array
        precision.append(float(np.ravel(explanation.data["precision"])[-1]))
        coverage.append(float(explanation.data["coverage"]))
    return Result(saliency=torch.stack(maps).to(ctx.x.dtype),
                  extras={"segments": torch.stack(all_segments), "anchor": found, "precision": precision,
                          "coverage": coverage, "seeds": [seed for *_, seed in items]})

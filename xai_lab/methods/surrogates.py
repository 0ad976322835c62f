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
from ..ops import check_fraction, check_positive, forward_batch_size
from ..registry import register
from ..targets import perturbation_score

SEGMENTATION_DEFAULTS = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},  # LIME's defaults
    "slic": {"n_segments": 50, "compactness": 10, "sigma": 0.5},
    "felzenszwalb": {"scale": 100, "sigma": 0.5, "min_size": 50},
}


#: LIME's kernel width for images (``lime_image.LimeImageExplainer``'s default), in units of the
#: cosine distance of :func:`lime_distances`, which lies in [0, 1].
LIME_KERNEL_WIDTH = 0.25

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


def lime_distances(samples) -> np.ndarray:
    """LIME's distance of each perturbed image to the image explained: the cosine distance of its
    0/1 row z (1: superpixel kept) [S, K] to the all-ones row, 1 - z . 1 / (||z|| ||1||) =
    1 - sqrt(k / K) for a row that keeps k of K superpixels; 1 for the all-zeros row (cosine
    similarity 0, as scikit-learn takes it). Returns [S]."""
    z = np.asarray(samples)
    if z.ndim != 2 or not np.isin(z, (0, 1)).all():
        raise ValueError(f"samples must be a 0/1 matrix [S, K], got shape {list(z.shape)}")
    return 1 - np.sqrt(z.sum(axis=1) / z.shape[1])


def lime_kernel(distances, width: float = LIME_KERNEL_WIDTH) -> np.ndarray:
    """LIME's weight of a perturbed image at distance d from the image explained:
    pi(d) = sqrt(exp(-d^2 / width^2)) = exp(-d^2 / (2 width^2)); 1 at d = 0.

    Ribeiro et al. (2016), "Why should I trust you?", Sec. 3.4, define the exponential kernel
    pi_x(z) = exp(-D(x, z)^2 / sigma^2) and suggest the L2 distance for images. The lime library
    (``lime_image``, version 0.2) differs in both: it takes the square root of that kernel (the
    paper's kernel with width sigma sqrt(2)) and measures D as the cosine distance between the
    0/1 superpixel vectors (:func:`lime_distances`), with width 0.25. :func:`lime` hands this
    function to the library as its kernel."""
    check_positive("width", width)
    d = np.asarray(distances, dtype=float)
    return np.sqrt(np.exp(-d**2 / width**2))


def check_background_images(background_images, like: torch.Tensor, pixels: bool) -> torch.Tensor:
    """Refuse ``background_images`` unless it is a floating-point tensor [B, C, H, W] (B >= 1)
    with the channels and size of ``like`` [N, C, H, W], every value finite and, when
    ``pixels``, in [0, 1]; the error names the option. Returns it detached, on ``like``'s device
    and dtype. The one check of the option in :func:`anchors` and
    :func:`xai_lab.metrics.anchors.anchor_precision`."""
    if not isinstance(background_images, torch.Tensor) or not background_images.is_floating_point():
        raise TypeError(f"background_images must be a float tensor [B, C, H, W] or None, "
                        f"got {type(background_images).__name__}")
    shape, (_, c, h, w) = list(background_images.shape), like.shape
    if len(shape) != 4 or shape[0] == 0 or shape[1:] != [c, h, w]:
        raise ValueError(f"background_images must have shape [B, {c}, {h}, {w}] (B >= 1 images with the channels "
                         f"and size of x), got {shape}")
    background_images = background_images.detach().to(device=like.device, dtype=like.dtype)
    if not torch.isfinite(background_images).all():
        raise ValueError("background_images must be finite, got NaN or infinite values")
    low, high = float(background_images.min()), float(background_images.max())
    if pixels and not 0 <= low <= high <= 1:
        raise ValueError(f"background_images must be pixels in [0, 1], got values in [{low:g}, {high:g}]")
    return background_images


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
         num_samples: int = 1000, hide_color: float | None = None, batch_size: int | None = None) -> Result:
    """LIME (Ribeiro et al. 2016) via ``lime.lime_image``: fit a locally weighted ridge model
    g(z) = w . z + b (penalty ||w||^2) to the target's score (a plain class index: its probability,
    as LIME; a target object of :mod:`xai_lab.targets`: its own score) of ``num_samples`` images in
    which random superpixels are hidden (z in {0,1}^K: which superpixels are kept, each 1 with
    probability 1/2, the first sample all ones), sample weight :func:`lime_kernel` of
    :func:`lime_distances`.

    Hidden superpixels take their mean color (``hide_color=None``, as LIME) or ``hide_color``.
    Saliency = w of each pixel's superpixel. extras: ``segments`` [N, H, W], ``weights`` (per image
    {superpixel: w}), ``score`` (weighted R^2 of the surrogate per image), ``seeds`` (per image,
    drawn from ``ctx.generator``: LIME's random_state and quickshift's rng), and what the fit
    was made on, per image: ``samples`` (the 0/1 matrix z [num_samples, K]), ``outputs`` (the
    target score of each sample [num_samples]) and ``kernel_weights`` (their weights
    [num_samples]). ``batch_size``: images per forward pass (None: 4 on a CPU, 100 elsewhere,
    :func:`~xai_lab.ops.forward_batch_size`); it does not change the result beyond float rounding.
    LIME draws its own progress bar over the samples, whatever ``progress`` says."""
    check_positive("num_samples", num_samples, integer=True)
    batch_size = forward_batch_size(batch_size, ctx.device, accelerator=100)
    if hide_color is not None:
        check_positive("hide_color", hide_color, allow_zero=True)
    _check_segmentation(segmentation, segmentation_kwargs)
    try:
        from lime.lime_image import LimeImageExplainer
    except ImportError as e:
        raise ImportError("method 'lime' needs the lime package: pip install lime") from e

    class RecordingExplainer(LimeImageExplainer):
        """Keeps the samples, model outputs and kernel weights that the library fits on."""

        def __init__(self, random_state: int):
            super().__init__(kernel_width=LIME_KERNEL_WIDTH, kernel=self.kernel, random_state=random_state)

        def data_labels(self, *args, **kwargs):
            self.samples, self.outputs = super().data_labels(*args, **kwargs)
            return self.samples, self.outputs

        def kernel(self, distances, kernel_width):
            self.kernel_weights = lime_kernel(distances, kernel_width)
            return self.kernel_weights

    items, to_model = _images(ctx)
    explained = perturbation_score(ctx.target)  # a class index: its probability; a target object: its own score

    def classifier_fn(batch: np.ndarray, image_index: int) -> np.ndarray:
        logits = ctx.outputs([to_model(batch)], total=1, desc="lime")
        return explained.scores(logits, images=image_index)[:, None].double().cpu().numpy()

    maps, all_segments, weights, scores, fitted = [], [], [], [], {"samples": [], "outputs": [], "kernel_weights": []}
    for i, (image, seg_image, seed) in enumerate(items):
        segments = segment(seg_image, segmentation, segmentation_kwargs, seed)
        with seeded(seed):
            explainer = RecordingExplainer(random_state=seed)
            explanation = explainer.explain_instance(
                image, lambda batch, i=i: classifier_fn(batch, i), labels=(0,), hide_color=hide_color, top_labels=None,
                num_samples=num_samples, batch_size=batch_size, segmentation_fn=lambda _, segments=segments: segments)
        w = {int(k): float(v) for k, v in explanation.local_exp[0]}
        maps.append(_per_pixel(segments, w, ctx.device))
        all_segments.append(torch.as_tensor(segments))
        weights.append(w)
        scores.append(float(explanation.score))
        fitted["samples"].append(explainer.samples)
        fitted["outputs"].append(explainer.outputs[:, 0].copy())
        fitted["kernel_weights"].append(explainer.kernel_weights)
    return Result(saliency=torch.stack(maps).to(ctx.x.dtype),
                  extras={"segments": torch.stack(all_segments), "weights": weights, "score": scores,
                          "seeds": [seed for *_, seed in items], **fitted})


@register("anchors", family="perturbation")
def anchors(ctx: Context, segmentation: str = "slic", segmentation_kwargs: dict | None = None,
            threshold: float = 0.95, p_sample: float = 0.5, batch_size: int = 100,
            max_anchor_size: int | None = None, background_images: torch.Tensor | None = None,
            model_batch_size: int | None = None) -> Result:
    """Anchors (Ribeiro et al. 2018, "Anchors: high-precision model-agnostic explanations") via
    ``alibi.explainers.AnchorImage``: the smallest set A of superpixels such that, hiding each
    other superpixel with probability ``p_sample``, P(decision unchanged | A kept) >=
    ``threshold`` (KL-LUCB beam search).

    How a superpixel is hidden: a perturbed image with keep pattern z in {0,1}^K (z_k = 1 for
    every k in A, each other z_k = 0 with probability ``p_sample``) has, at pixel p of superpixel
    s(p), x(z)_p = x_p if z_s(p) = 1, else

    * ``background_images=None`` (flat hiding, LIME's and alibi's default): the mean color of
      superpixel s(p) in x;
    * ``background_images`` b [B, 3, H, W] (superimposed hiding, alibi's ``images_background``,
      the practice of the monkeypox write-up): b_i,p, the same pixel of one background image,
      i drawn uniformly from the B (with replacement) once per perturbed image, so all hidden
      superpixels of one sample come from the same image. Give pixels in [0, 1] with a
      Classifier; with a bare ``nn.Module`` the model input is the image (any finite values, in
      model-input units). The superpixels are those of x alone under either hiding (the
      backgrounds are not segmented). The search's random stream (seeded by ``seed``) also
      draws the background indices, so one seed gives different keep patterns under the two
      kinds of hiding.

    The two answer different questions: flat hiding asks which regions keep the decision when
    the rest turns to flat color (images unlike any photograph), superimposed hiding asks which
    keep it when the rest comes from other images; a region whose evidence the backgrounds
    show too is then no longer needed in the anchor.

    ``xai_lab.metrics.anchors.anchor_precision`` checks an anchor's precision under either
    hiding from fresh samples.

    The decision is "is the argmax the target class" (so the target must be one class: a class
    index, ``Logit(c)`` or ``Probability(c)``; other targets raise a ``ValueError``): for the predicted class (the default
    target) this is the usual anchor of the prediction. slic defaults to alibi's 10 segments.
    Saliency = 1 on the anchor's superpixels, else 0. extras: ``segments`` [N, H, W], ``anchor``
    (superpixel ids per image), ``precision``, ``coverage``, ``seeds``. ``max_anchor_size``
    bounds the search: anchors of at most that many superpixels (None: alibi's unbounded search,
    which can take minutes on a network whose decision needs many superpixels; the best anchor
    found is returned when the bound stops it). ``batch_size`` is the search's number of samples
    per candidate rule and round, which shapes the search; the model sees them in forward passes
    of at most ``model_batch_size`` images, which does not (up to float rounding; None: 4 on a CPU,
    16 elsewhere, :func:`~xai_lab.ops.forward_batch_size`). alibi is optional (Business Source License):
    ``pip install alibi``."""
    check_fraction("threshold", threshold, open_low=True)
    check_fraction("p_sample", p_sample, open_low=True, open_high=True)
    check_positive("batch_size", batch_size, integer=True)
    if model_batch_size is not None:
        check_positive("model_batch_size", model_batch_size, integer=True)
    model_batch_size = forward_batch_size(model_batch_size, ctx.device, accelerator=16)
    if max_anchor_size is not None:
        check_positive("max_anchor_size", max_anchor_size, integer=True)
    if batch_size > MAX_ANCHORS_BATCH:
        raise ValueError(f"batch_size must be <= {MAX_ANCHORS_BATCH} for anchors (alibi allocates batch_size x 10^4 "
                         f"values up front), got {batch_size}")
    _check_segmentation(segmentation, segmentation_kwargs)
    if background_images is not None:  # channels last, as alibi takes images
        background_images = check_background_images(background_images, ctx.x, pixels=ctx.classifier is not None)
        background_images = background_images.permute(0, 2, 3, 1).cpu().numpy()
    try:
        from alibi.explainers import AnchorImage
    except ImportError as e:
        raise ImportError("method 'anchors' needs alibi, an optional dependency under the Business Source "
                          "License: pip install alibi") from e
    if segmentation == "slic":
        segmentation_kwargs = {"n_segments": 10, **(segmentation_kwargs or {})}
    items, to_model = _images(ctx)
    maps, all_segments, found, precision, coverage = [], [], [], [], []
    for (image, seg_image, seed), target in zip(items, ctx.classes("anchors").tolist()):
        segments = segment(seg_image, segmentation, segmentation_kwargs, seed)

        def predictor(batch: np.ndarray, target=target) -> np.ndarray:
            chunks = (to_model(batch[i:i + model_batch_size]) for i in range(0, len(batch), model_batch_size))
            probs = ctx.probabilities(chunks, total=-(-len(batch) // model_batch_size), desc="anchors")
            return (probs.argmax(dim=1) == target).long().cpu().numpy()

        with seeded(seed):
            explainer = AnchorImage(predictor, image.shape, segmentation_fn=lambda _, s=segments: s, seed=seed,
                                    images_background=background_images)
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

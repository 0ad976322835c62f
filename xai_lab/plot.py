"""Figures the chapters share: a map over its image, grids of maps, superpixel values.

One vocabulary for every map (Kindermans et al. 2019 and Adebayo et al. 2018 show how much
a display choice can suggest):

* unsigned maps (Grad-CAM, |gradient|, RISE) use a perceptually uniform color map
  (:data:`UNSIGNED_CMAP`, viridis) from 0 to a limit;
* signed maps (input x gradient, integrated gradients, SHAP, occlusion, LIME weights) use a
  diverging color map (:data:`SIGNED_CMAP`, red positive, blue negative) on limits
  [-L, L], so that white is exactly zero;
* maps compared in one figure share one scale (:func:`map_grid`), and a color bar says what
  the colors mean;
* spiky maps can be clipped at a percentile of their absolute values (:func:`percentile_limit`),
  which the caption should state;
* maps read one at a time, each on its own scale: :func:`own_scale_grid` (raw values, signed
  maps centered on zero) or, for unsigned maps only, :func:`overlay` and :func:`grid` (each map
  min-max normalized: 0 = its minimum, 1 = its maximum, :data:`UNSIGNED_CMAP`, with a color bar
  saying so). Min-max normalization hides where zero is, so a signed map never goes to
  :func:`grid`: use :func:`map_grid` or :func:`own_scale_grid` with ``signed=True``.

:func:`image_grid` draws pictures with no map on them (masks, perturbed images).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .explain import Explanation
from .ops import normalize_per_image

UNSIGNED_CMAP = "viridis"
SIGNED_CMAP = "RdBu_r"
MIN_MAX_LABEL = "each map scaled to its own range:\n0 = its minimum, 1 = its maximum"


def to_image(x: torch.Tensor, classifier=None) -> np.ndarray:
    """A preprocessed image [3, H, W] -> HxWx3 float array in [0, 1] for display (the
    classifier's input scaling undone; without a classifier, min-max scaled)."""
    x = x.detach().cpu().float()
    if x.dim() == 4:
        x = x[0]
    if classifier is not None:
        pixels = classifier.to_pixels(x)
    else:
        pixels = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return pixels.clamp(0, 1).permute(1, 2, 0).numpy()


def _map_array(saliency) -> np.ndarray:
    if isinstance(saliency, Explanation):
        saliency = saliency.saliency
    s = torch.as_tensor(saliency).detach().cpu().float()
    if s.dim() == 3:
        s = s[0]
    return normalize_per_image(s[None])[0].numpy()


def _raw(maps) -> np.ndarray:
    """Maps (Explanation, tensor or array of any shape) -> float64 numpy array, values unchanged."""
    if isinstance(maps, Explanation):
        maps = maps.saliency
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().double().numpy()
    values = np.asarray(maps, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("maps contain NaN or infinite values")
    return values


def _one_map(saliency) -> np.ndarray:
    m = _raw(saliency)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"expected one map [H, W], got shape {list(m.shape)}")
    return m


def _colorbar(artist, ax, **options):
    """A color bar for ``artist`` drawn opaque (a map laid over an image is translucent)."""
    figure = ax[0].figure if isinstance(ax, list) else ax.figure
    bar = figure.colorbar(artist, ax=ax, **options)
    bar.solids.set_alpha(1.0)
    return bar


def percentile_limit(maps, q: float = 99.0) -> float:
    """The ``q``-th percentile of the absolute values of ``maps`` (all values together: pass one
    map for a per-map limit, several for a shared one). Clipping a spiky gradient map at its
    99th percentile keeps a few extreme pixels from turning the rest of the map white.
    ``q = 100`` is the largest magnitude. Never below the smallest positive float, so that it
    can serve as a color limit for an all-zero map."""
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 100:
        raise ValueError(f"q must be a percentile in (0, 100], got {q!r}")
    values = np.abs(_raw(maps)).ravel()
    if values.size == 0:
        raise ValueError("no values to take a percentile of")
    return max(float(np.percentile(values, q)), float(np.finfo(np.float32).tiny))


def clip_percentile(maps, q: float = 99.0) -> tuple[torch.Tensor, float]:
    """``maps`` clipped to [-L, L] with L = :func:`percentile_limit` (maps, q), and L."""
    limit = percentile_limit(maps, q)
    return torch.as_tensor(_raw(maps)).float().clamp(-limit, limit), limit


def is_signed(maps) -> bool:
    """True when any value is negative (then the map needs a color scale centered on zero)."""
    return bool((_raw(maps) < 0).any())


def color_limits(maps, signed: bool | None = None, clip: float | None = None) -> tuple[float, float]:
    """(vmin, vmax) for ``maps``: symmetric (-L, L) for signed maps, (0, L) otherwise, with L the
    largest magnitude or, with ``clip = q``, the ``q``-th percentile of the magnitudes.
    ``signed=None`` decides from the values (:func:`is_signed`)."""
    limit = percentile_limit(maps, 100.0 if clip is None else clip)
    signed = is_signed(maps) if signed is None else signed
    return (-limit, limit) if signed else (0.0, limit)


def show_map(ax, saliency, image: np.ndarray | None = None, signed: bool | None = None,
             limits: tuple[float, float] | None = None, clip: float | None = None, cmap: str | None = None,
             alpha: float = 0.6, colorbar: bool = True, title: str | None = None):
    """Draw one map [H, W] with its raw values on ``ax``, optionally over ``image`` (HxWx3 in
    [0, 1]; the map then drawn with ``alpha``). Colors: :func:`color_limits` (signed maps
    centered on zero with :data:`SIGNED_CMAP`, unsigned from 0 with :data:`UNSIGNED_CMAP`)
    unless ``limits`` fixes them (for a scale shared with other maps). ``clip = q`` clips at
    the q-th percentile of |map| (values beyond show the end color). Adds a color bar unless
    ``colorbar=False``. Returns the map's image artist (``.colorbar`` is its color bar)."""
    m = _one_map(saliency)
    signed = is_signed(m) if signed is None else signed
    vmin, vmax = limits if limits is not None else color_limits(m, signed, clip)
    if image is not None:
        ax.imshow(image)
    artist = ax.imshow(m, cmap=cmap or (SIGNED_CMAP if signed else UNSIGNED_CMAP), vmin=vmin, vmax=vmax,
                       alpha=alpha if image is not None else None, interpolation="nearest",
                       extent=(-0.5, m.shape[1] - 0.5, m.shape[0] - 0.5, -0.5))
    if image is not None:
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        _colorbar(artist, ax, fraction=0.046, pad=0.03)
    return artist


def overlay(ax, image: np.ndarray, saliency, alpha: float = 0.5, cmap: str = UNSIGNED_CMAP,
            title: str | None = None, colorbar: bool = True):
    """Draw ``image`` (HxWx3 in [0, 1]) with the min-max normalized ``saliency`` on top (0 = the
    map's minimum, 1 = its maximum), in :data:`UNSIGNED_CMAP` unless ``cmap`` says otherwise, with
    a color bar saying so (:data:`MIN_MAX_LABEL`) unless ``colorbar=False``. For unsigned maps:
    min-max normalization hides where zero is in a signed map (use :func:`show_map`). Returns ``ax``."""
    ax.imshow(image)
    artist = ax.imshow(_map_array(saliency), cmap=cmap, alpha=alpha, vmin=0, vmax=1,
                       extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        _colorbar(artist, ax, fraction=0.046, pad=0.03, label=MIN_MAX_LABEL)
    return ax


def grid(images: Sequence[np.ndarray], columns: dict[str, Sequence], row_titles: Sequence[str] | None = None,
         alpha: float = 0.5, cmap: str = UNSIGNED_CMAP, size: float = 2.2, colorbar: bool = True):
    """A figure with one row per image: the image, then one :func:`overlay` per entry of
    ``columns`` (column title -> one map per image, an Explanation or [N, H, W] maps), each map
    min-max normalized on its own (for unsigned maps; a signed map goes to :func:`map_grid` or
    :func:`own_scale_grid` with ``signed=True``), and one color bar for the whole figure saying
    so (:data:`MIN_MAX_LABEL`; its last axes) unless ``colorbar=False``. Returns the figure."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(images), len(columns) + 1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols + 0.8 * colorbar, size * n_rows), squeeze=False,
                             layout="constrained")
    for r, image in enumerate(images):
        axes[r, 0].imshow(image)
        axes[r, 0].set_axis_off()
        if row_titles is not None:
            axes[r, 0].set_title(row_titles[r], fontsize=9)
        for c, (title, maps) in enumerate(columns.items(), start=1):
            m = maps.saliency[r] if isinstance(maps, Explanation) else maps[r]
            overlay(axes[r, c], image, m, alpha=alpha, cmap=cmap, title=title if r == 0 else None, colorbar=False)
    if colorbar and columns:
        _colorbar(axes[0, 1].get_images()[-1], axes.ravel().tolist(), shrink=0.8, label=MIN_MAX_LABEL)
    return fig


def image_grid(images: Sequence, titles: Sequence[str | None] | None = None, ncols: int | None = None,
               size: float = 2.2, **imshow):
    """A figure of pictures drawn as they are, without a map on top (masks, perturbed or baseline
    images): ``images`` are HxWx3 arrays in [0, 1] or single-channel [H, W] (or [1, H, W]) arrays
    or tensors, filled row by row into ``ncols`` columns (default: one row); ``titles``: one per
    image (None or "" for none); ``imshow``: options for every image, e.g. ``cmap="gray", vmin=0,
    vmax=1`` for masks. Unused cells of the last row stay blank. Returns the figure."""
    import matplotlib.pyplot as plt

    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = len(images) if ncols is None else ncols
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1 or not images:
        raise ValueError(f"need at least one image and ncols >= 1, got {len(images)} images and ncols={ncols!r}")
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i < len(images):
            picture = images[i].detach().cpu().float().numpy() if isinstance(images[i], torch.Tensor) else np.asarray(images[i])
            while picture.ndim > 2 and picture.shape[0] == 1:
                picture = picture[0]
            ax.imshow(picture, **imshow)
            if titles is not None and titles[i]:
                ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def map_grid(columns: dict[str, Sequence], images: Sequence[np.ndarray] | None = None,
             row_titles: Sequence[str] | None = None, signed: bool | None = None, clip: float | None = None,
             alpha: float = 0.6, size: float = 2.2, label: str | None = None):
    """Maps compared on ONE scale: one row per image, one column per entry of ``columns``
    (title -> maps [N, H, W] or an Explanation), and one color bar for the whole figure.
    With ``images`` the first column shows the image and the maps lie over it. The limits come
    from :func:`color_limits` over every map of the figure (``clip = q``: the q-th percentile of
    all their magnitudes). Returns the figure; its last axes is the shared color bar."""
    import matplotlib.pyplot as plt

    maps = {title: _raw(m) for title, m in columns.items()}
    n_rows = len(next(iter(maps.values())))
    if any(len(m) != n_rows for m in maps.values()) or (images is not None and len(images) != n_rows):
        raise ValueError("every column (and images) must hold one map per row")
    every = np.concatenate([m.ravel() for m in maps.values()])
    signed = is_signed(every) if signed is None else signed
    limits = color_limits(every, signed, clip)
    n_cols = len(maps) + (images is not None)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols + 0.8, size * n_rows), squeeze=False,
                             layout="constrained")
    artist = None
    for r in range(n_rows):
        if images is not None:
            axes[r, 0].imshow(images[r])
            axes[r, 0].set_axis_off()
            if row_titles is not None:
                axes[r, 0].set_title(row_titles[r], fontsize=9)
        for c, (title, m) in enumerate(maps.items(), start=int(images is not None)):
            artist = show_map(axes[r, c], m[r], image=None if images is None else images[r], signed=signed,
                              limits=limits, alpha=alpha, colorbar=False, title=title if r == 0 else None)
        if images is None and row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r])
    _colorbar(artist, axes.ravel().tolist(), shrink=0.8, label=label)
    return fig


def superpixel_values(ax, image: np.ndarray, segments, values, limit: float | None = None,
                      colorbar: bool = True, title: str | None = None, alpha: float = 0.55):
    """Each superpixel of ``image`` colored by its value (``values``: one per label 0..K-1, or a
    dict label -> value, missing labels 0), on a diverging scale centered on zero ([-limit, limit],
    default the largest magnitude): red raises the score, blue lowers it. Superpixel boundaries
    in black. Returns the artist."""
    from skimage.segmentation import mark_boundaries

    segments = np.asarray(segments)
    table = np.zeros(int(segments.max()) + 1)
    if isinstance(values, dict):
        for k, v in values.items():
            table[int(k)] = float(v)
    else:
        table[:] = _raw(values).ravel()
    return show_map(ax, table[segments], image=mark_boundaries(image, segments, color=(0, 0, 0)), signed=True,
                    limits=None if limit is None else (-limit, limit), alpha=alpha, colorbar=colorbar, title=title)


def superpixel_boundaries(ax, image: np.ndarray, segments, title: str | None = None, color=(1, 1, 0)):
    """``image`` (HxWx3 in [0, 1]) with the boundaries of its superpixels (labels [H, W]) drawn in
    ``color``; the title defaults to the number of superpixels. Returns the artist."""
    from skimage.segmentation import mark_boundaries

    segments = np.asarray(segments)
    artist = ax.imshow(mark_boundaries(image, segments, color=color))
    ax.set_title(title if title is not None else f"{int(segments.max()) + 1} superpixels", fontsize=9)
    ax.set_axis_off()
    return artist


def anchor_figure(image: np.ndarray, segments, anchors: dict[str, Sequence[int]],
                  pictures: dict[str, np.ndarray] | None = None, size: float = 2.3):
    """One image's anchors side by side: first the ``pictures`` (title -> HxWx3 in [0, 1], e.g.
    perturbed copies of the image), then for each entry of ``anchors`` (title -> superpixel ids)
    ``image`` with the anchor's superpixels in red (:func:`superpixel_values`, 1 on the anchor,
    0 elsewhere; superpixel boundaries in black; an empty anchor leaves the image uncolored).
    Returns the figure."""
    import matplotlib.pyplot as plt

    pictures = pictures or {}
    n = len(pictures) + len(anchors)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size * 1.15), squeeze=False, constrained_layout=True)
    axes = axes[0]
    for ax, (title, picture) in zip(axes, pictures.items()):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    for ax, (title, anchor) in zip(axes[len(pictures):], anchors.items()):
        superpixel_values(ax, image, segments, {k: 1.0 for k in anchor}, limit=1.0, colorbar=False, title=title)
    return fig


def removal_gallery(classifier, image: torch.Tensor, maps: dict[str, object], target: int,
                    fractions: Sequence[float] = (0.1, 0.3), baselines: Sequence = ("black", "mean"),
                    order: str = "lerf", size: float = 2.25):
    """What pixel perturbation shows the model: one row per map of ``image`` ([C, H, W]; ``maps``:
    name -> map [H, W] or [1, H, W]), one column per baseline and fraction, each panel the image with
    the first ``fraction`` of its pixels in the map's ``order`` (``"lerf"``: least salient first,
    ``"morf"``: most salient first) replaced by the ``baseline`` image
    (:func:`~xai_lab.ops.baseline_image`), titled with the softmax probability p of ``target``
    on it, as :func:`~xai_lab.metrics.pixel_perturbation` perturbs it (``round(fraction * H * W)``
    pixels). The figure's title gives p on the clean image. Returns the figure."""
    import matplotlib.pyplot as plt

    from .metrics.perturbation import perturbed_batch, ranking
    from .models import unwrap
    from .ops import baseline_image

    model, classifier = unwrap(classifier)
    image = image.detach()
    counts = [round(f * image.shape[-2] * image.shape[-1]) for f in fractions]
    n_cols = len(baselines) * len(fractions)
    fig, axes = plt.subplots(len(maps), n_cols, figsize=(size * n_cols, size * len(maps)), squeeze=False)
    with torch.no_grad():
        p0 = float(torch.softmax(model(image[None]), 1)[0, target])
        for row, (name, m) in enumerate(maps.items()):
            order_idx = ranking(torch.as_tensor(_one_map(m))[None], order)[0]
            for b, baseline in enumerate(baselines):
                base = baseline_image(image[None], baseline, classifier)[0]
                batch = perturbed_batch(image, base, order_idx, counts)
                p = torch.softmax(model(batch), 1)[:, target]
                for j, (f, xk) in enumerate(zip(fractions, batch)):
                    ax = axes[row, b * len(fractions) + j]
                    ax.imshow(to_image(xk, classifier))
                    ax.set_title(f"{name}, {baseline}, {f:.0%}\np = {float(p[j]):.2f}", fontsize=8)
                    ax.set_axis_off()
    fig.suptitle(f"{dict(lerf='LeRF', morf='MoRF').get(order, order)} removal (clean p = {p0:.2f})", fontsize=10)
    fig.tight_layout()
    return fig


def removal_curves(ax, results: dict[str, dict], title: str | None = None):
    """Deletion or insertion curves (Petsiuk et al. 2018) on ``ax``: for each entry of ``results``
    (name -> the dict of :func:`~xai_lab.metrics.deletion_auc` or
    :func:`~xai_lab.metrics.insertion_auc`), the target probability averaged over the images
    against the fraction of pixels moved, labeled with the mean AUC. Returns ``ax``."""
    for name, result in results.items():
        ax.plot(result["fractions"], result["curve"].mean(0), label=f"{name} (AUC {float(result['auc'].mean()):.3f})")
    ax.set(title=title, xlabel="fraction of pixels deleted / inserted")
    ax.legend(fontsize=8)
    return ax


def show_pixels(ax, pixels, title: str | None = None):
    """Draw one picture of pixels in [0, 1] on ``ax`` without axes: a [3, H, W] tensor (as the
    feature visualizations return them) or an HxWx3 array; values outside [0, 1] are clipped.
    Returns the artist."""
    picture = pixels.detach().cpu().float().permute(1, 2, 0).numpy() if isinstance(pixels, torch.Tensor) else pixels
    artist = ax.imshow(np.clip(np.asarray(picture, dtype=np.float64), 0, 1))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return artist


def own_scale_grid(images: Sequence[np.ndarray], columns: dict[str, Sequence], row_titles: Sequence[str] | None = None,
                   signed: bool | None = None, size: float = 2.1, clip: float | None = None, colorbar: bool = False):
    """Maps of any resolution next to their image, each on ITS OWN color scale (for maps whose
    sizes differ too much to share one, such as FullGrad's bias parts from 112 x 112 to 7 x 7,
    or spiky gradient maps that are read one by one): one row per image (HxWx3 in [0, 1], drawn
    first, titled by ``row_titles``), then one map per entry of ``columns`` (title -> maps
    [N, h, w] or an Explanation), drawn at their resolution with :func:`show_map` (``signed=None``
    decides per map; ``clip = q`` clips each map at the q-th percentile of its |values|;
    ``colorbar=True`` gives each map its bar). Returns the figure."""
    import matplotlib.pyplot as plt

    maps = {title: _raw(m) for title, m in columns.items()}
    if any(len(m) != len(images) for m in maps.values()):
        raise ValueError("every column must hold one map per image")
    n_cols = len(maps) + 1
    fig, axes = plt.subplots(len(images), n_cols, figsize=(size * n_cols, size * len(images) + 0.2), squeeze=False,
                             layout="constrained")
    for r, image in enumerate(images):
        show_pixels(axes[r, 0], image, title=None if row_titles is None else row_titles[r])
        for c, (title, m) in enumerate(maps.items(), start=1):
            show_map(axes[r, c], m[r], signed=signed, clip=clip, colorbar=colorbar, title=title if r == 0 else None)
    return fig

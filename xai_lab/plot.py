"""Figures every chapter uses: a map over its image, and a grid of images x methods."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .explain import Explanation
from .ops import normalize_per_image


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


def overlay(ax, image: np.ndarray, saliency, alpha: float = 0.5, cmap: str = "jet", title: str | None = None):
    """Draw ``image`` (HxWx3 in [0, 1]) with the min-max normalised ``saliency`` on top."""
    ax.imshow(image)
    ax.imshow(_map_array(saliency), cmap=cmap, alpha=alpha, vmin=0, vmax=1,
              extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def grid(images: Sequence[np.ndarray], columns: dict[str, Sequence], row_titles: Sequence[str] | None = None,
         alpha: float = 0.5, cmap: str = "jet", size: float = 2.2):
    """A figure with one row per image: the image, then one overlay per entry of ``columns``
    (column title -> one map per image, an Explanation or [N, H, W] maps). Returns the figure."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(images), len(columns) + 1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for r, image in enumerate(images):
        axes[r, 0].imshow(image)
        axes[r, 0].set_axis_off()
        if row_titles is not None:
            axes[r, 0].set_title(row_titles[r], fontsize=9)
        for c, (title, maps) in enumerate(columns.items(), start=1):
            m = maps.saliency[r] if isinstance(maps, Explanation) else maps[r]
            overlay(axes[r, c], image, m, alpha=alpha, cmap=cmap, title=title if r == 0 else None)
    fig.tight_layout()
    return fig

"""Agreement between saliency maps, with one convention for every chapter and metric.

Every measure compares two maps of the same shape as flat vectors of values:

- :func:`spearman`: Spearman's rank correlation, the Pearson correlation of the ranks
  (Spearman 1904), ties given their average rank, so it equals ``scipy.stats.spearmanr``;
- :func:`pearson`: the Pearson correlation of the values;
- :func:`ssim`: the structural similarity (Wang et al. 2004) of the two maps after min-max
  scaling each to [0, 1].

**Constant maps.** A constant map has no ranking and no variance, so both correlations are
undefined for it (scipy warns and returns NaN). Here they are 0.0: a map that says nothing
agrees with nothing. A Grad-CAM map of a randomized network, whose ReLU has cut every value, is
such a map; the sanity check then reads "no agreement" instead of failing on a NaN.

:func:`agreement_per_image` compares two batches of maps image by image, :func:`agreement_matrix` every
pair of methods (averaged over the images), and :func:`block_coherence` a map with itself shifted
by one block, a measure of how much it forms regions.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..ops import normalize_per_image

__all__ = ["agreement_matrix", "agreement_per_image", "block_coherence", "pearson", "spearman", "ssim"]


def _flat_pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(a).detach().cpu().to(torch.float64).flatten()
    b = torch.as_tensor(b).detach().cpu().to(torch.float64).flatten()
    if a.shape != b.shape:
        raise ValueError(f"The two maps have {a.numel()} and {b.numel()} values; they must have the same number")
    if a.numel() < 2:
        raise ValueError("A correlation needs maps of at least two values")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("The maps contain NaN or infinite values")
    return a, b


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-d tensor, tied values sharing the mean of their ranks
    (``scipy.stats.rankdata(method="average")``)."""
    order = values.argsort(stable=True)
    ordered = values[order]
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    group = starts.cumsum(0) - 1
    positions = torch.arange(1, len(values) + 1, dtype=torch.float64)
    mean_rank = torch.zeros(int(group[-1]) + 1, dtype=torch.float64).index_add_(0, group, positions)
    mean_rank /= torch.bincount(group).to(torch.float64)
    ranks = torch.empty(len(values), dtype=torch.float64)
    ranks[order] = mean_rank[group]
    return ranks


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.min() == a.max() or b.min() == b.max():
        return 0.0  # a constant map: no agreement (see the module's docstring)
    a, b = a - a.mean(), b - b.mean()
    return float(((a * b).sum() / (a.square().sum() * b.square().sum()).sqrt()).clamp(-1, 1))


def pearson(a, b) -> float:
    """Pearson correlation r = cov(a, b) / (std(a) std(b)) of two maps' values; 0.0 when either
    map is constant."""
    return _correlation(*_flat_pair(a, b))


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps: the Pearson correlation of their ranks, ties given
    their average rank (as ``scipy.stats.spearmanr``); 0.0 when either map is constant."""
    a, b = _flat_pair(a, b)
    return _correlation(average_ranks(a), average_ranks(b))


def ssim(a, b) -> float:
    """Structural similarity (Wang et al. 2004) of two 2-d maps after min-max scaling each to
    [0, 1] (``skimage.metrics.structural_similarity`` with ``data_range=1``); a constant map
    scales to zeros."""
    from skimage.metrics import structural_similarity

    a, b = (torch.as_tensor(m).detach().cpu().float() for m in (a, b))
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"ssim compares two 2-d maps of one shape, got {list(a.shape)} and {list(b.shape)}")
    a, b = normalize_per_image(torch.stack([a, b])).numpy()
    return float(structural_similarity(a, b, data_range=1.0))


MEASURES: dict[str, Callable] = {"spearman": spearman, "pearson": pearson, "ssim": ssim}


def _maps(explanation) -> torch.Tensor:
    """[N, H, W] maps of an Explanation (its ``saliency``) or of a tensor."""
    maps = explanation.saliency if hasattr(explanation, "saliency") else torch.as_tensor(explanation)
    if maps.dim() != 3:
        raise ValueError(f"Expected maps [N, H, W], got shape {list(maps.shape)}")
    return maps


def _measure(measure: str | Callable) -> Callable:
    if callable(measure):
        return measure
    if measure not in MEASURES:
        raise ValueError(f"Unknown measure {measure!r}; known: {', '.join(MEASURES)}")
    return MEASURES[measure]


def agreement_per_image(a, b, measure: str | Callable = "spearman") -> torch.Tensor:
    """Agreement of two batches of maps image by image: ``measure(a[i], b[i])`` for each i, [N].
    ``a``, ``b``: Explanations or [N, H, W] tensors; ``measure``: "spearman", "pearson", "ssim"
    or a function of two maps."""
    a, b = _maps(a), _maps(b)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} maps against {len(b)}: one map per image on each side")
    fn = _measure(measure)
    return torch.tensor([fn(u, v) for u, v in zip(a, b)], dtype=torch.float64)


def agreement_matrix(explanations: Mapping[str, object], measure: str | Callable = "spearman") -> torch.Tensor:
    """[M, M] agreement of every pair of the M methods in ``explanations`` (name -> Explanation or
    [N, H, W] maps of the same N images), averaged over the images; rows and columns in the
    mapping's order. The diagonal is each method's agreement with itself (1 for a correlation,
    0 for a constant map)."""
    maps = [_maps(e) for e in explanations.values()]
    table = torch.zeros(len(maps), len(maps), dtype=torch.float64)
    for i in range(len(maps)):
        for j in range(i + 1):
            table[i, j] = table[j, i] = agreement_per_image(maps[i], maps[j], measure).mean()
    return table


def block_coherence(maps, block: int = 8) -> torch.Tensor:
    """How much each map forms regions, [N]: |map| averaged over block x block pixels, then the
    Pearson correlation between horizontally neighboring blocks and between vertically
    neighboring ones, averaged. Near 1: smooth regions the size of object parts; near 0:
    scattered pixels."""
    m = torch.nn.functional.avg_pool2d(_maps(maps).abs().float()[:, None], block)[:, 0]
    if min(m.shape[1:]) < 2:
        raise ValueError(f"block={block} leaves fewer than two blocks along a side")
    return torch.tensor([(pearson(u[1:], u[:-1]) + pearson(u[:, 1:], u[:, :-1])) / 2 for u in m],
                        dtype=torch.float64)

"""How the layer methods depend on the layer they read: a sweep over depth.

At the last feature map ``A`` [K, h, w] of a network that averages it over positions into a
linear head, the gradient of the class score ``y = sum_k w_k mean_ij A_k(i, j) + b`` is the same
at every position, ``dy/dA_k(i, j) = w_k / (h w)``. Then

* Grad-CAM's channel weight, the mean gradient, is ``w_k / (h w)``: CAM's weight up to a scale
  (Selvaraju et al. 2017, section 3.1, show that Grad-CAM generalizes CAM this way);
* HiResCAM's map ``sum_k dy/dA_k(i, j) A_k(i, j)`` is Grad-CAM's ``sum_k mean(dy/dA_k) A_k(i, j)``;
* XGrad-CAM's weight ``sum_ij A_k(i, j) / sum_ij A_k(i, j) * dy/dA_k(i, j)`` is ``w_k / (h w)``;

so these four are one map and differ only where the gradient varies over positions, at earlier
layers. Grad-CAM++ and LayerCAM differ at every layer (their weights depend on the activation and
on the gradient's sign).

:func:`layer_sweep` explains images with each method at each layer and records, per (layer,
method, image), the Spearman agreement (:func:`xai_lab.metrics.agreement.spearman`) with a
reference method's map at the same layer, and the deletion and insertion AUC
(:func:`xai_lab.metrics.perturbation.deletion_auc`, :func:`~xai_lab.metrics.perturbation.insertion_auc`;
Petsiuk et al. 2018) of the map. :func:`sweep_means` averages them over the images.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from ..explain import explain
from ..ops import check_positive
from .agreement import spearman
from .perturbation import deletion_auc, insertion_auc

__all__ = ["SweepPoint", "layer_sweep", "sweep_means"]


@dataclass(frozen=True)
class SweepPoint:
    """One (layer, method, image) of a sweep: ``agreement`` is the Spearman correlation with the
    reference method's map at the same layer (1.0 for the reference itself, 0.0 where a map is
    constant, the convention of :mod:`xai_lab.metrics.agreement`); ``deletion_auc``
    (lower is better) and ``insertion_auc`` (higher is better) score the map."""

    layer: str
    method: str
    image: int
    agreement: float
    deletion_auc: float
    insertion_auc: float

    def as_dict(self) -> dict:
        return asdict(self)


def layer_sweep(classifier, x: torch.Tensor, methods: Sequence[str], layers: Sequence[str],
                reference: str = "gradcam", seed: int = 0, step: int = 224 * 32,
                deletion_baseline: str | float = "black", insertion_start: str | float = "blur",
                device=None) -> list[SweepPoint]:
    """Every method of ``methods`` (layer methods; ``reference`` is added when missing) at every
    layer of ``layers`` on the images ``x`` [N, 3, H, W] (pixels in [0, 1]), explaining each
    image's predicted class: one :class:`SweepPoint` per (layer, method, image), in that order.
    ``step`` pixels are deleted or inserted per point of the curves."""
    if not layers:
        raise ValueError("layer_sweep needs at least one layer")
    if not methods:
        raise ValueError("layer_sweep needs at least one method")
    check_positive("step", step, integer=True)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch [N, 3, H, W], got shape {tuple(x.shape)}")
    names = list(dict.fromkeys([reference, *methods]))
    points = []
    for layer in layers:
        maps = {name: explain(classifier, x, method=name, layer=layer, seed=seed, device=device, progress=False)
                for name in names}
        target = maps[reference].target
        for name in names:
            saliency = maps[name].saliency
            if not torch.equal(maps[name].target, target):
                raise RuntimeError(f"{name} explained other classes than {reference} at {layer}")
            deletion = deletion_auc(classifier, x, saliency, target, baseline=deletion_baseline, step=step)["auc"]
            insertion = insertion_auc(classifier, x, saliency, target, start=insertion_start, step=step)["auc"]
            for i in range(x.shape[0]):
                points.append(SweepPoint(layer, name, i, spearman(saliency[i], maps[reference].saliency[i]),
                                         float(deletion[i]), float(insertion[i])))
    return points


def sweep_means(points: Sequence[SweepPoint]) -> dict[tuple[str, str], dict[str, float]]:
    """``{(layer, method): {"agreement", "deletion_auc", "insertion_auc", "images"}}``: the means
    over the images of a :func:`layer_sweep`, in the sweep's order."""
    groups: dict[tuple[str, str], list[SweepPoint]] = {}
    for p in points:
        groups.setdefault((p.layer, p.method), []).append(p)
    return {key: {"agreement": sum(p.agreement for p in g) / len(g),
                  "deletion_auc": sum(p.deletion_auc for p in g) / len(g),
                  "insertion_auc": sum(p.insertion_auc for p in g) / len(g), "images": len(g)}
            for key, g in groups.items()}

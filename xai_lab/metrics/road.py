"""ROAD, remove and debias (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML).

Removing pixels by a constant leaks where they were: the shape of the removed region alone can
tell the model the class. ROAD removes pixels by *noisy linear imputation* instead, which leaves
little trace of the mask, and needs no retraining (unlike ROAR).

Imputation (:func:`noisy_linear_imputation`): every removed pixel i takes the weighted mean of
its (up to 8) neighbors N(i) inside the image, per channel, removed neighbors included,

    v_i = sum_{j in N(i)} w_ij v_j / sum_{j in N(i)} w_ij,   w = 1/6 (left, right, up, down),
                                                              w = 1/12 (the four diagonals),

where v_j is the image's value for a kept neighbor and the unknown v_j for a removed one: a
sparse linear system over the removed pixels (nonsingular unless every pixel is removed), one
right-hand side per channel. Noise ε ~ N(0, noise^2) is added to every imputed value.

:func:`road`: for each fraction f, the f * H * W pixels ranked first by the map (``morf``: most
relevant first; ``lerf``: least relevant first) are imputed and the model classifies the result.
The paper's curve is the accuracy over images (prediction == target) against f. With MoRF a
faithful map makes the accuracy fall fast (lower is better); with LeRF it should hold (higher
is better).

Targets (:mod:`xai_lab.targets`): the ``score`` curve is a plain class index's logit z_c (as
before targets, and Quantus' logits), a target object's own score (``Probability(c)``:
softmax(z)_c; ``Contrast(a, b)``: z_a - z_b; ``Labels``, ``Sigmoid()``, a callable). Accuracy
asks whether the imputed image is still classified as *the* class, so ``correct`` and
``accuracy`` come with a target that is one class per image (a class index, ``Logit(c)``,
``Probability(c)``) and are left out for the others, whose curve is ``score`` (a contrast's
"a rather than b" is not the class decision the paper counts).

Against Quantus 0.6.0 (``quantus.ROAD``, tested in ``tests/metrics/test_road.py``): the
imputation is the same system (equal to float rounding with the noise off). Quantus ranks the
C * H * W values of the map broadcast over the channels and hands those indices to an imputer
that indexes H * W pixels, so on a 3-channel image it fails with an IndexError; given the
pixels its order names, it keeps ceil(k / 3) pixels of the k values it counts. Quantus draws its
noise from numpy's global generator; here it comes from a seeded ``torch.Generator``. Quantus
measures MoRF only (LeRF: pass it the negated map).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..ops import eval_mode, forward_batch_size
from ..targets import Target
from .common import (
    bound_target,
    checked_maps,
    checked_model_and_input,
    image_of_rows,
    logit_or_own_score,
    logits_in_batches,
    show_progress,
)
from .perturbation import ranking

__all__ = ["NEIGHBOR_WEIGHTS", "linear_imputation", "noisy_linear_imputation", "road"]

#: (row offset, column offset) -> weight of a neighbor in the imputation (Rong et al. 2022).
NEIGHBOR_WEIGHTS = {(0, 1): 1 / 6, (0, -1): 1 / 6, (1, 0): 1 / 6, (-1, 0): 1 / 6,
                    (1, 1): 1 / 12, (1, -1): 1 / 12, (-1, 1): 1 / 12, (-1, -1): 1 / 12}

#: The removed fractions of the paper's curves: 10 % to 90 %.
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _check_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if x.dim() != 3:
        raise ValueError(f"x must be one image [C, H, W], got shape {list(x.shape)}")
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool or mask.shape != x.shape[-2:]:
        raise ValueError(f"mask must be a bool tensor [H, W] = {list(x.shape[-2:])}, got {mask.dtype} {list(mask.shape)}")
    if mask.all():
        raise ValueError("mask removes every pixel: linear imputation needs at least one kept pixel")
    return mask


def linear_imputation(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` [C, H, W] with the pixels where ``mask`` [H, W] is True replaced by the solution of
    the linear system in the module docstring (each the weighted mean of its neighbors), solved
    in float64 with a sparse direct solver; returned in ``x``'s dtype and device."""
    from scipy.sparse import coo_matrix, diags
    from scipy.sparse.linalg import spsolve

    mask = _check_mask(x, mask)
    h, w = mask.shape
    removed = mask.flatten().nonzero().flatten().cpu().numpy()
    if removed.size == 0:
        return x.clone()
    values = x.detach().reshape(x.shape[0], -1).double().cpu().numpy()
    unknown = np.full(h * w, -1)
    unknown[removed] = np.arange(removed.size)
    rows, cols = removed // w, removed % w
    total = np.zeros(removed.size)
    rhs = np.zeros((removed.size, x.shape[0]))
    a_rows, a_cols, a_vals = [], [], []
    for (dr, dc), weight in NEIGHBOR_WEIGHTS.items():
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        i = np.flatnonzero(inside)
        neighbor = r[inside] * w + c[inside]
        total[i] += weight
        is_unknown = unknown[neighbor] >= 0
        a_rows.append(i[is_unknown])
        a_cols.append(unknown[neighbor[is_unknown]])
        a_vals.append(np.full(int(is_unknown.sum()), -weight))
        rhs[i[~is_unknown]] += weight * values[:, neighbor[~is_unknown]].T
    a = coo_matrix((np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))),
                   shape=(removed.size, removed.size)) + diags(total)
    solution = spsolve(a.tocsc(), rhs).reshape(removed.size, x.shape[0])
    out = values.copy()
    out[:, removed] = solution.T
    return torch.from_numpy(out).reshape(x.shape).to(dtype=x.dtype, device=x.device)


def noisy_linear_imputation(x: torch.Tensor, mask: torch.Tensor, noise: float = 0.01,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`linear_imputation` plus ε ~ N(0, ``noise``^2) on every imputed value (per removed
    pixel and channel; kept pixels are unchanged). The noise is drawn on the CPU from
    ``generator`` (one draw [C, H, W]), so a seed gives the same image on any device."""
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0 or noise == float("inf"):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    out = linear_imputation(x, mask)
    if noise > 0:
        eps = torch.randn(x.shape, generator=generator, dtype=torch.float64) * noise
        out = out + (eps * mask.cpu()).to(dtype=x.dtype, device=x.device)
    return out


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fractions = list(fractions)
    if not fractions:
        raise ValueError("fractions must hold at least one fraction of pixels to remove")
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f < 1:
            raise ValueError(f"fractions must lie in [0, 1) (imputation needs a kept pixel), got {f!r}")
    return fractions


@torch.no_grad()
def road(model, x: torch.Tensor, saliency, target: Target = None, order: str = "morf",
         fractions: Sequence[float] = DEFAULT_FRACTIONS, noise: float = 0.01, seed: int = 0,
         batch_size: int | None = None, progress: bool | None = None) -> dict:
    """ROAD (see the module docstring): impute the ``fractions`` of pixels ranked first by
    ``saliency`` [N, H, W] (``order``: "morf" or "lerf"; ties by pixel index) and classify.

    ``target``: any target (:mod:`xai_lab.targets`; None: the predicted class). Returns ``score``
    [N, F] (on the imputed image: a class index's logit, a target object's own score), and for a
    target that is one class per image ``correct`` [N, F] (bool: the imputed image is still
    classified as that class) and ``accuracy`` [F] (its mean over images: the paper's curve);
    also ``fractions``, ``target`` [N] (the class per image, -1 for none), ``explained`` (the
    bound target), ``order`` and ``higher_is_better`` (False for MoRF, True for LeRF). Noise: one
    seeded generator, images in order, fractions in order for each image. The N * F imputed
    images go through the model ``batch_size`` at a time (None: 4 on a CPU, 64 elsewhere; :func:`~xai_lab.ops.forward_batch_size`).
    """
    model, classifier, x = checked_model_and_input(model, x)
    saliency = checked_maps(saliency, x)
    batch_size = forward_batch_size(batch_size, x.device, accelerator=64)
    fractions = _check_fractions(fractions)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    orders = ranking(saliency, order).cpu()
    hw = x.shape[-2] * x.shape[-1]
    counts = [round(f * hw) for f in fractions]
    generator = torch.Generator().manual_seed(seed)

    def imputed() -> Iterator[torch.Tensor]:
        for i in range(x.shape[0]):
            for count in counts:
                mask = torch.zeros(hw, dtype=torch.bool)
                mask[orders[i, :count]] = True
                yield noisy_linear_imputation(x[i], mask.view(x.shape[-2:]), noise, generator)

    with eval_mode(model):
        bound = bound_target(target, model(x), classifier)
        logits = logits_in_batches(model, imputed(), x.shape[0] * len(counts), batch_size,
                                   show_progress(progress), desc=f"ROAD {order}")
    rows = image_of_rows(x.shape[0], len(counts), logits.device)
    out = {"score": logit_or_own_score(bound).scores(logits, images=rows).view(x.shape[0], -1).cpu()}
    if bound.single_class:
        classes = bound.explained_classes.to(logits.device)
        correct = (logits.argmax(1) == classes[rows]).view(x.shape[0], -1).cpu()
        out.update(correct=correct, accuracy=correct.double().mean(0))
    return {**out, "fractions": torch.tensor(fractions, dtype=torch.float64),
            "target": bound.explained_classes.cpu(), "explained": bound, "order": order,
            "higher_is_better": order == "lerf"}


#: Quantus' convention: a metric declares which values are better. ROAD's accuracy curve is
#: better low when the most relevant pixels go first and better high when the least relevant do.
road.higher_is_better = {"morf": False, "lerf": True}

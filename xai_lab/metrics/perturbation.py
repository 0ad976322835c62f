"""Faithfulness by perturbation: remove pixels in the order a map ranks them and watch the
model's output.

* ``pixel_perturbation``: for the k % most (MoRF) or least (LeRF) salient pixels replaced,
  AFOC = |p_k - p| / p (target probability; the measure of Srinivas & Fleuret 2019, FullGrad),
  and the two measures the FullGrad reproducibility study added: KL(P_k || P) over the softmax
  (class-agnostic: it is the same whichever class the map explains) and PCUO = |z_k - z| / |z|
  (target logit; the denominator here is the absolute clean logit), also averaged over the
  ``runner_up`` classes ranked next after the target by the clean logits, as the study does:
  PCUO_R = (1/R) sum_{j in R} |z_j(x_k) - z_j(x)| / |z_j(x)|.
* ``deletion_auc`` / ``insertion_auc`` (Petsiuk et al. 2018, RISE): the target probability as
  pixels are deleted towards a baseline, or inserted into a blurred image, most salient first;
  the normalized area under that curve (trapezoid rule over the fraction 0..1).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..models import unwrap
from ..ops import baseline_image, check_input, eval_mode
from ..targets import resolve_targets

DEFAULT_FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def ranking(saliency: torch.Tensor, order: str = "morf") -> torch.Tensor:
    """Pixel indices [N, H*W] from first to last removed: most salient first (``"morf"``) or
    least salient first (``"lerf"``). Ties are broken by pixel index (stable sort)."""
    if order not in ("morf", "lerf"):
        raise ValueError("order must be 'morf' (most relevant first) or 'lerf' (least relevant first)")
    flat = saliency.flatten(1)
    return torch.sort(flat, dim=1, descending=order == "morf", stable=True).indices


def perturbed_batch(x: torch.Tensor, base: torch.Tensor, order_idx: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """For one image x [C, H, W]: a batch [len(counts), C, H, W] where copy j has its first
    ``counts[j]`` pixels of ``order_idx`` replaced by ``base``."""
    c, h, w = x.shape
    position = torch.empty_like(order_idx)
    position[order_idx] = torch.arange(order_idx.numel(), device=order_idx.device)
    masks = position[None, :] < torch.as_tensor(counts, device=x.device)[:, None]          # [F, H*W]
    masks = masks.view(-1, 1, h, w)
    return torch.where(masks, base[None], x[None])


def _check(model_or_classifier, x, saliency, target):
    model, classifier = unwrap(model_or_classifier)
    x = check_input(x).to(next(model.parameters()).device)
    saliency = torch.as_tensor(saliency)
    if saliency.dim() == 2:
        saliency = saliency[None]
    if saliency.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"saliency must be [N, H, W] = {[x.shape[0], *x.shape[-2:]]}, got {list(saliency.shape)}")
    return model, classifier, x, saliency.to(x.device)


@torch.no_grad()
def pixel_perturbation(model, x: torch.Tensor, saliency, target=None, order: str = "morf",
                       baseline: str | float | torch.Tensor = "black", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                       runner_up: int = 10) -> dict:
    """Remove the ``fractions`` of pixels ranked first by ``saliency`` (MoRF or LeRF) and return,
    per image and fraction, ``afoc``, ``kl``, ``pcuo`` and ``pcuo_runner_up`` ([N, F] tensors),
    plus ``fractions``, ``probability`` (p_k), ``target`` and ``runner_up_classes`` ([N, R]: the
    R = min(``runner_up``, classes - 1) classes with the largest clean logits after the target,
    in order). A clean logit of exactly 0 makes its PCUO undefined (inf or nan), which is returned
    as such. All fractions of one image go through the model as one batch."""
    model, classifier, x, saliency = _check(model, x, saliency, target)
    if any(not 0 <= f <= 1 for f in fractions):
        raise ValueError("fractions must lie in [0, 1]")
    if isinstance(runner_up, bool) or not isinstance(runner_up, int) or runner_up < 1:
        raise ValueError(f"runner_up must be a positive integer, got {runner_up!r}")
    hw = x.shape[-2] * x.shape[-1]
    counts = [round(f * hw) for f in fractions]
    base = baseline_image(x, baseline, classifier)
    out = {k: [] for k in ("afoc", "kl", "pcuo", "pcuo_runner_up", "probability", "runner_up_classes")}
    with eval_mode(model):
        logits0 = model(x)
        targets = resolve_targets(target, logits0)
        n_classes = logits0.shape[1]
        if n_classes < 2:
            raise ValueError("pcuo_runner_up needs a model with at least two classes")
        r = min(runner_up, n_classes - 1)
        for i in range(x.shape[0]):
            batch = perturbed_batch(x[i], base[i], ranking(saliency[i:i + 1], order)[0], counts)
            z = model(batch)
            t = targets[i]
            p, q = torch.log_softmax(z, 1), torch.log_softmax(logits0[i:i + 1], 1)
            p0 = q[0, t].exp()
            out["probability"].append(p[:, t].exp())
            out["afoc"].append((p[:, t].exp() - p0).abs() / p0)
            out["kl"].append((p.exp() * (p - q)).sum(1))
            out["pcuo"].append((z[:, t] - logits0[i, t]).abs() / logits0[i, t].abs())
            others = logits0[i].clone()
            others[t] = -torch.inf
            runners = others.topk(r).indices
            z0 = logits0[i, runners]
            out["pcuo_runner_up"].append(((z[:, runners] - z0).abs() / z0.abs()).mean(1))
            out["runner_up_classes"].append(runners)
    result = {k: torch.stack(v).cpu() for k, v in out.items()}
    result.update(fractions=torch.tensor(list(fractions)), target=targets.cpu(), order=order)
    return result


def _curve(model, x, saliency, target, order, start, end, step, batch_size):
    """Target probability while pixels move from ``start`` to ``end`` images in saliency order."""
    model, classifier, x, saliency = _check(model, x, saliency, target)
    hw = x.shape[-2] * x.shape[-1]
    counts = list(range(0, hw, step)) + [hw]
    curves = []
    with torch.no_grad(), eval_mode(model):
        targets = resolve_targets(target, model(x))
        s = start(x, classifier)
        e = end(x, classifier)
        for i in range(x.shape[0]):
            idx = ranking(saliency[i:i + 1], order)[0]
            probs = []
            for j in range(0, len(counts), batch_size):
                batch = perturbed_batch(s[i], e[i], idx, counts[j:j + batch_size])
                probs.append(torch.softmax(model(batch), 1)[:, targets[i]])
            curves.append(torch.cat(probs))
    fractions = torch.tensor(counts, dtype=torch.float32) / hw
    curves = torch.stack(curves).cpu()
    auc = torch.trapezoid(curves, fractions, dim=1)
    return {"auc": auc, "curve": curves, "fractions": fractions, "target": targets.cpu()}


def deletion_auc(model, x, saliency, target=None, baseline: str | float = "black", step: int = 224 * 8,
                 batch_size: int = 64) -> dict:
    """Deletion (Petsiuk et al. 2018): replace the most salient pixels by ``baseline``, ``step``
    pixels at a time; ``auc`` [N] of the target probability over the deleted fraction (lower is better)."""
    return _curve(model, x, saliency, target, "morf", lambda x, c: x, lambda x, c: baseline_image(x, baseline, c),
                  step, batch_size)


def insertion_auc(model, x, saliency, target=None, start: str | float = "blur", step: int = 224 * 8,
                  batch_size: int = 64) -> dict:
    """Insertion (Petsiuk et al. 2018): start from a blurred image and put the most salient pixels
    back first; ``auc`` [N] of the target probability over the inserted fraction (higher is better)."""
    return _curve(model, x, saliency, target, "morf", lambda x, c: baseline_image(x, start, c), lambda x, c: x,
                  step, batch_size)

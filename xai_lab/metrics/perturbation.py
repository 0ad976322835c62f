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

Targets (:mod:`xai_lab.targets`): a plain class index (or None, the predicted class) is read
through its probability, as the papers do; a target object (``Contrast(a, b)``,
``Probability(c)``, ``Logit(c)``, ``Labels``, ``Sigmoid()``, a callable) through its own score
(:func:`~xai_lab.targets.perturbation_score`).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..models import unwrap
from ..ops import baseline_image, check_input, eval_mode, forward_batch_size
from ..targets import Target, bind_to_logits, labels_to_indices, perturbation_score

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
    target = labels_to_indices(target, classifier.categories if classifier is not None else None)
    return model, classifier, x, saliency.to(x.device), target


@torch.no_grad()
def pixel_perturbation(model, x: torch.Tensor, saliency, target: Target = None, order: str = "morf",
                       baseline: str | float | torch.Tensor = "black", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                       runner_up: int = 10) -> dict:
    """Remove the ``fractions`` of pixels ranked first by ``saliency`` (MoRF or LeRF) and return,
    per image and fraction ([N, F] tensors): ``score`` s_k, the target's score (a plain class
    index: its probability p_k), ``afoc`` = |s_k - s| / |s| (for a class index the AFOC of the
    FullGrad paper, |p_k - p| / p) and ``kl``; then, for a target that is one class per image (a
    class index, ``Logit``, ``Probability``), ``probability`` (p_k), ``pcuo`` and
    ``pcuo_runner_up``, and ``runner_up_classes`` ([N, R]: the R = min(``runner_up``, classes - 1)
    classes with the largest clean logits after the target, in order); these four are left out
    for other targets (a contrast, several labels, a sigmoid, a callable have no one class). Also
    ``fractions``, ``target`` (the class per image, -1 for none) and ``explained`` (the bound
    target). A clean score of exactly 0 makes its AFOC or PCUO undefined (inf or nan), which is
    returned as such. All fractions of one image go through the model as one batch."""
    model, classifier, x, saliency, target = _check(model, x, saliency, target)
    if any(not 0 <= f <= 1 for f in fractions):
        raise ValueError("fractions must lie in [0, 1]")
    if isinstance(runner_up, bool) or not isinstance(runner_up, int) or runner_up < 1:
        raise ValueError(f"runner_up must be a positive integer, got {runner_up!r}")
    hw = x.shape[-2] * x.shape[-1]
    counts = [round(f * hw) for f in fractions]
    base = baseline_image(x, baseline, classifier)
    with eval_mode(model):
        logits0 = model(x)
        bound = bind_to_logits(target, logits0)
        explained = perturbation_score(bound)
        per_class = bound.single_class
        if per_class and logits0.shape[1] < 2:
            raise ValueError("pcuo_runner_up needs a model with at least two classes")
        out = {k: [] for k in ("score", "afoc", "kl")}
        if per_class:
            out.update({k: [] for k in ("pcuo", "pcuo_runner_up", "probability", "runner_up_classes")})
        for i in range(x.shape[0]):
            z = model(perturbed_batch(x[i], base[i], ranking(saliency[i:i + 1], order)[0], counts))
            s, s0 = explained.scores(z, images=i), explained.scores(logits0[i:i + 1], images=i)
            p, q = torch.log_softmax(z, 1), torch.log_softmax(logits0[i:i + 1], 1)
            out["score"].append(s)
            out["afoc"].append((s - s0).abs() / s0.abs())
            out["kl"].append((p.exp() * (p - q)).sum(1))
            if per_class:
                _class_measures(out, z, logits0[i], int(bound.explained_classes[i]), p,
                                min(runner_up, logits0.shape[1] - 1))
    result = {k: torch.stack(v).cpu() for k, v in out.items()}
    result.update(fractions=torch.tensor(list(fractions)), target=bound.explained_classes.cpu(), order=order,
                  explained=bound)
    return result


def _class_measures(out: dict, z: torch.Tensor, clean: torch.Tensor, t: int, log_p: torch.Tensor, r: int) -> None:
    """Append p_k, PCUO and PCUO over the ``r`` runner-up classes of class ``t`` for one image."""
    out["probability"].append(log_p[:, t].exp())
    out["pcuo"].append((z[:, t] - clean[t]).abs() / clean[t].abs())
    others = clean.clone()
    others[t] = -torch.inf
    runners = others.topk(r).indices
    z0 = clean[runners]
    out["pcuo_runner_up"].append(((z[:, runners] - z0).abs() / z0.abs()).mean(1))
    out["runner_up_classes"].append(runners)


def _curve(model, x, saliency, target, order, start, end, step, batch_size):
    """The target's score (:func:`~xai_lab.targets.perturbation_score`) while pixels move from
    ``start`` to ``end`` images in saliency order."""
    model, classifier, x, saliency, target = _check(model, x, saliency, target)
    batch_size = forward_batch_size(batch_size, x.device, accelerator=64)
    hw = x.shape[-2] * x.shape[-1]
    counts = list(range(0, hw, step)) + [hw]
    curves = []
    with torch.no_grad(), eval_mode(model):
        bound = bind_to_logits(target, model(x))
        explained = perturbation_score(bound)
        s = start(x, classifier)
        e = end(x, classifier)
        for i in range(x.shape[0]):
            idx = ranking(saliency[i:i + 1], order)[0]
            scores = []
            for j in range(0, len(counts), batch_size):
                batch = perturbed_batch(s[i], e[i], idx, counts[j:j + batch_size])
                scores.append(explained.scores(model(batch), images=i))
            curves.append(torch.cat(scores))
    fractions = torch.tensor(counts, dtype=torch.float32) / hw
    curves = torch.stack(curves).cpu()
    auc = torch.trapezoid(curves, fractions, dim=1)
    return {"auc": auc, "curve": curves, "fractions": fractions, "target": bound.explained_classes.cpu(),
            "explained": bound}


def deletion_auc(model, x, saliency, target: Target = None, baseline: str | float = "black", step: int = 224 * 8,
                 batch_size: int | None = None) -> dict:
    """Deletion (Petsiuk et al. 2018): replace the most salient pixels by ``baseline``, ``step``
    pixels at a time; ``auc`` [N] of the target's score (a class index: its probability) over the
    deleted fraction (lower is better). Also ``curve``, ``fractions``, ``target``, ``explained``.
    ``batch_size`` images per forward pass (None: 4 on a CPU, 64 elsewhere; :func:`~xai_lab.ops.forward_batch_size`)."""
    return _curve(model, x, saliency, target, "morf", lambda x, c: x, lambda x, c: baseline_image(x, baseline, c),
                  step, batch_size)


def insertion_auc(model, x, saliency, target: Target = None, start: str | float = "blur", step: int = 224 * 8,
                  batch_size: int | None = None) -> dict:
    """Insertion (Petsiuk et al. 2018): start from a blurred image and put the most salient pixels
    back first; ``auc`` [N] of the target's score (a class index: its probability) over the
    inserted fraction (higher is better). Also ``curve``, ``fractions``, ``target``, ``explained``.
    ``batch_size`` images per forward pass (None: 4 on a CPU, 64 elsewhere; :func:`~xai_lab.ops.forward_batch_size`)."""
    return _curve(model, x, saliency, target, "morf", lambda x, c: baseline_image(x, start, c), lambda x, c: x,
                  step, batch_size)

"""Occlusion (Zeiler & Fergus 2014): slide a patch over the image and record how much the target
output drops. Also the shared loop that evaluates masked copies of the input in batches."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from ..context import Context, Result
from ..ops import baseline_image, check_positive, copies_fitting, forward_batch_size
from ..registry import register

OUTPUTS = ("probability", "logit")


def target_output(ctx: Context, logits: torch.Tensor, copies: int = 1, output: str | None = None) -> torch.Tensor:
    """The score a perturbation method reads, for a batch laid out as ``copies`` consecutive
    (perturbed) copies of the N images, through ``ctx.scores``: ``output=None`` -> a plain class
    index's probability or a target object's own score; ``"probability"`` / ``"logit"`` -> that
    output of the target class (:func:`~xai_lab.targets.perturbation_score`). With a predicted
    class the classes are those predicted on the clean input (``copies=0``: ``logits`` are the
    clean input's own, which then fix them at no extra pass)."""
    if output is not None and output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS} or None (the target's own score), got {output!r}")
    if copies == 0:
        return ctx.scores(logits, output=output)
    if copies == 1:  # ctx.scores reads repeats=1 as the clean input: pass the copy twice
        return ctx.scores(torch.cat([logits, logits]), repeats=2, output=output)[: logits.shape[0]]
    return ctx.scores(logits, repeats=copies, output=output)


@torch.no_grad()
def masked_batches(ctx: Context, n_masks: int, make_masks: Callable[[torch.Tensor], torch.Tensor],
                   fill: torch.Tensor | None = None, batch_size: int = 64, output: str | None = None,
                   desc: str = "") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluate ``x_j * m_i + fill_j * (1 - m_i)`` for every mask i and image j, a few masks at a
    time; yields (masks [k, 1 or 3, H, W], target outputs [k, N]) in mask order.

    ``make_masks(indices)`` builds the masks (1 keeps a pixel) for those indices, so only one batch
    of masks is in memory. ``fill``: [N or 1, 3, H or 1, W or 1] in model-input units, None for 0.
    Each forward pass holds ``copies_fitting(batch_size, N)`` masks times the N images."""
    check_positive("batch_size", batch_size, integer=True)
    n, x = ctx.n, ctx.x
    for start, k in ctx.batches(n_masks, copies_fitting(batch_size, n), desc):
        masks = make_masks(torch.arange(start, start + k, device=x.device))
        batch = x[None] * masks[:, None]
        if fill is not None:
            batch = batch + fill[None] * (1 - masks[:, None])
        yield masks, target_output(ctx, ctx.forward(batch.flatten(0, 1)), k, output).view(k, n)


def window_cover(size: int, window: int, stride: int, device=None) -> torch.Tensor:
    """[positions, size] 0/1: which pixels each window position covers along one axis. Windows
    start at 0, stride, ...: ceil((size - window) / stride) + 1 of them, the last one clipped at
    the border (as captum's ``Occlusion``)."""
    if not 1 <= window <= size:
        raise ValueError(f"window must be between 1 and the image side {size}, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be between 1 and window={window} so every pixel is covered, got {stride}")
    starts = torch.arange(math.ceil((size - window) / stride) + 1, device=device) * stride
    pixels = torch.arange(size, device=device)
    return ((pixels >= starts[:, None]) & (pixels < starts[:, None] + window)).float()


@register("occlusion", family="perturbation")
def occlusion(ctx: Context, window: int = 16, stride: int = 8, baseline: str | float = "zero", sigma: float = 5.0,
              batch_size: int | None = None, output: str | None = None) -> Result:
    """Occlusion (Zeiler & Fergus 2014): a ``window`` x ``window`` patch (all channels) set to the
    ``baseline`` slides with ``stride``; each pixel gets the mean over the windows covering it of
    f(x) - f(x with the window occluded), f = the target's score: for a plain class index its
    probability (``output=None`` or ``"probability"``, the paper's) or its logit (``"logit"``); for
    a target object (:mod:`xai_lab.targets`: a contrast, a probability, ...) its own score
    (``output`` then left unset, or naming that same score).

    ``baseline``: a name of :func:`~xai_lab.ops.baseline_image` (``"zero"``, ``"black"``,
    ``"mean"``, ``"blur"`` with std ``sigma`` pixels) or a number in model-input units. Same windows,
    clipping and averaging as captum's ``Occlusion`` with ``sliding_window_shapes=(3, window,
    window)``. One forward pass per window position plus the clean one; ``batch_size`` images
    (at least N) per forward pass (None: 4 on a CPU, 64 elsewhere; :func:`~xai_lab.ops.forward_batch_size`).
    ``extras["windows"]``: window positions (rows, columns).
    """
    check_positive("window", window, integer=True)
    check_positive("stride", stride, integer=True)
    check_positive("sigma", sigma)
    batch_size = forward_batch_size(batch_size, ctx.device, accelerator=64)
    h, w = ctx.x.shape[-2:]
    rows = window_cover(h, window, stride, ctx.device).to(ctx.x.dtype)
    cols = window_cover(w, window, stride, ctx.device).to(ctx.x.dtype)
    n_rows, n_cols = rows.shape[0], cols.shape[0]
    fill = baseline_image(ctx.x, baseline, ctx.classifier, sigma)
    with torch.no_grad():
        clean = target_output(ctx, ctx.forward(ctx.x), 0, output)

    def masks(idx):
        covered = rows[idx // n_cols][:, :, None] * cols[idx % n_cols][:, None, :]
        return (1 - covered)[:, None]

    batches = masked_batches(ctx, n_rows * n_cols, masks, fill, batch_size, output, "occlusion")
    occluded = torch.cat([out for _, out in batches])
    drop = (clean[None] - occluded).T.reshape(ctx.n, n_rows, n_cols)
    total = torch.einsum("ah,nab,bw->nhw", rows, drop, cols)
    count = rows.sum(0)[:, None] * cols.sum(0)[None, :]
    return Result(saliency=total / count, extras={"windows": (n_rows, n_cols)})

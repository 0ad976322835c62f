"""Maps built from the gradient of the target score with respect to the input pixels."""
from __future__ import annotations

import torch

from ..context import Context, Result
from ..ops import baseline_image, check_positive, copies_per_pass
from ..registry import register


def input_gradient(ctx: Context, inputs: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """d(target logit)/d(input) for a batch of ``repeats`` consecutive copies of the N images
    (``inputs`` [repeats*N, 3, H, W]); one forward and one backward pass per copy."""
    inputs = inputs.detach().requires_grad_(True)
    logits = ctx.forward(inputs)
    (grad,) = ctx.grad(ctx.scores(logits, repeats), inputs)
    return grad


def _gradients_in_batches(ctx: Context, make_inputs, total: int, batch_size: int, desc: str):
    """Yield the input gradient of ``total`` copies of the batch, ``batch_size`` copies at a time
    (``make_inputs(start, k)`` builds copies start..start+k-1)."""
    for start, k in ctx.batches(total, batch_size, desc):
        yield input_gradient(ctx, make_inputs(start, k), repeats=k)


@register("saliency", family="gradient")
def saliency(ctx: Context, abs: bool = True) -> Result:
    """Saliency map (Simonyan et al. 2014): max over channels of |d y_c / d x|.

    ``abs=False`` keeps the sign and takes the channel with the largest magnitude."""
    grad = input_gradient(ctx, ctx.x)
    if abs:
        return Result(saliency=grad.abs().amax(dim=1))
    idx = grad.abs().argmax(dim=1, keepdim=True)
    return Result(saliency=grad.gather(1, idx)[:, 0])


@register("input_x_gradient", family="gradient")
def input_x_gradient(ctx: Context) -> Result:
    """Input x gradient (Shrikumar et al. 2016): sum over channels of x * d y_c / d x."""
    grad = input_gradient(ctx, ctx.x)
    return Result(saliency=(ctx.x * grad).sum(dim=1))


@register("smoothgrad", family="gradient")
def smoothgrad(ctx: Context, n_samples: int = 25, noise: float = 0.15, batch_size: int | None = None,
               magnitude: bool = True) -> Result:
    """SmoothGrad (Smilkov et al. 2017): mean of the gradient over ``n_samples`` copies of x with
    Gaussian noise of std ``noise * (max(x) - min(x))`` per image; map = max over channels of
    |mean gradient|. ``magnitude=False`` keeps the sign (channel sum). ``batch_size``: copies of
    the batch per forward and backward pass (None: about 4 images a pass on a CPU, 16 copies
    elsewhere; :func:`~xai_lab.ops.copies_per_pass`; the map does not depend on it beyond float
    rounding)."""
    check_positive("n_samples", n_samples, integer=True)
    check_positive("noise", noise, allow_zero=True)
    batch_size = copies_per_pass(batch_size, ctx.n, ctx.device, accelerator=16)
    n = ctx.n
    x = ctx.x
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(n, 1, 1, 1)
    sigma = noise * span

    def noisy(start, k):
        eps = torch.randn((k * n,) + x.shape[1:], generator=ctx.generator, device=x.device, dtype=x.dtype)
        return x.repeat(k, 1, 1, 1) + eps * sigma.repeat(k, 1, 1, 1)

    total = torch.zeros_like(x)
    for grad in _gradients_in_batches(ctx, noisy, n_samples, batch_size, "smoothgrad"):
        total += grad.view(-1, *x.shape).sum(0)
    mean = total / n_samples
    saliency = mean.abs().amax(dim=1) if magnitude else mean.sum(dim=1)
    return Result(saliency=saliency, extras={"gradient": mean})


@register("integrated_gradients", family="gradient")
def integrated_gradients(ctx: Context, baseline: float | torch.Tensor | str = 0.0, steps: int = 50,
                         batch_size: int | None = None) -> Result:
    """Integrated gradients (Sundararajan et al. 2017): (x - x') * integral_0^1 dy/dx(x' + a(x - x')) da,
    Gauss-Legendre quadrature with ``steps`` points (as captum's default), summed over channels.

    ``baseline``: a number or tensor in model-input units, or a name of
    :func:`~xai_lab.ops.baseline_image` (``"black"``: pixel 0 under the classifier's input
    scaling; ``"zero"``, ``"mean"``, ``"blur"``). ``extras["delta"]``: completeness gap sum(IG) - (y(x) - y(x')).
    ``batch_size``: copies of the batch per forward and backward pass (None: about 4 images a pass
    on a CPU, 16 copies elsewhere; :func:`~xai_lab.ops.copies_per_pass`; the map does not depend
    on it beyond float rounding)."""
    import numpy as np

    check_positive("steps", steps, integer=True)
    batch_size = copies_per_pass(batch_size, ctx.n, ctx.device, accelerator=16)
    x = ctx.x
    base = baseline_image(x, baseline if isinstance(baseline, (str, int, float)) else
                          torch.as_tensor(baseline, dtype=x.dtype, device=x.device), ctx.classifier)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.tensor((nodes + 1) / 2, dtype=x.dtype, device=x.device)
    weights = torch.tensor(weights / 2, dtype=x.dtype, device=x.device)

    def scaled(start, k):
        a = alphas[start:start + k].repeat_interleave(ctx.n).view(-1, 1, 1, 1)
        return base.repeat(k, 1, 1, 1) + a * (x - base).repeat(k, 1, 1, 1)

    total = torch.zeros_like(x)
    done = 0
    for grad in _gradients_in_batches(ctx, scaled, steps, batch_size, "integrated gradients"):
        k = grad.shape[0] // ctx.n
        total += (grad.view(k, *x.shape) * weights[done:done + k].view(k, 1, 1, 1, 1)).sum(0)
        done += k
    attribution = (x - base) * total
    with torch.no_grad():
        gap = ctx.scores(ctx.forward(x)) - ctx.scores(ctx.forward(base))
    delta = attribution.flatten(1).sum(1) - gap
    return Result(saliency=attribution.sum(dim=1), extras={"attribution": attribution, "delta": delta})

"""Shapley-value attributions against a distribution of baselines (Lundberg & Lee 2017, "A
Unified Approach to Interpreting Model Predictions").

* ``gradient_shap``: expected gradients (Erion et al. 2021), integrated gradients with the
  baseline and the point on the path both drawn at random and averaged.
* ``deep_shap``: DeepLIFT's rescale rule (Shrikumar et al. 2017) averaged over the baselines,
  through captum's ``DeepLiftShap``.

Both explain the gap between the score of x and the mean score of the baselines, and report in
``extras["delta"]`` how far the attributions' sum is from it:
``delta = sum(attribution) - (f(x) - mean_b f(b))``.
"""
from __future__ import annotations

import copy
import functools
import warnings

import torch
from torch import nn

from ..context import Context, Result
from ..ops import check_positive, copies_per_pass, gaussian_blur
from ..registry import register
from ..targets import Logit, Probability
from .gradients import input_gradient

#: Default baseline distribution: blurred copies of each image (sigma in pixels) ...
BLUR_SIGMAS = (2.0, 5.0, 10.0)
#: ... and noisy copies x + level * std(x) * N(0, 1), std(x) over each image's values.
NOISE_LEVELS = (0.25, 0.5, 1.0)


def default_baselines(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The baselines [B, N, 3, H, W] of a batch x [N, 3, H, W]: ``len(BLUR_SIGMAS)`` blurred and
    ``len(NOISE_LEVELS)`` noisy copies of every image (noise drawn from ``generator``)."""
    blurred = [gaussian_blur(x, sigma) for sigma in BLUR_SIGMAS]
    std = x.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    noisy = [x + level * std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
             for level in NOISE_LEVELS]
    return torch.stack(blurred + noisy)


def _baselines(ctx: Context, baselines) -> torch.Tensor:
    """[B, M, 3, H, W] with M = N (one distribution per image) or M = 1 (shared by all images)."""
    if baselines is None:
        return default_baselines(ctx.x, ctx.generator)
    base = torch.as_tensor(baselines).to(ctx.x)
    if base.dim() == 3:
        base = base[None]
    if base.dim() != 4 or base.shape[1:] != ctx.x.shape[1:]:
        raise ValueError(f"baselines must have shape [B, {', '.join(map(str, ctx.x.shape[1:]))}] "
                         f"(B reference images, like the input), got {list(base.shape)}")
    return base[:, None]


@torch.no_grad()
def _baseline_scores(ctx: Context, base: torch.Tensor) -> torch.Tensor:
    """Target score of every baseline for every image: [B, N] (one forward pass per baseline)."""
    _ = ctx.target  # bound on the clean input before any baseline is scored
    scores = []
    for b in base:
        scores.append(ctx.scores(ctx.forward(b).expand(ctx.n, -1)))
    return torch.stack(scores)


def _draws(values, n: int, n_samples: int, name: str, dtype) -> torch.Tensor | None:
    """An explicit option of shape [n_samples] (same for every image) or [N, n_samples] -> [N, n_samples]."""
    if values is None:
        return None
    if isinstance(values, (str, bool, dict)):
        raise TypeError(f"{name} must be numbers of shape [n_samples] or [N, n_samples], got {values!r}")
    t = torch.as_tensor(values)
    if t.dtype == torch.bool or not torch.isfinite(t.double()).all():
        raise ValueError(f"{name} must hold finite numbers")
    if not dtype.is_floating_point and t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError(f"{name} must hold whole numbers (indices)")
    t = t.to(dtype)
    if t.dim() == 1:
        t = t[None].expand(n, -1)
    if t.shape != (n, n_samples):
        raise ValueError(f"{name} must have shape [n_samples] or [N, n_samples] = [{n}, {n_samples}], got {list(t.shape)}")
    return t


@register("gradient_shap", family="gradient")
def gradient_shap(ctx: Context, n_samples: int = 32, baselines: torch.Tensor | None = None, stdevs: float = 0.0,
                  batch_size: int | None = None, alphas=None, baseline_index=None) -> Result:
    """GradientSHAP / expected gradients (Lundberg & Lee 2017; Erion et al. 2021):
    phi = 1/n sum_i (x_i - b_i) * dy/dx(a_i x_i + (1 - a_i) b_i), b_i drawn from the baselines,
    a_i ~ U(0, 1), x_i = x + N(0, stdevs^2) (x itself for ``stdevs=0``); map = channel sum.

    ``baselines``: tensor [B, 3, H, W] shared by all images; default: per image, blurred
    copies (``BLUR_SIGMAS``) and noisy copies (``NOISE_LEVELS``). ``alphas`` / ``baseline_index``
    ([n_samples] or [N, n_samples]) fix the draws instead of the seeded generator. In
    expectation sum(phi) = f(x) - mean_b f(b); ``extras["delta"]`` is the gap, which shrinks
    like 1/sqrt(n_samples). ``batch_size`` (copies of the batch per pass; None: about 4 images a
    pass on a CPU, 16 copies elsewhere, :func:`~xai_lab.ops.copies_per_pass`) changes results only
    by rounding; captum's ``GradientShap`` is reproduced exactly with batch_size >= n_samples."""
    check_positive("n_samples", n_samples, integer=True)
    check_positive("stdevs", stdevs, allow_zero=True)
    x, n = ctx.x, ctx.n
    batch_size = copies_per_pass(batch_size, n, ctx.device, accelerator=16)
    base = _baselines(ctx, baselines)
    n_base = base.shape[0]
    with torch.no_grad():
        fx = ctx.scores(ctx.forward(x))
    fb = _baseline_scores(ctx, base)

    index = _draws(baseline_index, n, n_samples, "baseline_index", torch.long)
    if index is None:
        index = torch.randint(n_base, (n, n_samples), generator=ctx.generator, device=x.device)
    elif index.min() < 0 or index.max() >= n_base:
        raise ValueError(f"baseline_index must lie in [0, {n_base}) for {n_base} baselines")
    index = index.to(x.device)
    alpha = _draws(alphas, n, n_samples, "alphas", x.dtype)
    if alpha is None:
        alpha = torch.rand((n, n_samples), generator=ctx.generator, device=x.device, dtype=x.dtype)
    alpha = alpha.to(x.device)

    images = torch.arange(n, device=x.device) if base.shape[1] == n else torch.zeros(n, dtype=torch.long, device=x.device)
    total = torch.zeros_like(x)
    for start, k in ctx.batches(n_samples, batch_size, desc="gradient shap"):
        b = base[index[:, start:start + k].T, images]                     # [k, N, 3, H, W]
        a = alpha[:, start:start + k].T.reshape(k, n, 1, 1, 1)
        end = x.expand(k, *x.shape)
        if stdevs > 0:
            end = end + stdevs * torch.randn(end.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        grad = input_gradient(ctx, (a * end + (1 - a) * b).reshape(k * n, *x.shape[1:]), repeats=k)
        total += ((end - b) * grad.view(k, *x.shape)).sum(0)
    attribution = total / n_samples
    delta = attribution.flatten(1).sum(1) - (fx - fb.mean(0))
    return Result(saliency=attribution.sum(dim=1), extras={"attribution": attribution, "delta": delta})


#: Elementwise activations that captum's DeepLift does not list and would treat as linear.
_ELEMENTWISE = (nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Mish)


def _rescale_multipliers(inputs: torch.Tensor, outputs: torch.Tensor, grad_input: torch.Tensor,
                         grad_output: torch.Tensor, eps: float) -> torch.Tensor:
    """DeepLIFT rescale rule for an elementwise activation g: the gradient through it becomes
    grad_output * (g(z) - g(z_ref)) / (z - z_ref); the plain gradient where |z - z_ref| < eps.
    ``inputs``/``outputs`` hold the inputs' batch and then the references' batch; both halves
    share one ratio, computed once (on half the elements, with no concatenated copies: this
    arithmetic runs on every activation of the network and dominated deep_shap's time)."""
    z, z_ref = inputs.chunk(2)
    y, y_ref = outputs.chunk(2)
    d_in = z - z_ref
    ratio = (y - y_ref).div_(d_in)
    small = d_in.abs_() < eps
    halves = (2, z.shape[0])
    rescaled = grad_output.unflatten(0, halves) * ratio
    return torch.where(small, grad_input.unflatten(0, halves), rescaled).flatten(0, 1)


@functools.cache
def _deep_lift_shap_class():
    try:
        from captum.attr import DeepLiftShap
    except ImportError as exc:
        raise ImportError("deep_shap wraps captum's DeepLiftShap: pip install captum "
                          "(or pip install 'xai_lab[methods]')") from exc

    class RescaleDeepLiftShap(DeepLiftShap):
        """captum's DeepLiftShap, with the rescale rule also on ``_ELEMENTWISE`` activations
        (ReLU6 in EfficientNet-Lite0): captum passes the plain gradient through activations it
        does not list, and the attributions then no longer sum to f(x) - f(b)."""

        def _is_non_linear(self, module: nn.Module) -> bool:
            return type(module) in _ELEMENTWISE or super()._is_non_linear(module)

        def _backward_hook(self, module: nn.Module, grad_input, grad_output):
            if type(module) not in _ELEMENTWISE:
                return super()._backward_hook(module, grad_input, grad_output)
            if not self.satisfies_attribute_criteria(module):
                raise RuntimeError(f"DeepLIFT needs each activation module to run once per forward pass; "
                                   f"{module} runs several times (reused module)")
            multipliers = _rescale_multipliers(module.input, module.output, grad_input, grad_output, self.eps)
            del module.input
            del module.output
            return multipliers

    return RescaleDeepLiftShap


class LinearScore(nn.Module):
    """``model`` followed by the score sum_c v_c z_c of its logits z (``coefficients`` v [C]), as
    one output [M, 1]: DeepLIFT passes multipliers through a linear map unchanged, so its
    attributions of this output are those of the target score."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.coefficients: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return (logits * self.coefficients.to(logits)).sum(dim=1, keepdim=True)


def _linear_target(ctx: Context) -> torch.Tensor | None:
    """None for a target that is one class's logit (captum's ``target=c``), else the coefficients
    [N, C] of a target linear in the logits (a contrast, several labels); a target that is not
    linear in the logits (a probability, a sigmoid, a callable) raises a ``ValueError``."""
    target = ctx.target
    if isinstance(target, Logit) and not isinstance(target, Probability):
        return None
    with torch.no_grad():
        num_classes = ctx.forward(ctx.x[:1]).shape[1]
    coefficients = target.logit_weights(num_classes)
    if coefficients is None:
        raise ValueError(f"deep_shap explains scores linear in the logits (a class index, Logit, Contrast, Labels of "
                         f"logits): DeepLIFT's rules stop at the logits; got {target.name!r}")
    return coefficients.to(ctx.device)


@register("deep_shap", family="gradient")
def deep_shap(ctx: Context, baselines: torch.Tensor | None = None) -> Result:
    """DeepSHAP (Lundberg & Lee 2017): DeepLIFT rescale attributions (Shrikumar et al. 2017)
    phi(x, b) = (x - b) * m(x, b), with m the rescale multipliers, averaged over the baselines b;
    map = channel sum. Wraps captum's ``DeepLiftShap`` (with the rescale rule extended to ReLU6
    and other elementwise activations); each activation module must be used once per forward.

    A target linear in the logits (``Contrast``, ``Labels`` of logits) is explained through a
    linear output head appended to the model (:class:`LinearScore`); a probability, a sigmoid or
    a callable is not (a ``ValueError``).

    ``baselines``: tensor [B, 3, H, W], B >= 2; default as ``gradient_shap``'s. By construction
    sum(phi(x, b)) = f(x) - f(b) per baseline: ``extras["delta"]`` [N] is the gap of the average,
    sum(phi) - (f(x) - mean_b f(b)); ``extras["delta_per_baseline"]`` [N, B] captum's deltas.
    Passes per image and baseline: 2 forward + 2 backward (x and b together) + 2 forward for
    the deltas."""
    base = _baselines(ctx, baselines)
    n_base = base.shape[0]
    if n_base < 2:
        raise ValueError("deep_shap needs at least 2 baselines (captum's DeepLiftShap)")
    # captum registers its hooks on the modules themselves: explain a private copy of the model so
    # that another thread using the model meanwhile does not run them
    try:
        model = copy.deepcopy(ctx.model)
    except (TypeError, RuntimeError):  # a module that cannot be copied (e.g. it holds a lock): the model itself
        model = ctx.model
    coefficients = _linear_target(ctx)
    explainer = _deep_lift_shap_class()(model if coefficients is None else LinearScore(model))
    targets = ctx.targets
    attributions, deltas = [], []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Setting forward, backward hooks")
        for i in range(ctx.n):
            refs = base[:, i if base.shape[1] > 1 else 0]
            if coefficients is not None:
                explainer.model.coefficients = coefficients[i]
            attr, delta = explainer.attribute(ctx.x[i:i + 1].detach().clone(), refs,
                                              target=int(targets[i]) if coefficients is None else 0,
                                              return_convergence_delta=True)
            attributions.append(attr.detach())
            deltas.append(delta.detach())
    ctx.forward_images += 4 * n_base * ctx.n
    ctx.backward_images += 2 * n_base * ctx.n
    attribution = torch.cat(attributions)
    per_baseline = torch.stack(deltas)
    return Result(saliency=attribution.sum(dim=1),
                  extras={"attribution": attribution, "delta": per_baseline.mean(dim=1),
                          "delta_per_baseline": per_baseline})

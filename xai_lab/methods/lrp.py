"""Layer-wise relevance propagation (LRP; Bach et al. 2015, "On Pixel-Wise Explanations for
Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation"; Montavon et al. 2019,
"Layer-Wise Relevance Propagation: An Overview").

The target score y_c is the relevance of the output, R = y_c, and every layer hands its
relevance down to its inputs by a rule, so that (without biases) the relevance of every layer
sums to y_c. For a linear layer z_k = sum_j a_j w_jk + b_k (convolution or dense), with
contributions z_jk = a_j w_jk, s(z) = z + eps * sign(z) (sign(0) = +1), t+ = max(t, 0) and
t- = min(t, 0):

* epsilon:   R_j = sum_k z_jk / s(z_k) R_k  (eps = ``epsilon``; eps -> 0 is gradient x input)
* gamma:     for z_k > 0, R_j = sum_k (z_jk + gamma z_jk+) / s(sum_j (z_jk + gamma z_jk+) + b_k + gamma b_k+) R_k,
  for z_k < 0 the same with z_jk- and b_k- (Montavon et al. 2019, generalized to signed inputs
  as in Andeol et al. 2021 and zennit's ``Gamma``)
* zplus:     R_j = sum_k z_jk+ / s(sum_j z_jk+ + b_k+) R_k  (alpha=1, beta=0)
* alpha-beta: R_j = sum_k [alpha z_jk+ / s(z_k+) - beta z_jk- / s(z_k-)] R_k,
  z_k+ = sum_j z_jk+ + b_k+, z_k- = sum_j z_jk- + b_k-, alpha - beta = 1
* flat (first layer only; Lapuschkin et al. 2019): R_i = sum_k 1 / s(#inputs of k) R_k, every
  input of output k's receptive field (padding excluded) gets an equal share
* box, z^B (first layer only; Montavon et al. 2017): with l <= x <= h the input range,
  R_i = sum_k (x_i w_ik - l_i w_ik+ - h_i w_ik-) / s(sum_i (x_i w_ik - l_i w_ik+ - h_i w_ik-)) R_k

Composites give convolutions and dense layers different rules ("epsilon-plus-flat": flat for
the first layer, zplus for the other convolutions, epsilon for dense layers; Kohlbrenner et al.
2020, "Towards Best Practice in Explaining Neural Network Predictions with LRP"). Every rule
but epsilon stabilizes with :data:`STABILIZER`.

How it is computed: the "modified gradient" form (as in zennit, whose design of rules as hooks
this follows). Every tensor t carries c_t with R_t = t * c_t; the backward pass of autograd
computes c from the output (c = 1 at the target logit, so R = y_c) to the input, and every
layer with a rule back-propagates c_in = R_in / a instead of its gradient (a custom autograd
function whose backward evaluates the rule; a first-layer rule hands back R itself). The rest
keeps its gradient, which is already LRP's rule in this form: a ReLU gives R_in = R_out, max
pooling gives all relevance to the maximum, flattening and dropout in eval mode pass it on.
Further:

* batch norm (eval mode) right after a convolution or dense layer is folded into it,
  w' = w gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta, and the rule
  applies to the folded layer (the model is never changed: the rule is computed from folded
  copies of the parameters); a batch norm elsewhere passes relevance through, R_in = R_out;
* ReLU6 and any ``nn.Hardtanh`` pass relevance through like a ReLU, R_in = R_out, also where the
  clamp is active (input above 6) and the gradient would be 0: the clamp is read as part of the
  rectifier, as zennit's ``Pass`` rule does (LRP defines no rule of its own for it);
* sums z = a + b of two activations (residual connections, written ``a + b``, ``torch.add`` or
  ``a += b``; :class:`SplitSums`) split relevance by contribution, R_a = a / s(z) R_z;
* average pooling (``AvgPool``, ``AdaptiveAvgPool``): R_j = a_j / (n s(z)) R, the same rule;
* depthwise and grouped convolutions: the rules apply per group (the folded layer is evaluated
  by the module's own forward, so padding written in ``forward`` is kept).

Where zennit differs: (1) its batch-norm canonizer folds the statistics into the layer but
leaves the batch norm with its eps, so the canonized model divides by sqrt(1 + eps) once more
per batch norm (relevance about eps / 2 smaller per batch norm); here the whole batch norm is
folded and the model's function is kept. (2) It splits a residual sum only with its
``ResNetCanonizer`` (torchvision's ResNets); other sums (EfficientNet's functional ``x + y``)
get their gradient there, which hands each summand the whole relevance. Here every sum of two
activations is split, with no canonizer. With the canonizers and eps = 0 the maps are equal.

Relevance is not conserved where biases take a share (epsilon, gamma, alpha-beta, zplus: the
bias' share b_k / s(z_k) R_k of each output stays with the bias; folded batch norms are biases),
where epsilon absorbs some (eps / s(z_k) R_k), where an output has no contribution of one sign
(alpha-beta then hands down alpha R_k or -beta R_k; zplus hands down nothing when none is
positive), and where a batch norm that follows no layer has a shift. A sum hands a negative
summand negative relevance, so zplus maps are non-negative only in networks without sums.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..capture import forward_hooks
from ..context import Context, Result
from ..ops import check_positive
from ..registry import register

#: The stabilizer of every rule except epsilon (zennit's default).
STABILIZER = 1e-6
#: Layers that get a rule: convolutions (any groups) and dense layers. Transposed convolutions
#: keep their gradient (the epsilon rule with eps = 0).
RULE_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveAvgPool3d)


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """s(z) = z + eps * sign(z), with sign(0) = +1."""
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z)


# --- a layer with (possibly folded or modified) parameters ---------------------------------------

@dataclass(frozen=True)
class Affine:
    """A convolution or dense layer ``module`` evaluated with parameters ``weight`` and ``bias``
    (the module's own, or folded with a batch norm), by the module's own ``forward``."""

    module: nn.Module
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __call__(self, a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The layer's forward on ``a`` with ``weight`` and ``bias`` instead of its parameters.
        A shallow copy with its own parameter table runs it: the module is not touched."""
        twin = copy.copy(self.module)
        twin._parameters = {**self.module._parameters, "weight": weight, "bias": bias}
        return twin.forward(a)


def folded(layer: Affine, bn: nn.modules.batchnorm._BatchNorm) -> Affine:
    """The layer followed by the batch norm ``bn`` (eval mode) as one layer: w' = w g, b' = (b - mean) g + beta,
    g = gamma / sqrt(var + eps) per output channel."""
    scale = torch.rsqrt(bn.running_var.detach() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach()
    shift = -bn.running_mean.detach() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach()
    bias = shift if layer.bias is None else layer.bias * scale + shift
    weight = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
    return Affine(layer.module, weight.to(layer.weight), bias.to(layer.weight))


# --- the rules ----------------------------------------------------------------------------------
# A hidden-layer rule maps (layer, a, z, c) to c_in, with R_in = a * c_in, from R_out = z * c.
# A first-layer rule returns the relevance R_in itself.

def _positive(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(min=0)


def _negative(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(max=0)


def _pull_back(z: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The vector-Jacobian product (dz/da)^T s."""
    (g,) = torch.autograd.grad(z, a, s, retain_graph=False)
    return g


def _split(layer: Affine, a: torch.Tensor, w_pos: torch.Tensor, w_neg: torch.Tensor, b: torch.Tensor | None,
           negative_inputs: bool) -> torch.Tensor:
    """layer(a+, w_pos, b) + layer(a-, w_neg): the sum of the contributions of one sign (negative
    inputs met by the weights ``w_neg``). Negative inputs are skipped when there are none."""
    z = layer(a.clamp(min=0), w_pos, b)
    if negative_inputs:
        z = z + layer(a.clamp(max=0), w_neg, None)
    return z


def epsilon_rule(eps: float) -> Callable:
    """LRP-epsilon: c_in = W^T [c z / s(z)] (the gradient with the output gradient scaled)."""

    def rule(layer: Affine, a: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a = a.detach().requires_grad_(True)
        return _pull_back(layer(a, layer.weight, layer.bias), a, c * z / stabilize(z, eps))

    return rule


def alpha_beta_rule(alpha: float, beta: float) -> Callable:
    """LRP-alpha-beta (alpha=1, beta=0 is zplus): positive and negative contributions, each over
    its own sum (biases b+ and b- included), weighted alpha and -beta."""

    def rule(layer: Affine, a: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        relevance = z * c
        negative_inputs = bool((a < 0).any())
        w, b = layer.weight, layer.bias
        a = a.detach().requires_grad_(True)
        z_pos = _split(layer, a, w.clamp(min=0), w.clamp(max=0), _positive(b), negative_inputs)
        out = _pull_back(z_pos, a, alpha * relevance / stabilize(z_pos, STABILIZER))
        if beta:
            z_neg = _split(layer, a, w.clamp(max=0), w.clamp(min=0), _negative(b), negative_inputs)
            out = out - _pull_back(z_neg, a, beta * relevance / stabilize(z_neg, STABILIZER))
        return out

    return rule


def gamma_rule(gamma: float) -> Callable:
    """LRP-gamma (Montavon et al. 2019), generalized to signed inputs: for z_k > 0 the positive
    contributions get weight w + gamma w+ (negative inputs: w + gamma w-), for z_k < 0 the
    negative ones are favored the same way."""

    def rule(layer: Affine, a: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        relevance = z * c
        negative_inputs = bool((a < 0).any())
        w, b = layer.weight, layer.bias
        up_pos, up_neg = w + gamma * w.clamp(min=0), w + gamma * w.clamp(max=0)
        b_pos = None if b is None else b + gamma * b.clamp(min=0)
        b_neg = None if b is None else b + gamma * b.clamp(max=0)
        a = a.detach().requires_grad_(True)
        z_pos = _split(layer, a, up_pos, up_neg, b_pos, negative_inputs)
        out = _pull_back(z_pos, a, (z > 0) * relevance / stabilize(z_pos, STABILIZER))
        if bool((z < 0).any()):
            z_neg = _split(layer, a, up_neg, up_pos, b_neg, negative_inputs)
            out = out + _pull_back(z_neg, a, (z < 0) * relevance / stabilize(z_neg, STABILIZER))
        return out

    return rule


def flat_rule(layer: Affine, a: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Flat (first layer): every input of an output's receptive field gets an equal share; returns R_in."""
    ones = torch.ones_like(a, requires_grad=True)
    z_flat = layer(ones, torch.ones_like(layer.weight), None)
    return _pull_back(z_flat, ones, z * c / stabilize(z_flat, STABILIZER))


def box_rule(low: torch.Tensor, high: torch.Tensor) -> Callable:
    """z^B (first layer), inputs bounded by ``low`` <= x <= ``high``; returns R_in."""

    def rule(layer: Affine, a: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        w, b = layer.weight, layer.bias
        x = a.detach().requires_grad_(True)
        lo = low.reshape(x.shape).detach().clone().requires_grad_(True)  # x may be a flattened view of the input
        hi = high.reshape(x.shape).detach().clone().requires_grad_(True)
        z_box = (layer(x, w, b) - layer(lo, w.clamp(min=0), _positive(b))
                 - layer(hi, w.clamp(max=0), _negative(b)))
        gx, glo, ghi = torch.autograd.grad(z_box, [x, lo, hi], z * c / stabilize(z_box, STABILIZER))
        return x * gx + lo * glo + hi * ghi

    return rule


class _RuleBackward(torch.autograd.Function):
    """Forward: the layer's output z, unchanged. Backward: ``rule(layer, a, z, c)`` for the
    incoming c, in place of the layer's gradient."""

    @staticmethod
    def forward(ctx, a, z, layer, rule):
        ctx.save_for_backward(a, z)
        ctx.layer, ctx.rule = layer, rule
        return z.clone()

    @staticmethod
    def backward(ctx, c):
        a, z = ctx.saved_tensors
        with torch.enable_grad():
            grad = ctx.rule(ctx.layer, a, z, c)
        return grad.detach(), None, None, None


def _scaled_gradient(out: torch.Tensor, source: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``out`` whose gradient with respect to ``source`` is ``scale`` times the incoming one."""
    return out.detach() + (source - source.detach()) * scale.detach()


def _pass_through(inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """An elementwise layer that passes relevance on unchanged: c_in = c out / in (0 where in = 0)."""
    ratio = torch.where(inp != 0, out / torch.where(inp != 0, inp, torch.ones_like(inp)), torch.zeros_like(inp))
    return _scaled_gradient(out, inp, ratio)


_ADDITIONS = (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__)
_IN_PLACE_ADDITIONS = (torch.Tensor.add_, torch.Tensor.__iadd__)


def _activations(args: tuple, kwargs: dict) -> bool:
    """Two tensors of one shape that both come out of earlier operations of the explained pass."""
    if kwargs or len(args) != 2 or not all(isinstance(t, torch.Tensor) for t in args):
        return False
    a, b = args
    return (a.shape == b.shape and a.is_floating_point() and b.is_floating_point()
            and a.grad_fn is not None and b.grad_fn is not None)


class SplitSums(TorchFunctionMode):
    """Within the block (in this thread only: the mode is thread-local), every sum z = a + b of two
    activations of the same shape, written ``a + b``, ``torch.add`` or ``a += b`` (torchvision's
    residual blocks), splits relevance by contribution with the stabilizer: R_a = a / s(z) R_z, so
    c_a = c_b = c_z z / s(z). The values are unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func in _ADDITIONS or func in _IN_PLACE_ADDITIONS) and _activations(args, kwargs):
            total = torch.add(*args)  # the mode is off inside its own handler
            split = _scaled_gradient(total, total, total / stabilize(total, STABILIZER))
            return args[0].copy_(split) if func in _IN_PLACE_ADDITIONS else split
        return func(*args, **kwargs)


# --- composites ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Composite:
    """Which rule each layer gets: ``first`` for the first convolution or dense layer of the
    forward pass (None: the layer's own rule; a first-layer rule returns R_in itself), ``conv``
    for convolutions, ``dense`` for dense layers."""

    first: Callable | None
    conv: Callable
    dense: Callable


#: The rule names of the ``rule`` option.
RULES = ("epsilon-plus-flat", "epsilon-plus", "epsilon-alpha2beta1", "epsilon-gamma-box", "epsilon", "gamma",
         "zplus", "alpha2beta1", "alpha1beta0")


def composite(name: str, epsilon: float, gamma: float, low: torch.Tensor | None = None,
              high: torch.Tensor | None = None) -> Composite:
    """The composite called ``name`` (one of :data:`RULES`); ``low``/``high`` bound the input for the box rule."""
    eps = epsilon_rule(epsilon)
    zplus = alpha_beta_rule(1.0, 0.0)
    single = {"epsilon": eps, "gamma": gamma_rule(gamma), "zplus": zplus, "alpha1beta0": zplus,
              "alpha2beta1": alpha_beta_rule(2.0, 1.0)}
    if name in single:
        return Composite(None, single[name], single[name])
    if name == "epsilon-plus-flat":
        return Composite(flat_rule, zplus, eps)
    if name == "epsilon-plus":
        return Composite(None, zplus, eps)
    if name == "epsilon-alpha2beta1":
        return Composite(None, single["alpha2beta1"], eps)
    if name == "epsilon-gamma-box":
        return Composite(box_rule(low, high), gamma_rule(gamma), eps)
    raise ValueError(f"rule must be one of {', '.join(RULES)}; got {name!r}")


def _check_rule(rule) -> None:
    if not isinstance(rule, str):
        raise TypeError(f"rule must be a name (one of {', '.join(RULES)}), got {rule!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")


def input_bounds(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) [N, C, H, W] for the box rule: pixels 0 and 1 in model-input units for a
    classifier; for a bare model each image's own smallest and largest value per channel."""
    x = ctx.x
    if ctx.classifier is not None:
        channels = torch.zeros(1, x.shape[1], 1, 1, dtype=x.dtype, device=x.device)
        low, high = ctx.classifier.from_pixels(channels), ctx.classifier.from_pixels(channels + 1)
    else:
        low, high = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    return low.expand_as(x), high.expand_as(x)


# --- hooks --------------------------------------------------------------------------------------

class _Propagation:
    """The forward hooks that give every layer its rule during one forward pass of ``x``."""

    def __init__(self, rules: Composite, x: torch.Tensor):
        self.rules, self.x = rules, x
        self.first_seen = False
        self.first_took_input = False
        self.pending: dict[int, tuple[torch.Tensor, Affine, torch.Tensor, Callable]] = {}
        self.inputs: dict[nn.Module, torch.Tensor] = {}

    def layer(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        a = inputs[0]
        rule = self.rules.dense if isinstance(module, nn.Linear) else self.rules.conv
        if not self.first_seen:
            self.first_seen = True
            if self.rules.first is not None:
                if not _is_the_input(a, self.x):
                    raise ValueError("rule: the first-layer rule (flat, box) needs a model whose first convolution "
                                     "or dense layer takes the input as given; choose a rule without one")
                rule, self.first_took_input = self.rules.first, True
        layer = Affine(module, module.weight.detach(), _detached(module.bias))
        out = _RuleBackward.apply(a, output.detach(), layer, rule)
        self.pending[id(out)] = (out, layer, a, rule)
        return out

    def batch_norm(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        entry = self.pending.get(id(inputs[0]))
        if entry is not None and entry[0] is inputs[0] and module.running_var is not None:
            _, layer, a, rule = entry
            return _RuleBackward.apply(a, output.detach(), folded(layer, module), rule)
        return _pass_through(inputs[0], output)

    def keep_input(self, module: nn.Module, inputs: tuple):
        self.inputs[module] = inputs[0]
        return (inputs[0].clone(),) if getattr(module, "inplace", False) else None

    def clamp(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return _pass_through(self.inputs.pop(module), output)

    def average_pool(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return _scaled_gradient(output, output, output / stabilize(output, STABILIZER))


def _is_the_input(a: torch.Tensor, x: torch.Tensor) -> bool:
    """``a`` is the input ``x`` or a reshaped view of it (``nn.Flatten`` before a dense layer)."""
    return a is x or (a.numel() == x.numel() and a.data_ptr() == x.data_ptr() and a.is_contiguous()
                      and x.is_contiguous())


def _detached(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def relevance(ctx: Context, rules: Composite) -> tuple[torch.Tensor, torch.Tensor]:
    """(R [N, C, H, W] at the input, target scores y_c [N]): one forward and one backward pass,
    the model's layers propagating relevance by ``rules``; every hook is removed on exit."""
    x = ctx.x.detach().requires_grad_(True)
    hooks = _Propagation(rules, x)
    modules = list(ctx.model.modules())
    layers = [m for m in modules if isinstance(m, RULE_LAYERS)]
    norms = [m for m in modules if isinstance(m, BATCH_NORMS)]
    clamps = [m for m in modules if isinstance(m, nn.Hardtanh)]  # nn.ReLU6 is a Hardtanh(0, 6)
    pools = [m for m in modules if isinstance(m, AVERAGE_POOLS)]
    with torch.enable_grad(), forward_hooks(layers, hooks.layer), forward_hooks(norms, hooks.batch_norm), \
            forward_hooks(clamps, hooks.keep_input, pre=True), forward_hooks(clamps, hooks.clamp), \
            forward_hooks(pools, hooks.average_pool), SplitSums():
        logits = ctx.forward(x)
        scores = ctx.scores(logits)
    hooks.pending.clear()
    if ctx.target.logit_weights(logits.shape[1]) is None:
        raise ValueError(f"lrp hands the score down from the logits, so it explains scores linear in the logits (a "
                         f"class index, Logit, Contrast, Labels of logits), not {ctx.target.name!r}")
    if not scores.requires_grad:
        raise RuntimeError("The target score does not depend on the input through operations autograd can follow")
    with torch.enable_grad():
        (grad,) = ctx.grad(scores, x)
    relevance_in = grad if hooks.first_took_input else x.detach() * grad
    return relevance_in, scores.detach()


@register("lrp", family="gradient")
def lrp(ctx: Context, rule: str = "epsilon-plus-flat", epsilon: float = 1e-6, gamma: float = 0.25) -> Result:
    """Layer-wise relevance propagation (Bach et al. 2015): the target score y_c handed down layer
    by layer by a rule, R_j = sum_k a_j rho(w_jk) / s(z_k) R_k; map = channel sum of R (signed).

    ``rule``: a composite, "epsilon-plus-flat" (flat for the first layer, zplus for
    convolutions, epsilon for dense layers), "epsilon-plus", "epsilon-alpha2beta1",
    "epsilon-gamma-box" (box rule bounded by the input range for the first layer, gamma for
    convolutions, epsilon for dense layers), or one rule for every layer: "epsilon", "gamma",
    "zplus", "alpha2beta1", "alpha1beta0". ``epsilon``: eps of the epsilon rule (> 0);
    ``gamma``: gamma of the gamma rule (>= 0). Batch norm is folded into the layer before it,
    ReLU6 passes relevance like a ReLU, sums split it by contribution (module docstring).

    The target may be any score linear in the logits, y = sum_c w_c z_c (a contrast, several
    labels): the logits get R_c = w_c z_c, and the map is linear in w (a contrast's map is the
    difference of the class maps). ``extras["attribution"]``: R [N, C, H, W], which sums to y
    up to the biases' share; ``extras["score"]``: y [N]. One forward and one backward pass."""
    _check_rule(rule)
    check_positive("epsilon", epsilon)
    check_positive("gamma", gamma, allow_zero=True)
    low, high = input_bounds(ctx) if rule == "epsilon-gamma-box" else (None, None)
    rules = composite(rule, float(epsilon), float(gamma), low, high)
    attribution, score = relevance(ctx, rules)
    return Result(saliency=attribution.sum(dim=1), extras={"attribution": attribution, "score": score})

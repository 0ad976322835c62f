"""Exact Shapley values of a few superpixels: the reference that sampled estimates are checked against.

Shapley (1953, "A value for n-person games") splits the payoff v(N) of a cooperative game among
its M players by averaging each player's marginal contribution over all orders of joining:

    phi_i = sum_{S subset of N without i} |S|! (M - |S| - 1)! / M! * (v(S u {i}) - v(S)).

It is the only split that is efficient (sum_i phi_i = v(N) - v(empty), "completeness"),
symmetric (players with equal contributions get equal values), linear, and gives 0 to a dummy
(a player that never changes the payoff). SHAP (Lundberg & Lee 2017, "A unified approach to
interpreting model predictions") made it the reference for feature attributions.

Here the players are the M superpixels of one image and v(S) is the target's probability (or
logit) for the image whose superpixels outside S are replaced by a baseline. The sum needs v on
all 2^M coalitions, one forward pass each (evaluated in batches), so this is an oracle for
M up to about 12 (4,096 images), not an explanation method: nothing in ``xai_lab.methods``
imports it.

Coalitions are numbered by bitmask: coalition s holds player i when bit i of s is set, so
``payoffs[0]`` is v(empty), ``payoffs[-1]`` is v(all) and ``payoffs[s | 1 << i] - payoffs[s]``
is player i's marginal contribution to s.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..models import unwrap
from ..ops import baseline_image, check_input, eval_mode, forward_batch_size, model_device

MAX_PLAYERS = 16  # 65,536 coalitions; the sum itself is cheap, the forward passes are not
OUTPUTS = ("probability", "logit")


@dataclass(frozen=True)
class ShapleyValues:
    """``values`` [M] (float64): phi_i of each player; ``payoffs`` [2^M] (float64): v of every
    coalition, indexed by bitmask (see the module docstring)."""

    values: torch.Tensor
    payoffs: torch.Tensor

    @property
    def n_players(self) -> int:
        return self.values.numel()

    @property
    def gap(self) -> float:
        """v(all) - v(empty), which the values sum to (efficiency)."""
        return float(self.payoffs[-1] - self.payoffs[0])


def coalitions(n_players: int) -> torch.Tensor:
    """Bool [2^M, M]: row s holds the players of coalition s (player i present when bit i of s is set)."""
    if isinstance(n_players, bool) or not isinstance(n_players, int) or not 1 <= n_players <= MAX_PLAYERS:
        raise ValueError(f"n_players must be an integer in 1..{MAX_PLAYERS} (2^M forward passes), got {n_players!r}")
    masks = torch.arange(2 ** n_players)
    return (masks[:, None] >> torch.arange(n_players)) & 1 == 1


def shapley_values(payoffs) -> torch.Tensor:
    """phi [M] (float64) from the payoffs of all 2^M coalitions (indexed by bitmask), by the
    formula of the module docstring, one vectorized sum per player."""
    v = torch.as_tensor(payoffs, dtype=torch.float64).flatten()
    n = v.numel().bit_length() - 1
    if v.numel() < 2 or v.numel() != 2 ** n:
        raise ValueError(f"payoffs must hold 2^M values (M >= 1 players), got {v.numel()}")
    members = coalitions(n)
    sizes = members.sum(1)
    weight = torch.tensor([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) if k < n else 0.0
                           for k in range(n + 1)], dtype=torch.float64)
    index = torch.arange(2 ** n)
    phi = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        without = index[~members[:, i]]
        phi[i] = (weight[sizes[without]] * (v[without | 1 << i] - v[without])).sum()
    return phi


def exact_shapley(value: Callable[[torch.Tensor], torch.Tensor], n_players: int,
                  batch_size: int | None = None) -> ShapleyValues:
    """Exact Shapley values of a game of ``n_players`` given by ``value``: bool coalitions
    [B, M] -> payoffs [B], called on all 2^M coalitions in chunks of ``batch_size`` (all at
    once for None)."""
    members = coalitions(n_players)
    chunks = members.split(batch_size) if batch_size else (members,)
    payoffs = torch.cat([torch.as_tensor(value(c)).detach().double().flatten().cpu() for c in chunks])
    if payoffs.numel() != members.shape[0]:
        raise ValueError(f"value returned {payoffs.numel()} payoffs for {members.shape[0]} coalitions")
    return ShapleyValues(values=shapley_values(payoffs), payoffs=payoffs)


def _segments(segments, size) -> torch.Tensor:
    seg = torch.as_tensor(np.asarray(segments) if not isinstance(segments, torch.Tensor) else segments)
    if seg.dim() != 2 or tuple(seg.shape) != tuple(size) or seg.is_floating_point():
        raise ValueError(f"segments must be integer labels [H, W] = {list(size)}, got {seg.dtype} {list(seg.shape)}")
    labels = seg.unique()
    if labels.min() != 0 or labels.numel() != int(labels.max()) + 1:
        raise ValueError("segments must use every label 0..M-1 (as xai_lab.methods.surrogates.segment returns)")
    return seg.long()


def superpixel_means(x: torch.Tensor, segments) -> torch.Tensor:
    """``x`` [1, C, H, W] (or [C, H, W]) with every superpixel flattened to its mean value per
    channel: LIME's default way of hiding a superpixel. Means are taken in model-input units,
    which equals the mean color for an affine input scaling."""
    x = x[None] if x.dim() == 3 else x
    seg = _segments(segments, x.shape[-2:]).to(x.device)
    n = int(seg.max()) + 1
    flat = x.flatten(2)                                                     # [1, C, H*W]
    sums = torch.zeros(*flat.shape[:2], n, dtype=x.dtype, device=x.device).index_add_(2, seg.flatten(), flat)
    counts = torch.bincount(seg.flatten(), minlength=n).to(x.dtype)
    return (sums / counts)[:, :, seg]


def coalition_images(x: torch.Tensor, segments, members, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """The images of coalitions: ``x`` [1, C, H, W] where a pixel's superpixel is in the
    coalition, ``baseline`` (default :func:`superpixel_means`) elsewhere, i.e.
    ``baseline + (x - baseline) * 1[pixel's superpixel in S]``. ``members``: bool [B, M], one row
    per coalition (``coalitions(M)`` for all of them). Returns [B, C, H, W]."""
    x = x[None] if x.dim() == 3 else x
    seg = _segments(segments, x.shape[-2:]).to(x.device)
    members = torch.as_tensor(members).to(x.device)
    if members.dim() != 2 or members.shape[1] != int(seg.max()) + 1 or members.dtype != torch.bool:
        raise ValueError(f"members must be bool [B, {int(seg.max()) + 1}] (one column per superpixel), "
                         f"got {members.dtype} {list(members.shape)}")
    base = superpixel_means(x, seg) if baseline is None else baseline.to(x)
    return base + (x - base) * members[:, seg][:, None].to(x.dtype)


def superpixel_sums(attribution: torch.Tensor, segments) -> torch.Tensor:
    """Per-superpixel totals [M] (float64) of a pixel attribution [C, H, W] or [H, W] (channels
    summed): how a per-pixel method's attributions compare with superpixel Shapley values (sums
    keep completeness)."""
    a = torch.as_tensor(attribution).detach().double()
    a = a.sum(0) if a.dim() == 3 else a
    seg = _segments(segments, a.shape).to(a.device)
    return torch.zeros(int(seg.max()) + 1, dtype=torch.float64, device=a.device).index_add_(
        0, seg.flatten(), a.flatten()).cpu()


def exact_superpixel_shapley(model, x: torch.Tensor, segments, target: int | None = None,
                             baseline: str | float | torch.Tensor | None = None, output: str = "probability",
                             batch_size: int | None = None) -> ShapleyValues:
    """Exact Shapley values of the superpixels of one image ``x`` [1, 3, H, W] (model input).

    v(S) = the ``target``'s ``output`` ("probability": softmax; "logit") for
    ``baseline + (x - baseline) * 1[pixel's superpixel in S]``, on all 2^M coalitions in batches
    of ``batch_size`` without gradients (None: 4 on a CPU, 16 elsewhere,
    :func:`~xai_lab.ops.forward_batch_size`; the values do not depend on it beyond float rounding).
    ``segments``: labels 0..M-1 [H, W],
    M <= 16 (e.g. from ``xai_lab.methods.surrogates.segment``). ``target``: class index, default the class predicted
    on ``x``. ``baseline``: None for each superpixel's mean (:func:`superpixel_means`, as LIME),
    a name of :func:`xai_lab.ops.baseline_image` ("black" needs a Classifier) or a tensor.
    ``model``: a Classifier or an ``nn.Module``."""
    net, classifier = unwrap(model)
    x = check_input(x)
    if x.shape[0] != 1:
        raise ValueError(f"x must be one image [1, 3, H, W], got {list(x.shape)}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    device = model_device(net)
    batch_size = forward_batch_size(batch_size, device, accelerator=16)
    x = x.to(device)
    seg = _segments(segments, x.shape[-2:]).to(device)
    base = superpixel_means(x, seg) if baseline is None else baseline_image(x, baseline, classifier).to(device)

    with torch.no_grad(), eval_mode(net):
        if target is None:
            target = int(net(x).argmax(1))

        def value(members: torch.Tensor) -> torch.Tensor:
            out = net(coalition_images(x, seg, members, base))
            out = torch.softmax(out, dim=1) if output == "probability" else out
            return out[:, target]

        return exact_shapley(value, int(seg.max()) + 1, batch_size=batch_size)

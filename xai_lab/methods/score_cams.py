"""Class activation maps without gradients: channel weights from forward passes on masked
inputs (Score-CAM), from ablating channels (Ablation-CAM), or from the principal component of
the activations (Eigen-CAM). Each returns a layer map ``ReLU(sum_k w_k A_k)`` or a projection of
the activations ``A`` [N, K, h, w] of one clean forward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..capture import forward_hooks, replaced_forward
from ..context import Context, Result, layer_activations
from ..ops import check_positive, forward_batch_size, normalize_per_image, upsample
from ..registry import register
from .cam import weighted_sum


@register("scorecam", family="cam", needs_layer=True)
def scorecam(ctx: Context, batch_size: int | None = None, score: str = "probability", align_corners: bool = False,
             relu: bool = True) -> Result:
    """Score-CAM (Wang et al. 2020): ReLU(sum_k w_k A_k), w_k = softmax(f(x * M_k))_c.

    M_k is channel k upsampled to the input size and min-max scaled to [0, 1]; the N*K masked
    inputs go through the model ``batch_size`` at a time (K forward passes per image; None: 4 on a
    CPU, 32 elsewhere, :func:`~xai_lab.ops.forward_batch_size`).
    The paper's weight is the increase of confidence ``f(x * M_k)_c - f(x_b)_c`` over a baseline
    image ``x_b``; its authors' code, and this function, drop the baseline term. It is one number
    per image, so dropping it adds ``f(x_b)_c * sum_k A_k`` to the map before the ReLU: the map
    leans towards where the activations are large overall.
    ``score="probability"`` (the paper and its authors' code): w_k is the softmax probability of
    the target class; constant channels carry no location and get w_k = 0, as the authors' code
    skips them. ``score="logit"`` (the ``grad-cam`` library): w = softmax over the K channels of the
    target logits of the masked inputs. ``align_corners=True`` upsamples the masks as that library
    does (corner-aligned bilinear) instead of with half-pixel centers; the logit softmax is sharp,
    so this detail alone moves its maps (Pearson 0.58-0.94 with the library on EfficientNet-Lite0
    without it).
    Targets (:mod:`xai_lab.targets`): a plain class index is read as described; with
    ``score="probability"`` any other target's own score s(x * M_k) is the weight w_k (a
    contrast gives signed weights); ``score="logit"`` takes a class index or ``Logit`` only.
    ``extras``: ``scores`` [N, K], ``weights`` [N, K]."""
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', not {score!r}")
    batch_size = forward_batch_size(batch_size, ctx.device, accelerator=32)
    A, _, _ = layer_activations(ctx)
    n, k = A.shape[:2]
    rows = A.transpose(0, 1).reshape(k * n, *A.shape[2:])  # row j: channel j // n of image j % n
    size = tuple(ctx.x.shape[-2:])
    constant = (rows.flatten(1).amax(1) == rows.flatten(1).amin(1)).view(k, n).T

    def masked():
        for start in range(0, k * n, batch_size):
            index = torch.arange(start, min(start + batch_size, k * n), device=A.device)
            if align_corners:
                masks = F.interpolate(rows[index, None], size=size, mode="bilinear", align_corners=True)[:, 0]
            else:
                masks = upsample(rows[index], size)
            masks = normalize_per_image(masks)
            yield ctx.x[index % n] * masks[:, None]

    total = -(-k * n // batch_size)
    outputs = ctx.outputs(masked(), total=total, desc="Score-CAM")
    if score == "probability":
        scores = ctx.scores(outputs, repeats=k, output=None).view(k, n).T
        weights = torch.where(constant, torch.zeros_like(scores), scores)
    else:
        scores = ctx.scores(outputs, repeats=k, output="logit").view(k, n).T
        weights = torch.softmax(scores, dim=1)
    layer_map = weighted_sum(A, weights[:, :, None, None], relu)
    return Result(layer_map=layer_map, extras={"scores": scores, "weights": weights})


def _channel_axis(ctx: Context, output: torch.Tensor) -> int:
    """Which axis of the layer's raw output holds the channels (see ``as_feature_map``)."""
    if ctx.reshape is not None:
        raise ValueError("Ablation-CAM zeroes channels of the layer's own output, whose layout is unknown when "
                         "reshape= is given; explain a layer whose output is [N, K, h, w], [N, tokens, C] or Swin's")
    if output.dim() == 3 or type(ctx.model).__name__ == "SwinTransformer":
        return -1
    return 1


@register("ablationcam", family="cam", needs_layer=True)
def ablationcam(ctx: Context, batch_size: int = 32, relu: bool = True, tail_only: bool = True) -> Result:
    """Ablation-CAM (Desai & Ramaswamy 2020): ReLU(sum_k w_k A_k), w_k = (y_c - y_c^k) / y_c.

    y_c^k is the target score (a class index: its logit; a target object: its own score) with
    channel k of the layer's output set to zero (where y_c is
    exactly 0 the weights are the drops y_c - y_c^k, unscaled, instead of NaN). The clean
    activations A are recorded once, in one clean pass; then the layer's output is replaced by
    ``batch_size`` copies of the recorded output with channel k zeroed in copy k, and the rest of
    the network runs on them. The layer itself never computes again (its ``forward`` returns the
    recorded output during the ablation, as pytorch-grad-cam's ``AblationLayer`` does), so at
    ``layer="features"`` only the head runs per chunk of channels.
    ``tail_only=True``: a single image goes in, so the modules that run before the layer do
    so once per batch of channels, on one image, and a skip connection from them broadcasts over the
    copies (for ``layer="features"`` nothing runs before it); a network that concatenates earlier
    features with later ones fails then: use ``tail_only=False``, which sends a copy of the image
    per ablated channel. Cost: forward_passes = 1 + K, counting every ablated copy as one pass
    although only the part after the layer runs for it. ``extras``: ``scores`` [N],
    ``ablated_scores`` [N, K], ``weights`` [N, K]."""
    from tqdm import tqdm

    check_positive("batch_size", batch_size, integer=True)
    clean = []
    with forward_hooks([ctx.layer], lambda module, inputs, output: clean.append(output)):
        A, _, y = layer_activations(ctx)
    runs_twice = f"Layer {ctx.layer_name!r} runs more than once per forward pass; Ablation-CAM needs a layer that runs once"
    if len(clean) != 1:
        raise RuntimeError(runs_twice)
    if not isinstance(clean[0], torch.Tensor):
        raise ValueError(f"Layer {ctx.layer_name!r} returns a {type(clean[0]).__name__}; Ablation-CAM needs a tensor")
    n, k = A.shape[:2]
    state = {}

    def ablated_layer(*args, **kwargs):
        """The layer's forward while channels are ablated: copies of its clean output for the
        current image (recorded in the clean pass, never computed again), channel j zeroed in copy j."""
        state["calls"] += 1
        if state["calls"] > 1:
            raise RuntimeError(runs_twice)
        output, channels = state["output"], state["channels"]
        copies = output.expand(len(channels), *output.shape[1:]).clone()
        axis = _channel_axis(ctx, output) % copies.dim()
        index = [torch.arange(len(channels), device=copies.device)] + [slice(None)] * (copies.dim() - 1)
        index[axis] = channels
        copies[tuple(index)] = 0
        return copies

    chunks = [(i, start) for i in range(n) for start in range(0, k, batch_size)]
    ablated = A.new_empty(n, k)
    with torch.no_grad(), replaced_forward(ctx.layer, ablated_layer):
        for i, start in tqdm(chunks, desc="Ablation-CAM", disable=not ctx.progress, leave=False):
            channels = torch.arange(start, min(start + batch_size, k), device=A.device)
            state.update(calls=0, channels=channels, output=clean[0][i:i + 1])
            if tail_only:
                logits = ctx.forward(ctx.x[i:i + 1])
                ctx.forward_images += len(channels) - 1  # every ablated copy counts as one pass
            else:
                logits = ctx.forward(ctx.x[i:i + 1].expand(len(channels), -1, -1, -1))
            ablated[i, channels] = ctx.target.scores(logits, images=i)
    drops = y[:, None] - ablated
    weights = torch.where(y[:, None] != 0, drops / torch.where(y[:, None] != 0, y[:, None], 1.0), drops)
    layer_map = weighted_sum(A, weights[:, :, None, None], relu)
    return Result(layer_map=layer_map, extras={"scores": y, "ablated_scores": ablated, "weights": weights})


@register("eigencam", family="cam", needs_layer=True)
def eigencam(ctx: Context, center: bool = True, relu: bool = True) -> Result:
    """Eigen-CAM (Muhammad & Yeasin 2020): the activations projected on their first principal component.

    map = ReLU(M v_1), M = A reshaped to [h*w, K], v_1 its first right singular vector. Not class
    discriminative: no gradients, no scores, the same map for every target.

    ``center=True`` subtracts the mean over positions before the SVD (principal components, as the
    ``grad-cam`` library does); ``center=False`` decomposes M itself, as the paper's equation reads.
    The sign of v_1 is arbitrary; it is chosen so that the projection correlates positively with
    the channel sum of the activations (a positive map where the layer is active).
    ``extras["component"]``: v_1 [N, K]."""
    A, _, _ = layer_activations(ctx)
    n, k, h, w = A.shape
    M = A.flatten(2).transpose(1, 2)
    if center:
        M = M - M.mean(dim=1, keepdim=True)
    v = torch.linalg.svd(M, full_matrices=False).Vh[:, 0]
    projection = (M @ v[:, :, None])[:, :, 0]
    total = A.sum(dim=1).flatten(1)
    sign = torch.sign(((projection - projection.mean(1, keepdim=True)) * total).sum(1, keepdim=True))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    layer_map = (sign * projection).view(n, h, w)
    return Result(layer_map=layer_map.clamp_min(0) if relu else layer_map, extras={"component": sign * v})

"""What a method sees and what it returns.

:class:`Context` gives a method the model, the checked input, the target classes, the layer, a
seeded random generator and a progress flag; it counts every image sent forward or backward,
batches repeated work (:meth:`Context.batches`, :meth:`Context.outputs`), and records the
layer's activations (and their gradient) for every CAM in one place
(:func:`layer_activations`). :class:`Result` is what a method returns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from .capture import LayerRecorder, forward_hooks
from .targets import Target, TargetScore, as_target, perturbation_score


@dataclass
class Result:
    """What a method returns: a map at input resolution, or a layer map that ``explain``
    upsamples, plus anything method-specific in ``extras``."""

    saliency: torch.Tensor | None = None
    layer_map: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


class Context:
    """What a method sees. Counts every image it sends forward or backward through the model."""

    def __init__(self, model: nn.Module, x: torch.Tensor, target: Target, layer: tuple[str, nn.Module] | None,
                 classifier, generator: torch.Generator, progress: bool, reshape: Callable | None = None):
        self.model = model
        self.reshape = reshape
        self.x = x
        self.classifier = classifier
        self.layer_name, self.layer = layer if layer else (None, None)
        self.generator = generator
        self.progress = progress
        self._target = as_target(target)
        self._bound: TargetScore | None = None
        self.forward_images = 0
        self.backward_images = 0

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def device(self) -> torch.device:
        return self.x.device

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of ``inputs`` (graph kept unless under ``torch.no_grad``)."""
        self.forward_images += inputs.shape[0]
        return self.model(inputs)

    def grad(self, outputs: torch.Tensor, inputs, **kwargs) -> tuple[torch.Tensor, ...]:
        """``torch.autograd.grad(outputs.sum(), inputs)``; counts ``len(outputs)`` backward images."""
        self.backward_images += outputs.shape[0]
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        return torch.autograd.grad(outputs.sum(), inputs, **kwargs)

    @property
    def target(self) -> TargetScore:
        """The target bound to the batch (:mod:`xai_lab.targets`): its ``scores`` of any batch of
        logits laid out as copies of the N images. For a predicted class (``None``), or a bare
        model (whose class count is unknown), binding costs one counted forward pass, unless the
        method already called :meth:`scores` on the clean input's logits."""
        if self._bound is None:
            if self.classifier is not None and not self._target.needs_prediction:
                self._bound = self._target.bind(self.n, len(self.classifier.categories), self._predicted, self.device)
            else:
                with torch.no_grad():
                    self._bind(self.forward(self.x))
        return self._bound

    def _predicted(self) -> torch.Tensor:
        with torch.no_grad():
            return self.forward(self.x).argmax(dim=1)

    def _bind(self, clean_logits: torch.Tensor) -> None:
        self._bound = self._target.bind(self.n, clean_logits.shape[1], lambda: clean_logits.detach().argmax(dim=1),
                                        self.device)

    @property
    def targets(self) -> torch.Tensor:
        """The class explained per image [N] (:attr:`TargetScore.explained_classes`: the class of
        a class index, logit or probability, class a of a contrast, -1 for a target that is no
        single class)."""
        return self.target.explained_classes.to(self.device)

    def classes(self, method: str) -> torch.Tensor:
        """The class per image [N] for a method that needs one class (its decision, its output
        column); a ``ValueError`` naming ``method`` for a target that is not a single class."""
        if not self.target.single_class:
            raise ValueError(f"{method} explains one class per image: give a class index, Logit(c) or Probability(c) "
                             f"as the target, not {self.target.name!r}")
        return self.targets

    def scores(self, logits: torch.Tensor, repeats: int = 1, output: str | None = "own") -> torch.Tensor:
        """The target's scores of a batch laid out as ``repeats`` consecutive copies of the N
        images. With ``repeats == 1`` and a target that needs the predicted class these must be
        the logits of ``ctx.x``: they fix the predicted classes; for perturbed copies the clean
        input is classified first. ``output``: ``"own"`` (the target's own score: a class index's
        logit) or what :func:`~xai_lab.targets.perturbation_score` reads (``None``: a class
        index's probability; ``"probability"``; ``"logit"``)."""
        if self._bound is None:
            if repeats != 1 and self._target.needs_prediction:
                _ = self.target  # the predicted classes of the clean input: one more forward pass
            else:
                self._bind(logits[: self.n])
        target = self._bound if output == "own" else perturbation_score(self._bound, output)
        if logits.shape[0] != repeats * self.n:
            raise ValueError(f"Got {logits.shape[0]} rows of logits for {repeats} copies of {self.n} images")
        return target.scores(logits)

    def batches(self, total: int, batch_size: int, desc: str = "") -> Iterator[tuple[int, int]]:
        """``(start, k)`` for ``total`` items taken ``batch_size`` at a time, with a progress bar
        when asked (and when there is more than one batch). The one batching loop of the package."""
        from tqdm import trange

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        for start in trange(0, total, batch_size, desc=desc, leave=False,
                            disable=not self.progress or total <= batch_size):
            yield start, min(batch_size, total - start)

    @torch.no_grad()
    def outputs(self, batches: Iterable[torch.Tensor], total: int | None = None, desc: str = "",
                softmax: bool = False) -> torch.Tensor:
        """Logits (or softmax probabilities) of every batch, concatenated, with a progress bar."""
        from tqdm import tqdm

        outs = []
        for batch in tqdm(batches, total=total, desc=desc, disable=not self.progress, leave=False):
            logits = self.forward(batch)
            outs.append(torch.softmax(logits, dim=1) if softmax else logits)
        return torch.cat(outs)

    def probabilities(self, batches: Iterable[torch.Tensor], total: int | None = None, desc: str = "") -> torch.Tensor:
        """Softmax outputs of every batch, concatenated (:meth:`outputs` with ``softmax=True``)."""
        return self.outputs(batches, total, desc, softmax=True)


def layer_activations(ctx: Context, gradients: bool = False, inputs: torch.Tensor | None = None, repeats: int = 1
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(A, dy_c/dA or None, y_c) for the context's layer, as feature maps [N, K, h, w] (see
    :func:`as_feature_map`), and the target scores [N]. ``inputs``: ``repeats`` stacked (e.g.
    noisy) copies of the N images instead of ``ctx.x`` (see :meth:`Context.scores`).

    One forward pass; with ``gradients=True`` also one backward pass that stops at the layer. The
    graph starts at the layer: the pass runs without recording a graph up to the layer (autograd
    off, which is a per-thread switch: other threads are not affected), and the layer's output is
    made a leaf that requires a gradient, with recording on from there. So no work is spent on
    the part before the layer, frozen models work, and so does a layer before every parameter."""
    if not gradients:
        with torch.no_grad(), LayerRecorder(ctx.model, [ctx.layer]) as recorder:
            scores = ctx.scores(ctx.forward(ctx.x if inputs is None else inputs), repeats)
            activations = recorder[ctx.layer_name]
        return as_feature_map(ctx, activations), None, scores
    def no_graph_until_the_layer(module, inputs):
        torch.set_grad_enabled(False)

    with torch.enable_grad(), forward_hooks([ctx.model], no_graph_until_the_layer, pre=True), \
            LayerRecorder(ctx.model, [ctx.layer], start_graph=True) as recorder:
        logits = ctx.forward(ctx.x if inputs is None else inputs)
        activations = recorder[ctx.layer_name]
        scores = ctx.scores(logits, repeats)
        if not scores.requires_grad:
            raise RuntimeError(f"The target score does not depend on layer {ctx.layer_name!r} through operations "
                               "autograd can follow; explain another layer")
        (grads,) = ctx.grad(scores, activations)
    return as_feature_map(ctx, activations.detach()), as_feature_map(ctx, grads), scores.detach()


def as_feature_map(ctx: Context, t: torch.Tensor) -> torch.Tensor:
    """A layer output as a feature map [N, K, h, w]. With ``explain(..., reshape=f)``: ``f(t)``.
    Otherwise [N, K, h, w] stays; [N, 1 + h*w, C] (ViT: class token first) drops the class token
    and becomes [N, C, h, w]; [N, h*w, C] becomes [N, C, h, w]; a Swin model's [N, h, w, C] is
    permuted. The gradient is reshaped the same way (re-indexing commutes with differentiation)."""
    if ctx.reshape is not None:
        t = ctx.reshape(t)
    elif t.dim() == 3:
        n, tokens, c = t.shape
        side = math.isqrt(tokens - 1)
        if side * side == tokens - 1:
            t = t[:, 1:]
        else:
            side = math.isqrt(tokens)
            if side * side != tokens:
                raise ValueError(f"Layer {ctx.layer_name!r} gives {tokens} tokens, not a square grid (+ class "
                                 "token): pass reshape= to explain")
        t = t.reshape(n, side, side, c).permute(0, 3, 1, 2)
    elif t.dim() == 4 and type(ctx.model).__name__ == "SwinTransformer":
        t = t.permute(0, 3, 1, 2)
    if t.dim() != 4:
        raise ValueError(f"Layer {ctx.layer_name!r} gives a tensor of shape {list(t.shape)}; "
                         "CAM methods need a feature map [N, K, h, w] (or pass reshape= to explain)")
    return t

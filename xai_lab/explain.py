"""``explain()``: one entry point for every method, and the ``Explanation`` it returns.

A method is a function ``fn(ctx, **options) -> Result`` registered under a fixed name
(:mod:`xai_lab.registry`). ``explain`` checks the input and the options, builds the
:class:`~xai_lab.context.Context` the method sees, upsamples layer maps, times the run and puts
the model back as it found it (mode, hooks, gradient flags). Calls on one model are serialized
by a lock per model, so threads sharing a model get the maps they would get alone.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .capture import resolve_layer
from .context import Context, Result
from .ops import check_input, eval_mode, model_device, model_dtype, normalize_per_image, upsample
from .registry import MethodSpec, check_options, method_spec
from .targets import ClassIndex, Target, TargetScore, labels_to_indices

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serializes explanations of ``model`` (one per model object, re-entrant)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@dataclass
class Explanation:
    """Saliency maps for a batch of images.

    ``saliency`` [N, H, W]: raw values as the method defines them, at input resolution.
    ``layer_map`` [N, h, w]: the map before upsampling (layer methods), else None.
    ``forward_passes``/``backward_passes``: model evaluations per image; ``seconds``: wall time.
    ``target`` [N]: the class explained per image: the class of a class index, a ``Logit`` or a
    ``Probability``, class a of a ``Contrast(a, b)``, and -1 for a target that is no single class
    (``Labels``, ``Sigmoid``, a callable). ``explained``: the target itself, bound to the batch
    (:mod:`xai_lab.targets`): ``explained.name`` says what score was explained,
    ``explained.scores(logits)`` recomputes it, and ``target=e.explained`` explains it again.
    """

    saliency: torch.Tensor
    target: torch.Tensor
    method: str
    layer: str | None = None
    layer_map: torch.Tensor | None = None
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)
    explained: TargetScore | None = None

    def normalized(self) -> torch.Tensor:
        """Min-max scaled to [0, 1] per image; a constant map becomes all zeros (never NaN)."""
        return normalize_per_image(self.saliency)

    def __len__(self) -> int:
        return self.saliency.shape[0]

    def __repr__(self) -> str:
        n, h, w = self.saliency.shape
        layer = f", layer={self.layer!r}" if self.layer else ""
        plain = self.explained is None or type(self.explained) is ClassIndex
        kind = "" if plain else f" ({self.explained.name})"
        return (f"Explanation(method={self.method!r}{layer}, maps={n}x{h}x{w}, target={self.target.tolist()}{kind}, "
                f"passes={self.forward_passes} fwd + {self.backward_passes} bwd, {self.seconds:.3f}s)")


def explain(classifier_or_model, x, method: str | Sequence[str] | dict = "gradcam", target: Target = None,
            layer=None, seed: int | None = None, device=None, progress: bool | None = None,
            reshape: Callable | None = None, **options) -> Explanation | dict[str, Explanation]:
    """Explain the model's score for ``target`` on a preprocessed batch ``x`` with ``method``.

    ``classifier_or_model``: a :class:`~xai_lab.models.Classifier` (its ``default_layer`` is used
    when ``layer`` is None) or a bare ``nn.Module``. ``target``: what score to explain
    (:mod:`xai_lab.targets`): None (the predicted class), a class index or label, one per image,
    or a target object: ``Logit(c)``, ``Probability(c)``, ``Sigmoid()``, ``Labels([c1, c2])``,
    ``Contrast(a, b)`` (z_a - z_b), or any callable ``f(logits [M, C]) -> [M]``. A plain class is
    explained through its logit by gradient methods and through its probability by the methods
    that read perturbed inputs (as their papers do); a target object through its own score; a
    method that cannot explain a kind of target says so. ``layer``: module name or module, for layer methods. ``seed`` makes
    stochastic methods reproducible. ``progress``: show progress bars for long methods (default:
    when standard error is a terminal). ``reshape``: a callable turning the layer's output into a
    feature map [N, K, h, w] for models whose layers give token sequences (ViT ``[N, 1 + h*w, C]``
    and Swin ``[N, h, w, C]`` are recognized without it). ``options`` go to the method.

    ``method`` may also be a list of names (``options`` then go to every one of them) or a dict
    name -> options; the result is a dict name -> Explanation, and methods that are functions
    of one shared computation (every gradient CAM: one forward and one backward pass to the
    layer) share it: it runs once and each of their Explanations reports that single pass.
    """
    if not isinstance(method, str):
        return _explain_many(classifier_or_model, x, method, target, layer, seed, device, progress, reshape, options)
    spec = method_spec(method)
    check_options(spec, options)
    ctx = _context(classifier_or_model, x, spec, target, layer, seed, device, progress, reshape)
    with model_lock(ctx.model):
        start = time.perf_counter()
        with eval_mode(ctx.model):
            result = spec.fn(ctx, **options)
            _ = ctx.target  # bound (one forward pass for a predicted class if the method made none)
        return _explanation(ctx, spec, result, time.perf_counter() - start)


def _context(classifier_or_model, x, spec: MethodSpec, target, layer, seed, device, progress, reshape=None) -> Context:
    from .models import unwrap

    model, classifier = unwrap(classifier_or_model)
    if device is not None:
        model.to(device)
    x = check_input(x).to(device=model_device(model), dtype=model_dtype(model))
    target = labels_to_indices(target, classifier.categories if classifier is not None else None)
    named_layer = None
    if spec.needs_layer:
        if layer is None:
            if classifier is None:
                raise ValueError(f"Method {spec.name!r} needs layer=...: a bare model has no default layer")
            layer = classifier.default_layer
        named_layer = resolve_layer(model, layer)
    elif layer is not None:
        raise ValueError(f"Method {spec.name!r} does not use a layer; drop layer={layer!r}")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0 or None, got {seed!r}")
    generator = torch.Generator(device=x.device).manual_seed(seed)
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    return Context(model, x, target, named_layer, classifier, generator, progress, reshape)


def _explanation(ctx: Context, spec: MethodSpec, result: Result, seconds: float) -> Explanation:
    saliency = result.saliency
    if saliency is None:
        if result.layer_map is None:
            raise RuntimeError(f"Method {spec.name!r} returned no map")
        saliency = upsample(result.layer_map, ctx.x.shape[-2:])
    return Explanation(
        saliency=saliency.detach().float().cpu(),
        target=ctx.targets.detach().cpu(),
        method=spec.name,
        layer=ctx.layer_name,
        layer_map=None if result.layer_map is None else result.layer_map.detach().float().cpu(),
        forward_passes=-(-ctx.forward_images // ctx.n),
        backward_passes=-(-ctx.backward_images // ctx.n),
        seconds=seconds,
        extras=result.extras,
        explained=ctx.target,
    )


def _explain_many(classifier_or_model, x, methods_, target, layer, seed, device, progress, reshape, options) -> dict:
    if isinstance(methods_, dict) and options:
        raise TypeError("With method={name: options}, give the options inside the dict")
    requests = dict(methods_) if isinstance(methods_, dict) else {name: dict(options) for name in methods_}
    if not requests:
        raise ValueError("method is an empty list")
    specs = {name: method_spec(name) for name in requests}
    for name, spec in specs.items():
        check_options(spec, requests[name])
    if layer is not None and not any(spec.needs_layer for spec in specs.values()):
        raise ValueError(f"None of the methods {', '.join(requests)} uses a layer; drop layer={layer!r}")
    out: dict[str, Explanation] = {}
    groups: dict[int, list[str]] = {}
    for name, spec in specs.items():
        if spec.shared is None:
            out[name] = explain(classifier_or_model, x, name, target, layer if spec.needs_layer else None,
                                seed, device, progress, reshape, **requests[name])
        else:
            groups.setdefault(id(spec.shared.compute), []).append(name)
    for names in groups.values():
        first = specs[names[0]]
        ctx = _context(classifier_or_model, x, first, target, layer, seed, device, progress, reshape)
        with model_lock(ctx.model):
            start = time.perf_counter()
            with eval_mode(ctx.model):
                computed = first.shared.compute(ctx)
                _ = ctx.target
            shared_seconds = time.perf_counter() - start
            for name in names:
                start = time.perf_counter()
                result = specs[name].shared.finish(computed, **requests[name])
                out[name] = _explanation(ctx, specs[name], result, shared_seconds + time.perf_counter() - start)
    return {name: out[name] for name in requests}

"""``explain()``: one entry point for every method, the ``Explanation`` it returns, and the
method registry.

A method is a function ``fn(ctx, **options) -> Result`` registered under a fixed name. The
context ``ctx`` gives it the model, the checked input, the target classes, the layer, a seeded
random generator, and counted forward and backward passes; ``explain`` validates the input,
upsamples layer maps, times the run and puts the model back as it found it (mode, hooks).
"""
from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .capture import resolve_layer
from .targets import Target, check_targets, resolve_targets, target_scores


@dataclass(frozen=True)
class SharedPass:
    """Methods that are functions of one common computation: ``compute(ctx)`` runs it (e.g. one
    forward and one backward pass to a layer) and ``finish(computed, **options) -> Result`` turns
    it into one method's map. ``explain`` with several such methods runs ``compute`` once."""

    compute: Callable
    finish: Callable


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable
    family: str
    needs_layer: bool
    summary: str
    shared: SharedPass | None = None


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, *, family: str, needs_layer: bool = False, shared: SharedPass | None = None) -> Callable:
    """Decorator: register ``fn(ctx, **options) -> Result`` as ``explain(..., method=name)``.
    ``family`` groups methods in tables ("gradient", "cam", "perturbation", ...); ``shared``
    declares that ``fn(ctx, **o) == shared.finish(shared.compute(ctx), **o)``."""

    def decorate(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"Method {name!r} is registered twice")
        summary = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        _REGISTRY[name] = MethodSpec(name, fn, family, needs_layer, summary, shared)
        return fn

    return decorate


def _load_methods() -> None:
    import importlib

    importlib.import_module("xai_lab.methods")  # importing registers every method


def methods() -> list[str]:
    """The names accepted by ``explain(..., method=NAME)``."""
    _load_methods()
    return sorted(_REGISTRY)


def method_spec(name: str) -> MethodSpec:
    _load_methods()
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown method {name!r}.{hint} Known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


@dataclass
class Result:
    """What a method returns: a map at input resolution, or a layer map that ``explain``
    upsamples, plus anything method-specific in ``extras``."""

    saliency: torch.Tensor | None = None
    layer_map: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


@dataclass
class Explanation:
    """Saliency maps for a batch of images.

    ``saliency`` [N, H, W]: raw values as the method defines them, at input resolution.
    ``layer_map`` [N, h, w]: the map before upsampling (layer methods), else None.
    ``forward_passes``/``backward_passes``: model evaluations per image; ``seconds``: wall time.
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

    def normalized(self) -> torch.Tensor:
        """Min-max scaled to [0, 1] per image; a constant map becomes all zeros (never NaN)."""
        return normalize_per_image(self.saliency)

    def __len__(self) -> int:
        return self.saliency.shape[0]

    def __repr__(self) -> str:
        n, h, w = self.saliency.shape
        layer = f", layer={self.layer!r}" if self.layer else ""
        return (f"Explanation(method={self.method!r}{layer}, maps={n}x{h}x{w}, target={self.target.tolist()}, "
                f"passes={self.forward_passes} fwd + {self.backward_passes} bwd, {self.seconds:.3f}s)")


def normalize_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map of [N, ...] to [0, 1]; constant maps become zeros."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of [N, h, w] maps to ``size`` (half-pixel centres, as cv2 and PIL do)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


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
        self._target = target
        self._targets: torch.Tensor | None = None
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
    def targets(self) -> torch.Tensor:
        """Target class per image [N]. For ``target=None`` (or a bare model, whose class count is
        unknown) this costs one counted forward pass, unless the method already called
        :meth:`scores` on the clean input's logits."""
        if self._targets is None:
            if self._target is not None and self.classifier is not None:
                self._targets = check_targets(self._target, self.n, len(self.classifier.categories), self.device)
            else:
                with torch.no_grad():
                    self._targets = resolve_targets(self._target, self.forward(self.x))
        return self._targets

    def scores(self, logits: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """Target logits of a batch laid out as ``repeats`` consecutive copies of the N images.
        With ``repeats == 1`` and ``target=None`` these must be the logits of ``ctx.x``: they fix
        the predicted classes; for perturbed copies the clean input is classified first."""
        if self._targets is None:
            if repeats != 1 and self._target is None:
                self.targets  # the predicted classes of the clean input: one more forward pass
            else:
                self._targets = resolve_targets(self._target, logits[: self.n])
        return target_scores(logits, self._targets.repeat(repeats))

    @torch.no_grad()
    def probabilities(self, batches: Iterator[torch.Tensor], total: int | None = None, desc: str = "") -> torch.Tensor:
        """Softmax outputs of every batch, concatenated, with a progress bar when asked."""
        from tqdm import tqdm

        outs = []
        for batch in tqdm(batches, total=total, desc=desc, disable=not self.progress, leave=False):
            outs.append(torch.softmax(self.forward(batch), dim=1))
        return torch.cat(outs)


def check_input(x) -> torch.Tensor:
    """A preprocessed tensor [N, 3, H, W] or [3, H, W] -> float [N, 3, H, W]; clear errors otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a preprocessed tensor [N, 3, H, W] or [3, H, W] (see classifier.preprocess), "
                        f"not {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"x must have shape [N, 3, H, W] or [3, H, W], got {list(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"x must have 3 colour channels in dimension 1, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x holds no images")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor (preprocessed), got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate in eval mode (dropout off, batch-norm running statistics); restore the mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _option_names(fn: Callable) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "ctx"]


def explain(classifier_or_model, x, method: str | Sequence[str] | dict = "gradcam", target: Target = None,
            layer=None, seed: int | None = None, device=None, progress: bool | None = None,
            reshape: Callable | None = None, **options) -> Explanation | dict[str, Explanation]:
    """Explain the model's score for ``target`` on a preprocessed batch ``x`` with ``method``.

    ``classifier_or_model``: a :class:`~xai_lab.models.Classifier` (its ``default_layer`` is used
    when ``layer`` is None) or a bare ``nn.Module``. ``target``: None (predicted class), an int or
    one int per image. ``layer``: module name or module, for layer methods. ``seed`` makes
    stochastic methods reproducible. ``progress``: show progress bars for long methods (default:
    when standard error is a terminal). ``reshape``: a callable turning the layer's output into a
    feature map [N, K, h, w] for models whose layers give token sequences (ViT ``[N, 1 + h*w, C]``
    and Swin ``[N, h, w, C]`` are recognised without it). ``options`` go to the method.

    ``method`` may also be a list of names (``options`` then go to every one of them) or a dict
    name -> options; the result is a dict name -> Explanation, and methods that are functions
    of one shared computation (every gradient CAM: one forward and one backward pass to the
    layer) share it: it runs once and each of their Explanations reports that single pass.
    """
    if not isinstance(method, str):
        return _explain_many(classifier_or_model, x, method, target, layer, seed, device, progress, reshape, options)
    spec = method_spec(method)
    _check_options(spec, options)
    ctx = _context(classifier_or_model, x, spec, target, layer, seed, device, progress, reshape)
    start = time.perf_counter()
    with eval_mode(ctx.model):
        result = spec.fn(ctx, **options)
        targets = ctx.targets
    return _explanation(ctx, spec, result, targets, time.perf_counter() - start)


def _check_options(spec: MethodSpec, options: dict) -> None:
    accepted = _option_names(spec.fn)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"Method {spec.name!r} has no option {', '.join(unknown)}; its options: {', '.join(accepted) or 'none'}")


def _context(classifier_or_model, x, spec: MethodSpec, target, layer, seed, device, progress, reshape=None) -> Context:
    from .models import unwrap

    model, classifier = unwrap(classifier_or_model)
    if device is not None:
        model.to(device)
    model_device = next(model.parameters()).device
    x = check_input(x).to(model_device)
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
    generator = torch.Generator(device=model_device).manual_seed(seed)
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    return Context(model, x, target, named_layer, classifier, generator, progress, reshape)


def _explanation(ctx: Context, spec: MethodSpec, result: Result, targets: torch.Tensor, seconds: float) -> Explanation:
    saliency = result.saliency
    if saliency is None:
        if result.layer_map is None:
            raise RuntimeError(f"Method {spec.name!r} returned no map")
        saliency = upsample(result.layer_map, ctx.x.shape[-2:])
    return Explanation(
        saliency=saliency.detach().float().cpu(),
        target=targets.detach().cpu(),
        method=spec.name,
        layer=ctx.layer_name,
        layer_map=None if result.layer_map is None else result.layer_map.detach().float().cpu(),
        forward_passes=-(-ctx.forward_images // ctx.n),
        backward_passes=-(-ctx.backward_images // ctx.n),
        seconds=seconds,
        extras=result.extras,
    )


def _explain_many(classifier_or_model, x, methods_, target, layer, seed, device, progress, reshape, options) -> dict:
    requests = dict(methods_) if isinstance(methods_, dict) else {name: dict(options) for name in methods_}
    if isinstance(methods_, dict) and options:
        raise TypeError("With method={name: options}, give the options inside the dict")
    if not requests:
        raise ValueError("method is an empty list")
    specs = {name: method_spec(name) for name in requests}
    for name, spec in specs.items():
        _check_options(spec, requests[name])
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
        start = time.perf_counter()
        with eval_mode(ctx.model):
            computed = first.shared.compute(ctx)
            targets = ctx.targets
        shared_seconds = time.perf_counter() - start
        for name in names:
            start = time.perf_counter()
            result = specs[name].shared.finish(computed, **requests[name])
            out[name] = _explanation(ctx, specs[name], result, targets, shared_seconds + time.perf_counter() - start)
    return {name: out[name] for name in requests}

"""Hooks, written once: find a layer by name, record layer outputs during a forward pass, and
temporarily replace what modules return. Every hook is removed when the ``with`` block ends,
also when it ends with an exception.
"""
from __future__ import annotations

import difflib
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from .models import unwrap


def model_and_layer(classifier_or_model, layer: str | nn.Module | None = None) -> tuple[nn.Module, object, str]:
    """``(model, classifier or None, layer name)``: ``layer`` resolved in the model, or (None) the
    classifier's ``default_layer``; a bare model without ``layer`` raises a ``ValueError``."""
    model, classifier = unwrap(classifier_or_model)
    if layer is None:
        if classifier is None:
            raise ValueError("A bare model has no default layer: pass layer=...")
        layer = classifier.default_layer
    name, _ = resolve_layer(model, layer)
    return model, classifier, name


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``layer`` as a module name (``"features"``, ``"layer4.1.conv2"``) or a module of ``model``
    -> (name, module). Unknown names raise a ``ValueError`` that lists the closest names."""
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError(f"The module {type(layer).__name__} passed as layer is not part of the model")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module name or a module, not {type(layer).__name__}")
    if layer not in modules:
        close = difflib.get_close_matches(layer, [n for n in modules if n], n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else "; see dict(model.named_modules()) for the names"
        raise ValueError(f"Unknown layer {layer!r}{hint}")
    return layer, modules[layer]


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable, pre: bool = False) -> Iterator[None]:
    """Register ``hook(module, inputs, output)`` as a forward hook on every module (``pre=True``:
    ``hook(module, inputs)`` as a forward pre-hook); remove them all on exit. The hook acts only on
    forward passes run by the thread that registered it: another thread using the same model
    meanwhile is not affected."""
    owner = threading.get_ident()

    def own_thread_only(module, *args):
        if threading.get_ident() != owner:
            return None
        return hook(module, *args)

    handles = []
    try:
        for module in modules:
            register = module.register_forward_pre_hook if pre else module.register_forward_hook
            handles.append(register(own_thread_only))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def replaced_forward(module: nn.Module, forward: Callable) -> Iterator[None]:
    """Make ``module`` compute ``forward(*args, **kwargs)`` instead of its own ``forward`` (which
    ``forward`` may still call, as ``module.forward`` read before entering); its hooks still run.
    Only the thread that entered is affected: another thread using the module meanwhile gets its
    own forward. Restored on exit, also after an exception."""
    owner = threading.get_ident()
    had_own = "forward" in vars(module)  # an instance attribute, rare; class forward otherwise
    saved = vars(module).get("forward")
    original = module.forward

    def dispatch(*args, **kwargs):
        if threading.get_ident() != owner:
            return original(*args, **kwargs)
        return forward(*args, **kwargs)

    module.forward = dispatch
    try:
        yield
    finally:
        if had_own:
            module.forward = saved
        else:
            del module.forward


class LayerRecorder:
    """Record the outputs of named layers during forward passes, keeping the autograd graph so
    gradients can be taken with respect to them.

    The hook hands the next layer a copy of the output, so an in-place operation that follows
    (``ReLU(inplace=True)`` after a convolution in torchvision models) cannot overwrite the
    recorded tensor. Outputs that are tuples keep their first element.

    ``start_graph=True``: each recorded output is a new leaf that requires a gradient (detached
    from what came before), so gradients with respect to it exist even when nothing before the
    layer requires one (frozen parameters, or a layer before every parameter), and no graph is
    kept for the part of the network before the layer.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str | nn.Module], start_graph: bool = False):
        self.named = [resolve_layer(model, layer) for layer in layers]
        self.start_graph = start_graph
        self.outputs: dict[str, list[torch.Tensor]] = {}
        self._stack = None

    def __enter__(self) -> LayerRecorder:
        self.outputs = {name: [] for name, _ in self.named}
        name_of = {id(module): name for name, module in self.named}

        def hook(module, inputs, output):
            if self.start_graph:
                torch.set_grad_enabled(True)  # the graph starts here (see layer_activations)
                first = output[0] if isinstance(output, (tuple, list)) else output
                if isinstance(first, torch.Tensor) and first.is_floating_point():
                    leaf = first.detach().requires_grad_(True)
                    self.outputs[name_of[id(module)]].append(leaf)
                    if isinstance(output, torch.Tensor):
                        return leaf.clone()
                    return type(output)([leaf.clone(), *output[1:]])
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            self.outputs[name_of[id(module)]].append(tensor)
            if isinstance(output, torch.Tensor):
                return output.clone()
            return None

        self._stack = forward_hooks([m for _, m in self.named], hook)
        self._stack.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self._stack.__exit__(*exc)
        return False

    def __getitem__(self, name: str) -> torch.Tensor:
        """The single output of layer ``name`` in the last forward pass."""
        outs = self.outputs[name]
        if len(outs) != 1:
            raise RuntimeError(f"Layer {name!r} ran {len(outs)} times in one forward pass; explain a layer "
                               "that runs once (a module reused in several places has no single feature map)")
        return outs[0]

    def clear(self) -> None:
        for outs in self.outputs.values():
            outs.clear()


def hook_count(model: nn.Module) -> int:
    """Number of hooks registered on ``model`` and its submodules (0 after any explanation)."""
    total = 0
    for module in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(module, attr, {}))
    return total

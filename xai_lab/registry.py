"""The method registry: each method is a function ``fn(ctx, **options) -> Result`` registered
under a fixed name with :func:`register`.

This module imports no method: ``xai_lab.methods`` imports its modules, whose decorators fill
the registry, and ``import xai_lab`` imports ``xai_lab.methods``. So the registry is complete
whenever any part of the package has been imported.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SharedPass:
    """Methods that are functions of one common computation: ``compute(ctx)`` runs it (e.g. one
    forward and one backward pass to a layer) and ``finish(computed, **options) -> Result`` turns
    it into one method's map. ``explain`` with several such methods runs ``compute`` once."""

    compute: Callable
    finish: Callable


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, function, family ("gradient", "cam", "perturbation", ...),
    whether it explains a layer, the first line of its docstring, and its shared computation."""

    name: str
    fn: Callable
    family: str
    needs_layer: bool
    summary: str
    shared: SharedPass | None = None

    @property
    def options(self) -> list[str]:
        """The keyword options the method accepts (its parameters after ``ctx``)."""
        return [p for p in inspect.signature(self.fn).parameters if p != "ctx"]

    def defaults(self) -> dict:
        """Each option's default value."""
        params = inspect.signature(self.fn).parameters
        return {name: params[name].default for name in self.options
                if params[name].default is not inspect.Parameter.empty}


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, *, family: str, needs_layer: bool = False, shared: SharedPass | None = None) -> Callable:
    """Decorator: register ``fn(ctx, **options) -> Result`` as ``explain(..., method=name)``.
    ``shared`` declares that ``fn(ctx, **o) == shared.finish(shared.compute(ctx), **o)``."""

    def decorate(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"Method {name!r} is registered twice")
        summary = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        _REGISTRY[name] = MethodSpec(name, fn, family, needs_layer, summary, shared)
        return fn

    return decorate


def methods() -> list[str]:
    """The names accepted by ``explain(..., method=NAME)``, sorted."""
    return sorted(_REGISTRY)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name raises a ``ValueError`` with close matches."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str), not {type(name).__name__}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown method {name!r}.{hint} Known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def check_options(spec: MethodSpec, options: dict) -> None:
    """Refuse options that ``spec``'s method does not take, naming the ones it does."""
    accepted = spec.options
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"Method {spec.name!r} has no option {', '.join(unknown)}; "
                        f"its options: {', '.join(accepted) or 'none'}")
    defaults = spec.defaults()
    for name, value in options.items():
        default = defaults.get(name)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise TypeError(f"Option {name!r} of method {spec.name!r} is True or False, got {value!r}")
        if isinstance(default, str) and not isinstance(value, (str, int, float)) or (
                isinstance(default, str) and isinstance(value, bool)):
            raise TypeError(f"Option {name!r} of method {spec.name!r} must be a name such as {default!r}, "
                            f"got {value!r}")

"""Explanation methods, one module per family. Importing this package registers each method
with ``explain``; calling it, ``xai_lab.methods()``, lists their names."""
import sys
import types

from ..explain import methods as _method_names
from . import cam, gradients  # noqa: F401  (registers the methods)


class _CallablePackage(types.ModuleType):
    def __call__(self) -> list[str]:
        """The names accepted by ``explain(..., method=NAME)``."""
        return _method_names()


sys.modules[__name__].__class__ = _CallablePackage

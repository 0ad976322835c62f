"""Explanation methods, one module per family. Importing this package imports every module in
it, which registers each method with ``explain``; calling it, ``xai_lab.methods()``, lists
their names."""
import importlib
import pkgutil
import sys
import types

from ..explain import methods as _method_names

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


class _CallablePackage(types.ModuleType):
    def __call__(self) -> list[str]:
        """The names accepted by ``explain(..., method=NAME)``."""
        return _method_names()


sys.modules[__name__].__class__ = _CallablePackage

"""Explanation methods, one module per family. Importing this package imports every module in
it, which registers each method (:mod:`xai_lab.registry`); ``xai_lab.methods()`` lists their
names."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

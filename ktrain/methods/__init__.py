"""Transfer methods, one file each; importing this package registers every one of them."""

import importlib
import pkgutil

from ktrain.methods.base import REGISTRY, Batch, Method, build_method, get_method, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Batch", "Method", "build_method", "get_method", "register"]

"""Transfer methods, one file each; the registry imports (and so registers) every one of them on
its first look-up."""

from ktrain.methods.base import (
    REGISTRY,
    Batch,
    Context,
    Method,
    Option,
    Options,
    Switch,
    Tap,
    get_method,
    method_names,
    option_specs,
    register,
    registered,
    unregister,
)
from ktrain.methods.selection import MethodSpec, baseline, choose, for_teacher

__all__ = [
    "REGISTRY",
    "Batch",
    "Context",
    "Method",
    "MethodSpec",
    "Option",
    "Options",
    "Switch",
    "Tap",
    "baseline",
    "choose",
    "for_teacher",
    "get_method",
    "method_names",
    "option_specs",
    "register",
    "registered",
    "unregister",
]

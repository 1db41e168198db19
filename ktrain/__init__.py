"""ktrain: knowledge transfer from a trained teacher network to a small student, in TensorFlow 2.

Installed as the distribution ``ktrain-distill``. Its import package is ``ktrain``, the same as the
unrelated PyPI project ``ktrain``, so the two cannot share an environment: ``ktrain.__distribution__``
and ``ktrain --version`` tell them apart.
"""

import os

# TensorFlow's C++ start-up and dataset notices would reach the caller's stderr: keep them off unless
# the caller chose a level (this must happen before TensorFlow is imported).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.2.0.dev0"
__distribution__ = "ktrain-distill"


def version_line() -> str:
    """``ktrain-distill 0.2.0``: the installed distribution's name and version."""
    from importlib import metadata

    try:
        version = metadata.version(__distribution__)
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        version = f"{__version__} (not installed)"
    return f"{__distribution__} {version}"


_API = ("train", "distill", "compare", "sweep", "evaluate", "export", "Result", "Comparison", "Sweep")


def __getattr__(name: str):
    # The API imports TensorFlow; ``import ktrain`` (and ``ktrain report``) stays light until it is used.
    if name in _API:
        from ktrain import api

        return getattr(api, name)
    if name == "Listener":
        from ktrain.listener import Listener

        return Listener
    raise AttributeError(f"module 'ktrain' has no attribute '{name}'")


__all__ = ["KtrainError", "Listener", "__distribution__", "__version__", "version_line", *_API]

from ktrain.errors import KtrainError  # noqa: E402  (no TensorFlow)

"""The names of the training augmentations and their checks (no TensorFlow: specs import this).

The augmentations themselves run in the tf.data pipeline (ktrain.data).
"""

from __future__ import annotations

from collections.abc import Iterable

from ktrain.errors import KtrainError

AUGMENTATIONS = ("flip", "crop")


def parse_augment(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"flip,crop"`` or ``["flip", "crop"]`` as ``("flip", "crop")``; None or "" as none."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(part).strip() for part in parts if str(part).strip())


def check_augment(augment: tuple[str, ...]) -> None:
    unknown = [name for name in augment if name not in AUGMENTATIONS]
    if unknown:
        raise KtrainError(f"unknown augmentation '{unknown[0]}': use {', '.join(AUGMENTATIONS)} (comma-separated)")

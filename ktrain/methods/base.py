"""The contract every transfer method follows, and the registry that finds them.

A method turns the student's (and teacher's) logits into **named, already-weighted, per-example**
losses. It never sees the optimizer, the strategy or the replica count: the engine reduces every
per-example loss by the global batch size, so one device and N replicas train alike.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import tensorflow as tf

from ktrain.errors import KtrainError

REGISTRY: dict[str, type["Method"]] = {}


class Method(abc.ABC):
    """A transfer method: per-example losses from logits and labels."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    uses_teacher: ClassVar[bool] = True
    # The validation quantity that drives LR-on-plateau, early stopping and best-weights selection;
    # its mode (min or max) is derived from the name by ktrain.control.mode_for.
    monitor: ClassVar[str] = "val_accuracy"

    @abc.abstractmethod
    def losses(
        self, labels: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor | None
    ) -> dict[str, tf.Tensor]:
        """Return ``{part name: per-example loss of shape [batch]}``, each part already weighted."""

    def options(self) -> dict:
        """The method's settings, recorded in results.json."""
        return {}


def register(cls: type[Method]) -> type[Method]:
    for key in (cls.name, *cls.aliases):
        if key in REGISTRY:
            raise RuntimeError(f"method name '{key}' registered twice")
        REGISTRY[key] = cls
    return cls


def get_method(name: str) -> type[Method]:
    key = name.lower()
    if key not in REGISTRY:
        names = sorted({cls.name for cls in REGISTRY.values()})
        raise KtrainError(f"unknown method '{name}': use one of {', '.join(names)}")
    return REGISTRY[key]

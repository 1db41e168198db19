"""The contract every transfer method follows, and the registry that finds them.

A method turns a :class:`Batch` into **named, already-weighted** losses. It never sees the
optimizer, the strategy or the replica count. A loss is either

* per-example (shape ``[batch]``): the engine sums it and divides by the global batch size; or
* a scalar over the whole global batch (relational losses such as PKT, ``gathers_features``): the
  engine hands the method every replica's features and labels, and divides the scalar by the
  replica count, so the gradients summed over replicas equal the one-device gradient.
"""

from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass
from typing import ClassVar

import tensorflow as tf

from ktrain.errors import KtrainError

REGISTRY: dict[str, type["Method"]] = {}


@dataclass(frozen=True)
class Batch:
    """What a method sees of one step: labels, logits and (when asked for) features, all float32.

    Logits and labels are this replica's. Features (and ``all_labels``) span the global batch
    when the method ``gathers_features``, otherwise they are this replica's too.
    """

    labels: tf.Tensor
    student_logits: tf.Tensor
    teacher_logits: tf.Tensor | None = None
    student_features: tf.Tensor | None = None
    teacher_features: tf.Tensor | None = None
    all_labels: tf.Tensor | None = None


class Method(abc.ABC):
    """A transfer method: per-example losses from logits and labels."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    uses_teacher: ClassVar[bool] = True
    # Whether the step must tap feature layers, and gather them across replicas (relational losses).
    uses_features: ClassVar[bool] = False
    gathers_features: ClassVar[bool] = False
    # True when the teacher is an ensemble of specialists (ktrain.specialists) whose members'
    # logits arrive side by side; the method is then built with the ensemble's ``layout``.
    uses_ensemble: ClassVar[bool] = False
    # False when the method leaves the class head untrained (PKT): its top-1 then means little, so
    # plots use feature kNN accuracy instead and "best student" selection skips it.
    trains_head: ClassVar[bool] = True
    # The validation quantity that drives LR-on-plateau, early stopping and best-weights selection;
    # its mode (min or max) is derived from the name by ktrain.control.mode_for.
    monitor: ClassVar[str] = "val_accuracy"
    # Smallest change that counts as an improvement of the monitor for LR-on-plateau and early
    # stopping; None keeps the seed's (1e-4 and 2e-4, sized for accuracies).
    monitor_min_delta: ClassVar[float | None] = None

    @abc.abstractmethod
    def losses(self, batch: Batch) -> dict[str, tf.Tensor]:
        """Return ``{part name: loss}``, each already weighted: per-example ``[batch]`` or a global scalar."""

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


def build_method(name: str, options: dict) -> Method:
    """Instantiate method ``name`` with those of ``options`` its constructor takes.

    ``compare`` passes one set of options (-t, -kdl, -pktl, -kdw, -pktw) to every method.
    """
    cls = get_method(name)
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{key: value for key, value in options.items() if key in accepted})

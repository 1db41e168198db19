"""The contract every transfer method follows, and the registry that finds them.

A method is one file: a pure float32 loss function and a thin class that declares

* **options**: a frozen dataclass of its settings. Each field is an :class:`Option` (name, CLI
  flags, one-line help, check) with this method's default. The CLI, the Python API and
  results.json are derived from it, so every default is written once, in the method's file.
* **taps**: what it needs of each network (:class:`Tap`: the logits, the penultimate features or a
  named layer), and which of those it must see over the *global* batch under replicas.
* **losses**: named, already-weighted losses from a :class:`Batch`. It never sees the optimizer,
  the strategy or the replica count.
* optional **state**: trainable variables (a regressor, say), built in the strategy's scope by
  :meth:`Method.build_state`, trained with the student by the same optimizer, checkpointed, and
  never saved into the student file.
* **variants**: aliases, and the method that takes its place with an ensemble teacher.

Reduction rule (applied in ``ktrain.step`` and nowhere else): a loss of shape ``[batch]`` is
per-example over this replica's samples; a scalar is a loss over the global batch, computed from
gathered taps (``batch.global_student`` ...). The engine sums the first and divides by the global
batch size, and divides the second by the replica count, because every replica computes the same
scalar and the gather's gradient sums what each replica sends back.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import tensorflow as tf

from ktrain.errors import KtrainError
from ktrain.losses import cross_entropy, mixed_cross_entropy
from ktrain.options import _OPTION, Option

__all__ = ["Option"]  # re-exported: a method declares its options with it

REGISTRY: dict[str, type[Method]] = {}


# -- options ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """Base of every method's options: values are converted and checked once, when built."""

    def __post_init__(self):
        for spec in self.specs().values():
            object.__setattr__(self, spec.name, spec.convert(getattr(self, spec.name)))

    @classmethod
    def specs(cls) -> dict[str, Option]:
        return {field.name: field.metadata[_OPTION] for field in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {field.name: field.default for field in dataclasses.fields(cls)}

    @classmethod
    def from_values(cls, values: Mapping[str, Any], method: str) -> Options:
        """Build from ``values``; a name this method does not have is an error naming the valid ones."""
        specs = cls.specs()
        unknown = sorted(set(values) - set(specs))
        if unknown:
            valid = ", ".join(specs) or "none"
            raise KtrainError(f"method '{method}' has no option '{unknown[0]}': its options are {valid}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NoOptions(Options):
    """A method without settings."""


# -- taps, context, batch ------------------------------------------------------------------------
@dataclass(frozen=True)
class Tap:
    """A tensor of a network: ``logits``, the ``penultimate`` features (the classifier's input), or
    the output of ``layer``. ``gather``: the method needs it over the global batch (relational)."""

    kind: str
    layer: str | None = None
    gather: bool = False

    @property
    def key(self) -> str:
        """The tensor's name in views and caches (a gathered tap is the same tensor)."""
        return f"layer:{self.layer}" if self.kind == "layer" else self.kind

    @classmethod
    def features(cls, layer: str | None = None, gather: bool = False) -> Tap:
        """A named layer when ``layer`` is given, else the penultimate features."""
        return cls("layer", layer, gather) if layer else cls("penultimate", None, gather)


LOGITS = Tap("logits")


@dataclass(frozen=True)
class Context:
    """Where training stands: ``epoch`` (float32 scalar tensor, counted from 1) of ``epochs``."""

    epoch: tf.Tensor
    epochs: int


@dataclass(frozen=True)
class Batch:
    """What a method sees of one step, all float32, keyed by the method's own tap names.

    ``student``/``teacher``/``labels`` are this replica's samples; ``global_student``/
    ``global_teacher``/``global_labels`` hold the taps declared with ``gather=True`` over the
    global batch (on one device, the same tensors).
    """

    labels: tf.Tensor
    student: Mapping[str, tf.Tensor]
    teacher: Mapping[str, tf.Tensor]
    context: Context
    global_student: Mapping[str, tf.Tensor]
    global_teacher: Mapping[str, tf.Tensor]
    global_labels: tf.Tensor
    # Mixed samples (mixup, cutmix): each sample's partner label and the share of ``labels`` in
    # its label; None when the run does not mix.
    partners: tf.Tensor | None = None
    weights: tf.Tensor | None = None

    @classmethod
    def local(
        cls,
        labels,
        student_logits,
        teacher_logits=None,
        *,
        student=None,
        teacher=None,
        epoch: float = 1.0,
        epochs: int = 1,
    ) -> Batch:
        """A one-device batch (global = local): for tests and for calling a loss by hand."""
        student = {"logits": student_logits, **(student or {})}
        teacher = dict(teacher or {}) | ({"logits": teacher_logits} if teacher_logits is not None else {})
        context = Context(tf.constant(float(epoch)), epochs)
        return cls(labels, student, teacher, context, student, teacher, labels)

    def label_loss(self, logits: tf.Tensor) -> tf.Tensor:
        """Per-example cross-entropy on the labels: ``w · CE(y) + (1 − w) · CE(y')`` for a mixed sample."""
        if self.partners is None:
            return cross_entropy(self.labels, logits)
        return mixed_cross_entropy(self.labels, self.partners, self.weights, logits)

    @property
    def student_logits(self) -> tf.Tensor:
        return self.student["logits"]

    @property
    def teacher_logits(self) -> tf.Tensor:
        return self.teacher["logits"]


# -- the method ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Switch:
    """An on/off CLI flag that selects a method (``-sl`` for selective KD) on the commands named."""

    flags: tuple[str, ...]
    help: str
    commands: tuple[str, ...]
    replaces: str | None = None  # on a one-method command, the method it replaces (else: added)


class Method(abc.ABC):
    """A transfer method. Subclasses set the class attributes and implement :meth:`losses`."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[Options]] = NoOptions
    uses_teacher: ClassVar[bool] = True
    # The teacher may be an ensemble of specialists (its members' logits side by side): see attach_teacher.
    uses_ensemble: ClassVar[bool] = False
    # The method that takes this one's place when the teacher is an ensemble (kd -> ensemble-kd).
    ensemble_variant: ClassVar[str | None] = None
    switch: ClassVar[Switch | None] = None
    # False when the method leaves the class head untrained (PKT): its top-1 then means little, so
    # plots use feature kNN accuracy instead and "best student" selection skips it.
    trains_head: ClassVar[bool] = True
    # The validation quantity that drives LR-on-plateau, early stopping and best weights; its mode
    # (min or max) comes from ktrain.control.mode_for.
    monitor: ClassVar[str] = "val_accuracy"
    # Smallest change of the monitor that counts as an improvement; None keeps the seed's.
    monitor_min_delta: ClassVar[float | None] = None
    # Whether the loss learns from mixed samples (mixup, cutmix): its labels enter only through
    # Batch.label_loss. A loss that needs one hard label per sample (a target-class mask, a gate)
    # keeps False, and a run that mixes refuses it in one line.
    mixed_samples: ClassVar[bool] = False
    # Whether the loss can learn from cached top-N teacher logits (--cache-topk), whose other
    # classes share the remaining probability evenly; losses that read every logit keep False.
    topk_targets: ClassVar[bool] = False

    def __init__(self, options: Options | None = None, **values: Any):
        """Build from an Options object, or from keyword values (``KnowledgeDistillation(temperature=4)``);
        an option name the method does not have is a KtrainError naming the valid ones."""
        if options is None:
            options = type(self).Options.from_values(values, self.name)
        elif values:
            raise TypeError("give an Options object or keyword values, not both")
        self.options = options
        if not isinstance(self.options, type(self).Options):
            raise TypeError(f"{self.name} takes {type(self).Options.__name__}, not {type(self.options).__name__}")

    # -- what it needs ---------------------------------------------------------------------------
    @classmethod
    def resolve(cls, options: Options, student, teacher) -> Options:
        """``options`` with whatever is chosen from the models filled in (AT's layer pairs, say), so
        taps, state and results.json see concrete values. Called once the models are loaded, before
        any view is built; ``teacher`` is None for a method without one. Default: unchanged."""
        return options

    @classmethod
    def mixing_refusal(cls, options: Options) -> str | None:
        """Why these options cannot learn from mixed samples, or None when they can (default: from
        :attr:`mixed_samples`)."""
        return None if cls.mixed_samples else "its loss needs one hard label per sample"

    @classmethod
    def epochs_refusal(cls, options: Options, epochs: int) -> str | None:
        """Why these options cannot train for ``epochs`` epochs, or None when they can."""
        return None

    @classmethod
    def topk_refusal(cls, options: Options) -> str | None:
        """Why these options cannot learn from top-N teacher logits, or None when they can (default:
        from :attr:`topk_targets`)."""
        return None if cls.topk_targets else "its loss does not accept top-N teacher logits"

    def student_taps(self) -> dict[str, Tap]:
        return {"logits": LOGITS}

    def teacher_taps(self) -> dict[str, Tap]:
        return {"logits": LOGITS} if self.uses_teacher else {}

    @property
    def gathers(self) -> bool:
        """Whether any tap spans the global batch (the engine then all-gathers it and the labels)."""
        return any(tap.gather for tap in (*self.student_taps().values(), *self.teacher_taps().values()))

    def attach_teacher(self, teacher) -> None:
        """Called once the teacher is loaded (a view, or a SpecialistEnsemble for ensemble methods)."""

    # -- state -----------------------------------------------------------------------------------
    def build_state(self, student_shapes: dict[str, tf.TensorShape], teacher_shapes: dict[str, tf.TensorShape]):
        """Create trainable variables from the taps' shapes (called inside the strategy's scope)."""

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return []

    # -- the loss --------------------------------------------------------------------------------
    @abc.abstractmethod
    def losses(self, batch: Batch) -> dict[str, tf.Tensor]:
        """``{part name: loss}``, each already weighted: per-example ``[batch]`` or a global scalar."""

    def record(self) -> dict[str, Any]:
        """The resolved options, as results.json records them."""
        return self.options.to_dict()


# -- registry ------------------------------------------------------------------------------------
_discovered = False


def discover() -> None:
    """Import every module of ``ktrain.methods`` once, so each registers its method.

    Lazy (on the first registry look-up) rather than at package import, so that lower modules
    (taps, step) can import this contract without importing every method."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("ktrain.methods")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"ktrain.methods.{module.name}")


def registered() -> list[type[Method]]:
    """Every registered method class, once each, in registration order."""
    discover()
    return list(dict.fromkeys(REGISTRY.values()))


def register(cls: type[Method]) -> type[Method]:
    for key in (cls.name, *cls.aliases):
        if key in REGISTRY:
            raise RuntimeError(f"method name '{key}' registered twice")
    others = {name: spec for other in dict.fromkeys(REGISTRY.values()) for name, spec in other.Options.specs().items()}
    for spec in cls.Options.specs().values():
        shared = others.get(spec.name)
        if shared is not None and shared != spec:
            raise RuntimeError(f"option '{spec.name}' of '{cls.name}' differs from the one other methods declare")
    for key in (cls.name, *cls.aliases):
        REGISTRY[key] = cls
    return cls


def unregister(cls: type[Method]) -> None:
    """Remove ``cls`` (tests register toy methods)."""
    for key in [key for key, value in REGISTRY.items() if value is cls]:
        del REGISTRY[key]


def method_names() -> list[str]:
    """Canonical names, in registration order."""
    return [cls.name for cls in registered()]


def get_method(name: str) -> type[Method]:
    discover()
    key = name.strip().lower()
    if key not in REGISTRY:
        names = method_names()
        close = difflib.get_close_matches(key, list(REGISTRY), n=1)
        hint = f" (did you mean {REGISTRY[close[0]].name}?)" if close else ""
        raise KtrainError(f"unknown method '{name}'{hint}: use one of {', '.join(names)}")
    return REGISTRY[key]


def option_specs() -> dict[str, Option]:
    """Every option any registered method declares, by name (one spec per name)."""
    specs: dict[str, Option] = {}
    for cls in registered():
        specs.update(cls.Options.specs())
    return specs

"""Teacher ensembles of specialists: the members, the classes each covers, and how they combine.

A member is a classifier over a set of classes S_k: a **generalist** covers every class, a
**specialist** covers part of them. An ensemble comes from

* one Keras model with several outputs: an output as wide as the class count is a generalist;
  narrower outputs are specialists covering consecutive classes in output order, the convention
  of the seed's pyramid and complicated ensembles (``[generalist 10, specialist 5, specialist 5]``
  means classes 0-9, 0-4 and 5-9); or
* model files, each with its classes: ``FILE:0-4`` or ``FILE:0,2,5-7`` (no classes: a generalist).

What the step, the soft-target cache and the ensemble methods see of an ensemble is its members'
logits side by side, ``[batch, Σ_k |S_k|]``; ``layout`` (the class tuple of each member, in
column order) says which columns belong to which classes.

The **averaged ensemble** (what plain ensemble KD distils, and how the teacher is scored):

* with generalists: each specialist's distribution over S_k is scaled by the generalists' mean
  probability of S_k, so it refines the generalists inside its group instead of claiming a fixed
  share; each class then takes the mean of the members covering it (renormalised);
* without one: the mean of the member logits covering each class, then softmax. That assumes the
  specialists' logits share one scale, true of a jointly trained model and not of separately
  trained files, so such files should come with a generalist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from ktrain import models
from ktrain.classes import format_classes, parse_classes
from ktrain.data import DataSplits
from ktrain.errors import KtrainError
from ktrain.methods.base import LOGITS
from ktrain.scaling import carry_input_scale
from ktrain.specs import label
from ktrain.taps import LOG_FLOOR, NetworkView, trainable_parameters

_WITH_CLASSES = re.compile(r"^(?P<path>.+):(?P<classes>\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)$")


# -- class sets --------------------------------------------------------------------------------
def split_spec(spec: str) -> tuple[str, str | None]:
    """``'teacher.keras:0-4'`` -> ``('teacher.keras', '0-4')``; no class suffix (or a model object)
    -> ``(spec, None)``."""
    if not isinstance(spec, str):
        return spec, None
    match = _WITH_CLASSES.match(spec)
    return (match["path"], match["classes"]) if match else (spec, None)


def is_generalist(classes: tuple[int, ...], num_classes: int) -> bool:
    return tuple(classes) == tuple(range(num_classes))


def _scatter(classes: tuple[int, ...], num_classes: int) -> tf.Tensor:
    """``[|S|, C]`` 0/1 matrix: right-multiplying member values over S places them at their classes."""
    matrix = np.zeros((len(classes), num_classes), np.float32)
    matrix[np.arange(len(classes)), list(classes)] = 1.0
    return tf.constant(matrix)


def member_columns(member_logits: tf.Tensor, layout: tuple[tuple[int, ...], ...]) -> list[tf.Tensor]:
    """The side-by-side member logits cut back into one ``[batch, |S_k|]`` tensor per member."""
    member_logits = tf.cast(member_logits, tf.float32)
    columns, start = [], 0
    for classes in layout:
        columns.append(member_logits[:, start : start + len(classes)])
        start += len(classes)
    return columns


def generalist_probabilities(member_logits, layout, num_classes: int) -> tf.Tensor | None:
    """Mean softmax of the generalists, ``[batch, C]``; None when the ensemble has none."""
    columns = member_columns(member_logits, layout)
    general = [tf.nn.softmax(z) for z, classes in zip(columns, layout) if is_generalist(classes, num_classes)]
    return tf.add_n(general) / len(general) if general else None


def ensemble_log_probs(member_logits, layout, num_classes: int) -> tf.Tensor:
    """Log-probabilities ``[batch, C]`` of the averaged ensemble (module docstring), in float32."""
    columns = member_columns(member_logits, layout)
    coverage = np.zeros(num_classes, np.float32)
    for classes in layout:
        coverage[list(classes)] += 1.0
    route = generalist_probabilities(member_logits, layout, num_classes)
    if route is None:
        summed = tf.add_n([z @ _scatter(classes, num_classes) for z, classes in zip(columns, layout)])
        return tf.nn.log_softmax(summed / coverage, axis=-1)
    total = 0.0
    for z, classes in zip(columns, layout):
        probabilities = tf.nn.softmax(z)
        if not is_generalist(classes, num_classes):
            group_mass = tf.reduce_sum(tf.gather(route, list(classes), axis=1), axis=1, keepdims=True)
            probabilities = group_mass * probabilities
        total += probabilities @ _scatter(classes, num_classes)
    averaged = total / coverage
    averaged /= tf.reduce_sum(averaged, axis=-1, keepdims=True)
    return tf.math.log(tf.maximum(averaged, LOG_FLOOR))


# -- the ensemble ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    name: str
    classes: tuple[int, ...]
    view: NetworkView


class ModelGroup:
    """The models of an ensemble given as several files: frozen and fingerprinted together."""

    def __init__(self, group: list[keras.Model]):
        self.models = group

    @property
    def trainable(self) -> bool:
        return any(model.trainable for model in self.models)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for model in self.models:
            model.trainable = value

    def get_weights(self) -> list[np.ndarray]:
        return [weight for model in self.models for weight in model.get_weights()]


class SpecialistEnsemble:
    """A teacher made of members: ``tap`` gives their logits side by side (``layout`` order)."""

    def __init__(self, members: list[Member], num_classes: int, model):
        """``model`` is the (still trainable) multi-output model or the ModelGroup of member files."""
        covered = {c for member in members for c in member.classes}
        missing = sorted(set(range(num_classes)) - covered)
        if missing:
            raise KtrainError(
                f"no teacher covers class(es) {format_classes(missing)}: add a generalist or a --specialist "
                f"FILE:{format_classes(missing)}"
            )
        self.members = members
        self.num_classes = num_classes
        self.layout = tuple(member.classes for member in members)
        self.output_width = sum(len(classes) for classes in self.layout)
        self.model = model
        self.params = sum(trainable_parameters(m) for m in getattr(model, "models", [model]))
        self.has_generalist = any(is_generalist(classes, num_classes) for classes in self.layout)
        self.source = "; ".join(f"{m.name} [{format_classes(m.classes)}]: {m.view.source}" for m in members)
        self.feature_source = None
        self.keys = [LOGITS.key]
        self.sources = {LOGITS.key: self.source}
        self.shapes = {LOGITS.key: tf.TensorShape([None, self.output_width])}
        self.predict = tf.function(lambda images: self.tap(images, training=False), reduce_retracing=True)
        self.averaged = AveragedView(self)

    def tap(self, images: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """The members' logits side by side, under the logits tap's key (an ensemble has no other tap)."""
        logits = [member.view(images, training=training) for member in self.members]
        return {LOGITS.key: tf.concat(logits, axis=-1)}

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.tap(images, training)[LOGITS.key]


class AveragedView:
    """The ensemble as one classifier: ``predict`` gives the averaged ensemble's log-probabilities."""

    def __init__(self, ensemble: SpecialistEnsemble):
        self.ensemble = ensemble
        self.num_classes = ensemble.num_classes
        self.predict = tf.function(self.tap, reduce_retracing=True)

    def tap(self, images: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        members = self.ensemble(images, training)
        return {LOGITS.key: ensemble_log_probs(members, self.ensemble.layout, self.num_classes)}

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.tap(images, training)[LOGITS.key]


# -- loading -----------------------------------------------------------------------------------
def members_of(model: keras.Model, num_classes: int, spec: str, probe: np.ndarray | None) -> list[Member]:
    """One member per output of ``model``; narrower outputs take consecutive classes in output order."""
    widths = [int(output.shape[-1]) for output in model.outputs]
    narrow = [width for width in widths if width != num_classes]
    if narrow and sum(narrow) != num_classes:
        raise KtrainError(
            f"teacher '{spec}' has outputs of widths {', '.join(map(str, widths))}: outputs narrower than the "
            f"{num_classes} classes must cover them in order once; save each specialist as a file and give "
            "--specialist FILE:CLASSES"
        )
    members, start = [], 0
    for index, (output, width) in enumerate(zip(model.outputs, widths)):
        if width == num_classes:
            classes = tuple(range(num_classes))
        else:
            classes = tuple(range(start, start + width))
            start += width
        layer = output._keras_history.operation.name
        sub = carry_input_scale(model, keras.Model(model.inputs, output, name=f"{model.name}_{index}"))
        view = NetworkView(sub, probe, name=f"output '{layer}' of teacher '{spec}'")
        members.append(Member(layer, classes, view))
    return members


def ensemble_from_model(model: keras.Model, data: DataSplits, spec: str) -> SpecialistEnsemble:
    return SpecialistEnsemble(members_of(model, data.num_classes, spec, data.x_val), data.num_classes, model)


def load_ensemble(
    specs: list[str], data: DataSplits, first: keras.Model | None = None, input_scale: tuple | None = None
) -> SpecialistEnsemble:
    """The ensemble of the teacher ``specs``: multi-output models, ``FILE:CLASSES`` specialists, generalists.

    ``first``, if given, is the already loaded (or just trained) model of ``specs[0]``; ``input_scale``
    is the members' (``--teacher-input-scale``)."""
    members: list[Member] = []
    loaded: list[keras.Model] = []
    for index, spec in enumerate(specs):
        path, text = split_spec(spec)
        name = label(path)  # a model object is named, not recorded
        if index == 0 and first is not None:
            model = first
        else:
            model = models.load_for(path, role="teacher", data=data, input_scale=input_scale)
        loaded.append(model)
        if len(model.outputs) > 1:
            if text is not None:
                raise KtrainError(
                    f"'{spec}' has {len(model.outputs)} outputs, whose classes follow from their order: drop ':{text}'"
                )
            members += members_of(model, data.num_classes, name, data.x_val)
            continue
        classes = parse_classes(text, data.num_classes, spec) if text else tuple(range(data.num_classes))
        view = NetworkView(model, data.x_val, name=f"teacher '{name}'")
        if view.num_classes != len(classes):
            raise KtrainError(
                f"'{spec}' outputs {view.num_classes} classes but is given {len(classes)} "
                f"({text or 'all'}): give as many classes as the model outputs"
            )
        members.append(Member(name, classes, view))
    ensemble = SpecialistEnsemble(members, data.num_classes, loaded[0] if len(loaded) == 1 else ModelGroup(loaded))
    ensemble.model.trainable = False
    return ensemble

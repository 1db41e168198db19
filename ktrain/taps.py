"""One view per network: its logits, whatever its last layer is, and the tensors a method taps.

The seed assumed ``layers[-2]`` held the logits and softmaxed teacher *probabilities* again (its
double-softmax bug). Here the logits are found by looking at the layer that makes the output:

* ``Activation("softmax")`` or ``Softmax``: the tensor entering it;
* ``Dense(..., activation="softmax")``: the same kernel and bias without the softmax;
* anything else: the output itself, unless a probe batch shows it is a probability vector that
  cannot be stripped (an averaging ensemble); then ``log(p)`` is used, whose softmax is ``p``.

Other tensors (the penultimate features, named layers) come from the same forward pass, through
one multi-output Keras model built from the union of the taps asked for, as Keras 3's distillation
losses do with the layers they declare. A view shares the model's variables, so training through
the view trains the model, and saving the model keeps the interface it came with (a softmax output
stays a softmax output).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from ktrain import scaling
from ktrain.data import model_input
from ktrain.errors import KtrainError
from ktrain.methods.base import LOGITS, Tap

LOG_FLOOR = 1e-12


class NetworkView:
    """Named tensors of one classifier from one forward pass: ``view.tap(images, training)`` returns
    ``{tap key: float32 tensor}`` (unflattened) for the logits and every :class:`Tap` asked for;
    ``view(images, training)`` returns the logits alone.
    """

    def __init__(
        self,
        model: keras.Model,
        probe_images: np.ndarray | None = None,
        *,
        name: str = "model",
        taps: Iterable[Tap] = (),
    ):
        if len(model.outputs) != 1:
            raise KtrainError(f"{name} has {len(model.outputs)} outputs: ktrain needs one class-score output")
        self.model = model
        self.name = name
        self._dense = None
        self._take_log = False
        logits_tensor, self._classifier = self._find_logits(model, probe_images)
        self.num_classes = int(model.outputs[0].shape[-1])
        self.output_width = self.num_classes  # columns of teacher output the step and the cache see
        # Counted now: freezing a teacher later empties its trainable_weights.
        self.params = trainable_parameters(model)
        self.sources = {LOGITS.key: self.source}
        outputs = {LOGITS.key: logits_tensor}
        for tap in taps:
            if tap.key not in outputs:
                outputs[tap.key] = self._tap_tensor(tap)
        self.keys = list(outputs)
        self.shapes = {key: tf.TensorShape(tensor.shape) for key, tensor in outputs.items()}
        self.shapes[LOGITS.key] = tf.TensorShape([None, self.num_classes])
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        self._body = keras.Model(inputs, list(outputs.values()))
        # Inference-mode taps, traced once per view; batch sizes may vary.
        self.predict = tf.function(lambda images: self.tap(images, training=False), reduce_retracing=True)

    def _find_logits(self, model, probe_images):
        last = model.outputs[0]._keras_history.operation
        if _is_softmax_activation(last):
            self.source = f"input of softmax layer '{last.name}'"
            return last.input, last.input._keras_history.operation
        if isinstance(last, keras.layers.Dense) and _is_softmax(last.activation):
            self._dense = last
            self.source = f"dense layer '{last.name}' without its softmax"
            return last.input, last  # the dense layer's input; the view applies kernel and bias
        self._take_log = probe_images is not None and _looks_like_probabilities(model, probe_images)
        self.source = "log of probability output" if self._take_log else "model output"
        return model.outputs[0], last

    def _tap_tensor(self, tap: Tap):
        if tap.kind == "layer":
            try:
                layer = self.model.get_layer(tap.layer)
            except ValueError:
                names = [layer.name for layer in self.model.layers]
                nearest = difflib.get_close_matches(tap.layer, names, n=3, cutoff=0.3) or names[-4:]
                raise KtrainError(
                    f"{self.name} has no layer '{tap.layer}': choose one of its layers, e.g. {', '.join(nearest)}"
                ) from None
            self.sources[tap.key] = f"output of layer '{tap.layer}'"
            return layer.output
        if tap.kind != "penultimate":
            raise KtrainError(f"unknown tap kind '{tap.kind}': use logits, penultimate or layer")
        inputs = self._classifier.input
        if isinstance(inputs, (list, tuple)) or len(inputs.shape) < 2:
            raise KtrainError(
                f"{self.name}'s classifier layer '{self._classifier.name}' has no single input, so its penultimate "
                "features are not defined: name a feature layer with --student-layer / --teacher-layer"
            )
        self.sources[tap.key] = f"input of classifier layer '{self._classifier.name}'"
        return inputs

    @property
    def feature_key(self) -> str | None:
        """The first tap besides the logits (the features kNN and mAP are measured on), if any."""
        return next((key for key in self.keys if key != LOGITS.key), None)

    @property
    def feature_source(self) -> str | None:
        return self.sources.get(self.feature_key) if self.feature_key else None

    def tap(self, images: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Every tap in float32 from one forward pass, keyed by ``Tap.key``; ``images`` as ktrain's
        pipelines give them, brought to the pixel range the model takes (``--input-scale``)."""
        outputs = self._body(scaling.apply(self.model, images), training=training)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        tensors = dict(zip(self.keys, outputs))
        logits = tensors[LOGITS.key]
        if self._dense is not None:
            logits = tf.matmul(logits, self._dense.kernel) + self._dense.bias
        logits = tf.cast(logits, tf.float32)
        if self._take_log:
            logits = tf.math.log(tf.maximum(logits, LOG_FLOOR))
        return {key: logits if key == LOGITS.key else tf.cast(value, tf.float32) for key, value in tensors.items()}

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.tap(images, training)[LOGITS.key]


def method_view(
    model: keras.Model, method, role: str = "student", probe_images: np.ndarray | None = None, name: str | None = None
) -> NetworkView:
    """``model`` as ``method`` taps it in the role of the ``student`` or the ``teacher``."""
    taps = method.student_taps() if role == "student" else method.teacher_taps()
    return NetworkView(model, probe_images, name=name or role, taps=taps.values())


def trainable_parameters(model) -> int:
    """Trainable parameters of ``model``; count before freezing it. A model that came with none
    trainable (a teacher its author froze) counts all its parameters."""
    weights = model.trainable_weights or model.weights
    return int(sum(np.prod(variable.shape) for variable in weights))


def _is_softmax(activation) -> bool:
    return getattr(activation, "__name__", "") == "softmax"


def _is_softmax_activation(layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    return isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)


def _looks_like_probabilities(model: keras.Model, images: np.ndarray) -> bool:
    outputs = np.asarray(model(scaling.apply(model, model_input(images[:32])), training=False), dtype=np.float64)
    return bool(outputs.min() >= 0.0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))

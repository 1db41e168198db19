"""One view per network that returns its logits, whatever its last layer is.

The seed assumed ``layers[-2]`` held the logits and softmaxed teacher *probabilities* again (its
double-softmax bug). Here the logits are found by looking at the layer that makes the output:

* ``Activation("softmax")`` or ``Softmax``: the tensor entering it;
* ``Dense(..., activation="softmax")``: the same kernel and bias without the softmax;
* anything else: the output itself, unless a probe batch shows it is a probability vector that
  cannot be stripped (an averaging ensemble); then ``log(p)`` is used, whose softmax is ``p``.

A view shares the model's variables, so training through the view trains the model, and saving the
model keeps the interface it came with (a softmax output stays a softmax output).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ktrain.errors import KtrainError

LOG_FLOOR = 1e-12


class LogitsView:
    """Callable ``view(images, training) -> float32 logits`` over a single-output classifier."""

    def __init__(self, model: keras.Model, probe_images: np.ndarray | None = None, *, name: str = "model"):
        if len(model.outputs) != 1:
            raise KtrainError(f"{name} has {len(model.outputs)} outputs: ktrain needs one class-score output")
        self.model = model
        self._dense = None
        self._take_log = False
        last = model.outputs[0]._keras_history.operation
        if _is_softmax_activation(last):
            self._body = keras.Model(model.inputs, last.input)
            self.source = f"input of softmax layer '{last.name}'"
        elif isinstance(last, keras.layers.Dense) and _is_softmax(last.activation):
            self._body = keras.Model(model.inputs, last.input)
            self._dense = last
            self.source = f"dense layer '{last.name}' without its softmax"
        else:
            self._body = model
            self._take_log = probe_images is not None and _looks_like_probabilities(model, probe_images)
            self.source = "log of probability output" if self._take_log else "model output"
        self.num_classes = int(model.outputs[0].shape[-1])
        # Counted now: freezing a teacher later empties its trainable_weights.
        self.params = int(sum(np.prod(variable.shape) for variable in model.trainable_weights))

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        outputs = self._body(images, training=training)
        if self._dense is not None:
            outputs = tf.matmul(outputs, self._dense.kernel) + self._dense.bias
        outputs = tf.cast(outputs, tf.float32)
        if self._take_log:
            outputs = tf.math.log(tf.maximum(outputs, LOG_FLOOR))
        return outputs


def _is_softmax(activation) -> bool:
    return getattr(activation, "__name__", "") == "softmax"


def _is_softmax_activation(layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    return isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)


def _looks_like_probabilities(model: keras.Model, images: np.ndarray) -> bool:
    outputs = np.asarray(model(tf.cast(images[:32], tf.float32) / 255.0, training=False), dtype=np.float64)
    return bool(outputs.min() >= 0.0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))

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
    """Callable ``view(images, training) -> float32 logits`` over a single-output classifier.

    With ``features=True`` (or a ``feature_layer`` name) the view also taps a feature tensor, by
    default the input of the final classifier layer, flattened; ``view.tap(images, training)``
    returns ``(logits, features)`` from **one** forward pass of a multi-output view of the model.
    """

    def __init__(
        self,
        model: keras.Model,
        probe_images: np.ndarray | None = None,
        *,
        name: str = "model",
        features: bool = False,
        feature_layer: str | None = None,
    ):
        if len(model.outputs) != 1:
            raise KtrainError(f"{name} has {len(model.outputs)} outputs: ktrain needs one class-score output")
        self.model = model
        self._dense = None
        self._take_log = False
        last = model.outputs[0]._keras_history.operation
        classifier = None
        if _is_softmax_activation(last):
            logits_tensor = last.input
            classifier = logits_tensor._keras_history.operation
            self.source = f"input of softmax layer '{last.name}'"
        elif isinstance(last, keras.layers.Dense) and _is_softmax(last.activation):
            logits_tensor = last.input  # the dense layer's input; the view applies kernel and bias
            self._dense = classifier = last
            self.source = f"dense layer '{last.name}' without its softmax"
        else:
            logits_tensor = model.outputs[0]
            classifier = last
            self._take_log = probe_images is not None and _looks_like_probabilities(model, probe_images)
            self.source = "log of probability output" if self._take_log else "model output"
        self.num_classes = int(model.outputs[0].shape[-1])
        self.output_width = self.num_classes  # columns of teacher output the step and the cache see
        # Counted now: freezing a teacher later empties its trainable_weights.
        self.params = trainable_parameters(model)
        self.feature_source = None
        outputs = [logits_tensor]
        if features or feature_layer:
            outputs.append(self._feature_tensor(model, classifier, feature_layer, name))
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        self._body = keras.Model(inputs, outputs)
        # Inference-mode (logits, features), traced once per view; batch sizes may vary.
        self.predict = tf.function(lambda images: self.tap(images, training=False), reduce_retracing=True)

    def _feature_tensor(self, model, classifier, feature_layer, name):
        if feature_layer:
            try:
                layer = model.get_layer(feature_layer)
            except ValueError:
                names = ", ".join(layer.name for layer in model.layers)
                raise KtrainError(f"{name} has no layer '{feature_layer}': choose one of {names}") from None
            self.feature_source = f"output of layer '{feature_layer}'"
            return layer.output
        inputs = classifier.input
        if isinstance(inputs, (list, tuple)) or len(inputs.shape) < 2:
            raise KtrainError(
                f"{name}'s classifier layer '{classifier.name}' has no single input, so its penultimate features "
                "are not defined: name a feature layer with --student-layer / --teacher-layer"
            )
        self.feature_source = f"input of classifier layer '{classifier.name}'"
        return inputs

    def tap(self, images: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor | None]:
        """``(logits, features)`` in float32 from one forward pass; features flattened to [batch, width]."""
        outputs = self._body(images, training=training)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        logits = outputs[0]
        if self._dense is not None:
            logits = tf.matmul(logits, self._dense.kernel) + self._dense.bias
        logits = tf.cast(logits, tf.float32)
        if self._take_log:
            logits = tf.math.log(tf.maximum(logits, LOG_FLOOR))
        if len(outputs) == 1:
            return logits, None
        features = tf.cast(outputs[1], tf.float32)
        return logits, tf.reshape(features, [tf.shape(features)[0], -1])

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.tap(images, training)[0]


def trainable_parameters(model) -> int:
    """Trainable parameters of ``model``; count before freezing it (a frozen model has none)."""
    return int(sum(np.prod(variable.shape) for variable in model.trainable_weights))


def _is_softmax(activation) -> bool:
    return getattr(activation, "__name__", "") == "softmax"


def _is_softmax_activation(layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    return isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)


def _looks_like_probabilities(model: keras.Model, images: np.ndarray) -> bool:
    outputs = np.asarray(model(tf.cast(images[:32], tf.float32) / 255.0, training=False), dtype=np.float64)
    return bool(outputs.min() >= 0.0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))

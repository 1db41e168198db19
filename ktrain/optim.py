"""Optimizers with the seed's options, an LR the plateau controller can lower, and the seed's decay."""

from __future__ import annotations

import keras
import tensorflow as tf

from ktrain.config import OptimizerConfig


class InverseTimeDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``lr = base / (1 + decay · step)``: the seed's (legacy Keras) ``decay``, which Keras 3 dropped.

    ``base`` is a variable so LR-on-plateau can lower it between steps without retracing.
    """

    def __init__(self, base: tf.Variable, decay: float):
        self.base = base
        self.decay = float(decay)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        return self.base / (1.0 + self.decay * step)

    def get_config(self):
        return {"base": float(self.base.numpy()), "decay": self.decay}


def build_optimizer(config: OptimizerConfig) -> tuple[keras.optimizers.Optimizer, tf.Variable]:
    """Build the optimizer (call inside ``strategy.scope()``); returns it and its base-LR variable.

    Clipping is not given to Keras: Keras clips each replica's gradient before the all-reduce, so
    clipped results would depend on the replica count. The engine clips the summed gradient instead.
    """
    base = tf.Variable(config.learning_rate, trainable=False, dtype=tf.float32, name="base_learning_rate")
    lr = InverseTimeDecay(base, config.decay)
    name = config.name
    if name == "adam":
        optimizer = keras.optimizers.Adam(lr, beta_1=config.beta1, beta_2=config.beta2)
    elif name == "adamax":
        optimizer = keras.optimizers.Adamax(lr, beta_1=config.beta1, beta_2=config.beta2)
    elif name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(lr, rho=config.rho)
    elif name == "adadelta":
        optimizer = keras.optimizers.Adadelta(lr, rho=config.rho)
    elif name == "sgd":
        optimizer = keras.optimizers.SGD(lr, momentum=config.momentum)
    else:  # adagrad; names are validated in OptimizerConfig
        optimizer = keras.optimizers.Adagrad(lr)
    return optimizer, base


def clip_gradients(gradients: list[tf.Tensor], config: OptimizerConfig) -> list[tf.Tensor]:
    """Keras semantics: ``clip_norm`` bounds each variable's gradient norm, ``clip_value`` each element."""
    if config.clip_norm is not None:
        return [tf.clip_by_norm(g, config.clip_norm) for g in gradients]
    if config.clip_value is not None:
        return [tf.clip_by_value(g, -config.clip_value, config.clip_value) for g in gradients]
    return gradients

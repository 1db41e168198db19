"""Optimizers with the seed's options, and their learning rate: plateau (the seed's), cosine or constant."""

from __future__ import annotations

import keras
import tensorflow as tf

from ktrain.config import SEED_DECAY, OptimizerConfig, ScheduleConfig


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


class LearningRate:
    """The rate the optimizer follows, a function of its step count (so a restored checkpoint
    resumes it exactly).

    * ``plateau`` (the seed's) and ``constant``: ``base / (1 + d · step)``; ``base`` is a variable
      that LR-on-plateau lowers between epochs (``constant`` never lowers it).
    * ``cosine``: Keras's ``CosineDecay`` from the rate to 0 over the run, after a linear warm-up
      from 0 over ``warmup`` epochs. Its lengths are variables set by :meth:`start` once the
      number of steps per epoch is known.
    """

    def __init__(self, optimizer: OptimizerConfig, schedule: ScheduleConfig):
        self.name = schedule.lr_schedule
        self.warmup_epochs = schedule.lr_warmup
        self.base = tf.Variable(optimizer.learning_rate, trainable=False, dtype=tf.float32, name="base_learning_rate")
        if self.name == "cosine":
            self.decay_steps = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="cosine_decay_steps")
            self.warmup_steps = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="cosine_warmup_steps")
            self.schedule = keras.optimizers.schedules.CosineDecay(
                0.0, self.decay_steps, warmup_target=optimizer.learning_rate, warmup_steps=self.warmup_steps
            )
        else:
            decay = SEED_DECAY if optimizer.decay is None else optimizer.decay
            self.schedule = InverseTimeDecay(self.base, decay)

    @property
    def follows_plateau(self) -> bool:
        return self.name == "plateau"

    def start(self, steps_per_epoch: int, epochs: int) -> None:
        """Fix the cosine schedule's length: ``epochs`` epochs of ``steps_per_epoch`` steps."""
        if self.name == "cosine":
            warmup = self.warmup_epochs * steps_per_epoch
            self.warmup_steps.assign(float(warmup))
            self.decay_steps.assign(float(epochs * steps_per_epoch - warmup))


def build_optimizer(
    config: OptimizerConfig, schedule: ScheduleConfig | None = None
) -> tuple[keras.optimizers.Optimizer, LearningRate]:
    """Build the optimizer (call inside ``strategy.scope()``); returns it and its learning rate.

    Clipping is not given to Keras: Keras clips each replica's gradient before the all-reduce, so
    clipped results would depend on the replica count. The engine clips the summed gradient instead.
    """
    rate = LearningRate(config, schedule or ScheduleConfig())
    lr = rate.schedule
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
    return optimizer, rate


def clip_gradients(gradients: list[tf.Tensor], config: OptimizerConfig) -> list[tf.Tensor]:
    """Keras semantics: ``clip_norm`` bounds each variable's gradient norm, ``clip_value`` each element."""
    if config.clip_norm is not None:
        return [tf.clip_by_norm(g, config.clip_norm) for g in gradients]
    if config.clip_value is not None:
        return [tf.clip_by_value(g, -config.clip_value, config.clip_value) for g in gradients]
    return gradients

"""Seeding, in one place: the same seed gives the same history on CPU."""

from __future__ import annotations

import keras
import tensorflow as tf


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; with ``deterministic``, also make TF ops deterministic.

    Deterministic ops give the same history for the same seed, but XLA has no deterministic
    MaxPool gradient, so XLA-compiled runs (``--jit on``, or ``auto`` on GPUs) are seeded only.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()

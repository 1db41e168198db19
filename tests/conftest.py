"""Test set-up: two logical CPU devices (a real two-replica MirroredStrategy on a CPU machine)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

# Must happen before TensorFlow initialises its devices, hence at import time.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def digits():
    from ktrain.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def small_digits(digits):
    """A 256/128/128 slice of digits: enough for the engine to behave, quick to train."""
    from ktrain.data import DataSplits

    return DataSplits(
        name="digits",
        x_train=digits.x_train[:256],
        y_train=digits.y_train[:256],
        x_val=digits.x_val[:128],
        y_val=digits.y_val[:128],
        x_test=digits.x_test[:128],
        y_test=digits.y_test[:128],
        num_classes=10,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt(trainer, epoch, steps)`` makes that Trainer's fit act as on Ctrl-C once ``steps``
    steps of ``epoch`` are done: it checkpoints the epoch so far and raises ``Interrupted``."""
    import ktrain.engine

    class Guard(ktrain.engine.InterruptGuard):
        current = None

        def __enter__(self):
            Guard.current = self
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(ktrain.engine, "InterruptGuard", Guard)

    def arm(trainer, epoch: int, steps: int):
        def on_steps(seen_epoch, done, logs):
            if seen_epoch == epoch and done >= steps:
                Guard.current.requested = True

        trainer.listener.on_steps = on_steps

    return arm

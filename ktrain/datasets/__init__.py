"""The built-in offline dataset (see README.md here), also as arrays for the Python API."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)`` of the built-in digits, as keras.datasets returns
    them: 8×8 uint8 images (1,438 to train, 359 to test) and their labels 0-9."""
    with np.load(resources.files(__name__).joinpath("digits.npz"), allow_pickle=False) as archive:
        return (archive["x_train"], archive["y_train"]), (archive["x_test"], archive["y_test"])

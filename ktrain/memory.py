"""Data the Python API receives in memory: NumPy arrays or tf.data datasets, read once.

The engine needs every sample by index (shuffling, the validation carve-out, cached teacher
targets), so a tf.data dataset is read into memory once, and one too large for memory is refused
before it fills it. Images are kept as given: uint8 images are scaled by 1/255 on their way to the
model (as for every named dataset), float images are used as they are.
"""

from __future__ import annotations

import os

import numpy as np

from ktrain.data import DataSplits, check_arrays, stratified_split
from ktrain.errors import KtrainError

# Share of the machine's memory a dataset read from tf.data may take.
MEMORY_SHARE = 0.5


class InMemoryData:
    """Training and test arrays, and optionally a validation split given by the caller."""

    def __init__(self, name: str, x_train, y_train, x_test, y_test, validation=None):
        self.name = name
        self.x_train, self.y_train, self.x_test, self.y_test, self.num_classes = check_arrays(
            x_train, y_train, x_test, y_test, f"the {name}", floats=True
        )
        self.validation = None
        if validation is not None:
            x_val, y_val = validation
            x_val, y_val, *_ = check_arrays(
                x_val, y_val, self.x_test, self.y_test, f"the {name}'s validation", floats=True
            )
            if x_val.dtype != self.x_train.dtype or x_val.shape[1:] != self.x_train.shape[1:]:
                raise KtrainError(
                    f"validation images are {x_val.dtype} {x_val.shape[1:]} but training images are "
                    f"{self.x_train.dtype} {self.x_train.shape[1:]}: give them in one shape and type"
                )
            self.num_classes = max(self.num_classes, int(y_val.max()) + 1)
            self.validation = (x_val, y_val)

    def describe(self) -> str:
        given = ", validation given" if self.validation is not None else ""
        return f"<{self.name}: {len(self.y_train)} train, {len(self.y_test)} test images{given}>"

    def splits(self, val_split: float, seed: int) -> DataSplits:
        """The three splits: the caller's validation split, or one carved as for a named dataset."""
        if self.validation is not None:
            x_train, y_train = self.x_train, self.y_train
            x_val, y_val = self.validation
        else:
            keep, held_out = stratified_split(self.y_train, val_split, seed)
            x_train, y_train = self.x_train[keep], self.y_train[keep]
            x_val, y_val = self.x_train[held_out], self.y_train[held_out]
        return DataSplits(self.name, x_train, y_train, x_val, y_val, self.x_test, self.y_test, self.num_classes)


def from_arrays(arrays, validation=None) -> InMemoryData:
    """``(x_train, y_train, x_test, y_test)`` NumPy arrays."""
    if len(arrays) != 4:
        raise KtrainError(
            f"data is a tuple of {len(arrays)} items: give (x_train, y_train, x_test, y_test) arrays, "
            "or (train, test) tf.data datasets"
        )
    if validation is not None and is_dataset(validation):
        validation = read_dataset(validation, "validation")
    return InMemoryData("arrays", *arrays, validation=validation)


def from_datasets(train, test, validation=None) -> InMemoryData:
    """``(train, test)`` tf.data datasets of ``(image, label)`` pairs, batched or not, read once."""
    x_train, y_train = read_dataset(train, "training")
    x_test, y_test = read_dataset(test, "test")
    if validation is not None and is_dataset(validation):
        validation = read_dataset(validation, "validation")
    return InMemoryData("tf.data", x_train, y_train, x_test, y_test, validation=validation)


def is_dataset(value) -> bool:
    import tensorflow as tf

    return isinstance(value, tf.data.Dataset)


def memory_budget() -> int:
    """Bytes a dataset read into memory may take: a share of the machine's physical memory."""
    return int(MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def read_dataset(dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A tf.data dataset of ``(image, label)`` pairs (or batches of them) as two arrays.

    Refused in one line: an infinite dataset, one whose known size exceeds :func:`memory_budget`
    (before reading), and one that grows past it while read."""
    import tensorflow as tf

    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise KtrainError(f"the {split} dataset yields {spec}: give a tf.data dataset of (image, label) pairs")
    image_spec, label_spec = spec
    batched = label_spec.shape.rank == 1
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise KtrainError(f"the {split} dataset is infinite (.repeat()): give it without repeat, ktrain reads it once")
    budget = memory_budget()
    sample_shape = image_spec.shape[1:] if batched else image_spec.shape
    if cardinality > 0 and sample_shape.is_fully_defined() and not batched:
        needed = cardinality * int(np.prod(sample_shape)) * image_spec.dtype.size
        _check_fits(needed, budget, split)
    images, labels, size = [], [], 0
    for image, label in dataset.as_numpy_iterator():
        image, label = np.asarray(image), np.asarray(label)
        images.append(image if batched else image[np.newaxis])
        labels.append(label.reshape(-1) if batched else label.reshape(1, *label.shape))
        size += image.nbytes
        _check_fits(size, budget, split)
    if not images:
        raise KtrainError(f"the {split} dataset is empty: give at least one image per class")
    return np.concatenate(images), np.concatenate(labels)


def _check_fits(needed: int, budget: int, split: str) -> None:
    if needed > budget:
        raise KtrainError(
            f"the {split} dataset needs more than {needed / 2**30:.1f} GiB in memory, over the "
            f"{budget / 2**30:.1f} GiB allowed (half the machine's memory): give a smaller dataset or a subset "
            "(dataset.take(N))"
        )

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
            x_val, y_val = _pair(validation)
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
        for split, labels in (("training", y_train), ("validation", y_val)):
            if len(labels) == 0:
                raise KtrainError(
                    f"the {split} split of the {self.name} is empty ({len(self.y_train)} training images, "
                    f"val_split {val_split}): give more images, another val_split, or validation=(x, y)"
                )
        return DataSplits(self.name, x_train, y_train, x_val, y_val, self.x_test, self.y_test, self.num_classes)


def _pair(validation):
    if isinstance(validation, tuple | list) and len(validation) == 2:
        return validation
    raise KtrainError(
        f"validation is a {type(validation).__name__}"
        + (f" of {len(validation)} items" if isinstance(validation, tuple | list) else "")
        + ": give validation=(x_val, y_val) arrays or a tf.data dataset of (image, label) pairs"
    )


def from_arrays(arrays, validation=None) -> InMemoryData:
    """``(x_train, y_train, x_test, y_test)`` NumPy arrays."""
    if len(arrays) != 4:
        raise KtrainError(
            f"data is a tuple of {len(arrays)} items: give (x_train, y_train, x_test, y_test) arrays, "
            "or (train, test) tf.data datasets"
        )
    if validation is not None and is_dataset(validation):
        validation = Reader().read(validation, "validation")
    return InMemoryData("arrays", *arrays, validation=validation)


def from_datasets(train, test, validation=None) -> InMemoryData:
    """``(train, test)`` tf.data datasets of ``(image, label)`` pairs, batched or not, read once."""
    reader = Reader()
    x_train, y_train = reader.read(train, "training")
    x_test, y_test = reader.read(test, "test")
    if validation is not None and is_dataset(validation):
        validation = reader.read(validation, "validation")
    return InMemoryData("tf.data", x_train, y_train, x_test, y_test, validation=validation)


def is_dataset(value) -> bool:
    import tensorflow as tf

    return isinstance(value, tf.data.Dataset)


def memory_budget() -> int:
    """Bytes the datasets read into memory may take: a share of the machine's physical memory."""
    return int(MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def is_batched(image_shape, label_shape) -> bool:
    """Whether a dataset yields batches: N×H×W×C images do, H×W images do not; for rank-3 images
    (H×W×C, or a batch of N×H×W), when the labels lead with the images' first dimension."""
    if image_shape.rank == 4:
        return True
    if image_shape.rank != 3 or label_shape.rank == 0:
        return False
    return label_shape[0] == image_shape[0]  # both None (an unknown batch size) counts as equal


class Reader:
    """Reads tf.data datasets into arrays, counting every byte read against :func:`memory_budget`.

    A read set is held about three times at its peak (the pieces read, their concatenation, and
    the splits carved from it), so that is what is counted."""

    COPIES = 3

    def __init__(self):
        self.budget = memory_budget()
        self.used = 0

    def read(self, dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A dataset of ``(image, label)`` pairs (or batches of them) as two arrays; refused in one
        line when infinite, when its known size exceeds the budget (before reading), and when it
        grows past it while read."""
        import tensorflow as tf

        spec = dataset.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise KtrainError(f"the {split} dataset yields {spec}: give a tf.data dataset of (image, label) pairs")
        image_spec, label_spec = spec
        batched = is_batched(image_spec.shape, label_spec.shape)
        cardinality = int(dataset.cardinality())
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise KtrainError(
                f"the {split} dataset is infinite (.repeat()): give it without repeat, ktrain reads it once"
            )
        if cardinality > 0 and not batched and image_spec.shape.is_fully_defined():
            self._check(self.used + cardinality * int(np.prod(image_spec.shape)) * image_spec.dtype.size, split)
        images, labels = [], []
        for image, label in dataset.as_numpy_iterator():
            image, label = np.asarray(image), np.asarray(label)
            images.append(image if batched else image[np.newaxis])
            labels.append(label if batched else label[np.newaxis])
            self.used += image.nbytes
            self._check(self.used, split)
        if not images:
            raise KtrainError(f"the {split} dataset is empty: give at least one image per class")
        try:
            return np.concatenate(images), np.concatenate(labels)
        except ValueError as exc:
            raise KtrainError(
                f"the {split} dataset yields images or labels of different shapes ({exc}): resize them to one shape"
            ) from None

    def _check(self, total: int, split: str) -> None:
        """Refuse when ``total`` bytes of images, held :attr:`COPIES` times, exceed the budget."""
        if self.COPIES * total > self.budget:
            raise KtrainError(
                f"the datasets need more than {self.COPIES * total / 2**30:.1f} GiB in memory while read "
                f"(the {split} dataset brings them to {total / 2**30:.1f} GiB of images, held about "
                f"{self.COPIES} times), over the {self.budget / 2**30:.1f} GiB allowed (half the machine's "
                "memory): give smaller datasets or subsets (dataset.take(N))"
            )

"""Datasets as uint8 arrays, split into train / validation / test, served as tf.data pipelines.

A dataset is named by one of:
  * ``digits``: the built-in offline set (UCI handwritten digits, shipped with ktrain);
  * a TFDS name with ``image`` and ``label`` features (``mnist``, ``cifar10``, ...);
  * a path to an ``.npz`` file in the keras.datasets layout.

Images stay uint8 in memory (CIFAR-10 train is 150 MB instead of the seed's 1.2 GB of float64) and
are scaled by 1/255, as the seed did, inside the pipeline after batching.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import tensorflow as tf

from ktrain.classes import format_classes
from ktrain.errors import KtrainError, first_line
from ktrain.listener import phase

BUILTIN = "digits"
SEED_TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class DataSplits:
    """The three splits of a dataset; images uint8 NHWC, labels int32."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """A short hash of every array, so results can name exactly the data they came from."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def restrict(self, classes: tuple[int, ...]) -> DataSplits:
        """The samples of ``classes`` only, relabelled 0..len(classes)-1 in the order given (how a
        specialist teacher is trained on its share of the classes)."""
        lookup = np.full(self.num_classes, -1, np.int32)
        lookup[list(classes)] = np.arange(len(classes), dtype=np.int32)

        def keep(x, y):
            mask = lookup[y] >= 0
            return x[mask], lookup[y[mask]]

        x_train, y_train = keep(self.x_train, self.y_train)
        x_val, y_val = keep(self.x_val, self.y_val)
        x_test, y_test = keep(self.x_test, self.y_test)
        return DataSplits(
            f"{self.name}[{format_classes(classes)}]", x_train, y_train, x_val, y_val, x_test, y_test, len(classes)
        )


def load_dataset(name: str, *, data_dir: str | None = None, val_split: float = 0.3, seed: int = 0) -> DataSplits:
    """Load ``name`` and carve a stratified, seeded validation split from its training split."""
    if not 0.0 < val_split < 1.0:
        raise KtrainError(f"--val-split is {val_split}: give a fraction between 0 and 1 (the seed used 0.3)")
    if name == BUILTIN:
        arrays = _read_npz(resources.files("ktrain.datasets").joinpath("digits.npz"), BUILTIN)
    elif name.endswith(".npz") or Path(name).is_file():
        arrays = _read_npz(Path(name), name)
    else:
        with phase(f"Loading {name} (TFDS)"):
            arrays = _load_tfds(name, data_dir)
    x_train, y_train, x_test, y_test, num_classes = arrays
    train_index, val_index = stratified_split(y_train, val_split, seed)
    return DataSplits(
        name=name,
        x_train=x_train[train_index],
        y_train=y_train[train_index],
        x_val=x_train[val_index],
        y_val=y_train[val_index],
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
    )


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out): each class gives ``round(fraction * count)`` samples, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        held_out.append(members[: int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held_out))
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def train_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: int, views=None) -> tf.data.Dataset:
    """Shuffled full batches (dicts: images, labels, indices, views) of one epoch; see
    :class:`ktrain.views.TrainingSamples`, which a run builds once and reuses every epoch."""
    from ktrain.views import TrainingSamples

    return TrainingSamples(x, y, views).epoch(batch_size, seed, epoch)


def eval_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Every sample once, in order, as ``(images, labels, sample indices)``."""
    indices = np.arange(len(y), dtype=np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, indices)).batch(batch_size)
    return without_autotune(dataset.map(_scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without tf.data's autotuning thread. Each iterator of an autotuned pipeline starts
    one, and releasing the iterator waits for it: 0.2 s an epoch on two cores, and a run pinned to
    one CPU (``taskset -c 0``) hung for minutes as its iterators were released. The pipelines here
    are a gather, a scale and a prefetch (or a few image ops), and benchmarks/epoch_time.py measures
    them without it."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _scale(images: tf.Tensor, labels: tf.Tensor, indices: tf.Tensor):
    return model_input(images), labels, indices


def model_input(images):
    """What a model sees: uint8 images scaled by 1/255 (as the seed did), float images as given."""
    if images.dtype == np.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def model_input_array(images: np.ndarray) -> np.ndarray:
    """:func:`model_input` for NumPy arrays."""
    images = np.asarray(images)
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


def _read_npz(path, label: str):
    if os.path.exists(path) and not os.path.isfile(path):  # a folder, a FIFO (which would block), a device
        raise KtrainError(f"dataset file '{label}' is not a regular file: give an .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise KtrainError(
                    f"dataset file '{label}' lacks {', '.join(missing)}: an .npz needs the arrays "
                    f"{', '.join(NPZ_KEYS)} (the keras.datasets layout)"
                )
            x_train, y_train, x_test, y_test = (archive[key] for key in NPZ_KEYS)
    except KtrainError:
        raise
    except FileNotFoundError:
        raise KtrainError(
            f"dataset file '{label}' not found: give digits, a TFDS name or an existing .npz path"
        ) from None
    except (OSError, ValueError) as exc:
        raise KtrainError(f"could not read dataset file '{label}' ({first_line(exc)}): give a valid .npz file") from exc
    return check_arrays(x_train, y_train, x_test, y_test, f"dataset file '{label}'")


def check_arrays(x_train, y_train, x_test, y_test, where: str, *, floats: bool = False):
    """Images as N×H×W×C (uint8, or with ``floats`` also float32) and labels as int32 class indices
    (from indices or one-hot rows), checked against each other; returns them with the class count.
    ``where`` names the data in messages ("dataset file 'x.npz'")."""
    x_train, x_test = (_images(x, where, key, floats) for x, key in ((x_train, "x_train"), (x_test, "x_test")))
    y_train, y_test = (_labels(y, where, key) for y, key in ((y_train, "y_train"), (y_test, "y_test")))
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise KtrainError(
                f"{where} has {len(x)} x_{split} images but {len(y)} y_{split} labels: give one label per image"
            )
        if len(y) == 0:
            raise KtrainError(f"{where} has no {split} images: give at least one per class")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise KtrainError(
            f"{where}: x_train images are {x_train.shape[1:]} but x_test images are "
            f"{x_test.shape[1:]}: give images of one shape"
        )
    if x_train.dtype != x_test.dtype:
        raise KtrainError(
            f"{where}: x_train is {x_train.dtype} but x_test is {x_test.dtype}: give both as uint8 or both as float"
        )
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return x_train, y_train, x_test, y_test, num_classes


def _images(x, where: str, key: str, floats: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if floats and np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    elif x.dtype != np.uint8:
        wanted = "uint8 (0-255, scaled by 1/255) or float images (used as given)" if floats else "uint8 (0-255)"
        raise KtrainError(f"{where}: {key} has dtype {x.dtype}: give images as {wanted}")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise KtrainError(f"{where}: {key} has shape {x.shape}: give images as N×H×W or N×H×W×C")
    if 0 in x.shape[1:]:
        raise KtrainError(f"{where}: {key} images have shape {x.shape[1:]}: give images of at least 1×1 pixel")
    return x


def _labels(y, label: str, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iub" and not np.issubdtype(y.dtype, np.floating):
        raise KtrainError(
            f"{label}: {key} holds labels of dtype {y.dtype}: give class indices (0, 1, ...) or one-hot rows"
        )
    if y.ndim == 2 and y.shape[1] > 1:
        _check_one_hot(y, label, key)
        y = np.argmax(y, axis=1)
    y = y.reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise KtrainError(f"{label}: {key} holds non-integer labels: give class indices or one-hot rows")
    if y.size and y.min() < 0:
        raise KtrainError(f"{label}: {key} holds the label {y.min()}: labels must be 0 or more")
    if y.size and y.max() > np.iinfo(np.int32).max:  # checked before any cast: it would wrap to another class
        raise KtrainError(f"{label}: {key} holds the label {y.max()}: give class indices from 0 to the class count - 1")
    return y.astype(np.int32)


def _check_one_hot(y: np.ndarray, label: str, key: str) -> None:
    """2-D labels are one-hot rows: a single 1 and zeros (argmax of anything else would pick a class
    silently: an all-zero row became class 0)."""
    bad = ~((y == 0) | (y == 1)).all(axis=1) | ((y == 1).sum(axis=1) != 1)
    if bad.any():
        row = int(np.argmax(bad))
        raise KtrainError(
            f"{label}: {key} row {row} is not one-hot ({np.array2string(y[row][:12], separator=',')}): give "
            "class indices, or rows of one 1 and zeros"
        )


def dataset_shape(name: str, *, data_dir: str | None = None) -> tuple[tuple[int, ...], int]:
    """The image shape and number of classes of dataset ``name``; a TFDS dataset says them itself,
    so its images are neither downloaded nor read (unless their size varies)."""
    if name != BUILTIN and not name.endswith(".npz") and not Path(name).is_file():
        features = _tfds_builder(name, data_dir).info.features
        shape = tuple(features["image"].shape)
        if None not in shape:
            return shape, features["label"].num_classes
    data = load_dataset(name, data_dir=data_dir)
    return data.image_shape, data.num_classes


def _tfds_builder(name: str, data_dir: str | None):
    """The TFDS builder of ``name``, checked for the image and label features ktrain needs."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # tfds raises several types for an unknown name
        raise KtrainError(
            f"unknown dataset '{name}': give digits, a TFDS image-classification name "
            f"({', '.join(SEED_TFDS_NAMES)}, ...) or a path to an .npz file"
        ) from exc
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise KtrainError(
            f"TFDS dataset '{name}' has features {', '.join(features.keys())}: ktrain needs 'image' and 'label'"
        )
    return builder


def _load_tfds(name: str, data_dir: str | None):
    builder = _tfds_builder(name, data_dir)
    features = builder.info.features
    try:
        builder.download_and_prepare()
    except Exception as exc:
        location = f" under --data-dir {data_dir}" if data_dir else ""
        raise KtrainError(
            f"dataset '{name}' is not available{location} and could not be downloaded ({first_line(exc)}): "
            "pass --data-dir DIR with the prepared TFDS data, or run once with internet access"
        ) from exc
    splits = list(builder.info.splits.keys()) or ["train", "test"]
    train_split = "train"
    test_split = "test" if "test" in splits or not builder.info.splits else None
    if test_split is None:
        # No held-out split published: carve a fixed 20 % test split from train.
        x, y = _tfds_arrays(builder, train_split)
        keep, test = stratified_split(y, 0.2, seed=0)
        return x[keep], y[keep], x[test], y[test], features["label"].num_classes
    x_train, y_train = _tfds_arrays(builder, train_split)
    x_test, y_test = _tfds_arrays(builder, test_split)
    return x_train, y_train, x_test, y_test, features["label"].num_classes


def _tfds_arrays(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    # Batches of 4096 rather than batch_size=-1, which needs the split size from metadata that
    # not every builder (or tfds.testing.mock_data) provides.
    dataset = builder.as_dataset(split=split, as_supervised=True).batch(4096)
    images, labels = [], []
    for image_batch, label_batch in dataset.as_numpy_iterator():
        images.append(image_batch.astype(np.uint8, copy=False))
        labels.append(label_batch.astype(np.int32))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images, labels

"""Built-in architectures, built by name for any input shape and class count; all output logits.

The CIFAR networks are the seed's (Adamantios/NN-Train), re-declared from their published
descriptions; their trainable parameter counts are tested. The digits
pair is ours, sized for the 8×8 built-in dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

ZOO_PREFIX = "zoo:"


@keras.saving.register_keras_serializable(package="ktrain")
class MeanProbabilityHead(layers.Layer):
    """The classifier of an averaging ensemble: one dense head per member on its slice of the
    concatenated member features, softmax, mean over members, and the log of that mean.

    The output is a valid logit vector (its softmax is the averaged probability), so the ensemble
    still outputs logits, and its input (all members' features) is what PKT matches by default.
    """

    def __init__(self, members: int, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.members = members
        self.classes = classes

    def build(self, input_shape):
        width = int(input_shape[-1]) // self.members
        self.kernel = self.add_weight(
            shape=(self.members, width, self.classes), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.members, self.classes), initializer="zeros", name="bias")

    def call(self, features):
        width = self.kernel.shape[1]
        per_member = keras.ops.reshape(features, (-1, self.members, width))
        logits = keras.ops.einsum("bmw,mwc->bmc", per_member, self.kernel) + self.bias
        probabilities = keras.ops.mean(keras.ops.softmax(logits, axis=-1), axis=1)
        return keras.ops.log(keras.ops.maximum(probabilities, 1e-12))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "members": self.members, "classes": self.classes}


def _conv(width: int, l2: float, name: str) -> layers.Layer:
    return layers.Conv2D(
        width, 3, padding="same", activation="elu", kernel_regularizer=keras.regularizers.L2(l2), name=name
    )


def _conv_block(x, widths: tuple[int, ...], dropout: float, l2: float, prefix: str):
    for index, width in enumerate(widths, start=1):
        x = _conv(width, l2, f"{prefix}_conv{index}")(x)
        x = layers.BatchNormalization(name=f"{prefix}_batch_norm{index}")(x)
    x = layers.MaxPooling2D(name=f"{prefix}_pool")(x)
    return layers.Dropout(dropout, seed=0, name=f"{prefix}_dropout")(x)


def _tower(x, blocks: list[tuple[tuple[int, ...], float]], l2: float, prefix: str = ""):
    for index, (widths, dropout) in enumerate(blocks, start=1):
        x = _conv_block(x, widths, dropout, l2, f"{prefix}block{index}")
    return layers.Flatten(name=f"{prefix}flatten")(x)


def _stacked(name: str, blocks: list[tuple[tuple[int, ...], float]], l2: float):
    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape, name="image")
        outputs = layers.Dense(num_classes, name="logits")(_tower(inputs, blocks, l2))
        return keras.Model(inputs, outputs, name=name)

    return build


MODEL1_BLOCKS = [((32, 32), 0.2), ((64, 64), 0.3), ((128, 128), 0.4)]
cifar10_student_strong = _stacked("cifar10_student_strong", [((32, 32), 0.2), ((64, 64), 0.3)], 1e-4)
cifar10_student_weak = _stacked("cifar10_student_weak", [((32,), 0.2), ((64,), 0.3)], 1e-6)
cifar10_model1 = _stacked("cifar10_model1", MODEL1_BLOCKS, 1e-4)
cifar100_student_strong = _stacked(
    "cifar100_student_strong", [((32, 64), 0.2), ((128, 128), 0.3), ((256, 256), 0.4)], 1e-4
)


def cifar10_baseline_ensemble(input_shape, num_classes):
    """Three ``cifar10_model1`` towers whose probabilities are averaged (the seed's 925,182-parameter teacher)."""
    inputs = keras.Input(input_shape, name="image")
    towers = [_tower(inputs, MODEL1_BLOCKS, 1e-4, prefix=f"member{index}_") for index in range(1, 4)]
    features = layers.Concatenate(name="member_features")(towers)
    outputs = MeanProbabilityHead(members=3, classes=num_classes, name="ensemble_head")(features)
    return keras.Model(inputs, outputs, name="cifar10_baseline_ensemble")


def pyramid_ensemble(input_shape, num_classes):
    """A generalist CNN plus two specialists on the halves of the classes, one model (the seed's pyramid shape)."""
    inputs = keras.Input(input_shape, name="image")

    def tower(prefix, widths, hidden, classes):
        x = inputs
        for index, width in enumerate(widths, start=1):
            x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{prefix}_conv{index}")(x)
        x = layers.MaxPooling2D(name=f"{prefix}_pool")(x)
        x = layers.Flatten(name=f"{prefix}_flatten")(x)
        x = layers.Dense(hidden, activation="relu", name=f"{prefix}_hidden")(x)
        x = layers.Dropout(0.3, seed=0, name=f"{prefix}_dropout")(x)
        return layers.Dense(classes, name=prefix)(x)

    half = num_classes // 2
    outputs = [
        tower("generalist", (32, 64), 128, num_classes),
        tower("specialist_1", (16, 32), 64, half),
        tower("specialist_2", (16, 32), 64, num_classes - half),
    ]
    return keras.Model(inputs, outputs, name="pyramid_ensemble")


def digits_teacher(input_shape, num_classes):
    """A small CNN for the 8×8 digits: two conv layers, pooling and a dense layer of 128."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Dropout(0.25, name="dropout1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.4, name="dropout2")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_teacher")


def digits_student(input_shape, num_classes):
    """A one-hidden-layer MLP of 32 units."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_student")


def digits_cnn_student(input_shape, num_classes):
    """A two-conv CNN with feature maps at two resolutions (for AT and FitNets)."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn_student")


@dataclass(frozen=True)
class Entry:
    """One zoo architecture: its builder, the role it is meant for, and what it is."""

    build: Callable[[tuple[int, ...], int], keras.Model]
    role: str
    about: str


ZOO: dict[str, Entry] = {
    "cifar10_student_strong": Entry(cifar10_student_strong, "student", "Two conv blocks of two layers (32, 64)."),
    "cifar10_student_weak": Entry(cifar10_student_weak, "student", "Two conv blocks of one layer (32, 64)."),
    "cifar10_model1": Entry(cifar10_model1, "teacher", "Three conv blocks of two layers (32, 64, 128)."),
    "cifar10_baseline_ensemble": Entry(cifar10_baseline_ensemble, "teacher", cifar10_baseline_ensemble.__doc__),
    "cifar100_student_strong": Entry(
        cifar100_student_strong, "student", "Three conv blocks of two layers (32-64, 128, 256)."
    ),
    "pyramid_ensemble": Entry(pyramid_ensemble, "teacher", pyramid_ensemble.__doc__),
    "digits_teacher": Entry(digits_teacher, "teacher", digits_teacher.__doc__),
    "digits_student": Entry(digits_student, "student", digits_student.__doc__),
    "digits_cnn_student": Entry(digits_cnn_student, "student", digits_cnn_student.__doc__),
}
ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int], keras.Model]] = {
    name: entry.build for name, entry in ZOO.items()
}


def build(name: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build zoo architecture ``name`` (with or without the ``zoo:`` prefix), freshly initialised."""
    from ktrain.errors import KtrainError

    key = name.removeprefix(ZOO_PREFIX)
    if key not in ARCHITECTURES:
        raise KtrainError(f"unknown zoo model '{name}': use one of {', '.join('zoo:' + n for n in ARCHITECTURES)}")
    return ARCHITECTURES[key](tuple(input_shape), num_classes)


def describe(image_shape: tuple[int, ...], num_classes: int) -> list[dict]:
    """``ktrain zoo``: each architecture built for images of ``image_shape`` and ``num_classes``
    classes: its role, parameter count (None with the reason when it does not fit) and what it is."""
    from ktrain.errors import first_line

    rows = []
    for name, entry in ZOO.items():
        about = " ".join(entry.about.replace("``", "").split())
        row = {"name": f"{ZOO_PREFIX}{name}", "role": entry.role, "about": about}
        try:
            model = entry.build(tuple(image_shape), num_classes)
            row["params"] = model.count_params()
        except Exception as exc:  # too small an image for its pooling, say
            row["params"], row["unfit"] = None, first_line(exc)
        rows.append(row)
        keras.backend.clear_session()
    return rows

"""Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017).

For a feature map f (N×H×W×C), the attention map is a = L2-normalise(flatten(mean over channels of
|f|^p)), p = 2. Per layer pair, the loss is the mean over the positions of (a_s − a_t)², averaged
over the batch; the pairs are summed:

    AT = w · Σ_pairs mean((a_s − a_t)²)  (+ λ · CE)

When a pair's spatial sizes differ, the larger feature map is resized to the smaller by area
averaging before its attention is taken. Pairs come from ``--student-layers`` / ``--teacher-layers``
(comma-separated, in order), or are chosen from the models: the last layer at each spatial
resolution both networks have, largest first; the choice is recorded in results.json with the
other options. The defaults are RepDistiller's and mdistiller's: w = 1000, p = 2, CE 1. AT needs
no relation between samples, so it is per-example and needs no gather under replicas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import tensorflow as tf

from ktrain.errors import KtrainError
from ktrain.losses import safe_sqrt
from ktrain.methods.base import LOGITS, Method, Option, Options, Tap, register
from ktrain.methods.kd import KD_LAMBDA, with_supervised

NORM_FLOOR = 1e-12

AT_WEIGHT = Option("at_weight", ("--at-weight",), "Weight of attention transfer (summed over the layer pairs).")
AT_P = Option("at_p", ("--at-p",), "Exponent p of the attention map, mean over channels of |f|^p.", check="positive")
STUDENT_LAYERS = Option(
    "student_layers",
    ("--student-layers",),
    "Student feature maps to match, comma-separated (default: chosen from the models).",
    kind=str,
    check="any",
    optional=True,
)
TEACHER_LAYERS = Option(
    "teacher_layers",
    ("--teacher-layers",),
    "Teacher feature maps to match, in the same order (default: chosen from the models).",
    kind=str,
    check="any",
    optional=True,
)


def attention_map(maps: tf.Tensor, p: float = 2.0) -> tf.Tensor:
    """N×(H·W): the mean over channels of |f|^p, flattened and L2-normalised per sample."""
    maps = tf.cast(maps, tf.float32)
    attention = tf.reduce_mean(tf.pow(tf.abs(maps), p), axis=-1)
    attention = tf.reshape(attention, [tf.shape(attention)[0], -1])
    norms = safe_sqrt(tf.reduce_sum(tf.square(attention), axis=1, keepdims=True))  # finite gradient at 0
    return attention / tf.maximum(norms, NORM_FLOOR)


def match_sizes(student: tf.Tensor, teacher: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The two feature maps at the smaller height and the smaller width (area averaging; each
    dimension is only ever reduced)."""
    size_s, size_t = tuple(student.shape[1:3]), tuple(teacher.shape[1:3])
    size = (min(size_s[0], size_t[0]), min(size_s[1], size_t[1]))

    def fit(maps, current):
        return maps if current == size else tf.image.resize(tf.cast(maps, tf.float32), size, method="area")

    return fit(student, size_s), fit(teacher, size_t)


def at_per_example(student_maps, teacher_maps, p: float = 2.0) -> tf.Tensor:
    """Σ over the pairs of the mean over positions of (a_s − a_t)², one value per example."""
    total = 0.0
    for student, teacher in zip(student_maps, teacher_maps):
        student, teacher = match_sizes(student, teacher)
        total += tf.reduce_mean(tf.square(attention_map(student, p) - attention_map(teacher, p)), axis=1)
    return total


def at_loss(student_maps, teacher_maps, p: float = 2.0) -> tf.Tensor:
    """The batch mean of :func:`at_per_example` (maps: one N×H×W×C tensor, or lists of them)."""
    if not isinstance(student_maps, list | tuple):
        student_maps, teacher_maps = [student_maps], [teacher_maps]
    return tf.reduce_mean(at_per_example(student_maps, teacher_maps, p))


def feature_maps(model) -> dict[tuple[int, int], str]:
    """The last layer at each spatial resolution of ``model``'s 4-D outputs, by (height, width)."""
    found: dict[tuple[int, int], str] = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            shape = tuple(layer.output.shape)
        except (AttributeError, ValueError):
            continue  # a layer used more than once, or not in a functional graph
        if len(shape) == 4 and shape[1] is not None and shape[2] is not None:
            found[(int(shape[1]), int(shape[2]))] = layer.name
    return found


def split_layers(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def choose_pairs(student, teacher) -> tuple[list[str], list[str]]:
    """Pairs of (student, teacher) layers: the last layer at each resolution both have, largest first."""
    mine, theirs = feature_maps(student), feature_maps(teacher)
    shared = sorted(set(mine) & set(theirs), key=lambda size: -size[0] * size[1])
    if not shared:

        def sizes(found):
            return ", ".join(f"{h}×{w}" for h, w in found) or "none"

        raise KtrainError(
            f"AT found no feature-map resolution both networks have (student: {sizes(mine)}; teacher: "
            f"{sizes(theirs)}): give a convolutional student (e.g. zoo:digits_cnn_student) or name the pairs "
            "with --student-layers and --teacher-layers"
        )
    return [mine[size] for size in shared], [theirs[size] for size in shared]


@dataclass(frozen=True)
class ATOptions(Options):
    at_weight: float = AT_WEIGHT(1000.0)
    at_p: float = AT_P(2.0)
    kd_lambda: float = KD_LAMBDA(1.0)
    student_layers: str | None = STUDENT_LAYERS(None)
    teacher_layers: str | None = TEACHER_LAYERS(None)

    def __post_init__(self):
        super().__post_init__()
        if self.at_p < 1:
            raise KtrainError(
                f"--at-p is {self.at_p}: give 1 or more (below 1, |f|^p has an infinite gradient at zero activations)"
            )


@register
class AttentionTransfer(Method):
    name = "at"
    display_name = "Attention Transfer"
    mixed_samples = True
    Options = ATOptions

    @classmethod
    def resolve(cls, options, student, teacher):
        students, teachers = split_layers(options.student_layers), split_layers(options.teacher_layers)
        if not students and not teachers:
            students, teachers = choose_pairs(student, teacher)
            return dataclasses.replace(options, student_layers=",".join(students), teacher_layers=",".join(teachers))
        if len(students) != len(teachers):
            raise KtrainError(
                f"--student-layers names {len(students)} layer(s) and --teacher-layers {len(teachers)}: give one "
                "teacher layer for each student layer, in the same order"
            )
        return options

    def _layers(self) -> tuple[list[str], list[str]]:
        students, teachers = split_layers(self.options.student_layers), split_layers(self.options.teacher_layers)
        if not students:
            raise KtrainError("AT's layer pairs are chosen from the models: resolve the method before its taps")
        return students, teachers

    def student_taps(self):
        return {"logits": LOGITS, **{f"map{i}": Tap.features(name) for i, name in enumerate(self._layers()[0])}}

    def teacher_taps(self):
        return {f"map{i}": Tap.features(name) for i, name in enumerate(self._layers()[1])}

    def build_state(self, student_shapes, teacher_shapes):
        students, teachers = self._layers()
        for role, names, shapes in (("student", students, student_shapes), ("teacher", teachers, teacher_shapes)):
            for index, name in enumerate(names):
                shape = shapes[f"map{index}"]
                if shape.rank != 4:
                    raise KtrainError(
                        f"AT needs 4-D feature maps (N×H×W×C), but {role} layer '{name}' gives {shape}: name "
                        "convolutional layers with --student-layers and --teacher-layers"
                    )

    def losses(self, batch):
        options = self.options
        count = len(self._layers()[0])
        student = [batch.student[f"map{i}"] for i in range(count)]
        teacher = [batch.teacher[f"map{i}"] for i in range(count)]
        parts = {"at": options.at_weight * at_per_example(student, teacher, options.at_p)}
        return with_supervised(parts, batch, options.kd_lambda)

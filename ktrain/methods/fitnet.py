"""FitNets (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015).

A regressor r maps the student's *hint* layer to the shape of the teacher's *guided* layer, and the
student learns to make r(hint) match it:

    FitNets = w · mean((r(h_s) − g_t)²)  (+ λ · CE)

r is a 1×1 convolution for feature maps (a dense layer for flat features): a matrix over the
channel axis plus a bias, with no BatchNorm, so one device and N replicas compute the same update.
It is method state: built in the strategy's scope, trained with the student by the same optimizer,
checkpointed, and never saved into the student file. It starts from a fixed Glorot-uniform draw, so
every replica and every resumed run starts alike.

By default the loss is joint (the modern re-implementations' weight 100, CE 1). The paper's two
stages are ``--fitnet-hint-epochs N``: for the first N epochs only the hint loss trains (no
cross-entropy), then only the cross-entropy. The hint defaults to the student's middle feature map
(the last layer of the middle of its spatial resolutions) and the guided layer to the teacher's last
layer at that resolution; both are recorded in results.json.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import tensorflow as tf

from ktrain.errors import KtrainError
from ktrain.methods.at import feature_maps
from ktrain.methods.base import LOGITS, Method, Option, Options, Tap, register
from ktrain.methods.kd import KD_LAMBDA

FITNET_WEIGHT = Option("fitnet_weight", ("--fitnet-weight",), "Weight of the FitNets hint loss.")
HINT_EPOCHS = Option(
    "fitnet_hint_epochs",
    ("--fitnet-hint-epochs",),
    "Two stages: the hint alone for N epochs, then the cross-entropy alone (the paper used KD); 0: joint.",
    kind=int,
)
HINT_LAYER = Option(
    "hint_layer",
    ("--hint-layer",),
    "Student layer regressed onto the teacher's (default: its middle feature map).",
    kind=str,
    check="any",
    optional=True,
)
GUIDED_LAYER = Option(
    "guided_layer",
    ("--guided-layer",),
    "Teacher layer the hint is regressed onto (default: its last layer at the hint's resolution).",
    kind=str,
    check="any",
    optional=True,
)
REGRESSOR_SEED = (20150, 1)


def fitnet_loss(student_hint: tf.Tensor, teacher_guided: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """The batch mean of :func:`fitnet_per_example`."""
    return tf.reduce_mean(fitnet_per_example(student_hint, teacher_guided, kernel, bias))


def fitnet_per_example(student_hint, teacher_guided, kernel, bias) -> tf.Tensor:
    """mean((h·K + b − g)²) over each example's positions and channels (K acts on the channel axis)."""
    hint = tf.cast(student_hint, tf.float32)
    kernel, bias = tf.cast(kernel, tf.float32), tf.cast(bias, tf.float32)
    mapped = tf.tensordot(hint, kernel, axes=[[hint.shape.rank - 1], [0]]) + bias
    error = tf.square(mapped - tf.cast(teacher_guided, tf.float32))
    return tf.reduce_mean(tf.reshape(error, [tf.shape(error)[0], -1]), axis=1)


def choose_hint(student, teacher) -> tuple[str, str]:
    """The student's middle feature map and the teacher's last layer at the same resolution."""
    mine, theirs = feature_maps(student), feature_maps(teacher)
    if not mine:
        raise KtrainError(
            "FitNets found no feature maps in the student: give a convolutional student (e.g. "
            "zoo:digits_cnn_student) or name the pair with --hint-layer and --guided-layer"
        )
    sizes = sorted(mine, key=lambda size: -size[0] * size[1])
    size = sizes[(len(sizes) - 1) // 2]
    if size not in theirs:
        found = ", ".join(f"{h}×{w}" for h, w in theirs) or "none"
        raise KtrainError(
            f"FitNets: the teacher has no {size[0]}×{size[1]} feature map for the student's middle one "
            f"'{mine[size]}' (teacher maps: {found}): name the pair with --hint-layer and --guided-layer"
        )
    return mine[size], theirs[size]


@dataclass(frozen=True)
class FitNetOptions(Options):
    fitnet_weight: float = FITNET_WEIGHT(100.0)
    kd_lambda: float = KD_LAMBDA(1.0)
    fitnet_hint_epochs: int = HINT_EPOCHS(0)
    hint_layer: str | None = HINT_LAYER(None)
    guided_layer: str | None = GUIDED_LAYER(None)


@register
class FitNets(Method):
    name = "fitnet"
    display_name = "FitNets"
    mixed_samples = True
    aliases = ("fitnets",)
    Options = FitNetOptions

    @classmethod
    def resolve(cls, options, student, teacher):
        if options.hint_layer is None and options.guided_layer is None:
            hint, guided = choose_hint(student, teacher)
            return dataclasses.replace(options, hint_layer=hint, guided_layer=guided)
        if options.hint_layer is None or options.guided_layer is None:
            raise KtrainError("FitNets takes --hint-layer and --guided-layer together: give both, or neither")
        return options

    @classmethod
    def epochs_refusal(cls, options, epochs):
        if options.fitnet_hint_epochs >= epochs:
            return (
                f"--fitnet-hint-epochs {options.fitnet_hint_epochs} takes all {epochs} epochs (-e), so the "
                "student never learns its classes; give fewer hint epochs or more -e"
            )
        return None

    def _pair(self) -> tuple[str, str]:
        if self.options.hint_layer is None:
            raise KtrainError("FitNets' layers are chosen from the models: resolve the method before its taps")
        return self.options.hint_layer, self.options.guided_layer

    def student_taps(self):
        return {"logits": LOGITS, "hint": Tap.features(self._pair()[0])}

    def teacher_taps(self):
        return {"guided": Tap.features(self._pair()[1])}

    def build_state(self, student_shapes, teacher_shapes):
        hint, guided = student_shapes["hint"], teacher_shapes["guided"]
        hint_name, guided_name = self._pair()
        if hint.rank != guided.rank or hint.rank not in (2, 4) or hint[1:-1] != guided[1:-1]:
            raise KtrainError(
                f"FitNets cannot regress student layer '{hint_name}' {hint} onto teacher layer '{guided_name}' "
                f"{guided}: a 1×1 convolution needs feature maps of the same height and width (or two flat "
                "layers); choose another pair with --hint-layer and --guided-layer"
            )
        inputs, outputs = int(hint[-1]), int(guided[-1])
        limit = math.sqrt(6.0 / (inputs + outputs))
        start = tf.random.stateless_uniform((inputs, outputs), REGRESSOR_SEED, -limit, limit)
        self.kernel = tf.Variable(start, name="fitnet_regressor_kernel")
        self.bias = tf.Variable(tf.zeros((outputs,)), name="fitnet_regressor_bias")

    @property
    def trainable_variables(self):
        return [self.kernel, self.bias] if hasattr(self, "kernel") else []

    def losses(self, batch):
        options = self.options
        hint = options.fitnet_weight * fitnet_per_example(
            batch.student["hint"], batch.teacher["guided"], self.kernel, self.bias
        )
        ce = options.kd_lambda * batch.label_loss(batch.student_logits)
        if options.fitnet_hint_epochs:
            hint_stage = tf.cast(batch.context.epoch <= float(options.fitnet_hint_epochs), tf.float32)
            return {"fitnet": hint_stage * hint, "ce": (1.0 - hint_stage) * ce}
        parts = {"fitnet": hint}
        if options.kd_lambda:
            parts["ce"] = ce
        return parts

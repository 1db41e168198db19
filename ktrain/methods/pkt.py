"""Probabilistic Knowledge Transfer (Passalis & Tefas, "Learning Deep Representations with
Probabilistic Knowledge Transfer", ECCV 2018), with the paper's supervised variant.

For features F (rows are samples), x̂ = x / (‖x‖ + ε), K = (x̂ x̂ᵀ + 1) / 2 (diagonal included),
P[i, j] = K[i, j] / Σ_k K[i, k], and

    PKT = mean over all B² entries of  P_t · log((P_t + ε) / (P_s + ε)),   ε = 1e-7,

as in ``passalis/probabilistic_kt`` (and RepDistiller, mdistiller, torchdistill, which copy it).
Teacher and student widths may differ. The seed used a raw Gram matrix of *outputs*, no shift, a
row sum (B× this scale) and never applied its supervised term.

Weights: this is the reference's scale, so RepDistiller's β = 30000 (batch 64) means 30000 here.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.methods.base import Method, Option, Options, Tap, register

EPSILON = 1e-7


def conditional_probabilities(features: tf.Tensor, eps: float = EPSILON) -> tf.Tensor:
    """Row-normalised shifted cosine kernel of the rows of ``features`` (float32; flattened per sample)."""
    features = tf.cast(features, tf.float32)
    features = tf.reshape(features, [tf.shape(features)[0], -1])
    norms = tf.norm(features, axis=1, keepdims=True)
    normalised = features / (norms + eps)
    normalised = tf.where(tf.math.is_nan(normalised), tf.zeros_like(normalised), normalised)
    kernel = (tf.matmul(normalised, normalised, transpose_b=True) + 1.0) / 2.0
    return kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)


def _divergence(target: tf.Tensor, model: tf.Tensor, eps: float) -> tf.Tensor:
    return tf.reduce_mean(target * tf.math.log((target + eps) / (model + eps)))


def pkt_loss(student_features: tf.Tensor, teacher_features: tf.Tensor, eps: float = EPSILON) -> tf.Tensor:
    """KL(teacher ‖ student) of the kernels' conditional probabilities, mean over all B² entries."""
    return _divergence(
        conditional_probabilities(teacher_features, eps), conditional_probabilities(student_features, eps), eps
    )


def label_probabilities(labels: tf.Tensor) -> tf.Tensor:
    """Target of supervised PKT: similarity 1 for pairs with the same label (0 otherwise), row-normalised."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32)
    return same / tf.reduce_sum(same, axis=1, keepdims=True)


def supervised_pkt_loss(student_features: tf.Tensor, labels: tf.Tensor, eps: float = EPSILON) -> tf.Tensor:
    """KL(label similarity ‖ student kernel), mean over all B² entries."""
    return _divergence(label_probabilities(labels), conditional_probabilities(student_features, eps), eps)


PKT_LAMBDA = Option(
    "pkt_lambda", ("-pktl", "--pkt-lambda-supervised"), "Weight of the supervised PKT term (label-similarity target)."
)
STUDENT_LAYER = Option(
    "student_layer",
    ("--student-layer",),
    "Student layer to match (default: the classifier's input).",
    kind=str,
    check="any",
    optional=True,
)
TEACHER_LAYER = Option(
    "teacher_layer",
    ("--teacher-layer",),
    "Teacher layer to match (default: the classifier's input).",
    kind=str,
    check="any",
    optional=True,
)


def feature_taps(layer: str | None) -> dict[str, Tap]:
    """Logits, and the features PKT relates over the global batch."""
    return {"logits": Tap("logits"), "features": Tap.features(layer, gather=True)}


class RelatesFeatures:
    """The taps of a method that relates samples' features over the global batch (PKT, SP, RKD):
    the student's logits and features, the teacher's features (``--student-layer`` /
    ``--teacher-layer``, default the classifier's input). Mix in before :class:`Method`."""

    def student_taps(self):
        return feature_taps(self.options.student_layer)

    def teacher_taps(self):
        return {"features": Tap.features(self.options.teacher_layer, gather=True)}


@dataclass(frozen=True)
class PKTOptions(Options):
    pkt_lambda: float = PKT_LAMBDA(1e-4)
    student_layer: str | None = STUDENT_LAYER(None)
    teacher_layer: str | None = TEACHER_LAYER(None)


@register
class ProbabilisticKnowledgeTransfer(RelatesFeatures, Method):
    name = "pkt"
    display_name = "Probabilistic Knowledge Transfer"
    Options = PKTOptions
    trains_head = False
    # PKT "rotates" the space so the class head is not what it trains: monitor its own loss.
    monitor = "val_loss"
    # The loss lives on a 1e-3 scale, where the seed's absolute deltas would read every epoch as a plateau.
    monitor_min_delta = 0.0

    @classmethod
    def mixing_refusal(cls, options):
        if options.pkt_lambda:
            return "its supervised term relates samples by their hard labels (-pktl 0 turns it off)"
        return None

    def losses(self, batch):
        student = batch.global_student["features"]
        parts = {"pkt": pkt_loss(student, batch.global_teacher["features"])}
        if self.options.pkt_lambda:
            parts["pkt_supervised"] = self.options.pkt_lambda * supervised_pkt_loss(student, batch.global_labels)
        return parts

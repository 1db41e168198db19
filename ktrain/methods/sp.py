"""Similarity-preserving KD (Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019).

For the features F of a batch, flattened per sample to B×d (teacher and student widths may differ):

    G = F Fᵀ (B×B),  Ĝ = G with each row L2-normalised (a row shorter than 1e-6 stays 0),
    SP = ‖Ĝ_t − Ĝ_s‖²_F / B²

The student learns which samples the teacher finds alike. The loss relates every pair of the
batch, so under replicas it is computed over the global batch from all-gathered features. The
defaults are RepDistiller's and mdistiller's on CIFAR-100: weight 3000, CE weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.losses import unit_rows
from ktrain.methods.base import Method, Option, Options, register
from ktrain.methods.kd import KD_LAMBDA, with_supervised
from ktrain.methods.pkt import STUDENT_LAYER, TEACHER_LAYER, RelatesFeatures

SP_WEIGHT = Option("sp_weight", ("--sp-weight",), "Weight of the similarity-preserving term.")


def flat(features: tf.Tensor) -> tf.Tensor:
    """Features as B×d float32 rows (conv maps flattened per sample)."""
    features = tf.cast(features, tf.float32)
    return tf.reshape(features, [tf.shape(features)[0], -1])


def normalized_similarity(features: tf.Tensor) -> tf.Tensor:
    """The batch's Gram matrix F Fᵀ with each row L2-normalised (norm floored at 1e-12)."""
    rows = flat(features)
    gram = tf.matmul(rows, rows, transpose_b=True)
    return unit_rows(gram, axis=1)  # a zero row (a zero sample) stays 0, with a zero gradient


def sp_loss(student_features: tf.Tensor, teacher_features: tf.Tensor) -> tf.Tensor:
    """‖Ĝ_t − Ĝ_s‖²_F / B² over the batch given (a scalar)."""
    difference = normalized_similarity(teacher_features) - normalized_similarity(student_features)
    count = tf.cast(tf.shape(difference)[0], tf.float32)
    return tf.reduce_sum(tf.square(difference)) / (count * count)


@dataclass(frozen=True)
class SPOptions(Options):
    sp_weight: float = SP_WEIGHT(3000.0)
    kd_lambda: float = KD_LAMBDA(1.0)
    student_layer: str | None = STUDENT_LAYER(None)
    teacher_layer: str | None = TEACHER_LAYER(None)


@register
class SimilarityPreserving(RelatesFeatures, Method):
    name = "sp"
    display_name = "Similarity-Preserving KD"
    mixed_samples = True
    Options = SPOptions

    def losses(self, batch):
        options = self.options
        relation = sp_loss(batch.global_student["features"], batch.global_teacher["features"])
        return with_supervised({"sp": options.sp_weight * relation}, batch, options.kd_lambda)

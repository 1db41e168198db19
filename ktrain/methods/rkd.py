"""Relational KD (Park et al., "Relational Knowledge Distillation", CVPR 2019).

For the features of a batch, flattened per sample (teacher and student widths may differ):

* **distance**: the pairwise Euclidean distances (diagonal excluded), each network's divided by its
  mean over the positive entries; Huber (smooth L1, δ = 1) between teacher and student, averaged
  over all B² entries;
* **angle**: for every triple (i, j, k), the cosine of the angle at j between i and k, the dot
  product of the unit vectors e_i − e_j and e_k − e_j; smooth L1 averaged over all B³ triples.

    RKD = w_d · distance + w_a · angle  (+ λ · CE)

Both relate samples, so under replicas they are computed over the global batch from all-gathered
features. Memory: the angle term holds the B×B×d differences and the B×B×B cosines of each
network (for B = 64 and d = 512, 8 MiB and 1 MiB in float32), so it grows with the cube of the
global batch. Squared distances are floored at 1e-12 before the square root, and a difference
vector shorter than 1e-6 (coincident samples) has unit vector 0 with a zero gradient, so coincident
samples keep gradients finite and small (dividing by a floored norm gave gradients of 1e8). Weights
are the authors' (and RepDistiller's): distance 25, angle 50, CE 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.losses import unit_rows
from ktrain.methods.base import Method, Option, Options, register
from ktrain.methods.kd import KD_LAMBDA, with_supervised
from ktrain.methods.pkt import STUDENT_LAYER, TEACHER_LAYER, RelatesFeatures
from ktrain.methods.sp import flat

DISTANCE_FLOOR = 1e-12

RKD_DISTANCE = Option("rkd_distance_weight", ("--rkd-distance-weight",), "Weight of RKD's distance term.")
RKD_ANGLE = Option("rkd_angle_weight", ("--rkd-angle-weight",), "Weight of RKD's angle term.")


def huber(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Smooth L1 (δ = 1) between ``a`` and ``b``, averaged over every entry."""
    difference = tf.abs(a - b)
    return tf.reduce_mean(tf.where(difference < 1.0, 0.5 * tf.square(difference), difference - 0.5))


def normalized_distances(features: tf.Tensor) -> tf.Tensor:
    """Pairwise distances, zero on the diagonal, divided by their mean over the positive entries."""
    rows = flat(features)
    squared = tf.reduce_sum(tf.square(rows), axis=1)
    pairwise = squared[:, None] + squared[None, :] - 2.0 * tf.matmul(rows, rows, transpose_b=True)
    distances = tf.sqrt(tf.maximum(pairwise, DISTANCE_FLOOR))
    distances = tf.where(tf.eye(tf.shape(rows)[0], dtype=tf.bool), 0.0, distances)
    positive = distances > 0
    mean = tf.reduce_sum(tf.where(positive, distances, 0.0)) / tf.maximum(
        tf.reduce_sum(tf.cast(positive, tf.float32)), 1.0
    )
    return distances / mean


def angles(features: tf.Tensor) -> tf.Tensor:
    """cos of the angle at j between i and k, for every triple: B×B×B (flattened)."""
    rows = flat(features)
    differences = rows[None, :, :] - rows[:, None, :]  # [j, i] = e_i − e_j
    units = unit_rows(differences, axis=2)  # the difference of a sample with itself stays 0
    return tf.reshape(tf.matmul(units, units, transpose_b=True), [-1])


def rkd_distance_loss(student_features, teacher_features) -> tf.Tensor:
    return huber(normalized_distances(student_features), normalized_distances(teacher_features))


def rkd_angle_loss(student_features, teacher_features) -> tf.Tensor:
    return huber(angles(student_features), angles(teacher_features))


def rkd_loss(student_features, teacher_features, distance_weight=25.0, angle_weight=50.0) -> tf.Tensor:
    """w_d · distance + w_a · angle over the batch given (a scalar)."""
    return distance_weight * rkd_distance_loss(student_features, teacher_features) + angle_weight * rkd_angle_loss(
        student_features, teacher_features
    )


@dataclass(frozen=True)
class RKDOptions(Options):
    rkd_distance_weight: float = RKD_DISTANCE(25.0)
    rkd_angle_weight: float = RKD_ANGLE(50.0)
    kd_lambda: float = KD_LAMBDA(1.0)
    student_layer: str | None = STUDENT_LAYER(None)
    teacher_layer: str | None = TEACHER_LAYER(None)


@register
class RelationalKD(RelatesFeatures, Method):
    name = "rkd"
    display_name = "Relational KD"
    mixed_samples = True
    Options = RKDOptions

    def losses(self, batch):
        options = self.options
        student, teacher = batch.global_student["features"], batch.global_teacher["features"]
        parts = {}
        if options.rkd_distance_weight:
            parts["rkd_distance"] = options.rkd_distance_weight * rkd_distance_loss(student, teacher)
        if options.rkd_angle_weight:
            parts["rkd_angle"] = options.rkd_angle_weight * rkd_angle_loss(student, teacher)
        return with_supervised(parts, batch, options.kd_lambda)

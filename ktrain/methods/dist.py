"""DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022).

DIST matches relations rather than values: with y = softmax(z / T) and ρ the Pearson correlation,

    inter = 1 − mean over samples i of ρ(y_s[i, :], y_t[i, :])   (each sample's class ranking)
    intra = 1 − mean over classes j of ρ(y_s[:, j], y_t[:, j])   (each class across the batch)
    L     = T² · (β · inter + γ · intra) + λ · CE

ρ is the cosine of the mean-centred vectors with ε = 1e-8 in the denominator, as in the authors'
code. The intra term relates the samples of the batch, so under replicas it is computed over the
*global* batch from gathered logits (the whole loss is then one scalar per step). Defaults are the
authors' ImageNet ones: β = γ = 1, T = 1, CE weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.losses import safe_sqrt
from ktrain.methods.base import Method, Option, Options, Tap, register
from ktrain.methods.kd import KD_LAMBDA, TEMPERATURE, with_supervised

PEARSON_EPSILON = 1e-8

DIST_BETA = Option("dist_beta", ("--dist-beta",), "Weight β of DIST's inter-class relation (within each sample).")
DIST_GAMMA = Option("dist_gamma", ("--dist-gamma",), "Weight γ of DIST's intra-class relation (across the batch).")


def pearson(a: tf.Tensor, b: tf.Tensor, axis: int) -> tf.Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``axis``: cosine of the centred vectors, ε 1e-8."""
    a = a - tf.reduce_mean(a, axis=axis, keepdims=True)
    b = b - tf.reduce_mean(b, axis=axis, keepdims=True)
    norms = safe_sqrt(tf.reduce_sum(a * a, axis=axis)) * safe_sqrt(tf.reduce_sum(b * b, axis=axis))
    return tf.reduce_sum(a * b, axis=axis) / (norms + PEARSON_EPSILON)


def dist_loss(
    student_logits: tf.Tensor,
    teacher_logits: tf.Tensor,
    beta: float = 1.0,
    gamma: float = 1.0,
    temperature: float = 1.0,
) -> tf.Tensor:
    """T² · (β · inter + γ · intra) over the batch given (a scalar)."""
    student = tf.nn.softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    inter = 1.0 - tf.reduce_mean(pearson(student, teacher, axis=1))
    intra = 1.0 - tf.reduce_mean(pearson(student, teacher, axis=0))
    return temperature**2 * (beta * inter + gamma * intra)


@dataclass(frozen=True)
class DISTOptions(Options):
    temperature: float = TEMPERATURE(1.0)
    kd_lambda: float = KD_LAMBDA(1.0)
    dist_beta: float = DIST_BETA(1.0)
    dist_gamma: float = DIST_GAMMA(1.0)


GLOBAL_LOGITS = Tap("logits", gather=True)


@register
class DIST(Method):
    name = "dist"
    display_name = "DIST"
    mixed_samples = True
    Options = DISTOptions

    def student_taps(self):
        return {"logits": GLOBAL_LOGITS}

    def teacher_taps(self):
        return {"logits": GLOBAL_LOGITS}

    def losses(self, batch):
        options = self.options
        relation = dist_loss(
            batch.global_student["logits"],
            batch.global_teacher["logits"],
            options.dist_beta,
            options.dist_gamma,
            options.temperature,
        )
        return with_supervised({"dist": relation}, batch, options.kd_lambda)

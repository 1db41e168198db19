"""Decoupled Knowledge Distillation (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022).

KD's KL splits into a target-class part and a non-target part; DKD weights them separately:

    TCKD = T² · KL(b_t ‖ b_s),  b = [p_target, 1 − p_target],  p = softmax(z / T)
    NCKD = T² · KL(q_t ‖ q_s),  q = softmax(z / T − 1000 · onehot(y))  (the non-target classes)
    L    = λ · CE + min(epoch / warm-up, 1) · (α · TCKD + β · NCKD)

Everything is computed from log-softmax and log-sum-exp in float32: 1 − p_target is taken as
logsumexp of the non-target logits minus logsumexp of all, so a saturated teacher (p_target = 1 in
float32) never takes log 0. The defaults are the authors' CIFAR-100 ones (mdistiller): λ 1, α 1,
β 8, T 4, a 20-epoch warm-up. β is the setting that needs tuning per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.methods.base import Method, Option, Options, register
from ktrain.methods.kd import KD_LAMBDA, LOGIT_STANDARDIZATION, TEMPERATURE, maybe_standardized, with_supervised

# How far the target logit is pushed down to leave the non-target distribution (the authors' 1000).
TARGET_MASK = 1000.0

DKD_ALPHA = Option("dkd_alpha", ("--dkd-alpha",), "Weight α of DKD's target-class term (TCKD).")
DKD_BETA = Option("dkd_beta", ("--dkd-beta",), "Weight β of DKD's non-target term (NCKD), the one to tune per pair.")
DKD_WARMUP = Option(
    "dkd_warmup",
    ("--dkd-warmup",),
    "Epochs over which DKD's distillation term ramps up linearly from 1/N (0: no ramp).",
    kind=int,
)


def _kl_from_log_probs(teacher_log_probs: tf.Tensor, student_log_probs: tf.Tensor) -> tf.Tensor:
    """Σ_j p_t (log p_t − log p_s) per example; an underflowed p_t contributes 0."""
    return tf.reduce_sum(tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)


def _binary_log_probs(scaled: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """``[log p_target, log (1 − p_target)]`` per example, both from log-sum-exp (never log 0)."""
    total = tf.reduce_logsumexp(scaled, axis=-1)
    on_target = tf.reduce_sum(tf.where(target, scaled, 0.0), axis=-1)
    off_target = tf.reduce_logsumexp(tf.where(target, -float("inf"), scaled), axis=-1)
    return tf.stack([on_target - total, off_target - total], axis=-1)


def dkd_per_example(
    student_logits: tf.Tensor,
    teacher_logits: tf.Tensor,
    labels: tf.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
) -> tf.Tensor:
    """α · TCKD + β · NCKD, each T²-scaled, one value per example."""
    student = tf.cast(student_logits, tf.float32) / temperature
    teacher = tf.cast(teacher_logits, tf.float32) / temperature
    target = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(student)[-1], on_value=True, off_value=False)
    tckd = _kl_from_log_probs(_binary_log_probs(teacher, target), _binary_log_probs(student, target))
    masked = TARGET_MASK * tf.cast(target, tf.float32)
    nckd = _kl_from_log_probs(tf.nn.log_softmax(teacher - masked), tf.nn.log_softmax(student - masked))
    return temperature**2 * (alpha * tckd + beta * nckd)


def dkd_loss(student_logits, teacher_logits, labels, alpha=1.0, beta=8.0, temperature=4.0) -> tf.Tensor:
    """The batch mean of α · TCKD + β · NCKD, each T²-scaled (no warm-up, no cross-entropy)."""
    return tf.reduce_mean(dkd_per_example(student_logits, teacher_logits, labels, alpha, beta, temperature))


def warmup_factor(epoch: tf.Tensor, warmup: int) -> tf.Tensor:
    """min(epoch / warm-up, 1), the epoch counted from 1; 1 without a warm-up."""
    if warmup <= 0:
        return tf.constant(1.0)
    return tf.minimum(tf.cast(epoch, tf.float32) / float(warmup), 1.0)


@dataclass(frozen=True)
class DKDOptions(Options):
    temperature: float = TEMPERATURE(4.0)
    kd_lambda: float = KD_LAMBDA(1.0)
    dkd_alpha: float = DKD_ALPHA(1.0)
    dkd_beta: float = DKD_BETA(8.0)
    dkd_warmup: int = DKD_WARMUP(20)
    logit_standardization: bool = LOGIT_STANDARDIZATION(False)


@register
class DecoupledKD(Method):
    name = "dkd"
    display_name = "Decoupled KD"
    Options = DKDOptions

    def losses(self, batch):
        options = self.options
        student, teacher = maybe_standardized(batch.student_logits, batch.teacher_logits, options.logit_standardization)
        soft = dkd_per_example(student, teacher, batch.labels, options.dkd_alpha, options.dkd_beta, options.temperature)
        ramp = warmup_factor(batch.context.epoch, options.dkd_warmup)
        return with_supervised({"dkd": ramp * soft}, batch, options.kd_lambda)

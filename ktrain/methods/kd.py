"""Knowledge Distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015).

    L = T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + λ · CE(y, softmax(z_s))

KL is summed over classes and averaged over the batch ("batchmean"), from log-softmax in float32,
as in RepDistiller, mdistiller, torchdistill and Keras 3 ``LogitsDistillation``. The seed computed
the cross-entropy of tempered teacher *probabilities* with no T²; the T² keeps the soft term's
gradient scale independent of T.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.losses import cross_entropy
from ktrain.methods.base import Method, Option, Options, register

TEMPERATURE = Option(
    "temperature", ("-t", "--temperature"), "Softmax temperature T of the soft targets.", check="positive"
)
KD_LAMBDA = Option("kd_lambda", ("-kdl", "--kd-lambda-supervised"), "Weight λ of the hard-label cross-entropy.")


def kd_per_example(student_logits: tf.Tensor, teacher_logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """T² · KL(teacher ‖ student) of the tempered distributions, one value per example."""
    student_log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    teacher_log_probs = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    teacher_probs = tf.exp(teacher_log_probs)
    kl = tf.reduce_sum(teacher_probs * (teacher_log_probs - student_log_probs), axis=-1)
    return (temperature**2) * kl


def kd_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), summed over classes, averaged over the batch."""
    return tf.reduce_mean(kd_per_example(student_logits, teacher_logits, temperature))


def with_supervised(parts: dict[str, tf.Tensor], batch, kd_lambda: float) -> dict[str, tf.Tensor]:
    """``parts`` plus ``ce`` = λ · CE on the hard labels (left out when λ is 0)."""
    if kd_lambda:
        parts["ce"] = kd_lambda * cross_entropy(batch.labels, batch.student_logits)
    return parts


@dataclass(frozen=True)
class KDOptions(Options):
    temperature: float = TEMPERATURE(2.0)
    kd_lambda: float = KD_LAMBDA(0.1)


@register
class KnowledgeDistillation(Method):
    name = "kd"
    display_name = "Knowledge Distillation"
    aliases = ("distillation",)
    Options = KDOptions
    ensemble_variant = "ensemble-kd"

    def losses(self, batch):
        soft = kd_per_example(batch.student_logits, batch.teacher_logits, self.options.temperature)
        return with_supervised({"kd": soft}, batch, self.options.kd_lambda)

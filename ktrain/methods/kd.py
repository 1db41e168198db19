"""Knowledge Distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015).

    L = w · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + λ · CE(y, softmax(z_s))

KL is summed over classes and averaged over the batch ("batchmean"), from log-softmax in float32,
as in RepDistiller, mdistiller, torchdistill and Keras 3 ``LogitsDistillation``. The seed computed
the cross-entropy of tempered teacher *probabilities* with no T²; the T² keeps the soft term's
gradient scale independent of T.

Logit standardization (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024),
an option of KD and DKD, z-scores each network's logits over the classes before the temperature,
so the student matches the teacher's logit *relations* rather than their scale. The authors' KD
recipe on CIFAR-100 pairs it with T = 2, a soft-term weight w = 9 and λ = 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.losses import safe_sqrt
from ktrain.methods.base import Method, Option, Options, register

TEMPERATURE = Option(
    "temperature", ("-t", "--temperature"), "Softmax temperature T of the soft targets.", check="positive"
)
KD_LAMBDA = Option("kd_lambda", ("-kdl", "--kd-lambda-supervised"), "Weight λ of the hard-label cross-entropy.")
KD_WEIGHT = Option(
    "kd_weight", ("-kdw", "--kd-importance-weight"), "Weight of the KD term (in PKT plus KD: of KD and its CE)."
)
LOGIT_STANDARDIZATION = Option(
    "logit_standardization",
    ("--logit-standardization",),
    "Z-score each network's logits over the classes before the temperature (Sun et al., 2024).",
    kind=bool,
)
STANDARDIZE_EPSILON = 1e-7


def standardize_logits(logits: tf.Tensor) -> tf.Tensor:
    """``(z − mean(z)) / (std(z) + 1e-7)`` over the classes, with the unbiased (n − 1) std, in float32."""
    logits = tf.cast(logits, tf.float32)
    centred = logits - tf.reduce_mean(logits, axis=-1, keepdims=True)
    classes = tf.cast(tf.shape(logits)[-1], tf.float32)
    variance = tf.reduce_sum(tf.square(centred), axis=-1, keepdims=True) / (classes - 1.0)
    return centred / (safe_sqrt(variance) + STANDARDIZE_EPSILON)  # finite where all logits are equal


def maybe_standardized(student_logits, teacher_logits, standardize: bool):
    """Both networks' logits, z-scored when ``standardize`` (logit standardization), in float32."""
    if standardize:
        return standardize_logits(student_logits), standardize_logits(teacher_logits)
    return tf.cast(student_logits, tf.float32), tf.cast(teacher_logits, tf.float32)


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
    """``parts`` plus ``ce`` = λ · CE on the labels (mixed labels for mixed samples; left out when λ is 0)."""
    if kd_lambda:
        parts["ce"] = kd_lambda * batch.label_loss(batch.student_logits)
    return parts


@dataclass(frozen=True)
class KDOptions(Options):
    temperature: float = TEMPERATURE(2.0)
    kd_lambda: float = KD_LAMBDA(0.1)
    kd_weight: float = KD_WEIGHT(1.0)
    logit_standardization: bool = LOGIT_STANDARDIZATION(False)


@register
class KnowledgeDistillation(Method):
    name = "kd"
    display_name = "Knowledge Distillation"
    mixed_samples = True
    topk_targets = True

    @classmethod
    def topk_refusal(cls, options):
        if options.logit_standardization:
            return "logit standardization needs the mean and spread of every logit, which top-N storage drops"
        return None

    aliases = ("distillation",)
    Options = KDOptions
    ensemble_variant = "ensemble-kd"

    def losses(self, batch):
        options = self.options
        student, teacher = maybe_standardized(batch.student_logits, batch.teacher_logits, options.logit_standardization)
        soft = options.kd_weight * kd_per_example(student, teacher, options.temperature)
        return with_supervised({"kd": soft}, batch, options.kd_lambda)

"""Knowledge Distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015).

    L = T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + λ · CE(y, softmax(z_s))

KL is summed over classes and averaged over the batch ("batchmean"), from log-softmax in float32,
as in RepDistiller, mdistiller, torchdistill and Keras 3 ``LogitsDistillation``. The seed computed
CE(softmax(p_t / T), softmax(z_s / T)) on teacher *probabilities* with no T² (seed-behaviour.md §6.1);
the T² keeps the soft term's gradient scale independent of T.
"""

from __future__ import annotations

import tensorflow as tf

from ktrain.errors import KtrainError
from ktrain.losses import cross_entropy
from ktrain.methods.base import Method, register


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


@register
class KnowledgeDistillation(Method):
    name = "kd"
    display_name = "Knowledge Distillation"
    aliases = ("distillation",)

    def __init__(self, temperature: float = 2.0, kd_lambda: float = 0.1):
        if not temperature > 0:
            raise KtrainError(f"temperature (-t) is {temperature}: give a temperature greater than 0")
        if kd_lambda < 0:
            raise KtrainError(f"KD supervised weight (-kdl) is {kd_lambda}: give a weight of 0 or more")
        self.temperature = float(temperature)
        self.kd_lambda = float(kd_lambda)

    def losses(self, batch):
        parts = {"kd": kd_per_example(batch.student_logits, batch.teacher_logits, self.temperature)}
        if self.kd_lambda:
            parts["ce"] = self.kd_lambda * cross_entropy(batch.labels, batch.student_logits)
        return parts

    def options(self):
        return {"temperature": self.temperature, "kd_lambda": self.kd_lambda}

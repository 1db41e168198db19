"""Compiled steps: the per-replica train and eval step, and the inner loop of several train steps.

Shape follows tensorflow/models ``orbit``: a per-replica step (XLA-compiled when the jit policy says
so), ``strategy.run`` around it, and a ``tf.range`` inner loop so the Python outer loop only wakes
up a few times per epoch.

Reduction happens here and only here: each per-example loss is summed and divided by the **global**
batch size, and the regularisation penalty by the replica count, so the cross-replica sum of what a
replica reports is the global-batch mean and gradients summed over replicas equal the one-device
gradient.
"""

from __future__ import annotations

import tensorflow as tf

from ktrain.config import OptimizerConfig
from ktrain.losses import classification_counts
from ktrain.methods.base import Method
from ktrain.optim import clip_gradients
from ktrain.taps import LogitsView

SUM = tf.distribute.ReduceOp.SUM


class Steps:
    """Builds the ``tf.function`` train loop and eval step for one student/method/strategy."""

    def __init__(
        self,
        *,
        strategy: tf.distribute.Strategy,
        student: LogitsView,
        method: Method,
        optimizer,
        optimizer_config: OptimizerConfig,
        global_batch_size: int,
        teacher: LogitsView | None = None,
        jit: bool = False,
    ):
        self.strategy = strategy
        self.student = student
        self.teacher = teacher
        self.method = method
        self.optimizer = optimizer
        self.optimizer_config = optimizer_config
        self.global_batch_size = global_batch_size
        self.variables = student.model.trainable_variables
        self._gradients = tf.function(self._replica_gradients, jit_compile=True) if jit else self._replica_gradients
        self.train_loop = tf.function(self._train_loop)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)  # last batches vary in size

    # -- per replica -------------------------------------------------------------------------
    def _teacher_logits(self, images):
        if self.teacher is None:
            return None
        return tf.stop_gradient(self.teacher(images, training=False))

    def _replica_gradients(self, images, labels):
        teacher_logits = self._teacher_logits(images)
        with tf.GradientTape() as tape:
            student_logits = self.student(images, training=True)
            parts = self.method.losses(labels, student_logits, teacher_logits)
            reduced = {
                name: tf.nn.compute_average_loss(value, global_batch_size=self.global_batch_size)
                for name, value in parts.items()
            }
            penalties = self.student.model.losses
            if penalties:
                reduced["l2"] = tf.nn.scale_regularization_loss(tf.add_n(penalties))
            total = tf.add_n(list(reduced.values()))
        gradients = tape.gradient(total, self.variables)
        stats = dict(reduced, loss=total, **classification_counts(labels, student_logits))
        return gradients, stats

    def _replica_train_step(self, images, labels):
        gradients, stats = self._gradients(images, labels)
        if self.optimizer_config.clip_norm is not None or self.optimizer_config.clip_value is not None:
            # Clip the *global* gradient: sum over replicas first, then clip, then hand each replica
            # an equal share so the optimizer's own all-reduce restores the clipped sum.
            context = tf.distribute.get_replica_context()
            replicas = self.strategy.num_replicas_in_sync
            if replicas > 1:
                gradients = context.all_reduce(SUM, gradients)
            gradients = clip_gradients(gradients, self.optimizer_config)
            if replicas > 1:
                gradients = [g / replicas for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, self.variables))
        return stats

    def _replica_eval_step(self, images, labels):
        student_logits = self.student(images, training=False)
        parts = self.method.losses(labels, student_logits, self._teacher_logits(images))
        sums = {name: tf.reduce_sum(value) for name, value in parts.items()}
        return dict(sums, **classification_counts(labels, student_logits))

    # -- across replicas ---------------------------------------------------------------------
    def _reduce(self, per_replica: dict) -> dict:
        return {name: self.strategy.reduce(SUM, value, axis=None) for name, value in per_replica.items()}

    def _train_loop(self, iterator, num_steps):
        """Run ``num_steps`` (≥ 1) train steps; returns each statistic summed over the steps."""
        totals = self._reduce(self.strategy.run(self._replica_train_step, args=next(iterator)))
        for _ in tf.range(num_steps - 1):
            stats = self._reduce(self.strategy.run(self._replica_train_step, args=next(iterator)))
            totals = {name: totals[name] + stats[name] for name in totals}
        return totals

    def _eval_step(self, batch):
        return self._reduce(self.strategy.run(self._replica_eval_step, args=batch))

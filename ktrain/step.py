"""Compiled steps: the per-replica train and eval step, and the inner loop of several train steps.

Shape follows tensorflow/models ``orbit``: a per-replica step (XLA-compiled when the jit policy says
so), ``strategy.run`` around it, and a ``tf.range`` inner loop so the Python outer loop only wakes
up a few times per epoch.

Reduction happens here and only here: each per-example loss is summed and divided by the **global**
batch size; a scalar (a loss over the global batch, from gathered taps) and the regularisation
penalty are divided by the replica count. So the cross-replica sum of what a replica reports is the
global-batch mean, and gradients summed over replicas equal the one-device gradient: every replica
computes the same global scalar, and the gather's gradient sums what each replica sends back.
"""

from __future__ import annotations

import tensorflow as tf

from ktrain.config import OptimizerConfig
from ktrain.errors import RunFault
from ktrain.losses import classification_counts, dominant_labels
from ktrain.methods.base import Batch, Context, Method
from ktrain.optim import clip_gradients
from ktrain.taps import NetworkView

SUM = tf.distribute.ReduceOp.SUM


class Steps:
    """Builds the ``tf.function`` train loop and eval step for one student/method/strategy.

    ``epoch`` is a variable the outer loop sets before each epoch (counted from 1), so a loss can
    read where training stands without retracing.
    """

    def __init__(
        self,
        *,
        strategy: tf.distribute.Strategy,
        student: NetworkView,
        method: Method,
        optimizer,
        optimizer_config: OptimizerConfig,
        global_batch_size: int,
        epoch: tf.Variable,
        epochs: int,
        teacher: NetworkView | None = None,
        jit: bool = False,
        tables: dict[str, dict[str, tf.Variable]] | None = None,
    ):
        self.strategy = strategy
        self.student = student
        self.teacher = teacher
        # Cached teacher taps per split ("train", "val"), keyed by tap key, looked up by sample index.
        self.tables = tables or {}
        self.method = method
        self.student_taps = method.student_taps()
        self.teacher_taps = method.teacher_taps() if teacher is not None else {}
        self.optimizer = optimizer
        self.optimizer_config = optimizer_config
        self.global_batch_size = global_batch_size
        self.epoch = epoch
        self.epochs = epochs
        # The student's weights, then the method's own state (a regressor, say): one optimizer trains both.
        self.variables = student.model.trainable_variables + method.trainable_variables
        self._gradients = tf.function(self._replica_gradients, jit_compile=True) if jit else self._replica_gradients
        self.train_loop = tf.function(self._train_loop)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)  # last batches vary in size

    # -- per replica -------------------------------------------------------------------------
    def _teacher_outputs(self, images, indices, split, views=None) -> dict[str, tf.Tensor]:
        """The teacher's taps by key: from the cache when it holds this split (by sample, and by view
        for a K-view cache), else one forward pass on exactly the images the student sees."""
        if not self.teacher_taps:
            return {}
        if split in self.tables:
            table = self.tables[split]
            return {tap.key: table[tap.key].gather(indices, views) for tap in self.teacher_taps.values()}
        return {key: tf.stop_gradient(value) for key, value in self.teacher.tap(images, training=False).items()}

    def _batch(self, labels, student_outputs, teacher_outputs, partners=None, weights=None) -> Batch:
        student = {name: student_outputs[tap.key] for name, tap in self.student_taps.items()}
        teacher = {name: teacher_outputs[tap.key] for name, tap in self.teacher_taps.items()}
        global_student, global_teacher, global_labels = dict(student), dict(teacher), labels
        if self.method.gathers:
            # A relational loss relates every pair of the *global* batch: gather the taps it asks for.
            # The gather's gradient sums what each replica sends back, hence the division by the
            # replica count in _reduce_parts.
            context = tf.distribute.get_replica_context()
            for taps, values, gathered in (
                (self.student_taps, student, global_student),
                (self.teacher_taps, teacher, global_teacher),
            ):
                for name, tap in taps.items():
                    if tap.gather:
                        gathered[name] = context.all_gather(values[name], axis=0)
            global_labels = context.all_gather(labels, axis=0)
        return Batch(
            labels,
            student,
            teacher,
            Context(tf.identity(self.epoch), self.epochs),
            global_student,
            global_teacher,
            global_labels,
            partners,
            weights,
        )

    def _replica_gradients(self, sample: dict):
        """Gradients and statistics of one replica's share of a batch (a dict of ktrain.views)."""
        images, labels = sample["images"], sample["labels"]
        teacher_outputs = self._teacher_outputs(images, sample["indices"], "train", sample["views"])
        partners, weights = sample.get("partners"), sample.get("weights")
        with tf.GradientTape() as tape:
            student_outputs = self.student.tap(images, training=True)
            batch = self._batch(labels, student_outputs, teacher_outputs, partners, weights)
            reduced = self._reduce_parts(self.method.losses(batch))
            penalties = self.student.model.losses
            if penalties:
                reduced["l2"] = tf.nn.scale_regularization_loss(tf.add_n(penalties))
            total = tf.add_n(list(reduced.values()))
            # Identity unless the optimizer scales the loss (mixed_float16); it unscales in apply.
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, self.variables)
        counted = labels if partners is None else dominant_labels(labels, partners, weights)
        stats = dict(reduced, loss=total, **classification_counts(counted, batch.student_logits))
        return gradients, stats

    def _reduce_parts(self, parts: dict) -> dict:
        """Per-example parts: sum / global batch. Global scalars: / replica count."""
        replicas = self.strategy.num_replicas_in_sync
        return {
            name: tf.nn.compute_average_loss(value, global_batch_size=self.global_batch_size)
            if value.shape.rank == 1
            else value / replicas
            for name, value in parts.items()
        }

    def _replica_train_step(self, sample: dict):
        gradients, stats = self._gradients(sample)
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
        # Variables a method does not train (PKT leaves the class head alone) get no gradient.
        pairs = [(g, v) for g, v in zip(gradients, self.variables) if g is not None]
        if not pairs:  # known when the step is traced: the caller refuses the run (see check_trains)
            self.trains_nothing = True
            return stats
        self.optimizer.apply_gradients(pairs)
        return stats

    def check_trains(self) -> None:
        """Refuse a method whose loss reaches none of the student's weights (after the first steps
        were traced; an exception raised while tracing would come out wrapped by autograph)."""
        if getattr(self, "trains_nothing", False):
            raise RunFault(
                f"method '{self.method.name}' trains none of the student's weights: its loss reaches no weight "
                "(a feature layer with no weights before it, say); give a --student-layer after a layer with "
                "weights, or another student"
            )

    def _replica_eval_step(self, images, labels, indices, split):
        student_outputs = self.student.tap(images, training=False)
        batch = self._batch(labels, student_outputs, self._teacher_outputs(images, indices, split))
        counts = classification_counts(labels, batch.student_logits)
        replicas = self.strategy.num_replicas_in_sync
        # Sums over samples: a global scalar counts once per sample of the global batch.
        global_count = tf.cast(tf.shape(batch.global_labels)[0], tf.float32)
        sums = {
            name: tf.reduce_sum(value) if value.shape.rank == 1 else value * global_count / replicas
            for name, value in self.method.losses(batch).items()
        }
        return dict(sums, **counts)

    # -- across replicas ---------------------------------------------------------------------
    def _reduce(self, per_replica: dict) -> dict:
        return {name: self.strategy.reduce(SUM, value, axis=None) for name, value in per_replica.items()}

    def _train_loop(self, iterator, num_steps):
        """Run up to ``num_steps`` (≥ 1) train steps; returns each statistic summed over the steps run
        and ``steps``, their number. Stops after a step whose loss is not finite."""
        totals = self._reduce(self.strategy.run(self._replica_train_step, args=(next(iterator),)))
        totals["steps"] = tf.constant(1.0)
        for _ in tf.range(num_steps - 1):
            if not tf.math.is_finite(totals["loss"]):
                break
            stats = self._reduce(self.strategy.run(self._replica_train_step, args=(next(iterator),)))
            stats["steps"] = tf.constant(1.0)
            totals = {name: totals[name] + stats[name] for name in totals}
        return totals

    def _eval_step(self, batch, split):
        return self._reduce(self.strategy.run(self._replica_eval_step, args=(*batch, split)))

"""Per-example losses shared by the methods and the metrics; always computed in float32."""

from __future__ import annotations

import tensorflow as tf


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of integer ``labels`` under ``softmax(logits)``, from log-softmax."""
    logits = tf.cast(logits, tf.float32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)


def classification_counts(labels: tf.Tensor, logits: tf.Tensor) -> dict[str, tf.Tensor]:
    """Sums that make accuracy and cross-entropy over any number of batches: correct, CE sum, count."""
    labels = tf.cast(labels, tf.int32)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {
        "correct": tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32)),
        "crossentropy_sum": tf.reduce_sum(cross_entropy(labels, logits)),
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def safe_sqrt(value: tf.Tensor) -> tf.Tensor:
    """sqrt with a finite (zero) gradient at 0, where tf.sqrt's gradient is infinite."""
    positive = value > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, value, 1.0)), 0.0)

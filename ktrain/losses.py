"""Per-example losses shared by the methods and the metrics; always computed in float32."""

from __future__ import annotations

import tensorflow as tf


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of integer ``labels`` under ``softmax(logits)``, from log-softmax."""
    logits = tf.cast(logits, tf.float32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)


def mixed_cross_entropy(labels: tf.Tensor, partners: tf.Tensor, weights: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example ``w · CE(labels) + (1 − w) · CE(partners)``: the cross-entropy against a mixed
    sample's label ``w · onehot(labels) + (1 − w) · onehot(partners)`` (mixup, cutmix)."""
    weights = tf.cast(weights, tf.float32)
    return weights * cross_entropy(labels, logits) + (1.0 - weights) * cross_entropy(partners, logits)


def dominant_labels(labels: tf.Tensor, partners: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """The label with the larger share of each mixed sample (what its accuracy counts)."""
    return tf.where(tf.cast(weights, tf.float32) >= 0.5, tf.cast(labels, tf.int32), tf.cast(partners, tf.int32))


def classification_counts(labels: tf.Tensor, logits: tf.Tensor) -> dict[str, tf.Tensor]:
    """Sums that make accuracy and cross-entropy over any number of batches: correct, CE sum, count."""
    labels = tf.cast(labels, tf.int32)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {
        "correct": tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32)),
        "crossentropy_sum": tf.reduce_sum(cross_entropy(labels, logits)),
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def unit_rows(vectors: tf.Tensor, axis: int = -1, tolerance: float = 1e-6) -> tf.Tensor:
    """``vectors`` divided by their L2 norm along ``axis``; a vector shorter than ``tolerance`` (two
    coincident samples, a zero row) becomes 0 with a zero gradient, where dividing by a floored norm
    would give gradients of order 1/floor."""
    norms = safe_sqrt(tf.reduce_sum(tf.square(vectors), axis=axis, keepdims=True))
    long_enough = norms > tolerance
    return tf.where(long_enough, vectors / tf.where(long_enough, norms, 1.0), 0.0)


def safe_sqrt(value: tf.Tensor) -> tf.Tensor:
    """sqrt with a finite (zero) gradient at 0, where tf.sqrt's gradient is infinite."""
    positive = value > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, value, 1.0)), 0.0)

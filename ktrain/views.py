"""Training samples as tf.data pipelines, and their views: augmented copies that can be replayed.

A view of sample ``i`` is rendered from its key ``(view seed, i, v)`` alone, with stateless ops
(``tf.random.stateless_*``, ``tf.image.stateless_*``) and 64-bit seed arithmetic
(``stateless_fold_in``): the same key gives the same pixels, the same mixing partner and the same
mixing ratio in any shuffle, after a resume and in another process (on the same TensorFlow
version: stateless ops are stable only within one). In epoch ``e`` of a run with seed ``s``,
sample ``i`` shows view ``hash(s, e, i)``, reduced modulo K under ``--views K`` so a cache of the
teacher's logits for views 0..K−1 covers every step.

Batches are dicts: ``images`` (float32, scaled as ``ktrain.data.model_input``), ``labels``,
``indices`` (into the training split, for cached targets) and ``views``; a mixing view adds
``partners`` (the partner's label) and ``weights`` (the share of ``labels`` in the mixed label).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ktrain.augment import Views
from ktrain.data import model_input, without_autotune

# Separates the stream of per-epoch view draws from every other use of the run seed.
EPOCH_SALT = 0x6B747261696E


def view_key(view_seed: int, index, view) -> tf.Tensor:
    """The ``[2]`` int64 stateless seed of view ``view`` of sample ``index``."""
    base = tf.constant([view_seed, 0], tf.int64)
    key = tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))
    return tf.random.experimental.stateless_fold_in(key, tf.cast(view, tf.int64))


def epoch_view(run_seed: int, epoch: int, index, count: int | None) -> tf.Tensor:
    """The view sample ``index`` shows in ``epoch`` (int64): ``hash(run seed, epoch, index)``,
    modulo ``count`` when views are limited, else a fresh one every epoch."""
    key = tf.constant([run_seed, EPOCH_SALT], tf.int64)
    key = tf.random.experimental.stateless_fold_in(key, tf.constant(epoch, tf.int64))
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(index, tf.int64))
    draw = tf.random.stateless_uniform([], key, minval=None, maxval=None, dtype=tf.int64)
    return draw if count is None else tf.math.floormod(draw, count)


class TrainingSamples:
    """The training split held once as tensors, served epoch by epoch under ``views``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, views: Views | None = None):
        self.views = views or Views()
        self.augment = self.views.augment
        self.count = len(labels)
        self.source = images
        self.images = tf.constant(images)
        self.labels = tf.constant(labels, tf.int32)
        self.shape = tuple(images.shape[1:])

    @property
    def mixes(self) -> bool:
        return self.augment.mixes

    def epoch(self, batch_size: int, seed: int, epoch: int) -> tf.data.Dataset:
        """Shuffled full batches for one epoch; the order and the views depend only on ``seed`` and
        ``epoch``. The last partial batch is dropped so every step has the same global batch (one
        shape, no retracing; one device and N replicas see identical batches)."""
        indices = tf.data.Dataset.range(self.count)
        indices = indices.shuffle(self.count, seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
        if not self.augment:
            batches = indices.batch(batch_size, drop_remainder=True).map(self._plain_batch)
            return without_autotune(batches.prefetch(tf.data.AUTOTUNE))

        def element(index):
            view = epoch_view(seed, epoch, index, self.views.count)
            return self.render(index, view)

        samples = indices.map(element, num_parallel_calls=tf.data.AUTOTUNE)
        batches = samples.batch(batch_size, drop_remainder=True)
        return without_autotune(batches.map(_scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    def _plain_batch(self, indices):
        indices = tf.cast(indices, tf.int32)
        return {
            "images": model_input(tf.gather(self.images, indices)),
            "labels": tf.gather(self.labels, indices),
            "indices": indices,
            "views": tf.zeros_like(indices, tf.int64),
        }

    def view_batches(self, view: int, batch_size: int) -> tf.data.Dataset:
        """View ``view`` of every sample, in sample order (what a K-view cache is built from)."""
        indices = tf.data.Dataset.range(self.count)
        samples = indices.map(lambda index: self.render(index, tf.constant(view, tf.int64)))
        return without_autotune(samples.batch(batch_size).map(_scale).prefetch(tf.data.AUTOTUNE))

    # -- one view ----------------------------------------------------------------------------------
    def render(self, index, view) -> dict[str, tf.Tensor]:
        """View ``view`` of sample ``index``: the image (uint8 as stored, or float32 once mixed),
        its label, and with mixing the partner's label and the label weight."""
        keys = tf.random.experimental.stateless_split(view_key(self.views.seed, index, view), 4)
        image = self._geometric(tf.gather(self.images, index), keys[0])
        sample = {"images": image, "labels": tf.gather(self.labels, index), "indices": tf.cast(index, tf.int32)}
        sample["views"] = tf.cast(view, tf.int64)
        if not self.mixes:
            return sample
        partner = self._partner(index, keys[1])
        other = model_input(self._geometric(tf.gather(self.images, partner), keys[2]))
        image = model_input(image)
        ratio = _beta(self.augment.mixup if self.augment.mixup is not None else self.augment.cutmix, keys[3])
        if self.augment.mixup is not None:
            mixed, weight = ratio * image + (1.0 - ratio) * other, ratio
        else:
            inside, weight = _box(self.shape[0], self.shape[1], ratio, keys[3])
            mixed = image * (1.0 - inside) + other * inside
        sample.update(images=mixed, partners=tf.gather(self.labels, partner), weights=weight)
        return sample

    def _geometric(self, image, key):
        flip_key, crop_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        if self.augment.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_key)
        if self.augment.crop:
            height, width = self.shape[0], self.shape[1]
            pad_h, pad_w = self.augment.padding(height), self.augment.padding(width)
            padded = tf.pad(image, [[pad_h, pad_h], [pad_w, pad_w], [0, 0]])
            image = tf.image.stateless_random_crop(padded, self.shape, seed=crop_key)
        return image

    def _partner(self, index, key):
        """Another sample, uniformly (the sample itself only when the split has one sample)."""
        others = max(self.count - 1, 1)
        offset = tf.random.stateless_uniform([], key, minval=0, maxval=others, dtype=tf.int64)
        return tf.math.floormod(tf.cast(index, tf.int64) + 1 + offset, self.count)


def _beta(alpha: float, key) -> tf.Tensor:
    """A Beta(α, α) draw as G₁ / (G₁ + G₂) of two Gamma(α) draws; 0.5 if both underflow to 0."""
    draws = tf.random.stateless_gamma([2], key, alpha=alpha, dtype=tf.float32)
    total = draws[0] + draws[1]
    return tf.where(total > 0.0, draws[0] / tf.maximum(total, 1e-30), 0.5)


def _box(height: int, width: int, ratio, key):
    """CutMix's box (Yun et al., 2019): sides ``⌊side·√(1−λ)⌋`` around a uniform centre, clipped to
    the image; returns its ``[H, W, 1]`` float mask and the image's share outside it."""
    centre = tf.random.stateless_uniform([2], tf.random.experimental.stateless_fold_in(key, 1), 0.0, 1.0)
    scale = tf.sqrt(1.0 - ratio)
    cut_h = tf.cast(tf.floor(height * scale), tf.int32)
    cut_w = tf.cast(tf.floor(width * scale), tf.int32)
    cy = tf.cast(tf.floor(centre[0] * height), tf.int32)
    cx = tf.cast(tf.floor(centre[1] * width), tf.int32)
    y1, y2 = tf.clip_by_value(cy - cut_h // 2, 0, height), tf.clip_by_value(cy + cut_h // 2, 0, height)
    x1, x2 = tf.clip_by_value(cx - cut_w // 2, 0, width), tf.clip_by_value(cx + cut_w // 2, 0, width)
    rows = tf.logical_and(tf.range(height) >= y1, tf.range(height) < y2)
    cols = tf.logical_and(tf.range(width) >= x1, tf.range(width) < x2)
    inside = tf.cast(tf.logical_and(rows[:, None], cols[None, :]), tf.float32)[..., None]
    weight = 1.0 - tf.cast((y2 - y1) * (x2 - x1), tf.float32) / float(height * width)
    return inside, weight


def _scale(sample: dict) -> dict:
    return dict(sample, images=model_input(sample["images"]))

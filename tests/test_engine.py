"""The engine: plateau and early stopping in a real run, clipping, frozen teacher, seeds, replicas."""

import dataclasses

import keras
import numpy as np
import pytest

from ktrain import zoo
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.engine import Trainer
from ktrain.listener import Listener
from ktrain.methods import get_method
from ktrain.seeding import seed_everything
from ktrain.strategy import build_strategy
from ktrain.taps import NetworkView

TIMING_KEYS = ("epoch_seconds", "images_per_second")


class WeightRecorder(Listener):
    def __init__(self, model):
        self.model = model
        self.weights = {}

    def on_epoch_end(self, epoch, logs):
        self.weights[epoch] = [w.copy() for w in self.model.get_weights()]


def config(**changes):
    optimizer = changes.pop("optimizer", OptimizerConfig(decay=0.0))
    schedule = changes.pop("schedule", ScheduleConfig(lr_decay=0.0, early_stopping_patience=0))
    changes = {"epochs": 2, "batch_size": 64, **changes}
    return TrainConfig(optimizer=optimizer, schedule=schedule, **changes).validate()


def build(strategy, name, data, weights=None):
    with strategy.scope():
        model = zoo.build(name, data.image_shape, data.num_classes)
        if weights is not None:
            model.set_weights(weights)
    return model


def fit(data, cfg, method="kd", strategy=None, student_weights=None, teacher_weights=None, listener=None):
    strategy = strategy or build_strategy("one")
    student = build(strategy, "digits_student", data, student_weights)
    teacher = build(strategy, "digits_teacher", data, teacher_weights)
    method = get_method(method)()
    trainer = Trainer(
        student=NetworkView(student),
        teacher=NetworkView(teacher) if method.uses_teacher else None,
        method=method,
        config=cfg,
        strategy=strategy,
        listener=listener(student) if listener else None,
    )
    return trainer.fit(data), student, teacher, trainer


def without_timing(history):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def test_training_lowers_the_loss_and_reports_every_part(small_digits):
    result, *_ = fit(small_digits, config(epochs=5, optimizer=OptimizerConfig(learning_rate=3e-3, decay=0.0)))
    history = result.columns()
    for key in (
        "kd",
        "ce",
        "loss",
        "accuracy",
        "crossentropy",
        "val_kd",
        "val_ce",
        "val_loss",
        "val_accuracy",
        "val_crossentropy",
        "lr",
        "epoch_seconds",
        "images_per_second",
    ):
        assert len(history[key]) == 5, key
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > history["val_accuracy"][0]
    assert history["loss"][0] == pytest.approx(history["kd"][0] + history["ce"][0])


def test_learning_rate_drops_at_the_right_epoch(small_digits):
    # A learning rate this small leaves validation accuracy flat, so every epoch after the first is a plateau.
    cfg = config(
        epochs=5,
        optimizer=OptimizerConfig(learning_rate=1e-6, decay=0.0),
        schedule=ScheduleConfig(lr_patience=2, lr_decay=0.5, lr_min=0.0, early_stopping_patience=0),
    )
    result, *_ = fit(small_digits, cfg, method="supervised")
    assert result.columns()["lr"] == pytest.approx([1e-6, 1e-6, 1e-6, 5e-7, 5e-7])


def test_learning_rate_decay_zero_keeps_the_rate_constant(small_digits):
    cfg = config(
        epochs=4,
        optimizer=OptimizerConfig(learning_rate=1e-6, decay=0.0),
        schedule=ScheduleConfig(lr_patience=0, lr_decay=0.0, early_stopping_patience=0),
    )
    result, *_ = fit(small_digits, cfg, method="supervised")
    assert result.columns()["lr"] == pytest.approx([1e-6] * 4)


def test_inverse_time_decay_follows_the_seed_formula(small_digits):
    cfg = config(epochs=2, optimizer=OptimizerConfig(learning_rate=1e-3, decay=0.01))
    result, *_ = fit(small_digits, cfg, method="supervised")
    steps_per_epoch = len(small_digits.y_train) // 64
    expected = [1e-3 / (1 + 0.01 * steps_per_epoch * epoch) for epoch in (1, 2)]
    assert result.columns()["lr"] == pytest.approx(expected, rel=1e-5)


def test_early_stopping_stops_and_restores_the_best_weights(small_digits):
    cfg = config(
        epochs=10,
        optimizer=OptimizerConfig(learning_rate=1e-5, decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=2),
    )
    result, *_ = fit(small_digits, cfg, method="supervised")
    # At this learning rate validation accuracy barely moves: the run stops 2 epochs after its best
    # (which epoch that is depends on the initial weights), well before the 10 it was given.
    accuracies = [record["val_accuracy"] for record in result.history]
    assert result.stopped_early and len(result.history) == result.best_epoch + 2 < 10
    assert accuracies[result.best_epoch - 1] == max(accuracies) and result.restored_best


def test_restored_weights_are_those_of_the_best_epoch(small_digits):
    cfg = config(
        epochs=10,
        optimizer=OptimizerConfig(learning_rate=1e-5, decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=2),
    )
    result, student, _, trainer = fit(small_digits, cfg, method="supervised", listener=WeightRecorder)
    epochs = trainer.listener.weights
    final = student.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(final, epochs[result.best_epoch]))
    assert not all(np.array_equal(a, b) for a, b in zip(final, epochs[len(result.history)]))


def test_use_final_model_keeps_the_last_epoch(small_digits):
    cfg = config(
        epochs=3,
        optimizer=OptimizerConfig(learning_rate=1e-5, decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0, use_final_model=True),
    )
    result, student, _, trainer = fit(small_digits, cfg, method="supervised", listener=WeightRecorder)
    assert not result.restored_best
    last = trainer.listener.weights[3]
    assert all(np.array_equal(a, b) for a, b in zip(student.get_weights(), last))


@pytest.mark.parametrize("strategy_name", ["one", "mirrored"])
def test_clip_norm_bounds_every_variable_update(small_digits, strategy_name):
    data = dataclasses.replace(small_digits, x_train=small_digits.x_train[:128], y_train=small_digits.y_train[:128])
    clip = 1e-3
    cfg = config(
        epochs=1, batch_size=128, optimizer=OptimizerConfig(name="sgd", learning_rate=1.0, decay=0.0, clip_norm=clip)
    )
    strategy = build_strategy(strategy_name)
    seed_everything(0)
    initial = build(strategy, "digits_student", data).get_weights()
    _, student, _, _ = fit(data, cfg, method="supervised", strategy=strategy, student_weights=initial)
    norms = [np.linalg.norm(after - before) for after, before in zip(student.get_weights(), initial)]
    assert max(norms) <= clip * (1 + 1e-4)
    assert max(norms) == pytest.approx(clip, rel=1e-3)  # the unclipped step is far larger


def test_clip_value_bounds_every_element(small_digits):
    data = dataclasses.replace(small_digits, x_train=small_digits.x_train[:128], y_train=small_digits.y_train[:128])
    cfg = config(
        epochs=1, batch_size=128, optimizer=OptimizerConfig(name="sgd", learning_rate=1.0, decay=0.0, clip_value=1e-4)
    )
    seed_everything(0)
    initial = build(build_strategy("one"), "digits_student", data).get_weights()
    _, student, _, _ = fit(data, cfg, method="supervised", student_weights=initial)
    largest = max(np.abs(after - before).max() for after, before in zip(student.get_weights(), initial))
    assert largest == pytest.approx(1e-4, rel=1e-3)


def test_teacher_is_frozen_and_run_in_inference_mode(small_digits):
    strategy = build_strategy("one")
    with strategy.scope():
        inputs = keras.Input(small_digits.image_shape)
        x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
        x = keras.layers.BatchNormalization()(x)  # moving statistics would change if run with training=True
        x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(x))
        teacher = keras.Model(inputs, keras.layers.Dense(10)(x))
        student = zoo.build("digits_student", small_digits.image_shape, 10)
    before = [w.copy() for w in teacher.get_weights()]
    Trainer(
        student=NetworkView(student),
        teacher=NetworkView(teacher),
        method=get_method("kd")(),
        config=config(epochs=2),
        strategy=strategy,
    ).fit(small_digits)
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))


def test_same_seed_gives_the_same_history(small_digits):
    histories = []
    for _ in range(2):
        seed_everything(7)
        result, *_ = fit(small_digits, config(epochs=3, seed=7))
        histories.append(without_timing(result.history))
    assert histories[0] == histories[1]


@pytest.mark.parametrize("clip_norm", [None, 0.05])
def test_two_replicas_give_the_same_loss_and_update_as_one_device(small_digits, clip_norm):
    seed_everything(0)
    one = build_strategy("one")
    student_init = build(one, "digits_student", small_digits).get_weights()
    teacher_init = build(one, "digits_teacher", small_digits).get_weights()
    cfg = config(epochs=2, optimizer=OptimizerConfig(decay=0.0, clip_norm=clip_norm))
    runs = {}
    for name in ("one", "mirrored"):
        strategy = build_strategy(name)
        result, student, _, _ = fit(
            small_digits, cfg, strategy=strategy, student_weights=student_init, teacher_weights=teacher_init
        )
        runs[name] = (strategy.num_replicas_in_sync, result.columns(), student.get_weights())
    assert runs["one"][0] == 1 and runs["mirrored"][0] == 2
    for key in ("loss", "kd", "ce", "val_loss", "val_accuracy"):
        assert runs["mirrored"][1][key] == pytest.approx(runs["one"][1][key], rel=1e-5, abs=1e-6), key
    for a, b in zip(runs["one"][2], runs["mirrored"][2]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_pipelines_start_no_autotuning_threads(small_digits):
    # Each autotuned or distributed iterator starts tf.data threads that its release waits for: a
    # run pinned to one CPU hung for minutes as its epochs' iterators went. The engine's pipelines
    # run without autotuning, and on one CPU device they are not wrapped for distribution.
    from ktrain.augment import Views, parse_augment
    from ktrain.data import eval_pipeline
    from ktrain.strategy import host_only
    from ktrain.views import TrainingSamples

    d = small_digits
    for views in (None, Views(parse_augment("crop"), None, 0)):
        assert TrainingSamples(d.x_train, d.y_train, views).epoch(64, 0, 1).options().autotune.enabled is False
    assert eval_pipeline(d.x_val, d.y_val, 64).options().autotune.enabled is False
    assert host_only(build_strategy("one")) and not host_only(build_strategy("mirrored"))

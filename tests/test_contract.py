"""The method contract, checked over the whole registry with tiny models.

Every registered method must run one step on one device and on two logical replicas (and from
cached teacher taps), give the same losses and the same update on each, produce finite gradients,
and leave the teacher's weights unchanged.
"""

import keras
import numpy as np
import pytest

from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.data import DataSplits
from ktrain.engine import Trainer
from ktrain.methods import MethodSpec, method_names
from ktrain.seeding import seed_everything
from ktrain.specialists import ensemble_from_model
from ktrain.strategy import build_strategy
from ktrain.taps import method_view
from ktrain.targets import compute

CLASSES = 4
SHAPE = (6, 6, 1)


def tiny_data() -> DataSplits:
    rng = np.random.default_rng(0)

    def split(count):
        return rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8), np.arange(count, dtype=np.int32) % CLASSES

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(32), split(16), split(16)
    return DataSplits("tiny", x_train, y_train, x_val, y_val, x_test, y_test, CLASSES)


def tiny_student():
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(2, 3, activation="relu", name="student_conv")(inputs)  # feature maps for AT
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(x))


def tiny_teacher(ensemble: bool):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(12, activation="relu", name="hidden")(x)
    if not ensemble:
        return keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(x))
    # A generalist and two specialists (classes 0-1 and 2-3), as zoo:pyramid_ensemble lays them out.
    heads = [keras.layers.Dense(width, name=f"head{i}")(x) for i, width in enumerate((CLASSES, 2, 2))]
    return keras.Model(inputs, heads)


def one_step(name, strategy_name, weights, data, cached=False, options=None):
    spec = MethodSpec.of(name, options)
    strategy = build_strategy(strategy_name)
    ensemble = spec.cls.uses_ensemble
    with strategy.scope():
        student, teacher_model = tiny_student(), tiny_teacher(ensemble)
        student.set_weights(weights["student"])
        teacher_model.set_weights(weights["teacher"])
    spec = spec.resolved(student, None if ensemble else teacher_model)
    method = spec.build()
    teacher = None
    if method.uses_teacher:
        teacher = (
            ensemble_from_model(teacher_model, data, "tiny")
            if ensemble
            else method_view(teacher_model, method, "teacher")
        )
        method.attach_teacher(teacher)
    config = TrainConfig(
        epochs=1,
        batch_size=32,
        optimizer=OptimizerConfig(learning_rate=0.05, decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0),
    ).validate()
    targets = compute(teacher, data, 16) if cached else None
    trainer = Trainer(
        student=method_view(student, method),
        teacher=teacher,
        method=method,
        config=config,
        strategy=strategy,
        targets=targets,
    )
    history = trainer.fit(data).columns()
    return history, student.get_weights(), teacher_model.get_weights()


@pytest.fixture(scope="module")
def initial():
    seed_everything(0)
    return {
        ensemble: {"student": tiny_student().get_weights(), "teacher": tiny_teacher(ensemble).get_weights()}
        for ensemble in (False, True)
    }


def test_the_contract_covers_every_registered_method():
    assert {
        "kd",
        "dkd",
        "dist",
        "sp",
        "rkd",
        "at",
        "fitnet",
        "pkt",
        "pkt+kd",
        "selective-kd",
        "ensemble-kd",
        "supervised",
    } <= set(method_names())


VARIANTS = [
    ("kd", {"logit_standardization": True}),
    ("dkd", {"logit_standardization": True, "dkd_warmup": 0}),
]


@pytest.mark.parametrize(
    ("name", "options"), [(name, None) for name in method_names()] + VARIANTS, ids=lambda value: str(value)
)
def test_method_contract(name, options, initial):
    data = tiny_data()
    uses = MethodSpec.of(name).cls
    weights = initial[uses.uses_ensemble]
    one, student_one, teacher_after = one_step(name, "one", weights, data, options=options)
    parts = [
        key
        for key in one
        if not key.startswith("val_")
        and key not in ("accuracy", "crossentropy", "lr", "epoch_seconds", "images_per_second")
    ]
    assert "loss" in parts and len(parts) >= 2, parts
    assert all(np.isfinite(one[key][0]) for key in parts), one
    # Finite gradients: a finite update that moved the student.
    assert all(np.all(np.isfinite(w)) for w in student_one)
    assert any(not np.allclose(a, b) for a, b in zip(student_one, weights["student"]))
    for before, after in zip(weights["teacher"], teacher_after):
        np.testing.assert_array_equal(before, after)
    others = [one_step(name, "mirrored", weights, data, options=options)]
    if uses.uses_teacher:
        others.append(one_step(name, "one", weights, data, cached=True, options=options))
    for history, student, _ in others:
        for key in parts + ["val_loss"]:
            assert history[key][0] == pytest.approx(one[key][0], rel=1e-4, abs=1e-6), key
        for a, b in zip(student_one, student):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"temperature": float("nan")}, "temperature (-t) is nan: give a finite number"),
        ({"temperature": float("inf")}, "give a finite number"),
        ({"kd_lambda": -1}, "kd lambda (-kdl) is -1: give a value of 0 or more"),
        ({"temperature": "warm"}, "give a number"),
        ({"temprature": 4}, "method 'kd' has no option 'temprature': its options are temperature, kd_lambda"),
    ],
)
def test_options_are_checked_once_and_unknown_names_refused(options, fragment):
    from ktrain.errors import KtrainError
    from ktrain.methods import get_method

    with pytest.raises(KtrainError) as error:
        get_method("kd")(**options)
    assert fragment in str(error.value)


def test_methods_command_lists_every_method_with_its_defaults():
    from typer.testing import CliRunner

    from ktrain.cli.main import app

    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0
    for name in method_names():
        assert name in result.output
    assert "-t 2.0" in result.output and "--gate label" in result.output

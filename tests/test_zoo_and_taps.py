"""Zoo parameter counts (the seed's) and logits taken correctly from any classifier."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktrain import zoo
from ktrain.errors import KtrainError
from ktrain.methods import Tap
from ktrain.models import load_model
from ktrain.taps import NetworkView


@pytest.mark.parametrize(
    "name, input_shape, classes, params",
    [
        ("cifar10_student_strong", (32, 32, 3), 10, 106_922),
        ("cifar10_student_weak", (32, 32, 3), 10, 60_554),
        ("cifar10_model1", (32, 32, 3), 10, 308_394),
        ("cifar10_baseline_ensemble", (32, 32, 3), 10, 925_182),
        ("cifar100_student_strong", (32, 32, 3), 100, 1_537_508),
    ],
)
def test_seed_architectures_have_the_seed_parameter_counts(name, input_shape, classes, params):
    assert NetworkView(zoo.build(name, input_shape, classes)).params == params


@pytest.mark.parametrize("name", sorted(zoo.ARCHITECTURES))
def test_zoo_models_build_for_any_shape_and_output_logits(name):
    model = zoo.build(f"zoo:{name}", (16, 16, 1), 7)
    outputs = model(np.random.default_rng(0).uniform(size=(4, 16, 16, 1)).astype("float32"), training=False)
    if isinstance(outputs, (list, tuple)):  # an ensemble of specialists: a generalist, then the halves
        assert [int(output.shape[-1]) for output in outputs] == [7, 3, 4]
    else:
        outputs = [outputs]
        assert outputs[0].shape == (4, 7)
    for output in outputs:
        # Logits, not probabilities: a softmax output would already sum to one.
        assert not np.allclose(tf.reduce_sum(output, axis=-1), 1.0, atol=1e-3)


def test_ensemble_logits_are_the_log_of_the_mean_member_probability():
    model = zoo.build("cifar10_baseline_ensemble", (8, 8, 3), 5)
    images = np.random.default_rng(1).uniform(size=(3, 8, 8, 3)).astype("float32")
    head = model.get_layer("ensemble_head")
    towers = [keras.Model(model.inputs[0], model.get_layer(f"member{m}_flatten").output) for m in (1, 2, 3)]
    member_probabilities = [
        tf.nn.softmax(tower(images, training=False) @ head.kernel[m] + head.bias[m]).numpy()
        for m, tower in enumerate(towers)
    ]
    assert np.allclose(tf.nn.softmax(model(images, training=False)), np.mean(member_probabilities, axis=0), atol=1e-6)


def test_ensemble_features_are_all_members_features():
    view = NetworkView(zoo.build("cifar10_baseline_ensemble", (32, 32, 3), 10), taps=[Tap.features()])
    outputs = view.tap(np.zeros((2, 32, 32, 3), "float32"))
    assert outputs["logits"].shape == (2, 10) and np.prod(outputs["penultimate"].shape[1:]) == 3 * 2048


def test_ensemble_saves_and_loads(tmp_path):
    model = zoo.build("cifar10_baseline_ensemble", (8, 8, 3), 4)
    model.save(tmp_path / "ensemble.keras")
    images = np.random.default_rng(2).uniform(size=(2, 8, 8, 3)).astype("float32")
    reloaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(reloaded(images), model(images), rtol=1e-5)


def test_unknown_zoo_name_is_a_clear_error():
    with pytest.raises(KtrainError, match="unknown zoo model 'zoo:nope'"):
        zoo.build("zoo:nope", (8, 8, 1), 10)


def _body(inputs):
    x = keras.layers.Flatten()(inputs)
    return keras.layers.Dense(16, activation="relu")(x)


def _images(count=16):
    return np.random.default_rng(2).integers(0, 256, size=(count, 8, 8, 1), dtype=np.uint8)


def _scaled(images):
    return tf.cast(images, tf.float32) / 255.0


def test_view_strips_a_final_softmax_activation():
    inputs = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(10, name="logits")(_body(inputs))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    view = NetworkView(model, _images())
    raw = keras.Model(inputs, logits)
    assert "softmax" in view.source
    assert np.allclose(view(_scaled(_images())), raw(_scaled(_images())), atol=1e-6)


def test_view_strips_the_softmax_of_a_dense_layer():
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(10, activation="softmax", name="classifier")
    model = keras.Model(inputs, dense(_body(inputs)))
    view = NetworkView(model, _images())
    logits = view(_scaled(_images()))
    assert "without its softmax" in view.source
    # softmax(view) reproduces the model's output, so the logits are exactly the pre-softmax values.
    assert np.allclose(tf.nn.softmax(logits), model(_scaled(_images())), atol=1e-6)
    assert not np.allclose(tf.reduce_sum(logits, axis=-1), 1.0, atol=1e-3)


def test_view_takes_the_log_of_an_unstrippable_probability_output():
    inputs = keras.Input((8, 8, 1))
    members = [keras.layers.Dense(10, activation="softmax")(_body(inputs)) for _ in range(2)]
    model = keras.Model(inputs, keras.layers.Average()(members))
    view = NetworkView(model, _images())
    assert view.source == "log of probability output"
    assert np.allclose(tf.nn.softmax(view(_scaled(_images()))), model(_scaled(_images())), atol=1e-5)


def test_view_leaves_logits_alone():
    model = zoo.build("digits_student", (8, 8, 1), 10)
    view = NetworkView(model, _images())
    assert view.source == "model output"
    assert np.allclose(view(_scaled(_images())), model(_scaled(_images())))


def test_legacy_h5_teacher_ending_in_softmax_is_not_softmaxed_twice(tmp_path):
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10), keras.layers.Activation("softmax")]
    )
    path = tmp_path / "teacher.h5"
    model.save(path)
    loaded = load_model(str(path), role="teacher", input_shape=(8, 8, 1), num_classes=10)
    view = NetworkView(loaded, _images())
    images = _scaled(_images())
    assert np.allclose(tf.nn.softmax(view(images)), model(images), atol=1e-6)

"""--input-scale and --teacher-input-scale: the pixel range each model takes, and the warnings
for a teacher that scores near chance."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain import api
from ktrain.cli.main import app
from ktrain.data import load_dataset
from ktrain.errors import KtrainError
from ktrain.models import load_for
from ktrain.scaling import RAW, UNIT, affine, parse_input_scale
from ktrain.taps import NetworkView

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, None),
        ("1/255", UNIT),
        ("none", RAW),
        ("NONE", RAW),
        ("2/255,-1", (2 / 255, -1.0)),
        ("0.5", (0.5, 0.0)),
        ("1/127.5, -1", (1 / 127.5, -1.0)),
    ],
)
def test_input_scales_parse_as_keras_rescaling_takes_them(text, expected):
    assert parse_input_scale(text) == expected


@pytest.mark.parametrize(
    "text", ["", "x", "1/0", "2/255,-1,3", "0", "inf", "1,nan", "2/255,", "1e308", "1e-320", "1,1e308"]
)
def test_a_bad_input_scale_is_refused(text):
    with pytest.raises(KtrainError, match="--input-scale is"):
        parse_input_scale(text)


def test_affine_maps_ktrains_unit_images_to_the_models_range():
    # A pixel p reaches the pipeline as p/255; a model of scale (s, o) must see p*s + o.
    pixels = np.array([0.0, 1.0, 127.0, 255.0])
    for scale in (UNIT, RAW, (2 / 255, -1.0), (0.5, 3.0)):
        factor, offset = affine(scale)
        np.testing.assert_allclose((pixels / 255) * factor + offset, pixels * scale[0] + scale[1], rtol=1e-12)


def linear(first=None):
    inputs = keras.Input((8, 8, 1))
    x = first(inputs) if first is not None else inputs
    dense = keras.layers.Dense(10)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(x)))
    rng = np.random.default_rng(0)
    dense.set_weights([rng.normal(size=(64, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def reference_logits(model, pixels, scale):
    kernel, bias = model.layers[-1].get_weights()
    return (pixels.reshape(len(pixels), -1) * scale[0] + scale[1]) @ kernel + bias


@pytest.mark.parametrize("scale", [None, RAW, (2 / 255, -1.0)])
def test_a_view_feeds_its_model_the_pixel_range_it_takes(digits, scale):
    model = load_for(linear(), role="student", data=digits, input_scale=scale)
    view = NetworkView(model)
    images = digits.x_val[:16].astype(np.float32) / 255  # as ktrain's pipelines give them
    pixels = digits.x_val[:16].astype(np.float64)
    np.testing.assert_allclose(view(images).numpy(), reference_logits(model, pixels, scale or UNIT), rtol=1e-4)


def test_a_model_that_starts_by_rescaling_gets_raw_pixels(digits, caplog):
    model = linear(keras.layers.Rescaling(1 / 255, name="to_unit"))
    with caplog.at_level("INFO", logger="ktrain"):
        model = load_for(model, role="teacher", data=digits)
    assert "starts with a Rescaling layer ('to_unit'): it gets raw pixels 0-255" in caplog.text
    assert "255 times too small" not in caplog.text
    images = digits.x_val[:16].astype(np.float32) / 255
    expected = reference_logits(model, digits.x_val[:16].astype(np.float64), (1 / 255, 0.0))
    np.testing.assert_allclose(NetworkView(model)(images).numpy(), expected, rtol=1e-4)


def test_input_scale_with_float_images_is_refused(digits):
    from dataclasses import replace

    floats = replace(digits, x_train=digits.x_train.astype(np.float32))
    with pytest.raises(KtrainError, match="whose images are floats"):
        load_for(linear(), role="student", data=floats, input_scale=RAW)


@pytest.fixture(scope="module")
def trained_on_minus_one_to_one(tmp_path_factory):
    """A student trained on [-1, 1] pixels."""
    out = tmp_path_factory.mktemp("minus_one")
    result = invoke(
        "train", "zoo:digits_student", "digits", "-e", "8", "-v", "0", "--input-scale", "2/255,-1", "-out", out
    )
    assert result.exit_code == 0, result.output
    return out


def test_a_model_trained_on_another_range_is_scored_in_that_range(trained_on_minus_one_to_one):
    results = json.loads((trained_on_minus_one_to_one / "results.json").read_text())
    accuracy = results["results"][0]["test"]["accuracy"]
    assert accuracy > 0.8
    model = str(trained_on_minus_one_to_one / "model.keras")
    assert api.evaluate(model, "digits", input_scale="2/255,-1")["test accuracy"] == pytest.approx(accuracy)
    assert api.evaluate(model, "digits")["test accuracy"] < accuracy - 0.05  # fed [0, 1]: another model


def test_the_teacher_input_scale_reaches_distillation_and_the_cache_key(trained_on_minus_one_to_one, tmp_path):
    teacher = trained_on_minus_one_to_one / "model.keras"
    distill = ("distill", teacher, "zoo:digits_student", "digits", "-e", "1", "-v", "0", "--targets", "cache")
    scored = {}
    for extra in ((), ("--teacher-input-scale", "2/255,-1")):
        out = tmp_path / f"out{len(extra)}"
        result = invoke(*distill, "--cache-dir", tmp_path / "cache", *extra, "-out", out)
        assert result.exit_code == 0, result.output
        results = json.loads((out / "results.json").read_text())
        scored[extra] = next(e for e in results["results"] if e["role"] == "teacher")["test"]["accuracy"]
    assert scored[("--teacher-input-scale", "2/255,-1")] > scored[()] + 0.05
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # one cache per input range, never shared


def test_a_teacher_near_chance_is_a_warning_naming_the_class_order(trained_on_minus_one_to_one, tmp_path):
    teacher = keras.saving.load_model(trained_on_minus_one_to_one / "model.keras")
    permute = keras.layers.Dense(10, use_bias=False)
    inputs = keras.Input((8, 8, 1))
    permuted = keras.Model(inputs, permute(teacher(inputs)))
    permute.set_weights([np.roll(np.eye(10, dtype=np.float32), 3, axis=1)])  # label k comes out as k + 3
    permuted.save(tmp_path / "permuted.keras")
    distill = ("distill", tmp_path / "permuted.keras", "zoo:digits_student", "digits", "-e", "1", "-v", "0")
    result = invoke(*distill, "--teacher-input-scale", "2/255,-1", "-out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "warning: the teacher scores" in result.stderr and "near chance for 10 classes" in result.stderr
    assert "label→output 0→3, 1→4, 2→5" in result.stderr


def test_the_tflite_export_of_a_run_is_checked_in_the_students_range(tmp_path):
    distill = ("distill", "zoo:digits_teacher", "zoo:digits_student", "digits", "-e", "3", "-v", "0")
    result = invoke(*distill, "--input-scale", "2/255,-1", "--export", "float32", "-out", tmp_path)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    student = next(entry for entry in results["results"] if entry["role"] == "student")
    assert results["export"]["keras_accuracy"] == pytest.approx(student["test"]["accuracy"])
    assert results["export"]["agreement"] == 1.0


def test_a_double_scaling_warning_is_said_once_per_compare(tmp_path):
    # compare loads the student for its architecture and again for each seed: one warning.
    student = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Rescaling(1 / 255), keras.layers.Dense(10)]
    )
    student.save(tmp_path / "student.keras")
    compare = ("compare", "zoo:digits_teacher", tmp_path / "student.keras", "digits", "-m", "kd", "-e", "1")
    result = invoke(*compare, "--seeds", "2", "-v", "0", "-out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("rescales its inputs by 1/255") == 1
    assert (tmp_path / "out" / "output.log").read_text().count("rescales its inputs by 1/255") == 1

"""TFLite export: every mode of a trained digits student, checked with LiteRT."""

import json

import keras
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain.cli.main import app
from ktrain.errors import KtrainError
from ktrain.tflite import export

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_student(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    result = runner.invoke(
        app, ["train", "zoo:digits_student", "digits", "-e", "15", "-lr", "0.005", "-v", "0", "-out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("mode, min_agreement", [("float32", 0.99), ("float16", 0.99), ("int8", None)])
def test_export_modes_agree_with_keras(trained_student, tmp_path, mode, min_agreement):
    report = export(str(trained_student), str(tmp_path / f"s_{mode}.tflite"), mode, dataset="digits")
    assert (tmp_path / f"s_{mode}.tflite").stat().st_size == report["bytes"] > 0
    assert report["keras_accuracy"] > 0.85 and report["test_images"] == 359
    if min_agreement:
        assert report["agreement"] >= min_agreement
    assert report["accuracy_drop"] <= 0.01 and report["passed"]
    assert report["median_latency_ms"] > 0


def test_int8_is_smaller_than_float32(trained_student, tmp_path):
    sizes = {
        mode: export(str(trained_student), str(tmp_path / f"{mode}.tflite"), mode, dataset="digits")["bytes"]
        for mode in ("float32", "int8")
    }
    assert sizes["int8"] < sizes["float32"]


def test_int8_without_a_dataset_is_a_clear_error(trained_student, tmp_path):
    result = runner.invoke(app, ["export", str(trained_student), str(tmp_path / "x.tflite"), "--quantize", "int8"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --quantize int8 needs --dataset")
    assert not (tmp_path / "x.tflite").exists()


def test_cli_export_prints_the_table(trained_student, tmp_path):
    result = runner.invoke(
        app,
        [
            "export",
            str(trained_student / "model.keras"),
            str(tmp_path / "x.tflite"),
            "--quantize",
            "float16",
            "--dataset",
            "digits",
        ],
    )
    assert result.exit_code == 0, result.output
    for column in ("size", "Keras acc", "TFLite acc", "agreement", "latency", "float16"):
        assert column in result.output


def test_an_accuracy_drop_over_the_bound_fails_clearly(trained_student, tmp_path):
    from ktrain.tflite import check

    report = export(str(trained_student), str(tmp_path / "y.tflite"), "int8", dataset="digits")
    check(report)  # within the default bound: no error
    worse = {**report, "tflite_accuracy": report["keras_accuracy"] - 0.05, "accuracy_drop": 0.05, "passed": False}
    with pytest.raises(KtrainError, match=r"lost 0.0500 test accuracy .* more than --max-accuracy-drop 0.01"):
        check(worse)
    with pytest.raises(KtrainError, match="--max-accuracy-drop is 2"):
        export(str(trained_student), str(tmp_path / "z.tflite"), "int8", dataset="digits", max_accuracy_drop=2)


@keras.saving.register_keras_serializable(package="ktrain_tests")
class NumpyOp(keras.layers.Layer):
    def call(self, x):
        return tf.numpy_function(lambda a: a, [x], tf.float32)

    def compute_output_shape(self, shape):
        return shape


def test_a_model_the_converter_cannot_take_is_a_one_line_error(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), NumpyOp(), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "odd.keras")
    result = runner.invoke(app, ["export", str(tmp_path / "odd.keras"), str(tmp_path / "odd.tflite")])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: TensorFlow's converter could not convert") and "\n" not in message


def test_distill_export_is_recorded_in_results(tmp_path):
    result = runner.invoke(
        app,
        [
            "distill",
            "zoo:digits_teacher",
            "zoo:digits_student",
            "digits",
            "-e",
            "3",
            "-v",
            "0",
            "--export",
            "float16",
            "-out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["export"]["mode"] == "float16" and (tmp_path / "student_float16.tflite").is_file()
    assert "TFLite export" in result.output

"""Mixed precision: losses stay finite and float32, the student is saved in float32."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain.cli.main import app


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_distillation(tmp_path, precision):
    result = CliRunner().invoke(
        app,
        [
            "distill",
            "zoo:digits_teacher",
            "zoo:digits_student",
            "digits",
            "-e",
            "2",
            "-v",
            "0",
            "--precision",
            precision,
            "-out",
            str(tmp_path),
        ],
    )
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the job
    try:
        assert result.exit_code == 0, result.output
        results = json.loads((tmp_path / "results.json").read_text())
        history = results["results"][0]["history"]
        assert all(np.isfinite(history[key]).all() for key in ("loss", "kd", "ce", "val_loss"))
        assert history["loss"][-1] < history["loss"][0]
        assert results["config"]["precision"] == precision
        saved = keras.saving.load_model(tmp_path / "student.keras")
        assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
        assert saved(np.zeros((1, 8, 8, 1), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_clipping_with_float16_is_refused(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "distill",
            "zoo:digits_teacher",
            "zoo:digits_student",
            "digits",
            "--precision",
            "mixed_float16",
            "-cn",
            "1",
            "-out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "loss-scaled gradients" in result.stderr


def test_precision_applies_to_a_student_file(tmp_path):
    import ktrain

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(tmp_path / "student.keras")
    try:
        result = ktrain.train(
            str(tmp_path / "student.keras"),
            "digits",
            epochs=2,
            precision="mixed_bfloat16",
            out_folder=str(tmp_path / "o"),
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {layer.dtype_policy.name for layer in result.student.layers if layer.weights} == {"mixed_bfloat16"}
    assert result.history["loss"][-1] < result.history["loss"][0]
    saved = keras.saving.load_model(tmp_path / "o" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}

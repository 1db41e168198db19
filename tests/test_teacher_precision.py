"""--teacher-precision: the teacher's forward pass in bfloat16/float16, its recorded fidelity to
float32, the cache keyed by it, the warning, and the refusals."""

import json
import logging

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import ktrain
from ktrain.cli.main import app
from ktrain.evaluation import predict_logits
from ktrain.loading import load_teacher
from ktrain.precision import fidelity, policy_copy
from ktrain.specs import ModelsSpec
from ktrain.taps import NetworkView
from ktrain.targets import load_or_build


def teacher_model(bias: float = 0.0, scale: float = 1.0):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(10, bias_initializer=keras.initializers.Constant(bias))(x)
    model = keras.Model(inputs, outputs)
    model.layers[-1].kernel.assign(model.layers[-1].kernel * scale)
    return model


def test_fidelity_against_numpy():
    reference = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    reduced = np.array([[1.9, 0.1, -1.0], [0.6, 0.5, 0.5]])
    p = np.exp(reference) / np.exp(reference).sum(1, keepdims=True)
    q = np.exp(reduced) / np.exp(reduced).sum(1, keepdims=True)
    result = fidelity(reference, reduced)
    assert result["top1_agreement"] == 0.5
    assert result["mean_kl"] == pytest.approx(np.mean(np.sum(p * np.log(p / q), axis=1)), rel=1e-12)


def test_a_bfloat16_teacher_teaches_with_its_recorded_fidelity(digits):
    model = teacher_model()
    result = ktrain.distill(model, "zoo:digits_student", "digits", epochs=1, teacher_precision="bfloat16")
    entry = next(e for e in result.record["results"] if e["role"] == "teacher")
    assert entry["precision"] == "bfloat16" and model.layers[-1].kernel.dtype == "float32"  # the object is untouched
    # Recomputed independently: float32 logits against a bfloat16 copy's, on the validation split.
    reduced = policy_copy(model, "bfloat16")
    assert reduced.layers[-1].kernel.dtype == "bfloat16"
    expected = fidelity(
        predict_logits(NetworkView(model), digits.x_val), predict_logits(NetworkView(reduced), digits.x_val)
    )
    assert entry["fidelity"]["top1_agreement"] == pytest.approx(expected["top1_agreement"], abs=1e-12)
    assert entry["fidelity"]["mean_kl"] == pytest.approx(expected["mean_kl"], rel=1e-4)
    assert entry["fidelity"]["top1_agreement"] >= 0.99 and 0 < entry["fidelity"]["mean_kl"] < 1e-3


def test_the_cache_is_rebuilt_when_the_teacher_precision_changes(digits, tmp_path):
    model = teacher_model()
    caches = {}
    for precision in ("float32", "bfloat16", "float32"):
        teacher, _ = load_teacher(ModelsSpec(teacher=model), digits, (), precision=precision)
        targets = load_or_build(teacher, digits, 256, str(tmp_path))
        caches.setdefault(precision, targets)
        assert targets.arrays["train"]["logits"].dtype == np.float32
    assert len(list(tmp_path.glob("*.npz"))) == 2  # float32 was read back the second time
    assert caches["float32"].source != caches["bfloat16"].source
    manifests = [json.loads(path.read_text())["teacher_precision"] for path in tmp_path.glob("*.json")]
    assert sorted(manifests) == ["bfloat16", "float32"]
    reduced = policy_copy(model, "bfloat16")
    np.testing.assert_allclose(
        caches["bfloat16"].arrays["val"]["logits"], predict_logits(NetworkView(reduced), digits.x_val), rtol=1e-6
    )


def test_a_teacher_that_loses_its_top_class_in_reduced_precision_is_named_in_a_warning(digits, caplog):
    # Logits of about 100 that differ by less than bfloat16's step there (0.5): the top class is lost.
    model = teacher_model(bias=100.0, scale=1e-3)
    with caplog.at_level(logging.WARNING, logger="ktrain"):
        teacher, _ = load_teacher(ModelsSpec(teacher=model), digits, (), precision="bfloat16")
    assert teacher.fidelity["top1_agreement"] < 0.5
    assert "the bfloat16 teacher agrees with float32 on only" in caplog.text


def test_bad_teacher_precisions_are_one_line_errors(tmp_path):
    runner = CliRunner()
    arguments = [
        "distill",
        "zoo:digits_teacher",
        "zoo:digits_student",
        "digits",
        "-e",
        "1",
        "-out",
        str(tmp_path / "o"),
    ]
    result = runner.invoke(app, arguments + ["--teacher-precision", "int8"])
    assert (
        result.exit_code == 2
        and "--teacher-precision is 'int8': use one of float32, bfloat16, float16" in result.stderr
    )
    assert not (tmp_path / "o").exists()
    result = runner.invoke(
        app,
        [
            "distill",
            "zoo:pyramid_ensemble",
            "zoo:digits_student",
            "digits",
            "-e",
            "1",
            "--teacher-precision",
            "float16",
            "-out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 2 and "ensembles run in float32" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "e").exists()

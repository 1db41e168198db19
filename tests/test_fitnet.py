"""FitNets: a hand-computed golden value, a NumPy reference, the default pair, the two stages, the
regressor kept out of the student file, and one-line errors."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain import zoo
from ktrain.cli.main import app
from ktrain.errors import KtrainError
from ktrain.methods import MethodSpec, get_method
from ktrain.methods.base import Batch
from ktrain.methods.fitnet import fitnet_loss, fitnet_per_example


def test_fitnet_golden_by_hand():
    # One position: hint [1, 2] · K [[0.5], [1]] + 0.25 = 2.75 against 3 → 0.0625. Two positions,
    # two samples: (h·K + b − g)² per position, averaged per sample, then over the batch.
    assert float(fitnet_loss([[[[1.0, 2.0]]]], [[[[3.0]]]], np.array([[0.5], [1.0]]), np.array([0.25]))) == 0.0625
    hints = np.array([[[[1, 0], [0, 1]]], [[[2, 2], [-1, 0]]]], np.float32)  # 2 × 1 × 2 × 2
    guided = np.array([[[[1], [1]]], [[[0], [0]]]], np.float32)
    kernel, bias = np.array([[1.0], [2.0]], np.float32), np.array([0.0], np.float32)
    # Sample 1: mapped 1 and 2 against 1 and 1 → (0 + 1) / 2 = 0.5. Sample 2: 6 and −1 against 0 → 18.5.
    np.testing.assert_allclose(fitnet_per_example(hints, guided, kernel, bias).numpy(), [0.5, 18.5])


def test_fitnet_matches_numpy():
    rng = np.random.default_rng(0)
    hint, guided = rng.standard_normal((3, 4, 4, 5)), rng.standard_normal((3, 4, 4, 7))
    kernel, bias = rng.standard_normal((5, 7)), rng.standard_normal(7)
    expected = np.mean((np.einsum("bhwc,cd->bhwd", hint, kernel) + bias - guided) ** 2)
    value = fitnet_loss(*(a.astype(np.float32) for a in (hint, guided, kernel, bias)))
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_the_default_pair_is_the_students_middle_map_and_the_teachers_at_its_resolution():
    student = zoo.build("digits_cnn_student", (8, 8, 1), 10)
    teacher = zoo.build("digits_teacher", (8, 8, 1), 10)
    options = MethodSpec.of("fitnet").resolved(student, teacher).options
    assert (options.hint_layer, options.guided_layer) == ("conv1", "conv2")
    with pytest.raises(KtrainError, match="FitNets found no feature maps in the student"):
        MethodSpec.of("fitnet").resolved(zoo.build("digits_student", (8, 8, 1), 10), teacher)
    with pytest.raises(KtrainError, match="give both, or neither"):
        MethodSpec.of("fitnet", {"hint_layer": "conv1"}).resolved(student, teacher)


def test_two_stages_train_the_hint_then_the_labels():
    method = get_method("fitnet")(hint_layer="a", guided_layer="b", fitnet_hint_epochs=2)
    method.build_state({"hint": tf.TensorShape([None, 2, 2, 3])}, {"guided": tf.TensorShape([None, 2, 2, 4])})
    rng = np.random.default_rng(1)
    student = {"hint": rng.standard_normal((4, 2, 2, 3)).astype(np.float32)}
    teacher = {"guided": rng.standard_normal((4, 2, 2, 4)).astype(np.float32)}
    logits, labels = rng.standard_normal((4, 10)).astype(np.float32), np.arange(4)

    def parts(epoch):
        batch = Batch.local(labels, logits, None, student=student, teacher=teacher, epoch=epoch)
        return {name: float(tf.reduce_sum(value)) for name, value in method.losses(batch).items()}

    first, third = parts(1), parts(3)
    assert first["ce"] == 0.0 and first["fitnet"] > 0.0
    assert third["fitnet"] == 0.0 and third["ce"] > 0.0


def test_cli_fitnet_keeps_the_regressor_out_of_the_student_and_refuses_unmatched_maps(tmp_path):
    runner = CliRunner()
    common = ["zoo:digits_teacher", "zoo:digits_cnn_student", "digits", "-e", "1", "-v", "0"]
    bad = runner.invoke(
        app,
        ["distill", *common, "-m", "fitnet", "--hint-layer", "conv2", "--guided-layer", "conv2"]
        + ["-out", str(tmp_path / "bad")],
    )
    assert bad.exit_code == 2 and "FitNets cannot regress student layer 'conv2'" in bad.output
    outcome = runner.invoke(app, ["distill", *common, "-m", "fitnet", "-out", str(tmp_path / "run")])
    assert outcome.exit_code == 0, outcome.output
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["method"]["options"]["hint_layer"] == "conv1"
    saved = keras.saving.load_model(tmp_path / "run" / "student.keras", compile=False)
    assert saved.count_params() == 3818  # the student alone: the regressor stays method state

"""Attention transfer: golden values, a NumPy reference, the automatic layer pairs, one-line errors.

The golden values were computed once, independently of the TensorFlow code, with a 40-digit mpmath
implementation of the paper's attention maps (explicit loops over positions and channels) on the
maps S and T below (2 samples, 2×2 positions, 2 and 3 channels), and on a 4×4 map area-averaged by
hand to 2×2.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain import zoo
from ktrain.cli.main import app
from ktrain.errors import KtrainError
from ktrain.methods import MethodSpec
from ktrain.methods.at import at_loss, choose_pairs

S = np.array([[[[1, -2], [0.5, 1]], [[0, 3], [-1, -1]]], [[[2, 0], [1, 1]], [[-1, 0.5], [0, 2]]]], np.float32)
T = np.array(
    [[[[1, 0, 2], [0, 1, 1]], [[2, 2, 0], [1, -1, 0]]], [[[0, 1, 0], [3, 0, 1]], [[1, 1, 1], [0, 0, -2]]]], np.float32
)


def attention_reference(f, p):
    a = np.mean(np.abs(f) ** p, axis=-1).reshape(len(f), -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_at_golden():
    assert float(at_loss(S, T)) == pytest.approx(0.092281095423680774, rel=1e-5)
    assert float(at_loss(S, T, p=1.0)) == pytest.approx(0.028862776975318848, rel=1e-5)
    student = np.array([[1, 2, 0, 1], [3, 0, 1, 1], [0, 0, 2, 2], [1, 1, 0, 4]], np.float32).reshape(1, 4, 4, 1)
    teacher = np.array([[1, 0], [2, 1]], np.float32).reshape(1, 2, 2, 1)
    assert float(at_loss(student, teacher)) == pytest.approx(0.31547928634613228, rel=1e-5)


def test_at_matches_numpy_and_sums_pairs():
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((4, 6, 6, 3)), rng.standard_normal((4, 6, 6, 5))) for _ in range(2)]
    expected = sum(np.mean((attention_reference(s, 2) - attention_reference(t, 2)) ** 2) for s, t in pairs)
    student = [s.astype(np.float32) for s, _ in pairs]
    teacher = [t.astype(np.float32) for _, t in pairs]
    assert float(at_loss(student, teacher)) == pytest.approx(expected, rel=1e-4)


def test_maps_of_other_shapes_are_reduced_per_dimension_and_p_below_one_is_refused():
    rng = np.random.default_rng(1)
    student = rng.standard_normal((2, 8, 2, 3)).astype(np.float32)
    teacher = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    # Each dimension is only reduced: both maps become 4×2 (the teacher's width is averaged 4 → 2).
    pooled_student = student.reshape(2, 4, 2, 2, 3).mean(axis=2)
    pooled_teacher = teacher.reshape(2, 4, 2, 2, 3).mean(axis=3)
    expected = np.mean((attention_reference(pooled_student, 2) - attention_reference(pooled_teacher, 2)) ** 2)
    assert float(at_loss(student, teacher)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(KtrainError, match="--at-p is 0.5: give 1 or more"):
        MethodSpec.of("at", {"at_p": 0.5})


def test_at_gradient_is_finite_on_dead_feature_maps():
    student = tf.Variable(np.zeros((2, 4, 4, 3), np.float32))  # all-zero maps: zero attention norm
    with tf.GradientTape() as tape:
        loss = at_loss(student, np.ones((2, 4, 4, 2), np.float32))
    assert np.isfinite(float(loss)) and np.all(np.isfinite(tape.gradient(loss, student).numpy()))


def test_the_pairs_are_the_last_layer_at_each_shared_resolution():
    student = zoo.build("digits_cnn_student", (8, 8, 1), 10)
    teacher = zoo.build("digits_teacher", (8, 8, 1), 10)
    assert choose_pairs(student, teacher) == (["conv1", "conv2"], ["conv2", "dropout1"])
    spec = MethodSpec.of("at").resolved(student, teacher)
    assert spec.options.student_layers == "conv1,conv2" and spec.options.teacher_layers == "conv2,dropout1"
    mlp = zoo.build("digits_student", (8, 8, 1), 10)
    with pytest.raises(KtrainError, match="no feature-map resolution both networks have"):
        MethodSpec.of("at").resolved(mlp, teacher)
    with pytest.raises(KtrainError, match="--student-layers names 1 layer"):
        MethodSpec.of("at", {"student_layers": "conv1", "teacher_layers": "conv1,conv2"}).resolved(student, teacher)


def test_cli_at_records_its_pairs_and_refuses_flat_layers(tmp_path):
    runner = CliRunner()
    common = ["zoo:digits_teacher", "zoo:digits_cnn_student", "digits", "-e", "1", "-v", "0"]
    flat = runner.invoke(
        app,
        ["distill", *common, "-m", "at", "--student-layers", "flatten", "--teacher-layers", "flatten"]
        + ["-out", str(tmp_path / "flat")],
    )
    assert flat.exit_code == 2 and "AT needs 4-D feature maps (N×H×W×C), but student layer 'flatten'" in flat.output
    outcome = runner.invoke(app, ["distill", *common, "-m", "at", "-out", str(tmp_path / "at")])
    assert outcome.exit_code == 0, outcome.output
    record = json.loads((tmp_path / "at" / "results.json").read_text())
    assert record["method"]["options"]["student_layers"] == "conv1,conv2"
    assert record["method"]["options"]["teacher_layers"] == "conv2,dropout1"


def test_compare_reports_a_method_the_models_cannot_serve_and_runs_the_others(tmp_path):
    outcome = CliRunner().invoke(
        app,
        ["compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kd,at", "-e", "1", "-v", "0"]
        + ["--no-baseline", "-out", str(tmp_path)],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "Attention Transfer: 1 run(s) failed: AT found no feature-map resolution" in outcome.output
    record = json.loads((tmp_path / "results.json").read_text())
    kd = next(entry for entry in record["results"] if entry["method"] == "kd")
    assert kd["epochs_run"] == 1 and "failed" not in kd

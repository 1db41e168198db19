"""SP and RKD: NumPy references, golden values, finite gradients on coincident samples, the CLI.

The golden values were computed once, independently of the TensorFlow code, with a 60-digit mpmath
implementation of the papers' formulas (explicit loops over pairs and triples) on the student
features FS and teacher features FT below (widths 3 and 2).
"""

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain.cli.main import app
from ktrain.methods.rkd import rkd_angle_loss, rkd_distance_loss, rkd_loss
from ktrain.methods.sp import sp_loss

FS = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 1.0], [-1.0, 2.0, 0.0], [0.0, 1.0, 1.0]], np.float32)
FT = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, -1.0], [3.0, 0.5]], np.float32)


def sp_reference(fs, ft):
    def normalized(f):
        g = f @ f.T
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)

    return np.sum((normalized(ft) - normalized(fs)) ** 2) / len(fs) ** 2


def huber_reference(a, b):
    d = np.abs(a - b)
    return np.mean(np.where(d < 1, 0.5 * d * d, d - 0.5))


def rkd_reference(fs, ft):
    def distances(f):
        d = np.linalg.norm(f[:, None, :] - f[None, :, :], axis=2)
        return d / d[d > 0].mean()

    def angles(f):
        e = f[None, :, :] - f[:, None, :]
        n = np.linalg.norm(e, axis=2, keepdims=True)
        u = np.divide(e, n, out=np.zeros_like(e), where=n > 0)
        return np.einsum("jid,jkd->jik", u, u)

    return huber_reference(distances(fs), distances(ft)), huber_reference(angles(fs), angles(ft))


def test_sp_golden_and_reference():
    assert float(sp_loss(FS, FT)) == pytest.approx(0.069978476579392117, rel=1e-5)
    rng = np.random.default_rng(0)
    fs, ft = rng.standard_normal((16, 8)), rng.standard_normal((16, 5))
    assert float(sp_loss(fs.astype(np.float32), ft.astype(np.float32))) == pytest.approx(sp_reference(fs, ft), rel=1e-4)


def test_rkd_golden_and_reference():
    assert float(rkd_distance_loss(FS, FT)) == pytest.approx(0.06169961449379269, rel=1e-5)
    assert float(rkd_angle_loss(FS, FT)) == pytest.approx(0.10870199357243917, rel=1e-5)
    assert float(rkd_loss(FS, FT)) == pytest.approx(6.9775900409667759, rel=1e-5)
    rng = np.random.default_rng(1)
    fs, ft = rng.standard_normal((12, 6)), rng.standard_normal((12, 4))
    distance, angle = rkd_reference(fs, ft)
    assert float(rkd_distance_loss(fs.astype(np.float32), ft.astype(np.float32))) == pytest.approx(distance, rel=1e-4)
    assert float(rkd_angle_loss(fs.astype(np.float32), ft.astype(np.float32))) == pytest.approx(angle, rel=1e-4)


def test_conv_maps_are_flattened_per_sample():
    rng = np.random.default_rng(2)
    maps = rng.standard_normal((6, 2, 2, 3)).astype(np.float32)
    teacher = rng.standard_normal((6, 4)).astype(np.float32)
    assert float(sp_loss(maps, teacher)) == pytest.approx(float(sp_loss(maps.reshape(6, -1), teacher)), rel=1e-6)
    assert float(rkd_loss(maps, teacher)) == pytest.approx(float(rkd_loss(maps.reshape(6, -1), teacher)), rel=1e-6)


def test_gradients_stay_finite_on_coincident_and_zero_samples():
    rows = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [3.0, -1.0]], np.float32)  # a repeated row, a zero row
    student = tf.Variable(rows)
    teacher = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 2.0], [1.0, 0.0]], np.float32)
    with tf.GradientTape() as tape:
        total = sp_loss(student, teacher) + rkd_loss(student, teacher)
    assert np.isfinite(float(total))
    gradient = tape.gradient(total, student).numpy()
    # Finite and of the size of any other step: a norm floored at 1e-12 gave gradients of 1e8 and more.
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() < 1e3


def test_relations_vanish_when_the_student_copies_the_teacher():
    rng = np.random.default_rng(3)
    features = rng.standard_normal((8, 5)).astype(np.float32)
    assert float(sp_loss(features, features)) == pytest.approx(0.0, abs=1e-7)
    assert float(rkd_loss(features, features)) == pytest.approx(0.0, abs=1e-6)
    # RKD is invariant to the scale of either network's features (distances are mean-normalised).
    assert float(rkd_loss(3.0 * features, features)) == pytest.approx(0.0, abs=1e-5)


def test_cli_runs_sp_and_rkd_and_refuses_a_negative_weight(tmp_path):
    runner = CliRunner()
    common = ["zoo:digits_teacher", "zoo:digits_student", "digits", "-e", "1", "-v", "0"]
    bad = runner.invoke(app, ["distill", *common, "-m", "rkd", "--rkd-angle-weight", "-1", "-out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--rkd-angle-weight is -1.0: give a value of 0 or more" in bad.output
    outcome = runner.invoke(app, ["compare", *common, "-m", "sp,rkd", "--no-baseline", "-out", str(tmp_path), "-or"])
    assert outcome.exit_code == 0, outcome.output
    assert "Similarity-Preserving KD" in outcome.output and "Relational KD" in outcome.output

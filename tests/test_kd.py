"""KD loss: golden values from anchors.md §4 and a NumPy reference on random inputs."""

import numpy as np
import pytest
import tensorflow as tf

from ktrain.errors import KtrainError
from ktrain.losses import cross_entropy
from ktrain.methods import Batch, get_method
from ktrain.methods.kd import kd_loss, kd_per_example

STUDENT_LOGITS = np.array([[1, 2, 3], [0, 0, 0], [2, -1, 0.5], [0.3, 0.2, -0.4]], np.float32)
TEACHER_LOGITS = np.array([[3, 2, 1], [1, 0, -1], [4, -2, 0], [0, 0, 1]], np.float32)
LABELS = np.array([2, 0, 0, 2])


def numpy_kd(student, teacher, temperature):
    """T² · KL(softmax(t/T) ‖ softmax(s/T)), summed over classes, mean over the batch, in float64."""

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    log_p_t = log_softmax(teacher.astype(np.float64) / temperature)
    log_p_s = log_softmax(student.astype(np.float64) / temperature)
    return temperature**2 * np.mean(np.sum(np.exp(log_p_t) * (log_p_t - log_p_s), axis=1))


@pytest.mark.parametrize("temperature, golden", [(1.0, 0.4776090068), (4.0, 0.7138592904)])
def test_kd_golden_values(temperature, golden):
    assert float(kd_loss(STUDENT_LOGITS, TEACHER_LOGITS, temperature)) == pytest.approx(golden, abs=1e-6)


def test_hard_cross_entropy_golden_value():
    assert float(tf.reduce_mean(cross_entropy(LABELS, STUDENT_LOGITS))) == pytest.approx(0.8308977281, abs=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 6.0, 20.0])
def test_kd_matches_numpy_reference(rng, temperature):
    student = rng.normal(scale=3.0, size=(32, 10)).astype(np.float32)
    teacher = rng.normal(scale=3.0, size=(32, 10)).astype(np.float32)
    expected = numpy_kd(student, teacher, temperature)
    assert float(kd_loss(student, teacher, temperature)) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_kd_of_identical_logits_is_zero(rng):
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    assert float(kd_loss(logits, logits, 3.0)) == pytest.approx(0.0, abs=1e-7)


def test_kd_is_computed_in_float32_from_half_precision_inputs(rng):
    student = rng.normal(size=(8, 10)).astype(np.float16)
    teacher = rng.normal(size=(8, 10)).astype(np.float16)
    per_example = kd_per_example(student, teacher, 2.0)
    assert per_example.dtype == tf.float32
    expected = numpy_kd(student.astype(np.float32), teacher.astype(np.float32), 2.0)
    assert float(tf.reduce_mean(per_example)) == pytest.approx(expected, rel=1e-5)


def test_kd_method_weights_the_supervised_term():
    method = get_method("distillation")(temperature=4.0, kd_lambda=0.3)
    parts = method.losses(Batch.local(LABELS, STUDENT_LOGITS, TEACHER_LOGITS))
    assert set(parts) == {"kd", "ce"}
    assert float(tf.reduce_mean(parts["kd"])) == pytest.approx(0.7138592904, abs=1e-6)
    assert float(tf.reduce_mean(parts["ce"])) == pytest.approx(0.3 * 0.8308977281, abs=1e-6)


def test_kd_method_without_supervised_term_has_only_kd():
    parts = get_method("kd")(temperature=1.0, kd_lambda=0.0).losses(Batch.local(LABELS, STUDENT_LOGITS, TEACHER_LOGITS))
    assert set(parts) == {"kd"}


@pytest.mark.parametrize("options, fragment", [({"temperature": 0.0}, "temperature"), ({"kd_lambda": -0.1}, "-kdl")])
def test_kd_rejects_bad_settings(options, fragment):
    with pytest.raises(KtrainError, match=fragment):
        get_method("kd")(**options)

"""PKT: golden values, NumPy reference, supervised term, exact loss across replicas, feature metrics."""

import json

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain import zoo
from ktrain.cli.main import app
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.engine import Trainer
from ktrain.evaluation import knn_accuracy, retrieval_metrics
from ktrain.methods import Batch, Tap, get_method
from ktrain.methods.pkt import pkt_loss, supervised_pkt_loss
from ktrain.seeding import seed_everything
from ktrain.strategy import build_strategy
from ktrain.taps import NetworkView

STUDENT_FEATURES = np.array([[1, 0, 2], [0, 1, 1], [1, 1, 0], [2, -1, 1]], np.float32)
TEACHER_FEATURES = np.array([[1, 2], [2, 1], [0, 1], [-1, 1]], np.float32)


def numpy_probabilities(features, eps=1e-7):
    features = features.astype(np.float64)
    normalised = features / (np.linalg.norm(features, axis=1, keepdims=True) + eps)
    kernel = (normalised @ normalised.T + 1.0) / 2.0
    return kernel / kernel.sum(axis=1, keepdims=True)


def numpy_divergence(target, model, eps=1e-7):
    return np.mean(target * np.log((target + eps) / (model + eps)))


def test_pkt_golden_value_and_zero_on_identical_features():
    assert float(pkt_loss(STUDENT_FEATURES, TEACHER_FEATURES)) == pytest.approx(0.0048560423, abs=1e-6)
    assert float(pkt_loss(STUDENT_FEATURES, STUDENT_FEATURES)) == 0.0


@pytest.mark.parametrize("batch, student_width, teacher_width", [(2, 3, 5), (16, 8, 32), (64, 100, 10)])
def test_pkt_matches_numpy_reference(rng, batch, student_width, teacher_width):
    student = rng.normal(size=(batch, student_width)).astype(np.float32)
    teacher = rng.normal(size=(batch, teacher_width)).astype(np.float32)
    expected = numpy_divergence(numpy_probabilities(teacher), numpy_probabilities(student))
    assert float(pkt_loss(student, teacher)) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_supervised_pkt_matches_numpy_and_changes_the_gradient(rng):
    labels = np.array([0, 1, 0, 2, 1, 1])
    student = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    teacher = tf.constant(rng.normal(size=(6, 3)).astype(np.float32))
    same = (labels[:, None] == labels[None, :]).astype(np.float64)
    expected = numpy_divergence(same / same.sum(axis=1, keepdims=True), numpy_probabilities(student.numpy()))
    assert float(supervised_pkt_loss(student, labels)) == pytest.approx(expected, rel=1e-4)

    def gradient(pkt_lambda):
        with tf.GradientTape() as tape:
            tape.watch(student)
            batch = Batch.local(labels, tf.zeros((6, 3)), student={"features": student}, teacher={"features": teacher})
            parts = get_method("pkt")(pkt_lambda=pkt_lambda).losses(batch)
            total = tf.add_n(list(parts.values()))
        return tape.gradient(total, student).numpy()

    assert not np.allclose(gradient(0.0), gradient(0.5))


def test_pkt_and_pkt_kd_are_registered_under_the_seed_names():
    assert get_method("pkt").name == "pkt"
    assert get_method("pkt+distillation").name == "pkt+kd"
    assert get_method("PKT+KD").name == "pkt+kd"


def run(method, data, strategy_name, student_weights, teacher_weights, epochs=1):
    strategy = build_strategy(strategy_name)
    with strategy.scope():
        student = zoo.build("digits_student", data.image_shape, 10)
        teacher = zoo.build("digits_teacher", data.image_shape, 10)
        student.set_weights(student_weights)
        teacher.set_weights(teacher_weights)
    config = TrainConfig(
        epochs=epochs,
        optimizer=OptimizerConfig(decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0),
    ).validate()
    method = get_method(method)()
    trainer = Trainer(
        student=NetworkView(student, taps=[Tap.features()]),
        teacher=NetworkView(teacher, taps=[Tap.features()]),
        method=method,
        config=config,
        strategy=strategy,
    )
    result = trainer.fit(data)
    return result.columns(), student.get_weights(), teacher.get_weights()


@pytest.mark.parametrize("method", ["pkt", "pkt+kd"])
def test_two_replicas_give_the_exact_global_pkt_loss_and_update(small_digits, method):
    seed_everything(0)
    student_init = zoo.build("digits_student", small_digits.image_shape, 10).get_weights()
    teacher_init = zoo.build("digits_teacher", small_digits.image_shape, 10).get_weights()
    one = run(method, small_digits, "one", student_init, teacher_init)
    two = run(method, small_digits, "mirrored", student_init, teacher_init)
    for key in ("pkt", "loss", "val_pkt", "val_loss"):
        assert two[0][key] == pytest.approx(one[0][key], rel=1e-5), key
    for a, b in zip(one[1], two[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # The gradient reaches the student only.
    assert not all(np.array_equal(a, b) for a, b in zip(one[1], student_init))
    assert all(np.array_equal(a, b) for a, b in zip(one[2], teacher_init))


def test_knn_and_map_on_a_toy_set():
    database = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]], np.float32)
    labels = np.array([0, 0, 1, 1, 0])
    queries = np.array([[0.5], [11.2], [5.0]], np.float32)
    query_labels = np.array([0, 1, 0])
    # k=3, Euclidean: [0.5] -> 0,0,(1) -> 0 ✓; [11.2] -> 1,0,1 -> 1 ✓; [5.0] -> {1.0:0, 0.0:0, 10.0:1} -> 0 ✓
    assert knn_accuracy(database, labels, queries, query_labels, k=3, metric="euclidean") == 1.0
    # k=2 ties: [5.0] -> nearest 1.0 (label 0), then 10.0 (label 1): tie broken by the nearest -> 0 ✓
    assert knn_accuracy(database, labels, queries[2:], query_labels[2:], k=2, metric="euclidean") == 1.0
    # mAP, Euclidean. Query [0.5] (label 0): ranking 0,1 (|0.5|), 10, 11, 12 -> relevant at ranks 1,2,5
    # AP = (1/1 + 2/2 + 3/5) / 3. Query [11.2] (label 1): ranking 11,12,10,1,0 -> relevant at ranks 1,3
    # AP = (1/1 + 2/3) / 2.
    metrics = retrieval_metrics(
        database, labels, queries[:2], query_labels[:2], metric="euclidean", precision_at=(1, 2)
    )
    expected_map = ((1 + 1 + 3 / 5) / 3 + (1 + 2 / 3) / 2) / 2
    assert metrics["map"] == pytest.approx(expected_map, rel=1e-6)
    assert metrics["precision@1"] == 1.0 and metrics["precision@2"] == pytest.approx(0.75)


def test_knn_chunking_does_not_change_the_answer(rng):
    database = rng.normal(size=(300, 8)).astype(np.float32)
    labels = rng.integers(0, 4, 300)
    queries = rng.normal(size=(70, 8)).astype(np.float32)
    query_labels = rng.integers(0, 4, 70)
    whole = knn_accuracy(database, labels, queries, query_labels, chunk=1000)
    assert knn_accuracy(database, labels, queries, query_labels, chunk=7) == whole
    assert retrieval_metrics(database, labels, queries, query_labels, chunk=5) == pytest.approx(
        retrieval_metrics(database, labels, queries, query_labels, chunk=1000)
    )


def test_ktrain_pkt_end_to_end_reports_knn_and_map(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "pkt",
            "zoo:digits_teacher",
            "zoo:digits_student",
            "digits",
            "-e",
            "2",
            "-v",
            "0",
            "-out",
            str(tmp_path),
            "--student-layer",
            "hidden",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "kNN" in result.output and "mAP" in result.output
    results = json.loads((tmp_path / "results.json").read_text())
    student = results["results"][0]
    assert student["method"] == "pkt" and student["feature_layer"] == "output of layer 'hidden'"
    for report in (student["representation"], student["untrained_representation"]):
        assert 0.0 <= report["knn_accuracy_cosine"] <= 1.0 and 0.0 <= report["map"] <= 1.0
    assert "pkt" in student["history"] and "pkt_supervised" in student["history"]


def test_unknown_feature_layer_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "pkt",
            "zoo:digits_teacher",
            "zoo:digits_student",
            "digits",
            "-e",
            "1",
            "--teacher-layer",
            "nope",
            "-out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: teacher 'zoo:digits_teacher' has no layer 'nope'")

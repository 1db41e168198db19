"""Datasets: the built-in digits, .npz files, TFDS (mocked), splits and pipelines."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ktrain.data import eval_pipeline, load_dataset, stratified_split, train_pipeline
from ktrain.errors import KtrainError


def test_digits_loads_offline_with_a_stratified_validation_split(digits):
    assert digits.image_shape == (8, 8, 1) and digits.num_classes == 10
    assert digits.x_train.dtype == np.uint8
    assert len(digits.y_train) + len(digits.y_val) == 1438 and len(digits.y_test) == 359
    val_share = np.bincount(digits.y_val) / (np.bincount(digits.y_val) + np.bincount(digits.y_train))
    assert np.allclose(val_share, 0.3, atol=0.01)


def test_split_is_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), 25)
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 100
    assert np.array_equal(held, stratified_split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=4)[1])
    assert np.all(np.bincount(labels[held]) == 5)


def test_pipelines_scale_inside_and_shuffle_by_seed_and_epoch(digits):
    batch = next(iter(eval_pipeline(digits.x_val, digits.y_val, 32)))
    assert batch[0].dtype.name == "float32" and float(batch[0].numpy().max()) <= 1.0
    np.testing.assert_allclose(batch[0].numpy(), digits.x_val[:32] / 255.0, rtol=1e-6)

    def labels(seed, epoch):
        return np.concatenate(
            [batch["labels"].numpy() for batch in train_pipeline(digits.x_train, digits.y_train, 64, seed, epoch)]
        )

    assert np.array_equal(labels(0, 1), labels(0, 1))
    assert not np.array_equal(labels(0, 1), labels(0, 2))
    assert len(labels(0, 1)) == (len(digits.y_train) // 64) * 64  # full batches only


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_with_one_hot_labels_and_hw_images(tmp_path):
    rng = np.random.default_rng(0)
    y_train = rng.integers(0, 3, 60)
    path = write_npz(
        tmp_path / "set.npz",
        x_train=rng.integers(0, 256, (60, 5, 5), dtype=np.uint8),
        y_train=np.eye(3)[y_train],
        x_test=rng.integers(0, 256, (10, 5, 5), dtype=np.uint8),
        y_test=rng.integers(0, 3, 10),
    )
    data = load_dataset(path, val_split=0.25)
    assert data.image_shape == (5, 5, 1) and data.num_classes == 3
    assert sorted(np.concatenate([data.y_train, data.y_val]).tolist()) == sorted(y_train.tolist())


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"x_train": np.zeros((4, 2, 2), np.uint8), "y_train": np.zeros(4)}, "lacks x_test, y_test"),
        (
            {
                "x_train": np.zeros((4, 2, 2), np.uint8),
                "y_train": np.zeros(3),
                "x_test": np.zeros((2, 2, 2), np.uint8),
                "y_test": np.zeros(2),
            },
            "4 x_train images but 3 y_train labels",
        ),
        (
            {
                "x_train": np.zeros((4, 2, 2)),
                "y_train": np.zeros(4),
                "x_test": np.zeros((2, 2, 2)),
                "y_test": np.zeros(2),
            },
            "give images as uint8",
        ),
        (
            {
                "x_train": np.zeros((4, 2, 2), np.uint8),
                "y_train": np.array([0, 1, 2**32 + 3, 1], np.int64),  # would wrap to class 3 as int32
                "x_test": np.zeros((2, 2, 2), np.uint8),
                "y_test": np.zeros(2),
            },
            "y_train holds the label 4294967299: give class indices",
        ),
        (
            {
                "x_train": np.zeros((4, 2, 2), np.uint8),
                "y_train": np.array(["a", "b", "a", "b"]),
                "x_test": np.zeros((2, 2, 2), np.uint8),
                "y_test": np.zeros(2),
            },
            "y_train holds labels of dtype <U1",
        ),
        (
            {
                "x_train": np.zeros((2, 2, 2), np.uint8),
                "y_train": np.array([["a", "b"], ["b", "a"]]),  # not read as one-hot rows
                "x_test": np.zeros((2, 2, 2), np.uint8),
                "y_test": np.zeros(2),
            },
            "y_train holds labels of dtype <U1",
        ),
        (
            {
                "x_train": np.zeros((4, 0, 2), np.uint8),
                "y_train": np.zeros(4),
                "x_test": np.zeros((2, 0, 2), np.uint8),
                "y_test": np.zeros(2),
            },
            r"x_train images have shape \(0, 2, 1\): give images of at least 1×1 pixel",
        ),
    ],
)
def test_bad_npz_files_are_refused_clearly(tmp_path, arrays, fragment):
    with pytest.raises(KtrainError, match=fragment):
        load_dataset(write_npz(tmp_path / "bad.npz", **arrays))


def test_missing_npz_and_bad_split_are_refused(tmp_path):
    with pytest.raises(KtrainError, match="not found"):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(KtrainError, match="--val-split"):
        load_dataset("digits", val_split=1.0)


def test_tfds_path_with_mocked_mnist():
    with tfds.testing.mock_data(num_examples=40):
        data = load_dataset("mnist", val_split=0.25)
    assert data.image_shape == (28, 28, 1) and data.num_classes == 10
    assert len(data.y_train) + len(data.y_val) == 40 and len(data.y_test) == 40
    assert data.x_train.dtype == np.uint8


def test_tfds_without_data_or_network_names_the_two_fixes(monkeypatch, tmp_path):
    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(KtrainError) as caught:
        load_dataset("cifar10", data_dir=str(tmp_path))
    message = str(caught.value)
    assert "'cifar10'" in message and "--data-dir" in message and "internet" in message
    assert "\n" not in message


def test_unknown_dataset_is_refused():
    with pytest.raises(KtrainError, match="unknown dataset 'no_such_set'"):
        load_dataset("no_such_set")


def test_a_class_list_that_is_not_numbers_is_refused():
    from ktrain.classes import parse_classes

    with pytest.raises(KtrainError, match="'--classes a-b': 'a-b' is not a class or a range of classes"):
        parse_classes("a-b", 10, "--classes a-b")


def test_a_class_without_training_images_is_noted(tmp_path, caplog):
    from ktrain.specs import DataSpec

    labels = np.array([0, 1, 3] * 6)  # class 2 appears in the test split only
    path = write_npz(
        tmp_path / "gap.npz",
        x_train=np.zeros((18, 2, 2), np.uint8),
        y_train=labels,
        x_test=np.zeros((4, 2, 2), np.uint8),
        y_test=np.array([0, 1, 2, 3]),
    )
    with caplog.at_level("WARNING", logger="ktrain"):
        data = DataSpec(path).validate().load(0)
    assert data.num_classes == 4
    assert "has 4 classes but no training images of class 2" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ktrain"):
        DataSpec(path, classes="1-2").validate().load(0)  # the note names the class by its own number
    assert "has 2 classes but no training images of class 2" in caplog.text

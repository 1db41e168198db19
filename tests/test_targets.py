"""Soft-target cache: index alignment under shuffling, staleness and corruption, augmentation rules."""

import json
import logging

import numpy as np
import pytest

from ktrain import zoo
from ktrain.augment import Views, parse_augment
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.data import train_pipeline
from ktrain.engine import Trainer
from ktrain.errors import KtrainError
from ktrain.methods import Tap, get_method
from ktrain.seeding import seed_everything
from ktrain.strategy import build_strategy
from ktrain.taps import NetworkView, method_view
from ktrain.targets import cache_bytes, compute, load_or_build, use_cache


@pytest.fixture
def teacher(small_digits):
    seed_everything(0)
    return NetworkView(zoo.build("digits_teacher", small_digits.image_shape, 10), taps=[Tap.features()])


def test_cached_targets_follow_their_images_through_the_shuffle(teacher, small_digits):
    targets = compute(teacher, small_digits, batch_size=50)
    for batch in train_pipeline(small_digits.x_train, small_digits.y_train, 64, seed=3, epoch=2):
        images, indices = batch["images"], batch["indices"]
        assert not np.array_equal(indices.numpy(), np.sort(indices.numpy()))  # really shuffled
        outputs = teacher.predict(images)
        for key in ("logits", "penultimate"):
            np.testing.assert_allclose(
                targets.arrays["train"][key][indices.numpy()], outputs[key], rtol=1e-5, atol=1e-5
            )


@pytest.mark.parametrize("method", ["kd", "pkt+kd"])
def test_training_on_cached_targets_matches_the_online_teacher(small_digits, method):
    seed_everything(0)
    strategy = build_strategy("one")
    student_init = zoo.build("digits_student", small_digits.image_shape, 10).get_weights()
    with strategy.scope():
        teacher_model = zoo.build("digits_teacher", small_digits.image_shape, 10)
    config = TrainConfig(
        epochs=2, optimizer=OptimizerConfig(decay=0.0), schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0)
    ).validate()
    runs = []
    for cached in (False, True):
        method_object = get_method(method)()
        teacher = method_view(teacher_model, method_object, "teacher")
        with strategy.scope():
            student = zoo.build("digits_student", small_digits.image_shape, 10)
            student.set_weights(student_init)
        targets = compute(teacher, small_digits, 128) if cached else None
        trainer = Trainer(
            student=method_view(student, method_object),
            teacher=teacher,
            method=method_object,
            config=config,
            strategy=strategy,
            targets=targets,
        )
        runs.append((trainer.fit(small_digits).columns(), student.get_weights()))
    for key in ("loss", "kd", "val_loss"):
        assert runs[1][0][key] == pytest.approx(runs[0][0][key], rel=1e-4), key
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_disk_cache_is_reused_and_rebuilt_when_stale_or_corrupt(teacher, small_digits, tmp_path, caplog):
    first = load_or_build(teacher, small_digits, 128, str(tmp_path))
    assert first.source.endswith(".npz") and len(list(tmp_path.glob("*.json"))) == 1
    with caplog.at_level(logging.INFO, logger="ktrain"):
        again = load_or_build(teacher, small_digits, 128, str(tmp_path))
    assert "read from" in caplog.text and again.source == first.source
    np.testing.assert_array_equal(again.arrays["val"]["logits"], first.arrays["val"]["logits"])

    # Corrupt: flip bytes in the arrays -> detected by checksum (or unreadable) and rebuilt.
    npz = next(tmp_path.glob("*.npz"))
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ktrain"):
        rebuilt = load_or_build(teacher, small_digits, 128, str(tmp_path))
    assert "rebuilding" in caplog.text
    np.testing.assert_allclose(rebuilt.arrays["val"]["logits"], first.arrays["val"]["logits"])

    # Stale: a manifest that names another dataset is refused and rebuilt.
    manifest = next(tmp_path.glob("*.json"))
    stored = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**stored, "dataset_fingerprint": "0" * 16}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ktrain"):
        load_or_build(teacher, small_digits, 128, str(tmp_path))
    assert "another teacher or dataset" in caplog.text


def test_new_teacher_weights_make_a_new_cache(teacher, small_digits, tmp_path):
    load_or_build(teacher, small_digits, 128, str(tmp_path))
    teacher.model.set_weights([w + 0.01 for w in teacher.model.get_weights()])
    load_or_build(teacher, small_digits, 128, str(tmp_path))
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_when_targets_are_cached(teacher, small_digits):
    logits_only = NetworkView(teacher.model)
    flip, four_views = Views(parse_augment("flip")), Views(parse_augment("flip"), 4)
    assert use_cache("auto", Views(), small_digits, teacher)
    assert not use_cache("online", Views(), small_digits, teacher)
    assert not use_cache("auto", Views(), small_digits, teacher, budget=1000)  # over the memory cap
    assert not use_cache("auto", flip, small_digits, logits_only)  # a fresh view every epoch
    assert use_cache("auto", four_views, small_digits, logits_only)
    assert not use_cache("auto", four_views, small_digits, teacher)  # features under augmentation: online
    with pytest.raises(KtrainError, match="--targets cache with a method that needs teacher features"):
        use_cache("cache", four_views, small_digits, teacher)
    with pytest.raises(KtrainError, match="--targets cache with --augment flip: a cache needs a fixed set of views"):
        use_cache("cache", flip, small_digits, logits_only)
    size = len(small_digits.y_train) * 4 * 10 * 4 + len(small_digits.y_val) * 10 * 4
    assert cache_bytes(logits_only, small_digits, 4, None) == size
    assert cache_bytes(logits_only, small_digits, 4, 3) == size - len(small_digits.y_train) * 4 * 3 * 4


def test_cli_cache_then_distill_reads_it(tmp_path):
    from typer.testing import CliRunner

    from ktrain.cli.main import app

    runner = CliRunner()
    teacher = tmp_path / "teacher.keras"
    zoo.build("digits_teacher", (8, 8, 1), 10).save(teacher)
    result = runner.invoke(app, ["cache", str(teacher), "digits", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "distill",
            str(teacher),
            "zoo:digits_student",
            "digits",
            "-e",
            "1",
            "-v",
            "0",
            "--targets",
            "cache",
            "--cache-dir",
            str(tmp_path / "cache"),
            "-out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["results"][0]["soft_targets"] == str(next((tmp_path / "cache").glob("*.npz")))
    result = runner.invoke(
        app,
        [
            "distill",
            str(teacher),
            "zoo:digits_student",
            "digits",
            "--targets",
            "cache",
            "--augment",
            "flip",
            "-out",
            str(tmp_path / "o2"),
        ],
    )
    assert result.exit_code == 2 and "--targets cache with --augment flip" in result.stderr
    assert "add --views K" in result.stderr

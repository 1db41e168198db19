"""Replayable views: augmentation specs, views as functions of their key, mixup and cutmix labels,
the K-view cache against the online teacher, top-N targets, replicas and a mid-epoch resume."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ktrain.augment import Augment, Views, parse_augment
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.data import DataSplits
from ktrain.errors import KtrainError
from ktrain.losses import dominant_labels, mixed_cross_entropy
from ktrain.methods.kd import kd_per_example
from ktrain.targets import CachePlan, compute, filled_logits, tables, top_logits
from ktrain.views import TrainingSamples, epoch_view

CLASSES = 5


def noise_data(train=64, side=8, seed=0) -> DataSplits:
    """Random uint8 images: no two pixels agree by accident, so a view's source can be traced."""
    rng = np.random.default_rng(seed)

    def split(count):
        images = rng.integers(1, 256, (count, side, side, 1), dtype=np.uint8)
        return images, np.arange(count, dtype=np.int32) % CLASSES

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(train), split(20), split(20)
    return DataSplits("noise", x_train, y_train, x_val, y_val, x_test, y_test, CLASSES)


# -- the spec ---------------------------------------------------------------------------------------
def test_augment_specs_parse_print_and_refuse_bad_values():
    augment = parse_augment("flip, crop:2,mixup:0.4")
    assert augment == Augment(flip=True, crop=True, crop_padding=2, mixup=0.4)
    assert str(augment) == "flip,crop:2,mixup:0.4" and parse_augment(str(augment)) == augment
    assert str(parse_augment(["crop", "cutmix"])) == "crop,cutmix" and parse_augment("cutmix").cutmix == 1.0
    assert parse_augment("mixup").mixup == 0.2 and not parse_augment("") and not parse_augment(None)
    for bad, fragment in (
        ("rotate", "unknown augmentation 'rotate'"),
        ("crop:0", "--augment crop:0: give the crop padding as a whole number of pixels from 1 to 1024"),
        ("crop:x", "give the crop padding"),
        ("mixup:-1", "--augment mixup:-1: give the Beta α as a number above 0 and at most 100"),
        ("cutmix:inf", "above 0 and at most 100"),
        ("mixup:1e300", "at most 100"),
        ("crop:1025", "from 1 to 1024"),
        ("flip:2", "flip takes no value"),
        ("crop,crop:3", "--augment names crop twice"),
        ("mixup,cutmix", "names both mixup and cutmix"),
    ):
        with pytest.raises(KtrainError, match=fragment):
            parse_augment(bad)
    with pytest.raises(KtrainError, match="--views is 0: give 1 to 10,000"):
        Views(augment, 0).validate()
    with pytest.raises(KtrainError, match="--views 4 without --augment"):
        Views(Augment(), 4).validate()
    with pytest.raises(KtrainError, match="--view-seed is -1"):
        Views(augment, 4, -1).validate()


def test_crop_padding_is_an_eighth_of_the_side():
    crop = Augment(crop=True)
    assert [crop.padding(side) for side in (8, 16, 28, 32, 224)] == [1, 2, 4, 4, 28]
    assert Augment(crop=True, crop_padding=3).padding(32) == 3
    data = noise_data(train=8)
    samples = TrainingSamples(data.x_train, data.y_train, Views(crop))
    for index in range(8):
        for view in range(6):
            image = samples.render(index, view)["images"].numpy()[..., 0]
            padded = np.pad(data.x_train[index, ..., 0], 1)
            # The 8×8 view is a window of the image padded by one pixel: a shift of at most 1.
            assert any(np.array_equal(image, padded[dy : dy + 8, dx : dx + 8]) for dy in range(3) for dx in range(3)), (
                index,
                view,
            )


# -- views are functions of their key --------------------------------------------------------------
def test_a_view_is_the_same_in_any_batching_shuffle_and_epoch_order():
    data = noise_data()
    views = Views(parse_augment("flip,crop,mixup"), count=4, seed=7)
    samples = TrainingSamples(data.x_train, data.y_train, views)
    for seed, epoch in ((3, 2), (4, 1)):
        by_index = {}
        for batch_size in (16, 32):
            for batch in samples.epoch(batch_size, seed=seed, epoch=epoch):
                for position, index in enumerate(batch["indices"].numpy()):
                    # The view a sample shows is hash(run seed, epoch, sample) mod K, wherever it lands.
                    assert int(batch["views"][position]) == int(epoch_view(seed, epoch, index, 4))
                    image = batch["images"].numpy()[position]
                    if index in by_index:
                        np.testing.assert_array_equal(by_index[index], image)
                    by_index[index] = image
        for index in (0, 17, 63):
            view = epoch_view(seed, epoch, index, 4)
            assert 0 <= int(view) < 4
            rendered = samples.render(index, view)["images"].numpy()  # mixed views are float already
            np.testing.assert_array_equal(rendered, by_index[index])
    # Another shuffle (run seed) or epoch picks other views of the same K; each view keeps its pixels.
    picks = {
        (seed, epoch): [int(epoch_view(seed, epoch, i, 4)) for i in range(64)] for seed in (3, 4) for epoch in (1, 2)
    }
    assert len({tuple(p) for p in picks.values()}) == 4
    again = TrainingSamples(data.x_train, data.y_train, views)
    np.testing.assert_array_equal(again.render(5, 2)["images"].numpy(), samples.render(5, 2)["images"].numpy())
    other_seed = TrainingSamples(data.x_train, data.y_train, Views(views.augment, 4, seed=8))
    assert not np.array_equal(other_seed.render(5, 2)["images"].numpy(), samples.render(5, 2)["images"].numpy())


def test_keys_use_64_bit_seeds():
    # The old int32 key seed·100003 + epoch overflowed from seed 21,475; seeds that differ only above
    # bit 32 must draw differently too.
    seeds = (21_474, 21_475, 21_476, 2**32 - 1, 5, 2**32 + 5, 2**40 + 5)
    draws = {int(epoch_view(seed, 1, 0, None)) for seed in seeds}
    assert len(draws) == len(seeds)
    assert len({int(epoch_view(0, epoch, 0, None)) for epoch in (1, 2**32 + 1)}) == 2
    data = noise_data(train=4)
    augment = parse_augment("mixup:1.0")
    images = [
        TrainingSamples(data.x_train, data.y_train, Views(augment, 2, seed=seed)).render(1, 1)["images"].numpy()
        for seed in (7, 2**32 + 7, 2**62 + 7)
    ]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


VIEW_SCRIPT = """
import hashlib, numpy as np
from ktrain.augment import Views, parse_augment
from ktrain.views import TrainingSamples
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
samples = TrainingSamples(images, np.arange(16, dtype=np.int32) % 4, Views(parse_augment("{augment}"), 3, 11))
digest = hashlib.sha256()
for index in range(16):
    for view in range(3):
        digest.update(samples.render(index, view)["images"].numpy().tobytes())
print(digest.hexdigest())
"""


@pytest.mark.parametrize("augment", ["flip,crop", "crop,cutmix:0.7"])
def test_views_are_the_same_in_another_process(augment):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    samples = TrainingSamples(images, np.arange(16, dtype=np.int32) % 4, Views(parse_augment(augment), 3, 11))
    digest = hashlib.sha256()
    for index in range(16):
        for view in range(3):
            digest.update(samples.render(index, view)["images"].numpy().tobytes())
    output = subprocess.run(
        [sys.executable, "-c", VIEW_SCRIPT.format(augment=augment)], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == digest.hexdigest()


# -- mixed samples ----------------------------------------------------------------------------------
def test_mixup_blends_two_samples_and_carries_both_labels():
    data = noise_data()
    samples = TrainingSamples(data.x_train, data.y_train, Views(parse_augment("mixup:1.0"), 8))
    scaled = data.x_train.astype(np.float32) / 255.0
    weights = []
    for index in range(0, 64, 5):
        for view in range(8):
            sample = samples.render(index, view)
            image, weight = sample["images"].numpy(), float(sample["weights"])
            assert 0.0 <= weight <= 1.0 and int(sample["labels"]) == data.y_train[index]
            # The partner is the one sample that explains the rest of the image.
            rest = image - weight * scaled[index]
            errors = np.abs(rest[None] - (1.0 - weight) * scaled).max(axis=(1, 2, 3))
            partner = int(np.argmin(errors))
            assert errors[partner] < 1e-5 and partner != index
            assert int(sample["partners"]) == data.y_train[partner]
            weights.append(weight)
    assert 0.3 < np.mean(weights) < 0.7 and np.std(weights) > 0.15  # Beta(1, 1) is uniform


def test_cutmix_pastes_a_box_whose_area_sets_the_label_weight():
    data = noise_data(side=16)
    samples = TrainingSamples(data.x_train, data.y_train, Views(parse_augment("cutmix"), 8))
    scaled = data.x_train.astype(np.float32) / 255.0
    seen_partial = False
    for index in range(0, 64, 7):
        for view in range(8):
            sample = samples.render(index, view)
            image, weight = sample["images"].numpy(), float(sample["weights"])
            own = np.isclose(image, scaled[index]).all(axis=-1)
            rows, cols = np.nonzero(~own)
            if not len(rows):
                assert weight == 1.0
                continue
            # The pixels that changed span one box, all of it copied from one partner; a partner pixel
            # equal to the sample's own by chance changes nothing, hence the box rather than the count.
            box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
            partner = int(np.argmin(np.abs(scaled[:, box[0], box[1]] - image[box]).max(axis=(1, 2, 3))))
            np.testing.assert_array_equal(image[box], scaled[partner][box])
            assert int(sample["partners"]) == data.y_train[partner]
            assert weight == pytest.approx(1.0 - own[box].size / own.size, abs=1e-6)  # the area kept
            seen_partial = seen_partial or 0.0 < weight < 1.0
    assert seen_partial


def test_mixed_cross_entropy_against_numpy_and_a_golden_value():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], np.float32)
    labels, partners, weights = np.array([0, 2]), np.array([1, 2]), np.array([0.7, 0.25], np.float32)
    wide = logits.astype(np.float64)
    log_probs = wide - np.log(np.exp(wide).sum(axis=1, keepdims=True))
    target = weights[:, None] * np.eye(3)[labels] + (1 - weights[:, None]) * np.eye(3)[partners]
    expected = -(target * log_probs).sum(axis=1)
    got = mixed_cross_entropy(labels, partners, weights, logits).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Golden: 0.7·CE(0) + 0.3·CE(1) of [2, 0.5, −1] = log(e² + e^0.5 + e^−1) − (0.7·2 + 0.3·0.5).
    assert got[0] == pytest.approx(2.2413113 - 1.55, abs=1e-6)
    assert got[1] == pytest.approx(-np.log(np.exp(3) / (2 + np.exp(3))), rel=1e-5)  # both labels are class 2
    assert dominant_labels(labels, partners, weights).numpy().tolist() == [0, 2]


# -- the K-view cache -------------------------------------------------------------------------------
def tiny_teacher(side=8):
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((side, side, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


def test_cached_view_targets_equal_the_teacher_on_that_view():
    from ktrain.taps import NetworkView

    data = noise_data()
    views = Views(parse_augment("flip,crop,mixup"), 3, seed=5)
    teacher = NetworkView(tiny_teacher())
    targets = compute(teacher, data, 24, CachePlan(views))
    assert targets.views == views and targets.arrays["train"]["logits"].shape == (64, 3, CLASSES)
    samples = TrainingSamples(data.x_train, data.y_train, views)
    for view in range(3):
        images = np.stack([samples.render(index, view)["images"].numpy() for index in range(64)])
        online = teacher.predict(tf.constant(images))["logits"].numpy()
        np.testing.assert_allclose(targets.arrays["train"]["logits"][:, view], online, rtol=1e-5, atol=1e-6)
    online_val = teacher.predict(tf.constant(data.x_val.astype(np.float32) / 255.0))["logits"].numpy()
    np.testing.assert_allclose(targets.arrays["val"]["logits"], online_val, rtol=1e-5, atol=1e-6)  # un-augmented
    # The step's table finds view v of sample i by (i, v).
    table = tables(targets, {"logits"}, CLASSES)["train"]["logits"]
    indices, picks = tf.constant([3, 3, 40]), tf.constant([0, 2, 1], tf.int64)
    expected = targets.arrays["train"]["logits"][[3, 3, 40], [0, 2, 1]]
    np.testing.assert_array_equal(table.gather(indices, picks).numpy(), expected)


def test_top_n_targets_keep_the_kept_classes_exact_and_share_the_rest():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (50, 4, 10)).astype(np.float32)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    student, gaps = tf.constant(rng.normal(0, 1, (50, 10)), tf.float32), []
    for n in (1, 3, 9):
        stored = top_logits(logits, n)
        assert stored["logits.top_values"].shape == (50, 4, n) and stored["logits.top_classes"].dtype == np.int32
        filled = filled_logits(stored["logits.top_values"], stored["logits.top_classes"], stored["logits.rest"], 10)
        filled_probs = tf.nn.softmax(filled).numpy()
        kept = np.zeros_like(probs, bool)
        np.put_along_axis(kept, stored["logits.top_classes"].astype(np.int64), True, axis=-1)
        np.testing.assert_allclose(filled_probs[kept], probs[kept], rtol=1e-4, atol=1e-7)  # exact at T = 1
        rest = np.where(kept, 0.0, probs).sum(-1, keepdims=True)
        np.testing.assert_allclose(np.where(kept, 0.0, filled_probs), np.where(kept, 0.0, rest / (10 - n)), atol=1e-6)
        # The filled logits, rebuilt independently in NumPy (float64).
        reference = np.repeat(stored["logits.rest"].astype(np.float64)[..., None] - np.log(10 - n), 10, axis=-1)
        np.put_along_axis(reference, stored["logits.top_classes"].astype(np.int64), stored["logits.top_values"], -1)
        np.testing.assert_allclose(filled.numpy(), reference, rtol=1e-5, atol=1e-5)
        # KD at T = 4 from top-N against KD from the full logits: the gap shrinks as N grows, to none
        # once one class is left out.
        full_kd = kd_per_example(student, logits[:, 0], 4.0).numpy()
        top_kd = kd_per_example(student, filled[:, 0], 4.0).numpy()
        gaps.append(np.abs(top_kd - full_kd).mean())
    np.testing.assert_allclose(filled.numpy(), logits, rtol=1e-5, atol=1e-5)  # N = C − 1: exact
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-4


# -- training with views ----------------------------------------------------------------------------
def run_kd(data, views, *, strategy="one", cached=True, checkpoint=None, resume=False, stop_at=None, topk=None):
    """KD from the tiny teacher into a tiny student for 2 epochs; returns (history, weights)."""
    import keras

    from ktrain.engine import Trainer
    from ktrain.methods import get_method
    from ktrain.strategy import build_strategy
    from ktrain.taps import method_view

    strategy_object = build_strategy(strategy)
    with strategy_object.scope():
        teacher_model = tiny_teacher()
        keras.utils.set_random_seed(2)
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Dense(6, activation="relu")(keras.layers.Flatten()(inputs))
        student = keras.Model(inputs, keras.layers.Dense(CLASSES)(x))
    method = get_method("kd")(temperature=2.0)
    teacher = method_view(teacher_model, method, "teacher")
    targets = compute(teacher, data, 32, CachePlan(views, topk)) if cached else None
    config = TrainConfig(
        epochs=2,
        batch_size=16,
        optimizer=OptimizerConfig(learning_rate=0.01, decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0),
    ).validate()
    trainer = Trainer(
        student=method_view(student, method),
        teacher=teacher,
        method=method,
        config=config,
        strategy=strategy_object,
        targets=targets,
        views=views,
    )
    if stop_at is not None:
        stop_at(trainer)
    history = trainer.fit(data, checkpoint_dir=checkpoint, resume=resume).columns()
    return history, student.get_weights()


def assert_same_run(first, second, rtol=1e-5):
    for key in ("loss", "kd", "ce", "accuracy", "val_loss"):
        assert second[0][key] == pytest.approx(first[0][key], rel=rtol, abs=1e-6), key
    for a, b in zip(first[1], second[1]):
        np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=1e-6)


def test_the_view_cache_trains_as_the_online_teacher_on_one_device_and_two_replicas():
    data = noise_data()
    views = Views(parse_augment("crop,mixup"), 3)
    online = run_kd(data, views, cached=False)
    cached = run_kd(data, views)
    assert_same_run(online, cached)
    assert_same_run(cached, run_kd(data, views, strategy="mirrored"))
    topk = run_kd(data, views, topk=2)  # top-N trains, and differs from full targets
    assert np.isfinite(topk[0]["loss"]).all() and topk[0]["kd"] != pytest.approx(cached[0]["kd"], rel=1e-3)


def test_a_run_with_views_resumes_mid_epoch_to_the_same_weights(tmp_path, interrupt):
    from ktrain.engine import Interrupted

    data = noise_data()
    views = Views(parse_augment("flip,crop,cutmix"), 4)
    whole = run_kd(data, views, checkpoint=str(tmp_path / "whole"))
    with pytest.raises(Interrupted):
        run_kd(data, views, checkpoint=str(tmp_path / "part"), stop_at=lambda trainer: interrupt(trainer, 2, 2))
    state = max((tmp_path / "part").glob("ckpt-*.state.json"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    assert json.loads(state.read_text())["in_progress"]["epoch"] == 2
    resumed = run_kd(data, views, checkpoint=str(tmp_path / "part"), resume=True)
    assert_same_run(whole, resumed, rtol=1e-6)


# -- the command line -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(path)
    return str(path)


def cli(*args):
    from typer.testing import CliRunner

    from ktrain.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_caches_k_views_and_a_run_reads_them(digits_teacher, tmp_path):
    cache = tmp_path / "cache"
    views = ("--augment", "flip,crop", "--views", "2", "--view-seed", "9")
    result = cli("cache", digits_teacher, "digits", "--cache-dir", cache, *views, "-v", "0")
    assert result.exit_code == 0, result.output
    printed = result.output.replace("\n", "")
    assert "train/logits [1004, 2, 10]" in printed and "val/logits [434, 10]" in printed
    manifest = json.loads(next(cache.glob("*.json")).read_text())
    assert manifest["augment"] == "flip,crop" and manifest["views"] == 2 and manifest["view_seed"] == 9
    assert manifest["tensorflow"] == tf.__version__ and manifest["topk"] is None
    out = tmp_path / "run"
    result = cli(
        "distill",
        digits_teacher,
        "zoo:digits_student",
        "digits",
        *views,
        "--cache-dir",
        cache,
        "-e",
        1,
        "-v",
        0,
        "-out",
        out,
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())
    assert record["results"][0]["soft_targets"] == str(next(cache.glob("*.npz")))
    assert record["run"]["data"]["augment"] == "flip,crop" and record["run"]["data"]["views"] == 2
    # Another view seed is another cache.
    result = cli(
        "cache", digits_teacher, "digits", "--cache-dir", cache, "--augment", "flip,crop", "--views", 2, "-v", 0
    )
    assert result.exit_code == 0 and len(list(cache.glob("*.npz"))) == 2


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (("--augment", "flip", "--views", "0"), "--views is 0: give 1 to 10,000 views per sample"),
        (("--views", "3"), "--views 3 without --augment"),
        (("--augment", "crop", "--views", "2", "--cache-topk", "0"), "--cache-topk is 0: give a number of classes"),
        (("--augment", "crop", "--views", "2", "--cache-topk", "10"), "--cache-topk is 10 but digits has 10 classes"),
        (("--augment", "crop", "--cache-topk", "3"), "--cache-topk with --augment crop but no --views"),
        (("--augment", "mixup", "-m", "dkd"), "method 'dkd' cannot learn from mixup samples"),
        (("--augment", "cutmix", "-m", "pkt"), "its supervised term relates samples by their hard labels"),
        (("--augment", "mixup", "--classes", "3"), "mixing needs two classes or more"),
        (("--augment", "crop:0"), "give the crop padding as a whole number of pixels"),
        (("--augment", "crop:5", "--views", "2"), "crop:5 pads more than these 8×8 images allow: give at most crop:4"),
        (("--augment", "crop", "--views", "10001"), "--views is 10001: give 1 to 10,000"),
        (
            ("--augment", "mixup", "--cache-topk", "3", "--views", "2", "-m", "dist"),
            "--cache-topk 3 with method 'dist'",
        ),
        (("--cache-topk", "3", "--logit-standardization"), "logit standardization needs the mean and spread"),
        (("--augment", "mixup", "-m", "selective-kd"), "its label gate reads one hard label per sample"),
    ],
)
def test_cli_refuses_bad_view_settings_in_one_line(digits_teacher, tmp_path, arguments, fragment):
    command = "train" if "--classes" in arguments else "distill"
    models = ("zoo:digits_student",) if command == "train" else (digits_teacher, "zoo:digits_student")
    result = cli(command, *models, "digits", *arguments, "-e", 1, "-v", 0, "-out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert (
        fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    )
    assert not (tmp_path / "out").exists()  # refused before or after the data loaded: no files


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (("-ebs", "0"), "evaluation batch size (-ebs) is 0: give a value greater than 0"),
        (("--cache-topk", "0"), "--cache-topk is 0: give a number of classes, 1 or more"),
        (("--cache-topk", "10"), "--cache-topk is 10 but digits has 10 classes"),
        (("--augment", "flip"), "--augment flip without --views"),
        (("--augment", "flip", "--views", "2", "--features"), "--features with --augment"),
        (("--teacher-precision", "int8"), "--teacher-precision is 'int8'"),
    ],
)
def test_cache_command_refuses_bad_settings_in_one_line(digits_teacher, tmp_path, arguments, fragment):
    result = cli("cache", digits_teacher, "digits", "--cache-dir", tmp_path / "cache", "-v", 0, *arguments)
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1

"""Specialist teachers and selective KD: NumPy references, gating, locality, replicas, cache, end to end."""

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain import zoo
from ktrain.classes import format_classes, parse_classes
from ktrain.cli.main import app
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.engine import Trainer
from ktrain.errors import KtrainError
from ktrain.methods import Batch, get_method
from ktrain.methods.selective_kd import selective_kd_parts
from ktrain.seeding import seed_everything
from ktrain.specialists import ensemble_from_model, ensemble_log_probs, load_ensemble, members_of, split_spec
from ktrain.strategy import build_strategy
from ktrain.taps import NetworkView
from ktrain.targets import compute

C = 10
PYRAMID = (tuple(range(10)), (0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
runner = CliRunner()


# -- NumPy references (float64) ---------------------------------------------------------------
def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def kd_rows(student, teacher, temperature):
    """T² · KL(softmax(t/T) ‖ softmax(s/T)) per row."""
    p_t, p_s = softmax(teacher / temperature), softmax(student / temperature)
    return temperature**2 * np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1)


def columns(members, layout):
    out, start = [], 0
    for classes in layout:
        out.append(members[:, start : start + len(classes)].astype(np.float64))
        start += len(classes)
    return out


def numpy_ensemble(members, layout):
    """Averaged ensemble, written per sample and class with loops (the docstring's rule, literally)."""
    parts = columns(members, layout)
    generalists = [softmax(z) for z, s in zip(parts, layout) if len(s) == C]
    out = np.zeros((members.shape[0], C))
    for b in range(members.shape[0]):
        if generalists:
            route = np.mean([g[b] for g in generalists], axis=0)
            q = np.zeros(C)
            for c in range(C):
                values = []
                for z, s in zip(parts, layout):
                    if c in s:
                        p = softmax(z[b : b + 1])[0]
                        mass = 1.0 if len(s) == C else sum(route[k] for k in s)
                        values.append(mass * p[list(s).index(c)])
                q[c] = np.mean(values)
            out[b] = np.log(q / q.sum())
        else:
            logits = np.array(
                [np.mean([z[b, list(s).index(c)] for z, s in zip(parts, layout) if c in s]) for c in range(C)]
            )
            out[b] = np.log(softmax(logits[None])[0])
    return out


def numpy_selective(student, members, labels, layout, temperature, gate):
    parts = columns(members, layout)
    generalists = [z for z, s in zip(parts, layout) if len(s) == C]
    if gate == "teacher":
        deciding = np.mean([softmax(z) for z in generalists], axis=0).argmax(axis=1)
    else:
        deciding = labels
    selective = np.zeros(len(student))
    for z, s in zip(parts, layout):
        if len(s) == C:
            continue
        term = kd_rows(student[:, list(s)].astype(np.float64), z, temperature)
        if gate != "none":
            term = term * np.isin(deciding, s)
        selective += term
    result = {"selective": selective}
    if generalists:
        result["kd"] = np.mean([kd_rows(student.astype(np.float64), z, temperature) for z in generalists], axis=0)
    return result


def random_case(rng, layout, batch=16):
    width = sum(len(s) for s in layout)
    student = rng.normal(scale=2.0, size=(batch, C)).astype(np.float32)
    members = rng.normal(scale=2.0, size=(batch, width)).astype(np.float32)
    labels = rng.integers(0, C, size=batch).astype(np.int32)
    return student, members, labels


LAYOUTS = {
    "pyramid": PYRAMID,
    "overlapping": (tuple(range(10)), (0, 1, 2, 3, 4, 5), (4, 5, 6), (9, 2)),
    "specialists only": ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (3, 4, 5, 6)),
}


# -- the loss --------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("gate", ["label", "teacher", "none"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_selective_kd_matches_numpy_reference(rng, layout, gate, temperature):
    student, members, labels = random_case(rng, layout)
    if gate == "teacher" and not any(len(s) == C for s in layout):
        with pytest.raises(KtrainError, match="--gate teacher needs a generalist"):
            selective_kd_parts(student, members, labels, layout, C, temperature, gate)
        return
    parts = selective_kd_parts(student, members, labels, layout, C, temperature, gate)
    expected = numpy_selective(student, members, labels, layout, temperature, gate)
    assert set(parts) == set(expected)
    for name in expected:
        np.testing.assert_allclose(parts[name].numpy(), expected[name], rtol=1e-5, atol=1e-5)


def attached(name, layout=None, num_classes=None, **options):
    """Method ``name`` with ``options``, attached to a teacher of ``layout`` (as the engine attaches it)."""
    method = get_method(name)(**options)
    if layout is not None:
        method.attach_teacher(SimpleNamespace(layout=layout, num_classes=num_classes))
    return method


def test_selective_kd_golden_value():
    """A fixed case, value from the float64 reference: guards against silent formula changes."""
    student = np.array([[2.0, 0.5, -1.0, 0.0], [0.0, 1.0, 0.0, 3.0]], np.float32)
    members = np.array([[1.0, 0.0, 2.0, -1.0, 0.5], [0.0, 2.0, 1.0, 0.0, 1.5]], np.float32)
    layout = ((0, 1), (1, 2, 3))  # two overlapping specialists, no generalist
    labels = np.array([0, 3])
    method = attached("selective-kd", layout, 4, temperature=2.0, kd_lambda=0.0)
    parts = method.losses(Batch.local(labels, student, members))
    # Sample 0 (label 0): only specialist (0, 1), 4 · KL([.6225, .3775] ‖ [.6792, .3208]) = 0.0287;
    # sample 1 (label 3): only specialist (1, 2, 3).
    np.testing.assert_allclose(parts["selective"].numpy(), [0.0287167600, 0.2790376051], rtol=1e-5)
    assert float(tf.reduce_mean(parts["selective"])) == pytest.approx(0.1538771826, abs=1e-6)


def test_a_specialist_never_moves_logits_outside_its_classes(rng):
    layout = ((0, 1, 2), (3, 4, 5, 6), (7, 8, 9))
    student, members, _ = random_case(rng, layout)
    for index, classes in enumerate(layout):
        only = tuple(s for k, s in enumerate(layout) if k == index)
        start = sum(len(s) for s in layout[:index])
        member = members[:, start : start + len(classes)]
        logits = tf.Variable(student)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(selective_kd_parts(logits, member, None, only, C, 2.0, "none")["selective"])
        gradient = tape.gradient(loss, logits).numpy()
        outside = [c for c in range(C) if c not in classes]
        assert np.all(gradient[:, outside] == 0.0)
        assert np.abs(gradient[:, list(classes)]).min() > 0.0


def test_label_gate_silences_a_specialist_on_samples_of_other_classes(rng):
    student, members, _ = random_case(rng, PYRAMID)
    labels = np.array([1, 7] * 8, np.int32)
    parts = selective_kd_parts(student, members, labels, PYRAMID, C, 2.0, "label")
    # Changing specialist 2's logits (columns 15-19) must not change samples labelled 1.
    changed = members.copy()
    changed[:, 15:] += rng.normal(size=(16, 5)).astype(np.float32) * 5
    again = selective_kd_parts(student, changed, labels, PYRAMID, C, 2.0, "label")
    np.testing.assert_array_equal(parts["selective"].numpy()[labels == 1], again["selective"].numpy()[labels == 1])
    assert not np.allclose(parts["selective"].numpy()[labels == 7], again["selective"].numpy()[labels == 7])
    ungated = selective_kd_parts(student, changed, labels, PYRAMID, C, 2.0, "none")
    assert np.all(ungated["selective"].numpy() > again["selective"].numpy() - 1e-6)


def test_teacher_gate_follows_the_generalists_top_class(rng):
    student, members, _ = random_case(rng, PYRAMID, batch=4)
    members[:, :10] = -5.0
    members[[0, 1], 2] = 5.0  # generalist says class 2 (specialist 1)
    members[[2, 3], 8] = 5.0  # generalist says class 8 (specialist 2)
    labels = np.array([9, 9, 0, 0])  # labels say the opposite: ignored by the teacher gate
    by_teacher = selective_kd_parts(student, members, labels, PYRAMID, C, 2.0, "teacher")["selective"].numpy()
    first = selective_kd_parts(student, members, labels, PYRAMID[:2], C, 2.0, "none")["selective"].numpy()
    second = selective_kd_parts(
        student, members[:, [*range(10), *range(15, 20)]], labels, (PYRAMID[0], PYRAMID[2]), C, 2.0, "none"
    )["selective"].numpy()
    np.testing.assert_allclose(by_teacher, [first[0], first[1], second[2], second[3]], rtol=1e-6)


# -- the averaged ensemble --------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_averaged_ensemble_matches_numpy_reference(rng, layout):
    _, members, _ = random_case(rng, layout, batch=6)
    got = ensemble_log_probs(members, layout, C).numpy()
    np.testing.assert_allclose(got, numpy_ensemble(members, layout), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(got).sum(axis=1), 1.0, rtol=1e-5)


def test_specialists_refine_the_generalist_inside_its_groups(rng):
    _, members, _ = random_case(rng, PYRAMID, batch=8)
    q = np.exp(ensemble_log_probs(members, PYRAMID, C).numpy())
    generalist = softmax(members[:, :10].astype(np.float64))
    # A group keeps the generalist's mass; inside it the specialist's and generalist's shapes are averaged.
    np.testing.assert_allclose(q[:, :5].sum(axis=1), generalist[:, :5].sum(axis=1), rtol=1e-5)
    specialist = softmax(members[:, 10:15].astype(np.float64))
    expected = (generalist[:, :5] + generalist[:, :5].sum(axis=1, keepdims=True) * specialist) / 2
    np.testing.assert_allclose(q[:, :5], expected, rtol=1e-5, atol=1e-7)


def test_ensemble_kd_of_a_lone_generalist_is_plain_kd(rng):
    student, members, labels = random_case(rng, (tuple(range(10)),))
    ensemble = attached("ensemble-kd", (tuple(range(10)),), C, temperature=3.0, kd_lambda=0.2)
    plain = get_method("kd")(temperature=3.0, kd_lambda=0.2)
    got, expected = (
        ensemble.losses(Batch.local(labels, student, members)),
        plain.losses(Batch.local(labels, student, members)),
    )
    for name in ("kd", "ce"):
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"gate": "maybe"}, "--gate is 'maybe'"),
        ({"layout": (tuple(range(10)),), "num_classes": 10}, "needs a specialist"),
        ({"layout": ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)), "num_classes": 10, "gate": "teacher"}, "needs a generalist"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_selective_kd_rejects_bad_settings(options, fragment):
    with pytest.raises(KtrainError, match=fragment):
        attached("sl", **options)


# -- class sets and ensembles -----------------------------------------------------------------
def test_class_specs():
    assert split_spec("a/teacher.keras:0-4") == ("a/teacher.keras", "0-4")
    assert split_spec("zoo:pyramid_ensemble") == ("zoo:pyramid_ensemble", None)
    assert parse_classes("0,2,5-7", 10, "x") == (0, 2, 5, 6, 7)
    assert format_classes((0, 2, 5, 6, 7)) == "0,2,5-7"
    for text, fragment in (("4-1", "backwards"), ("0-10", "class 10 does not exist"), ("1,1", "twice")):
        with pytest.raises(KtrainError, match=fragment):
            parse_classes(text, 10, "x")


def test_data_restrict_relabels_in_the_given_order(small_digits):
    subset = small_digits.restrict((7, 3))
    assert subset.num_classes == 2 and set(subset.y_train) <= {0, 1}
    np.testing.assert_array_equal(subset.y_train == 0, small_digits.y_train[np.isin(small_digits.y_train, (7, 3))] == 7)


def test_pyramid_outputs_become_a_generalist_and_two_halves(small_digits):
    members = members_of(zoo.build("pyramid_ensemble", (8, 8, 1), 10), 10, "zoo:pyramid_ensemble", None)
    assert [(m.name, m.classes) for m in members] == [
        ("generalist", PYRAMID[0]),
        ("specialist_1", PYRAMID[1]),
        ("specialist_2", PYRAMID[2]),
    ]
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    odd = keras.Model(inputs, [keras.layers.Dense(3)(flat), keras.layers.Dense(3)(flat)])
    with pytest.raises(KtrainError, match="widths 3, 3"):
        members_of(odd, 10, "odd.keras", None)


def test_specialist_files_make_an_ensemble(small_digits, tmp_path):
    def save(name, classes):
        model = keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(classes), keras.layers.Softmax()]
        )
        model.save(tmp_path / name)
        return str(tmp_path / name)

    low, high = save("low.keras", 5), save("high.keras", 5)
    ensemble = load_ensemble([f"{low}:0-4", f"{high}:5-9"], small_digits)
    assert ensemble.layout == PYRAMID[1:] and not ensemble.has_generalist and ensemble.output_width == 10
    assert "input of softmax layer" in ensemble.source  # specialists' softmax stripped, as for any teacher
    with pytest.raises(KtrainError, match="no teacher covers class\\(es\\) 5-9"):
        load_ensemble([f"{low}:0-4"], small_digits)
    with pytest.raises(KtrainError, match="outputs 5 classes but is given 3"):
        load_ensemble([f"{low}:0-2", f"{high}:5-9"], small_digits)


# -- engine ---------------------------------------------------------------------------------
def _fit_selective(data, strategy, student_init, teacher_init, cached=False, gate="label"):
    with strategy.scope():
        teacher_model = zoo.build("pyramid_ensemble", data.image_shape, 10)
        teacher_model.set_weights(teacher_init)
        student_model = zoo.build("digits_student", data.image_shape, 10)
        student_model.set_weights(student_init)
    teacher = ensemble_from_model(teacher_model, data, "zoo:pyramid_ensemble")
    method = get_method("selective-kd")(gate=gate)
    method.attach_teacher(teacher)
    config = TrainConfig(
        epochs=2,
        batch_size=64,
        optimizer=OptimizerConfig(decay=0.0),
        schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0),
    ).validate()
    trainer = Trainer(
        student=NetworkView(student_model),
        teacher=teacher,
        method=method,
        config=config,
        strategy=strategy,
        targets=compute(teacher, data, 50) if cached else None,
    )
    return trainer.fit(data).columns(), student_model.get_weights()


def test_selective_kd_on_two_replicas_and_from_the_cache_matches_one_device(small_digits):
    seed_everything(0)
    student_init = zoo.build("digits_student", small_digits.image_shape, 10).get_weights()
    teacher_init = zoo.build("pyramid_ensemble", small_digits.image_shape, 10).get_weights()
    one = _fit_selective(small_digits, build_strategy("one"), student_init, teacher_init)
    for other in (
        _fit_selective(small_digits, build_strategy("mirrored"), student_init, teacher_init),
        _fit_selective(small_digits, build_strategy("one"), student_init, teacher_init, cached=True),
    ):
        for key in ("loss", "selective", "kd", "ce", "val_loss", "val_accuracy"):
            assert other[0][key] == pytest.approx(one[0][key], rel=1e-5, abs=1e-6), key
        for a, b in zip(one[1], other[1]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# -- end to end -------------------------------------------------------------------------------
def test_compare_sl_with_the_zoo_pyramid_on_digits(tmp_path):
    pyramid = tmp_path / "pyramid"
    result = runner.invoke(app, ["train", "zoo:pyramid_ensemble", "digits", "-e", "2", "-v", "0", "-out", str(pyramid)])
    assert result.exit_code == 0, result.output
    assert "member specialist_2 [5-9]" in result.output
    model = str(pyramid / "model.keras")
    result = runner.invoke(app, ["evaluate", model, "digits"])  # the averaged ensemble, and each member
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "specialist_1 [0-4]" in result.output
    result = runner.invoke(app, ["cache", model, "digits", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "train/logits [1004, 20]" in result.output.replace("\n", "")  # every member's logits side by side
    for arguments, fragment in (
        (["evaluate", model, "digits", "-k", "5"], "has no single feature layer"),
        (["cache", model, "digits", "--features"], "has no single feature layer"),
    ):
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output
    out = tmp_path / "compare"
    result = runner.invoke(
        app,
        [
            "compare",
            str(pyramid / "model.keras"),
            "zoo:digits_student",
            "digits",
            "-sl",
            "-e",
            "2",
            "-v",
            "0",
            "-out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("Ensemble KD", "Selective KD", "Scratch student", "Teacher"):
        assert name in result.output
    results = json.loads((out / "results.json").read_text())
    runs = [(entry["name"], entry.get("seed")) for entry in results["results"]]
    assert runs == [(name, 0) for name in ("Ensemble KD", "Selective KD", "Scratch student")] + [("Teacher", None)]
    teacher = results["results"][-1]
    assert [member["classes"] for member in teacher["members"]] == [list(s) for s in PYRAMID]
    selective = results["results"][1]
    assert selective["method_options"]["gate"] == "label" and "selective" in selective["history"]
    assert results["results"][0]["method"] == "ensemble-kd"


def test_distill_with_specialist_files_and_bad_ensembles(tmp_path):
    files = {}
    for classes in ("0-4", "5-9"):
        out = tmp_path / classes
        result = runner.invoke(
            app, ["train", "zoo:digits_student", "digits", "--classes", classes, "-e", "1", "-v", "0", "-out", str(out)]
        )
        assert result.exit_code == 0, result.output
        results = json.loads((out / "results.json").read_text())
        assert results["dataset"]["name"] == f"digits[{classes}]" and results["dataset"]["num_classes"] == 5
        assert keras.saving.load_model(out / "model.keras").outputs[0].shape[-1] == 5
        files[classes] = str(out / "model.keras")
    low, high = files["0-4"], files["5-9"]
    result = runner.invoke(
        app,
        [
            "distill",
            f"{low}:0-4",
            "zoo:digits_student",
            "digits",
            "-sl",
            "--specialist",
            f"{high}:5-9",
            "-e",
            "1",
            "-v",
            "0",
            "--jit",
            "on",
            "-out",
            str(tmp_path / "files"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Selective KD" in result.output
    cases = [
        (["distill", f"{low}:0-4", "zoo:digits_student", "digits"], "no teacher covers class(es) 5-9"),
        (["distill", "zoo:pyramid_ensemble", "zoo:digits_student", "digits", "-sl", "--gate", "x"], "--gate is 'x'"),
        (
            ["compare", "zoo:pyramid_ensemble", "zoo:digits_student", "digits", "-m", "pkt"],
            "method 'pkt' needs one teacher model",
        ),
        (["train", "zoo:digits_student", "digits", "--classes", "3-12"], "class 12 does not exist"),
        (
            [
                "distill",
                f"{low}:0-4",
                "zoo:digits_student",
                "digits",
                "-sl",
                "--specialist",
                f"{high}:5-9",
                "--gate",
                "teacher",
            ],
            "--gate teacher needs a generalist",
        ),
    ]
    for arguments, fragment in cases:
        result = runner.invoke(app, arguments + ["-e", "1", "-v", "0", "-out", str(tmp_path / "bad"), "--overwrite"])
        assert result.exit_code == 2, (arguments, result.output)
        assert fragment in result.output and "Traceback" not in result.output


def test_compare_trains_the_zoo_pyramid_first_with_teacher_epochs(tmp_path):
    arguments = [
        "compare",
        "zoo:pyramid_ensemble",
        "zoo:digits_student",
        "digits",
        "-sl",
        "-e",
        "1",
        "--no-baseline",
        "-v",
        "0",
    ]
    result = runner.invoke(app, arguments + ["--teacher-epochs", "2", "-out", str(tmp_path / "trained")])
    assert result.exit_code == 0, result.output
    teacher = json.loads((tmp_path / "trained" / "results.json").read_text())["results"][-1]
    assert [member["epochs_run"] for member in teacher["member_training"]] == [2, 2, 2]
    assert teacher["test"]["accuracy"] > 0.5 and "untrained" not in result.output
    result = runner.invoke(app, arguments + ["-out", str(tmp_path / "untrained")])
    assert result.exit_code == 0, result.output
    assert "note: the teacher zoo:pyramid_ensemble was untrained" in result.output.replace("\n", " ")


def test_demo_sl_trains_the_pyramid_and_compares(tmp_path):
    result = runner.invoke(app, ["demo", "-sl", "-e", "1", "-v", "0", "-out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [entry["name"] for entry in json.loads((tmp_path / "results.json").read_text())["results"]]
    assert names == ["Ensemble KD", "Selective KD", "Scratch student", "Teacher"]
    assert (tmp_path / "teacher.keras").is_file()


def test_negative_teacher_epochs_is_a_one_line_error(tmp_path):
    result = runner.invoke(
        app,
        [
            "compare",
            "zoo:pyramid_ensemble",
            "zoo:digits_student",
            "digits",
            "-sl",
            "--teacher-epochs",
            "-1",
            "-out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "--teacher-epochs is -1" in result.output and "Traceback" not in result.output

"""The command line through typer's CliRunner: the demo, train, distill, seed flags and every bad input."""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain.cli.main import app, main

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def saved_model(path, input_shape=(8, 8, 1), classes=10, softmax=False):
    layers = [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(classes)]
    if softmax:
        layers.append(keras.layers.Activation("softmax"))
    keras.Sequential(layers).save(path)
    return str(path)


def test_demo_runs_the_seed_job_on_digits(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "-e", 2, "-v", 0, "-out", out)
    assert result.exit_code == 0, result.output
    assert "demo 'seed'" in result.output and "why: the seed's main job" in result.output
    for name in ("Teacher", "KD", "PKT", "PKT+KD", "Scratch student", "kNN", "T/S"):
        assert name in result.output
    for name in (
        "teacher.keras",
        "best_model.keras",
        "results.json",
        "results.pkl",
        "output.log",
        "KT_Methods_Comparison_accuracy_vs_epoch.png",
    ):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert [entry["name"] for entry in results["results"]] == [
        "Knowledge Distillation",
        "Probabilistic Knowledge Transfer",
        "PKT plus Distillation",
        "Scratch student",
        "Teacher",
    ]
    assert len(results["results"][-1]["history"]["loss"]) == 2  # the teacher was trained here
    assert "Performing Knowledge Distillation..." in (out / "output.log").read_text()


def test_train_writes_the_model_and_results_with_prefix(tmp_path):
    result = invoke("train", "zoo:digits_student", "digits", "-e", 2, "-v", 0, "-out", tmp_path, "-res", "run1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run1_model.keras").is_file()
    results = json.loads((tmp_path / "run1_results.json").read_text())
    student = results["results"][0]
    assert student["method"] == "supervised" and len(student["history"]["val_accuracy"]) == 2
    assert set(results["versions"]) >= {"tensorflow", "keras", "python", "numpy"}
    assert results["dataset"]["sizes"] == {"train": 1004, "val": 434, "test": 359}


def test_distill_takes_an_h5_teacher_ending_in_softmax(tmp_path):
    teacher = saved_model(tmp_path / "teacher.h5", softmax=True)
    result = invoke("distill", teacher, "zoo:digits_student", "digits", "-e", 1, "-v", 0, "-out", tmp_path)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    teacher_entry = next(entry for entry in results["results"] if entry["role"] == "teacher")
    assert teacher_entry["logits_from"].startswith("input of softmax layer")
    reloaded = keras.saving.load_model(tmp_path / "student.keras")
    assert reloaded.output_shape == (None, 10)


def test_saved_student_keeps_its_softmax_interface(tmp_path):
    student = saved_model(tmp_path / "student.keras", softmax=True)
    result = invoke("train", student, "digits", "-e", 1, "-v", 0, "-out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    reloaded = keras.saving.load_model(tmp_path / "out" / "model.keras")
    outputs = reloaded(np.zeros((2, 8, 8, 1), "float32"))
    assert np.allclose(np.sum(outputs, axis=-1), 1.0, atol=1e-5)


def test_seed_short_flags_reach_the_config(tmp_path):
    result = invoke(
        "distill",
        "zoo:digits_teacher",
        "zoo:digits_student",
        "digits",
        "-t",
        3,
        "-kdl",
        0.2,
        "-bs",
        32,
        "-ebs",
        64,
        "-e",
        1,
        "-o",
        "sgd",
        "-lr",
        0.01,
        "-lrp",
        2,
        "-lrd",
        0.5,
        "-lrm",
        1e-5,
        "-esp",
        3,
        "-cn",
        1.0,
        "-b1",
        0.8,
        "-b2",
        0.99,
        "-rho",
        0.8,
        "-mm",
        0.5,
        "-d",
        0,
        "-ufm",
        "-seed",
        3,
        "-out",
        tmp_path,
        "-res",
        "p",
        "-v",
        0,
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "p_results.json").read_text())
    config = results["config"]
    assert config["batch_size"] == 32 and config["eval_batch_size"] == 64 and config["seed"] == 3
    assert config["optimizer"] == {
        "name": "sgd",
        "learning_rate": 0.01,
        "beta1": 0.8,
        "beta2": 0.99,
        "rho": 0.8,
        "momentum": 0.5,
        "decay": 0.0,
        "clip_norm": 1.0,
        "clip_value": None,
    }
    assert config["schedule"] == {
        "lr_schedule": "plateau",
        "lr_warmup": 0,
        "lr_patience": 2,
        "lr_decay": 0.5,
        "lr_min": 1e-5,
        "early_stopping_patience": 3,
        "use_final_model": True,
    }
    assert results["method"]["name"] == "kd"
    assert results["method"]["options"] == {
        "temperature": 3.0,
        "kd_lambda": 0.2,
        "kd_weight": 1.0,
        "logit_standardization": False,
    }


def assert_one_line_error(result, *fragments, out=None):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message, message
    if out is not None:
        assert not (out / "results.json").exists()
        assert not list(out.glob("*.keras"))


DISTILL = ("distill", "zoo:digits_teacher", "zoo:digits_student", "digits", "-e", "1", "-v", "0")


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (("-t", "0"), ("temperature (-t) is 0.0",)),
        (("-kdl", "-0.5"), ("-kdl) is -0.5",)),
        (("-bs", "0"), ("batch size (-bs) is 0",)),
        (("-cn", "1", "-cv", "1"), ("both clip norm", "choose one")),
        (("-o", "nadam"), ("unknown optimizer 'nadam'",)),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, extra, fragments):
    assert_one_line_error(invoke(*DISTILL, "-out", tmp_path, *extra), *fragments, out=tmp_path)


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (("-seed", 2**32), ("seed (-seed) is 4294967296: give a whole number from 0 to 4294967295",)),
        (("--val-split", "0.003"), ("--val-split 0.003 leaves the validation split of digits empty",)),
        (("-res", "sub/x"), ("-res 'sub/x' is not a plain name",)),
    ],
)
def test_values_that_used_to_end_in_a_traceback(tmp_path, extra, fragments):
    out = tmp_path / "out"
    assert_one_line_error(invoke(*DISTILL, "-out", out, *extra), *fragments)
    assert not out.exists()  # a refused run leaves nothing


def test_a_refusal_after_loading_removes_the_nested_folders_it_created(tmp_path):
    # -k is checked against the training split as soon as the data is loaded, before the teacher trains.
    out = tmp_path / "a" / "b" / "c"
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "pkt", "--teacher-epochs", "1")
    result = invoke(*compare, "-k", 100000, "-v", "0", "-out", out)
    assert_one_line_error(result, "k (-k) is 100000, but the kNN search has 1004 training images")
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_a_k_larger_than_its_database():
    result = invoke("evaluate", "zoo:digits_student", "digits", "-k", 100000)
    assert_one_line_error(result, "k (-k) is 100000, but the kNN search has 1004 training images")


def test_missing_and_corrupt_model_files(tmp_path):
    assert_one_line_error(
        invoke("distill", tmp_path / "none.keras", "zoo:digits_student", "digits", "-out", tmp_path / "out"),
        "teacher model",
        "not found",
        out=tmp_path / "out",
    )
    corrupt = tmp_path / "broken.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a model")
    assert_one_line_error(
        invoke("distill", "zoo:digits_teacher", corrupt, "digits", "-out", tmp_path / "out"),
        "could not load student model",
        out=tmp_path / "out",
    )


def test_models_that_do_not_fit_the_data(tmp_path):
    wrong_shape = saved_model(tmp_path / "wide.keras", input_shape=(28, 28, 1))
    assert_one_line_error(
        invoke("distill", "zoo:digits_teacher", wrong_shape, "digits", "-out", tmp_path / "out"),
        "takes inputs of shape 28×28×1",
        "8×8×1",
        out=tmp_path / "out",
    )
    five_classes = saved_model(tmp_path / "five.keras", classes=5)
    assert_one_line_error(
        invoke("distill", "zoo:digits_teacher", five_classes, "digits", "-out", tmp_path / "out"),
        "teacher 'zoo:digits_teacher' outputs 10 classes but student",
        "outputs 5",
        out=tmp_path / "out",
    )
    assert_one_line_error(
        invoke("train", five_classes, "digits", "-out", tmp_path / "out"),
        f"model '{five_classes}' outputs 5 classes but dataset 'digits' has 10",
        out=tmp_path / "out",
    )
    one_class = saved_model(tmp_path / "one.keras", classes=1)
    assert_one_line_error(
        invoke("evaluate", one_class, "digits"), f"model '{one_class}' outputs 1 class but dataset 'digits' has 10"
    )


def test_unknown_dataset_and_offline_tfds(tmp_path, monkeypatch):
    assert_one_line_error(invoke(*DISTILL[:3], "no_such_set", "-out", tmp_path), "unknown dataset 'no_such_set'")
    import tensorflow_datasets as tfds

    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    assert_one_line_error(
        invoke(*DISTILL[:3], "cifar10", "--data-dir", tmp_path / "tfds", "-out", tmp_path),
        "dataset 'cifar10' is not available",
        "--data-dir",
        out=tmp_path,
    )


def test_unwritable_out_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(invoke(*DISTILL, "-out", blocker / "out"), "out folder", "not writable", "-out")


def test_usage_errors_from_the_entry_point_are_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["ktrain", "distill", "a", "b", "digits", "-bs", "many"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message and "'-bs'" in message


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "zoo:digits_student", "digits", "-or"], "train has no option -or: it is an option of compare"),
        (["distill", "a", "b", "digits", "-or"], "distill has no option -or: it is an option of compare"),
        (["train", "zoo:digits_student", "digits", "-kdl", "0.1"], "train has no option -kdl: it is an option of"),
        (["distill", "a", "b", "digits", "-s", "none"], "distill has no option -s: it is an option of compare, sweep"),
    ],
)
def test_a_flag_of_another_command_is_named_not_misread(monkeypatch, capsys, argv, expected):
    # Click read -or as -o r ("unknown optimizer 'r'") on the commands that lack -or.
    monkeypatch.setattr(sys, "argv", ["ktrain", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"error: {expected}") and "\n" not in message, message
    assert message.endswith(f"(see 'ktrain {argv[0]} --help')")


@pytest.mark.parametrize("mode", ["file", "start_weights", "reinit"])
def test_student_starts_from_its_file_or_the_given_weights_or_fresh(tmp_path, mode):
    keras.utils.set_random_seed(1)
    student_path = saved_model(tmp_path / "student.keras")
    file_weights = keras.saving.load_model(student_path).get_weights()
    keras.utils.set_random_seed(2)
    other = keras.saving.load_model(student_path)
    other.set_weights([np.random.default_rng(5).normal(size=w.shape).astype("float32") for w in file_weights])
    other.save_weights(tmp_path / "other.weights.h5")
    extra = {"file": [], "start_weights": ["-w", tmp_path / "other.weights.h5"], "reinit": ["--reinit"]}[mode]
    # A learning rate of 1e-9 leaves the starting weights visible after one epoch.
    result = invoke(
        "train",
        student_path,
        "digits",
        "-e",
        1,
        "-lr",
        1e-9,
        "-d",
        0,
        "-v",
        0,
        "-ufm",
        "-out",
        tmp_path / "out",
        *extra,
    )
    assert result.exit_code == 0, result.output
    trained = keras.saving.load_model(tmp_path / "out" / "model.keras").get_weights()
    close_to = {"file": file_weights, "start_weights": other.get_weights()}
    if mode in close_to:
        for a, b in zip(trained, close_to[mode]):
            np.testing.assert_allclose(a, b, atol=1e-5)
    else:
        assert not np.allclose(trained[0], file_weights[0], atol=1e-3)


def test_start_weights_that_do_not_fit_are_refused(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    result = invoke("train", "zoo:digits_student", "digits", "-w", bad, "-out", tmp_path / "out")
    assert_one_line_error(result, "could not load start weights", out=tmp_path / "out")


def test_engine_switches_reach_the_run(tmp_path):
    result = invoke(
        *DISTILL, "--jit", "on", "--strategy", "mirrored", "--val-split", "0.25", "--debug", "-v", "2", "-out", tmp_path
    )
    assert result.exit_code == 0, result.output
    assert "Knowledge Distillation  epoch 1/1  loss" in result.output  # a line per epoch (no terminal here)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["jit"] is True and results["strategy"]["replicas"] == 2
    assert results["dataset"]["sizes"]["val"] == 359  # 25 % of the 1,438 training images, rounded per class
    assert results["run"]["outputs"]["debug"] is True


def test_compare_without_baseline_and_evaluate_with_a_layer(tmp_path):
    result = invoke(
        "compare",
        "zoo:digits_teacher",
        "zoo:digits_student",
        "digits",
        "-m",
        "kd",
        "--no-baseline",
        "-e",
        "1",
        "-v",
        "0",
        "-out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    names = [e["name"] for e in json.loads((tmp_path / "results.json").read_text())["results"]]
    assert names == ["Knowledge Distillation", "Teacher"]
    result = invoke("evaluate", tmp_path / "best_model.keras", "digits", "-k", 3, "--layer", "hidden")
    assert result.exit_code == 0 and "test kNN accuracy (k=3)" in result.output, result.output


def test_no_string_literal_in_cli_names_a_method():
    import ast
    from pathlib import Path

    from ktrain.methods import REGISTRY, registered

    registered()  # imports every method
    names = set(REGISTRY)
    for path in (Path(__file__).parents[1] / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                pieces = {piece.strip().lower() for piece in node.value.split(",")}
                assert not pieces & names, f"{path.name}:{node.lineno} names a method: {node.value!r}"


def test_models_are_checked_before_the_dataset_is_loaded(tmp_path, monkeypatch):
    import ktrain.data

    def no_loading(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the models were checked")

    monkeypatch.setattr(ktrain.data, "load_dataset", no_loading)
    for args, fragment in (
        (["distill", str(tmp_path / "missing.h5"), "zoo:cifar10_student_strong", "cifar10"], "teacher model"),
        (["distill", "zoo:digits_teacher", "zoo:no_such_model", "cifar10"], "unknown zoo model 'zoo:no_such_model'"),
        (
            ["compare", "zoo:digits_teacher", "zoo:digits_student", "cifar10", "--specialist", "gone.keras:0-4"],
            "specialist model 'gone.keras' not found",
        ),
    ):
        result = runner.invoke(app, [*args, "-out", str(tmp_path / "out")])
        assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output, result.output


def test_an_option_no_chosen_method_has_is_refused(tmp_path):
    result = runner.invoke(
        app, ["pkt", "zoo:digits_teacher", "zoo:digits_student", "digits", "-pktw", "3000", "-out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "-pktw has no effect on pkt" in result.output
    result = runner.invoke(app, ["distill", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kdd"])
    assert result.exit_code == 2 and "unknown method 'kdd' (did you mean kd?)" in result.output


def test_demo_replaces_an_earlier_demo_but_not_another_run(tmp_path):
    assert invoke("train", "zoo:digits_student", "digits", "-e", 1, "-v", 0, "-out", tmp_path).exit_code == 0
    trained = (tmp_path / "results.json").read_text()
    refused = invoke("demo", "-e", 1, "-v", 0, "-out", tmp_path)
    assert refused.exit_code == 2 and "already holds a run" in refused.stderr, refused.output
    assert (tmp_path / "results.json").read_text() == trained and (tmp_path / "model.keras").is_file()
    for extra in (("--overwrite",), ()):  # then a demo may start again over its own run
        result = invoke("demo", "-e", 1, "-v", 0, "-out", tmp_path, *extra)
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "results.json").read_text())["command"] == "demo"


def test_commands_speak_alike(tmp_path):
    # train speaks of its model; evaluate takes a run folder as export does; --export none is the default.
    train = invoke("train", "zoo:digits_student", "digits", "-e", 1, "-v", 0, "-out", tmp_path / "run")
    assert train.exit_code == 0, train.output
    assert "model saved to" in train.output and "parameters: model 2,410" in train.output
    assert "student" not in train.output
    evaluated = invoke("evaluate", tmp_path / "run", "digits")
    assert evaluated.exit_code == 0, evaluated.output
    accuracy = json.loads((tmp_path / "run" / "results.json").read_text())["results"][0]["test"]["accuracy"]
    assert f"test accuracy: {accuracy:.4f}" in evaluated.output
    missing = invoke("evaluate", tmp_path / "none.keras", "digits")
    assert_one_line_error(missing, "evaluated model")
    assert "model model" not in missing.stderr
    distill = invoke(*DISTILL, "--export", "none", "-out", tmp_path / "d")
    assert distill.exit_code == 0, distill.output
    assert json.loads((tmp_path / "d" / "results.json").read_text())["export"] is None
    exported = invoke("export", tmp_path / "run", tmp_path / "m.tflite")
    assert exported.exit_code == 0, exported.output
    assert "Keras acc" not in exported.output and "give --dataset D for test accuracy" in exported.output


def test_zoo_lists_each_model_with_its_role_and_computed_parameters():
    from ktrain.zoo import ZOO, build

    result = runner.invoke(app, ["zoo"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "Built for digits (8×8×1 images, 10 classes)" in result.output
    for name, entry in ZOO.items():
        params = build(name, (8, 8, 1), 10).count_params()
        row = next(line for line in result.output.splitlines() if f"zoo:{name} " in line)
        assert entry.role in row and f"{params:,}" in row, row


def test_without_a_terminal_each_epoch_is_one_complete_line(tmp_path):
    # A bar would be drawn once, at the end, cut to 80 columns: in a log file each epoch is a line.
    log = tmp_path / "run.log"
    command = [sys.executable, "-m", "ktrain.cli", *DISTILL[:4], "-e", "3", "-out", str(tmp_path / "out")]
    with open(log, "w") as stream:
        done = subprocess.run(command, stdout=stream, stderr=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0
    lines = log.read_text().splitlines()
    epochs = [line for line in lines if line.startswith("Knowledge Distillation  epoch ")]
    assert [line.split()[3] for line in epochs] == ["1/3", "2/3", "3/3"]
    for line in epochs:
        assert "…" not in line and all(word in line for word in ("loss", "val_acc", "lr")), line
    assert any(re.fullmatch(r"Teacher's soft targets \(\d+ batches\): \d+\.\d s", line) for line in lines), lines


@pytest.mark.parametrize("command", ["train", "distill", "pkt"])
def test_tensorboard_works_on_every_training_command(tmp_path, command):
    models = ("zoo:digits_student",) if command == "train" else ("zoo:digits_teacher", "zoo:digits_student")
    result = invoke(command, *models, "digits", "-e", 2, "-v", 0, "--tensorboard", "-out", tmp_path)
    assert result.exit_code == 0, result.output
    (events,) = (tmp_path / "tensorboard").glob("*/events.out.tfevents.*")
    assert events.stat().st_size > 0


def test_train_names_what_it_trains_a_model(tmp_path):
    frozen = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, trainable=False)])
    frozen.save(tmp_path / "frozen.keras")
    for model, fragment in ((tmp_path / "missing.keras", "not found"), (tmp_path / "frozen.keras", "has no trainable")):
        result = invoke("train", model, "digits", "-e", "1", "-out", tmp_path / "out")
        assert_one_line_error(result, f"error: model '{model}' {fragment}", out=tmp_path / "out")
        assert "student" not in result.stderr


def test_zoo_for_a_tfds_dataset_reads_its_shape_without_its_images(monkeypatch):
    import tensorflow_datasets as tfds

    def no_download(self, *args, **kwargs):
        raise AssertionError("zoo must not download or read the dataset's images")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "as_dataset", no_download)
    result = runner.invoke(app, ["zoo", "--dataset", "cifar100"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "Built for cifar100 (32×32×3 images, 100 classes)" in result.output

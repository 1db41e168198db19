"""Faults: kill and resume, Ctrl-C and resume, corrupt checkpoints, NaN losses, occupied out
folders, a full disk, unregistered custom layers."""

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain.cli.main import app

runner = CliRunner()
# A high rate and -lrp 1 make LR-on-plateau cut the rate three times in 12 epochs (at 6, 10 and 11),
# so the controller's state is part of what a resume must restore.
TRAIN = ["train", "zoo:digits_student", "digits", "-e", "12", "-lr", "0.02", "-lrp", "1", "-esp", "0", "-v", "0"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def weights(folder: Path):
    return keras.saving.load_model(folder / "model.keras").get_weights()


def start(out: Path, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "ktrain.cli.main", *TRAIN, "-out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(out: Path, process, number: int):
    deadline = time.time() + 120
    while not (out / "checkpoints" / f"ckpt-{number}.state.json").exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert invoke(*TRAIN, "-out", out).exit_code == 0
    return out


def test_killed_run_resumes_to_the_same_weights(tmp_path, uninterrupted):
    out = tmp_path / "run"
    process = start(out)
    wait_for_checkpoint(out, process, 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "model.keras").exists()
    result = invoke(*TRAIN, "-out", out, "--resume")
    assert result.exit_code == 0, result.output
    history = json.loads((out / "results.json").read_text())["results"][0]["history"]
    assert len(history["loss"]) == 12  # every epoch exactly once
    assert len(set(history["lr"])) > 1  # the plateau controller acted
    for a, b in zip(weights(out), weights(uninterrupted)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_ctrl_c_checkpoints_says_how_to_resume_and_exits_130(tmp_path, uninterrupted):
    out = tmp_path / "run"
    process = start(out)
    wait_for_checkpoint(out, process, 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted at epoch" in stderr and "--resume" in stderr and "Traceback" not in stderr
    result = invoke(*TRAIN, "-out", out, "--resume")
    assert result.exit_code == 0, result.output
    for a, b in zip(weights(out), weights(uninterrupted)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_corrupt_checkpoint_falls_back_to_the_one_before(tmp_path, uninterrupted, caplog):
    out = tmp_path / "run"
    process = start(out)
    wait_for_checkpoint(out, process, 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    newest = max((out / "checkpoints").glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1]))
    newest.write_bytes(b"garbage")
    result = invoke(*TRAIN, "-out", out, "--resume")
    assert result.exit_code == 0, result.output
    for a, b in zip(weights(out), weights(uninterrupted)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    result = invoke(*TRAIN, "-out", tmp_path, "--resume")
    assert result.exit_code == 2 and "no readable checkpoint" in result.stderr


DIVERGING = ("train", "zoo:digits_student", "digits", "-e", "3", "-o", "sgd", "-lr", "1e12", "-v", "0")


def test_nan_loss_names_epoch_and_step(tmp_path):
    result = invoke(*DIVERGING, "-out", tmp_path)
    assert result.exit_code == 2
    assert "the training loss became nan at epoch 1, step" in result.stderr and "\n" not in result.stderr.strip()
    assert not (tmp_path / "model.keras").exists() and not (tmp_path / "results.json").exists()
    # A failure of the run, not of its input: a fresh out folder keeps its log.
    result = invoke(*DIVERGING, "-out", tmp_path / "new")
    assert result.exit_code == 2 and "Performing Supervised" in (tmp_path / "new" / "output.log").read_text()


def test_compare_reports_a_failed_method_and_goes_on(tmp_path):
    result = invoke(
        "compare",
        "zoo:digits_teacher",
        "zoo:digits_student",
        "digits",
        "-m",
        "pkt",
        "-e",
        "2",
        "-o",
        "sgd",
        "-lr",
        "1e12",
        "-v",
        "0",
        "-out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert "Scratch student: 1 run(s) failed: the training loss became nan" in result.output.replace("\n", " ")
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in results["results"] if "failed" in e] == ["Scratch student"]
    assert "PKT" in result.output and (tmp_path / "KT_Methods_Comparison_accuracy_vs_epoch.png").is_file()


def test_an_out_folder_holding_a_run_is_refused_unless_overwritten(tmp_path):
    assert invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path).exit_code == 0
    result = invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path)
    assert result.exit_code == 2 and "already holds a run" in result.stderr and "--overwrite" in result.stderr
    assert (
        invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path, "--overwrite").exit_code
        == 0
    )


def test_a_full_disk_is_a_clear_error_and_earlier_outputs_stay(tmp_path, monkeypatch):
    assert invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path).exit_code == 0
    before = (tmp_path / "results.json").read_text()
    import ktrain.report

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ktrain.report.Path, "write_text", full)
    result = invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path, "--overwrite")
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    monkeypatch.undo()
    assert (tmp_path / "results.json").read_text() == before
    temporaries = [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".ktrain.lock"]
    assert not temporaries  # no temporary left behind (the run's lock file stays)


def test_tensorflows_own_write_errors_are_one_line_and_leave_no_partial_checkpoint(tmp_path, monkeypatch):
    # On a real full disk TensorFlow's checkpoint writer raises ResourceExhaustedError (not OSError),
    # after it has started a ckpt-N_temp folder.
    import tensorflow as tf

    def full(self, *args, **kwargs):
        (Path(self.directory) / "ckpt-1_temp").mkdir(parents=True)
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt-1_temp; No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    out = tmp_path / "out"
    result = invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", out)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: could not write a checkpoint in") and "\n" not in message, message
    assert "No space left on device" in message and "Traceback" not in result.output
    assert not list((out / "checkpoints").glob("*_temp*"))


def test_a_file_that_cannot_even_be_created_is_one_line(tmp_path):
    from ktrain.errors import RunFault
    from ktrain.io import write_json_atomic

    with pytest.raises(RunFault, match="could not write .*gone/results.json"):
        write_json_atomic(tmp_path / "gone" / "results.json", {})  # mkstemp in a missing folder


class Unregistered(keras.layers.Layer):
    def call(self, x):
        return x


def test_a_model_with_an_unregistered_custom_layer_names_the_class(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), Unregistered(), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "custom.keras")
    result = invoke("train", tmp_path / "custom.keras", "digits", "-out", tmp_path / "out")
    assert result.exit_code == 2 and "custom class 'Unregistered'" in result.stderr, result.stderr


COMPARE = [
    "compare",
    "zoo:digits_teacher",
    "zoo:digits_student",
    "digits",
    "-m",
    "kd,pkt+kd",
    "--no-baseline",
    "-e",
    "8",
    "-esp",
    "0",
    "-v",
    "0",
]


def test_killed_compare_resumes_skipping_finished_methods(tmp_path):
    whole = tmp_path / "whole"
    assert invoke(*COMPARE, "-out", whole).exit_code == 0
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "ktrain.cli.main", *COMPARE, "-out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = out / "checkpoints" / "progress.json"
    deadline = time.time() + 180
    while not (progress.exists() and (out / "checkpoints" / "pkt+kd_seed0").exists()):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(json.loads(progress.read_text())["entries"]) == 1  # KD finished, PKT+KD under way
    result = invoke(*COMPARE, "-out", out, "--resume")
    assert result.exit_code == 0, result.output
    resumed, reference = (json.loads((folder / "results.json").read_text())["results"] for folder in (out, whole))
    assert [e["name"] for e in resumed] == [e["name"] for e in reference]
    for a, b in zip(resumed, reference):
        assert a["test"]["accuracy"] == pytest.approx(b["test"]["accuracy"], abs=1e-9)
        assert a["test"]["crossentropy"] == pytest.approx(b["test"]["crossentropy"], rel=1e-5)
        if "history" in b and b["role"] == "student":
            assert len(a["history"]["loss"]) == len(b["history"]["loss"])
    assert sum("saved_to" in e for e in resumed) == 1


def test_resume_restores_dropout_random_state(tmp_path):
    """digits_teacher has Dropout: a resumed run must draw the same masks as an uninterrupted one."""
    from ktrain import zoo
    from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
    from ktrain.data import load_dataset
    from ktrain.engine import Trainer
    from ktrain.methods import get_method
    from ktrain.seeding import seed_everything
    from ktrain.strategy import build_strategy
    from ktrain.taps import NetworkView

    data = load_dataset("digits")
    strategy = build_strategy("one")

    def train(epochs, resume, folder):
        seed_everything(0)
        with strategy.scope():
            model = zoo.build("digits_teacher", data.image_shape, 10)
        config = TrainConfig(
            epochs=epochs,
            optimizer=OptimizerConfig(decay=0.0),
            schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0, use_final_model=True),
        ).validate()
        Trainer(student=NetworkView(model), method=get_method("supervised")(), config=config, strategy=strategy).fit(
            data, checkpoint_dir=str(folder), resume=resume
        )
        return model.get_weights()

    whole = train(3, False, tmp_path / "whole")
    train(1, False, tmp_path / "split")
    resumed = train(3, True, tmp_path / "split")
    for a, b in zip(whole, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path):
    import fcntl

    from ktrain.report import LOCK_NAME

    out = tmp_path / "run"
    out.mkdir()
    with open(out / LOCK_NAME, "a+") as held:  # another run holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242: ktrain distill T S digits\n")
        held.flush()
        for extra in ((), ("--overwrite",), ("--resume",)):
            result = invoke("train", "zoo:digits_student", "digits", "-e", 1, "-v", 0, "-out", out, *extra)
            assert result.exit_code == 2, result.output
            assert f"out folder '{out}' is in use by a running ktrain (pid 4242: ktrain distill" in result.stderr
            assert [path.name for path in out.iterdir()] == [LOCK_NAME]
    result = invoke("train", "zoo:digits_student", "digits", "-e", 1, "-v", 0, "-out", out)
    assert result.exit_code == 0, result.output  # released: the folder is free again
    assert "pid" in (out / LOCK_NAME).read_text()


def test_resume_refuses_other_deciding_settings_and_allows_more_epochs(tmp_path):
    train = ("train", "zoo:digits_student", "digits", "-v", "0", "-out", tmp_path)
    assert invoke(*train, "-e", 1).exit_code == 0
    recorded = json.loads((tmp_path / "run.json").read_text())
    assert recorded["engine.seed"] == "0" and recorded["data.val_split"] == "0.3" and "engine.epochs" not in recorded
    result = invoke(*train, "-e", 2, "--resume", "-seed", 1, "--val-split", 0.2)
    assert result.exit_code == 2, result.output
    assert "--resume with other settings than the run in" in result.stderr
    assert "data.val_split 0.3 → 0.2; engine.seed 0 → 1;" in result.stderr
    assert json.loads((tmp_path / "run.json").read_text()) == recorded  # the refused run recorded nothing
    extended = invoke(*train, "-e", 2, "--resume")  # -e may grow: that is how a run is extended
    assert extended.exit_code == 0, extended.output
    assert len(json.loads((tmp_path / "results.json").read_text())["results"][0]["history"]["loss"]) == 2


def test_a_model_that_rescales_already_scaled_images_is_named(tmp_path, caplog):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255, name="to_unit"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.save(tmp_path / "rescales.keras")
    with caplog.at_level("WARNING", logger="ktrain"):
        result = invoke("evaluate", tmp_path / "rescales.keras", "digits")
    assert result.exit_code == 0, result.output
    assert "layer 'to_unit' rescales its inputs by 1/255" in caplog.text


def test_the_fingerprint_knows_files_by_content_and_objects_by_size(tmp_path, monkeypatch):
    import shutil

    from ktrain import zoo
    from ktrain.api import build_run
    from ktrain.comparison import holds_demo
    from ktrain.fingerprint import fingerprint

    (tmp_path / "a").mkdir()
    zoo.build("digits_teacher", (8, 8, 1), 10).save(tmp_path / "a" / "t.keras")
    shutil.copy(tmp_path / "a" / "t.keras", tmp_path / "moved.keras")
    monkeypatch.chdir(tmp_path)

    def record(teacher, student="zoo:digits_student", **options):
        run = build_run("distill", student=student, data="digits", teacher=teacher, options=options)
        return fingerprint(run)

    same = [record(path)["models.teacher"] for path in ("a/t.keras", "./a/t.keras", str(tmp_path / "moved.keras"))]
    assert len(set(same)) == 1 and same[0].startswith("file sha256 ")
    objects = [record("a/t.keras", zoo.build("digits_student", (8, 8, 1), 10))["models.student"] for _ in range(2)]
    assert objects[0] == objects[1] == "Functional of 2410 parameters"  # not the session's auto-name
    assert record("a/t.keras", seed=3)["engine.seed"] == "3" and "engine.jit" not in record("a/t.keras")
    with pytest.raises(Exception, match="runs up to seed 4294967296"):
        build_run(
            "compare",
            student="zoo:digits_student",
            data="digits",
            teacher="a/t.keras",
            options={"seed": 2**32 - 1, "seeds": 2},
        ).validate()
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "run.json").write_text('{"command": "demo"}')  # a demo stopped before its results
    assert holds_demo(str(tmp_path / "demo")) and not holds_demo(str(tmp_path / "a"))

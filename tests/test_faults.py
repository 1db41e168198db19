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

from ktrain import outfolder
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
        [sys.executable, "-m", "ktrain.cli", *TRAIN, "-out", str(out), *extra],
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


def test_a_corrupt_checkpoint_falls_back_to_the_one_before(tmp_path, uninterrupted):
    out = tmp_path / "run"
    process = start(out)
    wait_for_checkpoint(out, process, 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    newest = max((out / "checkpoints").glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1]))
    newest.write_bytes(b"garbage")
    result = invoke(*TRAIN, "-out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "is unreadable" in (out / "output.log").read_text()
    # Bit-identical, although the history file held an epoch more than the checkpoint it fell back to.
    for a, b in zip(weights(out), weights(uninterrupted)):
        np.testing.assert_array_equal(a, b)
    assert learning(out) == learning(uninterrupted)


def _edited(field: str, value):
    def edit(state: dict) -> dict:
        return {**state, field: value}

    return edit


HAND_EDITS = {  # JSON a checkpoint could hold, but not this run's
    "epoch -1": _edited("epoch", -1),
    "epoch 999": _edited("epoch", 999),
    "history_length 0": _edited("history_length", 0),
    "best epoch after the last": lambda state: {**state, "best": {**state["best"], "epoch": state["epoch"] + 1}},
    "epoch cut short two ahead": lambda state: {**state, "in_progress": {"epoch": state["epoch"] + 2}},
}


@pytest.mark.parametrize("damage", ["state", "best", *HAND_EDITS, "history line"])
def test_a_checkpoint_missing_a_part_falls_back_too(tmp_path, uninterrupted, damage):
    out = tmp_path / "run"
    process = start(out)
    wait_for_checkpoint(out, process, 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    folder = out / "checkpoints"
    newest = max(folder.glob("ckpt-*.state.json"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    if damage == "state":
        newest.write_text('{"history_length": 0}')  # JSON, but not a checkpoint's state
    elif damage == "best":
        (folder / json.loads(newest.read_text())["best_file"]).unlink()  # the best weights it names
    elif damage == "history line":  # the last epoch's record replaced by another JSON value
        lines = (folder / "history.jsonl").read_text().splitlines()
        count = json.loads(newest.read_text())["history_length"]
        (folder / "history.jsonl").write_text("\n".join([*lines[: count - 1], "[1, 2]", *lines[count:]]) + "\n")
    else:
        newest.write_text(json.dumps(HAND_EDITS[damage](json.loads(newest.read_text()))))
    result = invoke(*TRAIN, "-out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "is unreadable" in (out / "output.log").read_text()
    for a, b in zip(weights(out), weights(uninterrupted)):
        np.testing.assert_array_equal(a, b)


def learning(folder: Path) -> dict:
    """A run's history without its timings."""
    history = json.loads((folder / "results.json").read_text())["results"][0]["history"]
    return {key: values for key, values in history.items() if key not in ("epoch_seconds", "images_per_second")}


def test_checkpoints_stay_bounded_and_hold_the_history_once(uninterrupted):
    folder = uninterrupted / "checkpoints"
    names = sorted(path.name for path in folder.iterdir())
    assert [name for name in names if name.endswith(".state.json")] == [f"ckpt-{n}.state.json" for n in (10, 11, 12)]
    assert len([name for name in names if name.endswith(".best.npz")]) <= 3
    assert len(names) <= 3 * 4 + 1, names  # index, data, state and best per checkpoint, and the history
    for state in folder.glob("*.state.json"):
        assert "history" not in json.loads(state.read_text())
    lines = (folder / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in lines] == learning(uninterrupted)["loss"]


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

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    # Extending the finished run by an epoch rewrites its results.json, which fails.
    result = invoke("train", "zoo:digits_student", "digits", "-e", "2", "-v", "0", "-out", tmp_path, "--resume")
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    monkeypatch.undo()
    assert (tmp_path / "results.json").read_text() == before
    assert not leftovers(tmp_path)  # no temporary left behind


def test_tensorflows_own_write_errors_are_one_line_and_leave_no_partial_checkpoint(tmp_path, monkeypatch):
    # On a real full disk TensorFlow's checkpoint writer raises ResourceExhaustedError (not OSError),
    # after it has started a ckpt-N_temp folder.
    import tensorflow as tf

    def full(self, prefix, *args, **kwargs):
        Path(f"{prefix}_temp").mkdir(parents=True)
        raise tf.errors.ResourceExhaustedError(None, None, f"{prefix}_temp; No space left on device")

    monkeypatch.setattr(tf.train.Checkpoint, "write", full)
    out = tmp_path / "out"
    result = invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", out)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: could not write a checkpoint in") and "\n" not in message, message
    assert "No space left on device" in message and "Traceback" not in result.output
    assert not list((out / "checkpoints").glob("*_temp*"))


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write could leave: ours start with '.' (the lock and the manifest of
    outputs stay), TensorFlow's hold '_temp'."""
    hidden = [path for path in folder.rglob(".*") if path.name not in (".ktrain.lock", ".ktrain-files")]
    return [str(path) for path in hidden + list(folder.rglob("*_temp*"))]


def ktrain_process(out: Path, *, limit_bytes: int | None = None, epochs: int = 2):
    """Run ``ktrain train`` in a subprocess, its files capped at ``limit_bytes`` each (RLIMIT_FSIZE)."""
    import resource

    def cap():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    command = [sys.executable, "-m", "ktrain.cli", *TRAIN[:3], "-e", str(epochs), "-v", "0", "-out", str(out)]
    return subprocess.run(command, preexec_fn=cap, capture_output=True, text=True, timeout=300)


def test_a_real_write_failure_in_tensorflows_writer_is_one_line(tmp_path):
    # A checkpoint's variable file (31 kB) exceeds the cap: the kernel refuses the write (EFBIG).
    out = tmp_path / "out"
    process = ktrain_process(out, limit_bytes=20_000)
    assert process.returncode == 2, process.stderr
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith("error: could not write a checkpoint") and "File too large" in message, message
    assert "Traceback" not in process.stderr and "{{" not in message
    assert not leftovers(out)


@pytest.fixture
def small_disk(tmp_path):
    """A mounted tmpfs of a given size (root with mount rights only)."""
    mounted = []

    def mount(kilobytes: int) -> Path:
        point = tmp_path / f"disk{kilobytes}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.parametrize("kilobytes", [8, 48, 100, 215, 219])
def test_a_real_full_disk_is_one_line_wherever_it_strikes(small_disk, kilobytes):
    # The sizes run out during the log, the first checkpoint, a later one, a best-weights copy and
    # a state file (the model and results fit once old checkpoints are pruned).
    disk = small_disk(kilobytes)
    process = ktrain_process(disk / "out", epochs=4)
    assert process.returncode in (0, 2), process.stderr
    assert "Traceback" not in process.stderr
    lines = process.stderr.strip().splitlines()
    # The log file may fail first: that stops the log with one warning, and the run goes on.
    assert all(line.startswith("warning: could not write") for line in lines[:-1]), lines
    if process.returncode == 2:
        assert lines[-1].startswith("error: could not write") and "No space left on device" in lines[-1], lines
    assert not leftovers(disk)


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
        [sys.executable, "-m", "ktrain.cli", *COMPARE, "-out", str(out)],
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

    from ktrain.outfolder import LOCK_NAME

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
            keras.layers.Flatten(),  # not the first layer: a leading Rescaling gets raw pixels instead
            keras.layers.Rescaling(1 / 255, name="to_unit"),
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


def test_overwrite_removes_the_files_ktrain_wrote_and_nothing_else(tmp_path):
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kd", "-e", "1", "-v", "0")
    assert invoke(*compare, "-out", tmp_path).exit_code == 0
    earlier = {path.name for path in tmp_path.iterdir()}
    assert {"kd_validation_curves.png", "results.pkl", ".ktrain-files"} <= earlier
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "figures").mkdir()
    result = invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path, "--overwrite")
    assert result.exit_code == 0, result.output
    after = {path.name for path in tmp_path.iterdir()}
    # The compare's plots and pickle are gone (they would mix with the new run's files); the log,
    # which every run appends to, the user's files and the train run's outputs are there.
    assert not {"kd_validation_curves.png", "results.pkl", "best_model.keras"} & after
    assert {"notes.txt", "figures", "output.log", "model.keras", "results.json", "run.json"} <= after
    assert (tmp_path / "notes.txt").read_text() == "mine"
    listed = [json.loads(line) for line in (tmp_path / ".ktrain-files").read_text().splitlines()]
    assert set(listed) == after - {"notes.txt", "figures", "output.log", ".ktrain.lock", ".ktrain-files"}


def test_overwrite_of_a_folder_without_a_manifest_removes_only_known_output_names(tmp_path):
    assert invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path).exit_code == 0
    (tmp_path / ".ktrain-files").unlink()  # as ktrain 0.1 left it
    (tmp_path / "Knowledge Distillation_validation_curves.png").write_bytes(b"an 0.1 plot")
    (tmp_path / "Knowledge Distillation (seed 1)_model.keras").write_bytes(b"an 0.1 model")
    (tmp_path / "teacher.h5").write_bytes(b"the user's teacher")
    # Another prefix's outputs, as 0.1 named them (no manifest) and as 0.2 does (its own manifest).
    (tmp_path / "p_Knowledge Distillation_model.keras").write_bytes(b"p's 0.1 model")
    # -res best writes best_model.keras, a name 0.1 also wrote: its manifest says whose it is.
    other = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path, "-res", "best")
    assert invoke(*other).exit_code == 0
    result = invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "Knowledge Distillation_validation_curves.png").exists()
    assert not (tmp_path / "Knowledge Distillation (seed 1)_model.keras").exists()
    assert (tmp_path / "teacher.h5").read_bytes() == b"the user's teacher"
    assert (tmp_path / "p_Knowledge Distillation_model.keras").read_bytes() == b"p's 0.1 model"
    best = tmp_path / "best_model.keras"
    assert best.is_file() and best.stat().st_mtime < (tmp_path / "model.keras").stat().st_mtime
    assert (tmp_path / "best_results.json").is_file()


@pytest.mark.parametrize("moment", [None, "Loading dataset", "Teacher validation accuracy"])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path, moment):
    # While Python imports (at once), while the data loads, and once the teacher is scored.
    out = tmp_path / "out"
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kd", "-e", "2", "-v", "0")
    process = subprocess.Popen(
        [sys.executable, "-m", "ktrain.cli", *compare, "-out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    log = out / "output.log"
    if moment is None:
        time.sleep(0.5)  # Python is importing typer, rich and TensorFlow
    while moment is not None and not (log.is_file() and moment in log.read_text()):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(("I0000", "WARNING: All", "E0000"))]
    assert process.returncode == 130, stderr
    assert len(lines) == 1 and lines[0].startswith("interrupted"), (stderr, stdout)
    if "outside a training epoch: run the command again" in lines[0]:
        assert not out.exists()  # nothing was checkpointed: the folder the run created is gone


def test_a_tensorboard_write_failure_is_one_line(tmp_path):
    # TensorFlow's summary writer raises its own FailedPreconditionError: a file where its folder goes.
    (tmp_path / "tensorboard").write_text("in the way")
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kd", "-e", "1", "-v", "0")
    result = invoke(*compare, "--tensorboard", "-out", tmp_path)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: could not write TensorBoard events in") and "\n" not in message, message
    assert "is not a directory" in message and "{{" not in message and "Traceback" not in result.output


def test_a_refused_overwrite_leaves_the_earlier_run_as_it_was(tmp_path):
    train = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path)
    assert invoke(*train).exit_code == 0
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and path.name != "output.log"}
    # Refused once the data is loaded, after the folder was claimed: an empty validation split.
    result = invoke(*train, "--overwrite", "--val-split", "0.003")
    assert result.exit_code == 2 and "leaves the validation split of digits empty" in result.stderr
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and path.name != "output.log"}
    assert after == before
    assert invoke(*train, "--overwrite").exit_code == 0  # accepted: the earlier run goes, nothing set aside stays
    assert not list(tmp_path.glob(".ktrain-overwritten*"))


def test_an_overwrite_that_fails_after_its_first_output_keeps_the_new_run(tmp_path):
    # A failure of the run (here a NaN loss) after the commit point: the earlier run is gone for good.
    train = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path)
    assert invoke(*train, "-res", "x").exit_code == 0
    result = invoke(*train, "-res", "x", "--overwrite", "-o", "sgd", "-lr", "1e12")
    assert result.exit_code == 2 and "the training loss became nan" in result.stderr
    assert not (tmp_path / "x_results.json").exists() and not list(tmp_path.glob(".ktrain-overwritten*"))


def test_a_torn_manifest_line_does_not_swallow_the_next_entry(tmp_path):
    from ktrain.outfolder import list_outputs, manifest_names

    (tmp_path / ".ktrain-files").write_text('"a.json"\n"to')  # a crash cut the last line
    list_outputs(tmp_path, [tmp_path / "b.json"])
    assert manifest_names(tmp_path) == {"a.json", "b.json"}


def test_overwrite_with_a_prefix_leaves_the_other_prefixes_runs(tmp_path):
    train = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path)
    assert invoke(*train).exit_code == 0
    assert invoke(*train, "-res", "a").exit_code == 0
    assert invoke(*train, "-res", "a", "--overwrite").exit_code == 0
    assert (tmp_path / "results.json").is_file() and (tmp_path / "model.keras").is_file()
    assert (tmp_path / "checkpoints").is_dir() and (tmp_path / "a_results.json").is_file()
    assert invoke(*train, "--overwrite").exit_code == 0
    assert (tmp_path / "a_results.json").is_file() and (tmp_path / "a_model.keras").is_file()


@pytest.mark.parametrize("delay", [1.0, 2.5])
def test_ctrl_c_in_evaluate_is_one_line_too(delay):
    # Typer turned the interrupt into exit 130 with nothing printed.
    command = [sys.executable, "-m", "ktrain.cli", "evaluate", "zoo:digits_teacher", "digits", "-k", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(("I0000", "WARNING: All", "E0000"))]
    if process.returncode == 0:
        pytest.skip("evaluate finished before the signal")  # a fast machine
    assert process.returncode == 130, stderr
    assert len(lines) == 1 and lines[0].startswith("interrupted (Ctrl-C)"), stderr


def test_resume_compares_input_scales_by_value(tmp_path):
    train = ("train", "zoo:digits_student", "digits", "-v", "0", "-out", tmp_path)
    assert invoke(*train, "-e", 1, "--input-scale", "2/255,-1").exit_code == 0
    resumed = invoke(*train, "-e", 2, "--resume", "--input-scale", "2/255, -1.0")  # written otherwise
    assert resumed.exit_code == 0, resumed.output
    other = invoke(*train, "-e", 3, "--resume", "--input-scale", "1/255")
    assert other.exit_code == 2 and "models.input_scale 0.00784313725490196,-1.0 → 0.00392" in other.stderr


def test_ctrl_c_once_the_command_has_finished_keeps_its_exit_status():
    # The interpreter's shutdown after the last line (TensorFlow's teardown) took the signal's own
    # status, -2, as if the command had been killed.
    command = [sys.executable, "-m", "ktrain.cli", "evaluate", "zoo:digits_teacher", "digits"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if "test crossentropy" in line:  # the last line: the command is done, the interpreter ends
            time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            break
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 130), stderr
    if process.returncode == 130:  # the signal came before the command returned: said as usual
        assert "interrupted (Ctrl-C)" in stderr


def test_a_prefixed_overwrite_keeps_what_the_unprefixed_manifest_lists(tmp_path):
    # A 0.1 run with -res kd (no manifest) beside a current unprefixed run that wrote kd_model.keras.
    assert invoke("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path).exit_code == 0
    (tmp_path / "kd_model.keras").write_bytes(b"the unprefixed run's kd student")
    outfolder.list_outputs(tmp_path, [tmp_path / "kd_model.keras"])
    (tmp_path / "kd_results.json").write_text("{}")  # the 0.1 run's
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kd", "-e", "1", "-v", "0")
    assert invoke(*compare, "-s", "none", "-out", tmp_path, "-res", "kd", "--overwrite").exit_code == 0
    assert (tmp_path / "kd_model.keras").read_bytes() == b"the unprefixed run's kd student"
    assert json.loads((tmp_path / "kd_results.json").read_text())["command"] == "compare"


def test_report_in_a_folder_without_a_manifest_lists_its_earlier_outputs(tmp_path):
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-m", "kd", "-e", "1", "-v", "0")
    assert invoke(*compare, "-out", tmp_path).exit_code == 0
    (tmp_path / ".ktrain-files").unlink()  # as 0.1 left it
    assert invoke("report", tmp_path).exit_code == 0  # redraws the plots: the folder's first manifest
    assert {"results.json", "results.pkl", "checkpoints"} <= outfolder.manifest_names(tmp_path)
    train = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path, "--overwrite")
    assert invoke(*train).exit_code == 0
    assert not (tmp_path / "results.pkl").exists() and not (tmp_path / "best_model.keras").exists()


def test_resume_refuses_another_replica_count(tmp_path):
    train = ("train", "zoo:digits_student", "digits", "-v", "0", "-out", tmp_path)
    assert invoke(*train, "-e", 1, "--strategy", "one").exit_code == 0
    assert json.loads((tmp_path / "run.json").read_text())["engine.replicas"] == "1"
    result = invoke(*train, "-e", 2, "--resume", "--strategy", "mirrored")  # two logical CPUs: two replicas
    assert result.exit_code == 2 and "engine.replicas 1 → 2" in result.stderr, result.output

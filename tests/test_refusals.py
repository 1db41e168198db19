"""Bad input of every class, driven through the command line: exit 2, one line on stderr, no
traceback, and the folder left as it was. Plus a property-based test of the .npz loader."""

import json
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

from ktrain.cli.main import app
from ktrain.errors import KtrainError
from ktrain.specs import DataSpec
from ktrain.strategy import check_tf_config

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_refused(result, fragment: str, folder: Path, before: set):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert fragment in message, message
    assert "Traceback" not in result.output
    assert set(folder.rglob("*")) == before  # the folder is left as it was


def image_input():
    return keras.Input((8, 8, 1))


def unbuilt():
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)])


def dict_output():
    inputs = image_input()
    return keras.Model(inputs, {"scores": keras.layers.Dense(10)(keras.layers.Flatten()(inputs))})


def pixel_output():
    inputs = image_input()
    return keras.Model(inputs, keras.layers.Conv2D(10, 3, padding="same")(inputs))


def frozen():
    inputs = image_input()
    return keras.Model(inputs, keras.layers.Dense(10, trainable=False)(keras.layers.Flatten()(inputs)))


MODELS = [
    (unbuilt, "is not built", "call model.build((None, 8, 8, 1))"),
    (dict_output, "returns a dict of outputs (scores)", "return the tensor itself"),
    (pixel_output, "has an output of shape ?×8×8×10", "end the model in a Dense layer"),
]


@pytest.mark.parametrize("build, fragment, fix", MODELS + [(frozen, "has no trainable weights", "model.trainable")])
def test_a_student_ktrain_cannot_train_is_refused(tmp_path, build, fragment, fix):
    build().save(tmp_path / "student.keras")
    before = set(tmp_path.rglob("*"))
    result = invoke("train", tmp_path / "student.keras", "digits", "-e", "1", "-v", "0", "-out", tmp_path / "out")
    assert_refused(result, fragment, tmp_path, before)
    assert fix in result.stderr


@pytest.mark.parametrize("build, fragment, fix", MODELS)
def test_a_teacher_ktrain_cannot_learn_from_is_refused(tmp_path, build, fragment, fix):
    build().save(tmp_path / "teacher.keras")
    before = set(tmp_path.rglob("*"))
    distill = ("distill", tmp_path / "teacher.keras", "zoo:digits_student", "digits", "-e", "1", "-v", "0")
    assert_refused(invoke(*distill, "-out", tmp_path / "out"), fragment, tmp_path, before)


def test_a_frozen_teacher_teaches_and_counts_its_parameters(tmp_path):
    frozen().save(tmp_path / "teacher.keras")
    distill = ("distill", tmp_path / "teacher.keras", "zoo:digits_student", "digits", "-e", "1", "-v", "0")
    result = invoke(*distill, "-out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    teacher = next(entry for entry in results["results"] if entry["role"] == "teacher")
    assert teacher["params"] == 8 * 8 * 10 + 10  # its weights, none of them trainable


@pytest.mark.parametrize(
    "tf_config, fragment",
    [
        ("", "--strategy multiworker needs TF_CONFIG"),
        ("{cluster", "TF_CONFIG is not JSON"),
        ('["worker"]', "TF_CONFIG needs a 'cluster' and a 'task' object"),
        (
            '{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}',
            "TF_CONFIG cluster 'worker' is 'h:1'",
        ),
        (
            '{"cluster": {"worker": ["h"]}, "task": {"type": "worker", "index": 0}}',
            "give a list of 'host:port' strings",
        ),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}', "task type is 'chief'"),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', "from 0 to 1"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": "0"}}', "task index is '0'"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": ["worker"], "index": 0}}', "task type is ['worker']"),
        ('{"cluster": {"chief": ["h:1"], "ps": ["h:2"]}, "task": {"type": "ps", "index": 0}}', "cluster has ps"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 0}, "rpc_layer": 5}', "rpc_layer is 5"),
    ],
)
def test_a_malformed_tf_config_is_one_line(tmp_path, tf_config, fragment):
    before = set(tmp_path.rglob("*"))
    train = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "--strategy", "multiworker")
    result = invoke(*train, "-out", tmp_path / "out", env={"TF_CONFIG": tf_config})
    assert_refused(result, fragment, tmp_path, before)


def test_a_well_formed_tf_config_passes_the_check():
    check_tf_config(json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}))


# -- the loader, on generated malformed .npz files ----------------------------------------------

DTYPES = st.sampled_from(["uint8", "int8", "int64", "uint64", "float32", "float64", "bool", "U3"])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    if dtype.kind == "U":
        return np.full(shape, draw(st.sampled_from(["0", "cat", ""])), dtype)
    if dtype.kind == "f":
        values = st.floats(-3e9, 3e9, width=dtype.itemsize * 8) | st.sampled_from([np.nan, np.inf, -np.inf, 0.5])
        elements = values.map(lambda value: dtype.type(value))
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def npz_contents(draw):
    """Mostly well-formed archives with one or more things wrong: a missing key, a shape, a dtype,
    label values, sizes."""
    n_train, n_test = draw(st.integers(4, 12)), draw(st.integers(1, 4))
    side = draw(st.integers(1, 3))  # zero-pixel images come from the generated arrays
    contents = {
        "x_train": np.zeros((n_train, side, side), np.uint8),
        "y_train": np.arange(n_train) % 2,
        "x_test": np.zeros((n_test, side, side), np.uint8),
        "y_test": np.arange(n_test) % 2,
    }
    for key in draw(st.lists(st.sampled_from(sorted(contents)), max_size=3, unique=True)):
        contents[key] = draw(arrays())
    if draw(st.integers(0, 5)) == 0:
        del contents[draw(st.sampled_from(sorted(contents)))]
    return contents


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(npz_contents(), st.floats(0.05, 0.6), st.integers(0, 2**32 - 1))
def test_the_loader_either_loads_or_refuses_in_one_line(contents, val_split, seed):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        np.savez(path, **contents)
        try:
            data = DataSpec(str(path), val_split=val_split).validate().load(seed)
        except KtrainError as exc:
            assert "\n" not in str(exc)
            event("refused")
            return
    event("loaded")
    # What loads is usable: non-empty splits of one image shape and labels within the class count.
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        assert len(x) == len(y) > 0 and x.shape[1:] == data.image_shape and 0 not in data.image_shape
        assert y.dtype == np.int32 and 0 <= y.min() and y.max() < data.num_classes


def test_a_method_that_would_train_no_weight_is_refused(tmp_path):
    # PKT matches the features at the classifier's input: here the Flatten, with no weights before it.
    inputs = image_input()
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(tmp_path / "linear.keras")
    pkt = ("pkt", "zoo:digits_teacher", tmp_path / "linear.keras", "digits", "-e", "1", "-v", "0")
    result = invoke(*pkt, "-out", tmp_path / "out")  # found once training starts: a failure of the run
    assert result.exit_code == 2 and "\n" not in result.stderr.strip(), result.output
    assert result.stderr.startswith("error: method 'pkt' trains none of the student's weights")
    assert not (tmp_path / "out" / "student.keras").exists() and not (tmp_path / "out" / "results.json").exists()


def test_a_refusal_is_one_line_even_after_a_warning(tmp_path):
    # The student warns (it rescales by 1/255 inside) before its class count is refused: warnings
    # are held until the run is past its checks, so stderr is the error alone.
    inputs = image_input()
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(5)(x)).save(tmp_path / "five.keras")
    before = set(tmp_path.rglob("*"))
    distill = ("distill", "zoo:digits_teacher", tmp_path / "five.keras", "digits", "-e", "1", "-v", "0")
    assert_refused(invoke(*distill, "-out", tmp_path / "out"), "outputs 10 classes but student", tmp_path, before)


# -- paths, files in the out folder, and options that contradict each other -----------------------
LONG = "a" * 300  # a file or folder name holds at most 255 bytes
TRAIN_STUDENT = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0")


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (("-out", f"out/{LONG}/x"), "-out names a folder 'aaaaaaaaaaaaaaaaaaaaaaaaaaaa…"),
        (("-res", LONG), "-res 'aaaaaaaaaaaaaaaaaaaaaaaaaaaa…aaaaaaaaaaaaaaaaaaaaaaaaaaaa' is 300 bytes long"),
        (("-out", "out", "--resume", "--overwrite"), "--resume and --overwrite were both given"),
        (("-out", "out", "-w", "w.weights.h5", "--reinit"), "-w and --reinit were both given"),
    ],
)
def test_a_bad_path_or_a_contradiction_is_one_line_and_writes_nothing(tmp_path, monkeypatch, arguments, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.weights.h5").write_bytes(b"")
    before = set(tmp_path.rglob("*"))
    assert_refused(invoke(*TRAIN_STUDENT, *arguments), fragment, tmp_path, before)


def test_a_model_path_too_long_for_the_system_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", f"{LONG}.keras", "digits", "-e", "1", "-v", "0", "-out", "out")
    shown = f"{LONG[:50]}…{LONG[-44:]}.keras"
    assert_refused(result, f"cannot use '{shown}' (File name too long): use a shorter name", tmp_path, set())


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (("-s", "none", "--export", "int8"), "--export int8 with -s none: the export is made from the saved student"),
        (("-or", "--resume"), "--resume with -or: a resumed run finds its finished parts in results.json"),
    ],
)
def test_compare_refuses_outputs_that_contradict(tmp_path, arguments, fragment):
    compare = ("compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-e", "1", "-v", "0")
    assert_refused(invoke(*compare, "-out", tmp_path / "out", *arguments), fragment, tmp_path, set())


def test_fitnets_hint_stage_may_not_take_every_epoch(tmp_path):
    distill = ("distill", "zoo:digits_teacher", "zoo:digits_cnn_student", "digits", "-m", "fitnet", "-v", "0")
    result = invoke(*distill, "--fitnet-hint-epochs", "3", "-e", "3", "-out", tmp_path / "out")
    assert_refused(result, "method 'fitnet': --fitnet-hint-epochs 3 takes all 3 epochs (-e)", tmp_path, set())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished `train` run: a folder holding a run, its model file among its outputs."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert invoke(*TRAIN_STUDENT, "-out", out).exit_code == 0
    return out


def contents(folder: Path) -> dict:
    return {path: path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)])
def test_a_model_read_from_the_out_folder_is_never_replaced(trained, tmp_path, overwrite):
    before = contents(trained)
    distill = ("distill", trained / "model.keras", "zoo:digits_student", "digits", "-e", "1", "-v", "0")
    result = invoke(*distill, "-out", trained, *overwrite)
    assert result.exit_code == 2 and "\n" not in result.stderr.strip(), result.output
    assert f"the teacher '{trained / 'model.keras'}' is in the out folder '{trained}'" in result.stderr
    assert contents(trained) == before


def test_a_model_kept_beside_the_outputs_under_a_name_ktrain_writes_is_refused(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    inputs = image_input()
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(keep / "model.keras")
    before = set(tmp_path.rglob("*"))
    result = invoke("train", keep / "model.keras", "digits", "-e", "1", "-v", "0", "-out", keep)
    assert_refused(result, f"the model '{keep / 'model.keras'}' is in the out folder", tmp_path, before)


def test_a_model_of_another_name_in_the_out_folder_is_fine(tmp_path):
    inputs = image_input()
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(tmp_path / "mine.h5")
    result = invoke("train", tmp_path / "mine.h5", "digits", "-e", "1", "-v", "0", "-out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mine.h5").is_file() and (tmp_path / "model.keras").is_file()


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda root: (root / "run" / "results.json").mkdir(parents=True), "is a folder, not a run's results.json"),
        (lambda root: (root / "run").write_text("{}"), "is a file: give the out folder of a run"),
        (
            lambda root: [(root / "run").mkdir(), (root / "run" / "results.json").write_text("[" * 100_000)],
            "is not a ktrain results.json (nested too deeply)",
        ),
    ],
)
def test_report_on_what_is_not_a_run_folder_is_one_line(tmp_path, make, fragment):
    make(tmp_path)
    before = set(tmp_path.rglob("*"))
    assert_refused(invoke("report", tmp_path / "run"), fragment, tmp_path, before)


@pytest.mark.parametrize(
    "target, fragment",
    [
        ("file/x.tflite", "output 'file/x.tflite' is inside 'file', which is a file: give another path"),
        ("folder.tflite", "output 'folder.tflite' is a folder: give a file name"),
    ],
)
def test_export_to_a_path_that_cannot_hold_the_file_is_one_line(trained, tmp_path, monkeypatch, target, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.tflite").mkdir()
    before = set(tmp_path.rglob("*"))
    assert_refused(invoke("export", trained / "model.keras", target), fragment, tmp_path, before)


@pytest.mark.parametrize(
    "labels, fragment",
    [
        (np.zeros((20, 10)), "y_train row 0 is not one-hot ([0.,0.,0.,0.,0.,0.,0.,0.,0.,0.])"),
        (np.full((20, 10), 0.1), "y_train row 0 is not one-hot"),
        (np.eye(10)[np.arange(20) % 10] * 2, "y_train row 0 is not one-hot"),
    ],
)
def test_rows_that_are_not_one_hot_are_refused(tmp_path, labels, fragment):
    images = np.zeros((20, 8, 8, 1), np.uint8)
    np.savez(tmp_path / "d.npz", x_train=images, y_train=labels, x_test=images, y_test=np.arange(20) % 10)
    before = set(tmp_path.rglob("*"))
    result = invoke("train", "zoo:digits_student", tmp_path / "d.npz", "-e", "1", "-v", "0", "-out", tmp_path / "out")
    assert_refused(result, fragment, tmp_path, before)


def test_a_dataset_path_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "d.npz")
    before = set(tmp_path.rglob("*"))
    result = invoke("train", "zoo:digits_student", tmp_path / "d.npz", "-e", "1", "-v", "0", "-out", tmp_path / "out")
    assert_refused(result, "is not a regular file: give an .npz file", tmp_path, before)


def test_the_command_to_continue_pastes_into_a_shell(monkeypatch):
    from ktrain.cli.main import _again

    monkeypatch.setattr("sys.argv", ["ktrain", "train", "my model.keras", "digits", "-out", "a b", "--overwrite"])
    assert _again() == "ktrain train 'my model.keras' digits -out 'a b' --resume"


def test_completion_called_with_a_bad_word_index_prints_nothing(monkeypatch, capsys):
    from ktrain.cli.main import main

    monkeypatch.setenv("_KTRAIN_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "ktrain tr")
    monkeypatch.setenv("COMP_CWORD", "abc")
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1 and capsys.readouterr() == ("", "")

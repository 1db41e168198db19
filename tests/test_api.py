"""The Python API: models and data in memory, the same runs as the command line, nothing written or
printed unless asked, the caller's teacher untouched, and a package that installs no top-level cli."""

import ast
import json
import re
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import ktrain
from ktrain.cli.main import app
from ktrain.datasets import load_digits

FAST = {"epochs": 2, "batch_size": 32, "seed": 0}


@pytest.fixture(scope="module")
def arrays():
    (x_train, y_train), (x_test, y_test) = load_digits()
    return x_train[:400], y_train[:400], x_test[:120], y_test[:120]


def mlp(width: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ]
    )


def test_readme_python_api_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert re.search(r"teacher 0\.\d{4}\nstudent 0\.\d{4} after \d+ epochs", printed), printed
    assert list(tmp_path.iterdir()) == []  # no out_folder: nothing written


def test_distill_in_memory_matches_the_cli_on_the_same_data_as_npz(tmp_path, arrays):
    teacher, student = mlp(64, 1), mlp(16, 2)
    teacher.save(tmp_path / "teacher.keras")
    student.save(tmp_path / "student.keras")
    x_train, y_train, x_test, y_test = arrays
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    result = ktrain.distill(teacher, student, arrays, method="kd", temperature=4, **FAST)
    command = ["distill", str(tmp_path / "teacher.keras"), str(tmp_path / "student.keras")]
    command += [str(tmp_path / "data.npz"), "-m", "kd", "-t", "4", "-e", "2", "-bs", "32", "-seed", "0"]
    outcome = CliRunner().invoke(app, command + ["-out", str(tmp_path / "out"), "-v", "0"])
    assert outcome.exit_code == 0, outcome.output
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    cli_history = next(entry for entry in written["results"] if entry["role"] == "student")["history"]

    assert set(result.history) == set(cli_history)
    for column, values in cli_history.items():
        if column not in ("epoch_seconds", "images_per_second"):  # timings differ from run to run
            np.testing.assert_allclose(result.history[column], values, rtol=1e-6, err_msg=column)
    assert result.test == pytest.approx(written["results"][0]["test"], rel=1e-6)
    assert result.student is student
    assert result.method == "kd" and result.record["method"]["options"]["temperature"] == 4.0


def test_tf_data_gives_the_same_history_as_the_arrays(arrays):
    x_train, y_train, x_test, y_test = arrays
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))  # one pair at a time
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(50)  # batches
    from_arrays = ktrain.train(mlp(16, 3), arrays, **FAST)
    from_datasets = ktrain.train(mlp(16, 3), (train, test), **FAST)
    assert from_datasets.history["val_accuracy"] == from_arrays.history["val_accuracy"]
    assert from_datasets.history["loss"] == from_arrays.history["loss"]
    assert from_datasets.test == from_arrays.test
    assert from_datasets.record["dataset"]["fingerprint"] == from_arrays.record["dataset"]["fingerprint"]


def test_float_images_are_used_as_given(arrays):
    """uint8 images are scaled by 1/255; the same images given as floats in [0, 1] train identically."""
    x_train, y_train, x_test, y_test = arrays
    scaled = (x_train.astype(np.float32) / 255, y_train, x_test.astype(np.float32) / 255, y_test)
    as_uint8 = ktrain.train(mlp(16, 4), arrays, **FAST)
    as_float = ktrain.train(mlp(16, 4), scaled, **FAST)
    np.testing.assert_allclose(as_float.history["val_loss"], as_uint8.history["val_loss"], rtol=1e-5)


def test_a_given_validation_split_is_used(arrays):
    x_train, y_train, x_test, y_test = arrays
    result = ktrain.train(
        mlp(8, 5), (x_train[:300], y_train[:300], x_test, y_test), validation=(x_train[300:], y_train[300:]), epochs=1
    )
    assert result.record["dataset"]["sizes"] == {"train": 300, "val": 100, "test": 120}


def frozen_flags(model):
    return [layer.trainable for layer in model._flatten_layers(include_self=True, recursive=True)]


@pytest.mark.parametrize("strategy", ["one", "mirrored"])
def test_teacher_object_is_unchanged_and_student_object_holds_the_trained_weights(arrays, strategy):
    teacher, student = mlp(64, 6), mlp(16, 7)
    teacher.get_layer("hidden").trainable = False  # the caller's own choice, kept
    flags, weights = frozen_flags(teacher), teacher.get_weights()
    before = student.get_weights()
    result = ktrain.distill(teacher, student, arrays, strategy=strategy, **FAST)
    assert frozen_flags(teacher) == flags
    assert all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), weights))
    assert result.student is student
    assert not all(np.array_equal(a, b) for a, b in zip(student.get_weights(), before))
    assert result.record["strategy"]["replicas"] == (2 if strategy == "mirrored" else 1)
    # The weights written back are the trained ones: the object scores what the run recorded.
    assert ktrain.evaluate(student, arrays)["test accuracy"] == pytest.approx(result.test["accuracy"])


def test_nothing_is_written_or_printed_without_an_out_folder(tmp_path, monkeypatch, capfd, arrays):
    monkeypatch.chdir(tmp_path)
    ktrain.distill(mlp(32, 8), mlp(8, 9), arrays, epochs=1)
    assert list(tmp_path.iterdir()) == []
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "ktrain" not in captured.err and "retracing" not in captured.err


def test_with_an_out_folder_the_record_is_results_json(tmp_path, arrays):
    result = ktrain.distill(mlp(32, 10), mlp(8, 11), arrays, epochs=1, out_folder=str(tmp_path / "run"))
    assert result.record == json.loads((tmp_path / "run" / "results.json").read_text())
    assert (tmp_path / "run" / "student.keras").is_file()


def test_compare_returns_every_method_and_seed_and_leaves_the_student_object_alone(arrays):
    teacher, student = mlp(32, 12), mlp(8, 13)
    before = student.get_weights()
    result = ktrain.compare(teacher, student, arrays, methods=["kd"], seeds=2, epochs=1, batch_size=32)
    assert [(run.method, run.seed) for run in result.runs] == [
        ("kd", 0),
        ("supervised", 0),
        ("kd", 1),
        ("supervised", 1),
    ]
    assert len(result.of("kd")) == 2 and result.teacher["role"] == "teacher"
    assert all(run.student is not None and run.test["accuracy"] >= 0 for run in result.runs)
    assert result.runs[0].history["val_accuracy"] == result.record["results"][0]["history"]["val_accuracy"]
    assert all(np.array_equal(a, b) for a, b in zip(student.get_weights(), before))


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"temprature": 4}, "unknown option 'temprature' (did you mean temperature?)"),
        ({"epoch": 3}, "did you mean epochs?"),
        ({"seeds": 3}, "option 'seeds' is not taken by distill: it is an option of compare"),
        ({"pkt_weight": 3000}, "has no effect on kd"),
        ({"temperature": -1}, "give a value greater than 0"),
        ({"epochs": "ten"}, "give a whole number"),
        ({"export": "int8"}, "export needs an out folder"),
    ],
)
def test_misspelt_or_misplaced_options_are_refused(arrays, options, fragment):
    with pytest.raises(ktrain.KtrainError, match=re.escape(fragment)) as error:
        ktrain.distill(mlp(8, 0), mlp(8, 1), arrays, **options)
    assert isinstance(error.value, ValueError)
    if "unknown option" in fragment:
        assert "batch_size" in str(error.value) and "kd_lambda" in str(error.value)  # names the valid ones


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (np.zeros((4, 8, 8)), "data is a ndarray"),
        ((np.zeros((4, 8, 8), np.uint8),), "tuple of 1 items"),
        ((np.zeros((4, 8, 8), np.int64), np.zeros(4), np.zeros((2, 8, 8), np.int64), np.zeros(2)), "dtype int64"),
        (
            (tf.data.Dataset.range(3).map(lambda i: (i, i)).repeat(), tf.data.Dataset.range(3).map(lambda i: (i, i))),
            "infinite",
        ),
    ],
)
def test_bad_data_is_refused_in_one_line(data, fragment):
    with pytest.raises(ktrain.KtrainError, match=re.escape(fragment)):
        ktrain.train(mlp(8, 0), data, epochs=1)


def test_datasets_too_large_for_memory_are_refused(monkeypatch, arrays):
    import ktrain.memory

    monkeypatch.setattr(ktrain.memory, "memory_budget", lambda: 10_000)
    x_train, y_train, x_test, y_test = arrays
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test))
    with pytest.raises(ktrain.KtrainError, match="GiB allowed"):
        ktrain.train(mlp(8, 0), (train, test), epochs=1)
    batched = train.batch(64)  # size unknown up front: refused while read
    with pytest.raises(ktrain.KtrainError, match="GiB allowed"):
        ktrain.train(mlp(8, 0), (batched, test), epochs=1)


def test_teacher_and_student_may_not_be_one_object(arrays):
    model = mlp(8, 0)
    with pytest.raises(ktrain.KtrainError, match="same model object"):
        ktrain.distill(model, model, arrays, epochs=1)


def test_export_a_student_object(tmp_path, arrays):
    report = ktrain.export(mlp(8, 0), tmp_path / "s.tflite", data=arrays, max_accuracy_drop=1.0)
    assert report["mode"] == "float32" and report["bytes"] > 0 and report["agreement"] > 0.9
    assert (tmp_path / "s.tflite").is_file()


def installed_distribution():
    """The distribution pip installed into site-packages (not a build's egg-info in the checkout)."""
    import site

    folders = [*site.getsitepackages(), site.getusersitepackages()]
    found = [d for d in metadata.distributions(name=ktrain.__distribution__, path=folders)]
    assert found, f"{ktrain.__distribution__} is not installed in {folders}"
    return found[0]


def test_the_installed_distribution_has_no_top_level_cli():
    distribution = installed_distribution()
    assert distribution.metadata["Name"] == "ktrain-distill"
    top_level = set(distribution.read_text("top_level.txt").split())
    for file in distribution.files:
        first = file.parts[0]
        if first == ".." or first.endswith(".dist-info") or first == "__pycache__" or first.endswith(".pth"):
            continue
        if first.startswith("__editable__") and first.endswith("finder.py"):
            # An editable install maps packages to source folders: its mapping names what is installed.
            tree = ast.parse(Path(file.locate()).read_text(encoding="utf-8"))
            mapping = next(
                node.value
                for node in ast.walk(tree)
                if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "MAPPING"
            )
            names = ast.literal_eval(mapping)
            top_level |= {name.split(".")[0] for name in names}
            assert Path(names["ktrain.cli"]).name == "cli"  # the repository's cli/, as ktrain.cli
            continue
        top_level.add(first.removesuffix(".py"))
    assert top_level == {"ktrain"}
    entry = next(point for point in distribution.entry_points if point.name == "ktrain")
    assert entry.value == "ktrain.cli:main"


def test_version_names_the_distribution():
    outcome = CliRunner().invoke(app, ["--version"])
    assert outcome.exit_code == 0
    version = installed_distribution().version
    assert outcome.output.strip() == f"ktrain-distill {version}"
    assert ktrain.__version__ == version


def test_an_ensemble_teacher_object_teaches_and_the_student_is_written_back(arrays):
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    teacher = keras.Model(inputs, [keras.layers.Dense(10)(hidden), keras.layers.Dense(10)(hidden)])
    student = mlp(8, 14)
    before = student.get_weights()
    result = ktrain.distill(teacher, student, arrays, epochs=1)
    assert result.method == "ensemble-kd"
    assert result.record["results"][1]["source"] == f"<model object '{teacher.name}'>"
    assert not all(np.array_equal(a, b) for a, b in zip(student.get_weights(), before))


def test_compare_start_weights_go_into_a_copy(tmp_path, arrays):
    student = mlp(8, 15)
    mlp(8, 16).save_weights(tmp_path / "start.weights.h5")
    before = student.get_weights()
    ktrain.compare(
        mlp(16, 17),
        student,
        arrays,
        methods=["kd"],
        baseline=False,
        epochs=1,
        start_weights=str(tmp_path / "start.weights.h5"),
    )
    assert all(np.array_equal(a, b) for a, b in zip(student.get_weights(), before))


def test_tf_data_layouts_are_read_as_given(arrays):
    from ktrain.memory import from_datasets

    x_train, y_train, x_test, y_test = arrays
    expected = from_datasets(
        tf.data.Dataset.from_tensor_slices((x_train, y_train)), tf.data.Dataset.from_tensor_slices((x_test, y_test))
    )
    layouts = [
        (x_train, y_train[:, None]),  # keras.datasets' CIFAR layout: labels of shape (1,)
        (x_train[..., None], np.eye(10, dtype=np.float32)[y_train]),  # H×W×1 images, one-hot labels
    ]
    for images, labels in layouts:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        for given in (dataset, dataset.batch(64)):
            data = from_datasets(given, tf.data.Dataset.from_tensor_slices((x_test, y_test)))
            np.testing.assert_array_equal(data.y_train, expected.y_train)
            np.testing.assert_array_equal(data.x_train.reshape(-1), expected.x_train.reshape(-1))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda a: ktrain.train(mlp(8, 0), a, validation=(a[0],)), "validation is a tuple of 1 items"),
        (lambda a: ktrain.train(mlp(8, 0), a, validation=a[0]), "validation is a ndarray"),
        (
            lambda a: ktrain.train(mlp(8, 0), (a[0][:12], a[1][:12], a[2], a[3]), val_split=0.01),
            "split of the arrays is empty",
        ),
        (lambda a: ktrain.export(object(), "x.tflite"), "the student is a object"),
    ],
)
def test_more_bad_input_is_one_line(tmp_path, monkeypatch, arrays, call, fragment):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ktrain.KtrainError, match=re.escape(fragment)):
        call(arrays)
    assert list(tmp_path.iterdir()) == []

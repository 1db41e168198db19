"""ktrain compare: outputs, fairness (same initial weights), best-on-validation, seeds, report, evaluate."""

import json
import pickle

import keras
import matplotlib.image
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain.cli.main import app

runner = CliRunner()
COMPARE = ["compare", "zoo:digits_teacher", "zoo:digits_student", "digits", "-v", "0"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    result = invoke(*COMPARE, "-e", 2, "-out", out, "-res", "run", "--tensorboard")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_output_is_written_and_loads(comparison):
    out, _ = comparison
    results = json.loads((out / "run_results.json").read_text())
    assert {"config", "versions", "machine", "dataset", "results", "methods", "wall_seconds"} <= set(results)
    names = [entry["name"] for entry in results["results"]]
    assert names == [
        "Knowledge Distillation",
        "Probabilistic Knowledge Transfer",
        "PKT plus Distillation",
        "Scratch student",
        "Teacher",
    ]
    for entry in results["results"][:-1]:
        assert {"history", "test", "params", "seed", "epochs_run", "train_seconds"} <= set(entry)
        assert {"loss", "accuracy", "crossentropy", "lr", "epoch_seconds", "images_per_second", "val_accuracy"} <= set(
            entry["history"]
        )
    assert "val_knn_accuracy" in results["results"][1]["history"]
    assert results["results"][1]["representation"]["map"] > 0

    records = pickle.loads((out / "run_results.pkl").read_bytes())
    assert [record["method"] for record in records] == names
    assert records[-1]["history"] is None and all(isinstance(v, float) for v in records[0]["evaluation"])
    assert isinstance(records[0]["history"]["val_accuracy"], list)

    for png in out.glob("run_*.png"):
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0
    assert (out / "run_KT_Methods_Comparison_crossentropy_vs_epoch.png").is_file()
    log = (out / "run_output.log").read_text()
    assert "Final results:" in log and "Teacher params:" in log and "categorical_accuracy" in log
    events = list((out / "run_tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 4  # one run per student
    import tensorflow as tf

    tags = set()
    for record in tf.data.TFRecordDataset([str(path) for path in events]):
        event = tf.compat.v1.Event.FromString(record.numpy())
        tags.update((value.tag, value.metadata.plugin_data.plugin_name) for value in event.summary.value)
    assert ("val_accuracy", "scalars") in tags and ("lr", "scalars") in tags


def test_best_student_is_chosen_on_validation(comparison):
    out, output = comparison
    results = json.loads((out / "run_results.json").read_text())
    students = [e for e in results["results"] if e["role"] == "student" and e["trains_head"]]
    best = max(students, key=lambda e: e["best_val_accuracy"])
    assert best["saved_to"].endswith("run_best_model.keras") and results["best_student"] == best["name"]
    assert sum("saved_to" in e for e in results["results"]) == 1
    assert keras.saving.load_model(out / "run_best_model.keras").output_shape == (None, 10)


def test_report_reproduces_the_table_from_json(comparison):
    out, output = comparison
    result = invoke("report", out, "-res", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    table = output[: output.index("best student")].strip()
    assert table in result.output


def test_omit_results_writes_no_result_files(tmp_path):
    result = invoke(*COMPARE, "-e", 1, "-m", "kd", "-or", "-s", "none", "-out", tmp_path)
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []


def test_methods_start_from_identical_weights_and_save_all(tmp_path):
    # A learning rate of 1e-9 leaves every student at its starting weights.
    result = invoke(*COMPARE, "-e", 1, "-m", "kd,pkt+kd", "-lr", 1e-9, "-d", 0, "-ufm", "-s", "all", "-out", tmp_path)
    assert result.exit_code == 0, result.output
    saved = sorted(tmp_path.glob("*_model.keras"))
    # Named by method key, without spaces (the tables keep the display names).
    assert [path.name for path in saved] == ["kd_model.keras", "pkt+kd_model.keras", "supervised_model.keras"]
    plots = sorted(path.name for path in tmp_path.glob("*_validation_curves.png"))
    assert plots == ["kd_validation_curves.png", "pkt+kd_validation_curves.png", "supervised_validation_curves.png"]
    with open(tmp_path / "results.pkl", "rb") as stream:
        assert [record["seed"] for record in pickle.load(stream)] == [0, 0, 0, None]  # the teacher's last
    weights = [keras.saving.load_model(path).get_weights() for path in saved]
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_two_seeds_give_mean_and_std(tmp_path):
    result = invoke(*COMPARE, "-e", 1, "-m", "kd", "--seeds", 2, "-out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "mean±std over 2" in result.output and "±." in result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["seed"] for e in results["results"] if e["role"] == "student"] == [0, 0, 1, 1]
    from ktrain.report import summarize

    kd = summarize(results)[0]
    assert kd["runs"] == 2 and "accuracy_std" in kd


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (("-m", "kd", "-m", "distillation"), "given twice"),
        (("-m", "nope"), "unknown method 'nope'"),
        (("-s", "some"), "save mode (-s) is 'some'"),
        (("--seeds", 0), "--seeds is 0"),
    ],
)
def test_bad_compare_options(tmp_path, extra, fragment):
    result = invoke(*COMPARE, "-e", 1, "-out", tmp_path, *extra)
    assert result.exit_code == 2 and fragment in result.stderr, result.output


def test_evaluate_prints_accuracy_and_knn(comparison):
    out, _ = comparison
    result = invoke("evaluate", out / "run_best_model.keras", "digits", "-k", 3)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "test kNN accuracy (k=3)" in result.output


def test_report_refuses_a_folder_without_results(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "no results.json" in result.stderr


def test_report_refuses_a_hand_edited_results_file_in_one_line(comparison, tmp_path):
    out, _ = comparison
    results = json.loads((out / "run_results.json").read_text())
    del results["results"][0]["test"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    result = invoke("report", tmp_path, "--no-plots")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "is not a ktrain results.json (at KeyError('test'))" in result.stderr


def test_a_damaged_progress_log_reruns_from_each_runs_checkpoints(tmp_path):
    assert invoke(*COMPARE, "-e", 1, "-m", "kd", "-out", tmp_path).exit_code == 0
    before = json.loads((tmp_path / "results.json").read_text())["results"]
    (tmp_path / "checkpoints" / "progress.json").write_text('{"entries": [')  # cut short
    result = invoke(*COMPARE, "-e", 1, "-m", "kd", "-out", tmp_path, "--resume")
    assert result.exit_code == 0, result.output
    assert "progress.json is unreadable" in (tmp_path / "output.log").read_text()
    after = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [e["test"]["accuracy"] for e in after] == [e["test"]["accuracy"] for e in before]


def test_report_does_not_need_tensorflow(comparison):
    import subprocess
    import sys

    out, _ = comparison
    code = (
        "import sys; sys.argv = ['ktrain', 'report', sys.argv[1], '-res', 'run', '--no-plots']\n"
        "from ktrain.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-FREE')\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert "TF-FREE" in result.stdout, result.stdout + result.stderr


def test_a_damaged_entry_of_the_progress_log_reruns_only_its_run(tmp_path):
    assert invoke(*COMPARE, "-e", 1, "-m", "kd", "-out", tmp_path).exit_code == 0
    before = json.loads((tmp_path / "results.json").read_text())["results"]
    progress = tmp_path / "checkpoints" / "progress.json"
    entries = json.loads(progress.read_text())["entries"]
    entries[0]["test"] = None  # hand-edited: the table would have no accuracy for it
    progress.write_text(json.dumps({"entries": entries}))
    result = invoke(*COMPARE, "-e", 1, "-m", "kd", "-out", tmp_path, "--resume")
    assert result.exit_code == 0, result.output
    log = (tmp_path / "output.log").read_text()
    assert "entry 0 has no valid 'test': its run resumes from its own checkpoints" in log
    after = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [e["test"]["accuracy"] for e in after] == [e["test"]["accuracy"] for e in before]

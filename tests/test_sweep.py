"""ktrain sweep: the grid, its refusals, the summary chosen on validation, the files, resume and the
single teacher pass."""

import csv
import json
import math

import matplotlib.image
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain.cli.main import app
from ktrain.errors import KtrainError
from ktrain.grid import csv_text, kept_val_accuracy, parse_grid, run_rows, summarize, sweep_specs

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- the grid --------------------------------------------------------------------------------------
def test_grid_keys_take_names_flags_and_typed_values():
    grid = parse_grid(["temperature=2,4", "kd-lambda=0.1,0.5", "--logit-standardization=true,no"], ["kd"], {})
    assert grid.axes == (
        ("temperature", (2.0, 4.0)),
        ("kd_lambda", (0.1, 0.5)),
        ("logit_standardization", (True, False)),
    )
    assert parse_grid(["t=3"], ["kd"], {}).axes == (("temperature", (3.0,)),)
    assert parse_grid({"dkd_beta": [1, 8]}, ["kd", "dkd"], {}).axes == (("dkd_beta", (1.0, 8.0)),)


def test_values_that_print_alike_stay_apart_and_api_forms():
    grid = parse_grid(["t=2.0000001,2.0000002"], ["kd"], {})
    names = {spec.display_name for spec in sweep_specs(["kd"], grid, {}, 10)}
    assert names == {"Knowledge Distillation temperature=2.0000001", "Knowledge Distillation temperature=2.0000002"}
    assert parse_grid("t=2,4", ["kd"], {}).axes == (("temperature", (2.0, 4.0)),)  # one string, as on the CLI
    assert parse_grid({"logit_standardization": [1, 0]}, ["kd"], {}).axes == (("logit_standardization", (True, False)),)


def test_points_of_one_method_are_not_repeats_with_an_ensemble_teacher():
    from ktrain.methods.selection import for_teacher

    specs = sweep_specs(["kd"], parse_grid(["t=2,4"], ["kd"], {}), {}, 10)
    resolved = for_teacher(specs, ensemble=True, explicit=True)
    assert [spec.display_name for spec in resolved] == [
        "Ensemble KD temperature=2",
        "Ensemble KD temperature=4",
    ]


def test_a_key_applies_to_the_methods_that_have_it():
    grid = parse_grid(["temperature=2,4", "dkd_beta=1,8"], ["kd", "dkd"], {})
    specs = sweep_specs(["kd", "dkd"], grid, {"kd_lambda": 0.3}, 1000)
    names = [spec.display_name for spec in specs]
    assert names == [
        "Knowledge Distillation temperature=2",
        "Knowledge Distillation temperature=4",
        "Decoupled KD temperature=2 dkd_beta=1",
        "Decoupled KD temperature=2 dkd_beta=8",
        "Decoupled KD temperature=4 dkd_beta=1",
        "Decoupled KD temperature=4 dkd_beta=8",
    ]
    assert [spec.options.temperature for spec in specs[:2]] == [2.0, 4.0]
    assert all(spec.options.kd_lambda == 0.3 for spec in specs)  # a fixed option reaches every point
    assert specs[3].options.dkd_beta == 8.0 and specs[3].key == "dkd_temperature-2_dkd_beta-8"
    assert len({spec.key for spec in specs}) == len(specs)  # one checkpoint folder per point


@pytest.mark.parametrize(
    "grid, given, fragment",
    [
        (["dkd_beta=1,2"], {}, "--grid key 'dkd_beta' is not an option of kd: use one of temperature, kd_lambda"),
        (["temperature=warm"], {}, "temperature (-t) is 'warm': give a number"),
        (["temperature=0,2"], {}, "temperature (-t) is 0: give a value greater than 0"),
        (["kd_lambda=-1"], {}, "is -1: give a value of 0 or more"),
        (["logit_standardization=maybe"], {}, "value 'maybe' is not true or false"),
        ([], {}, "the grid is empty"),
        (["temperature="], {}, "--grid temperature lists no values"),
        (["temperature"], {}, "--grid 'temperature' is not KEY=V1,V2"),
        (["temperature=2,2.0"], {}, "--grid temperature lists 2 twice"),
        (["temperature=2", "t=4"], {}, "--grid temperature is given twice"),
        (["temperature=1,,2"], {}, "--grid 'temperature=1,,2' has an empty value"),
        ({"temperature": None}, {}, "--grid temperature lists no values"),
        (["temperature=2,4"], {"temperature": 3.0}, "temperature is both swept (--grid) and fixed (-t)"),
    ],
)
def test_bad_grids_are_refused_naming_the_value(grid, given, fragment):
    with pytest.raises(KtrainError) as caught:
        parse_grid(grid, ["kd"], given)
    assert fragment in str(caught.value)


def test_a_value_the_method_refuses_and_too_many_points():
    grid = parse_grid([f"temperature={','.join(str(t) for t in range(1, 41))}", "kd_lambda=0.1,0.5"], ["kd"], {})
    assert len(sweep_specs(["kd"], grid, {}, 80)) == 80
    with pytest.raises(KtrainError, match="the grid has 80 points, over --max-points 79"):
        sweep_specs(["kd"], grid, {}, 79)
    with pytest.raises(KtrainError, match="--max-points is 0"):
        sweep_specs(["kd"], grid, {}, 0)


# -- the summary -----------------------------------------------------------------------------------
def entry(name, seed, val_history, test, best_epoch=None, method="kd", point=None):
    restored = best_epoch is not None and best_epoch != len(val_history)
    return {
        "name": name,
        "role": "student",
        "method": method,
        "seed": seed,
        "point": point or {},
        "history": {"val_accuracy": val_history},
        "best_epoch": best_epoch or len(val_history),
        "restored_best": restored,
        "epochs_run": len(val_history),
        "test": {"accuracy": test, "crossentropy": 0.5},
    }


def test_the_kept_weights_decide_the_validation_score():
    assert kept_val_accuracy(entry("a", 0, [0.5, 0.9, 0.7], 0.8, best_epoch=2)) == 0.9
    assert kept_val_accuracy(entry("a", 0, [0.5, 0.9, 0.7], 0.8)) == 0.7  # -ufm: the last epoch
    assert kept_val_accuracy({"role": "student", "failed": "nan"}) is None


def test_the_best_point_is_chosen_on_validation_never_on_test():
    entries = [
        entry("KD t=2", 0, [0.90], 0.99, point={"temperature": 2.0}),
        entry("KD t=2", 1, [0.92], 0.97, point={"temperature": 2.0}),
        entry("KD t=4", 0, [0.95], 0.80, point={"temperature": 4.0}),
        entry("KD t=4", 1, [0.93], 0.82, point={"temperature": 4.0}),
        entry("Scratch student", 0, [0.99], 0.99, method="supervised"),  # the baseline is not a point
        {"name": "Teacher", "role": "teacher"},
    ]
    rows = summarize(run_rows(entries), "supervised")
    assert [row["name"] for row in rows] == ["KD t=2", "KD t=4", "Scratch student"]
    t2, t4, scratch = rows
    assert t4["best"] and not t2["best"] and not scratch["best"]
    assert math.isclose(t4["val_accuracy"], 0.94) and math.isclose(t4["val_accuracy_std"], 0.02**0.5 / 10)
    assert t4["val_accuracy_std"] == pytest.approx(np.std([0.95, 0.93], ddof=1))  # as compare's table
    assert math.isclose(t2["test_accuracy"], 0.98) and t2["seeds"] == 2
    assert t4["point"] == {"temperature": 4.0}


def test_a_failed_run_counts_as_failed_not_as_a_score():
    failed = {"name": "KD t=2", "role": "student", "method": "kd", "seed": 1, "point": {}, "failed": "nan loss"}
    rows = summarize(run_rows([entry("KD t=2", 0, [0.9], 0.9), failed]), "supervised")
    assert rows[0]["seeds"] == 1 and rows[0]["failed"] == 1


def test_csv_is_flat_one_row_per_run():
    entries = [
        entry("KD temperature=2", 0, [0.9, 0.8], 0.85, best_epoch=1, point={"temperature": 2.0}),
        entry("Scratch student", 0, [0.7], 0.75, method="supervised"),
    ]
    rows = list(csv.DictReader(csv_text(run_rows(entries), ["temperature", "kd_lambda"]).splitlines()))
    assert list(rows[0]) == [
        "name",
        "method",
        "temperature",
        "kd_lambda",
        "seed",
        "val_accuracy",
        "test_accuracy",
        "test_crossentropy",
        "epochs_run",
        "failed",
    ]
    assert rows[0]["temperature"] == "2.0" and rows[0]["kd_lambda"] == "" and rows[0]["val_accuracy"] == "0.9"
    assert rows[1]["method"] == "supervised" and rows[1]["temperature"] == ""


# -- end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(
        path, x_train=digits.x_train[:300], y_train=digits.y_train[:300], x_test=digits.x_test, y_test=digits.y_test
    )
    return path


def sweep_command(data, out, *grid):
    return ["sweep", "zoo:digits_teacher", "zoo:digits_student", data, "-m", "kd", "-e", 1, "-v", 0, "-out", out, *grid]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_npz):
    import ktrain.targets

    out = tmp_path_factory.mktemp("sweep")
    calls = []
    compute = ktrain.targets.compute
    ktrain.targets.compute = lambda *args, **kwargs: calls.append(1) or compute(*args, **kwargs)
    try:
        result = invoke(*sweep_command(tiny_npz, out, "--grid", "t=2,4", "--grid", "kdl=0.1,0.9", "--seeds", 2))
    finally:
        ktrain.targets.compute = compute
    assert result.exit_code == 0, result.output
    return out, result.output, calls


def test_a_sweep_writes_its_table_csv_heatmap_and_results(swept):
    out, output, _ = swept
    results = json.loads((out / "results.json").read_text())
    points = results["sweep"]["points"]
    assert results["command"] == "sweep" and results["sweep"]["grid"] == {
        "temperature": [2.0, 4.0],
        "kd_lambda": [0.1, 0.9],
    }
    assert [row["point"] for row in points[:4]] == [
        {"temperature": t, "kd_lambda": k} for t in (2.0, 4.0) for k in (0.1, 0.9)
    ]
    assert points[4]["method"] == "supervised" and all(row["seeds"] == 2 for row in points)
    best = max(points[:4], key=lambda row: row["val_accuracy"])
    assert results["sweep"]["best"] == best["name"] and best["best"]
    assert results["best_student"] == best["name"]  # best_model.keras is a run of the best point
    assert f"best on validation: {best['name']}" in output
    assert "validation" in output and "test" in output and "±" in output
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and {row["seed"] for row in rows} == {"0", "1"}
    for row in points[:4]:  # the table's means are the CSV's runs averaged
        runs = [float(r["val_accuracy"]) for r in rows if r["name"] == row["name"]]
        assert math.isclose(np.mean(runs), row["val_accuracy"], rel_tol=1e-9)
    image = matplotlib.image.imread(out / "sweep_heatmap.png")
    assert image.ndim == 3 and image.shape[0] > 100
    report = invoke("report", out, "--no-plots")
    assert report.exit_code == 0 and "Scratch student" in report.output and "* " in report.output, report.output


def test_one_teacher_pass_serves_every_point_and_seed(swept):
    out, _, calls = swept
    assert calls == [1]
    results = json.loads((out / "results.json").read_text())
    kd = [e for e in results["results"] if e.get("method") == "kd"]
    assert len(kd) == 8 and {e["soft_targets"] for e in kd} == {"memory"}


def test_resume_skips_finished_points(tmp_path, tiny_npz, monkeypatch):
    from ktrain.comparison import Comparison

    first = invoke(*sweep_command(tiny_npz, tmp_path, "--grid", "t=2"))
    assert first.exit_code == 0, first.output
    trained = []
    run_method = Comparison.run_method
    monkeypatch.setattr(
        Comparison,
        "run_method",
        lambda self, spec, name, *rest: trained.append(name) or run_method(self, spec, name, *rest),
    )
    again = invoke(*sweep_command(tiny_npz, tmp_path, "--grid", "t=2,4", "--resume"))
    assert again.exit_code == 0, again.output
    assert trained == ["Knowledge Distillation temperature=4"]  # t=2 and the scratch student were kept
    points = json.loads((tmp_path / "results.json").read_text())["sweep"]["points"]
    assert [row["name"] for row in points] == [
        "Knowledge Distillation temperature=2",
        "Knowledge Distillation temperature=4",
        "Scratch student",
    ]


@pytest.mark.parametrize(
    "grid, fragment",
    [
        (("--grid", "dkd_beta=1,2"), "--grid key 'dkd_beta' is not an option of kd"),
        (("--grid", "t=hot"), "temperature (-t) is 'hot'"),
        ((), "the grid is empty"),
        (("--grid", "t=1,2,3", "--max-points", 2), "the grid has 3 points, over --max-points 2"),
        (("--grid", "t=2", "--augment", "crop"), "sweep with --augment crop but no --views"),
    ],
)
def test_bad_sweeps_exit_2_with_one_line_and_no_files(tmp_path, tiny_npz, grid, fragment):
    out = tmp_path / "out"
    result = invoke(*sweep_command(tiny_npz, out, *grid))
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def test_the_python_api_returns_the_points_and_writes_nothing(tmp_path, monkeypatch, small_digits):
    import ktrain

    monkeypatch.chdir(tmp_path)
    d = small_digits
    result = ktrain.sweep(
        "zoo:digits_teacher",
        "zoo:digits_student",
        (d.x_train, d.y_train, d.x_test, d.y_test),
        "kd",
        {"temperature": [2, 8]},
        epochs=1,
        baseline=False,
    )
    assert isinstance(result, ktrain.Sweep) and len(result.runs) == 2
    assert [row["point"] for row in result.points] == [{"temperature": 2.0}, {"temperature": 8.0}]
    assert result.best_point["val_accuracy"] == max(row["val_accuracy"] for row in result.points)
    assert list(tmp_path.iterdir()) == []

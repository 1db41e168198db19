"""A new method is one file: this module defines one and registers it, and nothing else changes.

The toy method taps a named student layer, ramps its distillation term in over the epochs, and
owns a trainable regressor. It runs through ``distill`` and ``compare``, resumes exactly, and gives
the same run on two replicas as on one device.
"""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain.cli.main import app
from ktrain.losses import cross_entropy
from ktrain.methods import Method, Option, Options, Tap, register, unregister
from ktrain.methods.kd import kd_per_example

HINT_WEIGHT = Option("hint_weight", ("--hint-weight",), "Weight of the toy's regression term.")
HINT_LAYER = Option("toy_layer", ("--toy-layer",), "Student layer the toy regresses from.", kind=str, check="any")


@dataclass(frozen=True)
class ToyOptions(Options):
    hint_weight: float = HINT_WEIGHT(0.5)
    toy_layer: str = HINT_LAYER("hidden")


class ToyHint(Method):
    """KD ramped in over two epochs, plus a learned linear map from a named student layer to the
    teacher's logits (a FitNets-like regressor, owned by the method)."""

    name = "toy-hint"
    display_name = "Toy hint"
    Options = ToyOptions

    def student_taps(self):
        return {"logits": Tap("logits"), "hint": Tap("layer", self.options.toy_layer)}

    def build_state(self, student_shapes, teacher_shapes):
        width, classes = student_shapes["hint"][-1], teacher_shapes["logits"][-1]
        self.regressor = tf.Variable(
            tf.random.stateless_normal((width, classes), seed=(1, 2)) * 0.1, name="toy_regressor"
        )

    @property
    def trainable_variables(self):
        return [self.regressor]

    def losses(self, batch):
        ramp = tf.minimum(batch.context.epoch / 2.0, 1.0)
        mapped = tf.matmul(batch.student["hint"], self.regressor)
        return {
            "kd": ramp * kd_per_example(batch.student_logits, batch.teacher_logits, 2.0),
            "hint": self.options.hint_weight * tf.reduce_mean(tf.square(mapped - batch.teacher_logits), axis=-1),
            "ce": cross_entropy(batch.labels, batch.student_logits),
        }


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    register(ToyHint)
    yield
    unregister(ToyHint)


runner = CliRunner()
PAIR = ["zoo:digits_teacher", "zoo:digits_student", "digits"]


def distill(out, *extra):
    result = runner.invoke(
        app,
        ["distill", *PAIR, "-m", "toy-hint", "--hint-weight", "0.25", "-v", "0", "-out", str(out), *map(str, extra)],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def student_entry(results):
    return next(entry for entry in results["results"] if entry["role"] == "student")


def test_toy_method_runs_through_distill_and_records_its_options(tmp_path):
    results = distill(tmp_path, "-e", 2)
    entry = student_entry(results)
    assert entry["method"] == "toy-hint"
    assert entry["method_options"] == {"hint_weight": 0.25, "toy_layer": "hidden"}
    history = entry["history"]
    assert {"kd", "hint", "ce"} <= set(history) and np.all(np.isfinite(history["loss"]))


def test_toy_method_reads_the_epoch(tmp_path):
    # With a vanishing learning rate the KD term itself stays put, so validation shows the ramp alone:
    # epoch 1 weighs KD by 1/2, epoch 2 by 1.
    history = student_entry(distill(tmp_path, "-e", 2, "-lr", 1e-9, "-lrd", 0))["history"]
    assert history["val_kd"][1] == pytest.approx(2 * history["val_kd"][0], rel=1e-4)


def test_toy_method_resumes_exactly_with_its_state(tmp_path):
    whole = student_entry(distill(tmp_path / "whole", "-e", 2, "-lrd", 0))
    distill(tmp_path / "part", "-e", 1, "-lrd", 0)
    resumed = student_entry(distill(tmp_path / "part", "-e", 2, "-lrd", 0, "--resume"))
    for key in ("loss", "hint", "kd", "val_loss", "val_hint"):
        assert resumed["history"][key] == pytest.approx(whole["history"][key], rel=1e-6), key


def test_toy_method_on_two_replicas_matches_one_device(tmp_path):
    one = student_entry(distill(tmp_path / "one", "-e", 1, "--strategy", "one"))
    two = student_entry(distill(tmp_path / "two", "-e", 1, "--strategy", "mirrored"))
    for key in ("loss", "hint", "kd", "ce", "val_loss"):
        assert two["history"][key] == pytest.approx(one["history"][key], rel=1e-5), key


def test_toy_method_runs_in_compare_beside_kd(tmp_path):
    result = runner.invoke(
        app,
        [
            "compare",
            *PAIR,
            "-m",
            "kd,toy-hint",
            "--hint-weight",
            "0.25",
            "-t",
            "3",
            "--no-baseline",
            "-e",
            "1",
            "-v",
            "0",
            "-out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    options = {entry["name"]: entry["options"] for entry in results["methods"]}
    # -t applies to the method that has it; --hint-weight to the toy; neither leaks into the other.
    assert options == {
        "kd": {"temperature": 3.0, "kd_lambda": 0.1, "kd_weight": 1.0, "logit_standardization": False},
        "toy-hint": {"hint_weight": 0.25, "toy_layer": "hidden"},
    }
    assert [entry["method"] for entry in results["results"][:2]] == ["kd", "toy-hint"]

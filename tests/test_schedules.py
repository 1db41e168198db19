"""Learning-rate schedules: cosine against Keras's own schedule step by step, constant against
plateau, an exact mid-run resume, and the refusals."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from ktrain import zoo
from ktrain.cli.main import app
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.engine import Interrupted, Trainer
from ktrain.methods import get_method
from ktrain.optim import build_optimizer
from ktrain.seeding import seed_everything
from ktrain.strategy import build_strategy
from ktrain.taps import method_view

runner = CliRunner()


@pytest.mark.parametrize("warmup", [0, 2])
def test_cosine_follows_keras_cosine_decay_at_every_step(warmup):
    optimizer = OptimizerConfig(learning_rate=0.02)
    _, rate = build_optimizer(optimizer, ScheduleConfig(lr_schedule="cosine", lr_warmup=warmup))
    steps_per_epoch, epochs = 7, 5
    rate.start(steps_per_epoch, epochs)
    reference = keras.optimizers.schedules.CosineDecay(
        0.0,
        (epochs - warmup) * steps_per_epoch,
        warmup_target=0.02 if warmup else None,
        warmup_steps=warmup * steps_per_epoch,
    )
    if not warmup:
        reference = keras.optimizers.schedules.CosineDecay(0.02, epochs * steps_per_epoch)
    got = [float(rate.schedule(step)) for step in range(epochs * steps_per_epoch + 3)]
    expected = [float(reference(step)) for step in range(epochs * steps_per_epoch + 3)]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert got[0] == (0.0 if warmup else pytest.approx(0.02)) and got[-1] == pytest.approx(0.0, abs=1e-9)


def train(small_digits, schedule: ScheduleConfig, *, epochs=4, checkpoint=None, resume=False, arm=None, lr=0.01):
    seed_everything(0)
    strategy = build_strategy("one")
    with strategy.scope():
        model = zoo.build("digits_student", small_digits.image_shape, 10)
    method = get_method("supervised")()
    config = TrainConfig(
        epochs=epochs, batch_size=32, optimizer=OptimizerConfig(learning_rate=lr), schedule=schedule
    ).validate()
    trainer = Trainer(student=method_view(model, method), method=method, config=config, strategy=strategy)
    if arm is not None:
        arm(trainer)
    return trainer.fit(small_digits, checkpoint_dir=checkpoint, resume=resume).columns(), model.get_weights()


def test_a_real_run_logs_the_cosine_rate_and_constant_ignores_plateaus(small_digits):
    cosine = ScheduleConfig(lr_schedule="cosine", lr_warmup=1, early_stopping_patience=0)
    history, _ = train(small_digits, cosine)
    steps = len(small_digits.y_train) // 32
    reference = keras.optimizers.schedules.CosineDecay(0.0, 3 * steps, warmup_target=0.01, warmup_steps=steps)
    expected = [float(reference(epoch * steps)) for epoch in range(1, 5)]  # the rate after each epoch
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-6, atol=1e-9)
    # A high rate and patience 0 make the plateau controller cut the rate; constant never does.
    plateau, _ = train(small_digits, ScheduleConfig(lr_patience=0, early_stopping_patience=0), epochs=6, lr=0.05)
    constant = ScheduleConfig(lr_schedule="constant", lr_patience=0, early_stopping_patience=0)
    steady, _ = train(small_digits, constant, epochs=6, lr=0.05)
    assert min(plateau["lr"]) < 0.01
    inverse_time = [0.05 / (1 + 1e-6 * epoch * steps) for epoch in range(1, 7)]  # -d composes with constant
    np.testing.assert_allclose(steady["lr"], inverse_time, rtol=1e-6)


def test_cosine_resumes_mid_run_to_the_same_weights(small_digits, tmp_path, interrupt):
    cosine = ScheduleConfig(lr_schedule="cosine", lr_warmup=1, early_stopping_patience=0)
    whole = train(small_digits, cosine, checkpoint=str(tmp_path / "whole"))
    with pytest.raises(Interrupted):
        train(small_digits, cosine, checkpoint=str(tmp_path / "part"), arm=lambda t: interrupt(t, 3, 3))
    resumed = train(small_digits, cosine, checkpoint=str(tmp_path / "part"), resume=True)
    assert resumed[0]["lr"] == pytest.approx(whole[0]["lr"], rel=1e-7)
    assert resumed[0]["loss"] == pytest.approx(whole[0]["loss"], rel=1e-6)
    for a, b in zip(whole[1], resumed[1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_resume_refuses_a_longer_cosine_run_or_another_schedule(tmp_path):
    base = ("train", "zoo:digits_student", "digits", "-v", 0, "-out", tmp_path)
    assert cli(*base, "-e", 2, "--lr-schedule", "cosine").exit_code == 0
    state = json.loads(max((tmp_path / "checkpoints").glob("*.state.json")).read_text())
    assert state["lr_schedule"] == {"name": "cosine", "epochs": 2}
    result = cli(*base, "-e", 4, "--lr-schedule", "cosine", "--resume")
    assert result.exit_code == 2 and "the cosine schedule was fixed at 2 epochs" in result.stderr
    result = cli(*base, "-e", 2, "--resume")  # run.json names the setting that changed
    assert result.exit_code == 2 and "engine.schedule.lr_schedule cosine → plateau" in result.stderr
    (tmp_path / "run.json").unlink()  # a folder from before run.json: the checkpoint's own record refuses
    result = cli(*base, "-e", 2, "--resume")
    assert result.exit_code == 2 and "the run started with cosine" in result.stderr
    assert not (tmp_path / "run.json").exists()  # and the refused settings are not recorded


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (("--lr-schedule", "linear"), "--lr-schedule is 'linear': use one of plateau, cosine, constant"),
        (("--lr-schedule", "cosine", "--lr-warmup", "-1"), "--lr-warmup is -1: give a value of 0 or more"),
        (("--lr-schedule", "cosine", "--lr-warmup", "3"), "--lr-warmup is 3 with 3 epochs (-e)"),
        (("--lr-warmup", "1"), "--lr-warmup 1 with --lr-schedule plateau"),
        (("--lr-schedule", "cosine", "-d", "1e-6"), "-d 1e-06 with --lr-schedule cosine"),
    ],
)
def test_bad_schedules_are_one_line_errors_and_leave_no_files(tmp_path, arguments, fragment):
    result = cli("train", "zoo:digits_student", "digits", "-e", 3, *arguments, "-out", tmp_path / "out")
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()

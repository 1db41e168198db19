"""The command line's help, choices, completion and progress lines, through the CLI."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
import typer
from typer.testing import CliRunner

from ktrain.cli.helptext import choices_of
from ktrain.cli.main import app, main
from ktrain.settings import PANEL_ORDER

runner = CliRunner()
COMMANDS = sorted(typer.main.get_command(app).commands)


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env, prog_name="ktrain")


def one_line_error(monkeypatch, capsys, *argv) -> str:
    """The error ``ktrain ARGV`` prints through the console entry point, checked to be one line, exit 2."""
    monkeypatch.setattr(sys, "argv", ["ktrain", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def whole(word: str, text: str) -> bool:
    """``word`` appears in ``text`` with no letter, digit, dash or underscore stuck to either side."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name", COMMANDS)
def test_help_at_100_columns_shows_every_option_and_choice_whole(name):
    result = invoke(name, "--help", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "<bool>" not in text and "<str>" not in text and "…" not in text
    command = typer.main.get_command(app).commands[name]
    for parameter in command.params:
        if isinstance(parameter, typer.core.TyperArgument):
            assert whole(parameter.name.upper(), text.split("\n", 1)[0]), (name, parameter.name)  # in the usage
            continue
        for flag in (*parameter.opts, *parameter.secondary_opts):
            assert whole(flag, text), (name, flag)
        for choice in choices_of(parameter):
            assert whole(choice, text), (name, parameter.name, choice)
    panels = [title for title in re.findall(r"╭─ (\w[\w ]*?) ─", text) if title in PANEL_ORDER]
    assert panels == sorted(panels, key=PANEL_ORDER.index), (name, panels)


def test_usage_names_arguments_in_capitals_and_descriptions_are_whole():
    result = invoke("distill", "--help", env={"COLUMNS": "100"})
    assert result.output.startswith("Usage: ktrain distill [OPTIONS] TEACHER STUDENT DATASET\n")
    listing = invoke("--help", env={"COLUMNS": "100"}).output
    # Each command's line is its first paragraph, whole: no line break inside a sentence's words.
    demo = re.search(r"│ demo +(.*?)│\n│ +(.*?)│\n", listing)
    assert demo and "three methods and a scratch student. It prints its settings first, and why." in " ".join(
        " ".join(demo.groups()).split()
    )


def test_single_choices_take_any_case_and_a_wrong_one_names_them(tmp_path):
    train = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0", "-out", tmp_path)
    assert invoke(*train, "--lr-schedule", "COSINE", "-o", "Adam", "--jit", "OFF").exit_code == 0
    recorded = json.loads((tmp_path / "run.json").read_text())
    assert recorded["engine.schedule.lr_schedule"] == "cosine" and recorded["engine.optimizer.name"] == "adam"


def test_a_wrong_choice_is_one_line_naming_the_choices(monkeypatch, capsys):
    message = one_line_error(monkeypatch, capsys, "train", "zoo:digits_student", "digits", "--precision", "half")
    assert message.startswith("error: --precision is 'half': use one of float32, mixed_float16, mixed_bfloat16")


def test_verbosity_is_0_1_or_2_on_every_command(monkeypatch, capsys):
    for name in ("demo", "train", "evaluate", "export", "cache"):
        result = invoke(name, "--help", env={"COLUMNS": "100"})
        assert "-v, --verbosity" in result.output and "2: also a line per epoch" in result.output, name
    assert invoke("evaluate", "zoo:digits_student", "digits", "-v", "2").exit_code == 0
    message = one_line_error(monkeypatch, capsys, "evaluate", "zoo:digits_student", "digits", "-v", "3")
    assert message.startswith("error: Invalid value for '-v' / '--verbosity': Input should be less than or equal")


def test_shell_completion_completes_commands_options_and_choices():
    executable = shutil.which("ktrain")
    assert executable, "the ktrain command is installed with the package"
    script = subprocess.run([executable, "--show-completion", "bash"], capture_output=True, text=True, check=True)
    assert "_KTRAIN_COMPLETE=complete_bash" in script.stdout

    def complete(words: str, index: int) -> list[str]:
        env = {**os.environ, "_KTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        return subprocess.run([executable], capture_output=True, text=True, env=env).stdout.split()

    assert complete("ktrain dis", 1) == ["distill"]
    assert complete("ktrain distill --lr-sch", 2) == ["--lr-schedule"]
    assert complete("ktrain distill --temper", 2) == ["--temperature"]  # a method's option
    assert complete("ktrain train --jit ", 3) == ["auto", "on", "off"]
    assert complete("ktrain compare -s b", 3) == ["best"]


def test_every_long_phase_is_a_line_without_a_terminal(tmp_path):
    evaluated = invoke("evaluate", "zoo:digits_teacher", "digits", "-k", "3")
    assert re.search(r"^Testing zoo:digits_teacher: \d+\.\d s$", evaluated.stderr, re.M), evaluated.output
    assert re.search(r"^kNN and mAP of zoo:digits_teacher's features: \d+\.\d s$", evaluated.stderr, re.M)
    assert evaluated.stdout.splitlines()[0].split() == ["test", "images:", "359"]  # the scores alone, for scripts
    distill = ("distill", "zoo:digits_teacher", "zoo:digits_student", "digits", "-e", "1", "-out", tmp_path / "d")
    result = invoke(*distill, "--export", "float32")
    assert result.exit_code == 0, result.output
    for line in (
        r"Scoring the teacher: \d+\.\d s",
        r"Teacher's soft targets \(\d+ batches\): \d+\.\d s",
        r"Knowledge Distillation  epoch 1/1  loss \S+  acc \S+  val_acc \S+  lr 0\.001  \d+\.\d s",
        r"Testing Knowledge Distillation: \d+\.\d s",
        r"Converting to TFLite \(float32\): \d+\.\d s",
        r"Checking the TFLite model on 359 test images: \d+\.\d s",
    ):
        assert re.search(rf"^{line}$", result.output, re.M), (line, result.output)
    quiet = invoke(*distill, "--overwrite", "-v", "0")
    assert "Scoring the teacher" not in quiet.output and "epoch 1/1" not in quiet.output


def test_loading_a_tfds_dataset_is_a_phase():
    with tfds.testing.mock_data(num_examples=40):
        result = invoke("evaluate", "zoo:digits_student", "mnist")
    assert result.exit_code == 0, result.output
    assert re.search(r"^Loading mnist \(TFDS\): \d+\.\d s$", result.output, re.M), result.output


def test_a_missing_argument_is_named_as_the_usage_names_it(monkeypatch, capsys):
    message = one_line_error(monkeypatch, capsys, "train", "zoo:digits_student")
    assert message == "error: Missing argument 'DATASET'. (see 'ktrain train --help')"


def test_a_phase_that_fails_prints_only_the_error(monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    result = invoke("evaluate", "zoo:digits_student", "mnist")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: dataset 'mnist' is not available") and "Loading" not in result.output


def test_errors_quote_values_as_given_not_as_rich_markup(monkeypatch, capsys):
    # '[/]' crashed the error printer (MarkupError), '[v2]' vanished, 'crop:-1' became an emoji.
    for value in ("exp[/]x.keras", "model[v2].keras"):
        message = one_line_error(monkeypatch, capsys, "evaluate", value, "digits")
        assert message.startswith(f"error: evaluated model '{value}' not found")
    message = one_line_error(monkeypatch, capsys, "train", "zoo:digits_student", "digits", "--augment", "crop:-1")
    assert message.startswith("error: --augment crop:-1: ")

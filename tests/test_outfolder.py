"""The out folder as a run leaves it: a refusal at any point, or a Ctrl-C before the run has a
checkpoint, leaves it byte for byte as it was (the earlier run an --overwrite set aside included);
a killed --overwrite is recovered; the lock file is only ever a regular file of ktrain's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ktrain import outfolder
from ktrain.cli.main import app

runner = CliRunner()
TRAIN = ("train", "zoo:digits_student", "digits", "-e", "1", "-v", "0")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def contents(folder: Path) -> dict:
    """Every entry under ``folder``, files by their bytes (the log too)."""
    return {path: path.read_bytes() if path.is_file() else None for path in sorted(folder.rglob("*"))}


def assert_one_line(result, fragment: str):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert fragment in message, message
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A finished run's folder, copied for each test that refuses something over it."""
    folder = tmp_path_factory.mktemp("earlier")
    assert invoke(*TRAIN, "-out", folder).exit_code == 0
    return folder


def copy_of(earlier: Path, tmp_path: Path) -> Path:
    subprocess.run(["cp", "-a", str(earlier), str(tmp_path / "out")], check=True)
    return tmp_path / "out"


# Refused after the data is loaded: the batch check came after the checkpoint folder was named,
# and --tensorboard named its folder before the data was loaded, so the earlier run was deleted.
LATE = [
    (("-bs", "2000"), "batch size (-bs) 2000 is larger than the"),
    (("--tensorboard", "-bs", "2000"), "batch size (-bs) 2000"),
    (("--tensorboard", "--val-split", "0.001"), "validation split"),
]


@pytest.mark.parametrize(("extra", "fragment"), LATE)
def test_a_late_refusal_of_an_overwrite_keeps_the_earlier_run_byte_for_byte(earlier, tmp_path, extra, fragment):
    out = copy_of(earlier, tmp_path)
    before = contents(out)
    result = invoke(*TRAIN, "-out", out, "--overwrite", *extra)
    assert_one_line(result, fragment)
    assert contents(out) == before  # the log, the manifest and run.json included


def test_a_late_refusal_in_a_folder_of_other_files_leaves_them_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "output.log").write_text("an earlier log\n")
    before = contents(out)
    assert_one_line(invoke(*TRAIN, "-out", out, "-bs", "2000"), "batch size (-bs) 2000")
    assert contents(out) == before  # no lock, manifest, run.json or log lines added


def test_a_late_refusal_in_a_new_folder_leaves_no_folder(tmp_path):
    assert_one_line(invoke(*TRAIN, "-out", tmp_path / "a" / "b", "-bs", "2000"), "batch size")
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_before_the_first_checkpoint_of_an_overwrite_puts_the_earlier_run_back(earlier, tmp_path):
    out = copy_of(earlier, tmp_path)
    before = contents(out)
    # The command line's own process (a Ctrl-C ends it with os._exit), interrupted while the data loads.
    script = f"""
import sys
from ktrain.specs import DataSpec
def interrupted(self, seed):
    raise KeyboardInterrupt
DataSpec.load = interrupted
sys.argv = ["ktrain", *{[*TRAIN, "-out", str(out), "--overwrite"]!r}]
from ktrain.cli import main
main()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 130 and "interrupted (Ctrl-C)" in result.stderr, result.stderr
    assert contents(out) == before and not list(out.glob(".ktrain-overwritten*"))
    resumed = invoke("train", "zoo:digits_student", "digits", "-e", "2", "-v", "0", "-out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output


def test_the_aside_of_a_killed_overwrite_is_put_back_until_the_new_run_has_a_checkpoint(earlier, tmp_path):
    out = copy_of(earlier, tmp_path)
    results = (out / "results.json").read_bytes()
    outfolder.set_aside(outfolder.OutFolder(out))  # as a kill -9 leaves it, before any checkpoint
    assert not (out / "results.json").exists()
    resumed = invoke("train", "zoo:digits_student", "digits", "-e", "2", "-v", "0", "-out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output  # the earlier run is back, and continued
    assert not list(out.glob(".ktrain-overwritten*")) and (out / "results.json").read_bytes() != results


def test_the_aside_of_a_killed_overwrite_goes_once_the_new_run_has_a_checkpoint(earlier, tmp_path):
    out = copy_of(earlier, tmp_path)
    folder = outfolder.OutFolder(out)
    aside = outfolder.set_aside(folder)
    (out / "checkpoints").mkdir()
    for path in (aside / "checkpoints").iterdir():  # the new run's first checkpoint, say
        subprocess.run(["cp", "-a", str(path), str(out / "checkpoints")], check=True)
    outfolder.claim_out_folder(folder, resume=True)
    assert not aside.exists() and not (out / "results.json").exists()


def lock_as_folder(path):
    path.mkdir()


def lock_as_fifo(path):
    os.mkfifo(path)


@pytest.mark.parametrize(("make", "reason"), [(lock_as_folder, "Is a directory"), (lock_as_fifo, "not a regular")])
def test_a_lock_file_that_is_not_a_file_is_one_line(tmp_path, make, reason):
    out = tmp_path / "out"
    out.mkdir()
    make(out / outfolder.LOCK_NAME)
    assert_one_line(invoke(*TRAIN, "-out", out), f"cannot use the lock file '{out / outfolder.LOCK_NAME}' ({reason}")
    assert [path.name for path in out.iterdir()] == [outfolder.LOCK_NAME]


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_is_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (out / outfolder.LOCK_NAME).symlink_to(target)
    assert_one_line(invoke(*TRAIN, "-out", out), "it is a symbolic link): remove it")
    assert target.read_text() == "keep me"


def test_a_lock_file_removed_while_waiting_is_taken_again_at_its_path(tmp_path):
    folder = outfolder.OutFolder(tmp_path)
    (tmp_path / outfolder.LOCK_NAME).write_text("")
    with outfolder.folder_lock(folder):
        held = (tmp_path / outfolder.LOCK_NAME).stat().st_ino
        assert "pid" in (tmp_path / outfolder.LOCK_NAME).read_text()
    assert (tmp_path / outfolder.LOCK_NAME).stat().st_ino == held


def test_a_ctrl_c_while_files_move_aside_is_held_until_they_have_moved(tmp_path):
    # The move runs in a child that sends itself SIGINT in the middle: every file ends up aside.
    for name in ("a.keras", "b.keras", "results.json"):
        (tmp_path / name).write_text(name)
    outfolder.list_outputs(tmp_path, [tmp_path / name for name in ("a.keras", "b.keras", "results.json")])
    script = f"""
import os, signal
from pathlib import Path
from ktrain import outfolder
moved = []
real = os.replace
def replace(a, b):
    real(a, b)
    moved.append(b)
    if len(moved) == 1:
        os.kill(os.getpid(), signal.SIGINT)
os.replace = replace
try:
    outfolder.set_aside(outfolder.OutFolder({str(tmp_path)!r}))
except KeyboardInterrupt:
    print(len(moved))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "4", result.stderr  # three outputs and the manifest, then the signal
    assert sorted(path.name for path in (tmp_path / ".ktrain-overwritten").iterdir()) == [
        ".ktrain-files",
        "a.keras",
        "b.keras",
        "results.json",
    ]

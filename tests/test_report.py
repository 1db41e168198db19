"""Atomic writes, the seed-format log block and the summary over seeds."""

import os
import stat

import pytest

from ktrain.io import atomic_write, write_json_atomic
from ktrain.report import final_results_block, summarize


def test_atomic_write_replaces_whole_files_with_normal_permissions(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"a": 1})
    assert path.read_text().strip() == '{\n  "a": 1\n}'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"old": True})
    with pytest.raises(RuntimeError):
        with atomic_write(path) as temporary:
            temporary.write_text('{"new": tru')  # half-written
            raise RuntimeError("killed mid-write")
    assert path.read_text().strip() == '{\n  "old": true\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def entry(name, role, accuracy, seed=0, params=100, **extra):
    return {
        "name": name,
        "role": role,
        "params": params,
        "seed": seed,
        "method": "kd" if role == "student" else None,
        "test": {"accuracy": accuracy, "crossentropy": 1 - accuracy, "loss": 2 - accuracy},
        **extra,
    }


RESULTS = {
    "results": [
        entry("Knowledge Distillation", "student", 0.8),
        entry("Knowledge Distillation", "student", 0.9, seed=1),
        entry("Teacher", "teacher", 0.95, params=1000),
    ]
}


def test_summary_gives_mean_and_std_over_seeds():
    kd, teacher = summarize(RESULTS)
    assert kd["runs"] == 2 and kd["accuracy"] == pytest.approx(0.85)
    assert kd["accuracy_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert kd["teacher_over_student"] == 10 and teacher["runs"] == 1


def test_final_results_block_has_the_seed_format():
    block = final_results_block(RESULTS)
    assert block.splitlines()[:5] == [
        "Final results: ",
        "Parameters:",
        "    Teacher params: 1000",
        "    Student params: 100",
        "    Ratio: T/S=10.0 S/T=0.1",
    ]
    assert "Knowledge Distillation: \n    loss: 1.15\n    categorical_accuracy: 0.85\n" in block
    assert block.index("Knowledge Distillation") < block.index("Teacher: ")

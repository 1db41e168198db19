"""MultiWorkerMirroredStrategy with two worker processes on localhost (CPU)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(command_for, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",
        }
        processes.append(
            subprocess.Popen(
                command_for(index), env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = []
    for process in processes:
        try:
            output, _ = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("multi-worker run timed out")
        outputs.append(output)
        assert process.returncode == 0, output[-3000:]
    return outputs


def test_two_workers_train_together_and_end_with_identical_weights(tmp_path):
    start_workers(
        lambda index: [sys.executable, str(HERE / "multiworker_worker.py"), str(tmp_path / f"w{index}.npz")], tmp_path
    )
    first, second = (np.load(tmp_path / f"w{index}.npz") for index in range(2))
    assert int(first["replicas"]) == 2 and bool(first["chief"]) and not bool(second["chief"])
    weights = [key for key in first.files if key.startswith("arr_")]
    for key in weights:
        np.testing.assert_array_equal(first[key], second[key])
    np.testing.assert_allclose(first["loss"], second["loss"])
    assert first["loss"][-1] < first["loss"][0]


def test_cli_distill_across_two_workers_only_the_chief_writes(tmp_path):
    def command(index):
        return [
            sys.executable,
            "-m",
            "ktrain.cli",
            "distill",
            "zoo:digits_teacher",
            "zoo:digits_student",
            "digits",
            "-e",
            "1",
            "-v",
            "0",
            "--strategy",
            "multiworker",
            "-out",
            str(tmp_path / f"out{index}"),
        ]

    start_workers(command, tmp_path)
    results = json.loads((tmp_path / "out0" / "results.json").read_text())
    assert results["strategy"]["name"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    assert results["strategy"]["replicas"] == 2
    assert (tmp_path / "out0" / "student.keras").is_file()
    assert not (tmp_path / "out1").exists()

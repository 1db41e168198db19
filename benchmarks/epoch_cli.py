"""One epoch through the real data pipeline and the whole CLI, on a CIFAR-10-sized .npz.

Writes 50,000 + 10,000 random 32×32×3 uint8 images in the keras.datasets layout, runs
``ktrain distill zoo:cifar10_baseline_ensemble zoo:cifar10_student_strong DATA.npz -e 1`` as a
subprocess (soft targets cached: the seed's setting without augmentation), and reports the
wall time, the engine's epoch seconds and images/s, and the child's peak resident memory
(goal ≤ 2 GiB). Prints one JSON line.

    python benchmarks/epoch_cli.py [--targets auto|online] [--batch-size 64]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="auto", choices=["auto", "online", "cache"])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        data = Path(folder) / "cifar_sized.npz"
        np.savez(
            data,
            x_train=rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8),
            y_train=rng.integers(0, 10, 50_000),
            x_test=rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8),
            y_test=rng.integers(0, 10, 10_000),
        )
        out = Path(folder) / "out"
        command = [
            sys.executable,
            "-m",
            "ktrain.cli",
            "distill",
            "zoo:cifar10_baseline_ensemble",
            "zoo:cifar10_student_strong",
            str(data),
            "-e",
            "1",
            "-v",
            "0",
            "-bs",
            str(args.batch_size),
            "--targets",
            args.targets,
            "-out",
            str(out),
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        results = json.loads((out / "results.json").read_text())
        student = results["results"][0]
        print(
            json.dumps(
                {
                    "benchmark": "epoch_cli",
                    "images": 35_000,
                    "batch_size": args.batch_size,
                    "soft_targets": "cached" if student["soft_targets"] != "online" else "online",
                    "wall_seconds": round(wall, 1),
                    "epoch_seconds": round(student["history"]["epoch_seconds"][0], 1),
                    "train_images_per_second": round(student["history"]["images_per_second"][0], 1),
                    "peak_rss_gib": round(peak_kib / 2**20, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

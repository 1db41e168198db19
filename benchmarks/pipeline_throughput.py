"""Input-pipeline throughput against step throughput, on CIFAR-10-sized synthetic data.

Iterates ``ktrain.data.train_pipeline`` (uint8 in memory, shuffle, batch, scale) over 50,000
32×32×3 images and compares its images/s with the fastest training step (the seed's strong
student trained alone) measured in the same run; the pipeline must not bound a step (goal ≥ 5×).
Prints one JSON line.

    python benchmarks/pipeline_throughput.py
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from step_throughput import measure  # noqa: E402  (benchmarks/ is the script's folder)

from ktrain.data import train_pipeline


def main(batch_size: int = 64, count: int = 50_000):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(count,), dtype=np.int32)
    for _ in train_pipeline(images[:4096], labels[:4096], batch_size, 0, 0):  # warm-up
        pass
    started = time.perf_counter()
    seen = 0
    for batch in train_pipeline(images, labels, batch_size, seed=0, epoch=1):
        seen += int(batch["images"].shape[0])
    pipeline = seen / (time.perf_counter() - started)
    step = measure("cifar10", "student_alone", batch_size, False, 3, 20, "one")["images_per_second"]
    print(
        json.dumps(
            {
                "benchmark": "pipeline_throughput",
                "images": count,
                "batch_size": batch_size,
                "pipeline_images_per_second": round(pipeline, 1),
                "student_step_images_per_second": step,
                "ratio": round(pipeline / step, 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
